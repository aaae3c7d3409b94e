//! Damaged, truncated and missing input: named by file and line, the readable part analysed,
//! the verdict at best unknown, and never a panic.

use crate::support::*;
use faultline_checker::history::{OpType, Process};
use faultline_checker::{check_run, write_results, AnomalyKind, CheckError, Valid};
use std::io::Write;

#[test]
fn a_damaged_history_line_is_named_and_makes_the_run_unknown() {
    let run = Run::happy(5);
    let dir = tempfile::tempdir().unwrap();
    run.write(dir.path());
    let mut lines = run.history_lines();
    lines[2] = "{\"index\":2,\"time_ns\":12,\"proc".to_string();
    std::fs::write(dir.path().join("history.jsonl"), lines.join("\n") + "\n").unwrap();
    let results = check_run(dir.path()).unwrap();
    assert_eq!(results.valid, Valid::Unknown);
    assert_eq!(results.warnings.len(), 1);
    assert_eq!(
        (results.warnings[0].file.as_str(), results.warnings[0].line),
        ("history.jsonl", Some(3))
    );
    assert!(
        results.summary().contains("history.jsonl:3:"),
        "{}",
        results.summary()
    );
    // v1's invoke was line 3: the rest of the history was still analysed.
    assert_eq!(results.counts.send.ok, 5);
    assert_eq!(results.counts.history_lines, 9);
    // The value whose invoke is damaged still has its ok: no phantom, nothing breaks.
    assert_eq!(kinds(&results), vec![]);
}

#[test]
fn a_torn_last_line_is_named_and_anomalies_in_the_rest_still_count() {
    let mut run = Run::happy(5);
    run.set_final(0, records(&["v0", "v1", "v2", "v3"]));
    for broker in 1..=3 {
        run.set_dump(broker, 0, &records(&["v0", "v1", "v2", "v3"]), Some(4));
    }
    let dir = tempfile::tempdir().unwrap();
    run.write(dir.path());
    let path = dir.path().join("history.jsonl");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(b"{\"index\":10,\"time_ns\":3").unwrap();
    let results = check_run(dir.path()).unwrap();
    assert_eq!(results.warnings[0].line, Some(11));
    assert!(
        results.warnings[0].problem.contains("no newline"),
        "{}",
        results.warnings[0].problem
    );
    // The loss of v4 is proven by the readable part: damage elsewhere cannot excuse it.
    assert_eq!(
        of_kind(&results, AnomalyKind::Lost)[0].values,
        vec!["v4".to_string()]
    );
    assert_eq!(results.valid, Valid::False);
}

#[test]
fn phantoms_are_uncertain_when_history_lines_are_damaged() {
    let mut run = Run::happy(3);
    run.send(1, "late", "ok", Some(3));
    let log = records(&["v0", "v1", "v2", "late"]);
    run.set_final(0, log.clone());
    for broker in 1..=3 {
        run.set_dump(broker, 0, &log, Some(4));
    }
    let dir = tempfile::tempdir().unwrap();
    run.write(dir.path());
    let mut lines = run.history_lines();
    lines[6] = "garbage".into();
    lines[7] = "garbage".into();
    std::fs::write(dir.path().join("history.jsonl"), lines.join("\n") + "\n").unwrap();
    let results = check_run(dir.path()).unwrap();
    let p = of_kind(&results, AnomalyKind::Phantom);
    assert_eq!(p.len(), 1);
    assert!(p[0].uncertain.is_some());
    assert_eq!(results.valid, Valid::Unknown);
    assert_eq!(
        results.warnings.iter().map(|w| w.line).collect::<Vec<_>>(),
        vec![Some(7), Some(8)]
    );
}

#[test]
fn damaged_dump_events_and_final_lines_are_named() {
    let run = Run::happy(3);
    let dir = tempfile::tempdir().unwrap();
    run.write(dir.path());
    let dump = dir.path().join("nodes/2/dump.jsonl");
    let mut text = std::fs::read_to_string(&dump).unwrap();
    text.insert_str(
        0,
        "{\"topic\":\"t\",\"partition\":0,\"offset\":\"x\",\"value\":1}\n",
    );
    std::fs::write(&dump, text).unwrap();
    write_lines(&dir.path().join("nodes/controller/events.jsonl"), &[]);
    std::fs::write(
        dir.path().join("nodes/controller/events.jsonl"),
        "{\"time_ms\":1,\"type\":\"x\"}\nnot json\n",
    )
    .unwrap();
    let results = check_run(dir.path()).unwrap();
    let named: Vec<(String, Option<u64>)> = results
        .warnings
        .iter()
        .map(|w| (w.file.clone(), w.line))
        .collect();
    assert_eq!(
        named,
        vec![
            ("nodes/2/dump.jsonl".to_string(), Some(1)),
            ("nodes/controller/events.jsonl".to_string(), Some(2))
        ]
    );
    assert_eq!(results.valid, Valid::Unknown);

    std::fs::write(
        dir.path().join("final.json"),
        "{\"complete\":true,\n\"partitions\":[{\"topic\":",
    )
    .unwrap();
    let results = check_run(dir.path()).unwrap();
    let w = results
        .warnings
        .iter()
        .find(|w| w.file == "final.json")
        .expect("final.json named");
    assert_eq!(w.line, Some(2));
    assert_eq!(results.valid, Valid::Unknown);
}

#[test]
fn a_dump_summary_of_another_shape_is_not_damage() {
    let mut run = Run::happy(3);
    run.dumps.get_mut(&1).unwrap().push(DumpLine::Raw(
        r#"{"summary":true,"segments":3,"broker":1}"#.into(),
    ));
    let results = run.check();
    assert_eq!(results.warnings, vec![]);
    assert_eq!(results.valid, Valid::True);
}

#[test]
fn incomplete_final_reads_make_the_run_unknown() {
    let mut run = Run::happy(3);
    run.final_complete = Some(false);
    assert_eq!(run.check().valid, Valid::Unknown);
    run.final_complete = None;
    let results = run.check();
    assert_eq!(results.valid, Valid::Unknown);
    assert!(
        results
            .unknown_reasons
            .iter()
            .any(|r| r.contains("final.json")),
        "{:?}",
        results.unknown_reasons
    );
    let mut gappy = Run::happy(3);
    gappy.final_part(0).records.remove(1);
    gappy.final_part(0).hw = Some(3);
    let results = gappy.check();
    assert_eq!(results.valid, Valid::Unknown);
    assert!(
        results.unknown_reasons.iter().any(|r| r.contains("gaps")),
        "{:?}",
        results.unknown_reasons
    );
}

#[test]
fn a_run_that_ended_early_is_unknown() {
    let mut run = Run::happy(3);
    run.config.time_limit_ms = 60_000;
    run.end_fraction = 0.5;
    let results = run.check();
    assert_eq!(results.valid, Valid::Unknown);
    assert!(
        results.unknown_reasons[0].contains("ended early"),
        "{:?}",
        results.unknown_reasons
    );
    run.end_fraction = 0.95;
    assert_eq!(run.check().valid, Valid::True);
}

#[test]
fn a_scheduled_run_without_workload_clients_may_end_its_sends_early() {
    // `--schedule ... --concurrency 0`: the schedule's own sends end when its steps do.
    let mut run = Run::happy(3);
    run.config.time_limit_ms = 60_000;
    run.config.concurrency = 0;
    run.config.schedule = Some("scenario.txt".into());
    run.end_fraction = 0.1;
    let results = run.check();
    assert_eq!(results.valid, Valid::True, "{:?}", results.unknown_reasons);
}

#[test]
fn an_abort_marker_makes_the_run_unknown() {
    let mut run = Run::happy(3);
    let harness = Process::Named("harness".into());
    let abort = op(
        harness,
        OpType::Info,
        "abort",
        serde_json::Map::new(),
        Some("node 2 never started"),
    );
    run.ops.push(abort);
    let results = run.check();
    assert_eq!(results.valid, Valid::Unknown);
    assert_eq!(
        results.unknown_reasons,
        vec!["the run was aborted: node 2 never started".to_string()]
    );
}

#[test]
fn missing_dumps_make_the_run_unknown() {
    let mut run = Run::happy(3);
    run.dumps.remove(&3);
    let results = run.check();
    assert_eq!(results.valid, Valid::Unknown);
    assert_eq!(
        results.unknown_reasons,
        vec!["dumps of 2 brokers found, but the run had 3".to_string()]
    );
}

#[test]
fn an_unreadable_run_dir_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        check_run(&dir.path().join("nope")),
        Err(CheckError::NoRunDir(_))
    ));
    assert!(matches!(
        check_run(dir.path()),
        Err(CheckError::TestConfigUnreadable { .. })
    ));
    std::fs::write(dir.path().join("test.json"), "{}").unwrap();
    assert!(matches!(
        check_run(dir.path()),
        Err(CheckError::TestConfigInvalid { .. })
    ));
}

#[test]
fn results_json_says_true_false_or_unknown() {
    let dir = tempfile::tempdir().unwrap();
    for (run, expected) in [(Run::happy(2), "true"), (unknown_run(), "\"unknown\"")] {
        run.write(dir.path());
        let results = check_run(dir.path()).unwrap();
        write_results(dir.path(), &results).unwrap();
        let text = std::fs::read_to_string(dir.path().join("results.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["valid"].to_string(), expected);
        let back: faultline_checker::Results = serde_json::from_str(&text).unwrap();
        assert_eq!(back, results);
    }
}

fn unknown_run() -> Run {
    let mut run = Run::happy(2);
    run.final_complete = Some(false);
    run
}
