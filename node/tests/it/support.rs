//! A real cluster for tests: one controller and N brokers started from the built
//! `faultline-node` binary on free loopback ports in a temp dir, with signals (kill, pause,
//! resume, restart), HTTP helpers and polling with deadlines. Every child is killed by pid when
//! the cluster is dropped, and each has PR_SET_PDEATHSIG so none outlives a killed test binary.

use faultline_node::api::{ReplicaFetchRequest, ReplicaFetchResponse};
use faultline_node::version::KafkaVersion;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const NODE_BIN: &str = env!("CARGO_BIN_EXE_faultline-node");

#[derive(Clone, Debug)]
pub struct Settings {
    pub brokers: u32,
    pub session_timeout_ms: u64,
    pub replica_lag_time_max_ms: u64,
    pub hw_checkpoint_interval_ms: u64,
    pub replica_fetch_wait_max_ms: u64,
    pub protocol: &'static str,
    /// `(from, to)`: broker `from` is given a dead address for broker `to`, so it can never open
    /// a connection to it (a one-way network partition for the whole run; `to` still reaches
    /// `from`). Real sockets: the connection is refused.
    pub unreachable: Vec<(u32, u32)>,
    /// Give every broker a Kafka listener (`--kafka-listen`) on a free port.
    pub kafka: bool,
    /// `--kafka-version` for the controller and every broker; `protocol` is then not passed
    /// (the broker refuses both together). None: brokers get `protocol`, the controller its
    /// default version.
    pub kafka_version: Option<KafkaVersion>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            brokers: 3,
            session_timeout_ms: 1500,
            replica_lag_time_max_ms: 1000,
            hw_checkpoint_interval_ms: 500,
            replica_fetch_wait_max_ms: 100,
            protocol: "current",
            unreachable: Vec::new(),
            kafka: false,
            kafka_version: None,
        }
    }
}

struct Proc {
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(NODE_BIN);
        cmd.args(&self.args).stdout(Stdio::null()).stderr(log);
        faultline_launch::harden(&mut cmd);
        self.child = Some(cmd.spawn().expect("faultline-node starts"));
    }

    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.as_ref().expect("running").id() as i32)
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), sig).expect("signal delivered");
    }

    /// SIGKILL, also of a stopped process (faultline-launch's `kill_child`).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            faultline_launch::kill_child(&mut child);
        }
    }

    /// SIGTERM and wait (bounded) for a clean exit; SIGKILL after the deadline.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            faultline_launch::stop_child(&mut child, Duration::from_secs(5));
        }
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub settings: Settings,
    pub controller_addr: String,
    pub broker_addrs: BTreeMap<u32, String>,
    /// Each broker's Kafka listener, when `settings.kafka`.
    pub kafka_addrs: BTreeMap<u32, String>,
    controller: Proc,
    brokers: BTreeMap<u32, Proc>,
    pub http: reqwest::Client,
}

impl Cluster {
    pub async fn start(settings: Settings) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        // Ports below the ephemeral range: no bind(0) elsewhere can take one before the node
        // binds it, nor while a killed node waits to be restarted.
        let mut ports = faultline_launch::free_ports(settings.brokers as usize + 1)
            .expect("free loopback ports")
            .into_iter();
        let controller_addr = ports.next().expect("a port per node").to_string();
        let cluster_id = format!("test-{}", controller_addr.replace([':', '.'], "-"));
        let broker_addrs: BTreeMap<u32, String> = (1..=settings.brokers)
            .zip(ports.map(|a| a.to_string()))
            .collect();
        let kafka_addrs: BTreeMap<u32, String> = if settings.kafka {
            let ports = faultline_launch::free_ports(settings.brokers as usize)
                .expect("free loopback ports");
            (1..=settings.brokers)
                .zip(ports.into_iter().map(|a| a.to_string()))
                .collect()
        } else {
            BTreeMap::new()
        };
        let mut controller = Proc {
            args: vec![
                "controller".into(),
                "--listen".into(),
                controller_addr.clone(),
                "--data".into(),
                dir.path().join("controller").display().to_string(),
                "--cluster-id".into(),
                cluster_id.clone(),
                "--session-timeout-ms".into(),
                settings.session_timeout_ms.to_string(),
            ],
            log: dir.path().join("controller.log"),
            child: None,
        };
        if let Some(version) = settings.kafka_version {
            controller.args.push("--kafka-version".into());
            controller.args.push(version.as_str().into());
        }
        controller.spawn();
        let mut brokers = BTreeMap::new();
        for (&id, addr) in &broker_addrs {
            let mut args: Vec<String> = vec![
                "broker".into(),
                "--id".into(),
                id.to_string(),
                "--listen".into(),
                addr.clone(),
                "--data".into(),
                dir.path()
                    .join(format!("broker-{id}"))
                    .display()
                    .to_string(),
                "--controller".into(),
                controller_addr.clone(),
                "--cluster-id".into(),
                cluster_id.clone(),
                "--replica-lag-time-max-ms".into(),
                settings.replica_lag_time_max_ms.to_string(),
                "--hw-checkpoint-interval-ms".into(),
                settings.hw_checkpoint_interval_ms.to_string(),
                "--replica-fetch-wait-max-ms".into(),
                settings.replica_fetch_wait_max_ms.to_string(),
            ];
            match settings.kafka_version {
                Some(version) => args.extend(["--kafka-version".into(), version.as_str().into()]),
                None => args.extend(["--replication-protocol".into(), settings.protocol.into()]),
            }
            if let Some(kafka) = kafka_addrs.get(&id) {
                args.push("--kafka-listen".into());
                args.push(kafka.clone());
            }
            for (&peer, peer_addr) in &broker_addrs {
                if peer == id {
                    continue;
                }
                let addr = if settings.unreachable.contains(&(id, peer)) {
                    // A port nothing listens on (free when chosen, below the ephemeral range
                    // so no outgoing connection takes it): every connection is refused.
                    faultline_launch::free_ports(1).expect("a free loopback port")[0].to_string()
                } else {
                    peer_addr.clone()
                };
                args.push("--peer".into());
                args.push(format!("{peer}={addr}"));
            }
            let mut proc = Proc {
                args,
                log: dir.path().join(format!("broker-{id}.log")),
                child: None,
            };
            proc.spawn();
            brokers.insert(id, proc);
        }
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let cluster = Cluster {
            dir,
            settings,
            controller_addr,
            broker_addrs,
            kafka_addrs,
            controller,
            brokers,
            http,
        };
        let n = cluster.settings.brokers as usize;
        cluster
            .poll(
                "every broker registered and alive",
                Duration::from_secs(15),
                || async {
                    let md = cluster.metadata().await.ok()?;
                    let alive = md["brokers"]
                        .as_array()?
                        .iter()
                        .filter(|b| b["alive"] == true)
                        .count();
                    (alive == n).then_some(())
                },
            )
            .await;
        cluster
    }

    /// Polls `probe` every 20 ms until it answers, failing the test at the deadline.
    pub async fn poll<T, F, Fut>(&self, what: &str, timeout: Duration, probe: F) -> T
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(answer) = probe().await {
                return answer;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for: {what}\n{}",
                    self.diagnostics()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every broker's Kafka address, comma-separated: a client's bootstrap.servers.
    pub fn bootstrap_servers(&self) -> String {
        self.kafka_addrs
            .values()
            .cloned()
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn diagnostics(&self) -> String {
        let mut out = String::new();
        for name in ["controller", "broker-1", "broker-2", "broker-3"] {
            let path = self.dir.path().join(format!("{name}.log"));
            if let Ok(text) = std::fs::read_to_string(&path) {
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                out.push_str(&format!(
                    "--- {name}.log (last lines, newest first)\n{}\n",
                    tail.join("\n")
                ));
            }
        }
        out
    }

    pub fn broker_url(&self, id: u32, path: &str) -> String {
        format!("http://{}{path}", self.broker_addrs[&id])
    }

    pub async fn get(&self, url: &str) -> Result<(u16, Value), reqwest::Error> {
        let resp = self
            .http
            .get(url)
            .timeout(Duration::from_secs(10))
            .send()
            .await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    pub async fn post(&self, url: &str, body: &Value) -> Result<(u16, Value), reqwest::Error> {
        let resp = self
            .http
            .post(url)
            .json(body)
            .timeout(Duration::from_secs(20))
            .send()
            .await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    /// Sends `req` to `leader`'s `/v1/internal/replica-fetch`, as the follower it names would:
    /// the decoded answer (every frame checked), or the error's status and JSON body. Waits up
    /// to the fetch's own `max_wait_ms` plus 10 s.
    pub async fn replica_fetch(
        &self,
        leader: u32,
        req: &ReplicaFetchRequest,
    ) -> Result<ReplicaFetchResponse, (u16, Value)> {
        let resp = self
            .http
            .post(self.broker_url(leader, "/v1/internal/replica-fetch"))
            .json(req)
            .timeout(Duration::from_millis(req.max_wait_ms + 10_000))
            .send()
            .await
            .map_err(|e| (0, json!({"error": "CONNECTION", "message": e.to_string()})))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| {
            (
                status,
                json!({"error": "CONNECTION", "message": e.to_string()}),
            )
        })?;
        if status != 200 {
            return Err((status, serde_json::from_slice(&body).unwrap_or(Value::Null)));
        }
        Ok(ReplicaFetchResponse::decode(body).expect("a well-formed replica-fetch answer"))
    }

    pub async fn metadata(&self) -> Result<Value, reqwest::Error> {
        Ok(self
            .get(&format!("http://{}/v1/metadata", self.controller_addr))
            .await?
            .1)
    }

    pub async fn partition(&self, topic: &str, partition: u32) -> Value {
        let md = self.metadata().await.expect("controller answers");
        md["topics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == topic)
            .and_then(|t| t["partitions"].get(partition as usize))
            .cloned()
            .unwrap_or(Value::Null)
    }

    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        rf: u32,
        min_isr: u32,
        unclean: bool,
    ) -> Value {
        let body = json!({"name": name, "partitions": partitions, "replication_factor": rf,
                          "configs": {"min.insync.replicas": min_isr, "unclean.leader.election.enable": unclean}});
        let (status, topic) = self
            .post(&format!("http://{}/v1/topics", self.controller_addr), &body)
            .await
            .unwrap();
        assert_eq!(status, 201, "create topic: {topic}");
        // Ready when every partition's leader reports itself leader.
        for p in 0..partitions {
            self.poll(
                "the leader to take over",
                Duration::from_secs(10),
                || async move {
                    let leader = self.partition(name, p).await["leader"].as_u64()? as u32;
                    let role = self.replica_state(leader, name, p).await?["role"].clone();
                    (role == "leader").then_some(())
                },
            )
            .await;
        }
        topic
    }

    pub async fn state(&self, broker: u32) -> Option<Value> {
        self.get(&self.broker_url(broker, "/v1/state"))
            .await
            .ok()
            .map(|(_, v)| v)
    }

    pub async fn replica_state(&self, broker: u32, topic: &str, partition: u32) -> Option<Value> {
        let state = self.state(broker).await?;
        state["partitions"]
            .as_array()?
            .iter()
            .find(|p| p["topic"] == topic && p["partition"] == partition)
            .cloned()
    }

    pub async fn leader(&self, topic: &str, partition: u32) -> Option<u32> {
        self.partition(topic, partition).await["leader"]
            .as_u64()
            .map(|l| l as u32)
    }

    pub async fn isr(&self, topic: &str, partition: u32) -> Vec<u32> {
        let mut isr: Vec<u32> = self.partition(topic, partition).await["isr"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|b| b.as_u64().map(|b| b as u32))
                    .collect()
            })
            .unwrap_or_default();
        isr.sort_unstable();
        isr
    }

    pub async fn produce(
        &self,
        broker: u32,
        topic: &str,
        partition: u32,
        acks: &str,
        values: &[String],
        timeout_ms: u64,
    ) -> (u16, Value) {
        let records: Vec<Value> = values.iter().map(|v| json!({"value": v})).collect();
        let body = json!({"topic": topic, "partition": partition, "acks": acks, "timeout_ms": timeout_ms, "records": records});
        match self
            .post(&self.broker_url(broker, "/v1/produce"), &body)
            .await
        {
            Ok(answer) => answer,
            Err(e) => (0, json!({"error": "CONNECTION", "message": e.to_string()})),
        }
    }

    /// Reads every committed record of a partition from its leader (offset 0 to HW).
    pub async fn read_all(
        &self,
        broker: u32,
        topic: &str,
        partition: u32,
    ) -> (u64, Vec<(u64, String)>) {
        let mut out = Vec::new();
        let mut hw;
        loop {
            let url = self.broker_url(
                broker,
                &format!(
                    "/v1/fetch?topic={topic}&partition={partition}&offset={}&max_records=5000",
                    out.len()
                ),
            );
            let (status, body) = self.get(&url).await.unwrap();
            assert_eq!(status, 200, "fetch: {body}");
            hw = body["high_watermark"].as_u64().unwrap();
            let records = body["records"].as_array().unwrap();
            for r in records {
                assert!(
                    r["offset"].as_u64().unwrap() < hw,
                    "a consumer saw {r} at or above HW {hw}"
                );
                out.push((
                    r["offset"].as_u64().unwrap(),
                    r["value"].as_str().unwrap().to_string(),
                ));
            }
            if records.is_empty() || out.len() as u64 >= hw {
                return (hw, out);
            }
        }
    }

    /// After pausing followers: waits until the leader is answering none of their fetches, so
    /// nothing appended from now on can reach them (an answer already on its way would).
    pub async fn wait_no_fetch_in_flight(&self, leader: u32, topic: &str, partition: u32) {
        let quiet = || async {
            let s = self.replica_state(leader, topic, partition).await?;
            s["followers"]
                .as_array()?
                .iter()
                .all(|f| f["fetches_in_flight"] == 0)
                .then_some(())
        };
        for _ in 0..2 {
            self.poll("followers' fetches to drain", Duration::from_secs(5), quiet)
                .await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The running broker's pid, for tests that signal it themselves.
    pub fn broker_pid(&self, broker: u32) -> nix::unistd::Pid {
        self.brokers[&broker].pid()
    }

    /// The running controller's pid.
    pub fn controller_pid(&self) -> nix::unistd::Pid {
        self.controller.pid()
    }

    pub fn data_dir(&self, broker: u32) -> PathBuf {
        self.dir.path().join(format!("broker-{broker}"))
    }

    pub fn kill(&mut self, broker: u32) {
        self.brokers.get_mut(&broker).unwrap().kill();
    }

    /// SIGSTOP, then wait (bounded) until the kernel reports the process stopped: the signal
    /// is delivered asynchronously and a busy process may run a little longer.
    pub fn pause(&self, broker: u32) {
        let proc = &self.brokers[&broker];
        proc.signal(nix::sys::signal::Signal::SIGSTOP);
        let pid = proc.pid().as_raw() as u32;
        assert!(
            faultline_launch::wait_stopped(pid, true, Duration::from_secs(5)),
            "broker {broker} did not stop"
        );
    }

    /// The exit status of a broker that ended on its own, if it has (None while it runs).
    pub fn exited(&mut self, broker: u32) -> Option<std::process::ExitStatus> {
        let proc = self.brokers.get_mut(&broker).unwrap();
        proc.child.as_mut()?.try_wait().ok().flatten()
    }

    pub fn resume(&self, broker: u32) {
        self.brokers[&broker].signal(nix::sys::signal::Signal::SIGCONT);
    }

    pub fn restart(&mut self, broker: u32) {
        let proc = self.brokers.get_mut(&broker).unwrap();
        proc.kill();
        proc.spawn();
    }

    /// SIGKILL the controller and start it again on the same data dir.
    pub fn restart_controller(&mut self) {
        self.controller.kill();
        self.controller.spawn();
    }

    /// The events a node wrote (`controller` or a broker id).
    pub fn events(&self, node: &str) -> Vec<Value> {
        let dir = if node == "controller" {
            self.dir.path().join("controller")
        } else {
            self.data_dir(node.parse().unwrap())
        };
        read_jsonl(&dir.join("events.jsonl"))
    }

    /// `faultline-node dump` of a broker's data dir: records only.
    pub fn dump(&self, broker: u32) -> Vec<Value> {
        let out = Command::new(NODE_BIN)
            .args(["dump", "--data"])
            .arg(self.data_dir(broker))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "dump failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v.get("summary").is_none())
            .collect()
    }

    pub fn stop_all(&mut self) {
        for proc in self.brokers.values_mut() {
            proc.stop();
        }
        self.controller.stop();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for proc in self.brokers.values_mut() {
            proc.kill();
        }
        self.controller.kill();
    }
}

pub fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}
