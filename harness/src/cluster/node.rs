//! Names for the parts of a cluster: a [`Node`] is a process the harness runs (the controller,
//! a broker, or a system file's service); an [`Endpoint`] is anything at either end of a link
//! (a node, or the clients). Their text forms (`controller`, `2`, `service:postgres`, `client`)
//! are the ones used in schedules, the history and the CLI.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Mutex;

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    Controller,
    Broker(u32),
    /// A system file's `[[services]]` entry (docs/systems.md): PostgreSQL under Tansu,
    /// faultline-node's controller run as a service. A schedule can kill, pause and start it,
    /// and cut or slow the links brokers reach it by (`{service_link:NAME}`).
    Service(&'static str),
}

/// Service names, each kept once for the process's life so a [`Node`] stays `Copy`: a run has
/// a handful, and a name seen again is the one already kept.
static SERVICE_NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

/// What a service name may hold: it is written in schedules as `service:NAME`.
pub fn is_service_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Node {
    pub fn broker(self) -> Option<u32> {
        match self {
            Node::Broker(id) => Some(id),
            Node::Controller | Node::Service(_) => None,
        }
    }

    /// The service called `name` (a name [`is_service_name`] allows).
    pub fn service(name: &str) -> Self {
        let mut names = SERVICE_NAMES.lock().unwrap_or_else(|e| e.into_inner());
        let kept = match names.get(name) {
            Some(kept) => *kept,
            None => {
                let kept: &'static str = Box::leak(name.to_string().into_boxed_str());
                names.insert(kept);
                kept
            }
        };
        Node::Service(kept)
    }

    /// The history's form: a broker id as a number, the controller as `"controller"`, a
    /// service as `"service:NAME"`.
    pub fn to_value(self) -> Value {
        match self {
            Node::Controller => Value::from("controller"),
            Node::Broker(id) => Value::from(id),
            Node::Service(name) => Value::from(format!("service:{name}")),
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
            Node::Service(name) => write!(f, "service:{name}"),
        }
    }
}

impl std::str::FromStr for Node {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "controller" {
            return Ok(Node::Controller);
        }
        if let Some(name) = s.strip_prefix("service:") {
            if !is_service_name(name) {
                return Err(format!(
                    "a service name is letters, digits, `_` and `-`, got {name:?}"
                ));
            }
            return Ok(Node::service(name));
        }
        s.parse::<u32>()
            .map(Node::Broker)
            .map_err(|_| format!("expected a broker id, `controller` or `service:NAME`, got {s:?}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    /// The workload's clients (one endpoint for all of them).
    Client,
    /// A node; a service (`Node::Service`) is an endpoint of the links brokers reach it by
    /// (`{service_link:NAME}`, docs/systems.md).
    Node(Node),
}

impl Endpoint {
    pub fn broker(id: u32) -> Self {
        Endpoint::Node(Node::Broker(id))
    }

    /// The service called `name` as a link endpoint.
    pub fn service(name: &str) -> Self {
        Endpoint::Node(Node::service(name))
    }

    pub fn is_service(self) -> bool {
        matches!(self, Endpoint::Node(Node::Service(_)))
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
        match s.parse::<Node>() {
            Ok(node) => Ok(Endpoint::Node(node)),
            Err(e) if s.starts_with("service:") => Err(e),
            Err(_) => Err(format!(
                "expected a broker id, `controller`, `client` or `service:NAME`, got {s:?}"
            )),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_read_back_as_written() {
        for text in ["client", "controller", "2", "service:postgres"] {
            let endpoint: Endpoint = text.parse().unwrap();
            assert_eq!(endpoint.to_string(), text);
        }
        let pg = Endpoint::service("postgres");
        assert_eq!("service:postgres".parse::<Endpoint>(), Ok(pg));
        assert_eq!(pg.to_value(), Value::from("service:postgres"));
        assert_ne!(pg, Endpoint::service("controller"));
        assert_eq!(
            "service:postgres".parse::<Node>(),
            Ok(Node::service("postgres"))
        );
        assert_eq!(Node::service("postgres").broker(), None);
        let bad = "service:pg sql".parse::<Endpoint>().unwrap_err();
        assert!(bad.contains("service name"), "{bad}");
        let unknown = "postgres".parse::<Endpoint>().unwrap_err();
        assert!(unknown.contains("service:NAME"), "{unknown}");
    }
}
