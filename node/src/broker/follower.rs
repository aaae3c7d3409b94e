//! The follower's fetch loop for one partition: long-poll fetches from the leader, handed to
//! [`Replica::follower_apply`] (append, or truncate at a diverging epoch) under the partition's
//! lock. One loop per (leader, leader_epoch); it ends when either changes and the new metadata
//! starts another, when the broker stops fetching the partition (controlled shutdown), and when
//! the broker shuts down. The replication rules themselves live in `replica/`.

use std::sync::Arc;
use std::time::Duration;

use super::client::post;
use super::registry::PartitionHandle;
use super::replica::{OutOfRange, Replica, Role};
use super::{Shared, REPLICA_FETCH_MAX_RECORDS};
use crate::api::*;

/// Backoffs after a failed fetch: the leader unreachable, and any other refusal.
const UNREACHABLE_BACKOFF_MS: u64 = 100;
const REFUSED_BACKOFF_MS: u64 = 25;
/// After a fetch answer this broker could not apply (a storage error).
const APPLY_FAILED_BACKOFF_MS: u64 = 500;

/// The follower's fetch loop for one partition; it ends when the partition's leader or epoch
/// changes (the new metadata starts another).
pub async fn follow(broker: Shared, handle: Arc<PartitionHandle>, leader: u32, epoch: u32) {
    let Some(addr) = broker.config.peers.get(&leader).cloned() else {
        tracing::error!("no --peer address for broker {leader}; cannot follow it");
        return;
    };
    let url = format!("http://{addr}/v1/internal/replica-fetch");
    let wait_ms = broker.config.replica_fetch_wait_max_ms;
    let timeout = Duration::from_millis(wait_ms + 2_000);
    let still_following = |r: &Replica| {
        r.role() == Role::Follower
            && r.leader() == Some(leader)
            && r.leader_epoch() == Some(epoch)
            && !handle.fetching_stopped()
            && !broker.lifecycle.is_shutting_down()
    };
    loop {
        let req = {
            let r = handle.lock();
            if !still_following(&r) {
                return;
            }
            r.next_fetch(
                &broker.config.cluster_id,
                REPLICA_FETCH_MAX_RECORDS,
                wait_ms,
            )
        };
        let answer = post(&broker.http, &url, &req, timeout).await.map(|body| {
            // Every frame is checked here, off the partition's lock.
            ReplicaFetchResponse::decode(body)
                .map_err(|e| std::io::Error::other(format!("leader {leader}'s answer: {e}")))
        });
        let backoff = {
            let mut r = handle.lock();
            if !still_following(&r) || r.leo() != req.fetch_offset {
                return;
            }
            let outcome = apply_answer(&mut r, leader, answer, &broker);
            drop(r);
            handle.notify();
            outcome.unwrap_or_else(|e| {
                tracing::error!(
                    "follower {}/{} failed to apply a fetch: {e}",
                    req.topic,
                    req.partition
                );
                Some(APPLY_FAILED_BACKOFF_MS)
            })
        };
        if let Some(ms) = backoff {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
}

/// Applies one fetch answer; returns how long to back off before the next fetch, if at all.
fn apply_answer(
    r: &mut Replica,
    leader: u32,
    answer: Result<std::io::Result<ReplicaFetchResponse>, ApiError>,
    broker: &Shared,
) -> std::io::Result<Option<u64>> {
    match answer {
        Ok(resp) => r
            .follower_apply(leader, resp?, &broker.events)
            .map(|_| None),
        Err(e) if e.error == ErrorCode::OffsetOutOfRange => match e.log_end_offset {
            Some(leo) => match r.follower_out_of_range(leader, leo, &broker.events)? {
                OutOfRange::Truncated => Ok(None),
                OutOfRange::Exit => exit_truncation_not_allowed(r, leader, leo),
            },
            None => Ok(Some(UNREACHABLE_BACKOFF_MS)),
        },
        Err(e) => {
            tracing::debug!("fetch from {leader}: {e}");
            Ok(Some(if e.error == ErrorCode::RequestTimedOut {
                UNREACHABLE_BACKOFF_MS
            } else {
                REFUSED_BACKOFF_MS
            }))
        }
    }
}

/// Kafka 0.10.2's answer to a follower ahead of its leader when unclean election is off
/// (ReplicaFetcherThread `handleOffsetOutOfRange`): log a fatal error and exit the process with
/// status 1, so that no data is lost unnoticed. The event is already written (events.jsonl is
/// unbuffered); a supervisor, or the harness's heal, may start the broker again.
fn exit_truncation_not_allowed(r: &Replica, leader: u32, leader_leo: u64) -> ! {
    tracing::error!(
        "exiting because log truncation is not allowed for {}/{}: leader {leader}'s log end \
         offset {leader_leo} is less than this replica's {} (legacy-hw, as Kafka 0.10.2)",
        r.topic(),
        r.partition(),
        r.leo()
    );
    std::process::exit(1)
}
