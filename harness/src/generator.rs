//! The generators: what happens next in the chaos phase. A schedule's steps in order (each
//! `at` step not before its time), or the random nemesis: every `--nemesis-interval`, a seeded
//! choice between a new fault that keeps at most `--max-faulty` brokers faulty and healing one
//! in force. Fault steps go to the executor (`nemesis`), client steps to `ops`; the generator
//! itself touches neither the cluster nor the history.

use std::collections::BTreeSet;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use tokio::sync::watch;

use crate::cluster::TopicSpec;
use crate::fault::Fault;
use crate::nemesis::Nemesis;
use crate::node::Node;
use crate::ops::ScheduleClient;
use crate::proxy::Delay;
use crate::schedule::{Action, LinkSpec, NetworkPartitionSpec, Step, Target, TopicPartition};
use crate::supervisor::{KillSignal, ProcState};

/// The fault kinds of `--nemesis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    Kill,
    Pause,
    Delay,
    Partition,
}

impl FaultKind {
    pub const ALL: [FaultKind; 4] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Delay,
        FaultKind::Partition,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Delay => "delay",
            FaultKind::Partition => "partition",
        }
    }

    /// Parses `kill,pause,delay,partition`, `all` or `none` (`latency` is accepted for `delay`).
    pub fn parse_list(text: &str) -> Result<Vec<FaultKind>, String> {
        match text.trim() {
            "all" => return Ok(FaultKind::ALL.to_vec()),
            "none" | "" => return Ok(Vec::new()),
            _ => {}
        }
        let mut kinds = BTreeSet::new();
        for word in text.split(',').map(str::trim) {
            // `latency` is the word of the first releases; `delay` is the one used everywhere.
            let word = if word == "latency" { "delay" } else { word };
            let kind = FaultKind::ALL
                .into_iter()
                .find(|k| k.as_str() == word)
                .ok_or_else(|| {
                    format!(
                        "unknown nemesis {word:?} (known: kill, pause, delay, partition, all, none)"
                    )
                })?;
            kinds.insert(kind);
        }
        Ok(kinds.into_iter().collect())
    }
}

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

#[derive(Debug, Clone)]
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

/// The random nemesis: every `interval`, a seeded weighted choice between a new fault (if it
/// keeps at most `max_faulty` brokers faulty) and healing one fault in force.
pub async fn run_random(
    nemesis: &Nemesis,
    config: &RandomNemesis,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    if config.kinds.is_empty() {
        return Ok(());
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(config.interval) => {}
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
        let Some(fault) = choose(nemesis, config).await else {
            continue;
        };
        nemesis.apply_and_record(&fault).await?;
    }
}

/// How many random actions `choose` tries before it falls back to a heal: roles resolve to
/// different nodes, so a second try may fit the budget where the first did not.
const CHOOSE_TRIES: usize = 3;

async fn choose(nemesis: &Nemesis, config: &RandomNemesis) -> Option<Fault> {
    let heals = nemesis.heals_available().await;
    let heal_now = !heals.is_empty() && nemesis.rng(|r| r.gen_bool(0.5));
    if heal_now {
        return nemesis.rng(|r| heals.choose(r).cloned());
    }
    let delayed = nemesis.delayed();
    for _ in 0..CHOOSE_TRIES {
        let action = nemesis.rng(|r| random_action(r, config, nemesis.topics()));
        if delayed && matches!(action, Action::Delay { .. }) {
            // Latency is already in force; piling more on teaches nothing new.
            continue;
        }
        let Ok(mut faults) = nemesis.resolve(&action).await else {
            continue;
        };
        let fault = faults.pop()?;
        if let Fault::Pause { node } | Fault::Kill { node, .. } = &fault {
            // Pausing a paused node or killing a dead one would teach nothing.
            if nemesis.cluster().supervisor.state(*node).await != Some(ProcState::Running) {
                continue;
            }
        }
        if nemesis.faulty_after(&fault).await.len() <= config.max_faulty as usize {
            return Some(fault);
        }
    }
    nemesis.rng(|r| heals.choose(r).cloned())
}

fn random_target(rng: &mut StdRng, config: &RandomNemesis, topics: &[TopicSpec]) -> Target {
    let topic = &topics[rng.gen_range(0..topics.len())];
    let tp = TopicPartition {
        topic: topic.name.clone(),
        partition: rng.gen_range(0..topic.partitions),
    };
    match config
        .targets
        .choose(rng)
        .copied()
        .unwrap_or(TargetKind::Random)
    {
        TargetKind::Random => Target::Random,
        TargetKind::Leader => Target::Leader(Some(tp)),
        TargetKind::Follower => Target::Follower(Some(tp)),
        TargetKind::Controller => Target::Node(Node::Controller),
    }
}

fn random_action(rng: &mut StdRng, config: &RandomNemesis, topics: &[TopicSpec]) -> Action {
    let kind = *config.kinds.choose(rng).expect("kinds is not empty");
    match kind {
        FaultKind::Kill => Action::Kill {
            target: random_target(rng, config, topics),
            signal: config.kill_signal,
        },
        FaultKind::Pause => Action::Pause {
            target: random_target(rng, config, topics),
        },
        FaultKind::Delay => {
            let delay_ms = *[20u64, 50, 100, 200].choose(rng).expect("not empty");
            let delay = Delay {
                delay_ms,
                jitter_ms: delay_ms / 4,
            };
            Action::Delay {
                links: LinkSpec::All,
                delay,
            }
        }
        FaultKind::Partition => {
            let spec = match rng.gen_range(0..4) {
                0 => NetworkPartitionSpec::Isolate(random_target(rng, config, topics)),
                1 => NetworkPartitionSpec::Halves,
                2 => NetworkPartitionSpec::Bridge,
                _ => NetworkPartitionSpec::OneWayRandom,
            };
            Action::NetworkPartition(spec)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nemesis_words_parse_with_latency_as_an_alias_of_delay() {
        assert_eq!(
            FaultKind::parse_list("all").unwrap(),
            FaultKind::ALL.to_vec()
        );
        assert_eq!(
            FaultKind::parse_list("latency,kill").unwrap(),
            vec![FaultKind::Kill, FaultKind::Delay]
        );
        assert_eq!(
            FaultKind::parse_list("delay").unwrap(),
            vec![FaultKind::Delay]
        );
        assert!(FaultKind::parse_list("none").unwrap().is_empty());
        let error = FaultKind::parse_list("flood").unwrap_err();
        assert!(error.contains("unknown nemesis \"flood\""), "{error}");
    }
}
