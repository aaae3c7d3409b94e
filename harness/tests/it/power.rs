//! Power loss (`--lazyfs`): the scenarios reproduce on a real cluster over real lazy mounts,
//! power-loss without `--lazyfs` is a bad argument, and no mount or `faultline-lazyfs` outlives
//! a SIGKILLed or interrupted harness. Tests that mount print `SKIPPED: <reason>` and pass where
//! FUSE cannot be mounted, unless `FAULTLINE_REQUIRE_FUSE=1` (CI) makes that a failure.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use faultline_checker::history::Process;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::common::{faultline_bin, node_bin, poll, processes_mentioning, read_history, TestRun};

/// Whether this machine can run lazy mounts; prints why not and returns false when it cannot.
fn fuse_or_skip() -> bool {
    if let Err(e) = faultline_lazyfs::probe() {
        assert!(
            std::env::var("FAULTLINE_REQUIRE_FUSE").as_deref() != Ok("1"),
            "FAULTLINE_REQUIRE_FUSE=1 but FUSE cannot be mounted: {e}"
        );
        println!("SKIPPED: {e}");
        return false;
    }
    let bin = faultline_bin().with_file_name("faultline-lazyfs");
    assert!(
        bin.is_file(),
        "{} is missing: build it first (`make build` or `cargo build -p faultline-lazyfs`)",
        bin.display()
    );
    true
}

/// Mount points under `dir` that are still mounted.
fn mounts_under(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| point.starts_with(&needle))
        .map(str::to_string)
        .collect()
}

fn repro(scenario: &str, version: &str, store: &Path, seed: u64) -> std::process::Output {
    Command::new(faultline_bin())
        .args(["repro", scenario, "--kafka-version", version])
        .args(["--seed", &seed.to_string(), "--store"])
        .arg(store)
        .arg("--node-bin")
        .arg(node_bin())
        .output()
        .expect("running faultline repro")
}

fn results(run_dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run_dir.join("results.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The newest run directory of a repro run's store (`<store>/<name>/<start-time>`).
fn run_of(store: &Path, name: &str) -> std::path::PathBuf {
    let dir = store.join(name);
    let mut runs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    runs.sort();
    runs.pop().expect("one run")
}

#[test]
fn last_replica_standing_loses_committed_writes_under_3_7_without_fsync_and_none_with() {
    if !fuse_or_skip() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let output = repro("last-replica-standing", "3.7", store.path(), 7);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.matches("— REPRODUCED").count(), 2, "{stdout}");

    // Without fsync: the acknowledged records of both ISR sizes are gone from every replica,
    // and the explanation names the power cut, the clean re-election and the truncations.
    let lossy = run_of(store.path(), "repro-last-replica-standing-1-3.7");
    let r = results(&lossy);
    assert_eq!(
        r["valid"],
        serde_json::json!(true),
        "excused by the power loss"
    );
    assert!(r["anomaly_counts"]["lost"].as_u64().unwrap() >= 40, "{r}");
    let sentence = r["explanations"][0]["sentence"]
        .as_str()
        .unwrap()
        .to_string();
    for needle in ["lost power", "was elected", "truncated"] {
        assert!(sentence.contains(needle), "{needle:?} not in {sentence:?}");
    }
    let history = read_history(&lossy);
    let cut = history
        .iter()
        .find(|op| op.process == Process::nemesis() && op.f == "power-loss")
        .expect("a power-loss in the history");
    assert!(cut.error.is_none(), "{cut:?}");
    let value = serde_json::to_value(&cut.value).unwrap();
    assert!(value["lost_bytes"].as_u64().unwrap() > 0, "{value}");
    assert_eq!(value["nodes"].as_array().unwrap().len(), 1, "{value}");
    let dump = std::fs::read_to_string(lossy.join("nodes/1/dump.jsonl")).unwrap_or_default();
    assert!(!dump.contains("\"offset\":0,"), "no replica kept offset 0");

    // With fsync the same steps lose nothing.
    let durable = run_of(store.path(), "repro-last-replica-standing-2-3.7");
    let r = results(&durable);
    assert_eq!(r["valid"], serde_json::json!(true), "{r}");
    assert!(
        r["anomaly_counts"].get("lost").is_none_or(|n| n == 0),
        "{r}"
    );
    assert!(mounts_under(store.path()).is_empty(), "no mount left");
}

#[test]
fn power_loss_needs_lazyfs() {
    let run = TestRun::new(&["--nemesis", "power-loss", "--time-limit", "1s"]);
    let done = run.run();
    done.expect_exit(254);
    assert!(
        done.stderr().contains("needs --lazyfs"),
        "{}",
        done.stderr()
    );

    let dir = tempfile::tempdir().unwrap();
    let schedule = dir.path().join("s.txt");
    std::fs::write(&schedule, "produce 1\npower-loss leader\n").unwrap();
    let run = TestRun::new(&["--schedule", schedule.to_str().unwrap()]);
    let done = run.run();
    done.expect_exit(254);
    assert!(
        done.stderr().contains("line 2: power-loss needs --lazyfs"),
        "{}",
        done.stderr()
    );
}

/// Starts a long run on lazy mounts and waits until the nemesis has cut power once.
fn start_power_loss_run(run: &TestRun) -> (std::process::Child, std::path::PathBuf) {
    let (child, run_dir) = run.spawn_until("a power-loss in the history", |op| {
        op.f == "power-loss" && op.error.is_none()
    });
    assert_eq!(mounts_under(&run_dir).len(), 3, "one mount per broker");
    (child, run_dir)
}

fn long_lazy_run() -> TestRun {
    TestRun::new(&[
        "--lazyfs",
        "--time-limit",
        "60s",
        "--nemesis",
        "power-loss,kill",
        "--nemesis-interval",
        "300ms",
        "--rate",
        "50",
        "--concurrency",
        "2",
        "--seed",
        "4",
    ])
}

#[test]
fn no_mount_outlives_a_sigkilled_harness() {
    if !fuse_or_skip() {
        return;
    }
    let run = long_lazy_run();
    let (mut child, run_dir) = start_power_loss_run(&run);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let needle = run_dir.join("nodes").display().to_string();
    poll(
        "every node and mount of the run to go",
        Duration::from_secs(20),
        || {
            (processes_mentioning(&needle).is_empty() && mounts_under(&run_dir).is_empty())
                .then_some(())
        },
    );
}

#[test]
fn an_interrupted_lazy_run_unmounts_everything() {
    if !fuse_or_skip() {
        return;
    }
    let run = long_lazy_run();
    let (mut child, run_dir) = start_power_loss_run(&run);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let status = poll("the harness to exit", Duration::from_secs(40), || {
        child.try_wait().unwrap()
    });
    assert_eq!(
        status.code(),
        Some(255),
        "an interrupted run is not a verdict"
    );
    let needle = run_dir.join("nodes").display().to_string();
    assert!(processes_mentioning(&needle).is_empty(), "processes left");
    assert!(mounts_under(&run_dir).is_empty(), "mounts left");
    // What the brokers wrote is in the backing dirs once the mounts wrote it back.
    assert!(run_dir.join("nodes/1/backing/events.jsonl").is_file());
}
