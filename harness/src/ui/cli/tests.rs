//! The command line's round trips: the arguments every job prints parse and validate back into
//! the options it ran, and test.json holds what the checker reads.

use std::path::Path;

use super::*;
use crate::jobs::entry::Entry;
use crate::jobs::{detection, scenarios, suite};
use faultline_checker::config::TestConfig;

/// The workspace's node binary, built beside this test's `deps/` directory.
fn node_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = dir.join("faultline-node");
    assert!(
        path.is_file(),
        "{} is missing: build it first (`make build`)",
        path.display()
    );
    path
}

/// Whether lazy mounts can be validated here; says so loudly when not.
fn lazyfs_usable(entry: &Entry) -> bool {
    if !entry.request.lazyfs || crate::cluster::lazy::probe().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("FAULTLINE_REQUIRE_FUSE").is_none(),
        "FAULTLINE_REQUIRE_FUSE is set but lazy mounts are not usable here"
    );
    eprintln!("SKIPPED: {}: no lazy mounts on this machine", entry.name);
    false
}

/// `validate(parse(to_args(o))) == o`: the arguments a job prints run exactly its test.
fn assert_round_trips(entries: &[Entry]) -> usize {
    let store = tempfile::tempdir().unwrap();
    let node_bin = node_bin();
    let mut checked = 0;
    for entry in entries.iter().filter(|e| lazyfs_usable(e)) {
        let options = entry.options(store.path(), Some(&node_bin)).unwrap();
        let args = options.to_args();
        let again = parse_test_args(&args)
            .and_then(TestRequest::validate)
            .unwrap_or_else(|e| panic!("{}: {args:?}: {e:#}", entry.name));
        assert_eq!(again, options, "{}: {args:?}", entry.name);
        checked += 1;
    }
    checked
}

#[test]
fn every_gate_entry_and_scenario_round_trips_through_its_arguments() {
    let entries = suite::ci_entries();
    let repro: Vec<Entry> = scenarios::SCENARIOS
        .iter()
        .flat_map(|s| s.entries("repro", 3, None))
        .map(|r| r.entry)
        .collect();
    // Every entry is checked but those on lazy mounts where there are none (said above).
    assert!(assert_round_trips(&entries) >= entries.iter().filter(|e| !e.request.lazyfs).count());
    assert!(assert_round_trips(&repro) >= repro.iter().filter(|e| !e.request.lazyfs).count());
}

#[test]
fn nightly_configurations_and_detection_runs_round_trip_through_their_arguments() {
    let night = suite::Nightly {
        duration: std::time::Duration::from_secs(3600),
        run_time: std::time::Duration::from_secs(60),
        seed: 0,
        shard: (0, 1),
        keep_passing: true,
        kafka_version: None,
        bias: false,
        lazyfs: false,
        shrink: None,
    };
    let entries: Vec<Entry> = (0..50).map(|i| suite::nightly_entry(&night, i)).collect();
    assert_eq!(assert_round_trips(&entries), 50);
    let detection: Vec<Entry> = detection::CONFIGS
        .iter()
        .map(|(label, settings, _)| Entry {
            name: format!("detection-{}", label.len()),
            request: TestRequest {
                nemesis: NemesisChoice::All,
                seed: Some(1),
                ..settings()
            },
            schedule: None,
            expect: scenarios::Expect::Guarantee,
            probes: &[],
        })
        .collect();
    assert_eq!(assert_round_trips(&detection), detection.len());
}

/// The checker reads `--lazyfs` and the brokers' flags from test.json (its guarantee excuses
/// power loss without fsync): the harness must write them there.
#[test]
fn test_json_holds_what_the_checker_reads_of_power_loss() {
    let request = parse_test_args([
        "test",
        "--node-bin",
        node_bin().to_str().unwrap(),
        "--node-arg=--fsync",
    ])
    .unwrap();
    let config = request.validate().unwrap().config;
    assert!(!config.harness.lazyfs);
    assert_eq!(config.harness.node_args, vec!["--fsync".to_string()]);
    assert!(config.harness.fsync(), "--fsync keeps every append");
    let written = serde_json::to_value(&config).unwrap();
    assert_eq!(written["extra"]["lazyfs"], serde_json::json!(false));
    assert_eq!(
        written["extra"]["node_args"],
        serde_json::json!(["--fsync"])
    );
    let read = TestConfig::parse(&serde_json::to_vec(&written).unwrap()).unwrap();
    assert_eq!(read, config);
}

/// The checker decides a duplicate by `idempotence` (and a send without a completion by
/// `retries`): test.json must hold both as the command line gave them, typed, and the printed
/// arguments must give them back.
#[test]
fn test_json_holds_the_producers_retries_and_idempotence() {
    let node = node_bin();
    let node = node.to_str().unwrap();
    let defaults = parse_test_args(["test", "--node-bin", node]).unwrap();
    let config = defaults.validate().unwrap().config;
    assert!(!config.idempotence);
    assert_eq!(config.retries, faultline_checker::config::DEFAULT_RETRIES);
    let request = parse_test_args([
        "test",
        "--node-bin",
        node,
        "--idempotence",
        "--retries",
        "5",
    ])
    .unwrap();
    let options = request.validate().unwrap();
    assert!(options.config.idempotence);
    assert_eq!(options.config.retries, 5);
    let producer = options.producer();
    assert!(producer.idempotence);
    assert_eq!(producer.retries, 5);
    let written = serde_json::to_value(&options.config).unwrap();
    assert_eq!(written["idempotence"], serde_json::json!(true));
    assert_eq!(written["retries"], serde_json::json!(5));
    let args = options.to_args();
    assert!(args.iter().any(|a| a == "--idempotence"), "{args:?}");
    let again = parse_test_args(&args).unwrap().validate().unwrap();
    assert_eq!(again, options);
}

/// Kafka's producer refuses enable.idempotence with acks other than all.
#[test]
fn idempotence_needs_acks_all() {
    let node = node_bin();
    for acks in ["0", "1"] {
        let request = parse_test_args([
            "test",
            "--node-bin",
            node.to_str().unwrap(),
            "--idempotence",
            "--acks",
            acks,
        ])
        .unwrap();
        let error = request.validate().unwrap_err().to_string();
        assert!(error.contains("--idempotence needs --acks all"), "{error}");
    }
}

/// KIP-98 came with Kafka 0.11.0: a 0.10.2 node gives no producer id, so an idempotent run
/// under it would send nothing.
#[test]
fn idempotence_needs_kafka_0_11() {
    let node = node_bin();
    let request = parse_test_args([
        "test",
        "--node-bin",
        node.to_str().unwrap(),
        "--idempotence",
        "--kafka-version",
        "0.10.2",
    ])
    .unwrap();
    let error = request.validate().unwrap_err().to_string();
    assert!(error.contains("needs Kafka 0.11 or later"), "{error}");
}
