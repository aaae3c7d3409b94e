//! The record batch, the unit of storage, CRC, replication and truncation, as in Kafka
//! (`DefaultRecordBatch`): one produce request's records are one batch, stamped with one leader
//! epoch and one timestamp, and carrying one CRC-32C over everything after it. A batch is
//! written, fetched, appended by a follower and dropped by recovery or truncation whole. This
//! module owns the batch's shape and its on-disk frame; where batches go is `log.rs`'s business.
//!
//! ```text
//! frame = len: u32 LE | crc32c(body): u32 LE | body
//! body  = base_offset: u64 LE | last_offset_delta: u32 LE | leader_epoch: u32 LE
//!         | timestamp_ms: u64 LE | records
//! records = (value_len: u32 LE | value bytes) × (last_offset_delta + 1)
//! ```

use serde::{Deserialize, Serialize};

use super::log::Record;

/// Bytes before the body: its length and its CRC.
pub const FRAME_HEADER_BYTES: usize = 8;
/// The body's fixed part: base offset, last offset delta, leader epoch, timestamp.
pub const BATCH_FIXED_BYTES: usize = 24;
/// The largest value a record may carry; larger values on disk are corruption.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// The largest batch body accepted on disk (a produce request is bounded well below this).
pub const MAX_BATCH_BYTES: usize = 64 << 20;

/// One record batch. Offsets `base_offset ..= base_offset + last_offset_delta`, all in one
/// leader epoch. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordBatch {
    pub base_offset: u64,
    pub leader_epoch: u32,
    pub timestamp_ms: u64,
    pub values: Vec<String>,
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

/// Decodes and checks (length, CRC, record count, UTF-8) the frame at the start of `buf`.
/// `Ok(None)`: `buf` ends before the frame does (a torn frame).
pub fn decode(buf: &[u8]) -> Result<Option<(RecordBatch, usize)>, String> {
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
    let leader_epoch = u32::from_le_bytes(body[12..16].try_into().unwrap());
    let timestamp_ms = u64::from_le_bytes(body[16..24].try_into().unwrap());
    let count = header.last_offset_delta as usize + 1;
    let mut values = Vec::with_capacity(count.min(body.len() / 4));
    let mut pos = BATCH_FIXED_BYTES;
    while pos < body.len() {
        let len_bytes = body.get(pos..pos + 4).ok_or("record length cut short")?;
        let len = u32::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        if len > MAX_VALUE_BYTES {
            return Err(format!("record value of {len} bytes"));
        }
        let bytes = body
            .get(pos + 4..pos + 4 + len)
            .ok_or("record value cut short")?;
        let value = std::str::from_utf8(bytes).map_err(|_| "value is not UTF-8".to_string())?;
        values.push(value.to_string());
        pos += 4 + len;
    }
    if values.len() != count {
        return Err(format!(
            "batch holds {} records where its last offset delta says {count}",
            values.len()
        ));
    }
    let batch = RecordBatch {
        base_offset: header.base_offset,
        leader_epoch,
        timestamp_ms,
        values,
    };
    Ok(Some((batch, header.frame_len)))
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
}
