//! The record batch, the unit of storage, CRC, replication and truncation, as in Kafka
//! (`DefaultRecordBatch`): one produce request's records are one batch, stamped with one leader
//! epoch and one timestamp, and carrying one CRC-32C over everything after it. A batch is
//! written, fetched, appended by a follower and dropped by recovery or truncation whole. This
//! module owns the batch's shape, the [`Record`] a batch is made of (what consumers and `dump`
//! see), and the batch's on-disk frame; where batches go is `log.rs`'s business.
//!
//! ```text
//! frame = len: u32 LE | crc32c(body): u32 LE | body
//! body  = base_offset: u64 LE | last_offset_delta: u32 LE | leader_epoch: u32 LE
//!         | timestamp_ms: u64 LE | producer_id: i64 LE | producer_epoch: i16 LE
//!         | base_sequence: i32 LE | records
//! records = (value_len: u32 LE | value bytes) × (last_offset_delta + 1)
//! ```
//!
//! The producer fields are Kafka's batch header fields of the same names (`DefaultRecordBatch`):
//! an idempotent producer's id, epoch and the first record's sequence; -1, -1, -1 for a batch
//! of no idempotent producer. The producer state (`producer_state.rs`) is rebuilt from them.

use serde::{Deserialize, Serialize};

/// Bytes before the body: its length and its CRC.
pub const FRAME_HEADER_BYTES: usize = 8;
/// The body's fixed part: base offset, last offset delta, leader epoch, timestamp, producer id,
/// producer epoch, base sequence.
pub const BATCH_FIXED_BYTES: usize = 38;
/// Where the producer fields start in the body.
const PRODUCER_AT: usize = 24;
/// The largest value a record may carry; larger values on disk are corruption.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// The largest batch body accepted on disk (a produce request is bounded well below this).
pub const MAX_BATCH_BYTES: usize = 64 << 20;

/// One record, as consumers and the dump see it (a batch's record with its own offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: u64,
    pub leader_epoch: u32,
    pub timestamp_ms: u64,
    pub value: String,
}

/// One record batch. Offsets `base_offset ..= base_offset + last_offset_delta`, all in one
/// leader epoch. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordBatch {
    pub base_offset: u64,
    pub leader_epoch: u32,
    pub timestamp_ms: u64,
    pub values: Vec<String>,
    /// The idempotent producer that wrote it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer: Option<ProducerBatch>,
}

/// An idempotent producer's stamp on a batch: its id and epoch (InitProducerId) and the
/// sequence of the batch's first record; the others follow one by one (Kafka's
/// `RecordBatch.baseSequence` and `lastSequence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl ProducerBatch {
    /// The sequence of the last of `records` records: base + records − 1, wrapping past
    /// `i32::MAX` to 0 as Kafka's `DefaultRecordBatch.incrementSequence` does.
    pub fn last_sequence(&self, records: u32) -> i32 {
        increment_sequence(self.base_sequence, records.saturating_sub(1))
    }
}

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences run 0..=i32::MAX and wrap to 0.
pub fn increment_sequence(sequence: i32, increment: u32) -> i32 {
    let next = i64::from(sequence) + i64::from(increment);
    if next > i64::from(i32::MAX) {
        (next - i64::from(i32::MAX) - 1) as i32
    } else {
        next as i32
    }
}

/// The producer fields of a batch body (Kafka's -1s when no producer stamped it). Only a
/// non-negative producer id and epoch and sequence make a stamp.
fn encode_producer(producer: Option<ProducerBatch>, out: &mut Vec<u8>) {
    let (id, epoch, sequence) = match producer {
        Some(p) => (p.producer_id, p.producer_epoch, p.base_sequence),
        None => (-1, -1, -1),
    };
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
}

fn decode_producer(body: &[u8]) -> Option<ProducerBatch> {
    let at = PRODUCER_AT;
    let id = i64::from_le_bytes(body[at..at + 8].try_into().unwrap());
    let epoch = i16::from_le_bytes(body[at + 8..at + 10].try_into().unwrap());
    let sequence = i32::from_le_bytes(body[at + 10..at + 14].try_into().unwrap());
    (id >= 0 && epoch >= 0 && sequence >= 0).then_some(ProducerBatch {
        producer_id: id,
        producer_epoch: epoch,
        base_sequence: sequence,
    })
}

impl RecordBatch {
    /// Kafka's `lastOffsetDelta`: the last record's offset minus the base offset.
    pub fn last_offset_delta(&self) -> u32 {
        (self.values.len() as u32).saturating_sub(1)
    }

    pub fn last_offset(&self) -> u64 {
        self.base_offset + self.last_offset_delta() as u64
    }

    /// The offset after the batch.
    pub fn next_offset(&self) -> u64 {
        self.base_offset + self.values.len() as u64
    }

    /// The batch's records, each with its own offset.
    pub fn records(&self) -> impl Iterator<Item = Record> + '_ {
        self.values.iter().enumerate().map(|(i, value)| Record {
            offset: self.base_offset + i as u64,
            leader_epoch: self.leader_epoch,
            timestamp_ms: self.timestamp_ms,
            value: value.clone(),
        })
    }

    /// The CRC-32C of the batch's encoded body (what the frame carries).
    pub fn crc(&self) -> u32 {
        let mut frame = Vec::new();
        self.encode(&mut frame);
        u32::from_le_bytes(frame[4..8].try_into().expect("4 bytes"))
    }

    /// Encodes the batch's frame onto `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        assert!(!self.values.is_empty(), "a batch holds at least one record");
        let start = out.len();
        out.extend_from_slice(&[0; FRAME_HEADER_BYTES]);
        out.extend_from_slice(&self.base_offset.to_le_bytes());
        out.extend_from_slice(&self.last_offset_delta().to_le_bytes());
        out.extend_from_slice(&self.leader_epoch.to_le_bytes());
        out.extend_from_slice(&self.timestamp_ms.to_le_bytes());
        encode_producer(self.producer, out);
        for value in &self.values {
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        let body_len = (out.len() - start - FRAME_HEADER_BYTES) as u32;
        let crc = crc32c::crc32c(&out[start + FRAME_HEADER_BYTES..]);
        out[start..start + 4].copy_from_slice(&body_len.to_le_bytes());
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }
}

/// The fixed header of a frame, readable without the rest: enough to index a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub frame_len: usize,
    pub base_offset: u64,
    pub last_offset_delta: u32,
}

/// Bytes needed to read a [`FrameHeader`].
pub const HEADER_PEEK_BYTES: usize = FRAME_HEADER_BYTES + 12;

/// Reads a frame's header. `Ok(None)`: `buf` ends before the header does.
pub fn peek_header(buf: &[u8]) -> Result<Option<FrameHeader>, String> {
    if buf.len() < HEADER_PEEK_BYTES {
        return Ok(None);
    }
    let body_len = u32::from_le_bytes(buf[0..4].try_into().unwrap()) as usize;
    if !(BATCH_FIXED_BYTES + 4..=MAX_BATCH_BYTES).contains(&body_len) {
        return Err(format!("batch length {body_len} out of range"));
    }
    Ok(Some(FrameHeader {
        frame_len: FRAME_HEADER_BYTES + body_len,
        base_offset: u64::from_le_bytes(buf[8..16].try_into().unwrap()),
        last_offset_delta: u32::from_le_bytes(buf[16..20].try_into().unwrap()),
    }))
}

/// What a checked frame holds besides its records: enough to append it, index it and keep the
/// epoch cache, without decoding a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    pub frame_len: usize,
    pub base_offset: u64,
    pub last_offset_delta: u32,
    pub leader_epoch: u32,
    /// The idempotent producer's stamp, if any: a follower's producer state is rebuilt from it
    /// without decoding a record.
    pub producer: Option<ProducerBatch>,
}

impl FrameInfo {
    /// The offset after the batch.
    pub fn next_offset(&self) -> u64 {
        self.base_offset + self.last_offset_delta as u64 + 1
    }

    pub fn last_offset(&self) -> u64 {
        self.base_offset + self.last_offset_delta as u64
    }
}

/// Checks the frame at the start of `buf` (length, CRC, record count, every value's length)
/// without copying a value. A value's UTF-8 is checked where it becomes a string
/// ([`decode`]); a frame that passes here holds the very bytes the producing leader encoded
/// from strings, which is all a follower needs to append it. `Ok(None)`: `buf` ends before the
/// frame does (a torn frame).
pub fn check(buf: &[u8]) -> Result<Option<FrameInfo>, String> {
    let Some(header) = peek_header(buf)? else {
        return Ok(None);
    };
    if buf.len() < header.frame_len {
        return Ok(None);
    }
    let crc = u32::from_le_bytes(buf[4..8].try_into().unwrap());
    let body = &buf[FRAME_HEADER_BYTES..header.frame_len];
    if crc32c::crc32c(body) != crc {
        return Err("CRC mismatch".to_string());
    }
    let count = header.last_offset_delta as usize + 1;
    let found = for_each_value(body, |_| Ok(()))?;
    if found != count {
        return Err(format!(
            "batch holds {found} records where its last offset delta says {count}"
        ));
    }
    Ok(Some(FrameInfo {
        frame_len: header.frame_len,
        base_offset: header.base_offset,
        last_offset_delta: header.last_offset_delta,
        leader_epoch: u32::from_le_bytes(body[12..16].try_into().unwrap()),
        producer: decode_producer(body),
    }))
}

/// Walks the values of a batch body, checking each one's length; returns how many.
fn for_each_value<'a>(
    body: &'a [u8],
    mut each: impl FnMut(&'a [u8]) -> Result<(), String>,
) -> Result<usize, String> {
    let mut pos = BATCH_FIXED_BYTES;
    let mut count = 0;
    while pos < body.len() {
        let len_bytes = body.get(pos..pos + 4).ok_or("record length cut short")?;
        let len = u32::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        if len > MAX_VALUE_BYTES {
            return Err(format!("record value of {len} bytes"));
        }
        each(
            body.get(pos + 4..pos + 4 + len)
                .ok_or("record value cut short")?,
        )?;
        count += 1;
        pos += 4 + len;
    }
    Ok(count)
}

/// Decodes a frame [`check`] has passed (or [`Frames`] holds), checking each value's UTF-8.
fn decode_checked(frame: &[u8], info: &FrameInfo) -> Result<RecordBatch, String> {
    let body = &frame[FRAME_HEADER_BYTES..info.frame_len];
    let mut values = Vec::with_capacity(info.last_offset_delta as usize + 1);
    for_each_value(body, |bytes| {
        let value = std::str::from_utf8(bytes).map_err(|_| "value is not UTF-8".to_string())?;
        values.push(value.to_string());
        Ok(())
    })?;
    Ok(RecordBatch {
        base_offset: info.base_offset,
        leader_epoch: info.leader_epoch,
        timestamp_ms: u64::from_le_bytes(body[16..24].try_into().unwrap()),
        values,
        producer: info.producer,
    })
}

/// Decodes and checks (length, CRC, record count, UTF-8) the frame at the start of `buf`.
/// `Ok(None)`: `buf` ends before the frame does (a torn frame).
pub fn decode(buf: &[u8]) -> Result<Option<(RecordBatch, usize)>, String> {
    match check(buf)? {
        None => Ok(None),
        Some(info) => Ok(Some((decode_checked(buf, &info)?, info.frame_len))),
    }
}

/// Whole batch frames back to back, each checked ([`check`]) when the value was made: what a
/// leader reads from its segments for a follower, sends as they are on disk, and the follower
/// appends as they are, as Kafka moves `MemoryRecords` without decoding a record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frames {
    bytes: bytes::Bytes,
    /// Each frame's start in `bytes`, and what it holds.
    frames: Vec<(usize, FrameInfo)>,
}

impl Frames {
    /// Checks every frame of `bytes`, which must hold whole frames and nothing else, with
    /// consecutive offsets. The error names the first bad frame by its position.
    pub fn parse(bytes: impl Into<bytes::Bytes>) -> Result<Frames, String> {
        let bytes = bytes.into();
        let mut frames: Vec<(usize, FrameInfo)> = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let at = |e: String| format!("frame at byte {pos}: {e}");
            let info = check(&bytes[pos..])
                .map_err(at)?
                .ok_or_else(|| at(format!("cut short ({} bytes left)", bytes.len() - pos)))?;
            if let Some(next) = frames.last().map(|(_, prev)| prev.next_offset()) {
                if info.base_offset != next {
                    return Err(at(format!(
                        "base offset {} does not follow {next}",
                        info.base_offset
                    )));
                }
            }
            frames.push((pos, info));
            pos += info.frame_len;
        }
        Ok(Frames { bytes, frames })
    }

    /// Frames the caller has checked one by one: `frames` holds each one's start in `bytes`,
    /// in order, back to back (the log's read, which checks each against its index).
    pub(super) fn from_checked(bytes: Vec<u8>, frames: Vec<(usize, FrameInfo)>) -> Frames {
        debug_assert!(frames
            .windows(2)
            .all(|w| w[0].0 + w[0].1.frame_len == w[1].0
                && w[0].1.next_offset() == w[1].1.base_offset));
        Frames {
            bytes: bytes.into(),
            frames,
        }
    }

    /// The frames of `batches`, encoded.
    pub fn from_batches(batches: &[RecordBatch]) -> Frames {
        let mut bytes = Vec::new();
        for batch in batches {
            batch.encode(&mut bytes);
        }
        Frames::parse(bytes).expect("encoded batches check")
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// How many batches.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// The frames back to back, as on disk.
    pub fn bytes(&self) -> &bytes::Bytes {
        &self.bytes
    }

    /// Each frame's bytes and what it holds, in offset order.
    pub fn iter(&self) -> impl Iterator<Item = (FrameInfo, &[u8])> + '_ {
        self.frames
            .iter()
            .map(|&(pos, info)| (info, &self.bytes[pos..pos + info.frame_len]))
    }

    /// The batches, decoded (their CRCs were checked when `self` was made; each value's
    /// UTF-8 is checked here). The error names the batch.
    pub fn batches(&self) -> Result<Vec<RecordBatch>, String> {
        self.iter()
            .map(|(info, frame)| {
                decode_checked(frame, &info)
                    .map_err(|e| format!("batch at offset {}: {e}", info.base_offset))
            })
            .collect()
    }

    /// The offset after the last batch, if there is one.
    pub fn next_offset(&self) -> Option<u64> {
        self.frames.last().map(|(_, info)| info.next_offset())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_round_trips_and_a_flipped_bit_fails_its_crc() {
        let batch = RecordBatch {
            base_offset: 40,
            leader_epoch: 3,
            timestamp_ms: 7,
            values: vec!["a".into(), "".into(), "ccc".into()],
            producer: None,
        };
        let mut frame = Vec::new();
        batch.encode(&mut frame);
        assert_eq!(decode(&frame).unwrap(), Some((batch.clone(), frame.len())));
        assert_eq!((batch.last_offset_delta(), batch.last_offset()), (2, 42));
        assert_eq!(
            batch.crc(),
            u32::from_le_bytes(frame[4..8].try_into().unwrap())
        );
        assert_eq!(decode(&frame[..frame.len() - 1]).unwrap(), None, "torn");
        frame[30] ^= 1;
        assert!(decode(&frame).unwrap_err().contains("CRC"));
    }

    fn batch(base_offset: u64, n: usize) -> RecordBatch {
        RecordBatch {
            base_offset,
            leader_epoch: 1,
            timestamp_ms: 7,
            values: (0..n).map(|i| format!("v{i}")).collect(),
            producer: None,
        }
    }

    #[test]
    fn frames_hold_whole_consecutive_checked_batches_only() {
        let batches = [batch(10, 2), batch(12, 3)];
        let frames = Frames::from_batches(&batches);
        assert_eq!((frames.len(), frames.next_offset()), (2, Some(15)));
        assert_eq!(frames.batches().unwrap(), batches);
        let bytes = frames.bytes().to_vec();
        let first_len = frames.iter().next().unwrap().0.frame_len;

        let err = Frames::parse(bytes[..bytes.len() - 3].to_vec()).unwrap_err();
        assert!(
            err.contains(&format!("frame at byte {first_len}: cut short")),
            "{err}"
        );
        let mut flipped = bytes.clone();
        flipped[first_len + 30] ^= 1;
        let err = Frames::parse(flipped).unwrap_err();
        assert!(
            err.contains(&format!("frame at byte {first_len}: CRC")),
            "{err}"
        );
        let mut gap = Vec::new();
        batch(10, 2).encode(&mut gap);
        batch(13, 1).encode(&mut gap);
        assert!(Frames::parse(gap).is_err_and(|e| e.contains("does not follow 12")));
        assert!(Frames::parse(Vec::new()).unwrap().is_empty());
    }

    /// UTF-8 is checked where a value becomes a string: a frame whose CRC matches bytes that are
    /// not UTF-8 (only an encoder bug makes one) passes the follower's check, and is named when
    /// it is decoded for a consumer, the dump or recovery.
    #[test]
    fn a_value_that_is_not_utf8_is_found_where_it_is_decoded() {
        let mut frame = Vec::new();
        batch(5, 1).encode(&mut frame);
        let value_at = FRAME_HEADER_BYTES + BATCH_FIXED_BYTES + 4;
        frame[value_at] = 0xff;
        let crc = crc32c::crc32c(&frame[FRAME_HEADER_BYTES..]);
        frame[4..8].copy_from_slice(&crc.to_le_bytes());
        assert!(check(&frame).unwrap().is_some());
        assert!(decode(&frame).unwrap_err().contains("UTF-8"));
        let err = Frames::parse(frame).unwrap().batches().unwrap_err();
        assert!(
            err.contains("batch at offset 5: value is not UTF-8"),
            "{err}"
        );
    }
}
