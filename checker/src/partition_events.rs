//! The nodes' events of each partition, loaded from every `events.jsonl` and sorted by time,
//! and the answers to the questions the explanations ask of them (who led in an epoch, what LEO
//! a new leader had); it does not phrase them. The line format is [`crate::events`].

use crate::error::line_problem;
use crate::events::NodeEvent;
use crate::jsonl::{for_each_line, Damage};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

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
    /// Events about no partition (`broker_fenced`, `broker_registered`, ...).
    global: Vec<NodeEvent>,
    pub lines: u64,
}

impl Events {
    /// Reads one events.jsonl (missing files are fine: a node may never have started).
    pub fn load(&mut self, path: &Path, name: &str, damage: &mut Damage) {
        for_each_line(path, name, damage, |_, bytes| {
            let event: NodeEvent = serde_json::from_slice(bytes).map_err(|e| line_problem(&e))?;
            self.lines += 1;
            if let (Some(topic), Some(partition)) = (event.topic.clone(), event.partition) {
                self.by_partition
                    .entry((topic, partition))
                    .or_default()
                    .push(event);
            } else {
                self.global.push(event);
            }
            Ok(())
        });
    }

    /// Sorts each partition's events by time; call once after loading.
    pub fn finish(&mut self) {
        for events in self.by_partition.values_mut() {
            events.sort_by_key(|e| e.time_ms);
        }
        self.global.sort_by_key(|e| e.time_ms);
    }

    /// Every partition with events, in name order, with its events by time.
    pub fn partitions(&self) -> Vec<(&(String, u32), &[NodeEvent])> {
        let mut all: Vec<_> = self
            .by_partition
            .iter()
            .map(|(k, v)| (k, v.as_slice()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        all
    }

    /// The events about no partition, by time.
    pub fn without_partition(&self) -> &[NodeEvent] {
        &self.global
    }

    pub fn of(&self, topic: &str, partition: u32) -> &[NodeEvent] {
        self.by_partition
            .get(&(topic.to_string(), partition))
            .map_or(&[], Vec::as_slice)
    }

    /// Every election of the partition, one per leader epoch, in epoch order.
    pub fn elections(&self, topic: &str, partition: u32) -> Vec<Election> {
        let mut by_epoch: BTreeMap<u32, Election> = BTreeMap::new();
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
