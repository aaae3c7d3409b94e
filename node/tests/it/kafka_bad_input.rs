//! Bad input on the Kafka listener, against the real binary: oversized and negative frame
//! lengths, frames too short for a header, unknown API keys, unserved versions, bodies whose
//! counts lie, half-written requests and seeded random garbage. Each gets an error response or
//! a closed connection, and after each the broker still answers Kafka and HTTP requests. Also
//! the per-partition produce refusals (compression, keys, unknown partitions, too many records)
//! and acks=0's silence with responses kept in request order.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Cluster, Settings};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

async fn connect(c: &Cluster) -> TcpStream {
    let addr = c.kafka_addrs.values().next().unwrap();
    TcpStream::connect(addr)
        .await
        .expect("the Kafka listener accepts")
}

/// A request frame: size, header (v1, or v2 for flexible versions), body.
fn frame<T: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &T) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("bad-input-test")))
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    sized(&buf)
}

fn sized(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// Reads one response frame; `None` if the broker closed the connection.
async fn read_response(s: &mut TcpStream) -> Option<Bytes> {
    let read = async {
        let mut size = [0u8; 4];
        s.read_exact(&mut size).await.ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        s.read_exact(&mut body).await.ok()?;
        Some(Bytes::from(body))
    };
    tokio::time::timeout(IO_TIMEOUT, read)
        .await
        .expect("an answer or a close in time")
}

/// The broker answers a well-formed ApiVersions v0 and its HTTP API still serves.
async fn assert_still_serving(c: &Cluster) {
    let mut s = connect(c).await;
    s.write_all(&frame(
        ApiKey::ApiVersions,
        0,
        7,
        &ApiVersionsRequest::default(),
    ))
    .await
    .unwrap();
    let mut resp = read_response(&mut s).await.expect("ApiVersions answered");
    assert_eq!(
        ResponseHeader::decode(&mut resp, 0).unwrap().correlation_id,
        7
    );
    let body = ApiVersionsResponse::decode(&mut resp, 0).unwrap();
    assert_eq!(body.error_code, 0);
    assert!(body
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::Produce as i16));
    assert!(c.state(1).await.is_some(), "the HTTP API still answers");
}

/// Sends raw bytes and expects the connection to be closed (no response frame).
async fn assert_closed(c: &Cluster, bytes: &[u8], what: &str) {
    let mut s = connect(c).await;
    s.write_all(bytes).await.unwrap();
    assert!(
        read_response(&mut s).await.is_none(),
        "{what}: expected a closed connection"
    );
    assert_still_serving(c).await;
}

async fn one_broker() -> Cluster {
    let c = Cluster::start(Settings {
        brokers: 1,
        kafka: true,
        ..Settings::default()
    })
    .await;
    c.create_topic("t", 1, 1, 1, false).await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_the_connection_and_the_broker_keeps_serving() {
    let c = one_broker().await;
    assert_still_serving(&c).await;
    assert_closed(&c, &i32::MAX.to_be_bytes(), "a 2 GiB frame length").await;
    assert_closed(&c, &(-5i32).to_be_bytes(), "a negative frame length").await;
    assert_closed(&c, &sized(&[0, 3, 0]), "a frame shorter than a header").await;
    assert_closed(
        &c,
        &sized(&[0x27, 0x0f, 0, 0, 0, 0, 0, 1, 0xff, 0xff]),
        "API key 9999",
    )
    .await;
    let fetch_v99 = [&[0u8, 1, 0, 99, 0, 0, 0, 1, 0xff, 0xff][..], &[0; 20]].concat();
    assert_closed(&c, &sized(&fetch_v99), "Fetch v99").await;
    // Metadata v1 claiming two billion topics in a 4-byte array: refused before any allocation.
    let mut lying = vec![0u8, 3, 0, 1, 0, 0, 0, 2, 0xff, 0xff];
    lying.extend(i32::MAX.to_be_bytes());
    assert_closed(&c, &sized(&lying), "an array count larger than the frame").await;
    // A produce whose batch claims two billion records.
    let mut batch = vec![0u8; 61];
    batch[8..12].copy_from_slice(&49i32.to_be_bytes());
    batch[16] = 2;
    batch[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    let req = produce_request(1, Bytes::from(batch));
    assert_closed(
        &c,
        &frame(ApiKey::Produce, 3, 1, &req),
        "a batch with a lying record count",
    )
    .await;

    // Half-written: a frame that promises 100 bytes and stops after 10, then hangs up.
    let mut s = connect(&c).await;
    s.write_all(&[&100i32.to_be_bytes()[..], &[0u8; 10]].concat())
        .await
        .unwrap();
    drop(s);
    assert_still_serving(&c).await;

    // ApiVersions at a version we do not serve: UNSUPPORTED_VERSION at v0, with our versions.
    let mut s = connect(&c).await;
    s.write_all(&sized(&[0, 18, 0, 99, 0, 0, 0, 5, 0xff, 0xff]))
        .await
        .unwrap();
    let mut resp = read_response(&mut s).await.expect("answered");
    assert_eq!(
        ResponseHeader::decode(&mut resp, 0).unwrap().correlation_id,
        5
    );
    let body = ApiVersionsResponse::decode(&mut resp, 0).unwrap();
    assert_eq!(body.error_code, 35, "UNSUPPORTED_VERSION");
    assert!(!body.api_keys.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_random_garbage_never_stops_the_broker() {
    let c = one_broker().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    let served: [(i16, i16, i16); 6] = [
        (0, 3, 8),
        (1, 4, 11),
        (2, 1, 5),
        (3, 0, 8),
        (18, 0, 3),
        (22, 0, 1),
    ];
    for round in 0..150 {
        let (key, min, max) = served[round % served.len()];
        let mut body = vec![0u8; 8];
        body[0..2].copy_from_slice(&key.to_be_bytes());
        body[2..4].copy_from_slice(&rng.gen_range(min..=max).to_be_bytes());
        body[4..8].copy_from_slice(&(round as i32).to_be_bytes());
        let len = rng.gen_range(0..200);
        body.extend((0..len).map(|_| rng.gen::<u8>()));
        let mut s = connect(&c).await;
        s.write_all(&sized(&body)).await.unwrap();
        // Either a response or a close; never a hang, never a crash.
        if let Some(mut resp) = read_response(&mut s).await {
            assert!(
                resp.len() >= 4,
                "round {round}: a response without a header"
            );
            assert_eq!(bytes::Buf::get_i32(&mut resp), round as i32);
        }
    }
    assert_still_serving(&c).await;
}

fn produce_request(acks: i16, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

fn record(offset: i64, value: &str, key: Option<&str>) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        // The codec starts a new batch whenever `offset - sequence` changes: keep it constant.
        sequence: offset as i32 - 1,
        timestamp: 0,
        key: key.map(|k| Bytes::from(k.to_string())),
        value: Some(Bytes::from(value.to_string())),
        headers: Default::default(),
    }
}

fn encode(records: &[Record]) -> Bytes {
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, records, &options).unwrap();
    out.freeze()
}

fn batch(value: &str, key: Option<&str>) -> Bytes {
    encode(&[record(0, value, key)])
}

/// One batch of `count` one-byte records.
fn big_batch(count: usize) -> Bytes {
    let records: Vec<Record> = (0..count as i64).map(|o| record(o, "x", None)).collect();
    encode(&records)
}

/// Sends a Produce v8 and returns its one partition's answer.
async fn produce_answer(
    s: &mut TcpStream,
    correlation_id: i32,
    req: &ProduceRequest,
) -> produce_response::PartitionProduceResponse {
    s.write_all(&frame(ApiKey::Produce, 8, correlation_id, req))
        .await
        .unwrap();
    let mut resp = read_response(s).await.expect("a produce response");
    assert_eq!(
        ResponseHeader::decode(&mut resp, 0).unwrap().correlation_id,
        correlation_id
    );
    let mut body = ProduceResponse::decode(&mut resp, 8).unwrap();
    body.responses.remove(0).partition_responses.remove(0)
}

async fn produce(s: &mut TcpStream, correlation_id: i32, req: &ProduceRequest) -> (i16, i64) {
    let p = produce_answer(s, correlation_id, req).await;
    (p.error_code, p.base_offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_refusals_name_the_problem_and_acks_0_gets_no_response() {
    let c = one_broker().await;
    let mut s = connect(&c).await;
    assert_eq!(
        produce(&mut s, 1, &produce_request(1, batch("a", None))).await,
        (0, 0)
    );
    let mut gzip = batch("b", None).to_vec();
    gzip[22] |= 1;
    assert_eq!(
        produce(&mut s, 2, &produce_request(1, Bytes::from(gzip)))
            .await
            .0,
        76,
        "UNSUPPORTED_COMPRESSION_TYPE"
    );
    assert_eq!(
        produce(&mut s, 3, &produce_request(1, batch("c", Some("k"))))
            .await
            .0,
        87,
        "INVALID_RECORD"
    );
    assert_eq!(
        produce(&mut s, 4, &produce_request(7, batch("d", None)))
            .await
            .0,
        21,
        "INVALID_REQUIRED_ACKS"
    );
    let mut other = produce_request(1, batch("e", None));
    other.topic_data[0].name = TopicName(StrBytes::from_static_str("nope"));
    assert_eq!(
        produce(&mut s, 5, &other).await.0,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    // acks=0 gets no response: the next response on the connection is the next request's.
    s.write_all(&frame(
        ApiKey::Produce,
        8,
        6,
        &produce_request(0, batch("f", None)),
    ))
    .await
    .unwrap();
    assert_eq!(
        produce(&mut s, 7, &produce_request(1, batch("g", None))).await,
        (0, 2)
    );
    let (_, records) = c.read_all(1, "t", 0).await;
    let values: Vec<&str> = records.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(values, ["a", "f", "g"], "refused batches were not appended");
}

/// One produce over the broker's record limit: the Kafka API refuses it with Kafka's
/// RECORD_LIST_TOO_LARGE and the HTTP API with its INVALID_REQUEST, both from the broker's one
/// check and with the same message; nothing is appended and both APIs keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_produce_over_the_record_limit_is_refused_by_both_apis() {
    let limit = faultline_node::broker::produce::MAX_RECORDS_PER_PRODUCE;
    let over = limit + 1;
    let message = format!("a produce carries 1 to {limit} records (got {over})");
    let c = one_broker().await;
    let mut s = connect(&c).await;
    let p = produce_answer(&mut s, 1, &produce_request(1, big_batch(over))).await;
    assert_eq!(
        (p.error_code, p.base_offset),
        (18, -1),
        "RECORD_LIST_TOO_LARGE"
    );
    assert_eq!(p.error_message.as_deref(), Some(message.as_str()));

    let (status, body) = c
        .produce(1, "t", 0, "1", &vec!["x".to_string(); over], 5000)
        .await;
    assert_eq!(
        (status, &body["error"], &body["message"]),
        (400, &json!("INVALID_REQUEST"), &json!(message))
    );

    // At the limit both are served, the Kafka one on the connection that was refused; its base
    // offset 0 shows the refused produces appended nothing.
    assert_eq!(
        produce(&mut s, 2, &produce_request(1, big_batch(limit))).await,
        (0, 0)
    );
    let (status, body) = c.produce(1, "t", 0, "1", &["y".to_string()], 5000).await;
    assert_eq!((status, &body["base_offset"]), (200, &json!(limit)));
    assert_still_serving(&c).await;
}
