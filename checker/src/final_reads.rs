//! `final.json`: what a fresh consumer read from every partition after healing
//! ([`FinalReads`]). The harness writes it with `String` fields; the checker reads the same
//! types with borrowed [`Text`] fields ([`FinalReads::parse`]) and turns them into its logs
//! (the `logs` module). It owns this file's shape only, not what the checker concludes from it.

use crate::text::Text;
use serde::{Deserialize, Serialize};

/// The file's name inside a run directory.
pub const FINAL_FILE: &str = "final.json";

/// `final.json`: the final read of every partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalReads<S = String> {
    /// True when every partition was read from 0 to its HW. False when any read failed or a
    /// partition had no leader: the checker's verdict is then at best `unknown`.
    pub complete: bool,
    pub partitions: Vec<FinalPartition<S>>,
}

/// The final read of one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalPartition<S = String> {
    pub topic: S,
    pub partition: u32,
    /// The leader the final read used; `None` when the partition never got one back.
    pub leader: Option<u32>,
    pub leader_epoch: Option<u32>,
    pub high_watermark: Option<u64>,
    #[serde(default)]
    pub isr: Vec<u32>,
    #[serde(default = "Vec::new")]
    pub records: Vec<FinalRecord<S>>,
    /// Why the read is incomplete, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One record of a final read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalRecord<S = String> {
    pub offset: u64,
    pub value: S,
    #[serde(default)]
    pub leader_epoch: u32,
}

impl<'a> FinalReads<Text<'a>> {
    /// Parses the text of `final.json`, borrowing strings from it.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
