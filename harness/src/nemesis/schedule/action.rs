//! The schedule language's steps as data, and their one printer: an [`Action`] is what one
//! schedule line asks for — a fault that may name a role (`leader`, `follower t/1`, `random`),
//! a message fault on the Kafka links to such a target, a client operation (`produce`) or a
//! wait. Roles are resolved into concrete [`Fault`]s by the
//! executor when the step runs; a concrete fault prints through [`Action::from`], so the
//! history's faults, `schedule.txt` and hand-written schedules share one syntax
//! (docs/schedules.md).

use std::fmt;
use std::time::Duration;

use faultline_checker::history::Acks;

use crate::cluster::network::{KafkaLinks, LinkSelector};
pub use crate::cluster::node::TopicPartition;
use crate::cluster::node::{Endpoint, Node};
use crate::cluster::proxy::kafka::faults::{api_name, error_name, ResponseAction, ResponseFault};
use crate::cluster::proxy::Delay;
use crate::cluster::supervisor::KillSignal;
use crate::duration::format_duration;
use crate::nemesis::fault::{Fault, NetworkPartition};

/// Whom a step acts on; roles are resolved from the controller's metadata when the step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Node(Node),
    /// The leader of this partition (the first partition when none is named).
    Leader(Option<TopicPartition>),
    /// A live follower of this partition.
    Follower(Option<TopicPartition>),
    /// A broker chosen by the seeded random source.
    Random,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node(node) => write!(f, "{node}"),
            Target::Leader(None) => f.write_str("leader"),
            Target::Leader(Some(tp)) => write!(f, "leader {tp}"),
            Target::Follower(None) => f.write_str("follower"),
            Target::Follower(Some(tp)) => write!(f, "follower {tp}"),
            Target::Random => f.write_str("random"),
        }
    }
}

/// One member of a network partition's side or one end of a delayed link, as a step names
/// it: an endpoint, or a role resolved from the controller's metadata when the step runs, so a
/// scenario does not depend on which broker happens to lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    Endpoint(Endpoint),
    /// `leader [t/p]`: the partition's leader.
    Leader(Option<TopicPartition>),
    /// `follower [t/p]`: one live follower, chosen by the seeded random source.
    Follower(Option<TopicPartition>),
    /// `followers [t/p]`: every replica of the partition but its leader.
    Followers(Option<TopicPartition>),
    /// `others`: every broker that no other member of the step names.
    Others,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with_tp = |f: &mut fmt::Formatter<'_>, word: &str, tp: &Option<TopicPartition>| match tp
        {
            Some(tp) => write!(f, "{word} {tp}"),
            None => f.write_str(word),
        };
        match self {
            Member::Endpoint(e) => e.fmt(f),
            Member::Leader(tp) => with_tp(f, "leader", tp),
            Member::Follower(tp) => with_tp(f, "follower", tp),
            Member::Followers(tp) => with_tp(f, "followers", tp),
            Member::Others => f.write_str("others"),
        }
    }
}

/// Which links a `delay` step slows, with roles allowed at either end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkSpec {
    All,
    /// Every link from or to the member(s).
    Touching(Member),
    /// The directed links from the first member(s) to the second.
    Link(Member, Member),
}

impl fmt::Display for LinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkSpec::All => f.write_str("all"),
            LinkSpec::Touching(m) => write!(f, "node {m}"),
            LinkSpec::Link(a, b) => write!(f, "link {a}->{b}"),
        }
    }
}

impl From<LinkSelector> for LinkSpec {
    fn from(links: LinkSelector) -> Self {
        match links {
            LinkSelector::All => LinkSpec::All,
            LinkSelector::Touching(e) => LinkSpec::Touching(Member::Endpoint(e)),
            LinkSelector::Link(a, b) => LinkSpec::Link(Member::Endpoint(a), Member::Endpoint(b)),
        }
    }
}

fn write_side(f: &mut fmt::Formatter<'_>, side: &[Member]) -> fmt::Result {
    for (i, member) in side.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{member}")?;
    }
    Ok(())
}

/// How a step partitions the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkPartitionSpec {
    /// Links between members of different groups are cut both ways; endpoints in no group keep
    /// every link (`groups leader | followers` leaves the controller and clients reaching all).
    Groups(Vec<Vec<Member>>),
    /// Connections from `from` to `to` are cut; `to` still reaches `from`.
    OneWay { from: Vec<Member>, to: Vec<Member> },
    /// One node against every other node.
    Isolate(Target),
    /// A random minority of brokers against the majority; the controller on a random side.
    Halves,
    /// Two random sides that cannot reach each other, and one broker that reaches both.
    Bridge,
    /// One random broker cannot reach the rest, or the rest cannot reach it.
    OneWayRandom,
}

impl fmt::Display for NetworkPartitionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkPartitionSpec::Groups(groups) => {
                f.write_str("groups ")?;
                for (i, side) in groups.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" | ")?;
                    }
                    write_side(f, side)?;
                }
                Ok(())
            }
            NetworkPartitionSpec::OneWay { from, to } => {
                f.write_str("one-way ")?;
                write_side(f, from)?;
                f.write_str(" -> ")?;
                write_side(f, to)
            }
            NetworkPartitionSpec::Isolate(t) => write!(f, "isolate {t}"),
            NetworkPartitionSpec::Halves => f.write_str("halves"),
            NetworkPartitionSpec::Bridge => f.write_str("bridge"),
            NetworkPartitionSpec::OneWayRandom => f.write_str("one-way random"),
        }
    }
}

/// Which Kafka links a message fault acts on, as a step names them (`on all`, `on leader`,
/// `on 2`): every client→broker Kafka link, or the one to a target, resolved when the step
/// runs. The controller has no Kafka link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaLinkSpec {
    All,
    To(Target),
}

impl fmt::Display for KafkaLinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KafkaLinkSpec::All => f.write_str("all"),
            KafkaLinkSpec::To(target) => target.fmt(f),
        }
    }
}

impl From<KafkaLinks> for KafkaLinkSpec {
    fn from(links: KafkaLinks) -> Self {
        match links {
            KafkaLinks::All => KafkaLinkSpec::All,
            KafkaLinks::Broker(id) => KafkaLinkSpec::To(Target::Node(Node::Broker(id))),
        }
    }
}

/// Whom a `power-loss` step cuts, all at once: every broker, or the listed targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PowerLossTargets {
    All,
    Some(Vec<Target>),
}

impl fmt::Display for PowerLossTargets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PowerLossTargets::All => f.write_str("all"),
            PowerLossTargets::Some(targets) => {
                let text: Vec<String> = targets.iter().map(ToString::to_string).collect();
                f.write_str(&text.join(","))
            }
        }
    }
}

/// One schedule step's action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Kill {
        target: Target,
        signal: KillSignal,
    },
    /// Start one node, or every node that is down (`start all`).
    Start {
        node: Option<Node>,
    },
    Pause {
        target: Target,
    },
    /// Resume one node, or every paused node (`resume all`).
    Resume {
        node: Option<Node>,
    },
    /// `one-way`: only the bytes the connecting side sends (its requests) are held.
    Delay {
        links: LinkSpec,
        delay: Delay,
        one_way: bool,
    },
    NetworkPartition(NetworkPartitionSpec),
    Heal,
    /// SIGKILL the targets, drop every byte they had not fsynced, restart them (`--lazyfs`).
    PowerLoss(PowerLossTargets),
    /// A message fault on the Kafka links (`drop-response`, `delay-response`,
    /// `error-response`).
    Response {
        fault: ResponseFault,
        on: KafkaLinkSpec,
    },
    /// `pass-response API on LINKS`: the API key's responses pass untouched again.
    PassResponse {
        api_key: i16,
        on: KafkaLinkSpec,
    },
    /// Send `count` records one after another from the schedule's own client process.
    Produce {
        count: u32,
        acks: Option<Acks>,
        to: Option<TopicPartition>,
    },
    Wait(Duration),
    /// Wait until `node` leads the partition; with no node (`wait leader new`), until a leader
    /// other than the one at the step's start leads it.
    WaitLeader {
        node: Option<u32>,
        on: Option<TopicPartition>,
        timeout: Duration,
    },
    /// Wait until the partition's ISR has exactly `size` members.
    WaitIsr {
        size: usize,
        on: Option<TopicPartition>,
        timeout: Duration,
    },
}

pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(30);

impl From<Fault> for Action {
    fn from(fault: Fault) -> Self {
        match fault {
            Fault::Kill { node, signal } => Action::Kill {
                target: Target::Node(node),
                signal,
            },
            Fault::Start { node } => Action::Start { node: Some(node) },
            Fault::Pause { node } => Action::Pause {
                target: Target::Node(node),
            },
            Fault::Resume { node } => Action::Resume { node: Some(node) },
            Fault::Delay {
                links,
                delay,
                one_way,
            } => Action::Delay {
                links: links.into(),
                delay,
                one_way,
            },
            Fault::NetworkPartition { net, .. } => {
                let side = |s: Vec<Endpoint>| s.into_iter().map(Member::Endpoint).collect();
                Action::NetworkPartition(match net {
                    NetworkPartition::Groups(groups) => {
                        NetworkPartitionSpec::Groups(groups.into_iter().map(side).collect())
                    }
                    NetworkPartition::OneWay { from, to } => NetworkPartitionSpec::OneWay {
                        from: side(from),
                        to: side(to),
                    },
                })
            }
            Fault::Heal => Action::Heal,
            Fault::PowerLoss { nodes } => Action::PowerLoss(PowerLossTargets::Some(
                nodes
                    .into_iter()
                    .map(|id| Target::Node(Node::Broker(id)))
                    .collect(),
            )),
            Fault::Response { links, fault } => Action::Response {
                fault,
                on: links.into(),
            },
            Fault::PassResponse { links, api_key } => Action::PassResponse {
                api_key,
                on: links.into(),
            },
        }
    }
}

fn opt_suffix(prefix: &str, tp: &Option<TopicPartition>) -> String {
    tp.as_ref()
        .map(|tp| format!(" {prefix}{tp}"))
        .unwrap_or_default()
}

fn all_or(node: &Option<Node>) -> String {
    node.map(|n| n.to_string())
        .unwrap_or_else(|| "all".to_string())
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Kill {
                target,
                signal: KillSignal::Kill,
            } => write!(f, "kill {target}"),
            Action::Kill {
                target,
                signal: KillSignal::Term,
            } => write!(f, "kill {target} term"),
            Action::Start { node } => write!(f, "start {}", all_or(node)),
            Action::Pause { target } => write!(f, "pause {target}"),
            Action::Resume { node } => write!(f, "resume {}", all_or(node)),
            Action::Delay {
                links,
                delay,
                one_way,
            } => write_delay(f, links, delay, *one_way),
            Action::NetworkPartition(spec) => write!(f, "partition {spec}"),
            Action::Heal => f.write_str("heal"),
            Action::PowerLoss(targets) => write!(f, "power-loss {targets}"),
            Action::Response { fault, on } => write_response(f, fault, on),
            Action::PassResponse { api_key, on } => {
                write!(f, "pass-response {} on {on}", api_name(*api_key))
            }
            Action::Produce { count, acks, to } => {
                write!(f, "produce {count}")?;
                if let Some(acks) = acks {
                    write!(f, " acks {}", acks.as_str())?;
                }
                write!(f, "{}", opt_suffix("to ", to))
            }
            Action::Wait(d) => write!(f, "wait {}", format_duration(*d)),
            Action::WaitLeader { node, on, timeout } => write!(
                f,
                "wait leader {}{} timeout {}",
                node.map_or("new".to_string(), |n| n.to_string()),
                opt_suffix("on ", on),
                format_duration(*timeout)
            ),
            Action::WaitIsr { size, on, timeout } => write!(
                f,
                "wait isr {size}{} timeout {}",
                opt_suffix("on ", on),
                format_duration(*timeout)
            ),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Action::from(self.clone()).fmt(f)
    }
}

fn write_delay(
    f: &mut fmt::Formatter<'_>,
    links: &LinkSpec,
    delay: &Delay,
    one_way: bool,
) -> fmt::Result {
    write!(f, "delay {links} {}ms", delay.delay_ms)?;
    if delay.jitter_ms > 0 {
        write!(f, " jitter {}ms", delay.jitter_ms)?;
    }
    if one_way {
        write!(f, " one-way")?;
    }
    Ok(())
}

/// `drop-response produce on leader count 1`, `delay-response produce 500ms on 2`,
/// `error-response produce NOT_LEADER_OR_FOLLOWER on all count 3`.
fn write_response(
    f: &mut fmt::Formatter<'_>,
    fault: &ResponseFault,
    on: &KafkaLinkSpec,
) -> fmt::Result {
    let api = api_name(fault.api_key);
    match fault.action {
        ResponseAction::Drop => write!(f, "drop-response {api}")?,
        ResponseAction::Delay { delay_ms } => write!(f, "delay-response {api} {delay_ms}ms")?,
        ResponseAction::Error { code } => write!(f, "error-response {api} {}", error_name(code))?,
    }
    write!(f, " on {on}")?;
    if let Some(count) = fault.count {
        write!(f, " count {count}")?;
    }
    Ok(())
}

impl Action {
    /// The history's `f` for this step: the fault vocabulary's word (as [`Fault::f`]), or the
    /// client operation's or wait's first word.
    pub fn f(&self) -> &'static str {
        match self {
            Action::Kill { .. } => "kill",
            Action::Start { .. } => "start",
            Action::Pause { .. } => "pause",
            Action::Resume { .. } => "resume",
            Action::Delay { .. } => "delay",
            Action::NetworkPartition(_) => "partition",
            Action::Heal => "heal",
            Action::PowerLoss(_) => "power-loss",
            Action::Response { fault, .. } => crate::nemesis::fault::response_word(fault.action),
            Action::PassResponse { .. } => "pass-response",
            Action::Produce { .. } => "produce",
            Action::Wait(_) | Action::WaitLeader { .. } | Action::WaitIsr { .. } => "wait",
        }
    }

    /// Whether the step is a message fault or its heal, which need Kafka-aware links.
    pub fn needs_kafka_links(&self) -> bool {
        matches!(self, Action::Response { .. } | Action::PassResponse { .. })
    }

    /// Every broker id the step names explicitly (roles name none; counts and sizes are not
    /// brokers).
    pub fn brokers(&self) -> Vec<u32> {
        let target = |t: &Target| match t {
            Target::Node(node) => node.broker(),
            _ => None,
        };
        let member = |m: &Member| match m {
            Member::Endpoint(Endpoint::Node(node)) => node.broker(),
            _ => None,
        };
        match self {
            Action::Kill { target: t, .. } | Action::Pause { target: t } => {
                target(t).into_iter().collect()
            }
            Action::Start { node } | Action::Resume { node } => {
                node.and_then(Node::broker).into_iter().collect()
            }
            Action::Delay { links, .. } => match links {
                LinkSpec::All => Vec::new(),
                LinkSpec::Touching(m) => member(m).into_iter().collect(),
                LinkSpec::Link(a, b) => [a, b].into_iter().filter_map(member).collect(),
            },
            Action::NetworkPartition(spec) => match spec {
                NetworkPartitionSpec::Groups(groups) => {
                    groups.iter().flatten().filter_map(member).collect()
                }
                NetworkPartitionSpec::OneWay { from, to } => {
                    from.iter().chain(to).filter_map(member).collect()
                }
                NetworkPartitionSpec::Isolate(t) => target(t).into_iter().collect(),
                NetworkPartitionSpec::Halves
                | NetworkPartitionSpec::Bridge
                | NetworkPartitionSpec::OneWayRandom => Vec::new(),
            },
            Action::PowerLoss(PowerLossTargets::Some(targets)) => {
                targets.iter().filter_map(target).collect()
            }
            Action::PowerLoss(PowerLossTargets::All) => Vec::new(),
            Action::Response { on, .. } | Action::PassResponse { on, .. } => match on {
                KafkaLinkSpec::All => Vec::new(),
                KafkaLinkSpec::To(t) => target(t).into_iter().collect(),
            },
            Action::WaitLeader { node, .. } => node.iter().copied().collect(),
            Action::Heal | Action::Produce { .. } | Action::Wait(_) | Action::WaitIsr { .. } => {
                Vec::new()
            }
        }
    }
}
