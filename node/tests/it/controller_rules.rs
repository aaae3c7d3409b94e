//! The controller's Kafka rules with real processes: a controller stopped (SIGSTOP) for longer
//! than the session timeout fences at most one broker when it runs again, as Kafka's
//! `maybeFenceOneStaleBroker` and its arrival-time heartbeats make it; a restarted controller
//! keeps a dead broker fenced and gives the live ones a fresh session
//! (`ClusterControlManager.activate`); and every registration has its own broker epoch.

use serde_json::Value;
use std::time::{Duration, Instant};

use crate::support::*;

fn brokers(md: &Value) -> Vec<Value> {
    md["brokers"].as_array().cloned().unwrap_or_default()
}

fn session_fencings(c: &Cluster) -> usize {
    c.events("controller")
        .iter()
        .filter(|e| e["type"] == "broker_fenced" && e["reason"] == "session_timeout")
        .count()
}

/// Issue 20 row 3. The controller is stopped for three session timeouts while the brokers keep
/// heartbeating into its socket buffers. When it runs again every session looks expired; it
/// fences at most one broker (one per check) before the waiting heartbeats renew the others,
/// and every broker is unfenced again soon after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_stopped_past_the_session_timeout_fences_at_most_one_broker() {
    let c = Cluster::start(Settings::default()).await;
    c.create_topic("t", 3, 3, 1, false).await;
    let pid = c.controller_pid();
    let before = session_fencings(&c);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    assert!(
        faultline_launch::wait_stopped(pid.as_raw() as u32, true, Duration::from_secs(5)),
        "the controller did not stop"
    );
    tokio::time::sleep(Duration::from_millis(3 * c.settings.session_timeout_ms)).await;
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let resumed = Instant::now();
    c.poll(
        "every broker unfenced after the resume",
        Duration::from_secs(15),
        || async {
            let md = c.metadata().await.ok()?;
            brokers(&md)
                .iter()
                .all(|b| b["alive"] == true)
                .then_some(())
        },
    )
    .await;
    // Two more session timeouts: any fencing the stall causes has happened by then.
    let settle = Duration::from_millis(2 * c.settings.session_timeout_ms);
    tokio::time::sleep(settle.saturating_sub(resumed.elapsed())).await;
    let fenced = session_fencings(&c) - before;
    assert!(
        fenced <= 1,
        "{fenced} brokers fenced after the controller resumed\n{}",
        c.diagnostics()
    );
}

/// Issue 20 row 2. A broker killed and fenced before the controller restarts is still fenced
/// after it (Kafka restores the fenced flag from the registration); the live brokers keep
/// their sessions through the restart; each registration has its own broker epoch (KIP-903).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_keeps_a_dead_broker_fenced() {
    let mut c = Cluster::start(Settings::default()).await;
    c.create_topic("t", 1, 3, 1, false).await;
    let md = c.metadata().await.unwrap();
    let mut epochs: Vec<u64> = brokers(&md)
        .iter()
        .filter_map(|b| b["epoch"].as_u64())
        .collect();
    epochs.sort_unstable();
    epochs.dedup();
    assert_eq!(epochs.len(), 3, "one broker epoch per registration: {md}");
    c.kill(3);
    c.poll("broker 3 to be fenced", Duration::from_secs(10), || async {
        let md = c.metadata().await.ok()?;
        (brokers(&md)[2]["alive"] == false).then_some(())
    })
    .await;
    c.restart_controller();
    let md = c
        .poll(
            "the restarted controller to answer",
            Duration::from_secs(10),
            || async { c.metadata().await.ok() },
        )
        .await;
    let alive: Vec<bool> = brokers(&md).iter().map(|b| b["alive"] == true).collect();
    assert_eq!(
        alive,
        vec![true, true, false],
        "as before the restart: {md}"
    );
    let watch_until = Instant::now() + Duration::from_millis(2 * c.settings.session_timeout_ms);
    while Instant::now() < watch_until {
        let md = c.metadata().await.unwrap();
        let alive: Vec<bool> = brokers(&md).iter().map(|b| b["alive"] == true).collect();
        assert_eq!(alive, vec![true, true, false], "{md}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!c.isr("t", 0).await.contains(&3));
}
