//! faultline-checker: the history model written by the harness and read back here, and the
//! pure analysis that decides whether a stored run kept its guarantee. It reads the files it is
//! given; it starts no process and opens no socket.
//!
//! The harness calls [`check_run`] on a run directory, then [`write_results`], prints
//! [`Results::summary`] and exits with [`Results::exit_code`].
//!
//! Each file of a run has one module here that owns its types, used by writers and readers
//! alike: [`config`] (test.json), [`history`] (history.jsonl), [`final_reads`] (final.json),
//! [`dump`] (a broker's dump.jsonl) and [`events`] (a node's events.jsonl); [`text`] is the
//! string type they are read with. These format modules import only each other and the
//! errors, never the analysis. The `read` module is the line reader built on them
//! ([`history::OpLine::parse`], [`dump::DumpLine::parse`], with a fast path beneath);
//! [`jsonl`] reads JSON-lines files and records damage. The analysis modules are private.

// The run's files, one module each (writers and readers use these types).
pub mod config;
pub mod dump;
pub mod events;
pub mod final_reads;
pub mod history;
pub mod text;

// What a run went through (its analysis is private; the names are public).
pub mod probes;

// Reading the files.
mod error;
mod fastpath;
pub mod jsonl;
mod read;

// The analysis.
mod broker_logs;
mod check;
mod divergence;
mod explain;
mod findings;
mod found;
mod guarantee;
mod intern;
mod logs;
mod partition_events;
mod results;
mod scan;
mod values;

pub use error::{CheckError, ConfigError};
pub use results::{
    Anomaly, AnomalyKind, Counts, Explanation, Guarantee, OpCounts, PartitionSummary, Results,
    Valid, Warning, MAX_ANOMALIES_PER_KIND, MAX_WARNINGS, RETRY_EXCUSE, WEAK_SEND_EXCUSE,
};

use config::TestConfig;
use std::path::Path;

/// Reads and analyses the run stored in `run_dir`; writes nothing. Fails only when the run
/// directory or its `test.json` cannot be read; damage anywhere else is reported in
/// [`Results::warnings`] and lowers the verdict to at best `unknown`.
pub fn check_run(run_dir: &Path) -> Result<Results, CheckError> {
    let config = read_test_config(run_dir)?;
    Ok(check::check(run_dir, config))
}

/// Writes `results.json` into `run_dir` (pretty-printed, then renamed into place).
pub fn write_results(run_dir: &Path, results: &Results) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(results).map_err(std::io::Error::other)?;
    let tmp = run_dir.join("results.json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, run_dir.join("results.json"))
}

/// Reads `test.json`, the one file without which a run cannot be checked.
pub fn read_test_config(run_dir: &Path) -> Result<TestConfig, CheckError> {
    TestConfig::read(run_dir)
}
