//! The controller's HTTP server and session-expiry task: the routes of the controller API
//! (topics, metadata, heartbeats, AlterPartition) over one shared [`ControllerState`], and the
//! periodic check that fences at most one broker whose session expired. A heartbeat records
//! its arrival in [`ContactTimes`] before it waits for the controller's lock, so a controller
//! that is busy (a slow metadata write) or was stopped does not mistake heartbeats that were
//! waiting for silence. No metadata rule lives here.

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{ContactTimes, ControllerConfig, ControllerState};
use crate::api::*;
use crate::events::EventLog;

pub type Shared = Arc<Mutex<ControllerState>>;

/// What every route sees: the state machine, and the contact times a heartbeat updates
/// without its lock.
#[derive(Clone)]
struct App {
    state: Shared,
    contacts: Arc<ContactTimes>,
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, ControllerState> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

async fn create_topic(
    State(app): State<App>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(axum::http::StatusCode, axum::Json<TopicMetadata>), ApiError> {
    let req: CreateTopicRequest = parse_body(body)?;
    let topic = lock(&app.state).create_topic(req)?;
    Ok((axum::http::StatusCode::CREATED, axum::Json(topic)))
}

async fn metadata(State(app): State<App>) -> ApiResult<Metadata> {
    Ok(axum::Json(lock(&app.state).metadata()))
}

/// The contact time is taken when the request arrives and recorded before the heartbeat waits
/// for the controller's lock: Kafka's `QuorumController.processBrokerHeartbeat` updates its
/// `BrokerHeartbeatTracker` on the request thread before queueing the heartbeat (KAFKA-17793,
/// PR #17502), and 3.7.0 already renews the session of a heartbeat that timed out in the
/// controller's queue (`processExpiredBrokerHeartbeat`, KAFKA-15019).
async fn heartbeat(
    State(app): State<App>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<HeartbeatResponse> {
    let arrived = Instant::now();
    let req: HeartbeatRequest = parse_body(body)?;
    app.contacts.touch(req.broker_id, req.incarnation, arrived);
    lock(&app.state).heartbeat_at(req, arrived).map(axum::Json)
}

async fn alter_partition(
    State(app): State<App>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<PartitionMetadata> {
    let req: AlterPartitionRequest = parse_body(body)?;
    lock(&app.state).alter_partition(req).map(axum::Json)
}

pub fn router(shared: Shared, max_request_bytes: usize) -> Router {
    let contacts = lock(&shared).contact_times();
    Router::new()
        .route("/v1/topics", post(create_topic))
        .route("/v1/metadata", get(metadata))
        .route("/v1/internal/heartbeat", post(heartbeat))
        .route("/v1/internal/alter-partition", post(alter_partition))
        .fallback(crate::server::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(max_request_bytes))
        .with_state(App {
            state: shared,
            contacts,
        })
}

/// Runs the controller until SIGTERM/SIGINT.
pub async fn run(config: ControllerConfig, listen: std::net::SocketAddr) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data)?;
    let events = Arc::new(EventLog::open(&config.data, json!("controller"))?);
    events.emit(
        "started",
        json!({"incarnation": rand::random::<u32>(), "kafka_version": config.version.as_str()}),
    );
    let session_timeout_ms = config.session_timeout_ms;
    let shared: Shared = Arc::new(Mutex::new(ControllerState::open(config, events)?));
    tokio::spawn(session_expiry_loop(shared.clone(), session_timeout_ms));
    crate::server::serve(listen, router(shared, 1 << 20)).await
}

/// How often sessions are checked: Kafka runs its `maybeFenceStaleBroker` task every session
/// timeout / 4, and at least every millisecond (`QuorumController.maybeFenceStaleBrokerPeriodNs`,
/// KAFKA-17793).
pub fn session_check_period_ms(session_timeout_ms: u64) -> u64 {
    (session_timeout_ms / 4).max(1)
}

/// Checks sessions for the life of the process, fencing at most one broker per check. After
/// a stall of the controller (SIGSTOP, a long pause) every broker looks silent; the first
/// check fences one, and the heartbeats that waited meanwhile renew the others before the
/// next.
async fn session_expiry_loop(shared: Shared, session_timeout_ms: u64) {
    let period = Duration::from_millis(session_check_period_ms(session_timeout_ms));
    loop {
        tokio::time::sleep(period).await;
        let mut state = lock(&shared);
        state.maybe_fence_one_stale_broker(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_checked_every_quarter_of_the_session_timeout() {
        assert_eq!(session_check_period_ms(750), 187);
        assert_eq!(session_check_period_ms(9_000), 2_250);
        assert_eq!(session_check_period_ms(2), 1);
    }
}
