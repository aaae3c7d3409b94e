//! The schedule language (docs/schedules.md): a list of steps, one a line, that replaces the
//! random nemesis. It parses and prints; it does not run anything (the `generator` runs steps).
//! A step is an [`Action`], optionally prefixed by `at DURATION` (not before that time after the
//! chaos phase starts); steps without `at` run as soon as the previous one finished. `#` starts
//! a comment. Every run writes the steps it actually performed, with concrete nodes and times,
//! to `schedule.txt`, which this module reads back for a replay.

use std::path::Path;
use std::time::Duration;

use crate::duration::{format_duration, parse_duration};

mod action;
mod parse;

pub use action::{
    Action, KafkaLinkSpec, LinkSpec, Member, NetworkPartitionSpec, PowerLossTargets, Target,
    TopicPartition,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub at: Option<Duration>,
    pub action: Action,
    /// The 1-based line the step came from.
    pub line: usize,
}

impl Step {
    /// The step's line in the schedule language.
    #[cfg(test)]
    pub fn to_line(&self) -> String {
        format_step(self.at, &self.action)
    }
}

pub fn format_step(at: Option<Duration>, action: &Action) -> String {
    match at {
        Some(at) => format!("at {} {action}", format_duration(at)),
        None => action.to_string(),
    }
}

pub fn parse_schedule(text: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let step = parse_step(line).map_err(|e| format!("line {}: {e}: {line:?}", i + 1))?;
        steps.push(Step {
            at: step.0,
            action: step.1,
            line: i + 1,
        });
    }
    Ok(steps)
}

fn parse_step(line: &str) -> Result<(Option<Duration>, Action), String> {
    let Some(rest) = line.strip_prefix("at ") else {
        return Ok((None, line.parse()?));
    };
    let rest = rest.trim_start();
    let (when, action) = rest
        .split_once(char::is_whitespace)
        .ok_or_else(|| "expected `at DURATION ACTION`".to_string())?;
    Ok((Some(parse_duration(when)?), action.parse()?))
}

pub fn read_schedule(path: &Path) -> Result<Vec<Step>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read schedule {}: {e}", path.display()))?;
    parse_schedule(&text).map_err(|e| format!("schedule {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_timed_and_sequential_steps_with_comments() {
        let text = "# a known scenario\n\
                    at 1s kill leader   # the leader first\n\
                    \n\
                    wait isr 2 timeout 5s\n\
                    at 2500ms start all\n";
        let steps = parse_schedule(text).unwrap();
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[0].at, Some(Duration::from_secs(1)));
        assert_eq!(steps[0].line, 2);
        assert_eq!(steps[1].at, None);
        assert_eq!(steps[2].to_line(), "at 2500ms start all");
        let again = parse_schedule(
            &steps
                .iter()
                .map(Step::to_line)
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .unwrap();
        assert_eq!(
            again.iter().map(|s| &s.action).collect::<Vec<_>>(),
            steps.iter().map(|s| &s.action).collect::<Vec<_>>()
        );
    }

    #[test]
    fn errors_name_the_line() {
        let error = parse_schedule("heal\nat soon kill 1\n").unwrap_err();
        assert!(error.starts_with("line 2: bad duration"), "{error}");
    }
}
