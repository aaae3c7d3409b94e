//! Unit tests of broker liveness in the controller: registration and broker epochs, restarts of
//! the controller, session expiry after a stall, unclean shutdown and controlled shutdown, for
//! every Kafka version each rule applies to.

use serde_json::json;
use std::time::{Duration, Instant};

use super::super::testing::*;
use super::super::ControllerState;
use crate::api::*;
use crate::version::KafkaVersion;

/// Three unfenced brokers and one topic `t` (one partition, replicas [1,2,3], leader 1).
fn cluster(version: KafkaVersion, min_isr: u32) -> (tempfile::TempDir, ControllerState) {
    let (dir, mut c) = controller_of(version);
    for id in 1..=3 {
        beat(&mut c, id, 7);
    }
    topic(&mut c, 3, min_isr);
    (dir, c)
}

fn epoch_of(c: &ControllerState, id: u32) -> Option<u64> {
    c.metadata().brokers.iter().find(|b| b.id == id)?.epoch
}

#[test]
fn a_new_incarnation_waits_for_the_old_session_then_stays_fenced_until_caught_up() {
    for version in [KafkaVersion::V4_1, KafkaVersion::V3_7] {
        let (_dir, mut c) = cluster(version, 1);
        let leader = partition(&c).leader.unwrap();
        let refused = try_beat(&mut c, leader, 8, 0).unwrap_err();
        assert_eq!(refused.error, ErrorCode::DuplicateBrokerRegistration);
        assert_eq!(
            partition(&c).leader,
            Some(leader),
            "a refused registration changes nothing"
        );
        expire(&mut c, leader);
        let registered = try_beat(&mut c, leader, 8, 0).unwrap();
        let p = partition(&c);
        assert_ne!(p.leader, Some(leader), "the old incarnation was fenced");
        assert!(!p.isr.contains(&leader));
        assert!(!c.is_alive(leader), "registered fenced");
        try_beat(&mut c, leader, 8, registered.metadata_version - 1).unwrap();
        assert!(!c.is_alive(leader), "not caught up on metadata yet");
        try_beat(&mut c, leader, 8, registered.metadata_version).unwrap();
        assert!(c.is_alive(leader), "caught up: unfenced");
    }
}

/// Legacy-hw (Kafka 0.10.2, ZooKeeper): a broker restarted faster than its session cannot
/// register (`ZkUtils.registerBrokerInZk`: "restarted it faster than the zookeeper
/// timeout"); when the old session expires the controller takes it out of every ISR
/// (`onBrokerFailure` → OfflineReplica → `removeReplicaFromIsr`), and the new incarnation
/// is live as soon as it registers. It never keeps the old incarnation's ISR memberships.
#[test]
fn a_restarted_legacy_broker_waits_for_its_old_session_and_leaves_every_isr() {
    let (_dir, mut c) = controller_of(KafkaVersion::V0_10_2);
    for id in 1..=3 {
        try_beat(&mut c, id, 7, 0).unwrap();
    }
    topic(&mut c, 3, 1);
    let follower = 3;
    let refused = try_beat(&mut c, follower, 8, 0).unwrap_err();
    assert_eq!(refused.error, ErrorCode::DuplicateBrokerRegistration);
    assert!(
        partition(&c).isr.contains(&follower),
        "a refused registration changes nothing"
    );
    expire(&mut c, follower);
    try_beat(&mut c, follower, 8, 0).unwrap();
    let p = partition(&c);
    assert!(
        !p.isr.contains(&follower),
        "the old session's expiry took it out of the ISR: {:?}",
        p.isr
    );
    assert!(c.is_alive(follower), "live at once after registering");
}

#[test]
fn a_broker_restarted_while_the_controller_was_down_is_still_fenced_once() {
    for version in KafkaVersion::ALL {
        let (dir, c) = cluster(version, 1);
        let leader = partition(&c).leader.unwrap();
        drop(c);
        let mut c = open(dir.path(), version);
        beat(&mut c, leader, 7);
        assert_eq!(
            partition(&c).leader_epoch,
            0,
            "same incarnation: nothing to fence"
        );
        expire(&mut c, leader);
        beat(&mut c, leader, 8);
        let p = partition(&c);
        assert_ne!(
            p.leader,
            Some(leader),
            "the restarted leader's old incarnation was fenced"
        );
        assert_eq!(p.leader_epoch, 1);
    }
}

/// KIP-903: each registration gets a broker epoch, the metadata version it is written in, so
/// epochs only grow and survive a controller restart; it is answered and published.
#[test]
fn every_registration_gets_a_larger_broker_epoch_that_survives_a_restart() {
    let (dir, mut c) = cluster(KafkaVersion::V4_1, 1);
    let epochs: Vec<u64> = (1..=3).map(|id| epoch_of(&c, id).unwrap()).collect();
    assert!(epochs.windows(2).all(|w| w[0] < w[1]), "{epochs:?}");
    let resp = try_beat(&mut c, 2, 7, 0).unwrap();
    assert_eq!(
        resp.broker_epoch,
        Some(epochs[1]),
        "the same incarnation keeps it"
    );
    expire(&mut c, 2);
    let resp = try_beat(&mut c, 2, 8, 0).unwrap();
    let new_epoch = resp.broker_epoch.unwrap();
    assert!(
        new_epoch > epochs[2],
        "a new incarnation gets a new, larger epoch"
    );
    assert_eq!(epoch_of(&c, 2), Some(new_epoch));
    let registered = events(dir.path(), "broker_registered");
    assert_eq!(registered.last().unwrap()["epoch"], json!(new_epoch));
    drop(c);
    let c = open(dir.path(), KafkaVersion::V4_1);
    assert_eq!(epoch_of(&c, 2), Some(new_epoch), "kept across a restart");
}

/// `checkBrokerEpoch`: a heartbeat naming another epoch than the registration's is refused;
/// an old incarnation's late heartbeat cannot register itself again.
#[test]
fn a_heartbeat_with_a_stale_broker_epoch_is_refused() {
    let (_dir, mut c) = cluster(KafkaVersion::V4_1, 1);
    let old_epoch = epoch_of(&c, 3).unwrap();
    expire(&mut c, 3);
    beat(&mut c, 3, 8);
    let mut late = request(3, 7, 0);
    late.broker_epoch = Some(old_epoch);
    let err = c.heartbeat(late).unwrap_err();
    assert_eq!(err.error, ErrorCode::StaleBrokerEpoch, "{err:?}");
    assert_eq!(epoch_of(&c, 3).map(|e| e > old_epoch), Some(true));
    let mut current = request(3, 8, c.metadata().metadata_version);
    current.broker_epoch = epoch_of(&c, 3);
    assert!(c.heartbeat(current).is_ok());
}

#[test]
fn without_broker_epochs_there_are_none_and_none_are_checked() {
    let (_dir, mut c) = controller_of(KafkaVersion::V0_10_2);
    let resp = try_beat(&mut c, 1, 7, 0).unwrap();
    assert_eq!(resp.broker_epoch, None);
    assert_eq!(epoch_of(&c, 1), None);
    let mut req = request(1, 7, 0);
    req.registers_fenced = false;
    req.broker_epoch = Some(12345);
    assert!(
        c.heartbeat(req).is_ok(),
        "0.10.2 has no broker epochs to check"
    );
}

/// `ClusterControlManager.activate`: a restarted controller restores each broker's fenced
/// flag; an unfenced broker gets a fresh session, a fenced one stays fenced until a heartbeat
/// shows it caught up to its registration.
#[test]
fn a_restarted_controller_keeps_fenced_brokers_fenced_and_renews_the_others() {
    for version in KafkaVersion::ALL {
        let (dir, mut c) = cluster(version, 1);
        expire(&mut c, 3);
        assert_eq!(c.maybe_fence_one_stale_broker(Instant::now()), Some(3));
        let before = c.metadata();
        drop(c);
        let mut c = open(dir.path(), version);
        assert_eq!(c.metadata().brokers, before.brokers, "{version}");
        assert!(!c.is_alive(3) && c.is_alive(1) && c.is_alive(2));
        assert_eq!(
            c.maybe_fence_one_stale_broker(Instant::now()),
            None,
            "a fresh session from the restart"
        );
        let later = Instant::now() + Duration::from_millis(1_500);
        assert!(c.maybe_fence_one_stale_broker(later).is_some());
        assert_eq!(events(dir.path(), "brokers_restored").len(), 1);
    }
    let (dir, mut c) = cluster(KafkaVersion::V4_1, 1);
    expire(&mut c, 3);
    c.maybe_fence_one_stale_broker(Instant::now());
    drop(c);
    let mut c = open(dir.path(), KafkaVersion::V4_1);
    try_beat(&mut c, 3, 7, 1).unwrap();
    assert!(!c.is_alive(3), "not caught up to its registration yet");
    let version = c.metadata().metadata_version;
    try_beat(&mut c, 3, 7, version).unwrap();
    assert!(c.is_alive(3), "caught up: unfenced");
}

/// A controller stopped (SIGSTOP) for longer than the session timeout hears no heartbeat
/// meanwhile; when it runs again every broker looks silent. One check fences one broker
/// (`maybeFenceOneStaleBroker`); the heartbeats that waited in the socket buffers arrive before
/// the next check and renew the others. Not every broker is fenced at once.
#[test]
fn a_stalled_controller_fences_at_most_one_broker_before_waiting_heartbeats_arrive() {
    for version in KafkaVersion::ALL {
        let (dir, mut c) = cluster(version, 2);
        for id in 1..=3 {
            expire(&mut c, id);
        }
        let resumed = Instant::now();
        let fenced = c.maybe_fence_one_stale_broker(resumed);
        assert!(fenced.is_some(), "one stale broker is fenced per check");
        let version_now = c.metadata().metadata_version;
        for id in 1..=3 {
            let mut req = request(id, 7, version_now);
            req.registers_fenced = c.rules.registers_fenced;
            req.broker_epoch = epoch_of(&c, id);
            c.heartbeat_at(req, Instant::now()).unwrap();
        }
        assert_eq!(c.maybe_fence_one_stale_broker(Instant::now()), None);
        assert_eq!(events(dir.path(), "broker_fenced").len(), 1, "{version}");
        assert!(
            (1..=3).all(|id| c.is_alive(id)),
            "the fenced one came back with its next heartbeat"
        );
    }
}

/// KAFKA-17793: a heartbeat's contact time is taken when it arrives, before it waits for the
/// controller's lock; a check that runs in between sees it.
#[test]
fn a_heartbeat_counts_from_its_arrival_not_from_when_the_controller_gets_to_it() {
    let (_dir, mut c) = cluster(KafkaVersion::V4_1, 1);
    let contacts = c.contact_times();
    expire(&mut c, 2);
    assert!(
        contacts.touch(2, 7, Instant::now()),
        "arrived, waiting for the lock"
    );
    assert!(
        !contacts.touch(2, 99, Instant::now()),
        "another incarnation renews nothing"
    );
    assert_eq!(c.maybe_fence_one_stale_broker(Instant::now()), None);
    expire(&mut c, 2);
    let late = Instant::now();
    let mut req = request(2, 7, 0);
    req.broker_epoch = epoch_of(&c, 2);
    c.heartbeat_at(req, late - Duration::from_secs(3)).unwrap();
    assert_eq!(
        c.maybe_fence_one_stale_broker(late),
        Some(2),
        "a heartbeat's contact time is its arrival, not when it was processed"
    );
}

/// Kafka 4.1 (KAFKA-15586 / KAFKA-18635, `registerBroker`): a new incarnation that names no
/// previous broker epoch (it crashed) counts as an unclean shutdown; it leaves every ISR and ELR
/// and may not lead until it is back in an ISR. Kafka 3.7 keeps the last ISR member, which
/// leads again once unfenced.
#[test]
fn a_new_incarnation_after_an_unclean_shutdown_leaves_isr_and_elr_in_4_1_only() {
    let (dir, mut c) = cluster(KafkaVersion::V4_1, 3);
    for id in [3, 2] {
        expire(&mut c, id);
        c.maybe_fence_one_stale_broker(Instant::now());
    }
    let p = partition(&c);
    assert_eq!((p.isr.clone(), p.elr.clone()), (vec![1], vec![2, 3]));
    expire(&mut c, 2);
    beat(&mut c, 2, 8);
    let p = partition(&c);
    assert_eq!(p.elr, vec![3], "the restarted broker left the ELR");
    assert!(c.is_alive(2) && !p.isr.contains(&2));
    let left = events(dir.path(), "isr_change");
    let left = left
        .iter()
        .find(|e| e["reason"] == "unclean_shutdown")
        .unwrap();
    assert_eq!(
        (&left["elr_before"], &left["elr"]),
        (&json!([2, 3]), &json!([3]))
    );
    expire(&mut c, 1);
    c.maybe_fence_one_stale_broker(Instant::now());
    let p = partition(&c);
    assert_eq!(p.leader, None, "2 is not eligible: it restarted uncleanly");
    assert_eq!((p.isr.clone(), p.elr.clone()), (vec![], vec![1, 3]));

    let (_dir, mut c) = cluster(KafkaVersion::V3_7, 2);
    for id in [3, 2, 1] {
        expire(&mut c, id);
        c.maybe_fence_one_stale_broker(Instant::now());
    }
    assert_eq!(partition(&c).isr, vec![1], "3.7 keeps the last ISR member");
    expire(&mut c, 1);
    beat(&mut c, 1, 8);
    let p = partition(&c);
    assert_eq!(
        (p.leader, p.unclean),
        (Some(1), false),
        "and elects it cleanly"
    );
}

/// Registers a new incarnation of `id` that names `previous_broker_epoch` (what its clean-shutdown
/// marker held, if any), and unfences it with a second heartbeat.
fn return_with(c: &mut ControllerState, id: u32, incarnation: u64, previous: Option<u64>) {
    let mut req = request(id, incarnation, 0);
    req.registers_fenced = c.rules.registers_fenced;
    req.previous_broker_epoch = previous;
    let resp = c.heartbeat(req.clone()).unwrap();
    req.metadata_version = resp.metadata_version;
    req.broker_epoch = resp.broker_epoch;
    c.heartbeat(req).unwrap();
}

/// Kafka 3.8.0 (KAFKA-15586, `ClusterControlManager.registerBroker`), again after KAFKA-18635:
/// a new incarnation is a clean return only if it names its previous registration's broker
/// epoch, read from its clean-shutdown marker. Then it stays in the ELR and may lead from it,
/// cleanly; one that names none (it crashed) or another epoch leaves ISR and ELR. All three
/// brokers are fenced first, so ISR is empty and ELR is {1, 2, 3}.
#[test]
fn only_a_return_naming_the_previous_broker_epoch_is_clean_and_keeps_its_elr_membership() {
    let (dir, mut c) = cluster(KafkaVersion::V4_1, 3);
    let epochs: Vec<u64> = (1..=3).map(|id| epoch_of(&c, id).unwrap()).collect();
    for id in [3, 2, 1] {
        expire(&mut c, id);
        c.maybe_fence_one_stale_broker(Instant::now());
    }
    let p = partition(&c);
    assert_eq!(
        (p.leader, p.isr.clone(), p.elr.clone()),
        (None, vec![], vec![1, 2, 3])
    );

    return_with(&mut c, 2, 8, Some(epochs[1]));
    let p = partition(&c);
    assert_eq!(
        (p.leader, p.unclean, p.isr.clone(), p.elr.clone()),
        (Some(2), false, vec![2], vec![1, 3]),
        "a clean return stays eligible and is elected from the ELR"
    );
    let registered = events(dir.path(), "broker_registered");
    let last = registered.last().unwrap();
    assert_eq!(
        (&last["previous_broker_epoch"], &last["unclean_shutdown"]),
        (&json!(epochs[1]), &json!(false))
    );

    return_with(&mut c, 3, 8, None);
    assert_eq!(
        partition(&c).elr,
        vec![1],
        "a crashed broker names no epoch"
    );
    return_with(&mut c, 1, 8, Some(epochs[0] - 1));
    let p = partition(&c);
    assert_eq!(
        (p.isr.clone(), p.elr.clone()),
        (vec![2], vec![]),
        "nor another"
    );
    let unclean: Vec<_> = events(dir.path(), "broker_registered")
        .into_iter()
        .filter(|e| e["unclean_shutdown"] == true)
        .map(|e| e["broker"].as_u64().unwrap())
        .collect();
    assert_eq!(&unclean[unclean.len() - 2..], [3, 1]);
}

fn shutdown_request(c: &ControllerState, id: u32) -> HeartbeatRequest {
    let mut req = request(id, 7, c.metadata().metadata_version);
    req.registers_fenced = c.rules.registers_fenced;
    req.broker_epoch = epoch_of(c, id);
    req.want_shutdown = true;
    req
}

/// KIP-841 (`calculateNextBrokerState`, `handleBrokerInControlledShutdown`): a leader that
/// wants to stop leaves every ISR, its leaderships move, it may not rejoin an ISR, and it is
/// told to stop once it leads nothing and every active broker has caught up on metadata.
#[test]
fn controlled_shutdown_moves_leadership_and_waits_for_active_brokers_to_catch_up() {
    for version in [KafkaVersion::V4_1, KafkaVersion::V3_7] {
        let (dir, mut c) = cluster(version, 1);
        let resp = c.heartbeat(shutdown_request(&c, 1)).unwrap();
        assert!(
            !resp.should_shut_down,
            "it led t/0: controlled shutdown first"
        );
        let p = partition(&c);
        assert_eq!(
            (p.leader, p.isr.clone()),
            (Some(2), vec![2, 3]),
            "{version}"
        );
        let me = c.metadata().brokers[0].clone();
        assert!(me.shutting_down && me.alive);
        assert_eq!(events(dir.path(), "broker_controlled_shutdown").len(), 1);
        let resp = c.heartbeat(shutdown_request(&c, 1)).unwrap();
        assert!(
            !resp.should_shut_down,
            "2 and 3 have not seen the change yet"
        );
        let req = |c: &ControllerState, id| {
            let mut r = shutdown_request(c, id);
            r.want_shutdown = false;
            r
        };
        for id in [2, 3] {
            c.heartbeat(req(&c, id)).unwrap();
        }
        let resp = c.heartbeat(shutdown_request(&c, 1)).unwrap();
        assert!(resp.should_shut_down, "every active broker caught up");
        let me = c.metadata().brokers[0].clone();
        assert!(!me.alive && me.shutting_down, "SHUTDOWN_NOW fences it");
    }
}

#[test]
fn a_fenced_broker_or_one_that_leads_nothing_may_stop_at_once() {
    let (dir, mut c) = cluster(KafkaVersion::V4_1, 1);
    let resp = c.heartbeat(shutdown_request(&c, 3)).unwrap();
    assert!(resp.should_shut_down, "a follower only: SHUTDOWN_NOW");
    assert!(!partition(&c).isr.contains(&3), "fenced: it left the ISR");
    let fenced = events(dir.path(), "broker_fenced");
    assert_eq!(fenced.last().unwrap()["reason"], "controlled_shutdown");
    expire(&mut c, 2);
    c.maybe_fence_one_stale_broker(Instant::now());
    let resp = c.heartbeat(shutdown_request(&c, 2)).unwrap();
    assert!(resp.should_shut_down, "a fenced broker may stop at once");
}

/// Without ELR the last ISR member stays and the partition goes leaderless (as Kafka's
/// `PartitionChangeBuilder` never writes an empty ISR); with ELR it joins the ELR.
#[test]
fn a_last_isr_member_in_controlled_shutdown_stays_without_elr_and_joins_it_with() {
    for (version, isr, elr) in [
        (KafkaVersion::V3_7, vec![1], vec![]),
        (KafkaVersion::V4_1, vec![], vec![1]),
    ] {
        let (_dir, mut c) = cluster(version, 1);
        for id in [3, 2] {
            expire(&mut c, id);
            c.maybe_fence_one_stale_broker(Instant::now());
        }
        let resp = c.heartbeat(shutdown_request(&c, 1)).unwrap();
        assert!(!resp.should_shut_down);
        let p = partition(&c);
        assert_eq!((p.leader, p.isr, p.elr), (None, isr, elr), "{version}");
        let resp = c.heartbeat(shutdown_request(&c, 1)).unwrap();
        assert!(resp.should_shut_down, "no active broker to wait for");
    }
}

#[test]
fn a_broker_in_controlled_shutdown_may_not_rejoin_an_isr_and_a_new_incarnation_registers_anew() {
    let (_dir, mut c) = cluster(KafkaVersion::V4_1, 1);
    c.heartbeat(shutdown_request(&c, 1)).unwrap();
    let p = partition(&c);
    let err = c
        .alter_partition(AlterPartitionRequest {
            cluster_id: "c".into(),
            broker_id: 2,
            topic: "t".into(),
            partition: 0,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr: vec![1, 2, 3],
            broker_epochs: Default::default(),
        })
        .unwrap_err();
    assert_eq!(err.error, ErrorCode::IneligibleReplica);
    assert!(err.message.contains("shutting down"), "{}", err.message);
    expire(&mut c, 1);
    c.maybe_fence_one_stale_broker(Instant::now());
    beat(&mut c, 1, 8);
    let me = c.metadata().brokers[0].clone();
    assert!(
        me.alive && !me.shutting_down,
        "a new incarnation registers normally"
    );
}

/// Kafka's controlled-shutdown progress is soft state: a restarted controller forgets it, the
/// registration's flag stays, and the broker's next heartbeat decides again (it leads nothing:
/// SHUTDOWN_NOW).
#[test]
fn controlled_shutdown_survives_a_controller_restart() {
    let (dir, mut c) = cluster(KafkaVersion::V3_7, 1);
    c.heartbeat(shutdown_request(&c, 1)).unwrap();
    drop(c);
    let mut c = open(dir.path(), KafkaVersion::V3_7);
    assert!(c.metadata().brokers[0].shutting_down, "durable");
    assert_ne!(partition(&c).leader, Some(1));
    let resp = c.heartbeat(shutdown_request(&c, 1)).unwrap();
    assert!(resp.should_shut_down);
}

/// The partitions a 0.10.2 controller's answer to an ask names (`partitionsRemaining`), from
/// its last `broker_controlled_shutdown` event.
fn remaining(dir: &std::path::Path) -> serde_json::Value {
    let asks = events(dir, "broker_controlled_shutdown");
    asks.last().expect("an ask")["partitions_remaining"].clone()
}

/// Broker `leader`, the leader of t/0, proposes `isr` (AlterPartition).
fn propose_isr(
    c: &mut ControllerState,
    leader: u32,
    isr: &[u32],
) -> Result<PartitionMetadata, ApiError> {
    let p = partition(c);
    c.alter_partition(AlterPartitionRequest {
        cluster_id: "c".into(),
        broker_id: leader,
        topic: "t".into(),
        partition: 0,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        new_isr: isr.to_vec(),
        broker_epochs: Default::default(),
    })
}

/// 0.10.2.1 `shutdownBroker` with `ControlledShutdownLeaderSelector`: the leader's first ask
/// moves t/0 to the first live replica of the ISR without it, with the next leader epoch, and
/// the answer names nothing left, so the broker may stop at once: no wait for brokers 2 and 3
/// to report that metadata (KRaft's `controlledShutdownOffset <= lowestActiveOffset`).
#[test]
fn a_0_10_2_leader_hands_over_at_once_and_may_stop_without_waiting_for_metadata() {
    let (dir, mut c) = cluster(KafkaVersion::V0_10_2, 1);
    let resp = c.heartbeat(shutdown_request(&c, 1)).unwrap();
    assert!(resp.should_shut_down, "leads nothing any more: it may stop");
    assert!(
        c.lowest_active_metadata_version() < resp.metadata_version,
        "2 and 3 have not seen the move"
    );
    let p = partition(&c);
    assert_eq!(
        (p.leader, p.isr.clone(), p.leader_epoch),
        (Some(2), vec![2, 3], 1)
    );
    assert_eq!(remaining(dir.path()), json!([]));
    let elections = events(dir.path(), "election");
    assert_eq!(elections.last().unwrap()["reason"], "controlled_shutdown");
    let me = c.metadata().brokers[0].clone();
    assert!(
        !me.alive && !me.shutting_down,
        "stopped: its session ended and it left the shutting-down brokers"
    );
}

/// `ControlledShutdownLeaderSelector` finds no other live ISR member: Kafka's
/// `StateChangeFailedException` leaves t/0 with this leader and ISR, and the answer names t/0
/// ("not yet"), ask after ask. The broker is shutting down (no election may pick it) but still
/// leads, and, as 0.10.2's leader writes its own ISR, takes a returning follower back into the
/// ISR; the next ask then moves the leadership to it.
#[test]
fn a_0_10_2_sole_isr_leader_keeps_leading_and_is_told_not_yet() {
    let (dir, mut c) = cluster(KafkaVersion::V0_10_2, 1);
    for id in [3, 2] {
        expire(&mut c, id);
        c.maybe_fence_one_stale_broker(Instant::now());
    }
    let before = partition(&c);
    assert_eq!((before.leader, before.isr.clone()), (Some(1), vec![1]));
    for _ in 0..2 {
        let resp = c.heartbeat(shutdown_request(&c, 1)).unwrap();
        assert!(!resp.should_shut_down, "it still leads t/0");
        assert_eq!(partition(&c), before, "no leader to move to: unchanged");
        assert_eq!(
            remaining(dir.path()),
            json!([{"topic": "t", "partition": 0}])
        );
    }
    let me = c.metadata().brokers[0].clone();
    assert!(me.alive && me.shutting_down);
    beat(&mut c, 2, 7);
    assert_eq!(
        partition(&c).leader,
        Some(1),
        "2 is back, and not in the ISR"
    );
    propose_isr(&mut c, 1, &[1, 2]).expect("a shutting-down 0.10.2 leader writes its ISR");
    let resp = c.heartbeat(shutdown_request(&c, 1)).unwrap();
    assert!(resp.should_shut_down);
    let p = partition(&c);
    assert_eq!(
        (p.leader, p.isr, p.leader_epoch),
        (Some(2), vec![2], before.leader_epoch + 1)
    );
}

/// `shutdownBroker` skips partitions with one replica: a broker that leads only those may stop
/// at its first ask (its partition then goes offline with its session, `onBrokerFailure`).
#[test]
fn a_0_10_2_single_replica_partition_does_not_hold_the_shutdown() {
    let (dir, mut c) = controller_of(KafkaVersion::V0_10_2);
    for id in 1..=3 {
        beat(&mut c, id, 7);
    }
    topic(&mut c, 1, 1);
    assert_eq!(partition(&c).leader, Some(1));
    let resp = c.heartbeat(shutdown_request(&c, 1)).unwrap();
    assert!(resp.should_shut_down, "t/0 has one replica: not counted");
    assert_eq!(remaining(dir.path()), json!([]));
    let moved = events(dir.path(), "election")
        .into_iter()
        .filter(|e| e["reason"] == "controlled_shutdown")
        .count();
    assert_eq!(moved, 0, "the selector was not run on t/0");
    let p = partition(&c);
    assert_eq!(
        (p.leader, p.isr),
        (None, vec![1]),
        "offline once the broker stopped"
    );
}

/// A follower that asks leaves every ISR (`removeReplicaFromIsr`), which bumps the leader
/// epoch though the leader stays (an `isr_change`, not an election); it leads nothing, so it
/// may stop at once.
#[test]
fn a_0_10_2_follower_leaves_the_isr_with_a_new_leader_epoch() {
    let (dir, mut c) = cluster(KafkaVersion::V0_10_2, 1);
    let resp = c.heartbeat(shutdown_request(&c, 3)).unwrap();
    assert!(resp.should_shut_down);
    let p = partition(&c);
    assert_eq!((p.leader, p.isr, p.leader_epoch), (Some(1), vec![1, 2], 1));
    let change = events(dir.path(), "isr_change").pop().unwrap();
    assert_eq!(
        (&change["reason"], &change["isr"], &change["leader_epoch"]),
        (&json!("controlled_shutdown"), &json!([1, 2]), &json!(1))
    );
    assert_eq!(
        events(dir.path(), "election").len(),
        1,
        "topic creation only"
    );
}

/// 0.10.2.1 `onBrokerFailure` elects only where the leader died: a shutting-down leader that
/// keeps t/0 (no other ISR member to take it) stays when the follower it took back dies.
#[test]
fn a_0_10_2_shutting_down_leader_stays_when_its_follower_dies() {
    let (_dir, mut c) = cluster(KafkaVersion::V0_10_2, 1);
    for id in [3, 2] {
        expire(&mut c, id);
        c.maybe_fence_one_stale_broker(Instant::now());
    }
    assert!(
        !c.heartbeat(shutdown_request(&c, 1))
            .unwrap()
            .should_shut_down
    );
    beat(&mut c, 2, 7);
    propose_isr(&mut c, 1, &[1, 2]).unwrap();
    expire(&mut c, 2);
    assert_eq!(c.maybe_fence_one_stale_broker(Instant::now()), Some(2));
    let p = partition(&c);
    assert_eq!((p.leader, p.isr), (Some(1), vec![1]));
}

/// 0.10.2.1's controller forgets `shuttingDownBrokerIds` when it starts
/// (`initializeControllerContext`); the broker's next ask adds it again.
#[test]
fn a_restarted_0_10_2_controller_forgets_who_is_shutting_down() {
    let (dir, mut c) = cluster(KafkaVersion::V0_10_2, 1);
    for id in [3, 2] {
        expire(&mut c, id);
        c.maybe_fence_one_stale_broker(Instant::now());
    }
    c.heartbeat(shutdown_request(&c, 1)).unwrap();
    drop(c);
    let mut c = open(dir.path(), KafkaVersion::V0_10_2);
    assert!(!c.metadata().brokers[0].shutting_down);
    assert!(
        !c.heartbeat(shutdown_request(&c, 1))
            .unwrap()
            .should_shut_down
    );
    assert!(c.metadata().brokers[0].shutting_down);
}
