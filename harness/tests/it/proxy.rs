//! The link proxy on its own: delay per direction and a cut that stops traffic until healed.
//! What a proxy costs per round trip is measured by `make bench`, not asserted here.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use faultline::proxy::{Delay, Direction, Link};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An echo server on a loopback port.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                loop {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if socket.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

async fn round_trip(stream: &mut TcpStream) -> Duration {
    let start = Instant::now();
    stream.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    start.elapsed()
}

#[tokio::test]
async fn a_delay_adds_to_every_round_trip() {
    let server = echo_server().await;
    let link = Link::start("test", server, 1).await.unwrap();
    // The proxy's own cost per round trip is a figure, not an assertion: `make bench`
    // (harness/benches/proxy_round_trip.rs) measures it.
    let hundred = Delay {
        delay_ms: 100,
        jitter_ms: 0,
    };
    link.set_delay(Direction::Forward, hundred);
    let mut stream = TcpStream::connect(link.addr()).await.unwrap();
    for _ in 0..3 {
        let rtt = round_trip(&mut stream).await;
        assert!(rtt >= Duration::from_millis(100), "forward delay: {rtt:?}");
    }
    link.set_delay(Direction::Backward, hundred);
    let rtt = round_trip(&mut stream).await;
    assert!(
        rtt >= Duration::from_millis(200),
        "both directions: {rtt:?}"
    );

    link.set_delay(Direction::Forward, Delay::NONE);
    link.set_delay(Direction::Backward, Delay::NONE);
    let rtt = round_trip(&mut stream).await;
    assert!(rtt < Duration::from_millis(100), "delay removed: {rtt:?}");
}

#[tokio::test]
async fn jitter_never_reorders_bytes() {
    let server = echo_server().await;
    let link = Link::start("test", server, 7).await.unwrap();
    let jittery = Delay {
        delay_ms: 10,
        jitter_ms: 10,
    };
    link.set_delay(Direction::Forward, jittery);
    link.set_delay(Direction::Backward, jittery);
    let stream = TcpStream::connect(link.addr()).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let sent: Vec<u8> = (0..200u8).collect();
    let writer = tokio::spawn(async move {
        for b in 0..200u8 {
            write.write_all(&[b]).await.unwrap();
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        write
    });
    let mut received = vec![0u8; 200];
    tokio::time::timeout(Duration::from_secs(10), read.read_exact(&mut received))
        .await
        .expect("echo within 10 s")
        .unwrap();
    let _ = writer.await;
    assert_eq!(received, sent);
}

#[tokio::test]
async fn a_cut_stops_traffic_until_healed() {
    let server = echo_server().await;
    let link = Link::start("test", server, 2).await.unwrap();
    let mut before = TcpStream::connect(link.addr()).await.unwrap();
    round_trip(&mut before).await;

    link.cut();
    // An open connection goes silent: nothing comes back.
    before.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    let silent = tokio::time::timeout(Duration::from_millis(300), before.read(&mut buf)).await;
    assert!(silent.is_err(), "a cut link carried bytes: {silent:?}");
    // A new connection is accepted but carries nothing either.
    let mut during = TcpStream::connect(link.addr()).await.unwrap();
    during.write_all(b"ping").await.unwrap();
    let silent = tokio::time::timeout(Duration::from_millis(300), during.read(&mut buf)).await;
    assert!(
        silent.is_err(),
        "a new connection crossed a cut: {silent:?}"
    );

    link.heal();
    // Connections that lived through the cut are closed (their streams have holes)...
    for stream in [&mut before, &mut during] {
        let closed = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("closed soon after the heal");
        assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    }
    // ...and new ones carry traffic again.
    let mut after = TcpStream::connect(link.addr()).await.unwrap();
    round_trip(&mut after).await;
    let stats = link.stats();
    assert!(
        stats
            .bytes_dropped
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 4
    );
}

#[tokio::test]
async fn a_dead_upstream_closes_the_client_connection() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = listener.local_addr().unwrap();
    drop(listener);
    let link = Link::start("test", dead, 3).await.unwrap();
    let mut stream = TcpStream::connect(link.addr()).await.unwrap();
    let _ = stream.write_all(b"ping").await;
    let mut buf = [0u8; 4];
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("closed promptly");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
}
