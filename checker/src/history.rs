//! The history model: the on-disk contract between the harness (which writes a run) and the
//! checker (which reads it back). It owns the shape of `history.jsonl`, `final.json`, each
//! broker's `dump.jsonl` and the run's `test.json`; docs/history.md documents every field.
//!
//! It does not own the node's `events.jsonl`: that is the node's format, read loosely by
//! [`crate::events`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who performed an operation: a numbered client process, or a named actor such as `"nemesis"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Process {
    Client(u64),
    Named(String),
}

impl Process {
    pub fn nemesis() -> Self {
        Process::Named("nemesis".to_string())
    }
}

/// Jepsen's four operation types: an invocation and its three possible completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The operation was started.
    Invoke,
    /// It definitely happened.
    Ok,
    /// It definitely did not happen.
    Fail,
    /// Unknown: it may or may not have happened (a timeout, a reset connection,
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND). Nemesis events are always `info`.
    Info,
}

/// One line of `history.jsonl`.
///
/// `f` names the function: `send` and `poll` for clients; for the nemesis the fault vocabulary
/// `kill`, `start`, `pause`, `resume`, `delay`, `partition`, `heal` (and `wait` for scheduled
/// waits). `value` depends on `f`: see [`SendValue`], [`PollValue`] and [`FaultValue`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    pub index: u64,
    /// Nanoseconds since the run's start (monotonic clock); `test.json` holds the wall-clock
    /// start time so node events can be placed on the same axis.
    pub time_ns: u64,
    pub process: Process,
    #[serde(rename = "type")]
    pub kind: OpType,
    pub f: String,
    #[serde(default)]
    pub value: Value,
    /// The error code or message of a `fail` or `info` completion (`NOT_ENOUGH_REPLICAS`,
    /// `REQUEST_TIMED_OUT`, `connection refused`, ...). For the nemesis: why an action failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The acks level a send was made with, in Kafka's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Acks {
    #[serde(rename = "0")]
    Zero,
    #[serde(rename = "1")]
    One,
    #[serde(rename = "all")]
    All,
}

impl Acks {
    pub fn as_str(self) -> &'static str {
        match self {
            Acks::Zero => "0",
            Acks::One => "1",
            Acks::All => "all",
        }
    }
}

impl std::str::FromStr for Acks {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "0" => Ok(Acks::Zero),
            "1" => Ok(Acks::One),
            "all" | "-1" => Ok(Acks::All),
            other => Err(format!("acks must be 0, 1 or all (got {other:?})")),
        }
    }
}

/// `value` of a `send`: the invoke carries topic, partition, value and acks; an `ok` completion
/// repeats them and adds the acknowledged `offset` (absent for acks=0, which returns none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendValue {
    pub topic: String,
    pub partition: u32,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acks: Option<Acks>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// On an `ok` completion: the broker that acknowledged the send, and the leader epoch it
    /// appended in (the node's produce answer carries it). Absent for acks=0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_epoch: Option<u32>,
}

/// One record a consumer saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolledRecord {
    pub offset: u64,
    pub value: String,
}

/// `value` of a `poll`: the invoke carries topic, partition and the `offset` it reads from; an
/// `ok` completion adds exactly the records returned and the broker's `high_watermark`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollValue {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    #[serde(default)]
    pub records: Vec<PolledRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_watermark: Option<u64>,
}

/// `value` of a nemesis operation. `node` is a broker id (the controller is `"controller"`);
/// other fields depend on the fault (`delay_ms`, `jitter_ms`, `groups`, `from`, `to`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Value>,
    #[serde(flatten)]
    pub detail: serde_json::Map<String, Value>,
}

/// `final.json`: what a fresh consumer read from every partition after healing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalReads {
    /// True when every partition was read from 0 to its HW. False when any read failed or a
    /// partition had no leader: the checker's verdict is then at best `unknown`.
    pub complete: bool,
    pub partitions: Vec<FinalPartition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalPartition {
    pub topic: String,
    pub partition: u32,
    /// The leader the final read used; `None` when the partition never got one back.
    pub leader: Option<u32>,
    pub leader_epoch: Option<u32>,
    pub high_watermark: Option<u64>,
    pub isr: Vec<u32>,
    pub records: Vec<FinalRecord>,
    /// Why the read is incomplete, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalRecord {
    pub offset: u64,
    pub value: String,
    #[serde(default)]
    pub leader_epoch: u32,
}

/// One record line of `nodes/<id>/dump.jsonl` (`faultline-node dump`). Lines with other keys
/// (the dump's summary lines) are not records and are skipped by readers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpRecord {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub leader_epoch: u32,
    pub value: String,
}

/// `test.json`: the whole configuration of a run, written first so the run can be re-checked
/// or replayed. The checker derives the run's guarantee from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestConfig {
    pub name: String,
    pub seed: u64,
    /// Wall-clock time (Unix milliseconds) at which `time_ns` = 0.
    pub start_unix_ms: u64,
    pub nodes: u32,
    pub topics: Vec<String>,
    pub partitions: u32,
    pub replication_factor: u32,
    pub acks: Acks,
    pub min_insync_replicas: u32,
    pub unclean_leader_election: bool,
    pub replica_lag_time_max_ms: u64,
    /// `current` or `legacy-hw`.
    pub replication_protocol: String,
    pub workload: String,
    pub nemesis: Vec<String>,
    pub nemesis_interval_ms: u64,
    pub max_faulty: u32,
    pub time_limit_ms: u64,
    pub rate: f64,
    pub concurrency: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Everything else the harness knows (node binary, ports, settings not listed above).
    #[serde(default)]
    pub extra: serde_json::Map<String, Value>,
}

/// `extra` key: the brokers' data dirs were lazy mounts, so power-loss faults could run.
pub const EXTRA_LAZYFS: &str = "lazyfs";
/// `extra` key: the flags every broker got (`--fsync` makes each append durable).
pub const EXTRA_NODE_ARGS: &str = "node_args";

impl TestConfig {
    /// Whether a power loss could drop acknowledged records: the data dirs were lazy mounts
    /// and the brokers did not fsync each append.
    pub fn power_loss_unsynced(&self) -> bool {
        let lazyfs = self.extra.get(EXTRA_LAZYFS).and_then(Value::as_bool) == Some(true);
        let fsync = self
            .extra
            .get(EXTRA_NODE_ARGS)
            .and_then(Value::as_array)
            .is_some_and(|args| args.iter().any(|a| a.as_str() == Some("--fsync")));
        lazyfs && !fsync
    }
}

/// A summary line of `nodes/<id>/dump.jsonl`: what the broker's log of one partition looked
/// like on disk. Optional; the checker uses `high_watermark` to decide below which offset two
/// replicas must agree. Other keys are allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpSummary {
    /// Always `true`: what tells a summary line from a record line.
    pub summary: bool,
    pub topic: String,
    pub partition: u32,
    pub log_end_offset: u64,
    /// The broker's HW checkpoint for the partition.
    pub high_watermark: u64,
}
