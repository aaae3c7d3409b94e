//! The record log of one partition replica: append-only segment files named by their base
//! offset, each a format header followed by record batches (`batch.rs`: one CRC per batch).
//!
//! ```text
//! segment = magic "flseg" 0 0 | LOG_FORMAT_VERSION: u8 | batch frames…
//! ```
//!
//! The batch is the unit: it is appended, read for a follower, dropped by recovery and removed by
//! truncation whole, as in Kafka. Every batch is CRC-checked on write (encoded here) and again on
//! read. Opening a log recovers it from the recovery point (Kafka's
//! recovery-point-offset-checkpoint: everything below it was flushed): segments wholly below it
//! are only indexed from their batch headers, the rest is scanned with CRCs and a torn or
//! corrupt tail is truncated, reporting what was dropped; after a clean shutdown nothing is
//! scanned. fsync per append is a setting; by default, like Kafka, the log relies on replication
//! and the page cache rather than an fsync per write, and flushes a segment when it rolls (in the
//! background, as Kafka does: `flush.rs`) and everything at a clean shutdown. It does not decide what to append or where to truncate (the replica does).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::batch::{self, FrameInfo, Frames, Record, RecordBatch, HEADER_PEEK_BYTES};
use super::checkpoint::{read_u64, write_atomic};
use super::epoch::LeaderEpochCache;
use super::flush::RecoveryPoint;
use super::producer_state::{self, ClientBatch, ProducerState, SequenceError};
use super::ProducerBatch;

pub use super::batch::MAX_VALUE_BYTES;

/// The on-disk format this build writes and reads: 3, record batches with Kafka's producer
/// fields (`batch.rs`). Format 2 (batches without them) and format 1 (no header, one CRC per
/// record) are refused with a message saying so.
pub const LOG_FORMAT_VERSION: u8 = 3;
const SEGMENT_MAGIC: [u8; 8] = [b'f', b'l', b's', b'e', b'g', 0, 0, LOG_FORMAT_VERSION];
const SEGMENT_SUFFIX: &str = ".log";
pub const EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
/// Kafka's recovery-point-offset-checkpoint, per partition: every batch below it was flushed.
pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
/// Written at a clean shutdown, removed when the log is opened (Kafka's `.kafka_cleanshutdown`).
pub const CLEAN_SHUTDOWN_MARKER: &str = "clean-shutdown";

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
    /// The recovery point the log was opened with (0 when none was checkpointed).
    pub recovery_point: u64,
    /// Whether the previous run shut down cleanly (nothing needed scanning).
    pub clean_shutdown: bool,
    /// Segments scanned with CRCs (recovered).
    pub segments_recovered: usize,
    /// Segments only indexed from batch headers: recovery skipped them.
    pub segments_skipped: usize,
    /// Bytes in the skipped segments.
    pub skipped_bytes: u64,
    /// Whether the leader-epoch checkpoint disagreed with the epochs the log's batches prove
    /// (damaged, lagging or ahead of the log) and was rewritten from them.
    pub epoch_checkpoint_rebuilt: bool,
    /// The producer snapshot the producer state was loaded from (its offset), if one was.
    pub producer_snapshot: Option<u64>,
    /// Producer snapshots that did not read (each named, with why); they were deleted and an
    /// older one, or the log itself, used instead.
    pub producer_snapshots_refused: Vec<String>,
    /// Batches replayed into the producer state after the snapshot.
    pub producer_batches_replayed: u64,
    /// Idempotent producers the recovered state knows.
    pub producers: usize,
}

#[derive(Debug)]
struct Segment {
    base_offset: u64,
    path: PathBuf,
    file: File,
    /// Each batch's base offset and byte position, in order.
    batches: Vec<(u64, u64)>,
    end_offset: u64,
    size_bytes: u64,
}

impl Segment {
    /// The index of the batch holding `offset` (which must be in this segment).
    fn batch_index(&self, offset: u64) -> usize {
        self.batches.partition_point(|&(base, _)| base <= offset) - 1
    }

    fn batch_end_pos(&self, i: usize) -> u64 {
        self.batches.get(i + 1).map_or(self.size_bytes, |&(_, p)| p)
    }
}

#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    segments: Vec<Segment>,
    /// Private so that only the log's own appends, truncations and recovery (and a new leader's
    /// [`Log::assign_epoch`]) change it: the cache must describe the batches the log holds.
    epochs: LeaderEpochCache,
    read_only: bool,
    /// Everything below it has been flushed to disk; moved by the background flush of a rolled
    /// segment.
    recovery_point: RecoveryPoint,
    /// The idempotent producers' state of the batches the log holds (`producer_state.rs`);
    /// snapshotted when a segment rolls and at a clean shutdown, rebuilt on open and truncation.
    producers: ProducerState,
}

fn segment_path(dir: &Path, base_offset: u64) -> PathBuf {
    dir.join(format!("{base_offset:020}{SEGMENT_SUFFIX}"))
}

/// What scanning a segment found: its batches (base offset, position), where each leader epoch
/// starts, the valid length, and why the scan stopped early (a torn or corrupt batch, or an
/// offset out of sequence).
struct Scan {
    batches: Vec<(u64, u64)>,
    end_offset: u64,
    epoch_starts: Vec<(u32, u64)>,
    valid_len: usize,
    stopped: Option<String>,
}

/// Scans a segment's batches with their CRCs (`bytes` after the header).
fn scan(bytes: &[u8], base_offset: u64) -> Scan {
    let mut s = Scan {
        batches: Vec::new(),
        end_offset: base_offset,
        epoch_starts: Vec::new(),
        valid_len: 0,
        stopped: None,
    };
    while s.valid_len < bytes.len() {
        let pos = s.valid_len;
        let why = match batch::decode(&bytes[pos..]) {
            Ok(Some((b, _))) if b.base_offset != s.end_offset => {
                format!(
                    "offset {} where {} was expected",
                    b.base_offset, s.end_offset
                )
            }
            Ok(Some((b, len))) => {
                if s.epoch_starts
                    .last()
                    .is_none_or(|&(e, _)| b.leader_epoch > e)
                {
                    s.epoch_starts.push((b.leader_epoch, b.base_offset));
                }
                s.batches
                    .push((b.base_offset, (SEGMENT_MAGIC.len() + pos) as u64));
                s.end_offset = b.next_offset();
                s.valid_len += len;
                continue;
            }
            Ok(None) => format!("torn batch at byte {}", SEGMENT_MAGIC.len() + pos),
            Err(why) => format!("{why} at byte {}", SEGMENT_MAGIC.len() + pos),
        };
        s.stopped = Some(why);
        break;
    }
    s
}

/// Indexes a flushed segment from its batch headers alone (no CRC): recovery skips it. `None`
/// when the headers do not line up, and the segment must be scanned after all.
fn index_headers(file: &File, base_offset: u64, size: u64) -> std::io::Result<Option<Scan>> {
    let mut s = Scan {
        batches: Vec::new(),
        end_offset: base_offset,
        epoch_starts: Vec::new(),
        valid_len: 0,
        stopped: None,
    };
    let mut pos = SEGMENT_MAGIC.len() as u64;
    let mut buf = [0u8; HEADER_PEEK_BYTES + 4];
    while pos < size {
        if size - pos < buf.len() as u64 {
            return Ok(None);
        }
        file.read_exact_at(&mut buf, pos)?;
        let Ok(Some(header)) = batch::peek_header(&buf) else {
            return Ok(None);
        };
        if header.base_offset != s.end_offset || pos + header.frame_len as u64 > size {
            return Ok(None);
        }
        let epoch = u32::from_le_bytes(buf[HEADER_PEEK_BYTES..].try_into().unwrap());
        if s.epoch_starts.last().is_none_or(|&(e, _)| epoch > e) {
            s.epoch_starts.push((epoch, header.base_offset));
        }
        s.batches.push((header.base_offset, pos));
        s.end_offset = header.base_offset + header.last_offset_delta as u64 + 1;
        pos += header.frame_len as u64;
    }
    s.valid_len = (pos - SEGMENT_MAGIC.len() as u64) as usize;
    Ok(Some(s))
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

/// Checks a segment's format header. `Ok(false)`: the file is shorter than the header and holds
/// a prefix of it (a torn new segment, empty).
/// How many bits of a segment's 8-byte header may differ from the magic for it to count as a
/// damaged format-2 header rather than a segment of another format.
const MAX_HEADER_FLIPPED_BITS: u32 = 2;

fn check_header(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    let n = bytes.len().min(SEGMENT_MAGIC.len());
    if bytes[..n] == SEGMENT_MAGIC[..n] {
        return Ok(n == SEGMENT_MAGIC.len());
    }
    // A header a bit or two away from the magic is damage, not another format: the segment is
    // recovered as a torn one (nothing in it can be trusted) instead of refusing the log.
    let flipped_bits: u32 = bytes[..n]
        .iter()
        .zip(&SEGMENT_MAGIC[..n])
        .map(|(a, b)| (a ^ b).count_ones())
        .sum();
    if n == SEGMENT_MAGIC.len() && flipped_bits <= MAX_HEADER_FLIPPED_BITS {
        return Ok(false);
    }
    let version = if bytes[..n.min(7)] == SEGMENT_MAGIC[..n.min(7)] && n == 8 {
        format!("format {}", bytes[7])
    } else {
        "format 1 (no header: one CRC per record)".to_string()
    };
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!(
            "{}: segment in {version}; this faultline-node reads and writes only log format \
             {LOG_FORMAT_VERSION} (record batches with producer ids). Start the broker on a fresh data dir",
            path.display()
        ),
    ))
}

impl Log {
    /// Opens (creating if needed) the log in `dir`, recovering it from its recovery point: the
    /// longest valid prefix is kept, anything after it is truncated (or, when `read_only`, only
    /// reported; a read-only open scans every segment, as the dump wants the whole truth).
    pub fn open(
        dir: &Path,
        config: LogConfig,
        read_only: bool,
    ) -> std::io::Result<(Log, RecoveryReport)> {
        if !read_only {
            fs::create_dir_all(dir)?;
        }
        let epoch_path = dir.join(EPOCH_CHECKPOINT);
        let checkpointed = LeaderEpochCache::load(&epoch_path)?;
        let mut report = RecoveryReport::default();
        if !read_only {
            // An unreadable checkpoint only costs a full scan.
            report.recovery_point = read_u64(&dir.join(RECOVERY_POINT_CHECKPOINT))
                .unwrap_or_else(|e| {
                    tracing::warn!("{e}; recovering every segment");
                    None
                })
                .unwrap_or(0);
            let marker = dir.join(CLEAN_SHUTDOWN_MARKER);
            report.clean_shutdown = marker.exists();
            if report.clean_shutdown {
                // A crash from here on is not a clean shutdown.
                fs::remove_file(&marker)?;
            }
        }
        let mut log = Log {
            dir: dir.to_path_buf(),
            config,
            segments: Vec::new(),
            epochs: LeaderEpochCache::new(None),
            read_only,
            recovery_point: RecoveryPoint::new(dir.join(RECOVERY_POINT_CHECKPOINT), 0),
            producers: ProducerState::new(0),
        };
        let derived_epochs = log.load_segments(&mut report)?;
        // Every batch carries its leader epoch, so the recovered log proves each epoch's start
        // offset: the cache is rebuilt from the batches, as Kafka's segment recovery assigns each
        // batch's epoch (LogSegment.recover → LeaderEpochFileCache.assign). The checkpoint, which
        // has no checksum, is only compared: one that lags (an epoch first seen through
        // replication just before a crash), runs past the end, or was damaged is rewritten.
        // An epoch that starts at the end holds no record and is not kept, as in Kafka's log
        // loading; the next election assigns a fresh one.
        let mut epochs = LeaderEpochCache::new(None);
        for (epoch, start) in derived_epochs {
            epochs.assign(epoch, start)?;
        }
        let leo = log.log_end_offset();
        epochs.truncate_from_end(leo)?;
        report.epoch_checkpoint_rebuilt = checkpointed.entries() != epochs.entries();
        if !read_only {
            epochs.attach(epoch_path);
            if report.epoch_checkpoint_rebuilt {
                epochs.persist()?;
            }
        }
        log.epochs = epochs;
        log.recovery_point = RecoveryPoint::new(
            dir.join(RECOVERY_POINT_CHECKPOINT),
            if report.clean_shutdown {
                leo
            } else {
                report.recovery_point.min(leo)
            },
        );
        report.log_end_offset = leo;
        report.segments = log.segments.len();
        let rebuilt = log.rebuild_producers()?;
        report.producer_snapshot = rebuilt.snapshot;
        report.producer_snapshots_refused = rebuilt.refused;
        report.producer_batches_replayed = rebuilt.replayed;
        report.producers = log.producers.len();
        Ok((log, report))
    }

    /// Rebuilds the producer state of the log as it is: the newest snapshot at or below the LEO
    /// that reads (unreadable newer ones are deleted and named), then every batch after it
    /// (Kafka's `UnifiedLog.rebuildProducerState`). Snapshots past the LEO describe batches the
    /// log no longer holds and are deleted.
    fn rebuild_producers(&mut self) -> std::io::Result<Rebuilt> {
        let leo = self.log_end_offset();
        if !self.read_only {
            producer_state::delete_snapshots_after(&self.dir, leo)?;
        }
        let (loaded, refused) = producer_state::load_latest(&self.dir, leo, !self.read_only)?;
        for problem in &refused {
            tracing::warn!("producer snapshot refused: {problem}");
        }
        let snapshot = loaded.as_ref().map(ProducerState::end_offset);
        let mut state = loaded.unwrap_or_else(|| ProducerState::new(0));
        let mut replayed = 0;
        while state.end_offset() < leo {
            let frames = self.read_frames(state.end_offset(), 10_000, 8 << 20)?;
            if frames.is_empty() {
                break;
            }
            for (info, _) in frames.iter() {
                // A snapshot's offset is a batch boundary; a batch below it is already in it.
                if info.base_offset >= state.end_offset() {
                    state.update(&info);
                    replayed += 1;
                }
            }
        }
        self.producers = state;
        Ok(Rebuilt {
            snapshot,
            refused,
            replayed,
        })
    }

    /// The idempotent producers' state of the batches the log holds.
    pub fn producers(&self) -> &ProducerState {
        &self.producers
    }

    /// A leader's check of a client's batch of `records` records stamped `producer` before it
    /// appends it at the LEO (see [`ProducerState::check_client`]).
    pub fn check_producer(
        &self,
        producer: ProducerBatch,
        records: u32,
    ) -> Result<ClientBatch, SequenceError> {
        self.producers
            .check_client(producer, records, self.log_end_offset())
    }

    /// Loads every segment in order, recovering those that need it; returns the epoch starts the
    /// batches show.
    fn load_segments(&mut self, report: &mut RecoveryReport) -> std::io::Result<Vec<(u32, u64)>> {
        let listed = list_segments(&self.dir)?;
        let mut derived_epochs = Vec::new();
        let mut stopped = false;
        for (i, (base, path)) in listed.iter().enumerate() {
            let (base, path) = (*base, path.clone());
            if stopped || base != self.log_end_offset() {
                // Everything after the first damage (or a gap) is unreachable: drop it.
                report.dropped_bytes += fs::metadata(&path)?.len();
                report
                    .reason
                    .get_or_insert_with(|| format!("segment {base} out of sequence"));
                stopped = true;
                if !self.read_only {
                    fs::remove_file(&path)?;
                }
                continue;
            }
            let file = OpenOptions::new()
                .read(true)
                .append(!self.read_only)
                .open(&path)?;
            let size = file.metadata()?.len();
            // Kafka's LogLoader recovers the segments from the one holding the recovery point on;
            // those wholly below it (the next one starts at or below it) were flushed.
            let flushed = listed
                .get(i + 1)
                .is_some_and(|&(next, _)| next <= report.recovery_point);
            let skip = !self.read_only && (report.clean_shutdown || flushed);
            let indexed = if skip && size >= SEGMENT_MAGIC.len() as u64 {
                let mut magic = [0u8; 8];
                file.read_exact_at(&mut magic, 0)?;
                if check_header(&path, &magic)? {
                    index_headers(&file, base, size)?
                } else {
                    // A damaged header: recover the segment rather than trust its index.
                    None
                }
            } else {
                None
            };
            let scan = match indexed {
                Some(scan) => {
                    report.segments_skipped += 1;
                    report.skipped_bytes += size;
                    scan
                }
                None => {
                    report.segments_recovered += 1;
                    self.recover_segment(&path, &file, base, report)?
                }
            };
            derived_epochs.extend(scan.epoch_starts.iter().copied());
            stopped = scan.stopped.is_some();
            self.segments.push(Segment {
                base_offset: base,
                path,
                file,
                batches: scan.batches,
                end_offset: scan.end_offset,
                size_bytes: (SEGMENT_MAGIC.len() + scan.valid_len) as u64,
            });
        }
        Ok(derived_epochs)
    }

    /// Scans one segment with CRCs and truncates its torn or corrupt tail (a torn header is an
    /// empty segment: the header is written again).
    fn recover_segment(
        &self,
        path: &Path,
        file: &File,
        base: u64,
        report: &mut RecoveryReport,
    ) -> std::io::Result<Scan> {
        let bytes = fs::read(path)?;
        if !check_header(path, &bytes)? {
            if !self.read_only {
                file.set_len(0)?;
                file.write_all_at(&SEGMENT_MAGIC, 0)?;
                file.sync_all()?;
            }
            report.dropped_bytes += bytes.len() as u64;
            report.reason = Some(format!("segment {base}: torn or damaged header"));
            return Ok(Scan {
                batches: Vec::new(),
                end_offset: base,
                epoch_starts: Vec::new(),
                valid_len: 0,
                stopped: Some("torn or damaged header".into()),
            });
        }
        let scan = scan(&bytes[SEGMENT_MAGIC.len()..], base);
        if let Some(why) = &scan.stopped {
            let valid = SEGMENT_MAGIC.len() + scan.valid_len;
            report.dropped_bytes += (bytes.len() - valid) as u64;
            report.reason = Some(format!("segment {base}: {why}"));
            if !self.read_only {
                file.set_len(valid as u64)?;
                file.sync_all()?;
            }
        }
        Ok(scan)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log end offset (LEO): the offset the next record will get.
    pub fn log_end_offset(&self) -> u64 {
        self.segments.last().map_or(0, |s| s.end_offset)
    }

    /// Every batch below this offset has been flushed to disk.
    pub fn recovery_point(&self) -> u64 {
        self.recovery_point.get()
    }

    /// Waits for the background flush of a rolled segment, if one is in flight.
    pub fn wait_for_flush(&mut self) -> std::io::Result<()> {
        self.recovery_point.wait()
    }

    /// The epoch of the last record or the latest epoch assigned, whichever is newer (what a
    /// follower sends as its last fetched epoch).
    pub fn latest_epoch(&self) -> Option<u32> {
        self.epochs.latest_epoch()
    }

    /// The leader-epoch cache, to read: where each epoch starts and where one ends.
    pub fn epochs(&self) -> &LeaderEpochCache {
        &self.epochs
    }

    /// Records that `epoch` starts at `start_offset`, which must not be past the LEO: a replica
    /// becoming leader assigns its epoch at its LEO before appending anything in it (Kafka's
    /// `UnifiedLog.maybeAssignEpochStartOffset`). Epochs only grow, so an older or equal epoch
    /// changes nothing. Returns whether the cache changed.
    pub fn assign_epoch(&mut self, epoch: u32, start_offset: u64) -> std::io::Result<bool> {
        let leo = self.log_end_offset();
        assert!(
            start_offset <= leo,
            "epoch {epoch} would start at {start_offset}, past the LEO {leo}"
        );
        self.epochs.assign(epoch, start_offset)
    }

    /// Test support: a fresh, empty log at `dir` whose leader-epoch cache starts as `entries`,
    /// so a test can state an epoch history as data instead of rewriting the cache of a log in
    /// use. Appends then continue it as usual (a batch's epoch is assigned only when it is newer
    /// than the latest entry).
    #[cfg(test)]
    pub(crate) fn open_with_epochs(
        dir: &Path,
        config: LogConfig,
        entries: &[super::EpochEntry],
    ) -> std::io::Result<Log> {
        let (mut log, report) = Log::open(dir, config, false)?;
        assert_eq!(
            report.log_end_offset, 0,
            "an epoch history is staged on an empty log"
        );
        for entry in entries {
            let grew = log.epochs.assign(entry.epoch, entry.start_offset)?;
            assert!(grew, "staged epochs must grow: {entries:?}");
        }
        Ok(log)
    }

    /// The segment to append to, rolling a new one when the last is full. A rolled segment is
    /// flushed in the background and the recovery point moves past it once it is on disk, as
    /// Kafka's `UnifiedLog.roll` schedules the flush of the old segment rather than stalling the
    /// append that rolled it.
    fn active_segment(&mut self) -> std::io::Result<&mut Segment> {
        let leo = self.log_end_offset();
        let roll = match self.segments.last() {
            None => true,
            Some(s) => s.size_bytes >= self.config.segment_bytes,
        };
        if roll {
            if let Some(full) = self.segments.last() {
                let file = full.file.try_clone()?;
                self.recovery_point.flush_in_background(file, leo)?;
                // The producer state below the new segment, as Kafka's `roll` snapshots it, so
                // recovery replays at most the active segment.
                producer_state::take_snapshot(&self.dir, &self.producers)?;
            }
            let path = segment_path(&self.dir, leo);
            let mut file = OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(&path)?;
            file.write_all(&SEGMENT_MAGIC)?;
            self.segments.push(Segment {
                base_offset: leo,
                path,
                file,
                batches: Vec::new(),
                end_offset: leo,
                size_bytes: SEGMENT_MAGIC.len() as u64,
            });
        }
        Ok(self.segments.last_mut().expect("a segment exists"))
    }

    /// Appends one batch, whose base offset must continue the log exactly, in one write. A
    /// leader-epoch start it introduces goes into the epoch cache. Returns the new LEO.
    pub fn append_batch(&mut self, batch: &RecordBatch) -> std::io::Result<u64> {
        let mut frame = Vec::with_capacity(64 + batch.values.len() * 16);
        batch.encode(&mut frame);
        let info = batch::check(&frame)
            .ok()
            .flatten()
            .expect("an encoded batch checks");
        self.append_frame(info, &frame)
    }

    /// Appends checked frames (a follower's fetch) as they are, each in one write, without
    /// decoding a record. Their base offsets must continue the log. Returns the new LEO.
    pub fn append_frames(&mut self, frames: &Frames) -> std::io::Result<u64> {
        for (info, frame) in frames.iter() {
            self.append_frame(info, frame)?;
        }
        Ok(self.log_end_offset())
    }

    /// Appends one checked frame as it is, in one write; its base offset must continue the log.
    /// Returns the new LEO.
    pub fn append_frame(&mut self, info: FrameInfo, frame: &[u8]) -> std::io::Result<u64> {
        assert!(!self.read_only, "append to a read-only log");
        assert_eq!(
            info.base_offset,
            self.log_end_offset(),
            "append must continue the log"
        );
        debug_assert_eq!(info.frame_len, frame.len());
        if self
            .epochs
            .latest_epoch()
            .is_none_or(|e| info.leader_epoch > e)
        {
            self.epochs.assign(info.leader_epoch, info.base_offset)?;
        }
        let fsync = self.config.fsync;
        let segment = self.active_segment()?;
        segment.file.write_all(frame)?;
        if fsync {
            segment.file.sync_data()?;
        }
        segment.batches.push((info.base_offset, segment.size_bytes));
        segment.size_bytes += frame.len() as u64;
        segment.end_offset = info.next_offset();
        if fsync {
            self.recovery_point.flushed_in_place(info.next_offset());
        }
        self.producers.update(&info);
        Ok(self.log_end_offset())
    }

    /// Appends `records` (consecutive offsets continuing the log) as one batch per run of equal
    /// leader epochs; with one epoch, that is one batch. Returns the new LEO.
    pub fn append(&mut self, records: &[Record]) -> std::io::Result<u64> {
        for run in records.chunk_by(|a, b| a.leader_epoch == b.leader_epoch) {
            for (i, r) in run.iter().enumerate() {
                assert_eq!(
                    r.offset,
                    run[0].offset + i as u64,
                    "offsets must be contiguous"
                );
            }
            self.append_batch(&RecordBatch {
                base_offset: run[0].offset,
                leader_epoch: run[0].leader_epoch,
                timestamp_ms: run[0].timestamp_ms,
                values: run.iter().map(|r| r.value.clone()).collect(),
                producer: None,
            })?;
        }
        Ok(self.log_end_offset())
    }

    /// Whole batches from the one holding `from` on, until at least `max_records` records or
    /// `max_bytes` bytes of batches (Kafka's `replica.fetch.max.bytes` counts the same on-disk
    /// batch sizes) or the end; always at least one batch when `from` is below the LEO (a fetch
    /// never splits a batch, however large, as Kafka returns an oversized first batch whole).
    /// The frames are read as they lie on disk, one read per segment, and every one is
    /// CRC-checked again on the way out: a corrupt batch is an error, never served.
    pub fn read_frames(
        &self,
        from: u64,
        max_records: usize,
        max_bytes: u64,
    ) -> std::io::Result<Frames> {
        let (mut out, mut infos) = (Vec::new(), Vec::new());
        let mut next = from;
        let (mut records, mut bytes) = (0u64, 0u64);
        let more = |records: u64, bytes: u64| {
            bytes == 0 || (records < max_records as u64 && bytes < max_bytes)
        };
        while next < self.log_end_offset() && more(records, bytes) {
            let idx = self.segments.partition_point(|s| s.base_offset <= next);
            let Some(segment) = idx.checked_sub(1).map(|i| &self.segments[i]) else {
                break;
            };
            if next >= segment.end_offset {
                break;
            }
            // The run of batches to read from this segment: from the one holding `next` until
            // the limits are reached, as the index says (each batch is checked below).
            let first = segment.batch_index(next);
            let start_pos = segment.batches[first].1;
            let mut last = first;
            loop {
                let (base, pos) = segment.batches[last];
                let end_pos = segment.batch_end_pos(last);
                let end_offset = segment
                    .batches
                    .get(last + 1)
                    .map_or(segment.end_offset, |&(b, _)| b);
                records += end_offset - base;
                bytes += end_pos - pos;
                next = end_offset;
                if last + 1 == segment.batches.len() || !more(records, bytes) {
                    break;
                }
                last += 1;
            }
            let end_pos = segment.batch_end_pos(last);
            let at = out.len();
            out.resize(at + (end_pos - start_pos) as usize, 0);
            segment.file.read_exact_at(&mut out[at..], start_pos)?;
            check_run(
                &out,
                at,
                &segment.batches[first..=last],
                &segment.path,
                &mut infos,
            )?;
        }
        Ok(Frames::from_checked(out, infos))
    }

    /// The batches [`Log::read_frames`] reads, decoded.
    pub fn read_batches(
        &self,
        from: u64,
        max_records: usize,
        max_bytes: u64,
    ) -> std::io::Result<Vec<RecordBatch>> {
        self.read_frames(from, max_records, max_bytes)?
            .batches()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// Reads records from `from` up to (not including) `until`, at most `max_records` (for
    /// consumers and the dump, which see records; the batches are CRC-checked on the way).
    pub fn read(&self, from: u64, until: u64, max_records: usize) -> std::io::Result<Vec<Record>> {
        let until = until
            .min(self.log_end_offset())
            .min(from.saturating_add(max_records as u64));
        if from >= until {
            return Ok(Vec::new());
        }
        let batches = self.read_batches(from, (until - from) as usize, u64::MAX)?;
        Ok(batches
            .iter()
            .flat_map(RecordBatch::records)
            .filter(|r| (from..until).contains(&r.offset))
            .collect())
    }

    /// Removes every batch that holds an offset at or after `offset`: like Kafka's
    /// `LogSegment.truncateTo` (which cuts at the first batch whose last offset is at or past
    /// the target), an offset inside a batch removes that whole batch, so the log may end below
    /// `offset`. Returns the LEO before truncation; [`Log::log_end_offset`] says where it ends.
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
            if offset < segment.end_offset {
                // The batch holding `offset` goes, and every batch after it.
                let keep = if offset <= segment.base_offset {
                    0
                } else {
                    segment.batch_index(offset)
                };
                let (first_cut, size) = segment.batches[keep];
                segment.end_offset = first_cut;
                segment.batches.truncate(keep);
                segment.file.set_len(size)?;
                segment.size_bytes = size;
            }
        }
        let leo = self.log_end_offset();
        self.epochs.truncate_from_end(leo)?;
        self.recovery_point.truncated_to(leo)?;
        // The removed batches leave the producer state too (Kafka's truncateTo ends in
        // rebuildProducerState): a producer's retained batches are again those the log holds.
        self.rebuild_producers()?;
        debug_assert!(leo <= offset);
        Ok(before)
    }

    /// Flushes the files to disk (clean shutdown, or `fsync` mode).
    pub fn sync(&self) -> std::io::Result<()> {
        for segment in &self.segments {
            segment.file.sync_data()?;
        }
        Ok(())
    }

    /// A clean shutdown: flush everything, checkpoint the recovery point at the LEO and leave the
    /// marker that lets the next open skip recovery.
    pub fn close_clean(&mut self) -> std::io::Result<()> {
        self.sync()?;
        let leo = self.log_end_offset();
        // Also waits for a rolled segment's flush still in flight, and returns its error.
        self.recovery_point.flushed_to(leo)?;
        producer_state::take_snapshot(&self.dir, &self.producers)?;
        write_atomic(&self.dir.join(CLEAN_SHUTDOWN_MARKER), b"")?;
        Ok(())
    }
}

/// What rebuilding the producer state used.
struct Rebuilt {
    snapshot: Option<u64>,
    refused: Vec<String>,
    replayed: u64,
}

/// Checks a run of frames read from a segment, which starts at `at` in `out`, against the
/// segment's `index`: every frame whole, CRC-correct and where the index says, with the base
/// offset it says. Each frame's place in `out` and what it holds go into `infos`.
fn check_run(
    out: &[u8],
    at: usize,
    index: &[(u64, u64)],
    path: &Path,
    infos: &mut Vec<(usize, FrameInfo)>,
) -> std::io::Result<()> {
    let start_pos = index[0].1;
    for (i, &(base, pos)) in index.iter().enumerate() {
        let frame_at = at + (pos - start_pos) as usize;
        let frame_end = index
            .get(i + 1)
            .map_or(out.len(), |&(_, next)| at + (next - start_pos) as usize);
        let info = batch::check(&out[frame_at..frame_end])
            .ok()
            .flatten()
            .filter(|info| info.base_offset == base && frame_at + info.frame_len == frame_end)
            .ok_or_else(|| corrupt(path, base))?;
        infos.push((frame_at, info));
    }
    Ok(())
}

fn corrupt(path: &Path, offset: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!(
            "{}: batch at offset {offset} failed its check on read",
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
            segment_bytes: 100,
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
        assert_eq!(log.epochs().start_offset_of(2), Some(30));
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
        assert_eq!(log.epochs().start_offset_of(3), Some(25));
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
        // The second batch (offsets 5..10): its CRC fails, the first survives whole.
        let pos = log.segments[0].batches[1].1 as usize;
        drop(log);
        let mut bytes = fs::read(&path).unwrap();
        bytes[pos + 30] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let (_, report) = Log::open(dir.path(), LogConfig::default(), true).unwrap();
        assert_eq!(
            report.log_end_offset, 5,
            "read-only open reports without truncating"
        );
        assert_eq!(fs::read(&path).unwrap().len(), bytes.len());
        let (log, report) = Log::open(dir.path(), LogConfig::default(), false).unwrap();
        assert_eq!(report.log_end_offset, 5);
        assert_eq!(log.log_end_offset(), 5);
        assert!(report.reason.unwrap().contains("CRC"));
    }

    /// A bit flipped under an open log (after recovery checked it) is found on the way out: the
    /// read for a follower fails and names the batch; the batches before it are still served,
    /// and a follower appending the frames as they are writes the same bytes.
    #[test]
    fn frames_read_for_a_follower_are_checked_and_appended_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), small(), false).unwrap();
        fill(&mut log, 0, 20, 0);
        fill(&mut log, 20, 5, 2);
        assert!(log.segments.len() > 2, "the read spans segments");
        let frames = log.read_frames(3, usize::MAX, u64::MAX).unwrap();
        assert_eq!(frames.iter().next().unwrap().0.base_offset, 0);
        assert_eq!(frames.next_offset(), Some(25));
        let copy_dir = tempfile::tempdir().unwrap();
        let (mut copy, _) = Log::open(copy_dir.path(), small(), false).unwrap();
        copy.append_frames(&frames).unwrap();
        assert_eq!(copy.log_end_offset(), 25);
        assert_eq!(copy.epochs().start_offset_of(2), Some(20));
        for (a, b) in log.segments.iter().zip(&copy.segments) {
            assert_eq!(fs::read(&a.path).unwrap(), fs::read(&b.path).unwrap());
        }

        let (path, pos) = (log.segments[1].path.clone(), log.segments[1].batches[0].1);
        let mut bytes = fs::read(&path).unwrap();
        bytes[pos as usize + 30] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let base = log.segments[1].base_offset;
        let err = log.read_frames(0, usize::MAX, u64::MAX).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("batch at offset {base} failed")),
            "{err}"
        );
        let before = log.read_frames(0, usize::MAX, 1).unwrap();
        assert_eq!(
            before.next_offset(),
            Some(5),
            "the first batch is still served"
        );
    }

    /// A follower's fetch stops at `max_bytes` of batches (Kafka's `replica.fetch.max.bytes`)
    /// but always carries the first batch whole, however large.
    #[test]
    fn a_fetch_stops_at_max_bytes_but_carries_at_least_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), LogConfig::default(), false).unwrap();
        fill(&mut log, 0, 20, 0);
        let all = log.read_batches(0, usize::MAX, u64::MAX).unwrap();
        assert_eq!(all.len(), 4, "20 records in batches of 5");
        assert_eq!(log.read_batches(0, usize::MAX, 1).unwrap().len(), 1);
        let mut one = Vec::new();
        all[0].encode(&mut one);
        let two = log
            .read_batches(0, usize::MAX, one.len() as u64 + 1)
            .unwrap();
        assert_eq!(two.len(), 2, "the limit is reached inside the second batch");
        assert_eq!(two[1].base_offset, 5);
    }

    /// Issue 8 item 7: the batch is the unit of truncation. Truncating inside a batch removes
    /// the whole batch (Kafka's `LogSegment.truncateTo`), so the log ends at its base.
    #[test]
    fn truncation_inside_a_batch_removes_the_whole_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), LogConfig::default(), false).unwrap();
        fill(&mut log, 0, 10, 0);
        log.truncate_to(7).unwrap();
        assert_eq!(log.log_end_offset(), 5, "the batch 5..10 went whole");
        log.truncate_to(5).unwrap();
        assert_eq!(log.log_end_offset(), 5, "a batch boundary is kept as it is");
        fill(&mut log, 5, 3, 1);
        assert_eq!(log.read_batches(6, 1, u64::MAX).unwrap().len(), 1);
        assert_eq!(
            log.read_batches(6, 1, u64::MAX).unwrap()[0].base_offset,
            5,
            "a read from inside a batch returns the whole batch"
        );
    }

    /// Issue 8 item 7: recovery starts at the recovery point. After a clean shutdown no segment
    /// is scanned; after a crash only the segments from the one holding the recovery point on are
    /// (a rolled segment was flushed), and a flipped bit below the recovery point is not looked
    /// for (Kafka's LogLoader trusts flushed segments the same way).
    #[test]
    fn recovery_scans_only_from_the_recovery_point() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), small(), false).unwrap();
        fill(&mut log, 0, 40, 0);
        let segments = log.segments.len();
        assert!(segments >= 4);
        // The last roll's flush runs in the background; once it is done the recovery point is
        // the active segment's base.
        log.wait_for_flush().unwrap();
        assert_eq!(
            log.recovery_point(),
            log.segments.last().unwrap().base_offset
        );
        log.close_clean().unwrap();
        drop(log);
        let (log, report) = Log::open(dir.path(), small(), false).unwrap();
        assert!(report.clean_shutdown);
        assert_eq!(
            (report.segments_recovered, report.segments_skipped),
            (0, segments)
        );
        assert_eq!(log.log_end_offset(), 40);
        assert_eq!(log.read(0, 40, 100).unwrap().len(), 40);
        drop(log);
        // Now a crash: the marker is gone, so the last segment is scanned, the others not.
        let (log, report) = Log::open(dir.path(), small(), false).unwrap();
        assert!(!report.clean_shutdown);
        assert_eq!(report.recovery_point, 40);
        assert_eq!(report.segments_recovered, 1);
        assert_eq!(report.segments_skipped, segments - 1);
        assert_eq!(log.log_end_offset(), 40);
    }

    #[test]
    fn a_format_1_segment_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        // A format 1 frame: length, CRC, then the record's offset — no segment header.
        let mut old = vec![24u8, 0, 0, 0, 1, 2, 3, 4];
        old.extend_from_slice(&[0u8; 24]);
        fs::write(segment_path(dir.path(), 0), &old).unwrap();
        let err = Log::open(dir.path(), LogConfig::default(), false).unwrap_err();
        assert!(err.to_string().contains("format 1"), "{err}");
        assert!(err.to_string().contains("log format 3"), "{err}");
    }

    proptest::proptest! {
        /// Issue 8 item 7: any torn prefix of a segment recovers to whole batches only — the
        /// LEO is the end of the last batch wholly inside the prefix, never inside a batch.
        #[test]
        fn any_torn_prefix_of_a_segment_recovers_to_whole_batches(cut in 0usize..2000) {
            let dir = tempfile::tempdir().unwrap();
            let (mut log, _) = Log::open(dir.path(), LogConfig::default(), false).unwrap();
            fill(&mut log, 0, 60, 1);
            let path = log.segments[0].path.clone();
            let batch_ends: Vec<(u64, u64)> = (0..log.segments[0].batches.len())
                .map(|i| (log.segments[0].batch_end_pos(i), 5 * (i as u64 + 1)))
                .collect();
            drop(log);
            let bytes = fs::read(&path).unwrap();
            let cut = cut.min(bytes.len());
            fs::write(&path, &bytes[..cut]).unwrap();
            let (log, report) = Log::open(dir.path(), LogConfig::default(), false).unwrap();
            let whole = batch_ends.iter().filter(|(end, _)| *end <= cut as u64).map(|&(_, leo)| leo).max().unwrap_or(0);
            proptest::prop_assert_eq!(log.log_end_offset(), whole);
            proptest::prop_assert_eq!(report.log_end_offset, whole);
            proptest::prop_assert_eq!(whole % 5, 0, "whole batches of 5 only");
            proptest::prop_assert_eq!(log.read(0, u64::MAX, 100).unwrap().len() as u64, whole);
        }
    }
}
