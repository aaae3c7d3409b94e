//! Suites: many runs, one verdict. `faultline suite ci` is the correctness gate — a fixed matrix
//! with fixed seeds, a few minutes long, where every entry states what it must show (the durable
//! configuration valid under every fault, the loss-prone ones losing data, the epoch-divergence
//! sequence ending identical). `faultline suite nightly` runs random configurations and seeds
//! until its duration ends, keeps failing runs whole and lists them first. Both write
//! `suite.json` (the outcomes), `junit.xml` (one case per entry), `summary.md` (appended to
//! `$GITHUB_STEP_SUMMARY` when set) and `index.html`; `suite merge` joins nightly shards.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::duration::format_duration;
use crate::entry::{Entry, Outcome};
use crate::run::Interrupt;
use crate::scenarios::{self, Expect};

/// One entry's outcome as `suite.json` records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryResult {
    pub name: String,
    pub expect: String,
    pub passed: bool,
    pub detail: String,
    pub exit_code: i32,
    pub run_dir: Option<PathBuf>,
    pub duration_ms: u64,
    pub command: String,
}

/// `suite.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuiteResult {
    pub suite: String,
    pub entries: Vec<EntryResult>,
}

impl SuiteResult {
    pub fn passed(&self) -> bool {
        self.entries.iter().all(|e| e.passed)
    }

    fn failing_first(&self) -> Vec<&EntryResult> {
        let mut entries: Vec<&EntryResult> = self.entries.iter().collect();
        entries.sort_by_key(|e| e.passed);
        entries
    }
}

impl From<&Outcome> for EntryResult {
    fn from(o: &Outcome) -> Self {
        EntryResult {
            name: o.entry.name.clone(),
            expect: o.entry.expect.as_str().to_string(),
            passed: o.judgement.passed,
            detail: o.judgement.detail.clone(),
            exit_code: o.exit_code,
            run_dir: o.run_dir.clone(),
            duration_ms: o.duration_ms,
            command: o.command.clone(),
        }
    }
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// The CI gate's matrix. Seeds are fixed; every entry has an expectation that holds every time
/// (the loss-prone ones use the scenarios, which reproduce deterministically).
pub fn ci_entries() -> Vec<Entry> {
    let mut entries = Vec::new();
    let durable = [
        "--acks",
        "all",
        "--min-insync-replicas",
        "2",
        "--time-limit",
        "8s",
        "--nemesis-interval",
        "1s",
        "--seed",
        "7",
    ];
    let matrix: [(&str, &str); 9] = [
        ("kill", "produce"),
        ("pause", "produce"),
        ("delay", "produce"),
        ("partition", "produce"),
        ("isr-pressure", "produce"),
        ("leader-loss", "produce"),
        ("rolling-restart", "produce"),
        ("all", "produce"),
        ("all", "produce-consume"),
    ];
    for (nemesis, workload) in matrix {
        let mut a = args(&durable);
        a.extend(args(&["--nemesis", nemesis, "--workload", workload]));
        entries.push(Entry {
            name: format!("durable-{nemesis}-{workload}"),
            args: a,
            schedule: None,
            expect: Expect::NoLoss,
        });
    }
    // Power cuts on lazy mounts with every append fsynced: the node's fsync must keep every
    // acknowledged write through random power losses (and kills).
    let mut a = args(&durable);
    a.extend(args(&[
        "--lazyfs",
        "--node-arg=--fsync",
        "--nemesis",
        "power-loss,kill",
    ]));
    entries.push(Entry {
        name: "durable-power-loss-fsync".to_string(),
        args: a,
        schedule: None,
        expect: Expect::NoLoss,
    });
    for scenario in scenarios::SCENARIOS {
        for (i, run) in scenario.runs.iter().enumerate() {
            let mut a: Vec<String> = args(run.args);
            a.extend(args(&["--concurrency", "0", "--seed", "1"]));
            entries.push(Entry {
                name: if scenario.runs.len() == 1 {
                    format!("scenario-{}", scenario.name)
                } else {
                    format!("scenario-{}-{}", scenario.name, i + 1)
                },
                args: a,
                schedule: Some(run.schedule),
                expect: run.expect,
            });
        }
    }
    entries
}

/// Runs entries in order, printing one line for each; stops early only when interrupted.
pub async fn run_entries(
    suite: &str,
    entries: impl IntoIterator<Item = Entry>,
    store: &Path,
    node_bin: Option<&Path>,
    interrupt: Interrupt,
) -> anyhow::Result<SuiteResult> {
    let mut result = SuiteResult {
        suite: suite.to_string(),
        entries: Vec::new(),
    };
    for entry in entries {
        if interrupt.borrow().is_some() {
            break;
        }
        let outcome = match entry.run(store, node_bin, interrupt.clone()).await {
            Ok(outcome) => outcome,
            Err(error) if error.downcast_ref::<crate::run::Interrupted>().is_some() => break,
            Err(error) => return Err(error),
        };
        println!(
            "suite {suite}: {:<40} {} ({}; expected {}) in {}",
            outcome.entry.name,
            if outcome.judgement.passed {
                "PASS"
            } else {
                "FAIL"
            },
            outcome.judgement.detail,
            outcome.entry.expect.as_str(),
            format_duration(Duration::from_millis(outcome.duration_ms)),
        );
        result.entries.push(EntryResult::from(&outcome));
        write_outputs(store, &result)?;
    }
    Ok(result)
}

/// `faultline suite ci`.
pub async fn ci(
    store: &Path,
    node_bin: Option<&Path>,
    interrupt: Interrupt,
) -> anyhow::Result<i32> {
    let started = Instant::now();
    let result = run_entries("ci", ci_entries(), store, node_bin, interrupt.clone()).await?;
    finish(store, &result, started)?;
    if interrupt.borrow().is_some() {
        return Err(crate::run::Interrupted(store.to_path_buf()).into());
    }
    Ok(if result.passed() { 0 } else { 1 })
}

/// Options of `faultline suite nightly`.
#[derive(Debug, Clone)]
pub struct Nightly {
    pub duration: Duration,
    pub run_time: Duration,
    pub seed: u64,
    pub shard: (u32, u32),
    pub keep_passing: bool,
}

/// The i-th random configuration of a shard's seed stream: disjoint across shards.
pub fn nightly_entry(n: &Nightly, i: u64) -> Entry {
    let (index, count) = n.shard;
    let seed = n.seed.wrapping_add(i * count as u64 + index as u64);
    let mut rng = StdRng::seed_from_u64(seed);
    let nodes: u32 = rng.gen_range(3..=5);
    let partitions: u32 = rng.gen_range(1..=3);
    let acks = *["all", "all", "1", "0"]
        .choose(&mut rng)
        .expect("not empty");
    let min_isr: u32 = if rng.gen_bool(0.75) { 2 } else { 1 };
    let protocol = if rng.gen_bool(0.2) {
        "legacy-hw"
    } else {
        "current"
    };
    let nemesis = *[
        "all",
        "all",
        "leader-loss,isr-pressure",
        "rolling-restart,kill",
        "partition,delay",
    ]
    .choose(&mut rng)
    .expect("not empty");
    let rate = *[200, 500, 1000, 2000].choose(&mut rng).expect("not empty");
    let workload = if rng.gen_bool(0.5) {
        "produce"
    } else {
        "produce-consume"
    };
    let mut a = args(&[
        "--nodes",
        &nodes.to_string(),
        "--partitions",
        &partitions.to_string(),
        "--acks",
        acks,
        "--min-insync-replicas",
        &min_isr.to_string(),
        "--replication-protocol",
        protocol,
        "--nemesis",
        nemesis,
        "--nemesis-interval",
        &format!("{}ms", rng.gen_range(500..=3000)),
        "--rate",
        &rate.to_string(),
        "--workload",
        workload,
        "--time-limit",
        &format_duration(n.run_time),
        "--seed",
        &seed.to_string(),
    ]);
    if rng.gen_bool(0.25) {
        a.push("--unclean-leader-election".into());
    }
    Entry {
        name: format!("nightly-{seed}"),
        args: a,
        schedule: None,
        expect: Expect::Guarantee,
    }
}

/// `faultline suite nightly`: random runs until the duration ends.
pub async fn nightly(
    n: &Nightly,
    store: &Path,
    node_bin: Option<&Path>,
    interrupt: Interrupt,
) -> anyhow::Result<i32> {
    let started = Instant::now();
    println!(
        "suite nightly: seed {}, shard {}/{}, for {}",
        n.seed,
        n.shard.0,
        n.shard.1,
        format_duration(n.duration)
    );
    let mut result = SuiteResult {
        suite: "nightly".to_string(),
        entries: Vec::new(),
    };
    // Bounded by the duration: a run is started only while a whole run still fits.
    for i in 0.. {
        let left = n.duration.saturating_sub(started.elapsed());
        if left < n.run_time || interrupt.borrow().is_some() {
            break;
        }
        let entry = nightly_entry(n, i);
        let part = run_entries("nightly", [entry], store, node_bin, interrupt.clone()).await?;
        for e in part.entries {
            if e.passed && !n.keep_passing {
                if let Some(dir) = &e.run_dir {
                    prune(dir)?;
                }
            }
            result.entries.push(e);
        }
        write_outputs(store, &result)?;
    }
    finish(store, &result, started)?;
    Ok(if result.passed() { 0 } else { 1 })
}

/// Keeps only what a passing run needs to be re-judged and replayed.
fn prune(run_dir: &Path) -> anyhow::Result<()> {
    const KEEP: [&str; 4] = ["test.json", "results.json", "schedule.txt", "junit.xml"];
    for entry in std::fs::read_dir(run_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if KEEP.iter().any(|k| name == *k) {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// `faultline suite merge DIR... --out DIR`: the shards' results in one index.
pub fn merge(dirs: &[PathBuf], out: &Path) -> anyhow::Result<i32> {
    let mut merged = SuiteResult {
        suite: "nightly".to_string(),
        entries: Vec::new(),
    };
    for dir in dirs {
        let path = dir.join("suite.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| crate::cli::BadArgs(format!("cannot read {}: {e}", path.display())))?;
        let part: SuiteResult = serde_json::from_str(&text).map_err(|e| {
            crate::cli::BadArgs(format!("{} is not a suite result: {e}", path.display()))
        })?;
        merged.entries.extend(part.entries);
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_outputs(out, &merged)?;
    println!(
        "suite merge: {} runs from {} shards, {} failing; index {}",
        merged.entries.len(),
        dirs.len(),
        merged.entries.iter().filter(|e| !e.passed).count(),
        out.join("index.html").display()
    );
    Ok(if merged.passed() { 0 } else { 1 })
}

fn finish(store: &Path, result: &SuiteResult, started: Instant) -> anyhow::Result<()> {
    write_outputs(store, result)?;
    let failed = result.entries.iter().filter(|e| !e.passed).count();
    println!(
        "suite {}: {} passed, {} failed in {}; junit {}, index {}",
        result.suite,
        result.entries.len() - failed,
        failed,
        format_duration(Duration::from_secs(started.elapsed().as_secs())),
        store.join("junit.xml").display(),
        store.join("index.html").display()
    );
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening $GITHUB_STEP_SUMMARY {path:?}"))?;
        file.write_all(markdown(result).as_bytes())?;
    }
    Ok(())
}

/// suite.json, junit.xml, summary.md and index.html, rewritten after every entry so an
/// interrupted suite still leaves its results.
fn write_outputs(dir: &Path, result: &SuiteResult) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("suite.json"), serde_json::to_vec_pretty(result)?)?;
    std::fs::write(dir.join("junit.xml"), junit(result)?)?;
    std::fs::write(dir.join("summary.md"), markdown(result))?;
    std::fs::write(dir.join("index.html"), index_html(result))?;
    Ok(())
}

pub fn junit(result: &SuiteResult) -> anyhow::Result<String> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut report = Report::new(format!("faultline-{}", result.suite));
    let mut suite = TestSuite::new(result.suite.clone());
    for e in &result.entries {
        let status = if e.passed {
            TestCaseStatus::success()
        } else {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_message(format!("expected {}: {}", e.expect, e.detail));
            status.set_description(format!(
                "{}\nrun: {}\nreplay: {}",
                e.detail,
                e.run_dir
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
                e.command
            ));
            status
        };
        let mut case = TestCase::new(e.name.clone(), status);
        case.set_time(Duration::from_millis(e.duration_ms));
        suite.add_test_case(case);
    }
    report.add_test_suite(suite);
    Ok(report.to_string()?)
}

pub fn markdown(result: &SuiteResult) -> String {
    let failed = result.entries.iter().filter(|e| !e.passed).count();
    let mut out = format!(
        "### faultline suite {}: {}\n\n{} runs, {} failed.\n\n| run | expected | result | |\n|---|---|---|---|\n",
        result.suite,
        if failed == 0 { "passed" } else { "FAILED" },
        result.entries.len(),
        failed
    );
    for e in result.failing_first() {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            e.name,
            e.expect,
            e.detail.replace('|', "\\|"),
            if e.passed { "✅" } else { "❌" }
        ));
    }
    out.push('\n');
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One self-contained page: failing runs first, each with its verdict, what it had to show,
/// where it is stored and the command that replays it.
pub fn index_html(result: &SuiteResult) -> String {
    let failed = result.entries.iter().filter(|e| !e.passed).count();
    let mut rows = String::new();
    for e in result.failing_first() {
        let link = e
            .run_dir
            .as_ref()
            .map(|d| {
                let report = d.join("report.html");
                let target = if report.is_file() { report } else { d.clone() };
                format!(
                    "<a href=\"file://{}\">{}</a>",
                    escape(&target.display().to_string()),
                    escape(&d.display().to_string())
                )
            })
            .unwrap_or_default();
        rows.push_str(&format!(
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>\n",
            if e.passed { "pass" } else { "fail" },
            if e.passed { "PASS" } else { "FAIL" },
            escape(&e.name),
            escape(&e.expect),
            escape(&e.detail),
            link,
            escape(&e.command),
        ));
    }
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>faultline suite {suite}</title>\n\
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top;font-size:13px}}\
tr.fail td:first-child{{background:#f8d0d0;font-weight:bold}}tr.pass td:first-child{{background:#d8f0d8}}code{{font-size:11px}}</style></head>\n\
<body><h1>faultline suite {suite}: {verdict}</h1><p>{total} runs, {failed} failed (failing runs first).</p>\n\
<table><tr><th></th><th>run</th><th>expected</th><th>what happened</th><th>stored</th><th>replay</th></tr>\n{rows}</table></body></html>\n",
        suite = escape(&result.suite),
        verdict = if failed == 0 { "passed" } else { "FAILED" },
        total = result.entries.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(passed: &[bool]) -> SuiteResult {
        SuiteResult {
            suite: "ci".into(),
            entries: passed
                .iter()
                .enumerate()
                .map(|(i, &p)| EntryResult {
                    name: format!("e{i}"),
                    expect: "nothing lost".into(),
                    passed: p,
                    detail: format!("detail {i} <b>"),
                    exit_code: if p { 0 } else { 1 },
                    run_dir: None,
                    duration_ms: 1500,
                    command: "faultline test --seed 1".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn junit_has_a_case_per_entry_and_failures_carry_the_detail() {
        let xml = junit(&result(&[true, false, true])).unwrap();
        assert_eq!(xml.matches("<testcase").count(), 3, "{xml}");
        assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
        assert!(xml.contains("detail 1 &lt;b&gt;"), "{xml}");
    }

    #[test]
    fn the_index_and_the_summary_list_failing_runs_first() {
        let r = result(&[true, false]);
        let html = index_html(&r);
        assert!(html.find("e1").unwrap() < html.find("e0").unwrap());
        assert!(html.contains("&lt;b&gt;") && !html.contains("<b>"));
        let md = markdown(&r);
        assert!(md.contains("FAILED") && md.find("`e1`").unwrap() < md.find("`e0`").unwrap());
    }

    #[test]
    fn nightly_shards_draw_disjoint_seeds() {
        let shard = |i| Nightly {
            duration: Duration::from_secs(60),
            run_time: Duration::from_secs(30),
            seed: 100,
            shard: (i, 3),
            keep_passing: true,
        };
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..3 {
            for k in 0..20 {
                assert!(seen.insert(nightly_entry(&shard(i), k).name));
            }
        }
    }

    #[test]
    fn ci_entries_have_unique_names_and_every_scenario() {
        let entries = ci_entries();
        let names: std::collections::BTreeSet<_> = entries.iter().map(|e| &e.name).collect();
        assert_eq!(names.len(), entries.len());
        for s in scenarios::SCENARIOS {
            assert!(
                entries.iter().any(|e| e.name.contains(s.name)),
                "{}",
                s.name
            );
        }
    }
}
