//! Replaying candidates as real runs: each replay is `faultline test` run in this process
//! (`run::run_test`, as `entry` runs a suite's entries) with the run's own settings, the
//! candidate's schedule, time limit and rate, into the candidate's own store under
//! `RUN/shrunk/candidates/`. A candidate counts only when every one of its `confirm` replays
//! shows the anomaly; the first replay that does not ends it, since the others could no
//! longer make it count. A batch runs `jobs` candidates at once; the first to count wins and
//! the rest are cancelled (healed and stopped like an interrupted run). Ctrl-C and the end of
//! the budget reach every run through the same interrupt.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use faultline_checker::{AnomalyKind, Results};
use faultline_workloads::workload::ClientContext;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::input::shown;
use super::plan::{self, schedule_text, showed, Candidate, Item};
use crate::duration::format_duration;
use crate::test::observer::{Finisher, Observer, Phase};
use crate::test::options::TestRequest;
use crate::test::run::{self, Interrupt, Interrupted};

/// What a run hears when another candidate of its batch already counted.
const CANCELLED: &str = "the shrink (another candidate reproduced)";

/// What the replays of one candidate showed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    /// Replays that showed the anomaly.
    pub reproduced: u32,
    /// Replays that ran to the end (a failed run counts: it showed nothing).
    pub replays: u32,
    /// Every one of the `confirm` replays showed it.
    pub passed: bool,
    /// Cut short by another candidate's success, Ctrl-C or the budget.
    pub cancelled: bool,
    /// The anomaly's count in each replay that ran to the end.
    pub counts: Vec<u64>,
    /// How long its replays took, one after another.
    pub elapsed_ms: u64,
    pub runs: Vec<PathBuf>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// One candidate tried, as shrink.json lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Tried {
    pub number: usize,
    pub phase: &'static str,
    pub change: String,
    pub steps: usize,
    pub time_limit_ms: u64,
    pub rate: f64,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// The counters the progress lines show, shared by every running candidate.
pub struct Progress {
    pub started: Instant,
    pub budget: Duration,
    pub steps_before: usize,
    /// The smallest schedule that counted so far.
    pub best: AtomicUsize,
    /// Replays that ran to the end.
    pub replays: AtomicU32,
    /// Runs cut short.
    pub cancelled: AtomicU32,
}

impl Progress {
    pub fn new(budget: Duration, steps_before: usize) -> Progress {
        Progress {
            started: Instant::now(),
            budget,
            steps_before,
            best: AtomicUsize::new(steps_before),
            replays: AtomicU32::new(0),
            cancelled: AtomicU32::new(0),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// One line on stderr: where the shrink is, then what `what` says.
    pub fn say(&self, what: &str) {
        let elapsed = Duration::from_secs(self.elapsed().as_secs());
        eprintln!(
            "faultline: shrink [{} of {}]: {} (from {}), {} replays — {what}",
            format_duration(elapsed),
            format_duration(self.budget),
            plan::count_steps(self.best.load(Ordering::Relaxed)),
            self.steps_before,
            self.replays.load(Ordering::Relaxed),
        );
    }
}

/// Runs candidates' replays.
pub struct Replayer {
    /// The run's settings (its replay line), with the node binary set.
    pub request: TestRequest,
    /// `RUN/shrunk/candidates`: candidate N's schedule and runs in `cNNN/`.
    pub dir: PathBuf,
    pub class: AnomalyKind,
    pub confirm: u32,
    pub jobs: usize,
    /// Set by Ctrl-C or the end of the budget.
    pub stop: Interrupt,
    pub progress: Arc<Progress>,
    /// Every candidate started, in order.
    pub tried: Vec<Tried>,
}

/// One candidate's work, owned by its task.
struct Job {
    number: usize,
    candidate: Candidate,
    request: TestRequest,
    dir: PathBuf,
    class: AnomalyKind,
    confirm: u32,
    progress: Arc<Progress>,
}

impl Replayer {
    /// Tries `batch` in order, `jobs` candidates at a time, until one counts; cancels the
    /// others still running. Returns the index of the one that counted, if any, and each
    /// started candidate's verdict by index.
    pub async fn first(
        &mut self,
        phase: &'static str,
        batch: &[Candidate],
    ) -> anyhow::Result<(Option<usize>, Vec<(usize, Verdict)>)> {
        let mut running: JoinSet<(usize, Verdict)> = JoinSet::new();
        let mut cancels: Vec<(usize, Arc<watch::Sender<Option<&'static str>>>)> = Vec::new();
        let (mut next, mut winner, mut verdicts) = (0, None, Vec::new());
        let mut numbers: Vec<(usize, usize)> = Vec::new();
        loop {
            while running.len() < self.jobs
                && next < batch.len()
                && winner.is_none()
                && self.stop.borrow().is_none()
            {
                let number = self.tried.len() + numbers.len() + 1;
                let (cancel, interrupt) = linked(&self.stop);
                let job = self.job(number, batch[next].clone());
                running.spawn(async move { (next, job.evaluate(interrupt).await) });
                cancels.push((next, cancel));
                numbers.push((next, number));
                next += 1;
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            let (index, verdict) = joined.context("a candidate's replay task failed")?;
            cancels.retain(|(i, _)| *i != index);
            if verdict.passed && winner.is_none() {
                winner = Some(index);
                for (_, cancel) in &cancels {
                    let _ = cancel.send(Some(CANCELLED));
                }
            }
            verdicts.push((index, verdict));
        }
        verdicts.sort_by_key(|(i, _)| *i);
        for (index, verdict) in &verdicts {
            let number = numbers
                .iter()
                .find(|(i, _)| i == index)
                .map_or(0, |(_, number)| *number);
            let candidate = &batch[*index];
            self.tried.push(Tried {
                number,
                phase,
                change: candidate.change.describe(),
                steps: candidate.steps.len(),
                time_limit_ms: candidate.time_limit.as_millis() as u64,
                rate: candidate.rate,
                verdict: verdict.clone(),
            });
        }
        self.tried.sort_by_key(|t| t.number);
        Ok((winner, verdicts))
    }

    fn job(&self, number: usize, candidate: Candidate) -> Job {
        Job {
            number,
            candidate,
            request: self.request.clone(),
            dir: self.dir.join(format!("c{number:03}")),
            class: self.class,
            confirm: self.confirm,
            progress: self.progress.clone(),
        }
    }
}

/// A run's own interrupt: set when `stop` is, or when its batch cancels it through the
/// returned sender. The forwarding task ends with the run (when every receiver is gone).
fn linked(stop: &Interrupt) -> (Arc<watch::Sender<Option<&'static str>>>, Interrupt) {
    let (tx, rx) = watch::channel(*stop.borrow());
    let tx = Arc::new(tx);
    let (forward, mut stop) = (tx.clone(), stop.clone());
    tokio::spawn(async move {
        tokio::select! {
            Ok(signal) = stop.wait_for(|s| s.is_some()) => {
                let signal = *signal;
                let _ = forward.send(signal);
            }
            _ = forward.closed() => {}
        }
    });
    (tx, rx)
}

impl Job {
    /// The candidate's verdict, timed.
    async fn evaluate(self, interrupt: Interrupt) -> Verdict {
        let started = Instant::now();
        let mut verdict = self.replays(interrupt).await;
        verdict.elapsed_ms = started.elapsed().as_millis() as u64;
        verdict
    }

    /// Up to `confirm` replays, one after another, ending at the first that does not show
    /// the anomaly.
    async fn replays(&self, interrupt: Interrupt) -> Verdict {
        let mut verdict = Verdict::default();
        let schedule = match self.write_schedule() {
            Ok(path) => path,
            Err(error) => {
                verdict.errors.push(format!("{error:#}"));
                return verdict;
            }
        };
        for replay in 1..=self.confirm {
            if interrupt.borrow().is_some() {
                verdict.cancelled = true;
                break;
            }
            match self.replay(replay, &schedule, interrupt.clone()).await {
                Ok((run_dir, count)) => {
                    verdict.replays += 1;
                    verdict.counts.push(count);
                    verdict.runs.push(run_dir);
                    self.progress.replays.fetch_add(1, Ordering::Relaxed);
                    self.report(replay, &format!("{count}"));
                    if count == 0 {
                        break;
                    }
                    verdict.reproduced += 1;
                }
                Err(error) if error.downcast_ref::<Interrupted>().is_some() => {
                    verdict.cancelled = true;
                    self.progress.cancelled.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(error) => {
                    verdict.replays += 1;
                    verdict.counts.push(0);
                    verdict.errors.push(format!("{error:#}"));
                    self.progress.replays.fetch_add(1, Ordering::Relaxed);
                    self.report(replay, &format!("the run failed ({error:#}), counted as 0"));
                    break;
                }
            }
        }
        verdict.passed = verdict.reproduced == self.confirm;
        verdict
    }

    fn report(&self, replay: u32, shown: &str) {
        self.progress.say(&format!(
            "candidate {} ({}: {}, time limit {}, rate {}/s) replay {replay} of {}: {} {}",
            self.number,
            self.candidate.change.describe(),
            plan::count_steps(self.candidate.steps.len()),
            format_duration(self.candidate.time_limit),
            self.candidate.rate,
            self.confirm,
            self.class.as_str(),
            shown,
        ));
    }

    /// `cNNN/schedule.txt`: the candidate's steps, with what it changed as a comment.
    fn write_schedule(&self) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let path = self.dir.join("schedule.txt");
        let header = [format!(
            "shrink candidate {}: {} ({})",
            self.number,
            self.candidate.change.describe(),
            plan::count_steps(self.candidate.steps.len())
        )];
        let text = schedule_text(&header, &self.candidate.steps, &|_: &Item| {
            format!(
                "does a replay without it still show {}?",
                showed(self.class)
            )
        });
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// One replay: a real run into `cNNN/rK/`; returns its directory and how many anomalies of
    /// the class it showed.
    async fn replay(
        &self,
        replay: u32,
        schedule: &Path,
        interrupt: Interrupt,
    ) -> anyhow::Result<(PathBuf, u64)> {
        let mut request = self.request.clone();
        request.name = Some(format!("r{replay}"));
        request.store = self.dir.clone();
        request.schedule = Some(schedule.to_path_buf());
        request.time_limit = Some(self.candidate.time_limit);
        request.rate = self.candidate.rate;
        let opts = request.validate()?;
        let observer = Arc::new(Quiet::default());
        run::run_test(opts, interrupt, observer.clone()).await?;
        let run_dir = observer
            .run_dir()
            .context("the replay created no run directory")?;
        let path = run_dir.join("results.json");
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let results: Results =
            serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
        Ok((run_dir, shown(&results, self.class)))
    }
}

/// The observer of a candidate's run: it remembers where the run went and keeps quiet (the
/// run's messages go to the debug log; no report is written: `faultline report` makes one).
#[derive(Default)]
struct Quiet {
    run_dir: Mutex<Option<PathBuf>>,
}

impl Quiet {
    fn run_dir(&self) -> Option<PathBuf> {
        self.run_dir
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Observer for Quiet {
    fn say(&self, message: &str) {
        tracing::debug!("shrink replay: {message}");
    }

    fn started(&self, run_dir: &Path, _time_limit: Duration) {
        *self.run_dir.lock().unwrap_or_else(|p| p.into_inner()) = Some(run_dir.to_path_buf());
    }

    fn phase(&self, _phase: Phase) {}

    fn clients(&self, _clients: Arc<ClientContext>) {}

    fn finish(&self) {}

    fn checking(&self, _run_dir: &Path) -> Finisher {
        Box::new(|_| {})
    }
}
