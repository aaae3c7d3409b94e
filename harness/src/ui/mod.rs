//! The UI layer: what a user types and sees. `cli` parses the command line into requests,
//! `command` runs them and maps every outcome to an exit code, `progress` is the live status line (the terminal's run observer), and
//! `report` writes report.html, junit.xml and the summaries of a checked run.

pub mod cli;
pub mod command;
pub mod progress;
pub mod report;
