//! One partition replica on a broker and Kafka's replication rules for it: the leader's append,
//! HW and ISR bookkeeping (the "maximal ISR" while an AlterPartition is in flight, caught-up times
//! per follower, shrink and expand), the follower's handling of fetch answers (append, truncate at
//! the diverging epoch, HW = min(leader HW, own LEO)), and the legacy-hw variant's truncation to
//! the HW. It is synchronous and owns no task or socket; the broker module drives it under a lock.

use serde_json::json;
use std::collections::BTreeMap;

use crate::api::*;
use crate::events::EventLog;
use crate::storage::{Frames, Log, RecordBatch};
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

/// What the leader knows of one follower (Kafka's `Replica` state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerState {
    /// The follower's LEO as of its last fetch; unknown until it fetches from this leader.
    pub leo: Option<u64>,
    pub last_caught_up_ms: u64,
    pub last_fetch_leader_leo: u64,
    pub last_fetch_ms: u64,
}

impl FollowerState {
    fn new(in_isr: bool, now_ms: u64) -> Self {
        FollowerState {
            leo: None,
            last_caught_up_ms: if in_isr { now_ms } else { 0 },
            last_fetch_leader_leo: 0,
            last_fetch_ms: 0,
        }
    }

    /// Kafka's rule: a follower is caught up at this fetch if it fetched at or past the leader's
    /// LEO now, or at or past the leader's LEO as of its previous fetch (then it was caught up as
    /// of that previous fetch's time).
    pub fn on_fetch(&mut self, fetch_offset: u64, leader_leo: u64, now_ms: u64) {
        if fetch_offset >= leader_leo {
            self.last_caught_up_ms = self.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= self.last_fetch_leader_leo {
            self.last_caught_up_ms = self.last_caught_up_ms.max(self.last_fetch_ms);
        }
        self.leo = Some(fetch_offset);
        self.last_fetch_leader_leo = leader_leo;
        self.last_fetch_ms = now_ms;
    }

    /// Kafka's `ReplicaState.isCaughtUp` (Replica.scala): at the leader's LEO, however long ago
    /// it last fetched, or caught up within the lag time.
    pub fn is_caught_up(&self, leader_leo: u64, now_ms: u64, lag_time_max_ms: u64) -> bool {
        self.leo == Some(leader_leo)
            || now_ms.saturating_sub(self.last_caught_up_ms) <= lag_time_max_ms
    }
}

/// State only a leader has.
#[derive(Debug, Clone)]
pub struct LeaderState {
    pub followers: BTreeMap<u32, FollowerState>,
    /// The LEO when this leader's epoch began: a follower must reach it to rejoin the ISR.
    pub epoch_start_offset: u64,
    /// The ISR proposed in an AlterPartition that has not been answered yet.
    pub pending_isr: Option<Vec<u32>>,
    /// After a refused or failed AlterPartition, no new proposal before this time: a follower
    /// the controller has fenced would otherwise be proposed again at every fetch.
    pub retry_after_ms: u64,
}

/// How long a leader waits before proposing again after an AlterPartition failed.
pub const ALTER_RETRY_BACKOFF_MS: u64 = 250;

/// What the broker does after [`Replica::on_alter_result`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterOutcome {
    /// Nothing more to send for this proposal.
    Done,
    /// No answer came (a timeout, a reset connection): send the same proposal again.
    Retry,
}

/// A proposed ISR change for the broker to send to the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterProposal {
    pub leader_epoch: u32,
    pub partition_epoch: u32,
    pub new_isr: Vec<u32>,
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
    min_insync_replicas: u32,
    /// The topic's unclean.leader.election.enable, from the metadata: a legacy-hw follower ahead
    /// of its leader may only truncate when it is set.
    unclean_leader_election_enable: bool,
    /// Brokers the controller reports fenced: not eligible to join the ISR (Kafka's
    /// `isReplicaIsrEligible`), so HW does not wait for them either.
    fenced_brokers: Vec<u32>,
    leader_state: Option<LeaderState>,
    /// True until the first time this replica starts following after a process start (the
    /// legacy-hw truncation then uses the HW checkpoint).
    fresh_start: bool,
}

/// What a follower did about OFFSET_OUT_OF_RANGE ([`Replica::follower_out_of_range`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutOfRange {
    /// It truncated to the leader's LEO and fetches on.
    Truncated,
    /// Legacy-hw with unclean election off: truncating is not allowed, and the broker process
    /// must exit, as Kafka 0.10.2 does.
    Exit,
}

/// A follower's fetch as the leader answers it.
pub enum LeaderFetch {
    Records(ReplicaFetchResponse),
    /// Nothing to send yet: the broker may long-poll and read again from `fetch_offset`.
    Empty(ReplicaFetchResponse),
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
            min_insync_replicas: 1,
            unclean_leader_election_enable: false,
            fenced_brokers: Vec::new(),
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

    /// A clean shutdown of the log: flushed, recovery point at the LEO, marked clean.
    pub fn close_clean(&mut self) -> std::io::Result<()> {
        self.log.close_clean()
    }

    /// The ISR proposed in an AlterPartition that has not been answered yet, if any.
    pub fn pending_isr(&self) -> Option<&[u32]> {
        self.leader_state.as_ref()?.pending_isr.as_deref()
    }

    /// Kafka's `effectiveMinIsr`: min.insync.replicas, but never more than the replicas there are.
    fn effective_min_isr(&self) -> usize {
        (self.min_insync_replicas as usize).min(self.replicas.len().max(1))
    }

    /// Kafka's `isUnderMinIsr`: this broker leads and the committed ISR is smaller than
    /// min.insync.replicas.
    pub fn is_under_min_isr(&self) -> bool {
        self.role == Role::Leader && self.isr.len() < self.effective_min_isr()
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

    /// The ISR HW is computed over: while an AlterPartition is in flight, the union of the
    /// committed ISR and the proposal (the larger set is the safe one).
    pub fn maximal_isr(&self) -> Vec<u32> {
        let mut isr = self.isr.clone();
        if let Some(pending) = self
            .leader_state
            .as_ref()
            .and_then(|l| l.pending_isr.as_ref())
        {
            isr.extend(pending.iter().copied().filter(|b| !self.isr.contains(b)));
            isr.sort_unstable();
        }
        isr
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

    /// Kafka's `maybeIncrementLeaderHW` (Partition.scala, 3.7): HW = min LEO over the maximal ISR
    /// and over every follower outside it that is caught up and about to rejoin (KAFKA-15021:
    /// otherwise, with steady traffic, HW runs at the leader's LEO and such a follower never
    /// reaches HW to rejoin). It does not move at all while the committed ISR is below
    /// min.insync.replicas (KAFKA-15583), and it only ever moves forward on a leader. Returns
    /// whether it moved.
    pub fn maybe_advance_hw(&mut self, now_ms: u64) -> bool {
        if self.is_under_min_isr() {
            return false;
        }
        let Some(state) = &self.leader_state else {
            return false;
        };
        let leo = self.leo();
        let maximal = self.maximal_isr();
        let mut candidate = leo;
        for (&id, follower) in &state.followers {
            let in_isr = maximal.contains(&id);
            let about_to_join = !in_isr
                && follower.is_caught_up(leo, now_ms, self.settings.lag_time_max_ms)
                && !self.fenced_brokers.contains(&id);
            match follower.leo {
                Some(f) if in_isr || about_to_join => candidate = candidate.min(f),
                None if in_isr => return false,
                _ => {}
            }
        }
        if maximal
            .iter()
            .any(|id| *id != self.broker_id && !state.followers.contains_key(id))
        {
            return false;
        }
        if candidate > self.hw {
            self.set_hw(candidate);
            return true;
        }
        false
    }

    /// Applies the controller's view of this partition.
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
                if pm.partition_epoch > self.partition_epoch {
                    self.isr = pm.isr.clone();
                    self.partition_epoch = pm.partition_epoch;
                    // Newer metadata overrides an AlterPartition in flight; its answer, when it
                    // comes, is then ignored (Partition.scala `submitAlterPartition`).
                    if let Some(state) = &mut self.leader_state {
                        state.pending_isr = None;
                    }
                    self.maybe_advance_hw(now_ms);
                }
                return Ok(Transition::None);
            }
            _ => {}
        }
        self.leader_epoch = Some(pm.leader_epoch);
        self.partition_epoch = pm.partition_epoch;
        self.isr = pm.isr.clone();
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
                self.become_follower(leader, events)?;
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

    fn emit_role(&self, events: &EventLog) {
        self.emit(
            events,
            "role_change",
            json!({"role": self.role.as_str(), "leader": self.leader,
                   "leader_epoch": self.leader_epoch, "log_end_offset": self.leo(),
                   "high_watermark": self.hw}),
        );
    }

    fn become_leader(
        &mut self,
        pm: &PartitionMetadata,
        now_ms: u64,
        events: &EventLog,
    ) -> std::io::Result<()> {
        let leo = self.leo();
        // A broker re-reading the same election after a restart must not report it twice.
        let new_epoch = self.log.latest_epoch().is_none_or(|e| e < pm.leader_epoch);
        self.log.assign_epoch(pm.leader_epoch, leo)?;
        let epoch_start_offset = self
            .log
            .epochs()
            .start_offset_of(pm.leader_epoch)
            .unwrap_or(leo);
        let followers = pm
            .replicas
            .iter()
            .filter(|&&r| r != self.broker_id)
            .map(|&r| (r, FollowerState::new(pm.isr.contains(&r), now_ms)))
            .collect();
        self.role = Role::Leader;
        self.leader_state = Some(LeaderState {
            followers,
            epoch_start_offset,
            pending_isr: None,
            retry_after_ms: 0,
        });
        self.fresh_start = false;
        self.emit_role(events);
        if pm.unclean && new_epoch {
            self.emit(
                events,
                "unclean_election",
                json!({"leader": self.broker_id, "leader_epoch": pm.leader_epoch, "log_end_offset": leo}),
            );
        }
        self.maybe_advance_hw(now_ms);
        Ok(())
    }

    /// Brokers the controller reports fenced (from the metadata's broker list).
    pub fn set_fenced_brokers(&mut self, fenced: Vec<u32>) {
        self.fenced_brokers = fenced;
    }

    fn become_follower(&mut self, leader: u32, events: &EventLog) -> std::io::Result<()> {
        self.role = Role::Follower;
        self.leader_since_epoch = None;
        self.leader_state = None;
        self.emit_role(events);
        if !self.rules.leader_epoch_truncation {
            // Kafka before 0.11: whatever lies above the HW is presumed uncommitted and dropped,
            // then fetched again from the leader (if the leader still has it).
            let reason = if self.fresh_start {
                "hw_checkpoint"
            } else {
                "high_watermark"
            };
            let to = self.hw;
            self.truncate(to, reason, leader, events)?;
        }
        self.fresh_start = false;
        Ok(())
    }

    fn truncate(
        &mut self,
        to: u64,
        reason: &str,
        leader: u32,
        events: &EventLog,
    ) -> std::io::Result<()> {
        assert!(
            self.role != Role::Leader,
            "a leader never truncates its own log ({}/{})",
            self.topic,
            self.partition
        );
        let from = self.leo();
        if to >= from {
            // No record to remove; the log still drops an empty epoch entry at its end.
            self.log.truncate_to(from)?;
            return Ok(());
        }
        // Like Kafka's LogSegment.truncateTo, an offset inside a batch removes the whole batch,
        // so the log may end below `to`: `to` is reported as the LEO reached.
        self.log.truncate_to(to)?;
        let to = self.leo();
        self.set_hw(self.hw.min(to));
        self.emit(
            events,
            "truncation",
            json!({"from": from, "to": to, "reason": reason, "leader": leader,
                   "leader_epoch": self.leader_epoch}),
        );
        Ok(())
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

    /// A produce: checks leadership and (for acks=all) the ISR size, then appends stamped with the
    /// leader epoch. Returns the base offset and the last offset of the batch.
    pub fn append_as_leader(
        &mut self,
        values: Vec<String>,
        acks: Acks,
        now_ms: u64,
    ) -> Result<(u64, u64), ApiError> {
        if self.role != Role::Leader {
            return Err(self.not_leader());
        }
        if acks == Acks::All && self.isr.len() < self.effective_min_isr() {
            return Err(ApiError::new(
                ErrorCode::NotEnoughReplicas,
                format!(
                    "ISR {:?} of {}/{} has {} member(s), fewer than min.insync.replicas={}; nothing was appended",
                    self.isr,
                    self.topic,
                    self.partition,
                    self.isr.len(),
                    self.min_insync_replicas
                ),
            ));
        }
        // One produce request is one batch: it survives or vanishes whole on every replica.
        let batch = RecordBatch {
            base_offset: self.leo(),
            leader_epoch: self.current_epoch(),
            timestamp_ms: now_ms,
            values,
        };
        let base = batch.base_offset;
        let leo = self.log.append_batch(&batch).map_err(ApiError::storage)?;
        self.maybe_advance_hw(now_ms);
        Ok((base, leo - 1))
    }

    /// Where an acks=all request stands: `None` while waiting, `Some(Ok)` once HW passed
    /// `last_offset` with enough replicas, `Some(Err)` when it can never succeed here.
    /// `leader_since_epoch` is [`Replica::leader_since_epoch`] at the append: a re-election of
    /// this broker under a newer epoch keeps the request waiting, as Kafka's
    /// `checkEnoughReplicasReachOffset` does; losing the leadership in between fails it.
    pub fn acks_all_status(
        &self,
        last_offset: u64,
        leader_since_epoch: u32,
    ) -> Option<Result<(), ApiError>> {
        let epoch = leader_since_epoch;
        if self.role != Role::Leader || self.leader_since_epoch != Some(epoch) {
            let mut e = self.not_leader();
            e.message = format!(
                "{}; the records were appended in epoch {epoch} and may or may not survive",
                e.message
            );
            e.appended = true;
            return Some(Err(e));
        }
        if self.hw <= last_offset {
            return None;
        }
        let isr = self.maximal_isr();
        if (isr.len() as u32) < self.min_insync_replicas {
            return Some(Err(ApiError::new(
                ErrorCode::NotEnoughReplicasAfterAppend,
                format!(
                    "offset {last_offset} is committed but the ISR {isr:?} fell below min.insync.replicas={}",
                    self.min_insync_replicas
                ),
            )));
        }
        Some(Ok(()))
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

    /// The leader's side of a follower fetch. Divergence is answered before anything else; a
    /// fetch that does not diverge updates the follower's state (LEO, caught-up time), which may
    /// move HW. Returns the answer and an ISR expansion to propose, if this fetch earned one.
    pub fn leader_fetch(
        &mut self,
        req: &ReplicaFetchRequest,
        now_ms: u64,
    ) -> Result<(LeaderFetch, Option<AlterProposal>), ApiError> {
        if self.role != Role::Leader {
            return Err(self.not_leader());
        }
        self.check_epoch(req.current_leader_epoch)?;
        if !self.replicas.contains(&req.replica_id) || req.replica_id == self.broker_id {
            return Err(ApiError::invalid(format!(
                "broker {} is not a follower of {}/{}",
                req.replica_id, self.topic, self.partition
            )));
        }
        let leo = self.leo();
        if let Some(diverging) = self.diverging_epoch(req) {
            let response = ReplicaFetchResponse {
                frames: Frames::default(),
                high_watermark: self.hw,
                log_end_offset: leo,
                diverging_epoch: Some(diverging),
            };
            return Ok((LeaderFetch::Records(response), None));
        }
        if req.fetch_offset > leo {
            let mut e = ApiError::new(
                ErrorCode::OffsetOutOfRange,
                format!(
                    "fetch offset {} is past the leader's LEO {leo}",
                    req.fetch_offset
                ),
            );
            e.log_end_offset = Some(leo);
            return Err(e);
        }
        let state = self
            .leader_state
            .as_mut()
            .expect("a leader has leader state");
        state
            .followers
            .entry(req.replica_id)
            .or_insert_with(|| FollowerState::new(false, 0))
            .on_fetch(req.fetch_offset, leo, now_ms);
        self.maybe_advance_hw(now_ms);
        let expand = self.expansion_for(req.replica_id, now_ms);
        let response = self.read_for_follower(req.fetch_offset, req.max_records, req.max_bytes)?;
        if response.frames.is_empty() {
            Ok((LeaderFetch::Empty(response), expand))
        } else {
            Ok((LeaderFetch::Records(response), expand))
        }
    }

    fn diverging_epoch(&self, req: &ReplicaFetchRequest) -> Option<DivergingEpoch> {
        let last_fetched_epoch = req.last_fetched_epoch?;
        let leo = self.leo();
        let end: DivergingEpoch = match self.log.epochs().end_offset_for(last_fetched_epoch, leo) {
            Some(end) => end.into(),
            // The follower claims an epoch newer than any here: compare against our latest.
            None => DivergingEpoch {
                epoch: self.current_epoch(),
                end_offset: leo,
            },
        };
        (end.epoch < last_fetched_epoch || end.end_offset < req.fetch_offset).then_some(end)
    }

    /// Whether a follower's long-poll fetch from `fetch_offset` in `epoch` may be answered now:
    /// there are records past it, or this broker no longer leads in that epoch. As in Kafka's
    /// `DelayedFetch.tryComplete` (cases A–H), a change of HW alone does not complete it; the
    /// follower learns the new HW with its next fetch.
    pub fn follower_fetch_ready(&self, fetch_offset: u64, epoch: u32) -> bool {
        let deposed = self.role != Role::Leader || self.leader_epoch != Some(epoch);
        self.leo() > fetch_offset || deposed
    }

    /// Reads records for a follower (which may see above HW) and the current HW.
    pub fn read_for_follower(
        &self,
        from: u64,
        max_records: usize,
        max_bytes: u64,
    ) -> Result<ReplicaFetchResponse, ApiError> {
        let frames = self
            .log
            .read_frames(from, max_records, max_bytes)
            .map_err(ApiError::storage)?;
        Ok(ReplicaFetchResponse {
            frames,
            high_watermark: self.hw,
            log_end_offset: self.leo(),
            diverging_epoch: None,
        })
    }

    /// A follower out of the ISR rejoins once its LEO reaches both HW and the start of the
    /// current leader epoch.
    fn expansion_for(&mut self, follower: u32, now_ms: u64) -> Option<AlterProposal> {
        let state = self.leader_state.as_ref()?;
        if self.isr.contains(&follower)
            || state.pending_isr.is_some()
            || now_ms < state.retry_after_ms
            || self.fenced_brokers.contains(&follower)
        {
            return None;
        }
        let leo = state.followers.get(&follower)?.leo?;
        if leo < self.hw || leo < state.epoch_start_offset {
            return None;
        }
        let mut new_isr = self.isr.clone();
        new_isr.push(follower);
        new_isr.sort_unstable();
        self.propose(new_isr)
    }

    fn propose(&mut self, new_isr: Vec<u32>) -> Option<AlterProposal> {
        let state = self.leader_state.as_mut()?;
        state.pending_isr = Some(new_isr.clone());
        Some(AlterProposal {
            leader_epoch: self.current_epoch(),
            partition_epoch: self.partition_epoch,
            new_isr,
        })
    }

    /// Followers in the ISR that are not caught up (Kafka's `getOutOfSyncReplicas`: neither at
    /// the leader's LEO nor caught up within replica.lag.time.max.ms; or, when the legacy setting
    /// is on, more than replica.lag.max.messages behind) are proposed out.
    pub fn maybe_shrink_isr(&mut self, now_ms: u64) -> Option<AlterProposal> {
        let settings = self.settings;
        let state = self.leader_state.as_ref()?;
        if state.pending_isr.is_some() || now_ms < state.retry_after_ms {
            return None;
        }
        let leo = self.leo();
        let out: Vec<u32> = self
            .isr
            .iter()
            .copied()
            .filter(|&id| id != self.broker_id)
            .filter(|id| match state.followers.get(id) {
                None => true,
                Some(f) => {
                    let lagging_time = !f.is_caught_up(leo, now_ms, settings.lag_time_max_ms);
                    let lagging_messages = settings.lag_max_messages > 0
                        && f.leo
                            .is_some_and(|l| leo.saturating_sub(l) > settings.lag_max_messages);
                    lagging_time || lagging_messages
                }
            })
            .collect();
        if out.is_empty() {
            return None;
        }
        let new_isr = self
            .isr
            .iter()
            .copied()
            .filter(|b| !out.contains(b))
            .collect();
        self.propose(new_isr)
    }

    /// The controller's answer to our AlterPartition `proposal`, or the transport's failure to
    /// get one. As in Kafka (Partition.scala `submitAlterPartition`,
    /// `handleAlterPartitionError`; AlterPartitionManager never times a request out):
    /// - an answer to a proposal that is no longer the pending one (newer metadata replaced it)
    ///   is ignored;
    /// - success commits the new ISR;
    /// - INELIGIBLE_REPLICA (and Kafka's OPERATION_NOT_ATTEMPTED) is the controller saying the
    ///   change was not applied: the pending change is dropped, with a backoff;
    /// - a stale epoch or an invalid request keeps the change pending until new metadata
    ///   overrides it (the controller may have applied an earlier copy);
    /// - anything else (a timeout, a reset connection) keeps it pending and asks to resend it.
    ///
    /// A pending change is never dropped on a failure that does not prove it was not applied:
    /// HW is computed over the maximal ISR meanwhile, so it never runs ahead of a replica the
    /// controller may already count as in sync.
    pub fn on_alter_result(
        &mut self,
        proposal: &AlterProposal,
        result: Result<PartitionMetadata, ApiError>,
        now_ms: u64,
        events: &EventLog,
    ) -> AlterOutcome {
        let current = self.leader_epoch == Some(proposal.leader_epoch)
            && self.partition_epoch == proposal.partition_epoch
            && self.pending_isr() == Some(proposal.new_isr.as_slice());
        if !current {
            return AlterOutcome::Done;
        }
        let state = self
            .leader_state
            .as_mut()
            .expect("a pending ISR implies a leader");
        let pm = match result {
            Ok(pm) => pm,
            Err(e) => {
                tracing::warn!(
                    "AlterPartition for {}/{} failed: {e}",
                    self.topic,
                    self.partition
                );
                return match e.error {
                    ErrorCode::IneligibleReplica => {
                        state.pending_isr = None;
                        state.retry_after_ms = now_ms + ALTER_RETRY_BACKOFF_MS;
                        AlterOutcome::Done
                    }
                    ErrorCode::FencedLeaderEpoch
                    | ErrorCode::InvalidUpdateVersion
                    | ErrorCode::UnknownTopicOrPartition
                    | ErrorCode::NotLeaderOrFollower
                    | ErrorCode::InvalidRequest => AlterOutcome::Done,
                    _ => AlterOutcome::Retry,
                };
            }
        };
        state.pending_isr = None;
        if pm.leader_epoch != proposal.leader_epoch || pm.partition_epoch <= self.partition_epoch {
            return AlterOutcome::Done;
        }
        let before = std::mem::replace(&mut self.isr, pm.isr.clone());
        self.partition_epoch = pm.partition_epoch;
        let reason = if pm.isr.len() < before.len() {
            "shrink"
        } else {
            "expand"
        };
        self.emit(
            events,
            "isr_change",
            json!({"isr_before": before, "isr": pm.isr, "leader_epoch": pm.leader_epoch,
                   "partition_epoch": pm.partition_epoch, "reason": reason}),
        );
        self.maybe_advance_hw(now_ms);
        AlterOutcome::Done
    }

    /// The follower's side of a fetch answer: truncate at a diverging epoch, or append the
    /// records and take HW = min(leader HW, own LEO).
    pub fn follower_apply(
        &mut self,
        leader: u32,
        resp: ReplicaFetchResponse,
        events: &EventLog,
    ) -> std::io::Result<()> {
        if let Some(diverging) = resp.diverging_epoch {
            let to = self.truncation_offset(diverging);
            return self.truncate(to, "diverging_epoch", leader, events);
        }
        // Batches this log already holds whole are skipped (only without leader epochs, after
        // logs diverged, can the answer start below the LEO).
        let leo = self.leo();
        let mut pending = resp
            .frames
            .iter()
            .skip_while(|(info, _)| info.next_offset() <= leo)
            .peekable();
        if let Some(&(first, _)) = pending.peek() {
            if first.base_offset > leo {
                return Err(std::io::Error::other(format!(
                    "leader sent a batch at offset {} but LEO is {leo}",
                    first.base_offset
                )));
            }
            if first.base_offset < leo {
                // The leader's batch straddles this log's end: a batch is never split, so drop
                // ours from its base and take it. When our batch holding that offset began
                // earlier, it goes whole and the next fetch asks again from the new LEO.
                self.truncate(first.base_offset, "batch_boundary", leader, events)?;
            }
            if first.base_offset == self.leo() {
                for (info, frame) in pending {
                    self.log.append_frame(info, frame)?;
                }
            }
        }
        self.set_hw(resp.high_watermark.min(self.leo()));
        Ok(())
    }

    /// Kafka's follower truncation rule for a diverging epoch from the leader.
    pub fn truncation_offset(&self, diverging: DivergingEpoch) -> u64 {
        let leo = self.leo();
        match self.log.epochs().end_offset_for(diverging.epoch, leo) {
            None => diverging.end_offset.min(leo),
            // We never had the leader's epoch: cut to where our largest older epoch ends, and the
            // next fetch asks again with that epoch.
            Some(end) if end.epoch != diverging.epoch => end.end_offset.min(leo),
            Some(end) => end.end_offset.min(diverging.end_offset).min(leo),
        }
    }

    /// OFFSET_OUT_OF_RANGE from the leader (only possible without epochs): this follower's LEO is
    /// past the leader's. With leader epochs it cuts to the leader's LEO (Kafka 3.7
    /// AbstractFetcherThread `fetchOffsetAndTruncate`). Legacy-hw does what Kafka 0.10.2 does
    /// (ReplicaFetcherThread `handleOffsetOutOfRange`): with unclean.leader.election.enable off
    /// it refuses to truncate, records a `truncation_refused` event and tells the broker to
    /// exit ("Exiting because log truncation is not allowed", `System.exit(1)`), because such a
    /// truncation would silently drop records a clean election should have kept.
    pub fn follower_out_of_range(
        &mut self,
        leader: u32,
        leader_leo: u64,
        events: &EventLog,
    ) -> std::io::Result<OutOfRange> {
        let leo = self.leo();
        let refuse = !self.rules.leader_epoch_truncation
            && leader_leo < leo
            && !self.unclean_leader_election_enable;
        if refuse {
            self.emit(
                events,
                "truncation_refused",
                json!({"leader": leader, "leader_epoch": self.leader_epoch,
                       "leader_log_end_offset": leader_leo, "log_end_offset": leo,
                       "high_watermark": self.hw, "action": "exit"}),
            );
            return Ok(OutOfRange::Exit);
        }
        self.truncate(leader_leo, "offset_out_of_range", leader, events)?;
        Ok(OutOfRange::Truncated)
    }

    /// The fetch a follower sends next.
    pub fn next_fetch(
        &self,
        cluster_id: &str,
        max_records: usize,
        max_wait_ms: u64,
    ) -> ReplicaFetchRequest {
        let last_fetched_epoch = if self.rules.leader_epoch_truncation {
            self.log.latest_epoch()
        } else {
            None
        };
        ReplicaFetchRequest {
            broker_epoch: None,
            cluster_id: cluster_id.to_string(),
            replica_id: self.broker_id,
            topic: self.topic.clone(),
            partition: self.partition,
            fetch_offset: self.leo(),
            last_fetched_epoch,
            current_leader_epoch: self.current_epoch(),
            max_records,
            max_bytes: REPLICA_FETCH_MAX_BYTES,
            max_wait_ms,
        }
    }

    pub fn state(&self) -> ReplicaState {
        ReplicaState {
            elr: Vec::new(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{EpochEntry, LogConfig, Record};
    use crate::version::KafkaVersion;

    fn epoch_start(epoch: u32, start_offset: u64) -> EpochEntry {
        EpochEntry {
            epoch,
            start_offset,
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        events: EventLog,
        replica: Replica,
    }

    fn fixture(broker_id: u32, rules: Rules) -> Fixture {
        fixture_with_epochs(broker_id, rules, &[])
    }

    /// A replica whose empty log starts with the leader-epoch history `epochs`.
    fn fixture_with_epochs(broker_id: u32, rules: Rules, epochs: &[EpochEntry]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        let log = Log::open_with_epochs(&path, LogConfig::default(), epochs).unwrap();
        let events = EventLog::open(dir.path(), json!(broker_id)).unwrap();
        let replica = Replica::new("t", 0, broker_id, rules, SETTINGS, log, 0);
        Fixture {
            _dir: dir,
            events,
            replica,
        }
    }

    fn pm(
        leader: Option<u32>,
        leader_epoch: u32,
        partition_epoch: u32,
        isr: &[u32],
    ) -> PartitionMetadata {
        PartitionMetadata {
            elr: Vec::new(),
            last_known_elr: Vec::new(),
            partition: 0,
            leader,
            leader_epoch,
            partition_epoch,
            isr: isr.to_vec(),
            replicas: vec![1, 2, 3],
            unclean: false,
        }
    }

    /// replica.lag.time.max.ms of 500 ms, no legacy message lag.
    const SETTINGS: IsrSettings = IsrSettings {
        lag_time_max_ms: 500,
        lag_max_messages: 0,
    };

    const CONFIGS: TopicConfigs = TopicConfigs {
        min_insync_replicas: 2,
        unclean_leader_election_enable: false,
    };

    fn leader(isr: &[u32]) -> Fixture {
        let mut f = fixture(1, KafkaVersion::V4_1.rules());
        f.replica
            .apply_metadata(&pm(Some(1), 0, 0, isr), &CONFIGS, 1_000, &f.events)
            .unwrap();
        f
    }

    fn fetch(
        r: &mut Replica,
        from: u32,
        offset: u64,
        epoch: Option<u32>,
        now: u64,
    ) -> Result<(LeaderFetch, Option<AlterProposal>), ApiError> {
        let req = ReplicaFetchRequest {
            broker_epoch: None,
            cluster_id: "c".into(),
            replica_id: from,
            topic: "t".into(),
            partition: 0,
            fetch_offset: offset,
            last_fetched_epoch: epoch,
            current_leader_epoch: r.current_epoch(),
            max_records: 100,
            max_bytes: REPLICA_FETCH_MAX_BYTES,
            max_wait_ms: 0,
        };
        r.leader_fetch(&req, now)
    }

    /// A fetch answer carrying records `offsets` of `epoch` with values `v<offset>`, as one batch.
    fn answer(offsets: std::ops::Range<u64>, epoch: u32, hw: u64) -> ReplicaFetchResponse {
        let log_end_offset = offsets.end;
        let batch = RecordBatch {
            base_offset: offsets.start,
            leader_epoch: epoch,
            timestamp_ms: 0,
            values: offsets.map(|o| format!("v{o}")).collect(),
        };
        let frames = if batch.values.is_empty() {
            Frames::default()
        } else {
            Frames::from_batches(&[batch])
        };
        ReplicaFetchResponse {
            frames,
            high_watermark: hw,
            log_end_offset,
            diverging_epoch: None,
        }
    }

    fn values(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("v{i}")).collect()
    }

    #[test]
    fn hw_is_the_minimum_leo_over_the_isr_and_never_moves_back() {
        let mut f = leader(&[1, 2, 3]);
        let r = &mut f.replica;
        r.append_as_leader(values(10), Acks::All, 1_000).unwrap();
        assert_eq!(r.hw, 0, "followers' LEOs are unknown: HW cannot move");
        fetch(r, 2, 10, Some(0), 1_001).unwrap();
        assert_eq!(r.hw, 0);
        fetch(r, 3, 4, Some(0), 1_002).unwrap();
        assert_eq!(r.hw, 4);
        fetch(r, 3, 10, Some(0), 1_003).unwrap();
        assert_eq!(r.hw, 10);
        // A follower fetching from an older offset again does not pull HW back.
        fetch(r, 3, 10, Some(0), 1_004).unwrap();
        assert_eq!(r.hw, 10);
        assert_eq!(r.acks_all_status(9, 0).map(|r| r.is_ok()), Some(true));
        assert!(
            r.acks_all_status(10, 0).is_none(),
            "offset 10 is not committed yet"
        );
    }

    #[test]
    fn acks_all_is_refused_before_append_when_the_isr_is_too_small() {
        let mut f = leader(&[1]);
        let err = f
            .replica
            .append_as_leader(values(3), Acks::All, 1_000)
            .unwrap_err();
        assert_eq!(err.error, ErrorCode::NotEnoughReplicas);
        assert_eq!(f.replica.leo(), 0, "nothing may be appended");
        assert!(f
            .replica
            .append_as_leader(values(3), Acks::One, 1_000)
            .is_ok());
    }

    #[test]
    fn caught_up_rule_uses_this_fetch_or_the_previous_one() {
        let mut s = FollowerState::new(true, 0);
        s.on_fetch(5, 5, 100); // at the leader's LEO: caught up now
        assert_eq!(s.last_caught_up_ms, 100);
        s.on_fetch(5, 9, 200); // behind now, but at the LEO as of the previous fetch (5)
        assert_eq!(s.last_caught_up_ms, 100);
        s.on_fetch(9, 12, 300); // reached the LEO as of the previous fetch (9): caught up at 200
        assert_eq!(s.last_caught_up_ms, 200);
        s.on_fetch(10, 20, 400); // behind both: no progress
        assert_eq!(s.last_caught_up_ms, 200);
    }

    #[test]
    fn a_lagging_follower_is_proposed_out_and_hw_uses_the_maximal_isr_meanwhile() {
        let mut f = leader(&[1, 2, 3]);
        let r = &mut f.replica;
        r.append_as_leader(values(5), Acks::All, 1_000).unwrap();
        fetch(r, 2, 5, Some(0), 1_100).unwrap();
        fetch(r, 3, 0, Some(0), 1_100).unwrap();
        assert_eq!(r.maybe_shrink_isr(1_400), None, "within the lag time");
        let proposal = r.maybe_shrink_isr(1_600).expect("3 lags past 500 ms");
        assert_eq!(proposal.new_isr, vec![1, 2]);
        assert_eq!(
            r.maximal_isr(),
            vec![1, 2, 3],
            "HW must still wait for 3 while in flight"
        );
        assert_eq!(r.hw, 0);
        let mut accepted = pm(Some(1), 0, 1, &[1, 2]);
        accepted.isr = proposal.new_isr.clone();
        r.on_alter_result(&proposal, Ok(accepted), 1_600, &f.events);
        assert_eq!(r.isr, vec![1, 2]);
        assert_eq!(r.hw, 5, "once 3 is out, HW follows 1 and 2");
    }

    #[test]
    fn a_refused_alter_partition_backs_off_before_proposing_again() {
        let mut f = leader(&[1, 2]);
        let r = &mut f.replica;
        let (_, expand) = fetch(r, 3, 0, Some(0), 1_000).unwrap();
        let expand = expand.expect("3 is at HW 0 and the epoch start");
        let refused = ApiError::new(ErrorCode::IneligibleReplica, "3 is fenced");
        r.on_alter_result(&expand, Err(refused), 1_000, &f.events);
        let (_, again) = fetch(r, 3, 0, Some(0), 1_000 + ALTER_RETRY_BACKOFF_MS - 1).unwrap();
        assert_eq!(again, None, "no new proposal during the backoff");
        let (_, later) = fetch(r, 3, 0, Some(0), 1_000 + ALTER_RETRY_BACKOFF_MS).unwrap();
        assert!(later.is_some());
    }

    #[test]
    fn legacy_lag_max_messages_shrinks_a_follower_too_far_behind() {
        let mut f = leader(&[1, 2, 3]);
        let r = &mut f.replica;
        r.append_as_leader(values(50), Acks::One, 1_000).unwrap();
        fetch(r, 2, 50, Some(0), 1_001).unwrap();
        fetch(r, 3, 10, Some(0), 1_001).unwrap();
        r.settings = IsrSettings {
            lag_time_max_ms: 10_000,
            lag_max_messages: 0,
        };
        assert_eq!(r.maybe_shrink_isr(1_002), None);
        r.settings.lag_max_messages = 20;
        assert_eq!(r.maybe_shrink_isr(1_002).unwrap().new_isr, vec![1, 2]);
    }

    #[test]
    fn a_follower_rejoins_once_it_reaches_hw_and_the_epoch_start() {
        let mut f = leader(&[1, 2]);
        let r = &mut f.replica;
        r.append_as_leader(values(8), Acks::All, 1_000).unwrap();
        fetch(r, 2, 8, Some(0), 1_001).unwrap();
        assert_eq!(r.hw, 8);
        let (_, expand) = fetch(r, 3, 3, Some(0), 1_002).unwrap();
        assert_eq!(expand, None, "3 is below HW");
        let (_, expand) = fetch(r, 3, 8, Some(0), 1_003).unwrap();
        assert_eq!(expand.unwrap().new_isr, vec![1, 2, 3]);
    }

    #[test]
    fn a_stale_last_fetched_epoch_gets_the_diverging_epoch_and_the_follower_truncates_there() {
        // The new leader (broker 2) has epoch 0 for offsets 0..5 and epoch 2 from 5.
        let mut l = fixture(2, KafkaVersion::V4_1.rules());
        l.replica
            .apply_metadata(&pm(Some(1), 0, 0, &[1, 2]), &CONFIGS, 0, &l.events)
            .unwrap();
        l.replica
            .follower_apply(1, answer(0..5, 0, 5), &l.events)
            .unwrap();
        l.replica
            .apply_metadata(&pm(Some(2), 2, 2, &[2, 3]), &CONFIGS, 0, &l.events)
            .unwrap();
        l.replica.append_as_leader(values(2), Acks::One, 0).unwrap();
        // The old leader (broker 1) has 0..5 in epoch 0 and an uncommitted 5..9 in epoch 1,
        // which it leads.
        let history = [epoch_start(0, 0), epoch_start(1, 5)];
        let mut old = fixture_with_epochs(1, KafkaVersion::V4_1.rules(), &history);
        let mut batch: Vec<Record> = (0..9)
            .map(|o| Record {
                offset: o,
                leader_epoch: if o < 5 { 0 } else { 1 },
                timestamp_ms: 0,
                value: format!("v{o}"),
            })
            .collect();
        batch[7].value = "uncommitted".into();
        old.replica.log.append(&batch).unwrap();
        old.replica
            .apply_metadata(&pm(Some(1), 1, 1, &[1]), &CONFIGS, 0, &old.events)
            .unwrap();
        assert_eq!(old.replica.log.epochs().entries(), history);
        old.replica
            .apply_metadata(&pm(Some(2), 2, 3, &[2, 3]), &CONFIGS, 0, &old.events)
            .unwrap();
        assert_eq!(old.replica.role, Role::Follower);
        let req = old.replica.next_fetch("c", 100, 0);
        assert_eq!((req.fetch_offset, req.last_fetched_epoch), (9, Some(1)));
        let (answer, _) = l.replica.leader_fetch(&req, 0).unwrap();
        let LeaderFetch::Records(resp) = answer else {
            panic!("expected a diverging epoch")
        };
        assert_eq!(
            resp.diverging_epoch,
            Some(DivergingEpoch {
                epoch: 0,
                end_offset: 5
            })
        );
        old.replica.follower_apply(2, resp, &old.events).unwrap();
        assert_eq!(
            old.replica.leo(),
            5,
            "truncated exactly where epoch 0 ends on the leader"
        );
        let req = old.replica.next_fetch("c", 100, 0);
        let (answer, _) = l.replica.leader_fetch(&req, 0).unwrap();
        let LeaderFetch::Records(resp) = answer else {
            panic!("expected records")
        };
        old.replica.follower_apply(2, resp, &old.events).unwrap();
        assert_eq!(old.replica.leo(), 7);
        let ours = old.replica.log.read(0, 7, 100).unwrap();
        let theirs = l.replica.log.read(0, 7, 100).unwrap();
        assert_eq!(ours, theirs);
    }

    /// Found by the simulation (sim.rs): a broker that led an epoch without appending anything
    /// kept that empty epoch as its last fetched epoch and was told the same divergence forever.
    #[test]
    fn an_empty_epoch_at_the_end_is_dropped_so_the_follower_converges() {
        // Broker 1 follows in epoch 1, gets 2 records, then leads epoch 2 without appending.
        let mut one = fixture(1, KafkaVersion::V4_1.rules());
        one.replica
            .apply_metadata(&pm(Some(2), 1, 1, &[1, 2, 3]), &CONFIGS, 0, &one.events)
            .unwrap();
        one.replica
            .follower_apply(2, answer(0..2, 1, 0), &one.events)
            .unwrap();
        one.replica
            .apply_metadata(&pm(Some(1), 2, 2, &[1, 3]), &CONFIGS, 0, &one.events)
            .unwrap();
        assert_eq!(one.replica.log.latest_epoch(), Some(2));
        // Broker 3 has the same records and leads epoch 3.
        let mut three = fixture(3, KafkaVersion::V4_1.rules());
        three
            .replica
            .apply_metadata(&pm(Some(2), 1, 1, &[1, 2, 3]), &CONFIGS, 0, &three.events)
            .unwrap();
        three
            .replica
            .follower_apply(2, answer(0..2, 1, 0), &three.events)
            .unwrap();
        three
            .replica
            .apply_metadata(&pm(Some(3), 3, 3, &[3]), &CONFIGS, 0, &three.events)
            .unwrap();
        one.replica
            .apply_metadata(&pm(Some(3), 3, 3, &[3]), &CONFIGS, 0, &one.events)
            .unwrap();
        let mut caught_up = false;
        for _ in 0..3 {
            let req = one.replica.next_fetch("c", 10, 0);
            let (answer, _) = three.replica.leader_fetch(&req, 0).unwrap();
            let (LeaderFetch::Records(r) | LeaderFetch::Empty(r)) = answer;
            let diverged = r.diverging_epoch.is_some();
            one.replica.follower_apply(3, r, &one.events).unwrap();
            if !diverged {
                caught_up = true;
                break;
            }
        }
        assert!(
            caught_up,
            "the follower must stop diverging after one truncation"
        );
        assert_eq!(one.replica.log.latest_epoch(), Some(1));
        assert_eq!(one.replica.leo(), 2, "nothing real was cut");
    }

    /// A legacy-hw broker 2 following broker 1, having applied `answers` (records of epoch 0,
    /// the leader's HW) in order.
    fn legacy_follower(answers: &[(std::ops::Range<u64>, u64)]) -> Fixture {
        let mut f = fixture(2, KafkaVersion::V0_10_2.rules());
        f.replica
            .apply_metadata(&pm(Some(1), 0, 0, &[1, 2]), &CONFIGS, 0, &f.events)
            .unwrap();
        for (offsets, hw) in answers {
            f.replica
                .follower_apply(1, answer(offsets.clone(), 0, *hw), &f.events)
                .unwrap();
        }
        f
    }

    #[test]
    fn legacy_hw_truncates_to_the_hw_when_it_starts_following() {
        let mut f = legacy_follower(&[(0..2, 0), (2..6, 2)]);
        assert_eq!((f.replica.leo(), f.replica.hw), (6, 2));
        f.replica
            .apply_metadata(&pm(Some(3), 1, 1, &[2, 3]), &CONFIGS, 0, &f.events)
            .unwrap();
        assert_eq!(
            f.replica.leo(),
            2,
            "legacy-hw drops everything above its HW"
        );
        assert_eq!(f.replica.next_fetch("c", 1, 0).last_fetched_epoch, None);
    }

    /// Without leader epochs, the leader's batch may straddle the end of a follower's log whose
    /// batches lie differently (proptest found this in the sim): the follower drops its batch
    /// holding the leader's base whole, appends nothing of that answer, and its next fetch from
    /// the new LEO takes the leader's batches from there.
    #[test]
    fn a_straddling_batch_cuts_the_followers_batch_whole_and_fetches_again() {
        let mut f = legacy_follower(&[(0..2, 0), (2..5, 0), (4..6, 0)]);
        assert_eq!(
            f.replica.leo(),
            2,
            "its batch 2..5 went whole; nothing appended"
        );
        assert_eq!(f.replica.next_fetch("c", 10, 0).fetch_offset, 2);
        let mut leader_batches = answer(2..4, 0, 6);
        leader_batches.frames = Frames::from_batches(
            &[answer(2..4, 0, 0), answer(4..6, 0, 0)]
                .map(|a| a.frames.batches().unwrap().remove(0)),
        );
        f.replica
            .follower_apply(1, leader_batches, &f.events)
            .unwrap();
        assert_eq!((f.replica.leo(), f.replica.hw), (6, 6));
        assert!(
            f.replica
                .follower_apply(1, answer(8..9, 0, 6), &f.events)
                .is_err(),
            "a gap is refused"
        );
    }

    /// Legacy item L2 (Kafka 0.10.2 ReplicaFetcherThread `handleOffsetOutOfRange`): a follower
    /// whose LEO is past its leader's does not truncate when unclean election is off; it records
    /// `truncation_refused` and asks the broker to exit. With unclean election on (and always
    /// with leader epochs) it truncates to the leader's LEO.
    #[test]
    fn a_legacy_follower_ahead_of_its_leader_stops_instead_of_truncating() {
        let ahead = |protocol, unclean| {
            let mut f = fixture(2, protocol);
            let configs = TopicConfigs {
                unclean_leader_election_enable: unclean,
                ..CONFIGS
            };
            f.replica
                .apply_metadata(&pm(Some(1), 0, 0, &[1, 2]), &configs, 0, &f.events)
                .unwrap();
            f.replica
                .follower_apply(1, answer(0..4, 0, 4), &f.events)
                .unwrap();
            f.replica
                .follower_apply(1, answer(4..6, 0, 6), &f.events)
                .unwrap();
            f.replica
                .apply_metadata(&pm(Some(3), 1, 1, &[2, 3]), &configs, 0, &f.events)
                .unwrap();
            let action = f.replica.follower_out_of_range(3, 4, &f.events).unwrap();
            let text = std::fs::read_to_string(f._dir.path().join("events.jsonl")).unwrap();
            let events: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            (action, f.replica.leo(), events)
        };
        let (action, leo, events) = ahead(KafkaVersion::V0_10_2.rules(), false);
        assert_eq!(action, OutOfRange::Exit);
        assert_eq!(leo, 6, "nothing truncated");
        let refused = events
            .iter()
            .find(|e| e["type"] == "truncation_refused")
            .expect("a truncation_refused event");
        assert_eq!(
            (
                &refused["leader_log_end_offset"],
                &refused["log_end_offset"]
            ),
            (&json!(4), &json!(6))
        );
        let (action, leo, _) = ahead(KafkaVersion::V0_10_2.rules(), true);
        assert_eq!((action, leo), (OutOfRange::Truncated, 4));
        let (action, leo, _) = ahead(KafkaVersion::V4_1.rules(), false);
        assert_eq!((action, leo), (OutOfRange::Truncated, 4));
    }

    /// Issue 8 item 7: one produce request is one batch, and a fetch never splits it — asked
    /// for one record from the middle of a batch, the leader sends the whole batch, and the
    /// follower appends it whole.
    #[test]
    fn a_produce_is_one_batch_and_a_fetch_never_splits_it() {
        let mut l = leader(&[1, 2]);
        l.replica.append_as_leader(values(5), Acks::One, 0).unwrap();
        let resp = l.replica.read_for_follower(2, 1, u64::MAX).unwrap();
        let (info, _) = resp.frames.iter().next().expect("one batch");
        assert_eq!(resp.frames.len(), 1);
        assert_eq!((info.base_offset, info.last_offset_delta), (0, 4));
        let mut f = fixture(2, KafkaVersion::V4_1.rules());
        f.replica
            .apply_metadata(&pm(Some(1), 0, 0, &[1, 2]), &CONFIGS, 0, &f.events)
            .unwrap();
        f.replica.follower_apply(1, resp, &f.events).unwrap();
        assert_eq!(f.replica.leo(), 5, "the whole batch, from its base");
        // On the wire: a value changed in flight fails the frame's CRC, and nothing is applied.
        let mut wire = l
            .replica
            .read_for_follower(0, 1, u64::MAX)
            .unwrap()
            .encode();
        let at = wire.len() - 1;
        wire[at] ^= 0x01;
        let err = ReplicaFetchResponse::decode(wire.into()).unwrap_err();
        assert!(err.contains("CRC"), "{err}");
        let g = fixture(3, KafkaVersion::V4_1.rules());
        assert_eq!(g.replica.leo(), 0, "nothing of a batch that fails its CRC");
    }

    #[test]
    fn a_deposed_leader_refuses_writes_and_fails_pending_acks_all() {
        let mut f = leader(&[1, 2]);
        let (_, last) = f.replica.append_as_leader(values(2), Acks::All, 0).unwrap();
        f.replica
            .apply_metadata(&pm(Some(2), 1, 1, &[2]), &CONFIGS, 0, &f.events)
            .unwrap();
        let pending = f.replica.acks_all_status(last, 0).unwrap().unwrap_err();
        assert_eq!(pending.error, ErrorCode::NotLeaderOrFollower);
        assert!(pending.appended);
        let refused = f
            .replica
            .append_as_leader(values(1), Acks::One, 0)
            .unwrap_err();
        assert_eq!(
            (refused.error, refused.leader, refused.appended),
            (ErrorCode::NotLeaderOrFollower, Some(2), false)
        );
        assert_eq!(
            f.replica.check_epoch(0).unwrap_err().error,
            ErrorCode::FencedLeaderEpoch
        );
        assert_eq!(
            f.replica.check_epoch(5).unwrap_err().error,
            ErrorCode::UnknownLeaderEpoch
        );
    }

    #[test]
    fn stale_metadata_is_ignored() {
        let mut f = leader(&[1, 2]);
        f.replica
            .apply_metadata(&pm(Some(2), 3, 4, &[2]), &CONFIGS, 0, &f.events)
            .unwrap();
        f.replica
            .apply_metadata(&pm(Some(1), 2, 9, &[1, 2]), &CONFIGS, 0, &f.events)
            .unwrap();
        assert_eq!(
            (f.replica.role, f.replica.leader_epoch),
            (Role::Follower, Some(3))
        );
    }

    /// Issue 8 item 1 (KAFKA-15583): HW is frozen while the ISR is below min.insync.replicas.
    #[test]
    fn hw_does_not_advance_while_the_isr_is_below_min_insync_replicas() {
        let mut f = leader(&[1]);
        let r = &mut f.replica;
        r.append_as_leader(values(3), Acks::One, 1_000).unwrap();
        assert!(r.is_under_min_isr());
        assert_eq!(r.hw, 0, "acks=1 records under min ISR are not committed");
        let (_, expand) = fetch(r, 2, 3, Some(0), 1_001).unwrap();
        let expand = expand.expect("2 is at HW and the epoch start");
        assert_eq!(
            r.hw, 0,
            "the committed ISR is still below min.insync.replicas while 2 joins"
        );
        let accepted = pm(Some(1), 0, 1, &[1, 2]);
        r.on_alter_result(&expand, Ok(accepted), 1_003, &f.events);
        assert_eq!(r.hw, 3, "back at min.insync.replicas: HW moves");
    }

    /// Issue 8 item 2 (KAFKA-15021): HW waits for a caught-up follower about to rejoin.
    #[test]
    fn hw_waits_for_a_caught_up_follower_that_is_about_to_rejoin() {
        let mut f = leader(&[1, 2]);
        let r = &mut f.replica;
        r.min_insync_replicas = 1;
        r.append_as_leader(values(4), Acks::One, 1_000).unwrap();
        fetch(r, 2, 4, Some(0), 1_000).unwrap();
        assert_eq!(r.hw, 4);
        // 3 fetches at the leader's LEO (so it is caught up) but outside the ISR; its
        // expansion is in the backoff after a refusal, so it stays outside for now.
        r.leader_state.as_mut().unwrap().retry_after_ms = 10_000;
        fetch(r, 3, 4, Some(0), 1_100).unwrap();
        r.append_as_leader(values(2), Acks::One, 1_200).unwrap();
        fetch(r, 2, 6, Some(0), 1_201).unwrap();
        assert_eq!(r.hw, 4, "3 caught up within the lag time: HW waits for it");
        fetch(r, 3, 5, Some(0), 1_202).unwrap();
        assert_eq!(r.hw, 5);
        // Once 3 has not caught up within the lag time, HW no longer waits for it.
        r.append_as_leader(values(1), Acks::One, 2_000).unwrap();
        fetch(r, 2, 7, Some(0), 2_000).unwrap();
        assert_eq!(r.hw, 7);
    }

    /// Issue 8 item 3 (Replica.scala `isCaughtUp`): a follower at the leader's LEO is in sync
    /// however long ago it fetched.
    #[test]
    fn a_follower_at_the_leaders_leo_stays_in_the_isr_of_an_idle_partition() {
        let mut f = leader(&[1, 2, 3]);
        let r = &mut f.replica;
        r.append_as_leader(values(2), Acks::All, 1_000).unwrap();
        fetch(r, 2, 2, Some(0), 1_001).unwrap();
        fetch(r, 3, 2, Some(0), 1_001).unwrap();
        assert_eq!(r.maybe_shrink_isr(60_000), None, "idle: both at the LEO");
        r.append_as_leader(values(1), Acks::All, 60_001).unwrap();
        fetch(r, 2, 3, Some(0), 60_002).unwrap();
        let proposal = r.maybe_shrink_isr(60_003).expect("3 is behind and silent");
        assert_eq!(proposal.new_isr, vec![1, 2]);
    }

    /// Issue 8 item 4 (AlterPartitionManager, `handleAlterPartitionError`): a pending ISR change
    /// survives a lost reply and is dropped only when the controller says it was not applied.
    #[test]
    fn a_pending_isr_change_survives_a_lost_reply() {
        let mut f = leader(&[1, 2]);
        let r = &mut f.replica;
        let (_, expand) = fetch(r, 3, 0, Some(0), 1_000).unwrap();
        let expand = expand.unwrap();
        let lost = ApiError::new(ErrorCode::RequestTimedOut, "no answer");
        assert_eq!(
            r.on_alter_result(&expand, Err(lost), 1_000, &f.events),
            AlterOutcome::Retry
        );
        assert_eq!(
            r.maximal_isr(),
            vec![1, 2, 3],
            "still pending: HW waits for 3"
        );
        let stale = ApiError::new(ErrorCode::InvalidUpdateVersion, "applied already");
        assert_eq!(
            r.on_alter_result(&expand, Err(stale), 1_001, &f.events),
            AlterOutcome::Done
        );
        assert_eq!(r.pending_isr(), Some(&[1, 2, 3][..]), "awaits new metadata");
        r.apply_metadata(&pm(Some(1), 0, 1, &[1, 2, 3]), &CONFIGS, 1_002, &f.events)
            .unwrap();
        assert_eq!((r.pending_isr(), r.isr()), (None, &[1, 2, 3][..]));
        // A refusal that proves the change was not applied drops it.
        let (_, again) = fetch(r, 2, 0, Some(0), 1_003).unwrap();
        assert_eq!(again, None);
        r.append_as_leader(values(1), Acks::One, 4_000).unwrap();
        let shrink = r.maybe_shrink_isr(5_000).unwrap();
        let refused = ApiError::new(ErrorCode::IneligibleReplica, "no");
        r.on_alter_result(&shrink, Err(refused), 5_000, &f.events);
        assert_eq!(r.pending_isr(), None);
    }

    /// Issue 8 item 6 (DelayedFetch.tryComplete): a change of HW alone does not answer a
    /// follower's long-poll.
    #[test]
    fn a_follower_long_poll_does_not_complete_on_an_hw_change() {
        let mut f = leader(&[1, 2, 3]);
        let r = &mut f.replica;
        r.append_as_leader(values(2), Acks::All, 1_000).unwrap();
        fetch(r, 3, 2, Some(0), 1_001).unwrap();
        assert!(!r.follower_fetch_ready(2, 0), "3 parks at the LEO");
        fetch(r, 2, 2, Some(0), 1_002).unwrap();
        assert_eq!(r.hw, 2, "HW moved");
        assert!(
            !r.follower_fetch_ready(2, 0),
            "but 3's long-poll keeps waiting"
        );
        r.append_as_leader(values(1), Acks::All, 1_003).unwrap();
        assert!(r.follower_fetch_ready(2, 0), "new records answer it");
        r.apply_metadata(&pm(Some(2), 1, 1, &[2, 3]), &CONFIGS, 1_004, &f.events)
            .unwrap();
        assert!(
            r.follower_fetch_ready(3, 0),
            "so does losing the leadership"
        );
    }

    /// Issue 8 item 8: a waiting acks=all request survives a re-election of the same broker
    /// under a newer epoch (Partition.scala `checkEnoughReplicasReachOffset` only asks whether
    /// this broker still leads), but not a spell as follower in between.
    #[test]
    fn acks_all_survives_a_reelection_of_the_same_leader() {
        let mut f = leader(&[1, 2]);
        let r = &mut f.replica;
        let (_, last) = r.append_as_leader(values(2), Acks::All, 1_000).unwrap();
        let since = r.leader_since_epoch().unwrap();
        r.apply_metadata(&pm(Some(1), 2, 2, &[1, 2]), &CONFIGS, 1_001, &f.events)
            .unwrap();
        assert!(r.acks_all_status(last, since).is_none(), "still waiting");
        fetch(r, 2, 2, Some(0), 1_002).unwrap();
        assert_eq!(r.acks_all_status(last, since), Some(Ok(())));
        // Follower, then leader again: the request fails (its records may have been cut).
        let (_, last) = r.append_as_leader(values(1), Acks::All, 1_003).unwrap();
        r.apply_metadata(&pm(Some(2), 3, 3, &[1, 2]), &CONFIGS, 1_004, &f.events)
            .unwrap();
        r.apply_metadata(&pm(Some(1), 4, 4, &[1, 2]), &CONFIGS, 1_005, &f.events)
            .unwrap();
        assert!(r.acks_all_status(last, since).unwrap().is_err());
    }
}
