//! `faultline-node dump --data DIR`: prints every surviving record of a broker's data dir, one
//! JSON object a line, without starting a server and without changing a byte on disk. After each
//! partition's records comes a summary line (`"summary": true`) with its LEO, HW checkpoint,
//! leader epochs and any torn tail a restart would drop.

use serde_json::json;
use std::io::Write;
use std::path::Path;

use crate::broker::{parse_partition_dir, HW_CHECKPOINT};
use crate::storage::checkpoint::read_u64;
use crate::storage::{Log, LogConfig};

const READ_CHUNK: usize = 10_000;

pub fn dump(data: &Path, out: &mut impl Write) -> anyhow::Result<()> {
    let mut partitions: Vec<_> = std::fs::read_dir(data)
        .map_err(|e| anyhow::anyhow!("cannot read data dir {}: {e}", data.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            parse_partition_dir(&e.file_name().to_string_lossy()).map(|tp| (tp, e.path()))
        })
        .collect();
    partitions.sort();
    for ((topic, partition), dir) in partitions {
        let (log, report) = Log::open(&dir, LogConfig::default(), true)?;
        let mut next = 0;
        loop {
            let records = log.read(next, u64::MAX, READ_CHUNK)?;
            let Some(last) = records.last() else { break };
            next = last.offset + 1;
            for r in &records {
                let line = json!({"topic": topic, "partition": partition, "offset": r.offset,
                                  "leader_epoch": r.leader_epoch, "timestamp_ms": r.timestamp_ms,
                                  "value": r.value});
                writeln!(out, "{line}")?;
            }
        }
        let summary = json!({"summary": true, "topic": topic, "partition": partition,
                             "log_end_offset": report.log_end_offset,
                             "high_watermark": read_u64(&dir.join(HW_CHECKPOINT)).ok().flatten(),
                             "leader_epochs": log.epochs.entries(),
                             "torn_bytes": report.dropped_bytes, "torn_reason": report.reason});
        writeln!(out, "{summary}")?;
    }
    Ok(())
}
