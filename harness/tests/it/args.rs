//! Bad arguments: exit 254 and a message naming the problem, before any node starts.

use std::process::Command;

use crate::common::{faultline_bin, node_bin};

fn faultline(args: &[&str]) -> (i32, String) {
    let store = tempfile::tempdir().unwrap();
    let output = Command::new(faultline_bin())
        .args(args)
        .env("FAULTLINE_TEST_STORE", store.path())
        .current_dir(store.path())
        .output()
        .unwrap();
    // Bad arguments must never leave a run behind.
    assert!(
        !store.path().join("store").exists() || output.status.code() != Some(254),
        "a run directory was created for bad arguments"
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), stderr)
}

fn test_with(extra: &[&str]) -> (i32, String) {
    let node = node_bin();
    let mut args = vec!["test", "--node-bin", node.to_str().unwrap()];
    args.extend_from_slice(extra);
    faultline(&args)
}

#[test]
fn bad_arguments_exit_254_naming_the_problem() {
    let missing = "/nonexistent/schedule.txt";
    let cases: &[(&[&str], &str)] = &[
        (&["--nemesis", "kill,flood"], "unknown nemesis \"flood\""),
        (&["--acks", "2"], "acks must be 0, 1 or all"),
        (
            &["--min-insync-replicas", "4"],
            "--min-insync-replicas must be between 1",
        ),
        (&["--nodes", "0"], "--nodes must be at least 1"),
        (
            &["--replication-factor", "5"],
            "--replication-factor must be between 1",
        ),
        (&["--schedule", missing], "cannot read schedule"),
        (&["--time-limit", "soon"], "bad duration"),
        (&["--nemesis-interval=-1s"], "bad duration"),
        (&["--workload", "scan"], "unknown workload"),
        (
            &["--client", "grpc"],
            "for '--client <CLIENT>': unknown client \"grpc\"",
        ),
        (
            &["--replication-protocol", "old"],
            "[possible values: current, legacy-hw]",
        ),
        (
            &["--kafka-version", "2.8"],
            "unknown Kafka version \"2.8\" (known: 4.1, 3.7, 0.10.2)",
        ),
        (
            &["--kafka-version", "current"],
            "is a --replication-protocol value",
        ),
        (&["--no-such-flag"], "--no-such-flag"),
        (&["--rate", "0"], "--rate must be a positive number"),
        (
            &["--idempotence", "--acks", "1"],
            "--idempotence needs --acks all",
        ),
        (
            &["--retries", "many"],
            "invalid value 'many' for '--retries <RETRIES>'",
        ),
    ];
    for (args, needle) in cases {
        let (code, stderr) = test_with(args);
        assert_eq!(code, 254, "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected {needle:?} in {stderr}"
        );
    }
}

#[test]
fn a_bad_schedule_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.txt");
    std::fs::write(&path, "kill 1\nat 1s explode 2\n").unwrap();
    let (code, stderr) = test_with(&["--schedule", path.to_str().unwrap()]);
    assert_eq!(code, 254, "{stderr}");
    assert!(
        stderr.contains("line 2: unknown action \"explode\""),
        "{stderr}"
    );

    std::fs::write(&path, "kill 7\n").unwrap();
    let (code, stderr) = test_with(&["--schedule", path.to_str().unwrap()]);
    assert_eq!(code, 254, "{stderr}");
    assert!(stderr.contains("broker 7 does not exist"), "{stderr}");
}

#[test]
fn message_faults_without_kafka_links_are_bad_arguments() {
    let (code, stderr) = test_with(&["--nemesis", "kill,drop-response"]);
    assert_eq!(code, 254, "{stderr}");
    assert!(
        stderr
            .contains("--nemesis drop-response is a message fault, which needs Kafka-aware links"),
        "{stderr}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.txt");
    std::fs::write(&path, "kill 1\ndrop-response produce on leader count 1\n").unwrap();
    let (code, stderr) = test_with(&["--schedule", path.to_str().unwrap()]);
    assert_eq!(code, 254, "{stderr}");
    assert!(
        stderr.contains(
            "schedule line 2: `drop-response produce on leader count 1` is a message fault, \
             which needs Kafka-aware links: run with --client kafka"
        ),
        "{stderr}"
    );
    // A grammar error is one whatever the client.
    std::fs::write(
        &path,
        "error-response metadata NOT_LEADER_OR_FOLLOWER on all\n",
    )
    .unwrap();
    let schedule = path.to_str().unwrap();
    let (code, stderr) = test_with(&["--client", "kafka", "--schedule", schedule]);
    assert_eq!(code, 254, "{stderr}");
    assert!(
        stderr.contains("line 1: error-response cannot replace the error codes of metadata"),
        "{stderr}"
    );
}

#[test]
fn a_missing_node_binary_is_a_bad_argument() {
    let (code, stderr) = faultline(&["test", "--node-bin", "/nonexistent/faultline-node"]);
    assert_eq!(code, 254, "{stderr}");
    assert!(
        stderr.contains("node binary /nonexistent/faultline-node not found"),
        "{stderr}"
    );
}

#[test]
fn check_of_a_missing_run_is_a_bad_argument() {
    let (code, stderr) = faultline(&["check", "/nonexistent/run"]);
    assert_eq!(code, 254, "{stderr}");
    assert!(stderr.contains("/nonexistent/run"), "{stderr}");
}

#[test]
fn help_is_not_an_error() {
    let (code, _) = faultline(&["test", "--help"]);
    assert_eq!(code, 0);
    let (code, stderr) = faultline(&[]);
    assert_eq!(code, 254, "{stderr}");
}

#[test]
fn every_bad_argument_speaks_in_one_voice() {
    let cases: &[(&[&str], &str)] = &[
        (&["--time-limit", "10x"], "bad duration \"10x\""),
        (&["--time-limit", "-1s"], "cannot be negative"),
        (&["--no-such-flag"], "--no-such-flag"),
        (&["--nodes", "many"], "invalid value 'many'"),
    ];
    for (args, needle) in cases {
        let (code, stderr) = test_with(args);
        assert_eq!(code, 254, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("faultline: bad arguments: "),
            "{args:?}: not in the harness's voice: {stderr}"
        );
        assert!(
            !stderr.contains("error: "),
            "{args:?}: clap's own voice: {stderr}"
        );
        assert!(
            stderr.contains(needle),
            "{args:?}: expected {needle:?} in {stderr}"
        );
    }
    let (code, stderr) = faultline(&["frobnicate"]);
    assert_eq!(code, 254, "{stderr}");
    assert!(stderr.starts_with("faultline: bad arguments: "), "{stderr}");
}

#[test]
fn every_option_has_help_with_its_default() {
    let output = Command::new(faultline_bin())
        .args(["test", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    // Every option line is followed by text, not by the next option.
    let lines: Vec<&str> = help.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let option = line.trim_start();
        if !option.starts_with("--")
            || option.starts_with("--help")
            || option.starts_with("--version")
        {
            continue;
        }
        let described = option
            .split_once("  ")
            .is_some_and(|(_, text)| !text.trim().is_empty())
            || lines.get(i + 1).is_some_and(|next| {
                let next = next.trim_start();
                !next.is_empty() && !next.starts_with("--") && !next.starts_with("-h")
            });
        assert!(described, "{option} has no help text:\n{help}");
    }
    for needle in [
        "unclean.leader.election.enable",
        "Where runs are kept",
        "[default: store]",
        "[default: 2s]",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
}

#[test]
fn check_of_a_store_without_runs_points_at_latest() {
    let store = tempfile::tempdir().unwrap();
    for command in ["check", "report"] {
        let (code, stderr) = faultline(&[command, store.path().to_str().unwrap()]);
        assert_eq!(code, 254, "{stderr}");
        assert!(stderr.contains("store/latest"), "{command}: {stderr}");
    }
}
