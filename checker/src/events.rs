//! The nodes' own accounts, `nodes/<id>/events.jsonl` (docs/node-events.md): the line format
//! ([`NodeEvent`]), loading it, and answering the questions the explanations ask (who led in an
//! epoch, what LEO a new leader had); it does not phrase them. Events are read loosely: unknown
//! types are kept and fields the checker does not use land in `extra`; only lines that are not
//! JSON objects with `time_ms` and `type` (or with a known field of the wrong type) are damage.
//! The node writes these lines itself (it depends on no other crate); the harness's contract
//! test parses a real node's events with [`NodeEvent`].

use crate::history::NodeRef;
use crate::jsonl::{for_each_line, problem, Damage};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;

/// One node event, with every field the checker may use; the rest are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeEvent {
    /// Wall-clock time, Unix milliseconds.
    pub time_ms: u64,
    /// The broker id, or `"controller"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeRef>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_epoch: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_end_offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unclean: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_bytes: Option<u64>,
    /// The ISR after an `election` or `isr_change`, and before an `isr_change`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isr: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isr_before: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_leader: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_watermark: Option<u64>,
    /// The broker a controller event (`broker_fenced`, `broker_unfenced`) is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<u32>,
    /// Every other field (`partition_epoch`, `incarnation`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl NodeEvent {
    /// Whether the controller wrote this event.
    pub fn is_controller(&self) -> bool {
        matches!(&self.node, Some(NodeRef::Named(name)) if name == "controller")
    }

    /// The node that wrote it, as people read it: `controller`, `broker 2`, or `?`.
    pub fn node_name(&self) -> String {
        match &self.node {
            Some(NodeRef::Named(name)) => name.clone(),
            Some(NodeRef::Broker(id)) => format!("broker {id}"),
            None => "?".to_string(),
        }
    }

    /// The broker that wrote this event, when a broker did.
    pub fn broker(&self) -> Option<u32> {
        match self.node {
            Some(NodeRef::Broker(id)) => Some(id),
            _ => None,
        }
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
