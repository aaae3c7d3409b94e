//! Reading JSON-lines input one line at a time, and the record of damaged input. It owns the
//! rule that a damaged line is named (file and 1-based line number), skipped, and remembered;
//! it does not know what any line means.

use crate::results::{Warning, MAX_WARNINGS};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// Every damaged or missing piece of input found so far.
#[derive(Debug, Default)]
pub struct Damage {
    pub warnings: Vec<Warning>,
    pub total: u64,
}

impl Damage {
    pub fn push(&mut self, file: &str, line: Option<u64>, problem: impl Into<String>) {
        self.total += 1;
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(Warning {
                file: file.to_string(),
                line,
                problem: problem.into(),
            });
        }
    }
}

/// What reading a JSON-lines file came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Missing,
    Read { lines: u64 },
}

/// Calls `each(line_number, bytes)` for every non-blank line of `path` (without its newline).
/// A line `each` rejects, and an I/O error part-way, are recorded in `damage` under `name`;
/// reading stops at an I/O error. A missing file is not damage: the caller decides.
pub fn for_each_line(
    path: &Path,
    name: &str,
    damage: &mut Damage,
    mut each: impl FnMut(u64, &[u8]) -> Result<(), String>,
) -> Outcome {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Outcome::Missing,
        Err(e) => {
            damage.push(name, None, format!("cannot open: {e}"));
            return Outcome::Missing;
        }
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut buf = Vec::with_capacity(512);
    let mut line_no = 0u64;
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                damage.push(name, Some(line_no + 1), format!("read error: {e}"));
                break;
            }
        }
        line_no += 1;
        let line = trim(&buf);
        if line.is_empty() {
            continue;
        }
        if let Err(problem) = each(line_no, line) {
            let torn = if buf.last() != Some(&b'\n') {
                " (last line, no newline: torn write?)"
            } else {
                ""
            };
            damage.push(name, Some(line_no), format!("{problem}{torn}"));
        }
    }
    Outcome::Read { lines: line_no }
}

fn trim(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., last] = line {
        if last.is_ascii_whitespace() {
            line = rest;
        } else {
            break;
        }
    }
    while let [first, rest @ ..] = line {
        if first.is_ascii_whitespace() {
            line = rest;
        } else {
            break;
        }
    }
    line
}
