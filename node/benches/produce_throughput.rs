//! `make bench` for the node: acks=all and acks=1 throughput of a real 3-broker cluster on
//! loopback. Each of `PRODUCERS` tasks sends batches of records (100, and 1 for the per-request
//! cost) to the partition leaders
//! of a 3-partition, RF=3, min.insync.replicas=2 topic for `SECONDS` seconds; the figure is
//! acknowledged records per second. Run: `cargo bench -p faultline-node --bench produce_throughput`.

use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NODE_BIN: &str = env!("CARGO_BIN_EXE_faultline-node");
const PRODUCERS: usize = 8;
const SECONDS: u64 = 5;

/// Every node the bench started; stopped by pid (faultline-launch) when the bench ends.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            faultline_launch::kill_child(child);
        }
    }
}

fn spawn(args: &[String]) -> Child {
    let mut command = Command::new(NODE_BIN);
    command
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    faultline_launch::harden(&mut command);
    command.spawn().unwrap()
}

/// `leaders[p]` is the address of partition p's leader.
async fn run(
    acks: &str,
    batch: usize,
    http: &reqwest::Client,
    leaders: &[String],
    topic: &str,
) -> f64 {
    let acked = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let mut tasks = Vec::new();
    for producer in 0..PRODUCERS {
        let (http, acked, brokers, topic, acks) = (
            http.clone(),
            acked.clone(),
            leaders.to_vec(),
            topic.to_string(),
            acks.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let partition = producer % 3;
            let url = format!("http://{}/v1/produce", brokers[partition]);
            let mut n = 0u64;
            while Instant::now() < deadline {
                let records: Vec<Value> = (0..batch).map(|i| json!({"value": format!("p{producer}-{n}-{i}")})).collect();
                let body = json!({"topic": topic, "partition": partition, "acks": acks, "timeout_ms": 5000, "records": records});
                let resp = http.post(&url).json(&body).send().await.unwrap();
                if resp.status().is_success() {
                    acked.fetch_add(batch as u64, Ordering::Relaxed);
                }
                n += 1;
            }
        }));
    }
    let started = Instant::now();
    for task in tasks {
        task.await.unwrap();
    }
    acked.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut ports = faultline_launch::free_ports(4).unwrap().into_iter();
    let controller = ports.next().unwrap().to_string();
    let brokers: Vec<String> = ports.map(|a| a.to_string()).collect();
    let mut children = Children(Vec::new());
    children.0.push(spawn(&[
        "controller".into(),
        "--listen".into(),
        controller.clone(),
        "--data".into(),
        dir.path().join("c").display().to_string(),
    ]));
    for (i, addr) in brokers.iter().enumerate() {
        let id = i + 1;
        let mut args = vec![
            "broker".into(),
            "--id".into(),
            id.to_string(),
            "--listen".into(),
            addr.clone(),
            "--data".into(),
            dir.path().join(format!("b{id}")).display().to_string(),
            "--controller".into(),
            controller.clone(),
        ];
        for (j, peer) in brokers.iter().enumerate() {
            if j != i {
                args.push("--peer".into());
                args.push(format!("{}={peer}", j + 1));
            }
        }
        children.0.push(spawn(&args));
    }
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    for (acks, batch, topic) in [
        ("all", 100, "bench-all"),
        ("1", 100, "bench-one"),
        ("all", 1, "bench-all-unbatched"),
    ] {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            assert!(Instant::now() < deadline, "cluster did not come up");
            let body = json!({"name": topic, "partitions": 3, "replication_factor": 3, "configs": {"min.insync.replicas": 2}});
            if let Ok(resp) = http
                .post(format!("http://{controller}/v1/topics"))
                .json(&body)
                .send()
                .await
            {
                if resp.status().as_u16() == 201 || resp.status().as_u16() == 409 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let metadata: Value = http
            .get(format!("http://{controller}/v1/metadata"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let partitions = metadata["topics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == topic)
            .unwrap()["partitions"]
            .clone();
        let leaders: Vec<String> = (0..3)
            .map(|p| brokers[partitions[p]["leader"].as_u64().unwrap() as usize - 1].clone())
            .collect();
        // Wait until every leader accepts an acks=all write.
        for (p, leader) in leaders.iter().enumerate() {
            loop {
                assert!(Instant::now() < deadline, "leaders did not come up");
                let body = json!({"topic": topic, "partition": p, "acks": "all", "records": [{"value": "warm"}]});
                let ok = http
                    .post(format!("http://{leader}/v1/produce"))
                    .json(&body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let rate = run(acks, batch, &http, &leaders, topic).await;
        println!("produce acks={acks}: {rate:.0} records/s ({PRODUCERS} producers, batches of {batch}, 3 partitions, RF=3, {SECONDS} s)");
    }
}
