//! The leader-epoch cache (Kafka's `LeaderEpochFileCache`, KIP-101): for each leader epoch seen
//! by this replica, the first offset written in it. It answers "where does epoch e end?", which is
//! how a follower finds exactly where its log diverged from a new leader's, instead of truncating
//! blindly to its HW.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use super::checkpoint::write_atomic;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochEntry {
    pub epoch: u32,
    pub start_offset: u64,
}

/// The answer to "where does epoch e end here?": the largest epoch ≤ e this replica knows and the
/// offset at which it ends (the start offset of the next epoch, or the LEO for the latest).
/// `None` when this replica knows no epoch ≤ e and none above it either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochEnd {
    pub epoch: u32,
    pub end_offset: u64,
}

#[derive(Debug)]
pub struct LeaderEpochCache {
    path: Option<PathBuf>,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// An empty cache persisted at `path` (None: in memory only, for tests and `dump`).
    pub fn new(path: Option<PathBuf>) -> Self {
        LeaderEpochCache {
            path,
            entries: Vec::new(),
        }
    }

    /// Loads the checkpoint at `path`; a missing file is an empty cache, and so is one that does
    /// not parse (bytes that are not UTF-8 or not JSON): the log's own batches prove every epoch,
    /// and `Log::open` rebuilds the cache from them. Entries that are not strictly increasing in
    /// both epoch and offset are dropped.
    pub fn load(path: &Path) -> std::io::Result<Self> {
        let mut cache = LeaderEpochCache::new(Some(path.to_path_buf()));
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(cache),
            Err(e) => return Err(e),
        };
        let loaded: Vec<EpochEntry> = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!("{}: {e}; rebuilding it from the log", path.display());
            Vec::new()
        });
        for entry in loaded {
            cache.push_if_increasing(entry);
        }
        Ok(cache)
    }

    /// Persists changes at `path` from now on (a cache built in memory, then kept).
    pub fn attach(&mut self, path: PathBuf) {
        self.path = Some(path);
    }

    /// Stops persisting changes (a read-only view of a log, for `dump`).
    pub fn detach(&mut self) {
        self.path = None;
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<u32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// The start offset of `epoch`, if this replica has an entry for it.
    pub fn start_offset_of(&self, epoch: u32) -> Option<u64> {
        self.entries
            .iter()
            .find(|e| e.epoch == epoch)
            .map(|e| e.start_offset)
    }

    fn push_if_increasing(&mut self, entry: EpochEntry) -> bool {
        match self.entries.last() {
            Some(last) if entry.epoch <= last.epoch => false,
            Some(last) if entry.start_offset < last.start_offset => false,
            _ => {
                self.entries.push(entry);
                true
            }
        }
    }

    /// Records that `epoch` starts at `start_offset`. Epochs only grow: an older or equal epoch is
    /// ignored. A newer epoch starting at the same offset as the latest replaces it (the older
    /// epoch then holds no records). Returns whether the cache changed.
    pub fn assign(&mut self, epoch: u32, start_offset: u64) -> std::io::Result<bool> {
        if let Some(last) = self.entries.last() {
            if epoch <= last.epoch {
                return Ok(false);
            }
            assert!(
                start_offset >= last.start_offset,
                "epoch {epoch} would start at {start_offset}, before epoch {} at {}",
                last.epoch,
                last.start_offset
            );
        }
        self.entries.retain(|e| e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.persist()?;
        Ok(true)
    }

    /// Kafka's `endOffsetFor`: where `requested` ends in this replica's log whose end is `leo`.
    pub fn end_offset_for(&self, requested: u32, leo: u64) -> Option<EpochEnd> {
        let latest = self.entries.last()?;
        if requested == latest.epoch {
            return Some(EpochEnd {
                epoch: requested,
                end_offset: leo,
            });
        }
        let higher = self.entries.iter().find(|e| e.epoch > requested)?;
        let floor = self.entries.iter().rev().find(|e| e.epoch <= requested);
        Some(match floor {
            Some(floor) => EpochEnd {
                epoch: floor.epoch,
                end_offset: higher.start_offset,
            },
            // The requested epoch is older than anything here: it ends where our history starts.
            None => EpochEnd {
                epoch: requested,
                end_offset: higher.start_offset,
            },
        })
    }

    /// Drops every entry starting at or after `offset` (the log was truncated to `offset`).
    pub fn truncate_from_end(&mut self, offset: u64) -> std::io::Result<()> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < offset);
        if self.entries.len() != before {
            self.persist()?;
        }
        Ok(())
    }

    /// Writes the checkpoint (atomically: temp file, fsync, rename), unless detached.
    pub fn persist(&self) -> std::io::Result<()> {
        match &self.path {
            Some(path) => {
                let text = serde_json::to_vec(&self.entries).expect("epoch entries serialize");
                write_atomic(path, &text)
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(u32, u64)]) -> LeaderEpochCache {
        let mut cache = LeaderEpochCache::new(None);
        for &(epoch, start_offset) in entries {
            cache.assign(epoch, start_offset).unwrap();
        }
        cache
    }

    #[test]
    fn end_offset_of_latest_epoch_is_the_leo() {
        let c = cache(&[(0, 0), (2, 10), (5, 30)]);
        assert_eq!(
            c.end_offset_for(5, 42),
            Some(EpochEnd {
                epoch: 5,
                end_offset: 42
            })
        );
    }

    #[test]
    fn end_offset_of_an_unknown_middle_epoch_is_the_floor_epochs_end() {
        let c = cache(&[(0, 0), (2, 10), (5, 30)]);
        // Epoch 3 was never written here: the floor is epoch 2, which ends where 5 starts.
        assert_eq!(
            c.end_offset_for(3, 42),
            Some(EpochEnd {
                epoch: 2,
                end_offset: 30
            })
        );
        assert_eq!(
            c.end_offset_for(0, 42),
            Some(EpochEnd {
                epoch: 0,
                end_offset: 10
            })
        );
    }

    #[test]
    fn epoch_older_than_the_first_ends_at_the_first_start() {
        let c = cache(&[(4, 7)]);
        assert_eq!(
            c.end_offset_for(1, 9),
            Some(EpochEnd {
                epoch: 1,
                end_offset: 7
            })
        );
        assert_eq!(c.end_offset_for(6, 9), None);
    }

    #[test]
    fn epochs_only_grow_and_truncation_drops_later_entries() {
        let mut c = cache(&[(0, 0), (2, 10)]);
        assert!(!c.assign(1, 12).unwrap(), "an older epoch must be ignored");
        c.assign(3, 20).unwrap();
        c.truncate_from_end(10).unwrap();
        assert_eq!(
            c.entries(),
            &[EpochEntry {
                epoch: 0,
                start_offset: 0
            }]
        );
    }

    #[test]
    fn a_newer_epoch_at_the_same_offset_replaces_an_empty_one() {
        let c = cache(&[(0, 0), (1, 5), (2, 5)]);
        assert_eq!(c.entries().len(), 2);
        assert_eq!(c.latest_epoch(), Some(2));
    }

    #[test]
    fn checkpoint_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leader-epoch-checkpoint");
        let mut c = LeaderEpochCache::load(&path).unwrap();
        c.assign(1, 0).unwrap();
        c.assign(3, 17).unwrap();
        let back = LeaderEpochCache::load(&path).unwrap();
        assert_eq!(back.entries(), c.entries());
    }
}
