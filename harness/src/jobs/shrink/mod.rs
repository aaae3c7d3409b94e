//! `faultline shrink RUN` (docs/shrink.md): the smallest schedule that still shows a stored
//! run's anomaly on the same configuration. It reads the run (`input`), cuts the recorded
//! schedule down in phases — the steps the explanations point at, delta debugging over the
//! steps (`ddmin`), earlier times, a lower rate (candidates from `plan`) — replaying every
//! candidate as real runs (`replay`) until the budget ends, and writes `RUN/shrunk/`
//! (`outputs`). It never changes anything else of the run. It does not judge runs beyond "the
//! anomaly is there" (`input::shown`), and it does not parse the command line: the UI hands it
//! the parser for the replay line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use faultline_checker::AnomalyKind;
use serde::Serialize;
use tokio::sync::watch;

use crate::test::error::{bad, EXIT_INVALID, EXIT_VALID};
use crate::test::run::{Interrupt, Interrupted};

mod ddmin;
mod input;
mod outputs;
mod plan;
mod replay;

pub use input::ReplayParser;

use ddmin::Ddmin;
use input::Input;
use plan::{Candidate, Change, Evidence, Named};
use replay::{Progress, Replayer, Verdict};

/// Where `move_to_front` puts the first kept step (or earlier, when the run's first step was):
/// the random nemesis starts its first fault after one interval, 2 s by default, so the
/// clients have written something by then.
const LEAD: Duration = Duration::from_secs(2);

/// What the stop channel says when the budget has run out.
const BUDGET: &str = "the shrink budget";

/// `faultline shrink`'s options.
#[derive(Debug, Clone)]
pub struct Options {
    pub run: PathBuf,
    /// Default: the run's first anomaly kind with a non-zero count.
    pub anomaly: Option<AnomalyKind>,
    /// A candidate counts when this many replays all show the anomaly.
    pub confirm: u32,
    pub jobs: usize,
    pub budget: Duration,
    /// Replace an existing `RUN/shrunk/`.
    pub force: bool,
    pub node_bin: Option<PathBuf>,
}

/// Half the cores, at least one: each replay is a cluster of processes and a harness.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// One phase's figures, for shrink.json.
#[derive(Debug, Clone, Serialize)]
struct PhaseFigures {
    phase: &'static str,
    candidates: usize,
    replays: u32,
    steps_after: usize,
    elapsed_ms: u64,
}

/// When the smallest schedule shrank, for shrink.json.
#[derive(Debug, Clone, Copy, Serialize)]
struct Point {
    elapsed_ms: u64,
    steps: usize,
    replays: u32,
}

/// The state of one shrink.
struct Shrinker {
    input: Input,
    original: Candidate,
    /// The smallest candidate that counted (the original until one does).
    best: Candidate,
    /// What is known about each kept step, by id.
    evidence: BTreeMap<usize, Evidence>,
    replayer: Replayer,
    phases: Vec<PhaseFigures>,
    timeline: Vec<Point>,
}

/// Runs `faultline shrink`. Exit 0 when a smaller schedule counted, 1 when none did; Ctrl-C
/// writes the outputs and returns `Interrupted`.
pub async fn shrink(
    options: Options,
    parse: ReplayParser,
    interrupt: Interrupt,
) -> anyhow::Result<i32> {
    if options.confirm == 0 {
        return Err(bad("--confirm must be at least 1"));
    }
    if options.jobs == 0 {
        return Err(bad("--jobs must be at least 1"));
    }
    if options.budget.is_zero() {
        return Err(bad("--budget must be more than 0"));
    }
    let input = input::read(
        &options.run,
        options.anomaly,
        options.node_bin.as_deref(),
        parse,
    )?;
    let out = input.run_dir.join("shrunk");
    prepare(&out, options.force)?;
    let (stop_tx, stop) = watch::channel(None);
    let stop_tx = Arc::new(stop_tx);
    let watchers = [
        tokio::spawn(forward(interrupt, stop_tx.clone())),
        tokio::spawn(budget(options.budget, stop_tx.clone())),
    ];
    let mut shrinker = Shrinker::new(input, &options, out.join("candidates"), stop.clone());
    shrinker.say_start(&out);
    let result = shrinker.run().await;
    for watcher in watchers {
        watcher.abort();
    }
    let reason = *stop.borrow();
    let written = outputs::write(&out, &shrinker, &options, reason)?;
    result?;
    println!("{}", written.summary);
    println!("replay: {}", written.replay);
    if reason.is_some_and(|r| r != BUDGET) {
        return Err(Interrupted(out).into());
    }
    Ok(if shrinker.shrunk() {
        EXIT_VALID
    } else {
        EXIT_INVALID
    })
}

/// `RUN/shrunk/` must not exist, unless `force` says to replace it.
fn prepare(out: &std::path::Path, force: bool) -> anyhow::Result<()> {
    if out.exists() {
        if !force {
            return Err(bad(format!(
                "{} exists (an earlier shrink); pass --force to replace it",
                out.display()
            )));
        }
        std::fs::remove_dir_all(out).with_context(|| format!("removing {}", out.display()))?;
    }
    let candidates = out.join("candidates");
    std::fs::create_dir_all(&candidates)
        .with_context(|| format!("creating {}", candidates.display()))
}

/// Ctrl-C or SIGTERM stops the shrink the way the budget does, keeping the best so far.
async fn forward(mut interrupt: Interrupt, stop: Arc<watch::Sender<Option<&'static str>>>) {
    if let Ok(signal) = interrupt.wait_for(|s| s.is_some()).await {
        let signal = *signal;
        set_once(&stop, signal);
    }
}

async fn budget(budget: Duration, stop: Arc<watch::Sender<Option<&'static str>>>) {
    tokio::time::sleep(budget).await;
    set_once(&stop, Some(BUDGET));
}

/// The first reason to stop is the one remembered.
fn set_once(stop: &watch::Sender<Option<&'static str>>, reason: Option<&'static str>) {
    stop.send_if_modified(|current| {
        if current.is_none() && reason.is_some() {
            *current = reason;
            true
        } else {
            false
        }
    });
}

impl Shrinker {
    fn new(input: Input, options: &Options, dir: PathBuf, stop: Interrupt) -> Shrinker {
        let limit = Duration::from_millis(input.config.time_limit_ms);
        let original = Candidate {
            steps: input.steps.clone(),
            time_limit: limit,
            rate: input.config.rate,
            change: Change::Original,
        };
        let replayer = Replayer {
            request: input.request.clone(),
            dir,
            class: input.class,
            confirm: options.confirm,
            jobs: options.jobs,
            stop,
            progress: Arc::new(Progress::new(options.budget, original.steps.len())),
            tried: Vec::new(),
        };
        Shrinker {
            best: original.clone(),
            original,
            input,
            evidence: BTreeMap::new(),
            replayer,
            phases: Vec::new(),
            timeline: Vec::new(),
        }
    }

    fn say_start(&self, out: &std::path::Path) {
        self.replayer.progress.say(&format!(
            "keeping {} ({} in the run) on {}; a candidate counts when {} of {} replays show it; \
             {} at a time; candidates in {}",
            self.input.class.as_str(),
            input::shown(&self.input.results, self.input.class),
            self.input.run_dir.display(),
            self.replayer.confirm,
            self.replayer.confirm,
            self.replayer.jobs,
            out.join("candidates").display()
        ));
    }

    fn stopped(&self) -> bool {
        self.replayer.stop.borrow().is_some()
    }

    /// True when a candidate smaller than the run's schedule counted.
    fn shrunk(&self) -> bool {
        self.best.change != Change::Original
    }

    async fn run(&mut self) -> anyhow::Result<()> {
        for phase in [Phase::Causal, Phase::Ddmin, Phase::Earlier, Phase::Rate] {
            if self.stopped() {
                break;
            }
            let progress = self.replayer.progress.clone();
            let (tried, replays) = (
                self.replayer.tried.len(),
                progress.replays.load(Ordering::Relaxed),
            );
            let started = progress.elapsed();
            match phase {
                Phase::Causal => self.causal().await?,
                Phase::Ddmin => self.ddmin().await?,
                Phase::Earlier => self.earlier().await?,
                Phase::Rate => self.rate().await?,
            }
            self.phases.push(PhaseFigures {
                phase: phase.name(),
                candidates: self.replayer.tried.len() - tried,
                replays: progress.replays.load(Ordering::Relaxed) - replays,
                steps_after: self.best.steps.len(),
                elapsed_ms: (progress.elapsed() - started).as_millis() as u64,
            });
        }
        Ok(())
    }

    /// Tries `batch`; adopts the first candidate that counts, learns from those that did
    /// not.
    async fn try_batch(&mut self, phase: Phase, batch: &[Candidate]) -> anyhow::Result<Batch> {
        let mut outcome = Batch::default();
        if batch.is_empty() {
            return Ok(outcome);
        }
        let (winner, verdicts) = self.replayer.first(phase.name(), batch).await?;
        for (index, verdict) in &verdicts {
            if !verdict.passed && !verdict.cancelled && verdict.replays > 0 {
                self.learn(&batch[*index], verdict);
                outcome.failed.push(*index);
            }
        }
        let Some(index) = winner else {
            return Ok(outcome);
        };
        outcome.winner = Some(index);
        self.best = batch[index].clone();
        let progress = &self.replayer.progress;
        progress
            .best
            .store(self.best.steps.len(), Ordering::Relaxed);
        self.timeline.push(Point {
            elapsed_ms: progress.elapsed().as_millis() as u64,
            steps: self.best.steps.len(),
            replays: progress.replays.load(Ordering::Relaxed),
        });
        progress.say(&format!("kept: {}", batch[index].change.describe()));
        Ok(outcome)
    }

    /// A candidate without some steps did not count: each of those steps is needed, as far
    /// as that candidate can tell.
    fn learn(&mut self, candidate: &Candidate, verdict: &Verdict) {
        let kept: BTreeSet<usize> = candidate.steps.iter().map(|s| s.id).collect();
        let dropped: Vec<usize> = self
            .best
            .steps
            .iter()
            .map(|s| s.id)
            .filter(|id| !kept.contains(id))
            .collect();
        if dropped.is_empty() {
            return;
        }
        let evidence = Evidence {
            dropped_with: dropped.len() - 1,
            reproduced: verdict.reproduced,
            replays: verdict.replays,
        };
        for id in dropped {
            let known = self.evidence.get(&id);
            if known.is_none_or(|k| evidence.stronger_than(k)) {
                self.evidence.insert(id, evidence);
            }
        }
    }

    /// The steps the explanations point at, smallest candidate first: those touching the
    /// brokers of the earliest explained anomaly up to its time; every step up to that time;
    /// those touching any explanation's brokers up to the latest time.
    async fn causal(&mut self) -> anyhow::Result<()> {
        let mut named: Vec<Named> = self
            .input
            .results
            .explanations
            .iter()
            .filter(|e| e.kind == self.input.class)
            .map(|e| {
                let mut named = plan::named_in(&e.sentence);
                named.brokers.extend(e.acked_by);
                named
            })
            .filter(|n| !n.brokers.is_empty())
            .collect();
        named.sort_by_key(|n| n.latest.unwrap_or(Duration::MAX));
        let Some(first) = named.first().cloned() else {
            return Ok(());
        };
        let mut all = Named::default();
        for n in &named {
            all.brokers.extend(&n.brokers);
            all.latest = match (all.latest, n.latest) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
        let first_time = Named {
            brokers: Default::default(),
            latest: first.latest,
        };
        let (steps, rate, limit) = (
            &self.original.steps,
            self.original.rate,
            self.original.time_limit,
        );
        let mut batch: Vec<Candidate> = Vec::new();
        for n in [&first, &first_time, &all] {
            if let Some(c) = plan::causal(steps, n, rate, limit) {
                if !batch.iter().any(|b| b.steps == c.steps) {
                    batch.push(c);
                }
            }
        }
        batch.sort_by_key(|c| c.steps.len());
        self.try_batch(Phase::Causal, &batch).await?;
        Ok(())
    }

    /// When the first kept step runs late, tries the schedule moved to the front: every later
    /// replay is shorter by as much.
    async fn move_to_front(&mut self) -> anyhow::Result<()> {
        let lead = self
            .original
            .steps
            .iter()
            .find_map(|s| s.at)
            .unwrap_or_default()
            .min(LEAD);
        if let Some(moved) = plan::to_front(&self.best, lead, self.original.time_limit) {
            self.try_batch(Phase::Ddmin, &[moved]).await?;
        }
        Ok(())
    }

    /// Delta debugging, in two passes: over units (a fault with its heal, `plan::units`)
    /// from halves down to single units, then over single steps, for what a unit cannot
    /// drop alone (a heal without its fault, or a fault without its heal). The second pass
    /// skips a step a single-step candidate already showed to be needed.
    async fn ddmin(&mut self) -> anyhow::Result<()> {
        self.move_to_front().await?;
        let units = plan::units(&self.best.steps);
        if units.len() > 1 {
            self.reduce(units, Ddmin::new).await?;
        }
        let singles: Vec<Vec<usize>> = self.best.steps.iter().map(|s| vec![s.id]).collect();
        self.reduce(singles, Ddmin::singles).await?;
        Ok(())
    }

    /// One pass of delta debugging over `units` (each a set of step ids dropped together),
    /// starting at `start`'s granularity.
    async fn reduce(
        &mut self,
        units: Vec<Vec<usize>>,
        start: fn(Vec<usize>) -> Ddmin,
    ) -> anyhow::Result<()> {
        let mut reduction = start((0..units.len()).collect());
        while !reduction.done() && !self.stopped() {
            let chunks: Vec<Vec<usize>> = reduction
                .round()
                .into_iter()
                .filter(|chunk| !self.known_needed(chunk, &units))
                .collect();
            let batch: Vec<Candidate> = chunks
                .iter()
                .map(|chunk| {
                    let mut ids: Vec<usize> =
                        chunk.iter().flat_map(|u| units[*u].clone()).collect();
                    ids.sort_unstable();
                    let steps = self
                        .best
                        .steps
                        .iter()
                        .filter(|s| !ids.contains(&s.id))
                        .cloned()
                        .collect();
                    plan::with_steps(
                        steps,
                        self.best.rate,
                        self.original.time_limit,
                        Change::Drop { ids },
                    )
                })
                .collect();
            match self.try_batch(Phase::Ddmin, &batch).await?.winner {
                Some(index) => {
                    reduction.dropped(&chunks[index]);
                    if !self.stopped() {
                        self.move_to_front().await?;
                    }
                }
                None if !self.stopped() => reduction.none_dropped(),
                None => {}
            }
        }
        Ok(())
    }

    /// A chunk of one single-step unit that a candidate without that step alone already
    /// showed to be needed.
    fn known_needed(&self, chunk: &[usize], units: &[Vec<usize>]) -> bool {
        match chunk {
            [unit] => match units[*unit].as_slice() {
                [id] => self.evidence.get(id).is_some_and(|e| e.dropped_with == 0),
                _ => false,
            },
            _ => false,
        }
    }

    /// Earlier times: the largest gaps halved first; a gap whose halving did not count is
    /// not tried again.
    async fn earlier(&mut self) -> anyhow::Result<()> {
        let mut failed: BTreeSet<usize> = BTreeSet::new();
        while !self.stopped() {
            let batch = plan::earlier(&self.best, &failed, self.original.time_limit);
            if batch.is_empty() {
                break;
            }
            let outcome = self.try_batch(Phase::Earlier, &batch).await?;
            for index in outcome.failed {
                if let Change::Earlier { id, .. } = batch[index].change {
                    failed.insert(id);
                }
            }
        }
        Ok(())
    }

    /// A lower rate, halving while it still counts.
    async fn rate(&mut self) -> anyhow::Result<()> {
        if self.input.config.concurrency == 0 {
            return Ok(());
        }
        while !self.stopped() {
            let Some(lower) = plan::lower_rate(&self.best) else {
                break;
            };
            if self
                .try_batch(Phase::Rate, &[lower])
                .await?
                .winner
                .is_none()
            {
                break;
            }
        }
        Ok(())
    }
}

/// The phases, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Causal,
    Ddmin,
    Earlier,
    Rate,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Causal => "causal",
            Phase::Ddmin => "ddmin",
            Phase::Earlier => "earlier",
            Phase::Rate => "rate",
        }
    }
}

/// What a batch showed: the candidate that counted, and those that ran and did not.
#[derive(Debug, Default)]
struct Batch {
    winner: Option<usize>,
    failed: Vec<usize>,
}
