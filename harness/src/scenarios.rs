//! The built-in reproduction scenarios of `faultline repro`: each a schedule file shipped with
//! the binary (harness/scenarios/*.txt), the settings it needs, and the outcome it must show
//! (docs/scenarios.md tells each story). A scenario may hold several runs — the same steps
//! under two protocols, with and without the setting that loses data — and passes only when
//! every run's outcome is the expected one. This module is data plus the judgement of an
//! outcome; running is `repro`'s and the suites'.

use std::path::Path;

use anyhow::Context;
use faultline_checker::dump::DumpRecord;
use faultline_checker::{AnomalyKind, Results, Valid};

/// What a run of a scenario must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Acknowledged writes lost, and the configuration allows it (the verdict stays valid).
    Loss,
    /// A valid verdict with nothing lost.
    NoLoss,
    /// A verdict that is not invalid, and every broker's log identical for every partition.
    IdenticalLogs,
    /// The run kept its configuration's guarantee: any verdict but invalid (nightly chaos,
    /// where the configuration is random and loss may be allowed).
    Guarantee,
}

impl Expect {
    pub fn as_str(self) -> &'static str {
        match self {
            Expect::Loss => "acknowledged writes lost",
            Expect::NoLoss => "nothing lost",
            Expect::IdenticalLogs => "replicas identical",
            Expect::Guarantee => "guarantee kept",
        }
    }
}

/// One run of a scenario.
#[derive(Debug, Clone, Copy)]
pub struct ScenarioRun {
    /// Which variant of the scenario (`current`, `legacy-hw`), for the output.
    pub label: &'static str,
    /// `faultline test` arguments besides the schedule, store and seed.
    pub args: &'static [&'static str],
    pub schedule: &'static str,
    pub expect: Expect,
}

#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub name: &'static str,
    pub summary: &'static str,
    pub runs: &'static [ScenarioRun],
}

const UNCLEAN: &str = include_str!("../scenarios/unclean-election.txt");
const ACKS1: &str = include_str!("../scenarios/acks1-leader-failover.txt");
const EPOCHS: &str = include_str!("../scenarios/epoch-divergence.txt");
const DURABLE: &str = include_str!("../scenarios/durable-under-n-1.txt");
const LEGACY_HW: &str = include_str!("../scenarios/legacy-hw-truncation.txt");
const LAST_REPLICA: &str = include_str!("../scenarios/last-replica-standing.txt");
const CLUSTER_POWER: &str = include_str!("../scenarios/cluster-power-loss.txt");

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "unclean-election",
        summary: "followers fall out of the ISR, the leader dies, a lagging follower is elected \
                  uncleanly: acknowledged writes are lost",
        runs: &[ScenarioRun {
            label: "unclean election on",
            args: &[
                "--acks",
                "all",
                "--min-insync-replicas",
                "1",
                "--unclean-leader-election",
            ],
            schedule: UNCLEAN,
            expect: Expect::Loss,
        }],
    },
    Scenario {
        name: "acks1-leader-failover",
        summary: "acks=1 writes the followers had not fetched are lost when the leader dies",
        runs: &[ScenarioRun {
            label: "acks=1",
            args: &["--acks", "1"],
            schedule: ACKS1,
            expect: Expect::Loss,
        }],
    },
    Scenario {
        name: "epoch-divergence",
        summary: "KIP-279: two brokers alternately alone take writes at the same offsets; \
                  leader epochs leave the logs identical",
        runs: &[ScenarioRun {
            label: "current protocol",
            args: &[
                "--nodes",
                "2",
                "--replication-factor",
                "2",
                "--min-insync-replicas",
                "1",
                "--acks",
                "1",
                "--unclean-leader-election",
            ],
            schedule: EPOCHS,
            expect: Expect::IdenticalLogs,
        }],
    },
    Scenario {
        name: "durable-under-n-1",
        summary: "acks=all, min.insync.replicas=2: n-1 brokers killed in turn, nothing lost",
        runs: &[ScenarioRun {
            label: "durable",
            args: &["--acks", "all", "--min-insync-replicas", "2"],
            schedule: DURABLE,
            expect: Expect::NoLoss,
        }],
    },
    Scenario {
        name: "legacy-hw-truncation",
        summary: "KIP-101: a follower truncates to its HW when the leader changes and is elected \
                  before it fetched again; legacy-hw loses acknowledged writes, the current \
                  protocol nothing",
        runs: &[
            ScenarioRun {
                label: "legacy-hw",
                // The settings are explained at the top of the schedule file.
                args: &[
                    "--replication-protocol",
                    "legacy-hw",
                    "--acks",
                    "all",
                    "--min-insync-replicas",
                    "2",
                    "--replica-lag-time-max-ms",
                    "5000",
                    "--node-arg=--replica-fetch-wait-max-ms=5000",
                    "--node-arg=--hw-checkpoint-interval-ms=600000",
                ],
                schedule: LEGACY_HW,
                expect: Expect::Loss,
            },
            ScenarioRun {
                label: "current",
                // The settings are explained at the top of the schedule file.
                args: &[
                    "--replication-protocol",
                    "current",
                    "--acks",
                    "all",
                    "--min-insync-replicas",
                    "2",
                    "--replica-lag-time-max-ms",
                    "5000",
                    "--node-arg=--replica-fetch-wait-max-ms=5000",
                    "--node-arg=--hw-checkpoint-interval-ms=600000",
                ],
                schedule: LEGACY_HW,
                expect: Expect::NoLoss,
            },
        ],
    },
    Scenario {
        name: "last-replica-standing",
        summary: "KIP-966: the followers leave the ISR one after the other, the leader alone in \
                  it loses power and its unfsynced records, is elected again cleanly, and the \
                  followers truncate: committed writes lost (none with --fsync)",
        runs: &[
            ScenarioRun {
                label: "no fsync",
                args: &["--lazyfs", "--acks", "all", "--min-insync-replicas", "2"],
                schedule: LAST_REPLICA,
                expect: Expect::Loss,
            },
            ScenarioRun {
                label: "fsync",
                args: &[
                    "--lazyfs",
                    "--acks",
                    "all",
                    "--min-insync-replicas",
                    "2",
                    "--node-arg=--fsync",
                ],
                schedule: LAST_REPLICA,
                expect: Expect::NoLoss,
            },
        ],
    },
    Scenario {
        name: "cluster-power-loss",
        summary: "every broker loses power at once: every acknowledged write not fsynced is lost \
                  (none with --fsync)",
        runs: &[
            ScenarioRun {
                label: "no fsync",
                args: &["--lazyfs", "--acks", "all", "--min-insync-replicas", "2"],
                schedule: CLUSTER_POWER,
                expect: Expect::Loss,
            },
            ScenarioRun {
                label: "fsync",
                args: &[
                    "--lazyfs",
                    "--acks",
                    "all",
                    "--min-insync-replicas",
                    "2",
                    "--node-arg=--fsync",
                ],
                schedule: CLUSTER_POWER,
                expect: Expect::NoLoss,
            },
        ],
    },
];

pub fn find(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

/// What a finished run showed against what it had to show.
#[derive(Debug, Clone)]
pub struct Judgement {
    pub passed: bool,
    /// One sentence: what was expected and what happened.
    pub detail: String,
}

/// Judges a stored run against `expect`, from its results.json and dumps.
pub fn judge(expect: Expect, run_dir: &Path) -> anyhow::Result<Judgement> {
    let path = run_dir.join("results.json");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let results: Results =
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    let lost = results
        .anomaly_counts
        .get(&AnomalyKind::Lost)
        .copied()
        .unwrap_or(0);
    let verdict = match results.valid {
        Valid::True => "valid",
        Valid::False => "invalid",
        Valid::Unknown => "unknown",
    };
    let judgement = match expect {
        Expect::Loss => Judgement {
            passed: lost > 0 && results.valid == Valid::True,
            detail: format!("{lost} acknowledged writes lost, verdict {verdict}"),
        },
        Expect::NoLoss => Judgement {
            passed: lost == 0 && results.valid == Valid::True,
            detail: format!("{lost} acknowledged writes lost, verdict {verdict}"),
        },
        Expect::Guarantee => Judgement {
            passed: results.valid != Valid::False,
            detail: format!("verdict {verdict}, {lost} acknowledged writes lost"),
        },
        Expect::IdenticalLogs => {
            let differences = log_differences(run_dir)?;
            Judgement {
                passed: differences.is_empty() && results.valid != Valid::False,
                detail: if differences.is_empty() {
                    format!("every replica's log identical, verdict {verdict}")
                } else {
                    format!("{}; verdict {verdict}", differences.join("; "))
                },
            }
        }
    };
    Ok(judgement)
}

/// Where the brokers' surviving logs differ, partition by partition (empty when identical).
pub fn log_differences(run_dir: &Path) -> anyhow::Result<Vec<String>> {
    use std::collections::BTreeMap;
    type Log = Vec<(u64, u32, String)>;
    let mut logs: BTreeMap<(String, u32), BTreeMap<String, Log>> = BTreeMap::new();
    let nodes = run_dir.join("nodes");
    for entry in
        std::fs::read_dir(&nodes).with_context(|| format!("reading {}", nodes.display()))?
    {
        let entry = entry?;
        let dump = entry.path().join("dump.jsonl");
        if !dump.is_file() {
            continue;
        }
        let broker = entry.file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&dump)?;
        for line in text.lines() {
            // Summary lines have other keys; only record lines parse as records.
            let Ok(record) = serde_json::from_str::<DumpRecord>(line) else {
                continue;
            };
            logs.entry((record.topic, record.partition))
                .or_default()
                .entry(broker.clone())
                .or_default()
                .push((record.offset, record.leader_epoch, record.value));
        }
    }
    let mut differences = Vec::new();
    for ((topic, partition), by_broker) in &logs {
        let mut brokers = by_broker.iter();
        let Some((first, reference)) = brokers.next() else {
            continue;
        };
        for (broker, log) in brokers {
            if log != reference {
                let at = log
                    .iter()
                    .zip(reference)
                    .position(|(a, b)| a != b)
                    .unwrap_or(log.len().min(reference.len()));
                differences.push(format!(
                    "{topic}/{partition}: broker {broker} differs from broker {first} from record {at} \
                     ({} vs {} records)",
                    log.len(),
                    reference.len()
                ));
            }
        }
    }
    Ok(differences)
}
