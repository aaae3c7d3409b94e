//! Kafka-aware link proxies in front of the real `faultline-node`, in the case they exist for:
//! brokers that advertise their OWN Kafka addresses (no `--kafka-advertise`), as a third-party
//! Kafka-compatible broker does. Metadata asked through a link names only proxy addresses (and
//! asked directly, the brokers' own); a client that follows it produces and fetches through the
//! proxies; a delay holds the rewritten answers; cutting the link times the client out, so the
//! proxy really is in the path; kcat, when installed, lists the proxies as the brokers. Unit
//! tests of the framing are in `harness/src/cluster/proxy/kafka/tests.rs`.
//! Message faults on a link in front of the real node: a dropped Produce response closes the
//! client's connection after the responses before it while the broker keeps the record, a
//! delayed one arrives late, a replaced one carries the new error code.
//! `kafka_proxy_round_trip_figures` (ignored: run it with `--ignored --nocapture`) measures what
//! the Kafka-aware proxy adds per round trip.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use faultline::proxy::kafka::faults::{ResponseAction, ResponseFault};
use faultline::proxy::kafka::AddressMap;
use faultline::proxy::{Delay, Direction, Link};
use faultline_checker::history::Acks;
use faultline_workloads::client::{ClientError, CreateTopic, FetchRequest};
use faultline_workloads::{KafkaClient, NodeClient};
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::node_bin;

const BROKERS: u32 = 3;
const TOPIC: &str = "kproxy";
const SETUP_DEADLINE: Duration = Duration::from_secs(30);
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(50);

/// A controller and brokers with Kafka listeners that advertise themselves. Every child is
/// killed by pid on drop, and has PR_SET_PDEATHSIG (faultline-launch's `harden`).
struct Nodes {
    dir: tempfile::TempDir,
    controller: SocketAddr,
    /// Each broker's own Kafka listener, which it advertises.
    kafka: BTreeMap<u32, SocketAddr>,
    children: Vec<Child>,
}

impl Nodes {
    fn start() -> Nodes {
        let dir = tempfile::tempdir().unwrap();
        let ports = faultline_launch::free_ports(1 + 2 * BROKERS as usize).unwrap();
        let controller = ports[0];
        let http: BTreeMap<u32, SocketAddr> =
            (1..=BROKERS).zip(ports[1..].iter().copied()).collect();
        let kafka = (1..=BROKERS)
            .zip(ports[1 + BROKERS as usize..].iter().copied())
            .collect();
        let mut nodes = Nodes {
            dir,
            controller,
            kafka,
            children: Vec::new(),
        };
        let cluster_id = format!("kproxy-{}", controller.port());
        let data = |name: &str| nodes.dir.path().join(name).display().to_string();
        let mut commands = vec![(
            "controller".to_string(),
            vec![
                "controller".to_string(),
                "--listen".into(),
                controller.to_string(),
                "--data".into(),
                data("controller"),
                "--cluster-id".into(),
                cluster_id.clone(),
            ],
        )];
        for (&id, addr) in &http {
            let mut args = vec![
                "broker".to_string(),
                "--id".into(),
                id.to_string(),
                "--listen".into(),
                addr.to_string(),
                "--data".into(),
                data(&format!("broker-{id}")),
                "--controller".into(),
                controller.to_string(),
                "--cluster-id".into(),
                cluster_id.clone(),
                // No --kafka-advertise: the broker advertises its own listener, as a
                // third-party broker would.
                "--kafka-listen".into(),
                nodes.kafka[&id].to_string(),
            ];
            for (peer, peer_addr) in http.iter().filter(|(&p, _)| p != id) {
                args.extend(["--peer".to_string(), format!("{peer}={peer_addr}")]);
            }
            commands.push((format!("broker-{id}"), args));
        }
        for (name, args) in commands {
            let child = spawn(
                &node_bin(),
                &args,
                &nodes.dir.path().join(format!("{name}.log")),
            );
            nodes.children.push(child);
        }
        nodes
    }

    /// Every node's log, for a failure message.
    fn logs(&self) -> String {
        let mut logs = String::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                logs += &format!("--- {} (last lines)\n", path.display());
                for line in tail.into_iter().rev() {
                    logs += line;
                    logs += "\n";
                }
            }
        }
        logs
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.children {
            faultline_launch::kill_child(child);
        }
    }
}

fn spawn(bin: &Path, args: &[String], log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    let mut command = Command::new(bin);
    command.args(args).stdout(Stdio::null()).stderr(log);
    faultline_launch::harden(&mut command);
    command.spawn().expect("faultline-node starts")
}

/// Polls `attempt` until it gives a value or the deadline passes; the last error is returned.
async fn poll<T, F, Fut>(deadline: Instant, mut attempt: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    loop {
        let error = match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(error);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Every broker registered, the topic created with a leader and a full ISR.
async fn create_topic(nodes: &Nodes) -> Result<(), String> {
    let admin = NodeClient::new(CALL_TIMEOUT);
    let deadline = Instant::now() + SETUP_DEADLINE;
    poll(deadline, || async {
        let metadata = admin
            .metadata(nodes.controller)
            .await
            .map_err(|e| e.to_string())?;
        match (1..=BROKERS).all(|b| metadata.is_alive(b)) {
            true => Ok(()),
            false => Err(format!("brokers not all alive: {:?}", metadata.brokers)),
        }
    })
    .await?;
    let topic = CreateTopic {
        name: TOPIC.to_string(),
        partitions: 1,
        replication_factor: BROKERS,
        configs: serde_json::Map::new(),
    };
    poll(deadline, || async {
        admin
            .create_topic(nodes.controller, &topic)
            .await
            .map_err(|e| e.to_string())?;
        let metadata = admin
            .metadata(nodes.controller)
            .await
            .map_err(|e| e.to_string())?;
        match metadata.partition(TOPIC, 0) {
            Some(p) if p.leader.is_some() && p.isr.len() == BROKERS as usize => Ok(()),
            other => Err(format!("{TOPIC}/0 not ready: {other:?}")),
        }
    })
    .await
}

/// Polls each broker's own Kafka listener until its Metadata lists every broker at its own
/// listener and the topic with a leader (a broker learns both from the controller).
async fn brokers_advertise_themselves(nodes: &Nodes) -> Result<(), String> {
    let deadline = Instant::now() + SETUP_DEADLINE;
    for (&id, &own) in &nodes.kafka {
        poll(deadline, || async {
            let metadata = kafka_metadata(own, 8).await?;
            let leader = metadata.topics.first().and_then(|t| t.partitions.first());
            match (advertised(&metadata) == nodes.kafka, leader) {
                (true, Some(p)) if p.leader_id.0 > 0 => Ok(()),
                _ => Err(format!("broker {id} answered {metadata:?}")),
            }
        })
        .await?;
    }
    Ok(())
}

/// One Kafka Metadata call (all topics) on a fresh connection, hand-rolled with the codec.
async fn kafka_metadata(addr: SocketAddr, version: i16) -> Result<MetadataResponse, String> {
    kafka_metadata_within(addr, version, CALL_TIMEOUT).await
}

async fn kafka_metadata_within(
    addr: SocketAddr,
    version: i16,
    timeout: Duration,
) -> Result<MetadataResponse, String> {
    let correlation_id = 77;
    let mut request = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("kafka-proxy-test")))
        .encode(
            &mut request,
            ApiKey::Metadata.request_header_version(version),
        )
        .map_err(|e| e.to_string())?;
    MetadataRequest::default()
        .with_topics(None)
        .encode(&mut request, version)
        .map_err(|e| e.to_string())?;
    let call = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(&(request.len() as i32).to_be_bytes())
            .await?;
        stream.write_all(&request).await?;
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).await?;
        let mut message = vec![0u8; i32::from_be_bytes(size).clamp(0, 16 << 20) as usize];
        stream.read_exact(&mut message).await?;
        Ok::<_, std::io::Error>(Bytes::from(message))
    };
    let mut message = match tokio::time::timeout(timeout, call).await {
        Ok(Ok(message)) => message,
        Ok(Err(e)) => return Err(format!("transport: {e}")),
        Err(_) => return Err("timed out".to_string()),
    };
    let header_version = ApiKey::Metadata.response_header_version(version);
    let header = ResponseHeader::decode(&mut message, header_version).map_err(|e| e.to_string())?;
    assert_eq!(header.correlation_id, correlation_id);
    MetadataResponse::decode(&mut message, version).map_err(|e| e.to_string())
}

/// Each broker's address as a Metadata answer gives it.
fn advertised(metadata: &MetadataResponse) -> BTreeMap<u32, SocketAddr> {
    metadata
        .brokers
        .iter()
        .map(|b| {
            let addr = format!("{}:{}", b.host.as_str(), b.port);
            (b.node_id.0 as u32, addr.parse().expect("a socket address"))
        })
        .collect()
}

/// Kafka-aware links to each broker's Kafka listener, rewriting to each other's addresses.
async fn kafka_links(nodes: &Nodes) -> BTreeMap<u32, Link> {
    let addresses = Arc::new(AddressMap::new());
    let mut links = BTreeMap::new();
    for (&id, &upstream) in &nodes.kafka {
        let name = format!("client->{id} (kafka)");
        let link = Link::start_kafka(&name, upstream, u64::from(id), addresses.clone())
            .await
            .unwrap();
        addresses.insert(id as i32, link.addr());
        links.insert(id, link);
    }
    links
}

#[tokio::test]
async fn kafka_proxy_keeps_clients_of_a_self_advertising_broker_behind_the_proxies() {
    let nodes = Nodes::start();
    if let Err(e) = create_topic(&nodes).await {
        panic!("setup: {e}\n{}", nodes.logs());
    }
    let links = kafka_links(&nodes).await;
    let proxies: BTreeMap<u32, SocketAddr> = links.iter().map(|(&id, l)| (id, l.addr())).collect();
    let deadline = Instant::now() + SETUP_DEADLINE;

    // Asked directly, each broker names the brokers' own listeners: a client would leave the
    // proxies after bootstrap.
    if let Err(e) = brokers_advertise_themselves(&nodes).await {
        panic!("direct Metadata: {e}\n{}", nodes.logs());
    }

    // Through any link, every broker address is a proxy's, in an old and a newer version.
    for version in [1, 8] {
        for (&id, link) in &links {
            let metadata = kafka_metadata(link.addr(), version).await.unwrap();
            assert_eq!(
                advertised(&metadata),
                proxies,
                "Metadata v{version} through the link to broker {id}"
            );
            assert_eq!(metadata.topics.len(), 1, "{:?}", metadata.topics);
        }
    }
    let rewritten: u64 = links
        .values()
        .map(|l| l.stats().kafka_responses_rewritten.load(Ordering::Relaxed))
        .sum();
    assert_eq!(rewritten, 2 * u64::from(BROKERS));

    // Produce and fetch where Metadata points: the leader's proxy.
    let metadata = kafka_metadata(links[&1].addr(), 8).await.unwrap();
    let leader = metadata.topics[0].partitions[0].leader_id.0 as u32;
    let leader_addr = advertised(&metadata)[&leader];
    assert_eq!(leader_addr, links[&leader].addr());
    let client = KafkaClient::new(CALL_TIMEOUT);
    let sent = poll(deadline, || async {
        let answer = client.produce(leader_addr, TOPIC, 0, Acks::All, 1000, "through-the-proxy");
        answer.await.map_err(|e| e.to_string())
    })
    .await;
    let offset = match sent {
        Ok(answer) => answer.base_offset.expect("acks=all answers with an offset"),
        Err(e) => panic!("produce through the proxy: {e}\n{}", nodes.logs()),
    };
    let fetch = FetchRequest {
        topic: TOPIC,
        partition: 0,
        offset,
        max_records: 10,
        max_wait_ms: 100,
    };
    let fetched = client.fetch(leader_addr, fetch).await.unwrap();
    assert_eq!(fetched.records[0].value, "through-the-proxy");
    assert_eq!(fetched.records[0].offset, offset);

    kcat_lists_the_proxies(links[&1].addr(), &proxies).await;

    // A delay holds the rewritten responses like any other bytes.
    let hundred = Delay {
        delay_ms: 100,
        jitter_ms: 0,
    };
    let link = &links[&1];
    for (direction, at_least_ms) in [(Direction::Forward, 100), (Direction::Backward, 200)] {
        link.set_delay(direction, hundred);
        let start = Instant::now();
        let metadata = kafka_metadata_within(link.addr(), 8, Duration::from_secs(5)).await;
        let took = start.elapsed();
        assert_eq!(advertised(&metadata.unwrap()), proxies);
        assert!(
            took >= Duration::from_millis(at_least_ms),
            "{direction:?}: {took:?}"
        );
    }
    link.set_delay(Direction::Forward, Delay::NONE);
    link.set_delay(Direction::Backward, Delay::NONE);

    // Cut the leader's link: client requests through it time out, so the proxy is in the
    // path. On a connection opened before the cut the request's bytes are dropped; a new
    // connection is accepted and never carried.
    let open_client = KafkaClient::new(Duration::from_millis(500));
    let before = open_client
        .produce(leader_addr, TOPIC, 0, Acks::All, 1000, "before-the-cut")
        .await;
    assert!(before.is_ok(), "{before:?}");
    links[&leader].cut();
    let during = open_client
        .produce(leader_addr, TOPIC, 0, Acks::All, 1000, "lost")
        .await;
    assert!(
        matches!(during, Err(ClientError::Timeout)),
        "produce on an open connection across a cut: {during:?}"
    );
    assert!(links[&leader].stats().bytes_dropped.load(Ordering::Relaxed) > 0);
    let accepted = || {
        links[&leader]
            .stats()
            .connections_accepted
            .load(Ordering::Relaxed)
    };
    let accepted_before = accepted();
    let cut_client = KafkaClient::new(Duration::from_millis(500));
    let during = cut_client
        .produce(leader_addr, TOPIC, 0, Acks::All, 1000, "lost")
        .await;
    assert!(
        matches!(during, Err(ClientError::Timeout)),
        "produce on a new connection across a cut: {during:?}"
    );
    assert_eq!(
        kafka_metadata(leader_addr, 8).await.unwrap_err(),
        "timed out"
    );
    assert_eq!(
        accepted(),
        accepted_before + 2,
        "the proxy took both connections"
    );
    // The other links still carry.
    let other = if leader == 1 { 2 } else { 1 };
    kafka_metadata(links[&other].addr(), 8).await.unwrap();

    // Healed, new connections carry again.
    links[&leader].heal();
    let after = poll(Instant::now() + SETUP_DEADLINE, || async {
        let answer = cut_client.produce(leader_addr, TOPIC, 0, Acks::All, 1000, "after-heal");
        answer.await.map_err(|e| e.to_string())
    })
    .await;
    assert!(after.is_ok(), "produce after the heal: {after:?}");
    for link in links.values() {
        assert_eq!(link.stats().kafka_bad_frames.load(Ordering::Relaxed), 0);
        assert_eq!(
            link.stats()
                .kafka_responses_undecodable
                .load(Ordering::Relaxed),
            0
        );
    }
}

/// A request frame of `key` at `version` with correlation id `correlation_id` and `body`.
fn request_frame(key: ApiKey, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut request = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("message-faults-test")))
        .encode(&mut request, key.request_header_version(version))
        .unwrap();
    request.extend_from_slice(body);
    let mut frame = (request.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&request);
    frame
}

/// Every record value of the partition from `offset` up to its HW, through `addr`.
async fn values_from(client: &KafkaClient, addr: SocketAddr, offset: u64) -> Vec<String> {
    let fetch = FetchRequest {
        topic: TOPIC,
        partition: 0,
        offset,
        max_records: 100,
        max_wait_ms: 100,
    };
    let fetched = client.fetch(addr, fetch).await.unwrap();
    fetched.records.into_iter().map(|r| r.value).collect()
}

#[tokio::test]
async fn message_faults_drop_delay_and_replace_produce_responses_of_the_real_node() {
    let nodes = Nodes::start();
    if let Err(e) = create_topic(&nodes).await {
        panic!("setup: {e}\n{}", nodes.logs());
    }
    // Every broker knows the topic and its leader.
    if let Err(e) = brokers_advertise_themselves(&nodes).await {
        panic!("direct Metadata: {e}\n{}", nodes.logs());
    }
    let links = kafka_links(&nodes).await;
    let metadata = kafka_metadata(links[&1].addr(), 8).await.unwrap();
    let leader = metadata.topics[0].partitions[0].leader_id.0 as u32;
    let (link, addr) = (&links[&leader], links[&leader].addr());
    let faults = link.response_faults().expect("a Kafka-aware link");
    let client = KafkaClient::new(CALL_TIMEOUT);
    let first = poll(Instant::now() + SETUP_DEADLINE, || async {
        let answer = client.produce(addr, TOPIC, 0, Acks::All, 1000, "before");
        answer.await.map_err(|e| e.to_string())
    })
    .await;
    let first = match first {
        Ok(answer) => answer.base_offset.expect("acks=all answers with an offset"),
        Err(e) => panic!("produce through the link: {e}\n{}", nodes.logs()),
    };
    let stat = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
    let produce = ApiKey::Produce as i16;

    // Dropped: the client's request fails on a closed connection, the broker appended it, and
    // the next send (a new connection) is answered.
    faults.set(ResponseFault {
        api_key: produce,
        action: ResponseAction::Drop,
        count: Some(1),
    });
    let dropped = client
        .produce(addr, TOPIC, 0, Acks::All, 1000, "dropped")
        .await;
    assert!(
        matches!(dropped, Err(ClientError::Transport(_))),
        "a dropped response closes the connection: {dropped:?}"
    );
    let after = client
        .produce(addr, TOPIC, 0, Acks::All, 1000, "after-drop")
        .await;
    assert!(after.is_ok(), "count 1 is spent: {after:?}");
    assert_eq!(
        values_from(&client, addr, first).await,
        ["before", "dropped", "after-drop"],
        "the broker appended the write whose response was dropped"
    );
    assert_eq!(stat(&link.stats().kafka_responses_dropped), 1);

    // On a raw connection: the answer before the dropped one arrives whole, then the proxy
    // closes the connection (EOF).
    faults.set(ResponseFault {
        api_key: ApiKey::Metadata as i16,
        action: ResponseAction::Drop,
        count: Some(1),
    });
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut pipelined = request_frame(ApiKey::ApiVersions, 0, 1, b"");
    pipelined.extend(request_frame(
        ApiKey::Metadata,
        1,
        2,
        &(-1i32).to_be_bytes(),
    ));
    stream.write_all(&pipelined).await.unwrap();
    let read_all = async {
        let mut received = Vec::new();
        stream.read_to_end(&mut received).await.map(|_| received)
    };
    let received = tokio::time::timeout(Duration::from_secs(5), read_all)
        .await
        .expect("the proxy closes the connection")
        .unwrap_or_else(|e| panic!("a close, not a reset: {e}"));
    let size = i32::from_be_bytes(received[..4].try_into().unwrap()) as usize;
    assert_eq!(
        received.len(),
        4 + size,
        "the ApiVersions answer, and nothing after"
    );
    assert_eq!(&received[4..8], &1i32.to_be_bytes(), "its correlation id");
    assert_eq!(stat(&link.stats().kafka_responses_dropped), 2);

    // Delayed: the answer comes at least the delay late; the next one does not wait.
    faults.set(ResponseFault {
        api_key: produce,
        action: ResponseAction::Delay { delay_ms: 400 },
        count: Some(1),
    });
    let start = Instant::now();
    let delayed = client
        .produce(addr, TOPIC, 0, Acks::All, 1000, "delayed")
        .await;
    assert!(delayed.is_ok(), "{delayed:?}");
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(stat(&link.stats().kafka_responses_delayed), 1);
    assert!(faults.in_force().is_empty(), "count 1 is spent");

    // Replaced: the client reads NOT_LEADER_OR_FOLLOWER, though the broker appended it.
    faults.set(ResponseFault {
        api_key: produce,
        action: ResponseAction::Error { code: 6 },
        count: None,
    });
    let refused = client
        .produce(addr, TOPIC, 0, Acks::All, 1000, "said-not-leader")
        .await;
    match refused {
        Err(ClientError::Api { code, .. }) => assert_eq!(code, "NOT_LEADER_OR_FOLLOWER"),
        other => panic!("an error-response: {other:?}"),
    }
    assert!(faults.remove(produce));
    let last = client
        .produce(addr, TOPIC, 0, Acks::All, 1000, "last")
        .await;
    assert!(last.is_ok(), "{last:?}");
    assert_eq!(
        values_from(&client, addr, first).await,
        [
            "before",
            "dropped",
            "after-drop",
            "delayed",
            "said-not-leader",
            "last"
        ]
    );
    assert_eq!(stat(&link.stats().kafka_responses_replaced), 1);
    assert_eq!(stat(&link.stats().kafka_bad_frames), 0);
    assert_eq!(stat(&link.stats().kafka_responses_undecodable), 0);
}

/// `kcat -L` through a proxy lists every broker at its proxy address; SKIPPED without kcat.
async fn kcat_lists_the_proxies(bootstrap: SocketAddr, proxies: &BTreeMap<u32, SocketAddr>) {
    if Command::new("kcat").arg("-V").output().is_err() {
        eprintln!(
            "SKIPPED: kcat not installed (apt-get install kcat): `kcat -L` through a Kafka-aware \
             proxy was not checked"
        );
        return;
    }
    let mut kcat = tokio::process::Command::new("kcat");
    kcat.args(["-L", "-b", &bootstrap.to_string(), "-m", "10"])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(20), kcat.output())
        .await
        .expect("kcat -L within 20 s")
        .expect("kcat runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "kcat -L failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // "  broker 2 at 127.0.0.1:41002 (controller)"
    let listed: BTreeMap<u32, SocketAddr> = stdout
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("broker ")?;
            let (id, rest) = rest.split_once(" at ")?;
            let addr = rest.split_whitespace().next()?;
            Some((id.parse().ok()?, addr.parse().ok()?))
        })
        .collect();
    assert_eq!(&listed, proxies, "kcat -L:\n{stdout}");
    eprintln!("kcat -L through {bootstrap} listed the brokers at {listed:?}");
}

/// What the Kafka-aware proxy adds per round trip, against the byte proxy, to the same broker:
/// Metadata v8 (rewritten: the brokers advertise themselves) and Produce v8 (acks=1, one 16-byte
/// record), one connection per path, the three paths interleaved trip by trip so that load from
/// elsewhere falls on all of them alike. Figures, not assertions (printed; `--nocapture`); they
/// are quoted in docs/harness.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check: run with --ignored --nocapture"]
async fn kafka_proxy_round_trip_figures() {
    let nodes = Nodes::start();
    if let Err(e) = create_topic(&nodes).await {
        panic!("setup: {e}\n{}", nodes.logs());
    }
    if let Err(e) = brokers_advertise_themselves(&nodes).await {
        panic!("direct Metadata: {e}\n{}", nodes.logs());
    }
    let links = kafka_links(&nodes).await;
    let metadata = kafka_metadata(links[&1].addr(), 8).await.unwrap();
    let leader = metadata.topics[0].partitions[0].leader_id.0 as u32;
    let upstream = nodes.kafka[&leader];
    let byte_link = Link::start("bytes", upstream, 1).await.unwrap();
    let paths = [
        ("direct", upstream),
        ("byte proxy", byte_link.addr()),
        ("Kafka-aware proxy", links[&leader].addr()),
    ];
    // Let the leader take over before timing.
    let client = KafkaClient::new(CALL_TIMEOUT);
    let warm = poll(Instant::now() + SETUP_DEADLINE, || async {
        let answer = client.produce(upstream, TOPIC, 0, Acks::One, 1000, "warm-up");
        answer.await.map_err(|e| e.to_string())
    })
    .await;
    assert!(warm.is_ok(), "{warm:?}");

    let (warmup, trips) = (200, 3000);
    let mut callers = Vec::new();
    for (_, addr) in paths {
        callers.push(MetadataCaller::connect(addr).await);
    }
    let mut metadata_us = [(); 3].map(|_| Vec::with_capacity(trips));
    let mut produce_us = [(); 3].map(|_| Vec::with_capacity(trips));
    for trip in 0..warmup + trips {
        for (i, caller) in callers.iter_mut().enumerate() {
            let took = caller.round_trip().await;
            if trip >= warmup {
                metadata_us[i].push(took);
            }
        }
        for (i, (_, addr)) in paths.iter().enumerate() {
            let start = Instant::now();
            let answer = client.produce(*addr, TOPIC, 0, Acks::One, 1000, "0123456789abcdef");
            answer.await.unwrap();
            if trip >= warmup {
                produce_us[i].push(start.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    println!(
        "Kafka round trips to broker {leader}, {trips} per path, interleaved; p50 / p90 in µs \
         (load average {}):",
        faultline_launch::loadavg()
    );
    for (i, (name, _)) in paths.iter().enumerate() {
        let (m50, m90) = quantiles(&mut metadata_us[i]);
        let (p50, p90) = quantiles(&mut produce_us[i]);
        println!("  {name:<18} Metadata {m50:>6.1} / {m90:>6.1}   Produce {p50:>6.1} / {p90:>6.1}");
    }
    let median = |times: &mut Vec<f64>| quantiles(times).0;
    println!(
        "  Kafka-aware minus byte proxy, p50: Metadata {:+.1} µs, Produce {:+.1} µs",
        median(&mut metadata_us[2]) - median(&mut metadata_us[1]),
        median(&mut produce_us[2]) - median(&mut produce_us[1]),
    );
}

/// Sends the same Metadata v8 request (all topics) again and again on one connection.
struct MetadataCaller {
    stream: TcpStream,
    frame: Vec<u8>,
}

impl MetadataCaller {
    async fn connect(addr: SocketAddr) -> MetadataCaller {
        let version = 8;
        let mut request = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(version)
            .with_correlation_id(1)
            .encode(
                &mut request,
                ApiKey::Metadata.request_header_version(version),
            )
            .unwrap();
        MetadataRequest::default()
            .with_topics(None)
            .encode(&mut request, version)
            .unwrap();
        let mut frame = (request.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&request);
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        MetadataCaller { stream, frame }
    }

    /// One round trip, in µs.
    async fn round_trip(&mut self) -> f64 {
        let start = Instant::now();
        self.stream.write_all(&self.frame).await.unwrap();
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).await.unwrap();
        let mut message = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut message).await.unwrap();
        start.elapsed().as_secs_f64() * 1e6
    }
}

/// The median and p90 of `times`.
fn quantiles(times: &mut [f64]) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9))
}

/// Whether `python3` can import `module`.
fn python_module_installed(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs the node crate's Python client driver (`node/tests/clients/python_client.py`) in
/// `mode`, producing `n` values `PREFIX-i` to partition 0 through `bootstrap` (every proxy, as a
/// client lists its brokers: one may be killed), then reading them back; its own waits
/// are bounded by 40 s, and it is killed after 90. The values it saw acknowledged.
async fn confluent_produce(mode: &str, bootstrap: String, prefix: &str, n: usize) -> Vec<String> {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../node/tests/clients/python_client.py");
    let mut python = tokio::process::Command::new("python3");
    python
        .arg(script)
        .args([mode, &bootstrap, TOPIC, prefix, &n.to_string(), "40"])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(90), python.output())
        .await
        .expect("the Python client ends within 90 s")
        .expect("python3 runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "the client failed: {stderr}");
    eprint!("{stderr}");
    let answer: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("no JSON ({e}): {stdout}\n{stderr}"));
    serde_json::from_value(answer["acked"].clone()).unwrap()
}

/// Every link's address, comma-separated: a client's `bootstrap.servers`.
fn bootstrap(links: &BTreeMap<u32, Link>) -> String {
    let addrs: Vec<String> = links.values().map(|l| l.addr().to_string()).collect();
    addrs.join(",")
}

/// Every record value of the partition up to its HW, read from `addr` (a leader).
async fn whole_partition(addr: SocketAddr) -> Vec<String> {
    let client = KafkaClient::new(CALL_TIMEOUT);
    let mut values = Vec::new();
    let mut offset = 0;
    loop {
        let fetch = FetchRequest {
            topic: TOPIC,
            partition: 0,
            offset,
            max_records: 500,
            max_wait_ms: 0,
        };
        let fetched = client.fetch(addr, fetch).await.unwrap();
        let Some(last) = fetched.records.last() else {
            return values;
        };
        offset = last.offset + 1;
        values.extend(fetched.records.into_iter().map(|r| r.value));
    }
}

/// The values `log` holds more than once.
fn written_twice(log: &[String]) -> Vec<&String> {
    let mut seen = std::collections::HashSet::new();
    log.iter().filter(|v| !seen.insert(*v)).collect()
}

/// The partition's leader as broker `asked`'s own listener reports it, once it is not `not`.
async fn leader_other_than(nodes: &Nodes, asked: u32, not: Option<u32>) -> u32 {
    let found = poll(Instant::now() + SETUP_DEADLINE, || async {
        let metadata = kafka_metadata(nodes.kafka[&asked], 8).await?;
        let leader = metadata.topics.first().and_then(|t| t.partitions.first());
        match leader.map(|p| p.leader_id.0) {
            Some(id) if id > 0 && Some(id as u32) != not => Ok(id as u32),
            other => Err(format!("leader {other:?}")),
        }
    })
    .await;
    found.unwrap_or_else(|e| panic!("no leader: {e}\n{}", nodes.logs()))
}

/// A topic on three brokers behind Kafka-aware links, whose leader's link drops its next
/// `drops` Produce responses (after the broker appended the batch).
async fn cluster_dropping_produce_responses(drops: u32) -> (Nodes, BTreeMap<u32, Link>, u32) {
    let nodes = Nodes::start();
    if let Err(e) = create_topic(&nodes).await {
        panic!("setup: {e}\n{}", nodes.logs());
    }
    if let Err(e) = brokers_advertise_themselves(&nodes).await {
        panic!("direct Metadata: {e}\n{}", nodes.logs());
    }
    let links = kafka_links(&nodes).await;
    let leader = leader_other_than(&nodes, 1, None).await;
    let faults = links[&leader]
        .response_faults()
        .expect("a Kafka-aware link");
    faults.set(ResponseFault {
        api_key: ApiKey::Produce as i16,
        action: ResponseAction::Drop,
        count: Some(drops),
    });
    (nodes, links, leader)
}

/// The fault bites a real client: confluent-kafka (librdkafka) with `enable.idempotence=false`
/// and acks=all, through the Kafka-aware proxies, while the leader's link drops three
/// ProduceResponses after the append. librdkafka retries each lost send blindly, and the
/// leader appends it again: values are in the log twice. (The idempotent run below, under the
/// same faults and a leader kill, has none.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_without_idempotence_writes_values_twice_when_produce_responses_are_dropped(
) {
    if !python_module_installed("confluent_kafka") {
        eprintln!("SKIPPED: confluent-kafka not installed (pip install confluent-kafka)");
        return;
    }
    let (nodes, links, leader) = cluster_dropping_produce_responses(3).await;
    let acked = confluent_produce("confluent-retrying", bootstrap(&links), "blind", 600).await;
    let dropped = links[&leader]
        .stats()
        .kafka_responses_dropped
        .load(Ordering::Relaxed);
    assert_eq!(dropped, 3, "the link dropped three Produce responses");
    let log = whole_partition(nodes.kafka[&leader]).await;
    let twice = written_twice(&log);
    eprintln!(
        "confluent-kafka, enable.idempotence=false: {} acknowledged, {} in the log, {} written \
         twice after {dropped} dropped responses",
        acked.len(),
        log.len(),
        twice.len()
    );
    assert!(!twice.is_empty(), "no value written twice: {log:?}");
    let missing: Vec<&String> = acked.iter().filter(|v| !log.contains(v)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged, not in the log: {missing:?}"
    );
}

/// confluent-kafka (librdkafka) with `enable.idempotence=true` under the faults of
/// `retry-duplicates`: the leader's link drops three ProduceResponses after the append, then
/// the leader is SIGKILLed mid-stream. librdkafka resends with the same producer id and
/// sequences; the leader (and after the kill the new one, holding the producer state that came
/// with the batches) answers a resent batch with its original offsets. Every acknowledged value
/// is in the log once, none is missing, all in the order sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_idempotent_writes_each_value_once_through_dropped_responses_and_a_leader_kill(
) {
    if !python_module_installed("confluent_kafka") {
        eprintln!("SKIPPED: confluent-kafka not installed (pip install confluent-kafka)");
        return;
    }
    let (mut nodes, links, leader) = cluster_dropping_produce_responses(3).await;
    let start = Instant::now();
    let client = tokio::spawn(confluent_produce(
        "confluent-idempotent",
        bootstrap(&links),
        "idem",
        1500,
    ));
    let leader_addr = nodes.kafka[&leader];
    let grown = poll(Instant::now() + SETUP_DEADLINE, || async {
        let metadata = kafka_metadata(leader_addr, 8).await?;
        let dropped = links[&leader]
            .stats()
            .kafka_responses_dropped
            .load(Ordering::Relaxed);
        let log = whole_partition(leader_addr).await.len();
        match (dropped, log) {
            (3, n) if n >= 300 => Ok(metadata),
            other => Err(format!("dropped and records at the leader: {other:?}")),
        }
    })
    .await;
    if let Err(e) = grown {
        panic!("the client did not get going: {e}\n{}", nodes.logs());
    }
    // children[0] is the controller, then brokers 1..=BROKERS.
    faultline_launch::kill_child(&mut nodes.children[leader as usize]);
    let killed = start.elapsed();
    let acked = client.await.unwrap();
    eprintln!(
        "leader killed after {killed:?}, the client done after {:?}",
        start.elapsed()
    );
    let asked = (1..=BROKERS).find(|&b| b != leader).unwrap();
    let new_leader = leader_other_than(&nodes, asked, Some(leader)).await;
    // The new leader's HW passes every acknowledged value once a follower fetched again.
    let new_leader_addr = nodes.kafka[&new_leader];
    let caught_up = poll(Instant::now() + SETUP_DEADLINE, || async {
        let log = whole_partition(new_leader_addr).await;
        let missing = acked.iter().filter(|v| !log.contains(v)).count();
        match missing {
            0 => Ok(()),
            n => Err(format!("{n} acknowledged values not yet below the HW")),
        }
    })
    .await;
    if let Err(e) = caught_up {
        eprintln!("{e}");
    }
    let log = whole_partition(new_leader_addr).await;
    eprintln!(
        "confluent-kafka, enable.idempotence=true: {} acknowledged, {} in the log at the new \
         leader {new_leader} after 3 dropped responses and the kill of leader {leader}",
        acked.len(),
        log.len()
    );
    assert!(acked.len() > 300, "acknowledged only {}", acked.len());
    // The resends reached the leader and were answered from its producer state.
    let events = nodes
        .dir
        .path()
        .join(format!("broker-{leader}/events.jsonl"));
    let events = std::fs::read_to_string(&events).unwrap_or_default();
    let deduplicated = events.matches("\"duplicate_batch\"").count();
    eprintln!("leader {leader} answered {deduplicated} resent batches with their original offsets");
    assert!(
        deduplicated > 0,
        "no duplicate_batch event at leader {leader}"
    );
    let twice = written_twice(&log);
    assert!(twice.is_empty(), "written twice: {twice:?}");
    let missing: Vec<&String> = acked.iter().filter(|v| !log.contains(v)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged, not in the log: {missing:?}"
    );
    let index = |v: &String| v.trim_start_matches("idem-").parse::<u32>().unwrap();
    let order: Vec<u32> = log.iter().map(index).collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "values out of the order they were sent: {order:?}"
    );
}
