//! Loading a stored run for the report: `test.json`, `results.json` (or a fresh check when it
//! is missing), one streaming pass over `history.jsonl` into a compact digest, and every node's
//! `events.jsonl`. It reads the files only through the checker crate's types
//! (`faultline_checker::history`, `events`, `Results`); it defines no format of its own and
//! draws nothing.
//!
//! Every time here is in seconds since the run's start (`time_ns` = 0, which `test.json`'s
//! `start_unix_ms` places on the wall clock); node events are moved onto that axis on load.

use std::collections::HashMap;
use std::path::Path;

use faultline_checker::config::TestConfig;
use faultline_checker::events::NodeEvent;
use faultline_checker::history::{OpLine, OpType, OpValue, Process, HISTORY_FILE};
use faultline_checker::jsonl::{for_each_line, Damage};
use faultline_checker::Results;

/// How a client operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    Fail,
    /// `info`, or an invoke the history never completed.
    Info,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Ok, Outcome::Fail, Outcome::Info];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info (unknown)",
        }
    }

    fn of(kind: OpType) -> Outcome {
        match kind {
            OpType::Ok => Outcome::Ok,
            OpType::Fail => Outcome::Fail,
            OpType::Invoke | OpType::Info => Outcome::Info,
        }
    }
}

/// One completed client operation, kept small (12 bytes) so a million of them fit easily.
#[derive(Debug, Clone, Copy)]
pub struct ClientOp {
    /// When it completed, seconds since the run's start.
    pub time_s: f32,
    pub latency_ms: f32,
    pub outcome: Outcome,
    pub is_send: bool,
    pub partition: u16,
}

/// A nemesis operation from the history.
#[derive(Debug, Clone)]
pub struct FaultOp {
    pub time_s: f64,
    /// The fault vocabulary: kill, start, pause, resume, delay, partition, heal, wait.
    pub f: String,
    pub value: serde_json::Value,
    /// Set when the nemesis could not perform the action.
    pub error: Option<String>,
}

/// A value observed over time for one partition (an acknowledged offset, a consumer's HW).
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub time_s: f32,
    pub value: u64,
}

/// What the report needs from `history.jsonl`, gathered in one pass.
#[derive(Debug, Default)]
pub struct HistoryDigest {
    pub ops: Vec<ClientOp>,
    pub faults: Vec<FaultOp>,
    /// The harness's `abort` marker: when, and why.
    pub abort: Option<(f64, String)>,
    /// Per (topic, partition): the offsets of `ok` sends, in completion order.
    pub acked: HashMap<(String, u32), Vec<Sample>>,
    /// Per (topic, partition): the HW each `ok` poll answered with.
    pub polled_hw: HashMap<(String, u32), Vec<Sample>>,
    /// Partition names by the index used in [`ClientOp::partition`].
    pub partition_names: Vec<(String, u32)>,
    /// First client invoke and last client completion (the chaos phase, seen by clients).
    pub first_client_s: Option<f64>,
    pub last_client_s: Option<f64>,
    /// The last time in the history.
    pub end_s: f64,
    /// Lines that did not parse (the checker's warnings name them).
    pub bad_lines: u64,
}

/// A node event placed on the run's time axis.
#[derive(Debug, Clone)]
pub struct TimedEvent {
    pub time_s: f64,
    pub event: NodeEvent,
}

/// Everything the report is drawn from.
pub struct RunData {
    pub config: TestConfig,
    pub results: Results,
    pub history: HistoryDigest,
    /// Every node event, sorted by time.
    pub events: Vec<TimedEvent>,
    /// `schedule.txt` as written (times since the chaos phase started), when present.
    pub schedule: Option<String>,
}

impl RunData {
    /// Loads a run around its history digest ([`read_history`], which `faultline check` runs
    /// beside the checker); `results` are the checker's.
    pub fn load_with(
        run_dir: &Path,
        config: TestConfig,
        results: Results,
        history: HistoryDigest,
    ) -> anyhow::Result<Self> {
        let events = read_events(run_dir, config.start_unix_ms);
        let schedule = std::fs::read_to_string(run_dir.join("schedule.txt")).ok();
        Ok(RunData {
            config,
            results,
            history,
            events,
            schedule,
        })
    }

    /// The last time anything happened: the axis of every plot ends here.
    pub fn end_s(&self) -> f64 {
        let last_event = self.events.last().map_or(0.0, |e| e.time_s);
        self.history.end_s.max(last_event).max(0.001)
    }

    /// The node events of one partition.
    pub fn partition_events<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
    ) -> impl Iterator<Item = &'a TimedEvent> + 'a {
        self.events.iter().filter(move |e| {
            e.event.topic.as_deref() == Some(topic) && e.event.partition == Some(partition)
        })
    }
}

/// An invoke waiting for its completion, per client process.
struct Pending {
    time_ns: u64,
    is_send: bool,
    partition: u16,
}

/// One pass over a run's `history.jsonl` (none is an empty digest): it needs nothing the
/// checker finds, so `faultline check` runs it beside the checker.
pub fn read_history(run_dir: &Path) -> HistoryDigest {
    let path = run_dir.join(HISTORY_FILE);
    let mut reader = HistoryReader::default();
    let mut damage = Damage::default();
    // The checker's own line reader: a fast path for the lines the harness writes, serde for
    // the rest, and the values typed without an intermediate JSON tree.
    for_each_line(&path, HISTORY_FILE, &mut damage, |_, line| {
        reader.add(OpLine::parse(line)?);
        Ok(())
    });
    reader.digest.bad_lines = damage.total;
    reader.finish()
}

fn seconds(time_ns: u64) -> f64 {
    time_ns as f64 / 1e9
}

/// The digest being gathered, with the invokes still waiting for their completion and the
/// samples per partition index (named in `digest.partition_names`).
#[derive(Default)]
struct HistoryReader {
    digest: HistoryDigest,
    pending: HashMap<u64, Pending>,
    acked: Vec<Vec<Sample>>,
    polled_hw: Vec<Vec<Sample>>,
}

impl HistoryReader {
    fn add(&mut self, op: OpLine<'_>) {
        let time_s = seconds(op.time_ns);
        let digest = &mut self.digest;
        digest.end_s = digest.end_s.max(time_s);
        let client = match op.process {
            Process::Client(id) => id,
            Process::Named(name) => {
                let error = op.error.map(|e| e.to_string());
                if &*op.f == "abort" {
                    digest.abort = Some((time_s, error.unwrap_or_default()));
                } else if name == "nemesis" {
                    let value = op
                        .value
                        .raw()
                        .and_then(|raw| serde_json::from_str(raw).ok());
                    digest.faults.push(FaultOp {
                        time_s,
                        f: op.f.to_string(),
                        value: value.unwrap_or(serde_json::Value::Null),
                        error,
                    });
                }
                return;
            }
        };
        let is_send = &*op.f == "send";
        if !is_send && &*op.f != "poll" {
            return;
        }
        if op.kind == OpType::Invoke {
            let (topic, partition) = match &op.value {
                OpValue::Send(send) => (&*send.topic, send.partition),
                OpValue::Poll(poll) => (&*poll.topic, poll.partition),
                _ => return,
            };
            let partition = self.partition_index(topic, partition);
            self.digest.first_client_s.get_or_insert(time_s);
            let pending = Pending {
                time_ns: op.time_ns,
                is_send,
                partition,
            };
            self.pending.insert(client, pending);
            return;
        }
        let Some(invoke) = self.pending.remove(&client) else {
            return;
        };
        self.digest.last_client_s = Some(time_s);
        let outcome = Outcome::of(op.kind);
        if outcome == Outcome::Ok {
            self.sample(&op.value, time_s as f32);
        }
        self.digest.push_op(invoke, op.time_ns, outcome);
    }

    /// The index of a partition in `partition_names`, added on first sight. A run has a
    /// handful of partitions, so a scan beats hashing an owned key per operation.
    fn partition_index(&mut self, topic: &str, partition: u32) -> u16 {
        let names = &mut self.digest.partition_names;
        if let Some(i) = names
            .iter()
            .position(|(t, p)| t == topic && *p == partition)
        {
            return i as u16;
        }
        names.push((topic.to_string(), partition));
        self.acked.push(Vec::new());
        self.polled_hw.push(Vec::new());
        (names.len() - 1) as u16
    }

    /// Records the acknowledged offset of an ok send, or the HW of an ok poll.
    fn sample(&mut self, value: &OpValue<'_>, time_s: f32) {
        let (topic, partition, sample, acked) = match value {
            OpValue::Send(send) => (&*send.topic, send.partition, send.offset, true),
            OpValue::Poll(poll) => (&*poll.topic, poll.partition, poll.high_watermark, false),
            _ => return,
        };
        let Some(value) = sample else {
            return;
        };
        let i = self.partition_index(topic, partition) as usize;
        let samples = if acked {
            &mut self.acked[i]
        } else {
            &mut self.polled_hw[i]
        };
        samples.push(Sample { time_s, value });
    }

    /// Invokes never completed count as unknown, ending with the history; the samples go under
    /// their partitions' names.
    fn finish(mut self) -> HistoryDigest {
        let end_ns = (self.digest.end_s * 1e9) as u64;
        for p in std::mem::take(&mut self.pending).into_values() {
            self.digest.push_op(p, end_ns, Outcome::Info);
        }
        let names = &self.digest.partition_names;
        let named = |samples: Vec<Vec<Sample>>| -> HashMap<(String, u32), Vec<Sample>> {
            names
                .iter()
                .cloned()
                .zip(samples)
                .filter(|(_, s)| !s.is_empty())
                .collect()
        };
        let (acked, polled_hw) = (named(self.acked), named(self.polled_hw));
        self.digest.acked = acked;
        self.digest.polled_hw = polled_hw;
        self.digest
    }
}

impl HistoryDigest {
    fn push_op(&mut self, invoke: Pending, end_ns: u64, outcome: Outcome) {
        self.ops.push(ClientOp {
            time_s: seconds(end_ns) as f32,
            latency_ms: end_ns.saturating_sub(invoke.time_ns) as f32 / 1e6,
            outcome,
            is_send: invoke.is_send,
            partition: invoke.partition,
        });
    }
}

/// Every `nodes/*/events.jsonl`, on the run's axis, sorted by time. Damaged lines are skipped:
/// the checker's warnings already name them.
fn read_events(run_dir: &Path, start_unix_ms: u64) -> Vec<TimedEvent> {
    let mut events = Vec::new();
    let Ok(dirs) = std::fs::read_dir(run_dir.join("nodes")) else {
        return events;
    };
    for dir in dirs.flatten() {
        let Ok(text) = std::fs::read_to_string(dir.path().join("events.jsonl")) else {
            continue;
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Ok(event) = serde_json::from_str::<NodeEvent>(line) {
                let time_s = (event.time_ms as f64 - start_unix_ms as f64) / 1000.0;
                events.push(TimedEvent { time_s, event });
            }
        }
    }
    events.sort_by(|a, b| a.time_s.total_cmp(&b.time_s));
    events
}

/// `results.json` when it is there and readable, else a fresh check of the run (writing
/// nothing), so that a run stored before the report existed, or whose check was interrupted,
/// still gets one.
pub fn load_results(run_dir: &Path) -> anyhow::Result<Results> {
    if let Ok(text) = std::fs::read(run_dir.join("results.json")) {
        if let Ok(results) = serde_json::from_slice(&text) {
            return Ok(results);
        }
        tracing::warn!("results.json is unreadable; checking the run again");
    }
    faultline_checker::check_run(run_dir)
        .map_err(|e| crate::test::error::BadArgs(e.to_string()).into())
}
