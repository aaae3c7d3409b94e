//! The workloads: producers that send unique values at a rate, and consumers that poll each
//! partition from their last offset. Every send is one operation in the history (an invoke and
//! its completion), however many attempts it took: a producer retries a send whose attempt
//! failed retriably, with the same value, as Kafka's producer does (`--retries`; the state
//! machine is [`crate::producer`]), and the completion says how many attempts it made. With
//! idempotence each producer sends with a producer id, epoch and sequence numbers. Every poll
//! is one operation. A process whose operation ended `info` may still have it in flight, so,
//! as in Jepsen, it continues under a new process number.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_checker::config::Workload;
use faultline_checker::history::{Acks, OpType, PollValue, PolledRecord, Process, SendValue};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{ClientError, FetchRequest, NodeClient, Produce, ProduceResponse};
use crate::kafka::KafkaClient;
use crate::leaders::{Endpoints, LeaderCache};
use crate::producer::{
    Attempts, Done, Next, ProducerSettings, Session, MIN_ATTEMPT_TIME, RETRY_BACKOFF,
};
use crate::recorder::HistoryWriter;

#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    pub kind: Workload,
    pub topics: Vec<String>,
    pub partitions: u32,
    pub acks: Acks,
    /// Sends per second over all producers.
    pub rate: f64,
    /// Number of producers.
    pub concurrency: u32,
}

impl WorkloadSpec {
    fn consumers(&self) -> u64 {
        match self.kind {
            Workload::Produce => 0,
            Workload::ProduceConsume => self.topics.len() as u64 * u64::from(self.partitions),
        }
    }

    /// The process number of the scheduled producer (`produce` schedule steps): after every
    /// workload process.
    pub fn schedule_process(&self) -> u64 {
        u64::from(self.concurrency) + self.consumers()
    }

    /// How far a process number moves after an `info`: past every live process number.
    pub fn process_stride(&self) -> u64 {
        self.schedule_process() + 1
    }
}

/// Counts of completions, by function and type.
#[derive(Debug, Default)]
pub struct Counters {
    pub send_ok: AtomicU64,
    pub send_fail: AtomicU64,
    pub send_info: AtomicU64,
    pub poll_ok: AtomicU64,
    pub poll_fail: AtomicU64,
    pub poll_info: AtomicU64,
    pub records_polled: AtomicU64,
}

impl Counters {
    fn count(&self, f: &str, kind: OpType) {
        let counter = match (f, kind) {
            ("send", OpType::Ok) => &self.send_ok,
            ("send", OpType::Fail) => &self.send_fail,
            ("send", _) => &self.send_info,
            (_, OpType::Ok) => &self.poll_ok,
            (_, OpType::Fail) => &self.poll_fail,
            _ => &self.poll_info,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn summary(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "send ok {} fail {} info {}; poll ok {} fail {} info {} ({} records)",
            get(&self.send_ok),
            get(&self.send_fail),
            get(&self.send_info),
            get(&self.poll_ok),
            get(&self.poll_fail),
            get(&self.poll_info),
            get(&self.records_polled),
        )
    }
}

/// What every client shares: the HTTP client, where the nodes are, the leader cache, the
/// history and the source of unique values.
pub struct ClientContext {
    pub client: NodeClient,
    pub endpoints: Endpoints,
    pub leaders: LeaderCache,
    pub history: Arc<HistoryWriter>,
    pub counters: Counters,
    /// The broker-side wait of a produce (`timeout_ms`), shorter than the client's own timeout
    /// so that the broker's REQUEST_TIMED_OUT usually arrives before the client gives up.
    pub produce_timeout_ms: u64,
    /// Set for `--client kafka`: sends go over the Kafka wire protocol to the leader's Kafka
    /// listener instead of `POST /v1/produce`.
    pub kafka: Option<KafkaClient>,
    /// How producers send: retries and idempotence.
    pub producer: ProducerSettings,
    /// With idempotence: each producer's session, by its slot (a client process's number
    /// modulo the process stride: the same producer under every number it takes). A producer
    /// without one asks the broker for a producer id before its next send.
    sessions: Mutex<HashMap<u64, Session>>,
    /// Set when the run stops issuing operations: a send in flight makes no further attempt.
    stopping: AtomicBool,
    /// Set once a failed InitProducerId has been said.
    said_no_producer_id: AtomicBool,
    next_value: AtomicU64,
}

impl ClientContext {
    pub fn new(client: NodeClient, endpoints: Endpoints, history: Arc<HistoryWriter>) -> Self {
        let produce_timeout_ms = (client.timeout().as_millis() as u64 * 3 / 4).max(1);
        ClientContext {
            client,
            endpoints,
            leaders: LeaderCache::new(),
            history,
            counters: Counters::default(),
            produce_timeout_ms,
            kafka: None,
            producer: ProducerSettings::default(),
            sessions: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
            said_no_producer_id: AtomicBool::new(false),
            next_value: AtomicU64::new(0),
        }
    }

    /// Sends over the Kafka wire protocol (`--client kafka`) with this client.
    pub fn with_kafka(mut self, kafka: KafkaClient) -> Self {
        self.kafka = Some(kafka);
        self
    }

    /// Producers retry, and send idempotently, as `settings` say.
    pub fn with_producer(mut self, settings: ProducerSettings) -> Self {
        self.producer = settings;
        self
    }

    /// From now on no send starts another attempt (the run is stopping): what is in flight
    /// completes within one request timeout.
    pub fn stop_retrying(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// The session of the producer in `slot`, asking `leader` for a new producer id when it
    /// has none. `None` when the broker could not be asked or did not answer.
    async fn session(
        &self,
        slot: u64,
        leader: u32,
        topic: &str,
        partition: u32,
    ) -> Option<Session> {
        let held = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&slot);
        if held.is_some() {
            return held;
        }
        let identity = match &self.kafka {
            Some(kafka) => {
                let addr = self.endpoints.kafka_brokers.get(&leader).copied()?;
                kafka.init_producer_id(addr).await
            }
            None => {
                let addr = self.broker_addr(leader)?;
                self.client.init_producer_id(addr).await
            }
        };
        match identity {
            Ok(identity) => Some(Session::new(identity)),
            Err(error) => {
                // Said once a run: a broker without producer ids (404 from a node that predates
                // them) would otherwise leave a run without a send and without a word.
                if !self.said_no_producer_id.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "broker {leader} gave no producer id ({error}); an idempotent producer \
                         sends nothing until a broker gives it one (said once)"
                    );
                }
                forget_stale_leader(self, topic, partition, &error);
                None
            }
        }
    }

    /// Keeps the session of the producer in `slot` for its next send.
    fn keep_session(&self, slot: u64, session: Session) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(slot, session);
    }

    fn broker_addr(&self, broker: u32) -> Option<SocketAddr> {
        self.endpoints.brokers.get(&broker).copied()
    }

    /// Fetches from `leader` through the client this run uses (`addr` is its HTTP address).
    async fn fetch(
        &self,
        leader: u32,
        addr: SocketAddr,
        request: FetchRequest<'_>,
    ) -> Result<crate::client::FetchResponse, ClientError> {
        let Some(kafka) = &self.kafka else {
            return self.client.fetch(addr, request).await;
        };
        let addr = self
            .endpoints
            .kafka_brokers
            .get(&leader)
            .copied()
            .ok_or_else(|| no_address(leader))?;
        kafka.fetch(addr, request).await
    }

    /// Produces one record to `leader` through the client this run uses, within `timeout`
    /// (the broker waits ¾ of it for acks=all).
    async fn produce(
        &self,
        leader: u32,
        mut request: Produce<'_>,
        timeout: Duration,
    ) -> Result<ProduceResponse, ClientError> {
        let timeout_ms = (timeout.as_millis() as u64 * 3 / 4).max(1);
        request.timeout_ms = self.produce_timeout_ms.min(timeout_ms);
        let Some(kafka) = &self.kafka else {
            let addr = self.broker_addr(leader).ok_or_else(|| no_address(leader))?;
            return self.client.produce_within(addr, &request, timeout).await;
        };
        let addr = self
            .endpoints
            .kafka_brokers
            .get(&leader)
            .copied()
            .ok_or_else(|| no_address(leader))?;
        kafka.produce_within(addr, &request, timeout).await
    }

    fn record(
        &self,
        process: u64,
        kind: OpType,
        f: &str,
        value: impl serde::Serialize,
        error: Option<String>,
    ) -> std::io::Result<()> {
        let value = serde_json::to_value(value).map_err(std::io::Error::other)?;
        self.history
            .append(Process::Client(process), kind, f, value, error)?;
        Ok(())
    }
}

/// A client process: its current number and how far to move it after an `info`.
#[derive(Debug, Clone, Copy)]
pub struct ClientProcess {
    pub id: u64,
    pub stride: u64,
}

impl ClientProcess {
    fn crashed(&mut self) {
        self.id += self.stride;
    }

    /// The producer this process is, under whatever number it has taken: its first number.
    fn slot(&self) -> u64 {
        self.id % self.stride.max(1)
    }
}

/// A leader the run has no address for: the request never left, a definite failure.
fn no_address(leader: u32) -> ClientError {
    ClientError::Refused(format!("no address for broker {leader}"))
}

/// The partition's leader (from the leader cache, else the controller) and its address.
async fn leader_addr(
    ctx: &ClientContext,
    topic: &str,
    partition: u32,
) -> Option<(u32, std::net::SocketAddr)> {
    let leader = ctx
        .leaders
        .leader(
            &ctx.client,
            ctx.kafka.as_ref(),
            &ctx.endpoints,
            topic,
            partition,
        )
        .await?;
    // A system reached only by Kafka's protocol has no HTTP address: its Kafka link stands in
    // (the sends and polls look up the Kafka address themselves).
    let addr = ctx
        .broker_addr(leader)
        .or_else(|| ctx.endpoints.kafka_brokers.get(&leader).copied())?;
    Some((leader, addr))
}

/// Sends one unique value to the partition's leader, retrying it as the producer settings
/// say, and records the send (one invoke, one completion). Returns `None` when no leader is
/// known, or, with idempotence, no producer id could be had: nothing was attempted or
/// recorded.
pub async fn send_one(
    ctx: &ClientContext,
    process: &mut ClientProcess,
    topic: &str,
    partition: u32,
    acks: Acks,
) -> std::io::Result<Option<OpType>> {
    let Some((leader, _)) = leader_addr(ctx, topic, partition).await else {
        return Ok(None);
    };
    // Kafka allows idempotence with acks=all only; a send asking for less goes without.
    let idempotent = ctx.producer.idempotence && acks == Acks::All;
    let session = match idempotent {
        true => match ctx.session(process.slot(), leader, topic, partition).await {
            Some(session) => Some(session),
            None => return Ok(None),
        },
        false => None,
    };
    let batch = session.as_ref().map(|s| s.batch(topic, partition));
    let value = ctx.next_value.fetch_add(1, Ordering::Relaxed).to_string();
    let mut send = SendValue::new(topic.to_string(), partition, value, Some(acks));
    if let Some(batch) = batch {
        send.producer_id = Some(batch.producer_id);
        send.producer_epoch = Some(batch.producer_epoch);
        send.sequence = Some(batch.base_sequence);
    }
    ctx.record(process.id, OpType::Invoke, "send", &send, None)?;
    let value = send.value.clone();
    let request = Produce {
        topic,
        partition,
        acks,
        timeout_ms: ctx.produce_timeout_ms,
        value: &value,
        producer: batch,
    };
    let (done, attempts) = attempt_until_done(ctx, leader, request, &mut send).await;
    if let Some(session) = session.and_then(|s| s.after(topic, partition, done)) {
        ctx.keep_session(process.slot(), session);
    }
    send.attempts = Some(attempts.made());
    send.retry_errors = attempts.retry_errors().to_vec();
    let error = attempts.last_error().map(str::to_string);
    let error = (done.kind != OpType::Ok).then_some(error).flatten();
    ctx.record(process.id, done.kind, "send", &send, error)?;
    ctx.counters.count("send", done.kind);
    if done.kind == OpType::Info {
        process.crashed();
    }
    Ok(Some(done.kind))
}

/// Makes the attempts of one send, first to `leader`: each within what is left of the
/// delivery timeout (at most one request timeout), a retry after [`RETRY_BACKOFF`] to the
/// partition's leader as the cache then says. Fills in `send` from the acknowledging answer.
async fn attempt_until_done(
    ctx: &ClientContext,
    leader: u32,
    request: Produce<'_>,
    send: &mut SendValue,
) -> (Done, Attempts) {
    let request_timeout = ctx.client.timeout();
    let deadline = Instant::now() + ctx.producer.delivery_timeout(request_timeout);
    let mut attempts = Attempts::new(ctx.producer.retries);
    let mut to = leader;
    loop {
        attempts.start();
        let left = deadline.saturating_duration_since(Instant::now());
        match ctx.produce(to, request, left.min(request_timeout)).await {
            Ok(response) => {
                send.offset = response.base_offset;
                if response.base_offset.is_some() {
                    send.node = Some(to);
                    send.leader_epoch = response.leader_epoch;
                }
                return (attempts.succeeded(), attempts);
            }
            Err(error) => {
                forget_stale_leader(ctx, request.topic, request.partition, &error);
                let room = !ctx.stopping() && has_room(deadline, RETRY_BACKOFF);
                match attempts.failed(error.attempt_class(), error.history_error(), room) {
                    Next::Done(done) => return (done, attempts),
                    Next::Retry => {}
                }
            }
        }
        tokio::time::sleep(RETRY_BACKOFF).await;
        let leader = leader_before(ctx, request.topic, request.partition, deadline).await;
        // The run may have begun stopping meanwhile: then no attempt starts.
        match leader.filter(|_| !ctx.stopping()) {
            Some(leader) => to = leader,
            None => return (attempts.give_up(false), attempts),
        }
    }
}

/// True when an attempt of at least [`MIN_ATTEMPT_TIME`] still fits before `deadline` after
/// waiting `wait`.
fn has_room(deadline: Instant, wait: Duration) -> bool {
    Instant::now() + wait + MIN_ATTEMPT_TIME <= deadline
}

/// The partition's leader for a retry, waiting for one to be known while an attempt still
/// fits before `deadline` and the run is not stopping.
async fn leader_before(
    ctx: &ClientContext,
    topic: &str,
    partition: u32,
    deadline: Instant,
) -> Option<u32> {
    loop {
        if let Some((leader, _)) = leader_addr(ctx, topic, partition).await {
            return Some(leader);
        }
        if ctx.stopping() || !has_room(deadline, NO_LEADER_BACKOFF) {
            return None;
        }
        tokio::time::sleep(NO_LEADER_BACKOFF).await;
    }
}

fn forget_stale_leader(ctx: &ClientContext, topic: &str, partition: u32, error: &ClientError) {
    match error {
        // The leader a refusing broker names comes from its own cache, which can lag the
        // controller (it named a killed broker in practice): ask the controller instead.
        ClientError::Api { code, .. } if code == "NOT_LEADER_OR_FOLLOWER" => {
            ctx.leaders.forget(topic, partition, None);
        }
        ClientError::Api { .. } => {}
        // An unreachable leader may be gone: ask the metadata again next time.
        _ => ctx.leaders.forget(topic, partition, None),
    }
}

/// Polls once from `offset` on the partition's leader and records exactly what came back.
/// Returns the offset to poll from next.
pub async fn poll_once(
    ctx: &ClientContext,
    process: &mut ClientProcess,
    topic: &str,
    partition: u32,
    offset: u64,
) -> std::io::Result<Option<u64>> {
    let Some((leader, addr)) = leader_addr(ctx, topic, partition).await else {
        return Ok(None);
    };
    let mut poll = PollValue {
        topic: topic.to_string(),
        partition,
        offset,
        records: Vec::new(),
        high_watermark: None,
    };
    ctx.record(process.id, OpType::Invoke, "poll", &poll, None)?;
    let request = FetchRequest {
        topic,
        partition,
        offset,
        max_records: 500,
        max_wait_ms: 100,
    };
    let mut next = offset;
    let (kind, error) = match ctx.fetch(leader, addr, request).await {
        Ok(response) => {
            if let Some(last) = response.records.last() {
                next = last.offset + 1;
            }
            poll.high_watermark = Some(response.high_watermark);
            poll.records = response
                .records
                .into_iter()
                .map(|r| PolledRecord {
                    offset: r.offset,
                    value: r.value,
                })
                .collect();
            (OpType::Ok, None)
        }
        Err(error) => {
            forget_stale_leader(ctx, topic, partition, &error);
            if error.code() == Some("OFFSET_OUT_OF_RANGE") {
                // The log was truncated below our position: start again from the beginning,
                // like a Kafka consumer with auto.offset.reset=earliest.
                next = 0;
            }
            (error.poll_outcome(), Some(error.history_error()))
        }
    };
    ctx.counters
        .records_polled
        .fetch_add(poll.records.len() as u64, Ordering::Relaxed);
    ctx.record(process.id, kind, "poll", &poll, error)?;
    ctx.counters.count("poll", kind);
    if kind == OpType::Info {
        process.crashed();
    }
    Ok(Some(next))
}

/// The running workload: one task per client.
pub struct RunningWorkload {
    tasks: JoinSet<std::io::Result<()>>,
    stop: watch::Sender<bool>,
    ctx: Arc<ClientContext>,
}

/// Pause used when no leader is known, so that a leaderless partition does not spin.
const NO_LEADER_BACKOFF: Duration = Duration::from_millis(50);

pub fn spawn(ctx: Arc<ClientContext>, spec: &WorkloadSpec) -> RunningWorkload {
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let stride = spec.process_stride();
    let interval = Duration::from_secs_f64(f64::from(spec.concurrency) / spec.rate.max(0.001));
    let targets: Vec<(String, u32)> = spec
        .topics
        .iter()
        .flat_map(|t| (0..spec.partitions).map(move |p| (t.clone(), p)))
        .collect();
    for worker in 0..u64::from(spec.concurrency) {
        let process = ClientProcess { id: worker, stride };
        let producer = Producer {
            ctx: ctx.clone(),
            targets: targets.clone(),
            acks: spec.acks,
            interval,
        };
        tasks.spawn(producer.run(process, stopped.clone()));
    }
    if spec.kind == Workload::ProduceConsume {
        for (i, (topic, partition)) in targets.iter().enumerate() {
            let process = ClientProcess {
                id: u64::from(spec.concurrency) + i as u64,
                stride,
            };
            let consumer = consume(
                ctx.clone(),
                topic.clone(),
                *partition,
                process,
                stopped.clone(),
            );
            tasks.spawn(consumer);
        }
    }
    RunningWorkload { tasks, stop, ctx }
}

impl RunningWorkload {
    /// Stops issuing operations and waits for the ones in flight to complete (each is bounded
    /// by the client's timeout). Returns the first history write error, if any.
    pub async fn finish(mut self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        self.ctx.stop_retrying();
        let mut result = Ok(());
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok(Err(error)) if result.is_ok() => result = Err(error),
                Err(panic) if result.is_ok() => result = Err(std::io::Error::other(panic)),
                _ => {}
            }
        }
        result
    }
}

struct Producer {
    ctx: Arc<ClientContext>,
    targets: Vec<(String, u32)>,
    acks: Acks,
    interval: Duration,
}

impl Producer {
    async fn run(
        self,
        mut process: ClientProcess,
        mut stopped: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let mut next_at = tokio::time::Instant::now();
        let mut turn = process.id as usize;
        while !*stopped.borrow() {
            let (topic, partition) = &self.targets[turn % self.targets.len()];
            turn += 1;
            let attempted = send_one(&self.ctx, &mut process, topic, *partition, self.acks).await?;
            let now = tokio::time::Instant::now();
            next_at = if attempted.is_none() {
                now + NO_LEADER_BACKOFF
            } else {
                // Keep the rate, but never burst to catch up after a slow call.
                (next_at + self.interval).max(now)
            };
            tokio::select! {
                _ = tokio::time::sleep_until(next_at) => {}
                _ = stopped.changed() => {}
            }
        }
        Ok(())
    }
}

async fn consume(
    ctx: Arc<ClientContext>,
    topic: String,
    partition: u32,
    mut process: ClientProcess,
    mut stopped: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut offset = 0;
    while !*stopped.borrow() {
        match poll_once(&ctx, &mut process, &topic, partition, offset).await? {
            Some(next) => offset = next,
            None => {
                tokio::select! {
                    _ = tokio::time::sleep(NO_LEADER_BACKOFF) => {}
                    _ = stopped.changed() => {}
                }
            }
        }
    }
    Ok(())
}
