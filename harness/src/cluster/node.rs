//! Names for the parts of a cluster: a [`Node`] is a process the harness runs (the controller
//! or a broker); an [`Endpoint`] is anything at either end of a link (a node, or the clients).
//! Their text forms (`controller`, `2`, `client`) are the ones used in schedules, the history
//! and the CLI.

use std::fmt;

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    Controller,
    Broker(u32),
}

impl Node {
    pub fn broker(self) -> Option<u32> {
        match self {
            Node::Broker(id) => Some(id),
            Node::Controller => None,
        }
    }

    /// The history's form: a broker id as a number, the controller as `"controller"`.
    pub fn to_value(self) -> Value {
        match self {
            Node::Controller => Value::from("controller"),
            Node::Broker(id) => Value::from(id),
        }
    }

    /// The directory name under `nodes/`.
    pub fn dir_name(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Controller => f.write_str("controller"),
            Node::Broker(id) => write!(f, "{id}"),
        }
    }
}

impl std::str::FromStr for Node {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "controller" {
            return Ok(Node::Controller);
        }
        s.parse::<u32>()
            .map(Node::Broker)
            .map_err(|_| format!("expected a broker id or `controller`, got {s:?}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    /// The workload's clients (one endpoint for all of them).
    Client,
    Node(Node),
}

impl Endpoint {
    pub fn broker(id: u32) -> Self {
        Endpoint::Node(Node::Broker(id))
    }

    pub const CONTROLLER: Endpoint = Endpoint::Node(Node::Controller);

    pub fn to_value(self) -> Value {
        match self {
            Endpoint::Client => Value::from("client"),
            Endpoint::Node(node) => node.to_value(),
        }
    }
}

impl From<Node> for Endpoint {
    fn from(node: Node) -> Self {
        Endpoint::Node(node)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Client => f.write_str("client"),
            Endpoint::Node(node) => node.fmt(f),
        }
    }
}

impl std::str::FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "client" {
            return Ok(Endpoint::Client);
        }
        s.parse::<Node>()
            .map(Endpoint::Node)
            .map_err(|_| format!("expected a broker id, `controller` or `client`, got {s:?}"))
    }
}

/// A topic partition named in schedules, the history and metadata as `topic/partition`.
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
