//! The controller's HTTP server and ticker: the routes of the controller API (topics,
//! metadata, heartbeats, AlterPartition) over one shared [`ControllerState`], and the task that
//! expires broker sessions (forgiving a stall of the controller itself). No metadata rule lives
//! here.

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{ControllerConfig, ControllerState};
use crate::api::*;
use crate::events::EventLog;

pub type Shared = Arc<Mutex<ControllerState>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, ControllerState> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

async fn create_topic(
    State(shared): State<Shared>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(axum::http::StatusCode, axum::Json<TopicMetadata>), ApiError> {
    let req: CreateTopicRequest = parse_body(body)?;
    let topic = lock(&shared).create_topic(req)?;
    Ok((axum::http::StatusCode::CREATED, axum::Json(topic)))
}

async fn metadata(State(shared): State<Shared>) -> ApiResult<Metadata> {
    Ok(axum::Json(lock(&shared).metadata()))
}

async fn heartbeat(
    State(shared): State<Shared>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<HeartbeatResponse> {
    let req: HeartbeatRequest = parse_body(body)?;
    lock(&shared).heartbeat(req).map(axum::Json)
}

async fn alter_partition(
    State(shared): State<Shared>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<PartitionMetadata> {
    let req: AlterPartitionRequest = parse_body(body)?;
    lock(&shared).alter_partition(req).map(axum::Json)
}

pub fn router(shared: Shared, max_request_bytes: usize) -> Router {
    Router::new()
        .route("/v1/topics", post(create_topic))
        .route("/v1/metadata", get(metadata))
        .route("/v1/internal/heartbeat", post(heartbeat))
        .route("/v1/internal/alter-partition", post(alter_partition))
        .fallback(crate::server::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(max_request_bytes))
        .with_state(shared)
}

/// Runs the controller until SIGTERM/SIGINT.
pub async fn run(config: ControllerConfig, listen: std::net::SocketAddr) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data)?;
    let events = Arc::new(EventLog::open(&config.data, json!("controller"))?);
    events.emit("started", json!({"incarnation": rand::random::<u32>()}));
    let session_timeout_ms = config.session_timeout_ms;
    let shared: Shared = Arc::new(Mutex::new(ControllerState::open(config, events)?));
    tokio::spawn(expiry_ticker(shared.clone(), session_timeout_ms));
    crate::server::serve(listen, router(shared, 1 << 20)).await
}

/// Expires broker sessions for the life of the process. A tick that comes much later than
/// planned means the controller itself was stalled: brokers' silence then is forgiven.
async fn expiry_ticker(shared: Shared, session_timeout_ms: u64) {
    let period = Duration::from_millis((session_timeout_ms / 10).clamp(10, 100));
    let mut last_tick = Instant::now();
    loop {
        tokio::time::sleep(period).await;
        let gap = last_tick.elapsed();
        last_tick = Instant::now();
        let mut state = lock(&shared);
        if gap > period * 2 + Duration::from_millis(200) {
            state.forgive_stall(gap);
        }
        state.expire_sessions();
    }
}
