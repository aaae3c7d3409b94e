//! Reliability of the harness itself: a harness SIGKILLed at seeded random moments of a run
//! leaves no node process behind, and `faultline check` on what it left says `unknown` (or
//! `invalid`), never `valid` and never an error; and two runs at once in one store do not
//! interfere (their own run dirs, ports, data dirs and cluster ids; both valid).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::common::{faultline_bin, poll, processes_mentioning, TestRun};

const KILL_SEED: u64 = 20;
const KILLS: usize = 10;
/// Runs killed at once: two keep the test well under a minute on two cores.
const AT_ONCE: usize = 2;

fn chaos_run(seed: u64, time_limit: &str, nemesis: &str) -> TestRun {
    TestRun::new(&[
        "--time-limit",
        time_limit,
        "--nemesis",
        nemesis,
        "--nemesis-interval",
        "400ms",
        "--rate",
        "100",
        "--concurrency",
        "4",
        "--seed",
        &seed.to_string(),
    ])
}

fn spawn(run: &TestRun) -> Child {
    let log = std::fs::File::create(run.store.path().join("harness.log")).unwrap();
    run.command()
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// `faultline check RUN_DIR`'s exit code.
fn check(run_dir: &Path) -> (i32, String) {
    let out = Command::new(faultline_bin())
        .arg("check")
        .arg(run_dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// What one killed run left: whether it had a run dir yet, and the check's exit code.
struct Killed {
    at_ms: u64,
    run_dir: Option<PathBuf>,
    /// The check's exit code and whether the run's data was complete when it was killed.
    check_code: Option<(i32, bool)>,
}

/// The final read and every broker's dump are on disk: nothing the check reads is missing.
fn data_complete(run_dir: &Path) -> bool {
    let Ok(nodes) = std::fs::read_dir(run_dir.join("nodes")) else {
        return false;
    };
    let brokers: Vec<PathBuf> = nodes
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n != "controller"))
        .collect();
    run_dir.join("final.json").is_file()
        && !brokers.is_empty()
        && brokers.iter().all(|b| b.join("dump.jsonl").is_file())
}

fn kill_at(run: &TestRun, mut child: Child, at: Duration, started: Instant) -> Killed {
    while started.elapsed() < at {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let run_dir = run.run_dir_as_named();
    let needle = run.store.path().display().to_string();
    poll(
        "every node of the killed run to die",
        Duration::from_secs(10),
        || processes_mentioning(&needle).is_empty().then_some(()),
    );
    // A run dir exists from the moment test.json is written; before that there is no run.
    let run_dir = run_dir.filter(|d| d.join("test.json").is_file());
    let check_code = run_dir.as_ref().map(|dir| {
        let (code, text) = check(dir);
        let whole = data_complete(dir);
        // Killed after the final read and every dump were on disk, the run's data is whole
        // and the check may rightly say valid; before that it must not.
        let allowed: &[i32] = if whole { &[0, 1, 2] } else { &[1, 2] };
        assert!(
            allowed.contains(&code),
            "check of a run killed at {at:?} (data complete: {whole}) exited {code}, allowed {allowed:?}:\n{text}"
        );
        (code, whole)
    });
    Killed {
        at_ms: at.as_millis() as u64,
        run_dir,
        check_code,
    }
}

#[test]
fn a_harness_killed_at_random_moments_leaves_no_node_and_no_valid_verdict() {
    let mut rng = StdRng::seed_from_u64(KILL_SEED);
    // Moments from just after start to the end of the 4 s chaos phase (setup takes part of
    // it, so late moments land in healing or the final read).
    let moments: Vec<Duration> = (0..KILLS)
        .map(|_| Duration::from_millis(rng.gen_range(50..4_200)))
        .collect();
    let mut results = Vec::new();
    for (round, pair) in moments.chunks(AT_ONCE).enumerate() {
        let handles: Vec<_> = pair
            .iter()
            .enumerate()
            .map(|(i, &at)| {
                std::thread::spawn(move || {
                    let run = chaos_run(100 + (round * AT_ONCE + i) as u64, "4s", "all");
                    let started = Instant::now();
                    let child = spawn(&run);
                    kill_at(&run, child, at, started)
                })
            })
            .collect();
        for h in handles {
            results.push(h.join().expect("a killed run failed its checks"));
        }
    }
    let partial = results
        .iter()
        .filter(|k| matches!(k.check_code, Some((_, false))))
        .count();
    for k in &results {
        eprintln!(
            "killed at {} ms: {}",
            k.at_ms,
            match (&k.run_dir, k.check_code) {
                (Some(_), Some((code, whole))) =>
                    format!("check exit {code} (data complete: {whole})"),
                _ => "before the run dir existed".into(),
            }
        );
    }
    assert!(
        partial >= KILLS / 2,
        "most kills must land inside a run, before its data is whole ({partial} of {KILLS})"
    );
}

/// The ports a run's nodes listened on, from their command lines in test.json's node logs.
fn node_ports(run_dir: &Path) -> Vec<String> {
    let mut ports = Vec::new();
    for entry in std::fs::read_dir(run_dir.join("nodes")).unwrap() {
        let log = entry.unwrap().path().join("node.log");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        for word in text.split(|c: char| c.is_whitespace() || c == '"' || c == ',') {
            if let Some(port) = word.strip_prefix("127.0.0.1:") {
                if port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty() {
                    ports.push(port.to_string());
                }
            }
        }
    }
    ports.sort();
    ports.dedup();
    ports
}

fn cluster_id(run_dir: &Path) -> String {
    let test: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("test.json")).unwrap()).unwrap();
    let id = test["extra"]["cluster_id"]
        .as_str()
        .or_else(|| test["cluster_id"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(!id.is_empty(), "test.json names the cluster id: {test}");
    id
}

#[test]
fn two_runs_at_once_in_one_store_do_not_interfere() {
    // One store for both: their run dirs (and so data dirs) must still differ.
    let store = tempfile::tempdir().unwrap();
    let children: Vec<(Child, PathBuf)> = [7u64, 8]
        .iter()
        .map(|seed| {
            let log_path = store.path().join(format!("harness-{seed}.log"));
            let log = std::fs::File::create(&log_path).unwrap();
            let run = chaos_run(*seed, "4s", "kill,pause,partition");
            let child = Command::new(faultline_bin())
                .arg("test")
                .arg("--store")
                .arg(store.path())
                .arg("--node-bin")
                .arg(crate::common::node_bin())
                .args(&run.args)
                .stdout(Stdio::piped())
                .stderr(log)
                .spawn()
                .unwrap();
            (child, log_path)
        })
        .collect();
    let mut run_dirs = Vec::new();
    for (child, log_path) in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        assert_eq!(
            out.status.code(),
            Some(0),
            "a run beside another was not valid:\n{stdout}\n{log}"
        );
        let run_dir = log
            .lines()
            .chain(stdout.lines())
            .find_map(|l| l.split(" — run ").nth(1).map(|p| p.trim().to_string()))
            .map(PathBuf::from)
            .filter(|p| p.join("test.json").is_file())
            .unwrap_or_else(|| panic!("the run names its directory:\n{stdout}\n{log}"));
        run_dirs.push(run_dir);
    }
    assert_ne!(run_dirs[0], run_dirs[1], "two runs shared a run dir");
    assert_ne!(cluster_id(&run_dirs[0]), cluster_id(&run_dirs[1]));
    let (a, b) = (node_ports(&run_dirs[0]), node_ports(&run_dirs[1]));
    assert!(
        !a.is_empty() && !b.is_empty(),
        "the node logs name their addresses"
    );
    let shared: Vec<_> = a.iter().filter(|p| b.contains(p)).collect();
    assert!(
        shared.is_empty(),
        "two runs used the same ports: {shared:?}"
    );
    assert!(processes_mentioning(&store.path().display().to_string()).is_empty());
}
