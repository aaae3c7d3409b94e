//! Suites: many runs, one verdict. `faultline suite ci` is the correctness gate — a fixed matrix
//! with fixed seeds, a few minutes long, where every entry states what it must show (the durable
//! configuration valid under every fault, the loss-prone ones losing data, the epoch-divergence
//! sequence ending identical). `faultline suite nightly` runs random configurations and seeds
//! until its duration ends, keeps failing runs whole and lists them first. Both write
//! the outputs of `outputs` (suite.json, junit.xml, summary.md, index.html); `suite merge` joins
//! nightly shards.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_checker::config::{Client, FaultKind, KafkaVersion, Workload};
use faultline_checker::history::Acks;
use faultline_checker::probes::Probe;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::duration::format_duration;
use crate::jobs::entry::Entry;
use crate::jobs::scenarios::{self, Expect};
use crate::test::error::{EXIT_INVALID, EXIT_VALID};
use crate::test::observer::Observer;
use crate::test::options::{NemesisChoice, TestRequest};
use crate::test::run::Interrupt;

pub mod coverage;
pub(crate) mod outputs;

use outputs::{finish, write_outputs};
pub use outputs::{merge, EntryResult, SuiteResult};

/// The CI gate's matrix. Seeds are fixed; every entry has an expectation that holds every time
/// (the loss-prone ones use the scenarios, which reproduce deterministically).
pub fn ci_entries() -> Vec<Entry> {
    let mut entries = Vec::new();
    let durable = TestRequest {
        acks: Acks::All,
        min_insync_replicas: Some(2),
        time_limit: Some(Duration::from_secs(8)),
        nemesis_interval: Duration::from_secs(1),
        seed: Some(7),
        ..TestRequest::default()
    };
    let single = |kind| NemesisChoice::Kinds(vec![kind]);
    use Probe::*;
    // Each entry with the probes its faults exist to reach (docs/results.md): a run that
    // missed one proved nothing and is VACUOUS. Latency alone promises no situation.
    let matrix: [(&str, NemesisChoice, Workload, &'static [Probe]); 9] = [
        (
            "kill",
            single(FaultKind::Kill),
            Workload::Produce,
            &[Fenced, IsrShrunk, CleanElection],
        ),
        (
            "pause",
            single(FaultKind::Pause),
            Workload::Produce,
            &[LeaderPaused, IsrShrunk],
        ),
        ("delay", single(FaultKind::Delay), Workload::Produce, &[]),
        (
            "partition",
            single(FaultKind::Partition),
            Workload::Produce,
            &[IsrShrunk, CleanElection],
        ),
        (
            "isr-pressure",
            single(FaultKind::IsrPressure),
            Workload::Produce,
            &[IsrShrunk, IsrBelowMin, NotEnoughReplicas],
        ),
        (
            "leader-loss",
            single(FaultKind::LeaderLoss),
            Workload::Produce,
            &[IsrShrunk, CleanElection],
        ),
        (
            "rolling-restart",
            single(FaultKind::RollingRestart),
            Workload::Produce,
            &[Fenced, CleanElection],
        ),
        (
            "all",
            NemesisChoice::All,
            Workload::Produce,
            &[IsrShrunk, Fenced],
        ),
        (
            "all",
            NemesisChoice::All,
            Workload::ProduceConsume,
            &[IsrShrunk, Fenced],
        ),
    ];
    // The durable matrix under every version whose replication keeps committed writes: 4.1
    // (with Eligible Leader Replicas) and 3.7 (without).
    for version in [KafkaVersion::V4_1, KafkaVersion::V3_7] {
        for (label, nemesis, workload, probes) in matrix.iter().cloned() {
            entries.push(Entry {
                name: format!("durable-{label}-{}-{version}", workload.as_str()),
                request: TestRequest {
                    nemesis,
                    workload,
                    kafka_version: version,
                    ..durable.clone()
                },
                schedule: None,
                expect: Expect::NoLoss,
                probes,
            });
        }
        // Power cuts on lazy mounts with every append fsynced: the node's fsync must keep
        // every acknowledged write through random power losses (and kills).
        entries.push(Entry {
            name: format!("durable-power-loss-fsync-{version}"),
            request: TestRequest {
                lazyfs: true,
                node_args: vec!["--fsync".into()],
                nemesis: NemesisChoice::Kinds(vec![FaultKind::Kill, FaultKind::PowerLoss]),
                kafka_version: version,
                ..durable.clone()
            },
            schedule: None,
            expect: Expect::NoLoss,
            probes: &[Fenced, CleanElection],
        });
    }
    // Idempotent Kafka clients while responses are dropped after the append and leaders are
    // killed and paused: every retry of a written batch must be answered from the log, none
    // written twice (issue 23). One version: the rules are the same in 4.1 and 3.7, and the
    // scenario retry-duplicates runs under both.
    entries.push(Entry {
        name: format!("durable-idempotent-drop-response-{}", KafkaVersion::V4_1),
        request: TestRequest {
            client: Client::Kafka,
            idempotence: true,
            // In the order the command line gives them, so the printed replay runs this test.
            nemesis: NemesisChoice::Kinds(vec![
                FaultKind::Kill,
                FaultKind::Pause,
                FaultKind::DropResponse,
            ]),
            kafka_version: KafkaVersion::V4_1,
            ..durable.clone()
        },
        schedule: None,
        expect: Expect::NoLoss,
        probes: &[RetryDeduplicated, CleanElection],
    });
    for scenario in scenarios::SCENARIOS {
        entries.extend(
            scenario
                .entries("scenario", 1, None)
                .into_iter()
                .map(|r| r.entry),
        );
    }
    entries
}

/// Runs entries in order, printing one line for each; stops early only when interrupted.
pub async fn run_entries(
    suite: &str,
    entries: impl IntoIterator<Item = Entry>,
    store: &Path,
    node_bin: Option<&Path>,
    interrupt: Interrupt,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<SuiteResult> {
    let mut result = SuiteResult {
        suite: suite.to_string(),
        entries: Vec::new(),
    };
    for entry in entries {
        if interrupt.borrow().is_some() {
            break;
        }
        let outcome = match entry
            .run(store, node_bin, interrupt.clone(), observer.clone())
            .await
        {
            Ok(outcome) => outcome,
            Err(error)
                if error
                    .downcast_ref::<crate::test::run::Interrupted>()
                    .is_some() =>
            {
                break
            }
            Err(error) => return Err(error),
        };
        println!(
            "suite {suite}: {:<40} {} ({}; expected {}) in {}",
            outcome.entry.name,
            outcome.judgement.word(),
            outcome.judgement.detail,
            outcome.entry.expect.as_str(),
            format_duration(Duration::from_millis(outcome.duration_ms)),
        );
        result.entries.push(EntryResult::from(&outcome));
        write_outputs(store, &result)?;
    }
    Ok(result)
}

/// `faultline suite ci`.
pub async fn ci(
    store: &Path,
    version: Option<KafkaVersion>,
    node_bin: Option<&Path>,
    interrupt: Interrupt,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<i32> {
    let started = Instant::now();
    let entries = ci_entries()
        .into_iter()
        .filter(|e| version.is_none_or(|v| e.request.kafka_version == v));
    let result = run_entries("ci", entries, store, node_bin, interrupt.clone(), observer).await?;
    finish(store, &result, started)?;
    if interrupt.borrow().is_some() {
        return Err(crate::test::run::Interrupted(store.to_path_buf()).into());
    }
    Ok(if result.passed() {
        EXIT_VALID
    } else {
        EXIT_INVALID
    })
}

/// Options of `faultline suite nightly`.
#[derive(Debug, Clone)]
pub struct Nightly {
    pub duration: Duration,
    pub run_time: Duration,
    pub seed: u64,
    pub shard: (u32, u32),
    pub keep_passing: bool,
    /// Every run under this version; drawn per run when absent.
    pub kafka_version: Option<KafkaVersion>,
    /// Steer each run toward the probes the night reached least (coverage.rs); off: the seed
    /// stream's runs in order.
    pub bias: bool,
    /// A quarter of the runs on lazy mounts, with power cuts among their faults (needs FUSE).
    pub lazyfs: bool,
    /// After the night, shrink each failing run (`faultline shrink`) within this budget, with
    /// the command line's parser of replay lines.
    pub shrink: Option<(Duration, crate::jobs::shrink::ReplayParser)>,
}

/// The i-th random configuration of a shard's seed stream: disjoint across shards.
pub fn nightly_entry(n: &Nightly, i: u64) -> Entry {
    let (index, count) = n.shard;
    nightly_entry_of_seed(n, n.seed.wrapping_add(i * count as u64 + index as u64))
}

/// The configurations the biased night chooses the i-th run from: the stream's own first,
/// then [`coverage::CANDIDATES`] - 1 others from seeds derived from it (disjoint from the
/// stream's, so each is named and replayed by its own seed).
pub fn nightly_candidates(n: &Nightly, i: u64) -> Vec<Entry> {
    let own = nightly_entry(n, i);
    let base = own.request.seed.unwrap_or(0);
    let mut out = vec![own];
    for j in 1..coverage::CANDIDATES {
        // SplitMix64's increment, to land far from the stream's consecutive seeds.
        let derived = base ^ (j.wrapping_mul(0x9E37_79B9_7F4A_7C15) | (1 << 63));
        out.push(nightly_entry_of_seed(n, derived));
    }
    out
}

fn nightly_entry_of_seed(n: &Nightly, seed: u64) -> Entry {
    let mut rng = StdRng::seed_from_u64(seed);
    let nodes: u32 = rng.gen_range(3..=5);
    let partitions: u32 = rng.gen_range(1..=3);
    let acks = *[Acks::All, Acks::All, Acks::One, Acks::Zero]
        .choose(&mut rng)
        .expect("not empty");
    let min_isr: u32 = if rng.gen_bool(0.75) { 2 } else { 1 };
    let kafka_version = if rng.gen_bool(0.2) {
        KafkaVersion::V0_10_2
    } else if rng.gen_bool(0.5) {
        KafkaVersion::V3_7
    } else {
        KafkaVersion::V4_1
    };
    use FaultKind::*;
    let nemesis = [
        NemesisChoice::All,
        NemesisChoice::All,
        NemesisChoice::Kinds(vec![IsrPressure, LeaderLoss]),
        NemesisChoice::Kinds(vec![Kill, RollingRestart]),
        NemesisChoice::Kinds(vec![Delay, Partition]),
    ]
    .choose(&mut rng)
    .expect("not empty")
    .clone();
    let rate = *[200.0, 500.0, 1000.0, 2000.0]
        .choose(&mut rng)
        .expect("not empty");
    let workload = if rng.gen_bool(0.5) {
        Workload::Produce
    } else {
        Workload::ProduceConsume
    };
    // Drawn after the rate and workload, as ever, so a seed keeps naming the same run.
    let nemesis_interval = Duration::from_millis(rng.gen_range(500..=3000));
    let unclean_leader_election = rng.gen_bool(0.25);
    // Drawn last, and only for nights on lazy mounts, so a seed names the same run as before.
    let lazyfs = n.lazyfs && rng.gen_bool(0.25);
    Entry {
        name: format!("nightly-{seed}"),
        request: TestRequest {
            nodes,
            partitions,
            acks,
            min_insync_replicas: Some(min_isr),
            kafka_version: n.kafka_version.unwrap_or(kafka_version),
            nemesis,
            nemesis_interval,
            rate,
            workload,
            time_limit: Some(n.run_time),
            seed: Some(seed),
            unclean_leader_election,
            lazyfs,
            ..TestRequest::default()
        },
        schedule: None,
        expect: Expect::Guarantee,
        probes: &[],
    }
}

/// `faultline suite nightly`: random runs until the duration ends.
pub async fn nightly(
    n: &Nightly,
    store: &Path,
    node_bin: Option<&Path>,
    interrupt: Interrupt,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<i32> {
    let started = Instant::now();
    println!(
        "suite nightly: seed {}, shard {}/{}, for {}",
        n.seed,
        n.shard.0,
        n.shard.1,
        format_duration(n.duration)
    );
    let mut result = SuiteResult {
        suite: "nightly".to_string(),
        entries: Vec::new(),
    };
    let mut coverage = coverage::Coverage::default();
    let mut first_reached: BTreeMap<Probe, (Duration, String)> = BTreeMap::new();
    // Bounded by the duration: a run is started only while a whole run still fits.
    for i in 0.. {
        let left = n.duration.saturating_sub(started.elapsed());
        if left < n.run_time || interrupt.borrow().is_some() {
            break;
        }
        let entry = if n.bias {
            let mut candidates = nightly_candidates(n, i);
            let chosen = coverage.choose(&candidates);
            candidates.swap_remove(chosen)
        } else {
            nightly_entry(n, i)
        };
        let part = run_entries(
            "nightly",
            [entry],
            store,
            node_bin,
            interrupt.clone(),
            observer.clone(),
        )
        .await?;
        for e in part.entries {
            if e.passed && !n.keep_passing {
                if let Some(dir) = &e.run_dir {
                    prune(dir)?;
                }
            }
            let complete = coverage.complete();
            coverage.add(&e.configuration, e.probes.keys().copied());
            for probe in e.probes.keys() {
                first_reached
                    .entry(*probe)
                    .or_insert_with(|| (started.elapsed(), e.name.clone()));
            }
            if !complete && coverage.complete() {
                println!(
                    "suite nightly: every probe reached after {} runs, {}",
                    coverage.total,
                    format_duration(started.elapsed())
                );
            }
            result.entries.push(e);
        }
        write_outputs(store, &result)?;
        outputs::write_coverage(store, &coverage, &first_reached)?;
    }
    if let Some((budget, parse)) = n.shrink {
        shrink_failures(&mut result, budget, parse, node_bin, interrupt.clone()).await?;
        write_outputs(store, &result)?;
    }
    finish(store, &result, started)?;
    Ok(if result.passed() {
        EXIT_VALID
    } else {
        EXIT_INVALID
    })
}

/// `--shrink`: each failing run of the night shrunk in turn, within `budget` each; the entry
/// then names its `shrunk/schedule.txt`. A shrink that fails is reported and the night goes on.
async fn shrink_failures(
    result: &mut SuiteResult,
    budget: Duration,
    parse: crate::jobs::shrink::ReplayParser,
    node_bin: Option<&Path>,
    interrupt: Interrupt,
) -> anyhow::Result<()> {
    for e in result
        .entries
        .iter_mut()
        .filter(|e| !e.passed && !e.vacuous)
    {
        let Some(run) = e.run_dir.clone() else {
            continue;
        };
        if interrupt.borrow().is_some() {
            break;
        }
        println!(
            "suite nightly: shrinking {} (budget {})",
            e.name,
            format_duration(budget)
        );
        let options = crate::jobs::shrink::Options {
            run: run.clone(),
            anomaly: None,
            confirm: 2,
            jobs: crate::jobs::shrink::default_jobs(),
            budget,
            force: false,
            node_bin: node_bin.map(Path::to_path_buf),
        };
        match crate::jobs::shrink::shrink(options, parse, interrupt.clone()).await {
            Ok(_) => {
                let shrunk = run.join("shrunk").join("schedule.txt");
                e.shrunk = shrunk.is_file().then_some(shrunk);
            }
            Err(error)
                if error
                    .downcast_ref::<crate::test::run::Interrupted>()
                    .is_some() =>
            {
                return Err(error)
            }
            Err(error) => println!("suite nightly: {} could not be shrunk: {error:#}", e.name),
        }
    }
    Ok(())
}

/// Keeps only what a passing run needs to be re-judged and replayed.
fn prune(run_dir: &Path) -> anyhow::Result<()> {
    const KEEP: [&str; 4] = ["test.json", "results.json", "schedule.txt", "junit.xml"];
    for entry in std::fs::read_dir(run_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if KEEP.iter().any(|k| name == *k) {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// `faultline suite merge DIR... --out DIR`: the shards' results in one index.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nightly_shards_draw_disjoint_seeds() {
        let shard = |i| Nightly {
            duration: Duration::from_secs(60),
            run_time: Duration::from_secs(30),
            seed: 100,
            shard: (i, 3),
            keep_passing: true,
            kafka_version: None,
            bias: false,
            lazyfs: false,
            shrink: None,
        };
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..3 {
            for k in 0..20 {
                assert!(seen.insert(nightly_entry(&shard(i), k).name));
            }
        }
    }

    #[test]
    fn ci_entries_have_unique_names_and_every_scenario() {
        let entries = ci_entries();
        let names: std::collections::BTreeSet<_> = entries.iter().map(|e| &e.name).collect();
        assert_eq!(names.len(), entries.len());
        for s in scenarios::SCENARIOS {
            assert!(
                entries.iter().any(|e| e.name.contains(s.name)),
                "{}",
                s.name
            );
        }
    }
}
