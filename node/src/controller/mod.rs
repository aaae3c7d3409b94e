//! The controller role: the cluster's metadata (topics, replica assignment and, per partition,
//! leader, leader_epoch, partition_epoch, ISR and ELR) and every broker's registration (broker
//! epoch, fenced, in controlled shutdown), kept durably; broker liveness by heartbeats; leader
//! elections; and AlterPartition, the only way a leader may change its ISR, fenced by
//! leader_epoch, partition_epoch and broker epochs. It never calls a broker: brokers heartbeat to
//! it and learn metadata from the answers. Which Kafka version's rules apply is
//! [`crate::version::Rules`], asked rule by rule.
//!
//! This module is the pure state machine ([`ControllerState`]): its durable state, topics and
//! the events it writes. Broker liveness (registration, fencing, controlled shutdown, session
//! expiry) is [`liveness`]; how one partition's ISR, ELR and leader change is [`election`];
//! AlterPartition is [`alter_partition`]; the HTTP server and the session-expiry task around it
//! live in [`http`].

mod alter_partition;
pub mod election;
pub mod http;
mod liveness;

pub use election::{change, elect, ChangeRules};
pub use http::run;
pub use liveness::ContactTimes;

use crate::version::{KafkaVersion, Rules};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::api::*;
use crate::events::EventLog;
use crate::storage::checkpoint::write_atomic;
use liveness::{Liveness, Registration, Update};

/// The broker session timeout unless told otherwise (Kafka's `broker.session.timeout.ms` is
/// 9000). Kept below the brokers' default replica.lag.time.max.ms, in Kafka's proportion
/// (9 s < 30 s), so a dead broker is fenced by the controller before its leader drops it.
pub const DEFAULT_SESSION_TIMEOUT_MS: u64 = 750;
// Kafka's proportion, checked when the node is compiled.
const _: () = assert!(DEFAULT_SESSION_TIMEOUT_MS < crate::broker::DEFAULT_REPLICA_LAG_TIME_MAX_MS);
/// Absurd sizes are refused rather than attempted.
pub const MAX_PARTITIONS: i64 = 10_000;
const METADATA_FILE: &str = "controller-metadata.json";

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub data: PathBuf,
    pub cluster_id: String,
    pub session_timeout_ms: u64,
    /// The Kafka version whose rules the controller follows.
    pub version: KafkaVersion,
}

/// What survives a controller restart: KRaft's metadata image (topics, partitions, broker
/// registrations), written atomically on every change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Durable {
    cluster_id: String,
    metadata_version: u64,
    /// Every broker that ever registered, with its latest registration (KRaft keeps them in its
    /// log), so a restarted controller knows each broker's incarnation, broker epoch and
    /// whether it is fenced or in controlled shutdown.
    #[serde(default)]
    registrations: BTreeMap<u32, Registration>,
    topics: Vec<TopicMetadata>,
    /// Each broker's advertised Kafka listener as it last registered it, served in the metadata
    /// so every broker can answer a Kafka Metadata request with the others' addresses.
    #[serde(default)]
    kafka_addresses: BTreeMap<u32, String>,
}

pub struct ControllerState {
    config: ControllerConfig,
    rules: Rules,
    durable: Durable,
    liveness: BTreeMap<u32, Liveness>,
    contacts: Arc<ContactTimes>,
    events: Arc<EventLog>,
}

impl ControllerState {
    /// Loads the metadata checkpoint (if any) and, as Kafka's `ClusterControlManager.activate`
    /// (3.7.0; unchanged in trunk) registers every broker with the heartbeat manager with its
    /// stored fenced flag, restores each broker as it was: an unfenced broker gets a fresh
    /// session from now, a fenced one stays fenced until a heartbeat shows it has caught up.
    /// Kafka 0.10.2 differs in mechanism, not in outcome: its controller reads the live brokers
    /// from ZooKeeper on failover (0.10.2.1 `KafkaController.initializeControllerContext`,
    /// `zkUtils.getAllBrokersInCluster`), sessions that a controller failover does not end.
    ///
    /// 0.10.2.1's controller also forgets which brokers are shutting down
    /// (`initializeControllerContext`: `shuttingDownBrokerIds = mutable.Set.empty`); their next
    /// ControlledShutdownRequest adds them again.
    pub fn open(config: ControllerConfig, events: Arc<EventLog>) -> anyhow::Result<Self> {
        let mut durable = load(&config)?;
        if config.version.rules().zk_controlled_shutdown {
            for registration in durable.registrations.values_mut() {
                registration.in_controlled_shutdown = false;
            }
        }
        let now = Instant::now();
        let contacts = Arc::new(ContactTimes::default());
        for (&id, registration) in &durable.registrations {
            contacts.start(id, registration.incarnation, now);
        }
        if !durable.registrations.is_empty() {
            let with = |fenced: bool| -> Vec<u32> {
                let registrations = durable.registrations.iter();
                registrations
                    .filter(|(_, r)| r.fenced == fenced)
                    .map(|(&id, _)| id)
                    .collect()
            };
            events.emit(
                "brokers_restored",
                json!({"unfenced": with(false), "fenced": with(true)}),
            );
        }
        let liveness = durable
            .registrations
            .keys()
            .map(|&id| (id, Liveness::default()))
            .collect();
        Ok(ControllerState {
            rules: config.version.rules(),
            config,
            durable,
            liveness,
            contacts,
            events,
        })
    }

    /// The contact times heartbeats update before they take the controller's lock.
    pub fn contact_times(&self) -> Arc<ContactTimes> {
        self.contacts.clone()
    }

    fn persist(&mut self) -> Result<(), ApiError> {
        self.durable.metadata_version += 1;
        let bytes = serde_json::to_vec_pretty(&self.durable).expect("metadata serializes");
        write_atomic(&self.config.data.join(METADATA_FILE), &bytes).map_err(ApiError::storage)
    }

    /// Kafka's `ClusterControlManager.isActive`: registered, unfenced and not in controlled
    /// shutdown. Only these may lead, join an ISR or get new replicas.
    fn active_brokers(&self) -> Vec<u32> {
        self.durable
            .registrations
            .iter()
            .filter(|(_, r)| !r.fenced && !r.in_controlled_shutdown)
            .map(|(&id, _)| id)
            .collect()
    }

    #[cfg(test)]
    fn is_alive(&self, id: u32) -> bool {
        self.durable
            .registrations
            .get(&id)
            .is_some_and(|r| !r.fenced)
    }

    pub fn metadata(&self) -> Metadata {
        Metadata {
            cluster_id: self.durable.cluster_id.clone(),
            metadata_version: self.durable.metadata_version,
            brokers: self
                .durable
                .registrations
                .iter()
                .map(|(&id, r)| BrokerStatus {
                    id,
                    alive: !r.fenced,
                    epoch: r.epoch,
                    shutting_down: r.in_controlled_shutdown,
                    kafka_address: self.durable.kafka_addresses.get(&id).cloned(),
                })
                .collect(),
            topics: self.durable.topics.clone(),
        }
    }

    fn check_cluster(&self, cluster_id: &str) -> Result<(), ApiError> {
        if cluster_id != self.durable.cluster_id {
            return Err(ApiError::new(
                ErrorCode::InconsistentClusterId,
                format!(
                    "request for cluster {cluster_id:?}; this controller serves {:?}",
                    self.durable.cluster_id
                ),
            ));
        }
        Ok(())
    }

    pub fn create_topic(&mut self, req: CreateTopicRequest) -> Result<TopicMetadata, ApiError> {
        validate_topic_name(&req.name)?;
        if self.durable.topics.iter().any(|t| t.name == req.name) {
            return Err(ApiError::new(
                ErrorCode::TopicAlreadyExists,
                format!("topic {:?} already exists", req.name),
            ));
        }
        if !(1..=MAX_PARTITIONS).contains(&req.partitions) {
            return Err(ApiError::new(
                ErrorCode::InvalidPartitions,
                format!(
                    "partitions must be 1 to {MAX_PARTITIONS} (got {})",
                    req.partitions
                ),
            ));
        }
        let brokers = self.active_brokers();
        if req.replication_factor < 1 || req.replication_factor > brokers.len() as i64 {
            return Err(ApiError::new(
                ErrorCode::InvalidReplicationFactor,
                format!(
                    "replication_factor must be 1 to the {} live broker(s) (got {})",
                    brokers.len(),
                    req.replication_factor
                ),
            ));
        }
        let rf = req.replication_factor as u32;
        let configs = parse_topic_configs(&req.configs, rf)?;
        let start = self.durable.topics.len();
        let partitions = (0..req.partitions as u32)
            .map(|p| {
                let replicas = assign_replicas(&brokers, start + p as usize, rf as usize);
                PartitionMetadata {
                    elr: Vec::new(),
                    last_known_elr: Vec::new(),
                    partition: p,
                    leader: Some(replicas[0]),
                    leader_epoch: 0,
                    partition_epoch: 0,
                    isr: replicas.clone(),
                    replicas,
                    unclean: false,
                }
            })
            .collect();
        let topic = TopicMetadata {
            name: req.name,
            configs,
            partitions,
        };
        for p in &topic.partitions {
            let mut event = json!({"topic": topic.name, "partition": p.partition,
                "leader": p.leader, "previous_leader": null, "leader_epoch": 0,
                "partition_epoch": 0, "isr": p.isr, "unclean": false, "reason": "topic_created"});
            self.add_elr(&mut event, p, None);
            self.events.emit("election", event);
        }
        self.durable.topics.push(topic.clone());
        self.persist()?;
        Ok(topic)
    }

    /// Kafka's `generateLeaderAndIsrUpdates`: every partition `select` picks gets a target ISR
    /// without `update.remove` and `update.unclean_shutdown`, and [`change`] elects where the
    /// leader may not stay. Writes the events; the caller persists, in one write with the
    /// broker change that caused it.
    ///
    /// With 0.10.2.1's rules a leader that is shutting down (it leads a partition no other ISR
    /// member could take) may stay, though no election picks it: `onBrokerFailure` elects only
    /// where the leader died, and `OfflinePartitionLeaderSelector` picks among
    /// `liveBrokerIds`, which leaves out `shuttingDownBrokerIds`.
    fn update_partitions(&mut self, update: Update, select: impl Fn(&PartitionMetadata) -> bool) {
        let leaves = |b: u32| Some(b) == update.remove || Some(b) == update.unclean_shutdown;
        let acceptable: Vec<u32> = self
            .active_brokers()
            .into_iter()
            .chain(update.add)
            .filter(|&b| !leaves(b))
            .collect();
        let shutting_down: Vec<u32> = self
            .durable
            .registrations
            .iter()
            .filter(|(_, r)| self.rules.zk_controlled_shutdown && !r.fenced)
            .filter(|(&b, r)| r.in_controlled_shutdown && !leaves(b))
            .map(|(&b, _)| b)
            .collect();
        let mut changes = Vec::new();
        for topic in &mut self.durable.topics {
            let rules = ChangeRules {
                elr: self.rules.eligible_leader_replicas,
                min_isr: effective_min_isr(topic),
                unclean_ok: topic.configs.unclean_leader_election_enable,
                acceptable: &acceptable,
                unclean_shutdown: update.unclean_shutdown,
            };
            for p in topic.partitions.iter_mut().filter(|p| select(p)) {
                let before = p.clone();
                let target = p.isr.iter().copied().filter(|&b| !leaves(b)).collect();
                let with_leader: Vec<u32>;
                let rules = match p.leader.filter(|l| shutting_down.contains(l)) {
                    Some(leader) => {
                        with_leader = acceptable.iter().copied().chain([leader]).collect();
                        ChangeRules {
                            acceptable: &with_leader,
                            ..rules
                        }
                    }
                    None => rules,
                };
                if change(p, target, &rules) {
                    changes.push(Change::new(&topic.name, before, p, update.reason));
                }
            }
        }
        self.record(changes);
    }

    /// One event per changed partition: `election` when its leader changed, `isr_change`
    /// otherwise (0.10.2.1's `removeReplicaFromIsr` bumps the leader epoch of an ISR change
    /// too; the event's `leader_epoch` shows it).
    fn record(&self, changes: Vec<Change>) {
        for c in changes {
            let (before, p) = (&c.before, &c.after);
            if p.leader != before.leader {
                let mut event = json!({"topic": c.topic, "partition": p.partition,
                    "leader": p.leader, "previous_leader": before.leader,
                    "leader_epoch": p.leader_epoch, "partition_epoch": p.partition_epoch,
                    "isr": p.isr, "unclean": p.unclean, "reason": c.reason});
                self.add_elr(&mut event, p, None);
                // KIP-966's last resort, which Kafka marks unclean whatever the topic's
                // unclean.leader.election.enable: the leader recorded when ISR and ELR emptied
                // (trunk `PartitionChangeBuilder.canElectLastKnownLeader`). Only it can be the
                // winner of an unclean election that names the last known leader: when it is
                // not acceptable, the topic's unclean election picks another broker.
                if p.unclean
                    && p.leader.is_some()
                    && before.last_known_elr.first() == p.leader.as_ref()
                {
                    event["last_known_leader"] = json!(true);
                }
                self.events.emit("election", event);
            } else {
                let mut event = json!({"topic": c.topic, "partition": p.partition,
                    "isr_before": before.isr, "isr": p.isr, "leader_epoch": p.leader_epoch,
                    "partition_epoch": p.partition_epoch, "reason": c.reason});
                self.add_elr(&mut event, p, Some(before));
                self.events.emit("isr_change", event);
            }
        }
    }

    /// With ELR on, an `election` or `isr_change` event names the ELR and the last known
    /// leader (and, for an `isr_change`, the ELR before); without ELR they are absent, so a
    /// reader can tell "no ELR" from "an empty ELR".
    fn add_elr(
        &self,
        event: &mut serde_json::Value,
        p: &PartitionMetadata,
        before: Option<&PartitionMetadata>,
    ) {
        if !self.rules.eligible_leader_replicas {
            return;
        }
        event["elr"] = json!(p.elr);
        event["last_known_elr"] = json!(p.last_known_elr);
        if let Some(before) = before {
            event["elr_before"] = json!(before.elr);
        }
    }
}

/// Reads the metadata checkpoint of `config.data`, or starts empty.
fn load(config: &ControllerConfig) -> anyhow::Result<Durable> {
    let path = config.data.join(METADATA_FILE);
    let durable = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<Durable>(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Durable {
                cluster_id: config.cluster_id.clone(),
                ..Durable::default()
            })
        }
        Err(e) => return Err(e.into()),
    };
    if durable.cluster_id != config.cluster_id {
        anyhow::bail!(
            "{} belongs to cluster {:?}, not {:?}",
            path.display(),
            durable.cluster_id,
            config.cluster_id
        );
    }
    Ok(durable)
}

/// One partition's change, for its event.
struct Change {
    topic: String,
    before: PartitionMetadata,
    after: PartitionMetadata,
    reason: &'static str,
}

impl Change {
    fn new(
        topic: &str,
        before: PartitionMetadata,
        after: &PartitionMetadata,
        reason: &'static str,
    ) -> Self {
        Change {
            topic: topic.to_string(),
            before,
            after: after.clone(),
            reason,
        }
    }
}

/// `ReplicationControlManager.getTopicEffectiveMinIsr`: min(min.insync.replicas, replication
/// factor).
fn effective_min_isr(topic: &TopicMetadata) -> usize {
    let rf = topic.partitions.first().map_or(0, |p| p.replicas.len());
    (topic.configs.min_insync_replicas as usize).min(rf)
}

/// Kafka's round-robin assignment (without racks): partition p's replicas start at broker
/// `start + p` and follow in broker-id order, so leaders and followers spread evenly.
pub fn assign_replicas(brokers: &[u32], first: usize, rf: usize) -> Vec<u32> {
    (0..rf)
        .map(|i| brokers[(first + i) % brokers.len()])
        .collect()
}

fn parse_topic_configs(
    raw: &BTreeMap<String, serde_json::Value>,
    rf: u32,
) -> Result<TopicConfigs, ApiError> {
    let mut configs = TopicConfigs {
        min_insync_replicas: 1,
        unclean_leader_election_enable: false,
    };
    let bad = |m: String| ApiError::new(ErrorCode::InvalidConfig, m);
    for (key, value) in raw {
        match key.as_str() {
            "min.insync.replicas" => {
                let n = value
                    .as_u64()
                    .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
                    .ok_or_else(|| {
                        bad(format!(
                            "min.insync.replicas must be a number (got {value})"
                        ))
                    })?;
                if n < 1 || n > rf as u64 {
                    return Err(bad(format!(
                        "min.insync.replicas must be 1 to the replication factor {rf} (got {n})"
                    )));
                }
                configs.min_insync_replicas = n as u32;
            }
            "unclean.leader.election.enable" => {
                configs.unclean_leader_election_enable = value
                    .as_bool()
                    .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
                    .ok_or_else(|| {
                        bad(format!(
                            "unclean.leader.election.enable must be true or false (got {value})"
                        ))
                    })?;
            }
            other => return Err(bad(format!("unknown topic config {other:?}"))),
        }
    }
    Ok(configs)
}

/// Helpers the controller's unit tests share: a controller in a temp dir, heartbeats, topics.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub fn open(dir: &std::path::Path, version: KafkaVersion) -> ControllerState {
        let config = ControllerConfig {
            data: dir.to_path_buf(),
            cluster_id: "c".into(),
            session_timeout_ms: 1000,
            version,
        };
        let events = Arc::new(EventLog::open(dir, json!("controller")).unwrap());
        ControllerState::open(config, events).unwrap()
    }

    pub fn controller_of(version: KafkaVersion) -> (tempfile::TempDir, ControllerState) {
        let dir = tempfile::tempdir().unwrap();
        let state = open(dir.path(), version);
        (dir, state)
    }

    pub fn controller() -> (tempfile::TempDir, ControllerState) {
        controller_of(KafkaVersion::default())
    }

    pub fn request(id: u32, incarnation: u64, metadata_version: u64) -> HeartbeatRequest {
        HeartbeatRequest {
            want_shutdown: false,
            broker_epoch: None,
            previous_broker_epoch: None,
            cluster_id: "c".into(),
            broker_id: id,
            incarnation,
            registers_fenced: true,
            metadata_version,
            kafka_address: None,
        }
    }

    pub fn try_beat(
        c: &mut ControllerState,
        id: u32,
        incarnation: u64,
        metadata_version: u64,
    ) -> Result<HeartbeatResponse, ApiError> {
        let mut req = request(id, incarnation, metadata_version);
        req.registers_fenced = c.rules.registers_fenced;
        c.heartbeat(req)
    }

    /// Registers (or renews) a broker and, with a second heartbeat that shows it caught up on
    /// metadata, unfences it.
    pub fn beat(c: &mut ControllerState, id: u32, incarnation: u64) {
        let resp = try_beat(c, id, incarnation, 0).unwrap();
        try_beat(c, id, incarnation, resp.metadata_version).unwrap();
    }

    /// Makes broker `id`'s session look silent for longer than the session timeout.
    pub fn expire(c: &mut ControllerState, id: u32) {
        c.contacts.backdate(id, std::time::Duration::from_secs(5));
    }

    pub fn topic(c: &mut ControllerState, rf: i64, min_isr: u32) -> TopicMetadata {
        let mut configs = BTreeMap::new();
        configs.insert("min.insync.replicas".to_string(), json!(min_isr));
        c.create_topic(CreateTopicRequest {
            name: "t".into(),
            partitions: 1,
            replication_factor: rf,
            configs,
        })
        .unwrap()
    }

    pub fn partition(c: &ControllerState) -> PartitionMetadata {
        c.metadata().topics[0].partitions[0].clone()
    }

    /// The events of `kind` the controller wrote.
    pub fn events(dir: &std::path::Path, kind: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["type"] == kind)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn round_robin_spreads_leaders_evenly() {
        let brokers = [1, 2, 3];
        let leaders: Vec<u32> = (0..6).map(|p| assign_replicas(&brokers, p, 3)[0]).collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
        assert_eq!(assign_replicas(&brokers, 1, 2), vec![2, 3]);
    }

    #[test]
    fn topic_creation_refuses_absurd_sizes() {
        let (_dir, mut c) = controller();
        beat(&mut c, 1, 1);
        let mut req = CreateTopicRequest {
            name: "t".into(),
            partitions: 1_000_000_000,
            replication_factor: 1,
            configs: BTreeMap::new(),
        };
        assert_eq!(
            c.create_topic(req.clone()).unwrap_err().error,
            ErrorCode::InvalidPartitions
        );
        req.partitions = 1;
        req.replication_factor = 2;
        assert_eq!(
            c.create_topic(req.clone()).unwrap_err().error,
            ErrorCode::InvalidReplicationFactor
        );
        req.replication_factor = 1;
        req.name = "../../etc".into();
        assert_eq!(
            c.create_topic(req).unwrap_err().error,
            ErrorCode::InvalidTopicException
        );
    }

    #[test]
    fn the_effective_min_isr_is_capped_at_the_replication_factor() {
        let (_dir, mut c) = controller();
        beat(&mut c, 1, 1);
        let mut t = topic(&mut c, 1, 1);
        assert_eq!(effective_min_isr(&t), 1);
        t.configs.min_insync_replicas = 3;
        assert_eq!(effective_min_isr(&t), 1);
    }
}
