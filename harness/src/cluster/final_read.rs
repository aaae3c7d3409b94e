//! The final read: after healing, a fresh consumer reads every partition from offset 0 up to
//! its HW from its leader, straight to the node (never through a faulted link; a system file's
//! system over Kafka's Fetch to its real Kafka port), into
//! `final.json`'s [`FinalReads`]. It retries a failed read with fresh metadata until its
//! deadline — from where it stopped while the leader and its epoch stay the same, else from
//! offset 0 — and records the last failure; it judges nothing (the checker does).

use std::net::SocketAddr;
use std::time::Duration;

use faultline_checker::final_reads::{FinalPartition, FinalReads, FinalRecord};
use faultline_workloads::client::{ClientError, FetchRequest, FetchResponse, Metadata};
use faultline_workloads::KafkaClient;
use tokio::time::Instant;

use crate::cluster::{Cluster, TopicSpec, POLL_INTERVAL};

/// How long the final read waits for each Fetch answer of a system file's system. Not the
/// harness's short admin timeout: Tansu 0.6.0 on PostgreSQL takes about a second to answer a
/// 1 MiB fetch (measured 2026-12-03: 10 669 records in ~11 fetches over ~10 s), so a 1 s bound
/// timed every fetch out and the read never finished. The run's deadline still bounds the read.
const SYSTEM_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads every partition from offset 0 up to its HW from its leader. A read that fails (the
/// controller's new leader has not heard of its election yet, a connection reset, a slow
/// answer) is tried again with fresh metadata until `deadline`, keeping what it read when the
/// leader and its epoch are unchanged; the last failure is recorded.
pub async fn final_read(cluster: &Cluster, topics: &[TopicSpec], deadline: Instant) -> FinalReads {
    let reader = Reader {
        cluster,
        kafka: KafkaClient::new(SYSTEM_FETCH_TIMEOUT),
        deadline,
    };
    let mut partitions = Vec::new();
    for topic in topics {
        for partition in 0..topic.partitions {
            let mut earlier: Option<FinalPartition> = None;
            loop {
                let metadata = cluster.metadata().await;
                let read = reader
                    .read_partition(metadata.as_ref(), &topic.name, partition, earlier.take())
                    .await;
                if read.error.is_none() || Instant::now() >= deadline {
                    partitions.push(read);
                    break;
                }
                earlier = Some(read);
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
    }
    FinalReads {
        complete: partitions.iter().all(|p| p.error.is_none()),
        partitions,
    }
}

/// What one final read reads with.
struct Reader<'a> {
    cluster: &'a Cluster,
    /// A system's Fetch calls, bounded by [`SYSTEM_FETCH_TIMEOUT`] each.
    kafka: KafkaClient,
    deadline: Instant,
}

/// The records of a failed read of the same leader in the same epoch: where to go on from.
fn resumable(earlier: Option<FinalPartition>, read: &FinalPartition) -> Vec<FinalRecord> {
    match earlier {
        Some(e)
            if e.leader.is_some()
                && e.leader == read.leader
                && e.leader_epoch == read.leader_epoch =>
        {
            e.records
        }
        _ => Vec::new(),
    }
}

impl Reader<'_> {
    async fn read_partition(
        &self,
        metadata: Option<&Metadata>,
        topic: &str,
        partition: u32,
        earlier: Option<FinalPartition>,
    ) -> FinalPartition {
        let (cluster, deadline) = (self.cluster, self.deadline);
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
        read.records = resumable(earlier, &read);
        // A system file's nodes have no /v1/state: their HW is read as their Fetch answers give it.
        if cluster.spec.system.is_none() {
            settle(cluster, addr, topic, partition, deadline).await;
        }
        if let Err(error) = self.fetch_all(addr, &mut read).await {
            read.error = Some(error);
        }
        read
    }

    /// One Fetch: to a native node over its HTTP API, to a system over Kafka with the final
    /// read's own timeout; either way not past the deadline.
    async fn fetch(
        &self,
        addr: SocketAddr,
        request: FetchRequest<'_>,
    ) -> Result<FetchResponse, String> {
        let call = async {
            match self.cluster.spec.system {
                None => self.cluster.admin.fetch(addr, request).await,
                Some(_) => self.kafka.fetch(addr, request).await,
            }
        };
        match tokio::time::timeout_at(self.deadline, call).await {
            Ok(answer) => answer.map_err(|e: ClientError| e.to_string()),
            Err(_) => Err("the final read ran out of time".to_string()),
        }
    }

    /// Reads from after the records `read` holds up to the HW.
    async fn fetch_all(&self, addr: SocketAddr, read: &mut FinalPartition) -> Result<(), String> {
        let mut offset = read.records.last().map_or(0, |r| r.offset + 1);
        loop {
            if Instant::now() >= self.deadline {
                return Err("the final read ran out of time".to_string());
            }
            let request = FetchRequest {
                topic: &read.topic,
                partition: read.partition,
                offset,
                max_records: 1000,
                max_wait_ms: 0,
            };
            let response = self.fetch(addr, request).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(leader: Option<u32>, epoch: Option<u32>, values: &[&str]) -> FinalPartition {
        FinalPartition {
            topic: "t".to_string(),
            partition: 0,
            leader,
            leader_epoch: epoch,
            high_watermark: None,
            isr: Vec::new(),
            records: values
                .iter()
                .enumerate()
                .map(|(offset, v)| FinalRecord {
                    offset: offset as u64,
                    value: v.to_string(),
                    leader_epoch: epoch.unwrap_or(0),
                })
                .collect(),
            error: Some("timed out".to_string()),
        }
    }

    #[test]
    fn a_failed_read_goes_on_only_from_the_same_leader_in_the_same_epoch() {
        let earlier = partition(Some(2), Some(4), &["a", "b"]);
        let same = partition(Some(2), Some(4), &[]);
        assert_eq!(resumable(Some(earlier.clone()), &same), earlier.records);

        let new_epoch = partition(Some(2), Some(5), &[]);
        assert!(resumable(Some(earlier.clone()), &new_epoch).is_empty());
        let new_leader = partition(Some(3), Some(4), &[]);
        assert!(resumable(Some(earlier.clone()), &new_leader).is_empty());
        assert!(resumable(None, &same).is_empty());

        // No leader then: nothing was read from anyone to go on from.
        let leaderless = partition(None, None, &["a"]);
        assert!(resumable(Some(leaderless), &partition(None, None, &[])).is_empty());
    }
}
