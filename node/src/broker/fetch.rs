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
/// the fetch earns is proposed to the controller in the background. The first read updates the
/// follower's state and answers with HW as it was before that update; a long-poll, when it
/// ends (records arrived, the leadership changed, or its time ran out), reads again and answers
/// with HW as of then, updating nothing (Kafka's `DelayedFetch.onComplete`).
pub(crate) async fn answer_replica_fetch(
    broker: &Arc<Broker>,
    req: &ReplicaFetchRequest,
) -> Result<ReplicaFetchResponse, ApiError> {
    check_cluster_id(broker, &req.cluster_id)?;
    let handle = broker.partition(&req.topic, req.partition)?;
    let _in_flight = handle.track_fetch(req.replica_id);
    let req = ReplicaFetchRequest {
        max_records: req.max_records.min(REPLICA_FETCH_MAX_RECORDS),
        ..req.clone()
    };
    let (answer, expand) = handle.lock().leader_fetch(&req, now_ms(), &broker.events)?;
    handle.notify();
    spawn_alter(broker, &handle, expand);
    match answer {
        LeaderFetch::Records(resp) => return Ok(resp),
        LeaderFetch::Empty(resp) if req.max_wait_ms == 0 => return Ok(resp),
        LeaderFetch::Empty(_) => {}
    }
    // Long-poll: woken when there is data or when this broker stops leading in this epoch
    // (not when only HW moves: Kafka's DelayedFetch has no such case).
    let wait_ms = req.max_wait_ms.min(MAX_WAIT_MS);
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    let epoch = req.current_leader_epoch;
    handle
        .wait_for(deadline, |r| {
            r.follower_fetch_ready(req.fetch_offset, epoch)
                .then_some(())
        })
        .await;
    let answer = handle.lock().complete_parked_fetch(&req);
    answer
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

#[cfg(test)]
mod tests {
    use super::super::testing::{broker, metadata};
    use super::*;
    use crate::version::KafkaVersion;

    fn replica_fetch(from: u32, offset: u64, max_wait_ms: u64) -> ReplicaFetchRequest {
        ReplicaFetchRequest {
            cluster_id: "c".into(),
            replica_id: from,
            topic: "t".into(),
            partition: 0,
            fetch_offset: offset,
            last_fetched_epoch: Some(0),
            broker_epoch: None,
            current_leader_epoch: 0,
            max_records: 100,
            max_bytes: REPLICA_FETCH_MAX_BYTES,
            max_wait_ms,
        }
    }

    /// Kafka's `DelayedFetch.onComplete` (3.7.0; 0.10.2.1 alike) reads again when a parked
    /// follower fetch expires: the answer carries HW as of the expiry, not of its arrival. Here
    /// broker 3's fetch parks at the LEO; broker 2's fetch then moves HW (its own answer still
    /// carries the HW from before it); the parked fetch expires with the new HW.
    #[tokio::test]
    async fn a_long_poll_that_expires_answers_with_the_hw_of_its_expiry() {
        for version in [
            KafkaVersion::V4_1,
            KafkaVersion::V3_7,
            KafkaVersion::V0_10_2,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let b = broker(dir.path(), 1, version);
            b.apply_metadata(metadata(1, Some(1), 0, 0, &[1, 2, 3]));
            let h = b.partition("t", 0).unwrap();
            let values = vec!["a".to_string(), "b".to_string()];
            h.lock()
                .append_as_leader(values, Acks::One, now_ms(), None)
                .unwrap();
            let parked = {
                let b = b.clone();
                tokio::spawn(
                    async move { answer_replica_fetch(&b, &replica_fetch(3, 2, 400)).await },
                )
            };
            let deadline = Instant::now() + Duration::from_secs(5);
            while h
                .lock()
                .state()
                .followers
                .iter()
                .all(|f| f.id != 3 || f.log_end_offset != Some(2))
            {
                assert!(Instant::now() < deadline, "broker 3's fetch never arrived");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let two = answer_replica_fetch(&b, &replica_fetch(2, 2, 0))
                .await
                .unwrap();
            assert_eq!(
                two.high_watermark, 0,
                "{version}: HW from before broker 2's fetch"
            );
            assert_eq!(h.lock().hw(), 2, "{version}");
            let expired = parked.await.unwrap().unwrap();
            assert_eq!(expired.high_watermark, 2, "{version}: HW as of the expiry");
        }
    }
}
