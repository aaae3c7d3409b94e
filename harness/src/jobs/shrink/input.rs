//! The run a shrink starts from, read and checked before anything is written: its test.json,
//! its results.json (which anomaly to keep), its schedule.txt (the steps, and the replay line
//! whose settings every candidate runs with). Every problem is a `BadArgs` naming the file and
//! what is wrong with it, so a bad input exits 254 with nothing written. It also owns the one
//! rule for "this run shows the anomaly", which the replays use too.

use std::path::{Path, PathBuf};

use faultline_checker::config::TestConfig;
use faultline_checker::{AnomalyKind, Results, RETRY_EXCUSE, WEAK_SEND_EXCUSE};
use serde_json::Value;

use super::plan::Item;
use crate::nemesis::schedule::parse_schedule;
use crate::test::error::bad;
use crate::test::options::TestRequest;

/// Parses `faultline test` arguments (the words after `faultline`, starting with `test`) into
/// a request, with the command line's own parser: the UI's, handed down so this layer need
/// not import it.
pub type ReplayParser = fn(&[String]) -> anyhow::Result<TestRequest>;

/// The run to shrink, checked.
#[derive(Debug, Clone)]
pub struct Input {
    /// The run's directory, resolved (a `store/latest` link followed).
    pub run_dir: PathBuf,
    pub config: TestConfig,
    pub results: Results,
    pub class: AnomalyKind,
    /// The recorded steps, in order, each with its id.
    pub steps: Vec<Item>,
    /// The replay line's request, with the node binary set; each candidate sets its schedule,
    /// name, store, time limit and rate.
    pub request: TestRequest,
}

/// Reads and checks the run at `path` (a run directory, or a store: its latest run).
pub fn read(
    path: &Path,
    class: Option<AnomalyKind>,
    node_bin: Option<&Path>,
    parse: ReplayParser,
) -> anyhow::Result<Input> {
    let run_dir = resolve(path)?;
    let config =
        TestConfig::read(&run_dir).map_err(|e| bad(format!("{}: {e}", run_dir.display())))?;
    check_version(&run_dir, &config)?;
    let results = read_results(&run_dir)?;
    let class = choose_class(&results, class, &run_dir)?;
    let schedule = run_dir.join("schedule.txt");
    let text = std::fs::read_to_string(&schedule)
        .map_err(|e| bad(format!("{}: cannot read it: {e}", schedule.display())))?;
    let steps = read_steps(&text).map_err(|e| bad(format!("{}: {e}", schedule.display())))?;
    let words = replay_words(&text).map_err(|e| bad(format!("{}: {e}", schedule.display())))?;
    let mut request = parse(&words).map_err(|e| {
        bad(format!(
            "{}: its replay line does not parse with this faultline (a run from an incompatible \
             store?): {e:#}",
            schedule.display()
        ))
    })?;
    request.node_bin = node_bin.map(Path::to_path_buf);
    request.schedule = Some(schedule.clone());
    check_same_settings(&request, &config, &run_dir)?;
    Ok(Input {
        run_dir,
        config,
        results,
        class,
        steps,
        request,
    })
}

/// A run directory, or a store whose `latest` is one; canonical, so `shrunk/` lands in the
/// run's own directory.
fn resolve(path: &Path) -> anyhow::Result<PathBuf> {
    let dir = if path.join("test.json").is_file() || !path.join("latest/test.json").is_file() {
        path.to_path_buf()
    } else {
        path.join("latest")
    };
    if !dir.is_dir() {
        return Err(bad(format!(
            "{} does not exist; point at a run, e.g. store/latest",
            path.display()
        )));
    }
    std::fs::canonicalize(&dir).map_err(|e| bad(format!("{}: {e}", dir.display())))
}

/// A run stored by another version of the harness would be replayed by this one: not the same
/// test.
fn check_version(run_dir: &Path, config: &TestConfig) -> anyhow::Result<()> {
    let ours = env!("CARGO_PKG_VERSION");
    let theirs = config.harness.harness_version.as_str();
    if theirs == ours {
        return Ok(());
    }
    let who = if theirs.is_empty() {
        "an unknown version of faultline".to_string()
    } else {
        format!("faultline {theirs}")
    };
    Err(bad(format!(
        "{}: stored by {who}, and this is faultline {ours}: a run from an incompatible store \
         cannot be replayed faithfully",
        run_dir.join("test.json").display()
    )))
}

fn read_results(run_dir: &Path) -> anyhow::Result<Results> {
    let path = run_dir.join("results.json");
    let text = std::fs::read(&path).map_err(|e| {
        bad(format!(
            "{}: cannot read it ({e}); check the run first: faultline check {}",
            path.display(),
            run_dir.display()
        ))
    })?;
    serde_json::from_slice(&text).map_err(|e| {
        bad(format!(
            "{}: damaged or from an incompatible checker: {e}",
            path.display()
        ))
    })
}

/// How many anomalies of `class` the results hold that a replay must show again: certain ones
/// (not possibly an artefact of missing input), not excused by how their own send went (a
/// schedule's `produce N acks 1`, or a duplicate of a send retried without idempotence), which
/// says nothing about the configuration.
pub fn shown(results: &Results, class: AnomalyKind) -> u64 {
    let by_its_send = |by: Option<&str>| by == Some(WEAK_SEND_EXCUSE) || by == Some(RETRY_EXCUSE);
    let listed = results
        .anomalies
        .iter()
        .filter(|a| a.kind == class && a.uncertain.is_none())
        .filter(|a| !by_its_send(a.excused_by.as_deref()))
        .count() as u64;
    listed.min(results.anomaly_counts.get(&class).copied().unwrap_or(0))
}

/// The class asked for, or the run's first kind that a replay must show again, else its first
/// kind with a non-zero count (in `AnomalyKind::ALL` order: duplicates excused by producer
/// retries, which most runs without idempotence have, come before divergence); it must be one
/// the run shows.
fn choose_class(
    results: &Results,
    asked: Option<AnomalyKind>,
    run_dir: &Path,
) -> anyhow::Result<AnomalyKind> {
    let count = |kind: AnomalyKind| results.anomaly_counts.get(&kind).copied().unwrap_or(0);
    let present: Vec<String> = AnomalyKind::ALL
        .into_iter()
        .filter(|k| count(*k) > 0)
        .map(|k| format!("{} {}", k.as_str(), count(k)))
        .collect();
    let first_shown = || {
        AnomalyKind::ALL
            .into_iter()
            .find(|k| shown(results, *k) > 0)
    };
    let first_present = || AnomalyKind::ALL.into_iter().find(|k| count(*k) > 0);
    let class = match asked.or_else(first_shown).or_else(first_present) {
        Some(class) => class,
        None => {
            return Err(bad(format!(
            "{}: the run shows no anomaly (verdict {}, every anomaly count 0): nothing to shrink",
            run_dir.display(),
            results.valid.as_str()
        )))
        }
    };
    if count(class) == 0 {
        return Err(bad(format!(
            "{}: the run shows no {} anomaly (it shows {})",
            run_dir.display(),
            class.as_str(),
            if present.is_empty() {
                "none".to_string()
            } else {
                present.join(", ")
            }
        )));
    }
    if shown(results, class) == 0 {
        return Err(bad(format!(
            "{}: every {} anomaly of the run is uncertain or excused by how its own send went; a \
             replay could not tell it from missing input (choose another with --anomaly; it \
             shows {})",
            run_dir.display(),
            class.as_str(),
            present.join(", ")
        )));
    }
    Ok(class)
}

/// The recorded steps, each marked when the run recorded it as failed (`# failed: ...`).
pub fn read_steps(text: &str) -> Result<Vec<Item>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let steps = parse_schedule(text)?;
    if steps.is_empty() {
        return Err("the run performed no step: nothing to shrink".to_string());
    }
    Ok(steps
        .into_iter()
        .enumerate()
        .map(|(id, step)| Item {
            id,
            at: step.at,
            original_at: step.at,
            failed: lines
                .get(step.line - 1)
                .and_then(|l| l.split_once('#'))
                .is_some_and(|(_, comment)| comment.trim_start().starts_with("failed")),
            action: step.action,
        })
        .collect())
}

/// The words of the `# Replay: faultline test ...` header, after `faultline`.
pub fn replay_words(text: &str) -> Result<Vec<String>, String> {
    let line = text
        .lines()
        .take_while(|l| l.trim_start().starts_with('#') || l.trim().is_empty())
        .find_map(|l| l.trim_start().strip_prefix("# Replay:"))
        .ok_or("no `# Replay: faultline test ...` header (not a run's recorded schedule)")?;
    let words = split_words(line)?;
    match words.split_first() {
        Some((first, rest))
            if first == "faultline" && rest.first().is_some_and(|w| w == "test") =>
        {
            Ok(rest.to_vec())
        }
        _ => Err(format!(
            "the replay header is not a `faultline test` command: {:?}",
            line.trim()
        )),
    }
}

/// Splits a command line into words: whitespace separates, single quotes (as
/// `entry::shell_words` writes them) and double quotes group, `'\''` is a quote inside.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(word.take()),
            '\'' | '"' => {
                let text = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some(other) => text.push(other),
                        None => return Err(format!("unclosed {c} in {:?}", line.trim())),
                    }
                }
            }
            '\\' => {
                let escaped = chars.next().ok_or("a trailing backslash")?;
                word.get_or_insert_with(String::new).push(escaped);
            }
            other => word.get_or_insert_with(String::new).push(other),
        }
    }
    words.extend(word);
    Ok(words)
}

/// The replay line must describe the run test.json records: same cluster, same client
/// settings, same seed. A mismatch means the schedule came from another run or another store.
fn check_same_settings(
    request: &TestRequest,
    config: &TestConfig,
    run_dir: &Path,
) -> anyhow::Result<()> {
    let replay = request.clone().validate()?;
    let (stored, replayed) = (comparable(config)?, comparable(&replay.config)?);
    let differ: Vec<String> = stored
        .iter()
        .filter(|(key, value)| replayed.get(key.as_str()) != Some(value))
        .map(|(key, value)| {
            let other = replayed.get(key.as_str()).unwrap_or(&Value::Null);
            format!("{key} ({value} in test.json, {other} in the replay line)")
        })
        .collect();
    if differ.is_empty() {
        return Ok(());
    }
    Err(bad(format!(
        "{}: schedule.txt's replay line does not describe the run test.json records (a run from \
         an incompatible store?): {}",
        run_dir.display(),
        differ.join("; ")
    )))
}

/// A configuration's settings as flat `key`/`extra.key` pairs, without what a replay
/// legitimately changes (the nemesis, its schedule, the start time, the node binary).
fn comparable(config: &TestConfig) -> anyhow::Result<serde_json::Map<String, Value>> {
    const SKIP: [&str; 9] = [
        "name",
        "start_unix_ms",
        "nemesis",
        "nemesis_interval_ms",
        "schedule",
        "extra.cluster_id",
        "extra.node_bin",
        "extra.nemesis_targets",
        "extra.harness_version",
    ];
    let Value::Object(top) = serde_json::to_value(config)? else {
        return Ok(serde_json::Map::new());
    };
    let mut flat = serde_json::Map::new();
    for (key, value) in top {
        if let ("extra", Value::Object(extra)) = (key.as_str(), &value) {
            for (k, v) in extra {
                flat.insert(format!("extra.{k}"), v.clone());
            }
        } else {
            flat.insert(key, value);
        }
    }
    flat.retain(|key, _| !SKIP.contains(&key.as_str()));
    Ok(flat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_a_shell_for_the_quotes_we_write() {
        assert_eq!(
            split_words(" faultline test --name 'a b' --node-arg=--x \"c d\" 'it'\\''s'").unwrap(),
            [
                "faultline",
                "test",
                "--name",
                "a b",
                "--node-arg=--x",
                "c d",
                "it's"
            ]
        );
        assert!(split_words("test 'open").is_err());
    }

    #[test]
    fn the_replay_header_gives_the_test_arguments() {
        let text =
            "# The faults this run performed (seed 3), with times since the chaos phase started.\n\
                    # Replay: faultline test --nodes 3 --seed 3 --schedule s/schedule.txt\n\
                    at 2002ms kill 1\n";
        assert_eq!(
            replay_words(text).unwrap(),
            [
                "test",
                "--nodes",
                "3",
                "--seed",
                "3",
                "--schedule",
                "s/schedule.txt"
            ]
        );
        assert!(replay_words("at 1s kill 1\n# Replay: faultline test\n").is_err());
        assert!(replay_words("# Replay: faultline check x\n").is_err());
    }

    #[test]
    fn failed_steps_are_marked_and_ids_follow_the_steps() {
        let text =
            "# header\nat 1s kill 2\n\nat 2s kill 2  # failed: 2 is not running\nat 3s start 2\n";
        let steps = read_steps(text).unwrap();
        let marks: Vec<(usize, bool)> = steps.iter().map(|s| (s.id, s.failed)).collect();
        assert_eq!(marks, [(0, false), (1, true), (2, false)]);
        assert!(read_steps("# only a header\n").is_err());
    }
}
