//! The leader's side of one partition replica: what it knows of each follower (Kafka's `Replica`
//! state) and how a new leader epoch resets it; the answer to a follower's fetch, with the HW
//! read before the fetch updates anything and the broker-epoch fence of KIP-903; HW; the ISR
//! changes it proposes (each member with its broker epoch) and the controller's answer to them;
//! the produce path's append and acks=all check. The follower's side is [`super::follower`].
//!
//! Kafka source (tags `3.7.0` and `0.10.2.1`; paths under `core/src/main/scala/kafka/`) is cited
//! at each rule; docs/replication.md ("Kafka versions") lists them with their tests.

use serde_json::json;
use std::collections::BTreeMap;

use super::{Replica, Role};
use crate::api::*;
use crate::events::EventLog;
use crate::storage::producer_state::{ClientBatch, SequenceError};
use crate::storage::{Frames, ProducerBatch, RecordBatch};

/// The broker epoch of a follower's last fetch, as the leader stores it (Kafka's
/// `ReplicaState.brokerEpoch`, an `Option[Long]` in which `-1` is a fetch that named none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchEpoch {
    /// No fetch since the leader last reset this follower (Kafka: `None`).
    NotFetched,
    /// The last fetch named no broker epoch (Kafka: `-1`).
    Absent,
    /// The broker epoch the last fetch named.
    Epoch(u64),
}

impl FetchEpoch {
    fn of_request(broker_epoch: Option<u64>) -> Self {
        broker_epoch.map_or(FetchEpoch::Absent, FetchEpoch::Epoch)
    }

    /// Kafka's `Partition.isBrokerEpochIsrEligible(stored, cached)` (3.7.0): both defined, and
    /// the stored one is -1 or equal to the registration's. `alive_epoch` is the registration's
    /// epoch (None when the broker is fenced or unknown).
    pub fn is_isr_eligible(self, alive_epoch: Option<u64>) -> bool {
        match (self, alive_epoch) {
            (FetchEpoch::NotFetched, _) | (_, None) => false,
            (FetchEpoch::Absent, Some(_)) => true,
            (FetchEpoch::Epoch(stored), Some(cached)) => stored == cached,
        }
    }

    /// What an AlterPartition names for this follower: its epoch when known (Kafka sends -1
    /// otherwise; the request leaves it out).
    pub fn known(self) -> Option<u64> {
        match self {
            FetchEpoch::Epoch(epoch) => Some(epoch),
            FetchEpoch::NotFetched | FetchEpoch::Absent => None,
        }
    }
}

/// What the leader knows of one follower (Kafka's `ReplicaState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerState {
    /// The follower's LEO as of its last fetch; unknown until it fetches from this leader.
    pub leo: Option<u64>,
    pub last_caught_up_ms: u64,
    /// The leader's LEO when the follower last fetched. Kafka's "unknown" (-1) is 0 here: both
    /// are at or below every fetch offset, which is all the caught-up rule asks of it.
    pub last_fetch_leader_leo: u64,
    pub last_fetch_ms: u64,
    pub broker_epoch: FetchEpoch,
    /// The stale broker epoch last refused from this follower: `stale_fetch_refused` is
    /// written once per stale epoch, not once per fetch.
    refused_epoch: Option<u64>,
}

impl FollowerState {
    /// Kafka's `ReplicaState.Empty`: a follower the leader has heard nothing from.
    pub const EMPTY: FollowerState = FollowerState {
        leo: None,
        last_caught_up_ms: 0,
        last_fetch_leader_leo: 0,
        last_fetch_ms: 0,
        broker_epoch: FetchEpoch::NotFetched,
        refused_epoch: None,
    };

    /// Kafka's rule (`Replica.updateFetchStateOrThrow`, 3.7.0; `updateLogReadResult`,
    /// 0.10.2.1): a follower is caught up at this fetch if it fetched at or past the leader's
    /// LEO now, or at or past the leader's LEO as of its previous fetch (then it was caught up
    /// as of that previous fetch's time). The fetch's broker epoch is stored with it.
    pub fn on_fetch(
        &mut self,
        fetch_offset: u64,
        leader_leo: u64,
        now_ms: u64,
        broker_epoch: Option<u64>,
    ) {
        if fetch_offset >= leader_leo {
            self.last_caught_up_ms = self.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= self.last_fetch_leader_leo {
            self.last_caught_up_ms = self.last_caught_up_ms.max(self.last_fetch_ms);
        }
        self.leo = Some(fetch_offset);
        self.last_fetch_leader_leo = leader_leo;
        self.last_fetch_ms = now_ms;
        self.broker_epoch = FetchEpoch::of_request(broker_epoch);
    }

    /// Kafka's `ReplicaState.isCaughtUp` (Replica.scala): at the leader's LEO, however long ago
    /// it last fetched, or caught up within the lag time.
    pub fn is_caught_up(&self, leader_leo: u64, now_ms: u64, lag_time_max_ms: u64) -> bool {
        self.leo == Some(leader_leo)
            || now_ms.saturating_sub(self.last_caught_up_ms) <= lag_time_max_ms
    }

    /// Kafka 3.7.0 `Replica.resetReplicaState`, run for every follower when this broker starts
    /// a new leader epoch. A new leader (`isNewLeader`: it was not leader just before) forgets
    /// the follower's LEO and broker epoch; the same broker re-elected keeps both, and takes its
    /// own LEO at the epoch start as the follower's last fetch. Either way an ISR member counts
    /// as caught up (and, re-elected, as having fetched) now, anyone else never.
    fn reset_replica_state(
        &self,
        is_new_leader: bool,
        leader_end_offset: u64,
        in_isr: bool,
        now_ms: u64,
    ) -> FollowerState {
        let now_if_in_sync = if in_isr { now_ms } else { 0 };
        if is_new_leader {
            return FollowerState {
                last_caught_up_ms: now_if_in_sync,
                ..FollowerState::EMPTY
            };
        }
        FollowerState {
            last_fetch_leader_leo: leader_end_offset,
            last_fetch_ms: now_if_in_sync,
            last_caught_up_ms: now_if_in_sync,
            ..self.clone()
        }
    }

    /// Kafka 0.10.2.1 `Partition.makeLeader`: `Replica.resetLastCaughtUpTime` for every
    /// follower at every become-leader (its last fetch is now, at the leader's LEO; an ISR
    /// member is caught up now, anyone else never), and its LEO forgotten only when this broker
    /// was not the leader before (`isNewLeader`).
    fn reset_last_caught_up_time(
        &self,
        is_new_leader: bool,
        leader_leo: u64,
        in_isr: bool,
        now_ms: u64,
    ) -> FollowerState {
        let kept = if is_new_leader {
            &FollowerState::EMPTY
        } else {
            self
        };
        FollowerState {
            last_fetch_leader_leo: leader_leo,
            last_fetch_ms: now_ms,
            last_caught_up_ms: if in_isr { now_ms } else { 0 },
            ..kept.clone()
        }
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
    /// No answer came (a timeout, a reset connection), or the controller asked for it again
    /// (STALE_BROKER_EPOCH): send the same proposal again.
    Retry,
}

/// A proposed ISR change for the broker to send to the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterProposal {
    pub leader_epoch: u32,
    pub partition_epoch: u32,
    pub new_isr: Vec<u32>,
    /// The broker epoch of each member of `new_isr` the leader knows (AlterPartition v3
    /// `NewIsrWithEpochs`); empty without broker epochs.
    pub broker_epochs: BTreeMap<u32, u64>,
}

/// A follower's fetch as the leader answers it.
pub enum LeaderFetch {
    Records(ReplicaFetchResponse),
    /// Nothing to send yet: the broker may long-poll, then answer with
    /// [`Replica::complete_parked_fetch`].
    Empty(ReplicaFetchResponse),
}

impl Replica {
    /// What this broker, as leader, knows of follower `id` (None when it does not lead, or has
    /// no state for it).
    pub fn follower_state(&self, id: u32) -> Option<&FollowerState> {
        self.leader_state.as_ref()?.followers.get(&id)
    }

    /// The ISR proposed in an AlterPartition that has not been answered yet, if any.
    pub fn pending_isr(&self) -> Option<&[u32]> {
        self.leader_state.as_ref()?.pending_isr.as_deref()
    }

    /// Kafka's `effectiveMinIsr`: min.insync.replicas, but never more than the replicas there are.
    fn effective_min_isr(&self) -> usize {
        (self.min_insync_replicas as usize).min(self.replicas.len().max(1))
    }

    /// Kafka's `isUnderMinIsr` (Partition.scala, 3.7.0): this broker leads and the committed ISR
    /// is smaller than min(min.insync.replicas, replica count).
    pub fn is_under_min_isr(&self) -> bool {
        self.role == Role::Leader && self.isr.len() < self.effective_min_isr()
    }

    /// The ISR HW is computed over: while an AlterPartition is in flight, the union of the
    /// committed ISR and the proposal (the larger set is the safe one).
    pub fn maximal_isr(&self) -> Vec<u32> {
        let mut isr = self.isr.clone();
        if let Some(pending) = self.pending_isr() {
            isr.extend(pending.iter().copied().filter(|b| !self.isr.contains(b)));
            isr.sort_unstable();
        }
        isr
    }

    /// Becomes leader in `pm`'s (new) leader epoch: the epoch starts at the LEO, and every
    /// follower's state is reset as the version's `Partition.makeLeader` does (3.7.0
    /// `resetReplicaState`, 0.10.2.1 `resetLastCaughtUpTime`). `apply_metadata` calls it only
    /// for a newer leader epoch, as Kafka resets follower state only then ("Skipped the
    /// become-leader state change" otherwise).
    pub(super) fn become_leader(
        &mut self,
        pm: &PartitionMetadata,
        now_ms: u64,
        events: &EventLog,
    ) -> std::io::Result<()> {
        let leo = self.leo();
        let is_new_leader = self.role != Role::Leader;
        // A broker re-reading the same election after a restart must not report it twice.
        let new_epoch = self.log.latest_epoch().is_none_or(|e| e < pm.leader_epoch);
        self.log.assign_epoch(pm.leader_epoch, leo)?;
        let epoch_start_offset = self
            .log
            .epochs()
            .start_offset_of(pm.leader_epoch)
            .unwrap_or(leo);
        let followers = self.followers_at_new_epoch(pm, is_new_leader, epoch_start_offset, now_ms);
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
        // Kafka's makeLeader ends with maybeIncrementLeaderHW: the ISR may be this broker alone.
        self.maybe_advance_hw(now_ms);
        Ok(())
    }

    /// Every follower's state at the start of a new leader epoch, from its state just before
    /// (which only a broker that was already leader has).
    fn followers_at_new_epoch(
        &self,
        pm: &PartitionMetadata,
        is_new_leader: bool,
        epoch_start_offset: u64,
        now_ms: u64,
    ) -> BTreeMap<u32, FollowerState> {
        let previous = self.leader_state.as_ref().map(|s| &s.followers);
        let zk_era = self.rules.reset_last_caught_up_time;
        let leo = self.leo();
        pm.replicas
            .iter()
            .filter(|&&id| id != self.broker_id)
            .map(|&id| {
                let before = previous
                    .and_then(|f| f.get(&id))
                    .unwrap_or(&FollowerState::EMPTY);
                let in_isr = pm.isr.contains(&id);
                let state = if zk_era {
                    before.reset_last_caught_up_time(is_new_leader, leo, in_isr, now_ms)
                } else {
                    before.reset_replica_state(is_new_leader, epoch_start_offset, in_isr, now_ms)
                };
                (id, state)
            })
            .collect()
    }

    /// Kafka's `Partition.isReplicaIsrEligible` (3.7.0). With broker epochs (KRaft) a follower
    /// may join the ISR, and HW waits for it as one about to, only when the metadata lists it
    /// unfenced and not in controlled shutdown, and its last fetch since this leader's reset
    /// named the epoch of its current registration or none (`isBrokerEpochIsrEligible`; a
    /// metadata that names no epochs at all, from a controller without them, skips that last
    /// check). Without broker epochs (0.10.2) the node asks only that it is not fenced;
    /// 0.10.2.1's `maybeExpandIsr` asks nothing, and the controller refuses a fenced member.
    pub(super) fn is_isr_eligible(&self, id: u32) -> bool {
        let r = &self.registrations;
        if !self.rules.broker_epochs {
            return !r.is_fenced(id);
        }
        let stored = self
            .leader_state
            .as_ref()
            .and_then(|s| s.followers.get(&id))
            .map_or(FetchEpoch::NotFetched, |f| f.broker_epoch);
        let epoch_eligible = !r.names_epochs() || stored.is_isr_eligible(r.alive_epoch(id));
        !r.is_fenced(id) && !r.is_shutting_down(id) && epoch_eligible
    }

    /// Kafka's `maybeIncrementLeaderHW` (Partition.scala, 3.7.0): HW = min LEO over the maximal
    /// ISR and over every follower outside it that is caught up and ISR-eligible, so about to
    /// rejoin (KAFKA-15021: otherwise, with steady traffic, HW runs at the leader's LEO and such
    /// a follower never reaches HW to rejoin). With `min_isr_hw_freeze` (KAFKA-15583, 3.7.0) it
    /// does not move at all while the committed ISR is below min.insync.replicas; 0.10.2.1 has no
    /// such check. It only ever moves forward on a leader. Returns whether it moved.
    pub fn maybe_advance_hw(&mut self, now_ms: u64) -> bool {
        if self.rules.min_isr_hw_freeze && self.is_under_min_isr() {
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
                && self.is_isr_eligible(id);
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

    /// A produce: checks leadership and (for acks=all) the ISR size, then appends stamped with the
    /// leader epoch. Returns the base offset and the last offset of the batch.
    pub fn append_as_leader(
        &mut self,
        values: Vec<String>,
        acks: Acks,
        now_ms: u64,
        producer: Option<ProducerBatch>,
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
        // An idempotent producer's batch is checked against what this log knows of the
        // producer: a retry of one of its last five batches is answered with that batch's
        // offsets and appends nothing, a gap or an old epoch is refused (Kafka's log append,
        // `UnifiedLog.analyzeAndValidateProducerState`; it runs after `Partition`'s min ISR
        // check, so NOT_ENOUGH_REPLICAS comes first here too).
        // Kafka 0.10.2 predates the idempotent producer: a stamp means nothing there.
        let producer = producer.filter(|_| self.rules.idempotent_producer);
        if let Some(p) = producer {
            match self.log.check_producer(p, values.len() as u32) {
                Ok(ClientBatch::Append) => {}
                Ok(ClientBatch::Duplicate {
                    first_offset,
                    last_offset,
                }) => return Ok((first_offset, last_offset)),
                Err(SequenceError::OutOfOrderSequence(m)) => {
                    return Err(ApiError::new(ErrorCode::OutOfOrderSequenceNumber, m))
                }
                Err(SequenceError::InvalidProducerEpoch(m)) => {
                    return Err(ApiError::new(ErrorCode::InvalidProducerEpoch, m))
                }
            }
        }
        // One produce request is one batch: it survives or vanishes whole on every replica.
        let batch = RecordBatch {
            base_offset: self.leo(),
            leader_epoch: self.current_epoch(),
            timestamp_ms: now_ms,
            values,
            producer,
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

    /// The leader's side of a follower fetch (Kafka's `Partition.fetchRecords`, 3.7.0). The
    /// answer is read first, HW included, and only then does the fetch update the follower's
    /// state (LEO, caught-up time, broker epoch), which may propose an ISR expansion and move
    /// HW: the answer never carries the HW this very fetch produced, as `readRecords` captures
    /// `initialHighWatermark` before `updateFollowerFetchState` runs (0.10.2.1 likewise:
    /// `ReplicaManager.readFromLocalLog` captures it before `updateFollowerLogReadResults`). A
    /// fetch that diverges updates nothing; one with a stale broker epoch is refused and
    /// updates nothing. Returns the answer and an ISR expansion to propose, if this fetch earned
    /// one.
    pub fn leader_fetch(
        &mut self,
        req: &ReplicaFetchRequest,
        now_ms: u64,
        events: &EventLog,
    ) -> Result<(LeaderFetch, Option<AlterProposal>), ApiError> {
        self.check_follower_fetch(req)?;
        let leader_leo = self.leo();
        let response = self.read_at(req)?;
        if response.diverging_epoch.is_some() {
            return Ok((LeaderFetch::Records(response), None));
        }
        self.check_fetch_broker_epoch(req, events)?;
        let expand = self.update_follower_fetch_state(req, leader_leo, now_ms);
        if response.frames.is_empty() {
            Ok((LeaderFetch::Empty(response), expand))
        } else {
            Ok((LeaderFetch::Records(response), expand))
        }
    }

    /// The answer to a fetch that was parked (a long-poll), when it completes or expires:
    /// Kafka's `DelayedFetch.onComplete` reads again through `readFromLog(readFromPurgatory =
    /// true)` (3.7.0; 0.10.2.1 `readFromLocalLog`), so the answer carries HW as of now, and the
    /// follower's state is not updated a second time.
    pub fn complete_parked_fetch(
        &self,
        req: &ReplicaFetchRequest,
    ) -> Result<ReplicaFetchResponse, ApiError> {
        self.check_follower_fetch(req)?;
        self.read_at(req)
    }

    /// Leadership, the request's leader epoch, and that it comes from a follower of this
    /// partition (Kafka's `localLogWithEpochOrThrow`, `followerReplicaOrThrow`).
    fn check_follower_fetch(&self, req: &ReplicaFetchRequest) -> Result<(), ApiError> {
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
        Ok(())
    }

    /// What a follower's fetch reads now (Kafka's `Partition.readRecords`): the diverging
    /// epoch, or batches from `fetch_offset`, with HW and LEO as they are before anything else.
    fn read_at(&self, req: &ReplicaFetchRequest) -> Result<ReplicaFetchResponse, ApiError> {
        let leo = self.leo();
        if let Some(diverging) = self.diverging_epoch(req) {
            return Ok(ReplicaFetchResponse {
                frames: Frames::default(),
                high_watermark: self.hw,
                log_end_offset: leo,
                diverging_epoch: Some(diverging),
            });
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
        self.read_for_follower(req.fetch_offset, req.max_records, req.max_bytes)
    }

    /// KIP-903's fence (Kafka's `Replica.updateFetchStateOrThrow`, 3.7.0): a fetch naming a
    /// broker epoch older than the follower's registration in the metadata comes from a
    /// previous incarnation, and is refused with NOT_LEADER_OR_FOLLOWER before it changes the
    /// follower's state, so it cannot bring the broker back into the ISR with an LEO the new
    /// incarnation may not have. Strictly older only: an equal or newer epoch passes, and so
    /// does a fetch naming none or a broker the metadata lists fenced or not at all.
    fn check_fetch_broker_epoch(
        &mut self,
        req: &ReplicaFetchRequest,
        events: &EventLog,
    ) -> Result<(), ApiError> {
        if !self.rules.broker_epochs {
            return Ok(());
        }
        let current = self.registrations.alive_epoch(req.replica_id);
        let (Some(requested), Some(current)) = (req.broker_epoch, current) else {
            return Ok(());
        };
        if current <= requested {
            return Ok(());
        }
        self.note_stale_fetch(req, requested, current, events);
        Err(ApiError::new(
            ErrorCode::NotLeaderOrFollower,
            format!(
                "received stale fetch state update from broker {}: broker epoch {requested} vs \
                 expected {current}",
                req.replica_id
            ),
        ))
    }

    /// Writes `stale_fetch_refused`, once per follower and stale epoch.
    fn note_stale_fetch(
        &mut self,
        req: &ReplicaFetchRequest,
        requested: u64,
        current: u64,
        events: &EventLog,
    ) {
        let follower = self.follower_mut(req.replica_id);
        if follower.refused_epoch == Some(requested) {
            return;
        }
        follower.refused_epoch = Some(requested);
        self.emit(
            events,
            "stale_fetch_refused",
            json!({"broker": req.replica_id, "broker_epoch": requested,
                   "current_broker_epoch": current, "fetch_offset": req.fetch_offset,
                   "leader_epoch": self.leader_epoch}),
        );
    }

    /// What this leader knows of `follower`, created empty on its first fetch.
    fn follower_mut(&mut self, follower: u32) -> &mut FollowerState {
        self.leader_state
            .as_mut()
            .expect("a leader has leader state")
            .followers
            .entry(follower)
            .or_insert(FollowerState::EMPTY)
    }

    /// Kafka's `Partition.updateFollowerFetchState` (3.7.0): the follower's fetch state, then
    /// the ISR expansion it may earn (`maybeExpandIsr`), then HW, if the follower's LEO moved.
    fn update_follower_fetch_state(
        &mut self,
        req: &ReplicaFetchRequest,
        leader_leo: u64,
        now_ms: u64,
    ) -> Option<AlterProposal> {
        let follower = self.follower_mut(req.replica_id);
        let previous_leo = follower.leo;
        follower.on_fetch(req.fetch_offset, leader_leo, now_ms, req.broker_epoch);
        let expand = self.expansion_for(req.replica_id, now_ms);
        if previous_leo != Some(req.fetch_offset) {
            self.maybe_advance_hw(now_ms);
        }
        expand
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
    /// answer, when the long-poll ends, carries HW as of then ([`Self::complete_parked_fetch`]).
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

    /// Kafka's `maybeExpandIsr` → `canAddReplicaToIsr` (not in the ISR, no change in flight,
    /// ISR-eligible) and `isFollowerInSync`; the node adds a backoff after a refusal.
    fn expansion_for(&mut self, follower: u32, now_ms: u64) -> Option<AlterProposal> {
        let state = self.leader_state.as_ref()?;
        if self.isr.contains(&follower)
            || state.pending_isr.is_some()
            || now_ms < state.retry_after_ms
            || !self.is_isr_eligible(follower)
        {
            return None;
        }
        let leo = state.followers.get(&follower)?.leo?;
        if !self.is_follower_in_sync(leo, state.epoch_start_offset) {
            return None;
        }
        let mut new_isr = self.isr.clone();
        new_isr.push(follower);
        new_isr.sort_unstable();
        self.propose(new_isr)
    }

    /// Kafka 3.7.0 `isFollowerInSync`: the follower's LEO reached HW and, with
    /// `epoch_start_expansion` (KAFKA-7128, 2.0.1), the start of the current leader epoch, so
    /// it cannot lead without committed records between the leader's HW and LEO. 0.10.2.1's
    /// `maybeExpandIsr` asks only LEO ≥ HW.
    fn is_follower_in_sync(&self, follower_leo: u64, epoch_start_offset: u64) -> bool {
        follower_leo >= self.hw
            && (!self.rules.epoch_start_expansion || follower_leo >= epoch_start_offset)
    }

    fn propose(&mut self, new_isr: Vec<u32>) -> Option<AlterProposal> {
        let broker_epochs = self.broker_epochs_of(&new_isr);
        let state = self.leader_state.as_mut()?;
        state.pending_isr = Some(new_isr.clone());
        Some(AlterProposal {
            leader_epoch: self.current_epoch(),
            partition_epoch: self.partition_epoch,
            new_isr,
            broker_epochs,
        })
    }

    /// Kafka's `Partition.addBrokerEpochToIsr` (3.7.0): with broker epochs, the leader names its
    /// own broker epoch and each follower's from its last fetch; a member without one (no fetch
    /// since this leader took over) is sent as -1, which the request expresses by leaving it
    /// out. Without broker epochs (Kafka's ZooKeeper mode) every member is -1.
    fn broker_epochs_of(&self, isr: &[u32]) -> BTreeMap<u32, u64> {
        if !self.rules.broker_epochs {
            return BTreeMap::new();
        }
        let followers = self.leader_state.as_ref().map(|s| &s.followers);
        isr.iter()
            .filter_map(|&id| {
                let epoch = if id == self.broker_id {
                    self.registrations.own_epoch()
                } else {
                    followers?.get(&id)?.broker_epoch.known()
                };
                Some((id, epoch?))
            })
            .collect()
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
    ///   change was not applied: the leader goes back to its last committed ISR, with a backoff;
    /// - a stale epoch or an invalid request keeps the change pending until new metadata
    ///   overrides it (the controller may have applied an earlier copy);
    /// - anything else (a timeout, a reset connection, STALE_BROKER_EPOCH, which Kafka's
    ///   `AlterPartitionManager.handleAlterPartitionResponse` retries) keeps it pending and asks
    ///   to resend it.
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
        let pm = match result {
            Ok(pm) => pm,
            Err(e) => return self.on_alter_error(e, now_ms),
        };
        let state = self
            .leader_state
            .as_mut()
            .expect("a pending ISR implies a leader");
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

    /// Kafka's `Partition.handleAlterPartitionError`, for the current proposal.
    fn on_alter_error(&mut self, e: ApiError, now_ms: u64) -> AlterOutcome {
        tracing::warn!(
            "AlterPartition for {}/{} failed: {e}",
            self.topic,
            self.partition
        );
        let state = self
            .leader_state
            .as_mut()
            .expect("a pending ISR implies a leader");
        match e.error {
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
        }
    }
}
