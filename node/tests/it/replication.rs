//! Replication in a healthy cluster and under paused followers: acks=all offsets are on every
//! replica, the ISR shrinks by replica.lag.time.max.ms and refuses acks=all below
//! min.insync.replicas, and consumers never see a record at or above HW.

use std::time::{Duration, Instant};

use crate::support::*;

/// (a) acks=all returns offsets that every replica then holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_offsets_are_held_by_every_replica() {
    let mut c = Cluster::start(Settings::default()).await;
    c.create_topic("t", 1, 3, 2, false).await;
    let leader = c.leader("t", 0).await.unwrap();
    let mut acked = Vec::new();
    for batch in 0..5 {
        let vals = values(&format!("b{batch}"), 20);
        let (status, body) = c.produce(leader, "t", 0, "all", &vals, 5_000).await;
        assert_eq!(status, 200, "{body}");
        let base = body["base_offset"].as_u64().unwrap();
        acked.extend(
            vals.into_iter()
                .enumerate()
                .map(|(i, v)| (base + i as u64, v)),
        );
    }
    assert_eq!(acked.last().unwrap().0, 99);
    for id in 1..=3 {
        c.poll(
            "every replica to hold all 100 records",
            Duration::from_secs(10),
            || async {
                let leo = c.replica_state(id, "t", 0).await?["log_end_offset"].as_u64()?;
                (leo == 100).then_some(())
            },
        )
        .await;
    }
    c.stop_all();
    for id in 1..=3 {
        let dump = c.dump(id);
        assert_eq!(dump.len(), 100, "broker {id}");
        for (offset, value) in &acked {
            let record = &dump[*offset as usize];
            assert_eq!(record["offset"], *offset);
            assert_eq!(
                record["value"],
                value.as_str(),
                "broker {id} offset {offset}"
            );
            assert_eq!(record["leader_epoch"], 0);
        }
    }
}

/// (b) A paused follower that falls behind leaves the ISR after replica.lag.time.max.ms; acks=all goes on with
/// min.insync.replicas=2; a second paused follower makes acks=all fail before append; both
/// rejoin once resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_followers_leave_and_rejoin_the_isr() {
    let settings = Settings {
        session_timeout_ms: 30_000,
        replica_lag_time_max_ms: 800,
        ..Settings::default()
    };
    let c = Cluster::start(settings).await;
    c.create_topic("t", 1, 3, 2, false).await;
    let leader = c.leader("t", 0).await.unwrap();
    let followers: Vec<u32> = (1..=3).filter(|&b| b != leader).collect();
    let (status, _) = c
        .produce(leader, "t", 0, "all", &values("warm", 5), 5_000)
        .await;
    assert_eq!(status, 200);

    c.pause(followers[0]);
    let paused_at = Instant::now();
    // A follower at the leader's LEO stays in sync however long it is silent (Kafka's
    // `isCaughtUp`): a record the paused follower lacks is what starts its lag.
    let (status, body) = c
        .produce(leader, "t", 0, "1", &values("past-the-paused", 1), 5_000)
        .await;
    assert_eq!(status, 200, "{body}");
    c.poll(
        "the paused follower to leave the ISR",
        Duration::from_secs(10),
        || async { (!c.isr("t", 0).await.contains(&followers[0])).then_some(()) },
    )
    .await;
    let took = paused_at.elapsed();
    assert!(
        took >= Duration::from_millis(700),
        "left the ISR after {took:?}, before the lag time"
    );
    c.poll(
        "the leader to record its ISR shrink",
        Duration::from_secs(5),
        || async {
            let events = c.events(&leader.to_string());
            events
                .iter()
                .any(|e| e["type"] == "isr_change" && e["reason"] == "shrink")
                .then_some(())
        },
    )
    .await;
    let (status, body) = c
        .produce(leader, "t", 0, "all", &values("two-in-sync", 5), 5_000)
        .await;
    assert_eq!(
        status, 200,
        "acks=all with ISR=2 and min.insync.replicas=2: {body}"
    );

    c.pause(followers[1]);
    let leo_after_refusal = c
        .poll(
            "acks=all to be refused with NOT_ENOUGH_REPLICAS",
            Duration::from_secs(10),
            || async {
                let (_, body) = c
                    .produce(leader, "t", 0, "all", &values("probe", 1), 300)
                    .await;
                if body["error"] != "NOT_ENOUGH_REPLICAS" {
                    return None;
                }
                c.replica_state(leader, "t", 0).await?["log_end_offset"].as_u64()
            },
        )
        .await;
    let (status, body) = c
        .produce(leader, "t", 0, "all", &values("refused", 3), 1_000)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("NOT_ENOUGH_REPLICAS")),
        "{body}"
    );
    let leo = c.replica_state(leader, "t", 0).await.unwrap()["log_end_offset"]
        .as_u64()
        .unwrap();
    assert_eq!(
        leo, leo_after_refusal,
        "a refused acks=all write appends nothing"
    );

    c.resume(followers[0]);
    c.resume(followers[1]);
    c.poll(
        "both followers to rejoin the ISR",
        Duration::from_secs(15),
        || async { (c.isr("t", 0).await.len() == 3).then_some(()) },
    )
    .await;
    let (status, body) = c
        .produce(leader, "t", 0, "all", &values("healed", 3), 5_000)
        .await;
    assert_eq!(status, 200, "{body}");
}

/// (f) A consumer never gets a record at or above HW, even while acks=1 writes run ahead of
/// the followers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_never_read_at_or_above_hw() {
    let settings = Settings {
        session_timeout_ms: 30_000,
        replica_lag_time_max_ms: 30_000,
        ..Settings::default()
    };
    let c = Cluster::start(settings).await;
    c.create_topic("t", 1, 3, 1, false).await;
    let leader = c.leader("t", 0).await.unwrap();
    let (status, _) = c
        .produce(leader, "t", 0, "all", &values("committed", 4), 5_000)
        .await;
    assert_eq!(status, 200);
    let followers: Vec<u32> = (1..=3).filter(|&b| b != leader).collect();
    for &f in &followers {
        c.pause(f);
    }
    c.wait_no_fetch_in_flight(leader, "t", 0).await;
    let (status, _) = c
        .produce(leader, "t", 0, "1", &values("uncommitted", 6), 5_000)
        .await;
    assert_eq!(status, 200);
    let state = c.replica_state(leader, "t", 0).await.unwrap();
    assert_eq!(
        (
            state["high_watermark"].as_u64(),
            state["log_end_offset"].as_u64()
        ),
        (Some(4), Some(10))
    );
    let (hw, records) = c.read_all(leader, "t", 0).await;
    assert_eq!(hw, 4);
    assert_eq!(records.len(), 4, "only committed records are visible");
    let (status, body) = c
        .get(&c.broker_url(
            leader,
            "/v1/fetch?topic=t&partition=0&offset=4&max_wait_ms=100",
        ))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        body["records"].as_array().unwrap().len(),
        0,
        "offset 4 is HW: nothing to read yet"
    );
    for &f in &followers {
        c.resume(f);
    }
    c.poll(
        "HW to reach LEO once followers fetch",
        Duration::from_secs(10),
        || async { (c.read_all(leader, "t", 0).await.0 == 10).then_some(()) },
    )
    .await;
    let (_, records) = c.read_all(leader, "t", 0).await;
    assert_eq!(records[9].1, "uncommitted-5");
}
