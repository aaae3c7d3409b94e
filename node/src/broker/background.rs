//! The broker's background work: the heartbeat loop (registration, liveness, metadata, the
//! broker epoch, and the controlled shutdown's `want_shutdown`), the ISR-shrink check (every replica.lag.time.max.ms / 2, as Kafka's `isr-expiration` task), the
//! HW checkpoint loop, and sending AlterPartition proposals to the controller, retried until the
//! controller answers (Kafka's AlterPartitionManager never gives up on a request). Each loop runs
//! for the life of the process; every wait in them is bounded.

use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use super::client::post_json;
use super::registry::PartitionHandle;
use super::replica::{AlterOutcome, AlterProposal};
use super::Shared;
use crate::api::*;
use crate::events::now_ms;

/// How long one AlterPartition request may take before it is sent again.
const ALTER_REQUEST_TIMEOUT_MS: u64 = 2_000;
/// The pause before resending an unanswered AlterPartition (Kafka's AlterPartitionManager: 50 ms).
const ALTER_RESEND_DELAY_MS: u64 = 50;

/// How often the leader looks for followers to drop from the ISR: Kafka's ReplicaManager runs
/// `maybeShrinkIsr` every replica.lag.time.max.ms / 2, so a follower is dropped between 1 and
/// 1.5 lag times after it stopped catching up.
pub fn isr_check_period_ms(replica_lag_time_max_ms: u64) -> u64 {
    (replica_lag_time_max_ms / 2).max(1)
}

/// Heartbeats for the life of the broker, until it shuts down (Kafka's
/// `BrokerLifecycleManager`): every heartbeat interval, sooner when a controlled shutdown
/// begins or wants an early answer. In a controlled shutdown every heartbeat asks to stop
/// (`want_shutdown`), except with 0.10.2.1's rules, where only some do (`Lifecycle::zk_ask_due`)
/// and the others keep the session alive, as a 0.10 broker's ZooKeeper session outlives its
/// ControlledShutdownRequests.
pub async fn heartbeat_loop(broker: Shared) {
    let period = Duration::from_millis(broker.config.heartbeat_interval_ms.max(1));
    let zk = broker.config.version.rules().zk_controlled_shutdown;
    let mut failures = 0u64;
    while !broker.lifecycle.is_shutting_down() {
        let want_shutdown = if zk {
            broker.lifecycle.zk_ask_due(Instant::now())
        } else {
            broker.lifecycle.wants_shutdown()
        };
        if broker.lifecycle.is_shutting_down() {
            break;
        }
        let delay = match heartbeat_once(&broker, want_shutdown).await {
            Ok(sooner) => {
                failures = 0;
                sooner.unwrap_or(period)
            }
            Err(e) => {
                failures += 1;
                if failures.is_power_of_two() {
                    tracing::warn!("heartbeat to the controller failed ({failures} in a row): {e}");
                }
                if zk && want_shutdown {
                    broker.lifecycle.on_zk_answer(None, Instant::now());
                }
                period
            }
        };
        broker.lifecycle.wait_for_heartbeat(delay).await;
    }
}

/// One heartbeat, asking to shut down if `want_shutdown`. Returns how soon the next one is
/// due, when sooner than the interval.
async fn heartbeat_once(broker: &Shared, want_shutdown: bool) -> Result<Option<Duration>, String> {
    let rules = broker.config.version.rules();
    let req = HeartbeatRequest {
        want_shutdown,
        broker_epoch: broker.broker_epoch().filter(|_| rules.broker_epochs),
        previous_broker_epoch: broker.previous_broker_epoch(),
        cluster_id: broker.config.cluster_id.clone(),
        broker_id: broker.config.id,
        incarnation: broker.incarnation,
        registers_fenced: rules.registers_fenced,
        metadata_version: broker.metadata_version(),
        kafka_address: broker.config.kafka_advertise.clone(),
    };
    let timeout = Duration::from_millis((broker.config.heartbeat_interval_ms * 5).max(500));
    let resp: HeartbeatResponse = post_json(
        &broker.http,
        &broker.controller_url("/v1/internal/heartbeat"),
        &req,
        timeout,
    )
    .await
    .map_err(|e| e.to_string())?;
    if let Some(epoch) = resp.broker_epoch.filter(|_| rules.broker_epochs) {
        broker.set_broker_epoch(epoch);
    }
    if let Some(metadata) = resp.metadata {
        broker.apply_metadata(metadata);
    }
    if !want_shutdown || broker.lifecycle.is_shutting_down() {
        return Ok(None);
    }
    if rules.zk_controlled_shutdown {
        let answer = Some(resp.should_shut_down);
        broker.lifecycle.on_zk_answer(answer, Instant::now());
        return Ok(None);
    }
    Ok(broker.lifecycle.on_shutdown_answer(resp.should_shut_down))
}

pub async fn isr_loop(broker: Shared) {
    let period_ms = isr_check_period_ms(broker.config.replica_lag_time_max_ms);
    let period = Duration::from_millis(period_ms);
    loop {
        tokio::time::sleep(period).await;
        for handle in broker.handles() {
            let proposal = handle.lock().maybe_shrink_isr(now_ms());
            spawn_alter(&broker, &handle, proposal);
        }
    }
}

pub async fn checkpoint_loop(broker: Shared) {
    let period = Duration::from_millis(broker.config.hw_checkpoint_interval_ms.max(10));
    loop {
        tokio::time::sleep(period).await;
        let b = broker.clone();
        let _ = tokio::task::spawn_blocking(move || b.write_hw_checkpoints()).await;
    }
}

/// Sends one AlterPartition proposal, and sends it again for as long as no answer comes and the
/// proposal is still the pending one (newer metadata ends it).
async fn send_alter(broker: Shared, handle: Arc<PartitionHandle>, proposal: AlterProposal) {
    let req = {
        let r = handle.lock();
        AlterPartitionRequest {
            broker_epochs: proposal.broker_epochs.clone(),
            cluster_id: broker.config.cluster_id.clone(),
            broker_id: broker.config.id,
            topic: r.topic().to_string(),
            partition: r.partition(),
            leader_epoch: proposal.leader_epoch,
            partition_epoch: proposal.partition_epoch,
            new_isr: proposal.new_isr.clone(),
        }
    };
    let url = broker.controller_url("/v1/internal/alter-partition");
    let timeout = Duration::from_millis(ALTER_REQUEST_TIMEOUT_MS);
    loop {
        let result = post_json(&broker.http, &url, &req, timeout).await;
        let outcome = handle
            .lock()
            .on_alter_result(&proposal, result, now_ms(), &broker.events);
        handle.notify();
        if outcome == AlterOutcome::Done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(ALTER_RESEND_DELAY_MS)).await;
    }
}

pub fn spawn_alter(
    broker: &Shared,
    handle: &Arc<PartitionHandle>,
    proposal: Option<AlterProposal>,
) {
    if let Some(proposal) = proposal {
        tokio::spawn(send_alter(broker.clone(), handle.clone(), proposal));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 8 item 8: ReplicaManager schedules `isr-expiration` every replica.lag.time.max.ms/2.
    #[test]
    fn the_isr_shrink_check_runs_every_half_lag_time() {
        assert_eq!(isr_check_period_ms(1_000), 500);
        assert_eq!(isr_check_period_ms(30_000), 15_000);
        assert_eq!(isr_check_period_ms(1), 1, "never a zero period");
    }
}
