//! What a leader answers readers with, shared by both transports: a consumer's read (only
//! records below HW, with an optional long-poll), the offsets a Kafka ListOffsets asks for, and
//! a follower's fetch (with its long-poll, and the ISR expansion it may propose). The waits
//! live here, bounded by the caller's `max_wait_ms`; every replication decision is the
//! replica's. The follower's side of replication is [`super::follower`]; no wire format is
//! known here.

use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use super::background::spawn_alter;
use super::replica::{LeaderFetch, Replica, Role};
use super::{Broker, MAX_WAIT_MS, REPLICA_FETCH_MAX_RECORDS};
use crate::api::*;
use crate::events::now_ms;
use crate::storage::Record;

/// What a consumer's read found: records below HW, with HW and the leader's epoch.
pub(crate) struct CommittedRead {
    pub records: Vec<Record>,
    pub high_watermark: u64,
    pub leader_epoch: u32,
}

/// The consumer read of both APIs: up to `max_records` records from `offset`, never at or
/// above HW, served by the leader only. With nothing committed at `offset` it waits up to
/// `max_wait_ms` for HW to pass it, then answers (possibly empty).
pub(crate) async fn read_committed(
    broker: &Arc<Broker>,
    topic: &str,
    partition: u32,
    offset: u64,
    max_records: usize,
    max_wait_ms: u64,
) -> Result<CommittedRead, ApiError> {
    let handle = broker.partition(topic, partition)?;
    let deadline = Instant::now() + Duration::from_millis(max_wait_ms);
    let answer = handle
        .wait_for(deadline, |r| {
            consumer_read(
                r,
                offset,
                max_records,
                max_wait_ms == 0 || Instant::now() >= deadline,
            )
        })
        .await;
    match answer {
        Some(result) => result,
        // The wait ran out with nothing new below HW: answer empty, like Kafka's max.wait.
        None => {
            consumer_read(&handle.lock(), offset, max_records, true).expect("final read answers")
        }
    }
}

/// The offsets a Kafka ListOffsets asks for, from the leader: HW (Kafka's "latest" for a
/// consumer) and the leader's epoch.
pub(crate) fn leader_offsets(
    broker: &Arc<Broker>,
    topic: &str,
    partition: u32,
) -> Result<(u64, u32), ApiError> {
    let handle = broker.partition(topic, partition)?;
    let r = handle.lock();
    if r.role() != Role::Leader {
        return Err(r.not_leader());
    }
    Ok((r.hw(), r.current_epoch()))
}

/// A consumer's read: only records below HW. `None` means "wait for more" (nothing readable yet
/// and the caller may still wait).
fn consumer_read(
    r: &Replica,
    offset: u64,
    max_records: usize,
    final_try: bool,
) -> Option<Result<CommittedRead, ApiError>> {
    if r.role() != Role::Leader {
        return Some(Err(r.not_leader()));
    }
    if offset > r.leo() {
        let mut e = ApiError::new(
            ErrorCode::OffsetOutOfRange,
            format!("offset {offset} is past the LEO {}", r.leo()),
        );
        e.log_end_offset = Some(r.leo());
        return Some(Err(e));
    }
    let hw = r.hw();
    if offset >= hw && !final_try {
        return None;
    }
    let records = match r.log().read(offset, hw, max_records) {
        Ok(records) => records,
        Err(e) => return Some(Err(ApiError::storage(e))),
    };
    debug_assert!(records.iter().all(|rec| rec.offset < hw));
    Some(Ok(CommittedRead {
        records,
        high_watermark: hw,
        leader_epoch: r.current_epoch(),
    }))
}

/// A leader's answer to a follower's fetch: records (or the diverging epoch) at once when there
/// are any, else a long-poll of up to `max_wait_ms` (at most [`MAX_WAIT_MS`]). An ISR expansion
/// the fetch earns is proposed to the controller in the background.
pub(crate) async fn answer_replica_fetch(
    broker: &Arc<Broker>,
    req: &ReplicaFetchRequest,
) -> Result<ReplicaFetchResponse, ApiError> {
    check_cluster_id(broker, &req.cluster_id)?;
    let handle = broker.partition(&req.topic, req.partition)?;
    let _in_flight = handle.track_fetch(req.replica_id);
    let (answer, expand) = handle.lock().leader_fetch(req, now_ms())?;
    handle.notify();
    spawn_alter(broker, &handle, expand);
    let empty = match answer {
        LeaderFetch::Records(resp) => return Ok(resp),
        LeaderFetch::Empty(resp) if req.max_wait_ms == 0 => return Ok(resp),
        LeaderFetch::Empty(resp) => resp,
    };
    // Long-poll: answer when there is data or when this broker stops leading in this epoch
    // (not when only HW moves: Kafka's DelayedFetch has no such case).
    let wait_ms = req.max_wait_ms.min(MAX_WAIT_MS);
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    let epoch = req.current_leader_epoch;
    let woke = handle
        .wait_for(deadline, |r| {
            r.follower_fetch_ready(req.fetch_offset, epoch)
                .then_some(())
        })
        .await;
    if woke.is_none() {
        return Ok(empty);
    }
    let r = handle.lock();
    if r.role() != Role::Leader || r.leader_epoch() != Some(epoch) {
        return Ok(empty);
    }
    r.read_for_follower(
        req.fetch_offset,
        req.max_records.min(REPLICA_FETCH_MAX_RECORDS),
        req.max_bytes,
    )
}

/// Internal requests carry the cluster id, so two runs on one machine never cross-talk.
fn check_cluster_id(broker: &Broker, cluster_id: &str) -> Result<(), ApiError> {
    if cluster_id == broker.config.cluster_id {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::InconsistentClusterId,
        format!(
            "fetch from cluster {cluster_id:?}; this broker is in {:?}",
            broker.config.cluster_id
        ),
    ))
}
