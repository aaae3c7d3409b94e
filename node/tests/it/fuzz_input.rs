//! Input fuzzing of a live broker and controller, beyond `bad_input`'s named cases: thousands
//! of seeded random malformed requests — random bytes, valid bodies with a field of the wrong
//! type, missing required fields, huge and negative numbers, bodies cut short, junk query
//! strings — plus raw connections that are slow, half-closed mid-body or not HTTP at all.
//! Every request that reaches the API must get a 4xx with a JSON `{"error","message"}`; a
//! request the HTTP layer itself cannot parse may get a bare 4xx or a closed connection, never
//! a 2xx or 5xx. At the end every node still runs and serves, and the records written before
//! are intact on the leader and in every broker's dump. Bounded: each request has a timeout and
//! the whole test a deadline.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

const SEED: u64 = 12;
const REQUESTS: usize = 3000;
const CONCURRENCY: usize = 8;
const TEST_DEADLINE: Duration = Duration::from_secs(120);

/// A value of a type that no field of the API accepts in the place it is put, chosen to
/// differ from the field's own type (`original`).
fn wrong_type(rng: &mut StdRng, original: &Value) -> Value {
    loop {
        let v = match rng.gen_range(0..9) {
            0 => json!(null),
            1 => json!(rng.gen::<bool>()),
            2 => json!([1, "x", null]),
            3 => json!({"nested": {"deep": [rng.gen::<u32>()]}}),
            4 => json!(-(rng.gen_range(1..i64::MAX))),
            5 => json!(1e300 * rng.gen_range(1.0..9.0)),
            6 => serde_json::from_str("184467440737095516160000").unwrap(),
            7 => json!(rng.gen_range(0.5..1000.0)),
            _ => json!("not-a-number-\u{0}-\u{202e}"),
        };
        let same_kind = std::mem::discriminant(&v) == std::mem::discriminant(original)
            && !(v.is_number() && original.is_number());
        if !same_kind && v != *original {
            return v;
        }
    }
}

/// Valid bodies, each with the fields whose removal or retyping must be refused; a name ending
/// in `?` is optional (may be absent or null) and is only given a wrong non-null type.
fn valid_bodies(topic: &str) -> Vec<(&'static str, Value, &'static [&'static str])> {
    vec![
        (
            "produce",
            json!({"topic": topic, "partition": 0, "acks": "all", "timeout_ms": 2000, "records": [{"value": "fz"}]}),
            &["topic", "partition", "acks", "records", "timeout_ms?"],
        ),
        (
            "topics",
            json!({"name": "fuzz-topic", "partitions": 1, "replication_factor": 3,
                   "configs": {"min.insync.replicas": 2, "unclean.leader.election.enable": false}}),
            &["name", "partitions", "replication_factor"],
        ),
    ]
}

/// One malformed request over HTTP: (description, url, body bytes).
fn malformed(rng: &mut StdRng, c: &Cluster, leader: u32) -> (String, String, Vec<u8>) {
    let produce = c.broker_url(leader, "/v1/produce");
    let topics = format!("http://{}/v1/topics", c.controller_addr);
    let internal = [
        c.broker_url(leader, "/v1/internal/replica-fetch"),
        format!("http://{}/v1/internal/heartbeat", c.controller_addr),
        format!("http://{}/v1/internal/alter-partition", c.controller_addr),
    ];
    match rng.gen_range(0..6) {
        0 => {
            let url = if rng.gen() { produce } else { topics };
            let len = rng.gen_range(0..2000);
            let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            ("random bytes".into(), url, bytes)
        }
        1 | 2 => {
            let bodies = valid_bodies("t");
            let (which, mut body, required) = bodies[rng.gen_range(0..bodies.len())].clone();
            let field = required[rng.gen_range(0..required.len())];
            let optional = field.ends_with('?');
            let field = field.trim_end_matches('?');
            let url = if which == "produce" { produce } else { topics };
            if !optional && rng.gen_bool(0.3) {
                body.as_object_mut().unwrap().remove(field);
                let what = format!("{which} without {field}");
                (what, url, body.to_string().into_bytes())
            } else {
                let mut v = wrong_type(rng, &body[field]);
                while optional && v.is_null() {
                    v = wrong_type(rng, &body[field]);
                }
                let what = format!("{which} with {field}={v}");
                body[field] = v;
                (what, url, body.to_string().into_bytes())
            }
        }
        3 => {
            // Numbers out of every field's range: the partition, the acks, a huge timeout,
            // a replication factor or partition count no cluster could hold.
            let (what, url, body) = match rng.gen_range(0..5) {
                0 => (
                    "partition 2^40",
                    produce,
                    json!({"topic":"t","partition": 1u64 << 40,"acks":"all","records":[{"value":"x"}]}),
                ),
                1 => (
                    "acks 2",
                    produce,
                    json!({"topic":"t","partition":0,"acks": 2,"records":[{"value":"x"}]}),
                ),
                2 => (
                    "timeout_ms u64::MAX",
                    produce,
                    json!({"topic":"t","partition":0,"acks":"all","timeout_ms": u64::MAX,"records":[{"value":"x"}]}),
                ),
                3 => (
                    "replication_factor 4e9",
                    topics,
                    json!({"name":"huge-rf","partitions":1,"replication_factor": 4_000_000_000u64}),
                ),
                _ => (
                    "partitions 4e9",
                    topics,
                    json!({"name":"huge-p","partitions": 4_000_000_000u64,"replication_factor":3}),
                ),
            };
            (what.into(), url, body.to_string().into_bytes())
        }
        4 => {
            let bodies = valid_bodies("t");
            let (which, body, _) = bodies[rng.gen_range(0..bodies.len())].clone();
            let mut bytes = body.to_string().into_bytes();
            let cut = rng.gen_range(0..bytes.len() - 1);
            bytes.truncate(cut);
            let url = if which == "produce" { produce } else { topics };
            (format!("{which} cut at byte {cut}"), url, bytes)
        }
        _ => {
            let url = internal[rng.gen_range(0..internal.len())].clone();
            let body = match rng.gen_range(0..4) {
                0 => b"{}".to_vec(),
                1 => b"[]".to_vec(),
                2 => b"12345678901234567890123".to_vec(),
                _ => (0..rng.gen_range(1..300)).map(|_| rng.gen()).collect(),
            };
            ("internal endpoint, junk".into(), url, body)
        }
    }
}

/// A junk fetch query string.
fn junk_fetch(rng: &mut StdRng, c: &Cluster, leader: u32) -> (String, String) {
    let offset = match rng.gen_range(0..4) {
        0 => "-5".to_string(),
        1 => "99999999999999999999999".to_string(),
        2 => "%ff%fe".to_string(),
        _ => "1e9".to_string(),
    };
    let query = match rng.gen_range(0..4) {
        0 => format!("topic=t&partition=0&offset={offset}"),
        1 => format!("topic=t&partition={offset}&offset=0"),
        2 => format!("topic=t&partition=0&offset=0&max_records={offset}"),
        _ => format!("partition=0&offset=0&max_wait_ms={offset}"),
    };
    (
        format!("fetch ?{query}"),
        c.broker_url(leader, &format!("/v1/fetch?{query}")),
    )
}

/// Asserts an answer that reached the API: 4xx with a JSON error naming the problem.
async fn expect_json_4xx(what: &str, resp: Result<reqwest::Response, reqwest::Error>) {
    let resp = resp.unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    assert!(
        (400..500).contains(&status),
        "{what}: status {status}: {text}"
    );
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{what}: status {status}, body not JSON ({e}): {text}"));
    assert!(
        body["error"].as_str().is_some_and(|s| !s.is_empty())
            && body["message"].as_str().is_some_and(|s| !s.is_empty()),
        "{what}: the error must name the problem: {body}"
    );
}

/// Raw-socket cases the HTTP layer sees first. The answer, if any, must be a 4xx status line;
/// a closed connection is fine. Returns the status line or "closed".
async fn raw(addr: &str, rng_seed: u64) -> String {
    let mut rng = StdRng::seed_from_u64(rng_seed);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    match rng.gen_range(0..4) {
        0 => {
            // Not HTTP at all.
            let junk: Vec<u8> = (0..rng.gen_range(1..500)).map(|_| rng.gen()).collect();
            let _ = stream.write_all(&junk).await;
            let _ = stream.write_all(b"\r\n\r\n").await;
        }
        1 => {
            // A body shorter than its Content-Length, then a half-close.
            let head = "POST /v1/produce HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"topic\":\"t\",";
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        2 => {
            // Slow: a request a few bytes at a time, then a half-close mid-headers.
            let head = b"POST /v1/topics HTTP/1.1\r\nhost: x\r\ncontent-le";
            for chunk in head.chunks(4) {
                let _ = stream.write_all(chunk).await;
                tokio::time::sleep(Duration::from_millis(rng.gen_range(5..40))).await;
            }
            let _ = stream.shutdown().await;
        }
        _ => {
            // A huge Content-Length that never arrives.
            let head = "POST /v1/produce HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 99999999999999\r\n\r\n{";
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "a raw connection got neither an answer nor a close in 10 s"
    );
    let text = String::from_utf8_lossy(&answer);
    let Some(status_line) = text.lines().next().filter(|l| !l.is_empty()) else {
        return "closed".into();
    };
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP status line: {status_line}"));
    assert!((400..500).contains(&status), "raw case {rng_seed}: {text}");
    status_line.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_malformed_requests_get_4xx_and_leave_the_data_intact() {
    let started = Instant::now();
    let cluster = Cluster::start(Settings::default()).await;
    let c = &cluster;
    c.create_topic("t", 1, 3, 2, false).await;
    let leader = c.leader("t", 0).await.unwrap();
    let before = values("before", 50);
    let (status, body) = c.produce(leader, "t", 0, "all", &before, 5000).await;
    assert_eq!(status, 200, "{body}");
    let topics_before = c.metadata().await.unwrap()["topics"].clone();

    let mut rng = StdRng::seed_from_u64(SEED);
    let mut answered = 0usize;
    for round in 0..REQUESTS / CONCURRENCY {
        assert!(started.elapsed() < TEST_DEADLINE, "fuzzing took too long");
        let mut batch = Vec::new();
        for _ in 0..CONCURRENCY {
            if rng.gen_bool(0.15) {
                let (what, url) = junk_fetch(&mut rng, c, leader);
                batch.push((what, c.http.get(url).timeout(Duration::from_secs(5)).send()));
            } else {
                let (what, url, body) = malformed(&mut rng, c, leader);
                let req = c
                    .http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .timeout(Duration::from_secs(5));
                batch.push((what, req.send()));
            }
        }
        let whats: Vec<String> = batch
            .iter()
            .map(|(w, _)| format!("round {round}: {w}"))
            .collect();
        let answers = futures_join(batch.into_iter().map(|(_, f)| f).collect()).await;
        for (what, resp) in whats.iter().zip(answers) {
            expect_json_4xx(what, resp).await;
            answered += 1;
        }
    }
    // Raw connections, to the broker and the controller at once, some slow.
    let mut raw_tasks = Vec::new();
    for i in 0..64u64 {
        let addr = if i % 2 == 0 {
            c.broker_addrs[&leader].clone()
        } else {
            c.controller_addr.clone()
        };
        raw_tasks.push(tokio::spawn(
            async move { raw(&addr, SEED * 1000 + i).await },
        ));
    }
    let mut raw_closed = 0;
    for task in raw_tasks {
        if task.await.expect("a raw case failed") == "closed" {
            raw_closed += 1;
        }
    }
    eprintln!("{answered} malformed requests answered 4xx with JSON; 64 raw connections ({raw_closed} closed without an answer)");

    // Every node still runs and answers, no topic appeared, and the data written before is
    // intact on the leader and on every broker's disk.
    let md = c.metadata().await.expect("the controller still answers");
    assert!(
        md["brokers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["alive"] == true),
        "{md}"
    );
    assert_eq!(md["topics"], topics_before, "fuzzing changed the topics");
    let (hw, records) = c.read_all(leader, "t", 0).await;
    assert_eq!(hw, 50);
    let read: Vec<String> = records.into_iter().map(|(_, v)| v).collect();
    assert_eq!(read, before);
    let (status, body) = c
        .produce(leader, "t", 0, "all", &values("after", 5), 5000)
        .await;
    assert_eq!(status, 200, "the leader still takes writes: {body}");
    for broker in 1..=3 {
        c.poll(
            "every broker to hold the 55 records",
            Duration::from_secs(10),
            || async move {
                let s = c.replica_state(broker, "t", 0).await?;
                (s["log_end_offset"] == 55).then_some(())
            },
        )
        .await;
    }
    let mut cluster = cluster;
    cluster.stop_all();
    for broker in 1..=3 {
        let dumped: Vec<String> = cluster
            .dump(broker)
            .iter()
            .map(|r| r["value"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(dumped[..50], before[..], "broker {broker}'s log on disk");
        assert_eq!(dumped.len(), 55, "broker {broker}'s log on disk");
    }
}

/// Awaits every future, in order (a tiny join_all: the node's tests do not pull in `futures`).
async fn futures_join<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
