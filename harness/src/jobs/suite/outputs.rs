//! What a suite leaves behind: `suite.json` (the outcomes), `junit.xml` (one case per entry),
//! `summary.md` (appended to `$GITHUB_STEP_SUMMARY` when set) and `index.html` with failing
//! runs first; and `suite merge`, which joins the outcomes of nightly shards into one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::duration::format_duration;
use faultline_checker::probes::Probe;

use crate::jobs::entry::Outcome;
use crate::jobs::suite::coverage::Coverage;

/// One entry's outcome as `suite.json` records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryResult {
    pub name: String,
    pub expect: String,
    pub passed: bool,
    /// Its outcome held but it missed a required probe (absent in suites run before probes).
    #[serde(default)]
    pub vacuous: bool,
    pub detail: String,
    pub exit_code: i32,
    pub run_dir: Option<PathBuf>,
    pub duration_ms: u64,
    pub command: String,
    /// The probes the run reached, with their counts (docs/results.md).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub probes: BTreeMap<Probe, u64>,
    /// Its configuration in short (`4.1 acks=all min-isr=2 all unclean`), for coverage.
    #[serde(default)]
    pub configuration: String,
    /// The minimal schedule `suite nightly --shrink` found for this failing run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shrunk: Option<PathBuf>,
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

impl EntryResult {
    /// PASS, FAIL or VACUOUS.
    pub fn word(&self) -> &'static str {
        crate::jobs::scenarios::word(self.passed, self.vacuous)
    }
}

impl From<&Outcome> for EntryResult {
    fn from(o: &Outcome) -> Self {
        EntryResult {
            name: o.entry.name.clone(),
            expect: o.entry.expect.as_str().to_string(),
            passed: o.judgement.passed,
            vacuous: o.judgement.vacuous,
            detail: o.judgement.detail.clone(),
            exit_code: o.exit_code,
            run_dir: o.run_dir.clone(),
            duration_ms: o.duration_ms,
            command: o.command.clone(),
            probes: o.judgement.reached.clone(),
            configuration: super::coverage::configuration(&o.entry.request),
            shrunk: None,
        }
    }
}

pub fn merge(dirs: &[PathBuf], out: &Path) -> anyhow::Result<i32> {
    let mut merged = SuiteResult {
        suite: "nightly".to_string(),
        entries: Vec::new(),
    };
    for dir in dirs {
        let path = dir.join("suite.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            crate::test::error::BadArgs(format!("cannot read {}: {e}", path.display()))
        })?;
        let part: SuiteResult = serde_json::from_str(&text).map_err(|e| {
            crate::test::error::BadArgs(format!("{} is not a suite result: {e}", path.display()))
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

pub(super) fn finish(store: &Path, result: &SuiteResult, started: Instant) -> anyhow::Result<()> {
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
pub(super) fn write_outputs(dir: &Path, result: &SuiteResult) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("suite.json"), serde_json::to_vec_pretty(result)?)?;
    std::fs::write(dir.join("junit.xml"), junit(result)?)?;
    std::fs::write(dir.join("summary.md"), markdown(result))?;
    std::fs::write(dir.join("index.html"), index_html(result))?;
    Ok(())
}

/// `coverage.json`: per probe, the runs that reached it, by configuration, and when the night
/// first did (since the night began, and in which run).
pub fn write_coverage(
    store: &Path,
    coverage: &Coverage,
    first_reached: &BTreeMap<Probe, (Duration, String)>,
) -> anyhow::Result<()> {
    let probes: serde_json::Map<String, serde_json::Value> = Probe::ALL
        .iter()
        .map(|p| {
            let first = first_reached.get(p);
            let value = serde_json::json!({
                "runs": coverage.runs.get(p).copied().unwrap_or(0),
                "first_after_ms": first.map(|(t, _)| t.as_millis() as u64),
                "first_run": first.map(|(_, name)| name.clone()),
                "by_configuration": coverage.by_configuration.get(p).cloned().unwrap_or_default(),
            });
            (p.as_str().to_string(), value)
        })
        .collect();
    let doc = serde_json::json!({
        "runs": coverage.total,
        "complete": coverage.complete(),
        "probes": probes,
    });
    let path = store.join("coverage.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Per probe: how many of the suite's runs reached it, and by which configurations (most
/// first, at most three named).
fn coverage_rows(result: &SuiteResult) -> Vec<(Probe, usize, String)> {
    Probe::ALL
        .iter()
        .map(|p| {
            let mut by: BTreeMap<&str, usize> = BTreeMap::new();
            for e in result.entries.iter().filter(|e| e.probes.contains_key(p)) {
                *by.entry(e.configuration.as_str()).or_default() += 1;
            }
            let runs = by.values().sum();
            let mut configs: Vec<(&str, usize)> = by.into_iter().collect();
            configs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let mut named: Vec<String> = configs
                .iter()
                .take(3)
                .map(|(c, n)| format!("{c} ×{n}"))
                .collect();
            if configs.len() > 3 {
                named.push(format!("{} more", configs.len() - 3));
            }
            (*p, runs, named.join("; "))
        })
        .collect()
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
            if e.passed {
                "✅"
            } else if e.vacuous {
                "❌ vacuous"
            } else {
                "❌"
            }
        ));
    }
    out.push('\n');
    let rows = coverage_rows(result);
    let reached = rows.iter().filter(|(_, runs, _)| *runs > 0).count();
    out.push_str(&format!(
        "Probe coverage: {reached} of {} probes reached.\n\n| probe | runs | by configuration |\n|---|---:|---|\n",
        rows.len()
    ));
    for (probe, runs, by) in rows {
        out.push_str(&format!("| `{probe}` | {runs} | {by} |\n"));
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
    let coverage = coverage_rows(result);
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
        let link = match &e.shrunk {
            Some(shrunk) => format!(
                "{link}<br>shrunk: <a href=\"file://{0}\">{0}</a>",
                escape(&shrunk.display().to_string())
            ),
            None => link,
        };
        rows.push_str(&format!(
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>\n",
            if e.passed { "pass" } else { "fail" },
            e.word(),
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
tr.fail td:first-child{{background:#f8d0d0;font-weight:bold}}tr.pass td:first-child{{background:#d8f0d8}}td.pass{{background:#d8f0d8}}td.none{{color:#8c959f}}code{{font-size:11px}}</style></head>\n\
<body><h1>faultline suite {suite}: {verdict}</h1><p>{total} runs, {failed} failed (failing runs first).</p>\n\
<table><tr><th></th><th>run</th><th>expected</th><th>what happened</th><th>stored</th><th>replay</th></tr>\n{rows}</table>\n\
<h2>Probe coverage</h2><p>The Kafka situations the runs went through (docs/results.md, \"Probes\"): {reached} of {probes} reached.</p>\n\
<table><tr><th>probe</th><th>runs</th><th>by configuration</th></tr>\n{coverage}</table></body></html>\n",
        reached = coverage.iter().filter(|(_, runs, _)| *runs > 0).count(),
        probes = coverage.len(),
        coverage = coverage
            .iter()
            .map(|(p, runs, by)| format!(
                "<tr><td class=\"{}\"><code>{p}</code></td><td>{runs}</td><td>{}</td></tr>\n",
                if *runs > 0 { "pass" } else { "none" },
                escape(by)
            ))
            .collect::<String>(),
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
                    vacuous: false,
                    detail: format!("detail {i} <b>"),
                    exit_code: if p { 0 } else { 1 },
                    run_dir: None,
                    duration_ms: 1500,
                    command: "faultline test --seed 1".into(),
                    probes: BTreeMap::new(),
                    configuration: String::new(),
                    shrunk: None,
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
    fn a_shrunk_failing_run_is_linked_beside_its_run_and_coverage_is_tabled() {
        let mut r = result(&[true, false]);
        r.entries[1].shrunk = Some(PathBuf::from("/night/e1/shrunk/schedule.txt"));
        r.entries[0].probes = BTreeMap::from([(Probe::Fenced, 2)]);
        r.entries[0].configuration = "4.1 acks=all".into();
        let index = index_html(&r);
        assert!(index.contains("shrunk: <a href=\"file:///night/e1/shrunk/schedule.txt\">"));
        assert_eq!(index.matches("<tr class=").count(), 2, "entry rows only");
        assert!(index.contains("1 of 15 reached"), "{index}");
        let md = markdown(&r);
        assert!(md.contains("| `fenced` | 1 | 4.1 acks=all ×1 |"), "{md}");
        let json = serde_json::to_string(&r).unwrap();
        let back: SuiteResult = serde_json::from_str(&json).unwrap();
        assert_eq!(back.entries[1].shrunk, r.entries[1].shrunk);
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
}
