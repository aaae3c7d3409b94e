//! The workload's Kafka client (`faultline test --client kafka`): produces one record per send
//! over the Kafka wire protocol (Produce v8, record batch v2, via the `kafka-protocol` crate)
//! to a broker's advertised Kafka listener, which in a run is the harness's link proxy, so
//! every fault applies to it as to the HTTP client. It answers with the HTTP client's types
//! ([`ProduceResponse`], [`ClientError`] named by Kafka error code), so the workload records
//! the same history and classifies outcomes with the same table. It keeps a small pool of idle
//! connections per broker; a connection that saw any transport error is dropped. It does not
//! discover leaders: the workload routes by its leader cache, as for HTTP.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse as KafkaProduceResponse, RequestHeader, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::{ClientError, ProduceResponse};
use faultline_checker::history::Acks;

/// The Produce version this client speaks (the newest the node serves; it carries
/// `error_message`, where the node says a failed acks=all write was appended).
pub const PRODUCE_VERSION: i16 = 8;
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
        17 => "INVALID_TOPIC_EXCEPTION",
        19 => "NOT_ENOUGH_REPLICAS",
        20 => "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
        21 => "INVALID_REQUIRED_ACKS",
        42 => "INVALID_REQUEST",
        56 => "KAFKA_STORAGE_ERROR",
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
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let frame = produce_frame(correlation_id, topic, partition, acks, timeout_ms, value)
            .map_err(|e| ClientError::Decode(format!("cannot encode the request: {e:#}")))?;
        let mut stream = self.connection(addr).await?;
        let exchange = async {
            stream.write_all(&frame).await.map_err(transport)?;
            if acks == Acks::Zero {
                return Ok(None);
            }
            read_frame(&mut stream).await.map(Some)
        };
        let answer = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout)??;
        // A complete exchange leaves the connection clean: keep it for the next call.
        self.put_back(addr, stream);
        match answer {
            None => Ok(ProduceResponse {
                base_offset: None,
                count: None,
                leader_epoch: None,
            }),
            Some(frame) => parse_produce_response(frame, correlation_id),
        }
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

fn produce_frame(
    correlation_id: i32,
    topic: &str,
    partition: u32,
    acks: Acks,
    timeout_ms: u64,
    value: &str,
) -> anyhow::Result<Vec<u8>> {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
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
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(PRODUCE_VERSION)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("faultline")))
        .encode(
            &mut body,
            ApiKey::Produce.request_header_version(PRODUCE_VERSION),
        )?;
    request.encode(&mut body, PRODUCE_VERSION)?;
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    Ok(frame)
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

fn parse_produce_response(
    mut frame: Bytes,
    correlation_id: i32,
) -> Result<ProduceResponse, ClientError> {
    let bad = |e: anyhow::Error| ClientError::Decode(format!("{e:#}"));
    let header_version = ApiKey::Produce.response_header_version(PRODUCE_VERSION);
    let header = ResponseHeader::decode(&mut frame, header_version).map_err(bad)?;
    if header.correlation_id != correlation_id {
        return Err(ClientError::Decode(format!(
            "response for request {} while waiting for {correlation_id}",
            header.correlation_id
        )));
    }
    let body = KafkaProduceResponse::decode(&mut frame, PRODUCE_VERSION).map_err(bad)?;
    if frame.has_remaining() {
        return Err(ClientError::Decode(format!(
            "{} bytes after the response",
            frame.remaining()
        )));
    }
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
        return Err(ClientError::Api {
            status: 0,
            code: error_name(p.error_code),
            appended: message.starts_with("appended:"),
            message,
            leader: None,
        });
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

    #[test]
    fn a_produce_frame_decodes_as_the_broker_would() {
        let frame = produce_frame(9, "t", 2, Acks::All, 5000, "17").unwrap();
        let mut body = Bytes::from(frame[4..].to_vec());
        let version = ApiKey::Produce.request_header_version(PRODUCE_VERSION);
        let header = RequestHeader::decode(&mut body, version).unwrap();
        assert_eq!(header.correlation_id, 9);
        let req = ProduceRequest::decode(&mut body, PRODUCE_VERSION).unwrap();
        assert_eq!(req.acks, -1);
        assert_eq!(req.topic_data[0].partition_data[0].index, 2);
    }
}
