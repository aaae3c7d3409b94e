//! The nodes' own accounts, `nodes/<id>/events.jsonl` (docs/node-events.md): the line format
//! ([`NodeEvent`]) only. Events are read loosely: unknown types are kept and fields the checker
//! does not use land in `extra`; only lines that are not JSON objects with `time_ms` and `type`
//! (or with a known field of the wrong type) are damage. The node writes these lines itself (it
//! depends on no other crate); the harness's contract test parses a real node's events with
//! [`NodeEvent`]. Loading them and the questions the explanations ask of them are the
//! `partition_events` module's.

use crate::history::NodeRef;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
    /// The Eligible Leader Replicas after an `election` or `isr_change` (KIP-966, Kafka 4.1):
    /// absent without ELR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elr: Option<Vec<u32>>,
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
