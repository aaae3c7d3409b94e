//! The run's guarantee: which anomalies its configuration (test.json) excuses, and by which
//! setting; and the one excuse that depends on how a send went (a duplicate of a send retried
//! without idempotence). It owns the table in docs/results.md ("Which setting excuses what");
//! it finds nothing itself.

use crate::config::TestConfig;
use crate::history::Acks;
use crate::results::{AnomalyKind, Guarantee, RETRY_EXCUSE};
use std::collections::BTreeMap;

use AnomalyKind::*;

/// Anomalies that follow from losing an acknowledged record that was not yet committed (above
/// HW): acks=1 or 0 acknowledge before replication, min.insync.replicas=1 lets acks=all commit
/// on the leader alone, and with every broker faulty at once nothing outlives the fault. A log
/// truncated below an acknowledged offset takes the next sends at lower offsets again, so one
/// producer's acknowledged offsets can go back (`nonmonotonic_send`).
const UNCOMMITTED_LOSS: &[AnomalyKind] = &[Lost, Moved, InconsistentOffset, NonmonotonicSend];

/// Anomalies that follow from losing records below HW, which consumers may already have read:
/// an unclean leader, or a legacy-hw follower truncating to its HW checkpoint and then leading.
const COMMITTED_LOSS: &[AnomalyKind] = &[
    Lost,
    Moved,
    InconsistentOffset,
    NonmonotonicSend,
    DirtyRead,
    Divergence,
    PollSkip,
];

/// Anomalies of one value that a blind retry of its send explains: without idempotence a
/// producer re-sends a value whose attempt may have been appended, and the broker appends it
/// again (KIP-98 is what prevents this). Excused only for values whose send took more than one
/// attempt.
const RETRIED_SEND: &[AnomalyKind] = &[Duplicate];

/// How an anomaly that depends on one send's attempts stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendStanding {
    /// It breaks the guarantee.
    Breaks,
    /// It is excused, for this reason.
    Excused(String),
    /// It may be excused: the history does not say how the send went.
    Uncertain(String),
}

/// The settings that weaken the durable guarantee and the anomalies each one excuses.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub durable: bool,
    pub weakened_by: Vec<String>,
    /// The producers' acks: a send that asked for less (a schedule's `produce N acks 1` in an
    /// acks=all run) is excused its own loss.
    pub acks: Acks,
    /// `enable.idempotence`: retried sends are never appended twice, and each producer's
    /// acknowledged offsets grow (`nonmonotonic_send` is checked).
    pub idempotence: bool,
    /// The producers' retries: without idempotence, a send with no completion in the history
    /// may have been retried.
    pub retries: u32,
    excuses: BTreeMap<AnomalyKind, Vec<String>>,
    /// Kinds excused only for values whose send took more than one attempt.
    per_send: BTreeMap<AnomalyKind, Vec<String>>,
}

impl Rules {
    pub fn from_config(config: &TestConfig) -> Rules {
        let mut rules = Rules {
            durable: true,
            weakened_by: Vec::new(),
            acks: config.acks,
            idempotence: config.idempotence,
            retries: config.retries,
            excuses: BTreeMap::new(),
            per_send: BTreeMap::new(),
        };
        if !config.idempotence && config.retries > 0 {
            for kind in RETRIED_SEND {
                rules.per_send.insert(*kind, vec![RETRY_EXCUSE.to_string()]);
            }
        }
        match config.acks {
            Acks::All => {}
            Acks::One => rules.weaken("acks=1", UNCOMMITTED_LOSS),
            Acks::Zero => rules.weaken("acks=0", UNCOMMITTED_LOSS),
        }
        if config.min_insync_replicas < 2 {
            let setting = format!("min.insync.replicas={}", config.min_insync_replicas);
            rules.weaken(&setting, UNCOMMITTED_LOSS);
        }
        if config.nodes > 0 && config.max_faulty >= config.nodes {
            let setting = format!("max_faulty={} (every broker)", config.max_faulty);
            rules.weaken(&setting, UNCOMMITTED_LOSS);
        }
        if config.unclean_leader_election {
            rules.weaken("unclean.leader.election.enable=true", COMMITTED_LOSS);
        }
        if let Some(system) = &config.system {
            // A system promising less than the run asks for is held to its promise only.
            if system.promise_acks != Acks::All && config.acks == Acks::All {
                let setting = format!(
                    "{} promises acks={}",
                    system.name,
                    system.promise_acks.as_str()
                );
                rules.weaken(&setting, UNCOMMITTED_LOSS);
            }
            if system.promise_min_insync_replicas < 2 && config.min_insync_replicas >= 2 {
                let setting = format!(
                    "{} promises min.insync.replicas={}",
                    system.name, system.promise_min_insync_replicas
                );
                rules.weaken(&setting, UNCOMMITTED_LOSS);
            }
        }
        if config.harness.lazyfs {
            // Kafka's promise holds while one ISR member keeps its log; a power cut of the last
            // one takes what it never fsynced, committed or not (KIP-966's motivation). A
            // system file's system is held to the fsync it promises, not to `--fsync`.
            match &config.system {
                None if !config.harness.fsync() => rules.weaken(
                    "power loss without fsync (--lazyfs, no --fsync)",
                    COMMITTED_LOSS,
                ),
                Some(system) if !system.promise_fsync => {
                    let setting = format!(
                        "power loss, and {} does not promise to fsync before acknowledging",
                        system.name
                    );
                    rules.weaken(&setting, COMMITTED_LOSS);
                }
                _ => {}
            }
        }
        if config.kafka_version.hw_truncation() {
            let setting = format!("kafka_version={}", config.kafka_version);
            rules.weaken(&setting, COMMITTED_LOSS);
        }
        rules
    }

    fn weaken(&mut self, setting: &str, kinds: &[AnomalyKind]) {
        self.durable = false;
        self.weakened_by.push(setting.to_string());
        // Without idempotence send order is not checked: nothing to excuse.
        let checked = |kind: &&AnomalyKind| **kind != NonmonotonicSend || self.idempotence;
        for kind in kinds.iter().filter(checked) {
            self.excuses
                .entry(*kind)
                .or_default()
                .push(setting.to_string());
        }
    }

    /// The settings that excuse `kind`, joined, or `None` when it breaks the guarantee.
    pub fn excuse(&self, kind: AnomalyKind) -> Option<String> {
        self.excuses.get(&kind).map(|settings| settings.join(", "))
    }

    /// How a `duplicate` of one value stands, by how its send went: `attempts` from its
    /// completion, `None` when the history has its invoke but no completion. With idempotence
    /// a duplicate breaks the guarantee whatever the attempts (that is what idempotence is
    /// for); without, a value sent in more than one attempt may have been appended by each.
    /// A value sent once, or never sent, is never excused.
    pub fn duplicate_standing(&self, attempts: Option<u32>) -> SendStanding {
        let Some(reasons) = self.per_send.get(&Duplicate) else {
            return SendStanding::Breaks;
        };
        match attempts {
            Some(n) if n > 1 => SendStanding::Excused(reasons.join(", ")),
            Some(_) => SendStanding::Breaks,
            None => SendStanding::Uncertain(format!(
                "its send has no completion in the history: it may have been retried ({})",
                reasons.join(", ")
            )),
        }
    }

    pub fn guarantee(&self) -> Guarantee {
        Guarantee {
            durable: self.durable,
            weakened_by: self.weakened_by.clone(),
            excused: self.excuses.clone(),
            excused_per_send: self.per_send.clone(),
        }
    }
}
