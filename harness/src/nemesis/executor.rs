//! The executor (Jepsen's nemesis proper): applies a fault to the cluster — signals through the
//! supervisor, delays and cuts through the link proxies — and records it as it is applied
//! (`record`). It resolves a fault step's roles (`leader t/0`, `random`, `partition halves`)
//! into concrete [`Fault`]s from the controller's metadata and the seeded random source, and
//! knows which faults are in force (so it can list the heals and count faulty brokers). It does
//! not choose faults (`generator`) or run client operations (`ops`). A failed action is
//! recorded, never fatal.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use faultline_workloads::client::Metadata;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Map, Value};

use crate::cluster::network::LinkSelector;
use crate::cluster::node::{Endpoint, Node};
use crate::cluster::proxy::Delay;
use crate::cluster::supervisor::{KillSignal, ProcState};
use crate::cluster::{default_partition, Cluster, TopicSpec};
use crate::nemesis::fault::{Fault, NetworkPartition};
use crate::nemesis::record::Recorder;
use crate::nemesis::schedule::{
    Action, LinkSpec, Member, NetworkPartitionSpec, PowerLossTargets, Target, TopicPartition,
};

/// The network faults in force (process faults are the supervisor's to know).
#[derive(Debug, Default)]
struct NetState {
    partition: Option<NetworkPartition>,
    delayed: bool,
}

pub struct Nemesis {
    cluster: Arc<Cluster>,
    recorder: Arc<Recorder>,
    topics: Vec<TopicSpec>,
    rng: Mutex<StdRng>,
    net: Mutex<NetState>,
}

impl Nemesis {
    pub fn new(
        cluster: Arc<Cluster>,
        recorder: Arc<Recorder>,
        topics: Vec<TopicSpec>,
        rng: StdRng,
    ) -> Self {
        Nemesis {
            cluster,
            recorder,
            topics,
            rng: Mutex::new(rng),
            net: Mutex::new(NetState::default()),
        }
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Records a fault step that was not applied, with the reason, in the history and in
    /// `schedule.txt` (as a comment-marked failure).
    pub fn record_skipped(&self, action: &Action, reason: &str) -> std::io::Result<()> {
        let at = self.recorder.since_start();
        self.recorder.log_step(at, action, Some(reason));
        self.recorder.record(
            action.f(),
            json!({ "step": action.to_string(), "skipped": true }),
            Some(reason.to_string()),
        )
    }

    /// Whether a network partition is in force.
    pub fn partitioned(&self) -> bool {
        self.net.lock().unwrap().partition.is_some()
    }

    /// Runs a closure with the run's seeded random source (shared with the generator, so one
    /// seed decides every choice of a run).
    pub fn rng<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        f(&mut self.rng.lock().unwrap())
    }

    /// Performs a fault step: resolves its roles, applies it and records it. A step that cannot
    /// be resolved (no leader, no live follower) is recorded with its error. Only a history
    /// write error is returned.
    pub async fn perform(&self, action: &Action) -> std::io::Result<()> {
        match self.resolve(action).await {
            Ok(faults) => {
                for fault in faults {
                    self.apply_and_record(&fault).await?;
                }
                Ok(())
            }
            Err(error) => self.record_skipped(action, &error),
        }
    }

    /// Applies a concrete fault and records it.
    pub async fn apply_and_record(&self, fault: &Fault) -> std::io::Result<()> {
        let at = self.recorder.since_start();
        let result = self.apply(fault).await;
        let mut value = fault.value();
        let error = match result {
            Ok(detail) => {
                if let Value::Object(map) = &mut value {
                    map.extend(detail);
                }
                None
            }
            Err(error) => Some(error),
        };
        self.recorder
            .log_step(at, &Action::from(fault.clone()), error.as_deref());
        self.recorder.record(fault.f(), value, error)
    }

    /// Applies a fault; what it learnt while applying (a power loss's lost bytes) is returned
    /// for the record.
    async fn apply(&self, fault: &Fault) -> Result<Map<String, Value>, String> {
        match fault {
            Fault::PowerLoss { nodes } => self.power_loss(nodes).await,
            other => self.apply_simple(other).await.map(|()| Map::new()),
        }
    }

    /// The power cut: every target is SIGKILLed first (the cut stops them all at the same
    /// instant), then each lazy mount drops what it held unfsynced, then the brokers that were
    /// up are restarted on what survived. A broker that was already down loses its unsynced
    /// data too and stays down. A failed restart is recorded (`restart_error`) and left to the
    /// heal, which starts every broker that is down.
    async fn power_loss(&self, nodes: &[u32]) -> Result<Map<String, Value>, String> {
        let mounts = self.cluster.mounts.as_ref().ok_or_else(|| {
            "power-loss needs --lazyfs (the brokers' data dirs on lazy mounts)".to_string()
        })?;
        let supervisor = &self.cluster.supervisor;
        let cut_at = std::time::Instant::now();
        let mut were_up = Vec::new();
        for &id in nodes {
            let node = Node::Broker(id);
            match supervisor.state(node).await {
                None => return Err(format!("no such broker {id}")),
                Some(ProcState::Running | ProcState::Paused) => {
                    supervisor.kill(node, KillSignal::Kill).await.map_err(err)?;
                    were_up.push(node);
                }
                Some(_) => {}
            }
        }
        let (mut lost, mut lost_bytes, mut lost_files) = (Vec::new(), 0u64, 0u64);
        for &id in nodes {
            let reply = mounts.lose(id).await?;
            lost_bytes += reply.lost_bytes;
            lost_files += reply.lost_files;
            lost.push(json!({"node": id, "lost_bytes": reply.lost_bytes,
                             "lost_files": reply.lost_files}));
        }
        let mut restart_errors = Vec::new();
        for node in were_up {
            if let Err(e) = supervisor.start(node).await {
                restart_errors.push(e.to_string());
            }
        }
        let mut detail = Map::new();
        detail.insert("lost_bytes".into(), json!(lost_bytes));
        detail.insert("lost_files".into(), json!(lost_files));
        detail.insert("lost".into(), Value::from(lost));
        detail.insert("down_ms".into(), json!(cut_at.elapsed().as_millis() as u64));
        if !restart_errors.is_empty() {
            detail.insert("restart_error".into(), json!(restart_errors.join("; ")));
        }
        Ok(detail)
    }

    async fn apply_simple(&self, fault: &Fault) -> Result<(), String> {
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
            Fault::NetworkPartition { net, .. } => {
                // A network partition replaces the one in force.
                network.heal();
                let cut = network.cut(&net.cuts());
                self.net.lock().unwrap().partition = Some(net.clone());
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
            Fault::PowerLoss { .. } => unreachable!("applied by power_loss"),
        }
    }

    /// Turns a fault step into concrete faults, choosing nodes for roles.
    pub async fn resolve(&self, action: &Action) -> Result<Vec<Fault>, String> {
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
                .nodes_in(is_down)
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
            Action::Delay { links, delay } => self
                .resolve_links(links)
                .await?
                .into_iter()
                .map(|links| Fault::Delay {
                    links,
                    delay: *delay,
                })
                .collect(),
            Action::NetworkPartition(spec) => vec![self.resolve_partition(spec).await?],
            Action::Heal => vec![Fault::Heal],
            Action::PowerLoss(targets) => vec![self.resolve_power_loss(targets).await?],
            Action::Produce { .. }
            | Action::Wait(_)
            | Action::WaitLeader { .. }
            | Action::WaitIsr { .. } => {
                return Err(format!("`{action}` is not a fault"));
            }
        };
        Ok(faults)
    }

    /// The brokers a power loss cuts: every broker, or each target resolved (once each).
    async fn resolve_power_loss(&self, targets: &PowerLossTargets) -> Result<Fault, String> {
        let nodes = match targets {
            PowerLossTargets::All => self.cluster.brokers(),
            PowerLossTargets::Some(targets) => {
                let mut nodes = Vec::new();
                for target in targets {
                    let id = self
                        .resolve_target(target)
                        .await?
                        .broker()
                        .ok_or("power-loss aims at brokers, not the controller")?;
                    if !nodes.contains(&id) {
                        nodes.push(id);
                    }
                }
                nodes
            }
        };
        Ok(Fault::PowerLoss { nodes })
    }

    pub async fn nodes_in(&self, pred: impl Fn(&ProcState) -> bool) -> Vec<Node> {
        let states = self.cluster.supervisor.states().await;
        states
            .into_iter()
            .filter(|(_, s)| pred(s))
            .map(|(n, _)| n)
            .collect()
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
                let tp = default_partition(&self.topics, tp);
                let metadata = self.metadata().await?;
                metadata
                    .partition(&tp.topic, tp.partition)
                    .and_then(|p| p.leader)
                    .map(Node::Broker)
                    .ok_or_else(|| format!("{tp} has no leader"))
            }
            Target::Follower(tp) => {
                let (tp, followers) = self.followers(tp, true).await?;
                self.rng(|r| followers.choose(r).copied())
                    .map(Node::Broker)
                    .ok_or_else(|| format!("{tp} has no live follower"))
            }
        }
    }

    /// The partition's replicas other than its leader (only the live ones with `live_only`),
    /// from the controller's metadata now.
    async fn followers(
        &self,
        tp: &Option<TopicPartition>,
        live_only: bool,
    ) -> Result<(TopicPartition, Vec<u32>), String> {
        let tp = default_partition(&self.topics, tp);
        let metadata = self.metadata().await?;
        let p = metadata
            .partition(&tp.topic, tp.partition)
            .ok_or_else(|| format!("{tp} is not in the metadata"))?;
        let followers = p
            .replicas
            .iter()
            .copied()
            .filter(|&r| Some(r) != p.leader && (!live_only || metadata.is_alive(r)))
            .collect();
        Ok((tp, followers))
    }

    async fn metadata(&self) -> Result<Metadata, String> {
        self.cluster
            .metadata()
            .await
            .ok_or_else(|| "the controller did not answer".to_string())
    }

    /// The endpoints a member names now. `others` is resolved by the caller, which knows the
    /// whole step.
    async fn resolve_member(&self, member: &Member) -> Result<Vec<Endpoint>, String> {
        match member {
            Member::Endpoint(e) => Ok(vec![*e]),
            Member::Leader(tp) => Ok(vec![self
                .resolve_target(&Target::Leader(tp.clone()))
                .await?
                .into()]),
            Member::Follower(tp) => Ok(vec![self
                .resolve_target(&Target::Follower(tp.clone()))
                .await?
                .into()]),
            Member::Followers(tp) => {
                let (tp, followers) = self.followers(tp, false).await?;
                if followers.is_empty() {
                    return Err(format!("{tp} has no followers"));
                }
                Ok(followers.into_iter().map(Endpoint::broker).collect())
            }
            Member::Others => Ok(Vec::new()),
        }
    }

    /// Resolves every side of a step together, so `others` means the brokers no other member
    /// names. A side that resolves to nothing is an error naming it.
    async fn resolve_sides(&self, sides: &[Vec<Member>]) -> Result<Vec<Vec<Endpoint>>, String> {
        let mut resolved = Vec::new();
        for side in sides {
            let mut endpoints = Vec::new();
            for member in side {
                for e in self.resolve_member(member).await? {
                    if !endpoints.contains(&e) {
                        endpoints.push(e);
                    }
                }
            }
            resolved.push(endpoints);
        }
        let named: Vec<Endpoint> = resolved.iter().flatten().copied().collect();
        for (side, endpoints) in sides.iter().zip(resolved.iter_mut()) {
            if side.contains(&Member::Others) {
                endpoints.extend(
                    self.cluster
                        .brokers()
                        .into_iter()
                        .map(Endpoint::broker)
                        .filter(|e| !named.contains(e)),
                );
            }
        }
        for (side, endpoints) in sides.iter().zip(&resolved) {
            if endpoints.is_empty() {
                let text: Vec<String> = side.iter().map(ToString::to_string).collect();
                return Err(format!("`{}` names no endpoint now", text.join(",")));
            }
        }
        Ok(resolved)
    }

    async fn resolve_links(&self, links: &LinkSpec) -> Result<Vec<LinkSelector>, String> {
        Ok(match links {
            LinkSpec::All => vec![LinkSelector::All],
            LinkSpec::Touching(member) => {
                let sides = self.resolve_sides(&[vec![member.clone()]]).await?;
                sides[0]
                    .iter()
                    .map(|e| LinkSelector::Touching(*e))
                    .collect()
            }
            LinkSpec::Link(a, b) => {
                let sides = self
                    .resolve_sides(&[vec![a.clone()], vec![b.clone()]])
                    .await?;
                let mut selectors = Vec::new();
                for x in &sides[0] {
                    selectors.extend(sides[1].iter().map(|y| LinkSelector::Link(*x, *y)));
                }
                selectors
            }
        })
    }

    async fn resolve_partition(&self, spec: &NetworkPartitionSpec) -> Result<Fault, String> {
        let brokers: Vec<Endpoint> = self
            .cluster
            .brokers()
            .into_iter()
            .map(Endpoint::broker)
            .collect();
        let (kind, net) = match spec {
            NetworkPartitionSpec::Groups(groups) => {
                let groups = self.resolve_sides(groups).await?;
                ("groups", NetworkPartition::Groups(groups))
            }
            NetworkPartitionSpec::OneWay { from, to } => {
                let mut sides = self.resolve_sides(&[from.clone(), to.clone()]).await?;
                let to = sides.pop().expect("two sides");
                let from = sides.pop().expect("two sides");
                ("one-way", NetworkPartition::OneWay { from, to })
            }
            NetworkPartitionSpec::Isolate(target) => {
                let node = Endpoint::Node(self.resolve_target(target).await?);
                let mut rest: Vec<Endpoint> = brokers.clone();
                rest.push(Endpoint::CONTROLLER);
                rest.retain(|e| *e != node);
                ("isolate", NetworkPartition::Groups(vec![vec![node], rest]))
            }
            NetworkPartitionSpec::Halves => ("halves", self.rng(|r| halves(r, brokers))),
            NetworkPartitionSpec::Bridge => ("bridge", self.rng(|r| bridge(r, brokers))?),
            NetworkPartitionSpec::OneWayRandom => ("one-way", self.rng(|r| one_way(r, brokers))),
        };
        Ok(Fault::NetworkPartition {
            kind: kind.to_string(),
            net,
        })
    }

    /// The heals that would undo every fault in force: resume paused nodes, start nodes that
    /// are down, remove latency, heal the network partition.
    async fn heals_available(&self) -> Vec<Fault> {
        let mut heals = Vec::new();
        for node in self.nodes_in(|s| *s == ProcState::Paused).await {
            heals.push(Fault::Resume { node });
        }
        for node in self.nodes_in(is_down).await {
            heals.push(Fault::Start { node });
        }
        let (delayed, partitioned) = {
            let net = self.net.lock().unwrap();
            (net.delayed, net.partition.is_some())
        };
        if delayed {
            heals.push(Fault::Delay {
                links: LinkSelector::All,
                delay: Delay::NONE,
            });
        }
        if partitioned {
            heals.push(Fault::Heal);
        }
        heals
    }

    /// Heals everything, recording each heal. A node that ended without being killed is a
    /// finding in itself: it is named on stderr before it is restarted.
    pub async fn heal_all(&self) -> std::io::Result<()> {
        for (node, state) in self.cluster.supervisor.states().await {
            if let ProcState::Exited(status) = state {
                eprintln!(
                    "faultline: node {node} exited on its own ({status}); see {}",
                    self.cluster.node_dir(node).join("node.log").display()
                );
            }
        }
        for heal in self.heals_available().await {
            self.apply_and_record(&heal).await?;
        }
        Ok(())
    }

    /// The brokers that would be faulty (down, paused or cut off) after `fault`.
    pub async fn faulty_after(&self, fault: &Fault) -> BTreeSet<u32> {
        let mut faulty: BTreeSet<u32> = self
            .nodes_in(|s| *s != ProcState::Running)
            .await
            .into_iter()
            .filter_map(Node::broker)
            .collect();
        let partition = self.net.lock().unwrap().partition.clone();
        match fault {
            Fault::Kill { node, .. } | Fault::Pause { node } => faulty.extend(node.broker()),
            // Down for a moment, and behind when it returns: faulty, as a kill is.
            Fault::PowerLoss { nodes } => faulty.extend(nodes.iter().copied()),
            Fault::NetworkPartition { net, .. } => faulty.extend(net.faulty_brokers()),
            _ => {}
        }
        if !matches!(fault, Fault::NetworkPartition { .. }) {
            faulty.extend(partition.map(|p| p.faulty_brokers()).unwrap_or_default());
        }
        faulty
    }
}

pub fn is_down(state: &ProcState) -> bool {
    matches!(state, ProcState::Down | ProcState::Exited(_))
}

fn err(error: impl std::fmt::Display) -> String {
    error.to_string()
}

/// A minority of brokers against the majority; the controller joins a random side.
fn halves(rng: &mut StdRng, mut brokers: Vec<Endpoint>) -> NetworkPartition {
    brokers.shuffle(rng);
    let minority_len = brokers.len() / 2;
    let mut minority: Vec<Endpoint> = brokers[..minority_len].to_vec();
    let mut majority: Vec<Endpoint> = brokers[minority_len..].to_vec();
    if rng.gen_bool(0.5) || minority.is_empty() {
        minority.push(Endpoint::CONTROLLER);
    } else {
        majority.push(Endpoint::CONTROLLER);
    }
    NetworkPartition::Groups(vec![minority, majority])
}

/// Two sides that cannot reach each other; one broker and the controller reach both.
fn bridge(rng: &mut StdRng, mut brokers: Vec<Endpoint>) -> Result<NetworkPartition, String> {
    if brokers.len() < 3 {
        return Err("a bridge needs at least 3 brokers".to_string());
    }
    brokers.shuffle(rng);
    let rest = &brokers[1..];
    let (left, right) = rest.split_at(rest.len() / 2);
    Ok(NetworkPartition::Groups(vec![
        left.to_vec(),
        right.to_vec(),
    ]))
}

/// One broker cannot reach the others and the controller, or they cannot reach it.
fn one_way(rng: &mut StdRng, brokers: Vec<Endpoint>) -> NetworkPartition {
    let one = *brokers.choose(rng).expect("at least one broker");
    let mut rest: Vec<Endpoint> = brokers.into_iter().filter(|b| *b != one).collect();
    rest.push(Endpoint::CONTROLLER);
    if rng.gen_bool(0.5) {
        NetworkPartition::OneWay {
            from: vec![one],
            to: rest,
        }
    } else {
        NetworkPartition::OneWay {
            from: rest,
            to: vec![one],
        }
    }
}
