//! Role resolution: turns a fault step of the schedule language into concrete [`Fault`]s —
//! `leader t/0`, `follower`, `followers`, `others` and `random` from the controller's metadata
//! now and the run's seeded random source, and the random network partitions (`halves`,
//! `bridge`, one-way) drawn from it. It applies nothing and keeps no budget (`executor`'s
//! `mod.rs` does, `apply` applies).

use faultline_workloads::client::Metadata;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use super::{is_down, Nemesis};
use crate::cluster::default_partition;
use crate::cluster::network::{KafkaLinks, LinkSelector};
use crate::cluster::node::{Endpoint, Node};
use crate::cluster::supervisor::ProcState;
use crate::nemesis::fault::{Fault, NetworkPartition};
use crate::nemesis::schedule::{
    Action, KafkaLinkSpec, LinkSpec, Member, NetworkPartitionSpec, PowerLossTargets, Target,
    TopicPartition,
};

impl Nemesis {
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
            Action::Delay {
                links,
                delay,
                one_way,
            } => self
                .resolve_links(links)
                .await?
                .into_iter()
                .map(|links| Fault::Delay {
                    links,
                    delay: *delay,
                    one_way: *one_way,
                })
                .collect(),
            Action::NetworkPartition(spec) => vec![self.resolve_partition(spec).await?],
            Action::Heal => vec![Fault::Heal],
            Action::PowerLoss(targets) => vec![self.resolve_power_loss(targets).await?],
            Action::Response { fault, on } => vec![Fault::Response {
                links: self.resolve_kafka_links(on).await?,
                fault: *fault,
            }],
            Action::PassResponse { api_key, on } => vec![Fault::PassResponse {
                links: self.resolve_kafka_links(on).await?,
                api_key: *api_key,
            }],
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

    /// The Kafka links a message fault acts on: all, or the one to the target's broker now.
    async fn resolve_kafka_links(&self, on: &KafkaLinkSpec) -> Result<KafkaLinks, String> {
        match on {
            KafkaLinkSpec::All => Ok(KafkaLinks::All),
            KafkaLinkSpec::To(target) => self
                .resolve_target(target)
                .await?
                .broker()
                .map(KafkaLinks::Broker)
                .ok_or_else(|| "the controller has no Kafka link".to_string()),
        }
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
            .ok_or_else(|| match self.cluster.controller_addr {
                Some(_) => "the controller did not answer".to_string(),
                None => "no node answered Metadata".to_string(),
            })
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
            net: self.without_controller(net),
        })
    }

    /// A system file's system has no controller: where a random partition puts the
    /// controller on a side, the clients and the services the brokers reach through links
    /// (`{service_link:NAME}`: shared storage, faultline-node's controller) take its place, so
    /// the partition cuts client links and broker↔service links.
    fn without_controller(&self, net: NetworkPartition) -> NetworkPartition {
        if self.cluster.controller_addr.is_some() {
            return net;
        }
        let mut stand_ins = vec![Endpoint::Client];
        stand_ins.extend(self.cluster.network.service_endpoints());
        // A stand-in already on a side (`isolate service:postgres`) stays where it was put.
        let named: Vec<Endpoint> = match &net {
            NetworkPartition::Groups(groups) => groups.iter().flatten().copied().collect(),
            NetworkPartition::OneWay { from, to } => from.iter().chain(to).copied().collect(),
        };
        stand_ins.retain(|e| !named.contains(e));
        let swap = |side: Vec<Endpoint>| -> Vec<Endpoint> {
            side.into_iter()
                .flat_map(|e| {
                    if e == Endpoint::CONTROLLER {
                        stand_ins.clone()
                    } else {
                        vec![e]
                    }
                })
                .collect()
        };
        match net {
            NetworkPartition::Groups(groups) => {
                NetworkPartition::Groups(groups.into_iter().map(swap).collect())
            }
            NetworkPartition::OneWay { from, to } => NetworkPartition::OneWay {
                from: swap(from),
                to: swap(to),
            },
        }
    }
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
