//! A small builder for stored runs: a configuration, a history, a final read, dumps and node
//! events, written into a temp dir and checked with the real `check_run`.

use faultline_checker::history::{Acks, TestConfig};
use faultline_checker::{check_run, Anomaly, AnomalyKind, Results};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

pub const START_MS: u64 = 1_763_700_000_000;
pub const TOPIC: &str = "t";

pub fn durable_config() -> TestConfig {
    TestConfig {
        name: "test".into(),
        seed: 1,
        start_unix_ms: START_MS,
        nodes: 3,
        topics: vec![TOPIC.into()],
        partitions: 1,
        replication_factor: 3,
        acks: Acks::All,
        min_insync_replicas: 2,
        unclean_leader_election: false,
        replica_lag_time_max_ms: 1000,
        replication_protocol: "current".into(),
        workload: "produce-consume".into(),
        nemesis: vec![],
        nemesis_interval_ms: 3000,
        max_faulty: 2,
        time_limit_ms: 2000,
        rate: 100.0,
        concurrency: 2,
        schedule: None,
        extra: Default::default(),
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

#[derive(Clone)]
pub struct Run {
    pub config: TestConfig,
    /// (process, type, f, value, error); times and indices are assigned when written.
    pub ops: Vec<(Value, &'static str, &'static str, Value, Option<String>)>,
    pub final_complete: Option<bool>,
    pub finals: Vec<FinalPart>,
    /// broker → lines of its dump.
    pub dumps: BTreeMap<u32, Vec<Value>>,
    /// node dir name → lines of its events.jsonl.
    pub events: BTreeMap<String, Vec<Value>>,
    /// Put the last client operation at this fraction of the time limit (1.0 by default).
    pub end_fraction: f64,
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
        run.event("controller", json!({"type":"election","topic":TOPIC,"partition":0,"leader":1,"previous_leader":null,"leader_epoch":0,"partition_epoch":0,"isr":[1,2,3],"unclean":false,"reason":"topic_created"}), 0);
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
        let invoke = json!({"topic":TOPIC,"partition":partition,"value":value,"acks":"all"});
        self.ops
            .push((json!(process), "invoke", "send", invoke.clone(), None));
        let mut done = invoke;
        if let Some(o) = offset {
            done["offset"] = json!(o);
        }
        let error = (outcome != "ok").then(|| "REQUEST_TIMED_OUT".to_string());
        self.ops
            .push((json!(process), outcome, "send", done, error));
    }

    /// An acknowledged send whose answer names the broker and leader epoch (as the harness
    /// records them).
    pub fn send_acked_by(&mut self, process: u64, value: &str, offset: u64, node: u32, epoch: u32) {
        let invoke = json!({"topic":TOPIC,"partition":0,"value":value,"acks":"all"});
        self.ops
            .push((json!(process), "invoke", "send", invoke.clone(), None));
        let mut done = invoke;
        done["offset"] = json!(offset);
        done["node"] = json!(node);
        done["leader_epoch"] = json!(epoch);
        self.ops.push((json!(process), "ok", "send", done, None));
    }

    pub fn poll(&mut self, process: u64, from: u64, records: &[(u64, &str)]) {
        self.poll_at(process, 0, from, records);
    }

    pub fn poll_at(&mut self, process: u64, partition: u32, from: u64, records: &[(u64, &str)]) {
        let invoke = json!({"topic":TOPIC,"partition":partition,"offset":from});
        self.ops
            .push((json!(process), "invoke", "poll", invoke.clone(), None));
        let mut done = invoke;
        done["records"] = records
            .iter()
            .map(|(o, v)| json!({"offset":o,"value":v}))
            .collect();
        done["high_watermark"] = json!(records.last().map_or(from, |r| r.0 + 1));
        self.ops.push((json!(process), "ok", "poll", done, None));
    }

    pub fn nemesis(&mut self, f: &'static str, value: Value) {
        self.ops.push((json!("nemesis"), "info", f, value, None));
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
        lines.retain(|l| l["partition"] != json!(partition));
        for (o, v, e) in records {
            lines.push(
                json!({"topic":TOPIC,"partition":partition,"offset":o,"leader_epoch":e,"value":v}),
            );
        }
        if let Some(hw) = hw {
            let leo = records.last().map_or(0, |r| r.0 + 1);
            lines.push(json!({"summary":true,"topic":TOPIC,"partition":partition,"log_end_offset":leo,"high_watermark":hw}));
        }
    }

    /// Adds an event at `at_ms` after the run's start.
    pub fn event(&mut self, node: &str, mut event: Value, at_ms: u64) {
        event["time_ms"] = json!(START_MS + at_ms);
        event["node"] = node.parse::<u64>().map(|n| json!(n)).unwrap_or(json!(node));
        self.events.entry(node.to_string()).or_default().push(event);
    }

    pub fn history_lines(&self) -> Vec<String> {
        let limit_ns = self.config.time_limit_ms * 1_000_000;
        let end_ns = (limit_ns as f64 * self.end_fraction) as u64;
        let n = self.ops.len().max(1) as u64;
        self.ops
            .iter()
            .enumerate()
            .map(|(i, (process, kind, f, value, error))| {
                let mut op = json!({"index":i,"time_ns":end_ns * (i as u64 + 1) / n,"process":process,"type":kind,"f":f,"value":value});
                if let Some(e) = error {
                    op["error"] = json!(e);
                }
                op.to_string()
            })
            .collect()
    }

    pub fn write(&self, dir: &Path) {
        std::fs::write(
            dir.join("test.json"),
            serde_json::to_vec(&self.config).unwrap(),
        )
        .unwrap();
        let mut history = self.history_lines().join("\n");
        history.push('\n');
        std::fs::write(dir.join("history.jsonl"), history).unwrap();
        if let Some(complete) = self.final_complete {
            std::fs::write(
                dir.join("final.json"),
                self.final_json(complete).to_string(),
            )
            .unwrap();
        }
        for (broker, lines) in &self.dumps {
            write_lines(&dir.join(format!("nodes/{broker}/dump.jsonl")), lines);
        }
        for (node, lines) in &self.events {
            write_lines(&dir.join(format!("nodes/{node}/events.jsonl")), lines);
        }
    }

    fn final_json(&self, complete: bool) -> Value {
        let parts: Vec<Value> = self
            .finals
            .iter()
            .map(|p| {
                let records: Vec<Value> = p
                    .records
                    .iter()
                    .map(|(o, v, e)| json!({"offset":o,"value":v,"leader_epoch":e}))
                    .collect();
                json!({"topic":TOPIC,"partition":p.partition,"leader":p.leader,"leader_epoch":0,
                       "high_watermark":p.hw,"isr":p.isr,"records":records,"error":p.error})
            })
            .collect();
        json!({"complete":complete,"partitions":parts})
    }

    /// Writes the run into a fresh temp dir and checks it.
    pub fn check(&self) -> Results {
        let dir = tempfile::tempdir().unwrap();
        self.write(dir.path());
        check_run(dir.path()).expect("check_run")
    }
}

pub fn write_lines(path: &Path, lines: &[Value]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    if lines.is_empty() {
        text.clear();
    }
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
