//! The run in a few lines: the terminal summary printed at the end of `test`, `check` and
//! `report`, and the same facts in Markdown (`summary.md`, appended to `$GITHUB_STEP_SUMMARY`
//! when it is set). Both say the configuration that matters, the verdict, each anomaly kind
//! found with its count and whether this configuration allows it, the first explanations,
//! availability, and where the report is. It formats; it does not decide anything.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use faultline_checker::{AnomalyKind, Valid};

use super::data::RunData;
use super::timeline::{describe, Mark};
use super::{standing, Standing};

/// How many explanations and reasons the summaries list before "...".
const FIRST: usize = 5;

/// The configuration that decides what may happen, in Kafka's words.
pub fn configuration(data: &RunData) -> Vec<String> {
    let c = &data.config;
    let faults = if c.nemesis.is_empty() {
        "no faults".to_string()
    } else if c.schedule.is_some() {
        format!(
            "faults from schedule {}",
            c.schedule.as_deref().unwrap_or("")
        )
    } else {
        format!(
            "faults {} every {} ms (at most {} brokers faulty)",
            c.nemesis
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(","),
            c.nemesis_interval_ms,
            c.max_faulty
        )
    };
    // A system file's system is named with its version; the Kafka version is faultline-node's.
    let system = match &c.system {
        Some(s) => format!(
            "system {} ({}, {}), ",
            s.label(),
            s.file.display(),
            if s.dump { "with dumps" } else { "no dump" }
        ),
        None => String::new(),
    };
    let version = match &c.system {
        Some(_) => String::new(),
        None => format!(", Kafka {}", c.kafka_version),
    };
    vec![
        format!(
            "{system}{} brokers, replication factor {}, {} partition(s), acks={}, min.insync.replicas={}, \
             unclean.leader.election.enable={}{version}",
            c.nodes,
            c.replication_factor,
            c.partitions,
            c.acks.as_str(),
            c.min_insync_replicas,
            c.unclean_leader_election,
        ),
        format!(
            "workload {} at {}/s with {} clients ({}) {}; {faults}; seed {}",
            c.workload,
            c.rate,
            c.concurrency,
            producers(c),
            // A schedule without --time-limit runs its chaos phase to the schedule's end.
            match (c.time_limit_ms, &c.schedule) {
                (0, Some(_)) => "until the schedule ends".to_string(),
                (ms, _) => format!("for {ms} ms"),
            },
            c.seed
        ),
    ]
}

/// How the producers sent: their retries, and whether idempotently.
fn producers(c: &faultline_checker::config::TestConfig) -> String {
    let retries = match c.retries {
        0 => "no retries".to_string(),
        1 => "1 retry".to_string(),
        n => format!("{n} retries"),
    };
    let idempotence = if c.idempotence {
        "idempotent"
    } else {
        "not idempotent"
    };
    format!("{retries}, {idempotence}")
}

/// The verdict with what the configuration promises.
pub fn verdict(data: &RunData) -> String {
    format!(
        "{} ({})",
        data.results.valid.as_str().to_uppercase(),
        promise(data)
    )
}

/// What the configuration promises.
pub fn promise(data: &RunData) -> String {
    let r = &data.results;
    if r.guarantee.durable {
        "durable configuration: no acknowledged write may be lost".to_string()
    } else {
        format!(
            "weakened by {}: some loss is allowed",
            r.guarantee.weakened_by.join(", ")
        )
    }
}

/// Faults by kind (`kill ×2, pause ×1`, each counted once however it was healed) and
/// elections (clean, unclean).
pub fn happenings(data: &RunData) -> (String, String) {
    let mut kinds: Vec<(&str, usize)> = Vec::new();
    for w in super::timeline::fault_windows(&data.history.faults) {
        match kinds.iter_mut().find(|(k, _)| *k == w.kind) {
            Some(entry) => entry.1 += 1,
            None => kinds.push((w.kind, 1)),
        }
    }
    let faults = if kinds.is_empty() {
        "none".to_string()
    } else {
        let parts: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
        parts.join(", ")
    };
    let (mut clean, mut unclean) = (0, 0);
    for e in data.events.iter().filter(|e| e.event.kind == "election") {
        match describe(e).0 {
            Some(Mark::CleanElection) => clean += 1,
            Some(Mark::UncleanElection) => unclean += 1,
            _ => {}
        }
    }
    (
        faults,
        format!(
            "{clean} clean, {unclean} unclean (controller elections, including topic creation)"
        ),
    )
}

/// Anomaly kinds found: (kind, count, "allowed (acks=1)" / "NOT allowed" / "uncertain: ...").
pub fn anomaly_rows(data: &RunData) -> Vec<(AnomalyKind, u64, String)> {
    let r = &data.results;
    let mut rows = Vec::new();
    for (kind, count) in r.anomaly_counts.iter().filter(|(_, n)| **n > 0) {
        let verdict = match standing(r, *kind, None) {
            Standing::Allowed(by) => format!("allowed by this configuration ({by})"),
            Standing::Breaks => "NOT allowed: breaks the guarantee".to_string(),
            Standing::Uncertain(why) => format!("uncertain: {why}"),
            Standing::None => String::new(),
        };
        rows.push((*kind, *count, verdict));
    }
    rows
}

/// Per partition: write availability and the longest gap.
pub fn availability(data: &RunData) -> Vec<String> {
    data.results
        .partitions
        .iter()
        .map(|p| {
            let share = p.write_availability.map_or_else(
                || "no writes".to_string(),
                |a| format!("ok writes in {:.0}% of seconds", a * 100.0),
            );
            let gap = p.longest_write_gap_ms.map_or_else(String::new, |g| {
                format!(", longest gap {:.1} s", g as f64 / 1000.0)
            });
            let unavailable = if p.unavailable {
                " — UNAVAILABLE at the end (no leader)"
            } else {
                ""
            };
            format!("{}/{}: {share}{gap}{unavailable}", p.topic, p.partition)
        })
        .collect()
}

/// The Kafka situations the run went through, one line (docs/results.md, `probes`).
pub fn probes(data: &RunData) -> String {
    faultline_checker::probes::one_line(&data.results.probes)
}

fn operations(data: &RunData) -> String {
    let c = &data.results.counts;
    format!(
        "sends {} ok, {} fail, {} info (unknown); polls {} ok, {} fail, {} info; final log {} records",
        c.send.ok, c.send.fail, c.send.info, c.poll.ok, c.poll.fail, c.poll.info, c.final_records
    )
}

/// The terminal summary.
pub fn terminal(data: &RunData, report: &Path) -> String {
    let mut out = String::new();
    let r = &data.results;
    let _ = writeln!(out, "── faultline run {} ──", data.config.name);
    for (i, line) in configuration(data).iter().enumerate() {
        let _ = writeln!(
            out,
            "{:<16}{line}",
            if i == 0 { "configuration" } else { "" }
        );
    }
    let _ = writeln!(out, "{:<16}{}", "verdict", verdict(data));
    let _ = writeln!(out, "{:<16}{}", "operations", operations(data));
    let (faults, elections) = happenings(data);
    let _ = writeln!(out, "{:<16}{faults}", "faults");
    let _ = writeln!(out, "{:<16}{elections}", "elections");
    let _ = writeln!(out, "{:<16}{}", "probes", probes(data));
    let rows = anomaly_rows(data);
    if rows.is_empty() {
        let _ = writeln!(out, "{:<16}none", "anomalies");
    }
    for (i, (kind, count, standing)) in rows.iter().enumerate() {
        let title = if i == 0 { "anomalies" } else { "" };
        let _ = writeln!(
            out,
            "{title:<16}{:<20}{count:>8}  {standing}",
            kind.as_str()
        );
    }
    for (i, e) in r.explanations.iter().take(FIRST).enumerate() {
        let title = if i == 0 { "why" } else { "" };
        let _ = writeln!(out, "{title:<16}{}", e.sentence);
    }
    if r.explanations.len() > FIRST {
        let _ = writeln!(
            out,
            "{:<16}... {} explanations in all (report.html)",
            "",
            r.explanations.len()
        );
    }
    if !r.explanations.is_empty() {
        let _ = writeln!(
            out,
            "{:<16}(times in explanations are seconds since run start)",
            ""
        );
    }
    for (i, line) in availability(data).iter().enumerate() {
        let _ = writeln!(
            out,
            "{:<16}{line}",
            if i == 0 { "availability" } else { "" }
        );
    }
    for (i, reason) in r.unknown_reasons.iter().take(FIRST).enumerate() {
        let _ = writeln!(
            out,
            "{:<16}{reason}",
            if i == 0 { "unknown because" } else { "" }
        );
    }
    for (i, what) in r.not_checked.iter().enumerate() {
        let _ = writeln!(out, "{:<16}{what}", if i == 0 { "not checked" } else { "" });
    }
    if r.warnings_total > 0 {
        let _ = writeln!(
            out,
            "{:<16}{} damaged input lines (see report.html)",
            "warnings", r.warnings_total
        );
    }
    let _ = writeln!(out, "{:<16}{}", "report", report.display());
    out
}

fn verdict_icon(valid: Valid) -> &'static str {
    match valid {
        Valid::True => "✅",
        Valid::False => "❌",
        Valid::Unknown => "❔",
    }
}

/// The Markdown summary (GitHub's job summary).
pub fn markdown(data: &RunData, report: &Path) -> String {
    let r = &data.results;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### {} faultline run `{}`: {}\n",
        verdict_icon(r.valid),
        data.config.name,
        verdict(data)
    );
    for line in configuration(data) {
        let _ = writeln!(out, "- {line}");
    }
    let _ = writeln!(out, "- {}", operations(data));
    let (faults, elections) = happenings(data);
    let _ = writeln!(out, "- faults: {faults}; elections: {elections}");
    let _ = writeln!(out, "- probes: {}\n", probes(data));
    let rows = anomaly_rows(data);
    if rows.is_empty() {
        let _ = writeln!(out, "No anomalies.\n");
    } else {
        let _ = writeln!(
            out,
            "| anomaly | count | this configuration |\n|---|---:|---|"
        );
        for (kind, count, standing) in rows {
            let _ = writeln!(out, "| `{}` | {count} | {standing} |", kind.as_str());
        }
        let _ = writeln!(out);
    }
    if !r.explanations.is_empty() {
        let _ = writeln!(out, "Why (times since run start):\n");
        for e in r.explanations.iter().take(FIRST) {
            let _ = writeln!(out, "- {}", e.sentence);
        }
        let _ = writeln!(out);
    }
    if !r.unknown_reasons.is_empty() {
        let _ = writeln!(out, "Unknown because:\n");
        for reason in r.unknown_reasons.iter().take(FIRST) {
            let _ = writeln!(out, "- {reason}");
        }
        let _ = writeln!(out);
    }
    if !r.not_checked.is_empty() {
        let _ = writeln!(out, "Not checked:\n");
        for what in &r.not_checked {
            let _ = writeln!(out, "- {what}");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "Availability:\n");
    for line in availability(data) {
        let _ = writeln!(out, "- {line}");
    }
    let _ = writeln!(out, "\nReport: `{}`\n", report.display());
    out
}

/// Appends the Markdown summary to `$GITHUB_STEP_SUMMARY` when the variable is set.
pub fn append_step_summary(markdown: &str) -> anyhow::Result<()> {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") else {
        return Ok(());
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| {
            anyhow::anyhow!(
                "opening $GITHUB_STEP_SUMMARY ({}): {e}",
                Path::new(&path).display()
            )
        })?;
    file.write_all(markdown.as_bytes())?;
    Ok(())
}
