//! Producers against the real node: one operation per send with its attempts, blind retries
//! whose duplicates the checker allows, and idempotent producers (`--idempotence`) whose
//! retries must never be appended twice.

use std::collections::{BTreeMap, BTreeSet};

use faultline_checker::history::{OpType, Process, SendValue};
use faultline_checker::{AnomalyKind, Results, RETRY_EXCUSE};

use crate::common::{Finished, TestRun};

/// A short run whose acks=all sends often time out on the broker (a 500 ms request timeout
/// and paused followers), so that producers retry.
fn retrying_run(extra: &[&str]) -> Finished {
    let mut args = vec![
        "--time-limit",
        "5s",
        "--nemesis",
        "pause,isr-pressure",
        "--nemesis-interval",
        "700ms",
        "--rate",
        "300",
        "--concurrency",
        "4",
        "--seed",
        "5",
        "--request-timeout",
        "500ms",
    ];
    args.extend_from_slice(extra);
    TestRun::new(&args).run()
}

fn results(finished: &Finished) -> Results {
    let path = finished.run_dir.join("results.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every send's completions, by value, checking that each invoke has exactly one completion
/// on its process and that every completion says how many attempts it took.
fn completions(finished: &Finished, retries: u32) -> BTreeMap<String, (OpType, SendValue)> {
    let mut open: BTreeMap<String, Process> = BTreeMap::new();
    let mut done = BTreeMap::new();
    for op in finished.history().iter().filter(|op| op.f == "send") {
        let value: SendValue = serde_json::from_value(op.value.clone()).unwrap();
        if op.kind == OpType::Invoke {
            assert!(
                value.attempts.is_none(),
                "an invoke has no attempts: {op:?}"
            );
            let again = open.insert(value.value.clone(), op.process.clone());
            assert!(again.is_none(), "a value sent twice: {op:?}");
            continue;
        }
        assert_eq!(
            open.remove(&value.value).as_ref(),
            Some(&op.process),
            "{op:?}"
        );
        let attempts = value.attempts.expect("a completion says its attempts");
        assert!((1..=retries + 1).contains(&attempts), "{op:?}");
        assert_eq!(value.retry_errors.len() as u32, attempts - 1, "{op:?}");
        done.insert(value.value.clone(), (op.kind, value));
    }
    assert!(open.is_empty(), "sends without a completion: {open:?}");
    done
}

#[test]
fn blind_retries_are_one_operation_each_and_their_duplicates_are_allowed() {
    let finished = retrying_run(&[]);
    finished.expect_valid();
    let sends = completions(&finished, 3);
    assert!(
        sends.values().any(|(_, v)| v.attempts > Some(1)),
        "no send was retried"
    );
    assert!(sends.values().all(|(_, v)| v.producer_id.is_none()));
    let results = results(&finished);
    for a in results
        .anomalies
        .iter()
        .filter(|a| a.kind == AnomalyKind::Duplicate)
    {
        assert_eq!(a.excused_by.as_deref(), Some(RETRY_EXCUSE), "{a:?}");
        let (_, send) = &sends[&a.values[0]];
        assert!(send.attempts > Some(1), "{a:?}: {send:?}");
    }
}

/// With idempotence every send carries its producer's id, epoch and sequence, the same on every
/// attempt; a producer's acknowledged sequences grow by one per partition while its producer
/// id lasts; and nothing is appended twice.
fn idempotent_run(client: &str) {
    let finished = retrying_run(&["--idempotence", "--client", client]);
    let sends = completions(&finished, 3);
    let mut acked: BTreeMap<(i64, u32), Vec<i32>> = BTreeMap::new();
    for (kind, v) in sends.values() {
        let (id, epoch, sequence) = (v.producer_id, v.producer_epoch, v.sequence);
        assert!(
            id.is_some() && epoch.is_some() && sequence.is_some(),
            "{v:?}"
        );
        if *kind == OpType::Ok {
            let key = (id.unwrap(), v.partition);
            acked.entry(key).or_default().push(sequence.unwrap());
        }
    }
    for (producer, mut sequences) in acked {
        sequences.sort_unstable();
        let expected: Vec<i32> = (0..sequences.len() as i32).collect();
        assert_eq!(sequences, expected, "producer {producer:?}");
    }
    let ids: BTreeSet<i64> = sends.values().filter_map(|(_, v)| v.producer_id).collect();
    assert!(
        ids.len() >= 4,
        "one producer id per producer at least: {ids:?}"
    );
    let results = results(&finished);
    assert_eq!(
        results.anomaly_counts[&AnomalyKind::Duplicate],
        0,
        "{:#?}",
        results.anomalies
    );
    assert_eq!(results.anomaly_counts[&AnomalyKind::NonmonotonicSend], 0);
    finished.expect_valid();
}

#[test]
fn idempotent_producers_over_http_never_append_a_retry_twice() {
    idempotent_run("http");
}

#[test]
fn idempotent_producers_over_kafka_never_append_a_retry_twice() {
    idempotent_run("kafka");
}
