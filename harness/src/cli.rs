//! The command line: clap's definitions and their validation into a [`TestOptions`], the one
//! value a run is built from. Every problem with the arguments becomes a [`BadArgs`] naming it
//! (exit 254 in main.rs); nothing here touches processes or the network.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use faultline_checker::history::{Acks, TestConfig};
use faultline_workloads::WorkloadKind;
use serde::{Deserialize, Serialize};

use crate::duration::{duration_arg, format_duration};
use crate::generator::{FaultKind, RandomNemesis, TargetKind};
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
    /// Run a built-in reproduction scenario; exit 0 when its expected outcome happened, 1 when
    /// not (`faultline list` names them; docs/scenarios.md tells their stories).
    Repro(ReproArgs),
    /// Run a suite: `ci` (the correctness gate), `nightly` (random chaos), or `merge` (join
    /// nightly shards).
    Suite {
        #[command(subcommand)]
        suite: SuiteCommand,
    },
    /// List workloads, fault kinds and packages, and scenarios, one a line.
    List,
}

#[derive(Debug, Args)]
pub struct ReproArgs {
    /// The scenario: unclean-election, acks1-leader-failover, legacy-hw-truncation,
    /// epoch-divergence, durable-under-n-1, last-replica-standing, cluster-power-loss, ...
    pub scenario: String,
    /// Where runs are kept (as for `test`).
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// Seeds the run's random choices (a scenario's steps are fixed either way).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The faultline-node binary; default: beside this binary.
    #[arg(long)]
    pub node_bin: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum SuiteCommand {
    /// The CI gate: a fixed matrix with fixed seeds (a few minutes); exit 0 only when every
    /// entry showed what it must.
    Ci(SuiteArgs),
    /// Random configurations and seeds until --duration ends; exit 1 if any run broke its
    /// guarantee.
    Nightly(NightlyArgs),
    /// How well random faults find the losses the weaker settings allow: each loss-prone
    /// configuration and the durable one under --nemesis all, for seeds 1..=N (a benchmark).
    Detection {
        /// Only the configurations whose label contains this (e.g. legacy-hw, acks=1, unclean,
        /// durable); default: all four.
        #[arg(long)]
        only: Option<String>,
        /// Seeds per configuration.
        #[arg(long, default_value_t = 10)]
        seeds: u64,
        /// Each run's chaos phase.
        #[arg(long, default_value = "60s", value_parser = duration_arg)]
        run_time: Duration,
        /// Where the runs and detection.md go.
        #[arg(long, default_value = "store/detection")]
        store: PathBuf,
        /// The faultline-node binary; default: beside this binary.
        #[arg(long)]
        node_bin: Option<PathBuf>,
    },
    /// Merge the suite.json of nightly shards into one index.html, junit.xml and summary.
    Merge {
        /// The shards' store directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where the merged index goes.
        #[arg(long, default_value = "store/nightly-merged")]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct SuiteArgs {
    /// Where the suite's runs, suite.json, junit.xml, summary.md and index.html go.
    #[arg(long, default_value = "store/suite-ci")]
    pub store: PathBuf,
    /// The faultline-node binary; default: beside this binary.
    #[arg(long)]
    pub node_bin: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct NightlyArgs {
    /// How long to keep starting runs (8h, 30m).
    #[arg(long, value_parser = duration_arg)]
    pub duration: Duration,
    /// Each run's chaos phase.
    #[arg(long, default_value = "60s", value_parser = duration_arg)]
    pub run_time: Duration,
    /// The first seed of the stream; default: random (printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run the I-th of N disjoint seed streams (0-based), for a CI matrix: --shard 2/8.
    #[arg(long, default_value = "0/1")]
    pub shard: String,
    /// Keep passing runs whole (true) or only their test.json, results.json and schedule.txt.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub keep_passing: bool,
    /// Where the night's runs and index go.
    #[arg(long, default_value = "store/nightly")]
    pub store: PathBuf,
    /// The faultline-node binary; default: beside this binary.
    #[arg(long)]
    pub node_bin: Option<PathBuf>,
}

impl NightlyArgs {
    pub fn validate(self) -> anyhow::Result<(crate::suite::Nightly, PathBuf, Option<PathBuf>)> {
        let (index, count) = self
            .shard
            .split_once('/')
            .and_then(|(i, n)| Some((i.parse::<u32>().ok()?, n.parse::<u32>().ok()?)))
            .filter(|(i, n)| *n > 0 && i < n)
            .ok_or_else(|| {
                bad(format!(
                    "--shard must be I/N with 0 <= I < N, got {:?}",
                    self.shard
                ))
            })?;
        if self.run_time.is_zero() {
            return Err(bad("--run-time must be more than 0"));
        }
        if let Some(bin) = &self.node_bin {
            find_node_bin(Some(bin))?;
        }
        let nightly = crate::suite::Nightly {
            duration: self.duration,
            run_time: self.run_time,
            seed: self.seed.unwrap_or_else(rand::random),
            shard: (index, count),
            keep_passing: self.keep_passing,
        };
        Ok((nightly, self.store, self.node_bin))
    }
}

/// `faultline list`: one line each.
pub fn list() -> String {
    let mut out = String::from("workloads:\n");
    for (name, what) in [
        (
            "produce",
            "producers send unique values with the chosen acks",
        ),
        (
            "produce-consume",
            "producers, and consumers polling every partition from offset 0",
        ),
    ] {
        out.push_str(&format!("  {name:<22} {what}\n"));
    }
    out.push_str("faults and fault packages (--nemesis; all = every one, weighted):\n");
    for kind in FaultKind::ALL {
        out.push_str(&format!("  {:<22} {}\n", kind.as_str(), kind.describe()));
    }
    out.push_str("scenarios (faultline repro NAME):\n");
    for scenario in crate::scenarios::SCENARIOS {
        out.push_str(&format!("  {:<22} {}\n", scenario.name, scenario.summary));
    }
    out
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
    /// How producers talk to the brokers: http (the node's HTTP API) or kafka (the Kafka wire
    /// protocol, through a second proxied client→broker link per broker).
    #[arg(long, default_value = "http")]
    pub client: String,
    /// Faults of the random nemesis: a list of single faults (kill, pause, delay, partition)
    /// and fault packages (isr-pressure, leader-loss, rolling-restart), or all (every one,
    /// weighted), or none; `faultline list` describes each. `latency` is accepted for `delay`.
    #[arg(long, default_value = "all")]
    pub nemesis: String,
    /// How often the random nemesis starts a fault or package (each then lasts and heals on
    /// its own timers): 500ms, 2s, 1m.
    #[arg(long, default_value = "2s", value_parser = duration_arg, allow_hyphen_values = true)]
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
    /// Put each broker's data dir on its own lazy FUSE mount (faultline-lazyfs), which holds
    /// unfsynced writes in memory, so the power-loss fault can drop them (docs/power-loss.md).
    /// Needs /dev/fuse and root (or fusermount3); default: off.
    #[arg(long)]
    pub lazyfs: bool,
}

/// Settings that only the harness reads. They are stored in test.json's `extra`, so a run's
/// test.json alone describes it whole.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HarnessSettings {
    pub nemesis_targets: Vec<String>,
    /// `kill` (SIGKILL) or `term` (SIGTERM).
    pub kill_signal: String,
    pub request_timeout_ms: u64,
    pub recovery_timeout_ms: u64,
    #[serde(default)]
    pub node_args: Vec<String>,
    /// `http` or `kafka`: how producers talk to the brokers.
    #[serde(default = "default_client")]
    pub client: String,
    /// `--lazyfs`: the brokers' data dirs are lazy mounts (the checker reads this key, see
    /// `faultline_checker::config::EXTRA_LAZYFS`).
    #[serde(default)]
    pub lazyfs: bool,
    pub node_bin: PathBuf,
    /// Set when the run starts.
    #[serde(default)]
    pub cluster_id: String,
    pub harness_version: String,
}

fn default_client() -> String {
    "http".to_string()
}

/// How the workload's producers reach the brokers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    Http,
    Kafka,
}

impl std::str::FromStr for ClientKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "http" => Ok(ClientKind::Http),
            "kafka" => Ok(ClientKind::Kafka),
            other => Err(format!("unknown client {other:?} (known: http, kafka)")),
        }
    }
}

/// A validated test: the [`TestConfig`] that test.json records (the one source of every
/// setting the checker reads) and the harness's own settings, with the typed values the run
/// needs parsed from them once.
#[derive(Debug, Clone)]
pub struct TestOptions {
    pub config: TestConfig,
    pub harness: HarnessSettings,
    pub workload: WorkloadKind,
    pub client: ClientKind,
    pub nemesis: RandomNemesis,
    /// The schedule's steps when `config.schedule` names one.
    pub steps: Option<Vec<Step>>,
    pub store: PathBuf,
    /// With `--lazyfs`: the `faultline-lazyfs` binary, found and probed at validation.
    pub lazyfs_bin: Option<PathBuf>,
}

impl TestOptions {
    /// Parses the typed parts of a configuration (built from the command line, or read back
    /// from a stored test.json). Every error names the setting.
    pub fn from_config(
        config: TestConfig,
        harness: HarnessSettings,
        steps: Option<Vec<Step>>,
        store: PathBuf,
    ) -> anyhow::Result<TestOptions> {
        let workload: WorkloadKind = config
            .workload
            .parse()
            .map_err(|e: String| bad(format!("--workload: {e}")))?;
        let client: ClientKind = harness
            .client
            .parse()
            .map_err(|e: String| bad(format!("--client: {e}")))?;
        let kinds = if config.schedule.is_some() {
            Vec::new()
        } else {
            FaultKind::parse_list(&config.nemesis.join(","))
                .map_err(|e| bad(format!("--nemesis: {e}")))?
        };
        let targets = TargetKind::parse_list(&harness.nemesis_targets.join(","))
            .map_err(|e| bad(format!("--nemesis-targets: {e}")))?;
        let kill_signal: KillSignal = harness
            .kill_signal
            .parse()
            .map_err(|e: String| bad(format!("--kill-signal: {e}")))?;
        if kinds.contains(&FaultKind::PowerLoss) && !harness.lazyfs {
            return Err(bad(
                "--nemesis power-loss needs --lazyfs (the brokers' data dirs on lazy mounts)",
            ));
        }
        let nemesis = RandomNemesis {
            kinds,
            interval: Duration::from_millis(config.nemesis_interval_ms),
            max_faulty: config.max_faulty,
            targets,
            kill_signal,
        };
        let lazyfs_bin = if harness.lazyfs {
            crate::lazy::probe().map_err(bad)?;
            Some(crate::lazy::find_lazyfs_bin().map_err(bad)?)
        } else {
            None
        };
        Ok(TestOptions {
            config,
            harness,
            workload,
            client,
            nemesis,
            steps,
            store,
            lazyfs_bin,
        })
    }

    pub fn time_limit(&self) -> Duration {
        Duration::from_millis(self.config.time_limit_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.harness.request_timeout_ms)
    }

    pub fn recovery_timeout(&self) -> Duration {
        Duration::from_millis(self.harness.recovery_timeout_ms)
    }

    /// The first (today: the only) topic of the run.
    pub fn topic(&self) -> &str {
        &self.config.topics[0]
    }

    /// The `faultline test` arguments that run this test again with `schedule` in place of its
    /// nemesis: every setting spelled out (none left to defaults that may change), no store or
    /// node binary (the replayer's own), so replaying a replay prints the same line.
    pub fn replay_args(&self, schedule: &Path) -> Vec<String> {
        let c = &self.config;
        let h = &self.harness;
        let mut args: Vec<String> = vec!["test".into()];
        let mut flag = |name: &str, value: String| {
            args.push(format!("--{name}"));
            args.push(value);
        };
        flag("name", c.name.clone());
        flag("nodes", c.nodes.to_string());
        flag("topic", self.topic().to_string());
        flag("partitions", c.partitions.to_string());
        flag("replication-factor", c.replication_factor.to_string());
        flag("acks", c.acks.as_str().to_string());
        flag("min-insync-replicas", c.min_insync_replicas.to_string());
        flag(
            "replica-lag-time-max-ms",
            c.replica_lag_time_max_ms.to_string(),
        );
        flag("replication-protocol", c.replication_protocol.clone());
        flag("workload", c.workload.clone());
        flag("max-faulty", c.max_faulty.to_string());
        flag("kill-signal", h.kill_signal.clone());
        flag("client", h.client.clone());
        flag("time-limit", format_duration(self.time_limit()));
        flag("rate", c.rate.to_string());
        flag("concurrency", c.concurrency.to_string());
        flag("seed", c.seed.to_string());
        flag("request-timeout", format_duration(self.request_timeout()));
        flag("recovery-timeout", format_duration(self.recovery_timeout()));
        flag("schedule", schedule.display().to_string());
        for arg in &h.node_args {
            args.push(format!("--node-arg={arg}"));
        }
        if h.lazyfs {
            args.push("--lazyfs".into());
        }
        if c.unclean_leader_election {
            args.push("--unclean-leader-election".into());
        }
        args
    }

    /// What test.json holds: the configuration with the harness's settings in `extra`.
    pub fn test_json(&self) -> TestConfig {
        let mut config = self.config.clone();
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&self.harness) {
            config.extra.extend(map);
        }
        config
    }
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
        self.client
            .parse::<ClientKind>()
            .map_err(|e: String| bad(format!("--client: {e}")))?;
        let kinds =
            FaultKind::parse_list(&self.nemesis).map_err(|e| bad(format!("--nemesis: {e}")))?;
        // `all` means every fault this run can inject: power loss only on lazy mounts.
        let available = FaultKind::available(self.lazyfs);
        let kinds: Vec<FaultKind> = if self.nemesis.trim() == "all" {
            available.clone()
        } else {
            kinds
        };
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
        let steps = match &self.schedule {
            Some(path) => {
                let steps = read_schedule(path).map_err(bad)?;
                check_schedule_nodes(&steps, self.nodes)?;
                Some(steps)
            }
            None => None,
        };
        let power_loss_step = steps
            .iter()
            .flatten()
            .find(|s| matches!(s.action, crate::schedule::Action::PowerLoss(_)));
        if let (Some(step), false) = (power_loss_step, self.lazyfs) {
            return Err(bad(format!(
                "schedule line {}: power-loss needs --lazyfs (the brokers' data dirs on lazy mounts)",
                step.line
            )));
        }
        if self.concurrency == 0 && steps.is_none() {
            return Err(bad(
                "--concurrency must be at least 1 (0 only with --schedule)",
            ));
        }
        let time_limit = self.time_limit.unwrap_or(if steps.is_some() {
            Duration::ZERO
        } else {
            Duration::from_secs(30)
        });
        let node_bin = find_node_bin(self.node_bin.as_deref())?;
        let nemesis: Vec<String> = if steps.is_some() {
            vec!["schedule".to_string()]
        } else {
            kinds.iter().map(|k| k.as_str().to_string()).collect()
        };
        let nemesis_name = if nemesis.is_empty() {
            "none".to_string()
        } else if kinds == available {
            "all".to_string()
        } else {
            nemesis.join("+")
        };
        let name = self
            .name
            .unwrap_or_else(|| format!("{}-{nemesis_name}", workload.as_str()));
        if name.is_empty() || name.contains('/') || name == "latest" {
            return Err(bad(format!(
                "--name {name:?} cannot be a store directory name"
            )));
        }
        let config = TestConfig {
            name,
            seed: self.seed.unwrap_or_else(rand::random),
            start_unix_ms: 0,
            nodes: self.nodes,
            topics: vec![self.topic],
            partitions: self.partitions,
            replication_factor,
            acks,
            min_insync_replicas,
            unclean_leader_election: self.unclean_leader_election,
            replica_lag_time_max_ms: self.replica_lag_time_max_ms,
            replication_protocol: self.replication_protocol,
            workload: workload.as_str().to_string(),
            nemesis,
            nemesis_interval_ms: self.nemesis_interval.as_millis() as u64,
            max_faulty,
            time_limit_ms: time_limit.as_millis() as u64,
            rate: self.rate,
            concurrency: self.concurrency,
            schedule: self.schedule.map(|p| p.display().to_string()),
            extra: Default::default(),
        };
        let harness = HarnessSettings {
            nemesis_targets: self
                .nemesis_targets
                .split(',')
                .map(|t| t.trim().to_string())
                .collect(),
            kill_signal: self.kill_signal,
            request_timeout_ms: self.request_timeout.as_millis() as u64,
            recovery_timeout_ms: self.recovery_timeout.as_millis() as u64,
            node_args: self.node_args,
            client: self.client,
            lazyfs: self.lazyfs,
            node_bin,
            cluster_id: String::new(),
            harness_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        TestOptions::from_config(config, harness, steps, self.store)
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
            crate::schedule::Action::Produce { .. } | crate::schedule::Action::WaitIsr { .. }
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

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_checker::config::{EXTRA_LAZYFS, EXTRA_NODE_ARGS};

    /// The checker reads `--lazyfs` and the brokers' flags from test.json's `extra` by these
    /// keys (its guarantee excuses power loss without fsync): the harness must write them there.
    #[test]
    fn test_json_holds_what_the_checker_reads_of_power_loss() {
        let cli = Cli::try_parse_from([
            "faultline",
            "test",
            "--node-bin",
            "/bin/sh",
            "--node-arg=--fsync",
        ])
        .unwrap();
        let Command::Test(args) = cli.command else {
            panic!("a test command")
        };
        let config = args.validate().unwrap().test_json();
        assert_eq!(config.extra[EXTRA_LAZYFS], serde_json::json!(false));
        assert_eq!(
            config.extra[EXTRA_NODE_ARGS],
            serde_json::json!(["--fsync"])
        );
        assert!(!config.power_loss_unsynced());
        let mut lazy = config.clone();
        lazy.extra
            .insert(EXTRA_LAZYFS.into(), serde_json::json!(true));
        assert!(!lazy.power_loss_unsynced(), "--fsync keeps every append");
        lazy.extra
            .insert(EXTRA_NODE_ARGS.into(), serde_json::json!([]));
        assert!(lazy.power_loss_unsynced());
    }
}
