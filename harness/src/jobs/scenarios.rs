//! The built-in reproduction scenarios of `faultline repro`: each a schedule file shipped with
//! the binary (harness/scenarios/*.txt), the settings it needs, and the outcome it must show
//! (docs/scenarios.md tells each story). A scenario may hold several runs — the same steps
//! under two protocols, with and without the setting that loses data — and passes only when
//! every run's outcome is the expected one. This module is data plus the judgement of an
//! outcome; running is `repro`'s and the suites'.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use faultline_checker::config::{Client, KafkaVersion};
use faultline_checker::dump::DumpRecord;
use faultline_checker::history::Acks;
use faultline_checker::probes::Probe;
use faultline_checker::{AnomalyKind, Results, Valid, WEAK_SEND_EXCUSE};

use crate::jobs::entry::Entry;
use crate::test::options::TestRequest;

/// What a run of a scenario must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Acknowledged writes lost, and the configuration allows it (the verdict stays valid); a
    /// schedule's own acks=1 writes do not count.
    Loss,
    /// A valid verdict with nothing lost but, at most, a schedule's own acks=1 writes.
    NoLoss,
    /// A verdict that is not invalid, and every broker's log identical for every partition.
    IdenticalLogs,
    /// The run kept its configuration's guarantee: any verdict but invalid (nightly chaos,
    /// where the configuration is random and loss may be allowed).
    Guarantee,
    /// A value written twice, allowed by the configuration (producer retries without
    /// idempotence): a valid verdict with duplicates and nothing acknowledged lost.
    Duplicates,
}

impl Expect {
    pub fn as_str(self) -> &'static str {
        match self {
            Expect::Loss => "acknowledged writes lost",
            Expect::NoLoss => "nothing lost",
            Expect::IdenticalLogs => "replicas identical",
            Expect::Guarantee => "guarantee kept",
            Expect::Duplicates => "values written twice",
        }
    }
}

/// One run of a scenario: its settings, and what it must show under each Kafka version it is
/// run with.
#[derive(Debug, Clone, Copy)]
pub struct ScenarioRun {
    /// Which variant of the scenario (`unclean election on`, `fsync`), for the output.
    pub label: &'static str,
    /// The settings it needs, applied to the defaults (the Kafka version, schedule, store and
    /// seed are the caller's).
    pub settings: fn(TestRequest) -> TestRequest,
    pub schedule: &'static str,
    /// Every Kafka version the run is made under, with what that version must show.
    pub outcomes: &'static [Expected],
}

/// What a run must show under one Kafka version: its outcome, and the probes (docs/results.md)
/// it must reach for that outcome to mean anything — a run that missed one is `vacuous`.
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    pub version: KafkaVersion,
    pub expect: Expect,
    pub probes: &'static [Probe],
}

/// `version` must show `expect`, having reached every one of `probes`.
pub const fn under(version: KafkaVersion, expect: Expect, probes: &'static [Probe]) -> Expected {
    Expected {
        version,
        expect,
        probes,
    }
}

impl ScenarioRun {
    /// The request of this run under `version`: its settings, the schedule's own client only
    /// (no workload), and `seed` for the run's random choices.
    pub fn request(&self, version: KafkaVersion, seed: u64) -> TestRequest {
        (self.settings)(TestRequest {
            kafka_version: version,
            concurrency: 0,
            seed: Some(seed),
            ..TestRequest::default()
        })
    }
}

/// One run of a scenario under one Kafka version, as an entry of a job.
#[derive(Debug, Clone)]
pub struct VersionedRun {
    pub label: &'static str,
    pub version: KafkaVersion,
    pub entry: Entry,
}

#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub name: &'static str,
    pub summary: &'static str,
    pub runs: &'static [ScenarioRun],
}

impl Scenario {
    /// Every run under every version it names (only `version`'s when given), as entries named
    /// `PREFIX-NAME[-I]-VERSION` (numbered when the scenario has several runs).
    pub fn entries(
        &self,
        prefix: &str,
        seed: u64,
        version: Option<KafkaVersion>,
    ) -> Vec<VersionedRun> {
        let mut out = Vec::new();
        for (i, run) in self.runs.iter().enumerate() {
            let numbered = if self.runs.len() == 1 {
                format!("{prefix}-{}", self.name)
            } else {
                format!("{prefix}-{}-{}", self.name, i + 1)
            };
            for &Expected {
                version: v,
                expect,
                probes,
            } in run.outcomes
            {
                if version.is_some_and(|only| only != v) {
                    continue;
                }
                out.push(VersionedRun {
                    label: run.label,
                    version: v,
                    entry: Entry {
                        name: format!("{numbered}-{v}"),
                        request: run.request(v, seed),
                        schedule: Some(run.schedule),
                        expect,
                        probes,
                    },
                });
            }
        }
        out
    }

    /// The Kafka versions any of its runs is made under.
    pub fn versions(&self) -> Vec<KafkaVersion> {
        KafkaVersion::ALL
            .into_iter()
            .filter(|v| {
                self.runs
                    .iter()
                    .any(|r| r.outcomes.iter().any(|o| o.version == *v))
            })
            .collect()
    }
}

use KafkaVersion::{V0_10_2, V3_7, V4_1};
use Probe::*;

/// An unclean election's loss: the ISR shrank, a replica from outside it was elected, and
/// the old leader truncated what it alone had.
const UNCLEAN_LOSS: &[Probe] = &[IsrShrunk, UncleanElection, TruncatedBelowHw];
/// A leader's writes the new one never had: a clean failover, and the old leader truncating
/// at the diverging epoch when it returns.
const FAILOVER: &[Probe] = &[CleanElection, EpochDivergenceResolved];
/// Kafka 3.7's loss in the KIP-966 scenarios: the power cut hits the last ISR member, it is
/// elected again, and the followers truncate committed records to its shorter log.
const LAST_MEMBER_REELECTED: &[Probe] = &[PowerLossLastIsrMember, CleanElection, TruncatedBelowHw];
/// Diverged logs put back in line: a leader from outside the ISR, and a follower truncating at
/// the diverging epoch.
const DIVERGED: &[Probe] = &[UncleanElection, EpochDivergenceResolved];

const UNCLEAN: &str = include_str!("../../scenarios/unclean-election.txt");
const ACKS1: &str = include_str!("../../scenarios/acks1-leader-failover.txt");
const EPOCHS: &str = include_str!("../../scenarios/epoch-divergence.txt");
const DURABLE: &str = include_str!("../../scenarios/durable-under-n-1.txt");
const LEGACY_HW: &str = include_str!("../../scenarios/legacy-hw-truncation.txt");
const LAST_REPLICA: &str = include_str!("../../scenarios/last-replica-standing.txt");
const CLUSTER_POWER: &str = include_str!("../../scenarios/cluster-power-loss.txt");
const ELR_UNCLEAN: &str = include_str!("../../scenarios/elr-unclean-shutdown.txt");
const STALE_INCARNATION: &str = include_str!("../../scenarios/stale-incarnation.txt");
const RETRY_DUPLICATES: &str = include_str!("../../scenarios/retry-duplicates.txt");

/// The legacy-hw-truncation settings, explained at the top of its schedule file: followers
/// stay in the ISR through the scenario's pauses, and the HW checkpoint is never written.
fn legacy_hw_window(r: TestRequest) -> TestRequest {
    TestRequest {
        acks: Acks::All,
        min_insync_replicas: Some(2),
        replica_lag_time_max_ms: 5000,
        node_args: vec![
            "--replica-fetch-wait-max-ms=5000".into(),
            "--hw-checkpoint-interval-ms=600000".into(),
        ],
        ..r
    }
}

/// Durable settings on lazy mounts, with or without an fsync per append.
fn on_lazy_mounts(fsync: bool, r: TestRequest) -> TestRequest {
    TestRequest {
        lazyfs: true,
        acks: Acks::All,
        min_insync_replicas: Some(2),
        node_args: if fsync {
            vec!["--fsync".into()]
        } else {
            Vec::new()
        },
        ..r
    }
}

/// The retry-duplicates settings (its schedule says why): Kafka clients behind the Kafka-aware
/// links, producers writing while the schedule drops responses and pauses the leader, and
/// retries within a short request timeout; `idempotence` is the variant.
fn retrying_producers(idempotence: bool, r: TestRequest) -> TestRequest {
    TestRequest {
        client: Client::Kafka,
        acks: Acks::All,
        min_insync_replicas: Some(2),
        concurrency: 4,
        rate: 200.0,
        request_timeout: std::time::Duration::from_secs(1),
        retries: 5,
        idempotence,
        ..r
    }
}

/// What both retry-duplicates runs go through: the leader paused and a clean election.
const RETRIED_AT_NEW_LEADER: &[Probe] = &[LeaderPaused, CleanElection];
/// The idempotent run also shows a leader answering a retry from its log.
const DEDUPLICATED: &[Probe] = &[LeaderPaused, CleanElection, RetryDeduplicated];

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "unclean-election",
        summary: "followers fall out of the ISR, the leader dies, a lagging follower is elected \
                  uncleanly: acknowledged writes are lost",
        runs: &[ScenarioRun {
            label: "unclean election on",
            settings: |r| TestRequest {
                acks: Acks::All,
                min_insync_replicas: Some(1),
                unclean_leader_election: true,
                ..r
            },
            schedule: UNCLEAN,
            outcomes: &[
                under(V4_1, Expect::Loss, UNCLEAN_LOSS),
                under(V3_7, Expect::Loss, UNCLEAN_LOSS),
            ],
        }],
    },
    Scenario {
        name: "acks1-leader-failover",
        summary: "acks=1 writes the followers had not fetched are lost when the leader dies",
        runs: &[ScenarioRun {
            label: "acks=1",
            settings: |r| TestRequest {
                acks: Acks::One,
                ..r
            },
            schedule: ACKS1,
            outcomes: &[
                under(V4_1, Expect::Loss, FAILOVER),
                under(V3_7, Expect::Loss, FAILOVER),
            ],
        }],
    },
    Scenario {
        name: "epoch-divergence",
        summary: "KIP-279: two brokers alternately alone take writes at the same offsets; \
                  leader epochs leave the logs identical",
        runs: &[ScenarioRun {
            label: "leader epochs",
            settings: |r| TestRequest {
                nodes: 2,
                replication_factor: Some(2),
                min_insync_replicas: Some(1),
                acks: Acks::One,
                unclean_leader_election: true,
                ..r
            },
            schedule: EPOCHS,
            outcomes: &[
                under(V4_1, Expect::IdenticalLogs, DIVERGED),
                under(V3_7, Expect::IdenticalLogs, DIVERGED),
            ],
        }],
    },
    Scenario {
        name: "durable-under-n-1",
        summary: "acks=all, min.insync.replicas=2: n-1 brokers killed in turn, nothing lost",
        runs: &[ScenarioRun {
            label: "durable",
            settings: |r| TestRequest {
                acks: Acks::All,
                min_insync_replicas: Some(2),
                ..r
            },
            schedule: DURABLE,
            outcomes: &[
                under(V4_1, Expect::NoLoss, &[IsrShrunk, CleanElection]),
                under(V3_7, Expect::NoLoss, &[IsrShrunk, CleanElection]),
            ],
        }],
    },
    Scenario {
        name: "legacy-hw-truncation",
        summary: "KIP-101: a follower truncates to its HW when the leader changes and is elected \
                  before it fetched again; Kafka 0.10.2 loses acknowledged writes, 3.7 and 4.1 \
                  (leader epochs) nothing",
        runs: &[ScenarioRun {
            label: "the KIP-101 window",
            settings: legacy_hw_window,
            schedule: LEGACY_HW,
            outcomes: &[
                under(V0_10_2, Expect::Loss, &[CleanElection, TruncatedBelowHw]),
                under(V3_7, Expect::NoLoss, &[CleanElection]),
                under(V4_1, Expect::NoLoss, &[CleanElection]),
            ],
        }],
    },
    Scenario {
        name: "last-replica-standing",
        summary: "KIP-966: the followers leave the ISR one after the other, the leader alone in \
                  it loses power and its unfsynced records; Kafka 3.7 elects it again cleanly \
                  and the followers truncate: committed writes lost (none with --fsync); 4.1 \
                  elects the Eligible Leader Replica instead: nothing lost",
        runs: &[
            ScenarioRun {
                label: "no fsync",
                settings: |r| on_lazy_mounts(false, r),
                schedule: LAST_REPLICA,
                outcomes: &[
                    under(V3_7, Expect::Loss, LAST_MEMBER_REELECTED),
                    under(V4_1, Expect::NoLoss, &[PowerLossLastIsrMember, ElrElection]),
                ],
            },
            ScenarioRun {
                label: "fsync",
                settings: |r| on_lazy_mounts(true, r),
                schedule: LAST_REPLICA,
                outcomes: &[
                    under(V4_1, Expect::NoLoss, &[PowerLossLastIsrMember]),
                    under(V3_7, Expect::NoLoss, &[PowerLossLastIsrMember]),
                ],
            },
        ],
    },
    Scenario {
        name: "elr-unclean-shutdown",
        summary: "KIP-966: the last ISR member returns after a power cut took its tail while the \
                  replica that left the ISR last is paused; Kafka 3.7 elects it again cleanly \
                  and committed writes are lost; 4.1 keeps it out of ISR and ELR and waits for \
                  the Eligible Leader Replica: nothing lost",
        runs: &[ScenarioRun {
            label: "no fsync",
            settings: |r| on_lazy_mounts(false, r),
            schedule: ELR_UNCLEAN,
            outcomes: &[
                under(V3_7, Expect::Loss, LAST_MEMBER_REELECTED),
                under(V4_1, Expect::NoLoss, &[PowerLossLastIsrMember, ElrElection]),
            ],
        }],
    },
    Scenario {
        name: "stale-incarnation",
        summary: "KIP-903: a fetch of a broker's previous incarnation, held on a slow link, \
                  reaches the leader after the broker lost power and registered again; the \
                  leader refuses it by its broker epoch (event stale_fetch_refused) and the \
                  broker catches up from what it kept: nothing lost",
        runs: &[ScenarioRun {
            label: "no fsync",
            settings: |r| on_lazy_mounts(false, r),
            schedule: STALE_INCARNATION,
            outcomes: &[
                under(V4_1, Expect::NoLoss, &[StaleFetchRefused]),
                under(V3_7, Expect::NoLoss, &[StaleFetchRefused]),
            ],
        }],
    },
    Scenario {
        name: "retry-duplicates",
        summary: "KIP-98: a ProduceResponse is lost after the leader committed the write and the \
                  leader stops; the producer's retry reaches the new leader, which holds the \
                  write: retried blindly it is written twice, an idempotent producer's retry is \
                  answered with the original offsets",
        runs: &[
            ScenarioRun {
                label: "retries without idempotence",
                settings: |r| retrying_producers(false, r),
                schedule: RETRY_DUPLICATES,
                outcomes: &[
                    under(V4_1, Expect::Duplicates, RETRIED_AT_NEW_LEADER),
                    under(V3_7, Expect::Duplicates, RETRIED_AT_NEW_LEADER),
                ],
            },
            ScenarioRun {
                label: "idempotent producers",
                settings: |r| retrying_producers(true, r),
                schedule: RETRY_DUPLICATES,
                outcomes: &[
                    under(V4_1, Expect::NoLoss, DEDUPLICATED),
                    under(V3_7, Expect::NoLoss, DEDUPLICATED),
                ],
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
                settings: |r| on_lazy_mounts(false, r),
                schedule: CLUSTER_POWER,
                outcomes: &[under(V4_1, Expect::Loss, &[Fenced])],
            },
            ScenarioRun {
                label: "fsync",
                settings: |r| on_lazy_mounts(true, r),
                schedule: CLUSTER_POWER,
                outcomes: &[under(V4_1, Expect::NoLoss, &[Fenced])],
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
    /// The expected outcome happened and the run reached every required probe.
    pub passed: bool,
    /// The expected outcome happened but the run missed a required probe: it proves nothing.
    pub vacuous: bool,
    /// The probes the run reached, with their counts (empty when it could not be judged).
    pub reached: BTreeMap<Probe, u64>,
    /// One sentence: what was expected and what happened.
    pub detail: String,
}

impl Judgement {
    /// One that did not judge the run at all (it failed, or left nothing to judge).
    pub fn failed(detail: String) -> Judgement {
        Judgement {
            passed: false,
            vacuous: false,
            reached: BTreeMap::new(),
            detail,
        }
    }

    /// PASS, FAIL or VACUOUS.
    pub fn word(&self) -> &'static str {
        word(self.passed, self.vacuous)
    }
}

/// How a judged run is named wherever it is listed: PASS, FAIL or VACUOUS.
pub fn word(passed: bool, vacuous: bool) -> &'static str {
    if passed {
        "PASS"
    } else if vacuous {
        "VACUOUS"
    } else {
        "FAIL"
    }
}

/// Judges a stored run against `expect`, from its results.json and dumps, and against the
/// probes it must have reached.
pub fn judge(expect: Expect, probes: &[Probe], run_dir: &Path) -> anyhow::Result<Judgement> {
    let mut judgement = judge_outcome(expect, run_dir)?;
    let results = read_results(run_dir)?;
    judgement.reached = results
        .probes
        .iter()
        .map(|(p, hit)| (*p, hit.count))
        .collect();
    let missing: Vec<&str> = probes
        .iter()
        .filter(|p| !results.probes.contains_key(p))
        .map(|p| p.as_str())
        .collect();
    if !judgement.passed || missing.is_empty() {
        return Ok(judgement);
    }
    Ok(Judgement {
        passed: false,
        vacuous: true,
        reached: judgement.reached,
        detail: format!(
            "{}; VACUOUS: the run never reached {}",
            judgement.detail,
            missing.join(", ")
        ),
    })
}

fn read_results(run_dir: &Path) -> anyhow::Result<Results> {
    let path = run_dir.join("results.json");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

/// Judges the outcome alone.
fn judge_outcome(expect: Expect, run_dir: &Path) -> anyhow::Result<Judgement> {
    let results = read_results(run_dir)?;
    let lost = results
        .anomaly_counts
        .get(&AnomalyKind::Lost)
        .copied()
        .unwrap_or(0);
    // A schedule's own `produce N acks 1` writes may be lost in any version (Kafka promises
    // nothing of them beyond the leader); "nothing lost" is about the acks=all writes.
    let weak = results
        .anomalies
        .iter()
        .filter(|a| {
            a.kind == AnomalyKind::Lost && a.excused_by.as_deref() == Some(WEAK_SEND_EXCUSE)
        })
        .count() as u64;
    let duplicates = results
        .anomaly_counts
        .get(&AnomalyKind::Duplicate)
        .copied()
        .unwrap_or(0);
    let weak_note = if weak > 0 {
        format!(" ({weak} of them sent with acks=1)")
    } else {
        String::new()
    };
    let verdict = match results.valid {
        Valid::True => "valid",
        Valid::False => "invalid",
        Valid::Unknown => "unknown",
    };
    let judgement = match expect {
        Expect::Loss => Judgement {
            passed: lost > weak && results.valid == Valid::True,
            vacuous: false,
            reached: BTreeMap::new(),
            detail: format!("{lost} acknowledged writes lost{weak_note}, verdict {verdict}"),
        },
        Expect::NoLoss => Judgement {
            passed: lost == weak && results.valid == Valid::True,
            vacuous: false,
            reached: BTreeMap::new(),
            detail: match duplicates {
                0 => format!("{lost} acknowledged writes lost{weak_note}, verdict {verdict}"),
                n => format!(
                    "{lost} acknowledged writes lost{weak_note}, {n} values written twice, \
                     verdict {verdict}"
                ),
            },
        },
        Expect::Duplicates => Judgement {
            passed: duplicates > 0 && lost == weak && results.valid == Valid::True,
            vacuous: false,
            reached: BTreeMap::new(),
            detail: format!(
                "{duplicates} values written twice, {lost} acknowledged writes lost{weak_note}, \
                 verdict {verdict}"
            ),
        },
        Expect::Guarantee => Judgement {
            passed: results.valid != Valid::False,
            vacuous: false,
            reached: BTreeMap::new(),
            detail: format!("verdict {verdict}, {lost} acknowledged writes lost"),
        },
        Expect::IdenticalLogs => {
            let differences = log_differences(run_dir)?;
            Judgement {
                passed: differences.is_empty() && results.valid != Valid::False,
                vacuous: false,
                reached: BTreeMap::new(),
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

#[cfg(test)]
mod tests;
