//! The final read: after healing, a fresh consumer reads every partition from offset 0 up to
//! its HW from its leader, straight to the node (never through a faulted link; a system file's
//! system over Kafka's Fetch to its real Kafka port), into
//! `final.json`'s [`FinalReads`]. It retries a failed read with fresh metadata until its
//! deadline and records the last failure; it judges nothing (the checker does).

use std::net::SocketAddr;

use faultline_checker::final_reads::{FinalPartition, FinalReads, FinalRecord};
use faultline_workloads::client::{FetchRequest, Metadata};
use tokio::time::Instant;

use crate::cluster::{Cluster, TopicSpec, POLL_INTERVAL};

/// Reads every partition from offset 0 up to its HW from its leader. A read that fails (the
/// controller's new leader has not heard of its election yet, a connection reset) is tried
/// again from offset 0 with fresh metadata until `deadline`; the last failure is recorded.
pub async fn final_read(cluster: &Cluster, topics: &[TopicSpec], deadline: Instant) -> FinalReads {
    let mut partitions = Vec::new();
    for topic in topics {
        for partition in 0..topic.partitions {
            loop {
                let metadata = cluster.metadata().await;
                let read =
                    read_partition(cluster, metadata.as_ref(), &topic.name, partition, deadline)
                        .await;
                if read.error.is_none() || Instant::now() >= deadline {
                    partitions.push(read);
                    break;
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
    }
    FinalReads {
        complete: partitions.iter().all(|p| p.error.is_none()),
        partitions,
    }
}

async fn read_partition(
    cluster: &Cluster,
    metadata: Option<&Metadata>,
    topic: &str,
    partition: u32,
    deadline: Instant,
) -> FinalPartition {
    let meta = metadata.and_then(|m| m.partition(topic, partition));
    let mut read = FinalPartition {
        topic: topic.to_string(),
        partition,
        leader: meta.and_then(|p| p.leader),
        leader_epoch: meta.and_then(|p| p.leader_epoch),
        high_watermark: None,
        isr: meta.map(|p| p.isr.clone()).unwrap_or_default(),
        records: Vec::new(),
        error: None,
    };
    let Some(leader) = read.leader else {
        read.error = Some(match metadata {
            None => {
                "no metadata: the controller (or, for a system file, every node) did not answer"
                    .to_string()
            }
            Some(_) => "no leader".to_string(),
        });
        return read;
    };
    let Some(&addr) = cluster.broker_addrs.get(&leader) else {
        read.error = Some(format!("leader {leader} is not a broker of this run"));
        return read;
    };
    // A system file's nodes have no /v1/state: their HW is read as their Fetch answers give it.
    if cluster.spec.system.is_none() {
        settle(cluster, addr, topic, partition, deadline).await;
    }
    if let Err(error) = fetch_all(cluster, addr, &mut read, deadline).await {
        read.error = Some(error);
    }
    read
}

/// How long the final read waits for a leader's HW to reach its log end before reading anyway.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits, at most [`SETTLE`] or until `deadline`, until the leader's HW has reached its log end.
/// After recovery the ISR is full and no client writes, so it will: but a leader elected in the
/// recovery knows its followers' log ends only from their next fetches, and until then its HW
/// may sit below records acknowledged with acks=all under the previous leader — records every
/// replica holds. Reading then would call them lost. (Kafka's consumers see them once the HW
/// moves, as the final read does after this wait.) A leader that never gets there is read
/// anyway, and the checker judges what it returns.
async fn settle(
    cluster: &Cluster,
    addr: SocketAddr,
    topic: &str,
    partition: u32,
    deadline: Instant,
) {
    let until = deadline.min(Instant::now() + SETTLE);
    while Instant::now() < until {
        let settled = cluster.admin.state(addr).await.ok().and_then(|state| {
            let replica = state
                .partitions
                .into_iter()
                .find(|p| p.topic == topic && p.partition == partition)?;
            Some(
                replica.high_watermark.is_some()
                    && replica.high_watermark == replica.log_end_offset,
            )
        });
        if settled == Some(true) {
            return;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn fetch_all(
    cluster: &Cluster,
    addr: SocketAddr,
    read: &mut FinalPartition,
    deadline: Instant,
) -> Result<(), String> {
    let mut offset = 0;
    loop {
        if Instant::now() >= deadline {
            return Err("the final read ran out of time".to_string());
        }
        let request = FetchRequest {
            topic: &read.topic,
            partition: read.partition,
            offset,
            max_records: 1000,
            max_wait_ms: 0,
        };
        let response = cluster
            .fetch(addr, request)
            .await
            .map_err(|e| e.to_string())?;
        read.high_watermark = Some(response.high_watermark);
        let Some(last) = response.records.last().map(|r| r.offset) else {
            return Ok(());
        };
        // A Kafka broker answers with whole batches, which may begin before the offset asked.
        let from = offset;
        read.records.extend(
            response
                .records
                .into_iter()
                .filter(|r| r.offset >= from)
                .map(|r| FinalRecord {
                    offset: r.offset,
                    value: r.value,
                    leader_epoch: r.leader_epoch,
                }),
        );
        offset = last + 1;
        if offset >= response.high_watermark {
            return Ok(());
        }
    }
}
