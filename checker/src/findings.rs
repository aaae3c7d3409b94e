//! The anomalies that need the whole history before they can be judged: lost writes (an
//! acknowledged value that no later line can bring back), phantoms (a value no line sent),
//! failed sends whose value is present, and the final log's duplicates (excused or not by how
//! their send went). It walks the
//! per-value state once and the logs once; it does not read any file.

use crate::found::{anomaly, Found};
use crate::intern::ValueId;
use crate::logs::{BrokerLog, Final, LogValues, PartIdx, Partitions};
use crate::results::AnomalyKind;
use crate::values::{
    ValueState, Values, FAIL, INFO, INVOKED, IN_DUMP, IN_FINAL, NONE, NO_PART, OK, READ, WEAK_ACKS,
};
use std::collections::HashSet;

/// A lost value, for the explanations: its partition, the offset it was acknowledged at (or
/// read at, for an indefinite send), and whether only a read proves it was written.
#[derive(Debug, Clone, Copy)]
pub struct LostItem {
    pub part: PartIdx,
    pub offset: Option<u64>,
    pub value: ValueId,
    pub read_only: bool,
}

/// The inputs the whole-history findings look at.
pub struct Inputs<'a> {
    pub parts: &'a Partitions,
    pub values: &'a Values,
    pub fin: &'a Final,
    pub broker_logs: &'a [BrokerLog],
    /// Why the history may be missing sends (damaged lines, an abort): phantoms are then
    /// uncertain rather than proven.
    pub history_problem: Option<String>,
    /// True when every broker of the run left a dump: only then can the dumps prove that no
    /// surviving replica holds a record.
    pub all_dumped: bool,
}

/// Judges the final log's duplicates ([`Final::duplicates`]) now that the history has said how
/// each value's send went.
pub fn final_duplicates(fin: &mut Final, values: &Values, found: &mut Found) {
    for (a, id) in std::mem::take(&mut fin.duplicates) {
        found.push_duplicate(a, values.state(id).send_attempts());
    }
}

/// Finds lost writes; returns them for the explanations.
pub fn lost(inputs: &Inputs, found: &mut Found) -> Vec<LostItem> {
    let mut items = Vec::new();
    for (id, st) in inputs.values.states.iter().enumerate() {
        if st.has(IN_FINAL) || st.part == NO_PART {
            continue;
        }
        let acked = st.has(OK);
        let indefinite = !st.has(OK) && !st.has(FAIL) && (st.has(INFO) || st.has(INVOKED));
        if !(acked || (indefinite && st.has(READ))) {
            continue;
        }
        let item = LostItem {
            part: st.part as PartIdx,
            offset: lost_offset(st, acked),
            value: id as ValueId,
            read_only: !acked,
        };
        found.push(lost_anomaly(inputs, st, &item));
        items.push(item);
    }
    items.sort_by_key(|i| (i.part, i.offset.unwrap_or(NONE), i.value));
    items
}

fn lost_offset(st: &ValueState, acked: bool) -> Option<u64> {
    let offset = if acked { st.ack_offset } else { st.read_offset };
    (offset != NONE).then_some(offset)
}

fn lost_anomaly(inputs: &Inputs, st: &ValueState, item: &LostItem) -> crate::Anomaly {
    let (topic, partition) = inputs.parts.key(item.part);
    let value = inputs.values.name(item.value);
    let how = match (item.read_only, item.offset) {
        (false, Some(o)) => format!("acknowledged at offset {o}"),
        (false, None) => "acknowledged without an offset".to_string(),
        (true, Some(o)) => format!("sent with an unknown outcome and read at offset {o}"),
        (true, None) => "sent with an unknown outcome and read".to_string(),
    };
    let mut detail =
        format!("value {value:?} of {topic}/{partition}, {how}, is not in the final log");
    let hole = hole_proof(inputs, st, item);
    if let Some(ends) = &hole {
        detail += &format!(
            " nor in any surviving replica, though every one holds records past offset {} \
             ({}): a hole in the log",
            item.offset.unwrap_or(0),
            ends.iter()
                .map(|(b, end)| format!("broker {b} up to {}", end - 1))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut a = anomaly(AnomalyKind::Lost, topic, partition, detail);
    if st.has(WEAK_ACKS) {
        a.excused_by = Some(crate::results::WEAK_SEND_EXCUSE.to_string());
    }
    a.offsets = item.offset.into_iter().collect();
    a.values = vec![value];
    a.indices = [st.invoke_index, st.completion_index, st.read_index]
        .into_iter()
        .filter(|&i| i != NONE)
        .collect();
    if inputs.fin.complete_part(item.part).is_none() && hole.is_none() {
        let why = format!("the final read of {topic}/{partition} is incomplete");
        a.uncertain = Some(inputs.fin.problem.clone().unwrap_or(why));
    }
    a
}

/// When the final read of the partition is incomplete, the surviving replicas can still prove
/// a loss: every broker left an undamaged dump, at least one holds the partition, none holds
/// the value anywhere, and each holds records past the acknowledged offset (so it is not just
/// behind). Returns (broker, end offset) of each replica that proves it; `None` when the dumps
/// leave room for the record to exist somewhere the final read did not look.
fn hole_proof(inputs: &Inputs, st: &ValueState, item: &LostItem) -> Option<Vec<(u32, u64)>> {
    let offset = item.offset?;
    if item.read_only || !inputs.all_dumped || st.has(IN_DUMP) {
        return None;
    }
    let mut ends = Vec::new();
    for broker in inputs.broker_logs {
        let Some(replica) = broker.parts.get(&item.part) else {
            continue;
        };
        let end = replica.log.end();
        if broker.damaged || end <= offset {
            return None;
        }
        ends.push((broker.broker, end));
    }
    (!ends.is_empty()).then_some(ends)
}

/// A send that definitely failed must not be in the final log nor read.
pub fn failed_present(inputs: &Inputs, found: &mut Found) {
    for (id, st) in inputs.values.states.iter().enumerate() {
        let present = st.has(IN_FINAL) || st.has(READ);
        let failed = st.has(FAIL) && !st.has(OK) && !st.has(INFO);
        if !failed || !present || st.part == NO_PART {
            continue;
        }
        let (topic, partition) = inputs.parts.key(st.part as PartIdx);
        let value = inputs.values.name(id as ValueId);
        let mut offsets = Vec::new();
        let mut where_ = Vec::new();
        if st.has(IN_FINAL) {
            offsets.push(st.final_offset);
            where_.push(format!("is in the final log at offset {}", st.final_offset));
        }
        if st.has(READ) {
            where_.push(format!("was read at offset {}", st.read_offset));
        }
        let detail = format!(
            "the send of {value:?} to {topic}/{partition} failed (index {}), but the value {}",
            st.completion_index,
            where_.join(" and ")
        );
        let mut a = anomaly(AnomalyKind::FailedSendPresent, topic, partition, detail);
        a.offsets = offsets;
        a.values = vec![value];
        a.indices = [st.invoke_index, st.completion_index, st.read_index]
            .into_iter()
            .filter(|&i| i != NONE)
            .collect();
        found.push(a);
    }
}

fn never_sent(st: &ValueState) -> bool {
    st.flags & (INVOKED | OK | FAIL | INFO) == 0
}

/// Values in a log, or read, that no client ever sent.
pub fn phantoms(inputs: &Inputs, found: &mut Found) {
    let mut reported: HashSet<ValueId> = HashSet::new();
    let mut logs: Vec<(PartIdx, &LogValues, Option<u32>)> = Vec::new();
    for (&part, fp) in &inputs.fin.parts {
        logs.push((part, &fp.log, None));
    }
    for r in inputs.broker_logs {
        for (&part, rp) in &r.parts {
            logs.push((part, &rp.log, Some(r.broker)));
        }
    }
    logs.sort_by_key(|(part, _, broker)| (*part, *broker));
    for (part, log, broker) in logs {
        for (offset, id) in log.iter() {
            if never_sent(inputs.values.state(id)) && reported.insert(id) {
                push_phantom(inputs, found, part, id, Some(offset), broker);
            }
        }
    }
    for (id, st) in inputs.values.states.iter().enumerate() {
        let id = id as ValueId;
        if st.has(READ) && never_sent(st) && st.part != NO_PART && !reported.contains(&id) {
            push_read_phantom(inputs, found, id, st);
        }
    }
}

fn push_phantom(
    inputs: &Inputs,
    found: &mut Found,
    part: PartIdx,
    id: ValueId,
    offset: Option<u64>,
    broker: Option<u32>,
) {
    let (topic, partition) = inputs.parts.key(part);
    let value = inputs.values.name(id);
    let log = match broker {
        Some(b) => format!("broker {b}'s log"),
        None => "the final log".to_string(),
    };
    let at = offset
        .map(|o| format!(" at offset {o}"))
        .unwrap_or_default();
    let detail = format!("{log} of {topic}/{partition} holds {value:?}{at}, which no client sent");
    let mut a = anomaly(AnomalyKind::Phantom, topic, partition, detail);
    a.offsets = offset.into_iter().collect();
    a.values = vec![value];
    a.brokers = broker.into_iter().collect();
    a.uncertain = inputs.history_problem.clone();
    found.push(a);
}

/// A value only a consumer saw, in no log, and never sent.
fn push_read_phantom(inputs: &Inputs, found: &mut Found, id: ValueId, st: &ValueState) {
    let (topic, partition) = inputs.parts.key(st.part as PartIdx);
    let value = inputs.values.name(id);
    let detail = format!(
        "a consumer read {value:?} at offset {} of {topic}/{partition} (index {}), which no \
         client sent",
        st.read_offset, st.read_index
    );
    let mut a = anomaly(AnomalyKind::Phantom, topic, partition, detail);
    a.offsets = vec![st.read_offset];
    a.values = vec![value];
    a.indices = vec![st.read_index];
    a.uncertain = inputs.history_problem.clone();
    found.push(a);
}
