//! The idempotent producer on a replica (issue 23): the leader dedups a retry of one of the
//! producer's last five batches and refuses gaps and old epochs; the producer state travels with
//! the batches to a follower, so a new leader dedups what the old one accepted; truncation and
//! reopening rebuild it. The rules themselves are `storage/producer_state.rs`'s tests.

use super::testing::*;
use super::*;
use crate::storage::ProducerBatch;
use crate::version::KafkaVersion;

fn stamp(seq: i32) -> Option<ProducerBatch> {
    Some(ProducerBatch {
        producer_id: 9,
        producer_epoch: 0,
        base_sequence: seq,
    })
}

#[test]
fn a_retried_batch_gets_the_original_offsets_and_is_not_appended_again() {
    let mut f = leader(&[1, 2, 3]);
    let r = &mut f.replica;
    assert_eq!(
        r.append_as_leader(values(3), Acks::One, 1_000, stamp(0)),
        Ok((0, 2))
    );
    assert_eq!(
        r.append_as_leader(values(2), Acks::One, 1_001, stamp(3)),
        Ok((3, 4))
    );
    assert_eq!(
        r.append_as_leader(values(3), Acks::One, 1_002, stamp(0)),
        Ok((0, 2))
    );
    assert_eq!(r.leo(), 5, "the retry appended nothing");
    let gap = r
        .append_as_leader(values(1), Acks::One, 1_003, stamp(9))
        .unwrap_err();
    assert_eq!(gap.error, ErrorCode::OutOfOrderSequenceNumber);
    assert_eq!(
        r.append_as_leader(values(1), Acks::One, 1_004, stamp(5)),
        Ok((5, 5)),
        "same epoch, next sequence"
    );
    // Without a stamp the same values are simply appended again (at-least-once).
    assert_eq!(
        r.append_as_leader(values(3), Acks::One, 1_005, None),
        Ok((6, 8))
    );
    // acks=all with too small an ISR answers NOT_ENOUGH_REPLICAS first, duplicate or not.
    let mut small = leader(&[1]);
    let e = small
        .replica
        .append_as_leader(values(1), Acks::All, 1_000, stamp(0))
        .unwrap_err();
    assert_eq!(e.error, ErrorCode::NotEnoughReplicas);
}

#[test]
fn an_older_producer_epoch_is_refused() {
    let mut f = leader(&[1, 2, 3]);
    let r = &mut f.replica;
    let at = |epoch: i16, seq: i32| {
        Some(ProducerBatch {
            producer_id: 4,
            producer_epoch: epoch,
            base_sequence: seq,
        })
    };
    r.append_as_leader(values(1), Acks::One, 1_000, at(2, 0))
        .unwrap();
    let e = r
        .append_as_leader(values(1), Acks::One, 1_001, at(1, 1))
        .unwrap_err();
    assert_eq!(e.error, ErrorCode::InvalidProducerEpoch);
    let e = r
        .append_as_leader(values(1), Acks::One, 1_002, at(3, 1))
        .unwrap_err();
    assert_eq!(
        e.error,
        ErrorCode::OutOfOrderSequenceNumber,
        "a new epoch starts at 0"
    );
    assert_eq!(
        r.append_as_leader(values(1), Acks::One, 1_003, at(3, 0)),
        Ok((1, 1))
    );
}

/// Broker 2 follows broker 1, takes its batches, then leads epoch 1: a retry of a batch broker 1
/// accepted (its answer lost) is answered with the original offsets, not written twice.
#[test]
fn a_new_leader_dedups_what_the_old_leader_accepted() {
    for version in [KafkaVersion::V4_1, KafkaVersion::V3_7] {
        let mut old = leader_of(version, &[1, 2, 3]);
        old.replica
            .append_as_leader(values(3), Acks::All, 1_000, stamp(0))
            .unwrap();
        old.replica
            .append_as_leader(values(2), Acks::All, 1_000, stamp(3))
            .unwrap();
        let mut new = fixture(2, version.rules());
        new.replica
            .apply_metadata(&pm(Some(1), 0, 0, &[1, 2, 3]), &CONFIGS, 1_000, &new.events)
            .unwrap();
        let (answer, _) = fetch(&mut old.replica, &old.events, 2, 0, None, 1_001).unwrap();
        new.replica
            .follower_apply(1, response(answer), &new.events)
            .unwrap();
        assert_eq!(new.replica.leo(), 5, "{version:?}");
        new.replica
            .apply_metadata(&pm(Some(2), 1, 1, &[2, 3]), &CONFIGS, 2_000, &new.events)
            .unwrap();
        assert_eq!(
            new.replica
                .append_as_leader(values(2), Acks::One, 2_001, stamp(3)),
            Ok((3, 4)),
            "{version:?}"
        );
        assert_eq!(new.replica.leo(), 5, "{version:?}");
        assert_eq!(
            new.replica
                .append_as_leader(values(1), Acks::One, 2_002, stamp(5)),
            Ok((5, 5)),
            "{version:?}: the next sequence goes on"
        );
    }
}

/// A truncation takes the truncated batches out of the producer state: their retry is a new
/// append, not a duplicate of something the log no longer holds.
#[test]
fn truncation_rebuilds_the_producer_state() {
    let mut f = leader(&[1, 2, 3]);
    let r = &mut f.replica;
    r.append_as_leader(values(3), Acks::One, 1_000, stamp(0))
        .unwrap();
    r.append_as_leader(values(2), Acks::One, 1_001, stamp(3))
        .unwrap();
    r.log.truncate_to(3).unwrap();
    let entry = r.log.producers().entry(9).unwrap();
    assert_eq!(entry.batches.back().unwrap().last_seq, 2);
    assert_eq!(
        r.append_as_leader(values(2), Acks::One, 1_002, stamp(3)),
        Ok((3, 4))
    );
    assert_eq!(r.leo(), 5);
}

/// Kafka 0.10.2 predates the idempotent producer (KIP-98, 0.11.0): a stamp is ignored and a
/// retry is written again, the at-least-once the old producer gave.
#[test]
fn kafka_0_10_2_keeps_no_producer_state() {
    let mut f = leader_of(KafkaVersion::V0_10_2, &[1, 2, 3]);
    let r = &mut f.replica;
    assert_eq!(
        r.append_as_leader(values(2), Acks::One, 1_000, stamp(0)),
        Ok((0, 1))
    );
    assert_eq!(
        r.append_as_leader(values(2), Acks::One, 1_001, stamp(0)),
        Ok((2, 3))
    );
    assert_eq!(
        r.append_as_leader(values(1), Acks::One, 1_002, stamp(77)),
        Ok((4, 4))
    );
    assert!(r.log.producers().is_empty());
}
