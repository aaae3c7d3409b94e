//! `test.json`: the whole configuration of a run ([`TestConfig`]), written first by the harness
//! so the run can be re-checked or replayed, and read first by the checker, which derives the
//! run's guarantee from it (the `guarantee` module). It owns this file's shape and reading it; the
//! harness's command-line options are the harness's.

use crate::error::CheckError;
use crate::history::Acks;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// The file's name inside a run directory.
pub const TEST_CONFIG_FILE: &str = "test.json";

/// `test.json`: the whole configuration of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestConfig {
    pub name: String,
    pub seed: u64,
    /// Wall-clock time (Unix milliseconds) at which `time_ns` = 0.
    pub start_unix_ms: u64,
    pub nodes: u32,
    pub topics: Vec<String>,
    pub partitions: u32,
    pub replication_factor: u32,
    pub acks: Acks,
    pub min_insync_replicas: u32,
    pub unclean_leader_election: bool,
    pub replica_lag_time_max_ms: u64,
    /// `current` or `legacy-hw`.
    pub replication_protocol: String,
    pub workload: String,
    pub nemesis: Vec<String>,
    pub nemesis_interval_ms: u64,
    pub max_faulty: u32,
    pub time_limit_ms: u64,
    pub rate: f64,
    pub concurrency: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Everything else the harness knows (node binary, ports, settings not listed above).
    #[serde(default)]
    pub extra: serde_json::Map<String, Value>,
}

/// `extra` key: the brokers' data dirs were lazy mounts, so power-loss faults could run.
pub const EXTRA_LAZYFS: &str = "lazyfs";
/// `extra` key: the flags every broker got (`--fsync` makes each append durable).
pub const EXTRA_NODE_ARGS: &str = "node_args";

impl TestConfig {
    /// Whether a power loss could drop acknowledged records: the data dirs were lazy mounts
    /// and the brokers did not fsync each append.
    pub fn power_loss_unsynced(&self) -> bool {
        let lazyfs = self.extra.get(EXTRA_LAZYFS).and_then(Value::as_bool) == Some(true);
        let fsync = self
            .extra
            .get(EXTRA_NODE_ARGS)
            .and_then(Value::as_array)
            .is_some_and(|args| args.iter().any(|a| a.as_str() == Some("--fsync")));
        lazyfs && !fsync
    }

    /// Reads `run_dir/test.json`, the one file without which a run cannot be checked.
    pub fn read(run_dir: &Path) -> Result<TestConfig, CheckError> {
        if !run_dir.is_dir() {
            return Err(CheckError::NoRunDir(run_dir.to_path_buf()));
        }
        let path = run_dir.join(TEST_CONFIG_FILE);
        let text = std::fs::read(&path).map_err(|source| CheckError::TestConfigUnreadable {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&text)
            .map_err(|source| CheckError::TestConfigInvalid { path, source })
    }
}
