//! The partition registry of a broker: which partition replicas it hosts, each behind its lock
//! with a change counter that wakes long-polls and acks=all waits and a flag that stops its
//! follower fetch loop (controlled shutdown); opening (and so recovering) every partition found
//! in the data dir at start; the HW checkpoint files; and closing every log at shutdown. It
//! owns no task and speaks no HTTP.

use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::time::Instant;

use super::replica::Replica;
use super::{clean_shutdown, Broker};
use crate::api::*;
use crate::storage::checkpoint::{read_u64, write_atomic};
use crate::storage::Log;

pub const HW_CHECKPOINT: &str = "high-watermark";

/// One hosted partition: its replica behind a lock, and a counter bumped on every change so
/// long-polls and acks=all waits wake up.
pub struct PartitionHandle {
    replica: Mutex<Replica>,
    changed: watch::Sender<u64>,
    /// Follower fetches being answered now, by follower id (for `/v1/state`).
    fetches_in_flight: Mutex<BTreeMap<u32, u32>>,
    /// Set when this broker must stop fetching the partition (Kafka's `ReplicaManager` removes
    /// its fetcher during a controlled shutdown); cleared when a new fetch loop starts.
    fetching_stopped: AtomicBool,
}

/// Counts one follower fetch as in flight until dropped.
pub struct InFlight<'a> {
    handle: &'a PartitionHandle,
    follower: u32,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut map = self
            .handle
            .fetches_in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.follower) {
            *n = n.saturating_sub(1);
        }
    }
}

impl PartitionHandle {
    fn new(replica: Replica) -> Self {
        PartitionHandle {
            replica: Mutex::new(replica),
            changed: watch::channel(0).0,
            fetches_in_flight: Mutex::new(BTreeMap::new()),
            fetching_stopped: AtomicBool::new(false),
        }
    }

    /// The follower fetch loop ends at its next turn.
    pub fn stop_fetching(&self) {
        self.fetching_stopped.store(true, Ordering::SeqCst);
    }

    /// Before a new follower fetch loop starts.
    pub fn start_fetching(&self) {
        self.fetching_stopped.store(false, Ordering::SeqCst);
    }

    pub fn fetching_stopped(&self) -> bool {
        self.fetching_stopped.load(Ordering::SeqCst)
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Replica> {
        self.replica.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn track_fetch(&self, follower: u32) -> InFlight<'_> {
        *self
            .fetches_in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(follower)
            .or_insert(0) += 1;
        InFlight {
            handle: self,
            follower,
        }
    }

    pub fn state(&self) -> ReplicaState {
        let mut state = self.lock().state();
        let in_flight = self
            .fetches_in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for follower in &mut state.followers {
            follower.fetches_in_flight = in_flight.get(&follower.id).copied().unwrap_or(0);
        }
        state
    }

    pub fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Waits until `check` answers, or `deadline`. The change counter is read before each check
    /// so no change between the check and the wait is missed.
    pub async fn wait_for<T>(
        &self,
        deadline: Instant,
        mut check: impl FnMut(&Replica) -> Option<T>,
    ) -> Option<T> {
        let mut rx = self.changed.subscribe();
        loop {
            rx.borrow_and_update();
            if let Some(answer) = check(&self.lock()) {
                return Some(answer);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return None,
            }
        }
    }
}

fn partition_dir(data: &Path, topic: &str, partition: u32) -> PathBuf {
    data.join(format!("{topic}-{partition}"))
}

/// Splits a partition directory name `topic-N` (topic names may themselves contain `-`).
pub fn parse_partition_dir(name: &str) -> Option<(String, u32)> {
    let (topic, partition) = name.rsplit_once('-')?;
    validate_topic_name(topic).ok()?;
    Some((topic.to_string(), partition.parse().ok()?))
}

impl Broker {
    /// Opens every partition found in the data dir, recovering its log, before anything else.
    pub(super) fn recover_partitions(&self) -> anyhow::Result<()> {
        let mut dirs: Vec<_> = std::fs::read_dir(&self.config.data)?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| parse_partition_dir(&e.file_name().to_string_lossy()))
            .collect();
        dirs.sort();
        for (topic, partition) in dirs {
            self.open_partition(&topic, partition)?;
        }
        Ok(())
    }

    pub(super) fn open_partition(
        &self,
        topic: &str,
        partition: u32,
    ) -> anyhow::Result<Arc<PartitionHandle>> {
        let dir = partition_dir(&self.config.data, topic, partition);
        let (log, report) = Log::open(&dir, self.config.log, false)?;
        let hw_checkpoint = read_u64(&dir.join(HW_CHECKPOINT)).unwrap_or_else(|e| {
            tracing::warn!("{e}; starting from HW 0");
            None
        });
        self.events.emit(
            "recovery",
            json!({"topic": topic, "partition": partition, "log_end_offset": report.log_end_offset,
                   "high_watermark": hw_checkpoint.unwrap_or(0), "leader_epoch": log.latest_epoch(),
                   "dropped_bytes": report.dropped_bytes, "segments": report.segments,
                   "reason": report.reason, "recovery_point": report.recovery_point,
                   "clean_shutdown": report.clean_shutdown,
                   "segments_recovered": report.segments_recovered,
                   "segments_skipped": report.segments_skipped,
                   "skipped_bytes": report.skipped_bytes,
                   "epoch_checkpoint_rebuilt": report.epoch_checkpoint_rebuilt,
                   "producers": report.producers,
                   "producer_snapshot": report.producer_snapshot,
                   "producer_snapshots_refused": report.producer_snapshots_refused,
                   "producer_batches_replayed": report.producer_batches_replayed}),
        );
        let replica = Replica::new(
            topic,
            partition,
            self.config.id,
            self.config.version.rules(),
            self.isr_settings(),
            log,
            hw_checkpoint.unwrap_or(0),
        );
        let handle = Arc::new(PartitionHandle::new(replica));
        self.partitions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((topic.to_string(), partition), handle.clone());
        Ok(handle)
    }

    pub(super) fn partition(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<Arc<PartitionHandle>, ApiError> {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(topic.to_string(), partition))
            .cloned()
            .ok_or_else(|| ApiError::unknown_partition(topic, partition))
    }

    pub(super) fn handles(&self) -> Vec<Arc<PartitionHandle>> {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub(super) fn write_hw_checkpoints(&self) {
        for handle in self.handles() {
            let (dir, hw) = {
                let r = handle.lock();
                (r.log().dir().to_path_buf(), r.hw())
            };
            let path = dir.join(HW_CHECKPOINT);
            if read_u64(&path).ok().flatten() != Some(hw) {
                if let Err(e) = write_atomic(&path, format!("{hw}\n").as_bytes()) {
                    tracing::error!("HW checkpoint {}: {e}", path.display());
                }
            }
        }
    }

    /// Clean shutdown: no more heartbeats or fetches, then HW checkpoints and logs flushed. A
    /// closed replica is offline, so nothing appends past its clean-shutdown marker. Once every
    /// log is closed, the broker's own marker records its broker epoch (Kafka 3.8.0
    /// `LogManager.shutdown(brokerEpoch)`); without a known epoch, or if a log failed to close,
    /// there is nothing to show the controller and no marker is written. Returns the epoch
    /// recorded.
    pub fn shutdown(&self) -> Option<u64> {
        self.lifecycle.begin_shutdown();
        self.write_hw_checkpoints();
        let mut closed = true;
        for handle in self.handles() {
            if let Err(e) = handle.lock().close_clean() {
                tracing::error!("sync at shutdown: {e}");
                closed = false;
            }
        }
        let epoch = self.broker_epoch().filter(|_| closed)?;
        match clean_shutdown::write(&self.config.data, epoch) {
            Ok(()) => Some(epoch),
            Err(e) => {
                tracing::error!("clean-shutdown marker: {e}");
                None
            }
        }
    }
}
