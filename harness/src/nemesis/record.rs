//! The record of what the nemesis and the schedule did: the chaos phase's clock, the history's
//! nemesis operations (process `nemesis`, type `info`, with `error` when an action failed) and
//! `schedule.txt`, where every performed step is written with its time since the chaos phase
//! started and its concrete nodes, so a random run can be replayed. It decides nothing.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_checker::history::{OpType, Process};
use faultline_workloads::HistoryWriter;
use serde_json::Value;
use tokio::time::Instant;

use crate::nemesis::schedule::{format_step, Action};

pub struct Recorder {
    history: Arc<HistoryWriter>,
    schedule_log: Mutex<std::fs::File>,
    chaos_start: Mutex<Instant>,
}

impl Recorder {
    pub fn new(history: Arc<HistoryWriter>, schedule_log: std::fs::File) -> Self {
        Recorder {
            history,
            schedule_log: Mutex::new(schedule_log),
            chaos_start: Mutex::new(Instant::now()),
        }
    }

    /// Marks the start of the chaos phase: `at` times count from here.
    pub fn start_clock(&self) {
        *self.chaos_start.lock().unwrap() = Instant::now();
    }

    pub fn chaos_start(&self) -> Instant {
        *self.chaos_start.lock().unwrap()
    }

    pub fn since_start(&self) -> Duration {
        self.chaos_start().elapsed()
    }

    /// Writes one performed step to `schedule.txt`, at millisecond precision.
    pub fn log_step(&self, at: Duration, action: &Action, error: Option<&str>) {
        let mut line = format_step(Some(Duration::from_millis(at.as_millis() as u64)), action);
        if let Some(error) = error {
            line.push_str(&format!("  # failed: {}", error.replace('\n', " ")));
        }
        let mut log = self.schedule_log.lock().unwrap();
        // schedule.txt is a convenience for replays; the history is the record that counts.
        let _ = writeln!(log, "{line}");
    }

    /// Appends a nemesis operation to the history.
    pub fn record(&self, f: &str, value: Value, error: Option<String>) -> std::io::Result<()> {
        self.history
            .append(Process::nemesis(), OpType::Info, f, value, error)?;
        Ok(())
    }
}
