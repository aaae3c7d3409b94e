//! A run's description. A [`TestRequest`] is a test as asked for — every setting typed, the
//! ones left to defaults still open — built by the command line (`ui::cli` parses argv into
//! it) or directly by a job. [`TestRequest::validate`] checks it and resolves the defaults into
//! [`TestOptions`], the one value a run is built from, whose [`TestConfig`] is what test.json
//! records. [`TestOptions::to_args`] (in `args`) prints it back as `faultline test` arguments (the replay
//! line); parsing and validating those gives the same options again (a test holds every gate
//! entry, scenario and nightly configuration to that).

use std::path::{Path, PathBuf};
use std::time::Duration;

use faultline_checker::config::{
    Client, FaultKind, HarnessSettings, KafkaVersion, KillSignal, NemesisKind, TestConfig,
    Workload, DEFAULT_RETRIES,
};
use faultline_checker::history::Acks;
use faultline_workloads::ProducerSettings;

use std::sync::Arc;

use crate::cluster::system::SystemFile;
use crate::nemesis::generator::{RandomNemesis, TargetKind};
use crate::nemesis::schedule::{read_schedule, Action, Step};
use crate::test::error::bad;

mod args;
mod choice;

pub use choice::{available_kinds, NemesisChoice};

/// A test as asked for. [`Default`] is `faultline test` with no arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct TestRequest {
    /// The run's directory name in the store; default `<workload>-<nemesis>`.
    pub name: Option<String>,
    pub nodes: u32,
    pub topic: String,
    pub partitions: u32,
    /// Default min(nodes, 3).
    pub replication_factor: Option<u32>,
    pub acks: Acks,
    /// Kafka's `enable.idempotence`: producer ids and sequence numbers (needs acks=all).
    pub idempotence: bool,
    /// Kafka's producer `retries`: re-sends of a send whose attempt failed retriably.
    pub retries: u32,
    /// Default min(2, replication factor).
    pub min_insync_replicas: Option<u32>,
    pub unclean_leader_election: bool,
    pub replica_lag_time_max_ms: u64,
    pub kafka_version: KafkaVersion,
    pub workload: Workload,
    pub client: Client,
    pub nemesis: NemesisChoice,
    pub nemesis_interval: Duration,
    pub nemesis_targets: Vec<TargetKind>,
    /// Default nodes − 1.
    pub max_faulty: Option<u32>,
    pub kill_signal: KillSignal,
    /// Default 30 s, or 0 with a schedule (the schedule decides).
    pub time_limit: Option<Duration>,
    pub rate: f64,
    pub concurrency: u32,
    /// Default: random (printed and stored).
    pub seed: Option<u64>,
    pub schedule: Option<PathBuf>,
    pub store: PathBuf,
    /// Default: `faultline-node` beside this binary.
    pub node_bin: Option<PathBuf>,
    pub request_timeout: Duration,
    pub recovery_timeout: Duration,
    pub node_args: Vec<String>,
    pub lazyfs: bool,
    /// `--system FILE`: a system file's system instead of faultline-node (docs/systems.md).
    pub system: Option<PathBuf>,
}

impl Default for TestRequest {
    fn default() -> TestRequest {
        TestRequest {
            name: None,
            nodes: 3,
            topic: "t".to_string(),
            partitions: 1,
            replication_factor: None,
            acks: Acks::All,
            idempotence: false,
            retries: DEFAULT_RETRIES,
            min_insync_replicas: None,
            unclean_leader_election: false,
            replica_lag_time_max_ms: 1000,
            kafka_version: KafkaVersion::V4_1,
            workload: Workload::Produce,
            client: Client::Http,
            nemesis: NemesisChoice::All,
            nemesis_interval: Duration::from_secs(2),
            nemesis_targets: TargetKind::ALL.to_vec(),
            max_faulty: None,
            kill_signal: KillSignal::Kill,
            time_limit: None,
            rate: 500.0,
            concurrency: 8,
            seed: None,
            schedule: None,
            store: PathBuf::from("store"),
            node_bin: None,
            request_timeout: Duration::from_secs(2),
            recovery_timeout: Duration::from_secs(30),
            node_args: Vec::new(),
            lazyfs: false,
            system: None,
        }
    }
}

/// A validated test: the [`TestConfig`] that test.json records (the one source of every
/// setting, the harness's own in its `extra`) and the values the run needs parsed from it once.
#[derive(Debug, Clone, PartialEq)]
pub struct TestOptions {
    pub config: TestConfig,
    pub nemesis: RandomNemesis,
    /// The schedule's steps when `config.schedule` names one.
    pub steps: Option<Vec<Step>>,
    pub store: PathBuf,
    /// With `--lazyfs`: the `faultline-lazyfs` binary, found and probed at validation.
    pub lazyfs_bin: Option<PathBuf>,
    /// With `--system`: the system file, read and checked at validation.
    pub system: Option<Arc<SystemFile>>,
}

/// The sizes a request may leave to defaults, resolved.
struct Sizes {
    replication_factor: u32,
    min_insync_replicas: u32,
    max_faulty: u32,
}

impl TestRequest {
    /// Checks every setting and resolves the defaults. Every error is a `BadArgs` naming the
    /// option; nothing is started or written.
    pub fn validate(mut self) -> anyhow::Result<TestOptions> {
        let system = self.read_system()?;
        self.check_sizes()?;
        let sizes = self.resolve_sizes()?;
        let steps = self.read_steps()?;
        if self.concurrency == 0 && steps.is_none() {
            return Err(bad(
                "--concurrency must be at least 1 (0 only with --schedule)",
            ));
        }
        let nemesis: Vec<NemesisKind> = match &steps {
            Some(_) => vec![NemesisKind::Schedule],
            None => self
                .nemesis
                .kinds(self.lazyfs, self.client == Client::Kafka)
                .into_iter()
                .map(NemesisKind::Fault)
                .collect(),
        };
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| self.default_name(&nemesis));
        if name.is_empty() || name.contains('/') || name == "latest" {
            return Err(bad(format!(
                "--name {name:?} cannot be a store directory name"
            )));
        }
        let time_limit = self.time_limit.unwrap_or(if steps.is_some() {
            Duration::ZERO
        } else {
            Duration::from_secs(30)
        });
        let harness = self.harness_settings(system.is_some())?;
        if let Some(system) = &system {
            check_system_faults(system, &nemesis, steps.as_deref())?;
        }
        let (services, linked) = match &system {
            Some(system) => (
                system.services.iter().map(|s| s.name.clone()).collect(),
                system.linked_services(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        check_schedule_services(steps.as_deref().unwrap_or_default(), &services, &linked)?;
        let config = TestConfig {
            name,
            seed: self.seed.unwrap_or_else(rand::random),
            start_unix_ms: 0,
            nodes: self.nodes,
            topics: vec![self.topic],
            partitions: self.partitions,
            replication_factor: sizes.replication_factor,
            acks: self.acks,
            idempotence: self.idempotence,
            retries: self.retries,
            min_insync_replicas: sizes.min_insync_replicas,
            unclean_leader_election: self.unclean_leader_election,
            replica_lag_time_max_ms: self.replica_lag_time_max_ms,
            kafka_version: self.kafka_version,
            workload: self.workload,
            nemesis,
            nemesis_interval_ms: self.nemesis_interval.as_millis() as u64,
            max_faulty: sizes.max_faulty,
            time_limit_ms: time_limit.as_millis() as u64,
            rate: self.rate,
            concurrency: self.concurrency,
            schedule: self.schedule.map(|p| p.display().to_string()),
            harness,
            system: system.map(|s| s.info()),
        };
        TestOptions::from_config(config, steps, self.store)
    }

    /// The sizes left to defaults, resolved and checked against each other.
    fn resolve_sizes(&self) -> anyhow::Result<Sizes> {
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
        // n − 1 keeps Kafka's promise in reach; one node has no n − 1 to spare, and a run that
        // may fault nothing would test nothing, so its default is the node itself.
        let max_faulty = self
            .max_faulty
            .unwrap_or(self.nodes.saturating_sub(1).max(1));
        if max_faulty > self.nodes {
            return Err(bad(format!(
                "--max-faulty must be at most --nodes ({}), got {max_faulty}",
                self.nodes
            )));
        }
        Ok(Sizes {
            replication_factor,
            min_insync_replicas,
            max_faulty,
        })
    }

    /// `<workload>-<nemesis>`: `all` for every fault this run can inject, `none`, `schedule`,
    /// or the kinds joined by `+`.
    fn default_name(&self, nemesis: &[NemesisKind]) -> String {
        let every: Vec<NemesisKind> = available_kinds(self.lazyfs, self.client == Client::Kafka)
            .into_iter()
            .map(NemesisKind::Fault)
            .collect();
        let nemesis_name = if nemesis.is_empty() {
            "none".to_string()
        } else if nemesis == every.as_slice() {
            "all".to_string()
        } else {
            let names: Vec<&str> = nemesis.iter().map(|n| n.as_str()).collect();
            names.join("+")
        };
        format!("{}-{nemesis_name}", self.workload.as_str())
    }

    /// With `--system`: the system file, read and checked, and what it decides of the run:
    /// the Kafka client (its only way in) and the number of nodes.
    fn read_system(&mut self) -> anyhow::Result<Option<SystemFile>> {
        let Some(path) = &self.system else {
            return Ok(None);
        };
        let system = SystemFile::load(path).map_err(bad)?;
        // There is no controller to aim at: the `controller` kind aims at the system's
        // services (PostgreSQL under Tansu), or, with none, is dropped.
        if system.services.is_empty() {
            self.nemesis_targets
                .retain(|t| *t != TargetKind::Controller);
        }
        if self.nemesis_targets.is_empty() {
            return Err(bad(format!(
                "--nemesis-targets: controller: {} has no controller and no services",
                system.name
            )));
        }
        self.client = Client::Kafka;
        self.nodes = system.nodes.count;
        Ok(Some(system))
    }

    /// What test.json keeps in its `extra`: the settings only the harness acts on. A system
    /// file's run needs no faultline-node (its path is kept when one is found).
    fn harness_settings(&self, system: bool) -> anyhow::Result<HarnessSettings> {
        let node_bin = match find_node_bin(self.node_bin.as_deref()) {
            Ok(path) => path,
            Err(_) if system => PathBuf::new(),
            Err(e) => return Err(e),
        };
        Ok(HarnessSettings {
            nemesis_targets: self
                .nemesis_targets
                .iter()
                .map(|t| t.as_str().to_string())
                .collect(),
            kill_signal: self.kill_signal,
            request_timeout_ms: self.request_timeout.as_millis() as u64,
            recovery_timeout_ms: self.recovery_timeout.as_millis() as u64,
            node_args: self.node_args.clone(),
            client: self.client,
            lazyfs: self.lazyfs,
            node_bin,
            cluster_id: String::new(),
            harness_version: env!("CARGO_PKG_VERSION").to_string(),
            ..HarnessSettings::default()
        })
    }

    /// The checks that need no default resolved.
    fn check_sizes(&self) -> anyhow::Result<()> {
        if self.nodes == 0 {
            return Err(bad("--nodes must be at least 1"));
        }
        if self.partitions == 0 {
            return Err(bad("--partitions must be at least 1"));
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
        if self.nemesis_targets.is_empty() {
            return Err(bad("--nemesis-targets: no nemesis targets"));
        }
        if self.idempotence && self.kafka_version.hw_truncation() {
            // KIP-98 came with Kafka 0.11.0: a 0.10.2 broker gives no producer id.
            return Err(bad(format!(
                "--idempotence needs Kafka 0.11 or later (KIP-98); --kafka-version {} has no \
                 idempotent producer",
                self.kafka_version
            )));
        }
        if self.idempotence && self.acks != Acks::All {
            // Kafka's producer refuses enable.idempotence with acks other than all
            // (ProducerConfig: "Must set acks to all in order to use the idempotent producer").
            return Err(bad(format!(
                "--idempotence needs --acks all (got --acks {}), as Kafka's idempotent producer does",
                self.acks.as_str()
            )));
        }
        if self.topic.is_empty() || self.topic.contains(['/', ' ']) {
            return Err(bad(format!(
                "--topic {:?} must be non-empty, without '/' or spaces",
                self.topic
            )));
        }
        Ok(())
    }

    /// The schedule's steps, checked against the cluster's brokers and mounts.
    fn read_steps(&self) -> anyhow::Result<Option<Vec<Step>>> {
        let Some(path) = &self.schedule else {
            return Ok(None);
        };
        let steps = read_schedule(path).map_err(bad)?;
        check_schedule_nodes(&steps, self.nodes)?;
        let power_loss_step = steps
            .iter()
            .find(|s| matches!(s.action, Action::PowerLoss(_)));
        if let (Some(step), false) = (power_loss_step, self.lazyfs) {
            return Err(bad(format!(
                "schedule line {}: power-loss needs --lazyfs (the brokers' data dirs on lazy mounts)",
                step.line
            )));
        }
        let message_fault_step = steps.iter().find(|s| s.action.needs_kafka_links());
        if let (Some(step), false) = (message_fault_step, self.client == Client::Kafka) {
            return Err(bad(format!(
                "schedule line {}: `{}` is a message fault, which needs Kafka-aware links: \
                 run with --client kafka (this run's clients speak HTTP, through byte links)",
                step.line, step.action
            )));
        }
        Ok(Some(steps))
    }
}

impl TestOptions {
    /// Parses the typed parts of a configuration (validated from a request, or read back from
    /// a stored test.json). Every error names the setting.
    pub fn from_config(
        config: TestConfig,
        steps: Option<Vec<Step>>,
        store: PathBuf,
    ) -> anyhow::Result<TestOptions> {
        let harness = &config.harness;
        let kinds: Vec<FaultKind> = config
            .nemesis
            .iter()
            .filter_map(|n| match n {
                NemesisKind::Fault(kind) => Some(*kind),
                NemesisKind::Schedule => None,
            })
            .collect();
        let targets = TargetKind::parse_list(&harness.nemesis_targets.join(","))
            .map_err(|e| bad(format!("--nemesis-targets: {e}")))?;
        if kinds.contains(&FaultKind::PowerLoss) && !harness.lazyfs {
            return Err(bad(
                "--nemesis power-loss needs --lazyfs (the brokers' data dirs on lazy mounts)",
            ));
        }
        if kinds.contains(&FaultKind::DropResponse) && harness.client != Client::Kafka {
            return Err(bad(
                "--nemesis drop-response is a message fault, which needs Kafka-aware links: run \
                 with --client kafka (this run's clients speak HTTP, through byte links)",
            ));
        }
        let nemesis = RandomNemesis {
            kinds,
            interval: Duration::from_millis(config.nemesis_interval_ms),
            max_faulty: config.max_faulty,
            targets,
            kill_signal: harness.kill_signal,
        };
        let system = match &config.system {
            Some(info) => Some(Arc::new(SystemFile::load(&info.file).map_err(bad)?)),
            None => None,
        };
        let lazyfs_bin = if harness.lazyfs {
            crate::cluster::lazy::probe().map_err(bad)?;
            Some(crate::cluster::lazy::find_lazyfs_bin(&harness.node_bin).map_err(bad)?)
        } else {
            None
        };
        Ok(TestOptions {
            config,
            nemesis,
            steps,
            store,
            lazyfs_bin,
            system,
        })
    }

    pub fn workload(&self) -> Workload {
        self.config.workload
    }

    pub fn client(&self) -> Client {
        self.config.harness.client
    }

    pub fn time_limit(&self) -> Duration {
        Duration::from_millis(self.config.time_limit_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.config.harness.request_timeout_ms)
    }

    pub fn recovery_timeout(&self) -> Duration {
        Duration::from_millis(self.config.harness.recovery_timeout_ms)
    }

    /// How the run's producers send: its retries and idempotence.
    pub fn producer(&self) -> ProducerSettings {
        ProducerSettings {
            retries: self.config.retries,
            idempotence: self.config.idempotence,
        }
    }

    /// The first (today: the only) topic of the run.
    pub fn topic(&self) -> &str {
        &self.config.topics[0]
    }
}

/// A system file says which faults apply to its system: a random nemesis kind it does not
/// allow, or a schedule naming the controller (it has none), is an error.
fn check_system_faults(
    system: &SystemFile,
    nemesis: &[NemesisKind],
    steps: Option<&[Step]>,
) -> anyhow::Result<()> {
    for kind in nemesis.iter().filter_map(|n| match n {
        NemesisKind::Fault(kind) => Some(*kind),
        NemesisKind::Schedule => None,
    }) {
        if !system.allows(kind) {
            return Err(bad(format!(
                "--nemesis {}: the system file {} does not allow it (its [faults])",
                kind.as_str(),
                system.path.display()
            )));
        }
    }
    for step in steps.unwrap_or_default() {
        let text = step.action.to_string();
        let names_controller = step_words(&text).any(|word| word == "controller");
        if names_controller {
            return Err(bad(format!(
                "schedule line {}: `{text}` names the controller, but {} has none \
                 (a system file's system is reached only by Kafka's protocol)",
                step.line, system.name
            )));
        }
    }
    Ok(())
}

/// The words of a schedule step as written (`partition groups 1 | 2,controller`): what the
/// checks below look for named endpoints in.
fn step_words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c.is_whitespace() || c == ',' || c == '|')
}

/// A schedule may name a service (`service:NAME`) only of a system file's `[[services]]`, and in
/// a partition or a delay only one that brokers reach through links (`{service_link:NAME}`).
fn check_schedule_services(
    steps: &[Step],
    services: &[String],
    linked: &[String],
) -> anyhow::Result<()> {
    for step in steps {
        let text = step.action.to_string();
        let named = step_words(&text).filter_map(|word| word.strip_prefix("service:"));
        let on_links = matches!(
            step.action,
            Action::NetworkPartition(_) | Action::Delay { .. }
        );
        for name in named {
            if !services.iter().any(|s| s == name) {
                let known = if services.is_empty() {
                    "this run has no services (only a system file's [[services]] are)".to_string()
                } else {
                    format!("services: {}", services.join(", "))
                };
                return Err(bad(format!(
                    "schedule line {}: `{text}` names service {name:?}, which this run does not \
                     have ({known})",
                    step.line
                )));
            }
            if on_links && !linked.iter().any(|l| l == name) {
                let reachable = if linked.is_empty() {
                    "this run has no links to services (only a system file's node command \
                     makes them, with {service_link:NAME})"
                        .to_string()
                } else {
                    format!("linked services: {}", linked.join(", "))
                };
                return Err(bad(format!(
                    "schedule line {}: `{text}` names service {name:?}, which no broker reaches \
                     through a link ({reachable})",
                    step.line
                )));
            }
        }
    }
    Ok(())
}

/// A schedule may only name brokers that exist.
fn check_schedule_nodes(steps: &[Step], nodes: u32) -> anyhow::Result<()> {
    for step in steps {
        if let Some(id) = step
            .action
            .brokers()
            .into_iter()
            .find(|id| *id == 0 || *id > nodes)
        {
            return Err(bad(format!(
                "schedule line {}: broker {id} does not exist (brokers are 1..={nodes})",
                step.line
            )));
        }
    }
    Ok(())
}

pub fn find_node_bin(given: Option<&Path>) -> anyhow::Result<PathBuf> {
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
