//! The generators: what happens next in the chaos phase. A schedule's steps in order (each
//! `at` step not before its time), or the random nemesis: every `--nemesis-interval`, a seeded
//! weighted choice of a single fault or a fault package (`packages`), whose plan then runs on
//! its own timers, overlapping others within `--max-faulty`. Fault steps go to the executor
//! (a schedule's outside the budget, the random nemesis's through `Nemesis::try_apply`, which
//! keeps it), client steps to `ops`; the generator itself touches neither the proxies nor the
//! processes, and how a fault is healed is `Fault::heal`'s.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rand::seq::SliceRandom;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::nemesis::executor::{Admission, Nemesis};
use crate::nemesis::fault::Fault;
use crate::nemesis::ops::ScheduleClient;
use crate::nemesis::packages::{self, Plan, PlanContext, PlanStep};
use crate::nemesis::schedule::{Action, Step, TopicPartition};
use faultline_checker::config::KillSignal;

pub use crate::nemesis::packages::FaultKind;

/// Whom the random nemesis aims at (`--nemesis-targets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TargetKind {
    Random,
    Leader,
    Follower,
    Controller,
}

impl TargetKind {
    pub const ALL: [TargetKind; 4] = [
        TargetKind::Random,
        TargetKind::Leader,
        TargetKind::Follower,
        TargetKind::Controller,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Random => "random",
            TargetKind::Leader => "leader",
            TargetKind::Follower => "follower",
            TargetKind::Controller => "controller",
        }
    }

    pub fn parse_list(text: &str) -> Result<Vec<TargetKind>, String> {
        let mut kinds = BTreeSet::new();
        for word in text.split(',').map(str::trim) {
            let kind = TargetKind::ALL
                .into_iter()
                .find(|k| k.as_str() == word)
                .ok_or_else(|| {
                    format!("unknown target {word:?} (known: random, leader, follower, controller)")
                })?;
            kinds.insert(kind);
        }
        if kinds.is_empty() {
            return Err("no nemesis targets".to_string());
        }
        Ok(kinds.into_iter().collect())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RandomNemesis {
    pub kinds: Vec<FaultKind>,
    pub interval: Duration,
    pub max_faulty: u32,
    pub targets: Vec<TargetKind>,
    pub kill_signal: KillSignal,
}

/// Runs a schedule's steps in order, each `at` step not before its time (counted from the
/// start of the chaos phase). Returns early when `stop` is set.
pub async fn run_schedule(
    nemesis: &Nemesis,
    client: &ScheduleClient,
    steps: &[Step],
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let start = client.recorder.chaos_start();
    for step in steps {
        if let Some(at) = step.at {
            tokio::select! {
                _ = tokio::time::sleep_until(start + at) => {}
                _ = stop.wait_for(|s| *s) => return Ok(()),
            }
        }
        if *stop.borrow() {
            return Ok(());
        }
        let performed = async {
            match &step.action {
                Action::Produce { .. }
                | Action::Wait(_)
                | Action::WaitLeader { .. }
                | Action::WaitIsr { .. } => client.perform(&step.action).await,
                fault => nemesis.perform(fault).await,
            }
        };
        tokio::select! {
            done = performed => done?,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
    }
    Ok(())
}

/// At most this many plans run at once; with `--max-faulty` it bounds how faults overlap.
const MAX_CONCURRENT_PLANS: usize = 3;
/// How long the runner waits for running plans to notice the end of the chaos phase.
const PLAN_STOP_DEADLINE: Duration = Duration::from_secs(10);

/// The random nemesis: every `interval`, a seeded weighted choice of a fault kind or package
/// among `config.kinds`, whose plan then runs on its own timers — faults lasting and healing
/// by themselves, overlapping up to `--max-faulty` brokers and [`MAX_CONCURRENT_PLANS`].
pub async fn run_random(
    nemesis: Arc<Nemesis>,
    config: RandomNemesis,
    ctx: PlanContext,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    if config.kinds.is_empty() {
        return Ok(());
    }
    let mut plans: JoinSet<std::io::Result<()>> = JoinSet::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(config.interval) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        while let Some(done) = plans.try_join_next() {
            done.map_err(std::io::Error::other)??;
        }
        if plans.len() >= MAX_CONCURRENT_PLANS {
            continue;
        }
        let kind = nemesis.rng(|r| {
            *config
                .kinds
                .choose_weighted(r, |k| packages::weight(*k))
                .expect("kinds is not empty and weights are positive")
        });
        let plan = nemesis.rng(|r| packages::plan(kind, r, &ctx));
        let runner = PlanRunner {
            nemesis: nemesis.clone(),
            max_faulty: config.max_faulty,
            stop: stop.clone(),
        };
        plans.spawn(async move { runner.run(plan).await });
    }
    let finished = tokio::time::timeout(PLAN_STOP_DEADLINE, async {
        while let Some(done) = plans.join_next().await {
            done.map_err(std::io::Error::other)??;
        }
        Ok::<(), std::io::Error>(())
    })
    .await;
    match finished {
        Ok(result) => result,
        Err(_) => {
            // The heal after the chaos phase undoes whatever the aborted plans left in force.
            plans.abort_all();
            Ok(())
        }
    }
}

/// Runs one plan: offers its faults to the executor within the fault budget, remembers how to
/// heal each, and heals them at `HealMine` (or when the plan cannot go on).
struct PlanRunner {
    nemesis: Arc<Nemesis>,
    max_faulty: u32,
    stop: watch::Receiver<bool>,
}

impl PlanRunner {
    async fn run(mut self, plan: Plan) -> std::io::Result<()> {
        self.nemesis.recorder().record(
            "package",
            json!({
                "kind": plan.kind.as_str(),
                "variant": plan.variant,
                "topic": plan.partition.topic,
                "partition": plan.partition.partition,
            }),
            None,
        )?;
        let mut mine: Vec<Fault> = Vec::new();
        for step in &plan.steps {
            if *self.stop.borrow() {
                return Ok(());
            }
            let go_on = match step {
                PlanStep::Fault(action) => self.fault(action, &mut mine).await?,
                PlanStep::Wait(d) => self.sleep(*d).await,
                PlanStep::WaitIsr { size, timeout } => {
                    self.wait_isr(&plan.partition, *size, *timeout).await
                }
                PlanStep::WaitNewLeader { timeout } => {
                    self.wait_new_leader(&plan.partition, *timeout).await
                }
                PlanStep::HealMine => {
                    self.heal(&mut mine).await?;
                    true
                }
            };
            if !go_on {
                if !*self.stop.borrow() {
                    self.heal(&mut mine).await?;
                }
                return Ok(());
            }
        }
        Ok(())
    }

    /// Applies a fault step; `false` when the plan cannot go on (the step could not be
    /// resolved, or the executor refused one of its faults: over the budget, its target not
    /// running, or another plan's network partition in force).
    async fn fault(&self, action: &Action, mine: &mut Vec<Fault>) -> std::io::Result<bool> {
        let faults = match self.nemesis.resolve(action).await {
            Ok(faults) => faults,
            Err(error) => {
                self.nemesis.record_skipped(action, &error)?;
                return Ok(false);
            }
        };
        for fault in faults {
            let admission = self.nemesis.try_apply(&fault, self.max_faulty).await?;
            if let Admission::Refused(_) = admission {
                return Ok(false);
            }
            // A heal step heals this plan's network partition: it needs no heal of its own.
            if fault == Fault::Heal {
                mine.retain(|f| *f != Fault::Heal);
            }
            mine.extend(fault.heal());
        }
        Ok(true)
    }

    async fn heal(&self, mine: &mut Vec<Fault>) -> std::io::Result<()> {
        // Heals in reverse: the last fault applied is the first undone.
        while let Some(heal) = mine.pop() {
            self.nemesis.apply_unbudgeted(&heal).await?;
        }
        Ok(())
    }

    /// Sleeps; `false` if the chaos phase ended first.
    async fn sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.stop.wait_for(|s| *s) => false,
        }
    }

    /// Waits (bounded) for the partition's ISR to reach `size`; goes on either way unless the
    /// chaos phase ended.
    async fn wait_isr(&mut self, tp: &TopicPartition, size: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let nemesis = self.nemesis.clone();
        tokio::select! {
            _ = nemesis.cluster().wait_isr(tp, size, deadline) => true,
            _ = self.stop.wait_for(|s| *s) => false,
        }
    }

    /// Waits (bounded) until the partition's leader differs from the one it has now; goes on
    /// either way unless the chaos phase ended.
    async fn wait_new_leader(&mut self, tp: &TopicPartition, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let nemesis = self.nemesis.clone();
        tokio::select! {
            _ = nemesis.cluster().wait_new_leader(tp, deadline) => true,
            _ = self.stop.wait_for(|s| *s) => false,
        }
    }
}
