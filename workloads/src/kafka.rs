//! The workload's Kafka client (`faultline test --client kafka`): produces one record per send
//! (Produce v8, record batch v2, with the producer id, epoch and sequence in the batch header
//! when idempotent), asks for producer ids (InitProducerId in the newest version both speak, v1 to v4, by
//! ApiVersions) and polls (Fetch v11) over the
//! Kafka wire protocol, encoded by
//! the `kafka-protocol` crate, to a broker's advertised Kafka listener, which in a run is the harness's link proxy, so
//! every fault applies to it as to the HTTP client. It answers with the HTTP client's types
//! ([`ProduceResponse`], [`ClientError`] named by Kafka error code), so the workload records
//! the same history and classifies outcomes with the same table. It keeps a small pool of idle
//! connections per broker; a connection that saw any transport error is dropped. It does not
//! discover leaders itself: the workload routes by its leader cache, as for HTTP, which asks
//! [`KafkaClient::metadata`] when the system under test has no HTTP API (`--system`). The
//! harness also uses [`KafkaClient::metadata`] and [`KafkaClient::create_topic`] as its admin
//! calls to such a system.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, CreateTopicsRequest,
    CreateTopicsResponse, FetchRequest as KafkaFetchRequest, FetchResponse as KafkaFetchResponse,
    InitProducerIdRequest, InitProducerIdResponse, MetadataRequest, MetadataResponse,
    ProduceRequest, ProduceResponse as KafkaProduceResponse, ProducerId, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::{
    BrokerInfo, ClientError, FetchRequest, FetchResponse, FetchedRecord, Metadata,
    PartitionMetadata, Produce, ProduceResponse, ProducerIdentity, TopicMetadata,
};
use faultline_checker::history::Acks;

/// The Produce version this client speaks (the newest the node serves; it carries
/// `error_message`, where the node says a failed acks=all write was appended).
pub const PRODUCE_VERSION: i16 = 8;
/// The Fetch version this client speaks (the newest the node serves).
pub const FETCH_VERSION: i16 = 11;
/// The Metadata version this client speaks: the newest non-flexible one with leader epochs
/// (v7), which faultline-node, Kafka and Tansu all serve.
pub const METADATA_VERSION: i16 = 7;
/// The CreateTopics version this client speaks (the newest non-flexible one).
pub const CREATE_TOPICS_VERSION: i16 = 4;
/// The InitProducerId version this client asks with when the broker's ApiVersions does not say
/// (the newest non-flexible one; faultline-node serves v0–v1).
pub const INIT_PRODUCER_ID_VERSION: i16 = 1;
/// The newest InitProducerId version this client speaks (v3 added `producer_id` and
/// `producer_epoch`, -1 and -1 for a new producer; v4 is flexible).
pub const INIT_PRODUCER_ID_MAX_VERSION: i16 = 4;
/// The transaction timeout an InitProducerId without a transactional id names (Kafka's
/// producer sends its `transaction.timeout.ms`, 60 s by default; brokers ignore it then).
const TRANSACTION_TIMEOUT_MS: i32 = 60_000;
/// Kafka's TOPIC_ALREADY_EXISTS: a retried CreateTopics whose first attempt succeeded.
const TOPIC_ALREADY_EXISTS: i16 = 36;
/// A poll's byte budget for its one partition (the broker trims by bytes, not records).
const FETCH_MAX_BYTES: i32 = 1 << 20;
/// Idle connections kept per broker address.
const MAX_IDLE_PER_BROKER: usize = 16;
/// The largest response frame accepted.
const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// Kafka's error codes by number, as the node's HTTP API names them.
pub fn error_name(code: i16) -> String {
    let name = match code {
        1 => "OFFSET_OUT_OF_RANGE",
        2 => "CORRUPT_MESSAGE",
        3 => "UNKNOWN_TOPIC_OR_PARTITION",
        5 => "LEADER_NOT_AVAILABLE",
        6 => "NOT_LEADER_OR_FOLLOWER",
        7 => "REQUEST_TIMED_OUT",
        10 => "MESSAGE_TOO_LARGE",
        13 => "NETWORK_EXCEPTION",
        17 => "INVALID_TOPIC_EXCEPTION",
        19 => "NOT_ENOUGH_REPLICAS",
        20 => "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
        21 => "INVALID_REQUIRED_ACKS",
        42 => "INVALID_REQUEST",
        45 => "OUT_OF_ORDER_SEQUENCE_NUMBER",
        46 => "DUPLICATE_SEQUENCE_NUMBER",
        47 => "INVALID_PRODUCER_EPOCH",
        56 => "KAFKA_STORAGE_ERROR",
        59 => "UNKNOWN_PRODUCER_ID",
        74 => "FENCED_LEADER_EPOCH",
        75 => "UNKNOWN_LEADER_EPOCH",
        76 => "UNSUPPORTED_COMPRESSION_TYPE",
        87 => "INVALID_RECORD",
        other => return format!("KAFKA_ERROR_{other}"),
    };
    name.to_string()
}

pub struct KafkaClient {
    timeout: Duration,
    idle: Mutex<HashMap<SocketAddr, Vec<TcpStream>>>,
    next_correlation_id: AtomicI32,
}

impl KafkaClient {
    /// `timeout` bounds each call (connect, write, and the wait for the response).
    pub fn new(timeout: Duration) -> Self {
        KafkaClient {
            timeout,
            idle: Mutex::new(HashMap::new()),
            next_correlation_id: AtomicI32::new(1),
        }
    }

    /// Produces one record with `acks`; `timeout_ms` is the broker-side wait for acks=all.
    /// acks=0 answers at once with no offsets, as Kafka sends no response.
    pub async fn produce(
        &self,
        addr: SocketAddr,
        topic: &str,
        partition: u32,
        acks: Acks,
        timeout_ms: u64,
        value: &str,
    ) -> Result<ProduceResponse, ClientError> {
        let request = Produce {
            topic,
            partition,
            acks,
            timeout_ms,
            value,
            producer: None,
        };
        self.produce_within(addr, &request, self.timeout).await
    }

    /// Produces one record, idempotently when `request.producer` says who produces (the
    /// producer id, epoch and base sequence go in the record batch's header), within
    /// `timeout` (at most the client's own).
    pub async fn produce_within(
        &self,
        addr: SocketAddr,
        request: &Produce<'_>,
        timeout: Duration,
    ) -> Result<ProduceResponse, ClientError> {
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let frame = produce_frame(correlation_id, request)
            .map_err(|e| ClientError::Decode(format!("cannot encode the request: {e:#}")))?;
        let timeout = timeout.min(self.timeout);
        match self
            .call_within(addr, &frame, request.acks != Acks::Zero, timeout)
            .await?
        {
            None => Ok(ProduceResponse {
                base_offset: None,
                count: None,
                leader_epoch: None,
            }),
            Some(frame) => parse_produce_response(frame, correlation_id),
        }
    }

    /// A new producer id and epoch for an idempotent producer (InitProducerId without a
    /// transactional id, to any broker), in the newest version both sides speak, as Kafka's
    /// clients choose by ApiVersions: v1 for faultline-node, v4 for a broker that serves it.
    /// (Tansu 0.6.0 advertises v0–v5 but its storage task panics on a request without v3's
    /// producer id and epoch, after which the broker serves nothing: docs/systems.md.)
    pub async fn init_producer_id(
        &self,
        addr: SocketAddr,
    ) -> Result<ProducerIdentity, ClientError> {
        let version = match self.api_versions(addr).await {
            Ok(ranges) => init_producer_id_version(&ranges),
            Err(_) => INIT_PRODUCER_ID_VERSION,
        };
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let body = init_producer_id_request();
        let frame = request_frame(ApiKey::InitProducerId, version, correlation_id, &body)
            .map_err(|e| ClientError::Decode(format!("cannot encode the request: {e:#}")))?;
        let answer = self.call(addr, &frame, true).await?;
        let body: InitProducerIdResponse = decode_response(
            answer.expect("a response was awaited"),
            ApiKey::InitProducerId,
            version,
            correlation_id,
        )?;
        if body.error_code != 0 {
            return Err(api_error(body.error_code, String::new()));
        }
        Ok(ProducerIdentity {
            producer_id: body.producer_id.0,
            producer_epoch: body.producer_epoch,
        })
    }

    /// The API version ranges `addr` serves (ApiVersions v0, which every broker answers).
    pub async fn api_versions(&self, addr: SocketAddr) -> Result<Vec<ApiVersion>, ClientError> {
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let frame = request_frame(
            ApiKey::ApiVersions,
            0,
            correlation_id,
            &ApiVersionsRequest::default(),
        )
        .map_err(|e| ClientError::Decode(format!("cannot encode the request: {e:#}")))?;
        let answer = self.call(addr, &frame, true).await?;
        let body: ApiVersionsResponse = decode_response(
            answer.expect("a response was awaited"),
            ApiKey::ApiVersions,
            0,
            correlation_id,
        )?;
        if body.error_code != 0 {
            return Err(api_error(body.error_code, String::new()));
        }
        Ok(body.api_keys)
    }

    /// Fetches committed records of one partition as a consumer (replica id -1), waiting up to
    /// `max_wait_ms` on the broker. `max_records` is not a Kafka field: the broker bounds the
    /// answer by bytes instead.
    pub async fn fetch(
        &self,
        addr: SocketAddr,
        request: FetchRequest<'_>,
    ) -> Result<FetchResponse, ClientError> {
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let frame = fetch_frame(correlation_id, &request)
            .map_err(|e| ClientError::Decode(format!("cannot encode the request: {e:#}")))?;
        let answer = self.call(addr, &frame, true).await?;
        parse_fetch_response(answer.expect("a response was awaited"), correlation_id)
    }

    /// Kafka Metadata (v7) for `topics` (every topic when empty), in the HTTP API's shape: the
    /// brokers Metadata lists are the live ones (`alive`), a partition's `leader_id` -1 is no
    /// leader. A topic-level error (UNKNOWN_TOPIC_OR_PARTITION) leaves the topic out.
    pub async fn metadata(
        &self,
        addr: SocketAddr,
        topics: &[String],
    ) -> Result<Metadata, ClientError> {
        let wanted = (!topics.is_empty()).then(|| {
            topics
                .iter()
                .map(|t| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                })
                .collect()
        });
        Ok(metadata_from_kafka(
            &self.metadata_call(addr, wanted).await?,
        ))
    }

    /// The brokers a node's Metadata lists, as (Kafka node id, port): how the harness learns
    /// which id a system's node gives itself.
    pub async fn metadata_raw_brokers(
        &self,
        addr: SocketAddr,
    ) -> Result<Vec<(i32, u16)>, ClientError> {
        let body = self.metadata_call(addr, Some(Vec::new())).await?;
        Ok(body
            .brokers
            .iter()
            .map(|b| (b.node_id.0, u16::try_from(b.port).unwrap_or(0)))
            .collect())
    }

    /// One Metadata (v7) round trip: `topics` None is every topic, an empty list none.
    async fn metadata_call(
        &self,
        addr: SocketAddr,
        topics: Option<Vec<MetadataRequestTopic>>,
    ) -> Result<MetadataResponse, ClientError> {
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let body = MetadataRequest::default()
            .with_topics(topics)
            .with_allow_auto_topic_creation(false);
        let frame = request_frame(ApiKey::Metadata, METADATA_VERSION, correlation_id, &body)
            .map_err(|e| ClientError::Decode(format!("cannot encode the request: {e:#}")))?;
        let answer = self.call(addr, &frame, true).await?;
        decode_response(
            answer.expect("a response was awaited"),
            ApiKey::Metadata,
            METADATA_VERSION,
            correlation_id,
        )
    }

    /// Creates a topic with CreateTopics (v4) and the given configs; an existing topic of that
    /// name counts as created (a retry after a lost answer).
    pub async fn create_topic(
        &self,
        addr: SocketAddr,
        name: &str,
        partitions: u32,
        replication_factor: u32,
        configs: &[(String, String)],
    ) -> Result<(), ClientError> {
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let configs = configs
            .iter()
            .map(|(k, v)| {
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_value(Some(StrBytes::from_string(v.clone())))
            })
            .collect();
        let topic = CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_num_partitions(partitions as i32)
            .with_replication_factor(replication_factor as i16)
            .with_configs(configs);
        let body = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(self.timeout.as_millis().min(i32::MAX as u128) as i32);
        let frame = request_frame(
            ApiKey::CreateTopics,
            CREATE_TOPICS_VERSION,
            correlation_id,
            &body,
        )
        .map_err(|e| ClientError::Decode(format!("cannot encode the request: {e:#}")))?;
        let answer = self.call(addr, &frame, true).await?;
        let body: CreateTopicsResponse = decode_response(
            answer.expect("a response was awaited"),
            ApiKey::CreateTopics,
            CREATE_TOPICS_VERSION,
            correlation_id,
        )?;
        let result = body
            .topics
            .first()
            .ok_or_else(|| ClientError::Decode("a CreateTopics answer with no topic".into()))?;
        match result.error_code {
            0 | TOPIC_ALREADY_EXISTS => Ok(()),
            code => Err(api_error(
                code,
                result
                    .error_message
                    .as_ref()
                    .map_or(String::new(), |m| m.to_string()),
            )),
        }
    }

    /// Sends one request frame and, when `expect_response`, reads its response, all within the
    /// client's timeout. A connection is reused only after a complete exchange.
    async fn call(
        &self,
        addr: SocketAddr,
        frame: &[u8],
        expect_response: bool,
    ) -> Result<Option<Bytes>, ClientError> {
        self.call_within(addr, frame, expect_response, self.timeout)
            .await
    }

    /// [`KafkaClient::call`] within `timeout` (a retry gets what its send's earlier attempts
    /// left); the connect has the client's own timeout, as for every call.
    async fn call_within(
        &self,
        addr: SocketAddr,
        frame: &[u8],
        expect_response: bool,
        timeout: Duration,
    ) -> Result<Option<Bytes>, ClientError> {
        let mut stream = self.connection(addr).await?;
        let exchange = async {
            stream.write_all(frame).await.map_err(transport)?;
            if !expect_response {
                return Ok(None);
            }
            read_frame(&mut stream).await.map(Some)
        };
        let answer = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout)??;
        self.put_back(addr, stream);
        Ok(answer)
    }

    async fn connection(&self, addr: SocketAddr) -> Result<TcpStream, ClientError> {
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&addr)
            .and_then(Vec::pop);
        if let Some(stream) = pooled {
            return Ok(stream);
        }
        let stream = tokio::time::timeout(self.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout)?
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::ConnectionRefused => ClientError::Refused(e.to_string()),
                _ => transport(e),
            })?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    fn put_back(&self, addr: SocketAddr, stream: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let pool = idle.entry(addr).or_default();
        if pool.len() < MAX_IDLE_PER_BROKER {
            pool.push(stream);
        }
    }
}

fn transport(e: std::io::Error) -> ClientError {
    ClientError::Transport(e.to_string())
}

/// A request frame: size, header v1 (every version this client sends is non-flexible), body.
/// An InitProducerId request for a new idempotent producer: no transactional id, and (from v3)
/// producer id and epoch -1.
fn init_producer_id_request() -> InitProducerIdRequest {
    InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(TRANSACTION_TIMEOUT_MS)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

/// The InitProducerId version to ask a broker that serves `ranges` with: the newest both speak;
/// [`INIT_PRODUCER_ID_VERSION`] when it lists none or none this client speaks.
fn init_producer_id_version(ranges: &[ApiVersion]) -> i16 {
    let served = ranges
        .iter()
        .find(|r| r.api_key == ApiKey::InitProducerId as i16);
    match served {
        Some(r) if r.max_version >= 0 && r.min_version <= INIT_PRODUCER_ID_MAX_VERSION => {
            r.max_version.min(INIT_PRODUCER_ID_MAX_VERSION)
        }
        _ => INIT_PRODUCER_ID_VERSION,
    }
}

fn request_frame<T: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> anyhow::Result<Vec<u8>> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("faultline")))
        .encode(&mut buf, key.request_header_version(version))?;
    body.encode(&mut buf, version)?;
    let mut frame = (buf.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&buf);
    Ok(frame)
}

fn fetch_frame(correlation_id: i32, request: &FetchRequest<'_>) -> anyhow::Result<Vec<u8>> {
    let partition = FetchPartition::default()
        .with_partition(request.partition as i32)
        .with_current_leader_epoch(-1)
        .with_fetch_offset(request.offset as i64)
        .with_log_start_offset(-1)
        .with_partition_max_bytes(FETCH_MAX_BYTES);
    let body = KafkaFetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(request.max_wait_ms.min(i32::MAX as u64) as i32)
        .with_min_bytes(1)
        .with_max_bytes(FETCH_MAX_BYTES)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(request.topic.to_string())))
            .with_partitions(vec![partition])]);
    request_frame(ApiKey::Fetch, FETCH_VERSION, correlation_id, &body)
}

fn produce_frame(correlation_id: i32, request: &Produce<'_>) -> anyhow::Result<Vec<u8>> {
    let Produce {
        topic,
        partition,
        acks,
        timeout_ms,
        value,
        producer,
    } = *request;
    // One record at offset delta 0: the batch's producer id, epoch and base sequence are the
    // record's (-1 each without idempotence, Kafka's "none").
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: producer.map_or(-1, |p| p.producer_id),
        producer_epoch: producer.map_or(-1, |p| p.producer_epoch),
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: producer.map_or(-1, |p| p.base_sequence),
        timestamp: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
        key: None,
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        headers: Default::default(),
    };
    let mut records = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut records, [&record], &options)?;
    let request = ProduceRequest::default()
        .with_acks(match acks {
            Acks::Zero => 0,
            Acks::One => 1,
            Acks::All => -1,
        })
        .with_timeout_ms(timeout_ms.min(i32::MAX as u64) as i32)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition as i32)
                .with_records(Some(records.freeze()))])]);
    request_frame(ApiKey::Produce, PRODUCE_VERSION, correlation_id, &request)
}

async fn read_frame(stream: &mut TcpStream) -> Result<Bytes, ClientError> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).await.map_err(transport)?;
    let len = i32::from_be_bytes(size);
    if len < 0 || len as usize > MAX_RESPONSE_BYTES {
        return Err(ClientError::Decode(format!(
            "a response frame of {len} bytes"
        )));
    }
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body).await.map_err(transport)?;
    Ok(Bytes::from(body))
}

fn bad(e: anyhow::Error) -> ClientError {
    ClientError::Decode(format!("{e:#}"))
}

/// Decodes a response frame: its header must answer `correlation_id`, and the body must use
/// every byte.
fn decode_response<T: Decodable>(
    mut frame: Bytes,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
) -> Result<T, ClientError> {
    let header =
        ResponseHeader::decode(&mut frame, key.response_header_version(version)).map_err(bad)?;
    if header.correlation_id != correlation_id {
        return Err(ClientError::Decode(format!(
            "response for request {} while waiting for {correlation_id}",
            header.correlation_id
        )));
    }
    let body = T::decode(&mut frame, version).map_err(bad)?;
    if frame.has_remaining() {
        return Err(ClientError::Decode(format!(
            "{} bytes after the response",
            frame.remaining()
        )));
    }
    Ok(body)
}

fn api_error(code: i16, message: String) -> ClientError {
    ClientError::Api {
        status: 0,
        code: error_name(code),
        appended: message.starts_with("appended:"),
        message,
        leader: None,
    }
}

fn parse_fetch_response(frame: Bytes, correlation_id: i32) -> Result<FetchResponse, ClientError> {
    let body: KafkaFetchResponse =
        decode_response(frame, ApiKey::Fetch, FETCH_VERSION, correlation_id)?;
    if body.error_code != 0 {
        return Err(api_error(body.error_code, String::new()));
    }
    let p = body
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| ClientError::Decode("a response with no partition".into()))?;
    if p.error_code != 0 {
        return Err(api_error(p.error_code, String::new()));
    }
    let mut data = p.records.clone().unwrap_or_default();
    let sets = RecordBatchDecoder::decode_all(&mut data).map_err(bad)?;
    let records = sets
        .iter()
        .flat_map(|set| set.records.iter())
        .map(|r| {
            let value = r.value.as_ref().map(|v| String::from_utf8(v.to_vec()));
            match value {
                Some(Ok(value)) => Ok(FetchedRecord {
                    offset: r.offset as u64,
                    leader_epoch: r.partition_leader_epoch.max(0) as u32,
                    value,
                }),
                _ => Err(ClientError::Decode(format!(
                    "record {} has no UTF-8 value",
                    r.offset
                ))),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FetchResponse {
        records,
        high_watermark: p.high_watermark.max(0) as u64,
    })
}

/// A Kafka Metadata answer in the HTTP API's shape.
fn metadata_from_kafka(body: &MetadataResponse) -> Metadata {
    let id = |b: &BrokerId| u32::try_from(b.0).ok();
    let brokers = body
        .brokers
        .iter()
        .filter_map(|b| {
            Some(BrokerInfo {
                id: id(&b.node_id)?,
                alive: true,
                port: u16::try_from(b.port).ok(),
            })
        })
        .collect();
    let topics = body
        .topics
        .iter()
        .filter(|t| t.error_code == 0 || t.error_code == 5)
        .filter_map(|t| {
            let name = t.name.as_ref()?.0.to_string();
            let partitions = t
                .partitions
                .iter()
                .map(|p| PartitionMetadata {
                    partition: p.partition_index.max(0) as u32,
                    leader: id(&p.leader_id),
                    leader_epoch: u32::try_from(p.leader_epoch).ok(),
                    partition_epoch: None,
                    isr: p.isr_nodes.iter().filter_map(id).collect(),
                    replicas: p.replica_nodes.iter().filter_map(id).collect(),
                })
                .collect();
            Some(TopicMetadata { name, partitions })
        })
        .collect();
    Metadata {
        cluster_id: body.cluster_id.as_ref().map(|c| c.to_string()),
        brokers,
        topics,
    }
}

fn parse_produce_response(
    frame: Bytes,
    correlation_id: i32,
) -> Result<ProduceResponse, ClientError> {
    let body: KafkaProduceResponse =
        decode_response(frame, ApiKey::Produce, PRODUCE_VERSION, correlation_id)?;
    let p = body
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .ok_or_else(|| ClientError::Decode("a response with no partition".into()))?;
    if p.error_code != 0 {
        let message = p
            .error_message
            .as_ref()
            .map_or(String::new(), |m| m.to_string());
        return Err(api_error(p.error_code, message));
    }
    Ok(ProduceResponse {
        base_offset: u64::try_from(p.base_offset).ok(),
        count: Some(1),
        leader_epoch: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_named_as_the_node_names_them() {
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(20), "NOT_ENOUGH_REPLICAS_AFTER_APPEND");
        assert_eq!(error_name(999), "KAFKA_ERROR_999");
    }

    fn produce(producer: Option<crate::client::ProducerBatch>) -> Produce<'static> {
        Produce {
            topic: "t",
            partition: 2,
            acks: Acks::All,
            timeout_ms: 5000,
            value: "17",
            producer,
        }
    }

    /// The request a produce frame holds, and its one partition's record batches.
    fn decode_produce(
        frame: &[u8],
    ) -> (i32, ProduceRequest, Vec<kafka_protocol::records::RecordSet>) {
        let mut body = Bytes::from(frame[4..].to_vec());
        let version = ApiKey::Produce.request_header_version(PRODUCE_VERSION);
        let header = RequestHeader::decode(&mut body, version).unwrap();
        let req = ProduceRequest::decode(&mut body, PRODUCE_VERSION).unwrap();
        let mut records = req.topic_data[0].partition_data[0].records.clone().unwrap();
        let sets = RecordBatchDecoder::decode_all(&mut records).unwrap();
        (header.correlation_id, req, sets)
    }

    #[test]
    fn a_produce_frame_decodes_as_the_broker_would() {
        let frame = produce_frame(9, &produce(None)).unwrap();
        let (correlation_id, req, sets) = decode_produce(&frame);
        assert_eq!(correlation_id, 9);
        assert_eq!(req.acks, -1);
        assert_eq!(req.topic_data[0].partition_data[0].index, 2);
        let record = &sets[0].records[0];
        assert_eq!((record.producer_id, record.sequence), (-1, -1));
    }

    #[test]
    fn an_idempotent_produce_frame_carries_the_producer_in_the_batch_header() {
        let batch = crate::client::ProducerBatch {
            producer_id: 4_294_967_297,
            producer_epoch: 3,
            base_sequence: 41,
        };
        let frame = produce_frame(10, &produce(Some(batch))).unwrap();
        // The header's fields, at their v2 positions: base offset (8), length (4), partition
        // leader epoch (4), magic (1), CRC (4), attributes (2), last offset delta (4), base
        // and max timestamps (8 + 8), then producer id (8), epoch (2), base sequence (4).
        let (_, req, sets) = decode_produce(&frame);
        let records = req.topic_data[0].partition_data[0].records.clone().unwrap();
        let at = 8 + 4 + 4 + 1 + 4 + 2 + 4 + 8 + 8;
        let id = i64::from_be_bytes(records[at..at + 8].try_into().unwrap());
        let epoch = i16::from_be_bytes(records[at + 8..at + 10].try_into().unwrap());
        let sequence = i32::from_be_bytes(records[at + 10..at + 14].try_into().unwrap());
        assert_eq!((id, epoch, sequence), (4_294_967_297, 3, 41));
        let record = &sets[0].records[0];
        assert_eq!(
            (record.producer_id, record.producer_epoch, record.sequence),
            (4_294_967_297, 3, 41)
        );
        assert!(!record.transactional);
    }

    #[test]
    fn an_init_producer_id_frame_names_no_transactional_id_and_from_v3_a_new_producer() {
        for version in [INIT_PRODUCER_ID_VERSION, INIT_PRODUCER_ID_MAX_VERSION] {
            let frame = request_frame(
                ApiKey::InitProducerId,
                version,
                5,
                &init_producer_id_request(),
            )
            .unwrap();
            let mut bytes = Bytes::from(frame[4..].to_vec());
            let header_version = ApiKey::InitProducerId.request_header_version(version);
            let header = RequestHeader::decode(&mut bytes, header_version).unwrap();
            assert_eq!(
                (header.request_api_key, header.request_api_version),
                (22, version)
            );
            let req = InitProducerIdRequest::decode(&mut bytes, version).unwrap();
            assert_eq!(req.transactional_id, None);
            assert_eq!((req.producer_id, req.producer_epoch), (ProducerId(-1), -1));
            assert!(!bytes.has_remaining(), "v{version}");
        }
    }

    #[test]
    fn init_producer_id_is_asked_in_the_newest_version_both_sides_speak() {
        let range = |key: ApiKey, min: i16, max: i16| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        };
        let produce = range(ApiKey::Produce, 0, 8);
        // faultline-node serves v0-v1; Tansu 0.6.0 v0-v5; Kafka 4.1 v0-v5 (v6 in newer ones).
        let node = [produce.clone(), range(ApiKey::InitProducerId, 0, 1)];
        assert_eq!(init_producer_id_version(&node), 1);
        let tansu = [produce.clone(), range(ApiKey::InitProducerId, 0, 5)];
        assert_eq!(
            init_producer_id_version(&tansu),
            INIT_PRODUCER_ID_MAX_VERSION
        );
        let v3 = [range(ApiKey::InitProducerId, 0, 3)];
        assert_eq!(init_producer_id_version(&v3), 3);
        // Not listed, or only versions this client does not speak: v1, and the broker says.
        assert_eq!(
            init_producer_id_version(&[produce]),
            INIT_PRODUCER_ID_VERSION
        );
        let newer_only = [range(ApiKey::InitProducerId, 5, 6)];
        assert_eq!(
            init_producer_id_version(&newer_only),
            INIT_PRODUCER_ID_VERSION
        );
    }

    #[test]
    fn the_idempotence_errors_are_named() {
        assert_eq!(error_name(45), "OUT_OF_ORDER_SEQUENCE_NUMBER");
        assert_eq!(error_name(47), "INVALID_PRODUCER_EPOCH");
    }
}
