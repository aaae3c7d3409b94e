//! The broker's Kafka rules that show only across processes (issue 20): a fetch from a previous
//! incarnation of a broker, naming its old broker epoch, is refused by the leader and cannot put
//! it back in the ISR (KIP-903, Kafka 3.7.0 `Replica.updateFetchStateOrThrow`); and SIGTERM is a
//! controlled shutdown: the broker's leaderships move and it leaves every ISR before it exits,
//! with its logs closed cleanly (3.7.0 `BrokerServer.shutdown`, 0.10.2.1
//! `KafkaServer.controlledShutdown`), while a second SIGTERM stops it at once.

use nix::sys::signal::{kill, Signal};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

use crate::support::*;

/// A broker's registration epoch, as the controller publishes it.
async fn broker_epoch(c: &Cluster, id: u32) -> Option<u64> {
    let md = c.metadata().await.ok()?;
    md["brokers"]
        .as_array()?
        .iter()
        .find(|b| b["id"] == id && b["alive"] == true)?["epoch"]
        .as_u64()
}

/// Waits (bounded) for a broker process to exit on its own; returns its status.
async fn exit_status(c: &mut Cluster, id: u32, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = c.exited(id) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "broker {id} did not exit within {timeout:?}\n{}",
            c.diagnostics()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn position(events: &[Value], what: impl Fn(&Value) -> bool) -> Option<usize> {
    events.iter().position(what)
}

/// KIP-903 across processes. Broker 3 cannot reach the leader (1) at all, so it stays out of
/// the ISR; it restarts, and its new registration has a new broker epoch. A fetch in the name
/// of the previous incarnation (as a delayed request of it would arrive), claiming the
/// leader's whole log, is refused with NOT_LEADER_OR_FOLLOWER, written as
/// `stale_fetch_refused`, and changes nothing: broker 3 stays out of the ISR. The same fetch
/// with the current epoch is taken, and earns the expansion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_previous_incarnations_fetch_is_refused_and_does_not_rejoin_the_isr() {
    let settings = Settings {
        unreachable: vec![(3, 1)],
        ..Settings::default()
    };
    let mut c = Cluster::start(settings).await;
    c.create_topic("t", 1, 3, 1, false).await;
    assert_eq!(c.leader("t", 0).await, Some(1), "the first replica leads");
    let (status, body) = c.produce(1, "t", 0, "1", &values("r", 5), 5_000).await;
    assert_eq!(status, 200, "{body}");
    c.poll(
        "broker 3 out of the ISR",
        Duration::from_secs(10),
        || async { (!c.isr("t", 0).await.contains(&3)).then_some(()) },
    )
    .await;
    let old = c
        .poll("broker 3's epoch", Duration::from_secs(5), || {
            broker_epoch(&c, 3)
        })
        .await;
    c.restart(3);
    let new = c
        .poll(
            "broker 3's new registration",
            Duration::from_secs(15),
            || async { broker_epoch(&c, 3).await.filter(|&e| e != old) },
        )
        .await;
    assert!(
        new > old,
        "a new registration has a larger epoch: {old} then {new}"
    );
    // The leader must know the new registration before the stale fetch means anything.
    c.poll("the leader's metadata", Duration::from_secs(5), || async {
        let (_, md) = c.get(&c.broker_url(1, "/v1/metadata")).await.ok()?;
        let three = md["brokers"]
            .as_array()?
            .iter()
            .find(|b| b["id"] == 3)?
            .clone();
        (three["epoch"] == new && three["alive"] == true).then_some(())
    })
    .await;
    let leader = c.replica_state(1, "t", 0).await.unwrap();
    let cluster_id = c.state(1).await.unwrap()["cluster_id"].clone();
    let fetch = |epoch: u64| {
        json!({"cluster_id": cluster_id, "replica_id": 3, "topic": "t", "partition": 0,
               "fetch_offset": leader["log_end_offset"], "last_fetched_epoch": 0,
               "broker_epoch": epoch, "current_leader_epoch": leader["leader_epoch"],
               "max_records": 10, "max_wait_ms": 0})
    };
    let url = c.broker_url(1, "/v1/internal/replica-fetch");
    let (status, body) = c.post(&url, &fetch(old)).await.unwrap();
    assert_eq!(status, 421, "{body}");
    assert_eq!(body["error"], "NOT_LEADER_OR_FOLLOWER");
    let refused = c
        .events("1")
        .into_iter()
        .find(|e| e["type"] == "stale_fetch_refused")
        .expect("a stale_fetch_refused event");
    assert_eq!(
        (
            &refused["broker"],
            &refused["broker_epoch"],
            &refused["current_broker_epoch"]
        ),
        (&json!(3), &json!(old), &json!(new))
    );
    // Nothing changed: no expansion was proposed, so none can be committed (checked twice,
    // a check period apart).
    for _ in 0..2 {
        assert!(!c.isr("t", 0).await.contains(&3));
        let three = c.replica_state(1, "t", 0).await.unwrap()["followers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == 3)
            .cloned()
            .unwrap();
        assert_ne!(three["log_end_offset"], leader["log_end_offset"], "{three}");
        tokio::time::sleep(Duration::from_millis(
            c.settings.replica_lag_time_max_ms / 2,
        ))
        .await;
    }
    let (status, _) = c.post(&url, &fetch(new)).await.unwrap();
    assert_eq!(status, 200);
    c.poll(
        "the current incarnation's fetch to expand the ISR",
        Duration::from_secs(5),
        || async { c.isr("t", 0).await.contains(&3).then_some(()) },
    )
    .await;
}

/// SIGTERM on the leader of a partition: its heartbeats ask to shut down, the controller moves
/// the leadership and takes it out of the ISR, the broker hears of it (a role change) before
/// it exits with status 0 once the controller lets it go, and it closed its logs cleanly.
/// Acknowledged records survive and acks=all works on the new leader. The same for 4.1 and
/// 0.10.2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_moves_leadership_away_before_the_broker_exits() {
    for protocol in ["current", "legacy-hw"] {
        let settings = Settings {
            protocol,
            ..Settings::default()
        };
        let mut c = Cluster::start(settings).await;
        c.create_topic("t", 1, 3, 2, false).await;
        let old = c.leader("t", 0).await.unwrap();
        let acked = values("acked", 10);
        let (status, body) = c.produce(old, "t", 0, "all", &acked, 5_000).await;
        assert_eq!(status, 200, "{protocol}: {body}");
        let term = Instant::now();
        kill(c.broker_pid(old), Signal::SIGTERM).unwrap();
        let status = exit_status(&mut c, old, Duration::from_secs(20)).await;
        assert!(status.success(), "{protocol}: {status}");
        eprintln!("{protocol}: controlled shutdown in {:?}", term.elapsed());
        let events = c.events(&old.to_string());
        let started = position(&events, |e| e["type"] == "controlled_shutdown_started");
        let moved = position(&events, |e| {
            e["type"] == "role_change" && e["topic"] == "t" && e["role"] != "leader"
        });
        let stopped = position(&events, |e| e["type"] == "shutdown");
        let (Some(started), Some(moved), Some(stopped)) = (started, moved, stopped) else {
            panic!("{protocol}: events missing: {events:#?}");
        };
        assert!(
            started < moved && moved < stopped,
            "{protocol}: {events:#?}"
        );
        assert_eq!(events[stopped]["controlled"], "approved", "{protocol}");
        let p = c.partition("t", 0).await;
        let new = p["leader"].as_u64().expect("a new leader") as u32;
        assert_ne!(new, old, "{protocol}");
        assert!(!c.isr("t", 0).await.contains(&old), "{protocol}: {p}");
        c.poll("the new leader to lead", Duration::from_secs(5), || async {
            (c.replica_state(new, "t", 0).await?["role"] == "leader").then_some(())
        })
        .await;
        // The new leader's HW reaches the acknowledged records once its followers fetched.
        let records = c
            .poll(
                "the acknowledged records on the new leader",
                Duration::from_secs(10),
                || async {
                    let (_, records) = c.read_all(new, "t", 0).await;
                    (records.len() >= acked.len()).then_some(records)
                },
            )
            .await;
        let kept: Vec<&String> = records.iter().map(|(_, v)| v).collect();
        assert_eq!(kept, acked.iter().collect::<Vec<_>>(), "{protocol}");
        let (status, body) = c
            .produce(new, "t", 0, "all", &values("after", 3), 5_000)
            .await;
        assert_eq!(status, 200, "{protocol}: {body}");
        c.restart(old);
        c.poll(
            "the stopped broker back",
            Duration::from_secs(15),
            || async {
                c.events(&old.to_string())
                    .into_iter()
                    .filter(|e| e["type"] == "recovery" && e["topic"] == "t")
                    .nth(1)
            },
        )
        .await;
        let recovery = c
            .events(&old.to_string())
            .into_iter()
            .filter(|e| e["type"] == "recovery" && e["topic"] == "t")
            .nth(1)
            .unwrap();
        assert_eq!(recovery["clean_shutdown"], true, "{protocol}: {recovery}");
    }
}

/// With the controller stopped, a SIGTERM-ed broker waits for an answer that cannot come; a
/// second SIGTERM ends the wait at once (`shutdown` says `forced`), and the logs are still
/// closed cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_stops_a_broker_whose_controlled_shutdown_waits() {
    let mut c = Cluster::start(Settings::default()).await;
    c.create_topic("t", 1, 3, 1, false).await;
    // `create_topic` waits for the leader only: broker 2 must host t/0 before the controller
    // stops, or it has no log to close.
    c.poll("broker 2 to host t/0", Duration::from_secs(10), || async {
        c.replica_state(2, "t", 0).await.map(|_| ())
    })
    .await;
    let controller = c.controller_pid();
    kill(controller, Signal::SIGSTOP).unwrap();
    assert!(faultline_launch::wait_stopped(
        controller.as_raw() as u32,
        true,
        Duration::from_secs(5)
    ));
    let broker = c.broker_pid(2);
    kill(broker, Signal::SIGTERM).unwrap();
    c.poll(
        "the controlled shutdown to begin",
        Duration::from_secs(5),
        || async {
            c.events("2")
                .iter()
                .any(|e| e["type"] == "controlled_shutdown_started")
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(c.exited(2).is_none(), "it waits for the controller");
    kill(broker, Signal::SIGTERM).unwrap();
    let status = exit_status(&mut c, 2, Duration::from_secs(10)).await;
    kill(controller, Signal::SIGCONT).unwrap();
    assert!(status.success(), "{status}");
    let events = c.events("2");
    let shutdown = events.iter().find(|e| e["type"] == "shutdown").unwrap();
    assert_eq!(shutdown["controlled"], "forced", "{shutdown}");
    let dump_ok = std::process::Command::new(NODE_BIN)
        .args(["dump", "--data"])
        .arg(c.data_dir(2))
        .output()
        .unwrap();
    assert!(dump_ok.status.success());
    let torn = String::from_utf8(dump_ok.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("summary").is_some())
        .map(|v| v["torn_bytes"].as_u64().unwrap_or(0))
        .sum::<u64>();
    assert_eq!(torn, 0);
    assert!(
        c.data_dir(2).join("t-0").join("clean-shutdown").exists(),
        "the log was closed cleanly"
    );
}

/// KIP-966's detection of an unclean shutdown (Kafka 3.8.0, KAFKA-15582 and KAFKA-15586): a
/// broker stopped by SIGTERM leaves its broker epoch in `clean-shutdown.json`; a SIGKILL-ed one
/// leaves none. Restarted, each consumes its marker before it serves and names what it read as
/// `previous_broker_epoch`: the controller counts the first as a clean return and the second as
/// an unclean shutdown (what each then does to ISR and ELR is in `controller/liveness_tests.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_leaves_the_broker_epoch_for_the_next_registration_and_a_sigkill_does_not() {
    use faultline_node::broker::clean_shutdown::{CleanShutdown, CLEAN_SHUTDOWN_FILE};
    let mut c = Cluster::start(Settings::default()).await;
    c.create_topic("t", 1, 3, 2, false).await;
    let leader = c.leader("t", 0).await.unwrap();
    let (clean, crashed) = match leader {
        1 => (2, 3),
        2 => (1, 3),
        _ => (1, 2),
    };
    let epoch = broker_epoch(&c, clean).await.expect("registered");
    kill(c.broker_pid(clean), Signal::SIGTERM).unwrap();
    let status = exit_status(&mut c, clean, Duration::from_secs(20)).await;
    assert!(status.success(), "{status}");
    let marker = c.data_dir(clean).join(CLEAN_SHUTDOWN_FILE);
    let written: CleanShutdown =
        serde_json::from_slice(&std::fs::read(&marker).expect("a marker")).unwrap();
    assert_eq!(written.broker_epoch, epoch);
    c.kill(crashed);
    let crashed_marker = c.data_dir(crashed).join(CLEAN_SHUTDOWN_FILE);
    assert!(!crashed_marker.exists(), "SIGKILL leaves no marker");

    c.restart(clean);
    c.restart(crashed);
    let registrations = |id: u32| {
        c.events("controller")
            .into_iter()
            .filter(move |e| e["type"] == "broker_registered" && e["broker"] == id)
            .collect::<Vec<_>>()
    };
    let (back, back_crashed) = c
        .poll(
            "both brokers registered again",
            Duration::from_secs(15),
            || async {
                let back = registrations(clean).get(1).cloned()?;
                let back_crashed = registrations(crashed).get(1).cloned()?;
                Some((back, back_crashed))
            },
        )
        .await;
    assert!(!marker.exists(), "consumed at start");
    assert_eq!(back["previous_broker_epoch"], json!(epoch), "{back}");
    assert_eq!(back["unclean_shutdown"], false, "{back}");
    assert_eq!(back_crashed["previous_broker_epoch"], Value::Null);
    assert_eq!(back_crashed["unclean_shutdown"], true, "{back_crashed}");
    let started = c.events(&clean.to_string());
    let started: Vec<_> = started.iter().filter(|e| e["type"] == "started").collect();
    assert_eq!(started[1]["previous_broker_epoch"], json!(epoch));
}
