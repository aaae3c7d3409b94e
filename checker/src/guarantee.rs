//! The run's guarantee: which anomalies its configuration (test.json) excuses, and by which
//! setting. It owns the table in docs/results.md ("Which setting excuses what"); it finds
//! nothing itself.

use crate::config::TestConfig;
use crate::history::Acks;
use crate::results::{AnomalyKind, Guarantee};
use std::collections::BTreeMap;

use AnomalyKind::*;

/// Anomalies that follow from losing an acknowledged record that was not yet committed (above
/// HW): acks=1 or 0 acknowledge before replication, min.insync.replicas=1 lets acks=all commit
/// on the leader alone, and with every broker faulty at once nothing outlives the fault.
const UNCOMMITTED_LOSS: &[AnomalyKind] = &[Lost, Moved, InconsistentOffset];

/// Anomalies that follow from losing records below HW, which consumers may already have read:
/// an unclean leader, or a legacy-hw follower truncating to its HW checkpoint and then leading.
const COMMITTED_LOSS: &[AnomalyKind] = &[
    Lost,
    Moved,
    InconsistentOffset,
    DirtyRead,
    Divergence,
    PollSkip,
];

/// The settings that weaken the durable guarantee and the anomalies each one excuses.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub durable: bool,
    pub weakened_by: Vec<String>,
    /// The producers' acks: a send that asked for less (a schedule's `produce N acks 1` in an
    /// acks=all run) is excused its own loss.
    pub acks: Acks,
    excuses: BTreeMap<AnomalyKind, Vec<String>>,
}

impl Rules {
    pub fn from_config(config: &TestConfig) -> Rules {
        let mut rules = Rules {
            durable: true,
            weakened_by: Vec::new(),
            acks: config.acks,
            excuses: BTreeMap::new(),
        };
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
        for kind in kinds {
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

    pub fn guarantee(&self) -> Guarantee {
        Guarantee {
            durable: self.durable,
            weakened_by: self.weakened_by.clone(),
            excused: self.excuses.clone(),
        }
    }
}
