//! `send_one` against a scripted broker on 127.0.0.1: one send is one invoke and one
//! completion however many attempts it took; a retry carries the same value (and, with
//! idempotence, the same producer id, epoch and sequence); sequences advance only with an
//! acknowledged send; a refused sequence or an unknown outcome gets the producer a new
//! producer id. The broker speaks just enough of the node's HTTP API (docs/node-api.md):
//! metadata, init-producer-id, and produce answered as each test scripts it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_checker::history::{Acks, Op, OpType, SendValue};
use faultline_workloads::workload::send_one;
use faultline_workloads::{
    ClientContext, ClientProcess, Endpoints, HistoryWriter, NodeClient, ProducerSettings,
};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// How the broker answers one produce.
#[derive(Debug, Clone)]
enum Reply {
    /// 200 with this base offset.
    Ok(u64),
    /// An error answer: status and code.
    Error(u16, &'static str),
    /// Close the connection without answering: the client cannot know what happened.
    Drop,
}

#[derive(Default)]
struct Broker {
    script: VecDeque<Reply>,
    /// Every produce body received, in order.
    produced: Vec<Value>,
    producer_ids: i64,
}

/// A broker (id 1, leader of t/0) answering from `script`; with it the client's endpoints.
async fn broker(script: Vec<Reply>) -> (Arc<Mutex<Broker>>, Endpoints) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(Mutex::new(Broker {
        script: script.into(),
        ..Broker::default()
    }));
    let served = state.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, served.clone()));
        }
    });
    let endpoints = Endpoints {
        controller: Some(addr),
        brokers: BTreeMap::from([(1, addr)]),
        kafka_brokers: BTreeMap::new(),
        kafka_ports: BTreeMap::new(),
    };
    (state, endpoints)
}

/// Serves one connection's requests (keep-alive) until the client closes it or a `Drop`.
async fn serve(stream: TcpStream, state: Arc<Mutex<Broker>>) {
    let mut stream = BufReader::new(stream);
    loop {
        let Some((path, body)) = read_request(&mut stream).await else {
            return;
        };
        let (status, answer) = match path.as_str() {
            "/v1/metadata" => (
                200,
                json!({"brokers": [{"id": 1, "alive": true}],
                "topics": [{"name": "t", "partitions": [{"partition": 0, "leader": 1}]}]}),
            ),
            "/v1/init-producer-id" => {
                let mut broker = state.lock().unwrap();
                broker.producer_ids += 1;
                (
                    200,
                    json!({"producer_id": broker.producer_ids, "producer_epoch": 0}),
                )
            }
            "/v1/produce" => {
                let reply = {
                    let mut broker = state.lock().unwrap();
                    broker.produced.push(body);
                    broker.script.pop_front().expect("a scripted reply")
                };
                match reply {
                    Reply::Ok(offset) => (
                        200,
                        json!({"base_offset": offset, "count": 1, "leader_epoch": 0}),
                    ),
                    Reply::Error(status, code) => (status, json!({"error": code, "message": ""})),
                    Reply::Drop => return,
                }
            }
            other => panic!("unexpected request {other}"),
        };
        let text = answer.to_string();
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            text.len()
        );
        let stream = stream.get_mut();
        if stream.write_all(head.as_bytes()).await.is_err()
            || stream.write_all(text.as_bytes()).await.is_err()
        {
            return;
        }
    }
}

/// One request's path and JSON body (`Null` when it has none).
async fn read_request(stream: &mut BufReader<TcpStream>) -> Option<(String, Value)> {
    let mut line = String::new();
    if stream.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let path = line
        .split_whitespace()
        .nth(1)?
        .split('?')
        .next()?
        .to_string();
    let mut length = 0;
    loop {
        let mut header = String::new();
        stream.read_line(&mut header).await.ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.ok()?;
    Some((path, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

struct Client {
    ctx: ClientContext,
    dir: tempfile::TempDir,
    process: ClientProcess,
}

fn client(endpoints: Endpoints, settings: ProducerSettings) -> Client {
    let dir = tempfile::tempdir().unwrap();
    let history = HistoryWriter::create(&dir.path().join("history.jsonl"), Instant::now()).unwrap();
    let ctx = ClientContext::new(
        NodeClient::new(Duration::from_secs(2)),
        endpoints,
        history.into(),
    )
    .with_producer(settings);
    Client {
        ctx,
        dir,
        process: ClientProcess { id: 0, stride: 9 },
    }
}

impl Client {
    /// One send, as a producer makes it: when no leader is known (a failed attempt forgot it
    /// and metadata was asked less than 100 ms ago), nothing is sent; it tries again shortly.
    async fn send(&mut self) -> OpType {
        for _ in 0..40 {
            let sent = send_one(&self.ctx, &mut self.process, "t", 0, Acks::All).await;
            if let Some(kind) = sent.unwrap() {
                return kind;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no leader known for 2 s");
    }

    /// The history's sends, by line.
    fn history(&self) -> Vec<(OpType, SendValue, Option<String>)> {
        let text = std::fs::read_to_string(self.dir.path().join("history.jsonl")).unwrap();
        text.lines()
            .map(|line| {
                let op: Op = serde_json::from_str(line).unwrap();
                let value = serde_json::from_value(op.value).unwrap();
                (op.kind, value, op.error)
            })
            .collect()
    }
}

fn retrying(retries: u32, idempotence: bool) -> ProducerSettings {
    ProducerSettings {
        retries,
        idempotence,
    }
}

/// (producer_id, producer_epoch, base_sequence) of a produce body, `None` without them.
fn producer_of(body: &Value) -> Option<(i64, i64, i64)> {
    Some((
        body.get("producer_id")?.as_i64()?,
        body.get("producer_epoch")?.as_i64()?,
        body.get("base_sequence")?.as_i64()?,
    ))
}

#[tokio::test]
async fn a_send_whose_answer_was_lost_is_retried_with_the_same_value_as_one_operation() {
    let (broker, endpoints) = broker(vec![Reply::Drop, Reply::Ok(7)]).await;
    let mut client = client(endpoints, retrying(3, false));
    assert_eq!(client.send().await, OpType::Ok);
    let history = client.history();
    assert_eq!(history.len(), 2, "one invoke, one completion: {history:?}");
    let (kind, done, error) = &history[1];
    assert_eq!(
        (*kind, done.offset, done.attempts),
        (OpType::Ok, Some(7), Some(2))
    );
    assert_eq!(done.retry_errors.len(), 1, "{done:?}");
    assert_eq!(*error, None);
    assert_eq!(history[0].1.attempts, None, "the invoke does not know yet");
    let produced = &broker.lock().unwrap().produced;
    assert_eq!(produced.len(), 2);
    assert_eq!(
        produced[0]["records"], produced[1]["records"],
        "the same value"
    );
    assert!(
        produced.iter().all(|b| producer_of(b).is_none()),
        "blind retries"
    );
    assert_eq!(client.process.id, 0, "an ok send keeps its process");
}

#[tokio::test]
async fn without_retries_a_lost_answer_is_one_unknown_attempt() {
    let (broker, endpoints) = broker(vec![Reply::Drop]).await;
    let mut client = client(endpoints, retrying(0, false));
    assert_eq!(client.send().await, OpType::Info);
    let (_, done, error) = &client.history()[1];
    assert_eq!(done.attempts, Some(1));
    assert!(error.is_some());
    assert_eq!(broker.lock().unwrap().produced.len(), 1);
    assert_eq!(client.process.id, 9, "an info send moves its process on");
}

#[tokio::test]
async fn a_send_refused_until_its_retries_run_out_is_a_definite_failure() {
    let refused = Reply::Error(503, "NOT_ENOUGH_REPLICAS");
    let (broker, endpoints) = broker(vec![refused.clone(), refused.clone(), refused]).await;
    let mut client = client(endpoints, retrying(2, false));
    assert_eq!(client.send().await, OpType::Fail);
    let (_, done, error) = &client.history()[1];
    assert_eq!(done.attempts, Some(3));
    assert_eq!(done.retry_errors, ["NOT_ENOUGH_REPLICAS"; 2]);
    assert_eq!(error.as_deref(), Some("NOT_ENOUGH_REPLICAS"));
    assert_eq!(broker.lock().unwrap().produced.len(), 3);
}

#[tokio::test]
async fn idempotent_attempts_carry_one_sequence_and_the_next_send_the_next() {
    let (broker, endpoints) = broker(vec![Reply::Drop, Reply::Ok(0), Reply::Ok(1)]).await;
    let mut client = client(endpoints, retrying(3, true));
    assert_eq!(client.send().await, OpType::Ok);
    assert_eq!(client.send().await, OpType::Ok);
    let broker = broker.lock().unwrap();
    let sent: Vec<_> = broker.produced.iter().map(producer_of).collect();
    assert_eq!(
        sent,
        [Some((1, 0, 0)), Some((1, 0, 0)), Some((1, 0, 1))],
        "both attempts of the first send carry sequence 0; the second send 1"
    );
    assert_eq!(broker.producer_ids, 1, "one producer id for the producer");
    let history = client.history();
    let first = &history[1].1;
    assert_eq!(
        (
            first.producer_id,
            first.producer_epoch,
            first.sequence,
            first.attempts
        ),
        (Some(1), Some(0), Some(0), Some(2))
    );
    assert_eq!(
        history[2].1.sequence,
        Some(1),
        "the second invoke names its sequence"
    );
}

#[tokio::test]
async fn a_refused_sequence_fails_the_send_and_gets_a_new_producer_id() {
    let script = vec![
        Reply::Ok(0),
        Reply::Error(409, "OUT_OF_ORDER_SEQUENCE_NUMBER"),
        Reply::Ok(1),
    ];
    let (broker, endpoints) = broker(script).await;
    let mut client = client(endpoints, retrying(3, true));
    assert_eq!(client.send().await, OpType::Ok);
    assert_eq!(
        client.send().await,
        OpType::Fail,
        "refused with nothing appended, and not retried"
    );
    assert_eq!(client.send().await, OpType::Ok);
    let broker = broker.lock().unwrap();
    let sent: Vec<_> = broker.produced.iter().map(producer_of).collect();
    assert_eq!(sent, [Some((1, 0, 0)), Some((1, 0, 1)), Some((2, 0, 0))]);
}

#[tokio::test]
async fn an_unknown_outcome_ends_the_producer_id_and_a_later_refusal_is_unknown_too() {
    let script = vec![
        Reply::Drop,
        Reply::Drop,
        Reply::Drop,
        Reply::Error(409, "INVALID_PRODUCER_EPOCH"),
        Reply::Ok(3),
    ];
    let (broker, endpoints) = broker(script).await;
    let mut client = client(endpoints, retrying(1, true));
    // Both attempts' answers lost: unknown, and its sequence unresolved.
    assert_eq!(client.send().await, OpType::Info);
    // A lost answer, then a refusal: the first attempt may have been appended.
    assert_eq!(client.send().await, OpType::Info);
    assert_eq!(client.send().await, OpType::Ok);
    let broker = broker.lock().unwrap();
    let sent: Vec<_> = broker.produced.iter().map(producer_of).collect();
    assert_eq!(
        sent,
        [
            Some((1, 0, 0)),
            Some((1, 0, 0)),
            Some((2, 0, 0)),
            Some((2, 0, 0)),
            Some((3, 0, 0)),
        ]
    );
    let history = client.history();
    assert_eq!(
        history[3].2.as_deref(),
        Some("INVALID_PRODUCER_EPOCH"),
        "{history:?}"
    );
}

#[tokio::test]
async fn a_stopping_run_makes_no_further_attempt() {
    let (broker, endpoints) = broker(vec![
        Reply::Error(421, "NOT_LEADER_OR_FOLLOWER"),
        Reply::Ok(0),
    ])
    .await;
    let mut client = client(endpoints, retrying(3, false));
    client.ctx.stop_retrying();
    assert_eq!(client.send().await, OpType::Fail);
    assert_eq!(broker.lock().unwrap().produced.len(), 1);
}

#[tokio::test]
async fn a_send_with_acks_1_goes_without_idempotence() {
    let (broker, endpoints) = broker(vec![Reply::Ok(0)]).await;
    let mut client = client(endpoints, retrying(3, true));
    let sent = send_one(&client.ctx, &mut client.process, "t", 0, Acks::One).await;
    assert_eq!(sent.unwrap(), Some(OpType::Ok));
    let broker = broker.lock().unwrap();
    assert_eq!(producer_of(&broker.produced[0]), None);
    assert_eq!(broker.producer_ids, 0);
}
