//! The run as a story in time: fault windows (from the history's nemesis operations) and the
//! node events that matter to a reader (elections clean and unclean, ISR changes, truncations,
//! recoveries that dropped bytes, brokers fenced), and the timeline drawing of them, one lane per
//! node plus one for the network and one per partition. It owns the rule that pairs a fault
//! with its heal (kill/start, pause/resume, delay/delay 0, partition/heal; a power loss heals
//! itself, a short bar from the cut to the restart); the live progress
//! display uses the same rule. It does not read files (see data.rs) or draw plots (plots.rs).

use std::fmt::Write as _;

use serde_json::Value;

use super::data::{FaultOp, RunData, TimedEvent};
use super::html::escape;

/// A fault in force from `start_s` to `end_s` (`None`: never healed in the history).
#[derive(Debug, Clone)]
pub struct FaultWindow {
    /// `kill`, `pause`, `delay`, `partition` or `power-loss`.
    pub kind: &'static str,
    /// The node it hit (`"2"`, `"controller"`), or `None` for network-wide faults.
    pub node: Option<String>,
    pub label: String,
    pub start_s: f64,
    pub end_s: Option<f64>,
}

/// The faults in force, updated one nemesis operation at a time.
#[derive(Debug, Default)]
pub struct FaultState {
    open: Vec<FaultWindow>,
    closed: Vec<FaultWindow>,
}

fn node_name(value: &Value) -> Option<String> {
    match value.get("node")? {
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// How a partition fault reads: `isolate [[2],[1,3,"controller","client"]]` becomes
/// `isolate: 2 | 1,3,controller,client`.
fn partition_label(value: &Value) -> String {
    let side = |v: &Value| -> String {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("partition");
    if let Some(groups) = value.get("groups").and_then(Value::as_array) {
        let groups: Vec<String> = groups.iter().map(side).collect();
        format!("partition ({kind}): {}", groups.join(" | "))
    } else {
        let from = value.get("from").map(side).unwrap_or_default();
        let to = value.get("to").map(side).unwrap_or_default();
        format!("partition ({kind}): {from} -> {to} cut")
    }
}

impl FaultState {
    /// Applies one nemesis operation at `time_s`. Failed actions change nothing.
    pub fn apply(&mut self, f: &str, value: &Value, error: Option<&str>, time_s: f64) {
        if error.is_some() {
            return;
        }
        let node = node_name(value);
        match f {
            "kill" | "pause" => {
                let kind = if f == "kill" { "kill" } else { "pause" };
                let label = format!("{f} {}", node.as_deref().unwrap_or("?"));
                self.open(kind, node, label, time_s);
            }
            "start" => self.close(
                |w| matches!(w.kind, "kill" | "power-loss") && w.node == node,
                time_s,
            ),
            "power-loss" => self.power_loss(value, time_s),
            "resume" => self.close(|w| w.kind == "pause" && w.node == node, time_s),
            "delay" => {
                self.close(|w| w.kind == "delay", time_s);
                let delay_ms = value.get("delay_ms").and_then(Value::as_u64).unwrap_or(0);
                if delay_ms > 0 {
                    let links = value.get("links").and_then(Value::as_str).unwrap_or("all");
                    let label = format!("delay {links} {delay_ms}ms");
                    self.open("delay", None, label, time_s);
                }
            }
            "partition" => {
                self.close(|w| w.kind == "partition", time_s);
                self.open("partition", None, partition_label(value), time_s);
            }
            "heal" => self.close(|w| w.kind == "partition", time_s),
            _ => {}
        }
    }

    /// A power loss is recorded once its brokers are back: a short bar per broker over the
    /// time it was down (`down_ms` before the record), labelled with what its mount lost. A
    /// broker whose restart failed stays open until its `start`.
    fn power_loss(&mut self, value: &Value, time_s: f64) {
        let down_s = value.get("down_ms").and_then(Value::as_u64).unwrap_or(0) as f64 / 1000.0;
        let restart_failed = value.get("restart_error").is_some();
        for lost in value
            .get("lost")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(node) = lost.get("node").map(|n| n.to_string()) else {
                continue;
            };
            let bytes = lost.get("lost_bytes").and_then(Value::as_u64).unwrap_or(0);
            let label = format!("power-loss {node}: {bytes} unsynced bytes lost");
            self.open("power-loss", Some(node), label, (time_s - down_s).max(0.0));
            if !restart_failed {
                let node = self.open.last().and_then(|w| w.node.clone());
                self.close(|w| w.kind == "power-loss" && w.node == node, time_s);
            }
        }
    }

    fn open(&mut self, kind: &'static str, node: Option<String>, label: String, time_s: f64) {
        self.open.push(FaultWindow {
            kind,
            node,
            label,
            start_s: time_s,
            end_s: None,
        });
    }

    fn close(&mut self, which: impl Fn(&FaultWindow) -> bool, time_s: f64) {
        let (done, open): (Vec<_>, Vec<_>) = self.open.drain(..).partition(|w| which(w));
        self.open = open;
        self.closed.extend(done.into_iter().map(|mut w| {
            w.end_s = Some(time_s);
            w
        }));
    }

    /// The labels of the faults in force now.
    pub fn active(&self) -> Vec<&str> {
        self.open.iter().map(|w| w.label.as_str()).collect()
    }

    /// Every window, healed or not, in start order.
    pub fn into_windows(self) -> Vec<FaultWindow> {
        let mut all = self.closed;
        all.extend(self.open);
        all.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
        all
    }
}

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
            let mark = if unclean { Mark::UncleanElection } else { Mark::CleanElection };
            let text = format!(
                "{} election: leader {} (was {}), epoch {}, isr {}, reason {}",
                if unclean { "UNCLEAN" } else { "clean" },
                opt(ev.leader),
                opt(ev.previous_leader),
                opt(ev.leader_epoch),
                list(&ev.isr),
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
                "ISR {} -> {} ({}, by {node})",
                list(&ev.isr_before),
                list(&ev.isr),
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
        _ => "#0969da",
    }
}

/// The timeline as inline SVG: a lane per node with its kill and pause windows and fencing
/// marks, one lane for network faults, and a lane per partition with its elections, ISR changes
/// and truncations. Every mark has a tooltip with the full sentence.
pub fn timeline_svg(data: &RunData, windows: &[FaultWindow]) -> String {
    let end = data.end_s();
    let x = |t: f64| LEFT + (t.clamp(0.0, end) / end) * (WIDTH - LEFT - RIGHT);
    let mut nodes: Vec<String> = (1..=data.config.nodes).map(|n| n.to_string()).collect();
    nodes.push("controller".to_string());
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
        let title = if name == "controller" {
            "controller".to_string()
        } else {
            format!("broker {name}")
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
    use serde_json::json;

    #[test]
    fn faults_pair_with_their_heals() {
        let mut state = FaultState::default();
        state.apply("kill", &json!({"node": 2}), None, 1.0);
        state.apply("delay", &json!({"links": "all", "delay_ms": 50}), None, 2.0);
        state.apply("pause", &json!({"node": 3}), Some("not running"), 2.5);
        assert_eq!(state.active(), vec!["kill 2", "delay all 50ms"]);
        state.apply("start", &json!({"node": 2}), None, 3.0);
        state.apply("delay", &json!({"links": "all", "delay_ms": 0}), None, 4.0);
        assert!(state.active().is_empty());
        let windows = state.into_windows();
        assert_eq!(windows.len(), 2);
        assert_eq!(windows[0].end_s, Some(3.0));
        assert_eq!(windows[1].end_s, Some(4.0));
    }

    #[test]
    fn a_power_loss_is_a_short_bar_per_broker_or_open_until_start() {
        let mut state = FaultState::default();
        let value = json!({"nodes": [1, 3], "down_ms": 500, "lost_bytes": 30,
            "lost": [{"node": 1, "lost_bytes": 10}, {"node": 3, "lost_bytes": 20}]});
        state.apply("power-loss", &value, None, 2.0);
        assert!(state.active().is_empty(), "it heals itself");
        let failed = json!({"nodes": [2], "down_ms": 0, "restart_error": "spawn failed",
            "lost": [{"node": 2, "lost_bytes": 0}]});
        state.apply("power-loss", &failed, None, 3.0);
        assert_eq!(state.active(), vec!["power-loss 2: 0 unsynced bytes lost"]);
        state.apply("start", &json!({"node": 2}), None, 4.0);
        let windows = state.into_windows();
        assert_eq!(windows.len(), 3);
        assert_eq!((windows[0].start_s, windows[0].end_s), (1.5, Some(2.0)));
        assert_eq!(windows[0].label, "power-loss 1: 10 unsynced bytes lost");
        assert_eq!(windows[2].node.as_deref(), Some("2"));
        assert_eq!(windows[2].end_s, Some(4.0));
    }

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(13.0), 20.0);
    }
}
