//! AlterPartition: a leader proposes a new ISR, and the controller accepts it only from the
//! current leader at the current leader_epoch and partition_epoch, with the leader's current
//! broker epoch, and only if every member may be in an ISR. Kafka 3.7.0
//! `ReplicationControlManager.alterPartition` and `validateAlterPartitionData`; the accepted
//! ISR goes through [`super::change`], so the ELR follows it.

use serde_json::json;
use std::collections::BTreeMap;

use super::{effective_min_isr, Change, ChangeRules, ControllerState};
use crate::api::*;

impl ControllerState {
    /// AlterPartition. Refused with STALE_BROKER_EPOCH when the leader's own epoch in
    /// `broker_epochs` is not its registration's (`checkBrokerEpoch`, the first check Kafka
    /// makes); then unless it comes from the current leader with the current leader_epoch and
    /// partition_epoch and keeps the leader in an ISR of replicas; then with INELIGIBLE_REPLICA
    /// if any member may not be in an ISR (`ineligibleReplicasForIsr`).
    pub fn alter_partition(
        &mut self,
        req: AlterPartitionRequest,
    ) -> Result<PartitionMetadata, ApiError> {
        self.check_cluster(&req.cluster_id)?;
        let leader_epoch = req.broker_epochs.get(&req.broker_id).copied();
        let checked = self
            .check_broker_epoch(req.broker_id, leader_epoch)
            .and_then(|()| self.validate_alter(&req))
            .and_then(|isr| {
                self.check_isr_eligible(&isr, &req.broker_epochs)
                    .map(|()| isr)
            });
        match checked {
            Ok(new_isr) => self.apply_alter(&req, new_isr),
            Err(e) => {
                self.events.emit(
                    "alter_partition_rejected",
                    json!({"topic": req.topic, "partition": req.partition, "broker": req.broker_id,
                           "error": e.error, "message": e.message, "leader_epoch": req.leader_epoch,
                           "partition_epoch": req.partition_epoch}),
                );
                Err(e)
            }
        }
    }

    /// The epoch and shape checks of `validateAlterPartitionData`; returns the proposed ISR,
    /// sorted.
    fn validate_alter(&self, req: &AlterPartitionRequest) -> Result<Vec<u32>, ApiError> {
        let p = self
            .durable
            .topics
            .iter()
            .find(|t| t.name == req.topic)
            .and_then(|t| t.partitions.get(req.partition as usize))
            .ok_or_else(|| ApiError::unknown_partition(&req.topic, req.partition))?;
        if p.leader != Some(req.broker_id) {
            let mut e = ApiError::new(
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
            return Err(ApiError::new(
                ErrorCode::FencedLeaderEpoch,
                format!(
                    "leader_epoch {} is not the current {}",
                    req.leader_epoch, p.leader_epoch
                ),
            ));
        }
        if req.partition_epoch != p.partition_epoch {
            return Err(ApiError::new(
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
        if !new_isr.contains(&req.broker_id) || new_isr.iter().any(|b| !p.replicas.contains(b)) {
            return Err(ApiError::invalid(format!(
                "ISR {new_isr:?} must hold the leader and only replicas {:?}",
                p.replicas
            )));
        }
        Ok(new_isr)
    }

    /// `ineligibleReplicasForIsr` (3.7.0; KIP-841, KIP-903), over every member, not only the
    /// added ones: a member is ineligible when it is not registered, is in controlled
    /// shutdown, is fenced, or when the leader names a broker epoch for it that is not its
    /// registration's. An epoch the leader does not know (absent; Kafka's -1) is not checked.
    fn check_isr_eligible(&self, isr: &[u32], epochs: &BTreeMap<u32, u64>) -> Result<(), ApiError> {
        let ineligible: Vec<String> = isr
            .iter()
            .filter_map(|&b| {
                let why = self.ineligibility(b, epochs.get(&b).copied())?;
                Some(format!("{b} ({why})"))
            })
            .collect();
        if ineligible.is_empty() {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorCode::IneligibleReplica,
            format!(
                "ISR {isr:?} has ineligible replicas: {}",
                ineligible.join(", ")
            ),
        ))
    }

    /// Why broker `b` may not be in an ISR, if it may not.
    fn ineligibility(&self, b: u32, epoch: Option<u64>) -> Option<String> {
        let Some(registration) = self.durable.registrations.get(&b) else {
            return Some("not registered".into());
        };
        // 0.10.2.1's leader writes the ISR to ZooKeeper itself (`Partition.updateIsr`), with no
        // word on shutting-down brokers; one that still leads may take followers back.
        if registration.in_controlled_shutdown && !self.rules.zk_controlled_shutdown {
            return Some("shutting down".into());
        }
        if registration.fenced {
            return Some("fenced".into());
        }
        match (epoch, registration.epoch) {
            (Some(requested), Some(expected))
                if self.rules.broker_epochs && requested != expected =>
            {
                Some(format!(
                    "broker epoch mismatch: requested={requested} vs expected={expected}"
                ))
            }
            _ => None,
        }
    }

    /// Writes the accepted ISR. The leader stays (it is in the ISR, and active or, with
    /// 0.10.2.1's rules, shutting down while no other ISR member could take over: its own ISR
    /// write elects nobody), so this is never an election. The partition epoch moves even when
    /// nothing else does, as it always has here (Kafka writes no record for a no-op).
    fn apply_alter(
        &mut self,
        req: &AlterPartitionRequest,
        new_isr: Vec<u32>,
    ) -> Result<PartitionMetadata, ApiError> {
        let mut acceptable = self.active_brokers();
        if self.rules.zk_controlled_shutdown {
            acceptable.push(req.broker_id);
        }
        let elr = self.rules.eligible_leader_replicas;
        let topic = self
            .durable
            .topics
            .iter_mut()
            .find(|t| t.name == req.topic)
            .expect("validated");
        let rules = ChangeRules {
            elr,
            min_isr: effective_min_isr(topic),
            unclean_ok: topic.configs.unclean_leader_election_enable,
            acceptable: &acceptable,
            unclean_shutdown: None,
        };
        let p = &mut topic.partitions[req.partition as usize];
        let before = p.clone();
        if !super::change(p, new_isr, &rules) {
            p.partition_epoch += 1;
        }
        assert_eq!(
            (p.leader, p.leader_epoch),
            (before.leader, before.leader_epoch),
            "an AlterPartition never changes the leader"
        );
        let reason = if p.isr.len() < before.isr.len() {
            "shrink"
        } else {
            "expand"
        };
        let change = Change::new(&topic.name, before, p, reason);
        let after = change.after.clone();
        self.record(vec![change]);
        self.persist()?;
        Ok(after)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::version::KafkaVersion;

    fn alter(c: &ControllerState, broker: u32, isr: &[u32]) -> AlterPartitionRequest {
        let p = partition(c);
        AlterPartitionRequest {
            cluster_id: "c".into(),
            broker_id: broker,
            topic: "t".into(),
            partition: 0,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr: isr.to_vec(),
            broker_epochs: BTreeMap::new(),
        }
    }

    fn epoch_of(c: &ControllerState, id: u32) -> u64 {
        c.durable.registrations[&id].epoch.unwrap()
    }

    #[test]
    fn alter_partition_is_fenced_by_both_epochs_and_metadata_survives_restart() {
        for version in KafkaVersion::ALL {
            let (dir, mut c) = controller_of(version);
            for id in 1..=3 {
                beat(&mut c, id, 7);
            }
            let leader = topic(&mut c, 3, 1).partitions[0].leader.unwrap();
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
            let after = partition(&c);
            assert_eq!(
                after.leader,
                Some(leader),
                "sole ISR member (4.1: last known leader) leads again: {version}"
            );
            assert_eq!(after.leader_epoch, 2, "fenced then unfenced: two elections");
            // Only ELR's last resort marks its winner: the report tells it from a topic's unclean
            // election by this flag.
            let flagged: Vec<bool> = events(dir.path(), "election")
                .iter()
                .map(|e| e["last_known_leader"] == true)
                .collect();
            let last_resort = version.rules().eligible_leader_replicas;
            assert_eq!(flagged.last(), Some(&last_resort), "{version}: {flagged:?}");
            assert_eq!(
                flagged.iter().filter(|f| **f).count(),
                usize::from(last_resort)
            );
            let version_before = c.metadata().metadata_version;
            drop(c);
            let back = open(dir.path(), version);
            assert_eq!(partition(&back), after);
            assert_eq!(back.metadata().metadata_version, version_before);
        }
    }

    /// `checkBrokerEpoch` on the requesting leader, then `ineligibleReplicasForIsr` over every
    /// member: a broker epoch the leader names must be the registration's; an unknown one is
    /// not checked.
    #[test]
    fn alter_partition_checks_the_leaders_broker_epoch_and_every_members() {
        let (_dir, mut c) = controller();
        for id in 1..=3 {
            beat(&mut c, id, 7);
        }
        topic(&mut c, 3, 1);
        let mut req = alter(&c, 1, &[1, 2]);
        req.broker_epochs.insert(1, epoch_of(&c, 1) + 100);
        let err = c.alter_partition(req).unwrap_err();
        assert_eq!(err.error, ErrorCode::StaleBrokerEpoch);
        let mut req = alter(&c, 1, &[1, 2, 3]);
        req.broker_epochs.insert(1, epoch_of(&c, 1));
        req.broker_epochs.insert(3, epoch_of(&c, 3) - 1);
        let err = c.alter_partition(req).unwrap_err();
        assert_eq!(err.error, ErrorCode::IneligibleReplica);
        assert!(
            err.message.contains("broker epoch mismatch"),
            "{}",
            err.message
        );
        let mut req = alter(&c, 1, &[1, 2, 3]);
        req.broker_epochs.insert(2, epoch_of(&c, 2));
        assert!(
            c.alter_partition(req).is_ok(),
            "3's epoch is unknown: allowed"
        );
        // A member already in the ISR is checked as well as an added one.
        c.durable.registrations.get_mut(&3).unwrap().fenced = true;
        let err = c.alter_partition(alter(&c, 1, &[1, 2, 3])).unwrap_err();
        assert_eq!(err.error, ErrorCode::IneligibleReplica);
        assert!(err.message.contains("3 (fenced)"), "{}", err.message);
        c.durable.registrations.remove(&3);
        let err = c.alter_partition(alter(&c, 1, &[1, 3])).unwrap_err();
        assert!(err.message.contains("not registered"), "{}", err.message);
    }

    #[test]
    fn without_broker_epochs_alter_partition_ignores_them() {
        let (_dir, mut c) = controller_of(KafkaVersion::V0_10_2);
        for id in 1..=3 {
            beat(&mut c, id, 7);
        }
        topic(&mut c, 3, 1);
        let mut req = alter(&c, 1, &[1, 2]);
        req.broker_epochs.insert(1, 12345);
        req.broker_epochs.insert(2, 6789);
        assert!(c.alter_partition(req).is_ok());
    }

    /// KIP-966: a shrink below min ISR puts the removed members in the ELR; an expansion back
    /// to min ISR clears it. The events say so.
    #[test]
    fn alter_partition_fills_and_clears_the_elr_with_elr_on_only() {
        for (version, elr) in [
            (KafkaVersion::V4_1, vec![2, 3]),
            (KafkaVersion::V3_7, vec![]),
        ] {
            let (dir, mut c) = controller_of(version);
            for id in 1..=3 {
                beat(&mut c, id, 7);
            }
            topic(&mut c, 3, 2);
            let p = c.alter_partition(alter(&c, 1, &[1])).unwrap();
            assert_eq!((p.isr.clone(), p.elr.clone()), (vec![1], elr.clone()));
            let p = c.alter_partition(alter(&c, 1, &[1, 2])).unwrap();
            assert!(p.elr.is_empty(), "back at min ISR: {version}");
            let changes = events(dir.path(), "isr_change");
            if version == KafkaVersion::V4_1 {
                assert_eq!(changes[0]["elr"], json!(elr));
                assert_eq!(changes[1]["elr"], json!([]));
            } else {
                assert!(changes[0].get("elr").is_none(), "no ELR field without ELR");
            }
            assert_eq!(changes[1]["reason"], "expand");
        }
    }
}
