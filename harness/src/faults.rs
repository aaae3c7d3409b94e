//! Faults as data, in one vocabulary used by the CLI, schedules, the history and the code:
//! kill/start, pause/resume, delay, partition/heal. A [`Fault`] is concrete (it names nodes and
//! links); an [`Action`] is a schedule step, which may name a role (`leader`, `follower`,
//! `random`) that the nemesis resolves into a concrete fault when the step runs. Both print in
//! the schedule language of docs/schedules.md and parse back.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use faultline_checker::history::{Acks, FaultValue, NodeRef};
use serde_json::{json, Map, Value};

use crate::duration::{format_duration, parse_duration};
use crate::network::LinkSelector;
use crate::node::{Endpoint, Node};
use crate::proxy::Delay;
use crate::supervisor::KillSignal;

/// A partition of the network, as the set of directed links it cuts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partition {
    /// Links between endpoints in different groups are cut both ways; endpoints in no group
    /// (a bridge) keep every link.
    Groups(Vec<Vec<Endpoint>>),
    /// Connections from `from` to `to` are cut; `to` still reaches `from`.
    OneWay {
        from: Vec<Endpoint>,
        to: Vec<Endpoint>,
    },
}

impl Partition {
    pub fn cuts(&self) -> Vec<(Endpoint, Endpoint)> {
        let mut cuts = Vec::new();
        match self {
            Partition::Groups(groups) => {
                for (i, a) in groups.iter().enumerate() {
                    for (j, b) in groups.iter().enumerate() {
                        if i != j {
                            cuts.extend(a.iter().flat_map(|x| b.iter().map(move |y| (*x, *y))));
                        }
                    }
                }
            }
            Partition::OneWay { from, to } => {
                cuts.extend(from.iter().flat_map(|x| to.iter().map(move |y| (*x, *y))));
            }
        }
        cuts
    }

    /// The brokers this partition counts as faulty: those outside the side with the most
    /// brokers (on a tie, the side with the controller). A bridge is not faulty.
    pub fn faulty_brokers(&self) -> BTreeSet<u32> {
        let sides: Vec<&Vec<Endpoint>> = match self {
            Partition::Groups(groups) => groups.iter().collect(),
            Partition::OneWay { from, to } => vec![from, to],
        };
        let brokers = |side: &Vec<Endpoint>| -> Vec<u32> {
            side.iter()
                .filter_map(|e| match e {
                    Endpoint::Node(Node::Broker(id)) => Some(*id),
                    _ => None,
                })
                .collect()
        };
        let healthy = sides
            .iter()
            .enumerate()
            .max_by_key(|(i, side)| {
                let has_controller = side.contains(&Endpoint::CONTROLLER);
                (brokers(side).len(), has_controller, std::cmp::Reverse(*i))
            })
            .map(|(i, _)| i);
        sides
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != healthy)
            .flat_map(|(_, side)| brokers(side))
            .collect()
    }

    fn detail(&self) -> Map<String, Value> {
        let list =
            |side: &[Endpoint]| Value::from(side.iter().map(|e| e.to_value()).collect::<Vec<_>>());
        let mut detail = Map::new();
        match self {
            Partition::Groups(groups) => {
                let groups: Vec<Value> = groups.iter().map(|g| list(g)).collect();
                detail.insert("groups".into(), Value::from(groups));
            }
            Partition::OneWay { from, to } => {
                detail.insert("from".into(), list(from));
                detail.insert("to".into(), list(to));
            }
        }
        detail
    }
}

fn join(side: &[Endpoint]) -> String {
    side.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Partition::Groups(groups) => {
                let groups: Vec<String> = groups.iter().map(|g| join(g)).collect();
                write!(f, "groups {}", groups.join(" | "))
            }
            Partition::OneWay { from, to } => write!(f, "one-way {} -> {}", join(from), join(to)),
        }
    }
}

/// A concrete fault (or heal), as recorded in the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Kill {
        node: Node,
        signal: KillSignal,
    },
    Start {
        node: Node,
    },
    Pause {
        node: Node,
    },
    Resume {
        node: Node,
    },
    /// Sets both directions of the selected links; `delay_ms` 0 removes latency.
    Delay {
        links: LinkSelector,
        delay: Delay,
    },
    /// `kind` says how it was chosen (isolate, halves, bridge, one-way, groups).
    Partition {
        kind: String,
        partition: Partition,
    },
    /// Heals every partition.
    Heal,
}

impl Fault {
    /// The history's `f`.
    pub fn f(&self) -> &'static str {
        match self {
            Fault::Kill { .. } => "kill",
            Fault::Start { .. } => "start",
            Fault::Pause { .. } => "pause",
            Fault::Resume { .. } => "resume",
            Fault::Delay { .. } => "delay",
            Fault::Partition { .. } => "partition",
            Fault::Heal => "heal",
        }
    }

    /// The history's `value`: a [`FaultValue`], the target `node` plus details.
    pub fn value(&self) -> Value {
        let mut detail = Map::new();
        let node = match self {
            Fault::Kill { node, signal } => {
                detail.insert("signal".into(), json!(signal));
                Some(node_ref(*node))
            }
            Fault::Start { node } | Fault::Pause { node } | Fault::Resume { node } => {
                Some(node_ref(*node))
            }
            Fault::Delay { links, delay } => {
                detail.insert("links".into(), Value::from(links.to_string()));
                detail.insert("delay_ms".into(), Value::from(delay.delay_ms));
                detail.insert("jitter_ms".into(), Value::from(delay.jitter_ms));
                match links {
                    LinkSelector::Touching(Endpoint::Node(node)) => Some(node_ref(*node)),
                    _ => None,
                }
            }
            Fault::Partition { kind, partition } => {
                detail.insert("kind".into(), Value::from(kind.clone()));
                detail.extend(partition.detail());
                None
            }
            Fault::Heal => None,
        };
        serde_json::to_value(FaultValue { node, detail }).expect("a fault value serializes")
    }
}

/// A node as the history names it.
fn node_ref(node: Node) -> NodeRef {
    match node {
        Node::Broker(id) => NodeRef::Broker(id),
        Node::Controller => NodeRef::Named("controller".into()),
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Kill {
                node,
                signal: KillSignal::Kill,
            } => write!(f, "kill {node}"),
            Fault::Kill {
                node,
                signal: KillSignal::Term,
            } => write!(f, "kill {node} term"),
            Fault::Start { node } => write!(f, "start {node}"),
            Fault::Pause { node } => write!(f, "pause {node}"),
            Fault::Resume { node } => write!(f, "resume {node}"),
            Fault::Delay { links, delay } => write_delay(f, links, delay),
            Fault::Partition { partition, .. } => write!(f, "partition {partition}"),
            Fault::Heal => f.write_str("heal"),
        }
    }
}

fn write_delay(f: &mut fmt::Formatter<'_>, links: &LinkSelector, delay: &Delay) -> fmt::Result {
    write!(f, "delay {links} {}ms", delay.delay_ms)?;
    if delay.jitter_ms > 0 {
        write!(f, " jitter {}ms", delay.jitter_ms)?;
    }
    Ok(())
}

/// A topic partition named in a schedule as `topic/partition`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

impl std::str::FromStr for TopicPartition {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (topic, partition) = s
            .rsplit_once('/')
            .ok_or_else(|| format!("expected topic/partition, got {s:?}"))?;
        let partition = partition
            .parse()
            .map_err(|_| format!("bad partition number in {s:?}"))?;
        if topic.is_empty() {
            return Err(format!("empty topic in {s:?}"));
        }
        Ok(TopicPartition {
            topic: topic.to_string(),
            partition,
        })
    }
}

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

/// How a step partitions the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionSpec {
    Exact(Partition),
    /// One node against every other node.
    Isolate(Target),
    /// A random minority of brokers against the majority; the controller on a random side.
    Halves,
    /// Two random sides that cannot reach each other, and one broker that reaches both.
    Bridge,
    /// One random broker cannot reach the rest, or the rest cannot reach it.
    OneWayRandom,
}

impl fmt::Display for PartitionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartitionSpec::Exact(p) => p.fmt(f),
            PartitionSpec::Isolate(t) => write!(f, "isolate {t}"),
            PartitionSpec::Halves => f.write_str("halves"),
            PartitionSpec::Bridge => f.write_str("bridge"),
            PartitionSpec::OneWayRandom => f.write_str("one-way random"),
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
    Delay {
        links: LinkSelector,
        delay: Delay,
    },
    Partition(PartitionSpec),
    Heal,
    /// Send `count` records one after another from the schedule's own client process.
    Produce {
        count: u32,
        acks: Option<Acks>,
        to: Option<TopicPartition>,
    },
    Wait(Duration),
    /// Wait until `node` leads the partition.
    WaitLeader {
        node: u32,
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
            Fault::Delay { links, delay } => Action::Delay { links, delay },
            Fault::Partition { partition, .. } => {
                Action::Partition(PartitionSpec::Exact(partition))
            }
            Fault::Heal => Action::Heal,
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
            Action::Delay { links, delay } => write_delay(f, links, delay),
            Action::Partition(spec) => write!(f, "partition {spec}"),
            Action::Heal => f.write_str("heal"),
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
                "wait leader {node}{} timeout {}",
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

/// Tokens of one step, consumed front to back.
struct Tokens<'a> {
    words: Vec<&'a str>,
    at: usize,
}

impl<'a> Tokens<'a> {
    fn next(&mut self, what: &str) -> Result<&'a str, String> {
        let word = self
            .words
            .get(self.at)
            .ok_or_else(|| format!("expected {what}"))?;
        self.at += 1;
        Ok(word)
    }

    fn peek(&self) -> Option<&'a str> {
        self.words.get(self.at).copied()
    }

    fn take_if(&mut self, word: &str) -> bool {
        if self.peek() == Some(word) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn rest(&mut self) -> String {
        let rest = self.words[self.at..].join(" ");
        self.at = self.words.len();
        rest
    }

    fn finish(&self) -> Result<(), String> {
        match self.peek() {
            None => Ok(()),
            Some(extra) => Err(format!("unexpected {extra:?}")),
        }
    }
}

fn parse_target(tokens: &mut Tokens) -> Result<Target, String> {
    let word = tokens.next("a target (broker id, controller, leader, follower, random)")?;
    let tp = |tokens: &mut Tokens| -> Result<Option<TopicPartition>, String> {
        match tokens.peek() {
            Some(w) if w.contains('/') => {
                tokens.at += 1;
                w.parse().map(Some)
            }
            _ => Ok(None),
        }
    };
    match word {
        "leader" => Ok(Target::Leader(tp(tokens)?)),
        "follower" => Ok(Target::Follower(tp(tokens)?)),
        "random" => Ok(Target::Random),
        other => other.parse().map(Target::Node),
    }
}

fn parse_all_or_node(tokens: &mut Tokens) -> Result<Option<Node>, String> {
    match tokens.next("a node or `all`")? {
        "all" => Ok(None),
        other => other.parse().map(Some),
    }
}

fn parse_ms(word: &str) -> Result<u64, String> {
    let d = parse_duration(word)?;
    Ok(d.as_millis() as u64)
}

fn parse_delay(tokens: &mut Tokens) -> Result<Action, String> {
    let links = match tokens.next("all, node N or link A->B")? {
        "all" => LinkSelector::All,
        "node" => LinkSelector::Touching(tokens.next("an endpoint")?.parse()?),
        "link" => {
            let text = tokens.next("a link A->B")?;
            let (a, b) = text
                .split_once("->")
                .ok_or_else(|| format!("expected a link A->B, got {text:?}"))?;
            LinkSelector::Link(a.parse()?, b.parse()?)
        }
        other => return Err(format!("expected all, node N or link A->B, got {other:?}")),
    };
    let delay_ms = parse_ms(tokens.next("a delay such as 100ms")?)?;
    let jitter_ms = if tokens.take_if("jitter") {
        parse_ms(tokens.next("a jitter such as 20ms")?)?
    } else {
        0
    };
    Ok(Action::Delay {
        links,
        delay: Delay {
            delay_ms,
            jitter_ms,
        },
    })
}

fn parse_side(text: &str) -> Result<Vec<Endpoint>, String> {
    let side: Vec<Endpoint> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    if side.is_empty() {
        return Err("a partition side is empty".to_string());
    }
    Ok(side)
}

fn parse_partition(tokens: &mut Tokens) -> Result<Action, String> {
    let spec = match tokens.next("isolate, halves, bridge, one-way or groups")? {
        "isolate" => PartitionSpec::Isolate(parse_target(tokens)?),
        "halves" => PartitionSpec::Halves,
        "bridge" => PartitionSpec::Bridge,
        "one-way" if tokens.peek() == Some("random") => {
            tokens.at += 1;
            PartitionSpec::OneWayRandom
        }
        "one-way" => {
            let rest = tokens.rest();
            let (from, to) = rest
                .split_once("->")
                .ok_or_else(|| format!("expected one-way A,B -> C,D, got {rest:?}"))?;
            PartitionSpec::Exact(Partition::OneWay {
                from: parse_side(from)?,
                to: parse_side(to)?,
            })
        }
        "groups" => {
            let rest = tokens.rest();
            let groups: Vec<Vec<Endpoint>> =
                rest.split('|').map(parse_side).collect::<Result<_, _>>()?;
            if groups.len() < 2 {
                return Err("a partition needs at least two groups (A | B)".to_string());
            }
            PartitionSpec::Exact(Partition::Groups(groups))
        }
        other => return Err(format!("unknown partition {other:?}")),
    };
    Ok(Action::Partition(spec))
}

fn parse_on(tokens: &mut Tokens) -> Result<Option<TopicPartition>, String> {
    if tokens.take_if("on") {
        return tokens.next("topic/partition")?.parse().map(Some);
    }
    Ok(None)
}

fn parse_timeout(tokens: &mut Tokens) -> Result<Duration, String> {
    if tokens.take_if("timeout") {
        return parse_duration(tokens.next("a timeout")?);
    }
    Ok(DEFAULT_WAIT_TIMEOUT)
}

fn parse_wait(tokens: &mut Tokens) -> Result<Action, String> {
    let word = tokens.next("a duration, `leader N` or `isr K`")?;
    match word {
        "leader" => {
            let node = tokens.next("a broker id")?;
            let node = node
                .parse()
                .map_err(|_| format!("expected a broker id, got {node:?}"))?;
            let on = parse_on(tokens)?;
            let timeout = parse_timeout(tokens)?;
            Ok(Action::WaitLeader { node, on, timeout })
        }
        "isr" => {
            let size = tokens.next("an ISR size")?;
            let size = size
                .parse()
                .map_err(|_| format!("expected an ISR size, got {size:?}"))?;
            let on = parse_on(tokens)?;
            let timeout = parse_timeout(tokens)?;
            Ok(Action::WaitIsr { size, on, timeout })
        }
        duration => Ok(Action::Wait(parse_duration(duration)?)),
    }
}

fn parse_produce(tokens: &mut Tokens) -> Result<Action, String> {
    let count = tokens.next("a record count")?;
    let count = count
        .parse()
        .map_err(|_| format!("expected a record count, got {count:?}"))?;
    let mut acks = None;
    let mut to = None;
    while let Some(word) = tokens.peek() {
        tokens.at += 1;
        match word {
            "acks" => acks = Some(tokens.next("0, 1 or all")?.parse()?),
            "to" => to = Some(tokens.next("topic/partition")?.parse()?),
            other => return Err(format!("unexpected {other:?}")),
        }
    }
    Ok(Action::Produce { count, acks, to })
}

impl std::str::FromStr for Action {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let mut tokens = Tokens {
            words: text.split_whitespace().collect(),
            at: 0,
        };
        let action = match tokens.next("an action")? {
            "kill" => {
                let target = parse_target(&mut tokens)?;
                let signal = match tokens.peek() {
                    Some(word) => {
                        tokens.at += 1;
                        word.parse()?
                    }
                    None => KillSignal::Kill,
                };
                Action::Kill { target, signal }
            }
            "start" => Action::Start {
                node: parse_all_or_node(&mut tokens)?,
            },
            "pause" => Action::Pause {
                target: parse_target(&mut tokens)?,
            },
            "resume" => Action::Resume {
                node: parse_all_or_node(&mut tokens)?,
            },
            "delay" => parse_delay(&mut tokens)?,
            "partition" => parse_partition(&mut tokens)?,
            "heal" => Action::Heal,
            "produce" => parse_produce(&mut tokens)?,
            "wait" => parse_wait(&mut tokens)?,
            other => return Err(format!("unknown action {other:?}")),
        };
        tokens.finish()?;
        Ok(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_print_and_parse_back() {
        let lines = [
            "kill 2",
            "kill leader t/0 term",
            "kill controller",
            "start all",
            "start 3",
            "pause follower",
            "resume all",
            "delay all 100ms jitter 20ms",
            "delay node 2 50ms",
            "delay link 1->2 0ms",
            "partition isolate leader",
            "partition halves",
            "partition bridge",
            "partition one-way random",
            "partition groups 1 | 2,3,controller",
            "partition one-way 1 -> 2,3,client",
            "heal",
            "produce 10 acks 1 to t/0",
            "wait 1500ms",
            "wait leader 2 on t/0 timeout 10s",
            "wait isr 3 timeout 30s",
        ];
        for line in lines {
            let action: Action = line.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(action.to_string(), line);
        }
    }

    #[test]
    fn bad_steps_name_the_problem() {
        for (line, needle) in [
            ("explode 2", "unknown action"),
            ("kill", "expected a target"),
            ("kill two", "broker id"),
            ("delay all fast", "bad duration"),
            ("partition groups 1", "two groups"),
            ("produce 3 acks 2", "acks must be"),
            ("heal now", "unexpected"),
        ] {
            let error = line.parse::<Action>().unwrap_err();
            assert!(error.contains(needle), "{line}: {error}");
        }
    }

    #[test]
    fn partitions_cut_the_right_links_and_count_faulty_brokers() {
        let p: Action = "partition groups 1 | 2,3,controller".parse().unwrap();
        let Action::Partition(PartitionSpec::Exact(p)) = p else {
            panic!()
        };
        assert_eq!(p.cuts().len(), 2 * 3);
        assert_eq!(p.faulty_brokers(), BTreeSet::from([1]));
        let one_way = Partition::OneWay {
            from: vec![Endpoint::broker(1), Endpoint::broker(2)],
            to: vec![Endpoint::broker(3)],
        };
        assert_eq!(one_way.cuts().len(), 2);
        assert_eq!(one_way.faulty_brokers(), BTreeSet::from([3]));
        let controller_only = Partition::Groups(vec![
            vec![Endpoint::CONTROLLER],
            vec![Endpoint::broker(1), Endpoint::broker(2)],
        ]);
        assert!(controller_only.faulty_brokers().is_empty());
    }
}
