//! The command line: clap's definitions and their validation into a [`TestOptions`], the one
//! value a run is built from. Every problem with the arguments becomes a [`BadArgs`] naming it
//! (exit 254 in main.rs); nothing here touches processes or the network.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use faultline_checker::history::Acks;
use faultline_workloads::WorkloadKind;

use crate::duration::duration_arg;
use crate::nemesis::{FaultKind, RandomNemesis, TargetKind};
use crate::schedule::{read_schedule, Step};
use crate::supervisor::KillSignal;

/// Bad command-line arguments or inputs named by them: exit 254.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadArgs(pub String);

fn bad(message: impl Into<String>) -> anyhow::Error {
    BadArgs(message.into()).into()
}

#[derive(Debug, Parser)]
#[command(
    name = "faultline",
    version,
    about = "Fault-injection tests for Kafka-style replicated logs",
    after_help = "Environment:\n  RUST_LOG             the harness's log level (tracing), e.g. RUST_LOG=debug; default: warn. \
                  The nodes inherit it.\n  GITHUB_STEP_SUMMARY  when set, test, check and report append the run's Markdown summary to this file.",
    // A later flag overrides an earlier one, so scripts can append overrides.
    args_override_self = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one test: a real cluster under faults; exit code from the verdict.
    Test(Box<TestArgs>),
    /// Re-analyse a stored run (writes results.json and the report again); no cluster needed.
    Check {
        /// The run's directory (store/<test-name>/<start-time>, or store/latest); a store
        /// directory means its latest run.
        run_dir: PathBuf,
    },
    /// Regenerate report.html, junit.xml and summary.md of a stored run, and print its
    /// summary (appended to $GITHUB_STEP_SUMMARY when set). Reads results.json, or checks the
    /// run when it has none.
    Report {
        /// The run's directory (store/<test-name>/<start-time>, or store/latest); a store
        /// directory means its latest run.
        run_dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The test's name (its directory in the store); default: <workload>-<nemesis>.
    #[arg(long)]
    pub name: Option<String>,
    /// Number of brokers (one controller runs besides them).
    #[arg(long, default_value_t = 3)]
    pub nodes: u32,
    /// The topic written and read.
    #[arg(long, default_value = "t")]
    pub topic: String,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// Replicas of each partition; default: min(nodes, 3).
    #[arg(long)]
    pub replication_factor: Option<u32>,
    /// The producers' acks: 0, 1 or all.
    #[arg(long, default_value = "all")]
    pub acks: String,
    /// The topic's min.insync.replicas; default: min(2, replication factor).
    #[arg(long)]
    pub min_insync_replicas: Option<u32>,
    /// Set the topic's unclean.leader.election.enable: an out-of-sync replica may become
    /// leader, losing acknowledged writes (default: off).
    #[arg(long)]
    pub unclean_leader_election: bool,
    /// The brokers' replica.lag.time.max.ms: how long a follower may lag before the leader
    /// drops it from the ISR.
    #[arg(long, default_value_t = 1000)]
    pub replica_lag_time_max_ms: u64,
    /// The brokers' replication protocol: current (KIP-101 leader epochs) or legacy-hw
    /// (truncate to the HW checkpoint, Kafka before 0.11).
    #[arg(long, default_value = "current")]
    pub replication_protocol: String,
    /// What clients do: produce or produce-consume.
    #[arg(long, default_value = "produce")]
    pub workload: String,
    /// Fault kinds of the random nemesis: a list of kill,pause,latency,partition, or all, or
    /// none.
    #[arg(long, default_value = "all")]
    pub nemesis: String,
    /// Time between nemesis decisions (500ms, 3s, 2m).
    #[arg(long, default_value = "3s", value_parser = duration_arg, allow_hyphen_values = true)]
    pub nemesis_interval: Duration,
    /// Whom faults aim at: random,leader,follower,controller.
    #[arg(long, default_value = "random,leader,follower,controller")]
    pub nemesis_targets: String,
    /// Most brokers faulty (killed, paused or cut off) at once; default nodes - 1.
    #[arg(long)]
    pub max_faulty: Option<u32>,
    /// kill (SIGKILL, a crash) or term (SIGTERM, a clean shutdown).
    #[arg(long, default_value = "kill")]
    pub kill_signal: String,
    /// Length of the chaos phase; default 30s, or 0 with --schedule (the schedule decides).
    #[arg(long, value_parser = duration_arg, allow_hyphen_values = true)]
    pub time_limit: Option<Duration>,
    /// Sends per second over all producers.
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
    /// Number of producers.
    #[arg(long, default_value_t = 8)]
    pub concurrency: u32,
    /// Seeds every random choice; default: random (printed and stored).
    #[arg(long)]
    pub seed: Option<u64>,
    /// A schedule file (docs/schedules.md) replacing the random nemesis; default: none.
    #[arg(long)]
    pub schedule: Option<PathBuf>,
    /// Where runs are kept: each run in <store>/<name>/<start-time>/, with <store>/latest
    /// pointing at the newest.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// The faultline-node binary; default: beside this binary.
    #[arg(long)]
    pub node_bin: Option<PathBuf>,
    /// Deadline of every client call.
    #[arg(long, default_value = "2s", value_parser = duration_arg, allow_hyphen_values = true)]
    pub request_timeout: Duration,
    /// How long to wait after healing for every partition to have a leader and a full ISR.
    #[arg(long, default_value = "30s", value_parser = duration_arg, allow_hyphen_values = true)]
    pub recovery_timeout: Duration,
    /// Extra flag passed to every broker (repeatable), e.g. --node-arg=--fsync; default: none.
    #[arg(long = "node-arg", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
}

/// A validated test configuration.
#[derive(Debug, Clone)]
pub struct TestOptions {
    pub name: String,
    pub nodes: u32,
    pub topic: String,
    pub partitions: u32,
    pub replication_factor: u32,
    pub acks: Acks,
    pub min_insync_replicas: u32,
    pub unclean_leader_election: bool,
    pub replica_lag_time_max_ms: u64,
    pub replication_protocol: String,
    pub workload: WorkloadKind,
    pub nemesis: RandomNemesis,
    pub time_limit: Duration,
    pub rate: f64,
    pub concurrency: u32,
    pub seed: u64,
    pub schedule: Option<(PathBuf, Vec<Step>)>,
    pub store: PathBuf,
    pub node_bin: PathBuf,
    pub request_timeout: Duration,
    pub recovery_timeout: Duration,
    pub node_args: Vec<String>,
}

impl TestArgs {
    pub fn validate(self) -> anyhow::Result<TestOptions> {
        if self.nodes == 0 {
            return Err(bad("--nodes must be at least 1"));
        }
        if self.partitions == 0 {
            return Err(bad("--partitions must be at least 1"));
        }
        let replication_factor = self.replication_factor.unwrap_or(self.nodes.min(3));
        if replication_factor == 0 || replication_factor > self.nodes {
            return Err(bad(format!(
                "--replication-factor must be between 1 and --nodes ({}), got {replication_factor}",
                self.nodes
            )));
        }
        let min_insync_replicas = self
            .min_insync_replicas
            .unwrap_or(replication_factor.min(2));
        if min_insync_replicas == 0 || min_insync_replicas > replication_factor {
            return Err(bad(format!(
                "--min-insync-replicas must be between 1 and the replication factor \
                 ({replication_factor}), got {min_insync_replicas}"
            )));
        }
        let acks: Acks = self
            .acks
            .parse()
            .map_err(|e: String| bad(format!("--acks: {e}")))?;
        if !matches!(self.replication_protocol.as_str(), "current" | "legacy-hw") {
            return Err(bad(format!(
                "--replication-protocol must be current or legacy-hw, got {:?}",
                self.replication_protocol
            )));
        }
        let workload: WorkloadKind = self
            .workload
            .parse()
            .map_err(|e: String| bad(format!("--workload: {e}")))?;
        let kinds =
            FaultKind::parse_list(&self.nemesis).map_err(|e| bad(format!("--nemesis: {e}")))?;
        let targets = TargetKind::parse_list(&self.nemesis_targets)
            .map_err(|e| bad(format!("--nemesis-targets: {e}")))?;
        let kill_signal: KillSignal = self
            .kill_signal
            .parse()
            .map_err(|e: String| bad(format!("--kill-signal: {e}")))?;
        let max_faulty = self.max_faulty.unwrap_or(self.nodes - 1);
        if max_faulty > self.nodes {
            return Err(bad(format!(
                "--max-faulty must be at most --nodes ({}), got {max_faulty}",
                self.nodes
            )));
        }
        if self.nemesis_interval.is_zero() {
            return Err(bad("--nemesis-interval must be more than 0"));
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(bad(format!(
                "--rate must be a positive number, got {}",
                self.rate
            )));
        }
        if self.request_timeout.is_zero() {
            return Err(bad("--request-timeout must be more than 0"));
        }
        if self.topic.is_empty() || self.topic.contains(['/', ' ']) {
            return Err(bad(format!(
                "--topic {:?} must be non-empty, without '/' or spaces",
                self.topic
            )));
        }
        let schedule = match &self.schedule {
            Some(path) => {
                let steps = read_schedule(path).map_err(bad)?;
                check_schedule_nodes(&steps, self.nodes)?;
                Some((path.clone(), steps))
            }
            None => None,
        };
        if self.concurrency == 0 && schedule.is_none() {
            return Err(bad(
                "--concurrency must be at least 1 (0 only with --schedule)",
            ));
        }
        let time_limit = self.time_limit.unwrap_or(if schedule.is_some() {
            Duration::ZERO
        } else {
            Duration::from_secs(30)
        });
        let node_bin = find_node_bin(self.node_bin.as_deref())?;
        let nemesis_name = if schedule.is_some() {
            "schedule".to_string()
        } else if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join("+")
        };
        let name = self
            .name
            .unwrap_or_else(|| format!("{}-{nemesis_name}", workload.as_str()));
        if name.is_empty() || name.contains('/') || name == "latest" {
            return Err(bad(format!(
                "--name {name:?} cannot be a store directory name"
            )));
        }
        Ok(TestOptions {
            name,
            nodes: self.nodes,
            topic: self.topic,
            partitions: self.partitions,
            replication_factor,
            acks,
            min_insync_replicas,
            unclean_leader_election: self.unclean_leader_election,
            replica_lag_time_max_ms: self.replica_lag_time_max_ms,
            replication_protocol: self.replication_protocol,
            workload,
            nemesis: RandomNemesis {
                kinds,
                interval: self.nemesis_interval,
                max_faulty,
                targets,
                kill_signal,
            },
            time_limit,
            rate: self.rate,
            concurrency: self.concurrency,
            seed: self.seed.unwrap_or_else(rand::random),
            schedule,
            store: self.store,
            node_bin,
            request_timeout: self.request_timeout,
            recovery_timeout: self.recovery_timeout,
            node_args: self.node_args,
        })
    }
}

/// A schedule may only name brokers that exist.
fn check_schedule_nodes(steps: &[Step], nodes: u32) -> anyhow::Result<()> {
    for step in steps {
        let text = step.action.to_string();
        // Every broker id a step names appears as a number token (or inside A,B / A->B lists).
        let named = text
            .split(|c: char| c.is_whitespace() || c == ',' || c == '|' || c == '-' || c == '>')
            .filter_map(|w| w.parse::<u32>().ok());
        let counts_only = matches!(
            step.action,
            crate::faults::Action::Produce { .. } | crate::faults::Action::WaitIsr { .. }
        );
        if counts_only {
            continue;
        }
        for id in named {
            if id == 0 || id > nodes {
                return Err(bad(format!(
                    "schedule line {}: broker {id} does not exist (brokers are 1..={nodes})",
                    step.line
                )));
            }
        }
    }
    Ok(())
}

fn find_node_bin(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|d| d.join("faultline-node")))
            .ok_or_else(|| bad("cannot locate faultline-node; pass --node-bin"))?,
    };
    if !path.is_file() {
        return Err(bad(format!(
            "node binary {} not found (build it with `cargo build -p faultline-node`, or pass --node-bin)",
            path.display()
        )));
    }
    Ok(path)
}
