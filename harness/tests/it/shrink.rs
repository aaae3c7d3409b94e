//! `faultline shrink` against the real binaries: bad input exits 254 naming the problem and
//! writes nothing; a run of the unclean-election scenario padded with steps that do not matter
//! shrinks to fewer steps, each with the reason it stays, and the shrunk schedule loses
//! acknowledged writes again when replayed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime};

use faultline_checker::{AnomalyKind, Results, WEAK_SEND_EXCUSE};
use serde_json::{json, Value};

use crate::common::{faultline_bin, node_bin, TestRun};

fn faultline(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(faultline_bin()).args(args).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `faultline shrink RUN ...` with the node binary beside it.
fn shrink(run: &Path, extra: &[&str]) -> (i32, String, String) {
    let node = node_bin();
    let mut args = vec![
        "shrink",
        run.to_str().unwrap(),
        "--node-bin",
        node.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    faultline(&args)
}

/// Every file under `dir` with its size and modification time: "nothing written" is this
/// staying the same.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                pending.push(entry.path());
            }
            files.insert(entry.path(), (meta.len(), meta.modified().unwrap()));
        }
    }
    files
}

fn copy_run(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "cp -r {} {}",
        from.display(),
        to.display()
    );
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut value: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(path, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
}

/// A results.json that shows `lost` (the run itself lost nothing).
fn fake_loss(run: &Path) {
    edit_json(&run.join("results.json"), |r| {
        r["anomaly_counts"]["lost"] = json!(1);
        r["anomalies"].as_array_mut().unwrap().push(json!({
            "kind": "lost", "topic": "t", "partition": 0, "offsets": [0], "values": ["1"],
            "indices": [1], "detail": "made up by the test"
        }));
    });
}

/// Lost writes a replay must show again: certain, and not the schedule's own acks=1 sends.
fn acknowledged_losses(run_dir: &Path) -> usize {
    let results: Results =
        serde_json::from_slice(&std::fs::read(run_dir.join("results.json")).unwrap()).unwrap();
    results
        .anomalies
        .iter()
        .filter(|a| a.kind == AnomalyKind::Lost && a.uncertain.is_none())
        .filter(|a| a.excused_by.as_deref() != Some(WEAK_SEND_EXCUSE))
        .count()
}

/// The steps of a schedule file, comments and blank lines skipped.
fn step_lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bad_input_exits_254_naming_the_problem_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let schedule = dir.path().join("s.txt");
    std::fs::write(&schedule, "delay all 1ms\nproduce 3\ndelay all 0ms\n").unwrap();
    let run = TestRun::new(&[
        "--schedule",
        schedule.to_str().unwrap(),
        "--concurrency",
        "0",
        "--seed",
        "4",
    ])
    .run();
    run.expect_valid();

    type Damage = fn(&Path);
    let cases: &[(&str, Damage, &[&str], &str)] = &[
        ("clean", |_| {}, &[], "the run shows no anomaly"),
        (
            "no-results",
            |r| std::fs::remove_file(r.join("results.json")).unwrap(),
            &[],
            "results.json: cannot read it",
        ),
        (
            "damaged-results",
            |r| std::fs::write(r.join("results.json"), "{\"valid\": tru").unwrap(),
            &[],
            "results.json: damaged",
        ),
        (
            "damaged-test-json",
            |r| std::fs::write(r.join("test.json"), "{}").unwrap(),
            &[],
            "test.json",
        ),
        (
            "no-schedule",
            |r| {
                fake_loss(r);
                std::fs::remove_file(r.join("schedule.txt")).unwrap()
            },
            &[],
            "schedule.txt: cannot read it",
        ),
        (
            "no-replay-header",
            |r| {
                fake_loss(r);
                let path = r.join("schedule.txt");
                let text = std::fs::read_to_string(&path).unwrap();
                let steps: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
                std::fs::write(&path, steps.join("\n")).unwrap();
            },
            &[],
            "no `# Replay: faultline test ...` header",
        ),
        (
            "other-harness",
            |r| {
                fake_loss(r);
                edit_json(&r.join("test.json"), |c| {
                    c["extra"]["harness_version"] = json!("0.0.1")
                });
            },
            &[],
            "stored by faultline 0.0.1",
        ),
        (
            "other-settings",
            |r| {
                fake_loss(r);
                let path = r.join("schedule.txt");
                let text = std::fs::read_to_string(&path).unwrap();
                std::fs::write(&path, text.replace("--acks all", "--acks 1")).unwrap();
            },
            &[],
            "does not describe the run test.json records",
        ),
        (
            "other-class",
            fake_loss,
            &["--anomaly", "moved"],
            "the run shows no moved anomaly (it shows lost 1)",
        ),
        (
            "shrunk-exists",
            |r| {
                fake_loss(r);
                std::fs::create_dir(r.join("shrunk")).unwrap();
            },
            &[],
            "exists (an earlier shrink); pass --force",
        ),
        ("zero-confirm", fake_loss, &["--confirm", "0"], "--confirm"),
        (
            "unknown-class",
            fake_loss,
            &["--anomaly", "meteor"],
            "unknown anomaly kind \"meteor\"",
        ),
    ];
    for (name, damage, extra, expected) in cases {
        let copy = dir.path().join(name);
        copy_run(&run.run_dir, &copy);
        damage(&copy);
        let before = snapshot(&copy);
        let (code, _, stderr) = shrink(&copy, extra);
        assert_eq!(code, 254, "{name}: exit {code}:\n{stderr}");
        assert!(
            stderr.contains(expected),
            "{name}: expected {expected:?} in:\n{stderr}"
        );
        assert_eq!(
            snapshot(&copy),
            before,
            "{name}: the shrink wrote something"
        );
    }
    let missing = dir.path().join("no-such-run");
    let (code, _, stderr) = shrink(&missing, &[]);
    assert_eq!(code, 254, "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(!missing.exists());
}

/// Steps the loss does not need, around the unclean-election scenario's own.
const PADDING_BEFORE: &str = "delay all 10ms\npause follower\nresume all\n";
const PADDING_AFTER: &str = "delay all 0ms\n";

#[test]
fn a_padded_unclean_election_shrinks_and_its_shrunk_schedule_loses_writes_again() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let schedule = dir.path().join("padded.txt");
    let scenario = include_str!("../../scenarios/unclean-election.txt");
    std::fs::write(
        &schedule,
        format!("{PADDING_BEFORE}{scenario}{PADDING_AFTER}"),
    )
    .unwrap();
    // The scenario's settings (harness/src/jobs/scenarios.rs).
    let run = TestRun::new(&[
        "--acks",
        "all",
        "--min-insync-replicas",
        "1",
        "--unclean-leader-election",
        "--concurrency",
        "0",
        "--seed",
        "1",
        "--schedule",
        schedule.to_str().unwrap(),
    ])
    .run();
    run.expect_valid();
    assert!(acknowledged_losses(&run.run_dir) > 0, "{}", run.stderr());
    let recorded = std::fs::read_to_string(run.run_dir.join("schedule.txt")).unwrap();
    let before = step_lines(&recorded).len();
    let untouched = snapshot(&run.run_dir);

    let (code, stdout, stderr) = shrink(&run.run_dir, &["--confirm", "1", "--budget", "100s"]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("replays"), "no progress lines:\n{stderr}");

    // Nothing of the run changed; everything new is in shrunk/.
    let shrunk = run.run_dir.join("shrunk");
    let mut after = snapshot(&run.run_dir);
    after.retain(|path, _| !path.starts_with(&shrunk));
    assert_eq!(after, untouched, "the shrink changed the run");

    let text = std::fs::read_to_string(shrunk.join("schedule.txt")).unwrap();
    let steps = step_lines(&text);
    assert!(
        !steps.is_empty() && steps.len() < before,
        "{before} steps shrank to {}:\n{text}\n{stderr}",
        steps.len()
    );
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let why = lines[i - 1];
        assert!(
            why.starts_with("# step ")
                && (why.contains("dropping it") || why.contains("not tried without it")),
            "no reason before {line:?}:\n{text}"
        );
    }
    let figures: Value =
        serde_json::from_slice(&std::fs::read(shrunk.join("shrink.json")).unwrap()).unwrap();
    assert_eq!(figures["anomaly"], "lost");
    assert_eq!(figures["steps_before"], before);
    assert_eq!(figures["steps_after"], steps.len());
    assert!(figures["replays"].as_u64().unwrap() >= 1, "{figures}");
    assert!(shrunk.join("replay.sh").is_file());

    // The replay line, run once more, loses acknowledged writes again.
    let replay = figures["replay"].as_str().unwrap();
    assert!(
        replay.contains(shrunk.join("schedule.txt").to_str().unwrap()),
        "{replay}"
    );
    let words: Vec<&str> = replay.split_whitespace().skip(2).collect();
    let again = TestRun::new(&words).run();
    again.expect_valid();
    assert!(
        acknowledged_losses(&again.run_dir) > 0,
        "the shrunk schedule lost nothing:\n{text}\n{}",
        again.stderr()
    );
    eprintln!("shrink end to end: {:?}", started.elapsed());
}
