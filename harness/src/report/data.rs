//! Loading a stored run for the report: `test.json`, `results.json` (or a fresh check when it
//! is missing), one streaming pass over `history.jsonl` into a compact digest, and every node's
//! `events.jsonl`. It reads the files only through the checker crate's types
//! (`faultline_checker::history`, `events`, `Results`); it defines no format of its own and
//! draws nothing.
//!
//! Every time here is in seconds since the run's start (`time_ns` = 0, which `test.json`'s
//! `start_unix_ms` places on the wall clock); node events are moved onto that axis on load.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use anyhow::Context;
use faultline_checker::events::NodeEvent;
use faultline_checker::history::{Op, OpType, PollValue, Process, SendValue, TestConfig};
use faultline_checker::Results;
use serde::Deserialize;

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
    /// Loads a run; `results` are the checker's (from `results.json` or a fresh check).
    pub fn load(run_dir: &Path, config: TestConfig, results: Results) -> anyhow::Result<Self> {
        let history = read_history(&run_dir.join("history.jsonl"))?;
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

/// The partition a send or poll names (both carry `topic` and `partition`).
#[derive(Deserialize)]
struct Target {
    topic: String,
    partition: u32,
}

fn read_history(path: &Path) -> anyhow::Result<HistoryDigest> {
    let mut digest = HistoryDigest::default();
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(digest),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut partitions: HashMap<(String, u32), u16> = HashMap::new();
    let mut line = Vec::with_capacity(512);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Op>(&line) {
            Ok(op) => digest.add(op, &mut pending, &mut partitions),
            Err(_) => digest.bad_lines += 1,
        }
    }
    // Invokes never completed count as unknown, ending with the history.
    let end_ns = (digest.end_s * 1e9) as u64;
    for p in pending.into_values() {
        digest.push_op(p, end_ns, Outcome::Info);
    }
    Ok(digest)
}

fn seconds(time_ns: u64) -> f64 {
    time_ns as f64 / 1e9
}

impl HistoryDigest {
    fn add(
        &mut self,
        op: Op,
        pending: &mut HashMap<u64, Pending>,
        partitions: &mut HashMap<(String, u32), u16>,
    ) {
        let time_s = seconds(op.time_ns);
        self.end_s = self.end_s.max(time_s);
        let client = match op.process {
            Process::Client(id) => id,
            Process::Named(name) => {
                if op.f == "abort" {
                    self.abort = Some((time_s, op.error.unwrap_or_default()));
                } else if name == "nemesis" {
                    self.faults.push(FaultOp {
                        time_s,
                        f: op.f,
                        value: op.value,
                        error: op.error,
                    });
                }
                return;
            }
        };
        let is_send = op.f == "send";
        if !is_send && op.f != "poll" {
            return;
        }
        if op.kind == OpType::Invoke {
            let Ok(target) = Target::deserialize(&op.value) else {
                return;
            };
            let key = (target.topic, target.partition);
            let next = partitions.len() as u16;
            let index = *partitions.entry(key.clone()).or_insert_with(|| {
                self.partition_names.push(key);
                next
            });
            self.first_client_s.get_or_insert(time_s);
            pending.insert(
                client,
                Pending {
                    time_ns: op.time_ns,
                    is_send,
                    partition: index,
                },
            );
            return;
        }
        let Some(invoke) = pending.remove(&client) else {
            return;
        };
        self.last_client_s = Some(time_s);
        let outcome = Outcome::of(op.kind);
        if outcome == Outcome::Ok {
            self.sample(&op, is_send, time_s as f32);
        }
        self.push_op(invoke, op.time_ns, outcome);
    }

    fn push_op(&mut self, invoke: Pending, end_ns: u64, outcome: Outcome) {
        self.ops.push(ClientOp {
            time_s: seconds(end_ns) as f32,
            latency_ms: end_ns.saturating_sub(invoke.time_ns) as f32 / 1e6,
            outcome,
            is_send: invoke.is_send,
            partition: invoke.partition,
        });
    }

    /// Records the acknowledged offset of an ok send, or the HW of an ok poll.
    fn sample(&mut self, op: &Op, is_send: bool, time_s: f32) {
        if is_send {
            if let Ok(send) = SendValue::deserialize(&op.value) {
                if let Some(offset) = send.offset {
                    let key = (send.topic, send.partition);
                    let samples = self.acked.entry(key).or_default();
                    samples.push(Sample {
                        time_s,
                        value: offset,
                    });
                }
            }
        } else if let Ok(poll) = PollValue::deserialize(&op.value) {
            if let Some(hw) = poll.high_watermark {
                let samples = self
                    .polled_hw
                    .entry((poll.topic, poll.partition))
                    .or_default();
                samples.push(Sample { time_s, value: hw });
            }
        }
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
    faultline_checker::check_run(run_dir).map_err(|e| crate::cli::BadArgs(e.to_string()).into())
}
