//! The [`Cluster`] of a system file's system (docs/systems.md): its ports, links, services and
//! nodes started from the file's templates, readiness by Kafka Metadata, the topic made by
//! CreateTopics or the file's setup command, its metadata from its brokers, and its dumps from
//! the file's dump command. Everything here is reached by Kafka's protocol only.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use anyhow::{bail, Context};
use faultline_workloads::client::Metadata;
use faultline_workloads::{KafkaClient, NodeClient};
use tokio::time::Instant;

use super::{
    check_port_free, log_path, Cluster, ClusterSpec, Network, Node, NodeCommand, ProcState,
    ShellNode, Supervisor, SystemFile, Template, TopicSpec, ADMIN_KAFKA_TIMEOUT, DUMP_DEADLINE,
    POLL_INTERVAL, SETUP_DEADLINE,
};
use crate::cluster::node::Endpoint;
use crate::cluster::system::{shell, MetadataScope};

impl Cluster {
    /// Allocates the ports, starts the links and the services, then every node, and waits
    /// until each node's Kafka port answers Metadata. On error everything started is stopped
    /// when the cluster is dropped (each process group is killed).
    pub(super) async fn start_system(
        spec: ClusterSpec,
        system: Arc<SystemFile>,
    ) -> anyhow::Result<Cluster> {
        let count = system.nodes.count;
        let picked = system.services.iter().filter(|s| s.port.is_none()).count();
        let mut ports = faultline_launch::free_ports(2 * count as usize + picked)?.into_iter();
        let kafka_addrs: BTreeMap<u32, SocketAddr> = (1..=count).zip(ports.by_ref()).collect();
        let peer_addrs: BTreeMap<u32, SocketAddr> = (1..=count).zip(ports.by_ref()).collect();
        let mut service_ports = BTreeMap::new();
        for (i, service) in system.services.iter().enumerate() {
            let port = match service.port {
                Some(port) => {
                    let who = format!("services[{i}] ({}).port", service.name);
                    check_port_free(port, &who)?;
                    port
                }
                None => ports.next().expect("one port per service").port(),
            };
            service_ports.insert(service.name.clone(), port);
        }
        let mut peers = BTreeMap::new();
        for id in 1..=count {
            for to in system.peers_named(id).into_iter().filter(|&to| to != id) {
                peers.insert((id, to), peer_addrs[&to]);
            }
        }
        // A node that names `{service_link:NAME}` reaches that service through its own link.
        let mut service_links = BTreeMap::new();
        for id in 1..=count {
            for name in system.services_linked(id) {
                let addr = SocketAddr::from(([127, 0, 0, 1], service_ports[&name]));
                service_links.insert((id, name), addr);
            }
        }
        let network = Network::start_system(&kafka_addrs, &peers, &service_links, spec.seed)
            .await
            .context("starting link proxies")?;
        let mut cluster = Cluster {
            supervisor: Supervisor::new(Path::new("/bin/sh")),
            network,
            controller_addr: None,
            broker_addrs: kafka_addrs.clone(),
            kafka_addrs,
            admin: NodeClient::new(ADMIN_KAFKA_TIMEOUT),
            kafka: KafkaClient::new(ADMIN_KAFKA_TIMEOUT),
            templates: BTreeMap::new(),
            mounts: None,
            spec,
        };
        cluster.templates = (1..=count)
            .map(|id| (id, cluster.node_template(id, &peer_addrs, &service_ports)))
            .collect();
        cluster.mounts = cluster.mount_lazyfs()?;
        cluster.start_services(&system, &service_ports).await?;
        cluster.register_system_nodes(&system).await?;
        cluster.boot_system(&system).await?;
        Ok(cluster)
    }

    /// The shared placeholders: every node's Kafka port, `{bootstrap}`, `{system_dir}` and the
    /// services' ports.
    fn base_template(&self, service_ports: &BTreeMap<String, u16>) -> Template {
        let bootstrap: Vec<String> = self.kafka_addrs.values().map(|a| a.to_string()).collect();
        let mut plain = BTreeMap::from([("bootstrap".to_string(), bootstrap.join(","))]);
        if let Some(system) = &self.spec.system {
            plain.insert("system_dir".into(), system.dir().display().to_string());
        }
        Template {
            plain,
            kafka_ports: self
                .kafka_addrs
                .iter()
                .map(|(&id, a)| (id, a.port()))
                .collect(),
            service_ports: service_ports.clone(),
            ..Template::default()
        }
    }

    /// Node `id`'s placeholders: `{peer_port:N}` is N's peer listener as `id` reaches it —
    /// its own real port when N is `id`, else the harness's `id`→N link; `{service_link:NAME}`
    /// is the harness's link from `id` to the service.
    fn node_template(
        &self,
        id: u32,
        peer_addrs: &BTreeMap<u32, SocketAddr>,
        service_ports: &BTreeMap<String, u16>,
    ) -> Template {
        let mut t = self.base_template(service_ports);
        let data = self.data_dir(Node::Broker(id));
        t.plain.insert("id".into(), id.to_string());
        t.plain.insert("data".into(), data.display().to_string());
        t.plain.insert(
            "kafka_port".into(),
            self.kafka_addrs[&id].port().to_string(),
        );
        for (&to, real) in peer_addrs {
            let link = self
                .network
                .addr(Endpoint::broker(id), Endpoint::broker(to))
                .unwrap_or(*real);
            t.peer_ports.insert(to, link.port());
        }
        for name in service_ports.keys() {
            let link = self
                .network
                .addr(Endpoint::broker(id), Endpoint::service(name));
            if let Some(link) = link {
                t.service_links.insert(name.clone(), link.port());
            }
        }
        t
    }

    /// Starts every service under the supervisor (as a `Node::Service`, so a schedule can
    /// kill, pause and start it, and it stops after the brokers), each ready when its port
    /// accepts a TCP connection, failing early if it exits.
    async fn start_services(
        &self,
        system: &SystemFile,
        service_ports: &BTreeMap<String, u16>,
    ) -> anyhow::Result<()> {
        for (i, service) in system.services.iter().enumerate() {
            let node = Node::service(&service.name);
            let dir = self.node_dir(node);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let port = service_ports[&service.name];
            let mut t = self.base_template(service_ports);
            t.plain.insert("port".into(), port.to_string());
            t.plain.insert("data".into(), dir.display().to_string());
            let command = t
                .fill(&service.command)
                .map_err(|e| anyhow::anyhow!("`services[{i}].command`: {e}"))?;
            let log = log_path(&self.spec.run_dir, node);
            let mut node_command = NodeCommand::native(Vec::new(), log.clone());
            node_command.shell = Some(ShellNode {
                command,
                dir: dir.clone(),
                env: service.env.clone(),
            });
            self.supervisor.add(node, node_command).await;
            self.supervisor
                .start(node)
                .await
                .with_context(|| format!("service {}: its command did not start", service.name))?;
            let timeout = service.ready_timeout();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + timeout;
            loop {
                if let Some(ProcState::Exited(status)) = self.supervisor.state(node).await {
                    bail!(
                        "service {} exited during startup ({status}); see {}",
                        service.name,
                        log.display()
                    );
                }
                let connect = std::time::Duration::from_millis(200);
                if std::net::TcpStream::connect_timeout(&addr, connect).is_ok() {
                    break;
                }
                if Instant::now() >= deadline {
                    bail!(
                        "service {} did not accept connections on {addr} within {timeout:?}; \
                         see {}",
                        service.name,
                        log.display()
                    );
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
        Ok(())
    }

    async fn register_system_nodes(&self, system: &SystemFile) -> anyhow::Result<()> {
        for (&id, template) in &self.templates {
            let node = Node::Broker(id);
            std::fs::create_dir_all(self.data_dir(node))
                .with_context(|| format!("creating {}", self.data_dir(node).display()))?;
            let command = template
                .fill(&system.nodes.command)
                .map_err(|e| anyhow::anyhow!("`nodes.command` of node {id}: {e}"))?;
            let log_path = self.node_dir(node).join("node.log");
            let mut node_command = NodeCommand::native(Vec::new(), log_path);
            node_command.shell = Some(ShellNode {
                command,
                dir: self.data_dir(node),
                env: system.nodes.env.clone(),
            });
            self.supervisor.add(node, node_command).await;
        }
        Ok(())
    }

    async fn boot_system(&self, system: &SystemFile) -> anyhow::Result<()> {
        for &id in self.kafka_addrs.keys() {
            self.supervisor
                .start(Node::Broker(id))
                .await
                .with_context(|| format!("node {id}: `nodes.command` did not start"))?;
        }
        let timeout = system.ready_timeout();
        let deadline = Instant::now() + timeout;
        for (&id, &addr) in &self.kafka_addrs {
            self.wait_kafka_ready(id, addr, deadline, timeout).await?;
        }
        if system.nodes.metadata == MetadataScope::OnlySelf {
            // Each lists itself, checked just above; there is no membership to wait for.
            return Ok(());
        }
        // Each node answering is not yet a cluster: wait until Metadata lists them all (for
        // faultline-node, until every broker registered with its controller).
        let count = self.kafka_addrs.len();
        let formed = self.wait_for(deadline, |m| m.brokers.len() >= count).await;
        if let Err(last) = formed {
            let listed: Vec<u32> = last
                .map(|m| m.brokers.iter().map(|b| b.id).collect())
                .unwrap_or_default();
            bail!(
                "Metadata listed brokers {listed:?}, not all {count} nodes, within \
                 `nodes.ready_timeout` ({timeout:?})"
            );
        }
        Ok(())
    }

    /// Polls a node's Kafka port with Metadata until the node lists itself there (a
    /// faultline-node broker answers before it has registered), failing early if it exits.
    /// The id it gives itself does not matter: Metadata is renumbered by port.
    async fn wait_kafka_ready(
        &self,
        id: u32,
        addr: SocketAddr,
        deadline: Instant,
        timeout: std::time::Duration,
    ) -> anyhow::Result<()> {
        let node = Node::Broker(id);
        let log = self.node_dir(node).join("node.log");
        let mut listed = None;
        loop {
            if let Ok(brokers) = self.kafka.metadata_raw_brokers(addr).await {
                if brokers.iter().any(|(_, p)| *p == addr.port()) {
                    return Ok(());
                }
                listed = Some(brokers);
            }
            if let Some(ProcState::Exited(status)) = self.supervisor.state(node).await {
                bail!(
                    "node {id} exited during startup ({status}); see {}",
                    log.display()
                );
            }
            if Instant::now() >= deadline {
                let seen = match listed {
                    None => "did not answer Metadata".to_string(),
                    Some(brokers) => format!(
                        "answered Metadata but never listed itself there (brokers {brokers:?}: \
                         does its command advertise {{kafka_port}}?)"
                    ),
                };
                bail!(
                    "node {id}: its Kafka port {addr} {seen} within `nodes.ready_timeout` \
                     ({timeout:?}); see {}",
                    log.display()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Kafka Metadata from the first node that answers, asked directly.
    pub(super) async fn kafka_metadata(&self) -> Option<Metadata> {
        for &addr in self.kafka_addrs.values() {
            if let Ok(mut metadata) = self.kafka.metadata(addr, &[]).await {
                metadata.renumber(&self.network.kafka_ports());
                return Some(metadata);
            }
        }
        None
    }

    /// Creates the topic with the file's setup command, or else CreateTopics to the first node
    /// that accepts it, until the setup deadline.
    pub(super) async fn create_topic_system(
        &self,
        system: &SystemFile,
        topic: &TopicSpec,
    ) -> anyhow::Result<()> {
        if let Some(command) = &system.setup.command {
            return self.run_setup_command(command, topic).await;
        }
        let mut configs = vec![(
            "min.insync.replicas".to_string(),
            topic.min_insync_replicas.to_string(),
        )];
        if topic.unclean_leader_election {
            configs.push(("unclean.leader.election.enable".into(), "true".into()));
        }
        configs.extend(system.setup.configs.clone());
        let deadline = Instant::now() + SETUP_DEADLINE;
        let mut last = String::new();
        loop {
            for &addr in self.kafka_addrs.values() {
                let created = self
                    .kafka
                    .create_topic(
                        addr,
                        &topic.name,
                        topic.partitions,
                        topic.replication_factor,
                        &configs,
                    )
                    .await;
                match created {
                    Ok(()) => return Ok(()),
                    Err(e) => last = format!("node at {addr}: {e}"),
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "creating topic {} with CreateTopics failed until {SETUP_DEADLINE:?}: {last}",
                    topic.name
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn run_setup_command(&self, command: &str, topic: &TopicSpec) -> anyhow::Result<()> {
        let mut t = self.templates[&1].clone();
        for (key, value) in [
            ("topic", topic.name.clone()),
            ("partitions", topic.partitions.to_string()),
            ("replication_factor", topic.replication_factor.to_string()),
            ("min_insync_replicas", topic.min_insync_replicas.to_string()),
            (
                "unclean_leader_election",
                topic.unclean_leader_election.to_string(),
            ),
        ] {
            t.plain.insert(key.to_string(), value);
        }
        let command = t
            .fill(command)
            .map_err(|e| anyhow::anyhow!("`setup.command`: {e}"))?;
        let log = self.spec.run_dir.join("setup.log");
        let mut cmd = shell(&command, &self.spec.run_dir, &BTreeMap::new(), &log)
            .context("`setup.command`")?;
        let mut child = cmd.spawn().context("`setup.command` did not start")?;
        let status = tokio::time::timeout(SETUP_DEADLINE, child.wait()).await;
        match status {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => bail!(
                "`setup.command` exited with {status}; see {}",
                log.display()
            ),
            Ok(Err(e)) => bail!("`setup.command`: {e}"),
            Err(_) => {
                if let Some(pid) = child.id() {
                    let _ = faultline_launch::signal_tree(pid, nix::sys::signal::Signal::SIGKILL);
                }
                bail!("`setup.command` did not finish within {SETUP_DEADLINE:?}")
            }
        }
    }

    /// Runs the file's dump command for a stopped node, in its data dir, into `dump.jsonl`.
    pub(super) async fn dump_system(&self, node: Node, command: &str) -> anyhow::Result<()> {
        let id = node.broker().expect("a system file's nodes are brokers");
        let command = self.templates[&id]
            .fill(command)
            .map_err(|e| anyhow::anyhow!("`nodes.dump`: {e}"))?;
        let dir = self.node_dir(node);
        let out = std::fs::File::create(dir.join("dump.jsonl"))?;
        let mut cmd = shell(
            &command,
            &self.data_dir(node),
            &BTreeMap::new(),
            &dir.join("node.log"),
        )?;
        cmd.stdout(Stdio::from(out));
        let mut child = cmd.spawn().context("`nodes.dump` did not start")?;
        let status = tokio::time::timeout(DUMP_DEADLINE, child.wait())
            .await
            .context("`nodes.dump` took too long")??;
        if !status.success() {
            bail!("`nodes.dump` exited with {status}");
        }
        Ok(())
    }
}
