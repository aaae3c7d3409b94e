//! Reading every broker's `nodes/<id>/dump.jsonl`. The read runs on its own thread, beside
//! the history pass, so it must not touch the shared value table: a record whose value is the
//! one the final log holds at that offset (nearly all of them) is resolved against a frozen
//! copy of the final log's strings; any other record is kept aside with its line number and
//! resolved on the main thread afterwards by [`merge`], which also reports a value held at two
//! offsets of one dump. The result is one [`BrokerLog`] per broker: its replica of every
//! partition. The line format is [`crate::dump`]; the log structures are [`crate::logs`].

use crate::dump::DumpLine;
use crate::found::{anomaly, Found};
use crate::intern::{Frozen, ValueId};
use crate::jsonl::{for_each_line, Damage, Outcome};
use crate::logs::{BrokerLog, Final, LogValues, Partitions, ReplicaLog};
use crate::results::AnomalyKind;
use crate::values::{Values, IN_DUMP, IN_FINAL};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// (topic, partition) as a dump names it.
type Key = (String, u32);

/// What a dump thread may read: the final log of each partition and its strings.
pub struct DumpView<'a> {
    strings: Frozen,
    finals: HashMap<Key, &'a LogValues>,
    /// Offsets where the final log repeats a value held at an earlier offset: a dump record
    /// there is resolved on the main thread, so that its duplicate is reported too.
    final_repeats: HashSet<(Key, u64)>,
}

impl<'a> DumpView<'a> {
    pub fn new(fin: &'a Final, parts: &Partitions, values: &Values) -> Self {
        let mut finals = HashMap::new();
        let mut final_repeats = HashSet::new();
        for (&idx, fp) in &fin.parts {
            let (topic, partition) = parts.key(idx);
            let key = (topic.to_string(), partition);
            for (offset, id) in fp.log.iter() {
                if values.state(id).final_offset != offset {
                    final_repeats.insert((key.clone(), offset));
                }
            }
            finals.insert(key, &fp.log);
        }
        DumpView {
            strings: values.interner.freeze(),
            finals,
            final_repeats,
        }
    }

    /// The id of `value` when the final log holds exactly it at `offset`.
    fn resolve(&self, key: &Key, offset: u64, value: &str) -> Option<ValueId> {
        let id = self.finals.get(key)?.get(offset)?;
        let same = self.strings.get(id) == Some(value);
        (same && !self.final_repeats.contains(&(key.clone(), offset))).then_some(id)
    }
}

/// A record left for the main thread.
struct Unresolved {
    part: usize,
    offset: u64,
    value: String,
    line: u64,
}

/// One dump as read by its thread.
pub struct DumpRead {
    broker: u32,
    file: String,
    keys: Vec<Key>,
    parts: Vec<ReplicaLog>,
    unresolved: Vec<Unresolved>,
    damage: Damage,
}

impl DumpRead {
    /// The local index of a partition; the last one is checked first (dumps are grouped).
    fn part(&mut self, topic: &str, partition: u32) -> usize {
        if let Some(i) = self
            .keys
            .iter()
            .rposition(|k| k.0 == topic && k.1 == partition)
        {
            return i;
        }
        self.keys.push((topic.to_string(), partition));
        self.parts.push(ReplicaLog::default());
        self.keys.len() - 1
    }

    fn line(&mut self, view: &DumpView, line_no: u64, bytes: &[u8]) -> Result<(), String> {
        match DumpLine::parse(bytes)? {
            DumpLine::Other => Ok(()),
            DumpLine::Summary(summary) => {
                let i = self.part(&summary.topic, summary.partition);
                let part = &mut self.parts[i];
                part.high_watermark = summary.high_watermark.or(part.high_watermark);
                part.log_end_offset = Some(summary.log_end_offset);
                Ok(())
            }
            DumpLine::Record(record) => {
                let i = self.part(&record.topic, record.partition);
                let (offset, value) = (record.offset, &*record.value);
                let part = &mut self.parts[i];
                part.log.note_epoch(offset, record.leader_epoch);
                match view.resolve(&self.keys[i], offset, value) {
                    Some(id) => match part.log.insert(offset, id, None) {
                        Some(_) => Err(format!("offset {offset} appears twice")),
                        None => Ok(()),
                    },
                    None => {
                        self.unresolved.push(Unresolved {
                            part: i,
                            offset,
                            value: value.to_string(),
                            line: line_no,
                        });
                        Ok(())
                    }
                }
            }
        }
    }
}

/// Reads `path` as broker `broker`'s dump; `None` when the file is missing.
pub fn read_dump(path: &Path, broker: u32, view: &DumpView) -> Option<DumpRead> {
    let mut read = DumpRead {
        broker,
        file: format!("nodes/{broker}/dump.jsonl"),
        keys: Vec::new(),
        parts: Vec::new(),
        unresolved: Vec::new(),
        damage: Damage::default(),
    };
    let mut damage = Damage::default();
    let file = read.file.clone();
    let outcome = for_each_line(path, &file, &mut damage, |n, bytes| {
        read.line(view, n, bytes)
    });
    read.damage = damage;
    (outcome != Outcome::Missing).then_some(read)
}

/// What merging a dump needs on the main thread.
pub struct Merge<'a> {
    pub parts: &'a mut Partitions,
    pub values: &'a mut Values,
    pub damage: &'a mut Damage,
    pub found: &'a mut Found,
}

/// Resolves a dump's remaining records, registers its partitions, and reports values it holds
/// at two offsets.
pub fn merge(read: DumpRead, m: Merge) -> BrokerLog {
    let damaged = read.damage.total > 0;
    for w in read.damage.warnings {
        m.damage.push(&w.file, w.line, w.problem);
    }
    let mut parts: Vec<ReplicaLog> = read.parts;
    let mut seen: HashMap<ValueId, u64> = HashMap::new();
    for u in read.unresolved {
        let Some(id) = m.values.id(&u.value) else {
            m.damage.push(
                &read.file,
                Some(u.line),
                "more than 4 billion distinct values",
            );
            continue;
        };
        let log = &mut parts[u.part].log;
        if log.insert(u.offset, id, None).is_some() {
            let problem = format!("offset {} appears twice", u.offset);
            m.damage.push(&read.file, Some(u.line), problem);
            continue;
        }
        m.values.state_mut(id).flags |= IN_DUMP;
        let st = m.values.state(id);
        let in_final = st.has(IN_FINAL) && st.final_offset != u.offset;
        let earlier = if in_final && log.get(st.final_offset) == Some(id) {
            Some(st.final_offset)
        } else {
            seen.insert(id, u.offset)
        };
        if let Some(first) = earlier {
            let (topic, partition) = &read.keys[u.part];
            let attempts = m.values.state(id).send_attempts();
            push_duplicate(
                m.found,
                read.broker,
                (topic, *partition),
                (&u.value, attempts),
                [first, u.offset],
            );
        }
    }
    let mut replica = BrokerLog {
        broker: read.broker,
        parts: BTreeMap::new(),
        damaged,
    };
    for ((topic, partition), mut part) in read.keys.into_iter().zip(parts) {
        part.log.finish();
        replica
            .parts
            .insert(m.parts.get_or_add(&topic, partition), part);
    }
    replica
}

/// A value at two offsets of one dump; `value` with how many attempts its send took (the
/// history has been read by now).
fn push_duplicate(
    found: &mut Found,
    broker: u32,
    key: (&str, u32),
    value: (&str, Option<u32>),
    at: [u64; 2],
) {
    let (topic, partition) = key;
    let (value, attempts) = value;
    let detail = format!(
        "broker {broker}'s log of {topic}/{partition} holds {value:?} at offsets {} and {}",
        at[0], at[1]
    );
    let mut a = anomaly(AnomalyKind::Duplicate, topic, partition, detail);
    a.offsets = at.to_vec();
    a.values = vec![value.to_string()];
    a.brokers = vec![broker];
    found.push_duplicate(a, attempts);
}
