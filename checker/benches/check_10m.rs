//! `make bench`: generates synthetic stored runs of 1 M and 10 M history operations (40 %
//! sends, 10 % polls, invoke and completion each; 3 partitions, 3 brokers with full dumps) in
//! temp dirs, then times `check_run` on each several times, and beside it, in the same run, a
//! bare parse of the same files into the same types: every history line as `OpLine`,
//! `final.json` as `FinalReads`, every dump line as `DumpLine`, on two threads split the way
//! the check splits its input (the history on one; final.json and the dumps on the other).
//! The bare parse is measured twice: with serde alone (the format's definition), and with the
//! line readers the checker uses (a fast path for canonical lines, serde for the rest).
//!
//! Prints a human summary and, last, one JSON line per size starting with `{"bench":"checker"`
//! (min/median/max seconds of each, operations per second, peak RSS of the check, the ratios
//! of the check's median to the parses' medians). `FAULTLINE_BENCH_OPS` (comma-separated
//! sizes, default `1000000,10000000`) and `FAULTLINE_BENCH_RUNS` (default 5) change the work;
//! `FAULTLINE_BENCH_DIR` keeps the generated runs (and reuses them) so a profiler can look at
//! the check alone.

use faultline_checker::dump::DumpLine;
use faultline_checker::final_reads::FinalReads;
use faultline_checker::history::OpLine;
use faultline_checker::{check_run, Valid};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PARTITIONS: u64 = 3;
const BROKERS: u32 = 3;
const TIME_LIMIT_MS: u64 = 600_000;
const RECORDS_PER_POLL: u64 = 4;

fn main() -> std::io::Result<()> {
    let sizes: Vec<u64> = std::env::var("FAULTLINE_BENCH_OPS")
        .unwrap_or_else(|_| "1000000,10000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let runs: usize = std::env::var("FAULTLINE_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .max(1);
    let mut lines = Vec::new();
    for ops in sizes {
        lines.push(bench_size(ops, runs)?);
    }
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

/// Generates (or reuses) a run of `ops` operations and measures it `runs` times.
fn bench_size(ops: u64, runs: usize) -> std::io::Result<String> {
    let temp = tempfile::tempdir()?;
    let kept =
        std::env::var_os("FAULTLINE_BENCH_DIR").map(|d| PathBuf::from(d).join(ops.to_string()));
    let dir = kept.as_deref().unwrap_or(temp.path());
    std::fs::create_dir_all(dir)?;
    let started = Instant::now();
    if !dir.join("test.json").exists() {
        generate(dir, ops)?;
    }
    let size_bytes = input_bytes(dir);
    println!(
        "{ops} operations: {} MB of input, generated in {:.1} s",
        size_bytes / 1_000_000,
        started.elapsed().as_secs_f64()
    );
    let (mut check, mut serde, mut fast, mut rss_mb) = (vec![], vec![], vec![], 0);
    let mut cpu = Vec::new();
    for run in 0..runs {
        // The check first, so that its peak RSS is not the parses' leftovers.
        reset_peak_rss();
        let (started, cpu_before) = (Instant::now(), cpu_time());
        let results = check_run(dir).map_err(std::io::Error::other)?;
        check.push(started.elapsed());
        cpu.push(cpu_time().saturating_sub(cpu_before));
        rss_mb = rss_mb.max(peak_rss_mb());
        assert_eq!(results.valid, Valid::True, "the synthetic run is correct");
        assert_eq!(results.counts.history_lines, ops);
        drop(results);
        serde.push(bare_parse(dir, Reader::Serde)?);
        fast.push(bare_parse(dir, Reader::Checker)?);
        println!(
            "  run {}: check_run {:.2} s ({:.2} s of CPU); bare parse {:.2} s with serde, {:.2} s with the checker's readers",
            run + 1,
            check[run].as_secs_f64(),
            cpu[run].as_secs_f64(),
            serde[run].as_secs_f64(),
            fast[run].as_secs_f64()
        );
    }
    let (c, sd, fs, cp) = (stats(&check), stats(&serde), stats(&fast), stats(&cpu));
    println!(
        "  check_run min/median/max {:.2}/{:.2}/{:.2} s ({:.2} M ops/s at the median), peak RSS {rss_mb} MB; {:.2}x the serde parse, {:.2}x the checker's own parse",
        c[0], c[1], c[2], ops as f64 / c[1] / 1e6, c[1] / sd[1], c[1] / fs[1]
    );
    let triple = |t: [f64; 3]| {
        format!(
            "{{\"min\":{:.3},\"median\":{:.3},\"max\":{:.3}}}",
            t[0], t[1], t[2]
        )
    };
    Ok(format!(
        "{{\"bench\":\"checker\",\"ops\":{ops},\"input_mb\":{},\"runs\":{runs},\"threads\":2,\"check_s\":{},\"check_cpu_s\":{},\"ops_per_s_median\":{:.0},\"peak_rss_mb\":{rss_mb},\"bare_parse_serde_s\":{},\"bare_parse_checker_readers_s\":{},\"ratio_to_serde_parse\":{:.2},\"ratio_to_checker_parse\":{:.2}}}",
        size_bytes / 1_000_000,
        triple(c),
        triple(cp),
        ops as f64 / c[1],
        triple(sd),
        triple(fs),
        c[1] / sd[1],
        c[1] / fs[1]
    ))
}

/// [min, median, max] in seconds.
fn stats(times: &[Duration]) -> [f64; 3] {
    let mut s: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
    s.sort_by(f64::total_cmp);
    [s[0], s[s.len() / 2], s[s.len() - 1]]
}

fn input_bytes(dir: &Path) -> u64 {
    let mut files = vec![dir.join("history.jsonl"), dir.join("final.json")];
    files.extend((1..=BROKERS).map(|b| dir.join(format!("nodes/{b}/dump.jsonl"))));
    files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum()
}

/// Parses every line of a JSON-lines file with `parse`, the way the checker reads lines.
fn parse_lines(path: &Path, mut parse: impl FnMut(&[u8]) -> bool) -> std::io::Result<u64> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut buf = Vec::with_capacity(512);
    let mut parsed = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(parsed);
        }
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        assert!(parse(line), "a generated line does not parse");
        parsed += 1;
    }
}

/// Which line readers a bare parse uses.
#[derive(Clone, Copy)]
enum Reader {
    /// serde alone.
    Serde,
    /// `OpLine::parse` and `DumpLine::parse`, as the checker reads.
    Checker,
}

fn parse_history(dir: &Path, reader: Reader) -> std::io::Result<u64> {
    parse_lines(&dir.join("history.jsonl"), |l| match reader {
        Reader::Serde => serde_json::from_slice::<OpLine>(l).is_ok(),
        Reader::Checker => OpLine::parse(l).is_ok(),
    })
}

fn parse_final_and_dumps(dir: &Path, reader: Reader) -> std::io::Result<u64> {
    let text = std::fs::read(dir.join("final.json"))?;
    let reads = FinalReads::parse(&text).map_err(std::io::Error::other)?;
    let mut parsed: u64 = reads
        .partitions
        .iter()
        .map(|p| p.records.len() as u64)
        .sum();
    for b in 1..=BROKERS {
        let path = dir.join(format!("nodes/{b}/dump.jsonl"));
        parsed += parse_lines(&path, |l| match reader {
            Reader::Serde => DumpLine::parse_with_serde(l).is_ok(),
            Reader::Checker => DumpLine::parse(l).is_ok(),
        })?;
    }
    Ok(parsed)
}

/// Parses every input file on two threads, as the check splits them.
fn bare_parse(dir: &Path, reader: Reader) -> std::io::Result<Duration> {
    let started = Instant::now();
    std::thread::scope(|s| {
        let other = s.spawn(|| parse_final_and_dumps(dir, reader));
        parse_history(dir, reader)?;
        other.join().expect("the parse thread does not panic")?;
        Ok::<_, std::io::Error>(())
    })?;
    Ok(started.elapsed())
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
        "kafka_version": "4.1", "workload": "produce-consume", "nemesis": [],
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

/// CPU time (user + system, every thread) of this process so far, from /proc/self/stat in
/// clock ticks of 10 ms (Linux's USER_HZ); zero where unavailable. Unlike wall time, it hardly
/// changes when other processes share the cores.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line: the 12th and 13th after the name.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Resets the peak resident set size (VmHWM) to the current one, so each check is measured
/// alone (Linux: writing 5 to /proc/self/clear_refs; elsewhere the peak only grows).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
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
