//! An in-process simulation of one partition on three brokers, driving the real controller state
//! machine and the real replica code (real logs on disk) through random sequences of appends,
//! follower fetches, clock ticks (ISR shrinks), crashes (SIGKILL), clean stops (SIGTERM: a
//! controlled shutdown and the clean-shutdown marker with the broker epoch), restarts, lost
//! AlterPartition replies and follower fetches held in the network and released late, then
//! healing everything. The KRaft properties run under Kafka 4.1 (Eligible Leader Replicas, an
//! unclean shutdown leaves ISR and ELR) and 3.7 (neither), picked per case; legacy-hw under
//! 0.10.2. Properties: with clean elections and the current protocol, a record once committed
//! (below a leader's HW) is never lost or changed, and after healing every replica's log is
//! identical to the leader's. With unclean election the logs still converge; with legacy-hw only
//! the per-step invariants must hold.
//!
//! After every step these rules are checked (`check_invariants`), each where its version has it:
//! - a leader whose ISR is below min.insync.replicas does not move HW (KAFKA-15583);
//! - a leader never counts a smaller ISR than the controller has: an AlterPartition whose reply
//!   was lost stays pending (and HW is computed over the maximal ISR) until the controller's
//!   answer or newer metadata comes;
//! - (a) while the run is durable (clean elections so far, the current protocol), every committed
//!   offset is, with its value, on some member of the controller's ISR ∪ ELR (KIP-966; without
//!   ELR, the ISR). A crash here loses no file, but Kafka's unclean shutdown may lose the page
//!   cache, so a copy an unclean-shutdown registration takes out of ISR and ELR counts as gone:
//!   an offset whose last copy in ISR ∪ ELR left that way is excused from then on;
//! - (b) with broker epochs (KIP-903), the broker epoch the leader last saw in an ISR member's
//!   fetch is never older than that member's registration in the controller's metadata.

use crate::version::KafkaVersion;
use proptest::prelude::*;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use crate::api::*;
use crate::broker::clean_shutdown;
use crate::broker::replica::{
    AlterOutcome, AlterProposal, IsrSettings, LeaderFetch, OutOfRange, Registrations, Replica, Role,
};
use crate::controller::{ControllerConfig, ControllerState};
use crate::events::EventLog;
use crate::storage::{Log, LogConfig};

const BROKERS: u32 = 3;
const LAG_MS: u64 = 300;
const SETTINGS: IsrSettings = IsrSettings {
    lag_time_max_ms: LAG_MS,
    lag_max_messages: 0,
};
/// Heartbeats a stopping broker sends before it stops anyway (Kafka waits for the controller's
/// approval up to a deadline): want_shutdown, the other brokers' heartbeats, want_shutdown again.
const STOP_HEARTBEATS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Append(u8),
    Fetch(u8),
    Tick,
    /// SIGKILL: the process ends; its files stay as they are, and no clean-shutdown marker.
    Crash(u8),
    /// SIGTERM: a controlled shutdown, every log closed cleanly, and the broker epoch left in
    /// the clean-shutdown marker for the next process.
    Stop(u8),
    Restart(u8),
    /// The reply to the next AlterPartition is lost; `true`: the controller applied it first.
    LoseAlterReply(bool),
    /// The follower's next fetch is held in the network, unless one is already; the follower
    /// waits for its answer and sends no other. Healing releases it.
    HoldFetch(u8),
    /// The held fetch reaches the broker it was sent to, however late; its answer is lost.
    ReleaseFetch,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u8..6).prop_map(Op::Append),
        6 => (0u8..3).prop_map(Op::Fetch),
        2 => Just(Op::Tick),
        1 => (0u8..3).prop_map(Op::Crash),
        1 => (0u8..3).prop_map(Op::Stop),
        1 => (0u8..3).prop_map(Op::Restart),
        1 => any::<bool>().prop_map(Op::LoseAlterReply),
        1 => (0u8..3).prop_map(Op::HoldFetch),
        1 => Just(Op::ReleaseFetch),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..80)
}

/// The KRaft versions: 4.1 (ELR, unclean shutdown leaves ISR and ELR) and 3.7 (neither).
fn kraft_version() -> impl Strategy<Value = KafkaVersion> {
    prop_oneof![Just(KafkaVersion::V4_1), Just(KafkaVersion::V3_7)]
}

/// What the HW-freeze check remembers of the leader after a step: (broker, leader epoch, HW),
/// when its ISR was below min.insync.replicas.
type Frozen = Option<(u32, u32, u64)>;

struct Node {
    id: u32,
    /// The broker's data dir (its clean-shutdown marker); the partition's log is in `dir`.
    data: PathBuf,
    dir: PathBuf,
    replica: Option<Replica>,
    /// While the broker is down: its log's records, as its files hold them.
    offline_log: Option<BTreeMap<u64, String>>,
    hw_checkpoint: u64,
    incarnation: u64,
    /// The broker epoch the controller named in this incarnation's heartbeat answers, if any.
    broker_epoch: Option<u64>,
}

/// A follower fetch held in the network: the broker it was sent to, and the incarnation of
/// the follower that sent it (which waits for the answer while it runs).
struct Held {
    to: u32,
    from: usize,
    incarnation: u64,
    req: ReplicaFetchRequest,
}

struct Sim {
    _tmp: tempfile::TempDir,
    controller: ControllerState,
    nodes: Vec<Node>,
    events: EventLog,
    version: KafkaVersion,
    now_ms: u64,
    committed: BTreeMap<u64, String>,
    next_value: u64,
    /// Clean elections and the current protocol: committed records must survive.
    durable: bool,
    /// Some election so far was unclean (a last known leader, KIP-966): invariant (a) no longer
    /// holds from there on.
    unclean_elected: bool,
    /// Committed offsets whose last copy in ISR ∪ ELR left it by an unclean shutdown.
    excused: BTreeSet<u64>,
    /// Set by `Op::LoseAlterReply`: what happens to the next AlterPartition.
    lose_next_reply: Option<bool>,
    /// An AlterPartition whose reply was lost, to be sent again by its leader at the next tick.
    unanswered: Option<(usize, AlterProposal)>,
    /// A follower fetch held in the network.
    held: Option<Held>,
    frozen: Frozen,
}

impl Sim {
    fn new(version: KafkaVersion, unclean: bool, min_insync_replicas: u32) -> Sim {
        let tmp = tempfile::tempdir().unwrap();
        let cdir = tmp.path().join("controller");
        std::fs::create_dir_all(&cdir).unwrap();
        let config = ControllerConfig {
            data: cdir.clone(),
            cluster_id: "sim".into(),
            session_timeout_ms: 1_000,
            version,
        };
        let cevents = Arc::new(EventLog::open(&cdir, json!("controller")).unwrap());
        let controller = ControllerState::open(config, cevents).unwrap();
        let events = EventLog::open(tmp.path(), json!("sim")).unwrap();
        let nodes = (1..=BROKERS)
            .map(|id| {
                let data = tmp.path().join(format!("b{id}"));
                Node {
                    id,
                    dir: data.join("t-0"),
                    data,
                    replica: None,
                    offline_log: None,
                    hw_checkpoint: 0,
                    incarnation: 1,
                    broker_epoch: None,
                }
            })
            .collect();
        let mut sim = Sim {
            _tmp: tmp,
            controller,
            nodes,
            events,
            version,
            now_ms: 1_000,
            committed: BTreeMap::new(),
            next_value: 0,
            durable: !unclean && version.rules().leader_epoch_truncation,
            unclean_elected: false,
            excused: BTreeSet::new(),
            lose_next_reply: None,
            unanswered: None,
            held: None,
            frozen: None,
        };
        for i in 0..BROKERS as usize {
            std::fs::create_dir_all(&sim.nodes[i].data).unwrap();
            sim.heartbeat(i, None);
            sim.open(i);
        }
        let mut configs = BTreeMap::new();
        configs.insert("unclean.leader.election.enable".to_string(), json!(unclean));
        configs.insert(
            "min.insync.replicas".to_string(),
            json!(min_insync_replicas),
        );
        let req = CreateTopicRequest {
            name: "t".into(),
            partitions: 1,
            replication_factor: BROKERS as i64,
            configs,
        };
        sim.controller.create_topic(req).unwrap();
        sim.publish();
        sim
    }

    /// Registers broker `i` (again), naming `previous_broker_epoch` (what its clean-shutdown
    /// marker held). KRaft refuses a new incarnation while the old session is valid, so the sim
    /// lets that session expire first (it does not wait in real time); then a second heartbeat,
    /// showing the metadata the first one returned, unfences it.
    fn heartbeat(&mut self, i: usize, previous_broker_epoch: Option<u64>) {
        let id = self.nodes[i].id;
        let previous = self.controller.metadata().brokers;
        let previous = previous.iter().find(|b| b.id == id);
        if previous.is_some_and(|b| b.alive) {
            self.controller.fence(id, "session_timeout").unwrap();
            self.publish();
        }
        let unclean = self.version.rules().unclean_shutdown_leaves_isr
            && previous.is_some_and(|b| b.epoch.is_none() || b.epoch != previous_broker_epoch);
        let before = self.isr_and_elr();
        let mut req = HeartbeatRequest {
            want_shutdown: false,
            broker_epoch: None,
            previous_broker_epoch,
            cluster_id: "sim".into(),
            broker_id: id,
            incarnation: self.nodes[i].incarnation,
            registers_fenced: self.version.rules().registers_fenced,
            metadata_version: 0,
            kafka_address: None,
        };
        let resp = self.controller.heartbeat(req.clone()).unwrap();
        self.note_election();
        if unclean && before.contains(&id) {
            self.excuse_copies_lost_with(i);
        }
        req.metadata_version = resp.metadata_version;
        req.broker_epoch = resp.broker_epoch;
        let first_epoch = resp.broker_epoch;
        let resp = self.controller.heartbeat(req).unwrap();
        self.note_election();
        self.nodes[i].broker_epoch = resp.broker_epoch.or(first_epoch);
    }

    /// A heartbeat of live broker `i`'s current incarnation, with the metadata it has applied.
    fn renewal(&self, i: usize, want_shutdown: bool) -> HeartbeatRequest {
        let node = &self.nodes[i];
        HeartbeatRequest {
            want_shutdown,
            broker_epoch: node.broker_epoch,
            previous_broker_epoch: None,
            cluster_id: "sim".into(),
            broker_id: node.id,
            incarnation: node.incarnation,
            registers_fenced: self.version.rules().registers_fenced,
            metadata_version: self.controller.metadata().metadata_version,
            kafka_address: None,
        }
    }

    /// The controller's ISR ∪ ELR (empty before the topic exists).
    fn isr_and_elr(&self) -> BTreeSet<u32> {
        let topics = self.controller.metadata().topics;
        let Some(pm) = topics.first().map(|t| &t.partitions[0]) else {
            return BTreeSet::new();
        };
        pm.isr.iter().chain(&pm.elr).copied().collect()
    }

    /// Broker `i` just left ISR ∪ ELR for an unclean shutdown (Kafka's model: it may have lost
    /// its page cache). Every committed offset it held that no remaining member holds has lost
    /// its last copy there, and is excused from invariant (a).
    fn excuse_copies_lost_with(&mut self, i: usize) {
        let members = self.isr_and_elr();
        let logs: Vec<_> = members
            .iter()
            .map(|&b| self.records_of(self.index_of(b)))
            .collect();
        let own = self.records_of(i);
        for (offset, value) in &self.committed {
            let held_elsewhere = logs.iter().any(|log| log.get(offset) == Some(value));
            if own.get(offset) == Some(value) && !held_elsewhere {
                self.excused.insert(*offset);
            }
        }
    }

    /// The controller's partition, if its leader was ever elected uncleanly, ends invariant (a).
    fn note_election(&mut self) {
        let topics = self.controller.metadata().topics;
        if let Some(t) = topics.first() {
            self.unclean_elected |= t.partitions[0].unclean;
        }
    }

    fn open(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.offline_log = None;
        let (log, _) = Log::open(&node.dir, LogConfig::default(), false).unwrap();
        node.replica = Some(Replica::new(
            "t",
            0,
            node.id,
            self.version.rules(),
            SETTINGS,
            log,
            node.hw_checkpoint,
        ));
    }

    fn partition(&self) -> (PartitionMetadata, TopicConfigs) {
        let topic = self.controller.metadata().topics[0].clone();
        (topic.partitions[0].clone(), topic.configs)
    }

    /// Every live broker learns the controller's view (as its next heartbeat would).
    fn publish(&mut self) {
        self.note_election();
        let (pm, configs) = self.partition();
        let brokers = self.controller.metadata().brokers;
        for node in &mut self.nodes {
            if let Some(r) = &mut node.replica {
                r.set_registrations(Registrations::new(&brokers, node.broker_epoch));
                r.apply_metadata(&pm, &configs, self.now_ms, &self.events)
                    .unwrap();
            }
        }
    }

    fn index_of(&self, id: u32) -> usize {
        self.nodes.iter().position(|n| n.id == id).unwrap()
    }

    fn leader(&self) -> Option<usize> {
        let id = self.partition().0.leader?;
        let i = self.index_of(id);
        let r = self.nodes[i].replica.as_ref()?;
        (r.role() == Role::Leader).then_some(i)
    }

    fn log(&self, i: usize) -> Vec<(u64, String)> {
        let r = self.nodes[i].replica.as_ref().unwrap();
        r.log()
            .read(0, u64::MAX, 100_000)
            .unwrap()
            .into_iter()
            .map(|r| (r.offset, r.value))
            .collect()
    }

    /// Broker `i`'s records by offset: its live log, or its files while it is down.
    fn records_of(&self, i: usize) -> BTreeMap<u64, String> {
        match &self.nodes[i].offline_log {
            Some(log) => log.clone(),
            None => self.log(i).into_iter().collect(),
        }
    }

    /// Records what the leader has committed; a committed offset must never change value.
    fn note_commits(&mut self, l: usize) {
        let r = self.nodes[l].replica.as_ref().unwrap();
        for rec in r.log().read(0, r.hw(), 100_000).unwrap() {
            match self.committed.get(&rec.offset) {
                Some(v) if *v != rec.value && self.durable => {
                    panic!(
                        "committed offset {} changed from {v} to {}",
                        rec.offset, rec.value
                    )
                }
                Some(_) => {}
                None => {
                    self.committed.insert(rec.offset, rec.value);
                }
            }
        }
    }

    fn alter(&mut self, l: usize, proposal: AlterProposal) {
        let req = AlterPartitionRequest {
            broker_epochs: proposal.broker_epochs.clone(),
            cluster_id: "sim".into(),
            broker_id: self.nodes[l].id,
            topic: "t".into(),
            partition: 0,
            leader_epoch: proposal.leader_epoch,
            partition_epoch: proposal.partition_epoch,
            new_isr: proposal.new_isr.clone(),
        };
        let now = self.now_ms;
        if let Some(applied) = self.lose_next_reply.take() {
            if applied {
                let _ = self.controller.alter_partition(req);
            }
            let lost = ApiError::new(ErrorCode::RequestTimedOut, "the reply was lost");
            let replica = self.nodes[l].replica.as_mut().unwrap();
            let outcome = replica.on_alter_result(&proposal, Err(lost), now, &self.events);
            assert_eq!(outcome, AlterOutcome::Retry, "a lost reply is retried");
            self.unanswered = Some((l, proposal));
            // The brokers do not hear of the change yet: metadata travels with later steps.
            self.check_invariants();
            return;
        }
        let result = self.controller.alter_partition(req);
        self.nodes[l].replica.as_mut().unwrap().on_alter_result(
            &proposal,
            result,
            now,
            &self.events,
        );
        self.publish();
        // A step may change the ISR twice (a resend, then a shrink): check between the two.
        self.check_invariants();
    }

    /// The leader sends an unanswered AlterPartition again, if it is still pending there.
    fn resend_unanswered(&mut self) {
        let Some((l, proposal)) = self.unanswered.take() else {
            return;
        };
        let pending = self.nodes[l]
            .replica
            .as_ref()
            .and_then(|r| r.pending_isr().map(|p| p == proposal.new_isr.as_slice()));
        if pending == Some(true) {
            self.alter(l, proposal);
        }
    }

    /// Kafka's rules checked after every step (see the module comment).
    fn check_invariants(&mut self) {
        let (pm, configs) = self.partition();
        self.check_committed_on_isr_or_elr(&pm);
        let Some(l) = self.leader() else {
            self.frozen = None;
            return;
        };
        self.check_isr_broker_epochs(&pm, l);
        let r = self.nodes[l].replica.as_ref().unwrap();
        if r.leader_epoch() == Some(pm.leader_epoch) {
            let maximal = r.maximal_isr();
            assert!(
                pm.isr.iter().all(|b| maximal.contains(b)),
                "leader {} computes HW over {maximal:?} but the controller's ISR is {:?}",
                self.nodes[l].id,
                pm.isr
            );
        }
        let me = (self.nodes[l].id, r.current_epoch());
        if !r.is_under_min_isr() {
            self.frozen = None;
            return;
        }
        if let Some((id, epoch, hw)) = self.frozen {
            if (id, epoch) == me {
                assert_eq!(
                    r.hw(),
                    hw,
                    "HW moved while the ISR {:?} is below min.insync.replicas={}",
                    r.isr(),
                    configs.min_insync_replicas
                );
            }
        }
        self.frozen = Some((me.0, me.1, r.hw()));
    }

    /// Invariant (a): while durable, every committed offset not excused is on some member of
    /// ISR ∪ ELR with its value. It fails when a replica holding the only copies leaves ISR ∪
    /// ELR for anything but an unclean shutdown (say, a fenced replica that should have joined
    /// the ELR), or when HW counted a replica that did not have what it committed.
    fn check_committed_on_isr_or_elr(&self, pm: &PartitionMetadata) {
        if !self.durable || self.unclean_elected {
            return;
        }
        let members: BTreeSet<u32> = pm.isr.iter().chain(&pm.elr).copied().collect();
        let logs: Vec<_> = members
            .iter()
            .map(|&b| self.records_of(self.index_of(b)))
            .collect();
        for (offset, value) in &self.committed {
            assert!(
                self.excused.contains(offset)
                    || logs.iter().any(|log| log.get(offset) == Some(value)),
                "committed offset {offset} ({value}) is on no member of ISR {:?} ∪ ELR {:?}",
                pm.isr,
                pm.elr
            );
        }
    }

    /// Invariant (b), KIP-903: for every follower in the controller's ISR, the broker epoch the
    /// leader stored from its last fetch, when it stored one, is not older than the follower's
    /// registration. It fails when a previous incarnation's fetch is taken (Kafka's
    /// `Replica.updateFetchStateOrThrow` refuses it) or when the ISR keeps a member across a
    /// new registration.
    fn check_isr_broker_epochs(&self, pm: &PartitionMetadata, l: usize) {
        let r = self.nodes[l].replica.as_ref().unwrap();
        if !self.version.rules().broker_epochs || r.leader_epoch() != Some(pm.leader_epoch) {
            return;
        }
        let brokers = self.controller.metadata().brokers;
        for &f in pm.isr.iter().filter(|&&b| b != self.nodes[l].id) {
            let registered = brokers.iter().find(|b| b.id == f).and_then(|b| b.epoch);
            let seen = r.follower_state(f).and_then(|s| s.broker_epoch.known());
            if let (Some(seen), Some(registered)) = (seen, registered) {
                assert!(
                    seen >= registered,
                    "ISR member {f} last fetched from leader {} with broker epoch {seen}, older \
                     than its registration's {registered}",
                    self.nodes[l].id
                );
            }
        }
    }

    fn append(&mut self, n: u8) {
        let Some(l) = self.leader() else { return };
        let values: Vec<String> = (0..n)
            .map(|_| {
                self.next_value += 1;
                format!("v{}", self.next_value)
            })
            .collect();
        let now = self.now_ms;
        let _ =
            self.nodes[l]
                .replica
                .as_mut()
                .unwrap()
                .append_as_leader(values, Acks::One, now, None);
        self.note_commits(l);
    }

    /// Follower `f`'s next fetch is held in the network, addressed to its leader (one at a
    /// time: a second hold is a no-op).
    fn hold_fetch(&mut self, f: usize) {
        let Some(r) = self.nodes[f].replica.as_ref() else {
            return;
        };
        if let (Role::Follower, Some(to), None) = (r.role(), r.leader(), &self.held) {
            self.held = Some(Held {
                to,
                from: f,
                incarnation: self.nodes[f].incarnation,
                req: r.next_fetch("sim", 4, 0),
            });
        }
    }

    /// Whether follower `f`'s current incarnation waits for the answer to a held fetch. A
    /// follower has one fetch in flight per leader, over one connection, so it sends no other
    /// meanwhile; a later incarnation knows nothing of it.
    fn waits_for_held_fetch(&self, f: usize) -> bool {
        self.held
            .as_ref()
            .is_some_and(|h| h.from == f && h.incarnation == self.nodes[f].incarnation)
    }

    /// The held fetch reaches the broker it was sent to, which answers it as it is now (it may
    /// no longer lead, or may know the sender by a newer registration); the answer is lost.
    fn release_fetch(&mut self) {
        let Some(Held { to, req, .. }) = self.held.take() else {
            return;
        };
        let l = self.index_of(to);
        let now = self.now_ms;
        let Some(leader) = self.nodes[l].replica.as_mut() else {
            return;
        };
        if let Ok((_, Some(expand))) = leader.leader_fetch(&req, now, &self.events) {
            self.alter(l, expand);
        }
        if self.leader() == Some(l) {
            self.note_commits(l);
        }
    }

    /// One fetch round trip from follower `f` to its leader, if both are up.
    fn fetch(&mut self, f: usize) {
        if self.waits_for_held_fetch(f) {
            return;
        }
        let Some(r) = self.nodes[f].replica.as_ref() else {
            return;
        };
        let (Role::Follower, Some(leader_id)) = (r.role(), r.leader()) else {
            return;
        };
        let req = r.next_fetch("sim", 4, 0);
        let l = self.index_of(leader_id);
        let Some(leader) = self.nodes[l].replica.as_mut() else {
            return;
        };
        let now = self.now_ms;
        let answer = leader.leader_fetch(&req, now, &self.events);
        let follower = self.nodes[f].replica.as_mut().unwrap();
        match answer {
            Ok((LeaderFetch::Records(resp) | LeaderFetch::Empty(resp), expand)) => {
                follower
                    .follower_apply(leader_id, resp, &self.events)
                    .unwrap();
                if let Some(p) = expand {
                    self.alter(l, p);
                }
                self.note_commits(l);
            }
            Err(e) if e.error == ErrorCode::OffsetOutOfRange => {
                let action = follower
                    .follower_out_of_range(leader_id, e.log_end_offset.unwrap(), &self.events)
                    .unwrap();
                // A legacy-hw broker that may not truncate exits, as Kafka 0.10.2 does.
                if action == OutOfRange::Exit {
                    self.crash(f);
                }
            }
            Err(_) => {}
        }
    }

    fn tick(&mut self) {
        self.now_ms += 150;
        for node in &mut self.nodes {
            if let Some(r) = &node.replica {
                node.hw_checkpoint = r.hw();
            }
        }
        self.resend_unanswered();
        let Some(l) = self.leader() else { return };
        let now = self.now_ms;
        if let Some(p) = self.nodes[l]
            .replica
            .as_mut()
            .unwrap()
            .maybe_shrink_isr(now)
        {
            self.alter(l, p);
        }
        self.note_commits(l);
    }

    fn crash(&mut self, i: usize) {
        if self.nodes[i].replica.is_none() {
            return;
        }
        self.nodes[i].offline_log = Some(self.records_of(i));
        self.nodes[i].replica = None;
        let id = self.nodes[i].id;
        self.controller.fence(id, "session_timeout").unwrap();
        self.publish();
    }

    /// SIGTERM (Kafka's `BrokerServer.shutdown`): heartbeats with want_shutdown until the
    /// controller lets the broker go, the other brokers' heartbeats in between reporting the
    /// metadata that moved its leaderships; past [`STOP_HEARTBEATS`] it stops anyway and its
    /// session expires. Then its log is closed cleanly and its broker epoch written to the
    /// clean-shutdown marker, as `Broker::shutdown` does.
    fn stop(&mut self, i: usize) {
        if self.nodes[i].replica.is_none() {
            return;
        }
        let id = self.nodes[i].id;
        let mut approved = false;
        for _ in 0..STOP_HEARTBEATS {
            let resp = self.controller.heartbeat(self.renewal(i, true)).unwrap();
            self.publish();
            if resp.should_shut_down {
                approved = true;
                break;
            }
            for j in (0..self.nodes.len()).filter(|&j| j != i) {
                if self.nodes[j].replica.is_some() {
                    self.controller.heartbeat(self.renewal(j, false)).unwrap();
                }
            }
            self.publish();
        }
        if !approved {
            self.controller.fence(id, "session_timeout").unwrap();
            self.publish();
        }
        self.nodes[i].offline_log = Some(self.records_of(i));
        let node = &mut self.nodes[i];
        let mut replica = node.replica.take().unwrap();
        node.hw_checkpoint = replica.hw();
        replica.close_clean().unwrap();
        if let Some(epoch) = node.broker_epoch {
            clean_shutdown::write(&node.data, epoch).unwrap();
        }
    }

    /// Starts a stopped or crashed broker, or crash-restarts a live one faster than its session
    /// expires. It consumes its clean-shutdown marker and names the epoch it held.
    fn restart(&mut self, i: usize) {
        self.nodes[i].replica = None;
        self.nodes[i].incarnation += 1;
        self.nodes[i].broker_epoch = None;
        let previous_broker_epoch = clean_shutdown::take(&self.nodes[i].data).unwrap();
        self.open(i);
        self.heartbeat(i, previous_broker_epoch);
        self.publish();
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Append(n) => self.append(n),
            Op::Fetch(f) => self.fetch(f as usize),
            Op::Tick => self.tick(),
            Op::Crash(i) => self.crash(i as usize),
            Op::Stop(i) => self.stop(i as usize),
            Op::Restart(i) => self.restart(i as usize),
            Op::LoseAlterReply(applied) => self.lose_next_reply = Some(applied),
            Op::HoldFetch(f) => self.hold_fetch(f as usize),
            Op::ReleaseFetch => self.release_fetch(),
        }
        self.check_invariants();
    }

    /// Restarts every crashed or stopped broker, releases a held fetch (at once if its
    /// follower still waits for it, else once the ISR is whole again) and lets followers fetch
    /// until the ISR is whole and every log has the leader's end. A legacy-hw follower that
    /// exits during the heal (it found itself ahead of its leader) is started again, as the
    /// harness's heal starts every stopped node.
    fn heal(&mut self) {
        self.lose_next_reply = None;
        self.resend_unanswered();
        self.publish();
        for _ in 0..500 {
            for i in 0..self.nodes.len() {
                if self.nodes[i].replica.is_none() {
                    self.restart(i);
                }
            }
            // A running follower waiting for its held fetch's answer times out at last.
            if self
                .held
                .as_ref()
                .is_some_and(|h| self.waits_for_held_fetch(h.from))
            {
                self.release_fetch();
            }
            for f in 0..self.nodes.len() {
                self.fetch(f);
            }
            self.now_ms += 10;
            let Some(l) = self.leader() else { continue };
            let leo = self.nodes[l].replica.as_ref().unwrap().leo();
            let whole = self.partition().0.isr.len() == BROKERS as usize;
            if whole
                && self
                    .nodes
                    .iter()
                    .all(|n| n.replica.as_ref().unwrap().leo() == leo)
            {
                // A fetch of an incarnation that has since restarted arrives only now, once
                // the new one is back in the ISR: the leader must not take it.
                if self.held.is_some() {
                    self.release_fetch();
                    self.check_invariants();
                    continue;
                }
                // One more round so every follower also learns the final HW.
                for f in 0..self.nodes.len() {
                    self.fetch(f);
                }
                return;
            }
        }
        if !self.version.rules().leader_epoch_truncation && self.halted_ahead_of_leader() {
            return;
        }
        panic!("the cluster did not heal: {:?}", self.partition().0);
    }

    /// Kafka 0.10.2 cannot heal one case: a broker whose log runs past its leader's (it took
    /// acknowledged writes the clean election lost) halts each time it fetches, since it may not
    /// truncate with unclean election off ("Halting because log truncation is not allowed"),
    /// and stays down until an operator acts. True when every broker outside the ISR is such a
    /// halted broker.
    fn halted_ahead_of_leader(&self) -> bool {
        let Some(l) = self.leader() else {
            return false;
        };
        let leader_leo = self.nodes[l].replica.as_ref().unwrap().leo();
        let isr = self.partition().0.isr;
        self.nodes.iter().filter(|n| !isr.contains(&n.id)).all(|n| {
            n.replica.is_none()
                && Log::open(&n.dir, LogConfig::default(), true)
                    .is_ok_and(|(log, _)| log.log_end_offset() > leader_leo)
        })
    }
}

fn run(ops: &[Op], version: KafkaVersion, unclean: bool, min_insync_replicas: u32) -> Sim {
    let mut sim = Sim::new(version, unclean, min_insync_replicas);
    for op in ops {
        sim.step(op);
    }
    sim.heal();
    sim
}

/// After healing: every committed record is on the leader with its value.
fn assert_nothing_committed_lost(sim: &Sim) {
    let l = sim.leader().expect("a leader after healing");
    let log: BTreeMap<u64, String> = sim.log(l).into_iter().collect();
    for (offset, value) in &sim.committed {
        assert_eq!(
            log.get(offset),
            Some(value),
            "committed offset {offset} lost"
        );
    }
}

/// After healing: every replica's log is the leader's.
fn assert_converged(sim: &Sim) {
    let l = sim.leader().expect("a leader after healing");
    let leader_log = sim.log(l);
    for i in 0..sim.nodes.len() {
        assert_eq!(
            sim.log(i),
            leader_log,
            "broker {} diverged",
            sim.nodes[i].id
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn clean_elections_never_lose_a_committed_record_and_replicas_converge(
        version in kraft_version(),
        ops in ops(),
    ) {
        let sim = run(&ops, version, false, 1);
        assert_nothing_committed_lost(&sim);
        assert_converged(&sim);
    }

    #[test]
    fn with_unclean_election_replicas_still_converge(version in kraft_version(), ops in ops()) {
        let sim = run(&ops, version, true, 1);
        assert_converged(&sim);
    }

    #[test]
    fn legacy_hw_keeps_its_per_step_invariants(ops in ops()) {
        let sim = run(&ops, KafkaVersion::V0_10_2, false, 1);
        prop_assert!(sim.leader().is_some());
    }

    #[test]
    fn with_min_insync_replicas_2_nothing_committed_is_lost(
        version in kraft_version(),
        ops in ops(),
    ) {
        let sim = run(&ops, version, false, 2);
        assert_nothing_committed_lost(&sim);
    }
}

/// The cases proptest shrank to before the operations grew (clean stops, held fetches) and the
/// version became a parameter: their seeds in `proptest-regressions/sim.txt` no longer generate
/// them, so they are kept here as written, and run under both KRaft versions.
#[test]
fn the_cases_found_before_still_pass() {
    use Op::*;
    #[rustfmt::skip]
    let found = [
        vec![Restart(0), Append(1), Append(1), Fetch(0), Crash(1), Fetch(2), Crash(0)],
        vec![
            Crash(1), Append(5), Fetch(2), Restart(0), Fetch(0), Append(1),
            LoseAlterReply(false), Fetch(0), Tick,
        ],
        vec![
            Append(1), Append(1), Append(3), Append(1), Tick, Tick, Tick, Append(1), Fetch(2),
            Fetch(2), LoseAlterReply(true), Fetch(2),
        ],
        vec![
            Restart(2), Append(1), LoseAlterReply(false), Crash(1), Fetch(0), Append(1),
            Fetch(2), Fetch(2), Restart(2), Tick, Crash(0),
        ],
        vec![
            Append(4), Fetch(1), Crash(0), Append(4), Restart(0), Tick, Tick, Tick, Append(4),
            Append(2), LoseAlterReply(false), Fetch(0), Fetch(0), Fetch(0), Append(3), Tick,
            Fetch(0), Fetch(0), Restart(0), Tick, Crash(1), Append(4), Append(2),
        ],
    ];
    for ops in &found {
        for version in [KafkaVersion::V4_1, KafkaVersion::V3_7] {
            for min_insync_replicas in [1, 2] {
                let sim = run(ops, version, false, min_insync_replicas);
                assert_nothing_committed_lost(&sim);
                if min_insync_replicas == 1 {
                    assert_converged(&sim);
                }
            }
        }
    }
}
