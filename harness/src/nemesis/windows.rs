//! Fault windows: which faults are in force, rebuilt from the history's nemesis lines (`f`,
//! `value`, `error`, time) one at a time. It owns the rule that pairs a fault with its heal —
//! kill/start, pause/resume, delay/delay 0, partition/heal, and a power loss that heals itself
//! (a short bar from the cut to the restart) — for the report's timeline and plots and for the
//! live progress line alike. It reads the words of the fault vocabulary (`Fault::f`) and the
//! fields of `Fault::value`; a test holds it to every variant of both.

use serde_json::Value;

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
}
