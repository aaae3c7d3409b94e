//! The broker's Kafka rules that show only across processes (issue 20): a fetch from a previous
//! incarnation of a broker, naming its old broker epoch, is refused by the leader and cannot put
//! it back in the ISR (KIP-903, Kafka 3.7.0 `Replica.updateFetchStateOrThrow`); SIGTERM is a
//! controlled shutdown: the broker's leaderships move and it leaves every ISR before it exits,
//! with its logs closed cleanly (3.7.0 `BrokerServer.shutdown`, 0.10.2.1
//! `KafkaServer.controlledShutdown`), while a second SIGTERM stops it at once; a follower fetch
//! is answered with the HW from before that fetch, and a parked one with the HW of its expiry
//! (docs/replication.md B5, 3.7.0 `Partition.fetchRecords`, `DelayedFetch.onComplete`); and a
//! leader re-elected in a new leader epoch keeps its followers' LEOs, where one that was not
//! leading just before starts without them (B8, 3.7.0 `Partition.makeLeader`).

use faultline_node::api::{ReplicaFetchRequest, REPLICA_FETCH_MAX_BYTES};
use faultline_node::version::KafkaVersion;
use nix::sys::signal::{kill, Signal};
use serde_json::{json, Value};
use std::collections::BTreeMap;
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

/// A fetch of t/0 in `follower`'s name from `leader` at `fetch_offset`, as that follower's
/// replica fetcher sends it: the leader's current leader epoch, the epoch of the record before
/// `fetch_offset` in the leader's log, and the follower's broker epoch from the controller's
/// metadata (the last two only in versions that have them).
async fn fetch_as(
    c: &Cluster,
    leader: u32,
    follower: u32,
    fetch_offset: u64,
    max_wait_ms: u64,
) -> ReplicaFetchRequest {
    let state = c.state(leader).await.expect("the leader answers");
    let version: KafkaVersion = state["kafka_version"].as_str().unwrap().parse().unwrap();
    let rules = version.rules();
    let replica = c
        .replica_state(leader, "t", 0)
        .await
        .expect("the leader hosts t/0");
    let last_fetched_epoch = replica["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["start_offset"].as_u64().unwrap() < fetch_offset)
        .filter_map(|e| e["epoch"].as_u64())
        .next_back()
        .map(|e| e as u32);
    let broker_epoch = if rules.broker_epochs {
        broker_epoch(c, follower).await
    } else {
        None
    };
    ReplicaFetchRequest {
        cluster_id: state["cluster_id"].as_str().unwrap().to_string(),
        replica_id: follower,
        topic: "t".into(),
        partition: 0,
        fetch_offset,
        last_fetched_epoch: last_fetched_epoch.filter(|_| rules.leader_epoch_truncation),
        broker_epoch,
        current_leader_epoch: replica["leader_epoch"].as_u64().unwrap() as u32,
        max_records: 100,
        max_bytes: REPLICA_FETCH_MAX_BYTES,
        max_wait_ms,
    }
}

/// The HW of t/0 on `broker`, from `/v1/state`.
async fn hw_of(c: &Cluster, broker: u32) -> u64 {
    c.replica_state(broker, "t", 0).await.unwrap()["high_watermark"]
        .as_u64()
        .unwrap()
}

/// What a leader's `/v1/state` shows of each follower of t/0: id → LEO (None: unknown).
fn follower_leos(replica: &Value) -> BTreeMap<u64, Option<u64>> {
    replica["followers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["id"].as_u64().unwrap(), f["log_end_offset"].as_u64()))
        .collect()
}

/// A broker's `role_change` events for t/0, in order: (role, leader epoch).
fn role_changes(c: &Cluster, broker: u32) -> Vec<(String, u64)> {
    c.events(&broker.to_string())
        .into_iter()
        .filter(|e| e["type"] == "role_change" && e["topic"] == "t")
        .map(|e| {
            let role = e["role"].as_str().unwrap().to_string();
            (role, e["leader_epoch"].as_u64().unwrap())
        })
        .collect()
}

/// B5 across processes, for 4.1, 3.7 and 0.10.2. Neither follower can reach the leader (1), so
/// the test sends their fetches itself, and the lag time is long enough that both stay in the
/// ISR: HW waits for the LEO of each. Broker 3's fetch at the leader's LEO is the one that moves
/// HW from 0 to 5; its answer still carries 0, the HW from before that fetch (Kafka's
/// `Partition.fetchRecords` reads `initialHighWatermark` before `updateFollowerFetchState`), and
/// only its next fetch sees 5. Then broker 2 parks a fetch at the log end (8) for 3 s; broker
/// 3's fetch moves HW from 5 to 8 meanwhile (which does not wake the parked fetch: no records),
/// and the parked fetch, at its expiry, answers with 8, the HW as of then, not the 5 of its
/// arrival (`DelayedFetch.onComplete` reads again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_answer_carries_the_hw_from_before_that_fetch_at_process_level() {
    const PARKED_WAIT_MS: u64 = 3_000;
    for version in KafkaVersion::ALL {
        let settings = Settings {
            kafka_version: Some(version),
            unreachable: vec![(2, 1), (3, 1)],
            replica_lag_time_max_ms: 60_000,
            ..Settings::default()
        };
        let c = Cluster::start(settings).await;
        c.create_topic("t", 1, 3, 1, false).await;
        assert_eq!(
            c.leader("t", 0).await,
            Some(1),
            "{version}: the first replica leads"
        );
        let (status, body) = c.produce(1, "t", 0, "1", &values("r", 5), 5_000).await;
        assert_eq!(status, 200, "{version}: {body}");
        assert_eq!(hw_of(&c, 1).await, 0, "{version}: no follower has fetched");

        let two = c.replica_fetch(1, &fetch_as(&c, 1, 2, 5, 0).await).await;
        assert_eq!(two.unwrap().high_watermark, 0, "{version}");
        assert_eq!(hw_of(&c, 1).await, 0, "{version}: HW waits for broker 3");
        let three = c.replica_fetch(1, &fetch_as(&c, 1, 3, 5, 0).await).await;
        assert_eq!(
            hw_of(&c, 1).await,
            5,
            "{version}: broker 3's fetch moved HW"
        );
        assert_eq!(
            three.unwrap().high_watermark,
            0,
            "{version}: the answer carries the HW from before the fetch that moved it"
        );
        let again = c.replica_fetch(1, &fetch_as(&c, 1, 3, 5, 0).await).await;
        assert_eq!(
            again.unwrap().high_watermark,
            5,
            "{version}: the next fetch"
        );

        let (status, body) = c.produce(1, "t", 0, "1", &values("s", 3), 5_000).await;
        assert_eq!(status, 200, "{version}: {body}");
        let parked_req = fetch_as(&c, 1, 2, 8, PARKED_WAIT_MS).await;
        let three_req = fetch_as(&c, 1, 3, 8, 0).await;
        let sent = Instant::now();
        let meanwhile = async {
            c.poll(
                "broker 2's fetch to park at the log end",
                Duration::from_secs(5),
                || async {
                    let replica = c.replica_state(1, "t", 0).await?;
                    let two = replica["followers"]
                        .as_array()?
                        .iter()
                        .find(|f| f["id"] == 2)?
                        .clone();
                    (two["log_end_offset"] == 8 && two["fetches_in_flight"] == 1).then_some(())
                },
            )
            .await;
            assert_eq!(hw_of(&c, 1).await, 5, "{version}: HW waits for broker 3");
            let three = c.replica_fetch(1, &three_req).await;
            (three, sent.elapsed())
        };
        let (parked, (three, moved_after)) =
            tokio::join!(c.replica_fetch(1, &parked_req), meanwhile);
        let parked_for = sent.elapsed();
        assert!(
            moved_after < Duration::from_millis(PARKED_WAIT_MS),
            "{version}: inconclusive, HW moved only {moved_after:?} after the parked fetch"
        );
        assert_eq!(three.unwrap().high_watermark, 5, "{version}");
        assert_eq!(
            hw_of(&c, 1).await,
            8,
            "{version}: broker 3's fetch moved HW"
        );
        let parked = parked.expect("the parked fetch is answered");
        assert!(
            parked_for >= Duration::from_millis(PARKED_WAIT_MS),
            "{version}: the parked fetch expired (nothing woke it): {parked_for:?}"
        );
        assert!(parked.frames.is_empty(), "{version}");
        assert_eq!(
            parked.high_watermark, 8,
            "{version}: a parked fetch answers with the HW of its expiry, not of its arrival"
        );
    }
}

/// B8 across processes, for 4.1 and 3.7. Both followers replicate 10 records and stop
/// (SIGSTOP); the leader (1) appends 5 more and is left alone in the ISR, knowing each
/// follower at LEO 10. Paused past its session, broker 1 is fenced and t/0 goes offline;
/// resumed, its next heartbeat unfences it and it is elected again, and the heartbeat's answer
/// carries both changes at once, so the broker goes from leader to leader in a leader epoch two
/// newer: Kafka's `makeLeader` with `isNewLeaderEpoch` and not `isNewLeader`. Its `/v1/state`
/// still shows both followers at 10 (a new leader would show them unknown, and the epoch start
/// is 15). Then broker 1 follows broker 2 for a while and is elected again: a broker that was
/// not leading just before, it starts with both followers unknown, though it knew them before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reelected_leader_keeps_its_followers_leos_at_process_level() {
    for version in [KafkaVersion::V4_1, KafkaVersion::V3_7] {
        let settings = Settings {
            kafka_version: Some(version),
            ..Settings::default()
        };
        let c = Cluster::start(settings).await;
        c.create_topic("t", 1, 3, 1, false).await;
        assert_eq!(
            c.leader("t", 0).await,
            Some(1),
            "{version}: the first replica leads"
        );
        assert_eq!(c.state(1).await.unwrap()["kafka_version"], version.as_str());
        let (status, body) = c.produce(1, "t", 0, "all", &values("r", 10), 5_000).await;
        assert_eq!(status, 200, "{version}: {body}");
        let at_ten = BTreeMap::from([(2, Some(10)), (3, Some(10))]);
        c.poll("both followers at 10", Duration::from_secs(5), || async {
            let replica = c.replica_state(1, "t", 0).await?;
            (follower_leos(&replica) == at_ten).then_some(())
        })
        .await;
        c.pause(2);
        c.pause(3);
        c.wait_no_fetch_in_flight(1, "t", 0).await;
        let (status, body) = c.produce(1, "t", 0, "1", &values("s", 5), 5_000).await;
        assert_eq!(status, 200, "{version}: {body}");
        c.poll(
            "broker 1 alone in the ISR",
            Duration::from_secs(10),
            || async { (c.isr("t", 0).await == [1]).then_some(()) },
        )
        .await;
        let before = c.replica_state(1, "t", 0).await.unwrap();
        assert_eq!(follower_leos(&before), at_ten, "{version}: {before}");
        let first_epoch = before["leader_epoch"].as_u64().unwrap();

        c.pause(1);
        c.poll("t/0 offline", Duration::from_secs(10), || async {
            c.partition("t", 0).await["leader"].is_null().then_some(())
        })
        .await;
        c.resume(1);
        let reelected = c
            .poll(
                "broker 1 leading again",
                Duration::from_secs(10),
                || async {
                    let replica = c.replica_state(1, "t", 0).await?;
                    let newer = replica["leader_epoch"].as_u64()? > first_epoch;
                    (replica["role"] == "leader" && newer).then_some(replica)
                },
            )
            .await;
        let second_epoch = reelected["leader_epoch"].as_u64().unwrap();
        assert_eq!(
            role_changes(&c, 1),
            [
                ("leader".to_string(), first_epoch),
                ("leader".to_string(), second_epoch)
            ],
            "{version}: broker 1 went from leader to leader, in a newer leader epoch"
        );
        assert_eq!(reelected["leader_epoch_start_offset"], 15, "{version}");
        assert_eq!(
            follower_leos(&reelected),
            at_ten,
            "{version}: a re-elected leader keeps its followers' LEOs: {reelected}"
        );

        // A spell as follower of broker 2, then leader again.
        c.resume(2);
        c.poll("broker 2 in the ISR", Duration::from_secs(10), || async {
            c.isr("t", 0).await.contains(&2).then_some(())
        })
        .await;
        c.pause(1);
        c.poll("broker 2 to lead", Duration::from_secs(10), || async {
            (c.leader("t", 0).await == Some(2)).then_some(())
        })
        .await;
        c.resume(1);
        c.poll(
            "broker 1 in broker 2's ISR",
            Duration::from_secs(10),
            || async { c.isr("t", 0).await.contains(&1).then_some(()) },
        )
        .await;
        c.pause(2);
        let leading = c
            .poll(
                "broker 1 leading after its spell as follower",
                Duration::from_secs(10),
                || async {
                    let replica = c.replica_state(1, "t", 0).await?;
                    let newer = replica["leader_epoch"].as_u64()? > second_epoch;
                    (replica["role"] == "leader" && newer).then_some(replica)
                },
            )
            .await;
        let roles: Vec<String> = role_changes(&c, 1).into_iter().map(|(r, _)| r).collect();
        assert_eq!(
            roles,
            ["leader", "leader", "follower", "leader"],
            "{version}"
        );
        assert_eq!(
            follower_leos(&leading),
            BTreeMap::from([(2, None), (3, None)]),
            "{version}: a broker that was not leading just before starts with its followers' \
             LEOs unknown: {leading}"
        );
    }
}

/// 0.10.2.1's controlled shutdown across processes (`KafkaServer.controlledShutdown`,
/// `KafkaController.shutdownBroker`, `ControlledShutdownLeaderSelector`): SIGTERM to the leader
/// of t/0 after both followers died, so it is the only ISR member and no replica can take over.
/// Every ask is answered "not yet" (t/0 remains) and it stays leader, serving, while it asks;
/// it asks 3 times (`controlled.shutdown.max.retries`), 5 s apart
/// (`controlled.shutdown.retry.backoff.ms`), and after the backoff that follows the third it
/// stops by itself (`retries_exhausted`), about 15 s after the SIGTERM, its logs closed cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_10_2_sole_isr_leader_keeps_leading_while_it_asks_and_stops_after_three_asks() {
    let settings = Settings {
        kafka_version: Some(faultline_node::version::KafkaVersion::V0_10_2),
        ..Settings::default()
    };
    let mut c = Cluster::start(settings).await;
    c.create_topic("t", 1, 3, 1, false).await;
    let leader = c.leader("t", 0).await.unwrap();
    for follower in (1..=3).filter(|&b| b != leader) {
        c.kill(follower);
    }
    c.poll(
        "the leader alone in the ISR",
        Duration::from_secs(10),
        || async { (c.isr("t", 0).await == vec![leader]).then_some(()) },
    )
    .await;
    let asks = |c: &Cluster| {
        c.events("controller")
            .into_iter()
            .filter(|e| e["type"] == "broker_controlled_shutdown" && e["broker"] == leader)
            .collect::<Vec<_>>()
    };
    let term = Instant::now();
    kill(c.broker_pid(leader), Signal::SIGTERM).unwrap();
    c.poll("the second ask", Duration::from_secs(10), || async {
        (asks(&c).len() >= 2).then_some(())
    })
    .await;
    assert!(c.exited(leader).is_none(), "it is still asking");
    let p = c.partition("t", 0).await;
    assert_eq!(
        (&p["leader"], &p["isr"]),
        (&json!(leader), &json!([leader]))
    );
    let role = c.replica_state(leader, "t", 0).await.expect("serving");
    assert_eq!(role["role"], "leader", "{role}");
    let status = exit_status(&mut c, leader, Duration::from_secs(25)).await;
    let took = term.elapsed();
    assert!(status.success(), "{status}");
    eprintln!("0.10.2: three refused asks, then stopped {took:?} after the SIGTERM");
    let asks = asks(&c);
    assert_eq!(asks.len(), 3, "{asks:#?}");
    for ask in &asks {
        assert_eq!(
            ask["partitions_remaining"],
            json!([{"topic": "t", "partition": 0}])
        );
    }
    for pair in asks.windows(2) {
        let apart_ms = pair[1]["time_ms"].as_u64().unwrap() - pair[0]["time_ms"].as_u64().unwrap();
        assert!(apart_ms >= 4_900, "asks {apart_ms} ms apart: {asks:#?}");
    }
    let events = c.events(&leader.to_string());
    let shutdown = events.iter().find(|e| e["type"] == "shutdown").unwrap();
    assert_eq!(
        (&shutdown["controlled"], &shutdown["asks"]),
        (&json!("retries_exhausted"), &json!(3)),
        "{shutdown}"
    );
    assert!(
        shutdown["waited_ms"].as_u64().unwrap() >= 15_000,
        "{shutdown}"
    );
    assert!(
        c.data_dir(leader)
            .join("t-0")
            .join("clean-shutdown")
            .exists(),
        "the logs were closed cleanly all the same"
    );
}
