//! Log corruption, as a property of the public storage API (`storage::Log`): a log is written,
//! closed, damaged on disk — one bit flipped, or the file cut short, at a random place in a
//! segment file or in the leader-epoch checkpoint — and opened again. Recovery must drop exactly
//! the damaged tail: every record before the damaged one is kept and read back unchanged, the
//! damaged record and everything after it are gone, and no read ever returns a corrupt record.
//! Damage to the checkpoint costs no record at all (the records prove their own epochs), and
//! damage to a producer snapshot no producer state (the batches carry their producer stamps).
//!
//! The test knows where each record lies only from the file sizes it sees after each `append`
//! of one record, not from the frame format, so it holds whatever the unit of the CRC is (a
//! record or a batch): with one record per append, both are the same bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use faultline_node::storage::log::{
    CLEAN_SHUTDOWN_MARKER, EPOCH_CHECKPOINT, RECOVERY_POINT_CHECKPOINT,
};
use faultline_node::storage::producer_state::{ProducerState, SNAPSHOT_SUFFIX};
use faultline_node::storage::{EpochEntry, Log, LogConfig, ProducerBatch, Record, RecordBatch};
use proptest::prelude::*;

/// Small segments, so a log of a few dozen records spans several files.
const SEGMENT_BYTES: u64 = 400;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: SEGMENT_BYTES,
        fsync: false,
    }
}

/// Where one record lies: its segment file and the byte where it ends there.
#[derive(Debug, Clone)]
struct Extent {
    file: PathBuf,
    end: u64,
}

/// The sizes of the log's segment files (`*.log`; checkpoints and markers are not records).
fn file_sizes(dir: &Path) -> BTreeMap<PathBuf, u64> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| {
            let size = std::fs::metadata(&p).unwrap().len();
            (p, size)
        })
        .collect()
}

/// Writes `records` one append each and returns where each one landed.
fn write_log(dir: &Path, records: &[Record]) -> Vec<Extent> {
    let (mut log, report) = Log::open(dir, config(), false).unwrap();
    assert_eq!(report.log_end_offset, 0);
    let mut extents = Vec::new();
    for record in records {
        let before = file_sizes(dir);
        log.append(std::slice::from_ref(record)).unwrap();
        let after = file_sizes(dir);
        let grown: Vec<_> = after
            .iter()
            .filter(|(p, size)| before.get(*p).copied().unwrap_or(0) < **size)
            .collect();
        assert_eq!(grown.len(), 1, "one append grew one file: {grown:?}");
        let (file, &end) = grown[0];
        extents.push(Extent {
            file: file.clone(),
            end,
        });
    }
    log.sync().unwrap();
    extents
}

/// The epoch entries the records themselves prove: the first offset of each leader epoch.
fn epochs_of(records: &[Record]) -> Vec<EpochEntry> {
    let mut entries: Vec<EpochEntry> = Vec::new();
    for r in records {
        if entries.last().is_none_or(|e| r.leader_epoch > e.epoch) {
            entries.push(EpochEntry {
                epoch: r.leader_epoch,
                start_offset: r.offset,
            });
        }
    }
    entries
}

#[derive(Debug, Clone)]
enum Damage {
    /// Flip bit `bit` of the byte at `at` (a fraction of the file's length).
    Flip { at: f64, bit: u8 },
    /// Cut the file to a fraction of its length.
    Truncate { at: f64 },
}

#[derive(Debug, Clone)]
enum Target {
    /// The segment holding the record at this fraction of the log.
    Segment(f64),
    Checkpoint,
}

fn damage_strategy() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0.0..1.0f64, 0u8..8).prop_map(|(at, bit)| Damage::Flip { at, bit }),
        (0.0..1.0f64).prop_map(|at| Damage::Truncate { at }),
    ]
}

/// Records with random values (1–60 bytes, some multi-byte UTF-8) and non-decreasing epochs.
fn records_strategy() -> impl Strategy<Value = Vec<Record>> {
    prop::collection::vec(("[a-zé€0-9]{1,20}", 0u32..3), 1..60).prop_map(|items| {
        let mut epoch = 0;
        items
            .into_iter()
            .enumerate()
            .map(|(i, (value, bump))| {
                // An epoch bump one record in five gives several epochs per log.
                if bump == 0 && i % 5 == 0 {
                    epoch += 1;
                }
                Record {
                    offset: i as u64,
                    leader_epoch: epoch,
                    timestamp_ms: 1_700_000_000_000 + i as u64,
                    value,
                }
            })
            .collect()
    })
}

/// Applies `damage` to `path`; returns the byte position where the file is damaged from.
fn apply(path: &Path, damage: &Damage) -> Option<u64> {
    let mut bytes = std::fs::read(path).unwrap();
    if bytes.is_empty() {
        return None;
    }
    match *damage {
        Damage::Flip { at, bit } => {
            let pos = ((bytes.len() as f64 * at) as usize).min(bytes.len() - 1);
            bytes[pos] ^= 1 << bit;
            std::fs::write(path, &bytes).unwrap();
            Some(pos as u64)
        }
        Damage::Truncate { at } => {
            let len = (bytes.len() as f64 * at) as u64;
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .unwrap()
                .set_len(len)
                .unwrap();
            Some(len)
        }
    }
}

/// The records recovery must keep after `file` was damaged from byte `pos`: those in earlier
/// files, and those of this file that end at or before `pos` (for a flip, before the flipped
/// byte; for a cut, within the cut length).
fn expected_leo(extents: &[Extent], file: &Path, pos: u64) -> u64 {
    extents
        .iter()
        .position(|e| e.file == file && e.end > pos)
        .unwrap_or(extents.len()) as u64
}

/// Reads the whole log back, in pieces of random sizes, checking every record.
fn check_reads(log: &Log, records: &[Record], leo: u64, step: usize) {
    let mut next = 0u64;
    while next < leo {
        let got = log.read(next, u64::MAX, step).unwrap();
        assert!(
            !got.is_empty(),
            "read at {next} below LEO {leo} returned nothing"
        );
        for r in &got {
            assert_eq!(
                r, &records[r.offset as usize],
                "record {} changed",
                r.offset
            );
        }
        next += got.len() as u64;
    }
    assert_eq!(next, leo);
    assert!(
        log.read(leo, u64::MAX, 10).unwrap().is_empty(),
        "a record past the recovered LEO {leo} was served"
    );
}

/// Writes `records`, damages `target`, reopens, and checks what recovery kept.
fn damage_and_recover(
    records: &[Record],
    target: Target,
    damage: Damage,
    step: usize,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let extents = write_log(dir.path(), records);
    let (path, expected) = match target {
        Target::Segment(at) => {
            let victim = &extents[((extents.len() as f64 * at) as usize).min(extents.len() - 1)];
            // Damage below the recovery point is not looked for when the log opens (Kafka's
            // LogLoader trusts flushed segments; `flushed_damage_is_never_served` covers reads
            // of it): without a recovery point every segment is scanned with its CRCs.
            let _ = std::fs::remove_file(dir.path().join(RECOVERY_POINT_CHECKPOINT));
            let pos = apply(&victim.file, &damage).expect("a segment holds a record");
            let leo = expected_leo(&extents, &victim.file, pos);
            (victim.file.clone(), leo)
        }
        Target::Checkpoint => {
            let path = dir.path().join(EPOCH_CHECKPOINT);
            apply(&path, &damage);
            (path, records.len() as u64)
        }
    };
    let (log, report) = Log::open(dir.path(), config(), false)
        .unwrap_or_else(|e| panic!("recovery failed after damaging {}: {e}", path.display()));
    prop_assert_eq!(
        report.log_end_offset,
        expected,
        "recovered LEO after damage to {}: {:?}",
        path.display(),
        report
    );
    prop_assert_eq!(log.log_end_offset(), expected);
    match (&target, &damage) {
        // A flipped bit is always found, and said.
        (Target::Segment(_), Damage::Flip { .. }) => prop_assert!(
            report.dropped_bytes > 0 && report.reason.is_some(),
            "a flipped bit went unreported: {:?}",
            report
        ),
        // A cut at a record boundary of the last file leaves nothing to find.
        (Target::Segment(_), Damage::Truncate { .. }) => {}
        (Target::Checkpoint, _) => prop_assert_eq!(report.dropped_bytes, 0),
    }
    check_reads(&log, records, expected, step);
    let proven = epochs_of(&records[..expected as usize]);
    prop_assert_eq!(
        log.epochs().entries(),
        proven.as_slice(),
        "the epoch cache after recovery matches the kept records"
    );
    drop(log);
    // Recovery is idempotent: a second open finds a clean log of the same length.
    let (again, report) = Log::open(dir.path(), config(), false).unwrap();
    prop_assert_eq!(report.log_end_offset, expected);
    prop_assert_eq!(report.dropped_bytes, 0);
    check_reads(&again, records, expected, step);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn segment_damage_drops_exactly_the_damaged_tail(
        records in records_strategy(),
        at in 0.0..1.0f64,
        damage in damage_strategy(),
        step in 1usize..20,
    ) {
        damage_and_recover(&records, Target::Segment(at), damage, step)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    /// Found by this test and fixed: a flipped bit could make the checkpoint invalid UTF-8 (and
    /// `Log::open` fail), or leave valid JSON that was trusted over the records. The cache is now
    /// rebuilt from the batches, which carry their leader epochs; the checkpoint is only
    /// compared, and rewritten when it disagrees.
    #[test]
    fn checkpoint_damage_costs_no_record(
        records in records_strategy(),
        damage in damage_strategy(),
        step in 1usize..20,
    ) {
        damage_and_recover(&records, Target::Checkpoint, damage, step)?;
    }
}

/// Damage in a segment below the recovery point is not scanned for when the log opens (as in
/// Kafka), but every read checks the batch's CRC: the damaged batch is an error, never data.
#[test]
fn flushed_damage_is_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<Record> = (0..40)
        .map(|offset| Record {
            offset,
            leader_epoch: 1,
            timestamp_ms: 1_700_000_000_000,
            value: format!("value-{offset}"),
        })
        .collect();
    let extents = write_log(dir.path(), &records);
    let first = &extents[0];
    assert_ne!(
        first.file,
        extents.last().unwrap().file,
        "the log spans segments"
    );
    // Flip one bit in the first record's bytes, past the 8-byte segment header.
    apply(
        &first.file,
        &Damage::Flip {
            at: 0.5 * first.end as f64 / std::fs::metadata(&first.file).unwrap().len() as f64,
            bit: 3,
        },
    );
    let (log, report) = Log::open(dir.path(), config(), false).unwrap();
    // Either recovery found the damage (the segment was scanned) and the log ends before it,
    // or it trusted the segment and the read refuses the batch: never a changed record.
    match log.read(0, u64::MAX, 1) {
        Err(_) => assert!(report.segments_skipped > 0, "{report:?}"),
        Ok(got) => {
            assert!(
                got.is_empty(),
                "a record of a damaged batch was served: {got:?}"
            );
            assert_eq!(report.log_end_offset, 0, "{report:?}");
        }
    }
}

/// The producer state rebuilt from the log alone: every batch's stamp, in offset order.
fn producers_from_batches(log: &Log) -> ProducerState {
    let mut state = ProducerState::new(0);
    let frames = log
        .read_frames(0, usize::MAX, u64::MAX)
        .expect("a recovered log reads");
    for (info, _) in frames.iter() {
        state.update(&info);
    }
    state
}

/// Writes batches of three idempotent producers (with retries' worth of sequences), across
/// several segments, so segment rolls write producer snapshots, and closes cleanly (one more at
/// the LEO). Returns the producer state the log ended with.
fn write_producer_log(dir: &Path, batches: &[(i64, u8)]) -> ProducerState {
    let (mut log, _) = Log::open(dir, config(), false).unwrap();
    let mut next_seq: BTreeMap<i64, i32> = BTreeMap::new();
    for (i, &(producer_id, records)) in batches.iter().enumerate() {
        let seq = next_seq.entry(producer_id).or_insert(0);
        let batch = RecordBatch {
            base_offset: log.log_end_offset(),
            leader_epoch: 1,
            timestamp_ms: 1_700_000_000_000 + i as u64,
            values: (0..records)
                .map(|r| format!("p{producer_id}-{i}-{r}"))
                .collect(),
            producer: Some(ProducerBatch {
                producer_id,
                producer_epoch: 0,
                base_sequence: *seq,
            }),
        };
        *seq += i32::from(records);
        log.append_batch(&batch).unwrap();
    }
    log.close_clean().unwrap();
    log.producers().clone()
}

fn snapshot_files(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(SNAPSHOT_SUFFIX))
        .collect();
    found.sort();
    found
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    /// Damage to a producer snapshot (a flipped bit or a cut, in the newest or an older one)
    /// costs no producer state: a snapshot that does not read is named and deleted, and the
    /// state is rebuilt from an older snapshot or the batches themselves, equal to what the log
    /// proves. A crash (no clean close: the snapshot at the LEO missing) rebuilds it too.
    #[test]
    fn producer_snapshot_damage_costs_no_producer_state(
        batches in prop::collection::vec((1i64..4, 1u8..4), 1..40),
        damage in damage_strategy(),
        which in 0usize..4,
        crash in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let before = write_producer_log(dir.path(), &batches);
        let snapshots = snapshot_files(dir.path());
        prop_assert!(!snapshots.is_empty(), "a clean close writes a snapshot");
        if crash {
            // As if the broker died before its clean shutdown: no snapshot at the LEO, no marker.
            let newest = snapshots.last().unwrap();
            std::fs::remove_file(newest).unwrap();
            std::fs::remove_file(dir.path().join(CLEAN_SHUTDOWN_MARKER)).unwrap();
        }
        let snapshots = snapshot_files(dir.path());
        let damaged = snapshots.get(which.min(snapshots.len().saturating_sub(1))).cloned();
        if let Some(path) = &damaged {
            apply(path, &damage);
        }
        let (log, report) = Log::open(dir.path(), config(), false).unwrap();
        prop_assert_eq!(log.producers(), &before);
        prop_assert_eq!(log.producers(), &producers_from_batches(&log));
        for refused in &report.producer_snapshots_refused {
            let named = damaged.as_ref().is_some_and(|d| refused.contains(&*d.to_string_lossy()));
            prop_assert!(named, "only the damaged snapshot may be refused: {}", refused);
        }
        // The newest snapshot is the one read first: a flipped bit in it must be caught.
        if matches!(damage, Damage::Flip { .. }) && damaged.is_some() && damaged.as_ref() == snapshots.last() {
            prop_assert_eq!(report.producer_snapshots_refused.len(), 1);
            prop_assert!(!damaged.unwrap().exists(), "a refused snapshot is deleted");
        }
    }
}

/// A torn segment tail takes its batches out of the producer state, and a snapshot taken past
/// the recovered end (it described batches now gone) is deleted, not trusted.
#[test]
fn a_torn_tail_takes_its_batches_out_of_the_producer_state() {
    let dir = tempfile::tempdir().unwrap();
    let batches: Vec<(i64, u8)> = (0..30).map(|i| (1 + i % 2, 2)).collect();
    write_producer_log(dir.path(), &batches);
    // Cut the last segment in half: its later batches are lost.
    let last = file_sizes(dir.path()).into_keys().last().unwrap();
    apply(&last, &Damage::Truncate { at: 0.5 });
    let (log, report) = Log::open(dir.path(), config(), false).unwrap();
    assert!(report.dropped_bytes > 0);
    assert_eq!(log.producers(), &producers_from_batches(&log));
    let leo = log.log_end_offset();
    assert!(log.producers().end_offset() == leo);
    for snapshot in snapshot_files(dir.path()) {
        let name = snapshot.file_name().unwrap().to_string_lossy().to_string();
        let offset: u64 = name.trim_end_matches(SNAPSHOT_SUFFIX).parse().unwrap();
        assert!(offset <= leo, "{name} past the LEO {leo} was kept");
    }
}
