//! The cluster layer: what runs and how it is reached. The supervisor owns the node processes,
//! each link runs through one proxy (`proxy`, grouped by `network`), `lazy` mounts the brokers'
//! data dirs for power loss, and `final_read` reads every partition at the end. It knows nothing
//! of faults as a vocabulary, schedules or runs.
//!
//! This module is the handle the layers above use, [`Cluster`], the cluster under test: it
//! allocates loopback ports, starts the link proxies, the controller
//! and the brokers (pointed at the proxies), waits for readiness with deadlines, creates the
//! topics, and at the end stops the nodes and collects their logs, dumps and events into the
//! run's store. It also owns the bounded waits on the controller's metadata (an ISR's size, a new
//! leader) that schedules and fault plans share. Admin calls go straight to the nodes, never
//! through links. The final read is `final_read`'s; faults are the executor's (`nemesis`).
//!
//! The cluster has one of two backends: faultline-node (the controller and brokers above,
//! reached over their HTTP API), or a system described by a system file (`system`,
//! docs/systems.md), which has no controller: its nodes are `sh -c` commands, its metadata is
//! Kafka Metadata asked of its brokers, its topic is made by CreateTopics (or the file's
//! command), and its dumps come from the file's `dump` command, if any. The few places that
//! differ branch on [`ClusterSpec::system`].

pub mod final_read;
pub mod lazy;
pub mod network;
pub mod node;
pub mod proxy;
pub mod supervisor;
pub mod system;
mod system_cluster;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use faultline_workloads::client::{CreateTopic, Metadata};
use faultline_workloads::{KafkaClient, NodeClient};
use serde_json::{json, Map};
use tokio::time::Instant;

use faultline_checker::config::KafkaVersion;

use crate::cluster::lazy::{LazyMounts, MountPaths};
use crate::cluster::network::Network;
use crate::cluster::node::{Endpoint, Node, TopicPartition};
use crate::cluster::supervisor::{
    harden, KillSignal, NodeCommand, ProcState, ShellNode, Supervisor,
};
use crate::cluster::system::{check_port_free, SystemFile, Template};

#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub node_bin: PathBuf,
    pub run_dir: PathBuf,
    pub brokers: u32,
    pub cluster_id: String,
    pub replica_lag_time_max_ms: u64,
    pub kafka_version: KafkaVersion,
    pub seed: u64,
    /// Passed to every broker after the harness's own flags.
    pub broker_args: Vec<String>,
    /// Give every broker a Kafka listener, advertised as its client→broker Kafka proxy.
    pub kafka: bool,
    /// `--lazyfs`: the `faultline-lazyfs` binary that mounts each broker's data dir.
    pub lazyfs_bin: Option<PathBuf>,
    /// `--system FILE`: run the system it describes instead of faultline-node.
    pub system: Option<std::sync::Arc<SystemFile>>,
}

#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u32,
    pub min_insync_replicas: u32,
    pub unclean_leader_election: bool,
}

/// The partition a step names, or the first partition of the first topic when it names none.
pub fn default_partition(topics: &[TopicSpec], tp: &Option<TopicPartition>) -> TopicPartition {
    tp.clone().unwrap_or_else(|| TopicPartition {
        topic: topics[0].name.clone(),
        partition: 0,
    })
}

pub struct Cluster {
    pub spec: ClusterSpec,
    pub supervisor: Supervisor,
    pub network: Network,
    /// faultline-node's controller; a system file's system has none.
    pub controller_addr: Option<SocketAddr>,
    /// faultline-node: each broker's HTTP API. A system file's system: each node's real Kafka
    /// listener (the harness's admin address for it).
    pub broker_addrs: BTreeMap<u32, SocketAddr>,
    /// Each broker's real Kafka listener (empty unless `spec.kafka`).
    pub kafka_addrs: BTreeMap<u32, SocketAddr>,
    /// Direct, unfaulted calls from the harness itself.
    pub admin: NodeClient,
    /// Direct, unfaulted Kafka calls from the harness to a system file's system.
    pub kafka: KafkaClient,
    /// A system file's placeholders for each node (its dump command uses them too).
    pub templates: BTreeMap<u32, Template>,
    /// `--lazyfs`: each broker's data dir on its own lazy mount. Declared after the supervisor,
    /// so on an error path the nodes are killed before their mounts are stopped.
    pub mounts: Option<LazyMounts>,
}

/// What a wait on the metadata saw: the metadata that met it, or on timeout the last seen.
pub type Waited = Result<Metadata, Option<Metadata>>;

/// How long the whole cluster has to come up.
pub const SETUP_DEADLINE: Duration = Duration::from_secs(30);
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(50);
const DUMP_DEADLINE: Duration = Duration::from_secs(60);
/// Each direct Kafka call of the harness to a system file's node: short, so that a paused node
/// delays a metadata lookup by this much before the next node is asked.
const ADMIN_KAFKA_TIMEOUT: Duration = Duration::from_secs(1);

impl Cluster {
    /// Starts the proxies and every node, and waits until the controller lists every broker
    /// alive. On error the nodes already started are stopped when the cluster is dropped.
    pub async fn start(spec: ClusterSpec) -> anyhow::Result<Cluster> {
        if let Some(system) = spec.system.clone() {
            return Cluster::start_system(spec, system).await;
        }
        let kafka_ports = if spec.kafka { spec.brokers as usize } else { 0 };
        let mut ports =
            faultline_launch::free_ports(spec.brokers as usize + 1 + kafka_ports)?.into_iter();
        let controller_addr = ports.next().expect("one port per node");
        let broker_addrs: BTreeMap<u32, SocketAddr> =
            (1..=spec.brokers).zip(ports.by_ref()).collect();
        let kafka_addrs: BTreeMap<u32, SocketAddr> = (1..=spec.brokers).zip(ports).collect();
        let network = Network::start(controller_addr, &broker_addrs, &kafka_addrs, spec.seed)
            .await
            .context("starting link proxies")?;
        let mut cluster = Cluster {
            supervisor: Supervisor::new(&spec.node_bin),
            network,
            controller_addr: Some(controller_addr),
            broker_addrs,
            kafka_addrs,
            admin: NodeClient::new(Duration::from_secs(2)),
            kafka: KafkaClient::new(ADMIN_KAFKA_TIMEOUT),
            templates: BTreeMap::new(),
            mounts: None,
            spec,
        };
        cluster.mounts = cluster.mount_lazyfs()?;
        cluster.register_nodes().await?;
        cluster.boot().await?;
        Ok(cluster)
    }

    /// With `--lazyfs`, mounts every broker's data dir before any broker starts. Mounting
    /// blocks (each mount is polled until it answers), so it runs in place on this worker.
    fn mount_lazyfs(&self) -> anyhow::Result<Option<LazyMounts>> {
        let Some(bin) = &self.spec.lazyfs_bin else {
            return Ok(None);
        };
        let paths_of = |id| MountPaths::for_node_dir(&self.node_dir(Node::Broker(id)));
        let paths: BTreeMap<u32, MountPaths> = self
            .brokers()
            .into_iter()
            .map(|id| (id, paths_of(id)))
            .collect();
        let mounts = tokio::task::block_in_place(|| LazyMounts::mount(bin, &paths))?;
        Ok(Some(mounts))
    }

    /// After [`collect`](Self::collect): unmounts the brokers' lazy mounts, writing back what
    /// they hold. Returns the problems met (reported, not fatal).
    pub async fn unmount(&self) -> Vec<String> {
        match &self.mounts {
            Some(mounts) => mounts.unmount_all().await,
            None => Vec::new(),
        }
    }

    async fn register_nodes(&self) -> anyhow::Result<()> {
        let controller = Node::Controller;
        let args = vec![
            "controller".to_string(),
            "--listen".to_string(),
            self.node_addr(controller).to_string(),
            "--data".to_string(),
            self.data_dir(controller).display().to_string(),
            "--cluster-id".to_string(),
            self.spec.cluster_id.clone(),
            "--kafka-version".to_string(),
            self.spec.kafka_version.as_str().to_string(),
        ];
        self.add_node(controller, args).await?;
        for &id in self.broker_addrs.keys() {
            let args = self.broker_args(id);
            self.add_node(Node::Broker(id), args).await?;
        }
        Ok(())
    }

    fn broker_args(&self, id: u32) -> Vec<String> {
        let me = Endpoint::broker(id);
        let to_controller = self
            .network
            .addr(me, Endpoint::CONTROLLER)
            .expect("every broker has a link to the controller");
        let mut args: Vec<String> = vec![
            "broker".into(),
            "--id".into(),
            id.to_string(),
            "--listen".into(),
            self.broker_addrs[&id].to_string(),
            "--data".into(),
            self.data_dir(Node::Broker(id)).display().to_string(),
            "--controller".into(),
            to_controller.to_string(),
            "--cluster-id".into(),
            self.spec.cluster_id.clone(),
            "--replica-lag-time-max-ms".into(),
            self.spec.replica_lag_time_max_ms.to_string(),
            "--kafka-version".into(),
            self.spec.kafka_version.as_str().to_string(),
        ];
        if let (Some(listen), Some(advertise)) =
            (self.kafka_addrs.get(&id), self.network.kafka_addr(id))
        {
            // Kafka clients connect where Metadata points them: the proxy, so faults apply.
            args.push("--kafka-listen".into());
            args.push(listen.to_string());
            args.push("--kafka-advertise".into());
            args.push(advertise.to_string());
        }
        for &peer in self.broker_addrs.keys().filter(|&&p| p != id) {
            let link = self
                .network
                .addr(me, Endpoint::broker(peer))
                .expect("every broker has a link to every other");
            args.push("--peer".into());
            args.push(format!("{peer}={link}"));
        }
        args.extend(self.spec.broker_args.iter().cloned());
        args
    }

    async fn add_node(&self, node: Node, args: Vec<String>) -> anyhow::Result<()> {
        let dir = self.node_dir(node);
        std::fs::create_dir_all(self.data_dir(node))
            .with_context(|| format!("creating {}", dir.display()))?;
        let command = NodeCommand::native(args, dir.join("node.log"));
        self.supervisor.add(node, command).await;
        Ok(())
    }

    async fn boot(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + SETUP_DEADLINE;
        self.supervisor.start(Node::Controller).await?;
        self.wait_serving(Node::Controller, deadline).await?;
        for &id in self.broker_addrs.keys() {
            self.supervisor.start(Node::Broker(id)).await?;
        }
        for &id in self.broker_addrs.keys() {
            self.wait_serving(Node::Broker(id), deadline).await?;
        }
        let all = self.brokers();
        let registered = self
            .wait_for(deadline, |m| all.iter().all(|&b| m.is_alive(b)))
            .await;
        if registered.is_err() {
            bail!(
                "brokers did not all register with the controller within {:?}",
                SETUP_DEADLINE
            );
        }
        Ok(())
    }

    /// Polls a node's `/v1/metadata` until it answers, failing early if the process exits.
    async fn wait_serving(&self, node: Node, deadline: Instant) -> anyhow::Result<()> {
        let addr = self.node_addr(node);
        loop {
            if self.admin.metadata(addr).await.is_ok() {
                return Ok(());
            }
            if let Some(ProcState::Exited(status)) = self.supervisor.state(node).await {
                bail!(
                    "node {node} exited during startup ({status}); see {}",
                    self.node_dir(node).join("node.log").display()
                );
            }
            if Instant::now() >= deadline {
                bail!("node {node} did not answer on {addr} within {SETUP_DEADLINE:?}");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    pub fn brokers(&self) -> Vec<u32> {
        self.broker_addrs.keys().copied().collect()
    }

    /// A system file's services, as nodes (`service:NAME`); none for faultline-node.
    pub fn services(&self) -> Vec<Node> {
        self.spec
            .system
            .iter()
            .flat_map(|system| system.services.iter().map(|s| Node::service(&s.name)))
            .collect()
    }

    pub fn node_addr(&self, node: Node) -> SocketAddr {
        match node {
            Node::Controller => self
                .controller_addr
                .expect("only faultline-node has a controller"),
            Node::Broker(id) => self.broker_addrs[&id],
            Node::Service(name) => panic!("service {name} has no admin address"),
        }
    }

    pub fn node_dir(&self, node: Node) -> PathBuf {
        node_dir(&self.spec.run_dir, node)
    }

    pub fn data_dir(&self, node: Node) -> PathBuf {
        self.node_dir(node).join("data")
    }

    /// The controller's metadata, asked directly; for a system file's system, Kafka Metadata
    /// from the first of its nodes that answers.
    pub async fn metadata(&self) -> Option<Metadata> {
        match self.controller_addr {
            Some(addr) => self.admin.metadata(addr).await.ok(),
            None => self.kafka_metadata().await,
        }
    }

    /// Polls the controller's metadata until `done` holds or the deadline passes; on timeout
    /// returns the last metadata seen, if any.
    pub async fn wait_for(
        &self,
        deadline: Instant,
        mut done: impl FnMut(&Metadata) -> bool,
    ) -> Waited {
        let mut last = None;
        loop {
            if let Some(metadata) = self.metadata().await {
                if done(&metadata) {
                    return Ok(metadata);
                }
                last = Some(metadata);
            }
            if Instant::now() >= deadline {
                return Err(last);
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until `tp`'s ISR has exactly `size` replicas, at most until the deadline.
    pub async fn wait_isr(&self, tp: &TopicPartition, size: usize, deadline: Instant) -> Waited {
        let isr_len = |m: &Metadata| m.partition(&tp.topic, tp.partition).map(|p| p.isr.len());
        self.wait_for(deadline, |m| isr_len(m) == Some(size)).await
    }

    /// Waits until `tp` has a leader other than the one it has when the wait begins, at most
    /// until the deadline.
    pub async fn wait_new_leader(&self, tp: &TopicPartition, deadline: Instant) -> Waited {
        let leader_of = |m: &Metadata| m.partition(&tp.topic, tp.partition).and_then(|p| p.leader);
        let before = self.metadata().await.as_ref().and_then(leader_of);
        let new = |m: &Metadata| leader_of(m).is_some() && leader_of(m) != before;
        self.wait_for(deadline, new).await
    }

    pub async fn create_topic(&self, topic: &TopicSpec) -> anyhow::Result<()> {
        if let Some(system) = self.spec.system.clone() {
            self.create_topic_system(&system, topic).await?;
            return self
                .wait_topic_ready(topic, Instant::now() + SETUP_DEADLINE)
                .await;
        }
        let mut configs = Map::new();
        configs.insert(
            "min.insync.replicas".into(),
            json!(topic.min_insync_replicas),
        );
        configs.insert(
            "unclean.leader.election.enable".into(),
            json!(topic.unclean_leader_election),
        );
        let request = CreateTopic {
            name: topic.name.clone(),
            partitions: topic.partitions,
            replication_factor: topic.replication_factor,
            configs,
        };
        self.admin
            .create_topic(self.node_addr(Node::Controller), &request)
            .await
            .with_context(|| format!("creating topic {}", topic.name))?;
        let deadline = Instant::now() + SETUP_DEADLINE;
        self.wait_topic_ready(topic, deadline).await?;
        self.wait_leaders_serving(topic, deadline).await
    }

    /// Waits until every partition of `topic` has a leader and a full ISR.
    async fn wait_topic_ready(&self, topic: &TopicSpec, deadline: Instant) -> anyhow::Result<()> {
        let ready = self
            .wait_for(deadline, |m| {
                unrecovered(m, std::slice::from_ref(topic)).is_empty()
            })
            .await;
        if let Err(last) = ready {
            let missing = last
                .map(|m| unrecovered(&m, std::slice::from_ref(topic)))
                .unwrap_or_default();
            bail!(
                "topic {} did not get a leader and full ISR on every partition within {:?}: {}",
                topic.name,
                SETUP_DEADLINE,
                missing.join("; ")
            );
        }
        Ok(())
    }

    /// The controller elects leaders before the brokers hear of it: wait until each partition's
    /// leader says it leads, so the first sends are not refused for a reason of our making.
    async fn wait_leaders_serving(
        &self,
        topic: &TopicSpec,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        loop {
            let Some(metadata) = self.metadata().await else {
                bail!(
                    "the controller stopped answering while {} was created",
                    topic.name
                );
            };
            let mut all_serving = true;
            for partition in 0..topic.partitions {
                let leader = metadata
                    .partition(&topic.name, partition)
                    .and_then(|p| p.leader);
                let Some(addr) = leader.and_then(|l| self.broker_addrs.get(&l)) else {
                    all_serving = false;
                    break;
                };
                let leads = self.admin.state(*addr).await.is_ok_and(|state| {
                    state.partitions.iter().any(|r| {
                        r.topic == topic.name && r.partition == partition && r.role == "leader"
                    })
                });
                all_serving &= leads;
            }
            if all_serving {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the leaders of {} did not take over within {SETUP_DEADLINE:?}",
                    topic.name
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Stops every node: SIGTERM, then SIGKILL after the supervisor's deadline. Returns the
    /// nodes that did not shut down cleanly in time.
    pub async fn stop(&self) -> Vec<Node> {
        // A system file's services are not brokers: they stop with the controller's wave,
        // after the brokers.
        self.supervisor.stop_all(KillSignal::Term).await
    }

    /// After [`stop`](Self::stop): dumps each broker's log with `faultline-node dump` into
    /// `nodes/<id>/dump.jsonl` and copies every node's `events.jsonl`. Returns the problems met
    /// (they are reported, not fatal: the checker sees the missing files).
    pub async fn collect(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let controller = self.controller_addr.map(|_| Node::Controller);
        let nodes = controller
            .into_iter()
            .chain(self.brokers().into_iter().map(Node::Broker));
        for node in nodes {
            let events = self.data_dir(node).join("events.jsonl");
            if events.exists() {
                if let Err(e) = std::fs::copy(&events, self.node_dir(node).join("events.jsonl")) {
                    problems.push(format!("copying events of {node}: {e}"));
                }
            }
            if let Node::Broker(_) = node {
                if let Err(e) = self.dump(node).await {
                    problems.push(format!("dumping {node}: {e:#}"));
                }
            }
        }
        problems
    }

    async fn dump(&self, node: Node) -> anyhow::Result<()> {
        if let Some(system) = &self.spec.system {
            return match &system.nodes.dump {
                Some(command) => self.dump_system(node, command).await,
                // No dump: the checker says what it could not check.
                None => Ok(()),
            };
        }
        let dir = self.node_dir(node);
        let out = std::fs::File::create(dir.join("dump.jsonl"))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("node.log"))?;
        let mut command = tokio::process::Command::new(&self.spec.node_bin);
        command
            .arg("dump")
            .arg("--data")
            .arg(self.data_dir(node))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(log);
        harden(&mut command);
        let mut child = command.spawn().context("starting faultline-node dump")?;
        let status = tokio::time::timeout(DUMP_DEADLINE, child.wait())
            .await
            .context("faultline-node dump took too long")??;
        if !status.success() {
            bail!("faultline-node dump exited with {status}");
        }
        Ok(())
    }
}

/// A node's directory in the run: `nodes/<id>`, `nodes/controller`, or a system file's
/// service's `services/<name>`.
pub fn node_dir(run_dir: &Path, node: Node) -> PathBuf {
    match node {
        Node::Service(name) => run_dir.join("services").join(name),
        _ => run_dir.join("nodes").join(node.dir_name()),
    }
}

/// Where a node's output goes: `node.log` in its directory, `service.log` for a service.
pub fn log_path(run_dir: &Path, node: Node) -> PathBuf {
    let file = match node {
        Node::Service(_) => "service.log",
        _ => "node.log",
    };
    node_dir(run_dir, node).join(file)
}

/// Partitions of these topics without a leader or with less than a full ISR, described.
pub fn unrecovered(metadata: &Metadata, topics: &[TopicSpec]) -> Vec<String> {
    let mut missing = Vec::new();
    for topic in topics {
        for partition in 0..topic.partitions {
            match metadata.partition(&topic.name, partition) {
                None => missing.push(format!("{}/{partition}: not in metadata", topic.name)),
                Some(p) if p.leader.is_none() => {
                    missing.push(format!("{}/{partition}: no leader", topic.name))
                }
                Some(p) if p.isr.len() < topic.replication_factor as usize => {
                    missing.push(format!(
                        "{}/{partition}: isr {:?} of replicas {:?}",
                        topic.name, p.isr, p.replicas
                    ))
                }
                Some(_) => {}
            }
        }
    }
    missing
}
