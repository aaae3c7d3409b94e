//! The framer and the rewrite on their own, with frames encoded by the `kafka-protocol` crate:
//! every Metadata, FindCoordinator and DescribeCluster version's broker addresses are rewritten and nothing else
//! changes, frames split anywhere give the same bytes, and bad frames close the connection
//! without a panic or an unbounded allocation. Real sockets are `harness/tests/it/kafka_proxy.rs`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeClusterResponse, FindCoordinatorResponse, MetadataResponse,
    ProduceRequest, RequestHeader, ResponseHeader, TopicName, TransactionalId,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::cluster::proxy::LinkStats;

const PROXY_1: &str = "127.0.0.1:41001";
const PROXY_2: &str = "127.0.0.1:41002";

/// A connection's two framers, with proxies for brokers 1 and 2 (not 3).
fn connection() -> ([Framer; 2], Arc<LinkStats>) {
    let addresses = Arc::new(AddressMap::new());
    addresses.insert(1, PROXY_1.parse().unwrap());
    addresses.insert(2, PROXY_2.parse().unwrap());
    let stats = Arc::new(LinkStats::default());
    let framers = Framer::pair(addresses, stats.clone(), Arc::from("test (kafka)"));
    (framers, stats)
}

fn framed(message: &[u8]) -> Vec<u8> {
    let mut frame = (message.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(message);
    frame
}

/// A request frame: the crate's header for `key` at `version`, then `body` as given.
fn request(key: ApiKey, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("test-client")))
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    buf.extend_from_slice(body);
    framed(&buf)
}

fn produce_request(
    version: i16,
    correlation_id: i32,
    acks: i16,
    transactional_id: &str,
) -> Vec<u8> {
    let partition = PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(Bytes::from_static(b"not really a batch")));
    let mut body = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(1000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_data(vec![partition])]);
    if version >= 3 {
        let id = TransactionalId(str_bytes(transactional_id));
        body = body.with_transactional_id(Some(id));
    }
    let mut encoded = BytesMut::new();
    body.encode(&mut encoded, version).unwrap();
    request(ApiKey::Produce, version, correlation_id, &encoded)
}

/// A response frame: the crate's header for `key` at `version`, then `body` encoded by it.
fn response<T: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &T) -> Vec<u8> {
    let mut buf = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, key.response_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    framed(&buf)
}

/// Decodes one response frame; the size must cover exactly the rest.
fn decode<T: Decodable>(key: ApiKey, version: i16, frame: &[u8]) -> (i32, T) {
    let size = i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(size, frame.len() - 4, "the size prefix covers the message");
    let mut buf = Bytes::copy_from_slice(&frame[4..]);
    let header = ResponseHeader::decode(&mut buf, key.response_header_version(version)).unwrap();
    let body = T::decode(&mut buf, version).unwrap();
    assert!(buf.is_empty(), "{} bytes left after the body", buf.len());
    (header.correlation_id, body)
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A Metadata response with every field its version has set to something other than default.
fn metadata(version: i16) -> MetadataResponse {
    let broker = |id: i32| {
        let broker = MetadataResponseBroker::default()
            .with_node_id(BrokerId(id))
            .with_host(str_bytes(&format!("kafka-{id}.example.com")))
            .with_port(9092 + id);
        match version >= 1 {
            true => broker.with_rack(Some(str_bytes(&format!("rack-{id}")))),
            false => broker,
        }
    };
    let mut partition = MetadataResponsePartition::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(2))
        .with_replica_nodes(vec![BrokerId(1), BrokerId(2), BrokerId(3)])
        .with_isr_nodes(vec![BrokerId(2), BrokerId(3)]);
    if version >= 7 {
        partition = partition.with_leader_epoch(7);
    }
    if version >= 5 {
        partition = partition.with_offline_replicas(vec![BrokerId(1)]);
    }
    let mut topic = MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes("orders"))))
        .with_partitions(vec![partition.clone(), partition.with_partition_index(1)]);
    if version >= 1 {
        topic = topic.with_is_internal(true);
    }
    if version >= 8 {
        topic = topic.with_topic_authorized_operations(0x0f);
    }
    let mut response = MetadataResponse::default()
        .with_brokers(vec![broker(1), broker(2), broker(3)])
        .with_topics(vec![
            topic,
            MetadataResponseTopic::default()
                .with_error_code(3)
                .with_name(Some(TopicName(str_bytes("missing")))),
        ]);
    if version >= 1 {
        response = response.with_controller_id(BrokerId(-1));
    }
    if version >= 2 {
        response = response.with_cluster_id(Some(str_bytes("cluster-a")));
    }
    if version >= 3 {
        response = response.with_throttle_time_ms(5);
    }
    if (8..=10).contains(&version) {
        response = response.with_cluster_authorized_operations(0x1f);
    }
    if version >= 9 {
        // An unknown tagged field must survive the rewrite too.
        response = response.with_unknown_tagged_field(99, Bytes::from_static(b"future"));
    }
    response
}

/// Passes one request and its response through a fresh connection's framers.
fn exchange(request_frame: &[u8], response_frame: &[u8]) -> (Vec<u8>, Arc<LinkStats>) {
    let ([mut requests, mut responses], stats) = connection();
    let passed = requests.feed(request_frame).unwrap();
    assert_eq!(passed, request_frame, "a request passes byte for byte");
    let answer = responses.feed(response_frame).unwrap();
    (answer, stats)
}

#[test]
fn metadata_brokers_point_at_the_proxies_in_every_version() {
    for version in [0, 1, 2, 5, 7, 8, 9, 10, 11, 12, 13] {
        let original = metadata(version);
        let to_broker = request(ApiKey::Metadata, version, 41, b"\x00\x00\x00\x00");
        let from_broker = response(ApiKey::Metadata, version, 41, &original);
        let (answer, stats) = exchange(&to_broker, &from_broker);

        let (correlation_id, mut got) =
            decode::<MetadataResponse>(ApiKey::Metadata, version, &answer);
        assert_eq!(correlation_id, 41, "v{version}");
        let addresses: Vec<String> = got
            .brokers
            .iter()
            .map(|b| format!("{}:{}", b.host.as_str(), b.port))
            .collect();
        assert_eq!(
            addresses,
            [PROXY_1, PROXY_2, "kafka-3.example.com:9095"],
            "v{version}: brokers 1 and 2 have proxies, 3 has none"
        );
        // Put the advertised addresses back: everything else is as the broker sent it.
        for (broker, before) in got.brokers.iter_mut().zip(&original.brokers) {
            broker.host = before.host.clone();
            broker.port = before.port;
        }
        assert_eq!(got, original, "v{version}");
        assert_eq!(stats.kafka_responses_rewritten.load(Ordering::Relaxed), 1);
        assert_eq!(stats.kafka_responses_undecodable.load(Ordering::Relaxed), 0);
    }
}

#[test]
fn find_coordinator_points_at_the_proxy_in_the_old_and_the_array_form() {
    for version in 0..=3 {
        let mut original = FindCoordinatorResponse::default()
            .with_node_id(BrokerId(2))
            .with_host(str_bytes("coordinator.example.com"))
            .with_port(9093);
        if version >= 1 {
            original = original
                .with_throttle_time_ms(3)
                .with_error_message(Some(str_bytes("none")));
        }
        let to_broker = request(ApiKey::FindCoordinator, version, 7, b"\x00\x01g");
        let from_broker = response(ApiKey::FindCoordinator, version, 7, &original);
        let (answer, _) = exchange(&to_broker, &from_broker);
        let (_, got) = decode::<FindCoordinatorResponse>(ApiKey::FindCoordinator, version, &answer);
        assert_eq!(
            (got.host.as_str(), got.port),
            ("127.0.0.1", 41002),
            "v{version}"
        );
        let restored = got
            .with_host(original.host.clone())
            .with_port(original.port);
        assert_eq!(restored, original, "v{version}");
    }
    for version in 4..=6 {
        let coordinator = |key: &str, id: i32| {
            Coordinator::default()
                .with_key(str_bytes(key))
                .with_node_id(BrokerId(id))
                .with_host(str_bytes(&format!("kafka-{id}.example.com")))
                .with_port(9092 + id)
                .with_error_message(None)
        };
        let original = FindCoordinatorResponse::default()
            .with_throttle_time_ms(3)
            .with_coordinators(vec![coordinator("group-a", 1), coordinator("group-b", 3)]);
        let to_broker = request(ApiKey::FindCoordinator, version, 8, b"\x00\x02\x02g\x00");
        let from_broker = response(ApiKey::FindCoordinator, version, 8, &original);
        let (answer, _) = exchange(&to_broker, &from_broker);
        let (_, mut got) =
            decode::<FindCoordinatorResponse>(ApiKey::FindCoordinator, version, &answer);
        let addresses: Vec<(&str, i32)> = got
            .coordinators
            .iter()
            .map(|c| (c.host.as_str(), c.port))
            .collect();
        assert_eq!(
            addresses,
            [("127.0.0.1", 41001), ("kafka-3.example.com", 9095)],
            "v{version}"
        );
        got.coordinators[0].host = original.coordinators[0].host.clone();
        got.coordinators[0].port = original.coordinators[0].port;
        assert_eq!(got, original, "v{version}");
    }
}

#[test]
fn describe_cluster_brokers_point_at_the_proxies_in_every_version() {
    for version in 0..=2 {
        let broker = |id: i32| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(id))
                .with_host(str_bytes(&format!("kafka-{id}.example.com")))
                .with_port(9092 + id)
                .with_rack(Some(str_bytes("rack-a")))
                .with_is_fenced(version >= 2 && id == 2)
        };
        let mut original = DescribeClusterResponse::default()
            .with_throttle_time_ms(1)
            .with_cluster_id(str_bytes("c"))
            .with_controller_id(BrokerId(1))
            .with_brokers(vec![broker(1), broker(2), broker(3)]);
        if version >= 1 {
            original = original.with_endpoint_type(1);
        }
        let to_broker = request(ApiKey::DescribeCluster, version, 9, b"\x00\x00");
        let from_broker = response(ApiKey::DescribeCluster, version, 9, &original);
        let (answer, stats) = exchange(&to_broker, &from_broker);
        let (_, mut got) =
            decode::<DescribeClusterResponse>(ApiKey::DescribeCluster, version, &answer);
        let addresses: Vec<String> = got
            .brokers
            .iter()
            .map(|b| format!("{}:{}", b.host.as_str(), b.port))
            .collect();
        assert_eq!(
            addresses,
            [PROXY_1, PROXY_2, "kafka-3.example.com:9095"],
            "v{version}"
        );
        for (broker, before) in got.brokers.iter_mut().zip(&original.brokers) {
            broker.host = before.host.clone();
            broker.port = before.port;
        }
        assert_eq!(got, original, "v{version}");
        assert_eq!(stats.kafka_responses_rewritten.load(Ordering::Relaxed), 1);
    }
}

/// Every Tansu 0.6.0 broker calls itself node 111: the advertised port, not the id, says which
/// link leads to it.
#[test]
fn brokers_sharing_one_node_id_are_told_apart_by_their_advertised_port() {
    let addresses = AddressMap::new();
    addresses.insert(111, PROXY_1.parse().unwrap());
    addresses.insert_port(19092, PROXY_1.parse().unwrap());
    addresses.insert_port(19093, PROXY_2.parse().unwrap());
    let tansu = |port: i32| {
        MetadataResponse::default().with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(111))
            .with_host(str_bytes("127.0.0.1"))
            .with_port(port)])
    };
    for (port, proxy) in [(19092, 41001), (19093, 41002), (19094, 41001)] {
        let message = response(ApiKey::Metadata, 7, 3, &tansu(port));
        let request = Request {
            api_key: ApiKey::Metadata as i16,
            api_version: 7,
            correlation_id: 3,
        };
        let Rewrite::Changed(new) =
            rewrite_response(request, &Bytes::from(message[4..].to_vec()), &addresses)
        else {
            panic!("port {port}: the address was not rewritten");
        };
        let (_, got) = decode::<MetadataResponse>(ApiKey::Metadata, 7, &framed(&new));
        assert_eq!(got.brokers[0].port, proxy, "advertised port {port}");
    }
}

#[test]
fn a_broker_that_already_advertises_the_proxy_passes_byte_for_byte() {
    let mut original = metadata(8);
    original.brokers[0].host = str_bytes("127.0.0.1");
    original.brokers[0].port = 41001;
    original.brokers[1].host = str_bytes("127.0.0.1");
    original.brokers[1].port = 41002;
    let to_broker = request(ApiKey::Metadata, 8, 1, b"\x00\x00\x00\x00");
    let from_broker = response(ApiKey::Metadata, 8, 1, &original);
    let (answer, stats) = exchange(&to_broker, &from_broker);
    assert_eq!(answer, from_broker);
    assert_eq!(stats.kafka_responses_rewritten.load(Ordering::Relaxed), 0);
    assert_eq!(stats.kafka_responses_undecodable.load(Ordering::Relaxed), 0);
}

/// Requests of every kind on one connection, and their responses (acks=0 gets none).
fn conversation() -> (Vec<u8>, Vec<u8>) {
    let mut requests = Vec::new();
    let mut responses = Vec::new();
    requests.extend(request(ApiKey::ApiVersions, 3, 1, b"\x00\x00\x00"));
    responses.extend(framed(
        b"\x00\x00\x00\x01 an ApiVersions answer, passed as is",
    ));
    requests.extend(request(ApiKey::Metadata, 9, 2, b"\x01\x01\x00\x00\x00"));
    responses.extend(response(ApiKey::Metadata, 9, 2, &metadata(9)));
    requests.extend(produce_request(8, 3, -1, "tx"));
    responses.extend(framed(b"\x00\x00\x00\x03 a Produce answer"));
    // acks=0 (flexible v9, with a transactional id): Kafka sends no response.
    requests.extend(produce_request(9, 4, 0, "tx"));
    // v2 (older than the codec's Produce): acks is the body's first field.
    requests.extend(request(
        ApiKey::Produce,
        2,
        5,
        b"\x00\x01\x00\x00\x03\xe8\x00\x00\x00\x00",
    ));
    responses.extend(framed(b"\x00\x00\x00\x05 an old Produce answer"));
    requests.extend(request(ApiKey::Fetch, 11, 6, &[7u8; 40_000]));
    let mut fetch_answer = 6i32.to_be_bytes().to_vec();
    fetch_answer.extend((0..50_000u32).map(|i| i as u8));
    responses.extend(framed(&fetch_answer));
    requests.extend(request(ApiKey::Metadata, 1, 7, b"\x00\x00\x00\x00"));
    responses.extend(response(ApiKey::Metadata, 1, 7, &metadata(1)));
    (requests, responses)
}

/// Feeds `input` to `framer` in pieces of the given sizes (cycled), returning all it passed.
fn feed_in_pieces(framer: &mut Framer, input: &[u8], pieces: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    for &piece in pieces.iter().cycle() {
        if at >= input.len() {
            break;
        }
        let end = (at + piece).min(input.len());
        out.extend(framer.feed(&input[at..end]).unwrap());
        at = end;
    }
    out
}

#[test]
fn frames_split_anywhere_give_the_same_bytes() {
    let (requests, responses) = conversation();
    let ([mut to_broker, mut from_broker], _) = connection();
    assert_eq!(to_broker.feed(&requests).unwrap(), requests);
    let whole = from_broker.feed(&responses).unwrap();
    assert_ne!(whole, responses, "the Metadata responses were rewritten");

    let mut rng = StdRng::seed_from_u64(22);
    let mut splits: Vec<Vec<usize>> = vec![vec![1], vec![3], vec![4], vec![5], vec![16 * 1024]];
    splits.extend((0..20).map(|_| (0..50).map(|_| rng.gen_range(1..3000)).collect()));
    for pieces in splits {
        let ([mut to_broker, mut from_broker], stats) = connection();
        assert_eq!(feed_in_pieces(&mut to_broker, &requests, &pieces), requests);
        let answer = feed_in_pieces(&mut from_broker, &responses, &pieces);
        assert!(
            answer == whole,
            "split in pieces of {:?}…",
            &pieces[..3.min(pieces.len())]
        );
        assert_eq!(stats.kafka_responses_rewritten.load(Ordering::Relaxed), 2);
    }
}

#[test]
fn a_passed_response_is_streamed_not_held() {
    let ([mut to_broker, mut from_broker], _) = connection();
    to_broker.feed(&request(ApiKey::Fetch, 11, 9, b"")).unwrap();
    let mut fetch_answer = framed(&9i32.to_be_bytes());
    fetch_answer[..4].copy_from_slice(&(4 + 1_000_000i32).to_be_bytes());
    // The head (size and correlation id) passes at once, then every byte as it arrives.
    assert_eq!(from_broker.feed(&fetch_answer).unwrap(), fetch_answer);
    assert_eq!(from_broker.feed(&[1; 1000]).unwrap(), [1; 1000]);
}

#[test]
fn a_frame_over_the_limit_or_negative_closes_the_connection() {
    let ([mut to_broker, mut from_broker], stats) = connection();
    let over = (MAX_FRAME_BYTES as i32 + 1).to_be_bytes();
    assert_eq!(
        to_broker.feed(&over),
        Err(FrameError::Size(MAX_FRAME_BYTES as i32 + 1))
    );
    assert_eq!(
        from_broker.feed(&(-1i32).to_be_bytes()),
        Err(FrameError::Size(-1))
    );
    let ([mut to_broker, _], _) = connection();
    assert_eq!(
        to_broker.feed(&framed(b"\x00\x03\x00")),
        Err(FrameError::Short {
            size: 3,
            side: "request"
        })
    );
    assert_eq!(stats.kafka_bad_frames.load(Ordering::Relaxed), 2);
}

#[test]
fn a_response_to_no_request_or_the_wrong_one_closes_the_connection() {
    let ([_, mut from_broker], _) = connection();
    assert_eq!(
        from_broker.feed(&framed(&5i32.to_be_bytes())),
        Err(FrameError::Unsolicited(5))
    );
    let ([mut to_broker, mut from_broker], _) = connection();
    to_broker
        .feed(&request(ApiKey::Metadata, 1, 10, b""))
        .unwrap();
    assert_eq!(
        from_broker.feed(&framed(&11i32.to_be_bytes())),
        Err(FrameError::Correlation {
            got: 11,
            expected: 10
        })
    );
}

#[test]
fn a_produce_whose_acks_cannot_be_read_closes_the_connection() {
    let ([mut to_broker, _], _) = connection();
    // A v8 header, then a transactional id claiming 300 bytes where 2 follow.
    let frame = request(ApiKey::Produce, 8, 1, b"\x01\x2cab");
    assert!(matches!(
        to_broker.feed(&frame),
        Err(FrameError::Produce(_))
    ));
}

#[test]
fn a_produce_with_a_long_transactional_id_is_read_up_to_its_acks() {
    for (version, acks) in [(8, 0), (9, 0), (8, 1), (9, -1)] {
        let ([mut to_broker, mut from_broker], _) = connection();
        let long_id = "x".repeat(5000);
        let produce = produce_request(version, 1, acks, &long_id);
        let metadata_request = request(ApiKey::Metadata, 1, 2, b"");
        let mut requests = produce.clone();
        requests.extend(&metadata_request);
        assert_eq!(feed_in_pieces(&mut to_broker, &requests, &[700]), requests);
        // An acks=0 produce is never answered: the next response answers the Metadata.
        let answered = if acks == 0 { 2 } else { 1 };
        let answer = framed(&i32::to_be_bytes(answered));
        assert_eq!(
            from_broker.feed(&answer),
            Ok(answer),
            "v{version} acks={acks}"
        );
    }
}

#[test]
fn requests_awaiting_responses_are_bounded() {
    let ([mut to_broker, _], _) = connection();
    let one = request(ApiKey::Metadata, 1, 1, b"");
    for _ in 0..MAX_PENDING_REQUESTS {
        to_broker.feed(&one).unwrap();
    }
    assert_eq!(to_broker.feed(&one), Err(FrameError::TooManyPending));
}

#[test]
fn a_metadata_body_claiming_two_billion_topics_passes_unchanged() {
    // v1: brokers [], controller_id, then a topic count no body could hold. Decoding it
    // blindly would ask for hundreds of GiB and abort the process.
    let mut message = 12i32.to_be_bytes().to_vec();
    message.extend(0i32.to_be_bytes());
    message.extend(1i32.to_be_bytes());
    message.extend(i32::MAX.to_be_bytes());
    let from_broker = framed(&message);
    let (answer, stats) = exchange(&request(ApiKey::Metadata, 1, 12, b""), &from_broker);
    assert_eq!(answer, from_broker);
    assert_eq!(stats.kafka_responses_undecodable.load(Ordering::Relaxed), 1);
}

#[test]
fn a_version_newer_than_the_codec_passes_unchanged_and_is_counted() {
    let body = metadata(13);
    let from_broker = response(ApiKey::Metadata, 13, 21, &body);
    let (answer, stats) = exchange(&request(ApiKey::Metadata, 14, 21, b""), &from_broker);
    assert_eq!(answer, from_broker);
    assert_eq!(stats.kafka_responses_undecodable.load(Ordering::Relaxed), 1);
    assert_eq!(stats.kafka_responses_rewritten.load(Ordering::Relaxed), 0);
}

#[test]
fn a_body_with_bytes_after_the_message_passes_unchanged() {
    let mut message = response(ApiKey::Metadata, 4, 30, &metadata(4))[4..].to_vec();
    message.extend(b"extra");
    let from_broker = framed(&message);
    let (answer, stats) = exchange(&request(ApiKey::Metadata, 4, 30, b""), &from_broker);
    assert_eq!(answer, from_broker);
    assert_eq!(stats.kafka_responses_undecodable.load(Ordering::Relaxed), 1);
}

#[test]
fn the_rewrite_alone_keeps_unknown_node_ids() {
    let addresses = AddressMap::new();
    let proxy: SocketAddr = PROXY_1.parse().unwrap();
    addresses.insert(1, proxy);
    let message = Bytes::from(response(ApiKey::Metadata, 12, 3, &metadata(12))[4..].to_vec());
    let request = Request {
        api_key: ApiKey::Metadata as i16,
        api_version: 12,
        correlation_id: 3,
    };
    let Rewrite::Changed(new) = rewrite_response(request, &message, &addresses) else {
        panic!("broker 1 has a proxy");
    };
    let (_, got) = decode::<MetadataResponse>(ApiKey::Metadata, 12, &framed(&new));
    assert_eq!(got.brokers[0].host.as_str(), "127.0.0.1");
    assert_eq!(got.brokers[1].host.as_str(), "kafka-2.example.com");
    assert_eq!(
        rewrite_response(request, &message, &AddressMap::new()),
        Rewrite::Unchanged
    );
}
