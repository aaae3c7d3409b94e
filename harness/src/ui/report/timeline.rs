//! The run as a story in time: fault windows (from the history's nemesis operations) and the
//! node events that matter to a reader (elections clean and unclean, ISR changes, truncations,
//! recoveries that dropped bytes, brokers fenced), and the timeline drawing of them, one lane per
//! node plus one for the network and one per partition. The rule that pairs a fault with its
//! heal is `nemesis::windows`' (the live progress display uses it too). It does not read files
//! (see data.rs) or draw plots (plots.rs).

use std::fmt::Write as _;

use super::data::{FaultOp, RunData, TimedEvent};
use super::html::escape;
pub use crate::nemesis::windows::{FaultState, FaultWindow};

pub fn fault_windows(faults: &[FaultOp]) -> Vec<FaultWindow> {
    let mut state = FaultState::default();
    for op in faults {
        state.apply(&op.f, &op.value, op.error.as_deref(), op.time_s);
    }
    state.into_windows()
}

/// What a reader should notice about one node event, or `None` for routine ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    CleanElection,
    UncleanElection,
    Offline,
    IsrShrink,
    IsrExpand,
    Truncation,
    RecoveryDropped,
    Fenced,
    Unfenced,
}

impl Mark {
    pub fn colour(self) -> &'static str {
        match self {
            Mark::CleanElection => "#1f6feb",
            Mark::UncleanElection | Mark::Truncation | Mark::RecoveryDropped => "#d1242f",
            Mark::Offline => "#6e7781",
            Mark::IsrShrink | Mark::Fenced => "#bc4c00",
            Mark::IsrExpand | Mark::Unfenced => "#1a7f37",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mark::CleanElection => "clean election",
            Mark::UncleanElection => "UNCLEAN election",
            Mark::Offline => "partition offline",
            Mark::IsrShrink => "ISR shrink",
            Mark::IsrExpand => "ISR expand",
            Mark::Truncation => "truncation",
            Mark::RecoveryDropped => "recovery dropped bytes",
            Mark::Fenced => "broker fenced",
            Mark::Unfenced => "broker unfenced",
        }
    }
}

/// `, ELR [2]` when the event names Eligible Leader Replicas (Kafka 4.1), else nothing.
fn elr(ids: &Option<Vec<u32>>) -> String {
    match ids {
        Some(ids) => format!(", ELR {}", list(&Some(ids.clone()))),
        None => String::new(),
    }
}

fn list(ids: &Option<Vec<u32>>) -> String {
    let ids = ids.as_deref().unwrap_or(&[]);
    let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
    format!("[{}]", ids.join(","))
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "?".to_string(), |v| v.to_string())
}

/// Classifies an event and says it in one line, Kafka's words. The controller's `election` and
/// `isr_change` are the authoritative ones; the leader's own copy of an ISR change and routine
/// role changes are not marks (they appear in the event table only).
pub fn describe(e: &TimedEvent) -> (Option<Mark>, String) {
    let ev = &e.event;
    let node = ev.node_name();
    let by_controller = ev.is_controller();
    match ev.kind.as_str() {
        "election" if ev.leader.is_none() => (
            Some(Mark::Offline),
            format!("no leader: partition offline (epoch {})", opt(ev.leader_epoch)),
        ),
        "election" => {
            let unclean = ev.unclean == Some(true);
            let last_known = ev.extra.get("last_known_leader") == Some(&serde_json::Value::Bool(true));
            let mark = if unclean { Mark::UncleanElection } else { Mark::CleanElection };
            let text = format!(
                "{} election: leader {} (was {}), epoch {}, isr {}{}, reason {}",
                match (unclean, last_known) {
                    // KIP-966's last resort: Kafka marks it unclean even with unclean election off.
                    (true, true) => "UNCLEAN (last known leader: ISR and ELR were empty)",
                    (true, false) => "UNCLEAN",
                    _ => "clean",
                },
                opt(ev.leader),
                opt(ev.previous_leader),
                opt(ev.leader_epoch),
                list(&ev.isr),
                elr(&ev.elr),
                ev.reason.as_deref().unwrap_or("?")
            );
            (Some(mark), text)
        }
        "unclean_election" => (
            Some(Mark::UncleanElection),
            format!(
                "{node} took over uncleanly in epoch {} with LEO {}: acknowledged records above it are gone",
                opt(ev.leader_epoch),
                opt(ev.log_end_offset)
            ),
        ),
        "isr_change" => {
            let before = ev.isr_before.as_ref().map_or(0, Vec::len);
            let after = ev.isr.as_ref().map_or(0, Vec::len);
            let mark = if after < before { Mark::IsrShrink } else { Mark::IsrExpand };
            let text = format!(
                "ISR {} -> {}{} ({}, by {node})",
                list(&ev.isr_before),
                list(&ev.isr),
                elr(&ev.elr),
                ev.reason.as_deref().unwrap_or("?")
            );
            (by_controller.then_some(mark), text)
        }
        "truncation" => (
            Some(Mark::Truncation),
            format!(
                "{node} truncated its log from LEO {} to {} ({}, following leader {} in epoch {})",
                opt(ev.from),
                opt(ev.to),
                ev.reason.as_deref().unwrap_or("?"),
                opt(ev.leader),
                opt(ev.leader_epoch)
            ),
        ),
        "recovery" => {
            let dropped = ev.dropped_bytes.unwrap_or(0);
            let text = format!(
                "{node} recovered its log: LEO {}, HW checkpoint {}{}",
                opt(ev.log_end_offset),
                opt(ev.high_watermark),
                if dropped > 0 { format!(", dropped a torn tail of {dropped} bytes") } else { String::new() }
            );
            ((dropped > 0).then_some(Mark::RecoveryDropped), text)
        }
        "role_change" => (
            None,
            format!(
                "{node} became {} (leader {}, epoch {}), LEO {}, HW {}",
                ev.role.as_deref().unwrap_or("?"),
                opt(ev.leader),
                opt(ev.leader_epoch),
                opt(ev.log_end_offset),
                opt(ev.high_watermark)
            ),
        ),
        "broker_fenced" => (
            Some(Mark::Fenced),
            format!("controller fenced broker {} ({})", opt(ev.broker), ev.reason.as_deref().unwrap_or("?")),
        ),
        "broker_unfenced" => (Some(Mark::Unfenced), format!("controller unfenced broker {}", opt(ev.broker))),
        "broker_controlled_shutdown" => (
            Some(Mark::Fenced),
            format!("broker {} in controlled shutdown: it leaves every ISR and leads nothing", opt(ev.broker)),
        ),
        "stale_fetch_refused" => (
            None,
            format!(
                "{node} refused a fetch of broker {} from an older incarnation (broker epoch {} < {})",
                opt(ev.broker),
                ev.extra.get("broker_epoch").map_or("?".to_string(), ToString::to_string),
                ev.extra.get("current_broker_epoch").map_or("?".to_string(), ToString::to_string),
            ),
        ),
        "started" => (None, format!("{node} started")),
        other => (None, format!("{node}: {other}")),
    }
}

/// Geometry of the timeline drawing.
const WIDTH: f64 = 1200.0;
const LEFT: f64 = 150.0;
const RIGHT: f64 = 10.0;
const LANE_H: f64 = 26.0;
const TOP: f64 = 10.0;

pub fn fault_colour(kind: &str) -> &'static str {
    match kind {
        "kill" => "#cf222e",
        "pause" => "#bf8700",
        "power-loss" => "#24292f",
        "delay" => "#8250df",
        "drop-response" | "delay-response" | "error-response" => "#1b7c83",
        _ => "#0969da",
    }
}

/// The timeline as inline SVG: a lane per node with its kill and pause windows and fencing
/// marks (the controller's only where the run has one; a system file's service where a fault
/// named it), one lane for network faults, and a lane per partition with its elections, ISR
/// changes and truncations. Every mark has a tooltip with the full sentence.
pub fn timeline_svg(data: &RunData, windows: &[FaultWindow]) -> String {
    let end = data.end_s();
    let x = |t: f64| LEFT + (t.clamp(0.0, end) / end) * (WIDTH - LEFT - RIGHT);
    let mut nodes: Vec<String> = (1..=data.config.nodes).map(|n| n.to_string()).collect();
    if data.config.system.is_none() {
        nodes.push("controller".to_string());
    }
    for w in windows {
        if let Some(service) = w.node.as_ref().filter(|n| n.starts_with("service:")) {
            if !nodes.contains(service) {
                nodes.push(service.clone());
            }
        }
    }
    let partitions: Vec<(String, u32)> = data
        .results
        .partitions
        .iter()
        .map(|p| (p.topic.clone(), p.partition))
        .collect();
    let lanes = nodes.len() + 1 + partitions.len();
    let height = TOP + LANE_H * lanes as f64 + 40.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let lane_y = |i: usize| TOP + LANE_H * i as f64;
    draw_chaos_band(&mut svg, data, &x, lane_y(lanes));
    for (i, name) in nodes.iter().enumerate() {
        let title = match name.parse::<u32>() {
            Ok(_) => format!("broker {name}"),
            // `controller`, `service:postgres`
            Err(_) => name.clone(),
        };
        lane(&mut svg, lane_y(i), &title);
        for w in windows.iter().filter(|w| w.node.as_deref() == Some(name)) {
            bar(&mut svg, w, &x, lane_y(i), end);
        }
        for e in data
            .events
            .iter()
            .filter(|e| e.event.broker.map(|b| b.to_string()).as_deref() == Some(name.as_str()))
        {
            if let (Some(mark), text) = describe(e) {
                tick(&mut svg, x(e.time_s), lane_y(i), mark, e.time_s, &text);
            }
        }
    }
    let net = nodes.len();
    lane(&mut svg, lane_y(net), "network");
    for w in windows.iter().filter(|w| w.node.is_none()) {
        bar(&mut svg, w, &x, lane_y(net), end);
    }
    for (j, (topic, partition)) in partitions.iter().enumerate() {
        let y = lane_y(net + 1 + j);
        lane(&mut svg, y, &format!("partition {topic}/{partition}"));
        for e in data.partition_events(topic, *partition) {
            if let (Some(mark), text) = describe(e) {
                if !matches!(mark, Mark::Fenced | Mark::Unfenced) {
                    tick(&mut svg, x(e.time_s), y, mark, e.time_s, &text);
                }
            }
        }
    }
    axis(&mut svg, &x, lane_y(lanes), end);
    svg.push_str("</svg>");
    svg
}

fn lane(svg: &mut String, y: f64, title: &str) {
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="{y}" width="{}" height="{}" fill="#eaeef2" fill-opacity="0.6"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
        WIDTH - LEFT - RIGHT,
        LANE_H - 4.0,
        LEFT - 8.0,
        y + LANE_H / 2.0 + 2.0,
        escape(title)
    );
}

fn bar(svg: &mut String, w: &FaultWindow, x: &impl Fn(f64) -> f64, y: f64, end: f64) {
    let x0 = x(w.start_s);
    let x1 = x(w.end_s.unwrap_or(end)).max(x0 + 2.0);
    let until = w
        .end_s
        .map_or_else(|| "never healed".to_string(), |e| format!("until {e:.1} s"));
    let _ = write!(
        svg,
        r#"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}" fill-opacity="0.75"><title>{} from {:.1} s {until} (since run start)</title></rect>"#,
        y + 3.0,
        x1 - x0,
        LANE_H - 10.0,
        fault_colour(w.kind),
        escape(&w.label),
        w.start_s
    );
    // The label must stay inside its bar, or it runs into the next fault's: cut it to what fits
    // at about 6.5 px a character (the tooltip has it whole).
    let fits = ((x1 - x0 - 6.0) / 6.5).max(0.0) as usize;
    if fits >= 4 {
        let label: String = if w.label.chars().count() <= fits {
            w.label.clone()
        } else {
            w.label.chars().take(fits - 1).chain(['…']).collect()
        };
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" fill="#fff" font-size="11">{}</text>"##,
            x0 + 3.0,
            y + LANE_H / 2.0 + 2.0,
            escape(&label)
        );
    }
}

fn tick(svg: &mut String, x: f64, y: f64, mark: Mark, time_s: f64, text: &str) {
    let cy = y + (LANE_H - 4.0) / 2.0;
    let shape = match mark {
        Mark::CleanElection | Mark::UncleanElection | Mark::Offline => format!(
            "M{x:.1},{:.1} L{:.1},{cy:.1} L{x:.1},{:.1} L{:.1},{cy:.1} Z",
            cy - 8.0,
            x + 6.0,
            cy + 8.0,
            x - 6.0
        ),
        Mark::IsrShrink | Mark::Fenced => {
            format!(
                "M{:.1},{:.1} L{:.1},{:.1} L{x:.1},{:.1} Z",
                x - 5.0,
                cy - 5.0,
                x + 5.0,
                cy - 5.0,
                cy + 5.0
            )
        }
        Mark::IsrExpand | Mark::Unfenced => {
            format!(
                "M{:.1},{:.1} L{:.1},{:.1} L{x:.1},{:.1} Z",
                x - 5.0,
                cy + 5.0,
                x + 5.0,
                cy + 5.0,
                cy - 5.0
            )
        }
        Mark::Truncation | Mark::RecoveryDropped => format!(
            "M{:.1},{:.1} L{:.1},{:.1} M{:.1},{:.1} L{:.1},{:.1}",
            x - 5.0,
            cy - 5.0,
            x + 5.0,
            cy + 5.0,
            x - 5.0,
            cy + 5.0,
            x + 5.0,
            cy - 5.0
        ),
    };
    let _ = write!(
        svg,
        r#"<path d="{shape}" fill="{c}" stroke="{c}" stroke-width="2"><title>{time_s:.2} s: {}</title></path>"#,
        escape(text),
        c = mark.colour()
    );
}

/// The span in which clients ran, drawn faintly behind every lane.
fn draw_chaos_band(svg: &mut String, data: &RunData, x: &impl Fn(f64) -> f64, bottom: f64) {
    if let (Some(a), Some(b)) = (data.history.first_client_s, data.history.last_client_s) {
        let _ = write!(
            svg,
            r##"<rect x="{:.1}" y="{TOP}" width="{:.1}" height="{:.1}" fill="#fff8c5" fill-opacity="0.6"><title>clients ran from {a:.1} s to {b:.1} s since run start</title></rect>"##,
            x(a),
            x(b) - x(a),
            bottom - TOP
        );
    }
}

fn axis(svg: &mut String, x: &impl Fn(f64) -> f64, y: f64, end: f64) {
    let step = nice_step(end / 10.0);
    let mut t = 0.0;
    for _ in 0..100 {
        if t > end {
            break;
        }
        let _ = write!(
            svg,
            r##"<line x1="{0:.1}" y1="{TOP}" x2="{0:.1}" y2="{1:.1}" stroke="#d0d7de" stroke-dasharray="2,3"/><text x="{0:.1}" y="{2:.1}" text-anchor="middle">{t}</text>"##,
            x(t),
            y + 2.0,
            y + 16.0
        );
        t += step;
    }
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds since run start</text>"#,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        y + 32.0
    );
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
pub fn nice_step(raw: f64) -> f64 {
    let raw = raw.max(1e-3);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(13.0), 20.0);
    }

    /// Kafka 4.1's Eligible Leader Replicas show on the timeline's ISR changes and elections.
    #[test]
    fn isr_changes_and_elections_name_the_elr_when_there_is_one() {
        let event = |json: serde_json::Value| TimedEvent {
            time_s: 1.0,
            event: serde_json::from_value(json).unwrap(),
        };
        let shrink = event(serde_json::json!({"time_ms": 1, "node": "controller",
            "type": "isr_change", "isr_before": [1], "isr": [], "elr": [2, 1],
            "reason": "broker_fenced"}));
        let (mark, text) = describe(&shrink);
        assert_eq!(mark, Some(Mark::IsrShrink));
        assert_eq!(
            text,
            "ISR [1] -> [], ELR [2,1] (broker_fenced, by controller)"
        );
        let elected = event(serde_json::json!({"time_ms": 2, "node": "controller",
            "type": "election", "leader": 2, "previous_leader": null, "leader_epoch": 3,
            "isr": [2], "elr": [], "unclean": false, "reason": "broker_unfenced"}));
        let (_, text) = describe(&elected);
        assert!(text.contains("isr [2], ELR []"), "{text}");
        let last_resort = event(serde_json::json!({"time_ms": 3, "node": "controller",
            "type": "election", "leader": 1, "previous_leader": null, "leader_epoch": 4,
            "isr": [1], "elr": [], "unclean": true, "last_known_leader": true,
            "reason": "broker_unfenced"}));
        let (mark, text) = describe(&last_resort);
        assert_eq!(mark, Some(Mark::UncleanElection));
        assert!(
            text.starts_with("UNCLEAN (last known leader: ISR and ELR were empty)"),
            "{text}"
        );
        let before_elr = event(serde_json::json!({"time_ms": 3, "node": "controller",
            "type": "isr_change", "isr_before": [1, 2], "isr": [1], "reason": "alter_partition"}));
        assert!(!describe(&before_elr).1.contains("ELR"));
    }
}
