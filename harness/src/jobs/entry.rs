//! One run of a suite or a reproduction: `faultline test` with the given arguments, in this
//! process, into its own store, judged against what it must show. `repro` and `suite` both run
//! their runs through here, so a suite entry and a scenario behave exactly as the same
//! `faultline test` command typed by hand (which each prints, for a replay).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use faultline_checker::probes::Probe;

use crate::jobs::scenarios::{self, Expect, Judgement};
use crate::test::error::{bad, EXIT_HARNESS_FAILED};
use crate::test::observer::Observer;
use crate::test::options::{TestOptions, TestRequest};
use crate::test::run::{self, Interrupt};

/// What to run and what it must show.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Unique within a suite; the run's directory name in the store.
    pub name: String,
    /// The test; its name, store, node binary and schedule are the entry's to set.
    pub request: TestRequest,
    /// A schedule's text, written beside the run and run in place of the random nemesis.
    pub schedule: Option<&'static str>,
    pub expect: Expect,
    /// The probes (docs/results.md) the run must reach; one missed makes it `vacuous`.
    pub probes: &'static [Probe],
}

/// How an entry ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub entry: Entry,
    /// `faultline test`'s exit code (0 valid, 1 invalid, 2 unknown); 255 when it failed.
    pub exit_code: i32,
    pub run_dir: Option<PathBuf>,
    pub judgement: Judgement,
    pub duration_ms: u64,
    /// The command that runs the same test again.
    pub command: String,
}

impl Entry {
    /// The options the entry runs with: its request under its name, in `store`, with its
    /// schedule written to `store/schedules/NAME.txt`.
    pub fn options(&self, store: &Path, node_bin: Option<&Path>) -> anyhow::Result<TestOptions> {
        let mut request = self.request.clone();
        request.name = Some(self.name.clone());
        request.store = store.to_path_buf();
        request.node_bin = node_bin.map(Path::to_path_buf);
        if let Some(text) = self.schedule {
            let dir = store.join("schedules");
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let path = dir.join(format!("{}.txt", self.name));
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            request.schedule = Some(path);
        }
        request
            .validate()
            .map_err(|e| bad(format!("entry {}: {e:#}", self.name)))
    }

    /// Runs the entry and judges it. An entry that could not run is a failed outcome, not an
    /// error: a suite goes on with the next entry.
    pub async fn run(
        &self,
        store: &Path,
        node_bin: Option<&Path>,
        interrupt: Interrupt,
        observer: Arc<dyn Observer>,
    ) -> anyhow::Result<Outcome> {
        let started = std::time::Instant::now();
        let opts = self.options(store, node_bin)?;
        let command = format!("faultline {}", shell_words(&opts.to_args()));
        let result = run::run_test(opts, interrupt, observer).await;
        let run_dir = std::fs::canonicalize(store.join("latest")).ok();
        let (exit_code, judgement) = match (&result, &run_dir) {
            (Ok(code), Some(dir)) => {
                let judgement = scenarios::judge(self.expect, self.probes, dir)
                    .unwrap_or_else(|e| Judgement::failed(format!("cannot judge the run: {e:#}")));
                (*code, judgement)
            }
            (Err(error), _) => (
                EXIT_HARNESS_FAILED,
                Judgement::failed(format!("the run failed: {error:#}")),
            ),
            (Ok(code), None) => (
                *code,
                Judgement::failed("the run left no directory".to_string()),
            ),
        };
        if let Err(error) = result {
            if error.downcast_ref::<run::Interrupted>().is_some() {
                return Err(error);
            }
        }
        Ok(Outcome {
            entry: self.clone(),
            exit_code,
            run_dir,
            judgement,
            duration_ms: started.elapsed().as_millis() as u64,
            command,
        })
    }
}

/// Arguments joined for a shell, quoting what needs it.
pub fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
