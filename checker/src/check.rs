//! The order of a check: the logs at the end first (so that each history line can be judged as
//! it is read), then the node events, then one streaming pass over the history, then the
//! whole-history findings, divergence and explanations, and last the verdict. It owns the
//! verdict rule and the reasons a run is `unknown`; the analyses live in their own modules.

use crate::broker_logs::{self, DumpRead, DumpView, Merge};
use crate::config::TestConfig;
use crate::divergence;
use crate::explain::{self, Context};
use crate::findings::{self, Inputs};
use crate::found::Found;
use crate::guarantee::Rules;
use crate::history::HISTORY_FILE;
use crate::jsonl::{for_each_line, Damage, Outcome};
use crate::logs::{self, BrokerLog, Final, Partitions};
use crate::partition_events::Events;
use crate::probes::{self, Probes};
use crate::results::{Counts, PartitionSummary, Results, Valid};
use crate::scan::{Scan, ScanStats, BUCKET_NS};
use crate::values::Values;
use std::path::Path;

/// Partitions registered from test.json before anything is read, so a partition nothing
/// mentions is still reported; bounded so that a damaged count cannot exhaust memory.
const MAX_CONFIGURED_PARTITIONS: u32 = 100_000;

/// Everything the check builds up before the verdict.
struct Run {
    config: TestConfig,
    damage: Damage,
    parts: Partitions,
    values: Values,
    found: Found,
    fin: Final,
    broker_logs: Vec<BrokerLog>,
    events: Events,
    unknown: Vec<String>,
    /// True when every broker of the run left a readable dump.
    all_dumped: bool,
    probes: Probes,
    /// Properties not checked, and why (results.json's `not_checked`).
    not_checked: Vec<String>,
}

/// What a run of a system that gives no dump (docs/systems.md) cannot check: the replicas'
/// logs are never read, so only the history and the final read are judged.
pub const NO_DUMP_NOT_CHECKED: [&str; 2] = [
    "divergence between replicas: not checked, the system gives no dump",
    "records present only in a surviving replica (holes in the log): not checked, the system gives no dump",
];

pub fn check(run_dir: &Path, config: TestConfig) -> Results {
    let rules = Rules::from_config(&config);
    let mut run = Run {
        damage: Damage::default(),
        parts: Partitions::default(),
        values: Values::default(),
        found: Found::new(rules),
        fin: Final::default(),
        broker_logs: Vec::new(),
        events: Events::default(),
        unknown: Vec::new(),
        all_dumped: false,
        probes: Probes::new(),
        not_checked: Vec::new(),
        config,
    };
    run.register_configured_partitions();
    run.fin = logs::load_final(run_dir, &mut run.parts, &mut run.values, &mut run.damage);
    let brokers = run.load_events(run_dir);
    let stats = run.scan_history_and_dumps(run_dir, &brokers);
    run.finish(stats)
}

impl Run {
    fn register_configured_partitions(&mut self) {
        for topic in &self.config.topics {
            for p in 0..self.config.partitions.min(MAX_CONFIGURED_PARTITIONS) {
                self.parts.get_or_add(topic, p);
            }
        }
    }

    /// Reads every `nodes/<dir>/events.jsonl`; returns the brokers (numeric dirs) in order.
    fn load_events(&mut self, run_dir: &Path) -> Vec<u32> {
        let nodes = run_dir.join("nodes");
        let mut names: Vec<String> = match std::fs::read_dir(&nodes) {
            Ok(dir) => dir
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
            Err(_) => {
                self.unknown.push(
                    "the run has no nodes/ directory: no replica log or node event was checked"
                        .into(),
                );
                return Vec::new();
            }
        };
        names.sort_by_key(|n| (n.parse::<u32>().unwrap_or(u32::MAX), n.clone()));
        for name in &names {
            let path = nodes.join(name).join("events.jsonl");
            let events_name = format!("nodes/{name}/events.jsonl");
            self.events.load(&path, &events_name, &mut self.damage);
        }
        self.events.finish();
        names.iter().filter_map(|n| n.parse().ok()).collect()
    }

    /// The history pass on this thread and the dumps on another, at once; then the dumps'
    /// leftovers are merged here.
    fn scan_history_and_dumps(&mut self, run_dir: &Path, brokers: &[u32]) -> ScanStats {
        let view = DumpView::new(&self.fin, &self.parts, &self.values);
        let nodes = run_dir.join("nodes");
        let (stats, reads) = std::thread::scope(|s| {
            let dumps = s.spawn(|| {
                let read = |b: &u32| {
                    (
                        *b,
                        broker_logs::read_dump(&nodes.join(format!("{b}/dump.jsonl")), *b, &view),
                    )
                };
                brokers
                    .iter()
                    .map(read)
                    .collect::<Vec<(u32, Option<DumpRead>)>>()
            });
            let stats = scan_history(
                run_dir,
                &mut self.parts,
                &mut self.values,
                &self.fin,
                &mut self.found,
                &mut self.damage,
                &mut self.unknown,
            );
            // A panic on the dump thread is a bug in this crate; it is re-raised here.
            let reads = dumps
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e));
            (stats, reads)
        });
        drop(view);
        findings::final_duplicates(&mut self.fin, &self.values, &mut self.found);
        let mut missing = Vec::new();
        for (broker, read) in reads {
            let Some(read) = read else {
                missing.push(broker);
                continue;
            };
            let merge = Merge {
                parts: &mut self.parts,
                values: &mut self.values,
                damage: &mut self.damage,
                found: &mut self.found,
            };
            self.broker_logs.push(broker_logs::merge(read, merge));
        }
        self.note_missing_dumps(&missing);
        stats
    }

    fn note_missing_dumps(&mut self, missing: &[u32]) {
        self.all_dumped = missing.is_empty()
            && !self.broker_logs.is_empty()
            && self.broker_logs.len() as u64 >= u64::from(self.config.nodes);
        let no_dump = self.config.system.as_ref().is_some_and(|s| !s.dump);
        if no_dump && self.broker_logs.is_empty() {
            self.not_checked
                .extend(NO_DUMP_NOT_CHECKED.iter().map(|s| s.to_string()));
            return;
        }
        if !missing.is_empty() {
            let ids: Vec<String> = missing.iter().map(u32::to_string).collect();
            self.unknown.push(format!(
                "no dump.jsonl for broker {}: its log was not checked",
                ids.join(", ")
            ));
        } else if (self.broker_logs.len() as u64) < u64::from(self.config.nodes) {
            self.unknown.push(format!(
                "dumps of {} brokers found, but the run had {}",
                self.broker_logs.len(),
                self.config.nodes
            ));
        }
    }

    /// Why the history may not hold every operation of the run (an abort, an early end,
    /// damage); `None` when it looks whole.
    fn history_problem(&self, stats: &ScanStats) -> Option<String> {
        if let Some(reason) = &stats.abort {
            return Some(format!("the run was aborted: {reason}"));
        }
        // A history that stops short of the time limit lost its tail (a harness killed
        // mid-run). How far it reaches is its last operation of any process: clients may stop
        // early for a reason that is itself a finding (no leader known at the end of the chaos
        // phase), or have none (`--concurrency 0`, a schedule's own sends), but the nemesis
        // records its heals after the chaos phase, and the chaos phase lasts the time limit.
        // (Times count from the run's start, which precedes the chaos phase: the comparison
        // errs towards "whole".) A second, or a tenth of the limit, is allowed.
        // Without workload clients the schedule alone decides what happens when, and nothing
        // need happen near the time limit.
        let limit_ns = if self.config.concurrency == 0 {
            0
        } else {
            self.config.time_limit_ms.saturating_mul(1_000_000)
        };
        let slack_ns = (limit_ns / 10).max(1_000_000_000);
        if stats.last_client_ns.is_none() && limit_ns > 0 {
            return Some(format!("{HISTORY_FILE} holds no client operation"));
        }
        if let Some(t) = stats.last_op_ns {
            if t.saturating_add(slack_ns) < limit_ns {
                return Some(format!(
                    "the run ended early: the history's last operation is at {:.1} s of a {:.1} s time limit",
                    t as f64 / 1e9,
                    limit_ns as f64 / 1e9
                ));
            }
        }
        let damaged = self
            .damage
            .warnings
            .iter()
            .filter(|w| w.file == HISTORY_FILE)
            .count();
        (damaged > 0).then(|| format!("{damaged} lines of {HISTORY_FILE} are damaged"))
    }

    fn finish(mut self, mut stats: ScanStats) -> Results {
        let history_problem = self.history_problem(&stats);
        self.unknown.extend(history_problem.clone());
        let inputs = Inputs {
            parts: &self.parts,
            values: &self.values,
            fin: &self.fin,
            broker_logs: &self.broker_logs,
            history_problem,
            all_dumped: self.all_dumped,
        };
        let lost = findings::lost(&inputs, &mut self.found);
        findings::failed_present(&inputs, &mut self.found);
        findings::phantoms(&inputs, &mut self.found);
        divergence::check(
            &self.parts,
            &self.values,
            &self.fin,
            &self.broker_logs,
            &mut self.found,
        );
        let ctx = Context {
            parts: &self.parts,
            values: &self.values,
            fin: &self.fin,
            broker_logs: &self.broker_logs,
            events: &self.events,
            start_unix_ms: self.config.start_unix_ms,
            power_losses: &stats.power_losses,
        };
        let explanations = explain::explain(&ctx, &lost, &std::mem::take(&mut stats.moved));
        let inputs = &mut stats.probe_inputs;
        for loss in &stats.power_losses {
            inputs.power_losses.push((loss.time_ns, loss.nodes.clone()));
        }
        self.probes = probes::detect(
            &self.events,
            inputs,
            self.config.min_insync_replicas,
            self.config.start_unix_ms,
            stats.stop_ns.map(|ns| ns / 1_000_000),
        );
        self.note_final_problems();
        let partitions = self.partition_summaries(&stats);
        self.assemble(stats, partitions, explanations)
    }

    fn note_final_problems(&mut self) {
        self.unknown.extend(self.fin.problem.clone());
        for idx in 0..self.parts.len() {
            let (topic, partition) = self.parts.key(idx);
            match self.fin.parts.get(&idx) {
                Some(fp) => self.unknown.extend(fp.incomplete.clone()),
                None if self.fin.problem.is_none() => self
                    .unknown
                    .push(format!("final.json has no read of {topic}/{partition}")),
                None => {}
            }
        }
    }

    fn partition_summaries(&self, stats: &ScanStats) -> Vec<PartitionSummary> {
        let mut out: Vec<PartitionSummary> = (0..self.parts.len())
            .map(|idx| {
                let (topic, partition) = self.parts.key(idx);
                let fp = self.fin.parts.get(&idx);
                let (share, gap) = availability(stats, idx);
                PartitionSummary {
                    topic: topic.to_string(),
                    partition,
                    leader: fp.and_then(|p| p.leader),
                    leader_epoch: fp.and_then(|p| p.leader_epoch),
                    high_watermark: fp.and_then(|p| p.high_watermark),
                    isr: fp.map(|p| p.isr.clone()).unwrap_or_default(),
                    final_records: fp.map_or(0, |p| p.log.records),
                    final_complete: fp.is_some_and(|p| p.incomplete.is_none()),
                    unavailable: fp.is_none_or(|p| p.leader.is_none()),
                    send: stats.send_per_part.get(&idx).copied().unwrap_or_default(),
                    write_availability: share,
                    longest_write_gap_ms: gap,
                    anomalies: self
                        .found
                        .per_partition
                        .get(&(topic.to_string(), partition))
                        .cloned()
                        .unwrap_or_default(),
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        out
    }

    fn assemble(
        mut self,
        stats: ScanStats,
        partitions: Vec<PartitionSummary>,
        explanations: Vec<crate::Explanation>,
    ) -> Results {
        // Files are read on two threads: order warnings by file, then line.
        let by_place = |w: &crate::Warning| (w.file.clone(), w.line);
        self.damage.warnings.sort_by_key(by_place);
        if self.damage.total > 0 {
            let first = &self.damage.warnings[0];
            let line = first.line.map(|l| format!(":{l}")).unwrap_or_default();
            self.unknown.push(format!(
                "{} damaged or unreadable input lines (first: {}{line})",
                self.damage.total, first.file
            ));
        }
        if self.found.uncertain > 0 {
            self.unknown.push(format!(
                "{} anomalies may be artefacts of missing input",
                self.found.uncertain
            ));
        }
        let valid = if self.found.breaking > 0 {
            Valid::False
        } else if !self.unknown.is_empty() {
            Valid::Unknown
        } else {
            Valid::True
        };
        let counts = Counts {
            final_records: self.fin.parts.values().map(|p| p.log.records).sum(),
            dump_records: self
                .broker_logs
                .iter()
                .flat_map(|r| r.parts.values())
                .map(|p| p.log.records)
                .sum(),
            distinct_values: self.values.len() as u64,
            ..stats.counts
        };
        let guarantee = self.found.rules().guarantee();
        let anomaly_counts = self.found.counts.clone();
        let (anomalies, anomalies_truncated) = self.found.into_list();
        Results {
            valid,
            guarantee,
            counts,
            partitions,
            anomaly_counts,
            anomalies,
            anomalies_truncated,
            explanations,
            unknown_reasons: self.unknown,
            not_checked: self.not_checked,
            warnings: self.damage.warnings,
            warnings_total: self.damage.total,
            probes: std::mem::take(&mut self.probes),
        }
    }
}

/// The share of one-second buckets between the first and the last client operation with an
/// `ok` send to the partition, and the longest run of buckets without one (ms).
fn availability(stats: &ScanStats, idx: usize) -> (Option<f64>, Option<u64>) {
    let (Some(first), Some(last)) = (stats.first_client_ns, stats.last_client_ns) else {
        return (None, None);
    };
    let (lo, hi) = (first / BUCKET_NS, last / BUCKET_NS);
    let bits = stats.ok_buckets.get(&idx);
    let is_set = |b: u64| {
        bits.and_then(|w| w.get((b / 64) as usize))
            .is_some_and(|w| w & (1 << (b % 64)) != 0)
    };
    let (mut ok, mut gap, mut longest) = (0u64, 0u64, 0u64);
    for b in lo..=hi.min(lo + (1 << 20)) {
        if is_set(b) {
            ok += 1;
            gap = 0;
        } else {
            gap += 1;
            longest = longest.max(gap);
        }
    }
    let total = hi.min(lo + (1 << 20)) - lo + 1;
    (
        Some(ok as f64 / total as f64),
        Some(longest * (BUCKET_NS / 1_000_000)),
    )
}

/// Streams history.jsonl through the [`Scan`].
fn scan_history(
    run_dir: &Path,
    parts: &mut Partitions,
    values: &mut Values,
    fin: &Final,
    found: &mut Found,
    damage: &mut Damage,
    unknown: &mut Vec<String>,
) -> ScanStats {
    let mut scan = Scan::new(parts, values, fin, found);
    let path = run_dir.join(HISTORY_FILE);
    let outcome = for_each_line(&path, HISTORY_FILE, damage, |_, line| scan.line(line));
    scan.flush_pending();
    if outcome == Outcome::Missing {
        unknown.push(format!("{HISTORY_FILE} is missing"));
    }
    scan.stats
}
