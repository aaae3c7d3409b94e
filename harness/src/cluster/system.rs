//! A system file (`faultline test --system FILE`, docs/systems.md): a Kafka-protocol system
//! other than faultline-node, described by one TOML file — how to start its nodes (a command
//! template the harness fills), the services they need, how its topic is created, what it
//! promises and which faults apply. This module owns the file's shape and its checks
//! ([`SystemFile::load`], every error naming the key), the placeholders and their filling
//! ([`Template`]). Starting the services and the nodes (both under the supervisor), reading
//! metadata and the final read are the [`Cluster`](super::Cluster)'s, which asks only Kafka's
//! protocol of such a system.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use faultline_checker::config::{FaultKind, SystemInfo};
use faultline_checker::history::Acks;
use serde::Deserialize;
use tokio::process::Command;

use crate::cluster::node::is_service_name;
use crate::cluster::supervisor::harden;
use crate::duration::parse_duration;

/// The whole file. Unknown keys anywhere are errors (`deny_unknown_fields`): a misspelt key
/// silently ignored would run a different test than the one described.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemFile {
    pub name: String,
    pub version: String,
    pub nodes: NodesSpec,
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
    #[serde(default)]
    pub setup: SetupSpec,
    pub promise: PromiseSpec,
    pub faults: FaultsSpec,
    /// Where the file was read from (test.json records it; the replay line names it).
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodesSpec {
    pub count: u32,
    /// Run with `sh -c` in the node's data dir, in its own process group.
    pub command: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// How readiness is judged: `kafka` (the only one): the node's Kafka port answers
    /// Metadata.
    #[serde(default = "kafka_ready")]
    pub ready: String,
    /// How long each node has to get ready, e.g. `30s`.
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout: String,
    /// What a node's Kafka Metadata lists: every live node, or only itself.
    #[serde(default)]
    pub metadata: MetadataScope,
    /// Prints the node's surviving log in the dump format (docs/results.md) on stdout; run
    /// after the node stopped, in its data dir.
    pub dump: Option<String>,
}

/// What one node's Kafka Metadata answer covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetadataScope {
    /// Every live node, and each partition's leader and ISR across them (Kafka, faultline-node).
    #[default]
    Cluster,
    /// Only the node asked, which answers as the leader of every partition: brokers that share
    /// their log through storage rather than replicate it (Tansu 0.6.0 on PostgreSQL: each
    /// broker lists only itself, tansu-storage `pg.rs` `brokers`). The harness asks every node
    /// and takes the nodes that answer as the live ones.
    #[serde(rename = "self")]
    OnlySelf,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub name: String,
    pub command: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// A fixed port; default: a free loopback port the harness picks (`{port}`).
    pub port: Option<u16>,
    /// How long the service has to accept a TCP connection on its port.
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout: String,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupSpec {
    /// Creates the topic instead of Kafka's CreateTopics (a system without that API).
    pub command: Option<String>,
    /// Topic configs added to the CreateTopics request (beside min.insync.replicas and, with
    /// `--unclean-leader-election`, unclean.leader.election.enable).
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromiseSpec {
    /// The strongest acks the system honours: `all`, `1` or `0`.
    pub acks: String,
    pub min_insync_replicas: u32,
    /// An acknowledged write is on stable storage (fsynced) when acknowledged: a power loss
    /// may take nothing acknowledged. Default false, as Kafka (which leaves flushing to the OS).
    #[serde(default)]
    pub fsync: bool,
    /// Why it promises less, when it does (printed with the guarantee).
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsSpec {
    #[serde(default)]
    pub kill: bool,
    #[serde(default)]
    pub pause: bool,
    /// Network partitions of client↔broker links, and of broker↔broker links where the
    /// command names `{peer_port:N}`.
    #[serde(default)]
    pub partition: bool,
    #[serde(default)]
    pub delay: bool,
    /// Power loss of the data dirs; needs `--lazyfs`.
    #[serde(default)]
    pub power_loss: bool,
}

fn kafka_ready() -> String {
    "kafka".to_string()
}

fn default_ready_timeout() -> String {
    "30s".to_string()
}

impl ServiceSpec {
    /// How long the service has to accept a connection (checked at load).
    pub fn ready_timeout(&self) -> Duration {
        parse_timeout("", &self.ready_timeout).expect("checked at load")
    }
}

impl SystemFile {
    /// Reads and checks a system file; every error names the file and the key.
    pub fn load(path: &Path) -> Result<SystemFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("system file {}: {e}", path.display()))?;
        let mut file: SystemFile = toml::from_str(&text)
            .map_err(|e| format!("system file {}: {}", path.display(), one_line(&e)))?;
        file.path = path.to_path_buf();
        file.check()
            .map_err(|e| format!("system file {}: {e}", path.display()))?;
        Ok(file)
    }

    /// The directory that holds the file, absolute: `{system_dir}`, for scripts beside it.
    pub fn dir(&self) -> PathBuf {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
    }

    fn check(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("`name` is empty".into());
        }
        if self.nodes.count == 0 {
            return Err("`nodes.count` must be at least 1".into());
        }
        if self.nodes.ready != "kafka" {
            return Err(format!(
                "`nodes.ready` must be \"kafka\", got {:?}",
                self.nodes.ready
            ));
        }
        parse_timeout("nodes.ready_timeout", &self.nodes.ready_timeout)?;
        self.promise_acks()?;
        let mut names = Vec::new();
        for (i, service) in self.services.iter().enumerate() {
            let key = format!("services[{i}]");
            if service.name.is_empty() || names.contains(&service.name) {
                return Err(format!("`{key}.name` must be unique and non-empty"));
            }
            if !is_service_name(&service.name) {
                return Err(format!(
                    "`{key}.name` {:?}: letters, digits, `_` and `-` only (schedules name it \
                     `service:NAME`)",
                    service.name
                ));
            }
            names.push(service.name.clone());
            parse_timeout(&format!("{key}.ready_timeout"), &service.ready_timeout)?;
        }
        // Every placeholder must be known: fill each template once with stand-in values.
        // `{service_link:NAME}` is a node's own link, so only node commands may name one.
        let node_vars = Template::stand_in(self);
        node_vars
            .fill(&self.nodes.command)
            .map_err(|e| format!("`nodes.command`: {e}"))?;
        if let Some(dump) = &self.nodes.dump {
            node_vars
                .fill(dump)
                .map_err(|e| format!("`nodes.dump`: {e}"))?;
        }
        let vars = Template {
            service_links: BTreeMap::new(),
            ..node_vars
        };
        if let Some(command) = &self.setup.command {
            vars.fill(command)
                .map_err(|e| format!("`setup.command`: {e}"))?;
        }
        for (i, service) in self.services.iter().enumerate() {
            vars.fill(&service.command)
                .map_err(|e| format!("`services[{i}].command`: {e}"))?;
        }
        Ok(())
    }

    pub fn promise_acks(&self) -> Result<Acks, String> {
        match self.promise.acks.as_str() {
            "all" | "-1" => Ok(Acks::All),
            "1" => Ok(Acks::One),
            "0" => Ok(Acks::Zero),
            other => Err(format!(
                "`promise.acks` must be \"all\", \"1\" or \"0\", got {other:?}"
            )),
        }
    }

    pub fn ready_timeout(&self) -> Duration {
        parse_timeout("", &self.nodes.ready_timeout).expect("checked at load")
    }

    /// Whether the file lets this fault kind run (power loss also needs `--lazyfs`).
    pub fn allows(&self, kind: FaultKind) -> bool {
        let f = &self.faults;
        match kind {
            FaultKind::Kill | FaultKind::RollingRestart => f.kill,
            FaultKind::Pause => f.pause,
            FaultKind::Partition | FaultKind::IsrPressure => f.partition,
            FaultKind::LeaderLoss => f.kill || f.pause || f.partition,
            FaultKind::Delay => f.delay,
            FaultKind::PowerLoss => f.power_loss,
            // Its faults are the harness's own proxies', but its plans kill or pause the leader.
            FaultKind::DropResponse => f.kill || f.pause,
        }
    }

    /// The peer ports node `id`'s command names (`{peer_port:N}`), in order.
    pub fn peers_named(&self, id: u32) -> Vec<u32> {
        let command = self.nodes.command.replace("{id}", &id.to_string());
        let mut peers: Vec<u32> = (1..=self.nodes.count)
            .filter(|n| command.contains(&format!("{{peer_port:{n}}}")))
            .collect();
        peers.dedup();
        peers
    }

    /// The services node `id`'s command reaches through a harness link
    /// (`{service_link:NAME}`), in the file's order.
    pub fn services_linked(&self, id: u32) -> Vec<String> {
        let command = self.nodes.command.replace("{id}", &id.to_string());
        self.services
            .iter()
            .map(|s| s.name.clone())
            .filter(|name| command.contains(&format!("{{service_link:{name}}}")))
            .collect()
    }

    /// Every service some node reaches through a link: the services a partition can cut.
    pub fn linked_services(&self) -> Vec<String> {
        let mut names: Vec<String> = (1..=self.nodes.count)
            .flat_map(|id| self.services_linked(id))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// What test.json records.
    pub fn info(&self) -> SystemInfo {
        SystemInfo {
            name: self.name.clone(),
            version: self.version.clone(),
            file: self.path.clone(),
            dump: self.nodes.dump.is_some(),
            promise_acks: self.promise_acks().expect("checked at load"),
            promise_min_insync_replicas: self.promise.min_insync_replicas,
            promise_fsync: self.promise.fsync,
        }
    }
}

/// A TOML error on one line (the crate's own spans a few lines with a caret).
fn one_line(error: &toml::de::Error) -> String {
    let message = error.message().trim().to_string();
    match error.span() {
        Some(span) => format!("{message} (at byte {})", span.start),
        None => message,
    }
}

fn parse_timeout(key: &str, text: &str) -> Result<Duration, String> {
    match parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(format!("`{key}` must be more than 0")),
        Err(e) => Err(format!("`{key}`: {e}")),
    }
}

/// The values a command's placeholders take: `{id}`, `{data}`, `{kafka_port}`, `{port}` (a
/// service's own), `{peer_port:N}`, `{kafka_port:N}`, `{service_port:NAME}`, in a node's
/// command `{service_link:NAME}` (the port of the harness's link from that node to the
/// service), `{bootstrap}`, and for the setup command `{topic}`, `{partitions}`,
/// `{replication_factor}`, `{min_insync_replicas}`, `{unclean_leader_election}`.
#[derive(Debug, Clone, Default)]
pub struct Template {
    pub plain: BTreeMap<String, String>,
    pub peer_ports: BTreeMap<u32, u16>,
    pub kafka_ports: BTreeMap<u32, u16>,
    pub service_ports: BTreeMap<String, u16>,
    /// A node's links to services, by service name (node templates only).
    pub service_links: BTreeMap<String, u16>,
}

impl Template {
    /// Stand-in values for every placeholder the file may use, to check its templates.
    fn stand_in(file: &SystemFile) -> Template {
        let mut t = Template::default();
        for key in [
            "id",
            "data",
            "kafka_port",
            "port",
            "bootstrap",
            "system_dir",
            "topic",
            "partitions",
            "replication_factor",
            "min_insync_replicas",
            "unclean_leader_election",
        ] {
            t.plain.insert(key.to_string(), "1".to_string());
        }
        for n in 1..=file.nodes.count {
            t.peer_ports.insert(n, 1);
            t.kafka_ports.insert(n, 1);
        }
        for s in &file.services {
            t.service_ports.insert(s.name.clone(), 1);
            t.service_links.insert(s.name.clone(), 1);
        }
        t
    }

    /// Fills every placeholder of `text`; an unknown placeholder is an error naming it. A
    /// placeholder is `{word}` or `{word:arg}` (lower-case word, no spaces or quotes); other
    /// braces, such as a JSON body's, are kept as they are.
    pub fn fill(&self, text: &str) -> Result<String, String> {
        // `{id}` first, so `{peer_port:{id}}` names this node's own peer port.
        let text = match self.plain.get("id") {
            Some(id) => text.replace("{id}", id),
            None => text.to_string(),
        };
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            match after.find('}').map(|close| &after[..close]) {
                Some(name) if is_placeholder(name) => {
                    out.push_str(&self.value(name)?);
                    rest = &after[name.len() + 1..];
                }
                _ => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    fn value(&self, name: &str) -> Result<String, String> {
        if let Some(v) = self.plain.get(name) {
            return Ok(v.clone());
        }
        let indexed = |map: &BTreeMap<u32, u16>, n: &str| {
            n.parse::<u32>()
                .ok()
                .and_then(|n| map.get(&n))
                .map(u16::to_string)
                .ok_or_else(|| format!("`{{{name}}}` names no node (nodes are 1..=count)"))
        };
        match name.split_once(':') {
            Some(("peer_port", n)) => indexed(&self.peer_ports, n),
            Some(("kafka_port", n)) => indexed(&self.kafka_ports, n),
            Some(("service_port", s)) => self
                .service_ports
                .get(s)
                .map(u16::to_string)
                .ok_or_else(|| format!("`{{{name}}}` names no service")),
            Some(("service_link", s)) => {
                self.service_links
                    .get(s)
                    .map(u16::to_string)
                    .ok_or_else(|| {
                        if self.service_ports.contains_key(s) {
                            format!("`{{{name}}}`: only a node's command has links to services")
                        } else {
                            format!("`{{{name}}}` names no service")
                        }
                    })
            }
            _ => Err(format!("unknown placeholder `{{{name}}}`")),
        }
    }
}

/// `word` or `word:arg`: a lower-case word, then an argument without spaces, quotes or braces.
fn is_placeholder(name: &str) -> bool {
    let (word, arg) = name.split_once(':').unwrap_or((name, "x"));
    let word_ok = !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    let arg_ok = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    word_ok && arg_ok
}

/// Checks that a fixed port is free, naming who wanted it.
pub fn check_port_free(port: u16, who: &str) -> anyhow::Result<()> {
    TcpListener::bind(("127.0.0.1", port))
        .map(drop)
        .with_context(|| format!("{who}: port {port} is in use"))
}

/// A `sh -c` command in its own process group (faultline-launch's hygiene), cwd `dir`, with
/// `env`, its output appended to `log_path`.
pub fn shell(
    command: &str,
    dir: &Path,
    env: &BTreeMap<String, String>,
    log_path: &Path,
) -> std::io::Result<Command> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)?;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(dir)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    harden(&mut cmd);
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "x"
version = "1"
[nodes]
count = 1
command = "x --port {kafka_port} --data {data}"
[promise]
acks = "all"
min_insync_replicas = 2
[faults]
kill = true
"#;

    fn load(text: &str) -> Result<SystemFile, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(&path, text).unwrap();
        SystemFile::load(&path)
    }

    #[test]
    fn a_minimal_file_loads() {
        let file = load(MINIMAL).unwrap();
        assert_eq!(file.nodes.count, 1);
        assert!(file.allows(FaultKind::Kill));
        assert!(!file.allows(FaultKind::Pause));
    }

    #[test]
    fn errors_name_the_key() {
        let unknown = load(&MINIMAL.replace("kill = true", "kill = true\nclock = true"));
        assert!(unknown.unwrap_err().contains("clock"));
        let missing = load(&MINIMAL.replace("version = \"1\"\n", ""));
        assert!(missing.unwrap_err().contains("version"));
        let placeholder = load(&MINIMAL.replace("{data}", "{dta}"));
        let e = placeholder.unwrap_err();
        assert!(e.contains("nodes.command") && e.contains("{dta}"), "{e}");
        let peer = load(&MINIMAL.replace("{data}", "{peer_port:4}"));
        assert!(peer.unwrap_err().contains("names no node"));
    }

    #[test]
    fn templates_fill_own_and_peer_ports() {
        let mut t = Template::default();
        t.plain.insert("id".into(), "2".into());
        t.peer_ports.insert(1, 7001);
        t.peer_ports.insert(2, 7002);
        let filled = t.fill("--listen {peer_port:{id}} --peer 1=x:{peer_port:1}");
        assert_eq!(filled.unwrap(), "--listen 7002 --peer 1=x:7001");
        let json = t.fill(r#"-d '{"n":{"a":1}}' {id}"#);
        assert_eq!(json.unwrap(), r#"-d '{"n":{"a":1}}' 2"#);
    }

    const WITH_SERVICE: &str = r#"
name = "x"
version = "1"
[nodes]
count = 2
command = "x --port {kafka_port} --store 127.0.0.1:{service_link:db}"
[[services]]
name = "db"
command = "db --port {port}"
[promise]
acks = "all"
min_insync_replicas = 1
[faults]
partition = true
"#;

    #[test]
    fn service_links_are_a_nodes_own() {
        let file = load(WITH_SERVICE).unwrap();
        assert_eq!(file.services_linked(1), ["db"]);
        assert_eq!(file.linked_services(), ["db"]);
        let mut t = Template::default();
        t.service_links.insert("db".into(), 7101);
        assert_eq!(t.fill("{service_link:db}").unwrap(), "7101");
        assert!(t
            .fill("{service_link:cache}")
            .unwrap_err()
            .contains("names no service"));

        // A service's or the setup's command has no link of its own to a service.
        let in_service = WITH_SERVICE.replace("db --port {port}", "db {service_link:db}");
        let e = load(&in_service).unwrap_err();
        assert!(
            e.contains("services[0].command") && e.contains("only a node"),
            "{e}"
        );
        let unknown = load(&WITH_SERVICE.replace("{service_link:db}", "{service_link:dbx}"));
        assert!(unknown.unwrap_err().contains("names no service"));
        let bad_name = load(&WITH_SERVICE.replace("name = \"db\"", "name = \"d b\""));
        assert!(bad_name.unwrap_err().contains("services[0].name"));
    }
}
