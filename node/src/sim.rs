//! An in-process simulation of one partition on three brokers, driving the real controller state
//! machine and the real replica code (real logs on disk) through random sequences of appends,
//! follower fetches, clock ticks (ISR shrinks), crashes and restarts, then healing everything.
//! Properties: with clean elections and the current protocol, a record once committed (below a
//! leader's HW) is never lost or changed, and after healing every replica's log is identical to
//! the leader's. With unclean election the logs still converge; with legacy-hw only the
//! per-step invariants (asserted inside the replica code) must hold.
//!
//! After every step, in every property, two of Kafka's rules are checked: a leader whose ISR is
//! below min.insync.replicas does not move HW (KAFKA-15583), and a leader never counts a smaller
//! ISR than the controller has: an AlterPartition whose reply was lost stays pending (and HW is
//! computed over the maximal ISR) until the controller's answer or newer metadata comes.

use crate::version::KafkaVersion;
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::api::*;
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

#[derive(Debug, Clone)]
enum Op {
    Append(u8),
    Fetch(u8),
    Tick,
    Crash(u8),
    Restart(u8),
    /// The reply to the next AlterPartition is lost; `true`: the controller applied it first.
    LoseAlterReply(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u8..6).prop_map(Op::Append),
        6 => (0u8..3).prop_map(Op::Fetch),
        2 => Just(Op::Tick),
        1 => (0u8..3).prop_map(Op::Crash),
        1 => (0u8..3).prop_map(Op::Restart),
        1 => any::<bool>().prop_map(Op::LoseAlterReply),
    ]
}

/// What the HW-freeze check remembers of the leader after a step: (broker, leader epoch, HW),
/// when its ISR was below min.insync.replicas.
type Frozen = Option<(u32, u32, u64)>;

struct Node {
    id: u32,
    dir: PathBuf,
    replica: Option<Replica>,
    hw_checkpoint: u64,
    incarnation: u64,
    /// The broker epoch the controller named in this incarnation's heartbeat answers, if any.
    broker_epoch: Option<u64>,
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
    /// Set by `Op::LoseAlterReply`: what happens to the next AlterPartition.
    lose_next_reply: Option<bool>,
    /// An AlterPartition whose reply was lost, to be sent again by its leader at the next tick.
    unanswered: Option<(usize, AlterProposal)>,
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
            .map(|id| Node {
                id,
                dir: tmp.path().join(format!("b{id}")).join("t-0"),
                replica: None,
                hw_checkpoint: 0,
                incarnation: 1,
                broker_epoch: None,
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
            lose_next_reply: None,
            unanswered: None,
            frozen: None,
        };
        for i in 0..BROKERS as usize {
            sim.heartbeat(i);
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

    /// Registers broker `i` (again): KRaft refuses a new incarnation while the old session is
    /// valid, so the sim lets that session expire (it does not wait in real time); then a second
    /// heartbeat, showing the metadata the first one returned, unfences it.
    fn heartbeat(&mut self, i: usize) {
        let id = self.nodes[i].id;
        let mut req = HeartbeatRequest {
            want_shutdown: false,
            broker_epoch: None,
            cluster_id: "sim".into(),
            broker_id: id,
            incarnation: self.nodes[i].incarnation,
            registers_fenced: self.version.rules().registers_fenced,
            metadata_version: 0,
            kafka_address: None,
        };
        let resp = match self.controller.heartbeat(req.clone()) {
            Err(e) if e.error == ErrorCode::DuplicateBrokerRegistration => {
                self.controller.fence(id, "session_timeout").unwrap();
                self.controller.heartbeat(req.clone()).unwrap()
            }
            other => other.unwrap(),
        };
        req.metadata_version = resp.metadata_version;
        req.broker_epoch = resp.broker_epoch;
        let first_epoch = resp.broker_epoch;
        let resp = self.controller.heartbeat(req).unwrap();
        self.nodes[i].broker_epoch = resp.broker_epoch.or(first_epoch);
    }

    fn open(&mut self, i: usize) {
        let node = &mut self.nodes[i];
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
        let Some(l) = self.leader() else {
            self.frozen = None;
            return;
        };
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

    fn append(&mut self, n: u8) {
        let Some(l) = self.leader() else { return };
        let values: Vec<String> = (0..n)
            .map(|_| {
                self.next_value += 1;
                format!("v{}", self.next_value)
            })
            .collect();
        let now = self.now_ms;
        let _ = self.nodes[l]
            .replica
            .as_mut()
            .unwrap()
            .append_as_leader(values, Acks::One, now);
        self.note_commits(l);
    }

    /// One fetch round trip from follower `f` to its leader, if both are up.
    fn fetch(&mut self, f: usize) {
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
        if self.nodes[i].replica.take().is_some() {
            let id = self.nodes[i].id;
            self.controller.fence(id, "session_timeout").unwrap();
            self.publish();
        }
    }

    /// Starts a crashed broker, or crash-restarts a live one faster than its session expires.
    fn restart(&mut self, i: usize) {
        self.nodes[i].replica = None;
        self.nodes[i].incarnation += 1;
        self.nodes[i].broker_epoch = None;
        self.open(i);
        self.heartbeat(i);
        self.publish();
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Append(n) => self.append(n),
            Op::Fetch(f) => self.fetch(f as usize),
            Op::Tick => self.tick(),
            Op::Crash(i) => self.crash(i as usize),
            Op::Restart(i) => self.restart(i as usize),
            Op::LoseAlterReply(applied) => self.lose_next_reply = Some(applied),
        }
        self.check_invariants();
    }

    /// Restarts every crashed broker and lets followers fetch until the ISR is whole and every
    /// log has the leader's end. A legacy-hw follower that exits during the heal (it found
    /// itself ahead of its leader) is started again, as the harness's heal starts every
    /// stopped node.
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn clean_elections_never_lose_a_committed_record_and_replicas_converge(ops in prop::collection::vec(op(), 1..80)) {
        let sim = run(&ops, KafkaVersion::V4_1, false, 1);
        let l = sim.leader().expect("a leader after healing");
        let leader_log = sim.log(l);
        let log: BTreeMap<u64, String> = leader_log.iter().cloned().collect();
        for (offset, value) in &sim.committed {
            prop_assert_eq!(log.get(offset), Some(value), "committed offset {} lost", offset);
        }
        for i in 0..sim.nodes.len() {
            prop_assert_eq!(&sim.log(i), &leader_log, "broker {} diverged", sim.nodes[i].id);
        }
    }

    #[test]
    fn with_unclean_election_replicas_still_converge(ops in prop::collection::vec(op(), 1..80)) {
        let sim = run(&ops, KafkaVersion::V4_1, true, 1);
        let l = sim.leader().expect("a leader after healing");
        let leader_log = sim.log(l);
        for i in 0..sim.nodes.len() {
            prop_assert_eq!(&sim.log(i), &leader_log, "broker {} diverged", sim.nodes[i].id);
        }
    }

    #[test]
    fn legacy_hw_keeps_its_per_step_invariants(ops in prop::collection::vec(op(), 1..80)) {
        let sim = run(&ops, KafkaVersion::V0_10_2, false, 1);
        prop_assert!(sim.leader().is_some());
    }

    #[test]
    fn with_min_insync_replicas_2_nothing_committed_is_lost(ops in prop::collection::vec(op(), 1..80)) {
        let sim = run(&ops, KafkaVersion::V4_1, false, 2);
        let l = sim.leader().expect("a leader after healing");
        let log: BTreeMap<u64, String> = sim.log(l).into_iter().collect();
        for (offset, value) in &sim.committed {
            prop_assert_eq!(log.get(offset), Some(value), "committed offset {} lost", offset);
        }
    }
}
