//! Fault windows: which faults are in force, rebuilt from the history's nemesis lines (`f`,
//! `value`, `error`, time) one at a time, for the report's timeline and plots and for the live
//! progress line alike. It pairs a fault with its heal as [`Fault::heal`] does — kill/start,
//! pause/resume, delay/delay 0, partition/heal, a message fault and the pass-response on its
//! links and API key (or a heal), and a power loss that heals itself (a short bar from the cut
//! to the restart) — reading the history through the fault vocabulary: the words
//! (`fault::word`), the fields `Fault::value` writes (`fault::field`, the checker's
//! `FaultValue`) and [`PowerLossOutcome`]. A test feeds it every variant of [`Fault`] and its
//! heal. It applies nothing and reads no files.

use faultline_checker::history::{FaultValue, NodeRef};
use serde_json::Value;

use crate::nemesis::fault::{field, word, PowerLossOutcome};

/// A message fault's label: `drop-response produce on 2 (count 1)`, `delay-response produce
/// 500ms on all`, `error-response produce NOT_LEADER_OR_FOLLOWER on 2`.
fn response_label(f: &str, value: &Value, node: Option<&str>) -> String {
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
    let number = |key: &str| value.get(key).and_then(Value::as_i64);
    let api = text(field::API)
        .or_else(|| number(field::API_KEY).map(|k| k.to_string()))
        .unwrap_or_else(|| "?".to_string());
    let mut label = format!("{f} {api}");
    if let Some(delay_ms) = number(field::DELAY_MS) {
        label.push_str(&format!(" {delay_ms}ms"));
    }
    if let Some(error) =
        text(field::ERROR_NAME).or_else(|| number(field::ERROR_CODE).map(|c| c.to_string()))
    {
        label.push_str(&format!(" {error}"));
    }
    label.push_str(&format!(" on {}", node.unwrap_or("all")));
    if let Some(count) = number(field::COUNT) {
        label.push_str(&format!(" (count {count})"));
    }
    label
}

/// A fault in force from `start_s` to `end_s` (`None`: never healed in the history).
#[derive(Debug, Clone)]
pub struct FaultWindow {
    /// The word of the fault that opened it (`fault::word`): `kill`, `pause`, `delay`,
    /// `partition`, `power-loss`, `drop-response`, `delay-response` or `error-response`.
    pub kind: &'static str,
    /// The node it hit (`"2"`, `"controller"`; a message fault: the broker whose Kafka link it
    /// acts on), or `None` for network-wide faults.
    pub node: Option<String>,
    /// A message fault's API key: its heal names the same.
    pub api_key: Option<i64>,
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

/// The node a fault names, as `FaultValue` reads it: `"2"` or `"controller"`.
fn node_name(value: &Value) -> Option<String> {
    let value: FaultValue = serde_json::from_value(value.clone()).ok()?;
    match value.node? {
        NodeRef::Broker(id) => Some(id.to_string()),
        NodeRef::Named(name) => Some(name),
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
        .get(field::KIND)
        .and_then(Value::as_str)
        .unwrap_or(word::PARTITION);
    let p = word::PARTITION;
    if let Some(groups) = value.get(field::GROUPS).and_then(Value::as_array) {
        let groups: Vec<String> = groups.iter().map(side).collect();
        format!("{p} ({kind}): {}", groups.join(" | "))
    } else {
        let from = value.get(field::FROM).map(side).unwrap_or_default();
        let to = value.get(field::TO).map(side).unwrap_or_default();
        format!("{p} ({kind}): {from} -> {to} cut")
    }
}

/// Whether a pass-response on `node`'s Kafka link (`None`: on all of them) heals window `w`,
/// a message fault: on all links it heals every one, on one link the one there.
fn passes(node: &Option<String>, w: &FaultWindow) -> bool {
    word::RESPONSE_FAULTS.contains(&w.kind) && (node.is_none() || *node == w.node)
}

impl FaultState {
    /// Applies one nemesis operation at `time_s`. Failed actions change nothing, and neither
    /// do words that are not faults (`package`, `wait`).
    pub fn apply(&mut self, f: &str, value: &Value, error: Option<&str>, time_s: f64) {
        if error.is_some() {
            return;
        }
        let node = node_name(value);
        match f {
            word::KILL | word::PAUSE => {
                let kind = if f == word::KILL {
                    word::KILL
                } else {
                    word::PAUSE
                };
                let label = format!("{f} {}", node.as_deref().unwrap_or("?"));
                self.open(kind, node, label, time_s);
            }
            word::START => self.close(
                |w| matches!(w.kind, word::KILL | word::POWER_LOSS) && w.node == node,
                time_s,
            ),
            word::POWER_LOSS => self.power_loss(&PowerLossOutcome::from_value(value), time_s),
            word::RESUME => self.close(|w| w.kind == word::PAUSE && w.node == node, time_s),
            word::DELAY => self.delay(value, time_s),
            word::PARTITION => {
                self.close(|w| w.kind == word::PARTITION, time_s);
                self.open(word::PARTITION, None, partition_label(value), time_s);
            }
            word::HEAL => self.close(
                |w| w.kind == word::PARTITION || word::RESPONSE_FAULTS.contains(&w.kind),
                time_s,
            ),
            word::DROP_RESPONSE | word::DELAY_RESPONSE | word::ERROR_RESPONSE => {
                self.response(f, value, node, time_s)
            }
            word::PASS_RESPONSE => {
                let api_key = value.get(field::API_KEY).and_then(Value::as_i64);
                self.close(|w| w.api_key == api_key && passes(&node, w), time_s)
            }
            _ => {}
        }
    }

    /// A message fault replaces the one on the same links and API key.
    fn response(&mut self, f: &str, value: &Value, node: Option<String>, time_s: f64) {
        let api_key = value.get(field::API_KEY).and_then(Value::as_i64);
        self.close(|w| w.api_key == api_key && w.node == node, time_s);
        let kind = word::RESPONSE_FAULTS
            .into_iter()
            .find(|k| *k == f)
            .expect("called with a message fault's word");
        let label = response_label(f, value, node.as_deref());
        self.open.push(FaultWindow {
            kind,
            node,
            api_key,
            label,
            start_s: time_s,
            end_s: None,
        });
    }

    /// A delay replaces the one in force; a delay of 0 only heals.
    fn delay(&mut self, value: &Value, time_s: f64) {
        self.close(|w| w.kind == word::DELAY, time_s);
        let delay_ms = value
            .get(field::DELAY_MS)
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if delay_ms > 0 {
            let links = value
                .get(field::LINKS)
                .and_then(Value::as_str)
                .unwrap_or("all");
            let label = format!("{} {links} {delay_ms}ms", word::DELAY);
            self.open(word::DELAY, None, label, time_s);
        }
    }

    /// A power loss is recorded once its brokers are back: a short bar per broker over the
    /// time it was down (`down_ms` before the record), labelled with what its mount lost. A
    /// broker whose restart failed stays open until its `start`.
    fn power_loss(&mut self, outcome: &PowerLossOutcome, time_s: f64) {
        let down_s = outcome.down_ms as f64 / 1000.0;
        for lost in &outcome.lost {
            let node = lost.node.to_string();
            let label = format!(
                "{} {node}: {} unsynced bytes lost",
                word::POWER_LOSS,
                lost.lost_bytes
            );
            let start_s = (time_s - down_s).max(0.0);
            self.open(word::POWER_LOSS, Some(node.clone()), label, start_s);
            if outcome.restart_error.is_none() {
                let node = Some(node);
                self.close(|w| w.kind == word::POWER_LOSS && w.node == node, time_s);
            }
        }
    }

    fn open(&mut self, kind: &'static str, node: Option<String>, label: String, time_s: f64) {
        self.open.push(FaultWindow {
            kind,
            node,
            api_key: None,
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
    use crate::cluster::network::{KafkaLinks, LinkSelector};
    use crate::cluster::node::{Endpoint, Node};
    use crate::cluster::proxy::kafka::faults::{ResponseAction, ResponseFault};
    use crate::cluster::proxy::Delay;
    use crate::cluster::supervisor::KillSignal;
    use crate::nemesis::fault::{Fault, LostOnBroker, NetworkPartition};
    use serde_json::json;

    /// What recording a fault does to the windows.
    #[derive(Debug, PartialEq)]
    enum Expect {
        /// Opens one window of its own word, which its heal closes.
        Opens,
        /// Opens and closes a window per broker in one record: a power loss whose brokers
        /// restarted.
        HealsItself,
        /// Is a heal: opens nothing.
        IsAHeal,
    }

    /// What each fault does to the windows. The match names every variant, so a new variant
    /// fails to compile here until it is decided; give it an example in `every_fault` too.
    fn expect(fault: &Fault) -> Expect {
        match fault {
            Fault::Kill { .. }
            | Fault::Pause { .. }
            | Fault::Delay { .. }
            | Fault::NetworkPartition { .. }
            | Fault::Response { .. } => Expect::Opens,
            Fault::PowerLoss { .. } => Expect::HealsItself,
            Fault::Start { .. }
            | Fault::Resume { .. }
            | Fault::Heal
            | Fault::PassResponse { .. } => Expect::IsAHeal,
        }
    }

    fn response(links: KafkaLinks, action: ResponseAction, count: Option<u32>) -> Fault {
        Fault::Response {
            links,
            fault: ResponseFault {
                api_key: 0,
                action,
                count,
            },
        }
    }

    /// Every variant, in each of the shapes its `value` takes.
    fn every_fault() -> Vec<Fault> {
        let (b1, b2) = (Endpoint::broker(1), Endpoint::broker(2));
        let delay = Delay {
            delay_ms: 50,
            jitter_ms: 12,
        };
        let cut = |net| Fault::NetworkPartition {
            kind: "groups".into(),
            net,
        };
        vec![
            Fault::Kill {
                node: Node::Broker(2),
                signal: KillSignal::Kill,
            },
            Fault::Kill {
                node: Node::Controller,
                signal: KillSignal::Term,
            },
            Fault::Start {
                node: Node::Broker(2),
            },
            Fault::Pause {
                node: Node::Broker(3),
            },
            Fault::Resume {
                node: Node::Broker(3),
            },
            Fault::Delay {
                links: LinkSelector::All,
                delay,
                one_way: false,
            },
            Fault::Delay {
                links: LinkSelector::Touching(b2),
                delay,
                one_way: false,
            },
            Fault::Delay {
                links: LinkSelector::Link(b1, Endpoint::CONTROLLER),
                delay,
                one_way: false,
            },
            Fault::Delay {
                links: LinkSelector::Link(b2, b1),
                delay,
                one_way: true,
            },
            cut(NetworkPartition::Groups(vec![
                vec![b1],
                vec![b2, Endpoint::CONTROLLER],
            ])),
            cut(NetworkPartition::OneWay {
                from: vec![b1],
                to: vec![b2, Endpoint::Client],
            }),
            Fault::Heal,
            Fault::PowerLoss { nodes: vec![1, 3] },
            response(KafkaLinks::Broker(2), ResponseAction::Drop, Some(1)),
            response(
                KafkaLinks::All,
                ResponseAction::Delay { delay_ms: 500 },
                None,
            ),
            response(
                KafkaLinks::Broker(1),
                ResponseAction::Error { code: 6 },
                Some(3),
            ),
            Fault::PassResponse {
                links: KafkaLinks::All,
                api_key: 0,
            },
        ]
    }

    /// The `value` the executor records: the fault's own, and for a power loss what it learnt.
    fn recorded(fault: &Fault, restart_error: Option<&str>) -> Value {
        let Fault::PowerLoss { nodes } = fault else {
            return fault.value();
        };
        let outcome = PowerLossOutcome {
            lost: nodes
                .iter()
                .map(|&node| LostOnBroker {
                    node,
                    lost_bytes: 10,
                    lost_files: 1,
                })
                .collect(),
            down_ms: 500,
            restart_error: restart_error.map(str::to_string),
            ..PowerLossOutcome::default()
        };
        fault.value_with(outcome.into_detail())
    }

    #[test]
    fn every_fault_opens_a_window_of_its_word_that_its_heal_closes() {
        for fault in every_fault() {
            let mut state = FaultState::default();
            state.apply(fault.f(), &recorded(&fault, None), None, 1.0);
            match expect(&fault) {
                Expect::Opens => {
                    assert_eq!(state.open.len(), 1, "{fault:?}");
                    assert_eq!(state.open[0].kind, fault.f());
                    let heal = fault
                        .heal()
                        .expect("a fault that opens a window has a heal");
                    state.apply(heal.f(), &heal.value(), None, 2.0);
                    assert!(state.active().is_empty(), "{heal:?} heals {fault:?}");
                }
                Expect::HealsItself => {
                    assert_eq!(fault.heal(), None, "{fault:?}");
                    assert!(state.active().is_empty(), "{fault:?}");
                    assert_eq!(state.closed.len(), fault.faulty_brokers().len());
                }
                Expect::IsAHeal => {
                    assert_eq!(fault.heal(), None, "{fault:?}");
                    assert!(
                        state.closed.is_empty() && state.open.is_empty(),
                        "{fault:?}"
                    );
                }
            }
            for window in state.into_windows() {
                assert_eq!(window.kind, fault.f());
                assert!(window.end_s.is_some(), "{fault:?}: {window:?}");
            }
        }
    }

    #[test]
    fn every_heal_in_the_vocabulary_heals_some_fault() {
        let faults = every_fault();
        let heals: Vec<Fault> = faults.iter().filter_map(Fault::heal).collect();
        for fault in faults.iter().filter(|f| expect(f) == Expect::IsAHeal) {
            assert!(heals.iter().any(|h| h.f() == fault.f()), "{fault:?}");
        }
    }

    #[test]
    fn a_power_loss_whose_restart_failed_stays_open_until_start() {
        let fault = Fault::PowerLoss { nodes: vec![1, 3] };
        let mut state = FaultState::default();
        state.apply(
            fault.f(),
            &recorded(&fault, Some("spawn failed")),
            None,
            1.0,
        );
        assert_eq!(state.open.len(), 2);
        for node in [1, 3] {
            let start = Fault::Start {
                node: Node::Broker(node),
            };
            state.apply(start.f(), &start.value(), None, 2.0);
        }
        assert!(state.active().is_empty());
    }

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
    fn message_faults_close_on_their_pass_response_a_heal_or_a_replacement() {
        let drop_on_2 = response(KafkaLinks::Broker(2), ResponseAction::Drop, Some(1));
        let delay_on_3 = response(
            KafkaLinks::Broker(3),
            ResponseAction::Delay { delay_ms: 90 },
            None,
        );
        let error_on_all = response(KafkaLinks::All, ResponseAction::Error { code: 7 }, None);
        let mut state = FaultState::default();
        state.apply(drop_on_2.f(), &drop_on_2.value(), None, 1.0);
        state.apply(delay_on_3.f(), &delay_on_3.value(), None, 1.5);
        assert_eq!(
            state.active(),
            vec![
                "drop-response produce on 2 (count 1)",
                "delay-response produce 90ms on 3"
            ]
        );
        // Another fault on the same link and API key replaces the one there.
        state.apply(error_on_all.f(), &error_on_all.value(), None, 2.0);
        let replaced = response(
            KafkaLinks::Broker(2),
            ResponseAction::Delay { delay_ms: 5 },
            None,
        );
        state.apply(replaced.f(), &replaced.value(), None, 2.5);
        assert_eq!(state.active().len(), 3, "{:?}", state.active());
        assert_eq!(
            state.active()[1],
            "error-response produce REQUEST_TIMED_OUT on all"
        );
        // A pass-response on one link heals that link's; on all links, every one.
        let pass_3 = Fault::PassResponse {
            links: KafkaLinks::Broker(3),
            api_key: 0,
        };
        state.apply(pass_3.f(), &pass_3.value(), None, 3.0);
        assert_eq!(state.active().len(), 2, "{:?}", state.active());
        let other_api = Fault::PassResponse {
            links: KafkaLinks::All,
            api_key: 1,
        };
        state.apply(other_api.f(), &other_api.value(), None, 3.5);
        assert_eq!(
            state.active().len(),
            2,
            "a pass-response of fetch leaves produce's"
        );
        state.apply("heal", &Fault::Heal.value(), None, 4.0);
        assert!(state.active().is_empty(), "{:?}", state.active());
        let windows = state.into_windows();
        assert_eq!(windows.len(), 4);
        assert_eq!(windows[0].node.as_deref(), Some("2"));
        assert_eq!(windows[0].end_s, Some(2.5));
        assert!(windows.iter().all(|w| w.end_s.is_some()));
    }
}
