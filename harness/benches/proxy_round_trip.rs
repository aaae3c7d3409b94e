//! What a link proxy adds to a round trip on loopback: an echo server reached directly and
//! through a `Link` with no delay, the same number of 64-byte round trips each, one
//! connection, Nagle off. Prints the figures and one JSON line (`{"bench":"proxy_round_trip",
//! ...}`) that `make bench` collects. A figure, not a goal: nothing here can fail a build.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use faultline::proxy::Link;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TRIPS: usize = 20_000;
const WARMUP_TRIPS: usize = 1_000;

async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            socket.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 || socket.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Round-trip times in microseconds, sorted.
async fn round_trips(addr: SocketAddr) -> Vec<f64> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let payload = [7u8; 64];
    let mut buf = [0u8; 64];
    let mut times = Vec::with_capacity(TRIPS);
    for i in 0..WARMUP_TRIPS + TRIPS {
        let start = Instant::now();
        stream.write_all(&payload).await.unwrap();
        stream.read_exact(&mut buf).await.unwrap();
        if i >= WARMUP_TRIPS {
            times.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    times.sort_by(f64::total_cmp);
    times
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let server = echo_server().await;
        let link = Link::start("bench", server, 1).await.unwrap();
        let direct = round_trips(server).await;
        let proxied = round_trips(link.addr()).await;
        let (d50, p50) = (quantile(&direct, 0.5), quantile(&proxied, 0.5));
        let (d99, p99) = (quantile(&direct, 0.99), quantile(&proxied, 0.99));
        println!("proxy round trip, {TRIPS} trips of 64 B on loopback:");
        println!("  direct        p50 {d50:7.1} µs   p99 {d99:7.1} µs");
        println!("  through proxy p50 {p50:7.1} µs   p99 {p99:7.1} µs");
        println!("  added         p50 {:7.1} µs", p50 - d50);
        println!(
            "{}",
            serde_json::json!({
                "bench": "proxy_round_trip",
                "trips": TRIPS,
                "direct_p50_us": d50, "direct_p99_us": d99,
                "proxied_p50_us": p50, "proxied_p99_us": p99,
                "added_p50_us": p50 - d50,
            })
        );
        drop(link);
        tokio::time::sleep(Duration::from_millis(10)).await;
    });
}
