//! The broker's HTTP surface: produce (acks 0, 1 and all, with the acks=all wait), consumer
//! fetch (only below HW, with an optional long-poll), the follower fetch a leader answers (with
//! its long-poll), `/v1/state` and `/v1/metadata`. Argument checking and waits live here; every
//! replication decision is the replica's.

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

use super::background::spawn_alter;
use super::replica::{LeaderFetch, Replica, Role};
use super::{
    Shared, DEFAULT_PRODUCE_TIMEOUT_MS, MAX_FETCH_RECORDS, MAX_PRODUCE_TIMEOUT_MS,
    MAX_RECORDS_PER_PRODUCE, MAX_WAIT_MS, REPLICA_FETCH_MAX_RECORDS,
};
use crate::api::*;
use crate::events::now_ms;

type Body = Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>;

fn partition_arg(value: i64) -> Result<u32, ApiError> {
    u32::try_from(value)
        .map_err(|_| ApiError::invalid(format!("partition must be 0 or more (got {value})")))
}

async fn produce(State(broker): State<Shared>, body: Body) -> ApiResult<ProduceResponse> {
    let req: ProduceRequest = parse_body(body)?;
    let partition = partition_arg(req.partition)?;
    let acks = Acks::parse(&req.acks)?;
    let timeout_ms = match req.timeout_ms {
        None => DEFAULT_PRODUCE_TIMEOUT_MS,
        Some(t) if (0..=MAX_PRODUCE_TIMEOUT_MS).contains(&t) => t as u64,
        Some(t) => {
            return Err(ApiError::invalid(format!(
                "timeout_ms must be 0 to {MAX_PRODUCE_TIMEOUT_MS} (got {t})"
            )))
        }
    };
    if req.records.is_empty() || req.records.len() > MAX_RECORDS_PER_PRODUCE {
        return Err(ApiError::invalid(format!(
            "a produce carries 1 to {MAX_RECORDS_PER_PRODUCE} records (got {})",
            req.records.len()
        )));
    }
    if let Some(big) = req
        .records
        .iter()
        .find(|r| r.value.len() > crate::storage::log::MAX_VALUE_BYTES)
    {
        return Err(ApiError::new(
            ErrorCode::MessageTooLarge,
            format!("a value of {} bytes is over the limit", big.value.len()),
        ));
    }
    let values: Vec<String> = req.records.into_iter().map(|r| r.value).collect();
    produce_values(&broker, &req.topic, partition, values, acks, timeout_ms)
        .await
        .map(Json)
}

/// The produce path shared by the HTTP and Kafka APIs: appends `values` as one batch on the
/// leader of `topic`/`partition` and answers as `acks` asks (acks=0 at once with no offsets;
/// acks=1 after the append; acks=all once HW passes the batch, or the error that says why not).
/// The caller has checked the arguments.
pub(crate) async fn produce_values(
    broker: &Shared,
    topic: &str,
    partition: u32,
    values: Vec<String>,
    acks: Acks,
    timeout_ms: u64,
) -> Result<ProduceResponse, ApiError> {
    let handle = broker.partition(topic, partition)?;
    let count = values.len() as u64;
    if acks == Acks::Zero {
        // acks=0: the client is answered before the append, and never learns its outcome.
        tokio::spawn(async move {
            let result = handle.lock().append_as_leader(values, acks, now_ms());
            handle.notify();
            if let Err(e) = result {
                tracing::debug!("acks=0 produce dropped: {e}");
            }
        });
        return Ok(ProduceResponse {
            base_offset: None,
            count: None,
            leader_epoch: None,
        });
    }
    let (base, last, epoch, leader_since) = {
        let mut r = handle.lock();
        let (base, last) = r.append_as_leader(values, acks, now_ms())?;
        let since = r
            .leader_since_epoch()
            .expect("a replica that appended leads");
        (base, last, r.current_epoch(), since)
    };
    handle.notify();
    let ok = ProduceResponse {
        base_offset: Some(base),
        count: Some(count),
        leader_epoch: Some(epoch),
    };
    if acks == Acks::One {
        return Ok(ok);
    }
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    match handle
        .wait_for(deadline, |r| r.acks_all_status(last, leader_since))
        .await
    {
        Some(Ok(())) => Ok(ok),
        Some(Err(e)) => Err(e),
        None => Err(ApiError::new(
            ErrorCode::RequestTimedOut,
            format!(
                "offsets {base}..={last} were appended but not committed within {timeout_ms} ms"
            ),
        )),
    }
}

fn query_u64(
    q: &HashMap<String, String>,
    key: &str,
    default: Option<u64>,
    max: u64,
) -> Result<u64, ApiError> {
    let Some(text) = q.get(key) else {
        return default
            .ok_or_else(|| ApiError::invalid(format!("query parameter {key} is required")));
    };
    let n: i128 = text
        .parse()
        .map_err(|_| ApiError::invalid(format!("{key} must be a whole number (got {text:?})")))?;
    if n < 0 || n > max as i128 {
        return Err(ApiError::invalid(format!(
            "{key} must be 0 to {max} (got {n})"
        )));
    }
    Ok(n as u64)
}

async fn fetch(
    State(broker): State<Shared>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<FetchResponse> {
    let Query(q) = query.map_err(|e| ApiError::invalid(format!("bad query: {e}")))?;
    let topic = q
        .get("topic")
        .ok_or_else(|| ApiError::invalid("query parameter topic is required"))?;
    let partition = query_u64(&q, "partition", None, u32::MAX as u64)? as u32;
    let offset = query_u64(&q, "offset", None, i64::MAX as u64)?;
    let max_records =
        query_u64(&q, "max_records", Some(1000), MAX_FETCH_RECORDS as u64)?.max(1) as usize;
    let max_wait_ms = query_u64(&q, "max_wait_ms", Some(0), MAX_WAIT_MS)?;
    let read = read_committed(&broker, topic, partition, offset, max_records, max_wait_ms).await?;
    Ok(Json(FetchResponse {
        records: read
            .records
            .into_iter()
            .map(|rec| FetchedRecord {
                offset: rec.offset,
                leader_epoch: rec.leader_epoch,
                value: rec.value,
            })
            .collect(),
        high_watermark: read.high_watermark,
        leader_epoch: read.leader_epoch,
    }))
}

/// What a consumer's read found: records below HW, with HW and the leader's epoch.
pub(crate) struct CommittedRead {
    pub records: Vec<crate::storage::log::Record>,
    pub high_watermark: u64,
    pub leader_epoch: u32,
}

/// The consumer read shared by the HTTP and Kafka APIs: up to `max_records` records from
/// `offset`, never at or above HW, served by the leader only. With nothing committed at `offset`
/// it waits up to `max_wait_ms` for HW to pass it, then answers (possibly empty).
pub(crate) async fn read_committed(
    broker: &Shared,
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
    broker: &Shared,
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

async fn replica_fetch(
    State(broker): State<Shared>,
    body: Body,
) -> Result<ReplicaFetchResponse, ApiError> {
    let req: ReplicaFetchRequest = parse_body(body)?;
    if req.cluster_id != broker.config.cluster_id {
        return Err(ApiError::new(
            ErrorCode::InconsistentClusterId,
            format!(
                "fetch from cluster {:?}; this broker is in {:?}",
                req.cluster_id, broker.config.cluster_id
            ),
        ));
    }
    let handle = broker.partition(&req.topic, req.partition)?;
    let _in_flight = handle.track_fetch(req.replica_id);
    let (answer, expand) = handle.lock().leader_fetch(&req, now_ms())?;
    handle.notify();
    spawn_alter(&broker, &handle, expand);
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

async fn state(State(broker): State<Shared>) -> ApiResult<BrokerState> {
    Ok(Json(broker.state()))
}

async fn metadata(State(broker): State<Shared>) -> ApiResult<Metadata> {
    Ok(Json(broker.cached_metadata()))
}

pub fn router(broker: Shared) -> Router {
    let limit = broker.config.max_request_bytes;
    Router::new()
        .route("/v1/produce", post(produce))
        .route("/v1/fetch", get(fetch))
        .route("/v1/state", get(state))
        .route("/v1/metadata", get(metadata))
        .route("/v1/internal/replica-fetch", post(replica_fetch))
        .fallback(crate::server::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(broker)
}
