//! `report.html`: one self-contained page (inline CSS and SVG, no script, no network fetch)
//! that reads top to bottom as the run happened: verdict and configuration first, then what
//! happened in a sentence, the anomalies with their explanations, availability, the timeline,
//! the plots, and the raw lists (events, schedule, damaged input) folded away. It lays out the
//! page; the pieces come from summary.rs, timeline.rs and plots.rs.

use std::fmt::Write as _;

use faultline_checker::Valid;

use super::anomalies::{anomalies, anomaly_details, join};
use super::data::RunData;
use super::summary;
use super::timeline::{self, describe, fault_windows};
use super::{plots, standing, Standing};

/// Node events listed in the event table.
const MAX_EVENTS: usize = 2_000;

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1240px; color: #1f2328; }
h1 { font-size: 24px; margin: 0 0 4px 0; } h2 { font-size: 19px; margin-top: 32px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px 0; }
.verdict { display: inline-block; padding: 4px 14px; border-radius: 6px; color: #fff; font-weight: 600; font-size: 20px; margin-right: 10px; }
.valid { background: #1a7f37; } .invalid { background: #cf222e; } .unknown { background: #9a6700; }
.muted { color: #59636e; font-size: 13px; }
table { border-collapse: collapse; margin: 6px 0; font-size: 13px; }
td, th { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.breaks td { background: #ffebe9; } tr.allowed td { background: #fff8c5; } tr.zero td { color: #8c959f; }
.story { background: #f6f8fa; border-left: 4px solid #0969da; padding: 8px 14px; margin: 14px 0; font-size: 14px; }
.why { background: #ffebe9; border-left: 4px solid #cf222e; padding: 6px 12px; margin: 6px 0; font-size: 14px; }
.why.allowed { background: #fff8c5; border-left-color: #9a6700; }
.legend span { display: inline-block; margin-right: 14px; font-size: 12px; }
.sw { display: inline-block; width: 12px; height: 12px; vertical-align: middle; margin-right: 4px; border-radius: 2px; }
svg { max-width: 100%; height: auto; }
details { margin: 8px 0; } summary { cursor: pointer; font-weight: 600; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; font-size: 12px; }
"#;

/// The whole page.
pub fn page(data: &RunData) -> anyhow::Result<String> {
    let windows = fault_windows(&data.history.faults);
    let mut out = String::with_capacity(256 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>faultline {} — {}</title><style>{STYLE}</style></head><body>",
        escape(&data.config.name),
        data.results.valid.as_str()
    );
    header(&mut out, data);
    anomalies(&mut out, data);
    super::probes::probes(&mut out, data);
    availability(&mut out, data);
    let _ = write!(
        out,
        "<h2>Timeline</h2><p class=\"muted\">Every time on this page is in seconds since the run started (when setup began; \
         <code>test.json</code> <code>start_unix_ms</code>). The pale yellow band is the time clients ran (the chaos phase). \
         Hover a mark for the full event.</p>{}{}",
        fault_legend(),
        mark_legend()
    );
    out.push_str(&timeline::timeline_svg(data, &windows));
    plot_section(&mut out, data, &windows)?;
    raw_lists(&mut out, data);
    let _ = write!(
        out,
        "<p class=\"muted\">Written by <code>faultline report</code> from the stored run only; regenerate it with \
         <code>faultline report RUN_DIR</code>.</p></body></html>"
    );
    Ok(out)
}

/// `2025-01-02 03:04:05.678` from the store's `20250102T030405.678Z`.
fn readable_time(unix_ms: u64) -> String {
    let stamp = crate::test::store::timestamp(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms),
    );
    let b = stamp.as_bytes();
    if b.len() < 19 {
        return stamp;
    }
    let s = |r: std::ops::Range<usize>| &stamp[r];
    format!(
        "{}-{}-{} {}:{}:{}",
        s(0..4),
        s(4..6),
        s(6..8),
        s(9..11),
        s(11..13),
        s(13..19)
    )
}

fn verdict_class(valid: Valid) -> &'static str {
    match valid {
        Valid::True => "valid",
        Valid::False => "invalid",
        Valid::Unknown => "unknown",
    }
}

fn header(out: &mut String, data: &RunData) {
    let r = &data.results;
    let _ = write!(
        out,
        "<h1>faultline run <code>{}</code></h1><p class=\"muted\">seed {} · started {} UTC · harness {}</p>",
        escape(&data.config.name),
        data.config.seed,
        readable_time(data.config.start_unix_ms),
        escape(&data.config.harness.harness_version)
    );
    let _ = write!(
        out,
        "<p><span class=\"verdict {}\">{}</span> {}</p>",
        verdict_class(r.valid),
        r.valid.as_str().to_uppercase(),
        escape(&summary::promise(data))
    );
    let _ = write!(out, "<div class=\"story\">{}</div>", escape(&story(data)));
    out.push_str("<table>");
    for (i, line) in summary::configuration(data).iter().enumerate() {
        let title = if i == 0 { "configuration" } else { "" };
        let _ = write!(out, "<tr><th>{title}</th><td>{}</td></tr>", escape(line));
    }
    let c = &r.counts;
    let rows = [
        (
            "sends",
            format!(
                "{} ok · {} fail · {} info (unknown outcome)",
                c.send.ok, c.send.fail, c.send.info
            ),
        ),
        (
            "polls",
            format!(
                "{} ok · {} fail · {} info · {} records read",
                c.poll.ok, c.poll.fail, c.poll.info, c.polled_records
            ),
        ),
        (
            "final log",
            format!(
                "{} records ({} in the brokers' dumps)",
                c.final_records, c.dump_records
            ),
        ),
    ];
    for (title, text) in rows {
        let _ = write!(out, "<tr><th>{title}</th><td>{}</td></tr>", escape(&text));
    }
    out.push_str("</table>");
    if !r.unknown_reasons.is_empty() {
        out.push_str("<h3>Why the verdict is unknown</h3><ul>");
        for reason in &r.unknown_reasons {
            let _ = write!(out, "<li>{}</li>", escape(reason));
        }
        out.push_str("</ul>");
    }
    if !r.not_checked.is_empty() {
        out.push_str("<h3>Not checked</h3><ul>");
        for what in &r.not_checked {
            let _ = write!(out, "<li>{}</li>", escape(what));
        }
        out.push_str("</ul>");
    }
}

/// One paragraph saying what happened, for a reader who looks at nothing else.
fn story(data: &RunData) -> String {
    let h = &data.history;
    let (faults, elections) = summary::happenings(data);
    let chaos = match (h.first_client_s, h.last_client_s) {
        (Some(a), Some(b)) => format!(
            "Clients ran from {a:.1} s to {b:.1} s and completed {} operations. ",
            h.ops.len()
        ),
        _ => "No client operation completed. ".to_string(),
    };
    let rows = summary::anomaly_rows(data);
    let anomalies = if rows.is_empty() {
        "The checker found no anomaly.".to_string()
    } else {
        let found: Vec<String> = rows
            .iter()
            .map(|(k, n, _)| format!("{} ×{n}", k.as_str()))
            .collect();
        let breaking: Vec<&str> = rows
            .iter()
            .filter(|(k, _, _)| standing(&data.results, *k, None) == Standing::Breaks)
            .map(|(k, _, _)| k.as_str())
            .collect();
        let judgement = if breaking.is_empty() {
            "this configuration allows them".to_string()
        } else if breaking.len() == rows.len() {
            "they break the guarantee".to_string()
        } else {
            format!(
                "{} break the guarantee, this configuration allows the others",
                breaking.join(", ")
            )
        };
        format!(
            "The checker found anomalies ({}): {judgement}.",
            found.join(", ")
        )
    };
    let abort = h.abort.as_ref().map_or_else(String::new, |(t, why)| {
        format!(" The run was aborted at {t:.1} s: {why}.")
    });
    format!("{chaos}Faults: {faults}. Elections: {elections}. {anomalies}{abort}")
}

fn availability(out: &mut String, data: &RunData) {
    out.push_str("<h2>Partitions at the end</h2><table><tr><th>partition</th><th>leader</th><th>leader_epoch</th><th>HW</th><th>ISR</th><th>final records</th><th>final read</th><th>sends ok / fail / info</th><th>write availability</th><th>longest write gap</th></tr>");
    for p in &data.results.partitions {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "—".to_string());
        let _ = write!(
            out,
            "<tr class=\"{}\"><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td><td>[{}]</td><td class=\"num\">{}</td><td>{}</td><td>{} / {} / {}</td><td>{}</td><td>{}</td></tr>",
            if p.unavailable { "breaks" } else { "" },
            escape(&p.topic),
            p.partition,
            opt(p.leader.map(|l| l.to_string())).replace('—', "none: UNAVAILABLE"),
            opt(p.leader_epoch.map(|e| e.to_string())),
            opt(p.high_watermark.map(|h| h.to_string())),
            join(&p.isr),
            p.final_records,
            if p.final_complete { "complete" } else { "INCOMPLETE" },
            p.send.ok,
            p.send.fail,
            p.send.info,
            opt(p.write_availability.map(|a| format!("{:.0}% of seconds", a * 100.0))),
            opt(p.longest_write_gap_ms.map(|g| format!("{:.1} s", g as f64 / 1000.0)))
        );
    }
    out.push_str("</table>");
}

fn fault_legend() -> String {
    let mut out = String::from("<div class=\"legend\">Faults: ");
    for (kind, what) in [
        ("kill", "kill (down until start)"),
        ("pause", "pause (SIGSTOP until resume)"),
        (
            "power-loss",
            "power loss (killed, unsynced data dropped, restarted)",
        ),
        ("delay", "network delay"),
        ("partition", "network partition (until heal)"),
        (
            "drop-response",
            "message fault: drop, delay or error-response (until pass-response or heal)",
        ),
    ] {
        let _ = write!(
            out,
            "<span><i class=\"sw\" style=\"background:{}\"></i>{what}</span>",
            timeline::fault_colour(kind)
        );
    }
    out.push_str("</div>");
    out
}

fn mark_legend() -> String {
    use timeline::Mark;
    let mut out = String::from("<div class=\"legend\">Events: ");
    for (mark, shape) in [
        (Mark::CleanElection, "◆"),
        (Mark::UncleanElection, "◆"),
        (Mark::Offline, "◆"),
        (Mark::IsrShrink, "▼"),
        (Mark::IsrExpand, "▲"),
        (Mark::Truncation, "✕"),
        (Mark::RecoveryDropped, "✕"),
        (Mark::Fenced, "▼"),
        (Mark::Unfenced, "▲"),
    ] {
        let _ = write!(
            out,
            "<span style=\"color:{}\">{shape}</span><span>{}</span>",
            mark.colour(),
            mark.name()
        );
    }
    out.push_str("</div>");
    out
}

fn plot_section(
    out: &mut String,
    data: &RunData,
    windows: &[timeline::FaultWindow],
) -> anyhow::Result<()> {
    let (latency, drawn, sampled) = plots::latency(data, windows)?;
    let note = if sampled {
        format!(
            "{} of {} operations drawn: a uniform sample of {}, plus for each of {} time slices and each outcome the fastest and the slowest.",
            drawn,
            data.history.ops.len(),
            plots::MAX_LATENCY_POINTS / 2,
            plots::TIME_BINS
        )
    } else {
        format!("All {} operations drawn.", data.history.ops.len())
    };
    let _ = write!(
        out,
        "<h2>Latency of every operation</h2><p class=\"muted\">Each dot is one send or poll, placed at its completion, coloured by outcome; \
         shaded bands are the fault windows (colours as in the timeline). {note}</p>{latency}"
    );
    let _ = write!(
        out,
        "<h2>Throughput</h2><p class=\"muted\">Completed operations per second by outcome.</p>{}",
        plots::throughput(data, windows)?
    );
    for p in &data.results.partitions {
        let _ = write!(
            out,
            "<h2>Partition {}/{}: offsets and ISR</h2><p class=\"muted\">A drop in the grey dots means offsets were handed out \
             again after a truncation. Broker marks come from the node events (restarts, role changes, truncations, unclean elections).</p>{}{}",
            escape(&p.topic),
            p.partition,
            offsets_legend(data, &p.topic, p.partition),
            plots::offsets(data, windows, &p.topic, p.partition)?
        );
        if let Some(isr) = plots::isr_size(data, windows, &p.topic, p.partition)? {
            out.push_str(&isr);
        }
    }
    Ok(())
}

fn offsets_legend(data: &RunData, topic: &str, partition: u32) -> String {
    let mut out = String::from(
        "<div class=\"legend\"><span><b style=\"color:#57606a\">●</b> highest offset acknowledged to producers (per time slice)</span>\
         <span><b>×</b> HW answered to consumers</span>",
    );
    for broker in plots::brokers_with_marks(data, topic, partition) {
        let _ = write!(
            out,
            "<span style=\"color:{}\"><b>●</b> LEO <b>▲</b> HW of broker {broker}</span>",
            plots::broker_colour(broker)
        );
    }
    out.push_str("</div>");
    out
}

fn raw_lists(out: &mut String, data: &RunData) {
    let listed: Vec<_> = data.events.iter().collect();
    let _ = write!(out, "<h2>Details</h2>");
    anomaly_details(out, data);
    let _ = write!(
        out,
        "<details><summary>Node events ({} in all{})</summary><table><tr><th>s since run start</th><th>partition</th><th>event</th></tr>",
        listed.len(),
        if listed.len() > MAX_EVENTS { format!(", first {MAX_EVENTS} listed") } else { String::new() }
    );
    for e in listed.iter().take(MAX_EVENTS) {
        let (mark, text) = describe(e);
        let partition = match (&e.event.topic, e.event.partition) {
            (Some(t), Some(p)) => format!("{t}/{p}"),
            _ => String::new(),
        };
        let colour = mark.map_or("inherit", |m| m.colour());
        let _ = write!(
            out,
            "<tr><td class=\"num\">{:.3}</td><td>{}</td><td style=\"color:{colour}\">{}</td></tr>",
            e.time_s,
            escape(&partition),
            escape(&text)
        );
    }
    out.push_str("</table></details>");
    out.push_str("<details><summary>Faults performed (from history.jsonl)</summary><table><tr><th>s since run start</th><th>fault</th><th>detail</th><th>error</th></tr>");
    for f in &data.history.faults {
        let _ = write!(
            out,
            "<tr><td class=\"num\">{:.3}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            f.time_s,
            escape(&f.f),
            escape(&f.value.to_string()),
            escape(f.error.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</table></details>");
    if let Some(schedule) = &data.schedule {
        let _ = write!(
            out,
            "<details><summary>schedule.txt (its times count from the start of the chaos phase, not the run)</summary><pre>{}</pre></details>",
            escape(schedule)
        );
    }
    let r = &data.results;
    if r.warnings_total > 0 {
        let _ = write!(
            out,
            "<details open><summary>Damaged input ({} lines)</summary><ul>",
            r.warnings_total
        );
        for w in &r.warnings {
            let line = w.line.map_or_else(String::new, |l| format!(":{l}"));
            let _ = write!(
                out,
                "<li><code>{}{line}</code>: {}</li>",
                escape(&w.file),
                escape(&w.problem)
            );
        }
        out.push_str("</ul></details>");
    }
}
