//! The fast path for reading the run's two big line formats, history lines and dump record
//! lines, as their writers print them: compact JSON, strings without escapes, unsigned
//! integers, known keys in any order. Such a line is read here straight into the format's own
//! types ([`OpLine`], [`DumpRecord`]), several times faster than through serde. Anything else —
//! whitespace, an escape, a float, `null`, an unknown or repeated key, a nemesis value, a
//! summary line, damage — makes it answer `None`, and its one caller, the `read` module, parses
//! the line with serde, which stays the definition of the format. So the fast path only has to
//! be right about what it accepts; the tests check that it agrees with serde wherever it
//! answers.
//!
//! It owns this parsing only; the formats are [`crate::history`] and [`crate::dump`], which
//! know nothing of it.

use crate::dump::DumpRecord;
use crate::history::{Acks, OpLine, OpType, OpValue, PollValue, PolledRecord, Process, SendValue};
use crate::text::Text;
use std::borrow::Cow;

/// A position in one line.
struct Cursor<'a> {
    /// The line, validated as UTF-8 once as a whole (cheaper than string by string).
    line: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Option<Self> {
        let line = std::str::from_utf8(bytes).ok()?;
        Some(Cursor { line, bytes, at: 0 })
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn byte(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.at += 1)
    }

    /// Steps over `lit` when the line continues with it.
    fn lit(&mut self, lit: &[u8]) -> Option<()> {
        self.bytes[self.at..]
            .starts_with(lit)
            .then(|| self.at += lit.len())
    }

    fn done(&self) -> Option<()> {
        (self.at == self.bytes.len()).then_some(())
    }

    /// A string without escapes or control characters, borrowed.
    fn str(&mut self) -> Option<&'a str> {
        self.byte(b'"')?;
        let rest = &self.bytes[self.at..];
        let len = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest[len] != b'"' {
            return None;
        }
        // Both ends are ASCII quotes, so they are character boundaries.
        let s = self.line.get(self.at..self.at + len)?;
        self.at += len + 1;
        Some(s)
    }

    fn text(&mut self) -> Option<Text<'a>> {
        self.str().map(|s| Text(Cow::Borrowed(s)))
    }

    /// An unsigned integer as JSON writes it (no sign, no leading zero, no fraction or
    /// exponent), that fits in a u64.
    fn u64(&mut self) -> Option<u64> {
        let rest = &self.bytes[self.at..];
        let len = rest
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(rest.len());
        if len == 0 || (len > 1 && rest[0] == b'0') || len > 20 {
            return None;
        }
        if matches!(rest.get(len), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let mut n: u64 = 0;
        for &d in &rest[..len] {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        self.at += len;
        Some(n)
    }

    fn u32(&mut self) -> Option<u32> {
        u32::try_from(self.u64()?).ok()
    }

    /// A signed field written without a sign (producer ids, epochs and sequences are never
    /// negative when the harness writes them; a negative one is left to serde).
    fn i64(&mut self) -> Option<i64> {
        i64::try_from(self.u64()?).ok()
    }

    fn i32(&mut self) -> Option<i32> {
        i32::try_from(self.u64()?).ok()
    }

    fn i16(&mut self) -> Option<i16> {
        i16::try_from(self.u64()?).ok()
    }

    /// Reads `{`, then calls `field(self, key)` for each key (the cursor on its value), until
    /// `}`. A key seen twice gives up: serde would keep the last, the fast path does not guess.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.byte(b'{')?;
        if self.byte(b'}').is_some() {
            return Some(());
        }
        let mut seen: [&str; 16] = [""; 16];
        for n in 0.. {
            let key = self.str()?;
            if n >= seen.len() || seen[..n].contains(&key) {
                return None;
            }
            seen[n] = key;
            self.byte(b':')?;
            field(self, key)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
        None
    }
}

/// A history line, when it is a client `send` or `poll` in the canonical form.
pub fn op_line(bytes: &[u8]) -> Option<OpLine<'_>> {
    let mut c = Cursor::new(bytes)?;
    ordered_op_line(&mut c).or_else(|| {
        c.at = 0;
        any_order_op_line(&mut c)
    })
}

/// A line with its keys in the order the harness writes them (`Op`'s field order), checked
/// with literal comparisons: the common case, and the cheapest.
fn ordered_op_line<'a>(c: &mut Cursor<'a>) -> Option<OpLine<'a>> {
    c.lit(b"{\"index\":")?;
    let index = c.u64()?;
    c.lit(b",\"time_ns\":")?;
    let time_ns = c.u64()?;
    c.lit(b",\"process\":")?;
    let process = process_of(c)?;
    c.lit(b",\"type\":")?;
    let kind = op_type(c.str()?)?;
    c.lit(b",\"f\":")?;
    let f = c.str()?;
    c.lit(b",\"value\":")?;
    let start = c.at;
    let value = match f {
        "send" => OpValue::Send(ordered_send_value(c).or_else(|| {
            c.at = start;
            send_value(c)
        })?),
        "poll" => OpValue::Poll(ordered_poll_value(c).or_else(|| {
            c.at = start;
            poll_value(c)
        })?),
        _ => return None,
    };
    let error = match c.lit(b",\"error\":") {
        Some(()) => Some(c.text()?),
        None => None,
    };
    c.byte(b'}')?;
    c.done()?;
    Some(OpLine {
        index,
        time_ns,
        process,
        kind,
        f: Text(Cow::Borrowed(f)),
        value,
        error,
    })
}

/// A send value with its keys in `SendValue`'s field order.
fn ordered_send_value<'a>(c: &mut Cursor<'a>) -> Option<SendValue<Text<'a>>> {
    c.lit(b"{\"topic\":")?;
    let topic = c.text()?;
    c.lit(b",\"partition\":")?;
    let partition = c.u32()?;
    c.lit(b",\"value\":")?;
    let value = c.text()?;
    let mut v = SendValue::new(topic, partition, value, None);
    if c.lit(b",\"acks\":").is_some() {
        v.acks = Some(acks_of(c.str()?)?);
    }
    if c.lit(b",\"offset\":").is_some() {
        v.offset = Some(c.u64()?);
    }
    if c.lit(b",\"node\":").is_some() {
        v.node = Some(c.u32()?);
    }
    if c.lit(b",\"leader_epoch\":").is_some() {
        v.leader_epoch = Some(c.u32()?);
    }
    if c.lit(b",\"attempts\":").is_some() {
        v.attempts = Some(c.u32()?);
    }
    // `retry_errors` (rare: only retried sends) is left to serde.
    if c.lit(b",\"producer_id\":").is_some() {
        v.producer_id = Some(c.i64()?);
    }
    if c.lit(b",\"producer_epoch\":").is_some() {
        v.producer_epoch = Some(c.i16()?);
    }
    if c.lit(b",\"sequence\":").is_some() {
        v.sequence = Some(c.i32()?);
    }
    c.byte(b'}')?;
    Some(v)
}

/// A poll value with its keys in `PollValue`'s field order.
fn ordered_poll_value<'a>(c: &mut Cursor<'a>) -> Option<PollValue<Text<'a>>> {
    c.lit(b"{\"topic\":")?;
    let topic = c.text()?;
    c.lit(b",\"partition\":")?;
    let partition = c.u32()?;
    c.lit(b",\"offset\":")?;
    let offset = c.u64()?;
    let mut records = Vec::new();
    if c.lit(b",\"records\":[").is_some() && c.byte(b']').is_none() {
        loop {
            c.lit(b"{\"offset\":")?;
            let offset = c.u64()?;
            c.lit(b",\"value\":")?;
            let value = c.text()?;
            c.byte(b'}')?;
            records.push(PolledRecord { offset, value });
            if c.byte(b',').is_none() {
                c.byte(b']')?;
                break;
            }
        }
    }
    let high_watermark = match c.lit(b",\"high_watermark\":") {
        Some(()) => Some(c.u64()?),
        None => None,
    };
    c.byte(b'}')?;
    Some(PollValue {
        topic,
        partition,
        offset,
        records,
        high_watermark,
    })
}

fn acks_of(s: &str) -> Option<Acks> {
    Some(match s {
        "0" => Acks::Zero,
        "1" => Acks::One,
        "all" => Acks::All,
        _ => return None,
    })
}

/// A line with known keys in any order.
fn any_order_op_line<'a>(c: &mut Cursor<'a>) -> Option<OpLine<'a>> {
    let (mut index, mut time_ns, mut process, mut kind) = (None, None, None, None);
    let (mut f, mut value, mut error) = (None::<&str>, None, None);
    c.object(|c, key| {
        match key {
            "index" => index = Some(c.u64()?),
            "time_ns" => time_ns = Some(c.u64()?),
            "process" => process = Some(process_of(c)?),
            "type" => kind = Some(op_type(c.str()?)?),
            "f" => f = Some(c.str()?),
            "value" => {
                value = Some(match f? {
                    "send" => OpValue::Send(send_value(c)?),
                    "poll" => OpValue::Poll(poll_value(c)?),
                    _ => return None,
                })
            }
            "error" => error = Some(c.text()?),
            _ => return None,
        }
        Some(())
    })?;
    c.done()?;
    Some(OpLine {
        index: index?,
        time_ns: time_ns?,
        process: process?,
        kind: kind?,
        f: Text(Cow::Borrowed(f?)),
        value: value?,
        error,
    })
}

fn process_of(c: &mut Cursor) -> Option<Process> {
    match c.peek()? {
        b'"' => Some(Process::Named(c.str()?.to_string())),
        _ => Some(Process::Client(c.u64()?)),
    }
}

fn op_type(s: &str) -> Option<OpType> {
    Some(match s {
        "invoke" => OpType::Invoke,
        "ok" => OpType::Ok,
        "fail" => OpType::Fail,
        "info" => OpType::Info,
        _ => return None,
    })
}

fn send_value<'a>(c: &mut Cursor<'a>) -> Option<SendValue<Text<'a>>> {
    let (mut topic, mut partition, mut value) = (None, None, None);
    let mut v = SendValue::new(Text::default(), 0, Text::default(), None);
    c.object(|c, key| {
        match key {
            "topic" => topic = Some(c.text()?),
            "partition" => partition = Some(c.u32()?),
            "value" => value = Some(c.text()?),
            "acks" => v.acks = Some(acks_of(c.str()?)?),
            "offset" => v.offset = Some(c.u64()?),
            "node" => v.node = Some(c.u32()?),
            "leader_epoch" => v.leader_epoch = Some(c.u32()?),
            "attempts" => v.attempts = Some(c.u32()?),
            "producer_id" => v.producer_id = Some(c.i64()?),
            "producer_epoch" => v.producer_epoch = Some(c.i16()?),
            "sequence" => v.sequence = Some(c.i32()?),
            _ => return None,
        }
        Some(())
    })?;
    v.topic = topic?;
    v.partition = partition?;
    v.value = value?;
    Some(v)
}

fn poll_value<'a>(c: &mut Cursor<'a>) -> Option<PollValue<Text<'a>>> {
    let (mut topic, mut partition, mut offset) = (None, None, None);
    let (mut records, mut high_watermark) = (Vec::new(), None);
    c.object(|c, key| {
        match key {
            "topic" => topic = Some(c.text()?),
            "partition" => partition = Some(c.u32()?),
            "offset" => offset = Some(c.u64()?),
            "records" => records = polled_records(c)?,
            "high_watermark" => high_watermark = Some(c.u64()?),
            _ => return None,
        }
        Some(())
    })?;
    Some(PollValue {
        topic: topic?,
        partition: partition?,
        offset: offset?,
        records,
        high_watermark,
    })
}

fn polled_records<'a>(c: &mut Cursor<'a>) -> Option<Vec<PolledRecord<Text<'a>>>> {
    let mut records = Vec::new();
    c.byte(b'[')?;
    if c.byte(b']').is_some() {
        return Some(records);
    }
    loop {
        let (mut offset, mut value) = (None, None);
        c.object(|c, key| {
            match key {
                "offset" => offset = Some(c.u64()?),
                "value" => value = Some(c.text()?),
                _ => return None,
            }
            Some(())
        })?;
        records.push(PolledRecord {
            offset: offset?,
            value: value?,
        });
        match c.peek()? {
            b',' => c.at += 1,
            b']' => {
                c.at += 1;
                return Some(records);
            }
            _ => return None,
        }
    }
}

/// A dump line, when it is a record in the canonical form (summary lines go through serde).
pub fn dump_record(bytes: &[u8]) -> Option<DumpRecord<Text<'_>>> {
    let mut c = Cursor::new(bytes)?;
    let (mut topic, mut partition, mut offset) = (None, None, None);
    let (mut leader_epoch, mut timestamp_ms, mut value) = (None, None, None);
    c.object(|c, key| {
        match key {
            "topic" => topic = Some(c.text()?),
            "partition" => partition = Some(c.u32()?),
            "offset" => offset = Some(c.u64()?),
            "leader_epoch" => leader_epoch = Some(c.u32()?),
            "timestamp_ms" => timestamp_ms = Some(c.u64()?),
            "value" => value = Some(c.text()?),
            _ => return None,
        }
        Some(())
    })?;
    c.done()?;
    Some(DumpRecord {
        topic: topic?,
        partition: partition?,
        offset: offset?,
        leader_epoch: leader_epoch?,
        timestamp_ms,
        value: value?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::DumpLine;

    /// The serde reading of a history line, for comparison.
    fn slow(line: &str) -> Option<String> {
        let op: OpLine = serde_json::from_str(line).ok()?;
        Some(format!("{op:?}"))
    }

    fn fast(line: &str) -> Option<String> {
        op_line(line.as_bytes()).map(|op| format!("{op:?}"))
    }

    #[test]
    fn canonical_history_lines_read_as_serde_reads_them() {
        let lines = [
            r#"{"index":0,"time_ns":1200,"process":3,"type":"invoke","f":"send","value":{"topic":"t","partition":0,"value":"17","acks":"all"}}"#,
            r#"{"index":1,"time_ns":9800,"process":3,"type":"ok","f":"send","value":{"topic":"t","partition":0,"value":"17","acks":"all","offset":42,"node":1,"leader_epoch":3}}"#,
            r#"{"index":2,"time_ns":9900,"process":3,"type":"info","f":"send","value":{"topic":"t","partition":0,"value":"18","acks":"1"},"error":"REQUEST_TIMED_OUT"}"#,
            r#"{"index":3,"time_ns":1,"process":7,"type":"ok","f":"poll","value":{"topic":"t","partition":2,"offset":0,"records":[{"offset":0,"value":"a"},{"value":"b","offset":1}],"high_watermark":2}}"#,
            r#"{"index":4,"time_ns":1,"process":7,"type":"invoke","f":"poll","value":{"topic":"t","partition":2,"offset":0,"records":[]}}"#,
            r#"{"f":"send","value":{"partition":0,"topic":"t","value":"é"},"type":"fail","process":"p","time_ns":0,"index":18446744073709551615}"#,
            r#"{"index":5,"time_ns":9,"process":3,"type":"invoke","f":"send","value":{"topic":"t","partition":0,"value":"19","acks":"all","producer_id":4294967296001,"producer_epoch":0,"sequence":7}}"#,
            r#"{"index":6,"time_ns":9,"process":3,"type":"ok","f":"send","value":{"topic":"t","partition":0,"value":"19","acks":"all","offset":43,"node":1,"leader_epoch":3,"attempts":1,"producer_id":4294967296001,"producer_epoch":0,"sequence":7}}"#,
            r#"{"index":7,"time_ns":9,"process":3,"type":"info","f":"send","value":{"sequence":2,"attempts":4,"producer_epoch":1,"producer_id":9,"topic":"t","partition":0,"value":"20"},"error":"timeout"}"#,
        ];
        for line in lines {
            assert!(fast(line).is_some(), "the fast path reads {line}");
            assert_eq!(fast(line), slow(line), "{line}");
        }
    }

    #[test]
    fn anything_else_is_left_to_serde() {
        let lines = [
            // Whitespace, escapes, floats, leading zeros, null, overflow, repeats, unknowns.
            r#"{"index": 0,"time_ns":1,"process":3,"type":"ok","f":"send","value":{"topic":"t","partition":0,"value":"1"}}"#,
            r#"{"index":0,"time_ns":1,"process":3,"type":"ok","f":"send","value":{"topic":"t","partition":0,"value":"a\"b"}}"#,
            r#"{"index":0.5,"time_ns":1,"process":3,"type":"ok","f":"send","value":{"topic":"t","partition":0,"value":"1"}}"#,
            r#"{"index":01,"time_ns":1,"process":3,"type":"ok","f":"send","value":{"topic":"t","partition":0,"value":"1"}}"#,
            r#"{"index":0,"time_ns":1,"process":3,"type":"ok","f":"send","value":{"topic":"t","partition":0,"value":"1","offset":null}}"#,
            r#"{"index":0,"time_ns":1,"process":3,"type":"ok","f":"send","value":{"topic":"t","partition":4294967296,"value":"1"}}"#,
            r#"{"index":0,"index":1,"time_ns":1,"process":3,"type":"ok","f":"send","value":{"topic":"t","partition":0,"value":"1"}}"#,
            r#"{"index":0,"time_ns":1,"process":3,"type":"ok","f":"send","value":{"topic":"t","partition":0,"value":"1","x":1}}"#,
            r#"{"index":0,"time_ns":1,"process":"nemesis","type":"info","f":"kill","value":{"node":2}}"#,
            r#"{"index":0,"time_ns":1,"process":3,"type":"ok","value":{"topic":"t","partition":0,"value":"1"},"f":"send"}"#,
            r#"{"index":0,"time_ns":1,"process":3,"type":"ok","f":"send","value":{"topic":"t","partition":0,"value":"1"}} "#,
            r#"{"index":0,"time_ns":1,"process":3,"type":"ok","f":"send","value":{"topic":"t","partition":0}}"#,
            r#"{"index":0,"time_ns":1,"process":3,"type":"weird","f":"send","value":{"topic":"t","partition":0,"value":"1"}}"#,
            r#"{"index":0,"time_ns":1,"process":3,"type":"ok","f":"send","value":{"topic":"t","partition":0,"value":"1"}"#,
            // Retry errors, and signed fields with a sign, are serde's.
            r#"{"index":0,"time_ns":1,"process":3,"type":"ok","f":"send","value":{"topic":"t","partition":0,"value":"1","offset":3,"attempts":2,"retry_errors":["timeout"]}}"#,
            r#"{"index":0,"time_ns":1,"process":3,"type":"ok","f":"send","value":{"topic":"t","partition":0,"value":"1","producer_id":-1}}"#,
            r#"{"index":0,"time_ns":1,"process":3,"type":"ok","f":"send","value":{"topic":"t","partition":0,"value":"1","producer_epoch":32768}}"#,
        ];
        for line in lines {
            assert_eq!(fast(line), None, "{line}");
        }
    }

    #[test]
    fn canonical_dump_records_read_as_serde_reads_them() {
        let lines = [
            r#"{"topic":"t","partition":0,"offset":0,"leader_epoch":0,"value":"17"}"#,
            r#"{"leader_epoch":3,"offset":9,"partition":1,"timestamp_ms":1763700000123,"topic":"t","value":"x y"}"#,
        ];
        for line in lines {
            let fast = dump_record(line.as_bytes()).map(DumpLine::Record);
            let slow = DumpLine::parse_with_serde(line.as_bytes()).ok();
            assert!(fast.is_some(), "{line}");
            assert_eq!(fast, slow, "{line}");
        }
        for line in [
            r#"{"summary":true,"topic":"t","partition":0,"log_end_offset":1,"high_watermark":1}"#,
            r#"{"topic":"t","partition":0,"offset":0,"value":"17"}"#,
            r#"{"topic":"t","partition":0,"offset":0,"leader_epoch":0,"value":"1\u0032"}"#,
        ] {
            assert_eq!(dump_record(line.as_bytes()), None, "{line}");
        }
    }
}
