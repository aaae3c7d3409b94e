//! The command line: clap's definitions, parsed into typed values — a `faultline test` line
//! into a [`TestRequest`] (validated by the test layer into `TestOptions`), the suite and job
//! commands into theirs — and `faultline list`. Every problem with the arguments becomes a
//! `BadArgs` naming it (exit 254); nothing here touches processes or the network.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use faultline_checker::config::{Client, FaultKind, KafkaVersion, KillSignal, Workload};
use faultline_checker::history::Acks;
use faultline_checker::AnomalyKind;

use crate::duration::duration_arg;
use crate::nemesis::generator::TargetKind;
use crate::test::error::bad;
use crate::test::options::{find_node_bin, NemesisChoice, TestOptions, TestRequest};

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
    /// Shrink a stored run's schedule to the fewest steps that still show its anomaly,
    /// replaying each candidate as real runs; writes RUN/shrunk/ (docs/shrink.md). Exit 0
    /// when a smaller schedule counted, 1 when none did.
    Shrink(ShrinkArgs),
}

#[derive(Debug, Args)]
pub struct ShrinkArgs {
    /// The run's directory (store/<test-name>/<start-time>, or store/latest); a store
    /// directory means its latest run.
    pub run_dir: PathBuf,
    /// The anomaly kind to keep (lost, moved, duplicate, divergence, ...); default: the run's
    /// first kind with a non-zero count.
    #[arg(long, value_parser = parse_anomaly_kind)]
    pub anomaly: Option<AnomalyKind>,
    /// A candidate counts only when this many replays all show the anomaly.
    #[arg(long, default_value_t = 2)]
    pub confirm: u32,
    /// Candidates replayed at once; default: half the cores, at least 1.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// How long to shrink; when it ends, the smallest schedule found so far is kept (2m, 10m).
    #[arg(long, default_value = "10m", value_parser = duration_arg)]
    pub budget: Duration,
    /// Replace an existing RUN/shrunk/.
    #[arg(long)]
    pub force: bool,
    /// The faultline-node binary; default: beside this binary.
    #[arg(long)]
    pub node_bin: Option<PathBuf>,
}

impl ShrinkArgs {
    pub fn into_options(self) -> crate::jobs::shrink::Options {
        crate::jobs::shrink::Options {
            run: self.run_dir,
            anomaly: self.anomaly,
            confirm: self.confirm,
            jobs: self.jobs.unwrap_or_else(crate::jobs::shrink::default_jobs),
            budget: self.budget,
            force: self.force,
            node_bin: self.node_bin,
        }
    }
}

/// `--anomaly`: an anomaly kind's name as results.json writes it.
pub fn parse_anomaly_kind(text: &str) -> Result<AnomalyKind, String> {
    AnomalyKind::ALL
        .into_iter()
        .find(|k| k.as_str() == text)
        .ok_or_else(|| {
            let known: Vec<&str> = AnomalyKind::ALL.iter().map(|k| k.as_str()).collect();
            format!(
                "unknown anomaly kind {text:?} (known: {})",
                known.join(", ")
            )
        })
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
    /// Run the scenario under this Kafka version alone (4.1, 3.7, 0.10.2); exit 0 when that
    /// version's expected outcome happened. Default: every version the scenario names.
    #[arg(long, value_parser = parse_kafka_version)]
    pub kafka_version: Option<KafkaVersion>,
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
    /// Only the entries under this Kafka version (4.1, 3.7, 0.10.2); default: all.
    #[arg(long, value_parser = parse_kafka_version)]
    pub kafka_version: Option<KafkaVersion>,
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
    /// Every run under this Kafka version (4.1, 3.7, 0.10.2); default: drawn per run.
    #[arg(long, value_parser = parse_kafka_version)]
    pub kafka_version: Option<KafkaVersion>,
    /// Run the seed stream's configurations in order, without steering toward the probes the
    /// night reached least (docs/detection.md "Probe coverage").
    #[arg(long)]
    pub no_bias: bool,
    /// Draw lazy mounts, with power cuts among the faults, for a quarter of the runs (needs
    /// FUSE: docs/power-loss.md).
    #[arg(long)]
    pub lazyfs: bool,
    /// After the night, shrink each failing run to a minimal schedule (`faultline shrink`,
    /// docs/shrink.md), within this budget each (e.g. 5m); the index links it.
    #[arg(long, value_parser = duration_arg)]
    pub shrink: Option<Duration>,
    /// Where the night's runs and index go.
    #[arg(long, default_value = "store/nightly")]
    pub store: PathBuf,
    /// The faultline-node binary; default: beside this binary.
    #[arg(long)]
    pub node_bin: Option<PathBuf>,
}

impl NightlyArgs {
    pub fn validate(
        self,
    ) -> anyhow::Result<(crate::jobs::suite::Nightly, PathBuf, Option<PathBuf>)> {
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
        let nightly = crate::jobs::suite::Nightly {
            duration: self.duration,
            run_time: self.run_time,
            seed: self.seed.unwrap_or_else(rand::random),
            shard: (index, count),
            keep_passing: self.keep_passing,
            kafka_version: self.kafka_version,
            bias: !self.no_bias,
            lazyfs: self.lazyfs,
            shrink: self.shrink.map(|budget| (budget, replay_parser())),
        };
        Ok((nightly, self.store, self.node_bin))
    }
}

/// The parser `shrink` reads a run's replay line with: this command line's own.
fn replay_parser() -> crate::jobs::shrink::ReplayParser {
    |args: &[String]| parse_test_args(args)
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
        out.push_str(&format!(
            "  {:<22} {}\n",
            kind.as_str(),
            crate::nemesis::packages::describe(kind)
        ));
    }
    out.push_str("scenarios (faultline repro NAME):\n");
    for scenario in crate::jobs::scenarios::SCENARIOS {
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
    pub acks: Acks,
    /// Idempotent producers (Kafka's enable.idempotence, KIP-98): each producer gets a producer
    /// id from the brokers and sends every record with its sequence number, so a retried send
    /// is never appended twice; a duplicate then breaks the guarantee. Needs --acks all
    /// (default: off).
    #[arg(long)]
    pub idempotence: bool,
    /// How many times a producer re-sends a send whose attempt failed retriably (a timeout, a
    /// reset connection, NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT), with
    /// the same value, within the send's delivery timeout of (retries + 1) request timeouts.
    #[arg(long, default_value_t = faultline_checker::config::DEFAULT_RETRIES)]
    pub retries: u32,
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
    /// The Kafka version whose replication rules the nodes follow: 4.1 (Eligible Leader
    /// Replicas), 3.7 (KRaft, leader and broker epochs, no ELR) or 0.10.2 (truncation to the HW
    /// checkpoint, before KIP-101); docs/replication.md "Kafka versions".
    #[arg(long, value_parser = parse_kafka_version, conflicts_with = "replication_protocol")]
    pub kafka_version: Option<KafkaVersion>,
    /// The setting of earlier releases, an alias: current = the default version (4.1),
    /// legacy-hw = 0.10.2.
    #[arg(long, value_parser = ["current", "legacy-hw"])]
    pub replication_protocol: Option<String>,
    /// What clients do: produce or produce-consume.
    #[arg(long, default_value = "produce")]
    pub workload: Workload,
    /// How producers talk to the brokers: http (the node's HTTP API) or kafka (the Kafka wire
    /// protocol, through a second proxied client→broker link per broker).
    #[arg(long, default_value = "http")]
    pub client: Client,
    /// Faults of the random nemesis: a list of single faults (kill, pause, delay, partition)
    /// and fault packages (isr-pressure, leader-loss, rolling-restart; power-loss with
    /// --lazyfs, drop-response with --client kafka), or all (every one this run can inject,
    /// weighted), or none; `faultline list` describes each. `latency` is accepted for `delay`.
    #[arg(long, default_value = "all")]
    pub nemesis: NemesisChoice,
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
    pub kill_signal: KillSignal,
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
    /// Put the Kafka-protocol system a system file describes (docs/systems.md) under faults
    /// instead of faultline-node; implies --client kafka and --nodes from the file.
    #[arg(long)]
    pub system: Option<PathBuf>,
}

/// `--kafka-version`: a version's name (a patch level such as `3.7.0` is accepted); the old
/// protocol words belong to `--replication-protocol`, where `current` means the default.
pub fn parse_kafka_version(text: &str) -> Result<KafkaVersion, String> {
    if matches!(text, "current" | "legacy-hw") {
        return Err(format!(
            "{text:?} is a --replication-protocol value; --kafka-version takes 4.1, 3.7 or 0.10.2"
        ));
    }
    text.parse()
}

/// The version `--kafka-version` or its alias `--replication-protocol` names (the default 4.1
/// when neither is given).
fn version_of(version: Option<KafkaVersion>, protocol: Option<&str>) -> KafkaVersion {
    match (version, protocol) {
        (Some(version), _) => version,
        (None, Some("legacy-hw")) => KafkaVersion::V0_10_2,
        (None, _) => KafkaVersion::default(),
    }
}

impl TestArgs {
    /// The request these arguments make; `validate` checks it.
    pub fn into_request(self) -> anyhow::Result<TestRequest> {
        let nemesis_targets = TargetKind::parse_list(&self.nemesis_targets)
            .map_err(|e| bad(format!("--nemesis-targets: {e}")))?;
        Ok(TestRequest {
            name: self.name,
            nodes: self.nodes,
            topic: self.topic,
            partitions: self.partitions,
            replication_factor: self.replication_factor,
            acks: self.acks,
            idempotence: self.idempotence,
            retries: self.retries,
            min_insync_replicas: self.min_insync_replicas,
            unclean_leader_election: self.unclean_leader_election,
            replica_lag_time_max_ms: self.replica_lag_time_max_ms,
            kafka_version: version_of(self.kafka_version, self.replication_protocol.as_deref()),
            workload: self.workload,
            client: self.client,
            nemesis: self.nemesis,
            nemesis_interval: self.nemesis_interval,
            nemesis_targets,
            max_faulty: self.max_faulty,
            kill_signal: self.kill_signal,
            time_limit: self.time_limit,
            rate: self.rate,
            concurrency: self.concurrency,
            seed: self.seed,
            schedule: self.schedule,
            store: self.store,
            node_bin: self.node_bin,
            request_timeout: self.request_timeout,
            recovery_timeout: self.recovery_timeout,
            node_args: self.node_args,
            lazyfs: self.lazyfs,
            system: self.system,
        })
    }

    /// The validated options of these arguments.
    pub fn validate(self) -> anyhow::Result<TestOptions> {
        self.into_request()?.validate()
    }
}

/// Parses `faultline test` arguments (`args` starts with `test`) into a request, as the
/// binary does: for the round-trip checks of the jobs' arguments, and for `shrink`, which
/// reads a run's settings from its replay line.
pub fn parse_test_args<I, S>(args: I) -> anyhow::Result<TestRequest>
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::try_parse_from(
        std::iter::once("faultline".into()).chain(args.into_iter().map(Into::into)),
    )
    .map_err(|e| bad(clap_message(&e)))?;
    match cli.command {
        Command::Test(args) => args.into_request(),
        _ => Err(bad("not a `faultline test` command line")),
    }
}

/// clap's error in our one voice: its message without its own `error: ` prefix, and the hint
/// it gives (`try '--help'`) on the same line.
pub fn clap_message(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:"))
        .collect();
    let message = lines.join("; ");
    message
        .strip_prefix("error: ")
        .unwrap_or(&message)
        .to_string()
}

#[cfg(test)]
mod tests;
