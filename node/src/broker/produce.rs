//! The one produce path of a broker, shared by both transports (the HTTP API in `broker_http`,
//! the Kafka wire protocol in `kafka`): the limits a produce must keep and the append on the
//! partition's leader with its acks wait. A transport decodes its own wire form (a JSON body,
//! record batches) into [`ProduceArgs`] and calls [`produce`], which checks every limit before
//! it touches the partition, so no transport can append past a limit and a limit added here
//! holds on both. A broken limit is a [`Refusal`] that names it; each transport answers it in
//! its own words (HTTP through `From<Refusal> for ApiError`, Kafka with its error code). This
//! module owns no wire format and no replication rule (those are the replica's).

use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use super::registry::PartitionHandle;
use super::Broker;
use crate::api::{Acks, ApiError, ErrorCode, ProduceResponse};
use crate::events::now_ms;
use crate::storage::batch::MAX_VALUE_BYTES;
use crate::storage::ProducerBatch;

/// The most records one produce may carry: one produce is one batch on disk and in every
/// follower fetch, so this bounds the batch.
pub const MAX_RECORDS_PER_PRODUCE: usize = 100_000;
/// The longest an acks=all produce may wait for HW to pass its batch.
pub const MAX_PRODUCE_TIMEOUT_MS: i64 = 300_000;
/// The acks=all wait when the request names none (Kafka's `request.timeout.ms` default).
pub const DEFAULT_PRODUCE_TIMEOUT_MS: u64 = 30_000;

/// One produce, decoded from its transport's wire form but not yet checked.
#[derive(Debug, Clone)]
pub struct ProduceArgs {
    pub topic: String,
    pub partition: u32,
    pub values: Vec<String>,
    pub acks: Acks,
    /// How long acks=all may wait; `None` is [`DEFAULT_PRODUCE_TIMEOUT_MS`]. Outside 0 to
    /// [`MAX_PRODUCE_TIMEOUT_MS`] it is refused.
    pub timeout_ms: Option<i64>,
    /// An idempotent producer's id, epoch and first sequence: the leader dedups and orders its
    /// batches (`storage/producer_state.rs`).
    pub producer: Option<ProducerBatch>,
}

/// A produce that breaks a limit. Nothing was appended. The messages are the HTTP API's
/// (docs/node-api.md), and the Kafka API sends them as the partition's error message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("timeout_ms must be 0 to {MAX_PRODUCE_TIMEOUT_MS} (got {0})")]
    TimeoutOutOfRange(i64),
    #[error("a produce carries 1 to {MAX_RECORDS_PER_PRODUCE} records (got 0)")]
    NoRecords,
    #[error("a produce carries 1 to {MAX_RECORDS_PER_PRODUCE} records (got {0})")]
    TooManyRecords(usize),
    #[error("a value of {0} bytes is over the limit")]
    ValueTooLarge(usize),
}

/// The HTTP API's answer to a refusal (and the code the node's error enum gives it).
impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        let code = match refusal {
            Refusal::ValueTooLarge(_) => ErrorCode::MessageTooLarge,
            Refusal::TimeoutOutOfRange(_) | Refusal::NoRecords | Refusal::TooManyRecords(_) => {
                ErrorCode::InvalidRequest
            }
        };
        ApiError::new(code, refusal.to_string())
    }
}

/// Why a produce did not succeed: refused before the append, or answered by the partition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProduceError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The partition's answer: not the leader, not enough replicas, the acks=all wait ran out…
    #[error(transparent)]
    Failed(#[from] ApiError),
}

impl From<ProduceError> for ApiError {
    fn from(e: ProduceError) -> ApiError {
        match e {
            ProduceError::Refused(refusal) => refusal.into(),
            ProduceError::Failed(e) => e,
        }
    }
}

/// Checks `args` against every limit, in the order the HTTP API has always checked them (so
/// a request breaking two limits hears about the same one), and returns the acks=all wait.
pub fn check(args: &ProduceArgs) -> Result<u64, Refusal> {
    let timeout_ms = check_timeout_ms(args.timeout_ms)?;
    check_record_count(args.values.len())?;
    check_value_sizes(&args.values)?;
    Ok(timeout_ms)
}

fn check_timeout_ms(timeout_ms: Option<i64>) -> Result<u64, Refusal> {
    match timeout_ms {
        None => Ok(DEFAULT_PRODUCE_TIMEOUT_MS),
        Some(t) if (0..=MAX_PRODUCE_TIMEOUT_MS).contains(&t) => Ok(t as u64),
        Some(t) => Err(Refusal::TimeoutOutOfRange(t)),
    }
}

fn check_record_count(count: usize) -> Result<(), Refusal> {
    match count {
        0 => Err(Refusal::NoRecords),
        n if n > MAX_RECORDS_PER_PRODUCE => Err(Refusal::TooManyRecords(n)),
        _ => Ok(()),
    }
}

fn check_value_sizes(values: &[String]) -> Result<(), Refusal> {
    match values.iter().find(|v| v.len() > MAX_VALUE_BYTES) {
        Some(big) => Err(Refusal::ValueTooLarge(big.len())),
        None => Ok(()),
    }
}

/// The produce entry point of both APIs: checks `args` ([`check`]), then appends its values as
/// one batch on the leader of its partition and answers as its acks ask (acks=0 at once with no
/// offsets; acks=1 after the append; acks=all once HW passes the batch, or the error that says
/// why not).
pub(crate) async fn produce(
    broker: &Arc<Broker>,
    args: ProduceArgs,
) -> Result<ProduceResponse, ProduceError> {
    let timeout_ms = check(&args)?;
    let handle = broker.partition(&args.topic, args.partition)?;
    if args.acks == Acks::Zero {
        append_unanswered(handle, args.values, args.producer);
        return Ok(ProduceResponse {
            base_offset: None,
            count: None,
            leader_epoch: None,
        });
    }
    let answer =
        append_answered(&handle, args.values, args.acks, timeout_ms, args.producer).await?;
    if let (Some(p), Some(duplicate)) = (args.producer, answer.1) {
        // The leader answered a retry from the log instead of writing it twice.
        broker.events.emit(
            "duplicate_batch",
            serde_json::json!({"topic": args.topic, "partition": args.partition,
                   "producer_id": p.producer_id, "producer_epoch": p.producer_epoch,
                   "base_sequence": p.base_sequence, "first_offset": duplicate.0,
                   "last_offset": duplicate.1}),
        );
    }
    Ok(answer.0)
}

/// acks=0: the client is answered before the append, and never learns its outcome.
fn append_unanswered(
    handle: Arc<PartitionHandle>,
    values: Vec<String>,
    producer: Option<ProducerBatch>,
) {
    tokio::spawn(async move {
        let result = handle
            .lock()
            .append_as_leader(values, Acks::Zero, now_ms(), producer);
        handle.notify();
        if let Err(e) = result {
            tracing::debug!("acks=0 produce dropped: {e}");
        }
    });
}

/// acks=1 and acks=all: appends, then for acks=all waits up to `timeout_ms` for HW to pass the
/// batch while this broker still leads in the epoch it appended in. An idempotent producer's
/// retry of a batch the log holds is answered with that batch's offsets, and for acks=all waits
/// for the HW to pass it like a fresh append (Kafka's delayed produce waits on the offsets the
/// append returned, the duplicate's).
async fn append_answered(
    handle: &PartitionHandle,
    values: Vec<String>,
    acks: Acks,
    timeout_ms: u64,
    producer: Option<ProducerBatch>,
) -> Result<(ProduceResponse, Option<(u64, u64)>), ApiError> {
    let (base, last, epoch, leader_since, duplicate) = {
        let mut r = handle.lock();
        let leo_before = r.leo();
        let (base, last) = r.append_as_leader(values, acks, now_ms(), producer)?;
        // An append always moves the LEO: an answer without one is a duplicate's.
        let duplicate = (r.leo() == leo_before).then_some((base, last));
        let since = r
            .leader_since_epoch()
            .expect("a replica that appended leads");
        (base, last, r.current_epoch(), since, duplicate)
    };
    handle.notify();
    let ok = ProduceResponse {
        base_offset: Some(base),
        count: Some(last - base + 1),
        leader_epoch: Some(epoch),
    };
    if acks == Acks::One {
        return Ok((ok, duplicate));
    }
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    match handle
        .wait_for(deadline, |r| r.acks_all_status(last, leader_since))
        .await
    {
        Some(Ok(())) => Ok((ok, duplicate)),
        Some(Err(e)) => Err(e),
        None => Err(ApiError::new(
            ErrorCode::RequestTimedOut,
            format!(
                "offsets {base}..={last} were appended but not committed within {timeout_ms} ms"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(values: Vec<String>, timeout_ms: Option<i64>) -> ProduceArgs {
        ProduceArgs {
            topic: "t".into(),
            partition: 0,
            values,
            acks: Acks::All,
            timeout_ms,
            producer: None,
        }
    }

    fn values(n: usize) -> Vec<String> {
        vec!["v".to_string(); n]
    }

    #[test]
    fn the_record_count_is_1_to_the_limit() {
        assert_eq!(
            check(&args(values(1), None)),
            Ok(DEFAULT_PRODUCE_TIMEOUT_MS)
        );
        let full = values(MAX_RECORDS_PER_PRODUCE);
        assert_eq!(check(&args(full, Some(5))), Ok(5));
        assert_eq!(check(&args(values(0), None)), Err(Refusal::NoRecords));
        let over = MAX_RECORDS_PER_PRODUCE + 1;
        assert_eq!(
            check(&args(values(over), None)),
            Err(Refusal::TooManyRecords(over))
        );
    }

    #[test]
    fn timeouts_outside_their_bounds_are_refused() {
        assert_eq!(check(&args(values(1), Some(0))), Ok(0));
        let max = Some(MAX_PRODUCE_TIMEOUT_MS);
        assert_eq!(
            check(&args(values(1), max)),
            Ok(MAX_PRODUCE_TIMEOUT_MS as u64)
        );
        for bad in [-5, MAX_PRODUCE_TIMEOUT_MS + 1, i64::MAX] {
            let refused = check(&args(values(1), Some(bad)));
            assert_eq!(refused, Err(Refusal::TimeoutOutOfRange(bad)));
        }
    }

    #[test]
    fn a_value_over_the_limit_is_refused_and_one_at_it_is_not() {
        let at = "x".repeat(MAX_VALUE_BYTES);
        assert!(check(&args(vec![at.clone()], None)).is_ok());
        let over = vec![at.clone(), format!("{at}y")];
        assert_eq!(
            check(&args(over, None)),
            Err(Refusal::ValueTooLarge(MAX_VALUE_BYTES + 1))
        );
    }

    /// The HTTP API's codes and messages, unchanged by moving the checks here.
    #[test]
    fn refusals_keep_the_http_codes_and_messages() {
        let e = ApiError::from(Refusal::TooManyRecords(100_001));
        assert_eq!(e.error, ErrorCode::InvalidRequest);
        assert_eq!(
            e.message,
            "a produce carries 1 to 100000 records (got 100001)"
        );
        let e = ApiError::from(Refusal::NoRecords);
        assert_eq!(e.message, "a produce carries 1 to 100000 records (got 0)");
        let e = ApiError::from(Refusal::TimeoutOutOfRange(-5));
        assert_eq!(
            (e.error, e.message.as_str()),
            (
                ErrorCode::InvalidRequest,
                "timeout_ms must be 0 to 300000 (got -5)"
            )
        );
        let e = ApiError::from(Refusal::ValueTooLarge(2_000_000));
        assert_eq!(
            (e.error, e.message.as_str()),
            (
                ErrorCode::MessageTooLarge,
                "a value of 2000000 bytes is over the limit"
            )
        );
    }

    /// Breaking several limits at once names the first in the HTTP API's order.
    #[test]
    fn the_first_broken_limit_is_the_one_named() {
        let big = vec!["x".repeat(MAX_VALUE_BYTES + 1)];
        assert_eq!(
            check(&args(big.clone(), Some(-1))),
            Err(Refusal::TimeoutOutOfRange(-1))
        );
        let mut many = values(MAX_RECORDS_PER_PRODUCE + 1);
        many[0] = big[0].clone();
        assert_eq!(
            check(&args(many, None)),
            Err(Refusal::TooManyRecords(MAX_RECORDS_PER_PRODUCE + 1))
        );
    }
}
