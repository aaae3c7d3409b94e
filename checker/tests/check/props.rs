//! Property tests over generated runs (fixed seed, bounded cases): correct runs are valid; one
//! acknowledged record removed is exactly one loss; two records swapped are exactly two moved
//! offsets; arbitrary bytes never make the checker panic; the fast line readers agree with
//! serde.

use crate::support::*;
use faultline_checker::dump::{DumpLine, DumpRecord};
use faultline_checker::history::{
    Acks, Op, OpLine, OpType, PollValue, PolledRecord, Process, SendValue,
};
use faultline_checker::{check_run, AnomalyKind, Valid};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use std::collections::BTreeSet;

fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x5eed),
        failure_persistence: None,
        ..Config::default()
    }
}

/// One generated send: partition, outcome, and (for `info`) whether it reached the log.
#[derive(Debug, Clone)]
struct GenSend {
    partition: u32,
    outcome: &'static str,
    logged: bool,
}

fn gen_send() -> impl Strategy<Value = GenSend> {
    let outcome = prop_oneof![6 => Just("ok"), 2 => Just("info"), 1 => Just("fail")];
    (0..2u32, outcome, any::<bool>()).prop_map(|(partition, outcome, logged)| GenSend {
        partition,
        outcome,
        logged: outcome == "ok" || (outcome == "info" && logged),
    })
}

/// A correct run: every `ok` send and some `info` sends are in the log in send order; each
/// partition's consumer reads a prefix of the log in chunks.
#[derive(Debug, Clone)]
struct GenRun {
    sends: Vec<GenSend>,
    chunks: Vec<usize>,
    read_fraction: [f64; 2],
}

fn gen_run() -> impl Strategy<Value = GenRun> {
    (
        prop::collection::vec(gen_send(), 1..60),
        prop::collection::vec(1usize..5, 1..20),
        [0.0..=1.0f64, 0.0..=1.0f64],
    )
        .prop_map(|(sends, chunks, read_fraction)| GenRun {
            sends,
            chunks,
            read_fraction,
        })
}

impl GenRun {
    /// The logs of both partitions: (offset, value, epoch), and the ok sends (value, offset).
    fn logs(&self) -> [Vec<(u64, String, u32)>; 2] {
        let mut logs: [Vec<(u64, String, u32)>; 2] = [Vec::new(), Vec::new()];
        for (i, s) in self.sends.iter().enumerate() {
            if s.logged {
                let log = &mut logs[s.partition as usize];
                log.push((log.len() as u64, format!("s{i}"), 0));
            }
        }
        logs
    }

    fn run(&self) -> Run {
        let mut run = Run::new(durable_config());
        run.config.partitions = 2;
        let logs = self.logs();
        for (i, s) in self.sends.iter().enumerate() {
            let value = format!("s{i}");
            let log = &logs[s.partition as usize];
            let offset = log.iter().find(|r| r.1 == value).map(|r| r.0);
            let offset = if s.outcome == "ok" { offset } else { None };
            run.send_to(i as u64 % 4, s.partition, &value, s.outcome, offset);
        }
        for (p, log) in logs.iter().enumerate() {
            self.reads(&mut run, p as u32, log);
            run.set_final(p as u32, log.clone());
            for broker in 1..=3 {
                run.set_dump(broker, p as u32, log, Some(log.len() as u64));
            }
        }
        run
    }

    fn reads(&self, run: &mut Run, partition: u32, log: &[(u64, String, u32)]) {
        let limit = (log.len() as f64 * self.read_fraction[partition as usize]) as usize;
        let mut at = 0;
        for chunk in self.chunks.iter().cycle().take(log.len()) {
            if at >= limit {
                break;
            }
            let end = (at + chunk).min(limit);
            let records: Vec<(u64, &str)> =
                log[at..end].iter().map(|r| (r.0, r.1.as_str())).collect();
            run.poll_at(10 + u64::from(partition), partition, at as u64, &records);
            at = end;
        }
    }

    /// Acknowledged (partition, offset, value) records.
    fn acked(&self) -> Vec<(u32, u64, String)> {
        let logs = self.logs();
        let mut out = Vec::new();
        for (i, s) in self
            .sends
            .iter()
            .enumerate()
            .filter(|(_, s)| s.outcome == "ok")
        {
            let log = &logs[s.partition as usize];
            let value = format!("s{i}");
            let offset = log.iter().find(|r| r.1 == value).map(|r| r.0).unwrap();
            out.push((s.partition, offset, value));
        }
        out
    }
}

/// Rewrites partition `p`'s final log and every dump of it.
fn replace_log(run: &mut Run, p: u32, log: Vec<(u64, String, u32)>) {
    for broker in 1..=3 {
        run.set_dump(broker, p, &log, Some(log.len() as u64));
    }
    run.set_final(p, log);
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn correct_runs_are_valid(gen in gen_run()) {
        let results = gen.run().check();
        prop_assert_eq!(kinds(&results), vec![]);
        prop_assert_eq!(results.valid, Valid::True, "{:?}", results.unknown_reasons);
    }

    #[test]
    fn one_removed_acknowledged_record_is_exactly_one_loss(gen in gen_run(), pick in any::<prop::sample::Index>()) {
        let acked = gen.acked();
        prop_assume!(!acked.is_empty());
        let (p, offset, value) = acked[pick.index(acked.len())].clone();
        let mut run = gen.run();
        let mut log = gen.logs()[p as usize].clone();
        log.remove(offset as usize);
        for (o, r) in log.iter_mut().enumerate() {
            r.0 = o as u64;
        }
        replace_log(&mut run, p, log);
        let results = run.check();
        prop_assert_eq!(results.valid, Valid::False);
        let lost: Vec<(u32, Vec<u64>, Vec<String>)> = of_kind(&results, AnomalyKind::Lost)
            .iter()
            .map(|a| (a.partition, a.offsets.clone(), a.values.clone()))
            .collect();
        prop_assert_eq!(lost, vec![(p, vec![offset], vec![value])]);
    }

    #[test]
    fn one_acknowledged_record_punched_out_of_every_log_is_exactly_one_loss(gen in gen_run(), pick in any::<prop::sample::Index>()) {
        // Offsets are kept, so every log goes on past the hole (the last record is excluded:
        // without it the logs only look short, and the run stays unknown).
        let logs = gen.logs();
        let inner: Vec<(u32, u64, String)> = gen
            .acked()
            .into_iter()
            .filter(|(p, o, _)| o + 1 < logs[*p as usize].len() as u64)
            .collect();
        prop_assume!(!inner.is_empty());
        let (p, offset, value) = inner[pick.index(inner.len())].clone();
        let mut run = gen.run();
        let mut log = logs[p as usize].clone();
        let hw = log.len() as u64;
        log.remove(offset as usize);
        replace_log(&mut run, p, log);
        run.final_part(p).hw = Some(hw);
        let results = run.check();
        prop_assert_eq!(results.valid, Valid::False);
        let lost = of_kind(&results, AnomalyKind::Lost);
        prop_assert_eq!(lost.len(), 1);
        prop_assert_eq!(
            (lost[0].partition, lost[0].offsets.clone(), lost[0].values.clone()),
            (p, vec![offset], vec![value])
        );
        prop_assert_eq!(lost[0].uncertain.clone(), None);
    }

    #[test]
    fn two_swapped_records_are_exactly_two_moved_offsets(gen in gen_run(), a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>()) {
        let acked = gen.acked();
        let p = acked.first().map_or(0, |r| r.0);
        let in_p: Vec<u64> = acked.iter().filter(|r| r.0 == p).map(|r| r.1).collect();
        prop_assume!(in_p.len() >= 2);
        let (i, j) = (a.index(in_p.len()), b.index(in_p.len()));
        prop_assume!(i != j);
        let (o1, o2) = (in_p[i].min(in_p[j]), in_p[i].max(in_p[j]));
        let mut run = gen.run();
        let mut log = gen.logs()[p as usize].clone();
        let (v1, v2) = (log[o1 as usize].1.clone(), log[o2 as usize].1.clone());
        log[o1 as usize].1 = v2;
        log[o2 as usize].1 = v1;
        replace_log(&mut run, p, log);
        let results = run.check();
        prop_assert_eq!(results.valid, Valid::False);
        let moved: BTreeSet<u64> = of_kind(&results, AnomalyKind::Moved).iter().map(|a| a.offsets[0]).collect();
        prop_assert_eq!(moved, BTreeSet::from([o1, o2]));
        prop_assert_eq!(results.anomaly_counts[&AnomalyKind::Lost], 0);
    }

    #[test]
    fn a_history_torn_inside_a_line_is_never_valid(gen in gen_run(), cut in any::<prop::sample::Index>()) {
        let run = gen.run();
        let dir = tempfile::tempdir().unwrap();
        run.write(dir.path());
        let text = run.history_lines().join("\n");
        let ends: Vec<usize> = text.match_indices('\n').map(|(i, _)| i).collect();
        let at = cut.index(text.len().max(1));
        prop_assume!(at > 0 && !ends.contains(&at) && !ends.contains(&(at - 1)));
        std::fs::write(dir.path().join("history.jsonl"), &text[..at]).unwrap();
        let results = check_run(dir.path()).unwrap();
        prop_assert_ne!(results.valid, Valid::True);
        prop_assert!(results.warnings.iter().any(|w| w.file == "history.jsonl"));
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn arbitrary_bytes_never_panic(
        test_json in prop::option::of(prop::collection::vec(any::<u8>(), 0..200)),
        files in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..400), 5),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let base = Run::happy(3);
        base.write(dir.path());
        if let Some(bytes) = test_json {
            std::fs::write(dir.path().join("test.json"), bytes).unwrap();
        }
        let paths = ["history.jsonl", "final.json", "nodes/1/dump.jsonl", "nodes/2/events.jsonl", "nodes/controller/events.jsonl"];
        for (path, bytes) in paths.iter().zip(&files) {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        if let Ok(results) = check_run(dir.path()) {
            prop_assert_ne!(results.valid, Valid::True);
            let _ = results.summary();
        }
    }

    #[test]
    fn mutated_json_lines_never_panic(gen in gen_run(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let run = gen.run();
        let dir = tempfile::tempdir().unwrap();
        run.write(dir.path());
        for file in ["history.jsonl", "final.json", "nodes/1/dump.jsonl"] {
            let path = dir.path().join(file);
            let mut bytes = std::fs::read(&path).unwrap();
            for (at, byte) in &flips {
                let i = at.index(bytes.len());
                bytes[i] = *byte;
            }
            std::fs::write(&path, bytes).unwrap();
        }
        let results = check_run(dir.path()).unwrap();
        let _ = results.summary();
    }
}

/// A client operation as the harness would write it, with arbitrary strings and numbers.
fn gen_client_op() -> impl Strategy<Value = Op> {
    let text = prop_oneof![
        "[a-z0-9]{0,6}",
        any::<String>(),
        Just("quote \" back \\ tab \t".to_string())
    ];
    let kind = prop_oneof![
        Just(OpType::Invoke),
        Just(OpType::Ok),
        Just(OpType::Fail),
        Just(OpType::Info)
    ];
    let send = (
        (text.clone(), any::<u32>(), text.clone()),
        any::<Option<u64>>(),
        any::<Option<u32>>(),
        any::<Option<u32>>(),
        prop::collection::vec(text.clone(), 0..2),
        any::<Option<(i64, i16, i32)>>(),
    )
        .prop_map(
            |((topic, partition, value), offset, node, attempts, retry_errors, producer)| {
                serde_json::to_value(SendValue {
                    offset,
                    node,
                    leader_epoch: node,
                    attempts,
                    retry_errors,
                    producer_id: producer.map(|p| p.0),
                    producer_epoch: producer.map(|p| p.1),
                    sequence: producer.map(|p| p.2),
                    ..SendValue::new(topic, partition, value, Some(Acks::One))
                })
                .unwrap()
            },
        );
    let poll = (
        text.clone(),
        any::<u64>(),
        prop::collection::vec((any::<u64>(), text.clone()), 0..4),
    )
        .prop_map(|(topic, offset, records)| {
            serde_json::to_value(PollValue {
                topic,
                partition: 1,
                offset,
                records: records
                    .into_iter()
                    .map(|(offset, value)| PolledRecord { offset, value })
                    .collect(),
                high_watermark: Some(offset),
            })
            .unwrap()
        });
    let value = prop_oneof![
        send.prop_map(|v| ("send", v)),
        poll.prop_map(|v| ("poll", v))
    ];
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        kind,
        value,
        proptest::option::of(text),
    )
        .prop_map(|(index, time_ns, process, kind, (f, value), error)| Op {
            index,
            time_ns,
            process: Process::Client(process),
            kind,
            f: f.to_string(),
            value,
            error,
        })
}

proptest! {
    #![proptest_config(config(512))]

    /// OpLine::parse takes a fast path for client lines; it must read exactly what serde reads.
    #[test]
    fn the_fast_history_reader_agrees_with_serde(op in gen_client_op()) {
        let line = serde_json::to_string(&op).unwrap();
        let fast = OpLine::parse(line.as_bytes()).map(|op| format!("{op:?}"));
        let slow: Result<OpLine, _> = serde_json::from_str(&line);
        prop_assert_eq!(fast, Ok(format!("{:?}", slow.unwrap())));
    }

    #[test]
    fn the_fast_dump_reader_agrees_with_serde(
        offset in any::<u64>(),
        epoch in any::<u32>(),
        value in any::<String>(),
        timestamp_ms in any::<Option<u64>>(),
    ) {
        let record = DumpRecord { topic: "t".to_string(), partition: 2, offset, leader_epoch: epoch, timestamp_ms, value };
        let line = serde_json::to_string(&record).unwrap();
        prop_assert_eq!(
            DumpLine::parse(line.as_bytes()),
            DumpLine::parse_with_serde(line.as_bytes())
        );
    }
}
