//! The history writer: appends [`Op`]s to `history.jsonl` as they happen. One mutex serialises
//! every append, so indices are assigned in order, `time_ns` never goes back along the file, and
//! each line reaches the OS before `append` returns (a crashed harness leaves a readable prefix).
//! It owns no policy about what is recorded; clients and the nemesis decide that.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use faultline_checker::history::{Op, OpType, Process};
use serde_json::Value;

pub struct HistoryWriter {
    start: Instant,
    inner: Mutex<Inner>,
}

struct Inner {
    file: File,
    next_index: u64,
    /// Set by the first failed write; every later append reports it, so a disk error cannot
    /// leave holes in the history silently.
    failed: Option<String>,
}

impl HistoryWriter {
    /// Creates (truncating) the history file. `start` is the instant `time_ns` counts from.
    pub fn create(path: &Path, start: Instant) -> io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)?;
        Ok(HistoryWriter {
            start,
            inner: Mutex::new(Inner {
                file,
                next_index: 0,
                failed: None,
            }),
        })
    }

    /// Time since the run's start.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Appends one operation and returns its index.
    pub fn append(
        &self,
        process: Process,
        kind: OpType,
        f: &str,
        value: Value,
        error: Option<String>,
    ) -> io::Result<u64> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(failed) = &inner.failed {
            return Err(io::Error::other(format!(
                "history write failed before: {failed}"
            )));
        }
        let op = Op {
            index: inner.next_index,
            // Taken under the lock so that time never goes back along the file.
            time_ns: u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX),
            process,
            kind,
            f: f.to_string(),
            value,
            error,
        };
        let mut line = serde_json::to_vec(&op).map_err(io::Error::other)?;
        line.push(b'\n');
        // One write call per line: a crash can tear at most the last line.
        if let Err(error) = inner.file.write_all(&line) {
            inner.failed = Some(error.to_string());
            return Err(error);
        }
        inner.next_index += 1;
        Ok(op.index)
    }

    /// The number of operations written so far.
    pub fn len(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_index
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn indices_and_times_are_in_file_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let history = std::sync::Arc::new(HistoryWriter::create(&path, Instant::now()).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let history = history.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        history
                            .append(
                                Process::Client(t),
                                OpType::Invoke,
                                "send",
                                json!({ "i": i }),
                                None,
                            )
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let ops: Vec<Op> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(ops.len(), 200);
        for (i, pair) in ops.windows(2).enumerate() {
            assert_eq!(pair[0].index, i as u64);
            assert!(pair[0].time_ns <= pair[1].time_ns);
        }
    }
}
