//! A real one-broker cluster for the lazy mount's tests and bench: a controller and broker 1
//! started from the `faultline-node` binary on free loopback ports below the ephemeral range,
//! a one-partition topic `t` (replication factor 1), plain blocking HTTP/1.1 to talk to them,
//! and polling with deadlines. Every child is hardened (process group, parent-death signal) and
//! SIGKILLed by pid when dropped. Shared by `tests/mount.rs` and `benches/write_throughput.rs`
//! through `#[path]`, so both start the node the same way.

#![allow(dead_code)]

use std::fs::OpenOptions;
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long a start, a topic or a leadership may take to appear.
pub const DEADLINE: Duration = Duration::from_secs(20);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// One HTTP/1.1 request on a fresh connection; returns (status, JSON body or null).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = std::io::BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut rest = String::new();
    reader.read_to_string(&mut rest)?;
    let body = rest.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

/// Polls `check` until it returns `Some`, at most [`DEADLINE`].
pub fn poll<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        faultline_launch::kill_child(&mut self.0);
    }
}

fn spawn(bin: &Path, args: &[String], log: &Path) -> Proc {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut command = Command::new(bin);
    command.args(args).stdout(Stdio::null()).stderr(log);
    faultline_launch::harden(&mut command);
    Proc(command.spawn().unwrap())
}

/// A controller (data and logs in `dir`) and broker 1 (data in `broker_data`).
pub struct SingleBroker {
    bin: PathBuf,
    dir: PathBuf,
    pub broker_data: PathBuf,
    pub controller_addr: SocketAddr,
    pub broker_addr: SocketAddr,
    controller: Proc,
    broker: Option<Proc>,
}

impl SingleBroker {
    /// Starts both, waits until the broker is alive, creates topic `t` and waits until the
    /// broker leads it. `fsync` is the broker's `--fsync`.
    pub fn start(bin: &Path, dir: &Path, broker_data: &Path, fsync: bool) -> SingleBroker {
        let ports = faultline_launch::free_ports(2).unwrap();
        let controller_args: Vec<String> = vec![
            "controller".into(),
            "--listen".into(),
            ports[0].to_string(),
            "--data".into(),
            dir.join("controller").display().to_string(),
        ];
        let controller = spawn(bin, &controller_args, &dir.join("controller.log"));
        let mut cluster = SingleBroker {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            broker_data: broker_data.to_path_buf(),
            controller_addr: ports[0],
            broker_addr: ports[1],
            controller,
            broker: None,
        };
        cluster.start_broker(fsync);
        let addr = cluster.controller_addr;
        poll("the broker registered", || {
            let (_, md) = http(addr, "GET", "/v1/metadata", None).ok()?;
            (md["brokers"][0]["alive"] == true).then_some(())
        });
        let topic = json!({"name": "t", "partitions": 1, "replication_factor": 1,
                           "configs": {"min.insync.replicas": 1}});
        let (status, body) = http(addr, "POST", "/v1/topics", Some(&topic)).unwrap();
        assert_eq!(status, 201, "{body}");
        cluster.wait_leader();
        cluster
    }

    /// (Re)starts broker 1 on its data dir.
    pub fn start_broker(&mut self, fsync: bool) {
        let mut args: Vec<String> = vec![
            "broker".into(),
            "--id".into(),
            "1".into(),
            "--listen".into(),
            self.broker_addr.to_string(),
            "--data".into(),
            self.broker_data.display().to_string(),
            "--controller".into(),
            self.controller_addr.to_string(),
        ];
        if fsync {
            args.push("--fsync".into());
        }
        self.broker = Some(spawn(&self.bin, &args, &self.dir.join("broker.log")));
    }

    /// SIGKILLs broker 1 and reaps it.
    pub fn kill_broker(&mut self) {
        self.broker = None;
    }

    /// Broker 1's LEO for t-0 once it leads it.
    pub fn leo(&self) -> Option<u64> {
        let (status, state) = http(self.broker_addr, "GET", "/v1/state", None).ok()?;
        let p = state["partitions"].as_array()?.first()?.clone();
        if status != 200 || p["role"] != "leader" {
            return None;
        }
        p["log_end_offset"].as_u64()
    }

    /// Waits until broker 1 leads t-0; returns its LEO.
    pub fn wait_leader(&self) -> u64 {
        poll("broker 1 leads t-0", || self.leo())
    }

    /// Produces `count` records to t-0 with acks=all in one request; panics unless acknowledged.
    pub fn produce(&self, count: usize) {
        let records: Vec<Value> = (0..count)
            .map(|i| json!({"value": i.to_string()}))
            .collect();
        let request = json!({"topic": "t", "partition": 0, "acks": "all", "timeout_ms": 5000,
                             "records": records});
        let (status, body) = http(self.broker_addr, "POST", "/v1/produce", Some(&request)).unwrap();
        assert_eq!(status, 200, "{body}");
    }
}
