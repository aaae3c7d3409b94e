//! How a broker stops when it is asked to (SIGTERM or SIGINT): a controlled shutdown, as Kafka's
//! brokers do. The broker keeps serving; it stops fetching for partitions whose metadata now
//! leaves it outside the ISR or without a leader; its heartbeats ask the controller to let it go
//! (`want_shutdown`), so the controller moves its leaderships and takes it out of every ISR; and
//! once the controller answers `should_shut_down`, or after [`CONTROLLED_SHUTDOWN_TIMEOUT_MS`],
//! or at a second SIGTERM/SIGINT, or (0.10.2) after its last refused ask, it stops and closes
//! its logs cleanly. SIGKILL is a crash and knows none of this. Kafka source (tags `3.7.0`,
//! `0.10.2.1`; paths under `core/src/main/scala/kafka/`):
//! - 3.7.0 `server/BrokerServer.scala` `shutdown`: `replicaManager.beginControlledShutdown()`,
//!   `lifecycleManager.beginControlledShutdown()`, then a wait of up to 5 minutes on
//!   `controlledShutdownFuture` ("Timed out waiting for the controller to approve controlled
//!   shutdown"), then `lifecycleManager.beginShutdown()` and the components' shutdown.
//! - 3.7.0 `server/BrokerLifecycleManager.scala`: `BeginControlledShutdownEvent` (RUNNING →
//!   PENDING_CONTROLLED_SHUTDOWN and an immediate heartbeat; in any other state "Skipping
//!   controlled shutdown" and shut down at once), `sendBrokerHeartbeat` (`setWantShutDown(state
//!   == PENDING_CONTROLLED_SHUTDOWN)`, `setBrokerEpoch`), `BrokerHeartbeatResponseEvent`
//!   (`shouldShutDown` → `beginShutdown()`; the first answer that does not let it go brings the
//!   next heartbeat forward to 50 ms).
//! - 3.7.0 `server/ReplicaManager.scala` `beginControlledShutdown`, `applyLocalFollowersDelta`
//!   ("During controlled shutdown, replica with no leaders and replica where this broker is not
//!   in the ISR are stopped"); the broker applies that in `Broker::apply_metadata`.
//! - 0.10.2.1 `server/KafkaServer.scala` `controlledShutdown` (`rules.zk_controlled_shutdown`):
//!   only once started (`startupComplete`), it sends a ControlledShutdownRequest, and while the
//!   answer names partitions it still leads (or is an error, or none comes) it sleeps
//!   `controlled.shutdown.retry.backoff.ms` (5000) and asks again, at most
//!   `controlled.shutdown.max.retries` (3) times in all; after the backoff that follows the
//!   last refusal it logs "Proceeding to do an unclean shutdown" and shuts down as usual, logs
//!   closed cleanly. Each request runs the controller's `KafkaController.shutdownBroker` anew
//!   (`controller/liveness.rs` `shutdown_broker`). The node asks with a heartbeat's
//!   `want_shutdown` ([`Lifecycle::zk_ask_due`], [`CONTROLLED_SHUTDOWN_MAX_RETRIES`],
//!   [`CONTROLLED_SHUTDOWN_RETRY_BACKOFF_MS`]); the heartbeats in between ask nothing and keep
//!   the session alive, as the broker's ZooKeeper session does. A broker whose asks are all
//!   refused stops about 15 s after the first, with [`Outcome::RetriesExhausted`], and its
//!   session then expires at the controller (Kafka's closes with the ZooKeeper client); one
//!   that still leads a replicated partition no other ISR member can take thus stops leading
//!   it only then. [`CONTROLLED_SHUTDOWN_TIMEOUT_MS`] bounds this too.
//!
//! The state here ([`Lifecycle`]) is read by the heartbeat loop and the metadata path; the
//! signals themselves are caught in `main.rs` and handed over as [`StopRequests`].

use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::Shared;

/// How long a broker waits for the controller to let it go before it stops anyway. Kafka's
/// `BrokerServer.shutdown` waits 5 minutes; the node's tests, and the harness's 5 s between
/// SIGTERM and SIGKILL, want less, and a controller that is up answers within a few
/// heartbeats. A second SIGTERM or SIGINT stops the broker at once.
pub const CONTROLLED_SHUTDOWN_TIMEOUT_MS: u64 = 30_000;

/// Kafka's `BrokerLifecycleManager`: after the first heartbeat answer in controlled shutdown
/// that does not yet let the broker go, the next heartbeat comes after 50 ms rather than the
/// heartbeat interval, "in the case where controlled shutdown completes quickly".
pub const CONTROLLED_SHUTDOWN_FIRST_RETRY_MS: u64 = 50;

/// 0.10.2.1 `controlled.shutdown.max.retries` (`KafkaConfig.Defaults.ControlledShutdownMaxRetries`):
/// how many times a broker asks the controller to let it go before it stops anyway.
pub const CONTROLLED_SHUTDOWN_MAX_RETRIES: u32 = 3;

/// 0.10.2.1 `controlled.shutdown.retry.backoff.ms` (`Defaults.ControlledShutdownRetryBackoffMs`):
/// the pause after every refused or failed ask, the last one included, so a broker whose asks
/// are all refused stops about 3 × 5 s after the first.
pub const CONTROLLED_SHUTDOWN_RETRY_BACKOFF_MS: u64 = 5_000;

/// The stop requests of the process, one per SIGTERM or SIGINT, named by the signal.
pub type StopRequests = tokio::sync::mpsc::Receiver<&'static str>;

/// Where the broker is in its life (Kafka's `BrokerState`, the part the node needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Running,
    /// Kafka's PENDING_CONTROLLED_SHUTDOWN: heartbeats carry `want_shutdown`.
    PendingControlledShutdown,
    /// Kafka's SHUTTING_DOWN: no more heartbeats or fetches; the logs are being closed.
    ShuttingDown,
}

/// The broker's lifecycle state, and the wake-up of its heartbeat loop.
pub struct Lifecycle {
    state: watch::Sender<State>,
    heartbeat_now: Notify,
    /// A heartbeat answer has come since the controlled shutdown began.
    answered: AtomicBool,
    /// 0.10.2.1's asks so far.
    asks: Mutex<Asks>,
}

/// 0.10.2.1 `KafkaServer.controlledShutdown`'s loop, spread over the heartbeats: how many
/// ControlledShutdownRequests went out, and when the next may, after the backoff that follows
/// a refusal.
#[derive(Debug, Default)]
struct Asks {
    made: u32,
    /// An ask went out and its answer (or failure) has not been taken yet.
    in_flight: bool,
    next_at: Option<Instant>,
    /// All [`CONTROLLED_SHUTDOWN_MAX_RETRIES`] were refused and the last backoff is over:
    /// "Proceeding to do an unclean shutdown".
    exhausted: bool,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            state: watch::channel(State::Running).0,
            heartbeat_now: Notify::new(),
            answered: AtomicBool::new(false),
            asks: Mutex::new(Asks::default()),
        }
    }
}

impl Lifecycle {
    pub fn state(&self) -> State {
        *self.state.borrow()
    }

    /// Kafka's `ReplicaManager.isInControlledShutdown`: set at the start of a controlled
    /// shutdown and never cleared.
    pub fn in_controlled_shutdown(&self) -> bool {
        self.state() != State::Running
    }

    /// Heartbeats ask the controller to let the broker go.
    pub fn wants_shutdown(&self) -> bool {
        self.state() == State::PendingControlledShutdown
    }

    pub fn is_shutting_down(&self) -> bool {
        self.state() == State::ShuttingDown
    }

    /// RUNNING → PENDING_CONTROLLED_SHUTDOWN, with a heartbeat at once.
    pub(super) fn begin_controlled_shutdown(&self) {
        self.state.send_if_modified(|s| {
            let begin = *s == State::Running;
            if begin {
                *s = State::PendingControlledShutdown;
            }
            begin
        });
        self.heartbeat_now.notify_one();
    }

    /// Kafka's `BrokerLifecycleManager.beginShutdown`: no more heartbeats.
    pub fn begin_shutdown(&self) {
        self.state.send_replace(State::ShuttingDown);
        self.heartbeat_now.notify_one();
    }

    /// The controller's answer to a heartbeat that asked to shut down. Returns how long to wait
    /// before the next heartbeat, when it is not the usual interval.
    pub fn on_shutdown_answer(&self, should_shut_down: bool) -> Option<Duration> {
        if should_shut_down {
            self.begin_shutdown();
            return None;
        }
        let first = !self.answered.swap(true, Ordering::Relaxed);
        first.then(|| Duration::from_millis(CONTROLLED_SHUTDOWN_FIRST_RETRY_MS))
    }

    fn asks(&self) -> std::sync::MutexGuard<'_, Asks> {
        self.asks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// 0.10.2.1: whether the heartbeat about to go out is one of `controlledShutdown`'s asks.
    /// The first comes at once, each next one [`CONTROLLED_SHUTDOWN_RETRY_BACKOFF_MS`] after the
    /// previous was refused; the heartbeats in between only keep the session alive, as the
    /// ZooKeeper session of a 0.10 broker outlives its asks. Once the backoff after the last
    /// of [`CONTROLLED_SHUTDOWN_MAX_RETRIES`] refusals is over, the broker stops anyway: this
    /// begins the shutdown and answers false.
    pub fn zk_ask_due(&self, now: Instant) -> bool {
        if !self.wants_shutdown() {
            return false;
        }
        let mut asks = self.asks();
        if asks.in_flight || asks.next_at.is_some_and(|at| now < at) {
            return false;
        }
        if asks.made == CONTROLLED_SHUTDOWN_MAX_RETRIES {
            asks.exhausted = true;
            drop(asks);
            tracing::warn!(
                "proceeding to do an unclean shutdown as all the controlled shutdown attempts \
                 failed (0.10.2: the logs are still closed cleanly)"
            );
            self.begin_shutdown();
            return false;
        }
        asks.made += 1;
        asks.in_flight = true;
        true
    }

    /// 0.10.2.1: the answer to an ask. `None` is an ask that failed (no answer, an error):
    /// Kafka counts that attempt as refused too. A refusal starts the backoff.
    pub fn on_zk_answer(&self, should_shut_down: Option<bool>, now: Instant) {
        if should_shut_down == Some(true) {
            self.begin_shutdown();
            return;
        }
        let backoff = Duration::from_millis(CONTROLLED_SHUTDOWN_RETRY_BACKOFF_MS);
        let mut asks = self.asks();
        asks.in_flight = false;
        asks.next_at = Some(now + backoff);
    }

    /// The asks made so far (0.10.2).
    pub fn zk_asks_made(&self) -> u32 {
        self.asks().made
    }

    fn zk_retries_exhausted(&self) -> bool {
        self.asks().exhausted
    }

    /// Sleeps until the next heartbeat is due, or one is wanted now.
    pub async fn wait_for_heartbeat(&self, delay: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = self.heartbeat_now.notified() => {}
        }
    }

    async fn shutting_down(&self) {
        let mut rx = self.state.subscribe();
        // The sender lives as long as `self`, so the wait ends only when the state is reached.
        let _ = rx.wait_for(|s| *s == State::ShuttingDown).await;
    }
}

/// How a stop ended its controlled shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The controller answered `should_shut_down`.
    Approved,
    /// [`CONTROLLED_SHUTDOWN_TIMEOUT_MS`] passed without that answer.
    TimedOut,
    /// A second SIGTERM or SIGINT.
    Forced,
    /// 0.10.2.1: every one of the [`CONTROLLED_SHUTDOWN_MAX_RETRIES`] asks was refused (or
    /// failed), and the backoff after the last is over ("Proceeding to do an unclean shutdown";
    /// the logs are closed cleanly all the same).
    RetriesExhausted,
    /// No controlled shutdown: the broker was not running yet (not registered, or fenced), as
    /// Kafka skips it outside RUNNING (0.10.2.1: before startup completed).
    NotRunning,
    /// The Kafka version has no controlled shutdown.
    NotInVersion,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Approved => "approved",
            Outcome::TimedOut => "timed_out",
            Outcome::Forced => "forced",
            Outcome::RetriesExhausted => "retries_exhausted",
            Outcome::NotRunning => "not_running",
            Outcome::NotInVersion => "not_in_version",
        }
    }
}

/// Stops the broker after a stop request `signal`: a controlled shutdown when the version has
/// one and the broker is running, ended by the controller, the deadline or another signal
/// from `stops`; then no more heartbeats or fetches. Writes `controlled_shutdown_started` and
/// `shutdown`. The caller then stops serving and closes the logs.
pub async fn stop(broker: &Shared, signal: &str, stops: &mut StopRequests) -> Outcome {
    let started = Instant::now();
    let outcome = if !broker.config.version.rules().controlled_shutdown {
        Outcome::NotInVersion
    } else if !broker.is_running() {
        Outcome::NotRunning
    } else {
        controlled_shutdown(broker, stops).await
    };
    broker.lifecycle.begin_shutdown();
    let mut event = json!({"signal": signal, "controlled": outcome.as_str(),
                           "waited_ms": started.elapsed().as_millis() as u64});
    if broker.config.version.rules().zk_controlled_shutdown {
        event["asks"] = json!(broker.lifecycle.zk_asks_made());
    }
    broker.events.emit("shutdown", event);
    tracing::info!(
        "stopping after {signal}: controlled shutdown {}",
        outcome.as_str()
    );
    outcome
}

async fn controlled_shutdown(broker: &Shared, stops: &mut StopRequests) -> Outcome {
    broker.lifecycle.begin_controlled_shutdown();
    broker.events.emit(
        "controlled_shutdown_started",
        json!({"broker_epoch": broker.broker_epoch(), "timeout_ms": CONTROLLED_SHUTDOWN_TIMEOUT_MS}),
    );
    let deadline = tokio::time::sleep(Duration::from_millis(CONTROLLED_SHUTDOWN_TIMEOUT_MS));
    tokio::select! {
        _ = broker.lifecycle.shutting_down() => {
            if broker.lifecycle.zk_retries_exhausted() {
                Outcome::RetriesExhausted
            } else {
                Outcome::Approved
            }
        }
        _ = deadline => {
            tracing::error!("timed out waiting for the controller to approve controlled shutdown");
            Outcome::TimedOut
        }
        Some(signal) = stops.recv() => {
            tracing::warn!("{signal} during the controlled shutdown: stopping now");
            Outcome::Forced
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BrokerLifecycleManager: PENDING_CONTROLLED_SHUTDOWN heartbeats want the shutdown; the
    /// first answer that does not allow it brings the next heartbeat forward, later ones do
    /// not; `shouldShutDown` ends the heartbeats.
    #[test]
    fn the_lifecycle_follows_kafkas_broker_states() {
        let l = Lifecycle::default();
        assert!(!l.in_controlled_shutdown() && !l.wants_shutdown());
        l.begin_controlled_shutdown();
        assert!(l.wants_shutdown() && l.in_controlled_shutdown());
        assert_eq!(
            l.on_shutdown_answer(false),
            Some(Duration::from_millis(CONTROLLED_SHUTDOWN_FIRST_RETRY_MS))
        );
        assert_eq!(l.on_shutdown_answer(false), None, "only the first");
        assert_eq!(l.on_shutdown_answer(true), None);
        assert!(l.is_shutting_down() && l.in_controlled_shutdown());
        l.begin_controlled_shutdown();
        assert!(l.is_shutting_down(), "no way back to a pending shutdown");
    }

    /// 0.10.2.1 `KafkaServer.controlledShutdown`: the first ask at once, the next ones 5 s after
    /// a refusal (a failed ask counts as one), none while one is unanswered, and once the
    /// backoff after the third refusal is over the broker stops anyway.
    #[test]
    fn a_0_10_2_broker_asks_three_times_five_seconds_apart_then_stops_anyway() {
        let l = Lifecycle::default();
        let t0 = Instant::now();
        assert!(!l.zk_ask_due(t0), "no controlled shutdown yet");
        l.begin_controlled_shutdown();
        assert!(l.zk_ask_due(t0), "the first ask at once");
        assert!(!l.zk_ask_due(t0), "not while it is unanswered");
        let backoff = Duration::from_millis(CONTROLLED_SHUTDOWN_RETRY_BACKOFF_MS);
        let mut refused_at = t0;
        for answer in [Some(false), None] {
            l.on_zk_answer(answer, refused_at);
            assert!(!l.zk_ask_due(refused_at + backoff - Duration::from_millis(1)));
            refused_at += backoff;
            assert!(
                l.zk_ask_due(refused_at),
                "{answer:?}: asked again after the backoff"
            );
        }
        l.on_zk_answer(Some(false), refused_at);
        assert_eq!(l.asks().made, CONTROLLED_SHUTDOWN_MAX_RETRIES);
        assert!(!l.zk_ask_due(refused_at + backoff / 2) && !l.is_shutting_down());
        assert!(!l.zk_ask_due(refused_at + backoff), "no fourth ask");
        assert!(l.is_shutting_down() && l.zk_retries_exhausted());
        let approved = Lifecycle::default();
        approved.begin_controlled_shutdown();
        assert!(approved.zk_ask_due(t0));
        approved.on_zk_answer(Some(true), t0);
        assert!(approved.is_shutting_down() && !approved.zk_retries_exhausted());
    }

    #[tokio::test]
    async fn a_heartbeat_is_sent_at_once_when_the_controlled_shutdown_begins() {
        let l = Lifecycle::default();
        let woke = tokio::time::timeout(Duration::from_secs(5), async {
            l.begin_controlled_shutdown();
            l.wait_for_heartbeat(Duration::from_secs(60)).await;
        })
        .await;
        assert!(woke.is_ok(), "the heartbeat wait ends at once");
    }
}
