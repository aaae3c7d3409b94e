//! Where clients send: a cache of each partition's leader, refreshed from metadata (the
//! controller first, then any broker, through the client's links; with no controller, a
//! system under test reached only by Kafka's protocol, Kafka Metadata from any broker). It does not decide what to
//! send; a stale entry is dropped when a broker answers NOT_LEADER_OR_FOLLOWER.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::client::{Metadata, NodeClient};
use crate::kafka::KafkaClient;

/// The addresses a client uses to reach each node (the harness's client links).
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// faultline-node's controller; `None` for a system reached only by Kafka's protocol
    /// (`--system`), whose metadata comes from its brokers' Kafka Metadata.
    pub controller: Option<SocketAddr>,
    pub brokers: BTreeMap<u32, SocketAddr>,
    /// Each broker's Kafka listener as clients reach it (empty unless the run uses
    /// `--client kafka`).
    pub kafka_brokers: BTreeMap<u32, SocketAddr>,
    /// Which harness broker each Kafka port is (the links' ports and the real ones), to read
    /// Kafka Metadata in the harness's ids (`Metadata::renumber`); empty without Kafka links.
    pub kafka_ports: BTreeMap<u16, u32>,
}

/// Refreshes are coalesced: at most one metadata request per `MIN_REFRESH_INTERVAL`, however
/// many clients are looking for a leader.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(100);

pub struct LeaderCache {
    leaders: Mutex<HashMap<(String, u32), u32>>,
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
}

impl Default for LeaderCache {
    fn default() -> Self {
        Self::new()
    }
}

impl LeaderCache {
    pub fn new() -> Self {
        LeaderCache {
            leaders: Mutex::new(HashMap::new()),
            last_refresh: tokio::sync::Mutex::new(None),
        }
    }

    pub fn cached(&self, topic: &str, partition: u32) -> Option<u32> {
        let leaders = self.leaders.lock().unwrap_or_else(|p| p.into_inner());
        leaders.get(&(topic.to_string(), partition)).copied()
    }

    /// The leader to send to, refreshing metadata when none is cached. `None` when no node
    /// reports a leader.
    pub async fn leader(
        &self,
        client: &NodeClient,
        kafka: Option<&KafkaClient>,
        endpoints: &Endpoints,
        topic: &str,
        partition: u32,
    ) -> Option<u32> {
        if let Some(leader) = self.cached(topic, partition) {
            return Some(leader);
        }
        self.refresh(client, kafka, endpoints).await;
        self.cached(topic, partition)
    }

    /// Drops a leader that refused a request; `hint` is the leader the broker named, if any.
    pub fn forget(&self, topic: &str, partition: u32, hint: Option<u32>) {
        let mut leaders = self.leaders.lock().unwrap_or_else(|p| p.into_inner());
        let key = (topic.to_string(), partition);
        match hint {
            Some(leader) => leaders.insert(key, leader),
            None => leaders.remove(&key),
        };
    }

    async fn refresh(
        &self,
        client: &NodeClient,
        kafka: Option<&KafkaClient>,
        endpoints: &Endpoints,
    ) {
        let mut last = self.last_refresh.lock().await;
        if last.is_some_and(|at| at.elapsed() < MIN_REFRESH_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        // One bound for the whole refresh, however many nodes stall.
        let metadata = match (endpoints.controller, kafka) {
            (None, Some(kafka)) => {
                let fetch = fetch_kafka_metadata(kafka, client.timeout(), endpoints);
                tokio::time::timeout(client.timeout(), fetch).await
            }
            _ => tokio::time::timeout(client.timeout(), fetch_metadata(client, endpoints)).await,
        };
        if let Ok(Some(metadata)) = metadata {
            self.install(&metadata);
        }
    }

    fn install(&self, metadata: &Metadata) {
        let mut leaders = self.leaders.lock().unwrap_or_else(|p| p.into_inner());
        leaders.clear();
        for topic in &metadata.topics {
            for partition in &topic.partitions {
                if let Some(leader) = partition.leader {
                    leaders.insert((topic.name.clone(), partition.partition), leader);
                }
            }
        }
    }
}

/// Metadata from the controller, or from the first broker that answers when the controller
/// does not (a broker answers from its cache, which may be stale). The controller gets half the
/// client's timeout so that a stalled controller still leaves time to ask the brokers.
async fn fetch_metadata(client: &NodeClient, endpoints: &Endpoints) -> Option<Metadata> {
    let half = client.timeout() / 2;
    if let Some(controller) = endpoints.controller {
        if let Ok(Ok(metadata)) = tokio::time::timeout(half, client.metadata(controller)).await {
            return Some(metadata);
        }
    }
    let mut asks = tokio::task::JoinSet::new();
    for addr in endpoints.brokers.values().copied() {
        let client = client.clone();
        asks.spawn(async move { client.metadata(addr).await });
    }
    while let Some(answer) = asks.join_next().await {
        if let Ok(Ok(metadata)) = answer {
            return Some(metadata);
        }
    }
    None
}

/// Kafka Metadata from the first broker that answers, asked through the client's Kafka links
/// in turn, each given an equal share of the client's timeout so that a stalled broker leaves
/// time to ask the others (any broker answers for every partition, from its own view).
async fn fetch_kafka_metadata(
    kafka: &KafkaClient,
    timeout: Duration,
    endpoints: &Endpoints,
) -> Option<Metadata> {
    let share = timeout / endpoints.kafka_brokers.len().max(1) as u32;
    for &addr in endpoints.kafka_brokers.values() {
        if let Ok(Ok(mut metadata)) = tokio::time::timeout(share, kafka.metadata(addr, &[])).await {
            metadata.renumber(&endpoints.kafka_ports);
            return Some(metadata);
        }
    }
    None
}
