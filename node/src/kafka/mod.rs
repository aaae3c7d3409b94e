//! The Kafka wire protocol on a broker (`--kafka-listen`): the TCP listener, one task per
//! connection, frame reading with a bound on the frame size and on how long a half-written
//! request may take, and the dispatch of each request to its API in [`apis`]. Requests on one
//! connection are handled one at a time, so responses leave in request order (Kafka's
//! SocketServer likewise mutes a connection until its response is sent). This module owns no
//! replication rule and no produce limit: produce, fetch and offsets go through the broker's own
//! paths (`broker::produce::produce`, which checks the limits for both APIs, and
//! `broker::fetch::{read_committed, leader_offsets}`), so records written through either API are
//! the same records and a produce is refused for the same reasons. It depends on the broker,
//! never the other way round; `crate::listeners` starts it. What a request may look like is
//! checked in [`guard`] before the codec crate decodes it; batch conversion lives in
//! [`records`]. docs/kafka-api.md describes what is supported.

pub mod apis;
pub mod guard;
pub mod records;

use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::broker::Broker;

/// How many Kafka connections a broker serves at once; more wait in the accept queue.
pub const MAX_CONNECTIONS: usize = 1024;
/// An idle connection is closed after this long (Kafka's connections.max.idle.ms).
pub const CONNECTIONS_MAX_IDLE_MS: u64 = 600_000;
/// Once a frame's first byte has arrived the rest must arrive within this time, so a
/// half-written request cannot hold a connection task forever.
pub const FRAME_READ_TIMEOUT_MS: u64 = 30_000;

pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for Kafka clients on {addr}: {e}"))?;
    tracing::info!("Kafka listener on {}", listener.local_addr()?);
    Ok(listener)
}

/// Accepts Kafka connections for the life of the process.
pub async fn serve(broker: Arc<Broker>, listener: TcpListener) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Running out of file descriptors is the usual cause: back off briefly.
                tracing::warn!("Kafka accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let broker = broker.clone();
        tokio::spawn(async move {
            if let Err(reason) = connection(&broker, stream).await {
                tracing::info!("Kafka connection from {peer} closed: {reason}");
            }
            drop(permit);
        });
    }
}

/// What to do after one request.
pub enum Reply {
    /// Send this response (header and body, without the size prefix).
    Send(BytesMut),
    /// Send nothing: a Produce with acks=0.
    Nothing,
    /// Close the connection, for this reason (a malformed or unsupported request, as Kafka does).
    Close(String),
}

/// Serves one connection until the client closes it, idles too long or sends a request that
/// closes it. Every error ends only this connection.
async fn connection(broker: &Arc<Broker>, mut stream: TcpStream) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let max_frame_bytes = broker.config.max_request_bytes;
    loop {
        let Some(frame) = read_frame(&mut stream, max_frame_bytes).await? else {
            return Ok(());
        };
        match apis::handle(broker, frame).await {
            Reply::Send(body) => write_frame(&mut stream, &body).await?,
            Reply::Nothing => {}
            Reply::Close(reason) => return Err(reason),
        }
    }
}

/// Reads one size-prefixed frame. `Ok(None)` is a clean end of stream between frames.
async fn read_frame(
    stream: &mut TcpStream,
    max_frame_bytes: usize,
) -> Result<Option<Bytes>, String> {
    let mut size = [0u8; 4];
    let idle = Duration::from_millis(CONNECTIONS_MAX_IDLE_MS);
    match tokio::time::timeout(idle, stream.read(&mut size[..1])).await {
        Err(_) => return Err(format!("idle for {CONNECTIONS_MAX_IDLE_MS} ms")),
        Ok(Ok(0)) => return Ok(None),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(format!("read failed: {e}")),
    }
    let rest = Duration::from_millis(FRAME_READ_TIMEOUT_MS);
    let read = async {
        stream.read_exact(&mut size[1..]).await?;
        let len = i32::from_be_bytes(size);
        if len < 0 || len as usize > max_frame_bytes {
            return Ok(Err(format!(
                "frame of {len} bytes; the limit is {max_frame_bytes} (--max-request-bytes)"
            )));
        }
        let mut body = vec![0u8; len as usize];
        stream.read_exact(&mut body).await?;
        Ok::<_, std::io::Error>(Ok(Bytes::from(body)))
    };
    match tokio::time::timeout(rest, read).await {
        Err(_) => Err(format!(
            "a request was not complete {FRAME_READ_TIMEOUT_MS} ms after it began"
        )),
        Ok(Err(e)) => Err(format!("half-written request: {e}")),
        Ok(Ok(frame)) => frame.map(Some),
    }
}

async fn write_frame(stream: &mut TcpStream, body: &[u8]) -> Result<(), String> {
    let len = i32::try_from(body.len()).map_err(|_| "response over 2 GiB".to_string())?;
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    stream
        .write_all(&out)
        .await
        .map_err(|e| format!("write failed: {e}"))
}
