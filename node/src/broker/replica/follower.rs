//! The follower's side of one partition replica: becoming a follower (in 0.10.2 with the
//! truncation to the HW), the fetch it sends next (with its broker epoch, KIP-903), and what it
//! does with the leader's answer: append the batches and take HW = min(leader HW, own LEO),
//! truncate at the diverging epoch (KIP-101/279/320), or, on OFFSET_OUT_OF_RANGE, truncate to
//! the leader's LEO or, as 0.10.2 with unclean election off, refuse to. The fetch loop that
//! sends the fetches is `crate::broker::follower`; the leader's side is [`super::leader`].

use serde_json::json;

use super::{Replica, Role};
use crate::api::*;
use crate::events::EventLog;

/// What a follower did about OFFSET_OUT_OF_RANGE ([`Replica::follower_out_of_range`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutOfRange {
    /// It truncated to the leader's LEO and fetches on.
    Truncated,
    /// Legacy-hw with unclean election off: truncating is not allowed, and the broker process
    /// must exit, as Kafka 0.10.2 does.
    Exit,
}

impl Replica {
    pub(super) fn become_follower(
        &mut self,
        leader: u32,
        previous_leader: Option<u32>,
        events: &EventLog,
    ) -> std::io::Result<()> {
        self.role = Role::Follower;
        self.leader_since_epoch = None;
        self.leader_state = None;
        self.emit_role(events);
        // 0.10.2.1 `Partition.makeFollower` is false for the leader it already follows (a new
        // leader epoch from `KafkaController.removeReplicaFromIsr`, which bumps it for an ISR
        // change), and `ReplicaManager.makeFollowers` then skips the truncation.
        if !self.rules.leader_epoch_truncation && previous_leader != Some(leader) {
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

    pub(super) fn truncate(
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

    /// The fetch a follower sends next. With broker epochs it names this broker's own (Kafka's
    /// `RemoteLeaderEndPoint.buildFetch`: `FetchRequest.Builder.forReplica(…,
    /// brokerEpochSupplier(), …)`, FetchRequest v15 `ReplicaState.ReplicaEpoch`), absent while
    /// the controller has not named it yet (Kafka sends -1 then).
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
        let broker_epoch = if self.rules.broker_epochs {
            self.registrations.own_epoch()
        } else {
            None
        };
        ReplicaFetchRequest {
            broker_epoch,
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
}
