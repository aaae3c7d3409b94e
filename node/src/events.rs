//! `events.jsonl`: the node's own account of what it did — role changes, elections, ISR changes,
//! truncations, recoveries — one JSON object a line, flushed as written, for people and for the
//! checker's explanations. docs/node-events.md lists every type.

use serde_json::{Map, Value};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

pub struct EventLog {
    node: Value,
    file: Mutex<File>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl EventLog {
    /// Opens `DIR/events.jsonl` for appending; `node` is a broker id or "controller".
    pub fn open(dir: &Path, node: Value) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("events.jsonl"))?;
        Ok(EventLog {
            node,
            file: Mutex::new(file),
        })
    }

    /// Appends one event. `fields` must be a JSON object; `time_ms`, `node` and `type` are added.
    pub fn emit(&self, kind: &str, fields: Value) {
        let mut line = Map::new();
        line.insert("time_ms".into(), now_ms().into());
        line.insert("node".into(), self.node.clone());
        line.insert("type".into(), kind.into());
        if let Value::Object(extra) = fields {
            line.extend(extra);
        }
        let mut text = serde_json::to_string(&Value::Object(line)).expect("events serialize");
        tracing::info!(target: "events", "{text}");
        text.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = file.write_all(text.as_bytes()) {
            tracing::error!("could not write an event: {e}");
        }
    }
}
