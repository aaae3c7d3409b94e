//! The broker role: hosts partition replicas, serves produce and consume requests, answers
//! followers' fetches as a leader and fetches from leaders as a follower, heartbeats to the
//! controller and applies the metadata it answers with, and keeps the ISR through AlterPartition.
//! The replication rules themselves live in [`replica`]; this module owns the tasks, the locks,
//! the waits and the HTTP surface.

pub mod replica;

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::api::*;
use crate::events::{now_ms, EventLog};
use crate::storage::checkpoint::{read_u64, write_atomic};
use crate::storage::{Log, LogConfig};
use replica::{AlterProposal, IsrSettings, LeaderFetch, Protocol, Replica, Role, Transition};

pub const HW_CHECKPOINT: &str = "high-watermark";
/// Bounds on what one request may ask for.
pub const MAX_RECORDS_PER_PRODUCE: usize = 100_000;
pub const MAX_FETCH_RECORDS: usize = 100_000;
pub const MAX_WAIT_MS: u64 = 60_000;
pub const MAX_PRODUCE_TIMEOUT_MS: i64 = 300_000;
const DEFAULT_PRODUCE_TIMEOUT_MS: u64 = 30_000;
const REPLICA_FETCH_MAX_RECORDS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub id: u32,
    pub data: PathBuf,
    pub controller: String,
    pub peers: HashMap<u32, String>,
    pub cluster_id: String,
    pub replica_lag_time_max_ms: u64,
    pub replica_fetch_wait_max_ms: u64,
    pub replica_lag_max_messages: u64,
    pub protocol: Protocol,
    pub heartbeat_interval_ms: u64,
    pub hw_checkpoint_interval_ms: u64,
    pub log: LogConfig,
    pub max_request_bytes: usize,
}

/// One hosted partition: its replica behind a lock, and a counter bumped on every change so
/// long-polls and acks=all waits wake up.
pub struct PartitionHandle {
    replica: Mutex<Replica>,
    changed: watch::Sender<u64>,
    /// Follower fetches being answered now, by follower id (for `/v1/state`).
    fetches_in_flight: Mutex<BTreeMap<u32, u32>>,
}

/// Counts one follower fetch as in flight until dropped.
struct InFlight<'a> {
    handle: &'a PartitionHandle,
    follower: u32,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut map = self
            .handle
            .fetches_in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.follower) {
            *n = n.saturating_sub(1);
        }
    }
}

impl PartitionHandle {
    fn lock(&self) -> std::sync::MutexGuard<'_, Replica> {
        self.replica.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn track_fetch(&self, follower: u32) -> InFlight<'_> {
        *self
            .fetches_in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(follower)
            .or_insert(0) += 1;
        InFlight {
            handle: self,
            follower,
        }
    }

    fn state(&self) -> PartitionState {
        let mut state = self.lock().state();
        let in_flight = self
            .fetches_in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for follower in &mut state.followers {
            follower.fetches_in_flight = in_flight.get(&follower.id).copied().unwrap_or(0);
        }
        state
    }

    fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Waits until `check` answers, or `deadline`. The change counter is read before each check
    /// so no change between the check and the wait is missed.
    async fn wait_for<T>(
        &self,
        deadline: Instant,
        mut check: impl FnMut(&Replica) -> Option<T>,
    ) -> Option<T> {
        let mut rx = self.changed.subscribe();
        loop {
            rx.borrow_and_update();
            if let Some(answer) = check(&self.lock()) {
                return Some(answer);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return None,
            }
        }
    }
}

pub struct Broker {
    pub config: BrokerConfig,
    pub incarnation: u64,
    http: reqwest::Client,
    events: Arc<EventLog>,
    partitions: RwLock<BTreeMap<(String, u32), Arc<PartitionHandle>>>,
    metadata: Mutex<Option<Metadata>>,
}

type Shared = Arc<Broker>;

fn partition_dir(data: &Path, topic: &str, partition: u32) -> PathBuf {
    data.join(format!("{topic}-{partition}"))
}

/// Splits a partition directory name `topic-N` (topic names may themselves contain `-`).
pub fn parse_partition_dir(name: &str) -> Option<(String, u32)> {
    let (topic, partition) = name.rsplit_once('-')?;
    validate_topic_name(topic).ok()?;
    Some((topic.to_string(), partition.parse().ok()?))
}

impl Broker {
    pub fn new(config: BrokerConfig) -> anyhow::Result<Arc<Broker>> {
        std::fs::create_dir_all(&config.data)?;
        let events = Arc::new(EventLog::open(&config.data, json!(config.id))?);
        let incarnation = rand::random::<u64>() >> 1;
        events.emit(
            "started",
            json!({"incarnation": incarnation, "replication_protocol": config.protocol.as_str()}),
        );
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        let broker = Arc::new(Broker {
            config,
            incarnation,
            http,
            events,
            partitions: RwLock::new(BTreeMap::new()),
            metadata: Mutex::new(None),
        });
        broker.recover_partitions()?;
        Ok(broker)
    }

    /// Opens every partition found in the data dir, recovering its log, before anything else.
    fn recover_partitions(&self) -> anyhow::Result<()> {
        let mut dirs: Vec<_> = std::fs::read_dir(&self.config.data)?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| parse_partition_dir(&e.file_name().to_string_lossy()))
            .collect();
        dirs.sort();
        for (topic, partition) in dirs {
            self.open_partition(&topic, partition)?;
        }
        Ok(())
    }

    fn open_partition(&self, topic: &str, partition: u32) -> anyhow::Result<Arc<PartitionHandle>> {
        let dir = partition_dir(&self.config.data, topic, partition);
        let (log, report) = Log::open(&dir, self.config.log, false)?;
        let hw_checkpoint = read_u64(&dir.join(HW_CHECKPOINT)).unwrap_or_else(|e| {
            tracing::warn!("{e}; starting from HW 0");
            None
        });
        self.events.emit(
            "recovery",
            json!({"topic": topic, "partition": partition, "log_end_offset": report.log_end_offset,
                   "high_watermark": hw_checkpoint.unwrap_or(0), "leader_epoch": log.latest_epoch(),
                   "dropped_bytes": report.dropped_bytes, "segments": report.segments,
                   "reason": report.reason}),
        );
        let replica = Replica::new(
            topic,
            partition,
            self.config.id,
            self.config.protocol,
            log,
            hw_checkpoint.unwrap_or(0),
        );
        let handle = Arc::new(PartitionHandle {
            replica: Mutex::new(replica),
            changed: watch::channel(0).0,
            fetches_in_flight: Mutex::new(BTreeMap::new()),
        });
        self.partitions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((topic.to_string(), partition), handle.clone());
        Ok(handle)
    }

    fn partition(&self, topic: &str, partition: u32) -> Result<Arc<PartitionHandle>, ApiError> {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(topic.to_string(), partition))
            .cloned()
            .ok_or_else(|| ApiError::unknown_partition(topic, partition))
    }

    fn handles(&self) -> Vec<Arc<PartitionHandle>> {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn isr_settings(&self) -> IsrSettings {
        IsrSettings {
            lag_time_max_ms: self.config.replica_lag_time_max_ms,
            lag_max_messages: self.config.replica_lag_max_messages,
        }
    }

    fn controller_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.config.controller)
    }

    /// Applies a metadata snapshot from the controller to every replica this broker hosts.
    fn apply_metadata(self: &Arc<Self>, metadata: Metadata) {
        for topic in &metadata.topics {
            for pm in &topic.partitions {
                if !pm.replicas.contains(&self.config.id) {
                    continue;
                }
                let handle = match self.partition(&topic.name, pm.partition) {
                    Ok(h) => h,
                    Err(_) => match self.open_partition(&topic.name, pm.partition) {
                        Ok(h) => h,
                        Err(e) => {
                            tracing::error!("cannot open {}/{}: {e:#}", topic.name, pm.partition);
                            continue;
                        }
                    },
                };
                let transition =
                    handle
                        .lock()
                        .apply_metadata(pm, &topic.configs, now_ms(), &self.events);
                handle.notify();
                match transition {
                    Ok(Transition::Follow {
                        leader,
                        leader_epoch,
                    }) => {
                        tokio::spawn(follow(self.clone(), handle, leader, leader_epoch));
                    }
                    Ok(Transition::None) => {}
                    Err(e) => tracing::error!("{}/{}: {e}", topic.name, pm.partition),
                }
            }
        }
        *self.metadata.lock().unwrap_or_else(|p| p.into_inner()) = Some(metadata);
    }

    fn metadata_version(&self) -> u64 {
        self.metadata
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(0, |m| m.metadata_version)
    }

    async fn heartbeat_once(self: &Arc<Self>) -> Result<(), String> {
        let req = HeartbeatRequest {
            cluster_id: self.config.cluster_id.clone(),
            broker_id: self.config.id,
            incarnation: self.incarnation,
            fence_previous_incarnation: self.config.protocol == Protocol::Current,
            metadata_version: self.metadata_version(),
        };
        let timeout = Duration::from_millis((self.config.heartbeat_interval_ms * 5).max(500));
        let resp: HeartbeatResponse = post_json(
            &self.http,
            &self.controller_url("/v1/internal/heartbeat"),
            &req,
            timeout,
        )
        .await
        .map_err(|e| e.to_string())?;
        if let Some(metadata) = resp.metadata {
            self.apply_metadata(metadata);
        }
        Ok(())
    }

    fn write_hw_checkpoints(&self) {
        for handle in self.handles() {
            let (dir, hw) = {
                let r = handle.lock();
                (r.log.dir().to_path_buf(), r.hw)
            };
            let path = dir.join(HW_CHECKPOINT);
            if read_u64(&path).ok().flatten() != Some(hw) {
                if let Err(e) = write_atomic(&path, format!("{hw}\n").as_bytes()) {
                    tracing::error!("HW checkpoint {}: {e}", path.display());
                }
            }
        }
    }

    /// Clean shutdown: HW checkpoints and logs flushed.
    pub fn shutdown(&self) {
        self.write_hw_checkpoints();
        for handle in self.handles() {
            if let Err(e) = handle.lock().log.sync() {
                tracing::error!("sync at shutdown: {e}");
            }
        }
    }

    pub fn state(&self) -> BrokerState {
        BrokerState {
            broker_id: self.config.id,
            cluster_id: self.config.cluster_id.clone(),
            incarnation: self.incarnation,
            replication_protocol: self.config.protocol.as_str().to_string(),
            registered: self.metadata_version() > 0,
            partitions: self.handles().iter().map(|h| h.state()).collect(),
        }
    }
}

/// POSTs JSON and decodes either the answer or the node's error body.
pub async fn post_json<Req: serde::Serialize, Resp: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    body: &Req,
    timeout: Duration,
) -> Result<Resp, ApiError> {
    let resp = http
        .post(url)
        .json(body)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| ApiError::new(ErrorCode::RequestTimedOut, format!("{url}: {e}")))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| ApiError::new(ErrorCode::RequestTimedOut, format!("{url}: {e}")))?;
    if status.is_success() {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::invalid(format!("{url}: bad answer: {e}")))
    } else {
        Err(serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            ApiError::invalid(format!(
                "{url}: HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            ))
        }))
    }
}

/// The follower's fetch loop for one partition; it ends when the partition's leader or epoch
/// changes (the new metadata starts another).
async fn follow(broker: Shared, handle: Arc<PartitionHandle>, leader: u32, epoch: u32) {
    let Some(addr) = broker.config.peers.get(&leader).cloned() else {
        tracing::error!("no --peer address for broker {leader}; cannot follow it");
        return;
    };
    let url = format!("http://{addr}/v1/internal/replica-fetch");
    let wait_ms = broker.config.replica_fetch_wait_max_ms;
    let timeout = Duration::from_millis(wait_ms + 2_000);
    let still_following = |r: &Replica| {
        r.role == Role::Follower && r.leader == Some(leader) && r.leader_epoch == Some(epoch)
    };
    loop {
        let req = {
            let r = handle.lock();
            if !still_following(&r) {
                return;
            }
            r.next_fetch(
                &broker.config.cluster_id,
                REPLICA_FETCH_MAX_RECORDS,
                wait_ms,
            )
        };
        let answer: Result<ReplicaFetchResponse, ApiError> =
            post_json(&broker.http, &url, &req, timeout).await;
        let backoff = {
            let mut r = handle.lock();
            if !still_following(&r) || r.leo() != req.fetch_offset {
                return;
            }
            let outcome = match answer {
                Ok(resp) => r.follower_apply(leader, resp, &broker.events).map(|_| None),
                Err(e) if e.error == ErrorCode::OffsetOutOfRange => match e.log_end_offset {
                    Some(leo) => r
                        .follower_out_of_range(leader, leo, &broker.events)
                        .map(|_| None),
                    None => Ok(Some(100)),
                },
                Err(e) => {
                    tracing::debug!("fetch from {leader}: {e}");
                    Ok(Some(if e.error == ErrorCode::RequestTimedOut {
                        100
                    } else {
                        25
                    }))
                }
            };
            drop(r);
            handle.notify();
            outcome.unwrap_or_else(|e| {
                tracing::error!(
                    "follower {}/{} failed to apply a fetch: {e}",
                    req.topic,
                    req.partition
                );
                Some(500)
            })
        };
        if let Some(ms) = backoff {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
}

async fn send_alter(
    broker: Shared,
    handle: Arc<PartitionHandle>,
    topic: String,
    partition: u32,
    proposal: AlterProposal,
) {
    let req = AlterPartitionRequest {
        cluster_id: broker.config.cluster_id.clone(),
        broker_id: broker.config.id,
        topic,
        partition,
        leader_epoch: proposal.leader_epoch,
        partition_epoch: proposal.partition_epoch,
        new_isr: proposal.new_isr,
    };
    let url = broker.controller_url("/v1/internal/alter-partition");
    let result = post_json(&broker.http, &url, &req, Duration::from_millis(2_000)).await;
    handle
        .lock()
        .on_alter_result(result, now_ms(), &broker.events);
    handle.notify();
}

fn spawn_alter(broker: &Shared, handle: &Arc<PartitionHandle>, proposal: Option<AlterProposal>) {
    if let Some(proposal) = proposal {
        let (topic, partition) = {
            let r = handle.lock();
            (r.topic.clone(), r.partition)
        };
        tokio::spawn(send_alter(
            broker.clone(),
            handle.clone(),
            topic,
            partition,
            proposal,
        ));
    }
}

async fn heartbeat_loop(broker: Shared) {
    let period = Duration::from_millis(broker.config.heartbeat_interval_ms.max(1));
    let mut failures = 0u64;
    loop {
        match broker.heartbeat_once().await {
            Ok(()) => failures = 0,
            Err(e) => {
                failures += 1;
                if failures.is_power_of_two() {
                    tracing::warn!("heartbeat to the controller failed ({failures} in a row): {e}");
                }
            }
        }
        tokio::time::sleep(period).await;
    }
}

async fn isr_loop(broker: Shared) {
    let period = Duration::from_millis((broker.config.replica_lag_time_max_ms / 4).clamp(10, 500));
    loop {
        tokio::time::sleep(period).await;
        for handle in broker.handles() {
            let proposal = handle
                .lock()
                .maybe_shrink_isr(now_ms(), broker.isr_settings());
            spawn_alter(&broker, &handle, proposal);
        }
    }
}

async fn checkpoint_loop(broker: Shared) {
    let period = Duration::from_millis(broker.config.hw_checkpoint_interval_ms.max(10));
    loop {
        tokio::time::sleep(period).await;
        let b = broker.clone();
        let _ = tokio::task::spawn_blocking(move || b.write_hw_checkpoints()).await;
    }
}

// ---- HTTP handlers ----

type Body = Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>;

fn partition_arg(value: i64) -> Result<u32, ApiError> {
    u32::try_from(value)
        .map_err(|_| ApiError::invalid(format!("partition must be 0 or more (got {value})")))
}

async fn produce(State(broker): State<Shared>, body: Body) -> ApiResult<ProduceResponse> {
    let req: ProduceRequest = parse_body(body)?;
    let partition = partition_arg(req.partition)?;
    let acks = Acks::parse(&req.acks)?;
    let timeout_ms = match req.timeout_ms {
        None => DEFAULT_PRODUCE_TIMEOUT_MS,
        Some(t) if (0..=MAX_PRODUCE_TIMEOUT_MS).contains(&t) => t as u64,
        Some(t) => {
            return Err(ApiError::invalid(format!(
                "timeout_ms must be 0 to {MAX_PRODUCE_TIMEOUT_MS} (got {t})"
            )))
        }
    };
    if req.records.is_empty() || req.records.len() > MAX_RECORDS_PER_PRODUCE {
        return Err(ApiError::invalid(format!(
            "a produce carries 1 to {MAX_RECORDS_PER_PRODUCE} records (got {})",
            req.records.len()
        )));
    }
    if let Some(big) = req
        .records
        .iter()
        .find(|r| r.value.len() > crate::storage::log::MAX_VALUE_BYTES)
    {
        return Err(ApiError::new(
            ErrorCode::MessageTooLarge,
            format!("a value of {} bytes is over the limit", big.value.len()),
        ));
    }
    let handle = broker.partition(&req.topic, partition)?;
    let values: Vec<String> = req.records.into_iter().map(|r| r.value).collect();
    let count = values.len() as u64;
    if acks == Acks::None {
        // acks=0: the client is answered before the append, and never learns its outcome.
        tokio::spawn(async move {
            let result = handle.lock().append_as_leader(values, acks, now_ms());
            handle.notify();
            if let Err(e) = result {
                tracing::debug!("acks=0 produce dropped: {e}");
            }
        });
        return Ok(Json(ProduceResponse {
            base_offset: None,
            count: None,
            leader_epoch: None,
        }));
    }
    let (base, last, epoch) = {
        let mut r = handle.lock();
        let (base, last) = r.append_as_leader(values, acks, now_ms())?;
        (base, last, r.current_epoch())
    };
    handle.notify();
    let ok = Json(ProduceResponse {
        base_offset: Some(base),
        count: Some(count),
        leader_epoch: Some(epoch),
    });
    if acks == Acks::Leader {
        return Ok(ok);
    }
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    match handle
        .wait_for(deadline, |r| r.acks_all_status(last, epoch))
        .await
    {
        Some(Ok(())) => Ok(ok),
        Some(Err(e)) => Err(e),
        None => Err(ApiError::new(
            ErrorCode::RequestTimedOut,
            format!(
                "offsets {base}..={last} were appended but not committed within {timeout_ms} ms"
            ),
        )),
    }
}

fn query_u64(
    q: &HashMap<String, String>,
    key: &str,
    default: Option<u64>,
    max: u64,
) -> Result<u64, ApiError> {
    let Some(text) = q.get(key) else {
        return default
            .ok_or_else(|| ApiError::invalid(format!("query parameter {key} is required")));
    };
    let n: i128 = text
        .parse()
        .map_err(|_| ApiError::invalid(format!("{key} must be a whole number (got {text:?})")))?;
    if n < 0 || n > max as i128 {
        return Err(ApiError::invalid(format!(
            "{key} must be 0 to {max} (got {n})"
        )));
    }
    Ok(n as u64)
}

async fn fetch(
    State(broker): State<Shared>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<FetchResponse> {
    let Query(q) = query.map_err(|e| ApiError::invalid(format!("bad query: {e}")))?;
    let topic = q
        .get("topic")
        .ok_or_else(|| ApiError::invalid("query parameter topic is required"))?;
    let partition = query_u64(&q, "partition", None, u32::MAX as u64)? as u32;
    let offset = query_u64(&q, "offset", None, i64::MAX as u64)?;
    let max_records =
        query_u64(&q, "max_records", Some(1000), MAX_FETCH_RECORDS as u64)?.max(1) as usize;
    let max_wait_ms = query_u64(&q, "max_wait_ms", Some(0), MAX_WAIT_MS)?;
    let handle = broker.partition(topic, partition)?;
    let deadline = Instant::now() + Duration::from_millis(max_wait_ms);
    let answer = handle
        .wait_for(deadline, |r| {
            consumer_read(
                r,
                offset,
                max_records,
                max_wait_ms == 0 || Instant::now() >= deadline,
            )
        })
        .await;
    match answer {
        Some(result) => result.map(Json),
        // The wait ran out with nothing new below HW: answer empty, like Kafka's max.wait.
        None => consumer_read(&handle.lock(), offset, max_records, true)
            .expect("final read answers")
            .map(Json),
    }
}

/// A consumer's read: only records below HW. `None` means "wait for more" (nothing readable yet
/// and the caller may still wait).
fn consumer_read(
    r: &Replica,
    offset: u64,
    max_records: usize,
    final_try: bool,
) -> Option<Result<FetchResponse, ApiError>> {
    if r.role != Role::Leader {
        return Some(Err(r.not_leader()));
    }
    if offset > r.leo() {
        let mut e = ApiError::new(
            ErrorCode::OffsetOutOfRange,
            format!("offset {offset} is past the LEO {}", r.leo()),
        );
        e.log_end_offset = Some(r.leo());
        return Some(Err(e));
    }
    if offset >= r.hw && !final_try {
        return None;
    }
    let records = match r.log.read(offset, r.hw, max_records) {
        Ok(records) => records,
        Err(e) => return Some(Err(ApiError::storage(e))),
    };
    debug_assert!(records.iter().all(|rec| rec.offset < r.hw));
    Some(Ok(FetchResponse {
        records: records
            .into_iter()
            .map(|rec| FetchedRecord {
                offset: rec.offset,
                leader_epoch: rec.leader_epoch,
                value: rec.value,
            })
            .collect(),
        high_watermark: r.hw,
        leader_epoch: r.current_epoch(),
    }))
}

async fn replica_fetch(
    State(broker): State<Shared>,
    body: Body,
) -> ApiResult<ReplicaFetchResponse> {
    let req: ReplicaFetchRequest = parse_body(body)?;
    if req.cluster_id != broker.config.cluster_id {
        return Err(ApiError::new(
            ErrorCode::InconsistentClusterId,
            format!(
                "fetch from cluster {:?}; this broker is in {:?}",
                req.cluster_id, broker.config.cluster_id
            ),
        ));
    }
    let handle = broker.partition(&req.topic, req.partition)?;
    let _in_flight = handle.track_fetch(req.replica_id);
    let (answer, expand, hw_seen) = {
        let mut r = handle.lock();
        let (answer, expand) = r.leader_fetch(&req, now_ms())?;
        (answer, expand, r.hw)
    };
    handle.notify();
    spawn_alter(&broker, &handle, expand);
    let empty = match answer {
        LeaderFetch::Records(resp) => return Ok(Json(resp)),
        LeaderFetch::Empty(resp) if req.max_wait_ms == 0 => return Ok(Json(resp)),
        LeaderFetch::Empty(resp) => resp,
    };
    // Long-poll: answer when there is data, when HW moves (so followers learn it promptly), or
    // when this broker stops leading in this epoch.
    let wait_ms = req.max_wait_ms.min(MAX_WAIT_MS);
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    let epoch = req.current_leader_epoch;
    let woke = handle
        .wait_for(deadline, |r| {
            let moved = r.leo() > req.fetch_offset || r.hw != hw_seen;
            let deposed = r.role != Role::Leader || r.leader_epoch != Some(epoch);
            (moved || deposed).then_some(())
        })
        .await;
    if woke.is_none() {
        return Ok(Json(empty));
    }
    let r = handle.lock();
    if r.role != Role::Leader || r.leader_epoch != Some(epoch) {
        return Ok(Json(empty));
    }
    r.read_for_follower(
        req.fetch_offset,
        req.max_records.min(REPLICA_FETCH_MAX_RECORDS),
    )
    .map(Json)
}

async fn state(State(broker): State<Shared>) -> ApiResult<BrokerState> {
    Ok(Json(broker.state()))
}

async fn metadata(State(broker): State<Shared>) -> ApiResult<Metadata> {
    let cached = broker
        .metadata
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(Json(cached.unwrap_or_else(|| Metadata {
        cluster_id: broker.config.cluster_id.clone(),
        ..Metadata::default()
    })))
}

pub fn router(broker: Shared) -> Router {
    let limit = broker.config.max_request_bytes;
    Router::new()
        .route("/v1/produce", post(produce))
        .route("/v1/fetch", get(fetch))
        .route("/v1/state", get(state))
        .route("/v1/metadata", get(metadata))
        .route("/v1/internal/replica-fetch", post(replica_fetch))
        .fallback(crate::server::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(broker)
}

/// Runs a broker until SIGTERM/SIGINT.
pub async fn run(config: BrokerConfig, listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let broker = Broker::new(config)?;
    tokio::spawn(heartbeat_loop(broker.clone()));
    tokio::spawn(isr_loop(broker.clone()));
    tokio::spawn(checkpoint_loop(broker.clone()));
    let result = crate::server::serve(listen, router(broker.clone())).await;
    broker.shutdown();
    result
}
