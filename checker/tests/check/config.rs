//! test.json as the harness writes it: it reads into the typed [`TestConfig`] and writes back
//! byte for byte; a misspelt value is refused with an error naming the field, never read as a
//! weaker setting.

use faultline_checker::config::{
    Client, FaultKind, KafkaVersion, KillSignal, NemesisKind, TestConfig, Workload,
};
use faultline_checker::{check_run, CheckError};

/// A test.json as `faultline test` writes it (`serde_json::to_vec_pretty` of its `TestConfig`,
/// `extra` with its keys sorted as the untyped map wrote them), for a random-nemesis run.
const RANDOM_NEMESIS_RUN: &str = r#"{
  "name": "produce-all",
  "seed": 7,
  "start_unix_ms": 1763700000000,
  "nodes": 3,
  "topics": [
    "t"
  ],
  "partitions": 3,
  "replication_factor": 3,
  "acks": "all",
  "idempotence": true,
  "retries": 3,
  "min_insync_replicas": 2,
  "unclean_leader_election": false,
  "replica_lag_time_max_ms": 1000,
  "kafka_version": "4.1",
  "workload": "produce",
  "nemesis": [
    "kill",
    "pause",
    "delay",
    "partition",
    "isr-pressure",
    "leader-loss",
    "rolling-restart"
  ],
  "nemesis_interval_ms": 2000,
  "max_faulty": 2,
  "time_limit_ms": 30000,
  "rate": 500.0,
  "concurrency": 8,
  "extra": {
    "client": "http",
    "cluster_id": "faultline-1763700000000",
    "harness_version": "0.1.0",
    "kill_signal": "kill",
    "lazyfs": false,
    "nemesis_targets": [
      "random",
      "leader",
      "follower",
      "controller"
    ],
    "node_args": [],
    "node_bin": "/work/main/target/debug/faultline-node",
    "recovery_timeout_ms": 30000,
    "request_timeout_ms": 2000
  }
}"#;

/// The same for a replayed schedule on lazy mounts, with every other named value changed.
const SCHEDULED_RUN: &str = r#"{
  "name": "legacy-hw-truncation",
  "seed": 1,
  "start_unix_ms": 1763700000000,
  "nodes": 3,
  "topics": [
    "t"
  ],
  "partitions": 1,
  "replication_factor": 3,
  "acks": "1",
  "idempotence": false,
  "retries": 0,
  "min_insync_replicas": 1,
  "unclean_leader_election": true,
  "replica_lag_time_max_ms": 500,
  "kafka_version": "0.10.2",
  "workload": "produce-consume",
  "nemesis": [
    "schedule"
  ],
  "nemesis_interval_ms": 2000,
  "max_faulty": 3,
  "time_limit_ms": 0,
  "rate": 250.5,
  "concurrency": 0,
  "schedule": "store/legacy/schedule.txt",
  "extra": {
    "client": "kafka",
    "cluster_id": "",
    "harness_version": "0.1.0",
    "kill_signal": "term",
    "lazyfs": true,
    "nemesis_targets": [
      "leader"
    ],
    "node_args": [
      "--fsync"
    ],
    "node_bin": "faultline-node",
    "recovery_timeout_ms": 10000,
    "request_timeout_ms": 500
  }
}"#;

fn parse(text: &str) -> TestConfig {
    TestConfig::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

/// The message `check_run` fails with for a run whose test.json is `text`.
fn refusal(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("test.json"), text).unwrap();
    match check_run(dir.path()) {
        Err(e @ CheckError::TestConfigInvalid { .. }) => e.to_string(),
        other => panic!("expected an invalid test.json, got {other:?}"),
    }
}

#[test]
fn a_test_json_as_written_today_round_trips_byte_for_byte() {
    for text in [RANDOM_NEMESIS_RUN, SCHEDULED_RUN] {
        let config = parse(text);
        let written = serde_json::to_string_pretty(&config).unwrap();
        let value = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        assert_eq!(value(&written), value(text));
        assert_eq!(written, text);
    }
}

#[test]
fn a_test_json_reads_into_typed_values() {
    let config = parse(SCHEDULED_RUN);
    assert_eq!(config.kafka_version, KafkaVersion::V0_10_2);
    assert_eq!(config.workload, Workload::ProduceConsume);
    assert_eq!(config.nemesis, vec![NemesisKind::Schedule]);
    assert_eq!(config.harness.client, Client::Kafka);
    assert_eq!(config.harness.kill_signal, KillSignal::Term);
    assert!(config.harness.lazyfs && config.harness.fsync());
    let config = parse(RANDOM_NEMESIS_RUN);
    let faults = FaultKind::ALL[..7].iter().map(|&k| NemesisKind::Fault(k));
    assert_eq!(config.nemesis, faults.collect::<Vec<_>>());
}

/// Runs stored before the Kafka version was a setting say `replication_protocol`: `current`
/// was the 3.7 rules the node followed then, `legacy-hw` 0.10.2.
#[test]
fn a_test_json_from_before_the_kafka_version_reads_as_the_version_it_ran() {
    for (old, version) in [
        ("current", KafkaVersion::V3_7),
        ("legacy-hw", KafkaVersion::V0_10_2),
    ] {
        let text = RANDOM_NEMESIS_RUN.replace(
            "\"kafka_version\": \"4.1\"",
            &format!("\"replication_protocol\": \"{old}\""),
        );
        assert_eq!(parse(&text).kafka_version, version, "{old}");
    }
}

/// Runs stored before producers retried have neither `idempotence` nor `retries`: they sent
/// every value once, without a producer id.
#[test]
fn a_test_json_from_before_producer_retries_reads_as_no_retries_and_no_idempotence() {
    let text = RANDOM_NEMESIS_RUN.replace("  \"idempotence\": true,\n  \"retries\": 3,\n", "");
    assert!(!text.contains("retries"));
    let config = parse(&text);
    assert!(!config.idempotence);
    assert_eq!(config.retries, 0);
    let config = parse(RANDOM_NEMESIS_RUN);
    assert!(config.idempotence);
    assert_eq!(config.retries, 3);
}

#[test]
fn an_empty_or_missing_extra_reads_with_the_defaults() {
    let bare = RANDOM_NEMESIS_RUN
        .split(",\n  \"extra\"")
        .next()
        .unwrap()
        .to_string()
        + "\n}";
    let empty = bare.trim_end_matches("\n}").to_string() + ",\n  \"extra\": {}\n}";
    for text in [bare, empty] {
        let harness = parse(&text).harness;
        assert_eq!(harness.client, Client::Http);
        assert_eq!(harness.kill_signal, KillSignal::Kill);
        assert!(!harness.lazyfs && harness.node_args.is_empty());
        assert_eq!(harness.request_timeout_ms, 2000);
    }
}

#[test]
fn unknown_keys_of_extra_and_old_spellings_are_kept_or_read() {
    let text = RANDOM_NEMESIS_RUN
        .replace("\"kill_signal\": \"kill\"", "\"kill_signal\": \"SIGTERM\"")
        .replace("\"delay\",", "\"latency\",")
        .replace(
            "\"client\": \"http\",",
            "\"client\": \"http\",\n    \"ports\": [9092],",
        );
    let config = parse(&text);
    assert_eq!(config.harness.kill_signal, KillSignal::Term);
    assert!(config
        .nemesis
        .contains(&NemesisKind::Fault(FaultKind::Delay)));
    let written = serde_json::to_value(&config).unwrap();
    assert_eq!(written["extra"]["ports"], serde_json::json!([9092]));
    assert_eq!(written["extra"]["kill_signal"], "term");
}

#[test]
fn a_misspelt_value_is_refused_naming_its_field() {
    // (as written today, misspelt, what the refusal says after the file's path)
    let cases = [
        (
            r#""4.1""#,
            r#""4.11""#,
            r#"kafka_version: unknown variant "4.11", expected one of "4.1", "3.7", "0.10.2""#,
        ),
        (
            r#""produce""#,
            r#""produce_consume""#,
            r#"workload: unknown variant "produce_consume", expected one of "produce", "#,
        ),
        (
            r#""pause""#,
            r#""paus""#,
            r#"nemesis[1]: unknown variant "paus", expected one of "schedule", "kill", "#,
        ),
        (
            r#""kill_signal": "kill""#,
            r#""kill_signal": "sigint""#,
            r#"extra.kill_signal: unknown variant "sigint", expected one of "kill", "term""#,
        ),
        (
            r#""idempotence": true"#,
            r#""idempotence": "true""#,
            r#"idempotence: invalid type: string "true", expected a boolean"#,
        ),
        (
            r#""client": "http""#,
            r#""client": "grpc""#,
            r#"extra.client: unknown variant "grpc", expected one of "http", "kafka""#,
        ),
    ];
    for (right, wrong, expected) in cases {
        assert!(RANDOM_NEMESIS_RUN.contains(right), "{right}");
        let message = refusal(&RANDOM_NEMESIS_RUN.replacen(right, wrong, 1));
        assert!(
            message.contains(&format!("test.json: {expected}")),
            "{message}"
        );
    }
}

#[test]
fn a_test_json_that_is_not_one_json_object_is_refused_without_a_field() {
    let message = refusal("true");
    assert!(
        message.contains("test.json: invalid type: boolean"),
        "{message}"
    );
    let message = refusal(&format!("{RANDOM_NEMESIS_RUN}\n{{}}"));
    assert!(
        message.contains("test.json: trailing characters"),
        "{message}"
    );
}
