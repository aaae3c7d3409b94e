//! One partition's change of ISR, Eligible Leader Replicas (ELR) and leader, as Kafka's
//! `PartitionChangeBuilder` makes it: given the ISR its caller wants and the brokers that may
//! lead, it fills the ELR, elects a leader when the current one may not stay, and bumps the
//! epochs. A pure function of the partition and its inputs; which partitions change, and why,
//! is the caller's ([`super::ControllerState`]).
//!
//! With `rules.eligible_leader_replicas` (Kafka 4.1, KIP-966) it follows
//! `metadata/src/main/java/org/apache/kafka/controller/PartitionChangeBuilder.java` at the trunk
//! of October 2024 (commit `1eb76443`), `build` and the methods it calls, plus KAFKA-19522
//! (PR #20200: a fenced last known leader is not elected). Without it (3.7, 0.10.2) the ISR
//! never becomes empty and [`elect`] chooses, exactly as before ELR existed.
//!
//! 0.10.2.1's controlled shutdown (`rules.zk_controlled_shutdown`) changes partitions its own
//! way, with [`controlled_shutdown_leader`] and [`remove_replica_from_isr`]; the latter may
//! empty the ISR of a topic that allows unclean election, as ZooKeeper-era Kafka did.

use crate::api::PartitionMetadata;

/// What a change may do besides the partition itself: `PartitionChangeBuilder`'s settings.
#[derive(Debug, Clone, Copy)]
pub struct ChangeRules<'a> {
    /// `rules.eligible_leader_replicas` (`setEligibleLeaderReplicasEnabled`).
    pub elr: bool,
    /// The topic's effective min ISR, min(min.insync.replicas, replication factor):
    /// `ReplicationControlManager.getTopicEffectiveMinIsr`.
    pub min_isr: usize,
    /// The topic's `unclean.leader.election.enable` (`Election.UNCLEAN`).
    pub unclean_ok: bool,
    /// The brokers that may lead (`isAcceptableLeader`): unfenced and not in controlled
    /// shutdown, without the broker being removed and with the broker being unfenced
    /// (`ReplicationControlManager.generateLeaderAndIsrUpdates`).
    pub acceptable: &'a [u32],
    /// A broker that registered again after an unclean shutdown (`setUncleanShutdownReplicas`):
    /// it may not join the ELR either.
    pub unclean_shutdown: Option<u32>,
}

impl ChangeRules<'_> {
    fn acceptable(&self, broker: u32) -> bool {
        self.acceptable.contains(&broker)
    }
}

/// Applies `target_isr` to `p`, elects a leader if the current one may not stay, and bumps the
/// epochs as Kafka's `PartitionRegistration.merge` does: `leader_epoch` when the leader changes
/// (to none included), `partition_epoch` on any change. Returns whether anything changed.
pub fn change(p: &mut PartitionMetadata, target_isr: Vec<u32>, rules: &ChangeRules) -> bool {
    let changed = if rules.elr {
        change_with_elr(p, target_isr, rules)
    } else {
        change_without_elr(p, target_isr, rules)
    };
    debug_assert!(
        p.leader.is_none_or(|l| p.isr.contains(&l)),
        "a leader is always in its ISR: {p:?}"
    );
    debug_assert!(
        p.elr.iter().all(|b| !p.isr.contains(b)),
        "the ELR and the ISR never share a replica: {p:?}"
    );
    changed
}

/// Kafka 3.7 and 0.10.2. `PartitionChangeBuilder.build` writes the ISR only when it is not
/// empty (`!targetIsr.isEmpty() || eligibleLeaderReplicasEnabled`): the last member stays, so
/// the partition can come back cleanly when it does. A leader that may no longer lead (it left
/// the ISR or is no longer acceptable) is replaced by [`elect`].
fn change_without_elr(
    p: &mut PartitionMetadata,
    target_isr: Vec<u32>,
    rules: &ChangeRules,
) -> bool {
    let isr_before = p.isr.clone();
    if !target_isr.is_empty() {
        p.isr = target_isr;
    }
    let leader_stays = p
        .leader
        .is_some_and(|l| p.isr.contains(&l) && rules.acceptable(l));
    if !leader_stays && elect(p, rules.acceptable, rules.unclean_ok) {
        return true;
    }
    if p.isr != isr_before {
        p.partition_epoch += 1;
        return true;
    }
    false
}

/// Kafka 4.1: `PartitionChangeBuilder.build` with ELR on: `maybePopulateTargetElr`, then
/// `tryElection`, `maybeUpdateRecordElr`, the ISR (which may now be empty) and
/// `maybeUpdateLastKnownLeader`.
fn change_with_elr(
    p: &mut PartitionMetadata,
    mut target_isr: Vec<u32>,
    rules: &ChangeRules,
) -> bool {
    let before = p.clone();
    let mut elr = target_elr(p, &target_isr, rules);
    let (leader, unclean) = elect_any_leader(p, &target_isr, &elr, rules);
    if leader != p.leader {
        if let Some(winner) = leader {
            // tryElection: a leader from the ELR becomes the ISR alone and leaves the ELR.
            if elr.contains(&winner) {
                target_isr = vec![winner];
                elr.retain(|&b| b != winner);
            }
            // An unclean winner is the ISR alone and clears the ELR (maybeUpdateRecordElr).
            if unclean {
                target_isr = vec![winner];
                elr.clear();
            }
        }
        p.leader = leader;
        p.unclean = unclean;
        p.leader_epoch += 1;
    }
    p.last_known_elr = last_known_leader(&before, &target_isr, p.leader);
    p.isr = target_isr;
    p.elr = elr;
    let changed = p.leader_epoch != before.leader_epoch
        || p.isr != before.isr
        || p.elr != before.elr
        || p.last_known_elr != before.last_known_elr;
    if changed {
        p.partition_epoch += 1;
    }
    changed
}

/// `maybePopulateTargetElr`: with the target ISR at or above min ISR the ELR is empty;
/// otherwise every replica that leaves the ISR joins it (fenced or shutting down included),
/// unless it restarted after an unclean shutdown. Kept in broker-id order.
fn target_elr(p: &PartitionMetadata, target_isr: &[u32], rules: &ChangeRules) -> Vec<u32> {
    if target_isr.len() >= rules.min_isr {
        return Vec::new();
    }
    let mut elr: Vec<u32> = p
        .elr
        .iter()
        .chain(&p.isr)
        .copied()
        .filter(|b| !target_isr.contains(b) && Some(*b) != rules.unclean_shutdown)
        .collect();
    elr.sort_unstable();
    elr.dedup();
    elr
}

/// `electAnyLeader` (Election.ONLINE and UNCLEAN), in Kafka's order: keep a valid current
/// leader; else the first replica in assignment order that is valid (in the target ISR, or in
/// the ELR when the ISR is empty, and acceptable); else the last known leader, uncleanly; else,
/// only if the topic allows it, the first acceptable replica, uncleanly; else no leader.
/// Returns the leader and whether its election is unclean.
fn elect_any_leader(
    p: &PartitionMetadata,
    target_isr: &[u32],
    elr: &[u32],
    rules: &ChangeRules,
) -> (Option<u32>, bool) {
    let valid = |b: u32| {
        (target_isr.contains(&b) || (target_isr.is_empty() && elr.contains(&b)))
            && rules.acceptable(b)
    };
    if let Some(leader) = p.leader.filter(|&l| valid(l)) {
        return (Some(leader), p.unclean);
    }
    if let Some(leader) = p.replicas.iter().copied().find(|&b| valid(b)) {
        return (Some(leader), false);
    }
    if let Some(leader) = last_known_leader_to_elect(p, target_isr, elr, rules) {
        return (Some(leader), true);
    }
    if rules.unclean_ok {
        if let Some(leader) = p.replicas.iter().copied().find(|&b| rules.acceptable(b)) {
            return (Some(leader), true);
        }
    }
    (None, false)
}

/// `canElectLastKnownLeader`: only when the ISR and the ELR are both empty and the last known
/// leader is a single broker that may lead. The acceptability test is KAFKA-19522's fix (PR
/// #20200, Kafka 4.1): in 3.7.0 and the trunk of October 2024 the test lacks its `!`, so a
/// fenced last known leader was elected.
fn last_known_leader_to_elect(
    p: &PartitionMetadata,
    target_isr: &[u32],
    elr: &[u32],
    rules: &ChangeRules,
) -> Option<u32> {
    if !target_isr.is_empty() || !elr.is_empty() {
        return None;
    }
    match p.last_known_elr.as_slice() {
        [leader] if rules.acceptable(*leader) => Some(*leader),
        _ => None,
    }
}

/// `maybeUpdateLastKnownLeader`: the first time the ISR becomes empty it records the leader
/// the partition had; once the partition has a leader again it is cleared; otherwise it stays.
/// (Kafka records `[-1]` when the partition had no leader as its ISR emptied; that can elect
/// nobody, so an empty list stands for it here.)
fn last_known_leader(before: &PartitionMetadata, isr: &[u32], leader: Option<u32>) -> Vec<u32> {
    let emptied = isr.is_empty() && !before.isr.is_empty();
    let already =
        before.last_known_elr.len() == 1 && Some(before.last_known_elr[0]) == before.leader;
    if emptied && !already {
        return before.leader.into_iter().collect();
    }
    if leader.is_some() {
        return Vec::new();
    }
    before.last_known_elr.clone()
}

/// Elects a leader for `p` among `alive` brokers: the first replica (in assignment order) that
/// is in the ISR; failing that, when `unclean_ok`, the first live replica, with the ISR reset to
/// it alone. Otherwise the partition goes offline. As in KRaft (PartitionChangeBuilder
/// `tryElection`, PartitionRegistration `merge`), both epochs are bumped only when the leader
/// changes: a partition already offline that still finds no leader is left untouched. Returns
/// whether anything changed. This is the whole election without ELR (Kafka 3.7 and 0.10.2).
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

/// 0.10.2.1 `ControlledShutdownLeaderSelector.selectLeader` (`core/…/controller/
/// PartitionLeaderSelector.scala`), for a partition led by a broker in controlled shutdown: the
/// new ISR is the ISR without every shutting-down broker, and the new leader the first assigned
/// replica that is live or shutting down (`liveOrShuttingDownBrokerIds`: `live`) and in that
/// ISR; the leader epoch goes up by one. With no such replica Kafka throws
/// `StateChangeFailedException`, which `PartitionStateMachine.handleStateChanges` logs: the
/// partition keeps its leader and ISR. Returns whether it changed.
pub fn controlled_shutdown_leader(
    p: &mut PartitionMetadata,
    shutting_down: &[u32],
    live: &[u32],
) -> bool {
    let new_isr: Vec<u32> = p
        .isr
        .iter()
        .copied()
        .filter(|b| !shutting_down.contains(b))
        .collect();
    let Some(leader) = p
        .replicas
        .iter()
        .copied()
        .find(|b| live.contains(b) && new_isr.contains(b))
    else {
        return false;
    };
    p.leader = Some(leader);
    p.isr = new_isr;
    p.unclean = false;
    p.leader_epoch += 1;
    p.partition_epoch += 1;
    true
}

/// 0.10.2.1 `KafkaController.removeReplicaFromIsr` (the OfflineReplica transition of
/// `ReplicaStateMachine`): a replica in the ISR leaves it; if it led, the partition has no
/// leader; if it was the last member and the topic does not allow unclean election, the ISR is
/// kept as it was ("so that the replica can eventually be restored as the leader"). Either way
/// the leader epoch goes up by one ("increment the leader epoch even if the ISR changes"). A
/// replica outside the ISR changes nothing. Returns whether the partition changed.
pub fn remove_replica_from_isr(p: &mut PartitionMetadata, replica: u32, unclean_ok: bool) -> bool {
    if !p.isr.contains(&replica) {
        return false;
    }
    if p.leader == Some(replica) {
        p.leader = None;
        p.unclean = false;
    }
    let new_isr: Vec<u32> = p.isr.iter().copied().filter(|&b| b != replica).collect();
    if !new_isr.is_empty() || unclean_ok {
        p.isr = new_isr;
    }
    p.leader_epoch += 1;
    p.partition_epoch += 1;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(replicas: &[u32], isr: &[u32], leader: Option<u32>) -> PartitionMetadata {
        PartitionMetadata {
            elr: Vec::new(),
            last_known_elr: Vec::new(),
            partition: 0,
            leader,
            leader_epoch: 3,
            partition_epoch: 5,
            isr: isr.to_vec(),
            replicas: replicas.to_vec(),
            unclean: false,
        }
    }

    fn rules(elr: bool, min_isr: usize, acceptable: &[u32]) -> ChangeRules<'_> {
        ChangeRules {
            elr,
            min_isr,
            unclean_ok: false,
            acceptable,
            unclean_shutdown: None,
        }
    }

    /// Broker `b` leaves the ISR, as `handleBrokerFenced` and controlled shutdown ask.
    fn without(p: &PartitionMetadata, b: u32) -> Vec<u32> {
        p.isr.iter().copied().filter(|&x| x != b).collect()
    }

    #[test]
    fn clean_election_picks_a_live_isr_member_and_bumps_epochs() {
        let mut p = partition(&[1, 2, 3], &[2, 3], Some(1));
        elect(&mut p, &[2, 3], false);
        assert_eq!(p.leader, Some(2));
        assert_eq!((p.leader_epoch, p.partition_epoch), (4, 6));
        assert!(!p.unclean);
    }

    #[test]
    fn no_live_isr_member_means_offline_unless_unclean_is_enabled() {
        let mut p = partition(&[1, 2, 3], &[1], Some(1));
        elect(&mut p, &[2, 3], false);
        assert_eq!(p.leader, None);
        assert_eq!(
            p.isr,
            vec![1],
            "the last ISR member stays so it can come back cleanly"
        );
        let mut p = partition(&[1, 2, 3], &[1], Some(1));
        elect(&mut p, &[3], true);
        assert_eq!(p.leader, Some(3));
        assert_eq!(p.isr, vec![3]);
        assert!(p.unclean);
    }

    #[test]
    fn elect_leaves_an_offline_partition_untouched_when_no_leader_is_found() {
        let mut p = partition(&[1, 2, 3], &[1], None);
        assert!(!elect(&mut p, &[2, 3], false));
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (None, 3, 5));
        let mut p = partition(&[1, 2, 3], &[1], Some(1));
        assert!(
            elect(&mut p, &[2, 3], false),
            "losing the leader is a change"
        );
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (None, 4, 6));
    }

    /// Without ELR (3.7, 0.10.2) a change keeps the last ISR member and never fills an ELR.
    #[test]
    fn without_elr_the_last_isr_member_stays_and_there_is_no_elr() {
        let mut p = partition(&[1, 2, 3], &[1, 2], Some(1));
        let target = without(&p, 2);
        assert!(change(&mut p, target, &rules(false, 2, &[1, 3])));
        assert_eq!((p.isr.clone(), p.leader), (vec![1], Some(1)));
        assert_eq!(
            (p.leader_epoch, p.partition_epoch),
            (3, 6),
            "an ISR change only"
        );
        let target = without(&p, 1);
        assert!(change(&mut p, target, &rules(false, 2, &[3])));
        assert_eq!((p.isr.clone(), p.leader), (vec![1], None));
        assert!(p.elr.is_empty() && p.last_known_elr.is_empty());
    }

    /// KIP-966 `maybePopulateTargetElr`: members leaving an ISR below min ISR join the ELR; the
    /// ISR may become empty; an ISR back at min ISR clears the ELR.
    #[test]
    fn replicas_leaving_an_isr_below_min_isr_join_the_elr_and_the_isr_may_empty() {
        let mut p = partition(&[1, 2, 3], &[1, 2, 3], Some(1));
        let target = without(&p, 3);
        change(&mut p, target, &rules(true, 2, &[1, 2]));
        assert!(p.elr.is_empty(), "the ISR [1,2] is still at min ISR");
        let target = without(&p, 2);
        change(&mut p, target, &rules(true, 2, &[1]));
        assert_eq!((p.isr.clone(), p.elr.clone()), (vec![1], vec![2]));
        let target = without(&p, 1);
        change(&mut p, target, &rules(true, 2, &[]));
        assert_eq!(
            p.isr,
            Vec::<u32>::new(),
            "with ELR the ISR may become empty"
        );
        assert_eq!(p.elr, vec![1, 2]);
        assert_eq!(p.leader, None);
        assert_eq!(p.last_known_elr, vec![1], "the leader when the ISR emptied");
        let mut q = partition(&[1, 2, 3], &[1], Some(1));
        q.elr = vec![2];
        change(&mut q, vec![1, 3], &rules(true, 2, &[1, 3]));
        assert!(q.elr.is_empty(), "an ISR back at min ISR clears the ELR");
    }

    #[test]
    fn an_elr_member_leads_only_when_the_isr_is_empty_and_becomes_the_isr() {
        let mut p = partition(&[1, 2, 3], &[], None);
        p.elr = vec![2, 3];
        p.last_known_elr = vec![1];
        assert!(
            !change(&mut p, vec![], &rules(true, 2, &[1])),
            "no ELR member is up"
        );
        assert!(change(&mut p, vec![], &rules(true, 2, &[3])));
        assert_eq!((p.leader, p.unclean), (Some(3), false), "a clean election");
        assert_eq!((p.isr.clone(), p.elr.clone()), (vec![3], vec![2]));
        assert!(
            p.last_known_elr.is_empty(),
            "cleared once there is a leader"
        );
        assert_eq!((p.leader_epoch, p.partition_epoch), (4, 6));
    }

    /// KAFKA-19522: the last known leader leads (uncleanly) only if it may lead, and only when
    /// the ISR and the ELR are both empty.
    #[test]
    fn the_last_known_leader_is_a_last_resort_and_never_a_fenced_one() {
        let mut p = partition(&[1, 2, 3], &[], None);
        p.last_known_elr = vec![1];
        assert!(
            !change(&mut p, vec![], &rules(true, 2, &[2, 3])),
            "1 is fenced"
        );
        p.elr = vec![2];
        assert!(
            !change(&mut p, vec![], &rules(true, 2, &[1])),
            "2 is in the ELR"
        );
        p.elr.clear();
        assert!(change(&mut p, vec![], &rules(true, 2, &[1, 2])));
        assert_eq!(
            (p.leader, p.unclean, p.isr.clone()),
            (Some(1), true, vec![1])
        );
        assert!(p.last_known_elr.is_empty());
    }

    #[test]
    fn an_unclean_winner_clears_the_elr_and_the_order_is_isr_elr_last_known_unclean() {
        let mut p = partition(&[1, 2, 3], &[1], Some(1));
        p.elr = vec![2];
        let mut r = rules(true, 2, &[3]);
        r.unclean_ok = true;
        let target = without(&p, 1);
        assert!(change(&mut p, target, &r));
        assert_eq!((p.leader, p.unclean), (Some(3), true));
        assert_eq!((p.isr.clone(), p.elr.clone()), (vec![3], vec![]));
        let mut q = partition(&[3, 2, 1], &[1], Some(1));
        q.elr = vec![2];
        let target = without(&q, 1);
        change(&mut q, target, &rules(true, 2, &[2, 3]));
        assert_eq!(
            (q.leader, q.unclean),
            (Some(2), false),
            "the ELR before unclean"
        );
    }

    #[test]
    fn an_unclean_shutdown_replica_leaves_isr_and_elr_and_may_not_lead() {
        let mut p = partition(&[1, 2, 3], &[], None);
        p.elr = vec![1, 2];
        let mut r = rules(true, 2, &[2, 3]);
        r.unclean_shutdown = Some(1);
        r.acceptable = &[2, 3];
        assert!(change(&mut p, vec![], &r));
        assert_eq!(
            (p.leader, p.elr.clone(), p.isr.clone()),
            (Some(2), vec![], vec![2])
        );
    }

    /// 0.10.2.1 `ControlledShutdownLeaderSelector`: the first live assigned replica in the ISR
    /// without the shutting-down brokers leads that ISR; none: nothing changes.
    #[test]
    fn the_controlled_shutdown_selector_leaves_out_every_shutting_down_broker() {
        let mut p = partition(&[1, 2, 3], &[1, 2, 3], Some(1));
        assert!(controlled_shutdown_leader(&mut p, &[1, 2], &[1, 2, 3]));
        assert_eq!((p.leader, p.isr.clone()), (Some(3), vec![3]));
        assert_eq!((p.leader_epoch, p.partition_epoch), (4, 6));
        let mut p = partition(&[1, 2, 3], &[1, 3], Some(1));
        assert!(
            !controlled_shutdown_leader(&mut p, &[1], &[1, 2]),
            "3 is not live, 2 not in the ISR"
        );
        assert_eq!(p, partition(&[1, 2, 3], &[1, 3], Some(1)));
    }

    /// 0.10.2.1 `removeReplicaFromIsr`: the leader epoch moves with every removal, a last member
    /// stays unless unclean election is on, and a leader that leaves leaves no leader.
    #[test]
    fn removing_a_replica_from_the_isr_bumps_the_leader_epoch_and_keeps_a_last_member() {
        let mut p = partition(&[1, 2, 3], &[1, 2], Some(1));
        assert!(remove_replica_from_isr(&mut p, 2, false));
        assert_eq!(
            (p.leader, p.isr.clone(), p.leader_epoch),
            (Some(1), vec![1], 4)
        );
        assert!(!remove_replica_from_isr(&mut p, 3, false), "not in the ISR");
        let mut q = partition(&[1, 2, 3], &[2], None);
        assert!(remove_replica_from_isr(&mut q, 2, false));
        assert_eq!(
            (q.isr.clone(), q.leader_epoch, q.partition_epoch),
            (vec![2], 4, 6)
        );
        assert!(remove_replica_from_isr(&mut q, 2, true));
        assert!(q.isr.is_empty(), "unclean election on: the ISR may empty");
        assert!(remove_replica_from_isr(&mut p, 1, false));
        assert_eq!((p.leader, p.isr.clone()), (None, vec![1]));
    }

    #[test]
    fn a_valid_leader_stays_and_an_elr_only_change_bumps_only_the_partition_epoch() {
        let mut p = partition(&[1, 2, 3], &[1], Some(1));
        p.elr = vec![2, 3];
        let mut r = rules(true, 2, &[1]);
        r.unclean_shutdown = Some(3);
        assert!(change(&mut p, vec![1], &r));
        assert_eq!((p.leader, p.elr.clone()), (Some(1), vec![2]));
        assert_eq!((p.leader_epoch, p.partition_epoch), (3, 6));
        assert!(
            !change(&mut p, vec![1], &rules(true, 2, &[1])),
            "nothing to do"
        );
    }
}
