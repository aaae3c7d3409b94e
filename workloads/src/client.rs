//! The client for the node's HTTP API (docs/node-api.md): metadata, topic creation,
//! produce (with a producer id, epoch and sequence when idempotent), producer ids, fetch and
//! broker state. It owns the wire types and the classification of a failed call into Jepsen's
//! outcomes and into what a retry may do ([`AttemptClass`]); it does not retry, record history
//! or pick leaders.

use std::net::SocketAddr;
use std::time::Duration;

use faultline_checker::history::{Acks, OpType};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why a call to a node did not return a success response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The node answered with a non-2xx status and an error code (Kafka's names).
    #[error("{code} (HTTP {status}): {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        /// The leader's id, when a NOT_LEADER_OR_FOLLOWER answer names it.
        leader: Option<u32>,
        /// The node says the records were appended before the request failed (a deposed
        /// leader failing a pending acks=all): the write's fate is unknown whatever the code.
        appended: bool,
    },
    /// No complete answer within the call's timeout: the request may have been applied.
    #[error("timed out")]
    Timeout,
    /// The TCP connection was refused: the request never reached the node.
    #[error("connection refused: {0}")]
    Refused(String),
    /// Any other transport failure (reset, closed mid-response): the request may have been
    /// applied.
    #[error("transport: {0}")]
    Transport(String),
    /// A 2xx answer whose body could not be decoded.
    #[error("bad response: {0}")]
    Decode(String),
}

impl ClientError {
    /// The short text recorded as an operation's `error`: the Kafka error code when there is
    /// one, else the failure's description.
    pub fn history_error(&self) -> String {
        match self {
            ClientError::Api { code, .. } => code.clone(),
            ClientError::Timeout => "timeout".to_string(),
            ClientError::Refused(_) => "connection refused".to_string(),
            other => other.to_string(),
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The completion type of a failed `send` attempt: `fail` only when the write definitely
    /// did not happen (the broker rejected it before appending, or the connection was
    /// refused), `info` when it may have happened.
    pub fn send_outcome(&self) -> OpType {
        if self.attempt_class().possibly_appended() {
            OpType::Info
        } else {
            OpType::Fail
        }
    }

    /// What a failed produce attempt says for the send: whether it may have been appended,
    /// and whether another attempt may succeed (Kafka's retriable errors, and a lost answer).
    pub fn attempt_class(&self) -> AttemptClass {
        use AttemptClass::*;
        match self {
            ClientError::Api { appended: true, .. } => RetryIndefinite,
            ClientError::Api { code, .. } => match code.as_str() {
                // Refused before any append; the leader or the ISR may be back for a retry.
                "NOT_ENOUGH_REPLICAS"
                | "NOT_LEADER_OR_FOLLOWER"
                | "UNKNOWN_TOPIC_OR_PARTITION"
                | "FENCED_LEADER_EPOCH" => RetryDefinite,
                // Refusals of the request or the batch itself, before any append: the same
                // request would be refused again.
                "INVALID_REQUEST"
                | "INCONSISTENT_CLUSTER_ID"
                | "MESSAGE_TOO_LARGE"
                | "INVALID_RECORD"
                | "CORRUPT_MESSAGE"
                | "UNSUPPORTED_COMPRESSION_TYPE"
                | "INVALID_REQUIRED_ACKS" => FatalDefinite,
                // The broker refused the producer's sequence or epoch, appending nothing: the
                // producer must start over with a new producer id.
                "OUT_OF_ORDER_SEQUENCE_NUMBER"
                | "INVALID_PRODUCER_EPOCH"
                | "UNKNOWN_PRODUCER_ID" => ProducerReset,
                // Appended, or may be, and retriable in Kafka's producer: the record may be in
                // the log and a retry may succeed.
                "NOT_ENOUGH_REPLICAS_AFTER_APPEND"
                | "REQUEST_TIMED_OUT"
                | "NETWORK_EXCEPTION"
                | "KAFKA_STORAGE_ERROR"
                | "LEADER_NOT_AVAILABLE"
                | "UNKNOWN_LEADER_EPOCH" => RetryIndefinite,
                // DUPLICATE_SEQUENCE_NUMBER (an earlier attempt was appended, at an offset not
                // told) and any code we do not know: the record may be in the log.
                _ => FatalIndefinite,
            },
            ClientError::Refused(_) => RetryDefinite,
            ClientError::Timeout | ClientError::Transport(_) => RetryIndefinite,
            // An answer that cannot be read: what happened is unknown, and retrying a request
            // whose answer is garbled is not what a producer does.
            ClientError::Decode(_) => FatalIndefinite,
        }
    }

    /// The completion type of a failed `poll`: a read changes nothing, so any answer from the
    /// broker is a definite `fail`; only a call with no answer is `info`.
    pub fn poll_outcome(&self) -> OpType {
        match self {
            ClientError::Api { .. } | ClientError::Refused(_) => OpType::Fail,
            _ => OpType::Info,
        }
    }
}

/// What one failed produce attempt means for its send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptClass {
    /// Nothing was appended; another attempt may succeed (NOT_LEADER_OR_FOLLOWER,
    /// NOT_ENOUGH_REPLICAS, a refused connection).
    RetryDefinite,
    /// It may have been appended; another attempt may succeed (a timeout, a reset connection,
    /// REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS_AFTER_APPEND).
    RetryIndefinite,
    /// Nothing was appended, and the same request would be refused again (INVALID_REQUEST,
    /// MESSAGE_TOO_LARGE).
    FatalDefinite,
    /// It may have been appended, and retrying is not safe or cannot help (an unknown error
    /// code, an undecodable answer).
    FatalIndefinite,
    /// The broker refused the idempotent producer's sequence or epoch
    /// (OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH): nothing was appended, and the
    /// producer must get a new producer id before it sends again.
    ProducerReset,
}

impl AttemptClass {
    pub fn possibly_appended(self) -> bool {
        matches!(
            self,
            AttemptClass::RetryIndefinite | AttemptClass::FatalIndefinite
        )
    }

    pub fn retriable(self) -> bool {
        matches!(
            self,
            AttemptClass::RetryDefinite | AttemptClass::RetryIndefinite
        )
    }
}

/// An idempotent producer's identity, as `POST /v1/init-producer-id` (and Kafka's
/// InitProducerId) hands it out: a new producer id, epoch 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdentity {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// What an idempotent produce carries besides its records: who produces, and the first
/// record's sequence number on the partition. Every attempt of one send carries the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

/// One produce request of one record.
#[derive(Debug, Clone, Copy)]
pub struct Produce<'a> {
    pub topic: &'a str,
    pub partition: u32,
    pub acks: Acks,
    /// The broker-side wait for acks=all.
    pub timeout_ms: u64,
    pub value: &'a str,
    /// With idempotence: the producer id, epoch and sequence; without, none.
    pub producer: Option<ProducerBatch>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub cluster_id: Option<String>,
    #[serde(default)]
    pub brokers: Vec<BrokerInfo>,
    #[serde(default)]
    pub topics: Vec<TopicMetadata>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerInfo {
    pub id: u32,
    #[serde(default)]
    pub alive: bool,
    /// The Kafka port Kafka Metadata gives for it (absent from the HTTP API's metadata).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicMetadata {
    pub name: String,
    #[serde(default)]
    pub partitions: Vec<PartitionMetadata>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionMetadata {
    pub partition: u32,
    pub leader: Option<u32>,
    #[serde(default)]
    pub leader_epoch: Option<u32>,
    #[serde(default)]
    pub partition_epoch: Option<u32>,
    #[serde(default)]
    pub isr: Vec<u32>,
    #[serde(default)]
    pub replicas: Vec<u32>,
}

impl Metadata {
    pub fn partition(&self, topic: &str, partition: u32) -> Option<&PartitionMetadata> {
        self.topics
            .iter()
            .find(|t| t.name == topic)?
            .partitions
            .iter()
            .find(|p| p.partition == partition)
    }

    /// Renames Kafka node ids to the harness's node ids, by the port each listed broker has
    /// (`ports`: a Kafka port, real or a link's → the harness's id). A system may number its
    /// brokers itself, and need not number them apart: every Tansu 0.6.0 broker is node 111
    /// and lists only itself, so the id means "the broker at this port" in this answer only.
    /// Ids of brokers at ports not in the map stay.
    pub fn renumber(&mut self, ports: &std::collections::BTreeMap<u16, u32>) {
        let ids: std::collections::BTreeMap<u32, u32> = self
            .brokers
            .iter()
            .filter_map(|b| Some((b.id, *ports.get(&b.port?)?)))
            .filter(|(kafka, ours)| kafka != ours)
            .collect();
        if ids.is_empty() {
            return;
        }
        let map = |id: &mut u32| *id = ids.get(id).copied().unwrap_or(*id);
        self.brokers.iter_mut().for_each(|b| map(&mut b.id));
        for p in self.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
            p.leader.iter_mut().for_each(map);
            p.isr.iter_mut().for_each(map);
            p.replicas.iter_mut().for_each(map);
        }
    }

    pub fn is_alive(&self, broker: u32) -> bool {
        self.brokers.iter().any(|b| b.id == broker && b.alive)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CreateTopic {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u32,
    pub configs: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, Serialize)]
struct ProduceRequest<'a> {
    topic: &'a str,
    partition: u32,
    acks: &'a str,
    timeout_ms: u64,
    records: Vec<ProduceRecord<'a>>,
    /// `producer_id`, `producer_epoch`, `base_sequence`: all three or none.
    #[serde(flatten)]
    producer: Option<ProducerBatch>,
}

#[derive(Debug, Clone, Serialize)]
struct ProduceRecord<'a> {
    value: &'a str,
}

/// A produce answer. acks=0 answers carry no offsets.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProduceResponse {
    #[serde(default)]
    pub base_offset: Option<u64>,
    #[serde(default)]
    pub count: Option<u64>,
    /// The leader epoch the records were appended in.
    #[serde(default)]
    pub leader_epoch: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FetchResponse {
    #[serde(default)]
    pub records: Vec<FetchedRecord>,
    pub high_watermark: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FetchedRecord {
    pub offset: u64,
    #[serde(default)]
    pub leader_epoch: u32,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BrokerState {
    pub broker_id: u32,
    #[serde(default)]
    pub partitions: Vec<ReplicaState>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ReplicaState {
    pub topic: String,
    pub partition: u32,
    pub role: String,
    pub leader: Option<u32>,
    #[serde(default)]
    pub leader_epoch: Option<u32>,
    #[serde(default)]
    pub log_end_offset: Option<u64>,
    #[serde(default)]
    pub high_watermark: Option<u64>,
    #[serde(default)]
    pub isr: Vec<u32>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    leader: Option<u32>,
    #[serde(default)]
    appended: bool,
}

/// One fetch request: read `partition` from `offset`, at most `max_records`, waiting up to
/// `max_wait_ms` on the broker for new records.
#[derive(Debug, Clone, Copy)]
pub struct FetchRequest<'a> {
    pub topic: &'a str,
    pub partition: u32,
    pub offset: u64,
    pub max_records: u32,
    pub max_wait_ms: u64,
}

/// An HTTP client for nodes. Every call has a deadline (`timeout`); nothing is retried here.
#[derive(Debug, Clone)]
pub struct NodeClient {
    http: reqwest::Client,
    timeout: Duration,
}

impl NodeClient {
    pub fn new(timeout: Duration) -> Self {
        // Proxies from the environment must never sit between the harness and the nodes: the
        // harness's own link proxies are the only ones.
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(10))
            .build()
            .expect("building an HTTP client with static settings cannot fail");
        NodeClient { http, timeout }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub async fn metadata(&self, addr: SocketAddr) -> Result<Metadata, ClientError> {
        let response = self.http.get(format!("http://{addr}/v1/metadata")).send();
        decode(response.await).await
    }

    pub async fn state(&self, addr: SocketAddr) -> Result<BrokerState, ClientError> {
        let response = self.http.get(format!("http://{addr}/v1/state")).send();
        decode(response.await).await
    }

    /// Creates a topic; an existing topic of that name (409) counts as success.
    pub async fn create_topic(
        &self,
        addr: SocketAddr,
        topic: &CreateTopic,
    ) -> Result<(), ClientError> {
        let response = self
            .http
            .post(format!("http://{addr}/v1/topics"))
            .json(topic)
            .send()
            .await
            .map_err(transport_error)?;
        if response.status().as_u16() == 409 {
            return Ok(());
        }
        decode::<Value>(Ok(response)).await.map(|_| ())
    }

    /// Produces one record. `timeout_ms` is the broker-side wait for acks=all.
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

    /// Produces one record, idempotently when `request.producer` says who produces, within
    /// `timeout` (at most the client's own).
    pub async fn produce_within(
        &self,
        addr: SocketAddr,
        request: &Produce<'_>,
        timeout: Duration,
    ) -> Result<ProduceResponse, ClientError> {
        let body = ProduceRequest {
            topic: request.topic,
            partition: request.partition,
            acks: request.acks.as_str(),
            timeout_ms: request.timeout_ms,
            records: vec![ProduceRecord {
                value: request.value,
            }],
            producer: request.producer,
        };
        let response = self
            .http
            .post(format!("http://{addr}/v1/produce"))
            .timeout(timeout.min(self.timeout))
            .json(&body)
            .send()
            .await;
        decode(response).await
    }

    /// A new producer id and epoch for an idempotent producer (`POST /v1/init-producer-id`,
    /// any broker).
    pub async fn init_producer_id(
        &self,
        addr: SocketAddr,
    ) -> Result<ProducerIdentity, ClientError> {
        let response = self
            .http
            .post(format!("http://{addr}/v1/init-producer-id"))
            .json(&serde_json::json!({}))
            .send()
            .await;
        decode(response).await
    }

    pub async fn fetch(
        &self,
        addr: SocketAddr,
        request: FetchRequest<'_>,
    ) -> Result<FetchResponse, ClientError> {
        let query = [
            ("topic", request.topic.to_string()),
            ("partition", request.partition.to_string()),
            ("offset", request.offset.to_string()),
            ("max_records", request.max_records.to_string()),
            ("max_wait_ms", request.max_wait_ms.to_string()),
        ];
        let response = self
            .http
            .get(format!("http://{addr}/v1/fetch"))
            .query(&query)
            .send()
            .await;
        decode(response).await
    }
}

async fn decode<T: serde::de::DeserializeOwned>(
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, ClientError> {
    let response = response.map_err(transport_error)?;
    let status = response.status();
    let body = response.bytes().await.map_err(transport_error)?;
    if status.is_success() {
        return serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()));
    }
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(error) => Err(ClientError::Api {
            status: status.as_u16(),
            code: error.error,
            message: error.message,
            leader: error.leader,
            appended: error.appended,
        }),
        Err(_) => Err(ClientError::Api {
            status: status.as_u16(),
            code: format!("HTTP_{}", status.as_u16()),
            message: String::from_utf8_lossy(&body).chars().take(200).collect(),
            leader: None,
            appended: false,
        }),
    }
}

fn transport_error(error: reqwest::Error) -> ClientError {
    if error.is_timeout() {
        return ClientError::Timeout;
    }
    if error.is_connect() && is_refused(&error) {
        return ClientError::Refused(error.to_string());
    }
    ClientError::Transport(error_chain(&error))
}

/// True when the error's source chain holds an io::Error of kind ConnectionRefused. Other
/// connect errors (a connect timeout) are not definite.
fn is_refused(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        source = err.source();
    }
    false
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(err) = source {
        text.push_str(": ");
        text.push_str(&err.to_string());
        source = err.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: &str) -> ClientError {
        ClientError::Api {
            status: 500,
            code: code.to_string(),
            message: String::new(),
            leader: None,
            appended: false,
        }
    }

    /// What one Tansu 0.6.0 broker answers: itself as node 111, leader and only ISR member.
    fn tansu_answer(port: u16) -> Metadata {
        Metadata {
            cluster_id: None,
            brokers: vec![BrokerInfo {
                id: 111,
                alive: true,
                port: Some(port),
            }],
            topics: vec![TopicMetadata {
                name: "t".into(),
                partitions: vec![PartitionMetadata {
                    partition: 0,
                    leader: Some(111),
                    leader_epoch: Some(0),
                    partition_epoch: None,
                    isr: vec![111],
                    replicas: vec![111],
                }],
            }],
        }
    }

    #[test]
    fn kafka_ids_are_renumbered_by_port_even_when_brokers_share_one_id() {
        let ports = std::collections::BTreeMap::from([(9001, 1), (9002, 2), (41002, 2)]);
        for (port, ours) in [(9001, 1), (9002, 2), (41002, 2)] {
            let mut m = tansu_answer(port);
            m.renumber(&ports);
            assert_eq!(m.brokers[0].id, ours, "port {port}");
            let p = m.partition("t", 0).unwrap();
            assert_eq!(
                (p.leader, &p.isr, &p.replicas),
                (Some(ours), &vec![ours], &vec![ours])
            );
        }
        // A port the harness does not know leaves the answer as it was.
        let mut unknown = tansu_answer(9999);
        unknown.renumber(&ports);
        assert_eq!(unknown, tansu_answer(9999));
    }

    #[test]
    fn send_outcomes_follow_the_contract() {
        assert_eq!(api("NOT_ENOUGH_REPLICAS").send_outcome(), OpType::Fail);
        assert_eq!(api("NOT_LEADER_OR_FOLLOWER").send_outcome(), OpType::Fail);
        let deposed = ClientError::Api {
            status: 421,
            code: "NOT_LEADER_OR_FOLLOWER".to_string(),
            message: String::new(),
            leader: None,
            appended: true,
        };
        assert_eq!(
            deposed.send_outcome(),
            OpType::Info,
            "appended, then deposed: unknown"
        );
        assert_eq!(
            api("NOT_ENOUGH_REPLICAS_AFTER_APPEND").send_outcome(),
            OpType::Info
        );
        assert_eq!(api("REQUEST_TIMED_OUT").send_outcome(), OpType::Info);
        assert_eq!(api("SOMETHING_NEW").send_outcome(), OpType::Info);
        assert_eq!(ClientError::Timeout.send_outcome(), OpType::Info);
        assert_eq!(
            ClientError::Transport("reset".into()).send_outcome(),
            OpType::Info
        );
        assert_eq!(
            ClientError::Refused("x".into()).send_outcome(),
            OpType::Fail
        );
    }

    #[test]
    fn what_a_retry_may_do_follows_kafkas_retriable_errors() {
        use AttemptClass::*;
        let cases = [
            (api("NOT_LEADER_OR_FOLLOWER"), RetryDefinite),
            (api("NOT_ENOUGH_REPLICAS"), RetryDefinite),
            (ClientError::Refused("x".into()), RetryDefinite),
            (api("REQUEST_TIMED_OUT"), RetryIndefinite),
            (api("NOT_ENOUGH_REPLICAS_AFTER_APPEND"), RetryIndefinite),
            (api("NETWORK_EXCEPTION"), RetryIndefinite),
            (ClientError::Timeout, RetryIndefinite),
            (ClientError::Transport("reset".into()), RetryIndefinite),
            (api("INVALID_REQUEST"), FatalDefinite),
            (api("MESSAGE_TOO_LARGE"), FatalDefinite),
            (api("SOMETHING_NEW"), FatalIndefinite),
            (api("DUPLICATE_SEQUENCE_NUMBER"), FatalIndefinite),
            (ClientError::Decode("x".into()), FatalIndefinite),
            (api("OUT_OF_ORDER_SEQUENCE_NUMBER"), ProducerReset),
            (api("INVALID_PRODUCER_EPOCH"), ProducerReset),
        ];
        for (error, class) in cases {
            assert_eq!(error.attempt_class(), class, "{error:?}");
            let outcome = if class.possibly_appended() {
                OpType::Info
            } else {
                OpType::Fail
            };
            assert_eq!(error.send_outcome(), outcome, "{error:?}");
        }
        let deposed = ClientError::Api {
            status: 421,
            code: "NOT_LEADER_OR_FOLLOWER".to_string(),
            message: String::new(),
            leader: None,
            appended: true,
        };
        assert_eq!(deposed.attempt_class(), RetryIndefinite);
    }

    #[test]
    fn an_idempotent_produce_carries_all_three_producer_fields_or_none() {
        let body = |producer| {
            serde_json::to_value(ProduceRequest {
                topic: "t",
                partition: 0,
                acks: "all",
                timeout_ms: 1500,
                records: vec![ProduceRecord { value: "17" }],
                producer,
            })
            .unwrap()
        };
        let plain = body(None);
        for field in ["producer_id", "producer_epoch", "base_sequence"] {
            assert!(plain.get(field).is_none(), "{plain}");
        }
        let idempotent = body(Some(ProducerBatch {
            producer_id: 4_294_967_297,
            producer_epoch: 0,
            base_sequence: 12,
        }));
        assert_eq!(idempotent["producer_id"], 4_294_967_297_i64);
        assert_eq!(idempotent["producer_epoch"], 0);
        assert_eq!(idempotent["base_sequence"], 12);
        assert_eq!(idempotent["records"][0]["value"], "17");
        let answer: ProducerIdentity =
            serde_json::from_str(r#"{"producer_id": 7, "producer_epoch": 0}"#).unwrap();
        assert_eq!(answer.producer_id, 7);
    }

    #[tokio::test]
    async fn a_closed_port_is_a_definite_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = NodeClient::new(Duration::from_secs(2));
        let error = client
            .produce(addr, "t", 0, Acks::All, 100, "1")
            .await
            .unwrap_err();
        assert!(matches!(error, ClientError::Refused(_)), "{error:?}");
        assert_eq!(error.history_error(), "connection refused");
    }
}
