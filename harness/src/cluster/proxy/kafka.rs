//! Kafka-aware framing for a client→broker link, so that Kafka clients stay behind the proxy.
//! A broker tells its clients where to connect: every broker's host and port in Metadata and
//! DescribeCluster responses, the coordinator's in FindCoordinator responses. A third-party broker advertises
//! its own address there, so after bootstrap a client would connect straight to it and faults on
//! the link would miss it. This module reads a link's connections as Kafka frames (a 4-byte
//! big-endian size, then the message) and rewrites those addresses to the proxy links that lead
//! to the same brokers, by advertised port or node id ([`AddressMap`]); every other response, and every request,
//! passes byte for byte. Messages are decoded and encoded by the `kafka-protocol` crate; `guard`
//! checks a response's shape before the crate decodes it (it says why).
//!
//! It owns the frames and the rewrite, not delays or cuts: the link's pump hands it what it
//! reads while the link carries and queues what it gives back, so a rewritten response is
//! delayed and dropped exactly like any other bytes.
//!
//! It also applies the link's message faults (`faults`): once a response's correlation id has
//! matched its request, the framer asks the link's [`ResponseFaults`] what to do with a
//! response of that API key. A dropped response is never passed: the framer gives back what
//! came before it and asks the pump to close the connection ([`Fed::close`]). A delayed one is
//! passed with a [`Hold`] from its first byte, which the pump adds to the link's delay; bytes
//! after it are queued behind it. A response whose error codes are replaced is held whole,
//! decoded, changed and encoded again like a rewritten Metadata response.
//!
//! Each connection has two [`Framer`]s sharing one queue of requests awaiting responses:
//!
//! ```text
//!   client ──requests──▶ Framer(Requests) ──▶ broker      notes (api_key, api_version,
//!                               │                          correlation_id), oldest first
//!                               ▼
//!                        pending requests  (at most MAX_PENDING_REQUESTS)
//!                               │
//!   client ◀─responses── Framer(Responses) ◀── broker     takes the oldest, checks the
//!                                                          correlation id, rewrites if 3 or 10
//! ```
//!
//! A Kafka broker answers a connection's requests in order, and a Produce with acks=0 gets no
//! answer (so it is never noted). Each framer runs a small state machine per frame:
//!
//! ```text
//!   Size ──(4 bytes)──▶ Head ──(enough to decide)──▶ Pass ──(frame passed on)──▶ Size
//!                         │ (a response to rewrite, or whose error codes a fault replaces)
//!                         ├──▶ Whole ──(frame complete: rewritten or as it was)──▶ Size
//!                         │ (a response a fault drops)
//!                         └──▶ Closed (reads nothing more: the connection is closing)
//! ```
//!
//! Only the head of a frame (the size, the correlation id, a request's header) is held back;
//! the rest passes as it arrives, so a large Fetch or Produce is streamed, not buffered. Only
//! Metadata, FindCoordinator and DescribeCluster responses (and those whose error codes a fault
//! replaces) are held whole, and never more than [`MAX_FRAME_BYTES`]. A frame whose size is
//! negative or over that limit, a request too short for its header, and a response that
//! answers no request or the wrong one close the connection: the stream is not Kafka as the
//! proxy understands it, and guessing would corrupt it. A response the proxy cannot decode (a version newer than the codec, a body that does not
//! parse or would not re-encode byte for byte) passes unchanged, with a warning counted in the
//! link's stats.

pub mod faults;
mod guard;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, DescribeClusterResponse, FindCoordinatorResponse, MetadataResponse, RequestHeader,
    ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, Message, StrBytes};

use super::LinkStats;
use faults::{replace_errors, replaces_errors, ResponseAction, ResponseFaults};

/// The largest frame either way; Kafka's own default `socket.request.max.bytes` is 100 MiB.
pub const MAX_FRAME_BYTES: usize = 100 << 20;
/// Requests of one connection awaiting responses. Kafka clients keep a handful in flight per
/// connection; this bounds the queue's memory (16 bytes an entry) if one never reads.
pub const MAX_PENDING_REQUESTS: usize = 100_000;
/// A request header (api_key, api_version, correlation_id) before its client id.
const REQUEST_HEAD_BYTES: usize = 8;
/// A response header's correlation id.
const RESPONSE_HEAD_BYTES: usize = 4;
/// How much of a Produce request is held at first to find its acks (a header with its client
/// id, and a transactional id); doubled while it is not enough. A Produce request is rarely
/// shorter, and its first read usually holds this much, so holding it delays nothing.
const PRODUCE_HEAD_BYTES: usize = 512;

/// Which proxy address leads to which broker: by the port the broker advertises (its real
/// Kafka port; every node is on loopback), else by Kafka node id. Filled by `network` once the
/// links are bound; an address it knows neither way stays as the broker gave it.
///
/// The port comes first because node ids need not be unique across a system's brokers: every
/// Tansu 0.6.0 broker calls itself node 111 and lists only itself (tansu-broker `NODE_ID`,
/// tansu-storage `pg.rs` `brokers`), so only its advertised address tells them apart.
#[derive(Debug, Default)]
pub struct AddressMap {
    brokers: RwLock<BTreeMap<i32, SocketAddr>>,
    ports: RwLock<BTreeMap<u16, SocketAddr>>,
}

impl AddressMap {
    pub fn new() -> AddressMap {
        AddressMap::default()
    }

    pub fn insert(&self, node_id: i32, addr: SocketAddr) {
        self.brokers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node_id, addr);
    }

    /// The broker advertising `port` (its real Kafka port) is reached through `proxy`.
    pub fn insert_port(&self, port: u16, proxy: SocketAddr) {
        self.ports
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(port, proxy);
    }

    /// The proxy for the broker advertising `port` as node `node_id`: by port, else by id.
    pub fn get(&self, node_id: i32, port: i32) -> Option<SocketAddr> {
        let by_port = u16::try_from(port).ok().and_then(|port| {
            self.ports
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&port)
                .copied()
        });
        by_port.or_else(|| {
            self.brokers
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&node_id)
                .copied()
        })
    }
}

/// What the proxy remembers of a request until its response passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

impl Request {
    /// The first fields of every request header, whatever its version.
    fn from_head(head: &[u8]) -> Request {
        Request {
            api_key: i16::from_be_bytes([head[0], head[1]]),
            api_version: i16::from_be_bytes([head[2], head[3]]),
            correlation_id: i32::from_be_bytes([head[4], head[5], head[6], head[7]]),
        }
    }
}

/// Why a connection was closed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("a frame size of {0} bytes is negative or over the {MAX_FRAME_BYTES}-byte limit")]
    Size(i32),
    #[error("a {size}-byte frame is too short for a {side} header")]
    Short { size: usize, side: &'static str },
    #[error("a Produce request whose header or acks does not decode: {0}")]
    Produce(String),
    #[error("more than {MAX_PENDING_REQUESTS} requests await responses")]
    TooManyPending,
    #[error("a response (correlation id {0}) arrived while no request awaited one")]
    Unsolicited(i32),
    #[error("a response has correlation id {got} where {expected} was awaited")]
    Correlation { got: i32, expected: i32 },
}

/// Which way a framer reads.
enum Side {
    Requests,
    Responses {
        addresses: Arc<AddressMap>,
        faults: Arc<ResponseFaults>,
    },
}

/// A framer's place in the current frame (the module diagram).
#[derive(Debug)]
enum State {
    Size {
        bytes: [u8; 4],
        have: usize,
    },
    Head {
        size: usize,
        head: Vec<u8>,
        want: usize,
    },
    Pass {
        left: usize,
    },
    Whole {
        whole: Whole,
        size: usize,
        body: Vec<u8>,
    },
    /// A fault dropped a response: nothing more is read, the connection is closing.
    Closed,
}

impl State {
    fn size() -> State {
        State::Size {
            bytes: [0; 4],
            have: 0,
        }
    }
}

/// What a framer does with a frame once it has seen enough of its head.
enum Decision {
    /// Hold this many bytes of the frame (more than now) before deciding.
    More(usize),
    /// Pass it on as it streams in; a delayed response is held this long from its first byte.
    Pass(Option<Duration>),
    /// Hold the whole frame, then rewrite it.
    Whole(Whole),
    /// Discard the response and close the connection (a message fault).
    Drop,
}

/// A response held whole, and what becomes of it once complete.
#[derive(Debug, Clone, Copy)]
struct Whole {
    request: Request,
    /// Replace its error codes with this one (a message fault); otherwise rewrite addresses.
    error_code: Option<i16>,
    /// Hold it this long from its first byte (a message fault).
    hold: Option<Duration>,
}

/// A stretch of a [`Fed`]'s bytes that must be held longer than the link's own delay: from
/// byte `from` on (a delayed response's first byte; every later byte queues behind it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    pub from: usize,
    pub delay: Duration,
}

/// What a framer gives back for the bytes it was fed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fed {
    /// The bytes to pass on, which may be fewer than fed (a frame's head or a whole response
    /// is being held, or a response was dropped) or more (a held frame completed).
    pub bytes: Vec<u8>,
    /// Where delayed responses start in `bytes`, in order.
    pub holds: Vec<Hold>,
    /// A response was dropped: deliver `bytes`, then close the connection both ways.
    pub close: bool,
}

type Pending = Arc<Mutex<VecDeque<Request>>>;

/// Reads one direction of one connection as Kafka frames (the module diagram).
pub struct Framer {
    side: Side,
    pending: Pending,
    state: State,
    stats: Arc<LinkStats>,
    /// The link's name, for warnings.
    link: Arc<str>,
}

impl Framer {
    /// The two framers of one connection: requests (client → broker) and responses (back),
    /// the responses under the link's message faults.
    pub fn pair(
        addresses: Arc<AddressMap>,
        faults: Arc<ResponseFaults>,
        stats: Arc<LinkStats>,
        link: Arc<str>,
    ) -> [Framer; 2] {
        let pending = Pending::default();
        let framer = |side| Framer {
            side,
            pending: pending.clone(),
            state: State::size(),
            stats: stats.clone(),
            link: link.clone(),
        };
        [
            framer(Side::Requests),
            framer(Side::Responses { addresses, faults }),
        ]
    }

    /// Takes the next bytes read and gives back what to pass on ([`Fed`]). On an error the
    /// connection must be closed; the framer has warned and counted it.
    pub fn feed(&mut self, input: &[u8]) -> Result<Fed, FrameError> {
        let fed = self.frames(input);
        if let Err(e) = &fed {
            self.stats.kafka_bad_frames.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(link = %self.link, "closing a Kafka connection: {e}");
        }
        fed
    }

    fn frames(&mut self, mut input: &[u8]) -> Result<Fed, FrameError> {
        let mut out = Fed {
            bytes: Vec::with_capacity(input.len() + 4),
            ..Fed::default()
        };
        while !input.is_empty() {
            let taken = match &mut self.state {
                State::Size { bytes, have } => {
                    let n = (4 - *have).min(input.len());
                    bytes[*have..*have + n].copy_from_slice(&input[..n]);
                    *have += n;
                    if *have == 4 {
                        let size = i32::from_be_bytes(*bytes);
                        self.state = self.head_of(size)?;
                    }
                    n
                }
                State::Head { head, want, .. } => {
                    let n = (*want - head.len()).min(input.len());
                    head.extend_from_slice(&input[..n]);
                    if head.len() == *want {
                        self.decide(&mut out)?;
                    }
                    n
                }
                State::Pass { left } => {
                    let n = (*left).min(input.len());
                    out.bytes.extend_from_slice(&input[..n]);
                    *left -= n;
                    if *left == 0 {
                        self.state = State::size();
                    }
                    n
                }
                State::Whole { size, body, .. } => {
                    let n = (*size - body.len()).min(input.len());
                    body.extend_from_slice(&input[..n]);
                    if body.len() == *size {
                        self.finish_whole(&mut out);
                    }
                    n
                }
                State::Closed => {
                    // What arrives after a dropped response is never passed on.
                    out.close = true;
                    input.len()
                }
            };
            input = &input[taken..];
        }
        Ok(out)
    }

    /// A frame's size is known: check it and start holding its head.
    fn head_of(&self, size: i32) -> Result<State, FrameError> {
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= MAX_FRAME_BYTES)
            .ok_or(FrameError::Size(size))?;
        let (want, side) = match self.side {
            Side::Requests => (REQUEST_HEAD_BYTES, "request"),
            Side::Responses { .. } => (RESPONSE_HEAD_BYTES, "response"),
        };
        if size < want {
            return Err(FrameError::Short { size, side });
        }
        Ok(State::Head {
            size,
            head: Vec::with_capacity(want),
            want,
        })
    }

    fn decide(&mut self, out: &mut Fed) -> Result<(), FrameError> {
        let State::Head { size, head, .. } = std::mem::replace(&mut self.state, State::size())
        else {
            unreachable!("decide is called in the Head state only");
        };
        let decision = match self.side {
            Side::Requests => self.note_request(&head, size)?,
            Side::Responses { .. } => self.match_response(&head)?,
        };
        match decision {
            Decision::More(want) => {
                debug_assert!(want > head.len() && want <= size);
                self.state = State::Head { size, head, want };
            }
            Decision::Pass(hold) => {
                if let Some(delay) = hold {
                    out.holds.push(Hold {
                        from: out.bytes.len(),
                        delay,
                    });
                }
                out.bytes.extend_from_slice(&(size as i32).to_be_bytes());
                out.bytes.extend_from_slice(&head);
                if size > head.len() {
                    self.state = State::Pass {
                        left: size - head.len(),
                    };
                }
            }
            Decision::Whole(whole) => {
                let mut body = head;
                // Grow with the bytes that arrive, not with the size the frame claims.
                body.reserve(size.min(64 << 10));
                self.state = State::Whole { whole, size, body };
                if size == RESPONSE_HEAD_BYTES {
                    self.finish_whole(out);
                }
            }
            Decision::Drop => {
                self.stats
                    .kafka_responses_dropped
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(link = %self.link, "a message fault dropped a response; closing");
                self.state = State::Closed;
                out.close = true;
            }
        }
        Ok(())
    }

    /// Notes a request that will be answered; a Produce needs its acks read first.
    fn note_request(&self, head: &[u8], size: usize) -> Result<Decision, FrameError> {
        let request = Request::from_head(head);
        if request.api_key == ApiKey::Produce as i16 {
            // Parse once, on enough bytes for any usual header: a failed decode is costly when
            // errors capture backtraces (RUST_BACKTRACE=1).
            if head.len() < PRODUCE_HEAD_BYTES && head.len() < size {
                return Ok(Decision::More(PRODUCE_HEAD_BYTES.min(size)));
            }
            match produce_acks(head, request.api_version) {
                Ok(0) => return Ok(Decision::Pass(None)), // acks=0: Kafka sends no response
                Ok(_) => {}
                Err(_) if head.len() < size => {
                    return Ok(Decision::More((head.len() * 2).min(size)));
                }
                Err(e) => return Err(FrameError::Produce(e)),
            }
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() >= MAX_PENDING_REQUESTS {
            return Err(FrameError::TooManyPending);
        }
        pending.push_back(request);
        Ok(Decision::Pass(None))
    }

    /// Matches a response to the oldest request awaiting one.
    fn match_response(&self, head: &[u8]) -> Result<Decision, FrameError> {
        let got = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let request = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
            .ok_or(FrameError::Unsolicited(got))?;
        if request.correlation_id != got {
            return Err(FrameError::Correlation {
                got,
                expected: request.correlation_id,
            });
        }
        let Side::Responses { faults, .. } = &self.side else {
            unreachable!("only responses are matched");
        };
        let mut whole = Whole {
            request,
            error_code: None,
            hold: None,
        };
        match faults.take(request.api_key) {
            Some(ResponseAction::Drop) => return Ok(Decision::Drop),
            Some(ResponseAction::Delay { delay_ms }) => {
                self.stats
                    .kafka_responses_delayed
                    .fetch_add(1, Ordering::Relaxed);
                whole.hold = Some(Duration::from_millis(delay_ms));
            }
            Some(ResponseAction::Error { code }) if replaces_errors(request.api_key) => {
                whole.error_code = Some(code);
            }
            Some(ResponseAction::Error { .. }) => {
                // The schedule language refuses it; a fault set through the API passes here.
                tracing::warn!(
                    link = %self.link,
                    api_key = request.api_key,
                    "error-response cannot replace the error codes of this API's responses"
                );
            }
            None => {}
        }
        let rewritten = [
            ApiKey::Metadata as i16,
            ApiKey::FindCoordinator as i16,
            ApiKey::DescribeCluster as i16,
        ];
        Ok(
            match whole.error_code.is_some() || rewritten.contains(&request.api_key) {
                true => Decision::Whole(whole),
                false => Decision::Pass(whole.hold),
            },
        )
    }

    /// A held response is complete: pass it on rewritten (its addresses, or its error codes
    /// under a message fault), or as it came.
    fn finish_whole(&mut self, out: &mut Fed) {
        let State::Whole { whole, body, .. } = std::mem::replace(&mut self.state, State::size())
        else {
            unreachable!("finish_whole is called in the Whole state only");
        };
        let Side::Responses { addresses, .. } = &self.side else {
            unreachable!("only responses are held whole");
        };
        let request = whole.request;
        let body = Bytes::from(body);
        let (rewrite, what) = match whole.error_code {
            Some(code) => (replace_errors(request, &body, code), "its error codes"),
            None => (
                rewrite_response(request, &body, addresses),
                "its broker addresses",
            ),
        };
        if let Some(delay) = whole.hold {
            out.holds.push(Hold {
                from: out.bytes.len(),
                delay,
            });
        }
        let problem = match rewrite {
            Rewrite::Changed(new) => match i32::try_from(new.len()) {
                Ok(size) => {
                    let counter = match whole.error_code {
                        Some(_) => &self.stats.kafka_responses_replaced,
                        None => &self.stats.kafka_responses_rewritten,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    out.bytes.extend_from_slice(&size.to_be_bytes());
                    out.bytes.extend_from_slice(&new);
                    return;
                }
                Err(_) => Some("the rewritten response is over 2 GiB".to_string()),
            },
            Rewrite::Unchanged => None,
            Rewrite::Undecodable(why) => Some(why),
        };
        if let Some(why) = problem {
            self.stats
                .kafka_responses_undecodable
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                link = %self.link,
                api_key = request.api_key,
                api_version = request.api_version,
                "a response passed unchanged, {what} not rewritten: {why}"
            );
        }
        // The size was read from the frame and is at most MAX_FRAME_BYTES.
        out.bytes
            .extend_from_slice(&(body.len() as i32).to_be_bytes());
        out.bytes.extend_from_slice(&body);
    }
}

/// A Produce request's acks, from the head of its frame (after the size). Err while the head
/// is too short, or when the frame is malformed. The crate decodes the header; its string
/// decoders are private, so the transactional id before acks is skipped here by its length.
fn produce_acks(head: &[u8], version: i16) -> Result<i16, String> {
    let header_version = ApiKey::Produce.request_header_version(version);
    let mut buf = head;
    RequestHeader::decode(&mut buf, header_version).map_err(|e| format!("header: {e:#}"))?;
    if version >= 3 {
        // transactional_id: a nullable string, compact from v9 (the first flexible version).
        let length = if version >= 9 {
            let (value, used) = read_varint(buf)?;
            buf = &buf[used..];
            value as i64 - 1
        } else {
            let length = read_i16(buf)?;
            buf = &buf[2..];
            i64::from(length)
        };
        let skip = usize::try_from(length.max(0)).unwrap_or(usize::MAX);
        buf = buf.get(skip..).ok_or("transactional_id is cut short")?;
    }
    read_i16(buf)
}

fn read_i16(buf: &[u8]) -> Result<i16, String> {
    match buf {
        [a, b, ..] => Ok(i16::from_be_bytes([*a, *b])),
        _ => Err("an INT16 is cut short".to_string()),
    }
}

/// An unsigned varint (at most 5 bytes) and the bytes it took.
fn read_varint(buf: &[u8]) -> Result<(u64, usize), String> {
    let mut value = 0u64;
    for (i, &byte) in buf.iter().take(5).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err("a varint is cut short or longer than 5 bytes".to_string())
}

/// What became of a response held whole.
#[derive(Debug, PartialEq)]
pub enum Rewrite {
    /// The new message (header and body, without the size).
    Changed(BytesMut),
    /// Nothing to rewrite: every address was already the proxy's, or unknown to the map.
    Unchanged,
    /// The proxy cannot read it, and says why; it passes as it came.
    Undecodable(String),
}

/// Rewrites a response message (header and body, without the size) to `request`: in Metadata
/// every broker's host and port, in FindCoordinator the coordinator's (v0–3) or each
/// coordinator's (v4+), to the proxy address of that node id. Everything else is kept.
pub fn rewrite_response(request: Request, message: &Bytes, addresses: &AddressMap) -> Rewrite {
    let version = request.api_version;
    match ApiKey::try_from(request.api_key) {
        Ok(ApiKey::Metadata) => rewrite_as(
            ApiKey::Metadata,
            version,
            message,
            |m: &mut MetadataResponse| {
                let mut changed = false;
                for broker in &mut m.brokers {
                    changed |= point_at_proxy(
                        *broker.node_id,
                        &mut broker.host,
                        &mut broker.port,
                        addresses,
                    );
                }
                changed
            },
        ),
        Ok(ApiKey::FindCoordinator) => rewrite_as(
            ApiKey::FindCoordinator,
            version,
            message,
            |f: &mut FindCoordinatorResponse| {
                let mut changed = if version <= 3 {
                    point_at_proxy(*f.node_id, &mut f.host, &mut f.port, addresses)
                } else {
                    false
                };
                for coordinator in &mut f.coordinators {
                    changed |= point_at_proxy(
                        *coordinator.node_id,
                        &mut coordinator.host,
                        &mut coordinator.port,
                        addresses,
                    );
                }
                changed
            },
        ),
        Ok(ApiKey::DescribeCluster) => rewrite_as(
            ApiKey::DescribeCluster,
            version,
            message,
            |d: &mut DescribeClusterResponse| {
                let mut changed = false;
                for broker in &mut d.brokers {
                    changed |= point_at_proxy(
                        *broker.broker_id,
                        &mut broker.host,
                        &mut broker.port,
                        addresses,
                    );
                }
                changed
            },
        ),
        _ => Unchanged,
    }
}

use Rewrite::Unchanged;

/// Decodes `message` as `key`'s response at `version`, lets `edit` change it, and encodes it
/// again if it did. The codec must give back exactly the bytes it read before the edit: then
/// the rewrite changes the addresses and nothing else.
fn rewrite_as<T: Message + Decodable + Encodable>(
    key: ApiKey,
    version: i16,
    message: &Bytes,
    edit: impl FnOnce(&mut T) -> bool,
) -> Rewrite {
    if version < T::VERSIONS.min || version > T::VERSIONS.max {
        return Rewrite::Undecodable(format!(
            "{key:?} v{version} is outside the versions the codec reads ({})",
            T::VERSIONS
        ));
    }
    let header_version = key.response_header_version(version);
    let mut buf = message.clone();
    let header = match ResponseHeader::decode(&mut buf, header_version) {
        Ok(header) => header,
        Err(e) => return Rewrite::Undecodable(format!("the response header: {e:#}")),
    };
    if let Err(e) = guard::check(key, version, &buf) {
        return Rewrite::Undecodable(format!("{key:?} v{version}: {e}"));
    }
    let mut body = match T::decode(&mut buf, version) {
        Ok(body) => body,
        Err(e) => return Rewrite::Undecodable(format!("{key:?} v{version}: {e:#}")),
    };
    match encode(&header, header_version, &body, version) {
        Ok(again) if again == message => {}
        Ok(_) => {
            return Rewrite::Undecodable(format!(
                "{key:?} v{version} does not re-encode byte for byte"
            ))
        }
        Err(e) => return Rewrite::Undecodable(format!("{key:?} v{version}: {e:#}")),
    }
    if !edit(&mut body) {
        return Unchanged;
    }
    match encode(&header, header_version, &body, version) {
        Ok(new) => Rewrite::Changed(new),
        Err(e) => Rewrite::Undecodable(format!("{key:?} v{version} rewritten: {e:#}")),
    }
}

fn encode<T: Encodable>(
    header: &ResponseHeader,
    header_version: i16,
    body: &T,
    version: i16,
) -> anyhow::Result<BytesMut> {
    let mut buf = BytesMut::new();
    header.encode(&mut buf, header_version)?;
    body.encode(&mut buf, version)?;
    Ok(buf)
}

/// Points one advertised address at the proxy in front of it; true if it changed.
fn point_at_proxy(
    node_id: i32,
    host: &mut StrBytes,
    port: &mut i32,
    addresses: &AddressMap,
) -> bool {
    let Some(proxy) = addresses.get(node_id, *port) else {
        return false;
    };
    let proxy_host = proxy.ip().to_string();
    let proxy_port = i32::from(proxy.port());
    if host.as_str() == proxy_host && *port == proxy_port {
        return false;
    }
    *host = StrBytes::from_string(proxy_host);
    *port = proxy_port;
    true
}

#[cfg(test)]
mod tests;
