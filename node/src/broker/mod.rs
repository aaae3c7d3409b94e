//! The broker role: hosts partition replicas, serves produce and consume requests, answers
//! followers' fetches as a leader and fetches from leaders as a follower, heartbeats to the
//! controller and applies the metadata it answers with, and keeps the ISR through AlterPartition.
//! The replication rules live in [`replica`]; the rest is split by job: [`registry`] (hosted
//! partitions, recovery, HW checkpoints), [`produce`] (the checked produce path and its limits),
//! [`fetch`] (what a leader answers consumers and followers, with the long-polls),
//! [`follower`] (the follower fetch loop), [`background`] (heartbeats, ISR checks, checkpoints,
//! AlterPartition), [`shutdown`] (the controlled shutdown a SIGTERM starts), [`clean_shutdown`]
//! (the marker that carries the broker epoch across a clean stop) and [`client`]
//! (internal HTTP calls). This module holds the broker itself, its metadata cache and its broker
//! epoch. It knows no transport: the HTTP API (`crate::broker_http`) and the Kafka wire protocol
//! (`crate::kafka`) call [`produce`] and [`fetch`], and `crate::listeners` starts them, so
//! nothing here imports either.

pub mod background;
pub mod clean_shutdown;
pub mod client;
pub mod fetch;
pub mod follower;
pub mod produce;
pub mod registry;
pub mod replica;
pub mod shutdown;

use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::api::*;
use crate::events::{now_ms, EventLog};
use crate::storage::LogConfig;
use crate::version::KafkaVersion;
pub use client::post_json;
use registry::PartitionHandle;
pub use registry::{parse_partition_dir, HW_CHECKPOINT};
use replica::{IsrSettings, Registrations, Transition};

/// Bounds on what one read may ask for (a produce's bounds are in [`produce`]).
pub const MAX_FETCH_RECORDS: usize = 100_000;
pub const MAX_WAIT_MS: u64 = 60_000;
const REPLICA_FETCH_MAX_RECORDS: usize = 10_000;
/// replica.lag.time.max.ms unless told otherwise (Kafka: 30 000). See docs/replication.md.
pub const DEFAULT_REPLICA_LAG_TIME_MAX_MS: u64 = 1_000;

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub id: u32,
    pub data: PathBuf,
    pub controller: String,
    pub peers: HashMap<u32, String>,
    pub cluster_id: String,
    pub replica_lag_time_max_ms: u64,
    pub replica_fetch_wait_max_ms: u64,
    pub replica_lag_max_messages: u64,
    /// The Kafka version whose replication rules this broker follows.
    pub version: KafkaVersion,
    pub heartbeat_interval_ms: u64,
    pub hw_checkpoint_interval_ms: u64,
    pub log: LogConfig,
    pub max_request_bytes: usize,
    /// The Kafka listener's advertised address (Kafka's `advertised.listeners`), registered with
    /// the controller and served to Kafka clients in Metadata; `None` without `--kafka-listen`.
    pub kafka_advertise: Option<String>,
}

pub struct Broker {
    pub config: BrokerConfig,
    pub incarnation: u64,
    http: reqwest::Client,
    events: Arc<EventLog>,
    partitions: RwLock<BTreeMap<(String, u32), Arc<PartitionHandle>>>,
    metadata: Mutex<Option<Metadata>>,
    /// This broker's broker epoch (KIP-903), as the controller last named it in a heartbeat
    /// answer: the epoch of this process's registration. None until then, and always without
    /// broker epochs.
    broker_epoch: Mutex<Option<u64>>,
    /// The broker epoch the previous process stopped cleanly with (its clean-shutdown marker,
    /// consumed at start), named in heartbeats until this process knows its own.
    previous_broker_epoch: Option<u64>,
    lifecycle: shutdown::Lifecycle,
    /// Producer ids handed out by this process ([`Broker::new_producer_id`]).
    producers_issued: std::sync::atomic::AtomicU64,
}

type Shared = Arc<Broker>;

impl Broker {
    /// A producer id no other broker or process of this cluster gives out: the broker id
    /// (15 bits), 24 bits of this process's random incarnation and a 24-bit counter, so ids of
    /// different brokers never collide and a restarted broker's rarely (1 in 16.7 million).
    /// Kafka hands out blocks of ids from the controller (KIP-730); what matters to the leaders
    /// is only that two producers never share one.
    pub fn new_producer_id(&self) -> i64 {
        use std::sync::atomic::Ordering;
        let n = self.producers_issued.fetch_add(1, Ordering::Relaxed) & 0xff_ffff;
        let id =
            ((self.config.id as u64 & 0x7fff) << 48) | ((self.incarnation & 0xff_ffff) << 24) | n;
        id as i64
    }

    pub fn new(config: BrokerConfig) -> anyhow::Result<Arc<Broker>> {
        std::fs::create_dir_all(&config.data)?;
        let events = Arc::new(EventLog::open(&config.data, json!(config.id))?);
        let incarnation = rand::random::<u64>() >> 1;
        // Consumed before anything else, so that a crash from here on is an unclean shutdown.
        let previous_broker_epoch = clean_shutdown::take(&config.data)?;
        events.emit(
            "started",
            json!({"incarnation": incarnation, "kafka_version": config.version.as_str(),
                   "previous_broker_epoch": previous_broker_epoch}),
        );
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        let broker = Arc::new(Broker {
            config,
            incarnation,
            http,
            events,
            partitions: RwLock::new(BTreeMap::new()),
            metadata: Mutex::new(None),
            broker_epoch: Mutex::new(None),
            previous_broker_epoch,
            lifecycle: shutdown::Lifecycle::default(),
            producers_issued: std::sync::atomic::AtomicU64::new(0),
        });
        broker.recover_partitions()?;
        Ok(broker)
    }

    pub(crate) fn isr_settings(&self) -> IsrSettings {
        IsrSettings {
            lag_time_max_ms: self.config.replica_lag_time_max_ms,
            lag_max_messages: self.config.replica_lag_max_messages,
        }
    }

    fn controller_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.config.controller)
    }

    /// Applies a metadata snapshot from the controller to every replica this broker hosts.
    fn apply_metadata(self: &Arc<Self>, metadata: Metadata) {
        let registrations = Registrations::new(&metadata.brokers, self.broker_epoch());
        for topic in &metadata.topics {
            for pm in &topic.partitions {
                if pm.replicas.contains(&self.config.id) {
                    self.apply_partition(topic, pm, &registrations);
                }
            }
        }
        *self.metadata.lock().unwrap_or_else(|p| p.into_inner()) = Some(metadata);
    }

    /// One partition's metadata: the replica applies it, and the broker starts a follower fetch
    /// loop when the replica now follows a new leader epoch, or stops fetching during a
    /// controlled shutdown.
    fn apply_partition(
        self: &Arc<Self>,
        topic: &TopicMetadata,
        pm: &PartitionMetadata,
        registrations: &Registrations,
    ) {
        let Some(handle) = self.partition_or_open(&topic.name, pm.partition) else {
            return;
        };
        let (transition, changed) = {
            let mut r = handle.lock();
            r.set_registrations(registrations.clone());
            let before = (r.leader_epoch(), r.partition_epoch());
            let transition = r.apply_metadata(pm, &topic.configs, now_ms(), &self.events);
            let after = (r.leader_epoch(), r.partition_epoch());
            (transition, before != after)
        };
        handle.notify();
        if changed && self.stops_fetching(pm) {
            handle.stop_fetching();
            return;
        }
        match transition {
            Ok(Transition::Follow {
                leader,
                leader_epoch,
            }) => {
                handle.start_fetching();
                tokio::spawn(follower::follow(self.clone(), handle, leader, leader_epoch));
            }
            Ok(Transition::None) => {}
            Err(e) => tracing::error!("{}/{}: {e}", topic.name, pm.partition),
        }
    }

    fn partition_or_open(&self, topic: &str, partition: u32) -> Option<Arc<PartitionHandle>> {
        if let Ok(handle) = self.partition(topic, partition) {
            return Some(handle);
        }
        match self.open_partition(topic, partition) {
            Ok(handle) => Some(handle),
            Err(e) => {
                tracing::error!("cannot open {topic}/{partition}: {e:#}");
                None
            }
        }
    }

    /// Kafka's `ReplicaManager.applyLocalFollowersDelta` (3.7.0): in controlled shutdown, a
    /// partition whose metadata changed and now has no leader, or an ISR without this broker,
    /// is not fetched any more (this broker is a follower there, or no one leads).
    fn stops_fetching(&self, pm: &PartitionMetadata) -> bool {
        let me = self.config.id;
        self.lifecycle.in_controlled_shutdown()
            && pm.leader != Some(me)
            && (pm.leader.is_none() || !pm.isr.contains(&me))
    }

    /// This broker's broker epoch, when the controller has named it.
    pub fn broker_epoch(&self) -> Option<u64> {
        *self.broker_epoch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What a heartbeat names as `previous_broker_epoch`: the epoch the previous process
    /// stopped cleanly with, until the controller has named this process's own (Kafka's
    /// `BrokerLifecycleManager` sends it in the registration, and only there).
    fn previous_broker_epoch(&self) -> Option<u64> {
        self.previous_broker_epoch
            .filter(|_| self.broker_epoch().is_none())
    }

    /// Keeps the broker epoch a heartbeat answer named, and tells every replica when it changed
    /// (a leader names its own in AlterPartition, a follower in every fetch).
    fn set_broker_epoch(&self, epoch: u64) {
        let previous = self
            .broker_epoch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(epoch);
        if previous == Some(epoch) {
            return;
        }
        let registrations = Registrations::new(&self.cached_metadata().brokers, Some(epoch));
        for handle in self.handles() {
            handle.lock().set_registrations(registrations.clone());
        }
    }

    /// Kafka's RUNNING: the controller's metadata lists this broker registered and unfenced.
    fn is_running(&self) -> bool {
        let me = self.config.id;
        self.cached_metadata()
            .brokers
            .iter()
            .any(|b| b.id == me && b.alive)
    }

    fn metadata_version(&self) -> u64 {
        self.metadata
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(0, |m| m.metadata_version)
    }

    /// The controller's metadata as this broker last received it (empty before registration).
    pub(crate) fn cached_metadata(&self) -> Metadata {
        let cached = self
            .metadata
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        cached.unwrap_or_else(|| Metadata {
            cluster_id: self.config.cluster_id.clone(),
            ..Metadata::default()
        })
    }

    /// Starts the background loops (heartbeats, ISR checks, HW checkpoints) for the life of
    /// the process. Call it once the Kafka listener, if any, is bound: the first heartbeat
    /// advertises that listener to the controller.
    pub fn start_background(self: &Arc<Self>) {
        tokio::spawn(background::heartbeat_loop(self.clone()));
        tokio::spawn(background::isr_loop(self.clone()));
        tokio::spawn(background::checkpoint_loop(self.clone()));
    }

    pub fn state(&self) -> BrokerState {
        BrokerState {
            broker_id: self.config.id,
            cluster_id: self.config.cluster_id.clone(),
            incarnation: self.incarnation,
            kafka_version: self.config.version.as_str().to_string(),
            registered: self.metadata_version() > 0,
            partitions: self.handles().iter().map(|h| h.state()).collect(),
        }
    }
}

/// A broker for unit tests: its data dir in `dir`, a controller nobody listens at (the
/// background loops are not started), and metadata built by [`testing::metadata`].
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub fn broker(dir: &std::path::Path, id: u32, version: KafkaVersion) -> Arc<Broker> {
        Broker::new(BrokerConfig {
            id,
            data: dir.to_path_buf(),
            controller: "127.0.0.1:9".into(),
            peers: HashMap::new(),
            cluster_id: "c".into(),
            replica_lag_time_max_ms: 1_000,
            replica_fetch_wait_max_ms: 100,
            replica_lag_max_messages: 0,
            version,
            heartbeat_interval_ms: 100,
            hw_checkpoint_interval_ms: 1_000,
            log: LogConfig::default(),
            max_request_bytes: 1 << 20,
            kafka_advertise: None,
        })
        .unwrap()
    }

    /// Topic `t` with one partition on brokers 1, 2 and 3, all alive.
    pub fn metadata(
        metadata_version: u64,
        leader: Option<u32>,
        leader_epoch: u32,
        partition_epoch: u32,
        isr: &[u32],
    ) -> Metadata {
        let brokers = (1..=3)
            .map(|id| BrokerStatus {
                id,
                alive: true,
                epoch: None,
                shutting_down: false,
                kafka_address: None,
            })
            .collect();
        let partition = super::replica::testing::pm(leader, leader_epoch, partition_epoch, isr);
        Metadata {
            cluster_id: "c".into(),
            metadata_version,
            brokers,
            topics: vec![TopicMetadata {
                name: "t".into(),
                configs: TopicConfigs {
                    min_insync_replicas: 1,
                    unclean_leader_election_enable: false,
                },
                partitions: vec![partition],
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::clean_shutdown::{CleanShutdown, CLEAN_SHUTDOWN_FILE};
    use super::testing::{broker, metadata};
    use crate::version::KafkaVersion;

    /// KAFKA-15582 / KAFKA-15586 (Kafka 3.8.0): a clean shutdown leaves the broker epoch in the
    /// data dir's marker; the next process consumes it at start, before it serves, and names
    /// it as `previous_broker_epoch` until it learns its own epoch. A process that ends without
    /// the clean shutdown (a crash: here it is dropped) leaves none, so the one after it names
    /// none; and a stop before any epoch was known has nothing to record.
    #[test]
    fn a_clean_shutdown_leaves_the_broker_epoch_for_the_next_process_and_a_crash_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join(CLEAN_SHUTDOWN_FILE);
        let first = broker(dir.path(), 2, KafkaVersion::V4_1);
        first.open_partition("t", 0).unwrap();
        assert_eq!(first.previous_broker_epoch(), None, "a first start");
        first.set_broker_epoch(9);
        assert_eq!(first.shutdown(), Some(9));
        let text = std::fs::read(&marker).unwrap();
        let written: CleanShutdown = serde_json::from_slice(&text).unwrap();
        assert_eq!(written, CleanShutdown { broker_epoch: 9 });
        drop(first);

        let second = broker(dir.path(), 2, KafkaVersion::V4_1);
        assert!(!marker.exists(), "consumed at start");
        assert_eq!(second.previous_broker_epoch(), Some(9));
        second.set_broker_epoch(12);
        assert_eq!(second.previous_broker_epoch(), None, "registered: no more");
        drop(second);

        let third = broker(dir.path(), 2, KafkaVersion::V4_1);
        assert_eq!(third.previous_broker_epoch(), None, "the second crashed");
        assert_eq!(third.shutdown(), None, "no epoch known: nothing to record");
        assert!(!marker.exists());
    }

    /// Kafka 3.7.0 `ReplicaManager.applyLocalFollowersDelta`: during a controlled shutdown, a
    /// partition whose metadata changes to one with no leader or an ISR without this broker is
    /// no longer fetched (and a new leader epoch there starts no fetcher); a change that keeps
    /// it in the ISR, or no change at all, leaves the fetcher alone; before the controlled
    /// shutdown nothing of the kind happens.
    #[tokio::test]
    async fn in_controlled_shutdown_fetching_stops_where_a_change_leaves_no_leader_or_isr() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path(), 2, KafkaVersion::V4_1);
        b.apply_metadata(metadata(1, Some(1), 0, 0, &[1, 3]));
        let h = b.partition("t", 0).unwrap();
        assert!(!h.fetching_stopped(), "not in controlled shutdown");
        b.lifecycle.begin_controlled_shutdown();
        b.apply_metadata(metadata(2, Some(1), 0, 0, &[1, 3]));
        assert!(!h.fetching_stopped(), "no change to this partition");
        b.apply_metadata(metadata(3, Some(1), 0, 1, &[1, 2, 3]));
        assert!(!h.fetching_stopped(), "a change that keeps it in the ISR");
        b.apply_metadata(metadata(4, Some(1), 0, 2, &[1, 3]));
        assert!(h.fetching_stopped(), "it left the ISR");
        b.apply_metadata(metadata(5, Some(3), 1, 3, &[3]));
        assert!(h.fetching_stopped(), "a new leader epoch starts no fetcher");
        let dir = tempfile::tempdir().unwrap();
        let leaderless = broker(dir.path(), 2, KafkaVersion::V0_10_2);
        leaderless.apply_metadata(metadata(1, Some(1), 0, 0, &[1, 2, 3]));
        leaderless.lifecycle.begin_controlled_shutdown();
        leaderless.apply_metadata(metadata(2, None, 1, 1, &[1, 2, 3]));
        let h = leaderless.partition("t", 0).unwrap();
        assert!(h.fetching_stopped(), "no leader");
    }
}
