//! The Kafka APIs a broker serves, one function each: ApiVersions, Metadata, Produce, Fetch,
//! ListOffsets (earliest, latest) and InitProducerId. Each decodes its request with the
//! `kafka-protocol` crate (after [`super::guard`] has checked its shape), calls the broker's own
//! produce / fetch / metadata paths, and encodes the response at the request's version. This
//! module decides only the translation: versions served ([`SUPPORTED`]), Kafka error codes for
//! the node's errors ([`error_code`]) and for the broker's produce limits (`refusal_code`), and
//! how Kafka's byte limits map to record counts.
//! A request that cannot be served (an unknown API key, an unserved version other than
//! ApiVersions', a malformed body) closes the connection, as Kafka's SocketServer does.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::sync::Arc;

use super::{guard, records, Reply};
use crate::api::{Acks, ApiError, ErrorCode, Metadata};
use crate::broker::fetch::{leader_offsets, read_committed, CommittedRead};
use crate::broker::produce::{self, ProduceArgs, ProduceError, Refusal, MAX_PRODUCE_TIMEOUT_MS};
use crate::broker::{Broker, MAX_WAIT_MS};

/// Kafka error codes used here (Kafka's `org.apache.kafka.common.protocol.Errors`).
pub mod code {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    /// Kafka's `RECORD_LIST_TOO_LARGE` (`RecordBatchTooLargeException`): "the request included
    /// message batch larger than the configured segment size on the server". A produce is one
    /// batch, so a batch over `MAX_RECORDS_PER_PRODUCE` records is this.
    pub const RECORD_LIST_TOO_LARGE: i16 = 18;
    pub const NOT_ENOUGH_REPLICAS: i16 = 19;
    pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const INVALID_REQUEST: i16 = 42;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
}

/// The versions served, by API key: only versions implemented fully, all non-flexible except
/// ApiVersions v3 (whose request has no array for [`guard`] to walk).
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 8),
    (ApiKey::Fetch, 4, 11),
    (ApiKey::ListOffsets, 1, 5),
    (ApiKey::Metadata, 0, 8),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::InitProducerId, 0, 1),
];

/// Records read per partition for one Fetch before Kafka's byte limits trim them.
const MAX_FETCH_RECORDS_PER_PARTITION: usize = 10_000;
/// The bytes a record batch v2 spends per record beyond its value, roughly, for byte limits.
const RECORD_OVERHEAD_BYTES: usize = 16;

fn supported(api_key: i16) -> Option<(ApiKey, i16, i16)> {
    SUPPORTED
        .iter()
        .copied()
        .find(|(k, _, _)| *k as i16 == api_key)
}

/// Serves one request frame (header and body, without the size prefix).
pub async fn handle(broker: &Arc<Broker>, frame: Bytes) -> Reply {
    if frame.len() < 8 {
        return Reply::Close(format!("a request of {} bytes has no header", frame.len()));
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Some((key, min, max)) = supported(api_key) else {
        return Reply::Close(format!("API key {api_key} is not served"));
    };
    if !(min..=max).contains(&version) {
        if key == ApiKey::ApiVersions {
            // KIP-511: an unknown ApiVersions version is answered at v0 with our versions.
            let body = api_versions_body(code::UNSUPPORTED_VERSION);
            return encode(key, 0, correlation_id, &body);
        }
        return Reply::Close(format!("{key:?} v{version} is not served ({min}..={max})"));
    }
    let mut buf = frame.clone();
    if let Err(e) = RequestHeader::decode(&mut buf, key.request_header_version(version)) {
        return Reply::Close(format!("{key:?} v{version}: bad request header: {e}"));
    }
    if let Some(schema) = guard::schema(api_key, version) {
        if let Err(e) = guard::check(&buf, &schema) {
            return Reply::Close(format!("{key:?} v{version}: malformed body: {e}"));
        }
    }
    match dispatch(broker, key, version, &mut buf).await {
        Ok(Some(reply)) => encode_reply(key, version, correlation_id, reply),
        Ok(None) => Reply::Nothing,
        Err(e) => Reply::Close(format!("{key:?} v{version}: malformed body: {e}")),
    }
}

/// A response body, by API.
enum Body {
    ApiVersions(ApiVersionsResponse),
    Metadata(MetadataResponse),
    Produce(ProduceResponse),
    Fetch(FetchResponse),
    ListOffsets(ListOffsetsResponse),
    InitProducerId(InitProducerIdResponse),
}

async fn dispatch(
    broker: &Arc<Broker>,
    key: ApiKey,
    version: i16,
    buf: &mut Bytes,
) -> anyhow::Result<Option<Body>> {
    Ok(Some(match key {
        ApiKey::ApiVersions => {
            ApiVersionsRequest::decode(buf, version)?;
            Body::ApiVersions(api_versions_body(code::NONE))
        }
        ApiKey::Metadata => Body::Metadata(metadata(
            broker,
            MetadataRequest::decode(buf, version)?,
            version,
        )),
        ApiKey::Produce => match produce(broker, ProduceRequest::decode(buf, version)?).await {
            Some(resp) => Body::Produce(resp),
            None => return Ok(None),
        },
        ApiKey::Fetch => Body::Fetch(fetch(broker, FetchRequest::decode(buf, version)?).await),
        ApiKey::ListOffsets => Body::ListOffsets(list_offsets(
            broker,
            ListOffsetsRequest::decode(buf, version)?,
            version,
        )),
        ApiKey::InitProducerId => Body::InitProducerId(init_producer_id(
            broker,
            InitProducerIdRequest::decode(buf, version)?,
        )),
        other => anyhow::bail!("{other:?} is not served"),
    }))
}

fn encode_reply(key: ApiKey, version: i16, correlation_id: i32, body: Body) -> Reply {
    match body {
        Body::ApiVersions(b) => encode(key, version, correlation_id, &b),
        Body::Metadata(b) => encode(key, version, correlation_id, &b),
        Body::Produce(b) => encode(key, version, correlation_id, &b),
        Body::Fetch(b) => encode(key, version, correlation_id, &b),
        Body::ListOffsets(b) => encode(key, version, correlation_id, &b),
        Body::InitProducerId(b) => encode(key, version, correlation_id, &b),
    }
}

fn encode<T: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &T) -> Reply {
    let mut out = BytesMut::new();
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let result = header
        .encode(&mut out, key.response_header_version(version))
        .and_then(|()| body.encode(&mut out, version));
    match result {
        Ok(()) => Reply::Send(out),
        // Only a bug (a field this version cannot carry) gets here: say so and drop the client.
        Err(e) => Reply::Close(format!(
            "cannot encode the {key:?} v{version} response: {e:#}"
        )),
    }
}

/// The node's error as a Kafka error code.
pub fn error_code(e: &ApiError) -> i16 {
    use ErrorCode::*;
    match e.error {
        InvalidRequest | NotFound => code::INVALID_REQUEST,
        UnknownTopicOrPartition => code::UNKNOWN_TOPIC_OR_PARTITION,
        NotLeaderOrFollower => code::NOT_LEADER_OR_FOLLOWER,
        NotEnoughReplicas => code::NOT_ENOUGH_REPLICAS,
        NotEnoughReplicasAfterAppend => code::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        RequestTimedOut => code::REQUEST_TIMED_OUT,
        FencedLeaderEpoch => code::FENCED_LEADER_EPOCH,
        UnknownLeaderEpoch => code::UNKNOWN_LEADER_EPOCH,
        OffsetOutOfRange => code::OFFSET_OUT_OF_RANGE,
        MessageTooLarge => code::MESSAGE_TOO_LARGE,
        InvalidTopicException => code::INVALID_TOPIC_EXCEPTION,
        KafkaStorageError => code::KAFKA_STORAGE_ERROR,
        OutOfOrderSequenceNumber => code::OUT_OF_ORDER_SEQUENCE_NUMBER,
        InvalidProducerEpoch => code::INVALID_PRODUCER_EPOCH,
        InconsistentClusterId
        | TopicAlreadyExists
        | InvalidPartitions
        | InvalidReplicationFactor
        | InvalidConfig
        | InvalidUpdateVersion
        | IneligibleReplica
        | DuplicateBrokerRegistration
        | StaleBrokerEpoch => code::INVALID_REQUEST,
    }
}

fn api_versions_body(error_code: i16) -> ApiVersionsResponse {
    let api_keys = SUPPORTED
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn metadata(broker: &Arc<Broker>, req: MetadataRequest, version: i16) -> MetadataResponse {
    let md = broker.cached_metadata();
    let wanted: Option<Vec<String>> =
        req.topics
            .filter(|t| !(version == 0 && t.is_empty()))
            .map(|t| {
                t.into_iter()
                    .filter_map(|t| t.name.map(|n| n.0.to_string()))
                    .collect()
            });
    let topics = match wanted {
        None => md
            .topics
            .iter()
            .map(|t| metadata_topic(&md, &t.name))
            .collect(),
        Some(names) => names.iter().map(|n| metadata_topic(&md, n)).collect(),
    };
    MetadataResponse::default()
        .with_brokers(metadata_brokers(&md))
        .with_cluster_id(Some(str_bytes(&md.cluster_id)))
        .with_controller_id(BrokerId(-1))
        .with_topics(topics)
}

/// Live brokers that advertise a Kafka listener (Kafka lists only unfenced brokers).
fn metadata_brokers(md: &Metadata) -> Vec<MetadataResponseBroker> {
    md.brokers
        .iter()
        .filter(|b| b.alive)
        .filter_map(|b| {
            let addr = b.kafka_address.as_deref()?;
            let (host, port) = addr.rsplit_once(':')?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.id as i32))
                    .with_host(str_bytes(host))
                    .with_port(port.parse().ok()?),
            )
        })
        .collect()
}

fn metadata_topic(md: &Metadata, name: &str) -> MetadataResponseTopic {
    let topic = MetadataResponseTopic::default().with_name(Some(TopicName(str_bytes(name))));
    let Some(t) = md.topics.iter().find(|t| t.name == name) else {
        return topic.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION);
    };
    let alive = |id: &u32| md.brokers.iter().any(|b| b.id == *id && b.alive);
    let ids = |v: &[u32]| v.iter().map(|&id| BrokerId(id as i32)).collect::<Vec<_>>();
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            let offline: Vec<u32> = p.replicas.iter().copied().filter(|id| !alive(id)).collect();
            MetadataResponsePartition::default()
                .with_error_code(match p.leader {
                    Some(_) => code::NONE,
                    None => code::LEADER_NOT_AVAILABLE,
                })
                .with_partition_index(p.partition as i32)
                .with_leader_id(BrokerId(p.leader.map_or(-1, |l| l as i32)))
                .with_leader_epoch(p.leader_epoch as i32)
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr))
                .with_offline_replicas(ids(&offline))
        })
        .collect();
    topic.with_partitions(partitions)
}

/// Produce: each partition's batches become one node batch through the broker's produce path;
/// partitions wait for their acks concurrently. `None` for acks=0: Kafka sends no response.
async fn produce(broker: &Arc<Broker>, req: ProduceRequest) -> Option<ProduceResponse> {
    let acks = match req.acks {
        0 => Some(Acks::Zero),
        1 => Some(Acks::One),
        -1 => Some(Acks::All),
        _ => None,
    };
    // A Kafka broker refuses no ProduceRequest timeout, so an out-of-range one is brought into
    // the produce path's bounds rather than refused as the HTTP API does.
    let timeout_ms = i64::from(req.timeout_ms).clamp(0, MAX_PRODUCE_TIMEOUT_MS);
    let mut pending = Vec::new();
    for topic in req.topic_data {
        let name = topic.name.0.to_string();
        for p in topic.partition_data {
            let (broker, name) = (broker.clone(), name.clone());
            pending.push((
                name.clone(),
                p.index,
                tokio::spawn(async move {
                    produce_partition(&broker, &name, p.index, p.records, acks, timeout_ms).await
                }),
            ));
        }
    }
    let mut topics: Vec<TopicProduceResponse> = Vec::new();
    for (name, index, task) in pending {
        let partition = task.await.unwrap_or_else(|e| {
            failed_partition(code::INVALID_REQUEST, format!("produce task failed: {e}"))
        });
        let partition = partition.with_index(index);
        match topics.iter_mut().find(|t| t.name.0.as_str() == name) {
            Some(t) => t.partition_responses.push(partition),
            None => topics.push(
                TopicProduceResponse::default()
                    .with_name(TopicName(str_bytes(&name)))
                    .with_partition_responses(vec![partition]),
            ),
        }
    }
    (acks != Some(Acks::Zero)).then(|| ProduceResponse::default().with_responses(topics))
}

fn failed_partition(error_code: i16, message: String) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_error_code(error_code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_error_message(Some(StrBytes::from_string(message)))
}

async fn produce_partition(
    broker: &Arc<Broker>,
    topic: &str,
    index: i32,
    records: Option<Bytes>,
    acks: Option<Acks>,
    timeout_ms: i64,
) -> PartitionProduceResponse {
    let Some(acks) = acks else {
        return failed_partition(
            code::INVALID_REQUIRED_ACKS,
            "acks must be 0, 1 or -1".into(),
        );
    };
    let Ok(partition) = u32::try_from(index) else {
        let message = format!("partition {index} does not exist");
        return failed_partition(code::UNKNOWN_TOPIC_OR_PARTITION, message);
    };
    let (values, producer) = match records::produce_from_batches(&records.unwrap_or_default()) {
        Ok(produced) => produced,
        Err(refused) => return failed_partition(refused.code, refused.message),
    };
    let args = ProduceArgs {
        topic: topic.to_string(),
        partition,
        values,
        acks,
        timeout_ms: Some(timeout_ms),
        producer,
    };
    match produce::produce(broker, args).await {
        Ok(resp) => PartitionProduceResponse::default()
            .with_base_offset(resp.base_offset.map_or(-1, |o| o as i64))
            .with_log_append_time_ms(-1)
            .with_log_start_offset(0),
        Err(ProduceError::Refused(refusal)) => {
            failed_partition(refusal_code(&refusal), refusal.to_string())
        }
        Err(ProduceError::Failed(e)) => {
            // The wire has no "appended" flag: the message carries it (Produce v8+), so a client
            // can tell a deposed leader's indefinite answer from a definite refusal.
            let message = if e.appended {
                format!("appended: {}", e.message)
            } else {
                e.message.clone()
            };
            failed_partition(error_code(&e), message)
        }
    }
}

/// A produce limit's Kafka error code: the one a Kafka broker answers for the same problem.
fn refusal_code(refusal: &Refusal) -> i16 {
    match refusal {
        Refusal::TooManyRecords(_) => code::RECORD_LIST_TOO_LARGE,
        Refusal::ValueTooLarge(_) => code::MESSAGE_TOO_LARGE,
        // `records::values_from_batches` refuses an empty produce first; this is its code too.
        Refusal::NoRecords => records::INVALID_RECORD,
        // Unreachable while `produce` above clamps the timeout, but a code all the same.
        Refusal::TimeoutOutOfRange(_) => code::INVALID_REQUEST,
    }
}

/// Fetch: sessionless (every request is a full fetch; KIP-227 sessions are never created), only
/// records below HW. With nothing to return it long-polls up to `max_wait_ms` on the partitions
/// asked for, then answers.
async fn fetch(broker: &Arc<Broker>, req: FetchRequest) -> FetchResponse {
    if req.session_id != 0 {
        return FetchResponse::default().with_error_code(code::FETCH_SESSION_ID_NOT_FOUND);
    }
    let wanted: Vec<(String, i32, i64, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            let name = t.topic.0.to_string();
            t.partitions.iter().map(move |p| {
                (
                    name.clone(),
                    p.partition,
                    p.fetch_offset,
                    p.partition_max_bytes,
                )
            })
        })
        .collect();
    let max_wait_ms = (req.max_wait_ms.max(0) as u64).min(MAX_WAIT_MS);
    let mut answers = fetch_all(broker, &wanted, 0).await;
    let empty = answers
        .iter()
        .all(|a| matches!(a, Ok(r) if r.records.is_empty()));
    if empty && req.min_bytes > 0 && max_wait_ms > 0 && !wanted.is_empty() {
        wait_for_any(broker, &wanted, max_wait_ms).await;
        answers = fetch_all(broker, &wanted, 0).await;
    }
    let mut budget_bytes = req.max_bytes.max(0) as usize;
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    for ((name, index, _, partition_max_bytes), answer) in wanted.into_iter().zip(answers) {
        let data = partition_data(index, answer, partition_max_bytes, &mut budget_bytes);
        match topics.iter_mut().find(|t| t.topic.0.as_str() == name) {
            Some(t) => t.partitions.push(data),
            None => topics.push(
                FetchableTopicResponse::default()
                    .with_topic(TopicName(str_bytes(&name)))
                    .with_partitions(vec![data]),
            ),
        }
    }
    FetchResponse::default().with_responses(topics)
}

type Read = Result<CommittedRead, ApiError>;

async fn fetch_all(
    broker: &Arc<Broker>,
    wanted: &[(String, i32, i64, i32)],
    wait_ms: u64,
) -> Vec<Read> {
    let mut out = Vec::with_capacity(wanted.len());
    for (topic, index, offset, _) in wanted {
        out.push(fetch_one(broker, topic, *index, *offset, wait_ms).await);
    }
    out
}

async fn fetch_one(
    broker: &Arc<Broker>,
    topic: &str,
    index: i32,
    offset: i64,
    wait_ms: u64,
) -> Read {
    let partition = u32::try_from(index).map_err(|_| ApiError::unknown_partition(topic, 0))?;
    let offset = u64::try_from(offset).map_err(|_| {
        ApiError::new(
            ErrorCode::OffsetOutOfRange,
            format!("offset {offset} is negative"),
        )
    })?;
    read_committed(
        broker,
        topic,
        partition,
        offset,
        MAX_FETCH_RECORDS_PER_PARTITION,
        wait_ms,
    )
    .await
}

/// Long-polls every wanted partition at once and returns when the first one answers (records,
/// an error, or its wait ran out).
async fn wait_for_any(broker: &Arc<Broker>, wanted: &[(String, i32, i64, i32)], wait_ms: u64) {
    let mut waits = tokio::task::JoinSet::new();
    for (topic, index, offset, _) in wanted.iter().cloned() {
        let broker = broker.clone();
        waits.spawn(async move {
            fetch_one(&broker, &topic, index, offset, wait_ms)
                .await
                .is_ok()
        });
    }
    waits.join_next().await;
    waits.abort_all();
}

/// One partition's answer, its records trimmed to `partition_max_bytes` and the request's
/// remaining `budget_bytes` (always at least one record when the budget allows none, as KIP-74
/// lets a consumer make progress past a large record).
fn partition_data(
    index: i32,
    answer: Read,
    partition_max_bytes: i32,
    budget_bytes: &mut usize,
) -> PartitionData {
    let data = PartitionData::default()
        .with_partition_index(index)
        .with_aborted_transactions(Some(vec![]))
        .with_preferred_read_replica(BrokerId(-1));
    let read = match answer {
        Ok(read) => read,
        Err(e) => {
            return data
                .with_error_code(error_code(&e))
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_records(Some(Bytes::new()))
        }
    };
    let limit = (partition_max_bytes.max(0) as usize).min(*budget_bytes);
    let mut used = 0usize;
    let keep = read
        .records
        .iter()
        .take_while(|r| {
            used += r.value.len() + RECORD_OVERHEAD_BYTES;
            used <= limit
        })
        .count()
        .max(usize::from(!read.records.is_empty() && *budget_bytes > 0));
    *budget_bytes = budget_bytes.saturating_sub(used);
    let hw = read.high_watermark as i64;
    let batches = records::batches_from_records(&read.records[..keep]);
    let data = data
        .with_high_watermark(hw)
        .with_last_stable_offset(hw)
        .with_log_start_offset(0);
    match batches {
        Ok(bytes) => data.with_records(Some(bytes)),
        Err(e) => {
            tracing::error!("cannot build record batches: {e:#}");
            data.with_error_code(code::KAFKA_STORAGE_ERROR)
                .with_records(Some(Bytes::new()))
        }
    }
}

/// ListOffsets: -2 (earliest) is the log start, 0: the log is never trimmed; -1 (latest) is HW,
/// which is also the last stable offset as there are no transactions. Timestamp lookups are
/// refused with INVALID_REQUEST.
fn list_offsets(
    broker: &Arc<Broker>,
    req: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| list_offset(broker, &name, p.partition_index, p.timestamp, version))
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

fn list_offset(
    broker: &Arc<Broker>,
    topic: &str,
    index: i32,
    timestamp: i64,
    version: i16,
) -> ListOffsetsPartitionResponse {
    let resp = ListOffsetsPartitionResponse::default()
        .with_partition_index(index)
        .with_timestamp(-1);
    let found = u32::try_from(index)
        .map_err(|_| ApiError::unknown_partition(topic, 0))
        .and_then(|partition| leader_offsets(broker, topic, partition));
    let (hw, epoch) = match found {
        Ok(found) => found,
        Err(e) => return resp.with_error_code(error_code(&e)).with_offset(-1),
    };
    // The leader epoch field exists from v4 on; the codec refuses it set on older versions.
    let resp = if version >= 4 {
        resp.with_leader_epoch(epoch as i32)
    } else {
        resp
    };
    match timestamp {
        -2 => resp.with_offset(0),
        -1 => resp.with_offset(hw as i64),
        _ => resp
            .with_error_code(code::INVALID_REQUEST)
            .with_offset(-1)
            .with_leader_epoch(-1),
    }
}

/// InitProducerId: a new producer id and epoch 0 for a producer without a transactional id,
/// whatever id and epoch it sends, as Kafka's `TransactionCoordinator.handleInitProducerId`
/// does ("if the transactional id is null, then always blindly accept the request and return a
/// new producerId"). The leaders dedup and order that producer's batches by it
/// (`storage/producer_state.rs`). Transactional ids are refused.
fn init_producer_id(broker: &Arc<Broker>, req: InitProducerIdRequest) -> InitProducerIdResponse {
    if req
        .transactional_id
        .as_ref()
        .is_some_and(|t| !t.0.is_empty())
    {
        return InitProducerIdResponse::default()
            .with_error_code(code::INVALID_REQUEST)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    if !broker.config.version.rules().idempotent_producer {
        // Kafka 0.10.2 has no InitProducerId (KIP-98 came in 0.11.0).
        return InitProducerIdResponse::default()
            .with_error_code(code::UNSUPPORTED_VERSION)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    InitProducerIdResponse::default()
        .with_producer_id(ProducerId(broker.new_producer_id()))
        .with_producer_epoch(0)
}
