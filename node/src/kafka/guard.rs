//! Checks a request body's shape before the codec crate decodes it. The crate sizes a vector
//! from the element count a request claims (`Vec::with_capacity(n)`, `IndexMap::with_capacity`),
//! so a frame claiming two billion elements would make it ask for hundreds of GiB, and a failed
//! allocation aborts the process. Kafka's own generated readers refuse such a count ("Tried to
//! allocate a collection of size N, but there are only M bytes remaining"); this module does the
//! same for the request versions we serve: it walks the body by the version's schema and refuses
//! any array whose count exceeds the bytes left, any string or bytes field longer than the frame,
//! and a record batch whose record or header counts cannot fit. It decodes nothing itself.
//! Only non-flexible versions are walked; the flexible ApiVersions v3 has no array.

/// One field of a non-flexible request schema.
#[derive(Debug, Clone)]
pub enum Field {
    I8,
    I16,
    I32,
    I64,
    /// INT16 length, -1 for null.
    Str,
    /// INT32 length, -1 for null; a Produce partition's record batches.
    Records,
    /// INT32 count, -1 for null, of elements each made of these fields.
    Array(Vec<Field>),
}

use Field::*;

/// The schema of each request version this broker serves, or `None` if it needs no walk.
pub fn schema(api_key: i16, version: i16) -> Option<Vec<Field>> {
    match api_key {
        0 => Some(produce(version)),
        1 => Some(fetch(version)),
        2 => Some(list_offsets(version)),
        3 => Some(vec![Array(vec![Str]), I8, I8, I8][..metadata_len(version)].to_vec()),
        _ => None,
    }
}

fn produce(_version: i16) -> Vec<Field> {
    // v3..=8: transactional_id, acks, timeout_ms, [topic, [partition, records]].
    vec![Str, I16, I32, Array(vec![Str, Array(vec![I32, Records])])]
}

fn fetch(version: i16) -> Vec<Field> {
    let mut partition = vec![I32];
    if version >= 9 {
        partition.push(I32); // current_leader_epoch
    }
    partition.push(I64); // fetch_offset
    if version >= 5 {
        partition.push(I64); // log_start_offset
    }
    partition.push(I32); // partition_max_bytes
    let mut fields = vec![I32, I32, I32, I32, I8]; // replica_id .. isolation_level (v4+)
    if version >= 7 {
        fields.extend([I32, I32]); // session_id, session_epoch
    }
    fields.push(Array(vec![Str, Array(partition)]));
    if version >= 7 {
        fields.push(Array(vec![Str, Array(vec![I32])])); // forgotten_topics_data
    }
    if version >= 11 {
        fields.push(Str); // rack_id
    }
    fields
}

fn list_offsets(version: i16) -> Vec<Field> {
    let mut partition = vec![I32];
    if version >= 4 {
        partition.push(I32); // current_leader_epoch
    }
    partition.push(I64); // timestamp
    let mut fields = vec![I32];
    if version >= 2 {
        fields.push(I8); // isolation_level
    }
    fields.push(Array(vec![Str, Array(partition)]));
    fields
}

/// Metadata v0..=8: topics; v4+ allow_auto_topic_creation; v8+ two authorized-operations flags.
fn metadata_len(version: i16) -> usize {
    match version {
        0..=3 => 1,
        4..=7 => 2,
        _ => 4,
    }
}

/// Walks `body` by `fields`; the error names the first field that cannot be right.
pub fn check(body: &[u8], fields: &[Field]) -> Result<(), String> {
    let mut cursor = Cursor { buf: body, pos: 0 };
    cursor.walk(fields)
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if n > self.left() {
            return Err(format!(
                "a field of {n} bytes at byte {} but only {} bytes are left",
                self.pos,
                self.left()
            ));
        }
        let slice = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn int(&mut self, n: usize) -> Result<i64, String> {
        let bytes = self.take(n)?;
        Ok(
            bytes.iter().fold(0i64, |acc, &b| (acc << 8) | b as i64) << (64 - 8 * n)
                >> (64 - 8 * n),
        )
    }

    /// A length or count: -1 (null) or 0..=bytes left.
    fn length(&mut self, width: usize, what: &str) -> Result<Option<usize>, String> {
        let at = self.pos;
        match self.int(width)? {
            -1 => Ok(None),
            n if n >= 0 && n as usize <= self.left() => Ok(Some(n as usize)),
            n => Err(format!(
                "{what} of {n} at byte {at}, but only {} bytes are left",
                self.left()
            )),
        }
    }

    fn walk(&mut self, fields: &[Field]) -> Result<(), String> {
        for field in fields {
            match field {
                I8 => drop(self.take(1)?),
                I16 => drop(self.take(2)?),
                I32 => drop(self.take(4)?),
                I64 => drop(self.take(8)?),
                Str => {
                    let n = self.length(2, "a string length")?.unwrap_or(0);
                    self.take(n)?;
                }
                Records => {
                    let n = self.length(4, "a records length")?.unwrap_or(0);
                    check_batches(self.take(n)?)?;
                }
                Array(element) => {
                    let n = self.length(4, "an array count")?.unwrap_or(0);
                    for _ in 0..n {
                        self.walk(element)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Bytes before the first record of a v2 batch (Kafka's `DefaultRecordBatch.RECORD_BATCH_OVERHEAD`).
pub const BATCH_HEADER_BYTES: usize = 61;

/// Checks the counts inside record batches: each batch's record count and each record's header
/// count must fit in the bytes left. Batch framing errors are left to the decoder.
pub fn check_batches(mut data: &[u8]) -> Result<(), String> {
    while data.len() >= 12 {
        let batch_len = i32::from_be_bytes(data[8..12].try_into().expect("4 bytes"));
        let end = 12usize.saturating_add(batch_len.max(0) as usize);
        if batch_len < 49 || end > data.len() {
            return Err(format!(
                "a record batch of {batch_len} bytes with {} bytes left",
                data.len() - 12
            ));
        }
        let batch = &data[..end];
        if batch[16] == 2 {
            let count = i32::from_be_bytes(batch[57..61].try_into().expect("4 bytes"));
            let attributes = i16::from_be_bytes(batch[21..23].try_into().expect("2 bytes"));
            if count < 0 || count as usize > end - BATCH_HEADER_BYTES {
                return Err(format!(
                    "a record batch claims {count} records in {end} bytes"
                ));
            }
            // Compressed records are refused before decoding; only plain ones are walked.
            if attributes & 0x7 == 0 {
                check_records(&batch[BATCH_HEADER_BYTES..], count as usize)?;
            }
        }
        data = &data[end..];
    }
    Ok(())
}

fn check_records(mut data: &[u8], count: usize) -> Result<(), String> {
    for i in 0..count {
        let len = varint(&mut data)?;
        if len < 0 || len as usize > data.len() {
            return Err(format!("record {i} claims {len} bytes"));
        }
        let (mut record, rest) = data.split_at(len as usize);
        data = rest;
        skip(&mut record, 1)?; // attributes
        varint(&mut record)?; // timestamp delta (a varlong; the same encoding)
        varint(&mut record)?; // offset delta
        let key = varint(&mut record)?;
        skip(&mut record, key.max(0) as usize)?;
        let value = varint(&mut record)?;
        skip(&mut record, value.max(0) as usize)?;
        let headers = varint(&mut record)?;
        if headers < 0 || headers as usize > record.len() {
            return Err(format!("record {i} claims {headers} headers"));
        }
    }
    Ok(())
}

fn skip(data: &mut &[u8], n: usize) -> Result<(), String> {
    if n > data.len() {
        return Err(format!(
            "a record field of {n} bytes with {} left",
            data.len()
        ));
    }
    *data = &data[n..];
    Ok(())
}

/// A zigzag varint of up to 10 bytes (Kafka's `ByteUtils.readVarlong`).
fn varint(data: &mut &[u8]) -> Result<i64, String> {
    let mut raw: u64 = 0;
    for i in 0..10 {
        let Some((&b, rest)) = data.split_first() else {
            return Err("a record ends inside a varint".into());
        };
        *data = rest;
        raw |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err("a varint longer than 10 bytes".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_array_count_larger_than_the_frame_is_refused() {
        // Metadata v1: topics = i32::MAX elements in a 4-byte body.
        let body = i32::MAX.to_be_bytes();
        let err = check(&body, &schema(3, 1).unwrap()).unwrap_err();
        assert!(err.contains("array count of 2147483647"), "{err}");
    }

    #[test]
    fn a_well_formed_produce_body_passes() {
        let mut body = vec![0xff, 0xff, 0, 1, 0, 0, 0x13, 0x88]; // null txn id, acks 1, 5000 ms
        body.extend(1i32.to_be_bytes()); // one topic
        body.extend(1i16.to_be_bytes());
        body.push(b't');
        body.extend(1i32.to_be_bytes()); // one partition
        body.extend(0i32.to_be_bytes());
        body.extend((-1i32).to_be_bytes()); // null records
        check(&body, &schema(0, 3).unwrap()).unwrap();
        body.pop();
        assert!(check(&body, &schema(0, 3).unwrap()).is_err());
    }

    #[test]
    fn a_batch_claiming_more_records_than_bytes_is_refused() {
        let mut batch = vec![0u8; BATCH_HEADER_BYTES];
        batch[8..12].copy_from_slice(&((BATCH_HEADER_BYTES - 12) as i32).to_be_bytes());
        batch[16] = 2;
        batch[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(check_batches(&batch).unwrap_err().contains("claims"));
    }

    #[test]
    fn varints_decode_as_zigzag() {
        let mut data: &[u8] = &[0x01, 0x02, 0xac, 0x02];
        assert_eq!(varint(&mut data).unwrap(), -1);
        assert_eq!(varint(&mut data).unwrap(), 1);
        assert_eq!(varint(&mut data).unwrap(), 150);
    }
}
