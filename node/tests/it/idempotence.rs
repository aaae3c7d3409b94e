//! The idempotent producer against real broker processes (issue 23): producer ids from
//! `POST /v1/init-producer-id`, a retried produce answered with the original offsets, gaps and
//! old epochs refused, and — the point of it — a new leader, elected after the old one was
//! SIGKILLed, answering a retry of a batch the old leader accepted with that batch's offsets
//! instead of writing it twice. Kafka 0.10.2 has no idempotent producer.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;
use faultline_node::version::KafkaVersion;

async fn init_producer(c: &Cluster, broker: u32) -> (u16, Value) {
    c.post(&c.broker_url(broker, "/v1/init-producer-id"), &json!({}))
        .await
        .unwrap()
}

/// One stamped produce of `values` (acks=all) to `broker`.
async fn produce_stamped(
    c: &Cluster,
    broker: u32,
    producer: (i64, i64),
    sequence: i64,
    values: &[String],
) -> (u16, Value) {
    let records: Vec<Value> = values.iter().map(|v| json!({"value": v})).collect();
    let body = json!({"topic": "t", "partition": 0, "acks": "all", "timeout_ms": 5000,
                      "records": records, "producer_id": producer.0,
                      "producer_epoch": producer.1, "base_sequence": sequence});
    c.post(&c.broker_url(broker, "/v1/produce"), &body)
        .await
        .unwrap_or((0, json!({"error": "CONNECTION"})))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_answers_a_retry_with_the_original_offsets() {
    let mut c = Cluster::start(Settings::default()).await;
    c.create_topic("t", 1, 3, 2, false).await;
    let leader = c.leader("t", 0).await.unwrap();
    let (status, id) = init_producer(&c, leader).await;
    assert_eq!(status, 200, "{id}");
    let producer = (id["producer_id"].as_i64().unwrap(), 0);
    assert_eq!(id["producer_epoch"], 0);
    let (_, other) = init_producer(&c, leader).await;
    assert_ne!(
        other["producer_id"], id["producer_id"],
        "ids are not shared"
    );

    let first = values("a", 3);
    let (status, answer) = produce_stamped(&c, leader, producer, 0, &first).await;
    assert_eq!(
        (status, answer["base_offset"].as_u64()),
        (200, Some(0)),
        "{answer}"
    );
    let (status, answer) = produce_stamped(&c, leader, producer, 3, &values("b", 2)).await;
    assert_eq!(
        (status, answer["base_offset"].as_u64()),
        (200, Some(3)),
        "{answer}"
    );
    // The same leader: a retry of the first batch.
    let (status, answer) = produce_stamped(&c, leader, producer, 0, &first).await;
    assert_eq!(
        (status, answer["base_offset"].as_u64()),
        (200, Some(0)),
        "{answer}"
    );
    assert_eq!(answer["count"], 3);
    // A gap.
    let (status, answer) = produce_stamped(&c, leader, producer, 9, &values("c", 1)).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("OUT_OF_ORDER_SEQUENCE_NUMBER"))
    );
    // Half a stamp is a bad request.
    let half = json!({"topic": "t", "partition": 0, "acks": "all", "records": [{"value": "x"}],
                      "producer_id": producer.0});
    let (status, answer) = c
        .post(&c.broker_url(leader, "/v1/produce"), &half)
        .await
        .unwrap();
    assert_eq!(status, 400, "{answer}");
    assert!(answer["message"]
        .as_str()
        .unwrap()
        .contains("all three or none"));

    // The old leader dies; the new one, elected from the ISR, holds the producer's batches and
    // their stamps, so a retry of the second batch is a duplicate there too.
    c.kill(leader);
    let new_leader = c
        .poll("a new leader", Duration::from_secs(15), || async {
            c.leader("t", 0).await.filter(|&l| l != leader)
        })
        .await;
    let answer = c
        .poll(
            "the new leader to answer the retry",
            Duration::from_secs(15),
            || async {
                let (status, answer) =
                    produce_stamped(&c, new_leader, producer, 3, &values("b", 2)).await;
                (status == 200).then_some(answer)
            },
        )
        .await;
    assert_eq!(answer["base_offset"].as_u64(), Some(3), "{answer}");
    let (status, answer) = produce_stamped(&c, new_leader, producer, 5, &values("d", 1)).await;
    assert_eq!(
        (status, answer["base_offset"].as_u64()),
        (200, Some(5)),
        "{answer}"
    );
    let (_, log) = c.read_all(new_leader, "t", 0).await;
    let read: Vec<&str> = log.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(read.len(), 6, "every value once: {read:?}");
    c.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_0_10_2_gives_no_producer_ids() {
    let mut c = Cluster::start(Settings {
        kafka_version: Some(KafkaVersion::V0_10_2),
        ..Settings::default()
    })
    .await;
    c.create_topic("t", 1, 3, 2, false).await;
    let leader = c.leader("t", 0).await.unwrap();
    let (status, answer) = init_producer(&c, leader).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("KIP-98"),
        "{answer}"
    );
    c.stop_all();
}
