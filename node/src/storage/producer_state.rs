//! The idempotent producers' state of one partition replica, as Kafka's `ProducerStateManager`
//! keeps it: per producer id, its epoch and the sequence ranges and offsets of its last five
//! batches (`ProducerStateEntry.NUM_BATCHES_TO_RETAIN`). A leader checks a client's batch
//! against it before the append ([`ProducerState::check_client`]): a retry of one of those five
//! batches is a duplicate and answered with the original's offsets, a sequence gap is
//! OUT_OF_ORDER_SEQUENCE_NUMBER, an older epoch INVALID_PRODUCER_EPOCH. Every appended batch,
//! the leader's own or a follower's copy, updates it ([`ProducerState::update`]), so the state
//! travels with the batches: a new leader dedups what the old one accepted.
//!
//! It is snapshotted with the log and rebuilt from it (the log owns when: `log.rs`): a snapshot
//! file `<offset>.producer-snapshot` holds the state of the log below `offset`, CRC-checked as
//! Kafka's `.snapshot` files are; recovery and truncation load the newest good snapshot at or
//! below the log end and replay the batches after it (`UnifiedLog.rebuildProducerState`).
//!
//! ```text
//! snapshot = magic "flprod" 0 | SNAPSHOT_VERSION: u8 | crc32c(rest): u32 LE | rest
//! rest     = producers: u32 LE | (producer_id: i64 | epoch: i16 | batches: u8
//!            | (first_seq: i32 | last_seq: i32 | first_offset: u64 | last_offset: u64) × batches) × producers
//! ```
//!
//! Rules and their source (Kafka trunk, storage/src/main/java/org/apache/kafka/storage/
//! internals/log/): `ProducerAppendInfo.checkProducerEpoch`, `.checkSequence`, `.inSequence`;
//! `ProducerStateEntry.findDuplicateBatch`, `.addBatch`, `.maybeUpdateProducerEpoch`;
//! core/src/main/scala/kafka/log/UnifiedLog.scala `analyzeAndValidateProducerState` (duplicates
//! are looked for only in client appends, before the sequence check). Transactions are not kept.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use super::batch::{FrameInfo, ProducerBatch};
use super::checkpoint::write_atomic;

/// Kafka's `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`.
pub const BATCHES_RETAINED: usize = 5;
pub const SNAPSHOT_SUFFIX: &str = ".producer-snapshot";
const SNAPSHOT_MAGIC: [u8; 7] = *b"flprod\0";
pub const SNAPSHOT_VERSION: u8 = 1;
/// Snapshots kept besides the newest (older ones are deleted when a new one is taken).
const SNAPSHOTS_KEPT: usize = 2;

/// One retained batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: u64,
    pub last_offset: u64,
}

/// What a replica knows of one producer (Kafka's `ProducerStateEntry` without transactions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first; at most [`BATCHES_RETAINED`].
    pub batches: VecDeque<BatchMeta>,
}

impl ProducerEntry {
    fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }

    /// `addBatch`: a new epoch forgets the old epoch's batches (`maybeUpdateProducerEpoch`).
    fn add(&mut self, epoch: i16, batch: BatchMeta) {
        if self.epoch != epoch {
            self.batches.clear();
            self.epoch = epoch;
        }
        if self.batches.len() == BATCHES_RETAINED {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
    }
}

/// Why a client's batch is refused; nothing was appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceError {
    /// INVALID_PRODUCER_EPOCH (47): the batch's epoch is older than the producer's.
    InvalidProducerEpoch(String),
    /// OUT_OF_ORDER_SEQUENCE_NUMBER (45): the batch does not follow the producer's last one.
    OutOfOrderSequence(String),
}

/// What the leader does with a client's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientBatch {
    /// Append it.
    Append,
    /// It is one of the producer's retained batches: answer with that batch's offsets and
    /// append nothing (`findDuplicateBatch`).
    Duplicate { first_offset: u64, last_offset: u64 },
}

/// Every producer's entry, and the log offset the state describes the log below.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerState {
    producers: BTreeMap<i64, ProducerEntry>,
    /// The state holds every batch below this offset (Kafka's `mapEndOffset`).
    end_offset: u64,
}

impl ProducerState {
    pub fn new(end_offset: u64) -> ProducerState {
        ProducerState {
            producers: BTreeMap::new(),
            end_offset,
        }
    }

    pub fn end_offset(&self) -> u64 {
        self.end_offset
    }

    pub fn entry(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Checks a client's batch of `records` records stamped `p`, which would be appended at
    /// `offset`: a duplicate of a retained batch of the same epoch, or a batch that may be
    /// appended, or the error that refuses it.
    pub fn check_client(
        &self,
        p: ProducerBatch,
        records: u32,
        offset: u64,
    ) -> Result<ClientBatch, SequenceError> {
        let first_seq = p.base_sequence;
        let last_seq = p.last_sequence(records);
        let pid = p.producer_id;
        let Some(entry) = self.producers.get(&pid) else {
            // An unknown producer (new, or its batches were truncated away): any sequence is
            // accepted, as `checkSequence` does when the current epoch is NO_PRODUCER_EPOCH.
            return Ok(ClientBatch::Append);
        };
        if p.producer_epoch == entry.epoch {
            if let Some(dup) = entry
                .batches
                .iter()
                .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
            {
                return Ok(ClientBatch::Duplicate {
                    first_offset: dup.first_offset,
                    last_offset: dup.last_offset,
                });
            }
        }
        if p.producer_epoch < entry.epoch {
            return Err(SequenceError::InvalidProducerEpoch(format!(
                "epoch of producer {pid} at offset {offset} is {}, which is smaller than the last \
                 seen epoch {}",
                p.producer_epoch, entry.epoch
            )));
        }
        if p.producer_epoch != entry.epoch {
            // A new epoch starts at sequence 0.
            if first_seq != 0 {
                return Err(SequenceError::OutOfOrderSequence(format!(
                    "invalid sequence number for new epoch of producer {pid} at offset {offset}: \
                     {} (request epoch), {first_seq} (seq. number), {} (current producer epoch)",
                    p.producer_epoch, entry.epoch
                )));
            }
            return Ok(ClientBatch::Append);
        }
        let in_sequence = |last: i32| {
            i64::from(first_seq) == i64::from(last) + 1 || (first_seq == 0 && last == i32::MAX)
        };
        match entry.last_seq() {
            Some(last) if !in_sequence(last) => Err(SequenceError::OutOfOrderSequence(format!(
                "out of order sequence number for producer {pid} at offset {offset}: \
                 {first_seq} (incoming seq. number), {last} (current end sequence number)"
            ))),
            _ => Ok(ClientBatch::Append),
        }
    }

    /// An appended batch (the leader's, after [`ProducerState::check_client`], or a
    /// follower's copy, unchecked as Kafka's replication origin is) joins its producer's entry.
    /// Batches must come in offset order.
    pub fn update(&mut self, info: &FrameInfo) {
        if let Some(p) = info.producer {
            let records = info.last_offset_delta + 1;
            let entry = self
                .producers
                .entry(p.producer_id)
                .or_insert(ProducerEntry {
                    epoch: p.producer_epoch,
                    batches: VecDeque::new(),
                });
            entry.add(
                p.producer_epoch,
                BatchMeta {
                    first_seq: p.base_sequence,
                    last_seq: p.last_sequence(records),
                    first_offset: info.base_offset,
                    last_offset: info.last_offset(),
                },
            );
        }
        self.end_offset = self.end_offset.max(info.next_offset());
    }

    /// The snapshot's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut rest = Vec::new();
        rest.extend_from_slice(&(self.producers.len() as u32).to_le_bytes());
        for (id, entry) in &self.producers {
            rest.extend_from_slice(&id.to_le_bytes());
            rest.extend_from_slice(&entry.epoch.to_le_bytes());
            rest.push(entry.batches.len() as u8);
            for b in &entry.batches {
                rest.extend_from_slice(&b.first_seq.to_le_bytes());
                rest.extend_from_slice(&b.last_seq.to_le_bytes());
                rest.extend_from_slice(&b.first_offset.to_le_bytes());
                rest.extend_from_slice(&b.last_offset.to_le_bytes());
            }
        }
        let mut out = SNAPSHOT_MAGIC.to_vec();
        out.push(SNAPSHOT_VERSION);
        out.extend_from_slice(&crc32c::crc32c(&rest).to_le_bytes());
        out.extend_from_slice(&rest);
        out
    }

    /// Reads a snapshot of the log below `end_offset`; the error says what is wrong with it.
    pub fn decode(bytes: &[u8], end_offset: u64) -> Result<ProducerState, String> {
        let head = SNAPSHOT_MAGIC.len() + 1 + 4;
        if bytes.len() < head || bytes[..SNAPSHOT_MAGIC.len()] != SNAPSHOT_MAGIC {
            return Err("not a producer snapshot (bad magic or cut short)".into());
        }
        let version = bytes[SNAPSHOT_MAGIC.len()];
        if version != SNAPSHOT_VERSION {
            return Err(format!(
                "snapshot version {version}, expected {SNAPSHOT_VERSION}"
            ));
        }
        let at = SNAPSHOT_MAGIC.len() + 1;
        let crc = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let rest = &bytes[head..];
        if crc32c::crc32c(rest) != crc {
            return Err("CRC mismatch".into());
        }
        let mut r = Reader { buf: rest, pos: 0 };
        let count = r.u32()?;
        let mut producers = BTreeMap::new();
        for _ in 0..count {
            let id = r.i64()?;
            let epoch = r.i16()?;
            let n = r.u8()? as usize;
            if n > BATCHES_RETAINED {
                return Err(format!("producer {id} with {n} batches"));
            }
            let mut batches = VecDeque::with_capacity(n);
            for _ in 0..n {
                batches.push_back(BatchMeta {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    first_offset: r.u64()?,
                    last_offset: r.u64()?,
                });
            }
            if batches.iter().any(|b| b.last_offset >= end_offset) {
                return Err(format!(
                    "producer {id} has a batch at or past the snapshot's offset {end_offset}"
                ));
            }
            producers.insert(id, ProducerEntry { epoch, batches });
        }
        if r.pos != rest.len() {
            return Err(format!(
                "{} bytes after the last producer",
                rest.len() - r.pos
            ));
        }
        Ok(ProducerState {
            producers,
            end_offset,
        })
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let bytes = self
            .buf
            .get(self.pos..self.pos + N)
            .ok_or_else(|| format!("cut short at byte {}", self.pos))?;
        self.pos += N;
        Ok(bytes.try_into().expect("N bytes"))
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take::<1>()?[0])
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_le_bytes(self.take()?))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_le_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take()?))
    }
}

pub fn snapshot_path(dir: &Path, offset: u64) -> PathBuf {
    dir.join(format!("{offset:020}{SNAPSHOT_SUFFIX}"))
}

/// The snapshot files in `dir`, by offset, oldest first.
pub fn list_snapshots(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(offset) = name
            .strip_suffix(SNAPSHOT_SUFFIX)
            .and_then(|o| o.parse::<u64>().ok())
        {
            found.push((offset, path));
        }
    }
    found.sort();
    Ok(found)
}

/// Writes `state` as the snapshot at its end offset and deletes all but the newest
/// [`SNAPSHOTS_KEPT`] + 1 snapshots.
pub fn take_snapshot(dir: &Path, state: &ProducerState) -> std::io::Result<()> {
    write_atomic(&snapshot_path(dir, state.end_offset), &state.encode())?;
    let snapshots = list_snapshots(dir)?;
    let excess = snapshots.len().saturating_sub(SNAPSHOTS_KEPT + 1);
    for (_, path) in &snapshots[..excess] {
        fs::remove_file(path)?;
    }
    Ok(())
}

/// Deletes the snapshots past `offset` (they describe batches a truncation removed).
pub fn delete_snapshots_after(dir: &Path, offset: u64) -> std::io::Result<()> {
    for (at, path) in list_snapshots(dir)? {
        if at > offset {
            fs::remove_file(path)?;
        }
    }
    Ok(())
}

/// The newest snapshot at or below `offset` that reads, and what was wrong with newer ones
/// (each such file is deleted when `delete_bad`, as Kafka's `loadFromSnapshot` removes a
/// corrupt snapshot and tries the next). `None`: start from an empty state at offset 0.
pub fn load_latest(
    dir: &Path,
    offset: u64,
    delete_bad: bool,
) -> std::io::Result<(Option<ProducerState>, Vec<String>)> {
    let mut problems = Vec::new();
    for (at, path) in list_snapshots(dir)?.into_iter().rev() {
        if at > offset {
            continue;
        }
        let read = fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| ProducerState::decode(&bytes, at));
        match read {
            Ok(state) => return Ok((Some(state), problems)),
            Err(e) => {
                problems.push(format!("{}: {e}", path.display()));
                if delete_bad {
                    fs::remove_file(&path)?;
                }
            }
        }
    }
    Ok((None, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(id: i64, epoch: i16, seq: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: id,
            producer_epoch: epoch,
            base_sequence: seq,
        }
    }

    fn info(offset: u64, records: u32, p: ProducerBatch) -> FrameInfo {
        FrameInfo {
            frame_len: 0,
            base_offset: offset,
            last_offset_delta: records - 1,
            leader_epoch: 0,
            producer: Some(p),
        }
    }

    /// Appends like a leader: check, then update when it may be appended.
    fn produce(
        state: &mut ProducerState,
        p: ProducerBatch,
        records: u32,
    ) -> Result<ClientBatch, SequenceError> {
        let offset = state.end_offset();
        let verdict = state.check_client(p, records, offset)?;
        if verdict == ClientBatch::Append {
            state.update(&info(offset, records, p));
        }
        Ok(verdict)
    }

    #[test]
    fn a_retry_of_one_of_the_last_five_batches_gets_the_original_offsets() {
        let mut s = ProducerState::new(0);
        for i in 0..6 {
            assert_eq!(
                produce(&mut s, stamp(7, 0, i * 2), 2),
                Ok(ClientBatch::Append)
            );
        }
        // Batches 1..=5 (offsets 2..12) are retained, batch 0 (offsets 0-1) is not.
        assert_eq!(
            produce(&mut s, stamp(7, 0, 4), 2),
            Ok(ClientBatch::Duplicate {
                first_offset: 4,
                last_offset: 5
            })
        );
        assert_eq!(s.end_offset(), 12, "a duplicate appends nothing");
        assert!(matches!(
            produce(&mut s, stamp(7, 0, 0), 2),
            Err(SequenceError::OutOfOrderSequence(_))
        ));
        // The same first sequence with another length is not a duplicate.
        assert!(matches!(
            produce(&mut s, stamp(7, 0, 4), 3),
            Err(SequenceError::OutOfOrderSequence(_))
        ));
    }

    #[test]
    fn gaps_old_epochs_and_new_epochs_follow_kafkas_rules() {
        let mut s = ProducerState::new(0);
        // An unknown producer may start anywhere.
        assert_eq!(produce(&mut s, stamp(1, 3, 40), 1), Ok(ClientBatch::Append));
        let gap = produce(&mut s, stamp(1, 3, 42), 1).unwrap_err();
        assert!(
            matches!(&gap, SequenceError::OutOfOrderSequence(m) if m.contains("42 (incoming seq. number), 40")),
            "{gap:?}"
        );
        assert!(matches!(
            produce(&mut s, stamp(1, 2, 41), 1),
            Err(SequenceError::InvalidProducerEpoch(_))
        ));
        assert!(matches!(
            produce(&mut s, stamp(1, 4, 5), 1),
            Err(SequenceError::OutOfOrderSequence(m)) if m.contains("new epoch")
        ));
        assert_eq!(produce(&mut s, stamp(1, 4, 0), 1), Ok(ClientBatch::Append));
        // The new epoch forgot the old one's batches: the old batch is no duplicate now.
        assert_eq!(s.entry(1).unwrap().batches.len(), 1);
        assert!(produce(&mut s, stamp(1, 3, 40), 1).is_err());
        // Sequences wrap from i32::MAX to 0.
        assert_eq!(
            produce(&mut s, stamp(2, 0, i32::MAX - 1), 2),
            Ok(ClientBatch::Append)
        );
        assert_eq!(produce(&mut s, stamp(2, 0, 0), 1), Ok(ClientBatch::Append));
        assert_eq!(stamp(2, 0, i32::MAX).last_sequence(3), 1);
    }

    #[test]
    fn a_snapshot_round_trips_and_a_flipped_bit_is_refused() {
        let mut s = ProducerState::new(0);
        for i in 0..7 {
            produce(&mut s, stamp(i % 3, 1, (i / 3) as i32), 1).unwrap();
        }
        let bytes = s.encode();
        assert_eq!(ProducerState::decode(&bytes, s.end_offset()), Ok(s.clone()));
        for at in [0, 7, 9, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(
                ProducerState::decode(&bad, s.end_offset()).is_err(),
                "byte {at}"
            );
        }
        assert!(ProducerState::decode(&bytes[..bytes.len() - 3], 7).is_err());
        assert!(ProducerState::decode(&bytes, 3)
            .unwrap_err()
            .contains("past"));
    }

    #[test]
    fn the_newest_good_snapshot_at_or_below_the_offset_is_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerState::new(0);
        produce(&mut s, stamp(1, 0, 0), 2).unwrap();
        take_snapshot(dir.path(), &s).unwrap();
        produce(&mut s, stamp(1, 0, 2), 2).unwrap();
        take_snapshot(dir.path(), &s).unwrap();
        let (loaded, problems) = load_latest(dir.path(), 4, true).unwrap();
        assert_eq!((loaded.as_ref(), problems.len()), (Some(&s), 0));
        let (older, _) = load_latest(dir.path(), 3, true).unwrap();
        assert_eq!(older.unwrap().end_offset(), 2);
        // A damaged newest snapshot is named, deleted, and the older one used.
        let newest = snapshot_path(dir.path(), 4);
        let mut bytes = fs::read(&newest).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&newest, bytes).unwrap();
        let (loaded, problems) = load_latest(dir.path(), 4, true).unwrap();
        assert_eq!(loaded.unwrap().end_offset(), 2);
        assert!(problems[0].contains("CRC"), "{problems:?}");
        assert!(!newest.exists());
        delete_snapshots_after(dir.path(), 1).unwrap();
        assert!(list_snapshots(dir.path()).unwrap().is_empty());
    }
}
