//! How the nodes' HTTP servers treat a connection: a request whose sender shut its write side
//! after sending it (a half-close, or a sender that died with the request on a slow link) is
//! still answered. The stale-incarnation scenario depends on it: a fetch of a previous
//! incarnation must reach the replica code to be refused by its broker epoch.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// Sends `GET path` on a fresh connection, shuts the write side, and returns everything the
/// server wrote before closing.
async fn get_half_closed(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("sends");
    stream.shutdown().await.expect("half-closes");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes within 10 s")
        .expect("reads");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_sender_half_closed_is_answered() {
    let c = Cluster::start(Settings::default()).await;
    let controller = get_half_closed(&c.controller_addr, "/v1/metadata").await;
    assert!(
        controller.starts_with("HTTP/1.1 200"),
        "the controller answers a half-closed request: {controller:?}"
    );
    assert!(controller.contains("\"brokers\""), "{controller:?}");
    let broker = get_half_closed(&c.broker_addrs[&1], "/v1/state").await;
    assert!(
        broker.starts_with("HTTP/1.1 200"),
        "a broker answers a half-closed request: {broker:?}"
    );
    // And an unknown path still gets its JSON 404 on such a connection.
    let missing = get_half_closed(&c.broker_addrs[&1], "/v1/nope").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing:?}");
    assert!(missing.contains("NOT_FOUND"), "{missing:?}");
}
