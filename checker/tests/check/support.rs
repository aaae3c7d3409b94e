//! A small builder for stored runs: a configuration, a history, a final read, dumps and node
//! events, written into a temp dir and checked with the real `check_run`.

use faultline_checker::config::{TestConfig, Workload};
use faultline_checker::dump::{DumpRecord, DumpSummary};
use faultline_checker::events::NodeEvent;
use faultline_checker::final_reads::{FinalPartition, FinalReads, FinalRecord};
use faultline_checker::history::{
    Acks, FaultValue, NodeRef, Op, OpType, PollValue, PolledRecord, Process, SendValue,
};
use faultline_checker::{check_run, Anomaly, AnomalyKind, Results};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

pub const START_MS: u64 = 1_763_700_000_000;
pub const TOPIC: &str = "t";

pub fn durable_config() -> TestConfig {
    TestConfig {
        name: "test".into(),
        seed: 1,
        start_unix_ms: START_MS,
        topics: vec![TOPIC.into()],
        workload: Workload::ProduceConsume,
        nemesis: vec![],
        nemesis_interval_ms: 3000,
        time_limit_ms: 2000,
        rate: 100.0,
        concurrency: 2,
        ..TestConfig::default()
    }
}

/// One final partition: (offset, value, leader_epoch) records, leader, ISR.
#[derive(Clone)]
pub struct FinalPart {
    pub partition: u32,
    pub leader: Option<u32>,
    pub isr: Vec<u32>,
    pub records: Vec<(u64, String, u32)>,
    pub hw: Option<u64>,
    pub error: Option<String>,
}

/// One line of a fixture's dump: the dump's own types, or raw text for damaged and foreign
/// lines.
#[derive(Clone)]
pub enum DumpLine {
    Record(DumpRecord),
    Summary(DumpSummary),
    Raw(String),
}

impl DumpLine {
    fn partition(&self) -> Option<u32> {
        match self {
            DumpLine::Record(r) => Some(r.partition),
            DumpLine::Summary(s) => Some(s.partition),
            DumpLine::Raw(_) => None,
        }
    }

    fn text(&self) -> String {
        match self {
            DumpLine::Record(r) => to_line(r),
            DumpLine::Summary(s) => to_line(s),
            DumpLine::Raw(text) => text.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Run {
    pub config: TestConfig,
    /// The history; `index` and `time_ns` are assigned when written.
    pub ops: Vec<Op>,
    pub final_complete: Option<bool>,
    pub finals: Vec<FinalPart>,
    /// broker → lines of its dump.
    pub dumps: BTreeMap<u32, Vec<DumpLine>>,
    /// node dir name → its events (`time_ms` is an offset from the run's start until written).
    pub events: BTreeMap<String, Vec<NodeEvent>>,
    /// Put the last client operation at this fraction of the time limit (1.0 by default).
    pub end_fraction: f64,
}

/// A history operation; `index` and `time_ns` are filled in by [`Run::history_lines`].
pub fn op(
    process: Process,
    kind: OpType,
    f: &str,
    value: impl Serialize,
    error: Option<&str>,
) -> Op {
    Op {
        index: 0,
        time_ns: 0,
        process,
        kind,
        f: f.to_string(),
        value: serde_json::to_value(value).expect("a serializable value"),
        error: error.map(str::to_string),
    }
}

/// A node event of `kind` about t/0, every optional field empty.
pub fn event(kind: &str) -> NodeEvent {
    NodeEvent {
        time_ms: 0,
        node: None,
        kind: kind.to_string(),
        topic: Some(TOPIC.to_string()),
        partition: Some(0),
        leader: None,
        leader_epoch: None,
        log_end_offset: None,
        from: None,
        to: None,
        reason: None,
        unclean: None,
        role: None,
        dropped_bytes: None,
        isr: None,
        isr_before: None,
        elr: None,
        previous_leader: None,
        high_watermark: None,
        broker: None,
        extra: Default::default(),
    }
}

/// A controller's `election` event.
pub fn election(leader: u32, leader_epoch: u32, unclean: bool, reason: &str) -> NodeEvent {
    NodeEvent {
        leader: Some(leader),
        leader_epoch: Some(leader_epoch),
        unclean: Some(unclean),
        reason: Some(reason.to_string()),
        ..event("election")
    }
}

/// A broker's `truncation` event: its log went from `from` to `to`.
pub fn truncation(from: u64, to: u64, reason: &str, leader: u32, leader_epoch: u32) -> NodeEvent {
    NodeEvent {
        from: Some(from),
        to: Some(to),
        reason: Some(reason.to_string()),
        leader: Some(leader),
        leader_epoch: Some(leader_epoch),
        ..event("truncation")
    }
}

pub fn send_value(partition: u32, value: &str) -> SendValue {
    SendValue::new(
        TOPIC.to_string(),
        partition,
        value.to_string(),
        Some(Acks::All),
    )
}

fn to_line(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("a serializable line")
}

impl Run {
    pub fn new(config: TestConfig) -> Self {
        Run {
            config,
            ops: Vec::new(),
            final_complete: Some(true),
            finals: Vec::new(),
            dumps: BTreeMap::new(),
            events: BTreeMap::new(),
            end_fraction: 1.0,
        }
    }

    /// A durable run where `n` values `v0..` were sent and acknowledged at offsets 0..n of
    /// t/0, the final log holds them all, and brokers 1–3 dumped the same log with HW n.
    pub fn happy(n: u64) -> Self {
        let mut run = Run::new(durable_config());
        for i in 0..n {
            run.send(0, &format!("v{i}"), "ok", Some(i));
        }
        let records: Vec<(u64, String, u32)> = (0..n).map(|i| (i, format!("v{i}"), 0)).collect();
        run.set_final(0, records.clone());
        for broker in 1..=3 {
            run.set_dump(broker, 0, &records, Some(n));
        }
        run.event("controller", election(1, 0, false, "topic_created"), 0);
        run
    }

    pub fn send(&mut self, process: u64, value: &str, outcome: &'static str, offset: Option<u64>) {
        self.send_to(process, 0, value, outcome, offset);
    }

    pub fn send_to(
        &mut self,
        process: u64,
        partition: u32,
        value: &str,
        outcome: &'static str,
        offset: Option<u64>,
    ) {
        self.send_with(process, partition, value, outcome, offset, |_| {});
    }

    /// A send to t/0 that took `attempts` attempts (its producer retried it), each retried
    /// attempt ended by `REQUEST_TIMED_OUT`.
    pub fn send_retried(
        &mut self,
        process: u64,
        value: &str,
        outcome: &'static str,
        offset: Option<u64>,
        attempts: u32,
    ) {
        self.send_with(process, 0, value, outcome, offset, |v| {
            v.attempts = Some(attempts);
            v.retry_errors = vec!["REQUEST_TIMED_OUT".to_string(); attempts as usize - 1];
        });
    }

    /// A send whose invoke and completion `shape` changes (the completion after its offset is
    /// set: attempts, producer ids).
    pub fn send_with(
        &mut self,
        process: u64,
        partition: u32,
        value: &str,
        outcome: &'static str,
        offset: Option<u64>,
        shape: impl Fn(&mut SendValue),
    ) {
        let mut invoke = send_value(partition, value);
        shape(&mut invoke);
        invoke.attempts = None;
        invoke.retry_errors.clear();
        let mut done = invoke.clone();
        done.offset = offset;
        shape(&mut done);
        let (kind, error) = match outcome {
            "ok" => (OpType::Ok, None),
            "fail" => (OpType::Fail, Some("REQUEST_TIMED_OUT")),
            "info" => (OpType::Info, Some("REQUEST_TIMED_OUT")),
            other => panic!("unknown outcome {other}"),
        };
        let p = Process::Client(process);
        self.ops
            .push(op(p.clone(), OpType::Invoke, "send", &invoke, None));
        self.ops.push(op(p, kind, "send", &done, error));
    }

    /// An acknowledged send whose answer names the broker and leader epoch (as the harness
    /// records them).
    pub fn send_acked_by(&mut self, process: u64, value: &str, offset: u64, node: u32, epoch: u32) {
        let invoke = send_value(0, value);
        let done = SendValue {
            offset: Some(offset),
            node: Some(node),
            leader_epoch: Some(epoch),
            ..invoke.clone()
        };
        let p = Process::Client(process);
        self.ops
            .push(op(p.clone(), OpType::Invoke, "send", &invoke, None));
        self.ops.push(op(p, OpType::Ok, "send", &done, None));
    }

    pub fn poll(&mut self, process: u64, from: u64, records: &[(u64, &str)]) {
        self.poll_at(process, 0, from, records);
    }

    pub fn poll_at(&mut self, process: u64, partition: u32, from: u64, records: &[(u64, &str)]) {
        let invoke = PollValue {
            topic: TOPIC.to_string(),
            partition,
            offset: from,
            records: Vec::new(),
            high_watermark: None,
        };
        let done = PollValue {
            records: records
                .iter()
                .map(|(offset, value)| PolledRecord {
                    offset: *offset,
                    value: value.to_string(),
                })
                .collect(),
            high_watermark: Some(records.last().map_or(from, |r| r.0 + 1)),
            ..invoke.clone()
        };
        let p = Process::Client(process);
        self.ops
            .push(op(p.clone(), OpType::Invoke, "poll", &invoke, None));
        self.ops.push(op(p, OpType::Ok, "poll", &done, None));
    }

    /// A fault against broker `node`.
    pub fn nemesis(&mut self, f: &'static str, node: u32) {
        let value = FaultValue {
            node: Some(NodeRef::Broker(node)),
            detail: Default::default(),
        };
        self.ops
            .push(op(Process::nemesis(), OpType::Info, f, &value, None));
    }

    pub fn set_final(&mut self, partition: u32, records: Vec<(u64, String, u32)>) {
        self.finals.retain(|p| p.partition != partition);
        let hw = records.len() as u64;
        self.finals.push(FinalPart {
            partition,
            leader: Some(1),
            isr: vec![1, 2, 3],
            records,
            hw: Some(hw),
            error: None,
        });
    }

    pub fn final_part(&mut self, partition: u32) -> &mut FinalPart {
        self.finals
            .iter_mut()
            .find(|p| p.partition == partition)
            .expect("final partition")
    }

    pub fn set_dump(
        &mut self,
        broker: u32,
        partition: u32,
        records: &[(u64, String, u32)],
        hw: Option<u64>,
    ) {
        let lines = self.dumps.entry(broker).or_default();
        lines.retain(|l| l.partition() != Some(partition));
        for (offset, value, epoch) in records {
            lines.push(DumpLine::Record(DumpRecord {
                topic: TOPIC.to_string(),
                partition,
                offset: *offset,
                leader_epoch: *epoch,
                timestamp_ms: None,
                value: value.clone(),
            }));
        }
        if let Some(hw) = hw {
            lines.push(DumpLine::Summary(DumpSummary {
                summary: true,
                topic: TOPIC.to_string(),
                partition,
                log_end_offset: records.last().map_or(0, |r| r.0 + 1),
                high_watermark: Some(hw),
                leader_epochs: Vec::new(),
                torn_bytes: 0,
                torn_reason: None,
            }));
        }
    }

    /// Adds an event by `node` (a broker id or "controller") at `at_ms` after the run's start.
    pub fn event(&mut self, node: &str, mut event: NodeEvent, at_ms: u64) {
        event.time_ms = START_MS + at_ms;
        event.node = Some(match node.parse::<u32>() {
            Ok(id) => NodeRef::Broker(id),
            Err(_) => NodeRef::Named(node.to_string()),
        });
        self.events.entry(node.to_string()).or_default().push(event);
    }

    pub fn history_lines(&self) -> Vec<String> {
        let limit_ns = self.config.time_limit_ms * 1_000_000;
        let end_ns = (limit_ns as f64 * self.end_fraction) as u64;
        let n = self.ops.len().max(1) as u64;
        self.ops
            .iter()
            .enumerate()
            .map(|(i, op)| {
                let op = Op {
                    index: i as u64,
                    time_ns: end_ns * (i as u64 + 1) / n,
                    ..op.clone()
                };
                to_line(&op)
            })
            .collect()
    }

    pub fn write(&self, dir: &Path) {
        std::fs::write(dir.join("test.json"), to_line(&self.config)).unwrap();
        let mut history = self.history_lines().join("\n");
        history.push('\n');
        std::fs::write(dir.join("history.jsonl"), history).unwrap();
        if let Some(complete) = self.final_complete {
            std::fs::write(dir.join("final.json"), to_line(&self.final_reads(complete))).unwrap();
        }
        for (broker, lines) in &self.dumps {
            let lines: Vec<String> = lines.iter().map(DumpLine::text).collect();
            write_lines(&dir.join(format!("nodes/{broker}/dump.jsonl")), &lines);
        }
        for (node, events) in &self.events {
            let lines: Vec<String> = events.iter().map(to_line).collect();
            write_lines(&dir.join(format!("nodes/{node}/events.jsonl")), &lines);
        }
    }

    fn final_reads(&self, complete: bool) -> FinalReads {
        let partitions = self
            .finals
            .iter()
            .map(|p| FinalPartition {
                topic: TOPIC.to_string(),
                partition: p.partition,
                leader: p.leader,
                leader_epoch: Some(0),
                high_watermark: p.hw,
                isr: p.isr.clone(),
                records: p
                    .records
                    .iter()
                    .map(|(offset, value, epoch)| FinalRecord {
                        offset: *offset,
                        value: value.clone(),
                        leader_epoch: *epoch,
                    })
                    .collect(),
                error: p.error.clone(),
            })
            .collect();
        FinalReads {
            complete,
            partitions,
        }
    }

    pub fn check(&self) -> Results {
        let dir = tempfile::tempdir().unwrap();
        self.write(dir.path());
        check_run(dir.path()).expect("check_run")
    }
}

pub fn write_lines(path: &Path, lines: &[String]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).unwrap();
}

pub fn records(values: &[&str]) -> Vec<(u64, String, u32)> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v.to_string(), 0))
        .collect()
}

pub fn of_kind(results: &Results, kind: AnomalyKind) -> Vec<&Anomaly> {
    results
        .anomalies
        .iter()
        .filter(|a| a.kind == kind)
        .collect()
}

/// The kinds with a non-zero count.
pub fn kinds(results: &Results) -> Vec<AnomalyKind> {
    results
        .anomaly_counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, _)| *k)
        .collect()
}
