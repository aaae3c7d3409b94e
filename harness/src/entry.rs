//! One run of a suite or a reproduction: `faultline test` with the given arguments, in this
//! process, into its own store, judged against what it must show. `repro` and `suite` both run
//! their runs through here, so a suite entry and a scenario behave exactly as the same
//! `faultline test` command typed by hand (which each prints, for a replay).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Parser;

use crate::cli::{Cli, Command};
use crate::run::{self, Interrupt};
use crate::scenarios::{self, Expect, Judgement};

/// What to run and what it must show.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Unique within a suite; the run's directory name in the store.
    pub name: String,
    /// `faultline test` arguments, without `--store`, `--name` and `--schedule`.
    pub args: Vec<String>,
    /// A schedule's text, written beside the run and passed as `--schedule`.
    pub schedule: Option<&'static str>,
    pub expect: Expect,
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
    /// The full argument list given to `faultline test`.
    fn test_args(&self, store: &Path, node_bin: Option<&Path>) -> anyhow::Result<Vec<String>> {
        let mut args: Vec<String> = vec!["test".into(), "--name".into(), self.name.clone()];
        args.extend(["--store".into(), store.display().to_string()]);
        if let Some(text) = self.schedule {
            let dir = store.join("schedules");
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let path = dir.join(format!("{}.txt", self.name));
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            args.extend(["--schedule".into(), path.display().to_string()]);
        }
        if let Some(bin) = node_bin {
            args.extend(["--node-bin".into(), bin.display().to_string()]);
        }
        args.extend(self.args.iter().cloned());
        Ok(args)
    }

    /// Runs the entry and judges it. An entry that could not run is a failed outcome, not an
    /// error: a suite goes on with the next entry.
    pub async fn run(
        &self,
        store: &Path,
        node_bin: Option<&Path>,
        interrupt: Interrupt,
    ) -> anyhow::Result<Outcome> {
        let started = std::time::Instant::now();
        let args = self.test_args(store, node_bin)?;
        let command = format!("faultline {}", shell_words(&args));
        let cli = Cli::try_parse_from(std::iter::once("faultline".to_string()).chain(args))
            .map_err(|e| crate::cli::BadArgs(format!("entry {}: {e}", self.name)))?;
        let Command::Test(test) = cli.command else {
            unreachable!("the arguments start with `test`")
        };
        let opts = test.validate()?;
        let result = run::run_test(opts, interrupt).await;
        let run_dir = std::fs::canonicalize(store.join("latest")).ok();
        let (exit_code, judgement) = match (&result, &run_dir) {
            (Ok(code), Some(dir)) => {
                let judgement = scenarios::judge(self.expect, dir).unwrap_or_else(|e| Judgement {
                    passed: false,
                    detail: format!("cannot judge the run: {e:#}"),
                });
                (*code, judgement)
            }
            (Err(error), _) => (
                255,
                Judgement {
                    passed: false,
                    detail: format!("the run failed: {error:#}"),
                },
            ),
            (Ok(code), None) => (
                *code,
                Judgement {
                    passed: false,
                    detail: "the run left no directory".to_string(),
                },
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
