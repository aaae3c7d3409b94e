//! The night's probe coverage (docs/results.md "Probes"): which Kafka situations its runs went
//! through, how often and by which configuration — and the bias that steers the next runs
//! toward the situations reached least. The bias only chooses among configurations the seed
//! stream draws anyway, so each run stays replayable by its own command; which one is chosen
//! depends on what the night has reached so far.

use std::collections::BTreeMap;

use faultline_checker::config::{FaultKind, KafkaVersion};
use faultline_checker::history::Acks;
use faultline_checker::probes::Probe;

use crate::jobs::entry::Entry;
use crate::test::options::TestRequest;

/// How many configurations the biased generator draws for each run, choosing one.
pub const CANDIDATES: u64 = 4;

/// Whether a run with these settings can go through `probe` at all: a coarse prior, from what
/// each probe needs (docs/results.md). It never says no to a run that could.
pub fn can_reach(probe: Probe, r: &TestRequest) -> bool {
    let kinds = r.nemesis.kinds(r.lazyfs);
    let has = |k: FaultKind| kinds.contains(&k);
    let crashes = has(FaultKind::Kill)
        || has(FaultKind::LeaderLoss)
        || has(FaultKind::RollingRestart)
        || has(FaultKind::PowerLoss);
    let disrupts = crashes || has(FaultKind::Pause) || has(FaultKind::Partition);
    let isr_faults = disrupts || has(FaultKind::IsrPressure);
    let min_isr = r.min_insync_replicas.unwrap_or(1);
    let power = r.lazyfs && has(FaultKind::PowerLoss);
    match probe {
        Probe::IsrShrunk | Probe::IsrLeaderOnly => isr_faults,
        Probe::IsrBelowMin => isr_faults && min_isr >= 2,
        Probe::CleanElection | Probe::Fenced => disrupts,
        Probe::UncleanElection => {
            crashes && (r.unclean_leader_election || r.kafka_version == KafkaVersion::V4_1)
        }
        Probe::ElrElection => crashes && r.kafka_version == KafkaVersion::V4_1 && min_isr >= 2,
        Probe::TruncatedBelowHw => disrupts && r.acks == Acks::All,
        Probe::EpochDivergenceResolved => disrupts && r.kafka_version != KafkaVersion::V0_10_2,
        Probe::NotEnoughReplicas | Probe::AcksAllTimeout => {
            isr_faults && r.acks == Acks::All && min_isr >= 2
        }
        Probe::PowerLossLastIsrMember => power,
        Probe::LeaderPaused => has(FaultKind::Pause),
        Probe::StaleFetchRefused => {
            power && has(FaultKind::Delay) && r.kafka_version != KafkaVersion::V0_10_2
        }
        // Needs idempotent producers (not in nightly configurations yet) and a retry of an
        // appended batch.
        Probe::RetryDeduplicated => false,
    }
}

/// A short name for a run's configuration, for the coverage table.
pub fn configuration(r: &TestRequest) -> String {
    let nemesis = match &r.nemesis {
        crate::test::options::NemesisChoice::All => "all".to_string(),
        crate::test::options::NemesisChoice::Kinds(kinds) => kinds
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join("+"),
    };
    let mut name = format!(
        "{} acks={} min-isr={} {nemesis}",
        r.kafka_version,
        r.acks.as_str(),
        r.min_insync_replicas.unwrap_or(1)
    );
    if r.unclean_leader_election {
        name.push_str(" unclean");
    }
    if r.lazyfs {
        name.push_str(" lazyfs");
    }
    name
}

/// What the night's runs reached so far.
#[derive(Debug, Default, Clone)]
pub struct Coverage {
    /// Per probe: the runs that reached it, and by configuration.
    pub runs: BTreeMap<Probe, u64>,
    pub by_configuration: BTreeMap<Probe, BTreeMap<String, u64>>,
    /// Runs counted.
    pub total: u64,
}

impl Coverage {
    /// Counts one finished run's probes.
    pub fn add(&mut self, configuration: &str, reached: impl IntoIterator<Item = Probe>) {
        self.total += 1;
        for probe in reached {
            *self.runs.entry(probe).or_default() += 1;
            *self
                .by_configuration
                .entry(probe)
                .or_default()
                .entry(configuration.to_string())
                .or_default() += 1;
        }
    }

    /// Every probe reached at least once.
    pub fn complete(&self) -> bool {
        Probe::ALL.iter().all(|p| self.runs.contains_key(p))
    }

    /// How much a run with these settings is worth now: each probe it can reach counts
    /// 1 / (1 + the runs that reached it), so probes never reached weigh most.
    pub fn worth(&self, r: &TestRequest) -> f64 {
        Probe::ALL
            .iter()
            .filter(|p| can_reach(**p, r))
            .map(|p| 1.0 / (1 + self.runs.get(p).copied().unwrap_or(0)) as f64)
            .sum()
    }

    /// The candidate to run next: the first of the most worth (so with nothing reached yet,
    /// or all equal, the unbiased stream's own).
    pub fn choose(&self, candidates: &[Entry]) -> usize {
        let mut best = 0;
        for (i, c) in candidates.iter().enumerate() {
            if self.worth(&c.request) > self.worth(&candidates[best].request) + 1e-9 {
                best = i;
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::scenarios::Expect;
    use crate::test::options::NemesisChoice;

    fn entry(request: TestRequest) -> Entry {
        Entry {
            name: "e".into(),
            request,
            schedule: None,
            expect: Expect::Guarantee,
            probes: &[],
        }
    }

    #[test]
    fn the_bias_prefers_the_configuration_that_can_reach_what_the_night_has_not() {
        // Partitions with acks=all can reach nine probes, but never leader_paused.
        let partitions = TestRequest {
            nemesis: NemesisChoice::Kinds(vec![FaultKind::Delay, FaultKind::Partition]),
            kafka_version: KafkaVersion::V3_7,
            acks: Acks::All,
            min_insync_replicas: Some(2),
            ..TestRequest::default()
        };
        // Pauses with acks=1 reach fewer (no refusals, timeouts or proven HW) but that one.
        let pauses = TestRequest {
            nemesis: NemesisChoice::Kinds(vec![FaultKind::Pause]),
            kafka_version: KafkaVersion::V3_7,
            acks: Acks::One,
            ..TestRequest::default()
        };
        assert!(can_reach(Probe::LeaderPaused, &pauses));
        assert!(!can_reach(Probe::LeaderPaused, &partitions));
        assert!(!can_reach(Probe::NotEnoughReplicas, &pauses));
        let candidates = [entry(pauses.clone()), entry(partitions.clone())];
        let mut coverage = Coverage::default();
        // Nothing reached yet: the configuration that can reach more is worth more.
        assert_eq!(coverage.choose(&candidates), 1);
        // Once the night has reached everything partitions can, the pauses win.
        let reachable: Vec<Probe> = Probe::ALL
            .into_iter()
            .filter(|p| can_reach(*p, &partitions))
            .collect();
        for _ in 0..5 {
            coverage.add("partitions", reachable.iter().copied());
        }
        assert!(coverage.worth(&pauses) > coverage.worth(&partitions));
        assert_eq!(coverage.choose(&candidates), 0);
        assert!(!coverage.complete());
        assert_eq!(
            coverage.by_configuration[&Probe::IsrShrunk]["partitions"],
            5
        );
        assert_eq!(coverage.total, 5);
    }

    #[test]
    fn power_loss_probes_need_lazy_mounts() {
        let plain = TestRequest::default();
        let lazy = TestRequest {
            lazyfs: true,
            ..TestRequest::default()
        };
        assert!(!can_reach(Probe::PowerLossLastIsrMember, &plain));
        assert!(can_reach(Probe::PowerLossLastIsrMember, &lazy));
        assert!(can_reach(Probe::StaleFetchRefused, &lazy));
    }
}
