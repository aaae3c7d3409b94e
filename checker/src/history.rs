//! `history.jsonl`: the operations of a run, one [`Op`] a line — client sends and polls, nemesis
//! faults, the harness's abort marker. The harness writes `Op<String, Value>` lines (with
//! [`SendValue`], [`PollValue`] and [`FaultValue`] as values); the checker reads the same types
//! as [`OpLine`], borrowed from the line's bytes, with the `value` parsed straight into the
//! shape its `f` names. docs/history.md documents every field. It owns this file's shape and
//! its serde reading, which defines the format; [`OpLine::parse`], the reader that tries a fast
//! path first, is the `read` module's. The other files of a run are owned by [`crate::config`]
//! (test.json), [`crate::final_reads`] (final.json), [`crate::dump`] (dump.jsonl) and
//! [`crate::events`] (the nodes' events.jsonl).

use crate::text::Text;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use std::fmt;
use std::marker::PhantomData;

/// The file's name inside a run directory.
pub const HISTORY_FILE: &str = "history.jsonl";

/// Who performed an operation: a numbered client process, or a named actor such as `"nemesis"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum Process {
    Client(u64),
    Named(String),
}

impl Process {
    pub fn nemesis() -> Self {
        Process::Named("nemesis".to_string())
    }

    pub fn is_nemesis(&self) -> bool {
        matches!(self, Process::Named(name) if name == "nemesis")
    }
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Process::Client(n) => write!(f, "process {n}"),
            Process::Named(name) => write!(f, "process {name:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Process;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a process number or name")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Process, E> {
                Ok(Process::Client(n))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Process, E> {
                Ok(Process::Named(s.to_string()))
            }
        }
        d.deserialize_any(V)
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
/// waits); `abort` for the harness. `value` depends on `f`: see [`SendValue`], [`PollValue`]
/// and [`FaultValue`]. Writers use the defaults (`String`, a JSON value); the checker reads
/// [`OpLine`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Op<S = String, V = Value> {
    pub index: u64,
    /// Nanoseconds since the run's start (monotonic clock); `test.json` holds the wall-clock
    /// start time so node events can be placed on the same axis.
    pub time_ns: u64,
    pub process: Process,
    #[serde(rename = "type")]
    pub kind: OpType,
    pub f: S,
    pub value: V,
    /// The error code or message of a `fail` or `info` completion (`NOT_ENOUGH_REPLICAS`,
    /// `REQUEST_TIMED_OUT`, `connection refused`, ...). For the nemesis: why an action failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<S>,
}

/// A history line as the checker reads it: strings borrowed from the line, the value typed.
pub type OpLine<'a> = Op<Text<'a>, OpValue<'a>>;

/// The `value` of a line, parsed for `send` and `poll`, kept raw for anything else (a nemesis
/// value is parsed as a [`FaultValue`] by who needs it).
#[derive(Debug)]
pub enum OpValue<'a> {
    Missing,
    Send(SendValue<Text<'a>>),
    Poll(PollValue<Text<'a>>),
    Raw(&'a RawValue),
}

impl OpValue<'_> {
    pub fn raw(&self) -> Option<&str> {
        match self {
            OpValue::Raw(raw) => Some(raw.get()),
            _ => None,
        }
    }
}

/// How an [`Op`]'s `value` is read: a plain JSON value, or typed by `f`.
pub trait OpBody<'de>: Sized {
    /// The value of a line without one.
    fn missing() -> Self;
    /// Reads the value; `f` is known when it came earlier in the line.
    fn next<M: MapAccess<'de>>(map: &mut M, f: Option<&str>) -> Result<Self, M::Error>;
    /// Types a value read before `f` was known.
    fn typed(self, f: &str) -> Result<Self, String>;
}

impl<'de> OpBody<'de> for Value {
    fn missing() -> Self {
        Value::Null
    }
    fn next<M: MapAccess<'de>>(map: &mut M, _: Option<&str>) -> Result<Self, M::Error> {
        map.next_value()
    }
    fn typed(self, _: &str) -> Result<Self, String> {
        Ok(self)
    }
}

impl<'de> OpBody<'de> for OpValue<'de> {
    fn missing() -> Self {
        OpValue::Missing
    }

    fn next<M: MapAccess<'de>>(map: &mut M, f: Option<&str>) -> Result<Self, M::Error> {
        Ok(match f {
            Some("send") => OpValue::Send(map.next_value()?),
            Some("poll") => OpValue::Poll(map.next_value()?),
            _ => match map.next_value::<Option<&'de RawValue>>()? {
                Some(raw) => OpValue::Raw(raw),
                None => OpValue::Missing,
            },
        })
    }

    fn typed(self, f: &str) -> Result<Self, String> {
        let OpValue::Raw(raw) = self else {
            return Ok(self);
        };
        let bad = |e: serde_json::Error| format!("bad {f} value: {e}");
        Ok(match f {
            "send" => OpValue::Send(serde_json::from_str(raw.get()).map_err(bad)?),
            "poll" => OpValue::Poll(serde_json::from_str(raw.get()).map_err(bad)?),
            _ => OpValue::Raw(raw),
        })
    }
}

impl<'de, S, V> Deserialize<'de> for Op<S, V>
where
    S: Deserialize<'de> + AsRef<str>,
    V: OpBody<'de>,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(OpVisitor(PhantomData))
    }
}

struct OpVisitor<S, V>(PhantomData<(S, V)>);

impl<'de, S, V> Visitor<'de> for OpVisitor<S, V>
where
    S: Deserialize<'de> + AsRef<str>,
    V: OpBody<'de>,
{
    type Value = Op<S, V>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a history operation object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Op<S, V>, M::Error> {
        let (mut index, mut time_ns, mut process, mut kind) = (None, None, None, None);
        let (mut f, mut value, mut error) = (None::<S>, None, None);
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match key.as_ref() {
                "index" => index = Some(map.next_value()?),
                "time_ns" => time_ns = Some(map.next_value()?),
                "process" => process = Some(map.next_value()?),
                "type" => kind = Some(map.next_value()?),
                "f" => f = Some(map.next_value()?),
                "value" => value = Some(V::next(&mut map, f.as_ref().map(AsRef::as_ref))?),
                "error" => error = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let f = f.ok_or_else(|| de::Error::missing_field("f"))?;
        let value = value
            .unwrap_or_else(V::missing)
            .typed(f.as_ref())
            .map_err(de::Error::custom)?;
        Ok(Op {
            index: index.ok_or_else(|| de::Error::missing_field("index"))?,
            time_ns: time_ns.ok_or_else(|| de::Error::missing_field("time_ns"))?,
            process: process.ok_or_else(|| de::Error::missing_field("process"))?,
            kind: kind.ok_or_else(|| de::Error::missing_field("type"))?,
            f,
            value,
            error,
        })
    }
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

/// `value` of a `send`: the invoke carries topic, partition, value and acks (and, with
/// idempotence, the producer id, epoch and sequence); a completion repeats them and adds how
/// many `attempts` the send took, and an `ok` completion the acknowledged `offset` (absent for
/// acks=0, which returns none). One invoke and one completion per send, however many attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendValue<S = String> {
    pub topic: S,
    pub partition: u32,
    pub value: S,
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
    /// On a completion: how many attempts the send took (the producer retries a send whose
    /// attempt failed retriably, with the same value). Histories written before producers
    /// retried have none: one attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// On a completion: the error of each attempt that was retried, in order (the last
    /// attempt's error, when it failed, is the operation's `error`).
    #[serde(default = "Vec::new", skip_serializing_if = "Vec::is_empty")]
    pub retry_errors: Vec<S>,
    /// With idempotence (`--idempotence`): the producer id and epoch the broker gave the
    /// producer, and the sequence number of this send's record on its partition. Every attempt
    /// of one send carries the same three.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_epoch: Option<i16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i32>,
}

impl<S> SendValue<S> {
    /// A send to `partition` of `topic` with no outcome yet: what an invoke carries.
    pub fn new(topic: S, partition: u32, value: S, acks: Option<Acks>) -> Self {
        SendValue {
            topic,
            partition,
            value,
            acks,
            offset: None,
            node: None,
            leader_epoch: None,
            attempts: None,
            retry_errors: Vec::new(),
            producer_id: None,
            producer_epoch: None,
            sequence: None,
        }
    }

    /// How many attempts the send took: one when the history does not say (written before
    /// producers retried).
    pub fn attempt_count(&self) -> u32 {
        self.attempts.unwrap_or(1)
    }
}

/// One record a consumer saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolledRecord<S = String> {
    pub offset: u64,
    pub value: S,
}

/// `value` of a `poll`: the invoke carries topic, partition and the `offset` it reads from; an
/// `ok` completion adds exactly the records returned and the broker's `high_watermark`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollValue<S = String> {
    pub topic: S,
    pub partition: u32,
    pub offset: u64,
    #[serde(default = "Vec::new")]
    pub records: Vec<PolledRecord<S>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_watermark: Option<u64>,
}

/// `value` of a nemesis operation. `node` is a broker id or `"controller"`; other fields depend
/// on the fault (`signal`, `links`, `delay_ms`, `jitter_ms`, `kind`, `groups`, ...) and belong
/// to the harness's fault vocabulary. A `heal` names no node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeRef>,
    #[serde(flatten)]
    pub detail: serde_json::Map<String, Value>,
}

/// A node as the history names it: a broker id, or a named node such as `"controller"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NodeRef {
    Broker(u32),
    Named(String),
}
