//! What a suite leaves behind: `suite.json` (the outcomes), `junit.xml` (one case per entry),
//! `summary.md` (appended to `$GITHUB_STEP_SUMMARY` when set) and `index.html` with failing
//! runs first; and `suite merge`, which joins the outcomes of nightly shards into one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::duration::format_duration;
use crate::jobs::entry::Outcome;

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
        if self.passed {
            "PASS"
        } else if self.vacuous {
            "VACUOUS"
        } else {
            "FAIL"
        }
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
                    vacuous: false,
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
}
