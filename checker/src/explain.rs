//! Explanations: for each range of lost or moved offsets, one sentence saying which leader
//! acknowledged it, in which epoch, and which node events removed it — or that no event does.
//! It never invents a cause: every clause comes from an event line or a log record. It owns the
//! grouping of offsets into ranges and the wording; the events are loaded by the
//! `partition_events` module.

use crate::events::NodeEvent;
use crate::findings::LostItem;
use crate::intern::ValueId;
use crate::logs::{BrokerLog, Final, PartIdx, Partitions};
use crate::partition_events::{Election, Events};
use crate::results::{AnomalyKind, Explanation};
use crate::scan::PowerLoss;
use crate::values::{Values, NONE, NO_ACK_BY};

/// Truncation events named in one sentence before the rest are counted.
const MAX_TRUNCATIONS_NAMED: usize = 3;

/// What explanations need to read.
pub struct Context<'a> {
    pub parts: &'a Partitions,
    pub values: &'a Values,
    pub fin: &'a Final,
    pub broker_logs: &'a [BrokerLog],
    pub events: &'a Events,
    pub start_unix_ms: u64,
    /// The history's power-loss faults: a node cannot know its page cache was lost.
    pub power_losses: &'a [PowerLoss],
}

/// One range to explain: consecutive offsets of one partition, acknowledged in one epoch.
#[derive(Debug, Clone)]
struct Range {
    kind: AnomalyKind,
    part: PartIdx,
    first: Option<u64>,
    last: Option<u64>,
    count: u64,
    read_only: bool,
    epoch: Option<u32>,
    /// The broker the sends themselves name as acknowledging them (history `node`).
    node: Option<u32>,
    /// Wall-clock time of the earliest acknowledgement in the range.
    acked_ms: Option<u64>,
}

/// Explains every lost range, then every moved range.
pub fn explain(
    ctx: &Context,
    lost: &[LostItem],
    moved: &[(PartIdx, u64, ValueId)],
) -> Vec<Explanation> {
    let lost_items = lost
        .iter()
        .map(|i| (i.part, i.offset, i.value, i.read_only));
    let mut ranges = group(ctx, AnomalyKind::Lost, lost_items);
    let mut moved: Vec<_> = moved.to_vec();
    moved.sort_unstable();
    moved.dedup();
    let moved_items = moved.iter().map(|&(p, o, v)| (p, Some(o), v, false));
    ranges.extend(group(ctx, AnomalyKind::Moved, moved_items));
    ranges.iter().map(|r| sentence(ctx, r)).collect()
}

/// Groups sorted items into ranges of consecutive offsets with one acknowledging epoch.
fn group(
    ctx: &Context,
    kind: AnomalyKind,
    items: impl Iterator<Item = (PartIdx, Option<u64>, ValueId, bool)>,
) -> Vec<Range> {
    let mut out: Vec<Range> = Vec::new();
    for (part, offset, value, read_only) in items {
        let st = ctx.values.state(value);
        let named = |x: u32| (x != NO_ACK_BY).then_some(x);
        // The epoch the acknowledgement itself names wins; else the record's epoch in a log.
        let epoch =
            named(st.ack_epoch).or_else(|| offset.and_then(|o| acked_epoch(ctx, part, o, value)));
        let node = named(st.ack_node);
        let ok_ns = st.ok_time_ns;
        let acked_ms = (ok_ns != NONE).then(|| ctx.start_unix_ms + ok_ns / 1_000_000);
        if let Some(r) = out.last_mut() {
            let next = match (r.last, offset) {
                (Some(l), Some(o)) => l + 1 == o,
                (None, None) => true,
                _ => false,
            };
            let same =
                r.part == part && r.read_only == read_only && r.epoch == epoch && r.node == node;
            if same && next {
                r.last = offset;
                r.count += 1;
                r.acked_ms = min_some(r.acked_ms, acked_ms);
                continue;
            }
        }
        out.push(Range {
            kind,
            part,
            first: offset,
            last: offset,
            count: 1,
            read_only,
            epoch,
            node,
            acked_ms,
        });
    }
    out
}

fn min_some(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The leader epoch of the record `value` at `offset` in any surviving log; failing that, of
/// the record where the final log holds the value now (a moved record keeps the epoch it was
/// appended in).
fn acked_epoch(ctx: &Context, part: PartIdx, offset: u64, value: ValueId) -> Option<u32> {
    let dumps = ctx
        .broker_logs
        .iter()
        .filter_map(|r| r.parts.get(&part))
        .map(|rp| &rp.log);
    let fin = ctx.fin.parts.get(&part).map(|fp| &fp.log);
    let exact = dumps
        .chain(fin)
        .find(|log| log.get(offset) == Some(value))
        .and_then(|log| log.epoch_at(offset));
    let now_at = ctx.values.state(value).final_offset;
    exact.or_else(|| {
        fin.filter(|log| log.get(now_at) == Some(value))?
            .epoch_at(now_at)
    })
}

fn sentence(ctx: &Context, r: &Range) -> Explanation {
    let (topic, partition) = ctx.parts.key(r.part);
    let leader = r.node.or_else(|| {
        r.epoch
            .and_then(|e| ctx.events.leader_in_epoch(topic, partition, e))
    });
    let causes = causes(ctx, r, topic, partition);
    let explained = !causes.is_empty();
    let reason = if explained {
        join_clauses(&causes)
    } else {
        format!(
            "no node event explains this {}",
            if r.kind == AnomalyKind::Lost {
                "loss"
            } else {
                "move"
            }
        )
    };
    let text = format!(
        "{}, {}, {}: {reason}.",
        subject(r, topic, partition),
        provenance(r, leader),
        verb(r)
    );
    Explanation {
        kind: r.kind,
        topic: topic.to_string(),
        partition,
        first_offset: r.first,
        last_offset: r.last,
        count: r.count,
        acked_by: leader,
        acked_leader_epoch: r.epoch,
        explained,
        sentence: text,
    }
}

fn subject(r: &Range, topic: &str, partition: u32) -> String {
    match (r.first, r.last) {
        (Some(f), Some(l)) if f == l => format!("offset {f} of {topic}/{partition}"),
        (Some(f), Some(l)) => format!("offsets {f}–{l} of {topic}/{partition}"),
        _ => format!("{} values of {topic}/{partition} without offsets", r.count),
    }
}

fn provenance(r: &Range, leader: Option<u32>) -> String {
    if r.read_only {
        return "whose sends had an unknown outcome but which a consumer read".to_string();
    }
    let by = leader.map_or("an unknown broker".to_string(), |l| format!("broker {l}"));
    let epoch = r
        .epoch
        .map_or("an unknown epoch".to_string(), |e| format!("epoch {e}"));
    format!("acknowledged by {by} in {epoch}")
}

fn verb(r: &Range) -> &'static str {
    match (r.kind, r.count) {
        (AnomalyKind::Lost, 1) => "was lost",
        (AnomalyKind::Lost, _) => "were lost",
        (_, 1) => "now holds another value",
        _ => "now hold other values",
    }
}

fn join_clauses(clauses: &[String]) -> String {
    match clauses {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{}, and {last}", init.join(", ")),
    }
}

/// The events that removed the range: the first election after the acknowledgement whose new
/// leader did not hold the range, and the truncations and torn-tail recoveries that cut it.
fn causes(ctx: &Context, r: &Range, topic: &str, partition: u32) -> Vec<String> {
    let (lo, hi) = (r.first.unwrap_or(0), r.last.unwrap_or(u64::MAX));
    let after = |time_ms: u64, epoch: Option<u32>| match (r.epoch, epoch) {
        (Some(acked), Some(e)) => e > acked,
        _ => r.acked_ms.is_none_or(|t| time_ms >= t),
    };
    let mut out: Vec<(u64, String)> = Vec::new();
    let election = ctx
        .events
        .elections(topic, partition)
        .into_iter()
        .find(|e| {
            after(e.time_ms, Some(e.leader_epoch))
                && e.log_end_offset.map_or(e.unclean, |leo| leo <= hi)
        });
    if let Some(e) = election {
        out.push((e.time_ms, election_clause(ctx, &e)));
    }
    let events = ctx.events.of(topic, partition);
    let cuts: Vec<&NodeEvent> = events
        .iter()
        .filter(|e| e.kind == "truncation" && after(e.time_ms, e.leader_epoch))
        .filter(|e| e.to.is_some_and(|to| to <= hi) && e.from.is_some_and(|from| from > lo))
        .collect();
    for e in cuts.iter().take(MAX_TRUNCATIONS_NAMED) {
        out.push((e.time_ms, truncation_clause(ctx, e, lo, hi)));
    }
    if cuts.len() > MAX_TRUNCATIONS_NAMED {
        let more = cuts.len() - MAX_TRUNCATIONS_NAMED;
        out.push((u64::MAX, format!("{more} more truncations")));
    }
    let torn = events.iter().filter(|e| {
        e.kind == "recovery"
            && e.dropped_bytes.is_some_and(|b| b > 0)
            && e.log_end_offset.is_some_and(|leo| leo <= hi)
            && after(e.time_ms, None)
    });
    for e in torn.take(MAX_TRUNCATIONS_NAMED) {
        out.push((e.time_ms, recovery_clause(ctx, e)));
    }
    // A power loss after the acknowledgement, on the broker that acknowledged the range (or,
    // when that is unknown, on any broker), is named: the node's own events cannot say it.
    let leader = r.node.or_else(|| {
        r.epoch
            .and_then(|e| ctx.events.leader_in_epoch(topic, partition, e))
    });
    for loss in ctx.power_losses {
        let time_ms = ctx.start_unix_ms + loss.time_ns / 1_000_000;
        let hit = leader.is_none_or(|l| loss.nodes.contains(&l));
        if hit && r.acked_ms.is_none_or(|t| time_ms >= t) {
            out.push((time_ms, power_loss_clause(ctx, loss, time_ms)));
        }
    }
    // In the order they happened.
    out.sort_by_key(|(time_ms, _)| *time_ms);
    out.into_iter().map(|(_, clause)| clause).collect()
}

fn at(ctx: &Context, time_ms: u64) -> String {
    let seconds = (time_ms as f64 - ctx.start_unix_ms as f64) / 1000.0;
    format!("{seconds:.1} s")
}

fn election_clause(ctx: &Context, e: &Election) -> String {
    let how = if e.unclean {
        "elected uncleanly"
    } else {
        "elected"
    };
    let leo = e
        .log_end_offset
        .map(|l| format!(" with LEO {l}"))
        .unwrap_or_default();
    format!(
        "broker {} was {how} at {} (epoch {}){leo}",
        e.leader,
        at(ctx, e.time_ms),
        e.leader_epoch
    )
}

fn truncation_clause(ctx: &Context, e: &NodeEvent, lo: u64, hi: u64) -> String {
    let (to, from) = (e.to.unwrap_or(0), e.from.unwrap_or(0));
    let (first, last) = (to.max(lo), (from - 1).min(hi));
    let cut = if first == last {
        format!("{first}")
    } else {
        format!("{first}–{last}")
    };
    let broker = e
        .broker()
        .map_or("a broker".to_string(), |b| format!("broker {b}"));
    let why = match e.reason.as_deref() {
        Some("hw_checkpoint") => " to its HW checkpoint",
        Some("offset_out_of_range") => " (offset out of range)",
        _ => "",
    };
    format!("{broker} truncated {cut}{why} at {}", at(ctx, e.time_ms))
}

fn power_loss_clause(ctx: &Context, loss: &PowerLoss, time_ms: u64) -> String {
    let nodes: Vec<String> = loss.nodes.iter().map(u32::to_string).collect();
    let who = match nodes.as_slice() {
        [one] => format!("broker {one}"),
        _ => format!("brokers {}", nodes.join(", ")),
    };
    format!(
        "{who} lost power at {} ({} unsynced bytes dropped)",
        at(ctx, time_ms),
        loss.lost_bytes
    )
}

fn recovery_clause(ctx: &Context, e: &NodeEvent) -> String {
    let broker = e
        .broker()
        .map_or("a broker".to_string(), |b| format!("broker {b}"));
    format!(
        "{broker} dropped a torn tail of {} bytes on recovery at {} (LEO {})",
        e.dropped_bytes.unwrap_or(0),
        at(ctx, e.time_ms),
        e.log_end_offset.unwrap_or(0)
    )
}
