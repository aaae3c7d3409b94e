//! (h) Bad input: every malformed request gets a 4xx JSON error naming the problem and the node
//! keeps serving; bad command-line flags exit non-zero with a message.

use serde_json::{json, Value};
use std::process::Command;

use crate::support::*;

async fn expect_error(
    c: &Cluster,
    what: &str,
    resp: Result<reqwest::Response, reqwest::Error>,
    status: u16,
    code: &str,
) {
    let resp = resp.unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
    assert_eq!(resp.status().as_u16(), status, "{what}");
    let body: Value = resp
        .json()
        .await
        .unwrap_or_else(|e| panic!("{what}: error body is not JSON: {e}"));
    assert_eq!(body["error"], code, "{what}: {body}");
    assert!(
        !body["message"].as_str().unwrap_or("").is_empty(),
        "{what}: the message must name the problem"
    );
    let _ = c;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_4xx_and_the_node_keeps_serving() {
    let c = Cluster::start(Settings::default()).await;
    c.create_topic("t", 2, 3, 2, false).await;
    let leader = c.leader("t", 0).await.unwrap();
    let produce = c.broker_url(leader, "/v1/produce");
    let topics = format!("http://{}/v1/topics", c.controller_addr);
    let post_raw = |url: &str, body: Vec<u8>| {
        c.http
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases: Vec<(&str, String, Value, u16, &str)> = vec![
        (
            "unknown topic",
            produce.clone(),
            json!({"topic":"nope","partition":0,"acks":"all","records":[{"value":"x"}]}),
            404,
            "UNKNOWN_TOPIC_OR_PARTITION",
        ),
        (
            "unknown partition",
            produce.clone(),
            json!({"topic":"t","partition":7,"acks":"all","records":[{"value":"x"}]}),
            404,
            "UNKNOWN_TOPIC_OR_PARTITION",
        ),
        (
            "negative partition",
            produce.clone(),
            json!({"topic":"t","partition":-1,"acks":"all","records":[{"value":"x"}]}),
            400,
            "INVALID_REQUEST",
        ),
        (
            "acks=2",
            produce.clone(),
            json!({"topic":"t","partition":0,"acks":2,"records":[{"value":"x"}]}),
            400,
            "INVALID_REQUEST",
        ),
        (
            "acks=\"most\"",
            produce.clone(),
            json!({"topic":"t","partition":0,"acks":"most","records":[{"value":"x"}]}),
            400,
            "INVALID_REQUEST",
        ),
        (
            "no records",
            produce.clone(),
            json!({"topic":"t","partition":0,"acks":"1","records":[]}),
            400,
            "INVALID_REQUEST",
        ),
        (
            "negative timeout",
            produce.clone(),
            json!({"topic":"t","partition":0,"acks":"1","timeout_ms":-5,"records":[{"value":"x"}]}),
            400,
            "INVALID_REQUEST",
        ),
        (
            "unknown field",
            produce.clone(),
            json!({"topic":"t","partition":0,"acks":"1","records":[{"value":"x"}],"key":"k"}),
            400,
            "INVALID_REQUEST",
        ),
        (
            "a billion partitions",
            topics.clone(),
            json!({"name":"big","partitions":1_000_000_000u64,"replication_factor":1}),
            400,
            "INVALID_PARTITIONS",
        ),
        (
            "replication factor above brokers",
            topics.clone(),
            json!({"name":"rf","partitions":1,"replication_factor":4}),
            400,
            "INVALID_REPLICATION_FACTOR",
        ),
        (
            "path trick in topic name",
            topics.clone(),
            json!({"name":"../../etc","partitions":1,"replication_factor":1}),
            400,
            "INVALID_TOPIC_EXCEPTION",
        ),
        (
            "topic name too long",
            topics.clone(),
            json!({"name":"x".repeat(250),"partitions":1,"replication_factor":1}),
            400,
            "INVALID_TOPIC_EXCEPTION",
        ),
        (
            "min.insync.replicas above rf",
            topics.clone(),
            json!({"name":"m","partitions":1,"replication_factor":2,"configs":{"min.insync.replicas":3}}),
            400,
            "INVALID_CONFIG",
        ),
        (
            "unknown topic config",
            topics.clone(),
            json!({"name":"u","partitions":1,"replication_factor":1,"configs":{"retention.ms":1}}),
            400,
            "INVALID_CONFIG",
        ),
        (
            "existing topic",
            topics.clone(),
            json!({"name":"t","partitions":1,"replication_factor":1}),
            409,
            "TOPIC_ALREADY_EXISTS",
        ),
        (
            "heartbeat from another cluster",
            format!("http://{}/v1/internal/heartbeat", c.controller_addr),
            json!({"cluster_id":"other","broker_id":9,"incarnation":1,"registers_fenced":true,"metadata_version":0}),
            403,
            "INCONSISTENT_CLUSTER_ID",
        ),
        (
            "replica fetch from another cluster",
            c.broker_url(leader, "/v1/internal/replica-fetch"),
            json!({"cluster_id":"other","replica_id":2,"topic":"t","partition":0,"fetch_offset":0,"last_fetched_epoch":null,"current_leader_epoch":0,"max_records":1,"max_wait_ms":0}),
            403,
            "INCONSISTENT_CLUSTER_ID",
        ),
    ];
    for (what, url, body, status, code) in cases {
        expect_error(
            &c,
            what,
            c.http.post(&url).json(&body).send().await,
            status,
            code,
        )
        .await;
    }
    expect_error(
        &c,
        "malformed JSON",
        post_raw(&produce, b"{\"topic\": ".to_vec()).await,
        400,
        "INVALID_REQUEST",
    )
    .await;
    expect_error(
        &c,
        "not JSON at all",
        post_raw(&topics, b"\xff\xfe garbage".to_vec()).await,
        400,
        "INVALID_REQUEST",
    )
    .await;
    // The node answers 413 and closes that connection without reading the rest of the body;
    // a client of its own keeps the closed connection out of the shared pool.
    let one_shot = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let oversized = one_shot
        .post(&produce)
        .header("content-type", "application/json")
        .body(vec![b' '; 5 << 20])
        .send()
        .await;
    expect_error(&c, "oversized body", oversized, 413, "MESSAGE_TOO_LARGE").await;
    for (what, query, code) in [
        (
            "negative offset",
            "topic=t&partition=0&offset=-1",
            "INVALID_REQUEST",
        ),
        (
            "offset not a number",
            "topic=t&partition=0&offset=abc",
            "INVALID_REQUEST",
        ),
        ("missing topic", "partition=0&offset=0", "INVALID_REQUEST"),
        (
            "absurd max_records",
            "topic=t&partition=0&offset=0&max_records=999999999",
            "INVALID_REQUEST",
        ),
        (
            "absurd max_wait_ms",
            "topic=t&partition=0&offset=0&max_wait_ms=99999999",
            "INVALID_REQUEST",
        ),
        (
            "offset past the LEO",
            "topic=t&partition=0&offset=1000",
            "OFFSET_OUT_OF_RANGE",
        ),
    ] {
        let status = if code == "OFFSET_OUT_OF_RANGE" {
            416
        } else {
            400
        };
        let url = c.broker_url(leader, &format!("/v1/fetch?{query}"));
        expect_error(&c, what, c.http.get(&url).send().await, status, code).await;
    }
    expect_error(
        &c,
        "unknown path",
        c.http
            .get(c.broker_url(leader, "/v2/everything"))
            .send()
            .await,
        404,
        "NOT_FOUND",
    )
    .await;
    let follower = (1..=3).find(|&b| b != leader).unwrap();
    let (status, body) = c
        .produce(follower, "t", 0, "all", &values("x", 1), 1_000)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (421, Some("NOT_LEADER_OR_FOLLOWER"))
    );
    assert_eq!(body["leader"], leader, "the error names the leader");

    // Still serving, and nothing above was written.
    let (status, body) = c
        .produce(leader, "t", 0, "all", &values("good", 2), 5_000)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["base_offset"], 0, "no bad request appended anything");
    assert_eq!(
        c.metadata().await.unwrap()["topics"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(!c
        .data_dir(leader)
        .join("..")
        .join("..")
        .join("etc-0")
        .exists());
}

#[test]
fn bad_flags_exit_non_zero_with_a_message() {
    for args in [
        vec![
            "broker",
            "--id",
            "x",
            "--data",
            "/tmp/x",
            "--controller",
            "127.0.0.1:1",
        ],
        vec![
            "broker",
            "--id",
            "1",
            "--data",
            "/tmp/x",
            "--controller",
            "127.0.0.1:1",
            "--peer",
            "2",
        ],
        vec![
            "broker",
            "--id",
            "1",
            "--data",
            "/tmp/x",
            "--controller",
            "127.0.0.1:1",
            "--replication-protocol",
            "zk",
        ],
        vec![
            "controller",
            "--data",
            "/tmp/x",
            "--listen",
            "not-an-address",
        ],
        vec![
            "controller",
            "--data",
            "/tmp/x",
            "--session-timeout-ms",
            "-1",
        ],
        // The Kafka listener serves loopback only, and an advertised address needs a port.
        vec![
            "broker",
            "--id",
            "1",
            "--data",
            "/tmp/x",
            "--controller",
            "127.0.0.1:1",
            "--kafka-listen",
            "0.0.0.0:9092",
        ],
        vec![
            "broker",
            "--id",
            "1",
            "--data",
            "/tmp/x",
            "--controller",
            "127.0.0.1:1",
            "--kafka-listen",
            "127.0.0.1:9092",
            "--kafka-advertise",
            "proxy",
        ],
        vec!["frobnicate"],
    ] {
        let out = Command::new(NODE_BIN).args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} must fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("error"), "{args:?}: no message: {stderr}");
    }
}
