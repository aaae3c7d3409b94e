//! The controller role: the cluster's metadata (topics, replica assignment and, per partition,
//! leader, leader_epoch, partition_epoch and ISR), kept durably; broker liveness by heartbeats;
//! leader elections, clean from the ISR or unclean from any live replica when the topic allows
//! it; and AlterPartition, the only way a leader may change its ISR, fenced by leader_epoch and
//! partition_epoch. It never calls a broker: brokers heartbeat to it and learn metadata from the
//! answers. This module is the pure state machine ([`ControllerState`]); the HTTP server and the
//! session-expiry ticker around it live in [`http`].

pub mod http;
pub use http::run;

use crate::version::KafkaVersion;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::api::*;
use crate::events::EventLog;
use crate::storage::checkpoint::write_atomic;

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

/// What survives a controller restart.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Durable {
    cluster_id: String,
    metadata_version: u64,
    /// Every broker id that ever registered.
    brokers: Vec<u32>,
    /// Each broker's last registered incarnation (KRaft keeps registrations in its log), so a
    /// broker restarted while the controller was down is still recognised as restarted.
    #[serde(default)]
    incarnations: BTreeMap<u32, u64>,
    topics: Vec<TopicMetadata>,
    /// Each broker's advertised Kafka listener as it last registered it, served in the metadata
    /// so every broker can answer a Kafka Metadata request with the others' addresses.
    #[serde(default)]
    kafka_addresses: BTreeMap<u32, String>,
}

#[derive(Debug)]
struct Liveness {
    incarnation: u64,
    last_heartbeat: Instant,
    /// Unfenced: the broker may lead and be in an ISR.
    alive: bool,
    /// The metadata version that holds this incarnation's registration. Like KRaft's
    /// `registerBrokerRecordOffset`, a registered broker stays fenced until a heartbeat shows it
    /// has caught up to it (BrokerHeartbeatManager `calculateNextBrokerState`).
    registered_version: u64,
}

pub struct ControllerState {
    config: ControllerConfig,
    durable: Durable,
    liveness: BTreeMap<u32, Liveness>,
    events: Arc<EventLog>,
}

impl ControllerState {
    /// Loads the metadata checkpoint (if any). Brokers known before a restart are given one
    /// session timeout from now to heartbeat before they are fenced.
    pub fn open(config: ControllerConfig, events: Arc<EventLog>) -> anyhow::Result<Self> {
        let path = config.data.join(METADATA_FILE);
        let durable = match std::fs::read(&path) {
            Ok(bytes) => {
                let durable: Durable = serde_json::from_slice(&bytes)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                if durable.cluster_id != config.cluster_id {
                    anyhow::bail!(
                        "{} belongs to cluster {:?}, not {:?}",
                        path.display(),
                        durable.cluster_id,
                        config.cluster_id
                    );
                }
                durable
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Durable {
                cluster_id: config.cluster_id.clone(),
                ..Durable::default()
            },
            Err(e) => return Err(e.into()),
        };
        let now = Instant::now();
        let liveness = durable
            .brokers
            .iter()
            .map(|&id| {
                let l = Liveness {
                    incarnation: durable.incarnations.get(&id).copied().unwrap_or(0),
                    last_heartbeat: now,
                    alive: true,
                    registered_version: 0,
                };
                (id, l)
            })
            .collect();
        Ok(ControllerState {
            config,
            durable,
            liveness,
            events,
        })
    }

    fn persist(&mut self) -> Result<(), ApiError> {
        self.durable.metadata_version += 1;
        let bytes = serde_json::to_vec_pretty(&self.durable).expect("metadata serializes");
        write_atomic(&self.config.data.join(METADATA_FILE), &bytes).map_err(ApiError::storage)
    }

    fn alive_brokers(&self) -> Vec<u32> {
        self.liveness
            .iter()
            .filter(|(_, l)| l.alive)
            .map(|(&b, _)| b)
            .collect()
    }

    fn is_alive(&self, id: u32) -> bool {
        self.liveness.get(&id).is_some_and(|l| l.alive)
    }

    pub fn metadata(&self) -> Metadata {
        Metadata {
            cluster_id: self.durable.cluster_id.clone(),
            metadata_version: self.durable.metadata_version,
            brokers: self
                .durable
                .brokers
                .iter()
                .map(|&id| BrokerStatus {
                    epoch: None,
                    shutting_down: false,
                    id,
                    alive: self.is_alive(id),
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
        let brokers: Vec<u32> = self
            .durable
            .brokers
            .iter()
            .copied()
            .filter(|&b| self.is_alive(b))
            .collect();
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
            self.events.emit(
                "election",
                json!({"topic": topic.name, "partition": p.partition, "leader": p.leader,
                       "previous_leader": null, "leader_epoch": 0, "partition_epoch": 0,
                       "isr": p.isr, "unclean": false, "reason": "topic_created"}),
            );
        }
        self.durable.topics.push(topic.clone());
        self.persist()?;
        Ok(topic)
    }

    /// A heartbeat registers a broker, keeps its session and unfences it.
    ///
    /// A new incarnation (a restarted broker) is refused with DUPLICATE_BROKER_REGISTRATION while
    /// the previous incarnation's session is still valid; once it has expired the previous
    /// incarnation is fenced (it leaves every ISR, its leaderships move). Both protocols do this:
    /// KRaft's ClusterControlManager `registerBroker` (Kafka 3.7) refuses the registration, and
    /// ZooKeeper-era Kafka (0.10.2 `ZkUtils.registerBrokerInZk`) finds the old ephemeral
    /// registration still there and fails the broker's startup until the old session expires,
    /// whose expiry the controller handles as a broker failure (`onBrokerFailure`: every replica
    /// on it goes to OfflineReplica, which removes it from every ISR). With `registers_fenced`
    /// (the current protocol) the new incarnation is then registered fenced, as KRaft does, to be
    /// unfenced by the first heartbeat that shows it has caught up on metadata; without it
    /// (legacy-hw) it is live at once, as a 0.10 broker is once its registration is written.
    pub fn heartbeat(&mut self, req: HeartbeatRequest) -> Result<HeartbeatResponse, ApiError> {
        self.check_cluster(&req.cluster_id)?;
        let id = req.broker_id;
        if !self.durable.brokers.contains(&id) {
            self.durable.brokers.push(id);
            self.durable.brokers.sort_unstable();
            self.persist()?;
        }
        let kraft = req.registers_fenced;
        let known = self.liveness.get(&id).map(|l| l.incarnation);
        let registering = known.is_none_or(|inc| inc != req.incarnation && inc != 0);
        if registering && known.is_some() {
            self.end_previous_session(id)?;
        }
        if registering || known == Some(0) {
            self.register(id, req.incarnation, kraft)?;
        }
        self.record_kafka_address(id, req.kafka_address.as_deref())?;
        let entry = self.liveness.get_mut(&id).expect("registered above");
        entry.last_heartbeat = Instant::now();
        let unfence = !entry.alive && req.metadata_version >= entry.registered_version;
        if unfence {
            entry.alive = true;
            self.unfence(id)?;
        }
        let metadata =
            (req.metadata_version != self.durable.metadata_version).then(|| self.metadata());
        Ok(HeartbeatResponse {
            broker_epoch: None,
            should_shut_down: false,
            metadata_version: self.durable.metadata_version,
            metadata,
        })
    }

    /// Keeps the Kafka listener `id` advertises; a change is a new metadata version, so every
    /// broker learns it with its next heartbeat.
    fn record_kafka_address(&mut self, id: u32, address: Option<&str>) -> Result<(), ApiError> {
        let Some(address) = address else {
            return Ok(());
        };
        if self.durable.kafka_addresses.get(&id).map(String::as_str) == Some(address) {
            return Ok(());
        }
        self.durable.kafka_addresses.insert(id, address.to_string());
        self.persist()
    }

    /// A new incarnation of `id` wants to register: refused while the previous incarnation's
    /// session is valid; otherwise that incarnation is fenced (if it was not already).
    fn end_previous_session(&mut self, id: u32) -> Result<(), ApiError> {
        let timeout = Duration::from_millis(self.config.session_timeout_ms);
        let (alive, silent_for) = {
            let l = &self.liveness[&id];
            (l.alive, l.last_heartbeat.elapsed())
        };
        if alive && silent_for <= timeout {
            return Err(ApiError::new(
                ErrorCode::DuplicateBrokerRegistration,
                format!(
                    "broker {id}'s previous incarnation has a valid session for {} ms more; \
                     a new incarnation may register once it expires",
                    (timeout - silent_for).as_millis()
                ),
            ));
        }
        if alive {
            self.fence(id, "session_timeout")?;
        }
        Ok(())
    }

    /// Records a new incarnation of `id`. With KRaft's rules it starts fenced until a heartbeat
    /// shows the metadata version that holds this registration.
    fn register(&mut self, id: u32, incarnation: u64, kraft: bool) -> Result<(), ApiError> {
        let was_alive = self.liveness.get(&id).is_some_and(|l| l.alive);
        if self.durable.incarnations.get(&id) != Some(&incarnation) {
            self.durable.incarnations.insert(id, incarnation);
            self.persist()?;
        }
        self.events.emit(
            "broker_registered",
            json!({"broker": id, "incarnation": incarnation, "fenced": kraft || !was_alive}),
        );
        let registered_version = if kraft {
            self.durable.metadata_version
        } else {
            0
        };
        self.liveness.insert(
            id,
            Liveness {
                incarnation,
                last_heartbeat: Instant::now(),
                alive: !kraft && was_alive,
                registered_version,
            },
        );
        Ok(())
    }

    /// The controller itself was stopped (SIGSTOP, a long stall) for `stall`: heartbeats could not
    /// be heard meanwhile, so silence during it is no evidence against any broker. Every live
    /// broker gets a fresh session instead of being fenced all at once.
    pub fn forgive_stall(&mut self, stall: Duration) {
        tracing::warn!("controller stalled for {stall:?}; renewing every broker's session");
        let now = Instant::now();
        for l in self.liveness.values_mut().filter(|l| l.alive) {
            l.last_heartbeat = l.last_heartbeat.max(now);
        }
    }

    /// Fences every broker whose last heartbeat is older than the session timeout.
    pub fn expire_sessions(&mut self) {
        let timeout = Duration::from_millis(self.config.session_timeout_ms);
        let expired: Vec<u32> = self
            .liveness
            .iter()
            .filter(|(_, l)| l.alive && l.last_heartbeat.elapsed() > timeout)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            if let Err(e) = self.fence(id, "session_timeout") {
                tracing::error!("fencing broker {id} failed: {e}");
            }
        }
    }

    /// The broker is gone: it leaves every ISR (unless it is the last member, which KRaft keeps so
    /// the partition can come back cleanly), and every partition it led elects a new leader.
    pub(crate) fn fence(&mut self, id: u32, reason: &str) -> Result<(), ApiError> {
        if let Some(l) = self.liveness.get_mut(&id) {
            l.alive = false;
        }
        self.events
            .emit("broker_fenced", json!({"broker": id, "reason": reason}));
        let alive = self.alive_brokers();
        let mut changes = Vec::new();
        for topic in &mut self.durable.topics {
            let unclean_ok = topic.configs.unclean_leader_election_enable;
            for p in &mut topic.partitions {
                if !p.replicas.contains(&id) {
                    continue;
                }
                let isr_before = p.isr.clone();
                if p.isr.len() > 1 {
                    p.isr.retain(|&b| b != id);
                }
                if p.leader == Some(id) {
                    let previous = p.leader;
                    elect(p, &alive, unclean_ok);
                    changes.push(Change::Election(
                        topic.name.clone(),
                        p.clone(),
                        previous,
                        "broker_fenced",
                    ));
                } else if p.isr != isr_before {
                    p.partition_epoch += 1;
                    changes.push(Change::Isr(
                        topic.name.clone(),
                        p.clone(),
                        isr_before,
                        "broker_fenced",
                    ));
                }
            }
        }
        self.record(changes);
        self.persist()
    }

    /// The broker is back: offline partitions it can lead get a leader again.
    fn unfence(&mut self, id: u32) -> Result<(), ApiError> {
        self.events.emit("broker_unfenced", json!({"broker": id}));
        let alive = self.alive_brokers();
        let mut changes = Vec::new();
        for topic in &mut self.durable.topics {
            let unclean_ok = topic.configs.unclean_leader_election_enable;
            for p in &mut topic.partitions {
                if p.leader.is_none() && p.replicas.contains(&id) && elect(p, &alive, unclean_ok) {
                    changes.push(Change::Election(
                        topic.name.clone(),
                        p.clone(),
                        None,
                        "broker_unfenced",
                    ));
                }
            }
        }
        self.record(changes);
        self.persist()
    }

    fn record(&self, changes: Vec<Change>) {
        for change in changes {
            match change {
                Change::Election(topic, p, previous, reason) => self.events.emit(
                    "election",
                    json!({"topic": topic, "partition": p.partition, "leader": p.leader,
                           "previous_leader": previous, "leader_epoch": p.leader_epoch,
                           "partition_epoch": p.partition_epoch, "isr": p.isr,
                           "unclean": p.unclean, "reason": reason}),
                ),
                Change::Isr(topic, p, before, reason) => self.events.emit(
                    "isr_change",
                    json!({"topic": topic, "partition": p.partition, "isr_before": before,
                           "isr": p.isr, "leader_epoch": p.leader_epoch,
                           "partition_epoch": p.partition_epoch, "reason": reason}),
                ),
            }
        }
    }

    /// AlterPartition: a leader proposes a new ISR. Refused unless it comes from the current
    /// leader with the current leader_epoch and partition_epoch, keeps the leader in the ISR, and
    /// only adds live replicas.
    pub fn alter_partition(
        &mut self,
        req: AlterPartitionRequest,
    ) -> Result<PartitionMetadata, ApiError> {
        self.check_cluster(&req.cluster_id)?;
        let reject = |code: ErrorCode, msg: String| ApiError::new(code, msg);
        let alive_check: Vec<u32> = req
            .new_isr
            .iter()
            .copied()
            .filter(|&b| !self.is_alive(b))
            .collect();
        let result = (|| {
            let topic = self
                .durable
                .topics
                .iter_mut()
                .find(|t| t.name == req.topic)
                .ok_or_else(|| ApiError::unknown_partition(&req.topic, req.partition))?;
            let p = topic
                .partitions
                .get_mut(req.partition as usize)
                .ok_or_else(|| ApiError::unknown_partition(&req.topic, req.partition))?;
            if p.leader != Some(req.broker_id) {
                let mut e = reject(
                    ErrorCode::NotLeaderOrFollower,
                    format!(
                        "broker {} does not lead {}/{}",
                        req.broker_id, req.topic, req.partition
                    ),
                );
                e.leader = p.leader;
                return Err(e);
            }
            if req.leader_epoch != p.leader_epoch {
                return Err(reject(
                    ErrorCode::FencedLeaderEpoch,
                    format!(
                        "leader_epoch {} is not the current {}",
                        req.leader_epoch, p.leader_epoch
                    ),
                ));
            }
            if req.partition_epoch != p.partition_epoch {
                return Err(reject(
                    ErrorCode::InvalidUpdateVersion,
                    format!(
                        "partition_epoch {} is not the current {}",
                        req.partition_epoch, p.partition_epoch
                    ),
                ));
            }
            let mut new_isr = req.new_isr.clone();
            new_isr.sort_unstable();
            new_isr.dedup();
            if !new_isr.contains(&req.broker_id) || new_isr.iter().any(|b| !p.replicas.contains(b))
            {
                return Err(reject(
                    ErrorCode::InvalidRequest,
                    format!(
                        "ISR {new_isr:?} must hold the leader and only replicas {:?}",
                        p.replicas
                    ),
                ));
            }
            let added_dead: Vec<u32> = new_isr
                .iter()
                .copied()
                .filter(|b| !p.isr.contains(b) && alive_check.contains(b))
                .collect();
            if !added_dead.is_empty() {
                return Err(reject(
                    ErrorCode::IneligibleReplica,
                    format!("broker(s) {added_dead:?} are fenced and cannot join the ISR"),
                ));
            }
            let before = std::mem::replace(&mut p.isr, new_isr);
            p.partition_epoch += 1;
            Ok((topic.name.clone(), p.clone(), before))
        })();
        match result {
            Ok((topic, p, before)) => {
                let reason = if p.isr.len() < before.len() {
                    "shrink"
                } else {
                    "expand"
                };
                self.record(vec![Change::Isr(topic, p.clone(), before, reason)]);
                self.persist()?;
                Ok(p)
            }
            Err(e) => {
                self.events.emit(
                    "alter_partition_rejected",
                    json!({"topic": req.topic, "partition": req.partition, "broker": req.broker_id,
                           "error": e.error, "leader_epoch": req.leader_epoch,
                           "partition_epoch": req.partition_epoch}),
                );
                Err(e)
            }
        }
    }
}

enum Change {
    Election(String, PartitionMetadata, Option<u32>, &'static str),
    Isr(String, PartitionMetadata, Vec<u32>, &'static str),
}

/// Kafka's round-robin assignment (without racks): partition p's replicas start at broker
/// `start + p` and follow in broker-id order, so leaders and followers spread evenly.
pub fn assign_replicas(brokers: &[u32], first: usize, rf: usize) -> Vec<u32> {
    (0..rf)
        .map(|i| brokers[(first + i) % brokers.len()])
        .collect()
}

/// Elects a leader for `p` among `alive` brokers: the first replica (in assignment order) that
/// is in the ISR; failing that, when `unclean_ok`, the first live replica, with the ISR reset to
/// it alone. Otherwise the partition goes offline. As in KRaft (PartitionChangeBuilder
/// `tryElection`, PartitionRegistration `merge`), both epochs are bumped only when the leader
/// changes: a partition already offline that still finds no leader is left untouched. Returns
/// whether anything changed.
pub fn elect(p: &mut PartitionMetadata, alive: &[u32], unclean_ok: bool) -> bool {
    let clean = p
        .replicas
        .iter()
        .copied()
        .find(|b| p.isr.contains(b) && alive.contains(b));
    let unclean = || p.replicas.iter().copied().find(|b| alive.contains(b));
    if clean.is_none() && (!unclean_ok || unclean().is_none()) && p.leader.is_none() {
        return false;
    }
    p.leader_epoch += 1;
    p.partition_epoch += 1;
    match (clean, unclean_ok) {
        (Some(leader), _) => {
            p.leader = Some(leader);
            p.unclean = false;
            if p.isr.len() > 1 {
                p.isr.retain(|b| alive.contains(b) || *b == leader);
            }
        }
        (None, true) if unclean().is_some() => {
            let leader = unclean().expect("checked");
            p.leader = Some(leader);
            p.isr = vec![leader];
            p.unclean = true;
        }
        _ => {
            p.leader = None;
            p.unclean = false;
        }
    }
    true
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

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(replicas: &[u32], isr: &[u32], leader: u32) -> PartitionMetadata {
        PartitionMetadata {
            elr: Vec::new(),
            last_known_elr: Vec::new(),
            partition: 0,
            leader: Some(leader),
            leader_epoch: 3,
            partition_epoch: 5,
            isr: isr.to_vec(),
            replicas: replicas.to_vec(),
            unclean: false,
        }
    }

    #[test]
    fn round_robin_spreads_leaders_evenly() {
        let brokers = [1, 2, 3];
        let leaders: Vec<u32> = (0..6).map(|p| assign_replicas(&brokers, p, 3)[0]).collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
        assert_eq!(assign_replicas(&brokers, 1, 2), vec![2, 3]);
    }

    #[test]
    fn clean_election_picks_a_live_isr_member_and_bumps_epochs() {
        let mut p = partition(&[1, 2, 3], &[2, 3], 1);
        elect(&mut p, &[2, 3], false);
        assert_eq!(p.leader, Some(2));
        assert_eq!((p.leader_epoch, p.partition_epoch), (4, 6));
        assert!(!p.unclean);
    }

    #[test]
    fn no_live_isr_member_means_offline_unless_unclean_is_enabled() {
        let mut p = partition(&[1, 2, 3], &[1], 1);
        elect(&mut p, &[2, 3], false);
        assert_eq!(p.leader, None);
        assert_eq!(
            p.isr,
            vec![1],
            "the last ISR member stays so it can come back cleanly"
        );
        let mut p = partition(&[1, 2, 3], &[1], 1);
        elect(&mut p, &[3], true);
        assert_eq!(p.leader, Some(3));
        assert_eq!(p.isr, vec![3]);
        assert!(p.unclean);
    }

    fn controller() -> (tempfile::TempDir, ControllerState) {
        let dir = tempfile::tempdir().unwrap();
        let config = ControllerConfig {
            data: dir.path().to_path_buf(),
            cluster_id: "c".into(),
            session_timeout_ms: 1000,
            version: KafkaVersion::default(),
        };
        let events = Arc::new(EventLog::open(dir.path(), json!("controller")).unwrap());
        let state = ControllerState::open(config, events).unwrap();
        (dir, state)
    }

    fn try_beat(
        c: &mut ControllerState,
        id: u32,
        incarnation: u64,
        metadata_version: u64,
    ) -> Result<HeartbeatResponse, ApiError> {
        c.heartbeat(HeartbeatRequest {
            want_shutdown: false,
            broker_epoch: None,
            cluster_id: "c".into(),
            broker_id: id,
            incarnation,
            registers_fenced: true,
            metadata_version,
            kafka_address: None,
        })
    }

    /// Registers (or renews) a broker and, with a second heartbeat that shows it caught up on
    /// metadata, unfences it.
    fn beat(c: &mut ControllerState, id: u32, incarnation: u64) {
        let resp = try_beat(c, id, incarnation, 0).unwrap();
        try_beat(c, id, incarnation, resp.metadata_version).unwrap();
    }

    /// Makes broker `id`'s session look silent for longer than the session timeout.
    fn expire(c: &mut ControllerState, id: u32) {
        c.liveness.get_mut(&id).unwrap().last_heartbeat -= Duration::from_secs(5);
    }

    #[test]
    fn a_new_incarnation_waits_for_the_old_session_then_stays_fenced_until_caught_up() {
        let (_dir, mut c) = controller();
        for id in 1..=3 {
            beat(&mut c, id, 7);
        }
        c.create_topic(CreateTopicRequest {
            name: "t".into(),
            partitions: 1,
            replication_factor: 3,
            configs: BTreeMap::new(),
        })
        .unwrap();
        let leader = c.metadata().topics[0].partitions[0].leader.unwrap();
        let refused = try_beat(&mut c, leader, 8, 0).unwrap_err();
        assert_eq!(refused.error, ErrorCode::DuplicateBrokerRegistration);
        assert_eq!(
            c.metadata().topics[0].partitions[0].leader,
            Some(leader),
            "a refused registration changes nothing"
        );
        expire(&mut c, leader);
        let registered = try_beat(&mut c, leader, 8, 0).unwrap();
        let p = c.metadata().topics[0].partitions[0].clone();
        assert_ne!(p.leader, Some(leader), "the old incarnation was fenced");
        assert!(!p.isr.contains(&leader));
        assert!(!c.is_alive(leader), "registered fenced");
        try_beat(&mut c, leader, 8, registered.metadata_version - 1).unwrap();
        assert!(!c.is_alive(leader), "not caught up on metadata yet");
        try_beat(&mut c, leader, 8, registered.metadata_version).unwrap();
        assert!(c.is_alive(leader), "caught up: unfenced");
    }

    /// Legacy-hw (Kafka 0.10.2, ZooKeeper): a broker restarted faster than its session cannot
    /// register (`ZkUtils.registerBrokerInZk`: "restarted it faster than the zookeeper
    /// timeout"); when the old session expires the controller takes it out of every ISR
    /// (`onBrokerFailure` → OfflineReplica → `removeReplicaFromIsr`), and the new incarnation
    /// is live as soon as it registers. It never keeps the old incarnation's ISR memberships.
    #[test]
    fn a_restarted_legacy_broker_waits_for_its_old_session_and_leaves_every_isr() {
        let (_dir, mut c) = controller();
        let legacy_beat = |c: &mut ControllerState, id: u32, incarnation: u64| {
            c.heartbeat(HeartbeatRequest {
                want_shutdown: false,
                broker_epoch: None,
                cluster_id: "c".into(),
                broker_id: id,
                incarnation,
                registers_fenced: false,
                metadata_version: 0,
                kafka_address: None,
            })
        };
        for id in 1..=3 {
            legacy_beat(&mut c, id, 7).unwrap();
        }
        c.create_topic(CreateTopicRequest {
            name: "t".into(),
            partitions: 1,
            replication_factor: 3,
            configs: BTreeMap::new(),
        })
        .unwrap();
        let follower = 3;
        let refused = legacy_beat(&mut c, follower, 8).unwrap_err();
        assert_eq!(refused.error, ErrorCode::DuplicateBrokerRegistration);
        assert!(
            c.metadata().topics[0].partitions[0].isr.contains(&follower),
            "a refused registration changes nothing"
        );
        expire(&mut c, follower);
        legacy_beat(&mut c, follower, 8).unwrap();
        let p = c.metadata().topics[0].partitions[0].clone();
        assert!(
            !p.isr.contains(&follower),
            "the old session's expiry took it out of the ISR: {:?}",
            p.isr
        );
        assert!(c.is_alive(follower), "live at once after registering");
    }

    #[test]
    fn elect_leaves_an_offline_partition_untouched_when_no_leader_is_found() {
        let mut p = partition(&[1, 2, 3], &[1], 1);
        p.leader = None;
        assert!(!elect(&mut p, &[2, 3], false));
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (None, 3, 5));
        let mut p = partition(&[1, 2, 3], &[1], 1);
        assert!(
            elect(&mut p, &[2, 3], false),
            "losing the leader is a change"
        );
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (None, 4, 6));
    }

    #[test]
    fn alter_partition_is_fenced_by_both_epochs_and_metadata_survives_restart() {
        let (dir, mut c) = controller();
        for id in 1..=3 {
            beat(&mut c, id, 7);
        }
        let topic = c
            .create_topic(CreateTopicRequest {
                name: "t".into(),
                partitions: 1,
                replication_factor: 3,
                configs: BTreeMap::new(),
            })
            .unwrap();
        let leader = topic.partitions[0].leader.unwrap();
        let req = |leader_epoch, partition_epoch, isr: Vec<u32>| AlterPartitionRequest {
            cluster_id: "c".into(),
            broker_id: leader,
            topic: "t".into(),
            partition: 0,
            leader_epoch,
            partition_epoch,
            new_isr: isr,
            broker_epochs: Default::default(),
        };
        let err = c.alter_partition(req(1, 0, vec![leader])).unwrap_err();
        assert_eq!(err.error, ErrorCode::FencedLeaderEpoch);
        let err = c.alter_partition(req(0, 9, vec![leader])).unwrap_err();
        assert_eq!(err.error, ErrorCode::InvalidUpdateVersion);
        let ok = c.alter_partition(req(0, 0, vec![leader])).unwrap();
        assert_eq!((ok.isr.clone(), ok.partition_epoch), (vec![leader], 1));
        // A restarted broker's new incarnation fences the old one once its session is over.
        expire(&mut c, leader);
        beat(&mut c, leader, 8);
        let after = c.metadata().topics[0].partitions[0].clone();
        assert_eq!(
            after.leader,
            Some(leader),
            "sole ISR member stays leader after re-election"
        );
        assert_eq!(after.leader_epoch, 2, "fenced then unfenced: two elections");
        let version = c.metadata().metadata_version;
        drop(c);
        let config = ControllerConfig {
            data: dir.path().to_path_buf(),
            cluster_id: "c".into(),
            session_timeout_ms: 1000,
            version: KafkaVersion::default(),
        };
        let events = Arc::new(EventLog::open(dir.path(), json!("controller")).unwrap());
        let back = ControllerState::open(config, events).unwrap();
        assert_eq!(back.metadata().topics[0].partitions[0], after);
        assert_eq!(back.metadata().metadata_version, version);
    }

    #[test]
    fn a_broker_restarted_while_the_controller_was_down_is_still_fenced_once() {
        let (dir, mut c) = controller();
        for id in 1..=3 {
            beat(&mut c, id, 7);
        }
        c.create_topic(CreateTopicRequest {
            name: "t".into(),
            partitions: 1,
            replication_factor: 3,
            configs: BTreeMap::new(),
        })
        .unwrap();
        let leader = c.metadata().topics[0].partitions[0].leader.unwrap();
        drop(c);
        let config = ControllerConfig {
            data: dir.path().to_path_buf(),
            cluster_id: "c".into(),
            session_timeout_ms: 1000,
            version: KafkaVersion::default(),
        };
        let events = Arc::new(EventLog::open(dir.path(), json!("controller")).unwrap());
        let mut c = ControllerState::open(config, events).unwrap();
        beat(&mut c, leader, 7);
        assert_eq!(
            c.metadata().topics[0].partitions[0].leader_epoch,
            0,
            "same incarnation: nothing to fence"
        );
        expire(&mut c, leader);
        beat(&mut c, leader, 8);
        let p = c.metadata().topics[0].partitions[0].clone();
        assert_ne!(
            p.leader,
            Some(leader),
            "the restarted leader's old incarnation was fenced"
        );
        assert_eq!(p.leader_epoch, 1);
    }

    #[test]
    fn silent_brokers_are_fenced_but_a_controller_stall_is_forgiven() {
        let (_dir, mut c) = controller();
        beat(&mut c, 1, 1);
        beat(&mut c, 2, 1);
        c.liveness.get_mut(&1).unwrap().last_heartbeat -= Duration::from_secs(5);
        c.liveness.get_mut(&2).unwrap().last_heartbeat -= Duration::from_secs(5);
        c.forgive_stall(Duration::from_secs(5));
        c.expire_sessions();
        assert!(
            c.is_alive(1) && c.is_alive(2),
            "a stall of the controller is not the brokers' fault"
        );
        c.liveness.get_mut(&2).unwrap().last_heartbeat -= Duration::from_secs(5);
        c.expire_sessions();
        assert!(c.is_alive(1) && !c.is_alive(2));
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
}
