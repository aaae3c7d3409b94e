//! The nodes' own accounts (`nodes/<id>/events.jsonl`, docs/node-events.md), read loosely:
//! unknown types and extra fields are kept or ignored, only lines that are not JSON objects
//! with `time_ms` and `type` are damage. It owns loading events and answering the questions the
//! explanations ask (who led in an epoch, what LEO a new leader had); it does not phrase them.

use crate::jsonl::{for_each_line, problem, Damage};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// One node event, with every field the checker may use.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeEvent {
    pub time_ms: u64,
    #[serde(default)]
    pub node: Value,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub partition: Option<u32>,
    #[serde(default)]
    pub leader: Option<u32>,
    #[serde(default)]
    pub leader_epoch: Option<u32>,
    #[serde(default)]
    pub log_end_offset: Option<u64>,
    #[serde(default)]
    pub from: Option<u64>,
    #[serde(default)]
    pub to: Option<u64>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub unclean: Option<bool>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub dropped_bytes: Option<u64>,
    /// The ISR after an `election` or `isr_change`, and before an `isr_change`.
    #[serde(default)]
    pub isr: Option<Vec<u32>>,
    #[serde(default)]
    pub isr_before: Option<Vec<u32>>,
    #[serde(default)]
    pub previous_leader: Option<u32>,
    #[serde(default)]
    pub high_watermark: Option<u64>,
    /// The broker a controller event (`broker_fenced`, `broker_unfenced`) is about.
    #[serde(default)]
    pub broker: Option<u32>,
}

impl NodeEvent {
    /// The broker that wrote this event, when a broker did.
    pub fn broker(&self) -> Option<u32> {
        self.node.as_u64().and_then(|n| u32::try_from(n).ok())
    }
}

/// A leadership change of one partition, merged from the controller's `election`, the new
/// leader's `unclean_election` and its `role_change` to leader.
#[derive(Debug, Clone, PartialEq)]
pub struct Election {
    pub time_ms: u64,
    pub leader: u32,
    pub leader_epoch: u32,
    pub unclean: bool,
    /// The new leader's LEO when it took over, when an event says.
    pub log_end_offset: Option<u64>,
}

/// All events, grouped by partition and sorted by time.
#[derive(Debug, Default)]
pub struct Events {
    by_partition: HashMap<(String, u32), Vec<NodeEvent>>,
    pub lines: u64,
}

impl Events {
    /// Reads one events.jsonl (missing files are fine: a node may never have started).
    pub fn load(&mut self, path: &Path, name: &str, damage: &mut Damage) {
        for_each_line(path, name, damage, |_, bytes| {
            let event: NodeEvent = serde_json::from_slice(bytes).map_err(|e| problem(&e))?;
            self.lines += 1;
            if let (Some(topic), Some(partition)) = (event.topic.clone(), event.partition) {
                self.by_partition
                    .entry((topic, partition))
                    .or_default()
                    .push(event);
            }
            Ok(())
        });
    }

    /// Sorts each partition's events by time; call once after loading.
    pub fn finish(&mut self) {
        for events in self.by_partition.values_mut() {
            events.sort_by_key(|e| e.time_ms);
        }
    }

    pub fn of(&self, topic: &str, partition: u32) -> &[NodeEvent] {
        self.by_partition
            .get(&(topic.to_string(), partition))
            .map_or(&[], Vec::as_slice)
    }

    /// Every election of the partition, one per leader epoch, in epoch order.
    pub fn elections(&self, topic: &str, partition: u32) -> Vec<Election> {
        let mut by_epoch: std::collections::BTreeMap<u32, Election> = Default::default();
        for e in self.of(topic, partition) {
            let Some((leader, epoch)) = leader_and_epoch(e) else {
                continue;
            };
            let entry = by_epoch.entry(epoch).or_insert(Election {
                time_ms: e.time_ms,
                leader,
                leader_epoch: epoch,
                unclean: false,
                log_end_offset: None,
            });
            entry.time_ms = entry.time_ms.min(e.time_ms);
            entry.unclean |= e.kind == "unclean_election" || e.unclean == Some(true);
            if e.kind != "election" && entry.log_end_offset.is_none() {
                entry.log_end_offset = e.log_end_offset;
            }
        }
        by_epoch.into_values().collect()
    }

    /// The broker that led the partition in `epoch`, when an event says.
    pub fn leader_in_epoch(&self, topic: &str, partition: u32, epoch: u32) -> Option<u32> {
        self.of(topic, partition)
            .iter()
            .filter_map(leader_and_epoch)
            .find(|&(_, e)| e == epoch)
            .map(|(leader, _)| leader)
    }
}

/// (leader, leader_epoch) for the events that name a partition's leader for an epoch.
fn leader_and_epoch(e: &NodeEvent) -> Option<(u32, u32)> {
    let epoch = e.leader_epoch?;
    match e.kind.as_str() {
        "election" | "unclean_election" => Some((e.leader?, epoch)),
        "role_change" if e.role.as_deref() == Some("leader") => Some((e.broker()?, epoch)),
        _ => None,
    }
}
