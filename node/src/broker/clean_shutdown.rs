//! The broker's clean-shutdown marker: `clean-shutdown.json` in the data dir, `{"broker_epoch":
//! N}`, written once every log has been closed cleanly and holding the broker epoch the process
//! stopped with, so that the next process can tell the controller its previous shutdown was
//! clean (KIP-966's `PreviousBrokerEpoch`). Kafka 3.8.0 (paths under `core/src/main/scala/kafka/`
//! and `storage/src/main/java/org/apache/kafka/storage/internals/`): `log/LogManager.scala`
//! `shutdown(brokerEpoch)` writes `.kafka_cleanshutdown` through
//! `checkpoint/CleanShutdownFileHandler.java` `write` (KAFKA-15582, PR #14465) after the logs of a
//! dir are closed; `loadLogs` deletes it before loading ("so that if broker crashes while loading
//! the log, it is considered hard shutdown during the next boot up", KAFKA-10471);
//! `readBrokerEpochFromCleanShutdownFiles` gives `BrokerLifecycleManager` the epoch for its
//! registration. The marker is consumed ([`take`]) before the broker serves anything, so only a
//! process that reaches [`write`] again leaves one: a crash never does.
//!
//! Each partition's log keeps its own marker as well (`storage::log::CLEAN_SHUTDOWN_MARKER`),
//! which only says that log's recovery may be skipped; this one is about the broker.

use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io;
use std::path::Path;

use crate::storage::checkpoint::write_atomic;

/// The marker's file name in the broker's data dir.
pub const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown.json";

/// The marker's content (Kafka's `CleanShutdownFileHandler.Content`, without its version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanShutdown {
    /// The broker epoch of the registration the stopping process had.
    pub broker_epoch: u64,
}

/// Records a clean shutdown of the broker whose data dir is `data`, at `broker_epoch`: temp
/// file, fsync, rename, fsync of the dir, so a power cut leaves either no marker or this one.
pub fn write(data: &Path, broker_epoch: u64) -> io::Result<()> {
    let bytes = serde_json::to_vec(&CleanShutdown { broker_epoch }).map_err(io::Error::other)?;
    write_atomic(&data.join(CLEAN_SHUTDOWN_FILE), &bytes)
}

/// Reads and removes the marker: the broker epoch the previous process stopped cleanly with,
/// or None (no marker: a crash, or a first start). The removal is made durable before this
/// returns, so a crash of this process is never taken for a clean stop, even after a power cut.
/// A marker that cannot be parsed is removed too and counts as none, as Kafka's `read` answers
/// empty then; failing to remove it is an error, since the broker must not start with it.
pub fn take(data: &Path) -> io::Result<Option<u64>> {
    let path = data.join(CLEAN_SHUTDOWN_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let marker = serde_json::from_slice::<CleanShutdown>(&bytes);
    if let Err(e) = &marker {
        tracing::warn!(
            "{}: unreadable ({e}); taken as an unclean shutdown",
            path.display()
        );
    }
    fs::remove_file(&path)?;
    File::open(data)?.sync_all()?;
    Ok(marker.ok().map(|m| m.broker_epoch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_holds_the_broker_epoch_and_is_consumed_by_the_first_read() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(take(dir.path()).unwrap(), None, "a first start");
        write(dir.path(), 17).unwrap();
        let text = fs::read_to_string(dir.path().join(CLEAN_SHUTDOWN_FILE)).unwrap();
        assert_eq!(text, r#"{"broker_epoch":17}"#);
        assert_eq!(take(dir.path()).unwrap(), Some(17));
        assert!(!dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
        assert_eq!(take(dir.path()).unwrap(), None, "consumed");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert!(names.is_empty(), "no temp file left: {names:?}");
    }

    #[test]
    fn an_unreadable_marker_counts_as_none_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CLEAN_SHUTDOWN_FILE), b"{\"broker_ep").unwrap();
        assert_eq!(take(dir.path()).unwrap(), None);
        assert!(!dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
    }
}
