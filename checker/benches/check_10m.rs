//! `make bench`: generates a synthetic stored run of 10 million history operations (4 M sends,
//! 1 M polls, invoke and completion each; 3 partitions, 3 brokers with full dumps) in a temp
//! dir, then times `check_run` on it. `FAULTLINE_BENCH_OPS` changes the size.
//!
//! The generation is not timed; the figure printed is the wall time of one `check_run`, and the
//! process's peak resident memory.

use faultline_checker::{check_run, Valid};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

const PARTITIONS: u64 = 3;
const BROKERS: u32 = 3;
const TIME_LIMIT_MS: u64 = 600_000;
const RECORDS_PER_POLL: u64 = 4;

fn main() -> std::io::Result<()> {
    let ops: u64 = std::env::var("FAULTLINE_BENCH_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    // FAULTLINE_BENCH_DIR keeps the generated run (and reuses it when it is already there),
    // so a profiler can look at the check alone.
    let temp = tempfile::tempdir()?;
    let kept = std::env::var_os("FAULTLINE_BENCH_DIR").map(std::path::PathBuf::from);
    let dir = kept.as_deref().unwrap_or(temp.path());
    std::fs::create_dir_all(dir)?;
    let started = Instant::now();
    let sends = if dir.join("test.json").exists() {
        0
    } else {
        generate(dir, ops)?
    };
    let size_bytes: u64 = ["history.jsonl", "final.json"]
        .iter()
        .map(|f| std::fs::metadata(dir.join(f)).map_or(0, |m| m.len()))
        .sum();
    println!(
        "generated {ops} operations ({sends} sends, history + final {} MB) in {:.1} s",
        size_bytes / 1_000_000,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let results = check_run(dir).map_err(std::io::Error::other)?;
    let elapsed = started.elapsed();
    println!(
        "check_run: {:.2} s for {} history lines, {} final and {} dump records; peak RSS {} MB",
        elapsed.as_secs_f64(),
        results.counts.history_lines,
        results.counts.final_records,
        results.counts.dump_records,
        peak_rss_mb()
    );
    print!("{}", results.summary());
    assert_eq!(results.valid, Valid::True, "the synthetic run is correct");
    Ok(())
}

/// Writes test.json, history.jsonl, final.json and every broker's dump; returns the sends.
fn generate(dir: &Path, ops: u64) -> std::io::Result<u64> {
    let polls = ops / 10;
    let sends = (ops - 2 * polls) / 2;
    write_config(dir)?;
    let mut history = BufWriter::with_capacity(1 << 20, File::create(dir.join("history.jsonl"))?);
    let mut logs: Vec<u64> = vec![0; PARTITIONS as usize];
    let mut read_at: Vec<u64> = vec![0; PARTITIONS as usize];
    let (mut index, mut polled) = (0u64, 0u64);
    let per_ns = TIME_LIMIT_MS * 1_000_000 / (sends + polls).max(1);
    for i in 0..sends {
        let part = i % PARTITIONS;
        let offset = logs[part as usize];
        logs[part as usize] += 1;
        let t = (i + polled) * per_ns;
        let process = i % 8;
        let send =
            format!("{{\"topic\":\"t\",\"partition\":{part},\"value\":\"{i}\",\"acks\":\"all\"");
        writeln!(history, "{{\"index\":{index},\"time_ns\":{t},\"process\":{process},\"type\":\"invoke\",\"f\":\"send\",\"value\":{send}}}}}")?;
        writeln!(history, "{{\"index\":{},\"time_ns\":{},\"process\":{process},\"type\":\"ok\",\"f\":\"send\",\"value\":{send},\"offset\":{offset}}}}}", index + 1, t + 1000)?;
        index += 2;
        // One poll per four sends, reading behind the producers.
        if i % 4 == 3 && polled < polls {
            let p = (polled % PARTITIONS) as usize;
            write_poll(&mut history, index, t + 2000, p, &mut read_at[p], logs[p])?;
            index += 2;
            polled += 1;
        }
    }
    history.flush()?;
    write_final(dir, sends, &logs)?;
    for broker in 1..=BROKERS {
        write_dump(dir, broker, sends, &logs)?;
    }
    Ok(sends)
}

fn write_poll(
    out: &mut impl Write,
    index: u64,
    t: u64,
    part: usize,
    at: &mut u64,
    end: u64,
) -> std::io::Result<()> {
    let process = 100 + part;
    let from = *at;
    writeln!(out, "{{\"index\":{index},\"time_ns\":{t},\"process\":{process},\"type\":\"invoke\",\"f\":\"poll\",\"value\":{{\"topic\":\"t\",\"partition\":{part},\"offset\":{from}}}}}")?;
    let upto = (from + RECORDS_PER_POLL).min(end);
    let records: Vec<String> = (from..upto)
        .map(|o| {
            format!(
                "{{\"offset\":{o},\"value\":\"{}\"}}",
                o * PARTITIONS + part as u64
            )
        })
        .collect();
    *at = upto;
    writeln!(out, "{{\"index\":{},\"time_ns\":{},\"process\":{process},\"type\":\"ok\",\"f\":\"poll\",\"value\":{{\"topic\":\"t\",\"partition\":{part},\"offset\":{from},\"records\":[{}],\"high_watermark\":{end}}}}}", index + 1, t + 500, records.join(","))
}

fn write_config(dir: &Path) -> std::io::Result<()> {
    let config = serde_json::json!({
        "name": "bench", "seed": 1, "start_unix_ms": 1_763_700_000_000u64, "nodes": BROKERS,
        "topics": ["t"], "partitions": PARTITIONS, "replication_factor": 3, "acks": "all",
        "min_insync_replicas": 2, "unclean_leader_election": false, "replica_lag_time_max_ms": 1000,
        "replication_protocol": "current", "workload": "produce-consume", "nemesis": [],
        "nemesis_interval_ms": 3000, "max_faulty": 2, "time_limit_ms": TIME_LIMIT_MS, "rate": 10000.0,
        "concurrency": 8
    });
    std::fs::write(dir.join("test.json"), config.to_string())
}

/// Value `i` went to partition `i % PARTITIONS` at offset `i / PARTITIONS`.
fn write_final(dir: &Path, sends: u64, logs: &[u64]) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(dir.join("final.json"))?);
    write!(out, "{{\"complete\":true,\"partitions\":[")?;
    for (part, &len) in logs.iter().enumerate() {
        let sep = if part == 0 { "" } else { "," };
        write!(out, "{sep}{{\"topic\":\"t\",\"partition\":{part},\"leader\":1,\"leader_epoch\":0,\"high_watermark\":{len},\"isr\":[1,2,3],\"records\":[")?;
        for o in 0..len {
            let value = o * PARTITIONS + part as u64;
            debug_assert!(value < sends);
            let sep = if o == 0 { "" } else { "," };
            write!(
                out,
                "{sep}{{\"offset\":{o},\"value\":\"{value}\",\"leader_epoch\":0}}"
            )?;
        }
        write!(out, "]}}")?;
    }
    write!(out, "]}}")?;
    out.flush()
}

fn write_dump(dir: &Path, broker: u32, _sends: u64, logs: &[u64]) -> std::io::Result<()> {
    let node = dir.join(format!("nodes/{broker}"));
    std::fs::create_dir_all(&node)?;
    let mut out = BufWriter::with_capacity(1 << 20, File::create(node.join("dump.jsonl"))?);
    for (part, &len) in logs.iter().enumerate() {
        for o in 0..len {
            let value = o * PARTITIONS + part as u64;
            writeln!(out, "{{\"topic\":\"t\",\"partition\":{part},\"offset\":{o},\"leader_epoch\":0,\"value\":\"{value}\"}}")?;
        }
        writeln!(out, "{{\"summary\":true,\"topic\":\"t\",\"partition\":{part},\"log_end_offset\":{len},\"high_watermark\":{len}}}")?;
    }
    out.flush()?;
    let event = format!(
        "{{\"time_ms\":1763700000000,\"node\":{broker},\"type\":\"started\",\"incarnation\":1}}\n"
    );
    std::fs::write(node.join("events.jsonl"), event)
}

/// Peak resident set size of this process, from /proc (0 where unavailable).
fn peak_rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}
