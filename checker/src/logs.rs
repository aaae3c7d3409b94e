//! The logs at the end of a run: the final read (`final.json`, the leader's committed log) and
//! every broker's surviving on-disk log (`nodes/<id>/dump.jsonl`), held as offset → value id
//! with run-length leader epochs. It owns these structures, loading the final read into them,
//! and the partition registry; it finds duplicates inside the final log as it loads (judged
//! once the history has said how each value's send went), and nothing else. The files' formats are [`crate::final_reads`] and [`crate::dump`].

use crate::error::line_problem;
use crate::final_reads::{FinalPartition, FinalReads, FinalRecord, FINAL_FILE};
use crate::found::anomaly;
use crate::intern::ValueId;
use crate::jsonl::Damage;
use crate::results::{Anomaly, AnomalyKind};
use crate::text::Text;
use crate::values::{Values, IN_FINAL, NO_ID};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Index of a partition in [`Partitions`].
pub type PartIdx = usize;

/// Every (topic, partition) the run mentions, numbered in order of appearance.
#[derive(Debug, Default)]
pub struct Partitions {
    keys: Vec<(String, u32)>,
    /// The partition found last: history lines of one partition tend to come in runs.
    last: Option<PartIdx>,
    by_topic: HashMap<String, HashMap<u32, PartIdx>>,
}

impl Partitions {
    pub fn get(&self, topic: &str, partition: u32) -> Option<PartIdx> {
        self.by_topic.get(topic)?.get(&partition).copied()
    }

    pub fn get_or_add(&mut self, topic: &str, partition: u32) -> PartIdx {
        if let Some(last) = self.last {
            let (t, p) = &self.keys[last];
            if *p == partition && t == topic {
                return last;
            }
        }
        if let Some(idx) = self.get(topic, partition) {
            self.last = Some(idx);
            return idx;
        }
        let idx = self.keys.len();
        self.keys.push((topic.to_string(), partition));
        self.by_topic
            .entry(topic.to_string())
            .or_default()
            .insert(partition, idx);
        idx
    }

    pub fn key(&self, idx: PartIdx) -> (&str, u32) {
        let (topic, partition) = &self.keys[idx];
        (topic, *partition)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }
}

/// "No value at this offset" in [`LogValues`].
const EMPTY: ValueId = ValueId::MAX;
/// How far past its end a dense log may grow in one step; offsets further out are kept in a
/// sparse map, so a damaged offset cannot make the checker allocate gigabytes.
const MAX_DENSE_GAP: u64 = 1 << 20;

/// One log: the value id at each offset, and the leader epoch of each run of records.
#[derive(Debug, Default, Clone)]
pub struct LogValues {
    dense: Vec<ValueId>,
    sparse: BTreeMap<u64, ValueId>,
    /// (first offset, leader_epoch) of each run of records with one epoch, sorted by offset.
    epochs: Vec<(u64, u32)>,
    pub records: u64,
}

impl LogValues {
    /// Stores `value` at `offset`; returns the value already there, if any (it is kept).
    pub fn insert(&mut self, offset: u64, value: ValueId, epoch: Option<u32>) -> Option<ValueId> {
        if let Some(old) = self.get(offset) {
            return Some(old);
        }
        let len = self.dense.len() as u64;
        if offset < len {
            self.dense[offset as usize] = value;
        } else if offset - len <= MAX_DENSE_GAP {
            self.dense.resize(offset as usize, EMPTY);
            self.dense.push(value);
        } else {
            self.sparse.insert(offset, value);
        }
        self.records += 1;
        if let Some(epoch) = epoch {
            self.note_epoch(offset, epoch);
        }
        None
    }

    /// Records that the record at `offset` has `epoch`, in offset order, before its value is
    /// known (a dump record resolved later).
    pub fn note_epoch(&mut self, offset: u64, epoch: u32) {
        if self.epochs.last().is_none_or(|&(_, last)| last != epoch) {
            self.epochs.push((offset, epoch));
        }
    }

    pub fn get(&self, offset: u64) -> Option<ValueId> {
        let found = match usize::try_from(offset).ok().and_then(|o| self.dense.get(o)) {
            Some(&v) => v,
            None => *self.sparse.get(&offset)?,
        };
        (found != EMPTY).then_some(found)
    }

    /// One past the highest offset held.
    pub fn end(&self) -> u64 {
        let dense_end = self.dense.len() as u64;
        self.sparse.keys().next_back().map_or(dense_end, |o| o + 1)
    }

    /// True when offsets 0..end are all present.
    pub fn contiguous(&self) -> bool {
        self.records == self.end()
    }

    /// Every (offset, value) in offset order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, ValueId)> + '_ {
        let dense = self.dense.iter().enumerate();
        let dense = dense
            .filter(|(_, v)| **v != EMPTY)
            .map(|(o, v)| (o as u64, *v));
        dense.chain(self.sparse.iter().map(|(o, v)| (*o, *v)))
    }

    /// The first and last offset held in `lo..hi`, and how many are held there.
    pub fn existing_in(&self, lo: u64, hi: u64) -> Option<(u64, u64, u64)> {
        let dense_hi = hi.min(self.dense.len() as u64);
        let mut held = Vec::new();
        if lo < dense_hi {
            let slice = &self.dense[lo as usize..dense_hi as usize];
            let count = slice.iter().filter(|v| **v != EMPTY).count() as u64;
            let first = slice.iter().position(|v| *v != EMPTY);
            let last = slice.iter().rposition(|v| *v != EMPTY);
            if let (Some(f), Some(l)) = (first, last) {
                held.push((lo + f as u64, lo + l as u64, count));
            }
        }
        let mut sparse = self.sparse.range(lo..hi.max(lo));
        if let Some((&f, _)) = sparse.next() {
            let (l, n) = sparse.fold((f, 1), |(_, n), (&o, _)| (o, n + 1));
            held.push((f, l, n));
        }
        let first = held.first()?.0;
        let last = held.last()?.1;
        Some((first, last, held.iter().map(|h| h.2).sum()))
    }

    /// Sorts the epoch runs; call once after loading (records may arrive out of order).
    pub fn finish(&mut self) {
        self.epochs.sort_by_key(|&(offset, _)| offset);
    }

    /// The leader epoch of the record at `offset`, when the log holds one.
    pub fn epoch_at(&self, offset: u64) -> Option<u32> {
        self.get(offset)?;
        let after = self.epochs.partition_point(|&(start, _)| start <= offset);
        after.checked_sub(1).map(|i| self.epochs[i].1)
    }
}

/// The final read of one partition.
#[derive(Debug, Clone)]
pub struct FinalPart {
    pub leader: Option<u32>,
    pub leader_epoch: Option<u32>,
    pub high_watermark: Option<u64>,
    pub isr: Vec<u32>,
    pub log: LogValues,
    /// Why this partition's read is incomplete; `None` when it covers 0..HW without a gap.
    pub incomplete: Option<String>,
}

impl FinalPart {
    /// The HW the final read vouches for: its high_watermark, else the records it holds.
    pub fn hw(&self) -> u64 {
        self.high_watermark.unwrap_or(self.log.end())
    }
}

/// `final.json`, or why it could not be used.
#[derive(Debug, Default)]
pub struct Final {
    /// Why final.json cannot vouch for every partition (missing, damaged, `complete: false`).
    pub problem: Option<String>,
    pub parts: HashMap<PartIdx, FinalPart>,
    /// Values the final log holds at two offsets, found while loading; whether each is excused
    /// depends on how its send went, which only the history says
    /// ([`crate::findings::final_duplicates`]).
    pub duplicates: Vec<(Anomaly, ValueId)>,
}

impl Final {
    /// The final log of a partition when the read of it is complete.
    pub fn complete_part(&self, part: PartIdx) -> Option<&FinalPart> {
        self.parts.get(&part).filter(|p| p.incomplete.is_none())
    }
}

/// Loads `final.json`. Values are interned and marked [`IN_FINAL`]; a value at two offsets is
/// kept in [`Final::duplicates`].
pub fn load_final(
    run_dir: &Path,
    parts: &mut Partitions,
    values: &mut Values,
    damage: &mut Damage,
) -> Final {
    let text = match std::fs::read(run_dir.join(FINAL_FILE)) {
        Ok(text) => text,
        Err(e) => {
            let problem = format!("{FINAL_FILE} cannot be read ({e})");
            return Final {
                problem: Some(problem),
                ..Final::default()
            };
        }
    };
    let raw = match FinalReads::parse(&text) {
        Ok(raw) => raw,
        Err(e) => {
            damage.push(FINAL_FILE, Some(e.line() as u64), line_problem(&e));
            let problem = format!("{FINAL_FILE} is damaged ({e})");
            return Final {
                problem: Some(problem),
                ..Final::default()
            };
        }
    };
    // Every value of every partition is interned at once, on two threads: the final log holds
    // most of the run's values, and this is the one step nothing else can overlap.
    let all = raw
        .partitions
        .iter()
        .flat_map(|p| p.records.iter().map(|r| &*r.value));
    values.reserve(all.clone().count(), all.clone().map(str::len).sum());
    let ids = values.ids(all);
    // The text and its parsed records are the largest things alive here: keep only each
    // partition's head and (offset, value id, epoch) records, and free them before every
    // value's state is allocated.
    let complete = raw.complete;
    let mut ids = ids.into_iter();
    let partitions: Vec<(FinalPartition, Vec<FinalRecord<ValueId>>)> = raw
        .partitions
        .into_iter()
        .map(|p| {
            let records = p
                .records
                .iter()
                .zip(ids.by_ref())
                .map(|(r, id)| FinalRecord {
                    offset: r.offset,
                    value: id,
                    leader_epoch: r.leader_epoch,
                })
                .collect();
            (head(p), records)
        })
        .collect();
    drop(text);
    values.grow_states();
    let mut out = Final {
        problem: (!complete).then(|| format!("{FINAL_FILE} says complete: false")),
        parts: HashMap::new(),
        duplicates: Vec::new(),
    };
    for (p, records) in partitions {
        let idx = parts.get_or_add(&p.topic, p.partition);
        let part = load_final_part(p, &records, values, &mut out.duplicates, damage);
        if out.parts.insert(idx, part).is_some() {
            let (t, n) = parts.key(idx);
            damage.push(FINAL_FILE, None, format!("partition {t}/{n} appears twice"));
        }
    }
    out
}

/// A partition's read without its records, its strings owned.
fn head(p: FinalPartition<Text>) -> FinalPartition {
    FinalPartition {
        topic: p.topic.to_string(),
        partition: p.partition,
        leader: p.leader,
        leader_epoch: p.leader_epoch,
        high_watermark: p.high_watermark,
        isr: p.isr,
        records: Vec::new(),
        error: p.error,
    }
}

fn load_final_part(
    p: FinalPartition,
    records: &[FinalRecord<ValueId>],
    values: &mut Values,
    duplicates: &mut Vec<(Anomaly, ValueId)>,
    damage: &mut Damage,
) -> FinalPart {
    let mut log = LogValues::default();
    for r in records {
        let id = r.value;
        if id == NO_ID {
            damage.push(FINAL_FILE, None, "more than 4 billion distinct values");
            break;
        }
        if let Some(old) = log.insert(r.offset, id, Some(r.leader_epoch)) {
            let what = format!(
                "{}/{} offset {} appears twice ({:?} and {:?})",
                p.topic,
                p.partition,
                r.offset,
                values.interner.get(old),
                values.interner.get(id)
            );
            damage.push(FINAL_FILE, None, what);
            continue;
        }
        let state = values.state_mut(id);
        if state.has(IN_FINAL) {
            let first = state.final_offset;
            let value = values.name(id);
            let detail = format!(
                "value {value:?} is in the final log of {}/{} at offsets {first} and {}",
                p.topic, p.partition, r.offset
            );
            let mut a = anomaly(AnomalyKind::Duplicate, &p.topic, p.partition, detail);
            a.offsets = vec![first, r.offset];
            a.values = vec![value];
            duplicates.push((a, id));
            continue;
        }
        state.flags |= IN_FINAL;
        state.final_offset = r.offset;
    }
    log.finish();
    let incomplete = final_part_problem(&p, &log);
    FinalPart {
        leader: p.leader,
        leader_epoch: p.leader_epoch,
        high_watermark: p.high_watermark,
        isr: p.isr,
        log,
        incomplete,
    }
}

fn final_part_problem(p: &FinalPartition, log: &LogValues) -> Option<String> {
    let name = format!("{}/{}", p.topic, p.partition);
    if let Some(error) = &p.error {
        return Some(format!("final read of {name} failed: {error}"));
    }
    if p.leader.is_none() {
        return Some(format!("{name} has no leader at the end"));
    }
    if !log.contiguous() {
        return Some(format!(
            "final read of {name} has gaps ({} records below offset {})",
            log.records,
            log.end()
        ));
    }
    match p.high_watermark {
        Some(hw) if hw != log.end() => Some(format!(
            "final read of {name} holds {} records but its HW is {hw}",
            log.end()
        )),
        _ => None,
    }
}

/// A replica: one broker's surviving log of one partition (read by [`crate::broker_logs`]).
#[derive(Debug, Default)]
pub struct ReplicaLog {
    pub log: LogValues,
    /// From the dump's summary line, when it has one.
    pub high_watermark: Option<u64>,
    pub log_end_offset: Option<u64>,
}

/// One broker's dump: its replica of every partition it holds.
#[derive(Debug)]
pub struct BrokerLog {
    pub broker: u32,
    pub parts: BTreeMap<PartIdx, ReplicaLog>,
    /// True when some line of the dump was damaged: a record may be missing from it.
    pub damaged: bool,
}
