//! The readers of the run's two big line formats: [`OpLine::parse`] for a history line and
//! [`DumpLine::parse`] for a dump line. Each tries the `fastpath` module first, which reads the
//! lines as their writers print them several times faster, and falls back to serde, which
//! defines the formats ([`crate::history`], [`crate::dump`]). It owns this choice only; the
//! formats import nothing from here, so the fast path can be built on them without a circle.

use crate::dump::DumpLine;
use crate::error::line_problem;
use crate::fastpath;
use crate::history::OpLine;
use crate::text::Text;

impl<'a> OpLine<'a> {
    /// Parses one history line; an `Err` says what is wrong with it. Client lines as the
    /// harness writes them take the fast path; serde reads the rest.
    pub fn parse(bytes: &'a [u8]) -> Result<OpLine<'a>, String> {
        if let Some(op) = fastpath::op_line(bytes) {
            return Ok(op);
        }
        serde_json::from_slice(bytes).map_err(|e| line_problem(&e))
    }
}

impl<'a> DumpLine<Text<'a>> {
    /// Parses one dump line, borrowing strings from it; errors and the lines that are neither
    /// record nor summary are as [`DumpLine::parse_with_serde`] says. Record lines as the node
    /// writes them take the fast path; serde reads the rest.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        if let Some(record) = fastpath::dump_record(bytes) {
            return Ok(DumpLine::Record(record));
        }
        Self::parse_with_serde(bytes)
    }
}
