//! `faultline suite detection`: how well random faults find the losses the weaker settings
//! allow. Each loss-prone configuration (unclean election, acks=1, legacy-hw) and the durable
//! one run under `--nemesis all` for the same seeds; per configuration it reports the seeds
//! that found a loss and the median and maximum time from the start of the chaos phase to the
//! first lost acknowledged write (when that write was acknowledged, from the history; that it
//! is missing, from the final logs). A benchmark, not a test: `make bench-detection`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use faultline_checker::history::{Op, OpType, Process};
use faultline_checker::{AnomalyKind, Results, Valid};

use faultline_checker::config::KafkaVersion;
use faultline_checker::history::Acks;

use crate::duration::format_duration;
use crate::jobs::entry::Entry;
use crate::jobs::scenarios::Expect;
use crate::test::observer::Observer;
use crate::test::options::{NemesisChoice, TestRequest};
use crate::test::run::Interrupt;

/// The settings of one measured configuration, applied to the defaults.
pub type Settings = fn() -> TestRequest;

/// The Kafka versions with leader epochs, under which the loss-prone settings and the durable
/// one are measured.
const EPOCH_VERSIONS: &[KafkaVersion] = &[KafkaVersion::V4_1, KafkaVersion::V3_7];

/// The configurations measured, with the settings that make each and the Kafka versions each
/// is measured under.
pub const CONFIGS: [(&str, Settings, &[KafkaVersion]); 5] = [
    (
        "unclean election (acks=all, min ISR 1)",
        || TestRequest {
            acks: Acks::All,
            min_insync_replicas: Some(1),
            unclean_leader_election: true,
            ..TestRequest::default()
        },
        EPOCH_VERSIONS,
    ),
    (
        "acks=1",
        || TestRequest {
            acks: Acks::One,
            ..TestRequest::default()
        },
        EPOCH_VERSIONS,
    ),
    (
        "legacy-hw (HW truncation)",
        TestRequest::default,
        &[KafkaVersion::V0_10_2],
    ),
    (
        // Kafka 3.7 loses committed writes when the last ISR member loses its unsynced tail
        // (the power-loss package's last-isr-member plans); 4.1's Eligible Leader Replicas do
        // not. Needs FUSE.
        "power loss without fsync (acks=all, min ISR 2, lazy mounts)",
        || TestRequest {
            acks: Acks::All,
            min_insync_replicas: Some(2),
            lazyfs: true,
            ..TestRequest::default()
        },
        EPOCH_VERSIONS,
    ),
    (
        "durable (acks=all, min ISR 2)",
        || TestRequest {
            acks: Acks::All,
            min_insync_replicas: Some(2),
            ..TestRequest::default()
        },
        EPOCH_VERSIONS,
    ),
];

/// Every measured configuration under each of its versions: its label (`acks=1, Kafka 3.7`),
/// the slug of its runs' names, and its settings.
fn measured() -> Vec<(String, String, TestRequest)> {
    let mut out = Vec::new();
    for (label, settings, versions) in CONFIGS {
        let slug: String = label
            .chars()
            .take_while(|c| *c != ' ' && *c != '(')
            .filter(|c| *c != '=')
            .collect();
        for &version in versions {
            let request = TestRequest {
                kafka_version: version,
                ..settings()
            };
            out.push((
                format!("{label}, Kafka {version}"),
                format!("{slug}-{version}"),
                request,
            ));
        }
    }
    out
}

/// One run's finding.
#[derive(Debug, Clone)]
struct Finding {
    valid: Valid,
    lost: u64,
    /// From the chaos phase's start to the first lost write's acknowledgement.
    first_loss: Option<Duration>,
}

fn finding(run_dir: &Path) -> anyhow::Result<Finding> {
    let results: Results = serde_json::from_slice(
        &std::fs::read(run_dir.join("results.json")).context("reading results.json")?,
    )?;
    let lost = results
        .anomaly_counts
        .get(&AnomalyKind::Lost)
        .copied()
        .unwrap_or(0);
    let ack_indices: Vec<u64> = results
        .anomalies
        .iter()
        .filter(|a| a.kind == AnomalyKind::Lost)
        .filter_map(|a| a.indices.last().copied())
        .collect();
    let text = std::fs::read_to_string(run_dir.join("history.jsonl"))?;
    let mut chaos_start_ns = None;
    let mut first_ack_ns: Option<u64> = None;
    for (i, line) in text.lines().enumerate() {
        let op: Op =
            serde_json::from_str(line).with_context(|| format!("history.jsonl line {}", i + 1))?;
        if chaos_start_ns.is_none()
            && op.kind == OpType::Invoke
            && matches!(op.process, Process::Client(_))
        {
            chaos_start_ns = Some(op.time_ns);
        }
        if ack_indices.contains(&op.index) {
            first_ack_ns = Some(first_ack_ns.map_or(op.time_ns, |t| t.min(op.time_ns)));
        }
    }
    let first_loss = match (chaos_start_ns, first_ack_ns) {
        (Some(start), Some(ack)) => Some(Duration::from_nanos(ack.saturating_sub(start))),
        _ => None,
    };
    Ok(Finding {
        valid: results.valid,
        lost,
        first_loss,
    })
}

pub async fn detection(
    only: Option<&str>,
    seeds: u64,
    run_time: Duration,
    store: &Path,
    node_bin: Option<&Path>,
    interrupt: Interrupt,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<i32> {
    let mut table = String::from(
        "| configuration | seeds with a loss found | median time to first loss | max | invalid verdicts |\n|---|---|---|---|---|\n",
    );
    let mut durable_broken = false;
    let mut rows = Vec::new();
    for (label, slug, settings) in measured() {
        if only.is_some_and(|o| !label.contains(o)) {
            continue;
        }
        let mut findings = Vec::new();
        for seed in 1..=seeds {
            if interrupt.borrow().is_some() {
                return Err(crate::test::run::Interrupted(store.to_path_buf()).into());
            }
            let entry = Entry {
                name: format!("detection-{slug}-{seed}"),
                request: TestRequest {
                    nemesis: NemesisChoice::All,
                    seed: Some(seed),
                    time_limit: Some(run_time),
                    ..settings.clone()
                },
                schedule: None,
                expect: Expect::Guarantee,
                probes: &[],
            };
            let outcome = entry
                .run(store, node_bin, interrupt.clone(), observer.clone())
                .await?;
            let found = match &outcome.run_dir {
                Some(dir) => finding(dir)?,
                None => anyhow::bail!("{}: no run directory", entry.name),
            };
            println!(
                "detection: {label}, seed {seed}: {} lost, first loss {}, verdict {:?}",
                found.lost,
                found.first_loss.map(format_duration).unwrap_or("-".into()),
                found.valid
            );
            findings.push(found);
        }
        let mut times: Vec<Duration> = findings.iter().filter_map(|f| f.first_loss).collect();
        times.sort();
        let found = findings.iter().filter(|f| f.lost > 0).count();
        let invalid = findings.iter().filter(|f| f.valid == Valid::False).count();
        durable_broken |= label.starts_with("durable") && (found > 0 || invalid > 0);
        let median = times.get(times.len() / 2).copied();
        rows.push(serde_json::json!({
            "configuration": label,
            "seeds": findings.len(),
            "found": found,
            "median_ms": median.map(|d| d.as_millis() as u64),
            "max_ms": times.last().map(|d| d.as_millis() as u64),
            "invalid": invalid,
            "first_loss_ms": times.iter().map(|d| d.as_millis() as u64).collect::<Vec<_>>(),
        }));
        table.push_str(&format!(
            "| {label} | {found} of {} | {} | {} | {invalid} |\n",
            findings.len(),
            median.map(format_duration).unwrap_or("-".into()),
            times
                .last()
                .copied()
                .map(format_duration)
                .unwrap_or("-".into()),
        ));
    }
    println!("\n{table}");
    std::fs::create_dir_all(store)?;
    std::fs::write(store.join("detection.md"), &table)?;
    // The same figures for bench/results.json (`make bench-detection` puts them under
    // `detection`).
    let doc = serde_json::json!({
        "command": format!("faultline suite detection --seeds {seeds} --run-time {}", format_duration(run_time)),
        "date": crate::test::store::timestamp(std::time::SystemTime::now()),
        "run_time_ms": run_time.as_millis() as u64,
        "rows": rows,
    });
    std::fs::write(
        store.join("detection.json"),
        serde_json::to_vec_pretty(&doc)?,
    )?;
    Ok(if durable_broken { 1 } else { 0 })
}
