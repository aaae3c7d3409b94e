//! One link proxy: a TCP proxy for one directed link (the side that connects → the side that
//! listens), owned by the harness. It can delay bytes in each direction with jitter, and can be
//! cut: a cut link stops carrying traffic until healed. It owns nothing about which links exist
//! or what a fault means; that is `network`.
//!
//! A cut behaves like a network that drops packets (Jepsen's iptables DROP), not like one that
//! refuses them: new connections are accepted but never dialled upstream and nothing is read
//! from them, bytes on open connections are discarded in both directions, so callers see
//! timeouts, not errors. Healing closes every connection that lived through a cut (its byte
//! stream has holes, so it cannot carry on) and carries new connections normally again.
//!
//! Each connection runs an explicit state machine:
//!
//! ```text
//!   accepted ──(link carrying)──▶ Dialing ──(upstream connected)──▶ Open ──(EOF both ways)──▶ Closed
//!      │                            │ (dial failed: close client)    │ (link cut)
//!      └──(link cut)──▶ Stalled ◀───┘◀───────────────────────────────┘
//!                         │ (link healed)
//!                         └──────────────▶ Closed
//! ```
//!
//! A link started with [`Link::start_kafka`] also reads its connections as Kafka frames
//! ([`kafka`]): it rewrites the broker addresses in Metadata and FindCoordinator responses to the
//! proxies' own, so Kafka clients stay behind the proxies even when a broker advertises its own
//! address. The rewrite happens as bytes are read, before the delay queue, so delays and cuts
//! act on a Kafka-aware link exactly as on a byte link. A byte link never frames anything.
//!
//! A Kafka-aware link also carries message faults ([`kafka::faults`]), set through
//! [`Link::response_faults`]: a response of a chosen API key is dropped (the connection then
//! closes both ways once what was read before it is delivered: the pump ends with
//! `PumpEnd::Close`), held longer than the link's delay (later bytes queue behind it), or
//! passed with other error codes.

pub mod kafka;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use kafka::faults::ResponseFaults;
use kafka::{AddressMap, Fed, Framer, Hold};

/// A one-way delay: each chunk is held `delay_ms` ± up to `jitter_ms` (never reordered).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delay {
    pub delay_ms: u64,
    pub jitter_ms: u64,
}

impl Delay {
    pub const NONE: Delay = Delay {
        delay_ms: 0,
        jitter_ms: 0,
    };

    fn sample(self, rng: &mut StdRng) -> Duration {
        if self.jitter_ms == 0 {
            return Duration::from_millis(self.delay_ms);
        }
        let low = self.delay_ms.saturating_sub(self.jitter_ms);
        let high = self.delay_ms + self.jitter_ms;
        Duration::from_millis(rng.gen_range(low..=high))
    }
}

/// Which way bytes move on a link's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the connecting side to the listening side (requests).
    Forward,
    /// From the listening side back (responses).
    Backward,
}

/// What a link currently does; changed only through [`Link`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkControl {
    pub forward: Delay,
    pub backward: Delay,
    pub cut: bool,
    /// Counts cuts; a connection that saw another generation has lost bytes.
    pub cut_generation: u64,
}

impl LinkControl {
    fn delay(&self, direction: Direction) -> Delay {
        match direction {
            Direction::Forward => self.forward,
            Direction::Backward => self.backward,
        }
    }

    fn carries(&self, generation: u64) -> bool {
        !self.cut && self.cut_generation == generation
    }
}

/// Counters for one link, for tests and the run's summary.
#[derive(Debug, Default)]
pub struct LinkStats {
    pub connections_accepted: AtomicU64,
    pub connections_open: AtomicU64,
    pub connections_closed_by_heal: AtomicU64,
    pub dials_failed: AtomicU64,
    pub bytes_forwarded: AtomicU64,
    pub bytes_dropped: AtomicU64,
    /// Kafka-aware links: responses whose broker addresses were rewritten.
    pub kafka_responses_rewritten: AtomicU64,
    /// Kafka-aware links: Metadata or FindCoordinator responses the proxy could not decode and
    /// passed unchanged (each also logged as a warning).
    pub kafka_responses_undecodable: AtomicU64,
    /// Kafka-aware links: connections closed for a frame that is not Kafka (logged too).
    pub kafka_bad_frames: AtomicU64,
    /// Kafka-aware links: responses a message fault dropped (each closed its connection).
    pub kafka_responses_dropped: AtomicU64,
    /// Kafka-aware links: responses a message fault held longer than the link's delay.
    pub kafka_responses_delayed: AtomicU64,
    /// Kafka-aware links: responses a message fault passed with other error codes.
    pub kafka_responses_replaced: AtomicU64,
}

impl LinkStats {
    /// What message faults did on this link (`1 response dropped, 3 delayed`), or `None` if
    /// they did nothing.
    pub fn message_faults(&self) -> Option<String> {
        let counts = [
            (&self.kafka_responses_dropped, "dropped"),
            (&self.kafka_responses_delayed, "delayed"),
            (&self.kafka_responses_replaced, "with errors replaced"),
        ];
        let parts: Vec<String> = counts
            .iter()
            .map(|(n, what)| (n.load(Ordering::Relaxed), what))
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        if parts.is_empty() {
            return None;
        }
        Some(format!("responses {}", parts.join(", ")))
    }
}

/// One directed link proxy. Dropping it stops the listener and closes every connection.
pub struct Link {
    name: String,
    listen_addr: SocketAddr,
    upstream: SocketAddr,
    control: watch::Sender<LinkControl>,
    stats: Arc<LinkStats>,
    /// Kafka-aware links only: the message faults on the responses they carry.
    responses: Option<Arc<ResponseFaults>>,
    accept_task: JoinHandle<()>,
}

/// A dial that takes longer than this is abandoned and the client connection closed.
const DIAL_TIMEOUT: Duration = Duration::from_secs(2);
/// Chunks queued per direction; bounds the memory a delayed link holds.
const CHUNKS_IN_FLIGHT: usize = 256;
const CHUNK_BYTES: usize = 16 * 1024;

/// What a Kafka-aware link gives each of its connections.
#[derive(Clone)]
struct KafkaLink {
    addresses: Arc<AddressMap>,
    faults: Arc<ResponseFaults>,
    name: Arc<str>,
}

impl Link {
    /// Binds a loopback port and starts carrying connections to `upstream`, byte for byte.
    pub async fn start(name: &str, upstream: SocketAddr, seed: u64) -> std::io::Result<Link> {
        Link::bind(name, upstream, seed, None).await
    }

    /// Like [`start`](Self::start), for a link to a Kafka listener: broker addresses in
    /// Metadata and FindCoordinator responses are rewritten to the proxy addresses `rewrite`
    /// gives for their node ids (the [`kafka`] module).
    pub async fn start_kafka(
        name: &str,
        upstream: SocketAddr,
        seed: u64,
        rewrite: Arc<AddressMap>,
    ) -> std::io::Result<Link> {
        let kafka = KafkaLink {
            addresses: rewrite,
            faults: Arc::default(),
            name: Arc::from(name),
        };
        Link::bind(name, upstream, seed, Some(kafka)).await
    }

    async fn bind(
        name: &str,
        upstream: SocketAddr,
        seed: u64,
        kafka: Option<KafkaLink>,
    ) -> std::io::Result<Link> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let listen_addr = listener.local_addr()?;
        let (control, control_rx) = watch::channel(LinkControl::default());
        let stats = Arc::new(LinkStats::default());
        let responses = kafka.as_ref().map(|k| k.faults.clone());
        let accept_task = tokio::spawn(accept_loop(
            listener,
            upstream,
            control_rx,
            stats.clone(),
            seed,
            kafka,
        ));
        Ok(Link {
            name: name.to_string(),
            listen_addr,
            upstream,
            control,
            stats,
            responses,
            accept_task,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address the link's source connects to.
    pub fn addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// The address the link carries connections to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    pub fn control(&self) -> LinkControl {
        *self.control.borrow()
    }

    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    /// The message faults on the responses this link carries; `None` on a byte link, which
    /// frames nothing. Changes apply to the next response that passes.
    pub fn response_faults(&self) -> Option<&ResponseFaults> {
        self.responses.as_deref()
    }

    pub fn set_delay(&self, direction: Direction, delay: Delay) {
        self.control.send_modify(|c| match direction {
            Direction::Forward => c.forward = delay,
            Direction::Backward => c.backward = delay,
        });
    }

    /// Stops carrying traffic (idempotent).
    pub fn cut(&self) {
        self.control.send_modify(|c| {
            if !c.cut {
                c.cut = true;
                c.cut_generation += 1;
            }
        });
    }

    /// Carries traffic again; connections that lived through the cut are closed.
    pub fn heal(&self) {
        self.control.send_modify(|c| c.cut = false);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    control: watch::Receiver<LinkControl>,
    stats: Arc<LinkStats>,
    seed: u64,
    kafka: Option<KafkaLink>,
) {
    // Owning the connections here means aborting this task closes all of them.
    let mut connections = JoinSet::new();
    let mut count: u64 = 0;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                let _ = client.set_nodelay(true);
                count += 1;
                stats.connections_accepted.fetch_add(1, Ordering::Relaxed);
                let rng = StdRng::seed_from_u64(seed ^ count.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let connection = Connection {
                    upstream,
                    control: control.clone(),
                    stats: stats.clone(),
                    rng,
                    kafka: kafka.clone(),
                };
                connections.spawn(connection.run(client));
            }
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The states of one proxied connection (see the module diagram).
#[derive(Debug)]
enum ConnState {
    Dialing(TcpStream),
    Open(JoinSet<PumpEnd>),
    Stalled {
        /// Kept open (and unread) so the client sees silence, not a close.
        idle_client: Option<TcpStream>,
        pumps: Option<JoinSet<PumpEnd>>,
    },
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PumpEnd {
    Eof,
    Error,
    /// A message fault dropped a response: what was queued before it has been delivered, and
    /// the whole connection closes.
    Close,
}

struct Connection {
    upstream: SocketAddr,
    control: watch::Receiver<LinkControl>,
    stats: Arc<LinkStats>,
    rng: StdRng,
    kafka: Option<KafkaLink>,
}

impl Connection {
    async fn run(mut self, client: TcpStream) {
        self.stats.connections_open.fetch_add(1, Ordering::Relaxed);
        let start = *self.control.borrow_and_update();
        let generation = start.cut_generation;
        let mut state = if start.cut {
            ConnState::Stalled {
                idle_client: Some(client),
                pumps: None,
            }
        } else {
            ConnState::Dialing(client)
        };
        loop {
            state = match state {
                ConnState::Dialing(client) => self.dial(client, generation).await,
                ConnState::Open(pumps) => self.open(pumps).await,
                ConnState::Stalled { idle_client, pumps } => self.stalled(idle_client, pumps).await,
                ConnState::Closed => break,
            };
        }
        self.stats.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    async fn dial(&mut self, client: TcpStream, generation: u64) -> ConnState {
        let dialed = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(self.upstream)).await;
        let upstream = match dialed {
            Ok(Ok(upstream)) => upstream,
            _ => {
                // The listening side is down: close the client's connection, as near as a proxy
                // can come to a refusal. Nothing was forwarded.
                self.stats.dials_failed.fetch_add(1, Ordering::Relaxed);
                return ConnState::Closed;
            }
        };
        let _ = upstream.set_nodelay(true);
        let (client_read, client_write) = client.into_split();
        let (upstream_read, upstream_write) = upstream.into_split();
        let [requests, responses] = match &self.kafka {
            Some(kafka) => {
                let (addresses, name) = (kafka.addresses.clone(), kafka.name.clone());
                let faults = kafka.faults.clone();
                Framer::pair(addresses, faults, self.stats.clone(), name).map(Some)
            }
            None => [None, None],
        };
        let mut pumps = JoinSet::new();
        let pump = |from, to, direction, seed, framer| Pump {
            from,
            to,
            direction,
            generation,
            control: self.control.clone(),
            stats: self.stats.clone(),
            rng: StdRng::seed_from_u64(seed),
            framer,
        };
        let seed: u64 = self.rng.gen();
        let forward = pump(
            client_read,
            upstream_write,
            Direction::Forward,
            seed,
            requests,
        );
        let backward = pump(
            upstream_read,
            client_write,
            Direction::Backward,
            !seed,
            responses,
        );
        pumps.spawn(forward.run());
        pumps.spawn(backward.run());
        if self.control.borrow().carries(generation) {
            ConnState::Open(pumps)
        } else {
            ConnState::Stalled {
                idle_client: None,
                pumps: Some(pumps),
            }
        }
    }

    async fn open(&mut self, mut pumps: JoinSet<PumpEnd>) -> ConnState {
        loop {
            tokio::select! {
                ended = pumps.join_next() => match ended {
                    // One direction finished cleanly: wait for the other.
                    Some(Ok(PumpEnd::Eof)) => continue,
                    // Both finished, one failed, or a message fault closes the connection:
                    // it is over (dropping the pumps closes both sockets).
                    None | Some(_) => return ConnState::Closed,
                },
                changed = self.control.changed() => {
                    if changed.is_err() || self.control.borrow_and_update().cut {
                        return ConnState::Stalled { idle_client: None, pumps: Some(pumps) };
                    }
                }
            }
        }
    }

    async fn stalled(
        &mut self,
        client: Option<TcpStream>,
        mut pumps: Option<JoinSet<PumpEnd>>,
    ) -> ConnState {
        loop {
            let pumps_done = async {
                match pumps.as_mut() {
                    Some(set) if !set.is_empty() => set.join_next().await.map(|_| ()),
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                ended = pumps_done => {
                    // Both ends may hang up while the link is cut.
                    if ended.is_none() || pumps.as_ref().is_some_and(|p| p.is_empty()) {
                        return ConnState::Closed;
                    }
                }
                changed = self.control.changed() => {
                    if changed.is_err() || !self.control.borrow_and_update().cut {
                        self.stats.connections_closed_by_heal.fetch_add(1, Ordering::Relaxed);
                        drop(client);
                        return ConnState::Closed;
                    }
                }
            }
        }
    }
}

/// Moves bytes one way on one connection, holding each chunk for the link's delay. On a
/// Kafka-aware link the bytes read pass through the framer before they are queued.
struct Pump {
    from: OwnedReadHalf,
    to: OwnedWriteHalf,
    direction: Direction,
    generation: u64,
    control: watch::Receiver<LinkControl>,
    stats: Arc<LinkStats>,
    rng: StdRng,
    framer: Option<Framer>,
}

struct Chunk {
    bytes: Vec<u8>,
    deliver_at: Instant,
}

impl Pump {
    async fn run(self) -> PumpEnd {
        let Pump {
            mut from,
            mut to,
            direction,
            generation,
            control,
            stats,
            mut rng,
            mut framer,
        } = self;
        let (queue, mut queued) = mpsc::channel::<Chunk>(CHUNKS_IN_FLIGHT);
        let writer_control = control.clone();
        let writer_stats = stats.clone();
        let writer = async move {
            while let Some(chunk) = queued.recv().await {
                // Skipping the timer when no delay is due keeps the proxy's cost in
                // microseconds: tokio's timer wheel would round up to the next millisecond.
                if chunk.deliver_at > Instant::now() {
                    tokio::time::sleep_until(chunk.deliver_at).await;
                }
                if !writer_control.borrow().carries(generation) {
                    writer_stats
                        .bytes_dropped
                        .fetch_add(chunk.bytes.len() as u64, Ordering::Relaxed);
                    continue;
                }
                if to.write_all(&chunk.bytes).await.is_err() {
                    return PumpEnd::Error;
                }
                writer_stats
                    .bytes_forwarded
                    .fetch_add(chunk.bytes.len() as u64, Ordering::Relaxed);
            }
            // The source hung up: pass the half-close on once everything queued is delivered.
            let _ = to.shutdown().await;
            PumpEnd::Eof
        };
        let reader = async move {
            let mut last_deliver_at = Instant::now();
            loop {
                let mut buf = vec![0u8; CHUNK_BYTES];
                let n = match from.read(&mut buf).await {
                    Ok(0) => return PumpEnd::Eof,
                    Ok(n) => n,
                    Err(_) => return PumpEnd::Error,
                };
                buf.truncate(n);
                let link = *control.borrow();
                if !link.carries(generation) {
                    // A connection that missed bytes never carries again (it is closed on
                    // heal), so a framer never needs to see what a cut dropped.
                    stats.bytes_dropped.fetch_add(n as u64, Ordering::Relaxed);
                    continue;
                }
                let fed = match framer.as_mut().map(|f| f.feed(&buf)) {
                    None => Fed {
                        bytes: buf,
                        ..Fed::default()
                    },
                    Some(Ok(fed)) => fed,
                    // A frame that is not Kafka: the framer warned, the connection closes.
                    Some(Err(_)) => return PumpEnd::Error,
                };
                if !fed.bytes.is_empty() {
                    let now = Instant::now();
                    let delay = link.delay(direction).sample(&mut rng);
                    // TCP never reorders: a chunk is never delivered before the one read
                    // before it, so bytes after a held response queue behind it.
                    let mut due = |held: Duration| {
                        last_deliver_at = (now + delay + held).max(last_deliver_at);
                        last_deliver_at
                    };
                    let queued = if fed.holds.is_empty() {
                        queue_bytes(&queue, fed.bytes, due(Duration::ZERO)).await
                    } else {
                        let mut queued = Ok(());
                        for (bytes, held) in pieces(&fed.bytes, &fed.holds) {
                            queued = queue_bytes(&queue, bytes.to_vec(), due(held)).await;
                            if queued.is_err() {
                                break;
                            }
                        }
                        queued
                    };
                    if queued.is_err() {
                        return PumpEnd::Error;
                    }
                }
                if fed.close {
                    // Dropping the queue lets the writer deliver what came before, then end.
                    return PumpEnd::Close;
                }
            }
        };
        // A failure on either side ends the pump at once; a clean end of the reader still
        // lets the writer deliver what is queued.
        tokio::pin!(reader, writer);
        tokio::select! {
            read_end = &mut reader => match read_end {
                PumpEnd::Eof => writer.await,
                PumpEnd::Close => match writer.await {
                    PumpEnd::Error => PumpEnd::Error,
                    _ => PumpEnd::Close,
                },
                PumpEnd::Error => PumpEnd::Error,
            },
            write_end = &mut writer => match write_end {
                // The writer only ends cleanly once the reader has ended and dropped the
                // queue, so there is nothing left to wait for.
                PumpEnd::Eof | PumpEnd::Close => PumpEnd::Eof,
                PumpEnd::Error => PumpEnd::Error,
            },
        }
    }
}

/// The stretches of a framer's output with the extra time each is held: the bytes before the
/// first held response as they are, then from each held response's first byte on, that
/// response's hold.
fn pieces<'a>(bytes: &'a [u8], holds: &[Hold]) -> Vec<(&'a [u8], Duration)> {
    let mut pieces = Vec::with_capacity(holds.len() + 1);
    let mut from = 0;
    let mut held = Duration::ZERO;
    for hold in holds {
        pieces.push((&bytes[from..hold.from], held));
        (from, held) = (hold.from, hold.delay);
    }
    pieces.push((&bytes[from..], held));
    pieces.retain(|(piece, _)| !piece.is_empty());
    pieces
}

/// Queues `bytes` for delivery at `deliver_at`. What one read gave is one chunk; a framer may
/// give back a whole rewritten response, which is split, so the queue's bound holds in bytes
/// too.
async fn queue_bytes(
    queue: &mpsc::Sender<Chunk>,
    bytes: Vec<u8>,
    deliver_at: Instant,
) -> Result<(), mpsc::error::SendError<Chunk>> {
    if bytes.len() <= CHUNK_BYTES {
        return queue.send(Chunk { bytes, deliver_at }).await;
    }
    for piece in bytes.chunks(CHUNK_BYTES) {
        let bytes = piece.to_vec();
        queue.send(Chunk { bytes, deliver_at }).await?;
    }
    Ok(())
}
