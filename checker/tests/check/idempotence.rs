//! Producer retries, with and without idempotence (docs/results.md "Which setting excuses
//! what"): a duplicate of a value whose send took more than one attempt is expected without
//! idempotence and breaks the guarantee with it; a value sent once is never excused; and with
//! idempotence one producer's acknowledged offsets must grow (`nonmonotonic_send`).

use crate::support::*;
use faultline_checker::history::{Acks, OpType, Process};
use faultline_checker::probes::Probe;
use faultline_checker::{AnomalyKind, Valid, RETRY_EXCUSE};

/// v0..v2 acknowledged at 0..2 by process 0, then `r`, sent by process 1 in `attempts`
/// attempts and acknowledged at offset 4, is in every log at offsets 3 and 4: its first
/// attempt was appended, its answer lost, and the retry appended it again.
fn retried_twice_in_the_log(attempts: u32) -> Run {
    let mut run = Run::happy(3);
    run.send_retried(1, "r", "ok", Some(4), attempts);
    let log = records(&["v0", "v1", "v2", "r", "r"]);
    run.set_final(0, log.clone());
    for broker in 1..=3 {
        run.set_dump(broker, 0, &log, Some(5));
    }
    run
}

#[test]
fn without_idempotence_a_duplicate_of_a_retried_send_is_allowed_and_says_why() {
    let results = retried_twice_in_the_log(2).check();
    let d = of_kind(&results, AnomalyKind::Duplicate);
    assert_eq!(d.len(), 4, "the final log and three dumps: {d:#?}");
    for a in &d {
        assert_eq!(a.excused_by.as_deref(), Some(RETRY_EXCUSE), "{a:#?}");
        assert_eq!(a.offsets, vec![3, 4]);
        assert!(
            a.detail.contains("its send took 2 attempts"),
            "{}",
            a.detail
        );
    }
    assert_eq!(results.valid, Valid::True, "{}", results.summary());
    assert!(
        results.summary().contains("duplicate 4 (allowed)"),
        "{}",
        results.summary()
    );
    // Retrying is not a weaker durability: the configuration is still the durable one, and
    // says which kind it excuses for retried sends only.
    assert!(results.guarantee.durable);
    assert_eq!(
        results.guarantee.excused_per_send[&AnomalyKind::Duplicate],
        vec![RETRY_EXCUSE.to_string()]
    );
    assert!(!results
        .guarantee
        .excused
        .contains_key(&AnomalyKind::Duplicate));
}

#[test]
fn with_idempotence_a_duplicate_is_invalid_however_many_attempts_the_send_took() {
    let mut run = retried_twice_in_the_log(2);
    run.config.idempotence = true;
    let results = run.check();
    let d = of_kind(&results, AnomalyKind::Duplicate);
    assert_eq!(d.len(), 4);
    assert!(d.iter().all(|a| a.breaks_guarantee()), "{d:#?}");
    assert_eq!(results.valid, Valid::False);
    assert!(results.guarantee.excused_per_send.is_empty());
}

#[test]
fn with_idempotence_a_duplicate_is_invalid_under_every_weaker_setting_too() {
    let mut run = retried_twice_in_the_log(3);
    run.config.idempotence = true;
    run.config.unclean_leader_election = true;
    run.config.min_insync_replicas = 1;
    let results = run.check();
    assert!(!results.guarantee.durable);
    let d = of_kind(&results, AnomalyKind::Duplicate);
    assert!(d.iter().all(|a| a.excused_by.is_none()), "{d:#?}");
    assert_eq!(results.valid, Valid::False);
}

#[test]
fn without_idempotence_a_duplicate_of_a_value_sent_once_is_invalid() {
    let results = retried_twice_in_the_log(1).check();
    let d = of_kind(&results, AnomalyKind::Duplicate);
    assert_eq!(d.len(), 4);
    assert!(d.iter().all(|a| a.breaks_guarantee()), "{d:#?}");
    assert_eq!(results.valid, Valid::False);
}

/// A history written before producers retried has no `attempts`: one attempt each.
#[test]
fn a_duplicate_in_a_history_from_before_retries_is_invalid() {
    let mut run = Run::happy(3);
    run.config.retries = 0;
    run.send(1, "r", "ok", Some(4));
    let log = records(&["v0", "v1", "v2", "r", "r"]);
    run.set_final(0, log.clone());
    for broker in 1..=3 {
        run.set_dump(broker, 0, &log, Some(5));
    }
    let results = run.check();
    assert!(results.guarantee.excused_per_send.is_empty());
    assert_eq!(results.valid, Valid::False);
}

/// An invoke without a completion (a harness killed mid-send) does not say how many attempts
/// were made: its duplicate may be a retry's, so the run is unknown, not invalid.
#[test]
fn a_duplicate_of_a_send_without_a_completion_is_uncertain_when_producers_retry() {
    let mut run = Run::happy(3);
    run.ops.push(op(
        Process::Client(1),
        OpType::Invoke,
        "send",
        send_value(0, "r"),
        None,
    ));
    let log = records(&["v0", "v1", "v2", "r", "r"]);
    run.set_final(0, log.clone());
    for broker in 1..=3 {
        run.set_dump(broker, 0, &log, Some(5));
    }
    let results = run.check();
    let d = of_kind(&results, AnomalyKind::Duplicate);
    assert!(d.iter().all(|a| a.uncertain.is_some()), "{d:#?}");
    assert_eq!(results.valid, Valid::Unknown, "{}", results.summary());
    run.config.idempotence = true;
    assert_eq!(run.check().valid, Valid::False);
    run.config.idempotence = false;
    run.config.retries = 0;
    assert_eq!(run.check().valid, Valid::False);
}

/// Process 5 sent `a` then `b`; `a` was acknowledged at offset 4 and `b`, completing after
/// it, at offset 3 (where the final log holds it): its sends were appended out of order.
fn acknowledged_backwards(idempotence: bool) -> Run {
    let mut run = Run::happy(3);
    run.config.idempotence = idempotence;
    let producer = |seq: i32| {
        move |v: &mut faultline_checker::history::SendValue| {
            v.producer_id = Some(1001);
            v.producer_epoch = Some(0);
            v.sequence = Some(seq);
            v.attempts = Some(1);
        }
    };
    run.send_with(5, 0, "a", "ok", Some(4), producer(0));
    run.send_with(5, 0, "b", "ok", Some(3), producer(1));
    let log = records(&["v0", "v1", "v2", "b", "a"]);
    run.set_final(0, log.clone());
    for broker in 1..=3 {
        run.set_dump(broker, 0, &log, Some(5));
    }
    run
}

#[test]
fn with_idempotence_a_producer_acknowledged_backwards_is_a_nonmonotonic_send() {
    let results = acknowledged_backwards(true).check();
    assert_eq!(kinds(&results), vec![AnomalyKind::NonmonotonicSend]);
    let n = of_kind(&results, AnomalyKind::NonmonotonicSend);
    assert_eq!(n.len(), 1);
    let a = n[0];
    assert_eq!((a.topic.as_str(), a.partition), ("t", 0));
    assert_eq!(a.offsets, vec![4, 3]);
    assert_eq!(a.values, vec!["a".to_string(), "b".to_string()]);
    // Happy(3) wrote six lines; a's completion is index 7, b's 9.
    assert_eq!(a.indices, vec![7, 9]);
    for part in [
        "process 5 (producer id 1001)",
        "\"b\" to t/0 (index 9)",
        "offset 3",
        "offset 4",
        "\"a\" (index 7)",
    ] {
        assert!(a.detail.contains(part), "{part:?} in {}", a.detail);
    }
    assert!(a.breaks_guarantee());
    assert_eq!(results.valid, Valid::False);
}

#[test]
fn without_idempotence_send_order_is_not_checked() {
    let results = acknowledged_backwards(false).check();
    assert_eq!(kinds(&results), Vec::<AnomalyKind>::new());
    assert_eq!(results.valid, Valid::True);
}

#[test]
fn acknowledged_offsets_of_different_producers_may_interleave() {
    let mut run = Run::happy(3);
    run.config.idempotence = true;
    run.send(5, "a", "ok", Some(4));
    run.send(6, "b", "ok", Some(3));
    let log = records(&["v0", "v1", "v2", "b", "a"]);
    run.set_final(0, log.clone());
    for broker in 1..=3 {
        run.set_dump(broker, 0, &log, Some(5));
    }
    let results = run.check();
    assert_eq!(kinds(&results), Vec::<AnomalyKind>::new());
    assert_eq!(results.valid, Valid::True);
}

/// A log truncated below an acknowledged offset gives the next sends lower offsets again:
/// the settings that excuse loss excuse this too.
#[test]
fn a_nonmonotonic_send_is_excused_where_loss_is() {
    let mut run = acknowledged_backwards(true);
    run.config.unclean_leader_election = true;
    let results = run.check();
    let n = of_kind(&results, AnomalyKind::NonmonotonicSend);
    assert_eq!(
        n[0].excused_by.as_deref(),
        Some("unclean.leader.election.enable=true")
    );
    assert_eq!(results.valid, Valid::True);
}

#[test]
fn a_nonmonotonic_pair_with_an_acks_1_send_is_excused_by_that_send() {
    let mut run = acknowledged_backwards(true);
    // The second send of the pair asked for acks=1 (a schedule's `produce 1 acks 1`).
    let last = run.ops.len() - 1;
    for i in [last - 1, last] {
        run.ops[i].value["acks"] = serde_json::json!(Acks::One);
    }
    let results = run.check();
    let n = of_kind(&results, AnomalyKind::NonmonotonicSend);
    assert_eq!(
        n[0].excused_by.as_deref(),
        Some(faultline_checker::WEAK_SEND_EXCUSE)
    );
    assert_eq!(results.valid, Valid::True);
}

/// A send refused with NOT_ENOUGH_REPLICAS and then acknowledged on a retry still went
/// through the refusal: the probe counts the errors of retried attempts.
#[test]
fn the_errors_of_retried_attempts_reach_the_probes() {
    let mut run = Run::happy(3);
    run.send_with(1, 0, "r", "ok", Some(3), |v| {
        v.attempts = Some(2);
        v.retry_errors = vec!["NOT_ENOUGH_REPLICAS".to_string()];
    });
    let log = records(&["v0", "v1", "v2", "r"]);
    run.set_final(0, log.clone());
    for broker in 1..=3 {
        run.set_dump(broker, 0, &log, Some(4));
    }
    let results = run.check();
    assert_eq!(results.valid, Valid::True);
    assert!(
        results.probes.contains_key(&Probe::NotEnoughReplicas),
        "{:?}",
        results.probes
    );
    let last = run.ops.len() - 1;
    run.ops[last].value["retry_errors"] = serde_json::json!([]);
    let results = run.check();
    assert!(!results.probes.contains_key(&Probe::NotEnoughReplicas));
}
