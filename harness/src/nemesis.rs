//! The nemesis: performs faults and schedule steps on the cluster, and picks faults at random
//! for a run without a schedule. Every fault and heal is recorded as it is applied — in the
//! history (process `nemesis`, type `info`, with `error` when the action failed) and, with its
//! time and concrete targets, in the run's `schedule.txt`, so a random run can be replayed. A
//! failed action is recorded, never fatal.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_checker::history::{Acks, OpType, Process};
use faultline_workloads::client::Metadata;
use faultline_workloads::workload::send_one;
use faultline_workloads::{ClientContext, ClientProcess, HistoryWriter};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cluster::{Cluster, TopicSpec};
use crate::faults::{Action, Fault, Partition, PartitionSpec, Target, TopicPartition};
use crate::network::LinkSelector;
use crate::node::{Endpoint, Node};
use crate::proxy::Delay;
use crate::schedule::{format_step, Step};
use crate::supervisor::{KillSignal, ProcState};

/// The fault kinds of `--nemesis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    Kill,
    Pause,
    Latency,
    Partition,
}

impl FaultKind {
    pub const ALL: [FaultKind; 4] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Latency,
        FaultKind::Partition,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Latency => "latency",
            FaultKind::Partition => "partition",
        }
    }

    /// Parses `kill,pause,latency,partition`, `all` or `none`.
    pub fn parse_list(text: &str) -> Result<Vec<FaultKind>, String> {
        match text.trim() {
            "all" => return Ok(FaultKind::ALL.to_vec()),
            "none" | "" => return Ok(Vec::new()),
            _ => {}
        }
        let mut kinds = BTreeSet::new();
        for word in text.split(',').map(str::trim) {
            let kind = FaultKind::ALL
                .into_iter()
                .find(|k| k.as_str() == word)
                .ok_or_else(|| {
                    format!(
                        "unknown nemesis {word:?} (known: kill, pause, latency, partition, all, none)"
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

/// The network faults in force (process faults are the supervisor's to know).
#[derive(Debug, Default)]
struct NetState {
    partition: Option<Partition>,
    delayed: bool,
}

pub struct Nemesis {
    cluster: Arc<Cluster>,
    clients: Arc<ClientContext>,
    history: Arc<HistoryWriter>,
    topics: Vec<TopicSpec>,
    default_acks: Acks,
    /// The schedule's own client process for `produce` steps.
    produce_process: Mutex<ClientProcess>,
    schedule_log: Mutex<std::fs::File>,
    rng: Mutex<StdRng>,
    net: Mutex<NetState>,
    chaos_start: Mutex<Instant>,
}

/// How long a `produce` step waits for a leader before giving up on its remaining records.
const PRODUCE_NO_LEADER_DEADLINE: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(50);

pub struct NemesisParts {
    pub cluster: Arc<Cluster>,
    pub clients: Arc<ClientContext>,
    pub topics: Vec<TopicSpec>,
    pub default_acks: Acks,
    pub produce_process: ClientProcess,
    pub schedule_log: std::fs::File,
    pub rng: StdRng,
}

impl Nemesis {
    pub fn new(parts: NemesisParts) -> Self {
        Nemesis {
            history: parts.clients.history.clone(),
            cluster: parts.cluster,
            clients: parts.clients,
            topics: parts.topics,
            default_acks: parts.default_acks,
            produce_process: Mutex::new(parts.produce_process),
            schedule_log: Mutex::new(parts.schedule_log),
            rng: Mutex::new(parts.rng),
            net: Mutex::new(NetState::default()),
            chaos_start: Mutex::new(Instant::now()),
        }
    }

    /// Marks the start of the chaos phase: `at` times count from here.
    pub fn start_clock(&self) {
        *self.chaos_start.lock().unwrap() = Instant::now();
    }

    fn since_start(&self) -> Duration {
        self.chaos_start.lock().unwrap().elapsed()
    }

    fn rng<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        f(&mut self.rng.lock().unwrap())
    }

    fn log_step(&self, at: Duration, action: &Action, error: Option<&str>) {
        let mut line = format_step(Some(Duration::from_millis(at.as_millis() as u64)), action);
        if let Some(error) = error {
            line.push_str(&format!("  # failed: {}", error.replace('\n', " ")));
        }
        let mut log = self.schedule_log.lock().unwrap();
        let _ = writeln!(log, "{line}");
    }

    fn record(&self, f: &str, value: Value, error: Option<String>) -> std::io::Result<()> {
        self.history
            .append(Process::nemesis(), OpType::Info, f, value, error)?;
        Ok(())
    }

    /// Runs one step: resolves its roles, applies it and records it. Only a history write error
    /// is returned; everything else is recorded as the step's `error`.
    pub async fn perform(&self, action: &Action) -> std::io::Result<()> {
        let at = self.since_start();
        match action {
            Action::Produce { count, acks, to } => {
                self.produce(at, *count, *acks, to.clone()).await
            }
            Action::Wait(_) | Action::WaitLeader { .. } | Action::WaitIsr { .. } => {
                self.wait(at, action).await
            }
            _ => match self.resolve(action).await {
                Ok(faults) => {
                    for fault in faults {
                        self.apply_and_record(&fault).await?;
                    }
                    Ok(())
                }
                Err(error) => {
                    let verb = action.to_string();
                    let f = verb
                        .split_whitespace()
                        .next()
                        .unwrap_or("fault")
                        .to_string();
                    self.log_step(at, action, Some(&error));
                    self.record(&f, json!({ "step": verb }), Some(error))
                }
            },
        }
    }

    /// Applies a concrete fault and records it.
    pub async fn apply_and_record(&self, fault: &Fault) -> std::io::Result<()> {
        let at = self.since_start();
        let result = self.apply(fault).await;
        let error = result.err();
        self.log_step(at, &Action::from(fault.clone()), error.as_deref());
        self.record(fault.f(), fault.value(), error)
    }

    async fn apply(&self, fault: &Fault) -> Result<(), String> {
        let supervisor = &self.cluster.supervisor;
        let network = &self.cluster.network;
        match fault {
            Fault::Kill { node, signal } => supervisor.kill(*node, *signal).await.map_err(err),
            Fault::Start { node } => supervisor.start(*node).await.map(|_| ()).map_err(err),
            Fault::Pause { node } => supervisor.pause(*node).await.map_err(err),
            Fault::Resume { node } => supervisor.resume(*node).await.map_err(err),
            Fault::Delay { links, delay } => {
                if network.delay(*links, *delay) == 0 {
                    return Err(format!("no link matches {links}"));
                }
                let mut net = self.net.lock().unwrap();
                net.delayed = network.links().any(|(_, l)| {
                    let c = l.control();
                    c.forward != Delay::NONE || c.backward != Delay::NONE
                });
                Ok(())
            }
            Fault::Partition { partition, .. } => {
                // A partition replaces the one in force.
                network.heal();
                let cut = network.cut(&partition.cuts());
                self.net.lock().unwrap().partition = Some(partition.clone());
                if cut == 0 {
                    return Err("the partition cuts no link".to_string());
                }
                Ok(())
            }
            Fault::Heal => {
                network.heal();
                self.net.lock().unwrap().partition = None;
                Ok(())
            }
        }
    }

    /// Turns a step into concrete faults, choosing nodes for roles.
    async fn resolve(&self, action: &Action) -> Result<Vec<Fault>, String> {
        let faults = match action {
            Action::Kill { target, signal } => vec![Fault::Kill {
                node: self.resolve_target(target).await?,
                signal: *signal,
            }],
            Action::Pause { target } => vec![Fault::Pause {
                node: self.resolve_target(target).await?,
            }],
            Action::Start { node: Some(node) } => vec![Fault::Start { node: *node }],
            Action::Resume { node: Some(node) } => vec![Fault::Resume { node: *node }],
            Action::Start { node: None } => self
                .nodes_in(|s| matches!(s, ProcState::Down | ProcState::Exited(_)))
                .await
                .into_iter()
                .map(|node| Fault::Start { node })
                .collect(),
            Action::Resume { node: None } => self
                .nodes_in(|s| *s == ProcState::Paused)
                .await
                .into_iter()
                .map(|node| Fault::Resume { node })
                .collect(),
            Action::Delay { links, delay } => vec![Fault::Delay {
                links: *links,
                delay: *delay,
            }],
            Action::Partition(spec) => vec![self.resolve_partition(spec).await?],
            Action::Heal => vec![Fault::Heal],
            Action::Produce { .. }
            | Action::Wait(_)
            | Action::WaitLeader { .. }
            | Action::WaitIsr { .. } => {
                unreachable!("steps without faults are performed directly")
            }
        };
        Ok(faults)
    }

    async fn nodes_in(&self, pred: impl Fn(&ProcState) -> bool) -> Vec<Node> {
        let states = self.cluster.supervisor.states().await;
        states
            .into_iter()
            .filter(|(_, s)| pred(s))
            .map(|(n, _)| n)
            .collect()
    }

    fn first_partition(&self, tp: &Option<TopicPartition>) -> TopicPartition {
        tp.clone().unwrap_or_else(|| TopicPartition {
            topic: self.topics[0].name.clone(),
            partition: 0,
        })
    }

    async fn resolve_target(&self, target: &Target) -> Result<Node, String> {
        match target {
            Target::Node(node) => Ok(*node),
            Target::Random => {
                let running = self.nodes_in(|s| *s == ProcState::Running).await;
                let brokers: Vec<Node> = running
                    .into_iter()
                    .filter(|n| n.broker().is_some())
                    .collect();
                self.rng(|r| brokers.choose(r).copied())
                    .ok_or_else(|| "no running broker".to_string())
            }
            Target::Leader(tp) => {
                let tp = self.first_partition(tp);
                let metadata = self.metadata().await?;
                metadata
                    .partition(&tp.topic, tp.partition)
                    .and_then(|p| p.leader)
                    .map(Node::Broker)
                    .ok_or_else(|| format!("{tp} has no leader"))
            }
            Target::Follower(tp) => {
                let tp = self.first_partition(tp);
                let metadata = self.metadata().await?;
                let p = metadata
                    .partition(&tp.topic, tp.partition)
                    .ok_or_else(|| format!("{tp} is not in the metadata"))?;
                let followers: Vec<u32> = p
                    .replicas
                    .iter()
                    .copied()
                    .filter(|&r| Some(r) != p.leader && metadata.is_alive(r))
                    .collect();
                self.rng(|r| followers.choose(r).copied())
                    .map(Node::Broker)
                    .ok_or_else(|| format!("{tp} has no live follower"))
            }
        }
    }

    async fn metadata(&self) -> Result<Metadata, String> {
        self.cluster
            .metadata()
            .await
            .ok_or_else(|| "the controller did not answer".to_string())
    }

    async fn resolve_partition(&self, spec: &PartitionSpec) -> Result<Fault, String> {
        let brokers: Vec<Endpoint> = self
            .cluster
            .brokers()
            .into_iter()
            .map(Endpoint::broker)
            .collect();
        let (kind, partition) = match spec {
            PartitionSpec::Exact(p) => {
                let kind = match p {
                    Partition::Groups(_) => "groups",
                    Partition::OneWay { .. } => "one-way",
                };
                (kind, p.clone())
            }
            PartitionSpec::Isolate(target) => {
                let node = Endpoint::Node(self.resolve_target(target).await?);
                let mut rest: Vec<Endpoint> = brokers.clone();
                rest.push(Endpoint::CONTROLLER);
                rest.retain(|e| *e != node);
                ("isolate", Partition::Groups(vec![vec![node], rest]))
            }
            PartitionSpec::Halves => ("halves", self.rng(|r| halves(r, brokers))),
            PartitionSpec::Bridge => ("bridge", self.rng(|r| bridge(r, brokers))?),
            PartitionSpec::OneWayRandom => ("one-way", self.rng(|r| one_way(r, brokers))),
        };
        Ok(Fault::Partition {
            kind: kind.to_string(),
            partition,
        })
    }

    async fn produce(
        &self,
        at: Duration,
        count: u32,
        acks: Option<Acks>,
        to: Option<TopicPartition>,
    ) -> std::io::Result<()> {
        let acks = acks.unwrap_or(self.default_acks);
        let tp = self.first_partition(&to);
        let mut process = *self.produce_process.lock().unwrap();
        let mut sent = 0;
        let mut no_leader_since: Option<Instant> = None;
        while sent < count {
            match send_one(&self.clients, &mut process, &tp.topic, tp.partition, acks).await? {
                Some(_) => {
                    sent += 1;
                    no_leader_since = None;
                }
                None => {
                    let since = *no_leader_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > PRODUCE_NO_LEADER_DEADLINE {
                        break;
                    }
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
            }
        }
        *self.produce_process.lock().unwrap() = process;
        let action = Action::Produce {
            count,
            acks: Some(acks),
            to: Some(tp),
        };
        let error = (sent < count).then(|| format!("no leader: sent {sent} of {count}"));
        self.log_step(at, &action, error.as_deref());
        Ok(())
    }

    async fn wait(&self, at: Duration, action: &Action) -> std::io::Result<()> {
        let started = Instant::now();
        let (value, error) = match action {
            Action::Wait(d) => {
                tokio::time::sleep(*d).await;
                (json!({ "until": "time" }), None)
            }
            Action::WaitLeader { node, on, timeout } => {
                let tp = self.first_partition(on);
                let reached = self
                    .cluster
                    .wait_for(started + *timeout, |m| {
                        m.partition(&tp.topic, tp.partition).and_then(|p| p.leader) == Some(*node)
                    })
                    .await;
                let value = json!({ "until": "leader", "node": node, "topic": tp.topic, "partition": tp.partition });
                (value, reached.err().map(|_| "timed out".to_string()))
            }
            Action::WaitIsr { size, on, timeout } => {
                let tp = self.first_partition(on);
                let reached = self
                    .cluster
                    .wait_for(started + *timeout, |m| {
                        m.partition(&tp.topic, tp.partition).map(|p| p.isr.len()) == Some(*size)
                    })
                    .await;
                let value = json!({ "until": "isr", "size": size, "topic": tp.topic, "partition": tp.partition });
                (value, reached.err().map(|_| "timed out".to_string()))
            }
            _ => unreachable!("only waits are waited"),
        };
        let mut value = value;
        value["waited_ms"] = json!(started.elapsed().as_millis() as u64);
        self.log_step(at, action, error.as_deref());
        self.record("wait", value, error)
    }

    /// Heals everything: resumes paused nodes, starts nodes that are down, removes latency and
    /// partitions. Each heal is recorded.
    pub async fn heal_all(&self) -> std::io::Result<()> {
        // A node that ended without being killed is a finding in itself: say so.
        for (node, state) in self.cluster.supervisor.states().await {
            if let ProcState::Exited(status) = state {
                eprintln!(
                    "faultline: node {node} exited on its own ({status}); see {}",
                    self.cluster.node_dir(node).join("node.log").display()
                );
            }
        }
        for node in self.nodes_in(|s| *s == ProcState::Paused).await {
            self.apply_and_record(&Fault::Resume { node }).await?;
        }
        for node in self
            .nodes_in(|s| matches!(s, ProcState::Down | ProcState::Exited(_)))
            .await
        {
            self.apply_and_record(&Fault::Start { node }).await?;
        }
        let (delayed, partitioned) = {
            let net = self.net.lock().unwrap();
            (net.delayed, net.partition.is_some())
        };
        if delayed {
            let fault = Fault::Delay {
                links: LinkSelector::All,
                delay: Delay::NONE,
            };
            self.apply_and_record(&fault).await?;
        }
        if partitioned {
            self.apply_and_record(&Fault::Heal).await?;
        }
        Ok(())
    }

    /// Runs a schedule's steps in order, each `at` step not before its time. Returns early when
    /// `stop` is set.
    pub async fn run_schedule(
        &self,
        steps: &[Step],
        mut stop: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let start = *self.chaos_start.lock().unwrap();
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
            tokio::select! {
                done = self.perform(&step.action) => done?,
                _ = stop.wait_for(|s| *s) => return Ok(()),
            }
        }
        Ok(())
    }

    /// The random nemesis: every `interval`, a seeded weighted choice between a new fault (if
    /// it keeps at most `max_faulty` brokers faulty) and healing one fault in force.
    pub async fn run_random(
        &self,
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
            let Some(fault) = self.choose(config).await else {
                continue;
            };
            self.apply_and_record(&fault).await?;
        }
    }

    async fn heals_available(&self) -> Vec<Fault> {
        let mut heals = Vec::new();
        for node in self.nodes_in(|s| *s == ProcState::Paused).await {
            heals.push(Fault::Resume { node });
        }
        for node in self
            .nodes_in(|s| matches!(s, ProcState::Down | ProcState::Exited(_)))
            .await
        {
            heals.push(Fault::Start { node });
        }
        let net = self
            .net
            .lock()
            .map(|n| (n.delayed, n.partition.is_some()))
            .unwrap();
        if net.0 {
            heals.push(Fault::Delay {
                links: LinkSelector::All,
                delay: Delay::NONE,
            });
        }
        if net.1 {
            heals.push(Fault::Heal);
        }
        heals
    }

    async fn choose(&self, config: &RandomNemesis) -> Option<Fault> {
        let heals = self.heals_available().await;
        let heal_now = !heals.is_empty() && self.rng(|r| r.gen_bool(0.5));
        if heal_now {
            return self.rng(|r| heals.choose(r).cloned());
        }
        // A few tries to find a fault that fits the budget (roles resolve to different nodes).
        let delayed = self.net.lock().unwrap().delayed;
        for _ in 0..3 {
            let action = self.rng(|r| random_action(r, config, &self.topics));
            if delayed && matches!(action, Action::Delay { .. }) {
                // Latency is already in force; piling more on teaches nothing new.
                continue;
            }
            let Ok(mut faults) = self.resolve(&action).await else {
                continue;
            };
            let fault = faults.pop()?;
            if let Fault::Pause { node } | Fault::Kill { node, .. } = &fault {
                // Pausing a paused node or killing a dead one would teach nothing.
                if self.cluster.supervisor.state(*node).await != Some(ProcState::Running) {
                    continue;
                }
            }
            if self.faulty_after(&fault).await.len() <= config.max_faulty as usize {
                return Some(fault);
            }
        }
        self.rng(|r| heals.choose(r).cloned())
    }

    /// The brokers that would be faulty (down, paused or cut off) after `fault`.
    async fn faulty_after(&self, fault: &Fault) -> BTreeSet<u32> {
        let mut faulty: BTreeSet<u32> = self
            .nodes_in(|s| *s != ProcState::Running)
            .await
            .into_iter()
            .filter_map(Node::broker)
            .collect();
        let partition = self.net.lock().unwrap().partition.clone();
        match fault {
            Fault::Kill { node, .. } | Fault::Pause { node } => faulty.extend(node.broker()),
            Fault::Partition { partition, .. } => faulty.extend(partition.faulty_brokers()),
            _ => {}
        }
        if !matches!(fault, Fault::Partition { .. }) {
            faulty.extend(partition.map(|p| p.faulty_brokers()).unwrap_or_default());
        }
        faulty
    }
}

fn err(error: impl std::fmt::Display) -> String {
    error.to_string()
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
        FaultKind::Latency => {
            let delay_ms = *[20u64, 50, 100, 200].choose(rng).expect("not empty");
            let delay = Delay {
                delay_ms,
                jitter_ms: delay_ms / 4,
            };
            Action::Delay {
                links: LinkSelector::All,
                delay,
            }
        }
        FaultKind::Partition => {
            let spec = match rng.gen_range(0..4) {
                0 => PartitionSpec::Isolate(random_target(rng, config, topics)),
                1 => PartitionSpec::Halves,
                2 => PartitionSpec::Bridge,
                _ => PartitionSpec::OneWayRandom,
            };
            Action::Partition(spec)
        }
    }
}

/// A minority of brokers against the majority; the controller joins a random side.
fn halves(rng: &mut StdRng, mut brokers: Vec<Endpoint>) -> Partition {
    brokers.shuffle(rng);
    let minority_len = brokers.len() / 2;
    let mut minority: Vec<Endpoint> = brokers[..minority_len].to_vec();
    let mut majority: Vec<Endpoint> = brokers[minority_len..].to_vec();
    if rng.gen_bool(0.5) || minority.is_empty() {
        minority.push(Endpoint::CONTROLLER);
    } else {
        majority.push(Endpoint::CONTROLLER);
    }
    Partition::Groups(vec![minority, majority])
}

/// Two sides that cannot reach each other; one broker and the controller reach both.
fn bridge(rng: &mut StdRng, mut brokers: Vec<Endpoint>) -> Result<Partition, String> {
    if brokers.len() < 3 {
        return Err("a bridge needs at least 3 brokers".to_string());
    }
    brokers.shuffle(rng);
    let rest = &brokers[1..];
    let (left, right) = rest.split_at(rest.len() / 2);
    Ok(Partition::Groups(vec![left.to_vec(), right.to_vec()]))
}

/// One broker cannot reach the others and the controller, or they cannot reach it.
fn one_way(rng: &mut StdRng, brokers: Vec<Endpoint>) -> Partition {
    let one = *brokers.choose(rng).expect("at least one broker");
    let mut rest: Vec<Endpoint> = brokers.into_iter().filter(|b| *b != one).collect();
    rest.push(Endpoint::CONTROLLER);
    if rng.gen_bool(0.5) {
        Partition::OneWay {
            from: vec![one],
            to: rest,
        }
    } else {
        Partition::OneWay {
            from: rest,
            to: vec![one],
        }
    }
}
