//! The three jobs end to end, against the real binaries: `repro` reproduces a scenario and says
//! so, `list` names what exists, a short nightly run stores its runs and index, and `suite
//! merge` joins shards. (`suite ci` is the gate `.ci/run` runs after the tests.)

use std::process::Command;

use crate::common::{faultline_bin, node_bin};

fn faultline(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(faultline_bin()).args(args).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn repro_reproduces_an_acks1_loss_and_names_the_election() {
    let store = tempfile::tempdir().unwrap();
    let node = node_bin();
    let (code, stdout, stderr) = faultline(&[
        "repro",
        "acks1-leader-failover",
        "--store",
        store.path().to_str().unwrap(),
        "--node-bin",
        node.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("REPRODUCED"), "{stdout}");
    assert!(stdout.contains("was elected") || stdout.contains("were lost"), "{stdout}");
}

#[test]
fn an_unknown_scenario_is_a_bad_argument_naming_the_known_ones() {
    let (code, _, stderr) = faultline(&["repro", "meteor-strike"]);
    assert_eq!(code, 254, "{stderr}");
    assert!(stderr.contains("unclean-election"), "{stderr}");
}

#[test]
fn list_names_workloads_packages_and_scenarios() {
    let (code, stdout, _) = faultline(&["list"]);
    assert_eq!(code, 0);
    for name in [
        "produce-consume",
        "isr-pressure",
        "leader-loss",
        "rolling-restart",
        "unclean-election",
        "epoch-divergence",
    ] {
        assert!(stdout.contains(name), "{name} missing from:\n{stdout}");
    }
}

#[test]
fn a_short_night_stores_its_run_and_shards_merge_into_one_index() {
    let night = tempfile::tempdir().unwrap();
    let node = node_bin();
    let mut shards = Vec::new();
    for shard in ["0/2", "1/2"] {
        let store = night.path().join(shard.replace('/', "-of-"));
        let (code, stdout, stderr) = faultline(&[
            "suite",
            "nightly",
            "--duration",
            "4s",
            "--run-time",
            "3s",
            "--seed",
            "5",
            "--shard",
            shard,
            "--keep-passing",
            "false",
            "--store",
            store.to_str().unwrap(),
            "--node-bin",
            node.to_str().unwrap(),
        ]);
        assert!(matches!(code, 0 | 1), "stdout:\n{stdout}\nstderr:\n{stderr}");
        let suite: serde_json::Value =
            serde_json::from_slice(&std::fs::read(store.join("suite.json")).unwrap()).unwrap();
        let entries = suite["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "one run fits in the night: {suite}");
        let entry = &entries[0];
        assert!(entry["command"].as_str().unwrap().contains("--seed"));
        let run_dir = std::path::PathBuf::from(entry["run_dir"].as_str().unwrap());
        assert!(run_dir.join("results.json").is_file());
        if entry["passed"] == true {
            // Pruned: the results stay, the bulk goes.
            assert!(!run_dir.join("history.jsonl").exists());
        }
        assert!(store.join("index.html").is_file() && store.join("junit.xml").is_file());
        shards.push(store);
    }
    let out = night.path().join("merged");
    let mut args = vec!["suite", "merge"];
    args.extend(shards.iter().map(|s| s.to_str().unwrap()));
    args.extend(["--out", out.to_str().unwrap()]);
    let (code, stdout, stderr) = faultline(&args);
    assert!(matches!(code, 0 | 1), "{stdout}{stderr}");
    let merged: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("suite.json")).unwrap()).unwrap();
    assert_eq!(merged["entries"].as_array().unwrap().len(), 2);
    let index = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert_eq!(index.matches("<tr class=").count(), 2, "{index}");
}
