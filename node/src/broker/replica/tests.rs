//! The replica's unit tests from before the Kafka versions (issue 8 and the legacy items):
//! HW, ISR shrink and expand, AlterPartition, divergence and truncation, batches. The rules that
//! differ between Kafka versions are tested in [`super::version_tests`].

use serde_json::json;

use super::testing::*;
use super::*;
use crate::storage::{Frames, Record};
use crate::version::KafkaVersion;

#[test]
fn hw_is_the_minimum_leo_over_the_isr_and_never_moves_back() {
    let mut f = leader(&[1, 2, 3]);
    let r = &mut f.replica;
    r.append_as_leader(values(10), Acks::All, 1_000, None)
        .unwrap();
    assert_eq!(r.hw, 0, "followers' LEOs are unknown: HW cannot move");
    fetch(r, &f.events, 2, 10, Some(0), 1_001).unwrap();
    assert_eq!(r.hw, 0);
    fetch(r, &f.events, 3, 4, Some(0), 1_002).unwrap();
    assert_eq!(r.hw, 4);
    fetch(r, &f.events, 3, 10, Some(0), 1_003).unwrap();
    assert_eq!(r.hw, 10);
    // A follower fetching from an older offset again does not pull HW back.
    fetch(r, &f.events, 3, 10, Some(0), 1_004).unwrap();
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
        .append_as_leader(values(3), Acks::All, 1_000, None)
        .unwrap_err();
    assert_eq!(err.error, ErrorCode::NotEnoughReplicas);
    assert_eq!(f.replica.leo(), 0, "nothing may be appended");
    assert!(f
        .replica
        .append_as_leader(values(3), Acks::One, 1_000, None)
        .is_ok());
}

#[test]
fn caught_up_rule_uses_this_fetch_or_the_previous_one() {
    let mut s = FollowerState::EMPTY;
    s.on_fetch(5, 5, 100, None); // at the leader's LEO: caught up now
    assert_eq!(s.last_caught_up_ms, 100);
    s.on_fetch(5, 9, 200, None); // behind now, but at the LEO as of the previous fetch (5)
    assert_eq!(s.last_caught_up_ms, 100);
    s.on_fetch(9, 12, 300, None); // reached the LEO as of the previous fetch (9): caught up at 200
    assert_eq!(s.last_caught_up_ms, 200);
    s.on_fetch(10, 20, 400, None); // behind both: no progress
    assert_eq!(s.last_caught_up_ms, 200);
}

#[test]
fn a_lagging_follower_is_proposed_out_and_hw_uses_the_maximal_isr_meanwhile() {
    let mut f = leader(&[1, 2, 3]);
    let r = &mut f.replica;
    r.append_as_leader(values(5), Acks::All, 1_000, None)
        .unwrap();
    fetch(r, &f.events, 2, 5, Some(0), 1_100).unwrap();
    fetch(r, &f.events, 3, 0, Some(0), 1_100).unwrap();
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
    let (_, expand) = fetch(r, &f.events, 3, 0, Some(0), 1_000).unwrap();
    let expand = expand.expect("3 is at HW 0 and the epoch start");
    let refused = ApiError::new(ErrorCode::IneligibleReplica, "3 is fenced");
    r.on_alter_result(&expand, Err(refused), 1_000, &f.events);
    let (_, again) = fetch(
        r,
        &f.events,
        3,
        0,
        Some(0),
        1_000 + ALTER_RETRY_BACKOFF_MS - 1,
    )
    .unwrap();
    assert_eq!(again, None, "no new proposal during the backoff");
    let (_, later) = fetch(r, &f.events, 3, 0, Some(0), 1_000 + ALTER_RETRY_BACKOFF_MS).unwrap();
    assert!(later.is_some());
}

#[test]
fn legacy_lag_max_messages_shrinks_a_follower_too_far_behind() {
    let mut f = leader(&[1, 2, 3]);
    let r = &mut f.replica;
    r.append_as_leader(values(50), Acks::One, 1_000, None)
        .unwrap();
    fetch(r, &f.events, 2, 50, Some(0), 1_001).unwrap();
    fetch(r, &f.events, 3, 10, Some(0), 1_001).unwrap();
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
    r.append_as_leader(values(8), Acks::All, 1_000, None)
        .unwrap();
    fetch(r, &f.events, 2, 8, Some(0), 1_001).unwrap();
    assert_eq!(r.hw, 8);
    let (_, expand) = fetch(r, &f.events, 3, 3, Some(0), 1_002).unwrap();
    assert_eq!(expand, None, "3 is below HW");
    let (_, expand) = fetch(r, &f.events, 3, 8, Some(0), 1_003).unwrap();
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
    l.replica
        .append_as_leader(values(2), Acks::One, 0, None)
        .unwrap();
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
    let (answer, _) = l.replica.leader_fetch(&req, 0, &l.events).unwrap();
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
    let (answer, _) = l.replica.leader_fetch(&req, 0, &l.events).unwrap();
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
        let (answer, _) = three.replica.leader_fetch(&req, 0, &three.events).unwrap();
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

/// 0.10.2.1 `Partition.makeFollower`: a new leader epoch with the leader it already follows (as
/// `removeReplicaFromIsr` writes when a shutting-down follower leaves the ISR) is no new leader,
/// and `makeFollowers` truncates nothing.
#[test]
fn a_legacy_follower_keeps_its_log_when_only_the_leader_epoch_moves() {
    let mut f = legacy_follower(&[(0..2, 0), (2..6, 2)]);
    f.replica
        .apply_metadata(&pm(Some(1), 1, 1, &[1, 2]), &CONFIGS, 0, &f.events)
        .unwrap();
    assert_eq!((f.replica.leo(), f.replica.leader_epoch()), (6, Some(1)));
    f.replica
        .apply_metadata(&pm(Some(3), 2, 2, &[2, 3]), &CONFIGS, 0, &f.events)
        .unwrap();
    assert_eq!(f.replica.leo(), 2, "a new leader: down to the HW");
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
        &[answer(2..4, 0, 0), answer(4..6, 0, 0)].map(|a| a.frames.batches().unwrap().remove(0)),
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
    l.replica
        .append_as_leader(values(5), Acks::One, 0, None)
        .unwrap();
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
    let (_, last) = f
        .replica
        .append_as_leader(values(2), Acks::All, 0, None)
        .unwrap();
    f.replica
        .apply_metadata(&pm(Some(2), 1, 1, &[2]), &CONFIGS, 0, &f.events)
        .unwrap();
    let pending = f.replica.acks_all_status(last, 0).unwrap().unwrap_err();
    assert_eq!(pending.error, ErrorCode::NotLeaderOrFollower);
    assert!(pending.appended);
    let refused = f
        .replica
        .append_as_leader(values(1), Acks::One, 0, None)
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
    r.append_as_leader(values(3), Acks::One, 1_000, None)
        .unwrap();
    assert!(r.is_under_min_isr());
    assert_eq!(r.hw, 0, "acks=1 records under min ISR are not committed");
    let (_, expand) = fetch(r, &f.events, 2, 3, Some(0), 1_001).unwrap();
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
    r.append_as_leader(values(4), Acks::One, 1_000, None)
        .unwrap();
    fetch(r, &f.events, 2, 4, Some(0), 1_000).unwrap();
    assert_eq!(r.hw, 4);
    // 3 fetches at the leader's LEO (so it is caught up) but outside the ISR; its
    // expansion is in the backoff after a refusal, so it stays outside for now.
    r.leader_state.as_mut().unwrap().retry_after_ms = 10_000;
    fetch(r, &f.events, 3, 4, Some(0), 1_100).unwrap();
    r.append_as_leader(values(2), Acks::One, 1_200, None)
        .unwrap();
    fetch(r, &f.events, 2, 6, Some(0), 1_201).unwrap();
    assert_eq!(r.hw, 4, "3 caught up within the lag time: HW waits for it");
    fetch(r, &f.events, 3, 5, Some(0), 1_202).unwrap();
    assert_eq!(r.hw, 5);
    // Once 3 has not caught up within the lag time, HW no longer waits for it.
    r.append_as_leader(values(1), Acks::One, 2_000, None)
        .unwrap();
    fetch(r, &f.events, 2, 7, Some(0), 2_000).unwrap();
    assert_eq!(r.hw, 7);
}

/// Issue 8 item 3 (Replica.scala `isCaughtUp`): a follower at the leader's LEO is in sync
/// however long ago it fetched.
#[test]
fn a_follower_at_the_leaders_leo_stays_in_the_isr_of_an_idle_partition() {
    let mut f = leader(&[1, 2, 3]);
    let r = &mut f.replica;
    r.append_as_leader(values(2), Acks::All, 1_000, None)
        .unwrap();
    fetch(r, &f.events, 2, 2, Some(0), 1_001).unwrap();
    fetch(r, &f.events, 3, 2, Some(0), 1_001).unwrap();
    assert_eq!(r.maybe_shrink_isr(60_000), None, "idle: both at the LEO");
    r.append_as_leader(values(1), Acks::All, 60_001, None)
        .unwrap();
    fetch(r, &f.events, 2, 3, Some(0), 60_002).unwrap();
    let proposal = r.maybe_shrink_isr(60_003).expect("3 is behind and silent");
    assert_eq!(proposal.new_isr, vec![1, 2]);
}

/// Issue 8 item 4 (AlterPartitionManager, `handleAlterPartitionError`): a pending ISR change
/// survives a lost reply and is dropped only when the controller says it was not applied.
#[test]
fn a_pending_isr_change_survives_a_lost_reply() {
    let mut f = leader(&[1, 2]);
    let r = &mut f.replica;
    let (_, expand) = fetch(r, &f.events, 3, 0, Some(0), 1_000).unwrap();
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
    let (_, again) = fetch(r, &f.events, 2, 0, Some(0), 1_003).unwrap();
    assert_eq!(again, None);
    r.append_as_leader(values(1), Acks::One, 4_000, None)
        .unwrap();
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
    r.append_as_leader(values(2), Acks::All, 1_000, None)
        .unwrap();
    fetch(r, &f.events, 3, 2, Some(0), 1_001).unwrap();
    assert!(!r.follower_fetch_ready(2, 0), "3 parks at the LEO");
    fetch(r, &f.events, 2, 2, Some(0), 1_002).unwrap();
    assert_eq!(r.hw, 2, "HW moved");
    assert!(
        !r.follower_fetch_ready(2, 0),
        "but 3's long-poll keeps waiting"
    );
    r.append_as_leader(values(1), Acks::All, 1_003, None)
        .unwrap();
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
    let (_, last) = r
        .append_as_leader(values(2), Acks::All, 1_000, None)
        .unwrap();
    let since = r.leader_since_epoch().unwrap();
    r.apply_metadata(&pm(Some(1), 2, 2, &[1, 2]), &CONFIGS, 1_001, &f.events)
        .unwrap();
    assert!(r.acks_all_status(last, since).is_none(), "still waiting");
    fetch(r, &f.events, 2, 2, Some(0), 1_002).unwrap();
    assert_eq!(r.acks_all_status(last, since), Some(Ok(())));
    // Follower, then leader again: the request fails (its records may have been cut).
    let (_, last) = r
        .append_as_leader(values(1), Acks::All, 1_003, None)
        .unwrap();
    r.apply_metadata(&pm(Some(2), 3, 3, &[1, 2]), &CONFIGS, 1_004, &f.events)
        .unwrap();
    r.apply_metadata(&pm(Some(1), 4, 4, &[1, 2]), &CONFIGS, 1_005, &f.events)
        .unwrap();
    assert!(r.acks_all_status(last, since).unwrap().is_err());
}
