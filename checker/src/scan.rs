//! The one pass over `history.jsonl`. Lines are streamed and parsed in place (borrowed
//! strings, the `value` parsed once `f` is known), never kept: what survives a line is the
//! state of each value it names ([`crate::values`]), each consumer's position and the
//! per-partition counts. Anomalies that one operation shows against the final log (moved acks,
//! dirty reads, nonmonotonic polls, poll skips, inconsistent offsets) are found here, as the
//! line is read; those that need the whole history (lost, phantom) are found afterwards by
//! [`crate::findings`].

use crate::found::{anomaly, Found};
use crate::history::{
    Acks, FaultValue, NodeRef, OpLine, OpType, OpValue, PollValue, PolledRecord, Process, SendValue,
};
use crate::intern::{FastMap, ValueId};
use crate::logs::{Final, PartIdx, Partitions};
use crate::probes::ProbeInputs;
use crate::results::{AnomalyKind, Counts, OpCounts};
use crate::text::Text;
use crate::values::{
    Values, FAIL, INFO, INVOKED, IN_FINAL, NONE, NO_ACK_BY, NO_PART, OK, READ, WEAK_ACKS,
};

/// Width of the time buckets used to measure write availability.
pub const BUCKET_NS: u64 = 1_000_000_000;
/// Buckets past this (about 12 days) are not tracked, so a damaged time cannot allocate much.
const MAX_BUCKETS: u64 = 1 << 20;

/// What the pass learnt besides anomalies.
#[derive(Debug, Default)]
pub struct ScanStats {
    pub counts: Counts,
    pub send_per_part: FastMap<PartIdx, OpCounts>,
    /// Per partition, a bitset of the time buckets with at least one `ok` send.
    pub ok_buckets: FastMap<PartIdx, Vec<u64>>,
    pub first_client_ns: Option<u64>,
    pub last_client_ns: Option<u64>,
    /// The time of the history's last operation of any process (the nemesis's heals come after
    /// the chaos phase): how far the history reaches.
    pub last_op_ns: Option<u64>,
    /// The reason given by an `abort` marker, when the history has one.
    pub abort: Option<String>,
    /// Moved acknowledgements: (partition, acknowledged offset, value), for explanations.
    pub moved: Vec<(PartIdx, u64, ValueId)>,
    /// The history's `power-loss` faults that were applied, for explanations.
    pub power_losses: Vec<PowerLoss>,
    /// What the probes need of the history (refusals, timeouts, pauses, commits).
    pub probe_inputs: ProbeInputs,
    /// When the harness began stopping the nodes (its `stop` marker), when recorded.
    pub stop_ns: Option<u64>,
}

/// A `power-loss` nemesis operation: these brokers lost what they had not fsynced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerLoss {
    pub time_ns: u64,
    pub nodes: Vec<u32>,
    pub lost_bytes: u64,
}

impl PowerLoss {
    /// Reads a `power-loss` operation's value (`{"nodes":[1],"lost_bytes":…}`).
    fn parse(time_ns: u64, raw: &str) -> Option<PowerLoss> {
        let value: serde_json::Value = serde_json::from_str(raw).ok()?;
        let nodes = value
            .get("nodes")?
            .as_array()?
            .iter()
            .filter_map(|n| n.as_u64().map(|n| n as u32))
            .collect();
        let lost_bytes = value
            .get("lost_bytes")
            .and_then(|b| b.as_u64())
            .unwrap_or(0);
        Some(PowerLoss {
            time_ns,
            nodes,
            lost_bytes,
        })
    }
}

/// A send invoked and not yet completed.
struct PendingSend {
    value: String,
    index: u64,
    part: PartIdx,
}

/// A producer's last acknowledged send to a partition, for `nonmonotonic_send`.
#[derive(Debug, Clone, Copy)]
struct AckedSend {
    offset: u64,
    index: u64,
    value: ValueId,
    producer_id: Option<i64>,
    /// It asked for acks=1 or 0 in an acks=all run.
    weak: bool,
}

/// Invokes kept per process before the oldest is recorded without waiting for its completion
/// (a process normally has one operation outstanding).
const MAX_PENDING_PER_PROCESS: usize = 64;

/// The history pass: the state it reads and updates.
pub struct Scan<'a> {
    pub parts: &'a mut Partitions,
    pub values: &'a mut Values,
    pub fin: &'a Final,
    pub found: &'a mut Found,
    pub stats: ScanStats,
    /// Each consumer's position: the last offset it read of a partition.
    consumers: FastMap<(Process, PartIdx), u64>,
    /// Values seen by acks and polls at offsets the final log does not hold.
    beyond_final: FastMap<(PartIdx, u64), (ValueId, u64)>,
    pending: FastMap<Process, Vec<PendingSend>>,
    /// With idempotence: each producer's (client process's) last acknowledged send to each
    /// partition, in the order the completions were recorded.
    last_acked: FastMap<(Process, PartIdx), AckedSend>,
    /// Strings of completed invokes, reused for the next ones: a send's invoke and completion
    /// are millions of short-lived strings otherwise.
    spare: Vec<String>,
}

impl<'a> Scan<'a> {
    pub fn new(
        parts: &'a mut Partitions,
        values: &'a mut Values,
        fin: &'a Final,
        found: &'a mut Found,
    ) -> Self {
        Scan {
            parts,
            values,
            fin,
            found,
            stats: ScanStats::default(),
            consumers: FastMap::default(),
            beyond_final: FastMap::default(),
            pending: FastMap::default(),
            last_acked: FastMap::default(),
            spare: Vec::new(),
        }
    }

    /// Analyses one history line; an `Err` names what is wrong with it.
    pub fn line(&mut self, bytes: &[u8]) -> Result<(), String> {
        let op = OpLine::parse(bytes)?;
        self.stats.counts.history_lines += 1;
        let last = &mut self.stats.last_op_ns;
        *last = Some(last.map_or(op.time_ns, |t| t.max(op.time_ns)));
        match op.f.as_ref() {
            "send" => self.send(&op),
            "poll" => self.poll(&op),
            "stop" if !op.process.is_nemesis() => {
                self.stats.stop_ns = Some(op.time_ns);
                Ok(())
            }
            "abort" => {
                let reason = op.error.as_deref().map(str::to_string);
                let reason = reason.or_else(|| op.value.raw().map(str::to_string));
                self.stats.abort = Some(reason.unwrap_or_else(|| "no reason given".into()));
                Ok(())
            }
            _ if op.process.is_nemesis() => {
                // The checker does not interpret faults (node events explain losses), but a
                // nemesis line must still hold a fault value.
                if let Some(raw) = op.value.raw() {
                    serde_json::from_str::<FaultValue>(raw)
                        .map_err(|e| format!("bad {} value: {e}", op.f))?;
                }
                self.stats.counts.nemesis += 1;
                if op.f.as_ref() == "power-loss" && op.error.is_none() {
                    let loss = op
                        .value
                        .raw()
                        .and_then(|raw| PowerLoss::parse(op.time_ns, raw));
                    self.stats.power_losses.extend(loss);
                }
                if op.f.as_ref() == "pause" && op.error.is_none() {
                    let node = op
                        .value
                        .raw()
                        .and_then(|raw| serde_json::from_str::<FaultValue>(raw).ok())
                        .and_then(|v| v.node);
                    if let Some(NodeRef::Broker(broker)) = node {
                        self.stats.probe_inputs.pauses.push((op.time_ns, broker));
                    }
                }
                Ok(())
            }
            _ => {
                self.stats.counts.other_ops += 1;
                Ok(())
            }
        }
    }

    fn client_time(&mut self, time_ns: u64) {
        let s = &mut self.stats;
        s.first_client_ns = Some(s.first_client_ns.map_or(time_ns, |t| t.min(time_ns)));
        s.last_client_ns = Some(s.last_client_ns.map_or(time_ns, |t| t.max(time_ns)));
    }

    fn send(&mut self, op: &OpLine) -> Result<(), String> {
        let OpValue::Send(v) = &op.value else {
            return Err("send without a value".into());
        };
        self.client_time(op.time_ns);
        let part = self.parts.get_or_add(&v.topic, v.partition);
        bump(&mut self.stats.counts.send, op.kind);
        bump(self.stats.send_per_part.entry(part).or_default(), op.kind);
        if op.kind == OpType::Invoke {
            self.hold_invoke(op, v, part)?;
            return Ok(());
        }
        let final_log = self.fin.parts.get(&part).map(|p| &p.log);
        let id = match (op.kind, v.offset) {
            (OpType::Ok, Some(offset)) => self
                .values
                .id_at(final_log.and_then(|l| l.get(offset)), &v.value),
            _ => self.values.id(&v.value),
        };
        let id = id.ok_or("too many distinct values")?;
        if let Some(invoke) = self.take_invoke(&op.process, &v.value) {
            self.apply_invoke(id, invoke.index, invoke.part);
            self.recycle(invoke.value);
        }
        let st = self.values.state_mut(id);
        if st.part == NO_PART {
            st.part = u32::try_from(part).unwrap_or(NO_PART);
        }
        st.completion_index = op.index;
        st.attempts = u8::try_from(v.attempt_count()).unwrap_or(u8::MAX).max(1);
        match op.kind {
            OpType::Ok => {
                st.flags |= OK;
                // Weaker than the run's own acks=all: Kafka promises this send nothing.
                let run_acks_all = self.found.rules().acks == Acks::All;
                if run_acks_all && matches!(v.acks, Some(Acks::One | Acks::Zero)) {
                    st.flags |= WEAK_ACKS;
                }
                st.ok_time_ns = op.time_ns;
                st.ack_offset = v.offset.unwrap_or(NONE);
                st.ack_node = v.node.unwrap_or(NO_ACK_BY);
                st.ack_epoch = v.leader_epoch.unwrap_or(NO_ACK_BY);
                self.mark_ok_bucket(part, op.time_ns);
                if let Some(offset) = v.offset {
                    if v.acks.unwrap_or(self.found.rules().acks) == Acks::All {
                        let inputs = &mut self.stats.probe_inputs;
                        inputs.committed(&v.topic, v.partition, op.time_ns, offset);
                    }
                    self.check_ack(part, offset, id, op.index);
                    if self.found.rules().idempotence {
                        self.check_send_order(op, v, part, offset, id);
                    }
                }
            }
            OpType::Fail => st.flags |= FAIL,
            _ => st.flags |= INFO,
        }
        // Every attempt's error, the retried ones too: a send refused with
        // NOT_ENOUGH_REPLICAS and then acknowledged still went through the refusal.
        let errors = v.retry_errors.iter().map(|e| &**e);
        for error in errors.chain(op.error.as_deref()) {
            let inputs = &mut self.stats.probe_inputs;
            if error.starts_with("NOT_ENOUGH_REPLICAS") {
                inputs.refused(op.time_ns, &v.topic, v.partition);
            } else if error == "REQUEST_TIMED_OUT"
                && v.acks.unwrap_or(self.found.rules().acks) == Acks::All
            {
                inputs.timed_out(op.time_ns, &v.topic, v.partition);
            }
        }
        Ok(())
    }

    /// With idempotence, one producer's sends to one partition are appended in the order it
    /// sends them (one at a time, each sequence after the last), so each `ok` must name an
    /// offset above the one before it in the order the completions were recorded. A producer
    /// is a client process: its sends are sequential. A send that asked for acks=1 or 0 (a
    /// schedule's `produce N acks 1`) promised nothing that outlives its leader, so a pair
    /// with one is excused by it.
    fn check_send_order(
        &mut self,
        op: &OpLine,
        v: &SendValue<Text>,
        part: PartIdx,
        offset: u64,
        id: ValueId,
    ) {
        let weak = self.values.state(id).has(WEAK_ACKS);
        let this = AckedSend {
            offset,
            index: op.index,
            value: id,
            producer_id: v.producer_id,
            weak,
        };
        let key = (op.process.clone(), part);
        let Some(before) = self.last_acked.insert(key, this) else {
            return;
        };
        if offset > before.offset {
            return;
        }
        let (topic, partition) = self.parts.key(part);
        let producer = match v.producer_id {
            Some(id) => format!("{} (producer id {id})", op.process),
            None => op.process.to_string(),
        };
        let earlier_producer = match (before.producer_id, v.producer_id) {
            (Some(b), Some(n)) if b != n => format!(" by producer id {b}"),
            _ => String::new(),
        };
        let (earlier, later) = (self.values.name(before.value), self.values.name(id));
        let detail = format!(
            "{producer}: the send of {later:?} to {topic}/{partition} (index {}) was \
             acknowledged at offset {offset}, at or below offset {} of its earlier send of \
             {earlier:?}{earlier_producer} (index {})",
            op.index, before.offset, before.index
        );
        let mut a = anomaly(AnomalyKind::NonmonotonicSend, topic, partition, detail);
        a.offsets = vec![before.offset, offset];
        a.values = vec![earlier, later];
        a.indices = vec![before.index, op.index];
        if before.weak || weak {
            a.excused_by = Some(crate::results::WEAK_SEND_EXCUSE.to_string());
        }
        self.found.push(a);
    }

    /// Keeps an invoke until its completion names the value again: the completion usually
    /// finds the value by its offset in the final log, which spares a hash-table probe.
    fn hold_invoke(
        &mut self,
        op: &OpLine,
        v: &SendValue<Text>,
        part: PartIdx,
    ) -> Result<(), String> {
        let mut value = self.spare.pop().unwrap_or_default();
        value.clear();
        value.push_str(&v.value);
        let list = self.pending.entry(op.process.clone()).or_default();
        let evicted = (list.len() >= MAX_PENDING_PER_PROCESS).then(|| list.remove(0));
        list.push(PendingSend {
            value,
            index: op.index,
            part,
        });
        match evicted {
            Some(old) => self.flush_invoke(old),
            None => Ok(()),
        }
    }

    fn take_invoke(&mut self, process: &Process, value: &str) -> Option<PendingSend> {
        let list = self.pending.get_mut(process)?;
        let at = list.iter().position(|p| p.value == value)?;
        Some(list.remove(at))
    }

    fn flush_invoke(&mut self, invoke: PendingSend) -> Result<(), String> {
        let id = self
            .values
            .id(&invoke.value)
            .ok_or("too many distinct values")?;
        self.apply_invoke(id, invoke.index, invoke.part);
        self.recycle(invoke.value);
        Ok(())
    }

    /// Keeps a string for the next invoke, up to a bound.
    fn recycle(&mut self, value: String) {
        const MAX_SPARE: usize = 1024;
        if self.spare.len() < MAX_SPARE {
            self.spare.push(value);
        }
    }

    fn apply_invoke(&mut self, id: ValueId, index: u64, part: PartIdx) {
        let st = self.values.state_mut(id);
        st.flags |= INVOKED;
        st.invoke_index = st.invoke_index.min(index);
        if st.part == NO_PART {
            st.part = u32::try_from(part).unwrap_or(NO_PART);
        }
    }

    /// Records every invoke still waiting for a completion: the send's outcome is unknown.
    pub fn flush_pending(&mut self) {
        let pending: Vec<PendingSend> = self.pending.drain().flat_map(|(_, list)| list).collect();
        for invoke in pending {
            // Only past 4 billion values can this fail; the value is then not tracked.
            let _ = self.flush_invoke(invoke);
        }
    }

    fn mark_ok_bucket(&mut self, part: PartIdx, time_ns: u64) {
        let bucket = time_ns / BUCKET_NS;
        if bucket >= MAX_BUCKETS {
            return;
        }
        let bits = self.stats.ok_buckets.entry(part).or_default();
        let word = (bucket / 64) as usize;
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        bits[word] |= 1 << (bucket % 64);
    }

    /// An `ok` send acknowledged at `offset`: the final log must hold this value there.
    fn check_ack(&mut self, part: PartIdx, offset: u64, id: ValueId, index: u64) {
        let at_offset = self.fin.parts.get(&part).and_then(|p| p.log.get(offset));
        let st = *self.values.state(id);
        let elsewhere = (st.has(IN_FINAL) && st.final_offset != offset).then_some(st.final_offset);
        if at_offset.is_none() && elsewhere.is_none() {
            self.observe(part, offset, id, index);
            return;
        }
        if at_offset == Some(id) {
            return;
        }
        let (topic, partition) = self.parts.key(part);
        let value = self.values.name(id);
        let mut detail = format!(
            "value {value:?} was acknowledged at offset {offset} of {topic}/{partition} (index {index})"
        );
        let mut a = anomaly(AnomalyKind::Moved, topic, partition, String::new());
        a.offsets = vec![offset];
        a.values = vec![value];
        a.indices = vec![index];
        if let Some(other) = at_offset {
            detail += &format!(
                ", but the final log holds {:?} there",
                self.values.name(other)
            );
            a.values.push(self.values.name(other));
        }
        if let Some(o) = elsewhere {
            detail += &format!(", and holds it at offset {o}");
            a.offsets.push(o);
        }
        a.detail = detail;
        self.found.push(a);
        self.stats.moved.push((part, offset, id));
    }

    /// A value seen at an offset the final log does not hold: two different values there are
    /// an inconsistent offset.
    fn observe(&mut self, part: PartIdx, offset: u64, id: ValueId, index: u64) {
        let (first, first_index) = *self
            .beyond_final
            .entry((part, offset))
            .or_insert((id, index));
        if first == id {
            return;
        }
        let (topic, partition) = self.parts.key(part);
        let (a_name, b_name) = (self.values.name(first), self.values.name(id));
        let detail = format!(
            "offset {offset} of {topic}/{partition} was seen holding {a_name:?} (index \
             {first_index}) and {b_name:?} (index {index}), and the final log does not hold it"
        );
        let mut a = anomaly(AnomalyKind::InconsistentOffset, topic, partition, detail);
        a.offsets = vec![offset];
        a.values = vec![a_name, b_name];
        a.indices = vec![first_index, index];
        if self.fin.complete_part(part).is_none() {
            a.uncertain = Some(format!(
                "the final read of {topic}/{partition} is incomplete"
            ));
        }
        self.found.push(a);
    }

    fn poll(&mut self, op: &OpLine) -> Result<(), String> {
        self.client_time(op.time_ns);
        bump(&mut self.stats.counts.poll, op.kind);
        if op.kind != OpType::Ok {
            return Ok(());
        }
        let OpValue::Poll(v) = &op.value else {
            return Err("poll without a value".into());
        };
        let part = self.parts.get_or_add(&v.topic, v.partition);
        self.stats.counts.polled_records += v.records.len() as u64;
        let key = (op.process.clone(), part);
        let position = self.consumers.get(&key).copied();
        // A consumer reads on from its position; asking for an earlier offset is its own
        // choice (a rewind) and restarts the check there.
        let mut next = match position {
            Some(p) if v.offset > p => p + 1,
            _ => v.offset,
        };
        for r in &v.records {
            let final_log = self.fin.parts.get(&part).map(|p| &p.log);
            let id = self
                .values
                .id_at(final_log.and_then(|l| l.get(r.offset)), &r.value);
            let id = id.ok_or("too many distinct values")?;
            let st = self.values.state_mut(id);
            if st.part == NO_PART {
                st.part = u32::try_from(part).unwrap_or(NO_PART);
            }
            if !st.has(READ) {
                st.flags |= READ;
                st.read_index = op.index;
                st.read_offset = r.offset;
            }
            if r.offset < next {
                self.nonmonotonic(op, v, r, next);
            } else {
                if r.offset > next {
                    self.check_skip(op, v, part, next, r.offset);
                }
                next = r.offset + 1;
            }
            self.check_read(op, part, r.offset, id);
        }
        if next > 0 {
            self.consumers.insert(key, next - 1);
        }
        Ok(())
    }

    fn nonmonotonic(
        &mut self,
        op: &OpLine,
        v: &PollValue<Text>,
        r: &PolledRecord<Text>,
        next: u64,
    ) {
        let detail = format!(
            "{} read offset {} of {}/{} after offset {} (the poll asked from offset {}, index {})",
            op.process,
            r.offset,
            v.topic,
            v.partition,
            next.saturating_sub(1),
            v.offset,
            op.index
        );
        let mut a = anomaly(AnomalyKind::NonmonotonicPoll, &v.topic, v.partition, detail);
        a.offsets = vec![next.saturating_sub(1), r.offset];
        a.values = vec![r.value.to_string()];
        a.indices = vec![op.index];
        self.found.push(a);
    }

    /// A consumer jumped from `next` to `to`: the offsets in between that the final log holds
    /// were skipped.
    fn check_skip(&mut self, op: &OpLine, v: &PollValue<Text>, part: PartIdx, next: u64, to: u64) {
        let Some(fp) = self.fin.parts.get(&part) else {
            return;
        };
        let Some((first, last, count)) = fp.log.existing_in(next, to) else {
            return;
        };
        let detail = format!(
            "{} jumped from offset {} to {} of {}/{} (index {}), skipping {count} records of the \
             final log at offsets {first}–{last}",
            op.process,
            next.saturating_sub(1),
            to,
            v.topic,
            v.partition,
            op.index
        );
        let mut a = anomaly(AnomalyKind::PollSkip, &v.topic, v.partition, detail);
        a.offsets = vec![first, last];
        a.indices = vec![op.index];
        self.found.push(a);
    }

    /// A record a consumer read must be in the final log at that offset.
    fn check_read(&mut self, op: &OpLine, part: PartIdx, offset: u64, id: ValueId) {
        let fp = self.fin.parts.get(&part);
        let at_offset = fp.and_then(|p| p.log.get(offset));
        if at_offset == Some(id) {
            return;
        }
        let complete = self.fin.complete_part(part);
        if at_offset.is_none() && complete.is_none() {
            self.observe(part, offset, id, op.index);
            return;
        }
        let (topic, partition) = self.parts.key(part);
        let value = self.values.name(id);
        let mut detail = format!(
            "{} read {value:?} at offset {offset} of {topic}/{partition} (index {}), but ",
            op.process, op.index
        );
        let mut a = anomaly(AnomalyKind::DirtyRead, topic, partition, String::new());
        a.offsets = vec![offset];
        a.values = vec![value];
        a.indices = vec![op.index];
        match (at_offset, complete) {
            (Some(other), _) => {
                let other = self.values.name(other);
                detail += &format!("the final log holds {other:?} there");
                a.values.push(other);
            }
            (None, Some(p)) => detail += &format!("the final log ends at HW {}", p.hw()),
            (None, None) => {}
        }
        a.detail = detail;
        self.found.push(a);
    }
}

fn bump(counts: &mut OpCounts, kind: OpType) {
    match kind {
        OpType::Invoke => counts.invoke += 1,
        OpType::Ok => counts.ok += 1,
        OpType::Fail => counts.fail += 1,
        OpType::Info => counts.info += 1,
    }
}
