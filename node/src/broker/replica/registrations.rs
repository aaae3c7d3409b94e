//! What a replica knows of the brokers' registrations: the part of the controller's metadata
//! Kafka's leader reads from its `KRaftMetadataCache` (is a broker fenced, is it in controlled
//! shutdown, what is the epoch of its registration), and this broker's own broker epoch, as
//! its heartbeats last heard it from the controller (Kafka's `BrokerLifecycleManager.brokerEpoch`).
//! It is a value the broker hands to every replica when either changes; it decides nothing.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::BrokerStatus;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registrations {
    fenced: BTreeSet<u32>,
    shutting_down: BTreeSet<u32>,
    /// The registration epoch of every broker the metadata lists unfenced and with an epoch.
    alive_epochs: BTreeMap<u32, u64>,
    /// Some fenced broker is listed with an epoch (so the metadata does name epochs).
    named_fenced_epoch: bool,
    own_epoch: Option<u64>,
}

impl Registrations {
    /// From the metadata's broker list and this broker's own broker epoch (None until a
    /// heartbeat answer has named it, and always in versions without broker epochs).
    pub fn new(brokers: &[BrokerStatus], own_epoch: Option<u64>) -> Self {
        let alive_epochs = brokers
            .iter()
            .filter(|b| b.alive)
            .filter_map(|b| Some((b.id, b.epoch?)))
            .collect();
        Registrations {
            fenced: brokers.iter().filter(|b| !b.alive).map(|b| b.id).collect(),
            shutting_down: brokers
                .iter()
                .filter(|b| b.shutting_down)
                .map(|b| b.id)
                .collect(),
            alive_epochs,
            named_fenced_epoch: brokers.iter().any(|b| !b.alive && b.epoch.is_some()),
            own_epoch,
        }
    }

    /// Kafka's `KRaftMetadataCache.isBrokerFenced`: false for a broker the metadata does not list.
    pub fn is_fenced(&self, id: u32) -> bool {
        self.fenced.contains(&id)
    }

    /// Kafka's `KRaftMetadataCache.isBrokerShuttingDown` (KIP-841).
    pub fn is_shutting_down(&self, id: u32) -> bool {
        self.shutting_down.contains(&id)
    }

    /// Kafka's `KRaftMetadataCache.getAliveBrokerEpoch`: the epoch of the broker's registration,
    /// or None when it is fenced or unknown.
    pub fn alive_epoch(&self, id: u32) -> Option<u64> {
        self.alive_epochs.get(&id).copied()
    }

    /// Whether the metadata names any broker's registration epoch. A controller that names none
    /// follows a version without broker epochs; with it there is nothing to check a follower's
    /// epoch against, as in Kafka's ZooKeeper mode (every epoch -1). A controller with broker
    /// epochs names one for every registered broker, so Kafka never meets this case.
    pub fn names_epochs(&self) -> bool {
        !self.alive_epochs.is_empty() || self.named_fenced_epoch
    }

    /// This broker's own broker epoch, as the controller last named it.
    pub fn own_epoch(&self) -> Option<u64> {
        self.own_epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: u32, alive: bool, epoch: Option<u64>, shutting_down: bool) -> BrokerStatus {
        BrokerStatus {
            id,
            alive,
            epoch,
            shutting_down,
            kafka_address: None,
        }
    }

    #[test]
    fn a_fenced_broker_has_no_alive_epoch_and_an_unknown_one_is_not_fenced() {
        let brokers = [
            status(1, true, Some(10), false),
            status(2, false, Some(20), false),
            status(3, true, Some(30), true),
        ];
        let r = Registrations::new(&brokers, Some(10));
        assert_eq!(r.alive_epoch(1), Some(10));
        assert_eq!(
            r.alive_epoch(2),
            None,
            "fenced: getAliveBrokerEpoch is None"
        );
        assert!(r.is_fenced(2) && !r.is_fenced(1));
        assert!(r.is_shutting_down(3) && !r.is_shutting_down(1));
        assert!(
            !r.is_fenced(9),
            "a broker the metadata does not list is not fenced"
        );
        assert_eq!((r.alive_epoch(9), r.own_epoch()), (None, Some(10)));
        assert!(r.names_epochs());
        let without = Registrations::new(&[status(1, true, None, false)], None);
        assert!(
            !without.names_epochs(),
            "a controller without broker epochs"
        );
    }
}
