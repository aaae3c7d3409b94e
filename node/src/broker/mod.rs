//! The broker role: hosts partition replicas, serves produce and consume requests, answers
//! followers' fetches as a leader and fetches from leaders as a follower, heartbeats to the
//! controller and applies the metadata it answers with, and keeps the ISR through AlterPartition.
//! The replication rules live in [`replica`]; the rest is split by job: [`registry`] (hosted
//! partitions, recovery, HW checkpoints), [`produce`] (the checked produce path and its limits),
//! [`fetch`] (what a leader answers consumers and followers, with the long-polls),
//! [`follower`] (the follower fetch loop), [`background`] (heartbeats, ISR checks, checkpoints,
//! AlterPartition) and [`client`] (internal HTTP calls). This module holds the broker itself and
//! its metadata cache. It knows no transport: the HTTP API (`crate::broker_http`) and the Kafka
//! wire protocol (`crate::kafka`) call [`produce`] and [`fetch`], and `crate::listeners` starts
//! them, so nothing here imports either.

pub mod background;
pub mod client;
pub mod fetch;
pub mod follower;
pub mod produce;
pub mod registry;
pub mod replica;

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
use replica::{IsrSettings, Transition};

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
}

type Shared = Arc<Broker>;

impl Broker {
    pub fn new(config: BrokerConfig) -> anyhow::Result<Arc<Broker>> {
        std::fs::create_dir_all(&config.data)?;
        let events = Arc::new(EventLog::open(&config.data, json!(config.id))?);
        let incarnation = rand::random::<u64>() >> 1;
        events.emit(
            "started",
            json!({"incarnation": incarnation, "kafka_version": config.version.as_str()}),
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
        let fenced: Vec<u32> = metadata
            .brokers
            .iter()
            .filter(|b| !b.alive)
            .map(|b| b.id)
            .collect();
        for topic in &metadata.topics {
            for pm in &topic.partitions {
                if !pm.replicas.contains(&self.config.id) {
                    continue;
                }
                let handle = match self.partition(&topic.name, pm.partition) {
                    Ok(h) => h,
                    Err(_) => match self.open_partition(&topic.name, pm.partition) {
                        Ok(h) => h,
                        Err(e) => {
                            tracing::error!("cannot open {}/{}: {e:#}", topic.name, pm.partition);
                            continue;
                        }
                    },
                };
                let transition = {
                    let mut r = handle.lock();
                    r.set_fenced_brokers(fenced.clone());
                    r.apply_metadata(pm, &topic.configs, now_ms(), &self.events)
                };
                handle.notify();
                match transition {
                    Ok(Transition::Follow {
                        leader,
                        leader_epoch,
                    }) => {
                        tokio::spawn(follower::follow(self.clone(), handle, leader, leader_epoch));
                    }
                    Ok(Transition::None) => {}
                    Err(e) => tracing::error!("{}/{}: {e}", topic.name, pm.partition),
                }
            }
        }
        *self.metadata.lock().unwrap_or_else(|p| p.into_inner()) = Some(metadata);
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
