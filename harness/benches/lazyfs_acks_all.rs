//! What the lazy mounts (`--lazyfs`) cost a 3-broker cluster's acks=all throughput: the same
//! `faultline test` (3 brokers, replication factor 3, min.insync.replicas 2, one partition,
//! acks=all, no faults, `--rate 20000 --concurrency 16`, 8 s) with each broker's data dir on the
//! backing disk and on a lazy mount, alternating, `ROUNDS` times each. Acknowledged sends per
//! second come from each run's results.json. Prints the figures and one JSON line
//! (`{"bench":"lazyfs_acks_all",...}`). Needs `faultline-node` and `faultline-lazyfs` beside the
//! bench's `faultline` and a machine that can mount FUSE; otherwise prints `SKIPPED:`. A
//! figure, not a goal: nothing here can fail a build.

use std::path::{Path, PathBuf};
use std::process::Command;

const ROUNDS: usize = 3;
const TIME_LIMIT_S: f64 = 8.0;

fn faultline() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_faultline"))
}

/// Why the bench cannot run here, if it cannot.
fn missing() -> Option<String> {
    for bin in ["faultline-node", "faultline-lazyfs"] {
        let path = faultline().with_file_name(bin);
        if !path.is_file() {
            return Some(format!(
                "{} is missing (make build / make bench)",
                path.display()
            ));
        }
    }
    faultline_lazyfs::probe().err().map(|e| e.to_string())
}

/// One run; acknowledged sends per second of the chaos phase.
fn run(store: &Path, lazyfs: bool, seed: usize) -> f64 {
    let mut command = Command::new(faultline());
    command
        .args(["test", "--nemesis", "none", "--acks", "all"])
        .args(["--rate", "20000", "--concurrency", "16"])
        .args(["--time-limit", &format!("{TIME_LIMIT_S}s")])
        .args(["--seed", &seed.to_string(), "--store"])
        .arg(store);
    if lazyfs {
        command.arg("--lazyfs");
    }
    let output = command.output().expect("running faultline");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let latest = std::fs::canonicalize(store.join("latest")).unwrap();
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(latest.join("results.json")).unwrap()).unwrap();
    results["counts"]["send"]["ok"].as_f64().unwrap() / TIME_LIMIT_S
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if let Some(why) = missing() {
        println!("SKIPPED: {why}");
        println!(r#"{{"bench":"lazyfs_acks_all","skipped":true}}"#);
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let (mut disk, mut lazy) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        disk.push(run(&store.path().join("disk"), false, round));
        lazy.push(run(&store.path().join("lazy"), true, round));
    }
    let (disk_median, lazy_median) = (median(disk.clone()), median(lazy.clone()));
    println!("acks=all sends/s, 3 brokers, backing disk: {disk:.0?} (median {disk_median:.0})");
    println!("acks=all sends/s, 3 brokers, lazy mounts:  {lazy:.0?} (median {lazy_median:.0})");
    println!(
        r#"{{"bench":"lazyfs_acks_all","disk_sends_per_s":{disk_median:.0},"lazyfs_sends_per_s":{lazy_median:.0},"ratio":{:.3}}}"#,
        lazy_median / disk_median
    );
}
