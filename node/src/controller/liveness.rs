//! Broker liveness in the controller: registration (a new incarnation gets a new broker epoch),
//! heartbeats, fencing and unfencing, controlled shutdown, session expiry, and the contact
//! times heartbeats record before they wait for the controller. It decides *which* brokers
//! change state and which partitions that touches; how one partition changes is
//! [`super::election`]'s.
//!
//! A broker's state, as Kafka's `BrokerHeartbeatManager.calculateNextBrokerState` (3.7.0) has it:
//!
//! ```text
//!   new incarnation ──> FENCED ──heartbeat shows it caught up──> UNFENCED
//!                        ^  ^                                      │  │
//!                        │  └──────────── session expiry ──────────┘  │ want_shutdown,
//!                        │                                            v leads a partition
//!                        │                                  CONTROLLED_SHUTDOWN: leaves every
//!                        │                                  ISR, its leaderships move
//!                        │                                            │ leads nothing, every
//!                        │                                            v active broker caught up
//!                        └──────────────────────────────────── SHUTDOWN_NOW: should_shut_down
//! ```
//!
//! (`want_shutdown` from a fenced broker, or from an unfenced one that leads nothing, is
//! SHUTDOWN_NOW at once; session expiry fences a broker in controlled shutdown too.)
//!
//! FENCED, UNFENCED and "in controlled shutdown" are durable (the registration), as KRaft's
//! `BrokerRegistration` is; contact times and the controlled-shutdown progress are soft state,
//! renewed when the controller starts (`ClusterControlManager.activate`).
//!
//! 0.10.2.1 (`rules.zk_controlled_shutdown`) has no such states: each `want_shutdown` is a
//! ControlledShutdownRequest that runs `KafkaController.shutdownBroker` again
//! ([`ControllerState::shutdown_broker`]), and "in controlled shutdown" is its
//! `shuttingDownBrokerIds`, which a fenced broker leaves and a restarted controller forgets.

use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::election::{controlled_shutdown_leader, remove_replica_from_isr};
use super::{Change, ControllerState};
use crate::api::*;

/// A broker's latest registration, kept durably as KRaft keeps `BrokerRegistration` in its
/// metadata log (replayed by `ClusterControlManager.replay` on every controller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Registration {
    /// The broker process that registered: random per process start.
    pub incarnation: u64,
    /// KIP-903's broker epoch: the metadata version that holds this registration, as Kafka's is
    /// the offset of its `RegisterBrokerRecord` (`QuorumController.registerBroker` passes
    /// `offsetControl.nextWriteOffset()`). Absent without `rules.broker_epochs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// The metadata version a fenced broker must have caught up to before it is unfenced
    /// (Kafka's `registerBrokerRecordOffset`; 0 when registrations are not fenced, 0.10.2).
    pub registered_version: u64,
    /// Fenced: it may not lead nor be in an ISR. Every registration starts fenced
    /// (`RegisterBrokerRecord.Fenced` defaults to true).
    pub fenced: bool,
    /// In controlled shutdown (KIP-841, `BrokerRegistration.inControlledShutdown`): not an
    /// acceptable leader nor ISR-eligible. Stays set once it is fenced, until it registers anew.
    #[serde(default)]
    pub in_controlled_shutdown: bool,
}

/// What the controller knows of a broker only while it runs (Kafka's `BrokerHeartbeatState`,
/// rebuilt by `ClusterControlManager.activate`). Contact times are in [`ContactTimes`].
#[derive(Debug, Default)]
pub(super) struct Liveness {
    /// The metadata version the broker's last heartbeat reported (`metadataOffset`).
    pub metadata_version: u64,
    /// While in controlled shutdown: the metadata version that moved its leaderships away
    /// (Kafka's `controlledShutdownOffset`). It may stop once every active broker has it.
    pub controlled_shutdown_version: Option<u64>,
}

/// When each registered broker was last heard from, updated without the controller's lock,
/// as Kafka's `BrokerHeartbeatTracker` is (KAFKA-17793, apache/kafka PR #17502,
/// `QuorumController.processBrokerHeartbeat`: "so that if the main controller thread is
/// backlogged, the last contact time update still gets through"). A heartbeat records its
/// arrival here before it waits for the lock. One entry per registered broker, keyed by its
/// current incarnation: another incarnation's heartbeat renews nothing.
#[derive(Debug, Default)]
pub struct ContactTimes {
    sessions: Mutex<BTreeMap<u32, (u64, Instant)>>,
}

impl ContactTimes {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, (u64, Instant)>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts `id`'s session for `incarnation` with contact at `at`.
    pub(super) fn start(&self, id: u32, incarnation: u64, at: Instant) {
        self.lock().insert(id, (incarnation, at));
    }

    /// Records contact from `id` at `at`, if `incarnation` is the one registered. Contact
    /// times never move back: a slow request cannot undo a faster, later one.
    pub fn touch(&self, id: u32, incarnation: u64, at: Instant) -> bool {
        match self.lock().get_mut(&id) {
            Some((registered, last)) if *registered == incarnation => {
                *last = (*last).max(at);
                true
            }
            _ => false,
        }
    }

    pub(super) fn last_contact(&self, id: u32) -> Option<Instant> {
        self.lock().get(&id).map(|&(_, t)| t)
    }

    /// Makes `id` look silent for `by` longer (tests: a stall without waiting for it).
    #[cfg(test)]
    pub(super) fn backdate(&self, id: u32, by: Duration) {
        if let Some((_, t)) = self.lock().get_mut(&id) {
            *t = t
                .checked_sub(by)
                .expect("the clock runs longer than a test's backdating");
        }
    }
}

/// Why partitions change when a broker changes state: Kafka's `generateLeaderAndIsrUpdates`
/// arguments.
#[derive(Debug, Clone, Copy)]
pub(super) struct Update {
    /// `brokerToRemove`: leaves the ISR and may not lead.
    pub remove: Option<u32>,
    /// `brokerToAdd`: may lead although still fenced while the change is made.
    pub add: Option<u32>,
    /// `brokerWithUncleanShutdown`: leaves the ISR and the ELR and may not lead.
    pub unclean_shutdown: Option<u32>,
    /// The `reason` of the events the change writes.
    pub reason: &'static str,
}

/// Whether the previous process of a broker that registers a new incarnation shut down
/// uncleanly, so that the new one must leave every ISR and ELR (`rules.unclean_shutdown_leaves_isr`).
/// Kafka 3.8.0 (KAFKA-15586, `ClusterControlManager.registerBroker`: `version < 2 || existing ==
/// null || request.previousBrokerEpoch() != existing.epoch()`), and again trunk after KAFKA-18635
/// (PR #18277): unclean unless the broker names, as the epoch its clean-shutdown marker holds
/// (KAFKA-15582), the previous registration's epoch. A broker that crashed names none (its
/// marker was consumed when it started), and neither does one registering for the first time.
/// Kafka 3.9 and the trunk of October 2024 counted every new incarnation as unclean
/// (KAFKA-16952), so that a broker stopped by SIGTERM left every ISR and ELR too.
fn previous_shutdown_was_unclean(previous: Option<&Registration>, req: &HeartbeatRequest) -> bool {
    match (previous.and_then(|r| r.epoch), req.previous_broker_epoch) {
        (Some(registered), Some(stopped_at)) => registered != stopped_at,
        _ => true,
    }
}

impl ControllerState {
    /// A heartbeat, timed now. See [`ControllerState::heartbeat_at`].
    pub fn heartbeat(&mut self, req: HeartbeatRequest) -> Result<HeartbeatResponse, ApiError> {
        self.heartbeat_at(req, Instant::now())
    }

    /// A heartbeat that arrived at `arrived` (before it waited for the controller's lock). It
    /// registers a new incarnation, renews the session, unfences a broker that has caught up on
    /// metadata, and moves a broker that wants to stop through controlled shutdown.
    ///
    /// A new incarnation (a restarted broker) is refused with DUPLICATE_BROKER_REGISTRATION while
    /// the previous incarnation's session is valid; once it has expired the previous incarnation
    /// is fenced (it leaves every ISR, its leaderships move). Both protocols do this: KRaft's
    /// ClusterControlManager `registerBroker` (Kafka 3.7) refuses the registration, and
    /// ZooKeeper-era Kafka (0.10.2 `ZkUtils.registerBrokerInZk`) finds the old ephemeral
    /// registration still there and fails the broker's startup until the old session expires,
    /// whose expiry the controller handles as a broker failure (`onBrokerFailure`: every replica
    /// on it goes to OfflineReplica, which removes it from every ISR). With `registers_fenced`
    /// the new incarnation is then registered fenced, as KRaft does, to be unfenced by the first
    /// heartbeat that shows it has caught up on metadata; without it (0.10.2) the same heartbeat
    /// unfences it, as a 0.10 broker is live once its registration is written.
    pub fn heartbeat_at(
        &mut self,
        req: HeartbeatRequest,
        arrived: Instant,
    ) -> Result<HeartbeatResponse, ApiError> {
        self.check_cluster(&req.cluster_id)?;
        self.check_broker_epoch(req.broker_id, req.broker_epoch)?;
        let id = req.broker_id;
        let previous = self.durable.registrations.get(&id).cloned();
        if previous.as_ref().map(|r| r.incarnation) != Some(req.incarnation) {
            if previous.is_some() {
                self.end_previous_session(id)?;
            }
            self.register(id, &req, previous.as_ref(), arrived)?;
        }
        self.contacts.touch(id, req.incarnation, arrived);
        self.record_kafka_address(id, req.kafka_address.as_deref())?;
        self.liveness.entry(id).or_default().metadata_version = req.metadata_version;
        let should_shut_down = if req.want_shutdown {
            self.want_shutdown(id)?
        } else {
            self.maybe_unfence(id, req.metadata_version)?;
            false
        };
        let metadata =
            (req.metadata_version != self.durable.metadata_version).then(|| self.metadata());
        Ok(HeartbeatResponse {
            metadata_version: self.durable.metadata_version,
            metadata,
            broker_epoch: self.durable.registrations[&id].epoch,
            should_shut_down,
        })
    }

    /// KIP-903 `ClusterControlManager.checkBrokerEpoch` (3.7.0): a request that names a broker
    /// epoch must name the current registration's (`registration.epoch() != brokerEpoch` is
    /// STALE_BROKER_EPOCH, as is an unknown broker). A request without one (a broker that has
    /// not learned its epoch yet, or a version without broker epochs) is not checked.
    pub(super) fn check_broker_epoch(&self, id: u32, epoch: Option<u64>) -> Result<(), ApiError> {
        let Some(epoch) = epoch.filter(|_| self.rules.broker_epochs) else {
            return Ok(());
        };
        match self.durable.registrations.get(&id).and_then(|r| r.epoch) {
            Some(current) if current == epoch => Ok(()),
            Some(current) => Err(ApiError::new(
                ErrorCode::StaleBrokerEpoch,
                format!("expected broker epoch {current} for broker {id}, but got {epoch}"),
            )),
            None => Err(ApiError::new(
                ErrorCode::StaleBrokerEpoch,
                format!("no broker registration with an epoch found for broker {id}"),
            )),
        }
    }

    /// Keeps the Kafka listener `id` advertises; a change is a new metadata version, so every
    /// broker learns it with its next heartbeat.
    fn record_kafka_address(&mut self, id: u32, address: Option<&str>) -> Result<(), ApiError> {
        let Some(address) = address else {
            return Ok(());
        };
        if self.durable.kafka_addresses.get(&id).map(String::as_str) == Some(address) {
            return Ok(());
        }
        self.durable.kafka_addresses.insert(id, address.to_string());
        self.persist()
    }

    fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.config.session_timeout_ms)
    }

    /// A new incarnation of `id` wants to register: refused while the previous incarnation's
    /// session is valid (Kafka's `hasValidSession`: unfenced and heard from within the session
    /// timeout); otherwise that incarnation is fenced (if it was not already).
    fn end_previous_session(&mut self, id: u32) -> Result<(), ApiError> {
        let timeout = self.session_timeout();
        let fenced = self.durable.registrations[&id].fenced;
        let silent_for = self
            .contacts
            .last_contact(id)
            .map_or(Duration::MAX, |t| t.elapsed());
        if !fenced && silent_for <= timeout {
            return Err(ApiError::new(
                ErrorCode::DuplicateBrokerRegistration,
                format!(
                    "broker {id}'s previous incarnation has a valid session for {} ms more; \
                     a new incarnation may register once it expires",
                    (timeout - silent_for).as_millis()
                ),
            ));
        }
        if !fenced {
            self.fence(id, "session_timeout")?;
        }
        Ok(())
    }

    /// Records a new incarnation of `id`, fenced, with a new broker epoch: the metadata version
    /// the registration is written in, so epochs only grow and survive a controller restart.
    /// With `rules.unclean_shutdown_leaves_isr` a new incarnation after an unclean shutdown
    /// ([`previous_shutdown_was_unclean`]) leaves every ISR and ELR in the same write, as
    /// `registerBroker` puts the records of `handleBrokerUncleanShutdown` in the registration's
    /// batch (3.8.0, KAFKA-15586).
    fn register(
        &mut self,
        id: u32,
        req: &HeartbeatRequest,
        previous: Option<&Registration>,
        arrived: Instant,
    ) -> Result<(), ApiError> {
        let version = self.durable.metadata_version + 1;
        let kraft = req.registers_fenced;
        let registration = Registration {
            incarnation: req.incarnation,
            epoch: self.rules.broker_epochs.then_some(version),
            registered_version: if kraft { version } else { 0 },
            fenced: true,
            in_controlled_shutdown: false,
        };
        self.durable.registrations.insert(id, registration.clone());
        self.liveness.insert(id, Liveness::default());
        self.contacts.start(id, req.incarnation, arrived);
        let unclean =
            self.rules.unclean_shutdown_leaves_isr && previous_shutdown_was_unclean(previous, req);
        self.events.emit(
            "broker_registered",
            json!({"broker": id, "incarnation": req.incarnation, "epoch": registration.epoch,
                   "fenced": kraft, "previous_broker_epoch": req.previous_broker_epoch,
                   "unclean_shutdown": unclean}),
        );
        if unclean {
            // Kafka's handleBrokerUncleanShutdown: over the partitions with it in the ISR, then
            // those with it in the ELR (a replica is never in both).
            let update = Update {
                remove: None,
                add: None,
                unclean_shutdown: Some(id),
                reason: "unclean_shutdown",
            };
            self.update_partitions(update, |p| p.isr.contains(&id) || p.elr.contains(&id));
        }
        self.persist()?;
        debug_assert_eq!(self.durable.metadata_version, version);
        Ok(())
    }

    /// The broker is gone (its session expired, or its controlled shutdown is done): it leaves
    /// every ISR (without ELR, except as the last member, which KRaft keeps so the partition can
    /// come back cleanly; with ELR it may join the ELR), and every partition it led elects anew.
    /// Kafka's `handleBrokerFenced` over `partitionsWithBrokerInIsr`.
    pub(crate) fn fence(&mut self, id: u32, reason: &str) -> Result<(), ApiError> {
        let Some(registration) = self.durable.registrations.get_mut(&id) else {
            return Ok(());
        };
        registration.fenced = true;
        if self.rules.zk_controlled_shutdown {
            // 0.10.2.1 `onBrokerFailure`: a dead broker leaves `shuttingDownBrokerIds`.
            registration.in_controlled_shutdown = false;
        }
        if let Some(l) = self.liveness.get_mut(&id) {
            // A fenced broker leaves controlled shutdown (`BrokerHeartbeatManager.touch`).
            l.controlled_shutdown_version = None;
        }
        self.events
            .emit("broker_fenced", json!({"broker": id, "reason": reason}));
        let update = Update {
            remove: Some(id),
            add: None,
            unclean_shutdown: None,
            reason: "broker_fenced",
        };
        self.update_partitions(update, |p| p.isr.contains(&id));
        self.persist()
    }

    /// A fenced broker whose heartbeat shows the metadata version holding its registration is
    /// unfenced (`calculateNextBrokerState`, KAFKA-13959), and every leaderless partition tries
    /// to elect again (`handleBrokerUnfenced` over `partitionsWithNoLeader`).
    fn maybe_unfence(&mut self, id: u32, metadata_version: u64) -> Result<(), ApiError> {
        let registration = self
            .durable
            .registrations
            .get_mut(&id)
            .expect("registered before");
        if !registration.fenced || metadata_version < registration.registered_version {
            return Ok(());
        }
        registration.fenced = false;
        self.events.emit("broker_unfenced", json!({"broker": id}));
        let update = Update {
            remove: None,
            add: Some(id),
            unclean_shutdown: None,
            reason: "broker_unfenced",
        };
        self.update_partitions(update, |p| p.leader.is_none());
        self.persist()
    }

    /// A heartbeat with `want_shutdown`; returns `should_shut_down`. Kafka 3.7.0
    /// `BrokerHeartbeatManager.calculateNextBrokerState`: a fenced broker may stop at once; an
    /// unfenced one that leads a partition enters controlled shutdown (its leaderships move and
    /// it leaves every ISR), one that leads nothing is fenced and may stop; a broker in
    /// controlled shutdown may stop once it leads nothing and every active broker has caught up
    /// on the metadata that moved its leaderships (`controlledShutdownOffset <=
    /// lowestActiveOffset`). Stopping is `SHUTDOWN_NOW`, which fences it (`handleBrokerFenced`).
    /// 0.10.2.1's rules are [`Self::shutdown_broker`].
    fn want_shutdown(&mut self, id: u32) -> Result<bool, ApiError> {
        if self.rules.controlled_shutdown && self.rules.zk_controlled_shutdown {
            return self.shutdown_broker(id);
        }
        if !self.rules.controlled_shutdown || self.durable.registrations[&id].fenced {
            return Ok(true);
        }
        let leads = self.leads_any(id);
        match self.liveness[&id].controlled_shutdown_version {
            None if leads => {
                self.enter_controlled_shutdown(id)?;
                Ok(false)
            }
            Some(_) if leads => Ok(false),
            Some(version) if version > self.lowest_active_metadata_version() => Ok(false),
            _ => {
                self.fence(id, "controlled_shutdown")?;
                Ok(true)
            }
        }
    }

    /// `handleBrokerInControlledShutdown`: the registration says so (durably), the broker
    /// leaves every ISR it is in, and every partition it leads elects another acceptable
    /// leader (or none).
    fn enter_controlled_shutdown(&mut self, id: u32) -> Result<(), ApiError> {
        let registration = self.durable.registrations.get_mut(&id).expect("registered");
        registration.in_controlled_shutdown = true;
        let epoch = registration.epoch;
        self.events.emit(
            "broker_controlled_shutdown",
            json!({"broker": id, "epoch": epoch}),
        );
        let update = Update {
            remove: Some(id),
            add: None,
            unclean_shutdown: None,
            reason: "controlled_shutdown",
        };
        self.update_partitions(update, |p| p.isr.contains(&id));
        self.persist()?;
        let version = self.durable.metadata_version;
        self.liveness
            .entry(id)
            .or_default()
            .controlled_shutdown_version = Some(version);
        Ok(())
    }

    /// A heartbeat with `want_shutdown` under 0.10.2.1's rules (`rules.zk_controlled_shutdown`)
    /// stands for one ControlledShutdownRequest, and gets `KafkaController.shutdownBroker` anew
    /// (`KafkaApis.handleControlledShutdownRequest`); returns whether the broker may stop. A
    /// broker that is not live is refused (`BrokerNotAvailableException`: an error answer,
    /// which the broker counts as a failed attempt). Otherwise it joins the shutting-down
    /// brokers (`shuttingDownBrokerIds`: no longer live for elections, still live for the
    /// selector), its replicated partitions change ([`Self::move_replicas_off`]), and the answer
    /// is the replicated partitions it still leads: when there are none it may stop, at once,
    /// whatever the other brokers have seen. Stopping fences it, as the stopped broker's
    /// ZooKeeper session ends (`onBrokerFailure`).
    fn shutdown_broker(&mut self, id: u32) -> Result<bool, ApiError> {
        let registration = self.durable.registrations.get_mut(&id).expect("registered");
        let epoch = registration.epoch;
        if registration.fenced {
            self.events.emit(
                "broker_controlled_shutdown",
                json!({"broker": id, "epoch": epoch, "error": "broker_not_available"}),
            );
            return Ok(false);
        }
        let joined = !registration.in_controlled_shutdown;
        registration.in_controlled_shutdown = true;
        let changes = self.move_replicas_off(id);
        let remaining = self.replicated_partitions_led_by(id);
        self.events.emit(
            "broker_controlled_shutdown",
            json!({"broker": id, "epoch": epoch, "partitions_remaining": remaining}),
        );
        let changed = joined || !changes.is_empty();
        self.record(changes);
        if remaining.is_empty() {
            // One write: the moves and the end of the session.
            self.fence(id, "controlled_shutdown")?;
            return Ok(true);
        }
        if changed {
            self.persist()?;
        }
        Ok(false)
    }

    /// `shutdownBroker`'s loop over the partitions assigned to `id`, skipping those with one
    /// replica: one it leads gets the leader [`controlled_shutdown_leader`] picks, or stays as
    /// it is; one it does not lead loses it from the ISR ([`remove_replica_from_isr`]). Kafka
    /// sends that follower a StopReplica as well; here it stops fetching once the metadata
    /// shows it out of the ISR (`Broker::stops_fetching`).
    fn move_replicas_off(&mut self, id: u32) -> Vec<Change> {
        let registrations = &self.durable.registrations;
        let live: Vec<u32> = registrations
            .iter()
            .filter(|(_, r)| !r.fenced)
            .map(|(&b, _)| b)
            .collect();
        let shutting_down: Vec<u32> = registrations
            .iter()
            .filter(|(_, r)| !r.fenced && r.in_controlled_shutdown)
            .map(|(&b, _)| b)
            .collect();
        let mut changes = Vec::new();
        for topic in &mut self.durable.topics {
            let unclean_ok = topic.configs.unclean_leader_election_enable;
            let on_broker =
                |p: &&mut PartitionMetadata| p.replicas.len() > 1 && p.replicas.contains(&id);
            for p in topic.partitions.iter_mut().filter(on_broker) {
                let before = p.clone();
                let changed = if p.leader == Some(id) {
                    controlled_shutdown_leader(p, &shutting_down, &live)
                } else {
                    remove_replica_from_isr(p, id, unclean_ok)
                };
                if changed {
                    changes.push(Change::new(&topic.name, before, p, "controlled_shutdown"));
                }
            }
        }
        changes
    }

    /// `shutdownBroker`'s answer (`partitionsRemaining`): the partitions with more than one
    /// replica that `id` still leads.
    fn replicated_partitions_led_by(&self, id: u32) -> Vec<serde_json::Value> {
        self.durable
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (&t.name, p)))
            .filter(|(_, p)| p.leader == Some(id) && p.replicas.len() > 1)
            .map(|(topic, p)| json!({"topic": topic, "partition": p.partition}))
            .collect()
    }

    fn leads_any(&self, id: u32) -> bool {
        self.durable
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .any(|p| p.leader == Some(id))
    }

    /// Kafka's `lowestActiveOffset`: the oldest metadata version any active broker (unfenced,
    /// not in controlled shutdown) has reported; none active is no limit.
    fn lowest_active_metadata_version(&self) -> u64 {
        self.durable
            .registrations
            .iter()
            .filter(|(_, r)| !r.fenced && !r.in_controlled_shutdown)
            .map(|(id, _)| self.liveness.get(id).map_or(0, |l| l.metadata_version))
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Fences at most one broker whose session has expired: the one silent longest, as
    /// Kafka's `maybeFenceOneStaleBroker` (KAFKA-13173, Kafka 3.0: "we will process fencing one
    /// at a time so that the effect of fencing each broker is visible to the system prior to
    /// processing the next one"). After a stall of the controller itself, every broker looks
    /// silent; the heartbeats that waited meanwhile renew the others before the next check.
    /// Returns the broker fenced.
    pub fn maybe_fence_one_stale_broker(&mut self, now: Instant) -> Option<u32> {
        let timeout = self.session_timeout();
        let (id, last_contact) = self
            .durable
            .registrations
            .iter()
            .filter(|(_, r)| !r.fenced)
            .filter_map(|(&id, _)| Some((id, self.contacts.last_contact(id)?)))
            .min_by_key(|&(_, t)| t)?;
        if now.saturating_duration_since(last_contact) <= timeout {
            return None;
        }
        if let Err(e) = self.fence(id, "session_timeout") {
            tracing::error!("fencing broker {id} failed: {e}");
        }
        Some(id)
    }
}

#[cfg(test)]
#[path = "liveness_tests.rs"]
mod tests;
