//! Crashes and elections: a killed leader is replaced from the ISR without losing acknowledged
//! records; a restarted former leader truncates its uncommitted tail by leader epoch; unclean
//! election happens only when enabled and says what it cost; a corrupt tail is dropped on
//! restart; the legacy-hw protocol loses acknowledged writes in KIP-101's double failover that
//! the current one keeps, diverges in its second scenario, and stops a follower that is ahead of
//! its leader.

use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;

/// (c) SIGKILL the leader under acks=all load: an ISR member leads within the session timeout
/// plus a margin, and every acknowledged record is in the new leader's log at its offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_leader_is_replaced_from_the_isr_without_losing_acked_records() {
    let c = Cluster::start(Settings::default()).await;
    c.create_topic("t", 1, 3, 2, false).await;
    let old_leader = c.leader("t", 0).await.unwrap();
    let isr_before = c.isr("t", 0).await;
    let acked: Arc<Mutex<BTreeMap<u64, String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let c = Arc::new(tokio::sync::Mutex::new(c));
    let writer = {
        let (acked, stop, c) = (acked.clone(), stop.clone(), c.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 100_000 {
                let cluster = c.lock().await;
                let Some(leader) = cluster.leader("t", 0).await else {
                    drop(cluster);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let vals = values(&format!("w{n}"), 5);
                let (status, body) = cluster.produce(leader, "t", 0, "all", &vals, 2_000).await;
                drop(cluster);
                if status == 200 {
                    let base = body["base_offset"].as_u64().unwrap();
                    let mut acked = acked.lock().unwrap();
                    for (i, v) in vals.into_iter().enumerate() {
                        acked.insert(base + i as u64, v);
                    }
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked.lock().unwrap().len() < 100 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        acked.lock().unwrap().len() >= 100,
        "no progress before the kill"
    );
    c.lock().await.kill(old_leader);
    let killed_at = Instant::now();
    let new_leader = {
        let cluster = c.lock().await;
        cluster
            .poll(
                "a new leader from the ISR",
                Duration::from_secs(10),
                || async { cluster.leader("t", 0).await.filter(|&l| l != old_leader) },
            )
            .await
    };
    let failover = killed_at.elapsed();
    assert!(isr_before.contains(&new_leader));
    assert!(
        failover < Duration::from_millis(1500 + 2000),
        "failover took {failover:?}"
    );
    let count_at_failover = acked.lock().unwrap().len();
    let more = Instant::now() + Duration::from_secs(10);
    while acked.lock().unwrap().len() < count_at_failover + 50 && Instant::now() < more {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= count_at_failover + 50,
        "writes did not resume on the new leader"
    );
    let cluster = c.lock().await;
    let (_, records) = cluster.read_all(new_leader, "t", 0).await;
    let log: BTreeMap<u64, String> = records.into_iter().collect();
    for (offset, value) in &acked {
        assert_eq!(
            log.get(offset),
            Some(value),
            "acknowledged offset {offset} lost or moved"
        );
    }
    eprintln!(
        "failover in {failover:?}; {} acknowledged records all present",
        acked.len()
    );
}

/// (d) A leader that appended an uncommitted tail, then died, comes back as a follower, truncates
/// that tail at the diverging epoch (not blindly to its HW) and ends byte-identical to the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_leader_truncates_its_uncommitted_tail_by_epoch() {
    let settings = Settings {
        replica_lag_time_max_ms: 10_000,
        session_timeout_ms: 1_500,
        ..Settings::default()
    };
    let mut c = Cluster::start(settings).await;
    c.create_topic("t", 1, 3, 1, false).await;
    let old = c.leader("t", 0).await.unwrap();
    let followers: Vec<u32> = (1..=3).filter(|&b| b != old).collect();
    let (status, _) = c
        .produce(old, "t", 0, "all", &values("committed", 10), 5_000)
        .await;
    assert_eq!(status, 200);
    for &f in &followers {
        c.poll(
            "followers to learn HW 10",
            Duration::from_secs(5),
            || async { (c.replica_state(f, "t", 0).await?["high_watermark"] == 10).then_some(()) },
        )
        .await;
    }
    for &f in &followers {
        c.pause(f);
    }
    c.wait_no_fetch_in_flight(old, "t", 0).await;
    let (status, _) = c
        .produce(old, "t", 0, "1", &values("doomed", 7), 5_000)
        .await;
    assert_eq!(status, 200);
    let state = c.replica_state(old, "t", 0).await.unwrap();
    assert_eq!(
        (
            state["log_end_offset"].as_u64(),
            state["high_watermark"].as_u64()
        ),
        (Some(17), Some(10))
    );
    c.kill(old);
    for &f in &followers {
        c.resume(f);
    }
    let new = c
        .poll(
            "a follower to take over",
            Duration::from_secs(10),
            || async { c.leader("t", 0).await.filter(|l| followers.contains(l)) },
        )
        .await;
    c.poll("the new leader to lead", Duration::from_secs(5), || async {
        (c.replica_state(new, "t", 0).await?["role"] == "leader").then_some(())
    })
    .await;
    let (status, body) = c
        .produce(new, "t", 0, "all", &values("epoch1", 4), 5_000)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["base_offset"], 10,
        "the new leader continues at the committed end"
    );
    c.restart(old);
    c.poll(
        "the old leader to catch up and rejoin the ISR",
        Duration::from_secs(15),
        || async {
            let s = c.replica_state(old, "t", 0).await?;
            (s["log_end_offset"] == 14 && c.isr("t", 0).await.contains(&old)).then_some(())
        },
    )
    .await;
    let truncation = c
        .events(&old.to_string())
        .into_iter()
        .find(|e| e["type"] == "truncation")
        .expect("a truncation event");
    assert_eq!(
        (truncation["from"].as_u64(), truncation["to"].as_u64()),
        (Some(17), Some(10)),
        "{truncation}"
    );
    assert_eq!(truncation["reason"], "diverging_epoch");
    c.stop_all();
    let segment =
        |id: u32| std::fs::read(c.data_dir(id).join("t-0").join(format!("{:020}.log", 0))).unwrap();
    assert_eq!(
        segment(old),
        segment(new),
        "the restarted replica must be byte-identical to the leader"
    );
    let dump = c.dump(old);
    assert!(dump
        .iter()
        .all(|r| !r["value"].as_str().unwrap().starts_with("doomed")));
}

async fn unclean_scenario(unclean: bool) -> (Cluster, u32, Vec<u32>) {
    let settings = Settings {
        replica_lag_time_max_ms: 500,
        session_timeout_ms: 1_500,
        ..Settings::default()
    };
    let mut c = Cluster::start(settings).await;
    c.create_topic("t", 1, 3, 1, unclean).await;
    let old = c.leader("t", 0).await.unwrap();
    let followers: Vec<u32> = (1..=3).filter(|&b| b != old).collect();
    let (status, _) = c
        .produce(old, "t", 0, "all", &values("shared", 5), 5_000)
        .await;
    assert_eq!(status, 200);
    for &f in &followers {
        c.poll(
            "followers to hold the first 5",
            Duration::from_secs(5),
            || async { (c.replica_state(f, "t", 0).await?["log_end_offset"] == 5).then_some(()) },
        )
        .await;
        c.pause(f);
    }
    c.poll(
        "the ISR to shrink to the leader alone",
        Duration::from_secs(10),
        || async { (c.isr("t", 0).await == vec![old]).then_some(()) },
    )
    .await;
    let (status, body) = c
        .produce(old, "t", 0, "all", &values("only-on-leader", 10), 5_000)
        .await;
    assert_eq!(
        status, 200,
        "min.insync.replicas=1 accepts with ISR=[leader]: {body}"
    );
    c.kill(old);
    for &f in &followers {
        c.resume(f);
    }
    (c, old, followers)
}

/// (e) With the last ISR member dead, a partition stays offline unless
/// unclean.leader.election.enable is set; then an out-of-sync replica leads and its event names
/// the LEO it took over with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unclean_election_only_when_enabled_and_it_names_the_new_leaders_leo() {
    let (c, _old, _) = unclean_scenario(false).await;
    c.poll(
        "the controller to notice the leader is gone",
        Duration::from_secs(10),
        || async { c.partition("t", 0).await["leader"].is_null().then_some(()) },
    )
    .await;
    // Watch it stay offline for two more session timeouts.
    let watch_until = Instant::now() + Duration::from_millis(3_000);
    while Instant::now() < watch_until {
        assert!(
            c.partition("t", 0).await["leader"].is_null(),
            "a replica outside the ISR was elected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(c.events("controller").iter().all(|e| e["unclean"] != true));
    drop(c);

    let (c, old, followers) = unclean_scenario(true).await;
    let new = c
        .poll("an unclean leader", Duration::from_secs(10), || async {
            c.leader("t", 0).await.filter(|l| followers.contains(l))
        })
        .await;
    let p = c.partition("t", 0).await;
    assert_eq!(
        (p["unclean"].as_bool(), p["isr"].clone()),
        (Some(true), serde_json::json!([new]))
    );
    let event: Value = c
        .poll(
            "the new leader's unclean_election event",
            Duration::from_secs(5),
            || async {
                c.events(&new.to_string())
                    .into_iter()
                    .find(|e| e["type"] == "unclean_election")
            },
        )
        .await;
    assert_eq!(event["log_end_offset"], 5, "{event}");
    assert_eq!(event["leader_epoch"], p["leader_epoch"]);
    let election = c
        .events("controller")
        .into_iter()
        .find(|e| e["type"] == "election" && e["unclean"] == true);
    assert_eq!(
        election.expect("controller election event")["previous_leader"],
        old
    );
    let (hw, records) = c.read_all(new, "t", 0).await;
    assert_eq!(
        (hw, records.len()),
        (5, 5),
        "the 10 records only the old leader had are gone"
    );
}

/// (g) Garbage appended to a segment is found and dropped when the broker restarts, and the
/// replica catches up again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_tail_is_dropped_on_restart() {
    let mut c = Cluster::start(Settings::default()).await;
    c.create_topic("t", 1, 3, 2, false).await;
    let leader = c.leader("t", 0).await.unwrap();
    let follower = (1..=3).find(|&b| b != leader).unwrap();
    let (status, _) = c
        .produce(leader, "t", 0, "all", &values("before", 10), 5_000)
        .await;
    assert_eq!(status, 200);
    c.poll(
        "the follower to hold 10",
        Duration::from_secs(5),
        || async {
            (c.replica_state(follower, "t", 0).await?["log_end_offset"] == 10).then_some(())
        },
    )
    .await;
    c.kill(follower);
    let segment = c
        .data_dir(follower)
        .join("t-0")
        .join(format!("{:020}.log", 0));
    let garbage = b"\x2a\x00\x00\x00\xde\xad\xbe\xefthis is not a record frame at all";
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes.extend_from_slice(garbage);
    std::fs::write(&segment, &bytes).unwrap();
    c.restart(follower);
    let recovery: Value = c
        .poll("a recovery event", Duration::from_secs(5), || async {
            c.events(&follower.to_string())
                .into_iter()
                .filter(|e| e["type"] == "recovery")
                .find(|e| e["dropped_bytes"].as_u64() > Some(0))
        })
        .await;
    assert_eq!(recovery["dropped_bytes"], garbage.len());
    assert_eq!(recovery["log_end_offset"], 10);
    let (status, _) = c
        .produce(leader, "t", 0, "all", &values("after", 5), 5_000)
        .await;
    assert_eq!(status, 200);
    c.poll(
        "the recovered follower to catch up",
        Duration::from_secs(10),
        || async {
            (c.replica_state(follower, "t", 0).await?["log_end_offset"] == 15).then_some(())
        },
    )
    .await;
    c.stop_all();
    let dump = c.dump(follower);
    assert_eq!(dump.len(), 15);
    assert_eq!(dump[12]["value"], "after-2");
}

/// KIP-101's first scenario as Kafka 0.10 really loses data in it: truncation to HW when a
/// replica becomes a follower, then an election before it has fetched again — no restart (a
/// restarted 0.10 broker leaves the ISR when its old session expires, so restarts cannot play
/// it). Brokers 1 (leader), 2, 3; broker 3 cannot reach broker 2 (a one-way partition).
/// Followers learn HW only with their next fetch answer, and a long replica.fetch.wait.max.ms
/// keeps that answer away: the leader acknowledges acks=all writes and is killed at once, so
/// both followers hold the records above their HW. Broker 2 is elected; broker 3 follows it
/// (legacy-hw truncates to its HW here) but cannot fetch from it; broker 2 is killed and broker
/// 3, still in the ISR, leads with what it kept. Returns the cluster with broker 3 leading and
/// brokers 1 and 2 down.
async fn double_failover(protocol: &'static str, hw_checkpoint_interval_ms: u64) -> Cluster {
    let settings = Settings {
        protocol,
        // No ISR shrink during the sequence: only the controller's fencing changes the ISR.
        replica_lag_time_max_ms: 30_000,
        replica_fetch_wait_max_ms: 5_000,
        hw_checkpoint_interval_ms,
        unreachable: vec![(3, 2)],
        ..Settings::default()
    };
    let mut c = Cluster::start(settings).await;
    c.create_topic("t", 1, 3, 2, false).await;
    assert_eq!(c.leader("t", 0).await, Some(1), "replicas [1,2,3]: 1 leads");
    let (status, body) = c
        .produce(1, "t", 0, "all", &values("acked", 10), 5_000)
        .await;
    assert_eq!(status, 200, "{body}");
    if hw_checkpoint_interval_ms < 1_000 {
        // Let broker 1 checkpoint its HW (10) before it dies; the followers still do not know it.
        tokio::time::sleep(Duration::from_millis(hw_checkpoint_interval_ms * 4)).await;
    }
    c.kill(1);
    c.poll(
        "broker 3 to follow broker 2",
        Duration::from_secs(15),
        || async {
            let s = c.replica_state(3, "t", 0).await?;
            (s["role"] == "follower" && s["leader"] == 2).then_some(())
        },
    )
    .await;
    c.kill(2);
    c.poll("broker 3 to lead", Duration::from_secs(15), || async {
        let s = c.replica_state(3, "t", 0).await?;
        (s["role"] == "leader").then_some(())
    })
    .await;
    c
}

/// Restarts brokers 1 and 2 and waits until broker 3 leads a full ISR.
async fn restart_the_old_leaders(c: &mut Cluster) {
    c.restart(1);
    c.restart(2);
    c.poll(
        "a full ISR under broker 3",
        Duration::from_secs(20),
        || async {
            let s = c.replica_state(3, "t", 0).await?;
            (s["role"] == "leader" && s["isr"].as_array()?.len() == 3).then_some(())
        },
    )
    .await;
}

/// (i) KIP-101 scenario 1: legacy-hw loses acknowledged acks=all writes (min.insync.replicas=2,
/// unclean election off) in a double failover with no restart; the current protocol keeps every
/// one in the same sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_hw_loses_acked_writes_in_a_double_failover_that_the_current_protocol_keeps() {
    let mut c = double_failover("legacy-hw", 600_000).await;
    restart_the_old_leaders(&mut c).await;
    let (_, survived) = c.read_all(3, "t", 0).await;
    assert!(
        survived.is_empty(),
        "legacy-hw was expected to lose the acknowledged writes; survived: {survived:?}\n{}",
        c.diagnostics()
    );
    let truncated = c
        .events("3")
        .into_iter()
        .find(|e| e["type"] == "truncation" && e["reason"] == "high_watermark")
        .expect("broker 3 truncated to its HW on following broker 2");
    assert_eq!(
        (&truncated["from"], &truncated["to"], &truncated["leader"]),
        (&Value::from(10), &Value::from(0), &Value::from(2))
    );
    drop(c);

    let mut c = double_failover("current", 600_000).await;
    restart_the_old_leaders(&mut c).await;
    let (_, survived) = c.read_all(3, "t", 0).await;
    let expected: Vec<(u64, String)> = values("acked", 10)
        .into_iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v))
        .collect();
    assert_eq!(
        survived, expected,
        "the current protocol must keep every acknowledged write"
    );
}

/// Waits (bounded) until broker `id` has exited on its own, and returns its status.
async fn wait_exit(c: &mut Cluster, id: u32, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = c.exited(id) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "broker {id} still runs after {timeout:?}\n{}",
            c.diagnostics()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// KIP-101 scenario 2 (replica divergence) and legacy item L2. After the double failover broker
/// 1 returns with its HW checkpoint (10) past what broker 3 kept. While broker 3 has nothing past
/// offset 10, broker 1 is ahead of its leader and, with unclean election off, exits as Kafka
/// 0.10.2 does (ReplicaFetcherThread `handleOffsetOutOfRange`) after a `truncation_refused`
/// event. Once broker 3 has taken new writes past offset 10, broker 1 keeps its own records
/// below 10 and appends broker 3's after them: the replicas diverge below HW, silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_hw_diverges_or_stops_when_the_old_leader_returns_ahead() {
    let mut c = double_failover("legacy-hw", 50).await;
    c.restart(1);
    let status = wait_exit(&mut c, 1, Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(1), "0.10.2 exits with status 1");
    let refused = c
        .events("1")
        .into_iter()
        .find(|e| e["type"] == "truncation_refused")
        .expect("a truncation_refused event before the exit");
    assert_eq!(
        (
            &refused["log_end_offset"],
            &refused["leader_log_end_offset"]
        ),
        (&Value::from(10), &Value::from(0))
    );

    // Broker 3 takes new writes (acks=1: its ISR is below min.insync.replicas) past offset 10.
    // Two batches whose boundary is at 10, as broker 1's is: broker 1 fetches from 10 and
    // appends the batch there. (A batch straddling its end would be taken whole, from its base.)
    for (i, n) in [10usize, 2].into_iter().enumerate() {
        let newer = values(&format!("newer{i}"), n);
        let (status, body) = c.produce(3, "t", 0, "1", &newer, 5_000).await;
        assert_eq!(status, 200, "{body}");
    }
    c.restart(1);
    c.poll(
        "broker 1 to catch up with broker 3",
        Duration::from_secs(15),
        || async {
            let s = c.replica_state(1, "t", 0).await?;
            (s["log_end_offset"] == 12).then_some(())
        },
    )
    .await;
    c.stop_all();
    let at = |dump: &[Value], offset: usize| dump[offset]["value"].as_str().unwrap().to_string();
    let (one, three) = (c.dump(1), c.dump(3));
    assert_eq!(
        at(&one, 0),
        "acked-0",
        "broker 1 kept its own records below 10"
    );
    assert_eq!(at(&three, 0), "newer0-0");
    assert_eq!(
        at(&one, 11),
        at(&three, 11),
        "and took broker 3's after them"
    );
}

/// A controller killed and restarted keeps every topic, leader, epoch and ISR (its metadata is
/// written atomically), and the cluster goes on electing with epochs that only grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_controller_keeps_every_epoch() {
    let mut c = Cluster::start(Settings::default()).await;
    c.create_topic("t", 2, 3, 2, false).await;
    let first = c.leader("t", 0).await.unwrap();
    c.kill(first);
    c.poll("a new leader for t/0", Duration::from_secs(10), || async {
        c.leader("t", 0).await.filter(|&l| l != first)
    })
    .await;
    c.restart(first);
    c.poll(
        "the ISR to be whole again",
        Duration::from_secs(10),
        || async {
            (c.isr("t", 0).await.len() == 3 && c.isr("t", 1).await.len() == 3).then_some(())
        },
    )
    .await;
    let before = c.metadata().await.unwrap()["topics"].clone();
    assert!(before[0]["partitions"][0]["leader_epoch"].as_u64() >= Some(1));
    c.restart_controller();
    let after = c
        .poll(
            "the restarted controller to answer",
            Duration::from_secs(10),
            || async { c.metadata().await.ok().map(|m| m["topics"].clone()) },
        )
        .await;
    assert_eq!(
        after, before,
        "topics, leaders, epochs and ISRs survive a controller restart"
    );
    let leader = c.leader("t", 0).await.unwrap();
    let (status, body) = c
        .produce(leader, "t", 0, "all", &values("after-restart", 3), 5_000)
        .await;
    assert_eq!(status, 200, "{body}");
    let epoch_before = after[0]["partitions"][0]["leader_epoch"].as_u64().unwrap();
    c.kill(leader);
    let epoch_after = c
        .poll(
            "another election after the restart",
            Duration::from_secs(10),
            || async {
                let p = c.partition("t", 0).await;
                (p["leader"].as_u64() != Some(leader as u64) && !p["leader"].is_null())
                    .then(|| p["leader_epoch"].as_u64())
                    .flatten()
            },
        )
        .await;
    assert!(
        epoch_after > epoch_before,
        "epoch {epoch_after} after {epoch_before}"
    );
}

/// Issue 8 item 5 (KRaft, ClusterControlManager `registerBroker`): a broker restarted faster
/// than its session timeout cannot register until the previous incarnation's session expires;
/// that incarnation is then fenced (it leaves the ISR), and the new one registers fenced and is
/// unfenced once it has caught up on metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_broker_registers_only_after_its_old_session_expires() {
    let session_timeout_ms = 3_000;
    let settings = Settings {
        session_timeout_ms,
        replica_lag_time_max_ms: 30_000,
        ..Settings::default()
    };
    let mut c = Cluster::start(settings).await;
    c.create_topic("t", 1, 3, 1, false).await;
    let leader = c.leader("t", 0).await.unwrap();
    let follower = (1..=3).find(|&b| b != leader).unwrap();
    c.restart(follower);
    let restarted_at = Instant::now();
    let is_registered = |e: &Value| e["type"] == "broker_registered" && e["broker"] == follower;
    let registered_before = c
        .events("controller")
        .iter()
        .filter(|e| is_registered(e))
        .count();
    c.poll(
        "the restarted broker to register again",
        Duration::from_secs(15),
        || async {
            let n = c
                .events("controller")
                .iter()
                .filter(|e| is_registered(e))
                .count();
            (n > registered_before).then_some(())
        },
    )
    .await;
    let took = restarted_at.elapsed();
    assert!(
        took >= Duration::from_millis(session_timeout_ms - 500),
        "registered {took:?} after the restart, before the old session ({session_timeout_ms} ms) expired"
    );
    let events = c.events("controller");
    let fenced = events
        .iter()
        .position(|e| {
            e["type"] == "broker_fenced"
                && e["broker"] == follower
                && e["reason"] == "session_timeout"
        })
        .expect("the old incarnation is fenced by its session expiry");
    let registered = events.iter().rposition(is_registered).unwrap();
    assert!(fenced < registered, "fenced first, then registered");
    assert_eq!(events[registered]["fenced"], true);
    c.poll(
        "the new incarnation to be unfenced and rejoin the ISR",
        Duration::from_secs(15),
        || async { c.isr("t", 0).await.contains(&follower).then_some(()) },
    )
    .await;
}
