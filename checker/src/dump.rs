//! `nodes/<id>/dump.jsonl`, the output of `faultline-node dump`: one [`DumpRecord`] a line,
//! then a [`DumpSummary`] per partition; other objects are allowed. The node writes it by hand
//! (it depends on no other crate); the harness's contract test parses a real node's output with
//! these types, and the checker reads dumps with them ([`DumpLine::parse`], the `read`
//! module's). It owns the line format only; loading dumps into logs is the `broker_logs` module.

use crate::error::line_problem;
use crate::text::Text;
use serde::{Deserialize, Serialize};

/// One record line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpRecord<S = String> {
    pub topic: S,
    pub partition: u32,
    pub offset: u64,
    /// The epoch of the leader that appended the record.
    pub leader_epoch: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<u64>,
    pub value: S,
}

/// One entry of the broker's leader-epoch checkpoint: `epoch` starts at `start_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochStart {
    pub epoch: u32,
    pub start_offset: u64,
}

/// A summary line: what the broker's log of one partition looked like on disk. The checker
/// uses `high_watermark` to decide below which offset two replicas must agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpSummary<S = String> {
    /// Always `true`: what tells a summary line from a record line.
    pub summary: bool,
    pub topic: S,
    pub partition: u32,
    pub log_end_offset: u64,
    /// The broker's HW checkpoint for the partition; `None` when it has none.
    #[serde(default)]
    pub high_watermark: Option<u64>,
    #[serde(default)]
    pub leader_epochs: Vec<EpochStart>,
    /// Bytes of a torn or corrupt tail that recovery would drop, and why.
    #[serde(default)]
    pub torn_bytes: u64,
    #[serde(default)]
    pub torn_reason: Option<String>,
}

/// One line of a dump, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DumpLine<S = String> {
    Record(DumpRecord<S>),
    Summary(DumpSummary<S>),
    /// A JSON object that is neither (another kind of summary): allowed and skipped.
    Other,
}

/// Every field either kind of line may carry; what a line is follows from which are present.
#[derive(Deserialize)]
struct AnyLine<S> {
    #[serde(default)]
    summary: Option<bool>,
    #[serde(default = "none")]
    topic: Option<S>,
    #[serde(default)]
    partition: Option<u32>,
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default)]
    leader_epoch: Option<u32>,
    #[serde(default)]
    timestamp_ms: Option<u64>,
    #[serde(default = "none")]
    value: Option<S>,
    #[serde(default)]
    log_end_offset: Option<u64>,
    #[serde(default)]
    high_watermark: Option<u64>,
    #[serde(default)]
    leader_epochs: Vec<EpochStart>,
    #[serde(default)]
    torn_bytes: u64,
    #[serde(default)]
    torn_reason: Option<String>,
}

fn none<T>() -> Option<T> {
    None
}

impl<'a> DumpLine<Text<'a>> {
    /// Parses one line with serde, borrowing strings from it: the definition of the format
    /// ([`DumpLine::parse`] is the same with a fast path first). A line that is not JSON, a
    /// record or summary with a field of the wrong type, or a record without its epoch is an
    /// error; an object with other keys is [`DumpLine::Other`].
    pub fn parse_with_serde(bytes: &'a [u8]) -> Result<Self, String> {
        match serde_json::from_slice::<AnyLine<Text<'a>>>(bytes) {
            Ok(line) => line.classify(),
            Err(e) => match serde_json::from_slice::<serde_json::Value>(bytes) {
                // Valid JSON that is not a record (a summary of another shape) is allowed.
                Ok(serde_json::Value::Object(map))
                    if !(map.contains_key("offset") && map.contains_key("value")) =>
                {
                    Ok(DumpLine::Other)
                }
                _ => Err(line_problem(&e)),
            },
        }
    }
}

impl<S> AnyLine<S> {
    fn classify(self) -> Result<DumpLine<S>, String> {
        let (Some(topic), Some(partition)) = (self.topic, self.partition) else {
            return Ok(DumpLine::Other);
        };
        if self.summary == Some(true) {
            let Some(log_end_offset) = self.log_end_offset else {
                return Ok(DumpLine::Other);
            };
            return Ok(DumpLine::Summary(DumpSummary {
                summary: true,
                topic,
                partition,
                log_end_offset,
                high_watermark: self.high_watermark,
                leader_epochs: self.leader_epochs,
                torn_bytes: self.torn_bytes,
                torn_reason: self.torn_reason,
            }));
        }
        let (Some(offset), Some(value)) = (self.offset, self.value) else {
            return Ok(DumpLine::Other);
        };
        let leader_epoch = self
            .leader_epoch
            .ok_or_else(|| format!("the record at offset {offset} has no leader_epoch"))?;
        Ok(DumpLine::Record(DumpRecord {
            topic,
            partition,
            offset,
            leader_epoch,
            timestamp_ms: self.timestamp_ms,
            value,
        }))
    }
}
