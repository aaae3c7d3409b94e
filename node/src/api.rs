//! The node's HTTP/JSON contract: request and response bodies shared by the controller, the
//! broker and their internal endpoints, and the error type every handler answers with
//! (`{"error":"CODE","message":"..."}`, codes named as in Kafka). docs/node-api.md describes it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Kafka's error codes, as the node uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    InvalidRequest,
    UnknownTopicOrPartition,
    NotLeaderOrFollower,
    NotEnoughReplicas,
    NotEnoughReplicasAfterAppend,
    RequestTimedOut,
    FencedLeaderEpoch,
    UnknownLeaderEpoch,
    OffsetOutOfRange,
    InconsistentClusterId,
    TopicAlreadyExists,
    InvalidTopicException,
    InvalidPartitions,
    InvalidReplicationFactor,
    InvalidConfig,
    InvalidUpdateVersion,
    IneligibleReplica,
    MessageTooLarge,
    DuplicateBrokerRegistration,
    /// A request carried a broker epoch older than the broker's registration (KIP-903).
    StaleBrokerEpoch,
    NotFound,
    KafkaStorageError,
    /// An idempotent producer's batch does not follow its last one (Kafka error 45).
    OutOfOrderSequenceNumber,
    /// An idempotent producer's epoch is older than the partition has seen (Kafka error 47).
    InvalidProducerEpoch,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            InvalidRequest
            | InvalidTopicException
            | InvalidPartitions
            | InvalidReplicationFactor
            | InvalidConfig => StatusCode::BAD_REQUEST,
            UnknownTopicOrPartition | NotFound => StatusCode::NOT_FOUND,
            NotLeaderOrFollower => StatusCode::MISDIRECTED_REQUEST,
            NotEnoughReplicas | NotEnoughReplicasAfterAppend => StatusCode::SERVICE_UNAVAILABLE,
            RequestTimedOut => StatusCode::GATEWAY_TIMEOUT,
            FencedLeaderEpoch
            | UnknownLeaderEpoch
            | TopicAlreadyExists
            | InvalidUpdateVersion
            | IneligibleReplica
            | DuplicateBrokerRegistration
            | StaleBrokerEpoch
            | OutOfOrderSequenceNumber
            | InvalidProducerEpoch => StatusCode::CONFLICT,
            OffsetOutOfRange => StatusCode::RANGE_NOT_SATISFIABLE,
            InconsistentClusterId => StatusCode::FORBIDDEN,
            MessageTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            KafkaStorageError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn as_str(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

/// An error answer. `leader` names the current leader on NOT_LEADER_OR_FOLLOWER when known;
/// `appended` is true when the records were appended before the request failed (the write's fate
/// is then unknown, even though the code is NOT_LEADER_OR_FOLLOWER).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{error:?}: {message}")]
pub struct ApiError {
    pub error: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_epoch: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_end_offset: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub appended: bool,
}

impl ApiError {
    pub fn new(error: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            error,
            message: message.into(),
            leader: None,
            leader_epoch: None,
            log_end_offset: None,
            appended: false,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::InvalidRequest, message)
    }

    pub fn unknown_partition(topic: &str, partition: u32) -> Self {
        ApiError::new(
            ErrorCode::UnknownTopicOrPartition,
            format!("this node hosts no partition {topic}/{partition}"),
        )
    }

    pub fn storage(e: std::io::Error) -> Self {
        ApiError::new(ErrorCode::KafkaStorageError, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.error.status(), axum::Json(self)).into_response()
    }
}

pub type ApiResult<T> = Result<axum::Json<T>, ApiError>;

/// Parses a JSON body, turning every failure into an INVALID_REQUEST that names the problem.
pub fn parse_body<T: serde::de::DeserializeOwned>(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|r| {
        let code = if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ErrorCode::MessageTooLarge
        } else {
            ErrorCode::InvalidRequest
        };
        ApiError::new(
            code,
            format!("could not read the request body: {}", r.body_text()),
        )
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid(format!("malformed JSON body: {e}")))
}

/// Kafka's topic-name rule: `[a-zA-Z0-9._-]`, 1 to 249 characters, and not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), ApiError> {
    let bad = |why: String| Err(ApiError::new(ErrorCode::InvalidTopicException, why));
    if name.is_empty() || name.len() > 249 {
        return bad(format!(
            "topic name must be 1 to 249 characters (got {})",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return bad(format!("topic name {name:?} is not allowed"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c)))
    {
        return bad(format!(
            "topic name {name:?} has {c:?}; only [a-zA-Z0-9._-] are allowed"
        ));
    }
    Ok(())
}

// ---- controller ----

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTopicRequest {
    pub name: String,
    pub partitions: i64,
    pub replication_factor: i64,
    #[serde(default)]
    pub configs: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfigs {
    #[serde(rename = "min.insync.replicas")]
    pub min_insync_replicas: u32,
    #[serde(rename = "unclean.leader.election.enable")]
    pub unclean_leader_election_enable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMetadata {
    pub partition: u32,
    pub leader: Option<u32>,
    pub leader_epoch: u32,
    pub partition_epoch: u32,
    pub isr: Vec<u32>,
    pub replicas: Vec<u32>,
    /// True when the current leader was elected uncleanly (from outside the ISR).
    #[serde(default)]
    pub unclean: bool,
    /// Eligible Leader Replicas (KIP-966, Kafka 4.1): replicas that left the ISR while it was
    /// below min.insync.replicas and still hold every committed record; empty without ELR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elr: Vec<u32>,
    /// KIP-966's `LastKnownElr`, in its last-known-leader mode: the leader the partition had
    /// when its ISR and ELR became empty, the last resort of a leaderless partition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_known_elr: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMetadata {
    pub name: String,
    pub configs: TopicConfigs,
    pub partitions: Vec<PartitionMetadata>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerStatus {
    pub id: u32,
    pub alive: bool,
    /// The broker epoch of its current registration (KIP-903): assigned by the controller,
    /// larger for every new registration. Absent for a broker that never registered, and in
    /// Kafka versions without broker epochs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// In controlled shutdown (KIP-841): leaves every ISR and may not lead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shutting_down: bool,
    /// The broker's advertised Kafka listener (`--kafka-advertise`), when it has one: what a
    /// Kafka Metadata response tells clients to connect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Metadata {
    pub cluster_id: String,
    /// Bumped by the controller on every change; brokers send the one they have.
    pub metadata_version: u64,
    pub brokers: Vec<BrokerStatus>,
    pub topics: Vec<TopicMetadata>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    pub cluster_id: String,
    pub broker_id: u32,
    /// Random per broker process start. A new incarnation means the broker restarted.
    pub incarnation: u64,
    /// In both protocols a new incarnation is refused with DUPLICATE_BROKER_REGISTRATION while
    /// the previous incarnation's session is valid, and once that session has expired the
    /// previous incarnation is fenced (it leaves every ISR). True (the current protocol): the new
    /// incarnation then registers fenced, as KRaft does, until a heartbeat shows it has caught
    /// up on metadata. False (legacy-hw, ZooKeeper-era): it is live as soon as it registers.
    /// (Called `fence_previous_incarnation` before; that name is still accepted.)
    #[serde(alias = "fence_previous_incarnation")]
    pub registers_fenced: bool,
    pub metadata_version: u64,
    /// The broker's advertised Kafka listener (HOST:PORT), absent without `--kafka-listen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_address: Option<String>,
    /// The broker wants to stop (SIGTERM): a controlled shutdown, as KRaft's `WantShutDown`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub want_shutdown: bool,
    /// The broker epoch the broker was given at registration, once it knows it: a heartbeat
    /// with an older one is refused with STALE_BROKER_EPOCH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_epoch: Option<u64>,
    /// The broker epoch this broker's previous process had when it last stopped cleanly, read
    /// from its clean-shutdown marker (KIP-966's `PreviousBrokerEpoch`, KAFKA-15582); absent
    /// after an unclean stop or on first start. Sent until the broker knows its new epoch. A
    /// new incarnation whose value is not its previous registration's epoch counts as an
    /// unclean shutdown (with Kafka 4.1's rules it leaves every ISR and ELR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_broker_epoch: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    pub metadata_version: u64,
    /// Present when the broker's `metadata_version` is not the controller's.
    pub metadata: Option<Metadata>,
    /// The epoch of this broker's registration (KIP-903); absent without broker epochs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_epoch: Option<u64>,
    /// The broker may stop now: its controlled shutdown is done (KRaft's `ShouldShutDown`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub should_shut_down: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlterPartitionRequest {
    pub cluster_id: String,
    pub broker_id: u32,
    pub topic: String,
    pub partition: u32,
    pub leader_epoch: u32,
    pub partition_epoch: u32,
    pub new_isr: Vec<u32>,
    /// The broker epoch the leader knows for each member of `new_isr` (its own, and each
    /// follower's from its last fetch; absent when unknown), as AlterPartition v3's
    /// `NewIsrWithEpochs`: the controller refuses a member whose epoch is not its registration's.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub broker_epochs: std::collections::BTreeMap<u32, u64>,
}

// ---- broker ----

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceRequest {
    pub topic: String,
    pub partition: i64,
    pub acks: serde_json::Value,
    #[serde(default)]
    pub timeout_ms: Option<i64>,
    pub records: Vec<ProduceRecord>,
    /// An idempotent producer's id (`POST /v1/init-producer-id`), epoch and the first record's
    /// sequence: all three or none.
    #[serde(default)]
    pub producer_id: Option<i64>,
    #[serde(default)]
    pub producer_epoch: Option<i64>,
    #[serde(default)]
    pub base_sequence: Option<i64>,
}

/// `POST /v1/init-producer-id`'s answer: a new idempotent producer's id and epoch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InitProducerIdResponse {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceRecord {
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// acks=0: answered before the append.
    Zero,
    /// acks=1: answered after the leader's append.
    One,
    /// acks=all (-1): answered once HW passes the records.
    All,
}

impl Acks {
    /// Accepts Kafka's spellings: "all", "-1", -1, "1", 1, "0", 0.
    pub fn parse(value: &serde_json::Value) -> Result<Acks, ApiError> {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            other => other.to_string(),
        };
        match text.as_str() {
            "all" | "-1" => Ok(Acks::All),
            "1" => Ok(Acks::One),
            "0" => Ok(Acks::Zero),
            _ => Err(ApiError::invalid(format!(
                "acks must be 0, 1, -1 or \"all\" (got {text})"
            ))),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProduceResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_epoch: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchedRecord {
    pub offset: u64,
    pub leader_epoch: u32,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchResponse {
    pub records: Vec<FetchedRecord>,
    pub high_watermark: u64,
    pub leader_epoch: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaFetchRequest {
    pub cluster_id: String,
    pub replica_id: u32,
    pub topic: String,
    pub partition: u32,
    pub fetch_offset: u64,
    /// The epoch of the follower's last record (KIP-320); absent in 0.10.2.
    pub last_fetched_epoch: Option<u32>,
    /// The follower's broker epoch (FetchRequest v15 `ReplicaState.ReplicaEpoch`, KIP-903);
    /// absent when it does not know it yet or the Kafka version has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_epoch: Option<u64>,
    pub current_leader_epoch: u32,
    pub max_records: usize,
    /// Bytes of batches to answer with at most (always at least one batch): Kafka's
    /// `replica.fetch.max.bytes`, 1 MiB by default, sent per partition in the FetchRequest.
    #[serde(default = "default_replica_fetch_max_bytes")]
    pub max_bytes: u64,
    pub max_wait_ms: u64,
}

fn default_replica_fetch_max_bytes() -> u64 {
    REPLICA_FETCH_MAX_BYTES
}

/// Kafka's `replica.fetch.max.bytes` default (1 MiB): what a follower asks for per fetch.
pub const REPLICA_FETCH_MAX_BYTES: u64 = 1 << 20;

/// Where the follower's log diverged: the largest epoch ≤ its last fetched epoch the leader knows,
/// and where that epoch ends on the leader. The follower truncates there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DivergingEpoch {
    pub epoch: u32,
    pub end_offset: u64,
}

/// A leader's answer to a follower's fetch. On the wire (content type
/// [`ReplicaFetchResponse::CONTENT_TYPE`]) it is one JSON line, [`ReplicaFetchHeader`], and then
/// the batch frames exactly as they lie in the leader's segments: the leader sends them without
/// decoding a record and the follower checks each frame's CRC and appends it as it is, as Kafka
/// moves record batches from log to socket to log.
#[derive(Debug, Clone)]
pub struct ReplicaFetchResponse {
    /// Whole batches: a fetch never splits one.
    pub frames: crate::storage::Frames,
    pub high_watermark: u64,
    pub log_end_offset: u64,
    pub diverging_epoch: Option<DivergingEpoch>,
}

/// The first line of a replica-fetch answer: everything but the frames, and how many bytes of
/// frames follow it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaFetchHeader {
    pub high_watermark: u64,
    pub log_end_offset: u64,
    pub diverging_epoch: Option<DivergingEpoch>,
    pub frames_bytes: u64,
}

impl ReplicaFetchResponse {
    pub const CONTENT_TYPE: &'static str = "application/x-faultline-replica-fetch";

    /// The answer's body: the header line, then the frames.
    pub fn encode(&self) -> Vec<u8> {
        let header = ReplicaFetchHeader {
            high_watermark: self.high_watermark,
            log_end_offset: self.log_end_offset,
            diverging_epoch: self.diverging_epoch,
            frames_bytes: self.frames.bytes().len() as u64,
        };
        let mut body = serde_json::to_vec(&header).expect("a header serializes");
        body.push(b'\n');
        body.extend_from_slice(self.frames.bytes());
        body
    }

    /// Reads an answer's body, checking every frame (CRC, record count, values); the error says
    /// what is wrong with it.
    pub fn decode(body: bytes::Bytes) -> Result<ReplicaFetchResponse, String> {
        let line_end = body
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("no header line")?;
        let header: ReplicaFetchHeader =
            serde_json::from_slice(&body[..line_end]).map_err(|e| format!("header: {e}"))?;
        let frames = body.slice(line_end + 1..);
        if frames.len() as u64 != header.frames_bytes {
            return Err(format!(
                "{} bytes of frames where the header says {}",
                frames.len(),
                header.frames_bytes
            ));
        }
        Ok(ReplicaFetchResponse {
            frames: crate::storage::Frames::parse(frames)?,
            high_watermark: header.high_watermark,
            log_end_offset: header.log_end_offset,
            diverging_epoch: header.diverging_epoch,
        })
    }
}

impl IntoResponse for ReplicaFetchResponse {
    fn into_response(self) -> Response {
        (
            [(axum::http::header::CONTENT_TYPE, Self::CONTENT_TYPE)],
            self.encode(),
        )
            .into_response()
    }
}

/// One partition's replica on this broker, as `/v1/state` shows it (one entry of `partitions`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicaState {
    pub topic: String,
    pub partition: u32,
    pub role: String,
    pub leader: Option<u32>,
    pub leader_epoch: u32,
    pub partition_epoch: u32,
    pub log_end_offset: u64,
    pub high_watermark: u64,
    pub isr: Vec<u32>,
    /// Eligible Leader Replicas from the controller's metadata (KIP-966).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elr: Vec<u32>,
    pub replicas: Vec<u32>,
    /// The ISR the leader computes HW over while an AlterPartition is in flight.
    pub maximal_isr: Vec<u32>,
    pub leader_epoch_start_offset: Option<u64>,
    pub epochs: Vec<crate::storage::EpochEntry>,
    /// On a leader: what it knows of each follower.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub followers: Vec<FollowerView>,
}

/// A leader's view of one follower, for `/v1/state`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FollowerView {
    pub id: u32,
    pub log_end_offset: Option<u64>,
    pub last_caught_up_ms: u64,
    pub last_fetch_ms: u64,
    /// Fetches from this follower being answered right now (long-polls parked included).
    pub fetches_in_flight: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrokerState {
    pub broker_id: u32,
    pub cluster_id: String,
    pub incarnation: u64,
    /// The Kafka version whose rules this broker follows (`4.1`, `3.7`, `0.10.2`).
    pub kafka_version: String,
    pub registered: bool,
    pub partitions: Vec<ReplicaState>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_accept_kafkas_spellings_only() {
        use serde_json::json;
        assert_eq!(Acks::parse(&json!("all")).unwrap(), Acks::All);
        assert_eq!(Acks::parse(&json!(-1)).unwrap(), Acks::All);
        assert_eq!(Acks::parse(&json!("1")).unwrap(), Acks::One);
        assert_eq!(Acks::parse(&json!(0)).unwrap(), Acks::Zero);
        assert!(Acks::parse(&json!(2)).is_err());
        assert!(Acks::parse(&json!("ALL")).is_err());
        assert!(Acks::parse(&json!(null)).is_err());
    }

    #[test]
    fn topic_names_follow_kafkas_rule() {
        assert!(validate_topic_name("orders.v2_x-1").is_ok());
        for bad in ["", ".", "..", "../etc", "a/b", "tópico", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn a_replica_fetch_answer_round_trips_and_a_short_body_is_named() {
        use crate::storage::{Frames, RecordBatch};
        let resp = ReplicaFetchResponse {
            frames: Frames::from_batches(&[RecordBatch {
                base_offset: 4,
                leader_epoch: 2,
                timestamp_ms: 9,
                values: vec!["a\nb".into(), "{\"x\":1}".into()],
                producer: None,
            }]),
            high_watermark: 3,
            log_end_offset: 6,
            diverging_epoch: Some(DivergingEpoch {
                epoch: 1,
                end_offset: 4,
            }),
        };
        let wire = resp.encode();
        let back = ReplicaFetchResponse::decode(wire.clone().into()).unwrap();
        assert_eq!(back.frames, resp.frames);
        assert_eq!(
            (
                back.high_watermark,
                back.log_end_offset,
                back.diverging_epoch
            ),
            (3, 6, resp.diverging_epoch)
        );
        let err = ReplicaFetchResponse::decode(wire[..wire.len() - 1].to_vec().into()).unwrap_err();
        assert!(err.contains("where the header says"), "{err}");
        assert!(ReplicaFetchResponse::decode(b"{}".to_vec().into())
            .is_err_and(|e| e.contains("no header line")));
    }

    #[test]
    fn errors_serialize_with_kafka_codes() {
        let e = ApiError::new(ErrorCode::NotEnoughReplicasAfterAppend, "isr 1 < 2");
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["error"], "NOT_ENOUGH_REPLICAS_AFTER_APPEND");
        assert_eq!(e.error.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
