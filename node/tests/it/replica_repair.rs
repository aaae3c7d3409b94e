//! A replica whose segment is damaged on disk while its broker is down: on restart, recovery
//! drops the damaged tail (records that were acknowledged, not garbage after them), the broker
//! says so in a recovery event, and it fetches what it lost from the leader again, ending with a
//! log identical to every other replica's.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// The replica's segment files, oldest first (found by suffix, not by the frame format).
fn segments(c: &Cluster, broker: u32) -> Vec<std::path::PathBuf> {
    let dir = c.data_dir(broker).join("t-0");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

/// What identifies a record across replicas.
fn records(dump: &[Value]) -> Vec<(u64, u64, String)> {
    dump.iter()
        .map(|r| {
            (
                r["offset"].as_u64().unwrap(),
                r["leader_epoch"].as_u64().unwrap(),
                r["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_refetches_the_tail_it_lost_to_corruption() {
    let mut c = Cluster::start(Settings::default()).await;
    c.create_topic("t", 1, 3, 2, false).await;
    let leader = c.leader("t", 0).await.unwrap();
    let follower = (1..=3).find(|&b| b != leader).unwrap();
    for batch in 0..10 {
        let (status, body) = c
            .produce(
                leader,
                "t",
                0,
                "all",
                &values(&format!("b{batch}"), 10),
                5_000,
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    c.poll(
        "the follower to hold 100",
        Duration::from_secs(10),
        || async {
            (c.replica_state(follower, "t", 0).await?["log_end_offset"] == 100).then_some(())
        },
    )
    .await;
    c.kill(follower);

    // Flip one bit 60 % into the last segment: every record from there on is damaged or
    // unreachable, although all of them were acknowledged.
    let segment = segments(&c, follower).pop().expect("a segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = bytes.len() * 6 / 10;
    bytes[at] ^= 0x10;
    std::fs::write(&segment, &bytes).unwrap();

    c.restart(follower);
    let recovery: Value = c
        .poll(
            "a recovery event that dropped bytes",
            Duration::from_secs(10),
            || async {
                c.events(&follower.to_string())
                    .into_iter()
                    .filter(|e| e["type"] == "recovery")
                    .find(|e| e["dropped_bytes"].as_u64() > Some(0))
            },
        )
        .await;
    let recovered_leo = recovery["log_end_offset"].as_u64().unwrap();
    assert!(
        (1..100).contains(&recovered_leo),
        "recovery kept the prefix before the flipped bit and dropped the rest: {recovery}"
    );
    // More writes while it catches up, then every replica must hold all 110.
    let (status, body) = c
        .produce(leader, "t", 0, "all", &values("after", 10), 5_000)
        .await;
    assert_eq!(status, 200, "{body}");
    c.poll(
        "the repaired follower to fetch what it lost",
        Duration::from_secs(15),
        || async {
            (c.replica_state(follower, "t", 0).await?["log_end_offset"] == 110).then_some(())
        },
    )
    .await;
    c.poll(
        "the follower back in the ISR",
        Duration::from_secs(15),
        || async { (c.isr("t", 0).await.len() == 3).then_some(()) },
    )
    .await;
    c.stop_all();
    let leader_log = records(&c.dump(leader));
    assert_eq!(leader_log.len(), 110);
    for broker in 1..=3 {
        assert_eq!(
            records(&c.dump(broker)),
            leader_log,
            "broker {broker}'s log differs from the leader's"
        );
    }
    eprintln!(
        "follower {follower} dropped {} bytes (LEO 100 → {recovered_leo}) and re-fetched {} records",
        recovery["dropped_bytes"],
        100 - recovered_leo
    );
}
