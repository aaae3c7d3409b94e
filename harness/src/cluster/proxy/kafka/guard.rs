//! Checks the shape of a response body the proxy decodes — Metadata, FindCoordinator and
//! DescribeCluster (their addresses rewritten), Produce, Fetch and InitProducerId (their error
//! codes replaced by an `error-response` fault) — before the codec decodes it.
//! The `kafka-protocol` crate sizes a vector from the element count a message claims
//! (`Vec::with_capacity(n)`), so a body claiming two billion topics would make it ask for
//! hundreds of GiB, and a failed allocation aborts the process: the proxy must not take the
//! harness down because a broker sent garbage. Kafka's generated readers refuse such a count
//! ("Tried to allocate a collection of size N, but there are only M bytes remaining"), and so
//! does the node's request guard (`node/src/kafka/guard.rs`); this walks the body by its
//! version's schema and refuses any array count or string length that exceeds the bytes left,
//! and a body with bytes after its last field. It decodes nothing: the crate does that.

use kafka_protocol::messages::ApiKey;

/// One field of a response schema. Strings and arrays are compact (varint length + 1) in the
/// flexible versions and classic (INT16 / INT32 length) before them; the walk is told which.
#[derive(Debug, Clone)]
enum Field {
    I8,
    I16,
    I32,
    I64,
    Bool,
    Uuid,
    /// A string (nullable or not: both lengths are accepted, the codec says which may be null).
    Str,
    /// Bytes (nullable or not), as a record set: a length (INT32, or compact), then the bytes.
    Bytes,
    /// A count, then that many elements each made of these fields.
    Array(Vec<Field>),
    /// The tagged-field section of a flexible struct.
    Tags,
}

use Field::*;

/// Walks `body` (the message after its response header) as `key`'s response at `version`.
/// Only the APIs whose responses the proxy rewrites have a schema here.
pub(super) fn check(key: ApiKey, version: i16, body: &[u8]) -> Result<(), String> {
    let (fields, flexible) = match key {
        ApiKey::Metadata => (metadata(version), version >= 9),
        ApiKey::FindCoordinator => (find_coordinator(version), version >= 3),
        ApiKey::DescribeCluster => (describe_cluster(version), true),
        ApiKey::Produce => (produce(version), version >= 9),
        ApiKey::Fetch => (fetch(version), version >= 12),
        ApiKey::InitProducerId => (init_producer_id(version), version >= 2),
        other => return Err(format!("no schema for {other:?} responses")),
    };
    let mut cursor = Cursor {
        buf: body,
        pos: 0,
        flexible,
    };
    cursor.walk(&fields)?;
    match cursor.left() {
        0 => Ok(()),
        n => Err(format!("{n} bytes after the end of the message")),
    }
}

/// MetadataResponse v0..=13 (Kafka's `MetadataResponse.json`).
fn metadata(version: i16) -> Vec<Field> {
    let flexible = version >= 9;
    let tagged = |mut fields: Vec<Field>| {
        if flexible {
            fields.push(Tags);
        }
        fields
    };
    let mut broker = vec![I32, Str, I32]; // node_id, host, port
    if version >= 1 {
        broker.push(Str); // rack
    }
    let mut partition = vec![I16, I32, I32]; // error_code, partition_index, leader_id
    if version >= 7 {
        partition.push(I32); // leader_epoch
    }
    partition.extend([Array(vec![I32]), Array(vec![I32])]); // replica_nodes, isr_nodes
    if version >= 5 {
        partition.push(Array(vec![I32])); // offline_replicas
    }
    let mut topic = vec![I16, Str]; // error_code, name
    if version >= 10 {
        topic.push(Uuid); // topic_id
    }
    if version >= 1 {
        topic.push(Bool); // is_internal
    }
    topic.push(Array(tagged(partition)));
    if version >= 8 {
        topic.push(I32); // topic_authorized_operations
    }
    let mut fields = Vec::new();
    if version >= 3 {
        fields.push(I32); // throttle_time_ms
    }
    fields.push(Array(tagged(broker)));
    if version >= 2 {
        fields.push(Str); // cluster_id
    }
    if version >= 1 {
        fields.push(I32); // controller_id
    }
    fields.push(Array(tagged(topic)));
    if (8..=10).contains(&version) {
        fields.push(I32); // cluster_authorized_operations
    }
    if version >= 13 {
        fields.push(I16); // error_code
    }
    tagged(fields)
}

/// FindCoordinatorResponse v0..=6 (Kafka's `FindCoordinatorResponse.json`): one coordinator
/// up to v3, an array of them (one per requested key) from v4.
fn find_coordinator(version: i16) -> Vec<Field> {
    let mut fields = Vec::new();
    if version >= 1 {
        fields.push(I32); // throttle_time_ms
    }
    if version <= 3 {
        fields.push(I16); // error_code
        if version >= 1 {
            fields.push(Str); // error_message
        }
        fields.extend([I32, Str, I32]); // node_id, host, port
    } else {
        // key, node_id, host, port, error_code, error_message
        fields.push(Array(vec![Str, I32, Str, I32, I16, Str, Tags]));
    }
    if version >= 3 {
        fields.push(Tags);
    }
    fields
}

/// DescribeClusterResponse v0..=2 (Kafka's `DescribeClusterResponse.json`; flexible from v0,
/// `EndpointType` from v1, a broker's `IsFenced` from v2).
fn describe_cluster(version: i16) -> Vec<Field> {
    let mut broker = vec![I32, Str, I32, Str]; // broker_id, host, port, rack
    if version >= 2 {
        broker.push(Bool); // is_fenced
    }
    broker.push(Tags);
    let mut fields = vec![I32, I16, Str]; // throttle_time_ms, error_code, error_message
    if version >= 1 {
        fields.push(I8); // endpoint_type
    }
    fields.extend([Str, I32, Array(broker), I32, Tags]); // cluster_id, controller_id, ..
    fields
}

/// Appends the tagged-field section to a struct's fields in the flexible versions.
fn tagged(flexible: bool, mut fields: Vec<Field>) -> Vec<Field> {
    if flexible {
        fields.push(Tags);
    }
    fields
}

/// ProduceResponse v3..=13 (Kafka's `ProduceResponse.json`; the codec reads no older one):
/// topics by name up to v12, by id from v13; flexible from v9, whose tagged fields (a
/// partition's `current_leader`, the `node_endpoints`) the walk skips as tags.
fn produce(version: i16) -> Vec<Field> {
    let flexible = version >= 9;
    // index, error_code, base_offset, log_append_time_ms
    let mut partition = vec![I32, I16, I64, I64];
    if version >= 5 {
        partition.push(I64); // log_start_offset
    }
    if version >= 8 {
        // record_errors (batch_index, batch_index_error_message), error_message
        partition.push(Array(tagged(flexible, vec![I32, Str])));
        partition.push(Str);
    }
    let name = if version >= 13 { Uuid } else { Str }; // topic_id or name
    let topic = vec![name, Array(tagged(flexible, partition))];
    // responses, throttle_time_ms
    tagged(flexible, vec![Array(tagged(flexible, topic)), I32])
}

/// FetchResponse v4..=18 (Kafka's `FetchResponse.json`; the codec reads no older one): a
/// session's error code from v7, topics by id from v13, flexible from v12.
fn fetch(version: i16) -> Vec<Field> {
    let flexible = version >= 12;
    // partition_index, error_code, high_watermark, last_stable_offset
    let mut partition = vec![I32, I16, I64, I64];
    if version >= 5 {
        partition.push(I64); // log_start_offset
    }
    // aborted_transactions (producer_id, first_offset), nullable
    partition.push(Array(tagged(flexible, vec![I64, I64])));
    if version >= 11 {
        partition.push(I32); // preferred_read_replica
    }
    partition.push(Bytes); // records
    let name = if version >= 13 { Uuid } else { Str }; // topic_id or topic
    let topic = vec![name, Array(tagged(flexible, partition))];
    let mut fields = vec![I32]; // throttle_time_ms
    if version >= 7 {
        fields.extend([I16, I32]); // error_code, session_id
    }
    fields.push(Array(tagged(flexible, topic)));
    tagged(flexible, fields)
}

/// InitProducerIdResponse v0..=6 (Kafka's `InitProducerIdResponse.json`; flexible from v2, the
/// ongoing transaction's producer id and epoch from v6).
fn init_producer_id(version: i16) -> Vec<Field> {
    // throttle_time_ms, error_code, producer_id, producer_epoch
    let mut fields = vec![I32, I16, I64, I16];
    if version >= 6 {
        fields.extend([I64, I16]);
    }
    tagged(version >= 2, fields)
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    flexible: bool,
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

    fn int(&mut self, width: usize) -> Result<i64, String> {
        let bytes = self.take(width)?;
        let unsigned = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        // Sign-extend from `width` bytes.
        let shift = 64 - 8 * width as u32;
        Ok(((unsigned << shift) as i64) >> shift)
    }

    /// An unsigned varint of at most 5 bytes (a u32), as Kafka's compact lengths use.
    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for i in 0..5 {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(format!(
            "a varint longer than 5 bytes before byte {}",
            self.pos
        ))
    }

    /// A string length or array count: None for null, else at most the bytes left (an element
    /// takes at least one byte).
    fn length(&mut self, classic_width: usize, what: &str) -> Result<Option<usize>, String> {
        let at = self.pos;
        let claimed = if self.flexible {
            self.varint()? as i64 - 1
        } else {
            self.int(classic_width)?
        };
        match claimed {
            -1 => Ok(None),
            n if n >= 0 && n as u64 <= self.left() as u64 => Ok(Some(n as usize)),
            n => Err(format!(
                "{what} of {n} at byte {at}, but only {} bytes are left",
                self.left()
            )),
        }
    }

    fn tags(&mut self) -> Result<(), String> {
        let count = self.varint()?;
        if count > self.left() as u64 {
            return Err(format!(
                "{count} tagged fields at byte {}, but only {} bytes are left",
                self.pos,
                self.left()
            ));
        }
        for _ in 0..count {
            self.varint()?; // tag
            let size = self.varint()?;
            self.take(usize::try_from(size).unwrap_or(usize::MAX))?;
        }
        Ok(())
    }

    fn walk(&mut self, fields: &[Field]) -> Result<(), String> {
        for field in fields {
            match field {
                I8 => drop(self.take(1)?),
                I16 => drop(self.take(2)?),
                I32 => drop(self.take(4)?),
                I64 => drop(self.take(8)?),
                Bool => drop(self.take(1)?),
                Uuid => drop(self.take(16)?),
                Str => {
                    let n = self.length(2, "a string length")?.unwrap_or(0);
                    self.take(n)?;
                }
                Bytes => {
                    let n = self.length(4, "a bytes length")?.unwrap_or(0);
                    self.take(n)?;
                }
                Array(element) => {
                    let n = self.length(4, "an array count")?.unwrap_or(0);
                    for _ in 0..n {
                        self.walk(element)?;
                    }
                }
                Tags => self.tags()?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_array_count_larger_than_the_body_is_refused() {
        // Metadata v1: brokers [], controller_id, topics claiming i32::MAX elements.
        let mut body = 0i32.to_be_bytes().to_vec();
        body.extend(1i32.to_be_bytes());
        body.extend(i32::MAX.to_be_bytes());
        let refused = check(ApiKey::Metadata, 1, &body).unwrap_err();
        assert!(
            refused.contains("an array count of 2147483647"),
            "{refused}"
        );
    }

    #[test]
    fn a_compact_count_larger_than_the_body_is_refused() {
        // Metadata v9: throttle_time_ms, then a compact broker array claiming 2^28 - 1.
        let mut body = 0i32.to_be_bytes().to_vec();
        body.extend([0xff, 0xff, 0xff, 0x7f]);
        let refused = check(ApiKey::Metadata, 9, &body).unwrap_err();
        assert!(refused.contains("an array count"), "{refused}");
    }

    #[test]
    fn trailing_bytes_are_refused() {
        // FindCoordinator v0: error_code, node_id, host "", port, then one byte too many.
        let mut body = vec![0, 0, 0, 0, 0, 1, 0, 0];
        body.extend(9092i32.to_be_bytes());
        assert_eq!(check(ApiKey::FindCoordinator, 0, &body), Ok(()));
        body.push(0);
        let refused = check(ApiKey::FindCoordinator, 0, &body).unwrap_err();
        assert!(refused.contains("1 bytes after"), "{refused}");
    }

    #[test]
    fn a_varint_of_six_bytes_is_refused() {
        let body = [0, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
        assert!(check(ApiKey::Metadata, 9, &body).is_err());
    }

    #[test]
    fn the_error_rewritten_responses_are_walked_too() {
        // Produce v8: a topic array claiming i32::MAX topics.
        let refused = check(ApiKey::Produce, 8, &i32::MAX.to_be_bytes()).unwrap_err();
        assert!(refused.contains("an array count"), "{refused}");
        // Fetch v11: throttle, error_code, session_id, one topic "t" with one partition whose
        // records claim more bytes than follow.
        let mut body = vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        body.extend(1i32.to_be_bytes());
        body.extend([0, 1, b't']);
        body.extend(1i32.to_be_bytes());
        body.extend([0; 4 + 2 + 8 + 8 + 8]); // index, error_code, hw, lso, log_start_offset
        body.extend(0i32.to_be_bytes()); // aborted_transactions
        body.extend((-1i32).to_be_bytes()); // preferred_read_replica
        body.extend(1000i32.to_be_bytes());
        body.extend(b"short");
        let refused = check(ApiKey::Fetch, 11, &body).unwrap_err();
        assert!(refused.contains("a bytes length of 1000"), "{refused}");
        // InitProducerId v4 (flexible): throttle, error_code, producer_id, epoch, no tags.
        let body = [0u8; 4 + 2 + 8 + 2 + 1];
        assert_eq!(check(ApiKey::InitProducerId, 4, &body), Ok(()));
        assert!(
            check(ApiKey::InitProducerId, 1, &body).is_err(),
            "one byte too many"
        );
    }
}
