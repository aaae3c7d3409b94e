//! One small hand-written run per anomaly: found, with the right offsets, values and indices.

use crate::support::*;
use faultline_checker::config::KafkaVersion;
use faultline_checker::events::NodeEvent;
use faultline_checker::history::{OpType, Process};
use faultline_checker::{AnomalyKind, Valid};

#[test]
fn a_correct_run_is_valid() {
    let mut run = Run::happy(10);
    run.poll(5, 0, &[(0, "v0"), (1, "v1"), (2, "v2")]);
    run.poll(5, 3, &[(3, "v3")]);
    run.nemesis("kill", 2);
    let results = run.check();
    assert_eq!(kinds(&results), vec![], "{:#?}", results.anomalies);
    assert_eq!(results.valid, Valid::True, "{:?}", results.unknown_reasons);
    assert_eq!(results.exit_code(), 0);
    assert_eq!(results.counts.send.ok, 10);
    assert_eq!(results.counts.poll.ok, 2);
    assert_eq!(results.counts.polled_records, 4);
    assert_eq!(results.counts.nemesis, 1);
    assert_eq!(results.counts.final_records, 10);
    assert_eq!(results.counts.dump_records, 30);
    let p = &results.partitions[0];
    assert_eq!(
        (p.topic.as_str(), p.partition, p.leader, p.final_complete),
        ("t", 0, Some(1), true)
    );
    assert_eq!(p.write_availability, Some(1.0));
    assert!(
        results.summary().starts_with("verdict: valid (durable)"),
        "{}",
        results.summary()
    );
}

/// The loss of the example: an unclean election and a truncation remove the tail.
fn unclean_loss_run() -> Run {
    let mut run = Run::happy(10);
    run.set_final(
        0,
        records(&["v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7"]),
    );
    let tail = vec![(8, "v8".to_string(), 3), (9, "v9".to_string(), 3)];
    let mut old_leader = records(&["v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7"]);
    old_leader.extend(tail);
    // Broker 1 crashed before truncating: its dump still holds the acknowledged tail above
    // its HW checkpoint; brokers 2 and 3 agree with the final log.
    run.set_dump(1, 0, &old_leader, Some(8));
    run.set_dump(
        2,
        0,
        &records(&["v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7"]),
        Some(8),
    );
    run.set_dump(
        3,
        0,
        &records(&["v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7"]),
        Some(8),
    );
    run.event("controller", election(1, 3, false, "broker_unfenced"), 500);
    run.event("controller", election(3, 4, true, "broker_fenced"), 12_400);
    let unclean = NodeEvent {
        leader: Some(3),
        leader_epoch: Some(4),
        log_end_offset: Some(8),
        ..event("unclean_election")
    };
    run.event("3", unclean, 12_410);
    run.event("2", truncation(9, 8, "diverging_epoch", 3, 4), 14_000);
    run.event("1", truncation(10, 8, "diverging_epoch", 3, 4), 15_000);
    run
}

#[test]
fn lost_writes_are_named_grouped_and_explained() {
    let results = unclean_loss_run().check();
    assert_eq!(results.valid, Valid::False);
    assert_eq!(results.exit_code(), 1);
    let lost = of_kind(&results, AnomalyKind::Lost);
    let named: Vec<(Vec<u64>, Vec<String>)> = lost
        .iter()
        .map(|a| (a.offsets.clone(), a.values.clone()))
        .collect();
    assert_eq!(
        named,
        vec![
            (vec![8], vec!["v8".to_string()]),
            (vec![9], vec!["v9".to_string()])
        ]
    );
    // The invoke and ok lines of v8 are history lines 16 and 17.
    assert_eq!(lost[0].indices, vec![16, 17]);
    assert_eq!(results.explanations.len(), 1);
    let e = &results.explanations[0];
    assert_eq!(
        (e.first_offset, e.last_offset, e.count),
        (Some(8), Some(9), 2)
    );
    assert_eq!(
        (e.acked_by, e.acked_leader_epoch, e.explained),
        (Some(1), Some(3), true)
    );
    assert_eq!(
        e.sentence,
        "offsets 8–9 of t/0, acknowledged by broker 1 in epoch 3, were lost: broker 3 was elected \
         uncleanly at 12.4 s (epoch 4) with LEO 8, broker 2 truncated 8 at 14.0 s, and broker 1 \
         truncated 8–9 at 15.0 s."
    );
    // Broker 1's tail above its HW is not divergence.
    assert!(of_kind(&results, AnomalyKind::Divergence).is_empty());
}

#[test]
fn the_acknowledgement_names_its_broker_and_epoch_even_when_no_log_keeps_the_record() {
    let mut run = Run::happy(3);
    run.send_acked_by(9, "gone", 3, 2, 5);
    for broker in 1..=3 {
        run.set_dump(broker, 0, &records(&["v0", "v1", "v2"]), Some(3));
    }
    let results = run.check();
    let e = &results.explanations[0];
    assert_eq!((e.acked_by, e.acked_leader_epoch), (Some(2), Some(5)));
    assert!(
        e.sentence
            .starts_with("offset 3 of t/0, acknowledged by broker 2 in epoch 5, was lost"),
        "{}",
        e.sentence
    );
}

#[test]
fn a_loss_without_events_says_so() {
    let mut run = Run::happy(4);
    run.set_final(0, records(&["v0", "v1", "v2"]));
    for broker in 1..=3 {
        run.set_dump(broker, 0, &records(&["v0", "v1", "v2"]), Some(3));
    }
    let results = run.check();
    let e = &results.explanations[0];
    assert!(!e.explained);
    assert_eq!(
        e.sentence,
        "offset 3 of t/0, acknowledged by an unknown broker in an unknown epoch, was lost: no node \
         event explains this loss."
    );
}

#[test]
fn an_indefinite_send_that_was_read_and_then_lost_is_lost_and_a_dirty_read() {
    let mut run = Run::happy(3);
    run.send(1, "w", "info", None);
    run.poll(4, 0, &[(0, "v0"), (1, "v1"), (2, "v2"), (3, "w")]);
    let results = run.check();
    assert_eq!(results.valid, Valid::False);
    let lost = of_kind(&results, AnomalyKind::Lost);
    assert_eq!(lost.len(), 1);
    assert_eq!(
        (lost[0].offsets.clone(), lost[0].values.clone()),
        (vec![3], vec!["w".to_string()])
    );
    assert_eq!(lost[0].indices, vec![6, 7, 9]);
    let dirty = of_kind(&results, AnomalyKind::DirtyRead);
    assert_eq!(dirty.len(), 1);
    assert_eq!(
        (dirty[0].offsets.clone(), dirty[0].indices.clone()),
        (vec![3], vec![9])
    );
    assert!(
        dirty[0].detail.contains("the final log ends at HW 3"),
        "{}",
        dirty[0].detail
    );
}

#[test]
fn an_info_send_nobody_read_may_be_missing() {
    let mut run = Run::happy(3);
    run.send(1, "w", "info", None);
    let results = run.check();
    assert_eq!(kinds(&results), vec![]);
    assert_eq!(results.valid, Valid::True);
}

#[test]
fn swapped_offsets_are_moved() {
    let mut run = Run::happy(8);
    let swapped = records(&["v0", "v1", "v2", "v3", "v4", "v6", "v5", "v7"]);
    run.set_final(0, swapped.clone());
    for broker in 1..=3 {
        run.set_dump(broker, 0, &swapped, Some(8));
    }
    let results = run.check();
    assert_eq!(kinds(&results), vec![AnomalyKind::Moved]);
    let moved = of_kind(&results, AnomalyKind::Moved);
    assert_eq!(moved[0].offsets, vec![5, 6]);
    assert_eq!(moved[0].values, vec!["v5".to_string(), "v6".to_string()]);
    assert_eq!(moved[1].offsets, vec![6, 5]);
    assert_eq!(results.valid, Valid::False);
    assert_eq!(results.explanations.len(), 1, "one range 5–6");
    assert!(results.explanations[0].sentence.starts_with("offsets 5–6 of t/0, acknowledged by broker 1 in epoch 0, now hold other values: no node event"), "{}", results.explanations[0].sentence);
}

#[test]
fn two_acks_at_one_offset_the_final_log_does_not_hold_are_inconsistent() {
    let mut run = Run::happy(3);
    run.send(1, "a", "ok", Some(3));
    run.send(2, "b", "ok", Some(3));
    let results = run.check();
    assert_eq!(
        kinds(&results),
        vec![AnomalyKind::Lost, AnomalyKind::InconsistentOffset]
    );
    let inc = of_kind(&results, AnomalyKind::InconsistentOffset);
    assert_eq!(inc[0].offsets, vec![3]);
    assert_eq!(inc[0].values, vec!["a".to_string(), "b".to_string()]);
    assert_eq!(inc[0].indices, vec![7, 9]);
}

#[test]
fn a_value_at_two_offsets_is_a_duplicate() {
    let mut run = Run::happy(4);
    let dup = records(&["v0", "v1", "v2", "v3", "v1"]);
    run.set_final(0, dup.clone());
    run.set_dump(2, 0, &dup, Some(5));
    let results = run.check();
    let d = of_kind(&results, AnomalyKind::Duplicate);
    assert_eq!(d.len(), 2, "the final log and broker 2's dump: {d:#?}");
    assert_eq!(
        (d[0].offsets.clone(), d[0].values.clone()),
        (vec![1, 4], vec!["v1".to_string()])
    );
    assert!(d
        .iter()
        .any(|a| a.brokers == vec![2] && a.offsets == vec![1, 4]));
    assert_eq!(results.valid, Valid::False);
}

#[test]
fn a_read_of_another_value_than_the_final_log_holds_is_dirty() {
    let mut run = Run::happy(4);
    run.send(1, "x", "info", None);
    run.poll(3, 2, &[(2, "x")]);
    let results = run.check();
    let dirty = of_kind(&results, AnomalyKind::DirtyRead);
    assert_eq!(dirty.len(), 1);
    assert_eq!(dirty[0].offsets, vec![2]);
    assert_eq!(dirty[0].values, vec!["x".to_string(), "v2".to_string()]);
    assert_eq!(dirty[0].indices, vec![11]);
    assert_eq!(results.valid, Valid::False);
}

#[test]
fn a_replica_that_differs_below_hw_diverges() {
    let mut run = Run::happy(6);
    run.send(1, "w", "info", None);
    let mut bad = records(&["v0", "v1", "v2", "v3", "v4", "v5"]);
    bad[4].1 = "w".into();
    run.set_dump(3, 0, &bad, Some(6));
    let results = run.check();
    assert_eq!(kinds(&results), vec![AnomalyKind::Divergence]);
    let d = of_kind(&results, AnomalyKind::Divergence);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].offsets, vec![4, 4]);
    assert_eq!(d[0].brokers, vec![3, 1]);
    assert_eq!(d[0].values, vec!["w".to_string(), "v4".to_string()]);
    assert_eq!(results.valid, Valid::False);
}

#[test]
fn replicas_may_differ_above_their_hw_and_out_of_isr_without_a_summary() {
    let mut run = Run::happy(6);
    run.send(1, "w", "info", None);
    run.final_part(0).isr = vec![1, 2];
    // Broker 3 is out of the ISR and its dump has no summary: it is not compared.
    let mut bad = records(&["v0", "v1", "v2", "v3", "v4", "v5"]);
    bad[4].1 = "w".into();
    run.set_dump(3, 0, &bad, None);
    // Broker 2 holds an uncommitted record above its HW.
    let mut longer = records(&["v0", "v1", "v2", "v3", "v4", "v5"]);
    longer.push((6, "w".into(), 1));
    run.set_dump(2, 0, &longer, Some(6));
    let results = run.check();
    assert_eq!(kinds(&results), vec![]);
    assert_eq!(results.valid, Valid::True, "{:?}", results.unknown_reasons);
}

#[test]
fn two_dumps_differing_above_the_final_log_but_below_both_hws_diverge() {
    let mut run = Run::happy(4);
    run.send(1, "a", "info", None);
    run.send(1, "b", "info", None);
    let mut two = records(&["v0", "v1", "v2", "v3"]);
    let mut three = two.clone();
    two.push((4, "a".into(), 1));
    three.push((4, "b".into(), 1));
    run.set_dump(2, 0, &two, Some(5));
    run.set_dump(3, 0, &three, Some(5));
    run.final_part(0).isr = vec![1];
    let results = run.check();
    let d = of_kind(&results, AnomalyKind::Divergence);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(
        (d[0].offsets.clone(), d[0].brokers.clone()),
        (vec![4, 4], vec![2, 3])
    );
}

#[test]
fn a_poll_that_goes_back_is_nonmonotonic() {
    let mut run = Run::happy(5);
    run.poll(7, 0, &[(0, "v0"), (1, "v1"), (2, "v2")]);
    run.poll(7, 3, &[(1, "v1"), (3, "v3")]);
    let results = run.check();
    assert_eq!(kinds(&results), vec![AnomalyKind::NonmonotonicPoll]);
    let n = of_kind(&results, AnomalyKind::NonmonotonicPoll);
    assert_eq!(
        (n[0].offsets.clone(), n[0].indices.clone()),
        (vec![2, 1], vec![13])
    );
    assert!(
        n[0].detail
            .starts_with("process 7 read offset 1 of t/0 after offset 2"),
        "{}",
        n[0].detail
    );
    assert_eq!(results.valid, Valid::False);
}

#[test]
fn a_consumer_asking_again_from_an_earlier_offset_is_not_an_anomaly() {
    let mut run = Run::happy(5);
    run.poll(7, 0, &[(0, "v0"), (1, "v1"), (2, "v2")]);
    run.poll(7, 1, &[(1, "v1"), (2, "v2"), (3, "v3")]);
    let results = run.check();
    assert_eq!(kinds(&results), vec![]);
}

#[test]
fn a_poll_that_jumps_over_committed_offsets_skips() {
    let mut run = Run::happy(6);
    run.poll(7, 0, &[(0, "v0"), (1, "v1")]);
    run.poll(7, 2, &[(4, "v4"), (5, "v5")]);
    let results = run.check();
    assert_eq!(kinds(&results), vec![AnomalyKind::PollSkip]);
    let s = of_kind(&results, AnomalyKind::PollSkip);
    assert_eq!(
        (s[0].offsets.clone(), s[0].indices.clone()),
        (vec![2, 3], vec![15])
    );
    assert_eq!(results.valid, Valid::False);
}

#[test]
fn a_record_no_client_sent_is_a_phantom() {
    let mut run = Run::happy(3);
    let ghost = records(&["v0", "v1", "v2", "ghost"]);
    run.set_final(0, ghost.clone());
    for broker in 1..=3 {
        run.set_dump(broker, 0, &ghost, Some(4));
    }
    run.poll(2, 0, &[(0, "v0"), (1, "spook")]);
    let results = run.check();
    let p = of_kind(&results, AnomalyKind::Phantom);
    let found: Vec<(Vec<u64>, Vec<String>)> = p
        .iter()
        .map(|a| (a.offsets.clone(), a.values.clone()))
        .collect();
    assert_eq!(
        found,
        vec![
            (vec![1], vec!["spook".to_string()]),
            (vec![3], vec!["ghost".to_string()])
        ]
    );
    assert_eq!(
        results.anomaly_counts[&AnomalyKind::Phantom],
        2,
        "one per value, not per log"
    );
    assert_eq!(results.valid, Valid::False);
}

#[test]
fn a_failed_send_in_the_log_is_reported() {
    let mut run = Run::happy(3);
    run.send(1, "nope", "fail", None);
    let log = records(&["v0", "v1", "v2", "nope"]);
    run.set_final(0, log.clone());
    for broker in 1..=3 {
        run.set_dump(broker, 0, &log, Some(4));
    }
    let results = run.check();
    assert_eq!(kinds(&results), vec![AnomalyKind::FailedSendPresent]);
    let f = of_kind(&results, AnomalyKind::FailedSendPresent);
    assert_eq!(
        (f[0].offsets.clone(), f[0].indices.clone()),
        (vec![3], vec![6, 7])
    );
}

#[test]
fn a_partition_without_a_leader_is_unavailable_and_unknown() {
    let mut run = Run::happy(3);
    run.config.partitions = 2;
    run.send_to(1, 1, "p1", "ok", Some(0));
    run.finals.push(FinalPart {
        partition: 1,
        leader: None,
        isr: vec![],
        records: vec![],
        hw: None,
        error: Some("no leader".into()),
    });
    run.final_complete = Some(false);
    let results = run.check();
    assert_eq!(results.valid, Valid::Unknown);
    assert_eq!(results.exit_code(), 2);
    let p1 = results
        .partitions
        .iter()
        .find(|p| p.partition == 1)
        .unwrap();
    assert!(p1.unavailable && !p1.final_complete);
    let p0 = results
        .partitions
        .iter()
        .find(|p| p.partition == 0)
        .unwrap();
    assert!(!p0.unavailable && p0.final_complete);
    // p1's acknowledged write cannot be judged: it is reported, but uncertain.
    let lost = of_kind(&results, AnomalyKind::Lost);
    assert_eq!(lost.len(), 1);
    assert!(lost[0].uncertain.is_some());
    assert!(
        results.summary().contains("unavailable: t/1 has no leader"),
        "{}",
        results.summary()
    );
}

#[test]
fn write_availability_counts_buckets_with_an_ok_send() {
    let mut run = Run::happy(0);
    run.config.time_limit_ms = 4000;
    // Ops spread evenly over 4 s: the ok sends fall in the first two seconds only.
    run.send(1, "a", "ok", Some(0));
    run.send(1, "b", "ok", Some(1));
    run.send(1, "c", "info", None);
    run.send(1, "d", "info", None);
    run.set_final(0, records(&["a", "b"]));
    for broker in 1..=3 {
        run.set_dump(broker, 0, &records(&["a", "b"]), Some(2));
    }
    let results = run.check();
    let p = &results.partitions[0];
    // Ops at 0.5, 1.0, ..., 4.0 s: oks at 1.0 s and 2.0 s → buckets 1 and 2 of 0..=4.
    assert_eq!(p.write_availability, Some(2.0 / 5.0));
    assert_eq!(p.longest_write_gap_ms, Some(2000));
    assert_eq!(p.send.ok, 2);
    assert_eq!(p.send.info, 2);
}

#[test]
fn a_send_without_completion_is_indefinite_in_the_log_and_lost_only_if_read() {
    let mut run = Run::happy(3);
    // Process 1 invokes "open" and the history ends before its completion; process 2 invokes
    // "gone", a consumer reads it at offset 4, and it is not in the final log.
    for (process, value) in [(1, "open"), (2, "gone")] {
        let invoke = send_value(0, value);
        run.ops.push(op(
            Process::Client(process),
            OpType::Invoke,
            "send",
            &invoke,
            None,
        ));
    }
    run.poll(3, 3, &[(3, "open"), (4, "gone")]);
    let log = records(&["v0", "v1", "v2", "open"]);
    run.set_final(0, log.clone());
    for broker in 1..=3 {
        run.set_dump(broker, 0, &log, Some(4));
    }
    let results = run.check();
    assert_eq!(
        kinds(&results),
        vec![AnomalyKind::Lost, AnomalyKind::DirtyRead]
    );
    let lost = of_kind(&results, AnomalyKind::Lost);
    assert_eq!(
        (lost[0].values.clone(), lost[0].offsets.clone()),
        (vec!["gone".to_string()], vec![4])
    );
    assert_eq!(lost[0].indices, vec![7, 9]);
    assert!(results.explanations[0].sentence.starts_with("offset 4 of t/0, whose sends had an unknown outcome but which a consumer read, was lost"), "{}", results.explanations[0].sentence);
}

#[test]
fn a_legacy_hw_loss_names_the_clean_election_and_the_hw_checkpoint_truncation() {
    let mut run = Run::happy(6);
    run.config.kafka_version = KafkaVersion::V0_10_2;
    let kept = records(&["v0", "v1", "v2", "v3"]);
    run.set_final(0, kept.clone());
    for broker in 1..=3 {
        run.set_dump(broker, 0, &kept, Some(4));
    }
    run.event("2", truncation(6, 4, "hw_checkpoint", 1, 0), 3_000);
    run.event("controller", election(2, 1, false, "broker_fenced"), 3_500);
    let role = NodeEvent {
        role: Some("leader".into()),
        leader: Some(2),
        leader_epoch: Some(1),
        log_end_offset: Some(4),
        ..event("role_change")
    };
    run.event("2", role, 3_520);
    let results = run.check();
    assert_eq!(results.valid, Valid::True, "legacy-hw excuses the loss");
    let lost = of_kind(&results, AnomalyKind::Lost);
    assert_eq!(lost[0].excused_by.as_deref(), Some("kafka_version=0.10.2"));
    assert_eq!(
        results.explanations[0].sentence,
        "offsets 4–5 of t/0, acknowledged by an unknown broker in an unknown epoch, were lost: \
         broker 2 truncated 4–5 to its HW checkpoint at 3.0 s, and broker 2 was elected at 3.5 s \
         (epoch 1) with LEO 4."
    );
}

#[test]
fn acks_0_losses_without_offsets_are_one_range_explained_by_a_torn_tail() {
    let mut run = Run::happy(2);
    run.config.acks = faultline_checker::history::Acks::Zero;
    run.send(1, "a", "ok", None);
    run.send(1, "b", "ok", None);
    let recovery = NodeEvent {
        log_end_offset: Some(2),
        leader_epoch: Some(0),
        dropped_bytes: Some(61),
        ..event("recovery")
    };
    run.event("1", recovery, 2_500);
    let results = run.check();
    assert_eq!(results.anomaly_counts[&AnomalyKind::Lost], 2);
    assert_eq!(results.valid, Valid::True);
    assert_eq!(results.explanations.len(), 1);
    let e = &results.explanations[0];
    assert_eq!((e.first_offset, e.count), (None, 2));
    assert_eq!(
        e.sentence,
        "2 values of t/0 without offsets, acknowledged by an unknown broker in an unknown epoch, \
         were lost: broker 1 dropped a torn tail of 61 bytes on recovery at 2.5 s (LEO 2)."
    );
}

/// Run::happy(5) with the acknowledged record at offset 2 punched out of the final read and of
/// the dumps of `brokers` (offsets are kept: the logs go on past the hole).
fn hole_run(brokers: &[u32]) -> Run {
    let mut run = Run::happy(5);
    let mut holed = records(&["v0", "v1", "v2", "v3", "v4"]);
    holed.remove(2);
    run.final_part(0).records = holed.clone();
    run.final_part(0).hw = Some(5);
    for &broker in brokers {
        run.set_dump(broker, 0, &holed, Some(5));
    }
    run
}

#[test]
fn a_hole_in_every_surviving_log_is_a_definite_loss() {
    let results = hole_run(&[1, 2, 3]).check();
    assert_eq!(results.valid, Valid::False, "{:?}", results.unknown_reasons);
    let lost = of_kind(&results, AnomalyKind::Lost);
    assert_eq!(lost.len(), 1, "{lost:#?}");
    assert_eq!(
        (lost[0].offsets.clone(), lost[0].values.clone()),
        (vec![2], vec!["v2".to_string()])
    );
    assert_eq!(lost[0].uncertain, None);
    assert_eq!(lost[0].excused_by, None);
    assert!(
        lost[0].detail.contains("a hole in the log"),
        "{}",
        lost[0].detail
    );
    assert!(
        lost[0].detail.contains("broker 3 up to 4"),
        "{}",
        lost[0].detail
    );
    let e = &results.explanations[0];
    assert_eq!((e.first_offset, e.last_offset), (Some(2), Some(2)));
    assert!(e.sentence.starts_with("offset 2 of t/0"), "{}", e.sentence);
    assert!(
        results.summary().contains("lost 1\n"),
        "{}",
        results.summary()
    );
}

#[test]
fn a_hole_some_replica_may_fill_stays_unknown() {
    // Every broker still holds the record: the final read missed it, the log did not lose it.
    let results = hole_run(&[]).check();
    assert_eq!(results.valid, Valid::Unknown);
    let lost = of_kind(&results, AnomalyKind::Lost);
    assert!(lost[0].uncertain.is_some(), "{lost:#?}");
    assert!(
        results.summary().contains("lost 1 (uncertain)"),
        "{}",
        results.summary()
    );
    // A broker left no dump: its log may hold the record.
    let mut run = hole_run(&[1, 2, 3]);
    run.dumps.remove(&3);
    assert_eq!(run.check().valid, Valid::Unknown);
    // A damaged dump line may be the record.
    let mut run = hole_run(&[1, 2, 3]);
    let damaged = DumpLine::Raw("\"not a record\"".into());
    run.dumps.get_mut(&2).unwrap().push(damaged);
    assert_eq!(run.check().valid, Valid::Unknown);
}

#[test]
fn a_read_that_stops_short_of_its_hw_stays_unknown() {
    // Every log ends at the acknowledged offset: the replicas may simply be behind.
    let mut run = Run::happy(5);
    let short = records(&["v0", "v1", "v2", "v3"]);
    run.final_part(0).records = short.clone();
    run.final_part(0).hw = Some(5);
    for broker in 1..=3 {
        run.set_dump(broker, 0, &short, Some(4));
    }
    let results = run.check();
    assert_eq!(results.valid, Valid::Unknown, "{:#?}", results.anomalies);
    assert!(of_kind(&results, AnomalyKind::Lost)[0].uncertain.is_some());
}
