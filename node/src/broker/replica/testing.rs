//! Fixtures for the replica's unit tests ([`super::tests`], [`super::version_tests`]): a replica
//! on a real log in a temp dir with its event log, partition metadata, fetches and fetch answers.

use serde_json::json;

use super::*;
use crate::storage::{EpochEntry, Frames, LogConfig, RecordBatch};
use crate::version::{KafkaVersion, Rules};

pub(super) fn epoch_start(epoch: u32, start_offset: u64) -> EpochEntry {
    EpochEntry {
        epoch,
        start_offset,
    }
}

pub(super) struct Fixture {
    pub(super) _dir: tempfile::TempDir,
    pub(super) events: EventLog,
    pub(super) replica: Replica,
}

impl Fixture {
    /// The events this replica wrote, oldest first.
    pub(super) fn events_of_type(&self, kind: &str) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self._dir.path().join("events.jsonl")).unwrap();
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["type"] == kind)
            .collect()
    }
}

pub(super) fn fixture(broker_id: u32, rules: Rules) -> Fixture {
    fixture_with_epochs(broker_id, rules, &[])
}

/// A replica whose empty log starts with the leader-epoch history `epochs`.
pub(super) fn fixture_with_epochs(broker_id: u32, rules: Rules, epochs: &[EpochEntry]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let log = Log::open_with_epochs(&path, LogConfig::default(), epochs).unwrap();
    let events = EventLog::open(dir.path(), json!(broker_id)).unwrap();
    let replica = Replica::new("t", 0, broker_id, rules, SETTINGS, log, 0);
    Fixture {
        _dir: dir,
        events,
        replica,
    }
}

/// Partition 0 of a topic on brokers 1, 2 and 3 (also the broker module's test metadata).
pub(crate) fn pm(
    leader: Option<u32>,
    leader_epoch: u32,
    partition_epoch: u32,
    isr: &[u32],
) -> PartitionMetadata {
    PartitionMetadata {
        elr: Vec::new(),
        last_known_elr: Vec::new(),
        partition: 0,
        leader,
        leader_epoch,
        partition_epoch,
        isr: isr.to_vec(),
        replicas: vec![1, 2, 3],
        unclean: false,
    }
}

/// replica.lag.time.max.ms of 500 ms, no legacy message lag.
pub(super) const SETTINGS: IsrSettings = IsrSettings {
    lag_time_max_ms: 500,
    lag_max_messages: 0,
};

pub(super) const CONFIGS: TopicConfigs = TopicConfigs {
    min_insync_replicas: 2,
    unclean_leader_election_enable: false,
};

/// Broker 1 leading `isr` in epoch 0 under Kafka 4.1's rules, with a metadata that names no
/// broker epochs (so only liveness decides who may join the ISR).
pub(super) fn leader(isr: &[u32]) -> Fixture {
    leader_of(KafkaVersion::V4_1, isr)
}

/// Broker 1 leading `isr` in epoch 0 under `version`'s rules.
pub(super) fn leader_of(version: KafkaVersion, isr: &[u32]) -> Fixture {
    let mut f = fixture(1, version.rules());
    f.replica
        .apply_metadata(&pm(Some(1), 0, 0, isr), &CONFIGS, 1_000, &f.events)
        .unwrap();
    f
}

/// A broker's status in the metadata.
pub(super) fn status(id: u32, alive: bool, epoch: Option<u64>) -> BrokerStatus {
    BrokerStatus {
        id,
        alive,
        epoch,
        shutting_down: false,
        kafka_address: None,
    }
}

/// Brokers 1, 2 and 3 alive with registration epochs 11, 22 and 33; `own` is broker 1's.
pub(super) fn registered(own: Option<u64>) -> Registrations {
    let brokers = [
        status(1, true, Some(11)),
        status(2, true, Some(22)),
        status(3, true, Some(33)),
    ];
    Registrations::new(&brokers, own)
}

/// A follower's fetch request, naming no broker epoch.
pub(super) fn fetch_request(
    r: &Replica,
    from: u32,
    offset: u64,
    epoch: Option<u32>,
) -> ReplicaFetchRequest {
    ReplicaFetchRequest {
        broker_epoch: None,
        cluster_id: "c".into(),
        replica_id: from,
        topic: "t".into(),
        partition: 0,
        fetch_offset: offset,
        last_fetched_epoch: epoch,
        current_leader_epoch: r.current_epoch(),
        max_records: 100,
        max_bytes: REPLICA_FETCH_MAX_BYTES,
        max_wait_ms: 0,
    }
}

pub(super) fn fetch(
    r: &mut Replica,
    events: &EventLog,
    from: u32,
    offset: u64,
    epoch: Option<u32>,
    now: u64,
) -> Result<(LeaderFetch, Option<AlterProposal>), ApiError> {
    let req = fetch_request(r, from, offset, epoch);
    r.leader_fetch(&req, now, events)
}

/// The answer of a leader's fetch, records or not.
pub(super) fn response(answer: LeaderFetch) -> ReplicaFetchResponse {
    match answer {
        LeaderFetch::Records(resp) | LeaderFetch::Empty(resp) => resp,
    }
}

/// A fetch answer carrying records `offsets` of `epoch` with values `v<offset>`, as one batch.
pub(super) fn answer(offsets: std::ops::Range<u64>, epoch: u32, hw: u64) -> ReplicaFetchResponse {
    let log_end_offset = offsets.end;
    let batch = RecordBatch {
        base_offset: offsets.start,
        leader_epoch: epoch,
        timestamp_ms: 0,
        values: offsets.map(|o| format!("v{o}")).collect(),
        producer: None,
    };
    let frames = if batch.values.is_empty() {
        Frames::default()
    } else {
        Frames::from_batches(&[batch])
    };
    ReplicaFetchResponse {
        frames,
        high_watermark: hw,
        log_end_offset,
        diverging_epoch: None,
    }
}

pub(super) fn values(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("v{i}")).collect()
}
