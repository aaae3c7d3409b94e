//! The contract between the node and the checker: the node writes `faultline-node dump` output
//! and `events.jsonl` by hand (it depends on no other crate), the checker reads them with its
//! own types (`faultline_checker::dump`, `faultline_checker::events`). This test starts a real
//! controller and broker, produces records (one value with characters JSON must escape), stops
//! them, dumps the broker's data dir, and parses every line with the checker's types: any line
//! that does not parse, or parses as neither a record nor a summary, fails the test.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use faultline_checker::dump::{DumpLine, DumpRecord, DumpSummary};
use faultline_checker::events::NodeEvent;
use faultline_checker::text::Text;
use serde_json::{json, Value};

use crate::common::node_bin;

const TOPIC: &str = "contract";
const PARTITIONS: u32 = 2;
/// How long the node gets to come up, elect and answer.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A node process, SIGKILLed with its parent and stopped by pid on drop.
struct NodeProc(Option<Child>);

impl NodeProc {
    fn spawn(args: &[String], log: &Path) -> NodeProc {
        let log = std::fs::File::create(log).unwrap();
        let mut command = Command::new(node_bin());
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // Safety: set_pdeathsig is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        NodeProc(Some(command.spawn().expect("faultline-node starts")))
    }

    /// SIGTERM, then a bounded wait for a clean exit; SIGKILL past the deadline.
    fn stop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Two loopback ports picked at random below the ephemeral range (where the kernel hands out
/// `bind(0)` ports to other processes), each checked free.
fn free_addrs() -> [SocketAddr; 2] {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let seed = std::process::id() as u64 ^ now.map_or(0, |d| d.as_nanos() as u64);
    let mut found = Vec::new();
    for i in 0..1000u64 {
        let port = 20_000 + ((seed.wrapping_mul(2_654_435_761).wrapping_add(i * 7919)) % 10_000);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        if TcpListener::bind(addr).is_ok() && !found.contains(&addr) {
            found.push(addr);
        }
        if found.len() == 2 {
            return [found[0], found[1]];
        }
    }
    panic!("no two free loopback ports in 20000..30000");
}

/// POSTs `body` until the answer has status `want` or the deadline passes; returns the answer.
async fn post_until(http: &reqwest::Client, url: &str, body: &Value, want: u16) -> Value {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last = String::new();
    while Instant::now() < deadline {
        match http.post(url).json(body).send().await {
            Ok(answer) if answer.status().as_u16() == want => {
                return answer.json().await.unwrap_or(Value::Null);
            }
            Ok(answer) => {
                last = format!(
                    "{}: {}",
                    answer.status(),
                    answer.text().await.unwrap_or_default()
                )
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    panic!("POST {url} {body} never answered {want}; last: {last}");
}

/// The values produced to each partition: plain ones and one JSON must escape.
fn produced(partition: u32) -> Vec<String> {
    let mut values: Vec<String> = (0..5).map(|i| format!("p{partition}-{i}")).collect();
    values.push(format!("p{partition} \"quoted\" \\ tab\t é"));
    values
}

/// Starts a controller and one broker in `dir`, creates the topic, produces every value of
/// [`produced`] with acks=all, and stops both nodes cleanly.
fn run_node(dir: &Path) {
    let [controller_addr, broker_addr] = free_addrs();
    let cluster_id = format!("contract-{}", std::process::id());
    let controller_args: Vec<String> = vec![
        "controller".into(),
        "--listen".into(),
        controller_addr.to_string(),
        "--data".into(),
        dir.join("controller").display().to_string(),
        "--cluster-id".into(),
        cluster_id.clone(),
    ];
    let broker_args: Vec<String> = vec![
        "broker".into(),
        "--id".into(),
        "1".into(),
        "--listen".into(),
        broker_addr.to_string(),
        "--data".into(),
        dir.join("broker-1").display().to_string(),
        "--controller".into(),
        controller_addr.to_string(),
        "--cluster-id".into(),
        cluster_id,
    ];
    let mut controller = NodeProc::spawn(&controller_args, &dir.join("controller.log"));
    let mut broker = NodeProc::spawn(&broker_args, &dir.join("broker-1.log"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let topic = json!({"name": TOPIC, "partitions": PARTITIONS, "replication_factor": 1,
                           "configs": {"min.insync.replicas": 1}});
        post_until(
            &http,
            &format!("http://{controller_addr}/v1/topics"),
            &topic,
            201,
        )
        .await;
        for partition in 0..PARTITIONS {
            let records: Vec<Value> = produced(partition)
                .iter()
                .map(|v| json!({"value": v}))
                .collect();
            let body = json!({"topic": TOPIC, "partition": partition, "acks": "all",
                              "timeout_ms": 5000, "records": records});
            let answer = post_until(
                &http,
                &format!("http://{broker_addr}/v1/produce"),
                &body,
                200,
            )
            .await;
            assert_eq!(answer["base_offset"], json!(0), "{answer}");
        }
    });
    broker.stop();
    controller.stop();
}

/// Parses every line of a dump with the checker's types.
fn parse_dump(text: &str) -> (Vec<DumpRecord>, Vec<DumpSummary>) {
    let (mut records, mut summaries) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate() {
        match DumpLine::parse(line.as_bytes()) {
            Ok(DumpLine::Record(r)) => records.push(owned_record(r)),
            Ok(DumpLine::Summary(s)) => summaries.push(owned_summary(s)),
            Ok(DumpLine::Other) => panic!(
                "dump line {} is neither a record nor a summary: {line}",
                i + 1
            ),
            Err(e) => panic!("dump line {} does not parse: {e}: {line}", i + 1),
        }
    }
    (records, summaries)
}

fn owned_record(r: DumpRecord<Text>) -> DumpRecord {
    DumpRecord {
        topic: r.topic.to_string(),
        partition: r.partition,
        offset: r.offset,
        leader_epoch: r.leader_epoch,
        timestamp_ms: r.timestamp_ms,
        value: r.value.to_string(),
    }
}

fn owned_summary(s: DumpSummary<Text>) -> DumpSummary {
    DumpSummary {
        summary: s.summary,
        topic: s.topic.to_string(),
        partition: s.partition,
        log_end_offset: s.log_end_offset,
        high_watermark: s.high_watermark,
        leader_epochs: s.leader_epochs,
        torn_bytes: s.torn_bytes,
        torn_reason: s.torn_reason,
    }
}

/// Parses every line of an events.jsonl with the checker's [`NodeEvent`].
fn parse_events(path: &Path) -> Vec<NodeEvent> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("{}:{} does not parse: {e}: {line}", path.display(), i + 1)
            })
        })
        .collect()
}

#[test]
fn a_real_nodes_dump_and_events_parse_with_the_checkers_types() {
    let dir = tempfile::tempdir().unwrap();
    run_node(dir.path());

    let out = Command::new(node_bin())
        .args(["dump", "--data"])
        .arg(dir.path().join("broker-1"))
        .output()
        .expect("faultline-node dump runs");
    assert!(
        out.status.success(),
        "dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (records, summaries) = parse_dump(std::str::from_utf8(&out.stdout).unwrap());

    let mut by_partition: BTreeMap<u32, Vec<(u64, String)>> = BTreeMap::new();
    for r in &records {
        assert_eq!(r.topic, TOPIC);
        by_partition
            .entry(r.partition)
            .or_default()
            .push((r.offset, r.value.clone()));
    }
    for partition in 0..PARTITIONS {
        let want: Vec<(u64, String)> = produced(partition)
            .into_iter()
            .enumerate()
            .map(|(o, v)| (o as u64, v))
            .collect();
        assert_eq!(by_partition.get(&partition), Some(&want));
        let summary = summaries
            .iter()
            .find(|s| s.partition == partition)
            .unwrap_or_else(|| panic!("no summary line for partition {partition}"));
        assert_eq!(summary.log_end_offset, want.len() as u64);
        assert!(!summary.leader_epochs.is_empty(), "{summary:?}");
    }

    let broker_events = parse_events(&dir.path().join("broker-1/events.jsonl"));
    let controller_events = parse_events(&dir.path().join("controller/events.jsonl"));
    let kinds =
        |events: &[NodeEvent]| -> Vec<String> { events.iter().map(|e| e.kind.clone()).collect() };
    assert!(
        broker_events.iter().any(|e| e.kind == "role_change"
            && e.role.as_deref() == Some("leader")
            && e.broker() == Some(1)),
        "{:?}",
        kinds(&broker_events)
    );
    assert!(
        controller_events.iter().any(|e| e.kind == "election"
            && e.topic.as_deref() == Some(TOPIC)
            && e.leader == Some(1)),
        "{:?}",
        kinds(&controller_events)
    );
}
