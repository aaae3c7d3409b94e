//! The broker's HTTP API (docs/node-api.md): `POST /v1/produce`, `GET /v1/fetch`, `GET
//! /v1/state`, `GET /v1/metadata` and the follower fetch a leader answers,
//! `POST /v1/internal/replica-fetch`. It owns the HTTP side only: decoding each request's JSON
//! body or query (the JSON spelling of acks, the partition number, the query bounds) and
//! answering JSON. The limits of a produce, the waits and every replication decision are the
//! broker's ([`crate::broker::produce`], [`crate::broker::fetch`]), shared with the Kafka API.
//! The controller's HTTP API is [`crate::controller::http`].

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::collections::HashMap;
use std::sync::Arc;

use crate::api::*;
use crate::broker::fetch::{answer_replica_fetch, read_committed};
use crate::broker::produce::{self, ProduceArgs};
use crate::broker::{Broker, MAX_FETCH_RECORDS, MAX_WAIT_MS};
use crate::storage::ProducerBatch;

type Shared = Arc<Broker>;
type Body = Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>;

fn partition_arg(value: i64) -> Result<u32, ApiError> {
    u32::try_from(value)
        .map_err(|_| ApiError::invalid(format!("partition must be 0 or more (got {value})")))
}

/// The three producer fields of a produce: all or none, each in its Kafka type's range.
fn producer_arg(req: &ProduceRequest) -> Result<Option<ProducerBatch>, ApiError> {
    match (req.producer_id, req.producer_epoch, req.base_sequence) {
        (None, None, None) => Ok(None),
        (Some(id), Some(epoch), Some(sequence)) => {
            let out_of_range = |name: &str, value: i64, max: i64| {
                ApiError::invalid(format!("{name} must be 0 to {max} (got {value})"))
            };
            if id < 0 {
                return Err(out_of_range("producer_id", id, i64::MAX));
            }
            let epoch = i16::try_from(epoch)
                .ok()
                .filter(|e| *e >= 0)
                .ok_or_else(|| out_of_range("producer_epoch", epoch, i16::MAX.into()))?;
            let sequence = i32::try_from(sequence)
                .ok()
                .filter(|s| *s >= 0)
                .ok_or_else(|| out_of_range("base_sequence", sequence, i32::MAX.into()))?;
            Ok(Some(ProducerBatch {
                producer_id: id,
                producer_epoch: epoch,
                base_sequence: sequence,
            }))
        }
        _ => Err(ApiError::invalid(
            "producer_id, producer_epoch and base_sequence go together: give all three or none",
        )),
    }
}

async fn produce(State(broker): State<Shared>, body: Body) -> ApiResult<ProduceResponse> {
    let req: ProduceRequest = parse_body(body)?;
    let args = ProduceArgs {
        partition: partition_arg(req.partition)?,
        acks: Acks::parse(&req.acks)?,
        producer: producer_arg(&req)?,
        topic: req.topic,
        values: req.records.into_iter().map(|r| r.value).collect(),
        timeout_ms: req.timeout_ms,
    };
    Ok(Json(produce::produce(&broker, args).await?))
}

/// A new idempotent producer: an id no other producer has, epoch 0 (Kafka's InitProducerId
/// without a transactional id).
async fn init_producer_id(State(broker): State<Shared>) -> ApiResult<InitProducerIdResponse> {
    if !broker.config.version.rules().idempotent_producer {
        return Err(ApiError::invalid(format!(
            "Kafka {} has no idempotent producer (KIP-98 came in 0.11.0)",
            broker.config.version
        )));
    }
    Ok(Json(InitProducerIdResponse {
        producer_id: broker.new_producer_id(),
        producer_epoch: 0,
    }))
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

async fn replica_fetch(
    State(broker): State<Shared>,
    body: Body,
) -> Result<ReplicaFetchResponse, ApiError> {
    let req: ReplicaFetchRequest = parse_body(body)?;
    answer_replica_fetch(&broker, &req).await
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
        .route("/v1/init-producer-id", post(init_producer_id))
        .route("/v1/fetch", get(fetch))
        .route("/v1/state", get(state))
        .route("/v1/metadata", get(metadata))
        .route("/v1/internal/replica-fetch", post(replica_fetch))
        .fallback(crate::server::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(broker)
}
