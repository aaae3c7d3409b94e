//! The record log of one partition replica: append-only segment files named by their base
//! offset, each a sequence of frames
//!
//! ```text
//! len: u32 LE | crc32c(body): u32 LE | body = offset: u64 LE | leader_epoch: u32 LE | timestamp_ms: u64 LE | value bytes
//! ```
//!
//! Every frame is checked on write and again on read (CRC, length, offset continuity). Opening a
//! log scans every segment, keeps the longest valid prefix and truncates a torn or corrupt tail,
//! reporting how much it dropped. fsync per append is a setting; by default, like Kafka, the log
//! relies on replication and the page cache rather than an fsync per write.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::epoch::LeaderEpochCache;

const FRAME_HEADER_BYTES: usize = 8;
const BODY_FIXED_BYTES: usize = 20;
/// The largest value a record may carry; larger frames on disk are corruption.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
const SEGMENT_SUFFIX: &str = ".log";
pub const EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: u64,
    pub leader_epoch: u32,
    pub timestamp_ms: u64,
    pub value: String,
}

#[derive(Debug, Clone, Copy)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub fsync: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 16 << 20,
            fsync: false,
        }
    }
}

/// What opening a log found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub log_end_offset: u64,
    pub segments: usize,
    /// Bytes of torn or corrupt tail removed (0 for a clean log).
    pub dropped_bytes: u64,
    /// Why the scan stopped early, when it did.
    pub reason: Option<String>,
}

#[derive(Debug)]
struct Segment {
    base_offset: u64,
    path: PathBuf,
    file: File,
    /// Byte position of each record in the file; record `base_offset + i` is at `positions[i]`.
    positions: Vec<u64>,
    size_bytes: u64,
}

impl Segment {
    fn end_offset(&self) -> u64 {
        self.base_offset + self.positions.len() as u64
    }
}

#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    segments: Vec<Segment>,
    pub epochs: LeaderEpochCache,
    read_only: bool,
}

fn segment_path(dir: &Path, base_offset: u64) -> PathBuf {
    dir.join(format!("{base_offset:020}{SEGMENT_SUFFIX}"))
}

/// Encodes one frame onto `out`.
pub fn encode_frame(out: &mut Vec<u8>, record: &Record) {
    let body_len = BODY_FIXED_BYTES + record.value.len();
    let start = out.len();
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&record.offset.to_le_bytes());
    out.extend_from_slice(&record.leader_epoch.to_le_bytes());
    out.extend_from_slice(&record.timestamp_ms.to_le_bytes());
    out.extend_from_slice(record.value.as_bytes());
    let crc = crc32c::crc32c(&out[start + FRAME_HEADER_BYTES..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes the frame at the start of `buf`. `Ok(None)`: `buf` ends before the frame does.
fn decode_frame(buf: &[u8]) -> Result<Option<(Record, usize)>, String> {
    if buf.len() < FRAME_HEADER_BYTES {
        return Ok(None);
    }
    let body_len = u32::from_le_bytes(buf[0..4].try_into().unwrap()) as usize;
    if !(BODY_FIXED_BYTES..=BODY_FIXED_BYTES + MAX_VALUE_BYTES).contains(&body_len) {
        return Err(format!("frame length {body_len} out of range"));
    }
    let frame_len = FRAME_HEADER_BYTES + body_len;
    if buf.len() < frame_len {
        return Ok(None);
    }
    let crc = u32::from_le_bytes(buf[4..8].try_into().unwrap());
    let body = &buf[FRAME_HEADER_BYTES..frame_len];
    if crc32c::crc32c(body) != crc {
        return Err("CRC mismatch".to_string());
    }
    let value = std::str::from_utf8(&body[BODY_FIXED_BYTES..])
        .map_err(|_| "value is not UTF-8".to_string())?;
    let record = Record {
        offset: u64::from_le_bytes(body[0..8].try_into().unwrap()),
        leader_epoch: u32::from_le_bytes(body[8..12].try_into().unwrap()),
        timestamp_ms: u64::from_le_bytes(body[12..20].try_into().unwrap()),
        value: value.to_string(),
    };
    Ok(Some((record, frame_len)))
}

/// What scanning a segment found: the positions of the valid frames, where each leader epoch
/// starts, the valid length, and why the scan stopped early (a torn or corrupt frame, or an
/// offset out of sequence).
type Scan = (Vec<u64>, Vec<(u32, u64)>, usize, Option<String>);

fn scan(bytes: &[u8], base_offset: u64) -> Scan {
    let mut positions = Vec::new();
    let mut epoch_starts: Vec<(u32, u64)> = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let expected = base_offset + positions.len() as u64;
        match decode_frame(&bytes[pos..]) {
            Ok(Some((record, len))) if record.offset == expected => {
                if epoch_starts
                    .last()
                    .is_none_or(|&(e, _)| record.leader_epoch > e)
                {
                    epoch_starts.push((record.leader_epoch, record.offset));
                }
                positions.push(pos as u64);
                pos += len;
            }
            Ok(Some((record, _))) => {
                let why = format!("offset {} where {expected} was expected", record.offset);
                return (positions, epoch_starts, pos, Some(why));
            }
            Ok(None) => {
                let why = format!("torn frame at byte {pos}");
                return (positions, epoch_starts, pos, Some(why));
            }
            Err(why) => {
                return (
                    positions,
                    epoch_starts,
                    pos,
                    Some(format!("{why} at byte {pos}")),
                )
            }
        }
    }
    (positions, epoch_starts, pos, None)
}

fn list_segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) {
            if let Ok(base) = stem.parse::<u64>() {
                found.push((base, path));
            }
        }
    }
    found.sort();
    Ok(found)
}

impl Log {
    /// Opens (creating if needed) the log in `dir`, recovering it: the longest valid prefix is
    /// kept, anything after it is truncated (or, when `read_only`, only reported).
    pub fn open(
        dir: &Path,
        config: LogConfig,
        read_only: bool,
    ) -> std::io::Result<(Log, RecoveryReport)> {
        if !read_only {
            fs::create_dir_all(dir)?;
        }
        let epoch_path = dir.join(EPOCH_CHECKPOINT);
        let mut epochs = if read_only {
            let mut c = LeaderEpochCache::load(&epoch_path)?;
            c.detach();
            c
        } else {
            LeaderEpochCache::load(&epoch_path)?
        };
        let mut log = Log {
            dir: dir.to_path_buf(),
            config,
            segments: Vec::new(),
            epochs: LeaderEpochCache::new(None),
            read_only,
        };
        let mut report = RecoveryReport::default();
        let mut derived_epochs = Vec::new();
        let mut stopped = false;
        for (base, path) in list_segments(dir)? {
            if stopped || base != log.log_end_offset() {
                // Everything after the first damage (or a gap) is unreachable: drop it.
                let size = fs::metadata(&path)?.len();
                report.dropped_bytes += size;
                report
                    .reason
                    .get_or_insert_with(|| format!("segment {base} out of sequence"));
                stopped = true;
                if !read_only {
                    fs::remove_file(&path)?;
                }
                continue;
            }
            let bytes = fs::read(&path)?;
            let (positions, epoch_starts, valid_len, why) = scan(&bytes, base);
            derived_epochs.extend(epoch_starts);
            if let Some(why) = why {
                report.dropped_bytes += (bytes.len() - valid_len) as u64;
                report.reason = Some(format!("segment {base}: {why}"));
                stopped = true;
            }
            let file = OpenOptions::new()
                .read(true)
                .append(!read_only)
                .open(&path)?;
            if !read_only && valid_len < bytes.len() {
                file.set_len(valid_len as u64)?;
                file.sync_all()?;
            }
            log.segments.push(Segment {
                base_offset: base,
                path,
                file,
                positions,
                size_bytes: valid_len as u64,
            });
        }
        // The checkpoint may lag the log (an epoch first seen through replication just before a
        // crash): rebuild what the records themselves prove, then drop entries past the end.
        for (epoch, start) in derived_epochs {
            if epochs.latest_epoch().is_none_or(|latest| epoch > latest) {
                epochs.assign(epoch, start)?;
            }
        }
        // Like Kafka's log loading: an epoch starting at or past the end holds no record; the
        // next election assigns a fresh one.
        let leo = log.log_end_offset();
        epochs.truncate_from_end(leo)?;
        log.epochs = epochs;
        report.log_end_offset = leo;
        report.segments = log.segments.len();
        Ok((log, report))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log end offset (LEO): the offset the next record will get.
    pub fn log_end_offset(&self) -> u64 {
        self.segments.last().map_or(0, Segment::end_offset)
    }

    /// The epoch of the last record or the latest epoch assigned, whichever is newer (what a
    /// follower sends as its last fetched epoch).
    pub fn latest_epoch(&self) -> Option<u32> {
        self.epochs.latest_epoch()
    }

    fn active_segment(&mut self) -> std::io::Result<&mut Segment> {
        let leo = self.log_end_offset();
        let roll = match self.segments.last() {
            None => true,
            Some(s) => s.size_bytes >= self.config.segment_bytes,
        };
        if roll {
            let path = segment_path(&self.dir, leo);
            let file = OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(&path)?;
            self.segments.push(Segment {
                base_offset: leo,
                path,
                file,
                positions: Vec::new(),
                size_bytes: 0,
            });
        }
        Ok(self.segments.last_mut().expect("a segment exists"))
    }

    /// Appends records whose offsets must continue the log exactly. Leader-epoch starts they
    /// introduce go into the epoch cache. Returns the new LEO.
    pub fn append(&mut self, records: &[Record]) -> std::io::Result<u64> {
        assert!(!self.read_only, "append to a read-only log");
        let Some(first) = records.first() else {
            return Ok(self.log_end_offset());
        };
        assert_eq!(
            first.offset,
            self.log_end_offset(),
            "append must continue the log"
        );
        for record in records {
            if self
                .epochs
                .latest_epoch()
                .is_none_or(|e| record.leader_epoch > e)
            {
                self.epochs.assign(record.leader_epoch, record.offset)?;
            }
        }
        let fsync = self.config.fsync;
        let segment = self.active_segment()?;
        let mut buf = Vec::with_capacity(records.len() * 48);
        for (i, record) in records.iter().enumerate() {
            assert_eq!(
                record.offset,
                first.offset + i as u64,
                "offsets must be contiguous"
            );
            segment
                .positions
                .push(segment.size_bytes + buf.len() as u64);
            encode_frame(&mut buf, record);
        }
        segment.file.write_all(&buf)?;
        if fsync {
            segment.file.sync_data()?;
        }
        segment.size_bytes += buf.len() as u64;
        Ok(self.log_end_offset())
    }

    /// Reads records from `from` up to (not including) `until`, at most `max_records`. Every
    /// frame is CRC-checked again on the way out.
    pub fn read(&self, from: u64, until: u64, max_records: usize) -> std::io::Result<Vec<Record>> {
        let until = until
            .min(self.log_end_offset())
            .min(from.saturating_add(max_records as u64));
        let mut out = Vec::new();
        let mut next = from;
        while next < until {
            let idx = self.segments.partition_point(|s| s.base_offset <= next);
            let Some(segment) = idx.checked_sub(1).map(|i| &self.segments[i]) else {
                break;
            };
            let end = until.min(segment.end_offset());
            if end <= next {
                break;
            }
            let start_pos = segment.positions[(next - segment.base_offset) as usize];
            let end_pos = if end == segment.end_offset() {
                segment.size_bytes
            } else {
                segment.positions[(end - segment.base_offset) as usize]
            };
            let mut buf = vec![0u8; (end_pos - start_pos) as usize];
            segment.file.read_exact_at(&mut buf, start_pos)?;
            let mut pos = 0;
            while pos < buf.len() {
                let (record, len) = decode_frame(&buf[pos..])
                    .ok()
                    .flatten()
                    .ok_or_else(|| corrupt(&segment.path, next))?;
                if record.offset != next {
                    return Err(corrupt(&segment.path, next));
                }
                out.push(record);
                pos += len;
                next += 1;
            }
        }
        Ok(out)
    }

    /// Removes every record at or after `offset`. Returns the LEO before truncation.
    pub fn truncate_to(&mut self, offset: u64) -> std::io::Result<u64> {
        assert!(!self.read_only, "truncate of a read-only log");
        let before = self.log_end_offset();
        if offset >= before {
            // Nothing to cut, but an epoch entry may start at the end with no record in it (this
            // replica led briefly and appended nothing). Left in place it would be sent as the
            // last fetched epoch forever and the leader would answer with the same divergence
            // each time — Kafka's truncateTo drops it too.
            self.epochs.truncate_from_end(before)?;
            return Ok(before);
        }
        while let Some(last) = self.segments.last() {
            if last.base_offset < offset || (last.base_offset == 0 && offset == 0) {
                break;
            }
            let last = self.segments.pop().expect("checked above");
            fs::remove_file(&last.path)?;
        }
        if let Some(segment) = self.segments.last_mut() {
            let keep = (offset - segment.base_offset) as usize;
            let size = segment
                .positions
                .get(keep)
                .copied()
                .unwrap_or(segment.size_bytes);
            segment.positions.truncate(keep);
            segment.file.set_len(size)?;
            segment.size_bytes = size;
        }
        self.epochs.truncate_from_end(offset)?;
        debug_assert_eq!(self.log_end_offset(), offset);
        Ok(before)
    }

    /// Flushes the files to disk (clean shutdown, or `fsync` mode).
    pub fn sync(&self) -> std::io::Result<()> {
        for segment in &self.segments {
            segment.file.sync_data()?;
        }
        Ok(())
    }
}

fn corrupt(path: &Path, offset: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!(
            "{}: record {offset} failed its check on read",
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(offset: u64, epoch: u32, value: &str) -> Record {
        Record {
            offset,
            leader_epoch: epoch,
            timestamp_ms: 1,
            value: value.to_string(),
        }
    }

    /// Appends `n` records in batches of 5 (a batch never straddles segments).
    fn fill(log: &mut Log, from: u64, n: u64, epoch: u32) {
        let batch: Vec<_> = (from..from + n)
            .map(|o| rec(o, epoch, &o.to_string()))
            .collect();
        for chunk in batch.chunks(5) {
            log.append(chunk).unwrap();
        }
    }

    fn small() -> LogConfig {
        LogConfig {
            segment_bytes: 200,
            fsync: false,
        }
    }

    #[test]
    fn append_read_and_reopen_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, report) = Log::open(dir.path(), small(), false).unwrap();
        assert_eq!(report.log_end_offset, 0);
        fill(&mut log, 0, 30, 0);
        fill(&mut log, 30, 20, 2);
        assert!(log.segments.len() > 3, "small segments must roll");
        let read = log.read(5, 45, 1000).unwrap();
        assert_eq!(read.len(), 40);
        assert_eq!(read[0].value, "5");
        assert_eq!(read[39].offset, 44);
        assert_eq!(read[26].leader_epoch, 2);
        drop(log);
        let (log, report) = Log::open(dir.path(), small(), false).unwrap();
        assert_eq!(report.log_end_offset, 50);
        assert_eq!(report.dropped_bytes, 0);
        assert_eq!(log.epochs.start_offset_of(2), Some(30));
        assert_eq!(log.read(0, 100, 7).unwrap().len(), 7);
    }

    #[test]
    fn appends_after_reopen_land_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), LogConfig::default(), false).unwrap();
        fill(&mut log, 0, 3, 0);
        drop(log);
        let (mut log, _) = Log::open(dir.path(), LogConfig::default(), false).unwrap();
        fill(&mut log, 3, 2, 1);
        drop(log);
        let (log, report) = Log::open(dir.path(), LogConfig::default(), true).unwrap();
        assert_eq!(report.dropped_bytes, 0);
        let values: Vec<_> = log
            .read(0, 10, 10)
            .unwrap()
            .into_iter()
            .map(|r| r.value)
            .collect();
        assert_eq!(values, ["0", "1", "2", "3", "4"]);
    }

    #[test]
    fn truncation_removes_records_segments_and_epochs() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), small(), false).unwrap();
        fill(&mut log, 0, 30, 0);
        fill(&mut log, 30, 30, 1);
        assert_eq!(log.truncate_to(25).unwrap(), 60);
        assert_eq!(log.log_end_offset(), 25);
        assert_eq!(log.latest_epoch(), Some(0));
        fill(&mut log, 25, 5, 3);
        drop(log);
        let (log, _) = Log::open(dir.path(), small(), false).unwrap();
        let all = log.read(0, u64::MAX, 1000).unwrap();
        assert_eq!(all.len(), 30);
        assert_eq!(all[29].leader_epoch, 3);
        assert_eq!(log.epochs.start_offset_of(3), Some(25));
        let mut log = log;
        log.truncate_to(0).unwrap();
        assert_eq!(log.log_end_offset(), 0);
    }

    #[test]
    fn recovery_drops_a_garbage_tail_and_reports_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), LogConfig::default(), false).unwrap();
        fill(&mut log, 0, 10, 0);
        let path = log.segments[0].path.clone();
        drop(log);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"\x30\x00\x00\x00garbage that is not a frame")
            .unwrap();
        drop(f);
        let (log, report) = Log::open(dir.path(), LogConfig::default(), false).unwrap();
        assert_eq!(report.log_end_offset, 10);
        assert_eq!(report.dropped_bytes, 31);
        assert!(report.reason.is_some());
        assert_eq!(log.read(0, 100, 100).unwrap().len(), 10);
    }

    #[test]
    fn recovery_stops_at_a_flipped_bit() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), LogConfig::default(), false).unwrap();
        fill(&mut log, 0, 10, 0);
        let path = log.segments[0].path.clone();
        let pos = log.segments[0].positions[6] as usize;
        drop(log);
        let mut bytes = fs::read(&path).unwrap();
        bytes[pos + 12] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let (_, report) = Log::open(dir.path(), LogConfig::default(), true).unwrap();
        assert_eq!(
            report.log_end_offset, 6,
            "read-only open reports without truncating"
        );
        assert_eq!(fs::read(&path).unwrap().len(), bytes.len());
        let (log, report) = Log::open(dir.path(), LogConfig::default(), false).unwrap();
        assert_eq!(report.log_end_offset, 6);
        assert_eq!(log.log_end_offset(), 6);
        assert!(report.reason.unwrap().contains("CRC"));
    }

    proptest::proptest! {
        #[test]
        fn any_prefix_of_a_log_file_recovers_to_whole_records(cut in 0usize..2000) {
            let dir = tempfile::tempdir().unwrap();
            let (mut log, _) = Log::open(dir.path(), LogConfig::default(), false).unwrap();
            fill(&mut log, 0, 60, 1);
            let path = log.segments[0].path.clone();
            let positions = log.segments[0].positions.clone();
            drop(log);
            let bytes = fs::read(&path).unwrap();
            let cut = cut.min(bytes.len());
            fs::write(&path, &bytes[..cut]).unwrap();
            let (log, report) = Log::open(dir.path(), LogConfig::default(), false).unwrap();
            let whole = positions.iter().skip(1).chain(std::iter::once(&(bytes.len() as u64)))
                .filter(|&&end| end <= cut as u64).count() as u64;
            proptest::prop_assert_eq!(log.log_end_offset(), whole);
            proptest::prop_assert_eq!(report.log_end_offset, whole);
        }
    }
}
