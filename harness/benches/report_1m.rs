//! `make bench` (or `cargo bench -p faultline --bench report_1m`): generates a synthetic stored
//! run of one million client operations (each an invoke and a completion: 2 million history
//! lines; 3 partitions; a kill or a restart every 3 s; ISR changes in the controller's events)
//! in a temp dir, checks it once (untimed, to have results.json), then times rendering its
//! report the way `faultline report RUN_DIR` does: results.json, history and events in;
//! report.html, junit.xml and summary.md out. `FAULTLINE_BENCH_OPS` changes the size.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use faultline_checker::config::{FaultKind, NemesisKind, TestConfig};
use faultline_checker::final_reads::{FinalPartition, FinalReads, FinalRecord};
use faultline_checker::history::{Op, OpType, Process};
use serde_json::json;

const PARTITIONS: u32 = 3;
const OPS_PER_SECOND: u64 = 5_000;
const START_UNIX_MS: u64 = 1_700_000_000_000;

fn main() -> anyhow::Result<()> {
    let ops: u64 = std::env::var("FAULTLINE_BENCH_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let temp = tempfile::tempdir()?;
    let dir = temp.path();
    let started = Instant::now();
    generate(dir, ops)?;
    let results = faultline_checker::check_run(dir)?;
    faultline_checker::write_results(dir, &results)?;
    println!(
        "generated and checked {ops} operations in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let results = faultline::report::data::load_results(dir)?;
    let written = faultline::report::write(dir, results)?;
    let elapsed = started.elapsed();
    let html_bytes = std::fs::metadata(&written.html)?.len();
    println!(
        "report of {ops} operations: {:.2} s (report.html {} KB)",
        elapsed.as_secs_f64(),
        html_bytes / 1000
    );
    Ok(())
}

fn config(ops: u64) -> TestConfig {
    TestConfig {
        name: "bench".into(),
        seed: 1,
        start_unix_ms: START_UNIX_MS,
        partitions: PARTITIONS,
        nemesis: vec![NemesisKind::Fault(FaultKind::Kill)],
        nemesis_interval_ms: 3000,
        time_limit_ms: ops * 1000 / OPS_PER_SECOND,
        rate: OPS_PER_SECOND as f64,
        concurrency: 16,
        ..TestConfig::default()
    }
}

fn write_op(out: &mut BufWriter<File>, op: &Op) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, op)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// A nemesis line every 3 s: broker 2 killed, then started again.
fn fault(index: u64, i: u64, time_ns: u64) -> Op {
    let kill = (i / (3 * OPS_PER_SECOND)) % 2 == 1;
    Op {
        index,
        time_ns,
        process: Process::nemesis(),
        kind: OpType::Info,
        f: if kill { "kill" } else { "start" }.into(),
        value: json!({"node": 2}),
        error: None,
    }
}

/// A correct run: every send is acknowledged in order and read back at the end.
fn generate(dir: &Path, ops: u64) -> anyhow::Result<()> {
    std::fs::write(dir.join("test.json"), serde_json::to_vec(&config(ops))?)?;
    let mut history = BufWriter::new(File::create(dir.join("history.jsonl"))?);
    let mut logs: Vec<Vec<FinalRecord>> = vec![Vec::new(); PARTITIONS as usize];
    let step_ns = 1_000_000_000 / OPS_PER_SECOND;
    let mut index = 0;
    for i in 0..ops {
        let time_ns = i * step_ns;
        if i % (3 * OPS_PER_SECOND) == 0 && i > 0 {
            write_op(&mut history, &fault(index, i, time_ns))?;
            index += 1;
        }
        let partition = (i % PARTITIONS as u64) as u32;
        let log = &mut logs[partition as usize];
        let value = i.to_string();
        let invoke = Op {
            index,
            time_ns,
            process: Process::Client(i % 16),
            kind: OpType::Invoke,
            f: "send".into(),
            value: json!({"topic": "t", "partition": partition, "value": value, "acks": "all"}),
            error: None,
        };
        let offset = log.len() as u64;
        // Latencies spread over 0.1 to 1.1 ms, so the plot has a cloud to down-sample.
        let ok = Op {
            index: index + 1,
            time_ns: time_ns + step_ns / 2 + (i * 7919 % 1000) * 1000,
            kind: OpType::Ok,
            value: json!({"topic": "t", "partition": partition, "value": value, "acks": "all",
                "offset": offset, "node": 1, "leader_epoch": 0}),
            ..invoke.clone()
        };
        write_op(&mut history, &invoke)?;
        write_op(&mut history, &ok)?;
        index += 2;
        log.push(FinalRecord {
            offset,
            value,
            leader_epoch: 0,
        });
    }
    history.flush()?;
    let partitions: Vec<FinalPartition> = logs
        .into_iter()
        .enumerate()
        .map(|(p, records)| FinalPartition {
            topic: "t".into(),
            partition: p as u32,
            leader: Some(1),
            leader_epoch: Some(0),
            high_watermark: Some(records.len() as u64),
            isr: vec![1, 2, 3],
            records,
            error: None,
        })
        .collect();
    let reads = FinalReads {
        complete: true,
        partitions,
    };
    serde_json::to_writer(
        BufWriter::new(File::create(dir.join("final.json"))?),
        &reads,
    )?;
    write_dumps(dir, &reads)?;
    write_controller_events(dir, ops)
}

/// Every broker's dump holds the final log.
fn write_dumps(dir: &Path, reads: &FinalReads) -> anyhow::Result<()> {
    for broker in 1..=3 {
        let node = dir.join("nodes").join(broker.to_string());
        std::fs::create_dir_all(&node)?;
        let mut dump = BufWriter::new(File::create(node.join("dump.jsonl"))?);
        for p in &reads.partitions {
            for r in &p.records {
                let line = json!({"topic": "t", "partition": p.partition, "offset": r.offset,
                    "leader_epoch": 0, "value": r.value});
                writeln!(dump, "{line}")?;
            }
        }
        dump.flush()?;
    }
    Ok(())
}

/// The controller elects broker 1 once per partition, then shrinks and expands the ISR
/// around each kill of broker 2.
fn write_controller_events(dir: &Path, ops: u64) -> anyhow::Result<()> {
    let controller = dir.join("nodes").join("controller");
    std::fs::create_dir_all(&controller)?;
    let mut events = BufWriter::new(File::create(controller.join("events.jsonl"))?);
    for p in 0..PARTITIONS {
        let created = json!({"time_ms": START_UNIX_MS, "node": "controller", "type": "election",
            "topic": "t", "partition": p, "leader": 1, "previous_leader": null, "leader_epoch": 0,
            "partition_epoch": 0, "isr": [1, 2, 3], "unclean": false, "reason": "topic_created"});
        writeln!(events, "{created}")?;
        for t in (3..ops / OPS_PER_SECOND).step_by(3) {
            let shrink = (t / 3) % 2 == 1;
            let (before, after) = if shrink {
                (json!([1, 2, 3]), json!([1, 3]))
            } else {
                (json!([1, 3]), json!([1, 2, 3]))
            };
            let change = json!({"time_ms": START_UNIX_MS + t * 1000 + 500, "node": "controller",
                "type": "isr_change", "topic": "t", "partition": p, "isr_before": before,
                "isr": after, "leader_epoch": 0, "partition_epoch": t,
                "reason": if shrink { "shrink" } else { "expand" }});
            writeln!(events, "{change}")?;
        }
    }
    events.flush()?;
    Ok(())
}
