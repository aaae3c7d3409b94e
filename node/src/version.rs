//! The Kafka version whose replication rules the node follows, and those rules, chosen here and
//! nowhere else. A version is one setting (`--kafka-version 4.1|3.7|0.10.2`, the controller's and
//! every broker's); the code asks [`Rules`] a question ("are broker epochs checked?") and never
//! compares versions itself. docs/replication.md cites Kafka's source for every rule: tags
//! `3.7.0` and `0.10.2.1`, and for 4.1 the trunk of October 2024 plus the pull requests named
//! there (the stored copy of apache/kafka has no 4.x tag).
//!
//! `--replication-protocol current|legacy-hw`, the setting of earlier releases, stays as an
//! alias: `current` is the default version, `legacy-hw` is 0.10.2.

use std::fmt;
use std::str::FromStr;

/// A Kafka release whose replication the node reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum KafkaVersion {
    /// 0.10.2.1: truncation to the HW checkpoint (before KIP-101), ZooKeeper-era sessions.
    V0_10_2,
    /// 3.7.0: KRaft, leader epochs, broker epochs (KIP-903), the min-ISR HW freeze
    /// (KAFKA-15583); no Eligible Leader Replicas.
    V3_7,
    /// 4.1: 3.7 plus Eligible Leader Replicas (KIP-966), on by default for new clusters, and the
    /// removal of a broker that restarts after an unclean shutdown from ISR and ELR.
    #[default]
    V4_1,
}

impl KafkaVersion {
    pub const ALL: [KafkaVersion; 3] = [
        KafkaVersion::V4_1,
        KafkaVersion::V3_7,
        KafkaVersion::V0_10_2,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KafkaVersion::V0_10_2 => "0.10.2",
            KafkaVersion::V3_7 => "3.7",
            KafkaVersion::V4_1 => "4.1",
        }
    }

    /// The version an old `--replication-protocol` value means.
    pub fn from_protocol(protocol: &str) -> Option<KafkaVersion> {
        match protocol {
            "current" => Some(KafkaVersion::default()),
            "legacy-hw" => Some(KafkaVersion::V0_10_2),
            _ => None,
        }
    }

    /// Every rule of this version, in one value.
    pub fn rules(self) -> Rules {
        match self {
            KafkaVersion::V4_1 => Rules {
                version: self,
                leader_epoch_truncation: true,
                registers_fenced: true,
                broker_epochs: true,
                min_isr_hw_freeze: true,
                epoch_start_expansion: true,
                eligible_leader_replicas: true,
                unclean_shutdown_leaves_isr: true,
                controlled_shutdown: true,
                zk_controlled_shutdown: false,
                idempotent_producer: true,
                reset_last_caught_up_time: false,
            },
            KafkaVersion::V3_7 => Rules {
                version: self,
                eligible_leader_replicas: false,
                unclean_shutdown_leaves_isr: false,
                ..KafkaVersion::V4_1.rules()
            },
            KafkaVersion::V0_10_2 => Rules {
                version: self,
                leader_epoch_truncation: false,
                registers_fenced: false,
                broker_epochs: false,
                min_isr_hw_freeze: false,
                epoch_start_expansion: false,
                eligible_leader_replicas: false,
                unclean_shutdown_leaves_isr: false,
                controlled_shutdown: true,
                zk_controlled_shutdown: true,
                idempotent_producer: false,
                reset_last_caught_up_time: true,
            },
        }
    }
}

impl fmt::Display for KafkaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KafkaVersion {
    type Err = String;

    /// `4.1`, `3.7` or `0.10.2` (a patch level such as `3.7.0` or `0.10.2.1` is accepted).
    fn from_str(text: &str) -> Result<KafkaVersion, String> {
        KafkaVersion::ALL
            .into_iter()
            .find(|v| text == v.as_str() || text.strip_prefix(v.as_str()).is_some_and(is_patch))
            .ok_or_else(|| format!("unknown Kafka version {text:?} (known: 4.1, 3.7, 0.10.2)"))
    }
}

/// `.0`, `.1`, ...: a patch level after a version's name.
fn is_patch(rest: &str) -> bool {
    rest.strip_prefix('.')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The replication rules of one Kafka version. Each field names one rule; docs/replication.md
/// ("Kafka versions") cites the source of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub version: KafkaVersion,
    /// KIP-101/279/320: a follower truncates at the diverging epoch the leader names; without
    /// it (0.10.2) a follower truncates to its HW when it starts following a new leader.
    pub leader_epoch_truncation: bool,
    /// KRaft: a broker registers fenced and is unfenced once caught up on metadata; 0.10.2's
    /// ZooKeeper session lets a restarted broker straight back in.
    pub registers_fenced: bool,
    /// KIP-903 (3.5): fetches and AlterPartition carry broker epochs; a stale one is refused.
    pub broker_epochs: bool,
    /// KAFKA-15583 (3.7.0): the leader does not advance the HW while its committed ISR is below
    /// min.insync.replicas.
    pub min_isr_hw_freeze: bool,
    /// KAFKA-7128 (2.0.1): a follower rejoins the ISR only once it reached the leader's epoch
    /// start offset as well as the HW.
    pub epoch_start_expansion: bool,
    /// KIP-966 (4.1 for new clusters): replicas leaving an ISR below min.insync.replicas join
    /// the ELR, the ISR may become empty, and leaders come from ISR, then ELR, then the last
    /// known leader.
    pub eligible_leader_replicas: bool,
    /// KIP-966 (3.8+ with ELR): a broker that re-registers after an unclean shutdown leaves
    /// every ISR and ELR and may not lead until it is back in an ISR.
    pub unclean_shutdown_leaves_isr: bool,
    /// KIP-841 / KRaft controlled shutdown: SIGTERM moves leadership away and takes the broker
    /// out of every ISR before it stops.
    pub controlled_shutdown: bool,
    /// With `controlled_shutdown`, 0.10.2.1's way instead of KRaft's: every ask re-runs
    /// `KafkaController.shutdownBroker` (the broker joins `shuttingDownBrokerIds`; each
    /// partition it leads with more than one replica moves to the first live assigned replica in
    /// the ISR without shutting-down brokers, `ControlledShutdownLeaderSelector`, or keeps its
    /// leader when there is none; it leaves the ISR of each it follows, `removeReplicaFromIsr`,
    /// which bumps the leader epoch and keeps a last member unless unclean election is on;
    /// partitions with one replica are skipped), and the broker may stop as soon as it leads no
    /// replicated partition, with no wait for other brokers' metadata. The broker asks at most
    /// `controlled.shutdown.max.retries` (3) times, `controlled.shutdown.retry.backoff.ms`
    /// (5000) apart, then stops anyway (`KafkaServer.controlledShutdown`). Shutting down is no
    /// bar to an ISR there (the leader writes the ISR to ZooKeeper itself, `Partition.updateIsr`).
    pub zk_controlled_shutdown: bool,
    /// KIP-98 (0.11.0; on by default since 3.0, KIP-679): a leader dedups and orders an
    /// idempotent producer's batches by producer id, epoch and sequence (`ProducerStateManager`),
    /// and InitProducerId hands out producer ids. 0.10.2 has neither: a batch's stamp is not kept.
    pub idempotent_producer: bool,
    /// 0.10.2.1 `Partition.makeLeader`: a leader starting a new epoch counts every follower, in
    /// the ISR or not, as having fetched just now (`Replica.resetLastCaughtUpTime`); 3.7.0's
    /// `Replica.resetReplicaState` does that only for ISR members.
    pub reset_last_caught_up_time: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_with_or_without_a_patch_level_and_name_the_known_ones() {
        assert_eq!("4.1".parse(), Ok(KafkaVersion::V4_1));
        assert_eq!("3.7.0".parse(), Ok(KafkaVersion::V3_7));
        assert_eq!("0.10.2.1".parse(), Ok(KafkaVersion::V0_10_2));
        assert!("3.70".parse::<KafkaVersion>().is_err());
        let error = "2.8".parse::<KafkaVersion>().unwrap_err();
        assert!(error.contains("known: 4.1, 3.7, 0.10.2"), "{error}");
        for v in KafkaVersion::ALL {
            assert_eq!(v.as_str().parse(), Ok(v));
            assert_eq!(v.rules().version, v);
        }
    }

    #[test]
    fn the_protocol_alias_names_a_version() {
        assert_eq!(
            KafkaVersion::from_protocol("current"),
            Some(KafkaVersion::V4_1)
        );
        assert_eq!(
            KafkaVersion::from_protocol("legacy-hw"),
            Some(KafkaVersion::V0_10_2)
        );
        assert_eq!(KafkaVersion::from_protocol("new"), None);
    }

    #[test]
    fn each_version_differs_from_the_next_by_its_documented_rules() {
        let (v41, v37, v0102) = (
            KafkaVersion::V4_1.rules(),
            KafkaVersion::V3_7.rules(),
            KafkaVersion::V0_10_2.rules(),
        );
        assert!(v41.eligible_leader_replicas && !v37.eligible_leader_replicas);
        assert!(v41.unclean_shutdown_leaves_isr && !v37.unclean_shutdown_leaves_isr);
        assert!(v37.broker_epochs && v37.min_isr_hw_freeze && v37.epoch_start_expansion);
        assert!(!v0102.leader_epoch_truncation && !v0102.min_isr_hw_freeze);
        assert!(!v0102.epoch_start_expansion && !v0102.broker_epochs);
        assert!(v0102.zk_controlled_shutdown && !v37.zk_controlled_shutdown);
        assert!(v0102.controlled_shutdown && !v41.zk_controlled_shutdown);
    }
}
