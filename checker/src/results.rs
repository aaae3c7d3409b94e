//! The checker's output: the verdict, the counts, every anomaly with the partition, offsets,
//! values and history indices involved, the explanations of lost and moved ranges, and the
//! warnings about damaged input. It owns the shape of `results.json` (docs/results.md) and the
//! short terminal summary; it does not decide anything.

use crate::probes::Probes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// `excused_by` of an anomaly excused by its own send's acks (acks=1 or 0 in a run whose
/// producers use acks=all: a schedule's `produce N acks 1`), not by the run's settings.
pub const WEAK_SEND_EXCUSE: &str = "acks=1 or 0 on this send";

/// `excused_by` of a duplicate whose send took more than one attempt in a run without
/// idempotence: a blind retry of a send the broker had appended appends it again.
pub const RETRY_EXCUSE: &str = "producer retries without idempotence";

/// Jepsen's tri-state verdict. Serialized as `true`, `false` or `"unknown"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Valid {
    True,
    False,
    Unknown,
}

impl Valid {
    /// The verdict's exit code (Jepsen's convention): 0 valid, 1 invalid, 2 unknown.
    pub fn exit_code(self) -> i32 {
        match self {
            Valid::True => 0,
            Valid::False => 1,
            Valid::Unknown => 2,
        }
    }
}

impl Valid {
    pub fn as_str(self) -> &'static str {
        match self {
            Valid::True => "valid",
            Valid::False => "invalid",
            Valid::Unknown => "unknown",
        }
    }
}

impl Serialize for Valid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Valid::True => s.serialize_bool(true),
            Valid::False => s.serialize_bool(false),
            Valid::Unknown => s.serialize_str("unknown"),
        }
    }
}

impl<'de> Deserialize<'de> for Valid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Bool(true) => Ok(Valid::True),
            serde_json::Value::Bool(false) => Ok(Valid::False),
            serde_json::Value::String(s) if s == "unknown" => Ok(Valid::Unknown),
            other => Err(serde::de::Error::custom(format!(
                "valid must be true, false or \"unknown\" (got {other})"
            ))),
        }
    }
}

/// Every kind of anomaly the checker looks for. docs/results.md defines each one and says
/// which configuration setting excuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// An `ok` send (or an `info` send a consumer read) whose value is not in the final log.
    Lost,
    /// An `ok` send acknowledged at offset o, while the final log holds it elsewhere or holds
    /// another value at o.
    Moved,
    /// Two different values observed at one offset by acks and polls where the final log has
    /// no record to arbitrate.
    InconsistentOffset,
    /// One value at more than one offset of one log (the final log or a replica's dump).
    Duplicate,
    /// A consumer read a record that is not in the final log at that offset.
    DirtyRead,
    /// Two replicas' logs differ below the lower of their HWs, or an ISR replica differs from
    /// the final log below the final HW.
    Divergence,
    /// A consumer's poll returned an offset at or below one it had already read, or below the
    /// offset it asked for.
    NonmonotonicPoll,
    /// With idempotence: one producer's acknowledged offsets on one partition did not grow in
    /// the order its sends completed.
    NonmonotonicSend,
    /// A consumer's poll jumped over offsets that exist in the final log.
    PollSkip,
    /// A record no client ever sent, in a log or in a poll.
    Phantom,
    /// A send that definitely failed, whose value is in the final log or was read.
    FailedSendPresent,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 11] = [
        AnomalyKind::Lost,
        AnomalyKind::Moved,
        AnomalyKind::InconsistentOffset,
        AnomalyKind::Duplicate,
        AnomalyKind::DirtyRead,
        AnomalyKind::Divergence,
        AnomalyKind::NonmonotonicPoll,
        AnomalyKind::NonmonotonicSend,
        AnomalyKind::PollSkip,
        AnomalyKind::Phantom,
        AnomalyKind::FailedSendPresent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::Lost => "lost",
            AnomalyKind::Moved => "moved",
            AnomalyKind::InconsistentOffset => "inconsistent_offset",
            AnomalyKind::Duplicate => "duplicate",
            AnomalyKind::DirtyRead => "dirty_read",
            AnomalyKind::Divergence => "divergence",
            AnomalyKind::NonmonotonicPoll => "nonmonotonic_poll",
            AnomalyKind::NonmonotonicSend => "nonmonotonic_send",
            AnomalyKind::PollSkip => "poll_skip",
            AnomalyKind::Phantom => "phantom",
            AnomalyKind::FailedSendPresent => "failed_send_present",
        }
    }
}

/// One anomaly. `offsets` holds one offset, or the first and last of a range; `indices` are
/// history indices of the operations involved; `brokers` the replicas whose logs are involved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub topic: String,
    pub partition: u32,
    pub offsets: Vec<u64>,
    pub values: Vec<String>,
    pub indices: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brokers: Vec<u32>,
    /// One sentence saying what was observed.
    pub detail: String,
    /// The setting that makes this anomaly possible, when the run's configuration allows it;
    /// an excused anomaly does not make the run invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excused_by: Option<String>,
    /// Why this anomaly may be an artefact of missing input (a damaged history, an incomplete
    /// final read); an uncertain anomaly makes the run `unknown`, not invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncertain: Option<String>,
}

impl Anomaly {
    /// True when this anomaly alone makes the run invalid.
    pub fn breaks_guarantee(&self) -> bool {
        self.excused_by.is_none() && self.uncertain.is_none()
    }
}

/// A consecutive range of lost or moved offsets and what removed it, in one sentence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub kind: AnomalyKind,
    pub topic: String,
    pub partition: u32,
    /// First and last offset of the range; `None` for values acknowledged without an offset
    /// (acks=0) or sends whose outcome was unknown.
    pub first_offset: Option<u64>,
    pub last_offset: Option<u64>,
    pub count: u64,
    /// The leader that acknowledged the range, and its leader_epoch, when the logs and events
    /// say so.
    pub acked_by: Option<u32>,
    pub acked_leader_epoch: Option<u32>,
    /// True when some node event explains the range; false means "no node event explains it".
    pub explained: bool,
    pub sentence: String,
}

/// A damaged or unusable line of an input file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// Path relative to the run directory, e.g. `history.jsonl` or `nodes/2/dump.jsonl`.
    pub file: String,
    /// 1-based line number; `None` when the problem concerns the whole file.
    pub line: Option<u64>,
    pub problem: String,
}

/// Operation counts of one function (`send` or `poll`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounts {
    pub invoke: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

/// Whole-run counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub history_lines: u64,
    pub send: OpCounts,
    pub poll: OpCounts,
    pub polled_records: u64,
    pub nemesis: u64,
    pub other_ops: u64,
    pub final_records: u64,
    pub dump_records: u64,
    pub distinct_values: u64,
}

/// What the checker found about one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionSummary {
    pub topic: String,
    pub partition: u32,
    /// From final.json: the leader at the end (`None`: unavailable), its epoch, HW and ISR.
    pub leader: Option<u32>,
    pub leader_epoch: Option<u32>,
    pub high_watermark: Option<u64>,
    pub isr: Vec<u32>,
    pub final_records: u64,
    /// True when the final read covered offsets 0..HW of this partition without a gap.
    pub final_complete: bool,
    pub unavailable: bool,
    pub send: OpCounts,
    /// Share of one-second buckets, from the first to the last client operation, with at
    /// least one `ok` send to this partition; `None` without client operations.
    pub write_availability: Option<f64>,
    /// The longest run of consecutive one-second buckets without an `ok` send, in ms.
    pub longest_write_gap_ms: Option<u64>,
    pub anomalies: BTreeMap<AnomalyKind, u64>,
}

/// The guarantee the run's configuration promises, and which settings weaken it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guarantee {
    /// True for the durable configuration (design "Verdicts and guarantees").
    pub durable: bool,
    /// The settings that weaken it, e.g. `acks=1`, `unclean.leader.election.enable=true`.
    pub weakened_by: Vec<String>,
    /// For each excused anomaly kind, the settings that excuse it.
    pub excused: BTreeMap<AnomalyKind, Vec<String>>,
    /// Kinds excused only for some sends, by how each send went, and why: without idempotence,
    /// a `duplicate` of a value whose send took more than one attempt ([`RETRY_EXCUSE`]).
    /// Absent when empty (and in results written before it existed).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub excused_per_send: BTreeMap<AnomalyKind, Vec<String>>,
}

/// Everything `check_run` found. Serialized as `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub valid: Valid,
    pub guarantee: Guarantee,
    pub counts: Counts,
    pub partitions: Vec<PartitionSummary>,
    /// Every anomaly kind with its full count (including excused ones), even when zero.
    pub anomaly_counts: BTreeMap<AnomalyKind, u64>,
    /// Anomalies in detail, at most [`MAX_ANOMALIES_PER_KIND`] per kind.
    pub anomalies: Vec<Anomaly>,
    /// True when some kind had more anomalies than were listed.
    pub anomalies_truncated: bool,
    pub explanations: Vec<Explanation>,
    /// Why the verdict cannot be `valid` although no anomaly breaks the guarantee.
    pub unknown_reasons: Vec<String>,
    /// Properties this run could not check and why (a system that gives no dump of its
    /// replicas' logs): said, never counted as clean, and no reason for `unknown` on their own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_checked: Vec<String>,
    /// Damaged or missing input, at most [`MAX_WARNINGS`]; `warnings_total` counts them all.
    pub warnings: Vec<Warning>,
    pub warnings_total: u64,
    /// The Kafka situations the run went through (absent in runs checked before probes).
    #[serde(default)]
    pub probes: Probes,
}

/// Anomalies listed in detail per kind; counts are always complete.
pub const MAX_ANOMALIES_PER_KIND: usize = 10_000;
/// Warnings listed in detail.
pub const MAX_WARNINGS: usize = 1_000;

impl Results {
    /// The process exit code for this verdict: 0 valid, 1 invalid, 2 unknown.
    pub fn exit_code(&self) -> i32 {
        self.valid.exit_code()
    }

    /// A short terminal summary: the verdict, the counts, anomalies by kind, the first few
    /// explanations and warnings.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let guarantee = if self.guarantee.durable {
            "durable".to_string()
        } else {
            format!("weakened by {}", self.guarantee.weakened_by.join(", "))
        };
        let _ = writeln!(out, "verdict: {} ({guarantee})", self.valid.as_str());
        let c = &self.counts;
        let _ = writeln!(
            out,
            "sends: {} ok, {} fail, {} info; polls: {} ok ({} records); final records: {}",
            c.send.ok, c.send.fail, c.send.info, c.poll.ok, c.polled_records, c.final_records
        );
        self.summary_anomalies(&mut out);
        let _ = writeln!(out, "probes: {}", crate::probes::one_line(&self.probes));
        summary_list(
            &mut out,
            "why",
            self.explanations.iter().map(|e| &e.sentence),
            5,
        );
        summary_list(&mut out, "unknown because", self.unknown_reasons.iter(), 5);
        summary_list(&mut out, "not checked", self.not_checked.iter(), 5);
        let warnings = self.warnings.iter().map(|w| match w.line {
            Some(line) => format!("{}:{line}: {}", w.file, w.problem),
            None => format!("{}: {}", w.file, w.problem),
        });
        let warnings: Vec<String> = warnings.collect();
        summary_list(&mut out, "damaged input", warnings.iter(), 5);
        if self.warnings_total > 5 {
            let _ = writeln!(out, "  ... {} warnings in all", self.warnings_total);
        }
        out
    }

    fn summary_anomalies(&self, out: &mut String) {
        let found: Vec<String> = self
            .anomaly_counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(kind, n)| {
                let listed: Vec<&Anomaly> =
                    self.anomalies.iter().filter(|a| a.kind == *kind).collect();
                let none_breaks =
                    !listed.is_empty() && listed.iter().all(|a| !a.breaks_guarantee());
                // An uncertain anomaly is not allowed: it makes the run unknown, and says so.
                let note = if none_breaks && listed.iter().all(|a| a.excused_by.is_some()) {
                    " (allowed)"
                } else if none_breaks {
                    " (uncertain)"
                } else {
                    ""
                };
                format!("{} {n}{note}", kind.as_str())
            })
            .collect();
        if found.is_empty() {
            let _ = writeln!(out, "anomalies: none");
        } else {
            let _ = writeln!(out, "anomalies: {}", found.join(", "));
        }
        for p in self.partitions.iter().filter(|p| p.unavailable) {
            let _ = writeln!(
                out,
                "unavailable: {}/{} has no leader",
                p.topic, p.partition
            );
        }
    }
}

fn summary_list<'a, S: AsRef<str> + 'a>(
    out: &mut String,
    title: &str,
    items: impl Iterator<Item = &'a S>,
    max: usize,
) {
    for (i, item) in items.enumerate() {
        if i == max {
            let _ = writeln!(out, "  ...");
            break;
        }
        let _ = writeln!(out, "{title}: {}", item.as_ref());
    }
}
