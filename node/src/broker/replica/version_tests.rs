//! Unit tests of the replication rules that differ between the Kafka versions the node
//! reproduces (4.1, 3.7, 0.10.2), and of the ones issue 20 added for all of them: broker epochs
//! on the fetch path and in AlterPartition (KIP-903), the HW a fetch answer carries, the min-ISR
//! HW freeze, the epoch-start rule for ISR expansion, and how a new leader epoch resets what the
//! leader knows of its followers. Each test names the Kafka source it follows; docs/replication.md
//! ("Kafka versions") lists them.

use std::collections::BTreeMap;

use super::testing::*;
use super::*;
use crate::version::KafkaVersion::{self, V0_10_2, V3_7, V4_1};

/// The versions with broker epochs (KRaft, KIP-903).
const WITH_BROKER_EPOCHS: [KafkaVersion; 2] = [V4_1, V3_7];

/// Follower `from` fetches at `offset` naming `broker_epoch`, with no last fetched epoch.
fn fetch_as(
    f: &mut Fixture,
    from: u32,
    offset: u64,
    broker_epoch: Option<u64>,
    now: u64,
) -> Result<(LeaderFetch, Option<AlterProposal>), ApiError> {
    let mut req = fetch_request(&f.replica, from, offset, None);
    req.broker_epoch = broker_epoch;
    f.replica.leader_fetch(&req, now, &f.events)
}

fn follower_state(f: &Fixture, id: u32) -> FollowerState {
    f.replica.leader_state.as_ref().expect("a leader").followers[&id].clone()
}

/// Broker 1 leading `isr` under `version`, with registrations 11, 22, 33 and `records`
/// appended at 1 000 ms.
fn registered_leader(version: KafkaVersion, isr: &[u32], records: usize) -> Fixture {
    let mut f = leader_of(version, isr);
    f.replica.set_registrations(registered(Some(11)));
    if records > 0 {
        f.replica
            .append_as_leader(values(records), Acks::One, 1_000, None)
            .unwrap();
    }
    f
}

// ---- broker epochs (KIP-903) ----

/// Kafka 3.7.0 `RemoteLeaderEndPoint.buildFetch` (`FetchRequest.Builder.forReplica(…,
/// brokerEpochSupplier(), …)`): a follower's fetch names its broker epoch once the controller
/// has named it (-1, absent here, before); without broker epochs it names none.
#[test]
fn a_followers_fetch_names_its_broker_epoch() {
    for (version, named) in [(V4_1, Some(22)), (V3_7, Some(22)), (V0_10_2, None)] {
        let mut f = fixture(2, version.rules());
        f.replica
            .apply_metadata(&pm(Some(1), 0, 0, &[1, 2, 3]), &CONFIGS, 1_000, &f.events)
            .unwrap();
        assert_eq!(
            f.replica.next_fetch("c", 10, 0).broker_epoch,
            None,
            "{version}"
        );
        let brokers = [status(1, true, Some(11)), status(2, true, Some(22))];
        f.replica
            .set_registrations(Registrations::new(&brokers, Some(22)));
        assert_eq!(
            f.replica.next_fetch("c", 10, 0).broker_epoch,
            named,
            "{version}"
        );
    }
}

/// Kafka 3.7.0 `Replica.updateFetchStateOrThrow` (via `Partition.updateFollowerFetchState`):
/// a fetch whose broker epoch is older than the follower's registration is refused with
/// NOT_LEADER_OR_FOLLOWER before it changes the follower's state, so the previous
/// incarnation's fetch cannot put it in the ISR; `stale_fetch_refused` is written once.
#[test]
fn a_fetch_naming_a_stale_broker_epoch_is_refused_and_updates_nothing() {
    for version in WITH_BROKER_EPOCHS {
        let mut f = registered_leader(version, &[1, 2], 4);
        for now in [1_001, 1_002] {
            let Err(refused) = fetch_as(&mut f, 3, 4, Some(30), now) else {
                panic!("{version}: broker 3's registration is 33, the fetch names 30");
            };
            assert_eq!(refused.error, ErrorCode::NotLeaderOrFollower, "{version}");
        }
        let three = follower_state(&f, 3);
        assert_eq!(
            (three.leo, three.broker_epoch),
            (None, FetchEpoch::NotFetched)
        );
        assert_eq!(f.replica.pending_isr(), None, "{version}: no ISR expansion");
        let events = f.events_of_type("stale_fetch_refused");
        assert_eq!(
            events.len(),
            1,
            "{version}: once per stale epoch: {events:?}"
        );
        let e = &events[0];
        assert_eq!(
            (&e["broker"], &e["broker_epoch"], &e["current_broker_epoch"]),
            (&json!(3), &json!(30), &json!(33))
        );
        let (_, expand) = fetch_as(&mut f, 3, 4, Some(33), 1_003).unwrap();
        let expand = expand.expect("the current incarnation's fetch earns the expansion");
        assert_eq!(expand.new_isr, vec![1, 2, 3]);
    }
}

/// Kafka's check is `cached > requested`, strictly, and only with a cached epoch
/// (`getAliveBrokerEpoch` is None for a fenced broker): a newer epoch, a fetch naming none, or
/// a fenced broker's fetch passes. Without broker epochs (0.10.2) nothing is checked.
#[test]
fn only_a_strictly_older_broker_epoch_of_a_live_registration_is_refused() {
    for version in WITH_BROKER_EPOCHS {
        let mut f = registered_leader(version, &[1, 2], 4);
        assert!(fetch_as(&mut f, 3, 4, Some(34), 1_001).is_ok(), "newer");
        assert!(fetch_as(&mut f, 3, 4, None, 1_002).is_ok(), "none (-1)");
        assert!(fetch_as(&mut f, 3, 4, Some(33), 1_003).is_ok(), "equal");
        let fenced = [
            status(1, true, Some(11)),
            status(2, true, Some(22)),
            status(3, false, Some(33)),
        ];
        f.replica
            .set_registrations(Registrations::new(&fenced, Some(11)));
        assert!(fetch_as(&mut f, 3, 4, Some(30), 1_004).is_ok(), "fenced");
    }
    let mut legacy = registered_leader(V0_10_2, &[1, 2], 4);
    assert!(fetch_as(&mut legacy, 3, 4, Some(30), 1_001).is_ok());
    assert!(legacy.events_of_type("stale_fetch_refused").is_empty());
}

/// Kafka 3.7.0 `Partition.isReplicaIsrEligible` / `isBrokerEpochIsrEligible`: a follower joins
/// the ISR only when its last fetch named the epoch of its registration in the leader's
/// metadata (or none), and it is neither fenced nor in controlled shutdown.
#[test]
fn a_follower_joins_the_isr_only_with_its_registrations_epoch_and_while_eligible() {
    for version in WITH_BROKER_EPOCHS {
        // The leader has not seen broker 3's new registration (40) yet: not eligible.
        let mut f = registered_leader(version, &[1, 2], 4);
        let (_, expand) = fetch_as(&mut f, 3, 4, Some(40), 1_001).unwrap();
        assert_eq!(expand, None, "{version}: 40 is not the registration's 33");
        let newer = [
            status(1, true, Some(11)),
            status(2, true, Some(22)),
            status(3, true, Some(40)),
        ];
        f.replica
            .set_registrations(Registrations::new(&newer, Some(11)));
        let (_, expand) = fetch_as(&mut f, 3, 4, Some(40), 1_002).unwrap();
        assert!(expand.is_some(), "{version}: now it is");
        // A fetch naming no broker epoch (Kafka's -1) is eligible.
        let mut f = registered_leader(version, &[1, 2], 4);
        assert!(fetch_as(&mut f, 3, 4, None, 1_001).unwrap().1.is_some());
        // In controlled shutdown: not eligible (KIP-841).
        let mut brokers = [
            status(1, true, Some(11)),
            status(2, true, Some(22)),
            status(3, true, Some(33)),
        ];
        brokers[2].shutting_down = true;
        let mut f = registered_leader(version, &[1, 2], 4);
        f.replica
            .set_registrations(Registrations::new(&brokers, Some(11)));
        assert_eq!(fetch_as(&mut f, 3, 4, Some(33), 1_001).unwrap().1, None);
    }
    // 0.10.2.1's leader has no such check (`Partition.maybeExpandIsr`): only LEO ≥ HW.
    let mut legacy = registered_leader(V0_10_2, &[1, 2], 4);
    assert!(fetch_as(&mut legacy, 3, 4, Some(40), 1_001)
        .unwrap()
        .1
        .is_some());
}

/// KAFKA-15021 with KIP-903 (3.7.0 `maybeIncrementLeaderHW` → `shouldWaitForReplicaToJoinIsr`
/// → `isReplicaIsrEligible`): HW waits for a caught-up follower outside the ISR only while it
/// is eligible; once its registration's epoch is no longer the one it fetched with (it
/// restarted), HW stops waiting for it.
#[test]
fn hw_stops_waiting_for_a_follower_whose_registration_changed() {
    let mut f = registered_leader(V4_1, &[1, 2], 4);
    f.replica.min_insync_replicas = 1;
    f.replica.leader_state.as_mut().unwrap().retry_after_ms = 10_000;
    fetch_as(&mut f, 2, 4, Some(22), 1_001).unwrap();
    fetch_as(&mut f, 3, 4, Some(33), 1_100).unwrap();
    f.replica
        .append_as_leader(values(2), Acks::One, 1_200, None)
        .unwrap();
    fetch_as(&mut f, 2, 6, Some(22), 1_201).unwrap();
    assert_eq!(f.replica.hw(), 4, "3 is caught up and eligible: HW waits");
    let restarted = [
        status(1, true, Some(11)),
        status(2, true, Some(22)),
        status(3, true, Some(34)),
    ];
    f.replica
        .set_registrations(Registrations::new(&restarted, Some(11)));
    f.replica
        .append_as_leader(values(1), Acks::One, 1_300, None)
        .unwrap();
    fetch_as(&mut f, 2, 7, Some(22), 1_301).unwrap();
    assert_eq!(
        f.replica.hw(),
        7,
        "3's fetch epoch 33 is not its registration's 34"
    );
}

/// Kafka 3.7.0 `Partition.addBrokerEpochToIsr`: a proposal names the leader's own broker epoch
/// and each follower's from its last fetch; a member whose epoch is unknown is sent as -1 (left
/// out here). ZooKeeper mode (0.10.2) names none.
#[test]
fn an_alter_partition_proposal_names_each_members_broker_epoch() {
    for version in WITH_BROKER_EPOCHS {
        let mut f = registered_leader(version, &[1, 2, 3], 4);
        fetch_as(&mut f, 2, 4, Some(22), 1_001).unwrap();
        fetch_as(&mut f, 3, 0, None, 1_001).unwrap();
        let shrink = f.replica.maybe_shrink_isr(1_600).expect("3 lags");
        assert_eq!(shrink.new_isr, vec![1, 2]);
        assert_eq!(shrink.broker_epochs, BTreeMap::from([(1, 11), (2, 22)]));
        f.replica
            .on_alter_result(&shrink, Ok(pm(Some(1), 0, 1, &[1, 2])), 1_600, &f.events);
        let (_, expand) = fetch_as(&mut f, 3, 4, Some(33), 1_700).unwrap();
        let expand = expand.expect("3 caught up");
        assert_eq!(
            expand.broker_epochs,
            BTreeMap::from([(1, 11), (2, 22), (3, 33)])
        );
        // A leader that has not heard its own broker epoch yet leaves itself out.
        let mut f = registered_leader(version, &[1, 2, 3], 4);
        f.replica.set_registrations(registered(None));
        fetch_as(&mut f, 2, 4, Some(22), 1_001).unwrap();
        let shrink = f.replica.maybe_shrink_isr(1_600).unwrap();
        assert_eq!(shrink.broker_epochs, BTreeMap::from([(2, 22)]));
    }
    let mut legacy = registered_leader(V0_10_2, &[1, 2, 3], 4);
    fetch_as(&mut legacy, 2, 4, Some(22), 1_001).unwrap();
    let shrink = legacy.replica.maybe_shrink_isr(1_600).unwrap();
    assert!(shrink.broker_epochs.is_empty());
}

/// Kafka 3.7.0 `Partition.handleAlterPartitionError`: INELIGIBLE_REPLICA says the change was
/// not applied, and the partition goes back to its last committed state, so HW is computed
/// over the committed ISR again.
#[test]
fn ineligible_replica_takes_the_leader_back_to_its_last_committed_isr() {
    let mut f = registered_leader(V4_1, &[1, 2], 4);
    let (_, expand) = fetch_as(&mut f, 3, 4, Some(33), 1_001).unwrap();
    let expand = expand.unwrap();
    assert_eq!(f.replica.maximal_isr(), vec![1, 2, 3]);
    let refused = ApiError::new(ErrorCode::IneligibleReplica, "3 is in controlled shutdown");
    let outcome = f
        .replica
        .on_alter_result(&expand, Err(refused), 1_002, &f.events);
    assert_eq!(outcome, AlterOutcome::Done);
    assert_eq!(f.replica.pending_isr(), None);
    assert_eq!(f.replica.maximal_isr(), vec![1, 2]);
    let stale = ApiError::new(ErrorCode::StaleBrokerEpoch, "retry");
    let (_, again) = fetch_as(&mut f, 3, 4, Some(33), 2_000).unwrap();
    let again = again.expect("after the backoff");
    let outcome = f
        .replica
        .on_alter_result(&again, Err(stale), 2_001, &f.events);
    assert_eq!(
        outcome,
        AlterOutcome::Retry,
        "AlterPartitionManager retries"
    );
}

// ---- the HW a fetch answer carries (row 4) ----

/// Kafka 3.7.0 `Partition.readRecords` captures `initialHighWatermark` before
/// `updateFollowerFetchState` (0.10.2.1: `ReplicaManager.readFromLocalLog` before
/// `updateFollowerLogReadResults`): the answer never carries the HW its own fetch produced.
#[test]
fn a_fetch_answer_carries_the_hw_from_before_that_fetch() {
    for version in [V4_1, V3_7, V0_10_2] {
        let mut f = leader_of(version, &[1, 2]);
        f.replica
            .append_as_leader(values(5), Acks::One, 1_000, None)
            .unwrap();
        let (answer, _) = fetch_as(&mut f, 2, 5, None, 1_001).unwrap();
        assert_eq!(f.replica.hw(), 5, "{version}: the fetch moved HW");
        assert_eq!(response(answer).high_watermark, 0, "{version}: before it");
        let (answer, _) = fetch_as(&mut f, 2, 5, None, 1_002).unwrap();
        assert_eq!(response(answer).high_watermark, 5, "{version}: next fetch");
    }
}

/// Kafka's `DelayedFetch.onComplete` (3.7.0 `readFromLog(readFromPurgatory = true)`; 0.10.2.1
/// `readFromLocalLog`): a parked fetch answers with HW as of its end, and its follower's state
/// is not updated again.
#[test]
fn a_parked_fetch_completes_with_the_hw_of_then_and_updates_nothing() {
    for version in [V4_1, V3_7, V0_10_2] {
        let mut f = leader_of(version, &[1, 2, 3]);
        f.replica
            .append_as_leader(values(2), Acks::One, 1_000, None)
            .unwrap();
        let (parked, _) = fetch_as(&mut f, 3, 2, None, 1_001).unwrap();
        assert!(matches!(parked, LeaderFetch::Empty(_)), "3 is at the LEO");
        fetch_as(&mut f, 2, 2, None, 1_002).unwrap();
        assert_eq!(f.replica.hw(), 2);
        let before = follower_state(&f, 3);
        let req = fetch_request(&f.replica, 3, 2, None);
        let done = f.replica.complete_parked_fetch(&req).unwrap();
        assert_eq!(done.high_watermark, 2, "{version}: HW as of the end");
        assert_eq!(follower_state(&f, 3), before, "{version}: no second update");
        f.replica
            .apply_metadata(&pm(Some(2), 1, 1, &[2, 3]), &CONFIGS, 1_003, &f.events)
            .unwrap();
        let deposed = f.replica.complete_parked_fetch(&req).unwrap_err();
        assert_eq!(deposed.error, ErrorCode::NotLeaderOrFollower);
    }
}

// ---- 0.10.2 as 0.10.2.1 (row 5) ----

/// KAFKA-15583 (3.7.0 `maybeIncrementLeaderHW` returns early on `isUnderMinIsr`, the committed
/// ISR against min(min.insync.replicas, replica count)); 0.10.2.1's has no such check, so
/// acks=1 records are committed by a lone leader.
#[test]
fn hw_freezes_under_min_insync_replicas_only_from_kafka_3_7() {
    for (version, hw) in [(V4_1, 0), (V3_7, 0), (V0_10_2, 3)] {
        let mut f = leader_of(version, &[1]);
        f.replica
            .append_as_leader(values(3), Acks::One, 1_000, None)
            .unwrap();
        assert_eq!(f.replica.hw(), hw, "{version}");
    }
    // The effective minimum is capped at the replica count: one replica, min 2, not frozen.
    let mut f = fixture(1, V4_1.rules());
    let single = PartitionMetadata {
        replicas: vec![1],
        ..pm(Some(1), 0, 0, &[1])
    };
    f.replica
        .apply_metadata(&single, &CONFIGS, 1_000, &f.events)
        .unwrap();
    assert!(!f.replica.is_under_min_isr());
    f.replica
        .append_as_leader(values(3), Acks::One, 1_000, None)
        .unwrap();
    assert_eq!(f.replica.hw(), 3);
}

/// KAFKA-7128 (2.0.1; 3.7.0 `Partition.isFollowerInSync`): a follower rejoins the ISR only
/// once its LEO reaches the current leader epoch's start offset as well as HW. 0.10.2.1's
/// `maybeExpandIsr` asks only LEO ≥ HW.
#[test]
fn isr_expansion_needs_the_epoch_start_only_from_kafka_2_0_1() {
    for (version, expands) in [(V4_1, false), (V3_7, false), (V0_10_2, true)] {
        let mut f = leader_of(version, &[1, 2]);
        f.replica
            .append_as_leader(values(8), Acks::One, 1_000, None)
            .unwrap();
        fetch_as(&mut f, 2, 5, None, 1_001).unwrap();
        assert_eq!(f.replica.hw(), 5);
        // Re-elected: epoch 1 starts at the LEO, 8; 2's LEO is kept, so HW stays 5.
        f.replica
            .apply_metadata(&pm(Some(1), 1, 1, &[1, 2]), &CONFIGS, 1_002, &f.events)
            .unwrap();
        let start = f.replica.leader_state.as_ref().unwrap().epoch_start_offset;
        assert_eq!((start, f.replica.hw()), (8, 5), "{version}");
        let (_, expand) = fetch_as(&mut f, 3, 6, None, 1_003).unwrap();
        assert_eq!(
            expand.is_some(),
            expands,
            "{version}: 3 at 6, HW 5, epoch start 8"
        );
    }
}

// ---- a re-elected leader (row 6) ----

/// Kafka 3.7.0 `Partition.makeLeader` → `Replica.resetReplicaState` with `isNewLeader = false`:
/// the same broker re-elected with a higher epoch keeps each follower's LEO and broker epoch;
/// its last fetch becomes the epoch start, and an ISR member counts as caught up (and as having
/// fetched) now, anyone else never.
#[test]
fn a_reelected_leader_keeps_its_followers_leos_and_broker_epochs() {
    for version in WITH_BROKER_EPOCHS {
        let mut f = registered_leader(version, &[1, 2, 3], 10);
        fetch_as(&mut f, 3, 10, Some(33), 1_001).unwrap();
        fetch_as(&mut f, 2, 8, Some(22), 1_002).unwrap();
        assert_eq!(f.replica.hw(), 8);
        f.replica
            .append_as_leader(values(2), Acks::One, 1_003, None)
            .unwrap();
        f.replica
            .apply_metadata(&pm(Some(1), 1, 1, &[1, 2, 3]), &CONFIGS, 2_000, &f.events)
            .unwrap();
        let three = follower_state(&f, 3);
        assert_eq!(
            (three.leo, three.broker_epoch),
            (Some(10), FetchEpoch::Epoch(33))
        );
        assert_eq!(
            (
                three.last_fetch_leader_leo,
                three.last_fetch_ms,
                three.last_caught_up_ms
            ),
            (12, 2_000, 2_000),
            "{version}"
        );
        // 3's kept LEO (10) counts: 2 reaching 12 moves HW to 10 at once.
        fetch_as(&mut f, 2, 12, Some(22), 2_001).unwrap();
        assert_eq!(f.replica.hw(), 10, "{version}");
        // A proposal after the re-election names the broker epoch 3 fetched with before it.
        let mut f = registered_leader(version, &[1, 3], 4);
        fetch_as(&mut f, 3, 4, Some(33), 1_001).unwrap();
        f.replica
            .apply_metadata(&pm(Some(1), 1, 1, &[1, 3]), &CONFIGS, 1_500, &f.events)
            .unwrap();
        let (_, expand) = fetch_as(&mut f, 2, 4, Some(22), 1_501).unwrap();
        assert_eq!(
            expand.expect("2 caught up").broker_epochs,
            BTreeMap::from([(1, 11), (2, 22), (3, 33)]),
            "{version}"
        );
    }
}

/// A follower outside the ISR at the re-election is not taken as having fetched
/// (`resetReplicaState`: `lastFetchTimeMs = 0`), in 3.7; 0.10.2.1's `resetLastCaughtUpTime`
/// takes every follower as having fetched now at the leader's LEO, in or out of the ISR.
#[test]
fn at_a_reelection_only_0_10_2_counts_a_follower_outside_the_isr_as_fetched_now() {
    for (version, last_fetch_ms) in [(V4_1, 0), (V3_7, 0), (V0_10_2, 2_000)] {
        let mut f = leader_of(version, &[1, 2]);
        f.replica
            .append_as_leader(values(4), Acks::One, 1_000, None)
            .unwrap();
        fetch_as(&mut f, 3, 2, None, 1_001).unwrap();
        f.replica
            .apply_metadata(&pm(Some(1), 1, 1, &[1, 2]), &CONFIGS, 2_000, &f.events)
            .unwrap();
        let three = follower_state(&f, 3);
        assert_eq!(three.leo, Some(2), "{version}: same leader, LEO kept");
        assert_eq!(
            (three.last_fetch_ms, three.last_caught_up_ms),
            (last_fetch_ms, 0),
            "{version}"
        );
        assert_eq!(
            three.last_fetch_leader_leo, 4,
            "{version}: the leader's LEO"
        );
    }
}

/// `isNewLeader` (3.7.0 `!isLeader`; 0.10.2.1 `leaderReplicaIdOpt != localBrokerId`): a broker
/// that was follower, or had no leader, just before forgets every follower's LEO (and broker
/// epoch), so HW waits until each ISR follower has fetched from it.
#[test]
fn a_leader_that_was_not_leading_just_before_forgets_its_followers() {
    for version in [V4_1, V3_7, V0_10_2] {
        for between in [Some(2), None] {
            let mut f = registered_leader(version, &[1, 2, 3], 4);
            fetch_as(&mut f, 2, 4, Some(22), 1_001).unwrap();
            fetch_as(&mut f, 3, 4, Some(33), 1_001).unwrap();
            assert_eq!(f.replica.hw(), 4);
            f.replica
                .apply_metadata(&pm(between, 1, 1, &[1, 2, 3]), &CONFIGS, 1_002, &f.events)
                .unwrap();
            f.replica
                .apply_metadata(&pm(Some(1), 2, 2, &[1, 2, 3]), &CONFIGS, 2_000, &f.events)
                .unwrap();
            let three = follower_state(&f, 3);
            assert_eq!(
                (three.leo, three.broker_epoch, three.last_caught_up_ms),
                (None, FetchEpoch::NotFetched, 2_000),
                "{version}, {between:?} in between"
            );
            f.replica
                .append_as_leader(values(1), Acks::One, 2_001, None)
                .unwrap();
            fetch_as(&mut f, 2, 5, Some(22), 2_002).unwrap();
            assert_eq!(f.replica.hw(), 4, "{version}: HW waits for 3's first fetch");
            fetch_as(&mut f, 3, 5, Some(33), 2_003).unwrap();
            assert_eq!(f.replica.hw(), 5, "{version}");
        }
    }
}

/// Kafka resets follower state only for a newer leader epoch ("Skipped the become-leader state
/// change"): metadata with the same leader epoch and a newer partition epoch changes the ISR and
/// keeps every follower's state.
#[test]
fn metadata_without_a_new_leader_epoch_resets_no_follower_state() {
    for version in [V4_1, V3_7, V0_10_2] {
        let mut f = registered_leader(version, &[1, 2, 3], 4);
        fetch_as(&mut f, 3, 3, Some(33), 1_001).unwrap();
        let before = follower_state(&f, 3);
        f.replica
            .apply_metadata(&pm(Some(1), 0, 5, &[1, 2]), &CONFIGS, 9_000, &f.events)
            .unwrap();
        assert_eq!(f.replica.isr(), &[1, 2]);
        assert_eq!(follower_state(&f, 3), before, "{version}");
    }
}
