//! One partition replica on a broker and Kafka's replication rules for it, for the Kafka version
//! its [`Rules`] name. This module holds the replica itself: its fields, HW (changed only through
//! `set_hw`, which asserts HW ≤ LEO and that HW never moves back on a leader), and the metadata
//! it applies (roles, epochs, the ISR). The rules are split by side: [`leader`] (what the leader
//! knows of each follower and how a new leader epoch resets it, the answer to a follower's
//! fetch with the broker-epoch fence, HW, ISR shrink and expand, AlterPartition) and
//! [`follower`] (following a leader: append, truncate at the diverging epoch or, in 0.10.2, to
//! the HW, and the fetch it sends next). [`registrations`] is what the replica knows of the
//! brokers' registrations. It is synchronous and owns no task or socket; the broker module
//! drives it under a lock.

mod follower;
mod leader;
#[cfg(test)]
mod producer_tests;
mod registrations;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod version_tests;

pub use follower::OutOfRange;
pub use leader::{
    AlterOutcome, AlterProposal, FetchEpoch, FollowerState, LeaderFetch, LeaderState,
    ALTER_RETRY_BACKOFF_MS,
};
pub use registrations::Registrations;

use serde_json::json;

use crate::api::*;
use crate::events::EventLog;
use crate::storage::Log;
use crate::version::Rules;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
    Offline,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Offline => "offline",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct IsrSettings {
    pub lag_time_max_ms: u64,
    /// 0 = off (Kafka's default since 0.9 removed it).
    pub lag_max_messages: u64,
}

/// What the broker must do after a metadata change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    None,
    /// Start fetching from `leader` in `leader_epoch`.
    Follow {
        leader: u32,
        leader_epoch: u32,
    },
}

/// One partition's replica on this broker. Its fields are private so that every change of HW
/// goes through `set_hw`, which asserts HW ≤ LEO and that HW never moves back on a leader.
pub struct Replica {
    topic: String,
    partition: u32,
    broker_id: u32,
    rules: Rules,
    settings: IsrSettings,
    log: Log,
    hw: u64,
    role: Role,
    leader: Option<u32>,
    /// None until the first metadata for this partition arrives after a start.
    leader_epoch: Option<u32>,
    /// The leader epoch in which this broker's current, unbroken leadership began. A produce
    /// waiting for acks=all survives a re-election of the same broker under a newer epoch (Kafka's
    /// `checkEnoughReplicasReachOffset` only asks "am I still the leader?"), but not a spell as
    /// follower in between, which may have truncated the records it waits for.
    leader_since_epoch: Option<u32>,
    partition_epoch: u32,
    replicas: Vec<u32>,
    isr: Vec<u32>,
    /// Eligible Leader Replicas, as the controller's metadata last listed them (KIP-966).
    elr: Vec<u32>,
    min_insync_replicas: u32,
    /// The topic's unclean.leader.election.enable, from the metadata: a legacy-hw follower ahead
    /// of its leader may only truncate when it is set.
    unclean_leader_election_enable: bool,
    /// What the metadata says of the brokers (fenced, shutting down, registration epochs) and
    /// this broker's own broker epoch: who may join the ISR, and which fetch is stale.
    registrations: Registrations,
    leader_state: Option<LeaderState>,
    /// True until the first time this replica starts following after a process start (the
    /// legacy-hw truncation then uses the HW checkpoint).
    fresh_start: bool,
}

impl Replica {
    pub fn new(
        topic: &str,
        partition: u32,
        broker_id: u32,
        rules: Rules,
        settings: IsrSettings,
        log: Log,
        hw_checkpoint: u64,
    ) -> Self {
        let hw = hw_checkpoint.min(log.log_end_offset());
        Replica {
            topic: topic.to_string(),
            partition,
            broker_id,
            rules,
            settings,
            log,
            hw,
            role: Role::Offline,
            leader: None,
            leader_epoch: None,
            leader_since_epoch: None,
            partition_epoch: 0,
            replicas: Vec::new(),
            isr: Vec::new(),
            elr: Vec::new(),
            min_insync_replicas: 1,
            unclean_leader_election_enable: false,
            registrations: Registrations::default(),
            leader_state: None,
            fresh_start: true,
        }
    }

    pub fn leo(&self) -> u64 {
        self.log.log_end_offset()
    }

    pub fn current_epoch(&self) -> u32 {
        self.leader_epoch.unwrap_or(0)
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn partition(&self) -> u32 {
        self.partition
    }

    pub fn hw(&self) -> u64 {
        self.hw
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn leader(&self) -> Option<u32> {
        self.leader
    }

    pub fn leader_epoch(&self) -> Option<u32> {
        self.leader_epoch
    }

    pub fn partition_epoch(&self) -> u32 {
        self.partition_epoch
    }

    /// See the field: the epoch in which this broker's unbroken leadership began.
    pub fn leader_since_epoch(&self) -> Option<u32> {
        self.leader_since_epoch
    }

    /// The committed ISR (as the controller last confirmed it).
    pub fn isr(&self) -> &[u32] {
        &self.isr
    }

    /// The log, read-only: appends and truncation go through the replication rules here.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// What this replica knows of the brokers' registrations.
    pub fn registrations(&self) -> &Registrations {
        &self.registrations
    }

    /// The brokers' registrations from the latest metadata, and this broker's own broker epoch.
    pub fn set_registrations(&mut self, registrations: Registrations) {
        self.registrations = registrations;
    }

    /// A clean shutdown of the log: flushed, recovery point at the LEO, marked clean. The
    /// replica is offline afterwards, so nothing (a produce, a follower's fetch answer) can
    /// append past the clean-shutdown marker while the process ends.
    pub fn close_clean(&mut self) -> std::io::Result<()> {
        self.role = Role::Offline;
        self.leader_state = None;
        self.leader_since_epoch = None;
        self.log.close_clean()
    }

    fn partition_fields(&self) -> serde_json::Value {
        json!({"topic": self.topic, "partition": self.partition})
    }

    fn emit(&self, events: &EventLog, kind: &str, mut fields: serde_json::Value) {
        if let (Some(obj), serde_json::Value::Object(base)) =
            (fields.as_object_mut(), self.partition_fields())
        {
            for (k, v) in base {
                obj.insert(k, v);
            }
        }
        events.emit(kind, fields);
    }

    fn set_hw(&mut self, hw: u64) {
        assert!(
            hw <= self.leo(),
            "HW {hw} above LEO {} on {}/{}",
            self.leo(),
            self.topic,
            self.partition
        );
        if self.role == Role::Leader {
            assert!(
                hw >= self.hw,
                "HW moved back on a leader: {} -> {hw}",
                self.hw
            );
        }
        self.hw = hw;
    }

    /// Applies the controller's view of this partition. Metadata with an older leader epoch is
    /// ignored; the same leader epoch with a newer partition epoch changes only the ISR (and
    /// ELR); a newer leader epoch makes this replica leader, follower or offline.
    pub fn apply_metadata(
        &mut self,
        pm: &PartitionMetadata,
        configs: &TopicConfigs,
        now_ms: u64,
        events: &EventLog,
    ) -> std::io::Result<Transition> {
        self.min_insync_replicas = configs.min_insync_replicas;
        self.unclean_leader_election_enable = configs.unclean_leader_election_enable;
        self.replicas = pm.replicas.clone();
        match self.leader_epoch {
            Some(epoch) if pm.leader_epoch < epoch => return Ok(Transition::None),
            Some(epoch) if pm.leader_epoch == epoch => {
                self.apply_partition_change(pm, now_ms);
                return Ok(Transition::None);
            }
            _ => {}
        }
        let previous_leader = self.leader;
        self.leader_epoch = Some(pm.leader_epoch);
        self.partition_epoch = pm.partition_epoch;
        self.isr = pm.isr.clone();
        self.elr = pm.elr.clone();
        self.leader = pm.leader;
        match pm.leader {
            Some(id) if id == self.broker_id => {
                if self.role != Role::Leader {
                    self.leader_since_epoch = Some(pm.leader_epoch);
                }
                self.become_leader(pm, now_ms, events)?;
                Ok(Transition::None)
            }
            Some(leader) => {
                self.become_follower(leader, previous_leader, events)?;
                Ok(Transition::Follow {
                    leader,
                    leader_epoch: pm.leader_epoch,
                })
            }
            None => {
                self.role = Role::Offline;
                self.leader_since_epoch = None;
                self.leader_state = None;
                self.emit_role(events);
                Ok(Transition::None)
            }
        }
    }

    /// The same leader epoch with a newer partition epoch: a new ISR (or ELR).
    fn apply_partition_change(&mut self, pm: &PartitionMetadata, now_ms: u64) {
        if pm.partition_epoch <= self.partition_epoch {
            return;
        }
        self.isr = pm.isr.clone();
        self.elr = pm.elr.clone();
        self.partition_epoch = pm.partition_epoch;
        // Newer metadata overrides an AlterPartition in flight; its answer, when it comes, is
        // then ignored (Partition.scala `submitAlterPartition`).
        if let Some(state) = &mut self.leader_state {
            state.pending_isr = None;
        }
        self.maybe_advance_hw(now_ms);
    }

    fn emit_role(&self, events: &EventLog) {
        self.emit(
            events,
            "role_change",
            json!({"role": self.role.as_str(), "leader": self.leader,
                   "leader_epoch": self.leader_epoch, "log_end_offset": self.leo(),
                   "high_watermark": self.hw}),
        );
    }

    pub fn not_leader(&self) -> ApiError {
        let mut e = ApiError::new(
            ErrorCode::NotLeaderOrFollower,
            format!(
                "broker {} is not the leader of {}/{}",
                self.broker_id, self.topic, self.partition
            ),
        );
        e.leader = self.leader;
        e.leader_epoch = self.leader_epoch;
        e
    }

    /// Checks a request's leader epoch against ours (KIP-320 fencing).
    pub fn check_epoch(&self, current_leader_epoch: u32) -> Result<(), ApiError> {
        let mine = self.current_epoch();
        if current_leader_epoch < mine {
            return Err(ApiError::new(
                ErrorCode::FencedLeaderEpoch,
                format!("request epoch {current_leader_epoch} is older than {mine}"),
            ));
        }
        if current_leader_epoch > mine {
            return Err(ApiError::new(
                ErrorCode::UnknownLeaderEpoch,
                format!("request epoch {current_leader_epoch} is newer than {mine}"),
            ));
        }
        Ok(())
    }

    pub fn state(&self) -> ReplicaState {
        ReplicaState {
            elr: self.elr.clone(),
            topic: self.topic.clone(),
            partition: self.partition,
            role: self.role.as_str().to_string(),
            leader: self.leader,
            leader_epoch: self.current_epoch(),
            partition_epoch: self.partition_epoch,
            log_end_offset: self.leo(),
            high_watermark: self.hw,
            isr: self.isr.clone(),
            replicas: self.replicas.clone(),
            maximal_isr: self.maximal_isr(),
            leader_epoch_start_offset: self.leader_state.as_ref().map(|s| s.epoch_start_offset),
            epochs: self.log.epochs().entries().to_vec(),
            followers: self
                .leader_state
                .iter()
                .flat_map(|s| s.followers.iter())
                .map(|(&id, f)| FollowerView {
                    id,
                    log_end_offset: f.leo,
                    last_caught_up_ms: f.last_caught_up_ms,
                    last_fetch_ms: f.last_fetch_ms,
                    fetches_in_flight: 0,
                })
                .collect(),
        }
    }
}

impl From<crate::storage::epoch::EpochEnd> for DivergingEpoch {
    fn from(e: crate::storage::epoch::EpochEnd) -> Self {
        DivergingEpoch {
            epoch: e.epoch,
            end_offset: e.end_offset,
        }
    }
}
