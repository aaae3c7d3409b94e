//! One line of `history.jsonl` as the history pass reads it: borrowed from the line's bytes,
//! with the `value` parsed straight into the shape its `f` names (when `f` comes first, as the
//! harness writes it; otherwise in a second step). It owns this parsing only; the model of the
//! history is [`crate::history`].

use crate::history::OpType;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Who performed an operation, borrowed from the line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProcKey {
    Client(u64),
    Named(String),
}

impl fmt::Display for ProcKey {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ProcKey::Client(n) => write!(f, "process {n}"),
            ProcKey::Named(name) => write!(f, "process {name:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for ProcKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ProcKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a process number or name")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<ProcKey, E> {
                Ok(ProcKey::Client(n))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ProcKey, E> {
                Ok(ProcKey::Named(s.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// One history line.
pub struct OpLine<'a> {
    pub index: u64,
    pub time_ns: u64,
    pub process: ProcKey,
    pub kind: OpType,
    pub f: Cow<'a, str>,
    pub value: OpValue<'a>,
    pub error: Option<Cow<'a, str>>,
}

/// The `value` of a line, parsed for `send` and `poll`, kept raw for anything else.
pub enum OpValue<'a> {
    Missing,
    Send(SendLine<'a>),
    Poll(PollLine<'a>),
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

impl<'a> OpLine<'a> {
    /// Parses one line; an `Err` says what is wrong with it.
    pub fn parse(bytes: &'a [u8]) -> Result<OpLine<'a>, String> {
        let mut op: OpLine =
            serde_json::from_slice(bytes).map_err(|e| crate::jsonl::problem(&e))?;
        if let OpValue::Raw(raw) = op.value {
            op.value = match op.f.as_ref() {
                "send" => OpValue::Send(typed(raw, "send")?),
                "poll" => OpValue::Poll(typed(raw, "poll")?),
                _ => OpValue::Raw(raw),
            };
        }
        Ok(op)
    }
}

fn typed<'a, T: Deserialize<'a>>(raw: &'a RawValue, f: &str) -> Result<T, String> {
    serde_json::from_str(raw.get()).map_err(|e| format!("bad {f} value: {e}"))
}

impl<'de> Deserialize<'de> for OpLine<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(OpLineVisitor)
    }
}

struct OpLineVisitor;

impl<'de> Visitor<'de> for OpLineVisitor {
    type Value = OpLine<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a history operation object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<OpLine<'de>, M::Error> {
        let (mut index, mut time_ns, mut process, mut kind, mut f) = (None, None, None, None, None);
        let (mut value, mut error) = (OpValue::Missing, None);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "index" => index = Some(map.next_value()?),
                "time_ns" => time_ns = Some(map.next_value()?),
                "process" => process = Some(map.next_value()?),
                "type" => kind = Some(map.next_value()?),
                "f" => f = Some(map.next_value::<Cow<'de, str>>()?),
                "value" => value = next_op_value(&mut map, f.as_deref())?,
                "error" => error = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(OpLine {
            index: index.ok_or_else(|| de::Error::missing_field("index"))?,
            time_ns: time_ns.ok_or_else(|| de::Error::missing_field("time_ns"))?,
            process: process.ok_or_else(|| de::Error::missing_field("process"))?,
            kind: kind.ok_or_else(|| de::Error::missing_field("type"))?,
            f: f.ok_or_else(|| de::Error::missing_field("f"))?,
            value,
            error,
        })
    }
}

/// Parses `value` in the shape `f` names when `f` is already known.
fn next_op_value<'de, M: MapAccess<'de>>(
    map: &mut M,
    f: Option<&str>,
) -> Result<OpValue<'de>, M::Error> {
    Ok(match f {
        Some("send") => OpValue::Send(map.next_value()?),
        Some("poll") => OpValue::Poll(map.next_value()?),
        _ => match map.next_value::<Option<&'de RawValue>>()? {
            Some(raw) => OpValue::Raw(raw),
            None => OpValue::Missing,
        },
    })
}

#[derive(Deserialize)]
pub struct SendLine<'a> {
    #[serde(borrow)]
    pub topic: Cow<'a, str>,
    pub partition: u32,
    #[serde(borrow)]
    pub value: Cow<'a, str>,
    #[serde(default)]
    pub offset: Option<u64>,
    #[serde(default)]
    pub node: Option<u32>,
    #[serde(default)]
    pub leader_epoch: Option<u32>,
}

#[derive(Deserialize)]
pub struct PollLine<'a> {
    #[serde(borrow)]
    pub topic: Cow<'a, str>,
    pub partition: u32,
    pub offset: u64,
    #[serde(borrow, default)]
    pub records: Vec<PolledLine<'a>>,
}

#[derive(Deserialize)]
pub struct PolledLine<'a> {
    pub offset: u64,
    #[serde(borrow)]
    pub value: Cow<'a, str>,
}
