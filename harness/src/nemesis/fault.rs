//! The fault vocabulary, as data: a [`Fault`] is one concrete fault or heal that names nodes
//! and links — kill/start, pause/resume, delay, partition/heal, power-loss, and the message
//! faults drop-response/delay-response/error-response healed by pass-response (or heal) —
//! exactly as the history records it and the executor applies it. It owns the words (`word`),
//! the fields of a fault's `value` (`field`, and [`PowerLossOutcome`] for what a power loss
//! learns), the one rule of which fault heals which ([`Fault::heal`]) and which brokers a fault
//! makes faulty. A network partition is a [`NetworkPartition`] (never plain "partition", which in a Kafka tool
//! is a topic partition). This module knows nothing of roles such as `leader` (the schedule
//! language resolves those), of choosing faults (`generator`), of applying them (`executor`) or
//! of the windows they open (`windows`, which reads these words and fields).

use std::collections::BTreeSet;
use std::fmt;

use faultline_checker::history::{FaultValue, NodeRef};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::cluster::network::{KafkaLinks, LinkSelector};
use crate::cluster::node::{Endpoint, Node};
use crate::cluster::proxy::kafka::faults::{api_name, error_name, ResponseAction, ResponseFault};
use crate::cluster::proxy::Delay;
use crate::cluster::supervisor::KillSignal;

/// The history's `f` of each fault: the one place the words are spelt.
pub mod word {
    pub const KILL: &str = "kill";
    pub const START: &str = "start";
    pub const PAUSE: &str = "pause";
    pub const RESUME: &str = "resume";
    pub const DELAY: &str = "delay";
    pub const PARTITION: &str = "partition";
    pub const HEAL: &str = "heal";
    pub const POWER_LOSS: &str = "power-loss";
    /// Message faults on the Kafka links, and their heal.
    pub const DROP_RESPONSE: &str = "drop-response";
    pub const DELAY_RESPONSE: &str = "delay-response";
    pub const ERROR_RESPONSE: &str = "error-response";
    pub const PASS_RESPONSE: &str = "pass-response";
    /// The words of the message faults (not their heal).
    pub const RESPONSE_FAULTS: [&str; 3] = [DROP_RESPONSE, DELAY_RESPONSE, ERROR_RESPONSE];
}

/// The fields [`Fault::value`] writes beside the checker's `node`.
pub mod field {
    pub const SIGNAL: &str = "signal";
    pub const LINKS: &str = "links";
    pub const DELAY_MS: &str = "delay_ms";
    pub const JITTER_MS: &str = "jitter_ms";
    /// Present (true) only on a delay of the connecting side's bytes alone.
    pub const ONE_WAY: &str = "one_way";
    /// How a network partition was chosen (isolate, halves, bridge, one-way, groups).
    pub const KIND: &str = "kind";
    pub const GROUPS: &str = "groups";
    pub const FROM: &str = "from";
    pub const TO: &str = "to";
    pub const NODES: &str = "nodes";
    /// A message fault's API key: its number and its name (`0`, `produce`).
    pub const API_KEY: &str = "api_key";
    pub const API: &str = "api";
    /// A message fault's `count` (absent: until healed).
    pub const COUNT: &str = "count";
    /// An error-response's Kafka error code: its number and its name.
    pub const ERROR_CODE: &str = "error_code";
    pub const ERROR_NAME: &str = "error_name";
}

/// A partition of the network, as the set of directed links it cuts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkPartition {
    /// Links between endpoints in different groups are cut both ways; endpoints in no group
    /// (a bridge) keep every link.
    Groups(Vec<Vec<Endpoint>>),
    /// Connections from `from` to `to` are cut; `to` still reaches `from`.
    OneWay {
        from: Vec<Endpoint>,
        to: Vec<Endpoint>,
    },
}

impl NetworkPartition {
    pub fn cuts(&self) -> Vec<(Endpoint, Endpoint)> {
        let mut cuts = Vec::new();
        match self {
            NetworkPartition::Groups(groups) => {
                for (i, a) in groups.iter().enumerate() {
                    for (j, b) in groups.iter().enumerate() {
                        if i != j {
                            cuts.extend(a.iter().flat_map(|x| b.iter().map(move |y| (*x, *y))));
                        }
                    }
                }
            }
            NetworkPartition::OneWay { from, to } => {
                cuts.extend(from.iter().flat_map(|x| to.iter().map(move |y| (*x, *y))));
            }
        }
        cuts
    }

    /// The brokers this partition counts as faulty: those outside the side with the most
    /// brokers (on a tie, the side with the controller). A bridge is not faulty.
    pub fn faulty_brokers(&self) -> BTreeSet<u32> {
        let sides: Vec<&Vec<Endpoint>> = match self {
            NetworkPartition::Groups(groups) => groups.iter().collect(),
            NetworkPartition::OneWay { from, to } => vec![from, to],
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
            NetworkPartition::Groups(groups) => {
                let groups: Vec<Value> = groups.iter().map(|g| list(g)).collect();
                detail.insert(field::GROUPS.into(), Value::from(groups));
            }
            NetworkPartition::OneWay { from, to } => {
                detail.insert(field::FROM.into(), list(from));
                detail.insert(field::TO.into(), list(to));
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

impl fmt::Display for NetworkPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkPartition::Groups(groups) => {
                let groups: Vec<String> = groups.iter().map(|g| join(g)).collect();
                write!(f, "groups {}", groups.join(" | "))
            }
            NetworkPartition::OneWay { from, to } => {
                write!(f, "one-way {} -> {}", join(from), join(to))
            }
        }
    }
}

/// A concrete fault (or heal), as recorded in the history. It prints in the schedule language
/// through `schedule::Action`, the one printer.
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
    /// Sets both directions of the selected links, or only the bytes from the side that
    /// connects to the side that listens when `one_way` (a request held, its answer not);
    /// `delay_ms` 0 removes latency.
    Delay {
        links: LinkSelector,
        delay: Delay,
        one_way: bool,
    },
    /// `kind` says how it was chosen (isolate, halves, bridge, one-way, groups).
    NetworkPartition {
        kind: String,
        net: NetworkPartition,
    },
    /// Heals every partition.
    Heal,
    /// A power cut of these brokers at once (`--lazyfs`): SIGKILL each, drop every byte its
    /// lazy mount held unfsynced, restart it. It heals itself; a broker whose restart failed is
    /// down, and the heal phase starts it like any other.
    PowerLoss {
        nodes: Vec<u32>,
    },
    /// A message fault on the selected Kafka links: drop, hold or change the responses of one
    /// API key; it replaces one on the same key and links. A counted one is spent by the
    /// responses it changed, but stays in force until healed as far as the record goes.
    Response {
        links: KafkaLinks,
        fault: ResponseFault,
    },
    /// Responses of `api_key` pass untouched again on the selected Kafka links: the heal of a
    /// message fault.
    PassResponse {
        links: KafkaLinks,
        api_key: i16,
    },
}

impl Fault {
    /// The history's `f`.
    pub fn f(&self) -> &'static str {
        match self {
            Fault::Kill { .. } => word::KILL,
            Fault::Start { .. } => word::START,
            Fault::Pause { .. } => word::PAUSE,
            Fault::Resume { .. } => word::RESUME,
            Fault::Delay { .. } => word::DELAY,
            Fault::NetworkPartition { .. } => word::PARTITION,
            Fault::Heal => word::HEAL,
            Fault::PowerLoss { .. } => word::POWER_LOSS,
            Fault::Response { fault, .. } => response_word(fault.action),
            Fault::PassResponse { .. } => word::PASS_RESPONSE,
        }
    }

    /// The fault that heals this one, if it needs one — the one rule of what heals what: a
    /// kill is healed by a start, a pause by a resume, a delay by a delay of 0 on the same
    /// links, a network partition by a heal, a message fault by a pass-response on the same
    /// links and API key (a heal removes every message fault too). A power loss heals itself
    /// (it restarts its brokers; one whose restart failed is down, and the heal phase starts
    /// it), and a heal needs none.
    pub fn heal(&self) -> Option<Fault> {
        match self {
            Fault::Kill { node, .. } => Some(Fault::Start { node: *node }),
            Fault::Pause { node } => Some(Fault::Resume { node: *node }),
            Fault::Delay { links, .. } => Some(Fault::Delay {
                links: *links,
                delay: Delay::NONE,
                one_way: false,
            }),
            Fault::NetworkPartition { .. } => Some(Fault::Heal),
            Fault::Response { links, fault } => Some(Fault::PassResponse {
                links: *links,
                api_key: fault.api_key,
            }),
            Fault::PowerLoss { .. } => None,
            Fault::Start { .. } | Fault::Resume { .. } | Fault::Heal => None,
            Fault::PassResponse { .. } => None,
        }
    }

    /// The brokers this fault makes faulty while it is in force: down, paused or cut off. A
    /// power loss counts as a kill: down for a moment, and behind when its brokers return. A
    /// message fault makes none: the broker serves on, only some answers go astray.
    pub fn faulty_brokers(&self) -> BTreeSet<u32> {
        match self {
            Fault::Kill { node, .. } | Fault::Pause { node } => node.broker().into_iter().collect(),
            Fault::PowerLoss { nodes } => nodes.iter().copied().collect(),
            Fault::NetworkPartition { net, .. } => net.faulty_brokers(),
            Fault::Start { .. }
            | Fault::Resume { .. }
            | Fault::Delay { .. }
            | Fault::Heal
            | Fault::Response { .. }
            | Fault::PassResponse { .. } => BTreeSet::new(),
        }
    }

    /// The history's `value`: the checker's `FaultValue`, the node it hits plus details.
    pub fn value(&self) -> Value {
        let mut detail = Map::new();
        let node = match self {
            Fault::Kill { node, signal } => {
                detail.insert(field::SIGNAL.into(), json!(signal_name(*signal)));
                Some(node_ref(*node))
            }
            Fault::Start { node } | Fault::Pause { node } | Fault::Resume { node } => {
                Some(node_ref(*node))
            }
            Fault::Delay {
                links,
                delay,
                one_way,
            } => {
                detail.insert(field::LINKS.into(), Value::from(links.to_string()));
                detail.insert(field::DELAY_MS.into(), Value::from(delay.delay_ms));
                detail.insert(field::JITTER_MS.into(), Value::from(delay.jitter_ms));
                if *one_way {
                    detail.insert(field::ONE_WAY.into(), Value::from(true));
                }
                match links {
                    LinkSelector::Touching(Endpoint::Node(node)) => Some(node_ref(*node)),
                    _ => None,
                }
            }
            Fault::NetworkPartition { kind, net } => {
                detail.insert(field::KIND.into(), Value::from(kind.clone()));
                detail.extend(net.detail());
                None
            }
            Fault::Heal => None,
            Fault::PowerLoss { nodes } => {
                detail.insert(field::NODES.into(), json!(nodes));
                None
            }
            Fault::Response { links, fault } => {
                response_detail(&mut detail, *links, fault.api_key);
                match fault.action {
                    ResponseAction::Drop => {}
                    ResponseAction::Delay { delay_ms } => {
                        detail.insert(field::DELAY_MS.into(), json!(delay_ms));
                    }
                    ResponseAction::Error { code } => {
                        detail.insert(field::ERROR_CODE.into(), json!(code));
                        detail.insert(field::ERROR_NAME.into(), json!(error_name(code)));
                    }
                }
                if let Some(count) = fault.count {
                    detail.insert(field::COUNT.into(), json!(count));
                }
                links.broker().map(NodeRef::Broker)
            }
            Fault::PassResponse { links, api_key } => {
                response_detail(&mut detail, *links, *api_key);
                links.broker().map(NodeRef::Broker)
            }
        };
        serde_json::to_value(FaultValue { node, detail }).expect("a fault value serializes")
    }

    /// The history's `value` once the fault was applied: [`value`](Self::value) plus what the
    /// executor learnt applying it (a power loss's [`PowerLossOutcome`]).
    pub fn value_with(&self, learnt: Map<String, Value>) -> Value {
        let mut value = self.value();
        if let Value::Object(map) = &mut value {
            map.extend(learnt);
        }
        value
    }
}

/// What the executor learns while it applies a power loss, added to the fault's `value` in the
/// history: what the brokers' lazy mounts dropped, how long they were down, and why a restart
/// failed. The executor writes it and `windows` reads it; every field defaults, so a history
/// that lacks one still reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PowerLossOutcome {
    pub lost_bytes: u64,
    pub lost_files: u64,
    /// Per broker, in the order of the fault's `nodes`.
    pub lost: Vec<LostOnBroker>,
    /// From the SIGKILL to the restart.
    pub down_ms: u64,
    /// Set when a broker did not restart: it stays down until the heal phase starts it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_error: Option<String>,
}

/// What one broker's lazy mount dropped in a power loss.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LostOnBroker {
    pub node: u32,
    pub lost_bytes: u64,
    pub lost_files: u64,
}

impl PowerLossOutcome {
    /// The fields it adds to the fault's `value`.
    pub fn into_detail(self) -> Map<String, Value> {
        match serde_json::to_value(self).expect("a power loss outcome serializes") {
            Value::Object(detail) => detail,
            _ => unreachable!("a struct serializes to an object"),
        }
    }

    /// Reads it back from a `power-loss` operation's `value`.
    pub fn from_value(value: &Value) -> PowerLossOutcome {
        serde_json::from_value(value.clone()).unwrap_or_default()
    }
}

/// The history's `f` of a message fault.
pub fn response_word(action: ResponseAction) -> &'static str {
    match action {
        ResponseAction::Drop => word::DROP_RESPONSE,
        ResponseAction::Delay { .. } => word::DELAY_RESPONSE,
        ResponseAction::Error { .. } => word::ERROR_RESPONSE,
    }
}

/// The fields every message fault and its heal write: the links (as a delay's `links` reads:
/// `all`, or `link client->2`) and the API key, by number and by name.
fn response_detail(detail: &mut Map<String, Value>, links: KafkaLinks, api_key: i16) {
    let selector = match links {
        KafkaLinks::All => LinkSelector::All,
        KafkaLinks::Broker(id) => LinkSelector::Link(Endpoint::Client, Endpoint::broker(id)),
    };
    detail.insert(field::LINKS.into(), json!(selector.to_string()));
    detail.insert(field::API_KEY.into(), json!(api_key));
    detail.insert(field::API.into(), json!(api_name(api_key)));
}

/// A node as the history names it.
fn node_ref(node: Node) -> NodeRef {
    match node {
        Node::Broker(id) => NodeRef::Broker(id),
        Node::Controller | Node::Service(_) => NodeRef::Named(node.to_string()),
    }
}

/// The history's word for a kill signal (`KILL`, `TERM`: the signal's own name, as docs/history.md
/// shows it), apart from test.json's `kill_signal` setting (`kill`, `term`).
fn signal_name(signal: KillSignal) -> &'static str {
    match signal {
        KillSignal::Kill => "KILL",
        KillSignal::Term => "TERM",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_partitions_cut_the_right_links_and_count_faulty_brokers() {
        let groups = NetworkPartition::Groups(vec![
            vec![Endpoint::broker(1)],
            vec![
                Endpoint::broker(2),
                Endpoint::broker(3),
                Endpoint::CONTROLLER,
            ],
        ]);
        assert_eq!(groups.cuts().len(), 2 * 3);
        assert_eq!(groups.faulty_brokers(), BTreeSet::from([1]));
        let one_way = NetworkPartition::OneWay {
            from: vec![Endpoint::broker(1), Endpoint::broker(2)],
            to: vec![Endpoint::broker(3)],
        };
        assert_eq!(one_way.cuts().len(), 2);
        assert_eq!(one_way.faulty_brokers(), BTreeSet::from([3]));
        let controller_only = NetworkPartition::Groups(vec![
            vec![Endpoint::CONTROLLER],
            vec![Endpoint::broker(1), Endpoint::broker(2)],
        ]);
        assert!(controller_only.faulty_brokers().is_empty());
    }
}
