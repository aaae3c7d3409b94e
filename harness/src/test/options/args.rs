//! A run's options printed back as `faultline test` arguments: every setting spelled out, so
//! parsing and validating them gives the same options again; and the replay line, which runs
//! the same test with a recorded schedule in place of its nemesis.

use std::path::Path;

use super::TestOptions;
use crate::duration::format_duration;

impl TestOptions {
    /// The `faultline test` arguments that give these options again: every setting spelled out
    /// (none left to defaults that may change), the store and node binary included.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = self.setting_args();
        let mut flag = |name: &str, value: String| {
            args.push(format!("--{name}"));
            args.push(value);
        };
        match &self.config.schedule {
            Some(schedule) => flag("schedule", schedule.clone()),
            None => flag("nemesis", self.nemesis_arg()),
        }
        let c = &self.config;
        flag("nemesis-interval", format!("{}ms", c.nemesis_interval_ms));
        flag("nemesis-targets", c.harness.nemesis_targets.join(","));
        flag("store", self.store.display().to_string());
        flag(
            "node-bin",
            self.config.harness.node_bin.display().to_string(),
        );
        args
    }

    /// The arguments that run this test again with `schedule` in place of its nemesis: as
    /// [`TestOptions::to_args`], without the store or node binary (the replayer's own) and
    /// without what steers only the random nemesis (its interval and targets), so replaying a
    /// replay prints the same line.
    pub fn replay_args(&self, schedule: &Path) -> Vec<String> {
        let mut args = self.setting_args();
        args.push("--schedule".into());
        args.push(schedule.display().to_string());
        args
    }

    /// `--nemesis` as a list: the kinds, or `none`.
    fn nemesis_arg(&self) -> String {
        if self.nemesis.kinds.is_empty() {
            return "none".to_string();
        }
        let names: Vec<&str> = self.nemesis.kinds.iter().map(|k| k.as_str()).collect();
        names.join(",")
    }

    /// Every setting but the nemesis and what steers it, the schedule, the store and the node
    /// binary.
    fn setting_args(&self) -> Vec<String> {
        let c = &self.config;
        let h = &c.harness;
        let mut args: Vec<String> = vec!["test".into()];
        let mut flag = |name: &str, value: String| {
            args.push(format!("--{name}"));
            args.push(value);
        };
        flag("name", c.name.clone());
        flag("nodes", c.nodes.to_string());
        flag("topic", self.topic().to_string());
        flag("partitions", c.partitions.to_string());
        flag("replication-factor", c.replication_factor.to_string());
        flag("acks", c.acks.as_str().to_string());
        flag("retries", c.retries.to_string());
        flag("min-insync-replicas", c.min_insync_replicas.to_string());
        flag(
            "replica-lag-time-max-ms",
            c.replica_lag_time_max_ms.to_string(),
        );
        flag("kafka-version", c.kafka_version.as_str().to_string());
        flag("workload", c.workload.as_str().to_string());
        flag("max-faulty", c.max_faulty.to_string());
        flag("kill-signal", h.kill_signal.as_str().to_string());
        flag("client", h.client.as_str().to_string());
        flag("time-limit", format_duration(self.time_limit()));
        flag("rate", c.rate.to_string());
        flag("concurrency", c.concurrency.to_string());
        flag("seed", c.seed.to_string());
        flag("request-timeout", format_duration(self.request_timeout()));
        flag("recovery-timeout", format_duration(self.recovery_timeout()));
        for arg in &h.node_args {
            args.push(format!("--node-arg={arg}"));
        }
        if h.lazyfs {
            args.push("--lazyfs".into());
        }
        if c.unclean_leader_election {
            args.push("--unclean-leader-election".into());
        }
        if c.idempotence {
            args.push("--idempotence".into());
        }
        if let Some(system) = &c.system {
            args.push("--system".into());
            args.push(system.file.display().to_string());
        }
        args
    }
}
