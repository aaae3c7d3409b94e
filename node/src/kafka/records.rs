//! Converting between Kafka record batches (magic v2) and the node's own records. On produce a
//! partition's batches become one list of values appended as one node batch, so they get the
//! node's offsets, leader epoch and timestamps exactly as an HTTP produce would (one log, one
//! format: `dump` and the checker see no difference). On fetch the node's records are built
//! back into v2 batches, one per run of records with the same leader epoch, stamped with that
//! epoch as Kafka stamps a batch's `partitionLeaderEpoch`. Why we convert rather than store the
//! batches as received is in docs/kafka-api.md. This module does no I/O.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::storage;

/// Why a produced batch was refused, with the Kafka error code to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub code: i16,
    pub message: String,
}

pub const CORRUPT_MESSAGE: i16 = 2;
pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
pub const INVALID_RECORD: i16 = 87;
pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;

fn refuse(code: i16, message: impl Into<String>) -> Refused {
    Refused {
        code,
        message: message.into(),
    }
}

/// The values of every record in a partition's batches, in order. Refused: message formats
/// before v2, compressed batches, control or transactional batches, and records with a key,
/// headers, a null value or a value that is not UTF-8 (the node's records hold a text value
/// only; see docs/kafka-api.md). The produce limits (record count, value size) are not checked
/// here: `broker::produce` checks them for both APIs.
pub fn values_from_batches(data: &Bytes) -> Result<Vec<String>, Refused> {
    produce_from_batches(data).map(|(values, _)| values)
}

/// A produce's values and, when an idempotent producer wrote it, its stamp: the producer id,
/// epoch and the first record's sequence of the batch header. Kafka accepts one batch per
/// partition in a v3+ produce (`ProduceRequest.validateRecords`); the node takes several, but
/// only one may carry a producer id, since the stamp is per batch.
pub fn produce_from_batches(
    data: &Bytes,
) -> Result<(Vec<String>, Option<storage::ProducerBatch>), Refused> {
    super::guard::check_batches(data).map_err(|e| refuse(CORRUPT_MESSAGE, e))?;
    let mut buf = data.clone();
    let mut values = Vec::new();
    let mut batches = 0;
    let mut producer = None;
    while !buf.is_empty() {
        check_batch_header(&buf)?;
        let set = RecordBatchDecoder::decode(&mut buf)
            .map_err(|e| refuse(CORRUPT_MESSAGE, format!("record batch: {e}")))?;
        batches += 1;
        if let Some(first) = set.records.first() {
            if first.producer_id >= 0 {
                if batches > 1 || producer.is_some() {
                    return Err(refuse(
                        INVALID_RECORD,
                        "an idempotent producer's batch must be the only batch for its partition",
                    ));
                }
                producer = Some(storage::ProducerBatch {
                    producer_id: first.producer_id,
                    producer_epoch: first.producer_epoch,
                    base_sequence: first.sequence,
                });
            }
        }
        for record in set.records {
            values.push(value_of(record)?);
        }
    }
    if values.is_empty() {
        return Err(refuse(INVALID_RECORD, "a produce with no records"));
    }
    if let Some(p) = producer {
        if p.producer_epoch < 0 || p.base_sequence < 0 {
            return Err(refuse(
                INVALID_RECORD,
                format!(
                    "producer {} with epoch {} and base sequence {}: both must be 0 or more",
                    p.producer_id, p.producer_epoch, p.base_sequence
                ),
            ));
        }
    }
    Ok((values, producer))
}

fn check_batch_header(buf: &[u8]) -> Result<(), Refused> {
    if buf.len() < super::guard::BATCH_HEADER_BYTES {
        return Err(refuse(
            CORRUPT_MESSAGE,
            format!(
                "a record batch of {} bytes is shorter than its header",
                buf.len()
            ),
        ));
    }
    if buf[16] != 2 {
        return Err(refuse(
            UNSUPPORTED_FOR_MESSAGE_FORMAT,
            format!(
                "message format v{} (only record batch v2 is served)",
                buf[16]
            ),
        ));
    }
    let attributes = i16::from_be_bytes([buf[21], buf[22]]);
    if attributes & 0x7 != 0 {
        return Err(refuse(
            UNSUPPORTED_COMPRESSION_TYPE,
            format!(
                "compression codec {} is not supported: produce with compression.type=none",
                attributes & 0x7
            ),
        ));
    }
    if attributes & (1 << 4 | 1 << 5) != 0 {
        return Err(refuse(
            INVALID_RECORD,
            "transactional and control batches are not supported",
        ));
    }
    Ok(())
}

fn value_of(record: Record) -> Result<String, Refused> {
    if record.key.is_some() || !record.headers.is_empty() {
        return Err(refuse(
            INVALID_RECORD,
            "records with a key or headers are not supported (the node stores a value only)",
        ));
    }
    let value = record
        .value
        .ok_or_else(|| refuse(INVALID_RECORD, "a record with a null value"))?;
    String::from_utf8(value.to_vec())
        .map_err(|_| refuse(INVALID_RECORD, "a value that is not UTF-8 text"))
}

/// Builds v2 batches from committed records: one batch per run of one leader epoch, offsets and
/// append timestamps as stored.
pub fn batches_from_records(records: &[storage::Record]) -> anyhow::Result<Bytes> {
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    for run in records.chunk_by(|a, b| a.leader_epoch == b.leader_epoch) {
        let batch: Vec<Record> = run
            .iter()
            .enumerate()
            .map(|(i, r)| to_kafka_record(r, i as i32 - 1))
            .collect();
        RecordBatchEncoder::encode(&mut out, &batch, &options)?;
    }
    Ok(out.freeze())
}

/// One record of a fetched batch. The codec starts a new batch whenever `offset - sequence`
/// changes, so `sequence` counts up from the batch's base sequence, which is -1 (no producer
/// sequence: the node keeps none).
fn to_kafka_record(r: &storage::Record, sequence: i32) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: r.leader_epoch as i32,
        producer_id: -1,
        producer_epoch: -1,
        // The node stamps each record with the leader's clock when appended.
        timestamp_type: TimestampType::LogAppend,
        offset: r.offset as i64,
        sequence,
        timestamp: r.timestamp_ms as i64,
        key: None,
        value: Some(Bytes::from(r.value.clone().into_bytes())),
        headers: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: u64, epoch: u32, value: &str) -> storage::Record {
        storage::Record {
            offset,
            leader_epoch: epoch,
            timestamp_ms: 1_763_700_000_000 + offset,
            value: value.into(),
        }
    }

    #[test]
    fn records_round_trip_through_batches() {
        let stored = vec![record(5, 1, "a"), record(6, 1, "b"), record(7, 3, "c")];
        let bytes = batches_from_records(&stored).unwrap();
        let sets = RecordBatchDecoder::decode_all(&mut bytes.clone()).unwrap();
        assert_eq!(sets.len(), 2, "one batch per leader epoch");
        let back: Vec<(i64, i32, String)> = sets
            .iter()
            .flat_map(|s| s.records.iter())
            .map(|r| {
                let v = String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap();
                (r.offset, r.partition_leader_epoch, v)
            })
            .collect();
        assert_eq!(
            back,
            vec![(5, 1, "a".into()), (6, 1, "b".into()), (7, 3, "c".into())]
        );
        assert_eq!(values_from_batches(&bytes).unwrap(), ["a", "b", "c"]);
    }

    #[test]
    fn an_idempotent_batch_gives_its_producer_stamp() {
        let mut out = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        let stamped: Vec<Record> = (0..3)
            .map(|i| Record {
                producer_id: 77,
                producer_epoch: 2,
                ..to_kafka_record(&record(i, 0, "v"), 10 + i as i32)
            })
            .collect();
        RecordBatchEncoder::encode(&mut out, &stamped, &options).unwrap();
        let one = out.clone().freeze();
        let (values, producer) = produce_from_batches(&one).unwrap();
        assert_eq!(values.len(), 3);
        assert_eq!(
            producer,
            Some(storage::ProducerBatch {
                producer_id: 77,
                producer_epoch: 2,
                base_sequence: 10
            })
        );
        RecordBatchEncoder::encode(&mut out, &stamped, &options).unwrap();
        let two = out.freeze();
        assert_eq!(produce_from_batches(&two).unwrap_err().code, INVALID_RECORD);
        let plain = batches_from_records(&[record(0, 0, "x")]).unwrap();
        assert_eq!(produce_from_batches(&plain).unwrap().1, None);
    }

    #[test]
    fn keys_compression_and_garbage_are_refused_with_their_codes() {
        let mut keyed = to_kafka_record(&record(0, 0, "v"), -1);
        keyed.key = Some(Bytes::from_static(b"k"));
        let mut out = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut out, [&keyed], &options).unwrap();
        let bytes = out.freeze();
        assert_eq!(
            values_from_batches(&bytes).unwrap_err().code,
            INVALID_RECORD
        );

        let mut gzip = bytes.to_vec();
        gzip[22] |= 1;
        let err = values_from_batches(&Bytes::from(gzip)).unwrap_err();
        assert_eq!(err.code, UNSUPPORTED_COMPRESSION_TYPE);

        let mut flipped = bytes.to_vec();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        let err = values_from_batches(&Bytes::from(flipped)).unwrap_err();
        assert_eq!(err.code, CORRUPT_MESSAGE, "{}", err.message);
    }
}
