//! Whole runs against the real node, one per nemesis alone and one combined: the store holds a
//! history with operations and faults of each kind, a dump for every broker, and final reads.

use faultline_checker::config::{Client, TestConfig};
use faultline_checker::final_reads::FinalReads;
use faultline_checker::history::OpType;
use std::collections::BTreeSet;

use crate::common::{count, nemesis_ops, Finished, TestRun};

fn short_run(nemesis: &str, extra: &[&str]) -> Finished {
    let mut args = vec![
        "--time-limit",
        "3s",
        "--nemesis",
        nemesis,
        "--nemesis-interval",
        "400ms",
        "--rate",
        "200",
        "--concurrency",
        "4",
        "--seed",
        "42",
        "--request-timeout",
        "1s",
    ];
    args.extend_from_slice(extra);
    let run = TestRun::new(&args);
    let finished = run.run();
    finished.expect_valid();
    check_store(&finished);
    finished
}

/// What every run must leave behind.
fn check_store(finished: &Finished) {
    let dir = &finished.run_dir;
    let config: TestConfig =
        serde_json::from_slice(&std::fs::read(dir.join("test.json")).unwrap()).unwrap();
    assert_eq!(config.seed, 42);
    let history = finished.history();
    assert!(
        count(&history, "send", OpType::Ok) > 0,
        "no acknowledged send"
    );
    for (i, op) in history.iter().enumerate() {
        assert_eq!(op.index, i as u64, "indices in order");
    }
    for id in 1..=config.nodes {
        let node = dir.join("nodes").join(id.to_string());
        for file in ["dump.jsonl", "node.log", "events.jsonl"] {
            assert!(node.join(file).is_file(), "missing nodes/{id}/{file}");
        }
        let dump = std::fs::read_to_string(node.join("dump.jsonl")).unwrap();
        assert!(dump.lines().count() > 0, "empty dump for broker {id}");
    }
    assert!(dir.join("nodes/controller/node.log").is_file());
    let reads: FinalReads =
        serde_json::from_slice(&std::fs::read(dir.join("final.json")).unwrap()).unwrap();
    assert!(reads.complete, "final read incomplete: {reads:?}");
    let read: usize = reads.partitions.iter().map(|p| p.records.len()).sum();
    assert!(read > 0, "the final read found no records");
    assert!(dir.join("results.json").is_file());
    assert!(dir.join("schedule.txt").is_file());
}

fn fault_fs(finished: &Finished) -> BTreeSet<String> {
    let history = finished.history();
    nemesis_ops(&history)
        .iter()
        .filter(|op| op.error.is_none())
        .map(|op| op.f.clone())
        .collect()
}

#[test]
fn kill_alone() {
    let finished = short_run("kill", &[]);
    let fs = fault_fs(&finished);
    assert!(fs.contains("kill") && fs.contains("start"), "{fs:?}");
}

#[test]
fn pause_alone() {
    let finished = short_run("pause", &[]);
    let fs = fault_fs(&finished);
    assert!(fs.contains("pause") && fs.contains("resume"), "{fs:?}");
}

#[test]
fn delay_alone() {
    let finished = short_run("delay", &[]);
    let history = finished.history();
    let delays: Vec<_> = nemesis_ops(&history)
        .into_iter()
        .filter(|op| op.f == "delay")
        .collect();
    assert!(delays
        .iter()
        .any(|op| op.value["delay_ms"].as_u64() > Some(0)));
    // Latency is removed by the end.
    assert_eq!(delays.last().unwrap().value["delay_ms"], 0);
}

#[test]
fn partition_alone_with_consumers() {
    let finished = short_run(
        "partition",
        &["--workload", "produce-consume", "--partitions", "2"],
    );
    let fs = fault_fs(&finished);
    assert!(fs.contains("partition") && fs.contains("heal"), "{fs:?}");
    let history = finished.history();
    assert!(count(&history, "poll", OpType::Ok) > 0, "no poll completed");
}

#[test]
fn all_faults_combined() {
    let finished = short_run(
        "all",
        &[
            "--workload",
            "produce-consume",
            "--time-limit",
            "5s",
            "--acks",
            "1",
        ],
    );
    let fs = fault_fs(&finished);
    let faults: BTreeSet<&str> = ["kill", "pause", "delay", "partition"]
        .into_iter()
        .filter(|f| fs.contains(*f))
        .collect();
    assert!(
        faults.len() >= 2,
        "few kinds of fault in a combined run: {fs:?}"
    );
    // The verdict can be re-derived from the store alone.
    let output = std::process::Command::new(crate::common::faultline_bin())
        .arg("check")
        .arg(&finished.run_dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(finished.code()));
}

#[test]
fn kafka_client_under_kill_and_partition() {
    let finished = short_run(
        "kill,partition",
        &[
            "--client",
            "kafka",
            "--workload",
            "produce-consume",
            "--partitions",
            "2",
        ],
    );
    let config: TestConfig =
        serde_json::from_slice(&std::fs::read(finished.run_dir.join("test.json")).unwrap())
            .unwrap();
    assert_eq!(
        config.harness.client,
        Client::Kafka,
        "test.json records the client"
    );
    for id in 1..=config.nodes {
        let log =
            std::fs::read_to_string(finished.run_dir.join(format!("nodes/{id}/node.log"))).unwrap();
        assert!(
            log.contains("Kafka listener on"),
            "broker {id} served no Kafka listener"
        );
    }
    let history = finished.history();
    assert!(
        count(&history, "poll", OpType::Ok) > 0,
        "no Kafka poll completed"
    );
    let fs = fault_fs(&finished);
    assert!(fs.contains("kill") || fs.contains("partition"), "{fs:?}");
}
