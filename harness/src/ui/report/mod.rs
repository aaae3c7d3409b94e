//! The report of a stored run: `report.html` (configuration, verdict, anomalies with their
//! explanations, a timeline, plots), `junit.xml`, `summary.md` (also appended to
//! `$GITHUB_STEP_SUMMARY`) and the terminal summary. Everything is drawn from the run directory
//! alone, through the checker crate's types, so `faultline report RUN_DIR` works on any stored
//! run, old ones included. It owns what a person sees after a run; it does not run anything or
//! decide a verdict (the checker does).

mod anomalies;
pub mod data;
pub mod html;
pub mod junit;
pub mod plots;
mod probes;
pub mod summary;
pub mod timeline;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use faultline_checker::{AnomalyKind, Results};

use crate::test::error::BadArgs;
use data::RunData;

/// Where a person stands with one anomaly kind (in one partition or the whole run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// None found.
    None,
    /// Found, and this configuration allows it: the settings that do.
    Allowed(String),
    /// Found, and it breaks the configuration's guarantee.
    Breaks,
    /// Found, but possibly an artefact of missing input: why.
    Uncertain(String),
}

/// The standing of `kind` in `partition` (or in the whole run), from the counts and the listed
/// anomalies; when the list was truncated, from the guarantee's table of excused kinds.
pub fn standing(results: &Results, kind: AnomalyKind, partition: Option<(&str, u32)>) -> Standing {
    let count = match partition {
        Some((topic, p)) => results
            .partitions
            .iter()
            .find(|s| s.topic == topic && s.partition == p)
            .and_then(|s| s.anomalies.get(&kind).copied())
            .unwrap_or(0),
        None => results.anomaly_counts.get(&kind).copied().unwrap_or(0),
    };
    if count == 0 {
        return Standing::None;
    }
    let listed: Vec<_> = results
        .anomalies
        .iter()
        .filter(|a| a.kind == kind)
        .filter(|a| partition.is_none_or(|(t, p)| a.topic == t && a.partition == p))
        .collect();
    if listed.iter().any(|a| a.breaks_guarantee()) {
        return Standing::Breaks;
    }
    if let Some(why) = listed.iter().find_map(|a| a.uncertain.clone()) {
        return Standing::Uncertain(why);
    }
    if let Some(by) = listed.iter().find_map(|a| a.excused_by.clone()) {
        return Standing::Allowed(by);
    }
    match results.guarantee.excused.get(&kind) {
        Some(by) if !by.is_empty() => Standing::Allowed(by.join(", ")),
        _ => Standing::Breaks,
    }
}

/// What each anomaly kind means, in a few words (docs/results.md has the full definitions).
pub fn describe_kind(kind: AnomalyKind) -> &'static str {
    match kind {
        AnomalyKind::Lost => "an acknowledged write is missing from the final log",
        AnomalyKind::Moved => {
            "an acknowledged write sits at another offset, or another value at its offset"
        }
        AnomalyKind::InconsistentOffset => "two values were seen at one offset",
        AnomalyKind::Duplicate => "one value at two offsets of one log",
        AnomalyKind::DirtyRead => "a consumer read a record the final log does not hold there",
        AnomalyKind::Divergence => "two replicas differ below their HW",
        AnomalyKind::NonmonotonicPoll => "a consumer went backwards",
        AnomalyKind::NonmonotonicSend => {
            "an idempotent producer's acknowledged offsets went backwards"
        }
        AnomalyKind::PollSkip => "a consumer skipped offsets the log holds",
        AnomalyKind::Phantom => "a record no client sent",
        AnomalyKind::FailedSendPresent => "a definitely failed send is in the log",
    }
}

/// The run directory a user named: itself when it holds `test.json`; a store's `latest` run
/// when given the store; otherwise a bad argument that says what to point at.
pub fn resolve_run_dir(path: &Path) -> anyhow::Result<PathBuf> {
    if path.join("test.json").is_file() {
        return Ok(path.to_path_buf());
    }
    let latest = path.join("latest");
    if latest.join("test.json").is_file() {
        crate::ui::progress::say(format!(
            "{} is a store: using its latest run, {}",
            path.display(),
            latest.display()
        ));
        return Ok(latest);
    }
    let hint = if path.is_dir() {
        format!(
            "{} is not a run directory (no test.json); point at a run, e.g. store/latest or store/<test-name>/<start-time>",
            path.display()
        )
    } else {
        format!(
            "{} does not exist; point at a run, e.g. store/latest",
            path.display()
        )
    };
    Err(BadArgs(hint).into())
}

/// What writing the report produced.
pub struct Written {
    pub html: PathBuf,
    pub junit: PathBuf,
    pub markdown: PathBuf,
    /// The terminal summary, ready to print.
    pub terminal: String,
}

/// Writes `report.html`, `junit.xml` and `summary.md` into `run_dir` (and appends the Markdown
/// to `$GITHUB_STEP_SUMMARY` when set); returns the terminal summary.
pub fn write(run_dir: &Path, results: Results) -> anyhow::Result<Written> {
    write_with(run_dir, results, data::read_history(run_dir))
}

/// [`write`], with the history already digested.
pub fn write_with(
    run_dir: &Path,
    results: Results,
    history: data::HistoryDigest,
) -> anyhow::Result<Written> {
    let started = Instant::now();
    let config =
        faultline_checker::read_test_config(run_dir).map_err(|e| BadArgs(e.to_string()))?;
    let data = RunData::load_with(run_dir, config, results, history).context("reading the run")?;
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        ops = data.history.ops.len(),
        "run loaded"
    );
    let html_path = run_dir.join("report.html");
    let page = html::page(&data)?;
    std::fs::write(&html_path, page).with_context(|| format!("writing {}", html_path.display()))?;
    let junit_path = run_dir.join("junit.xml");
    junit::write_junit(&junit_path, &data.config, &data.results)?;
    let markdown = summary::markdown(&data, &html_path);
    let md_path = run_dir.join("summary.md");
    std::fs::write(&md_path, &markdown)
        .with_context(|| format!("writing {}", md_path.display()))?;
    summary::append_step_summary(&markdown)?;
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "report written");
    Ok(Written {
        terminal: summary::terminal(&data, &html_path),
        html: html_path,
        junit: junit_path,
        markdown: md_path,
    })
}

/// `faultline report RUN_DIR`: regenerates every output from the stored run and prints the
/// terminal summary. Exits 0 when written, whatever the verdict.
pub fn command(run_dir: &Path) -> anyhow::Result<i32> {
    let run_dir = resolve_run_dir(run_dir)?;
    let results = data::load_results(&run_dir)?;
    let written = write(&run_dir, results)?;
    print!("{}", written.terminal);
    crate::ui::progress::say(format!(
        "wrote {}, {} and {}",
        written.html.display(),
        written.junit.display(),
        written.markdown.display()
    ));
    Ok(0)
}

/// The end of `test` and `check`: the report files and the terminal summary. A report that
/// cannot be written is said, not fatal: the verdict stands on results.json.
pub fn finish(run_dir: &Path, results: &Results, history: data::HistoryDigest) {
    match write_with(run_dir, results.clone(), history) {
        Ok(written) => print!("{}", written.terminal),
        Err(error) => {
            println!("{}", results.summary());
            crate::ui::progress::say(format!("could not write the report: {error:#}"));
        }
    }
}
