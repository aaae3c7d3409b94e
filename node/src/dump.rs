//! `faultline-node dump --data DIR`: prints every surviving record of a broker's data dir, one
//! JSON object a line, without starting a server and without changing a byte on disk. After each
//! partition's records comes a summary line (`"summary": true`) with its LEO, HW checkpoint,
//! leader epochs and any torn tail a restart would drop. The two line shapes are defined once
//! here ([`DumpRecord`], [`DumpSummary`]); readers of the output (the checker) parse them with
//! their own types, and a contract test in the harness checks the two agree.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

use crate::broker::{parse_partition_dir, HW_CHECKPOINT};
use crate::storage::checkpoint::read_u64;
use crate::storage::{EpochEntry, Log, LogConfig};

const READ_CHUNK: usize = 10_000;

/// One surviving record: `{"topic":"t","partition":0,"offset":0,"leader_epoch":0,
/// "timestamp_ms":…,"value":"17"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpRecord {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub leader_epoch: u32,
    pub timestamp_ms: u64,
    pub value: String,
}

/// The line after a partition's records. `summary` is always true: it tells the line apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpSummary {
    pub summary: bool,
    pub topic: String,
    pub partition: u32,
    pub log_end_offset: u64,
    /// The HW checkpoint on disk, if there is one.
    pub high_watermark: Option<u64>,
    pub leader_epochs: Vec<EpochEntry>,
    /// Bytes of torn or corrupt tail a restart would drop, and why.
    pub torn_bytes: u64,
    pub torn_reason: Option<String>,
}

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
            for r in records {
                let line = DumpRecord {
                    topic: topic.clone(),
                    partition,
                    offset: r.offset,
                    leader_epoch: r.leader_epoch,
                    timestamp_ms: r.timestamp_ms,
                    value: r.value,
                };
                writeln!(out, "{}", serde_json::to_string(&line)?)?;
            }
        }
        let summary = DumpSummary {
            summary: true,
            topic,
            partition,
            log_end_offset: report.log_end_offset,
            high_watermark: read_u64(&dir.join(HW_CHECKPOINT)).ok().flatten(),
            leader_epochs: log.epochs().entries().to_vec(),
            torn_bytes: report.dropped_bytes,
            torn_reason: report.reason,
        };
        writeln!(out, "{}", serde_json::to_string(&summary)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Record;

    #[test]
    fn dump_writes_one_record_a_line_then_a_summary() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(&dir.path().join("t-0"), LogConfig::default(), false).unwrap();
        let record = |offset: u64, value: &str| Record {
            offset,
            leader_epoch: 2,
            timestamp_ms: 7,
            value: value.into(),
        };
        log.append(&[record(0, "17"), record(1, "18")]).unwrap();
        drop(log);
        let mut out = Vec::new();
        dump(dir.path(), &mut out).unwrap();
        let lines: Vec<&str> = std::str::from_utf8(&out).unwrap().lines().collect();
        assert_eq!(lines.len(), 3);
        let first: DumpRecord = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(
            (first.offset, first.leader_epoch, first.value.as_str()),
            (0, 2, "17")
        );
        let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(v["topic"], "t");
        assert_eq!(v["partition"], 0);
        assert_eq!(v["value"], "18");
        let summary: DumpSummary = serde_json::from_str(lines[2]).unwrap();
        assert!(summary.summary);
        assert_eq!((summary.log_end_offset, summary.torn_bytes), (2, 0));
        assert_eq!(
            summary.leader_epochs,
            vec![EpochEntry {
                epoch: 2,
                start_offset: 0
            }]
        );
    }
}
