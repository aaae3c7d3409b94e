//! An in-process simulation of one partition on three brokers, driving the real controller state
//! machine and the real replica code (real logs on disk) through random sequences of appends,
//! follower fetches, clock ticks (ISR shrinks), crashes and restarts, then healing everything.
//! Properties: with clean elections and the current protocol, a record once committed (below a
//! leader's HW) is never lost or changed, and after healing every replica's log is identical to
//! the leader's. With unclean election the logs still converge; with legacy-hw only the
//! per-step invariants (asserted inside the replica code) must hold.

use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::api::*;
use crate::broker::replica::{AlterProposal, IsrSettings, LeaderFetch, Protocol, Replica, Role};
use crate::controller::{ControllerConfig, ControllerState};
use crate::events::EventLog;
use crate::storage::{Log, LogConfig};

const BROKERS: u32 = 3;
const LAG_MS: u64 = 300;

#[derive(Debug, Clone)]
enum Op {
    Append(u8),
    Fetch(u8),
    Tick,
    Crash(u8),
    Restart(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u8..6).prop_map(Op::Append),
        6 => (0u8..3).prop_map(Op::Fetch),
        2 => Just(Op::Tick),
        1 => (0u8..3).prop_map(Op::Crash),
        1 => (0u8..3).prop_map(Op::Restart),
    ]
}

struct Node {
    id: u32,
    dir: PathBuf,
    replica: Option<Replica>,
    hw_checkpoint: u64,
    incarnation: u64,
}

struct Sim {
    _tmp: tempfile::TempDir,
    controller: ControllerState,
    nodes: Vec<Node>,
    events: EventLog,
    protocol: Protocol,
    now_ms: u64,
    committed: BTreeMap<u64, String>,
    next_value: u64,
    /// Clean elections and the current protocol: committed records must survive.
    durable: bool,
}

impl Sim {
    fn new(protocol: Protocol, unclean: bool) -> Sim {
        let tmp = tempfile::tempdir().unwrap();
        let cdir = tmp.path().join("controller");
        std::fs::create_dir_all(&cdir).unwrap();
        let config = ControllerConfig {
            data: cdir.clone(),
            cluster_id: "sim".into(),
            session_timeout_ms: 1_000,
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
            })
            .collect();
        let mut sim = Sim {
            _tmp: tmp,
            controller,
            nodes,
            events,
            protocol,
            now_ms: 1_000,
            committed: BTreeMap::new(),
            next_value: 0,
            durable: !unclean && protocol == Protocol::Current,
        };
        for i in 0..BROKERS as usize {
            sim.heartbeat(i);
            sim.open(i);
        }
        let mut configs = BTreeMap::new();
        configs.insert("unclean.leader.election.enable".to_string(), json!(unclean));
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

    fn heartbeat(&mut self, i: usize) {
        let req = HeartbeatRequest {
            cluster_id: "sim".into(),
            broker_id: self.nodes[i].id,
            incarnation: self.nodes[i].incarnation,
            fence_previous_incarnation: self.protocol == Protocol::Current,
            metadata_version: 0,
        };
        self.controller.heartbeat(req).unwrap();
    }

    fn open(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let (log, _) = Log::open(&node.dir, LogConfig::default(), false).unwrap();
        node.replica = Some(Replica::new(
            "t",
            0,
            node.id,
            self.protocol,
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
        for node in &mut self.nodes {
            if let Some(r) = &mut node.replica {
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
        (r.role == Role::Leader).then_some(i)
    }

    fn log(&self, i: usize) -> Vec<(u64, String)> {
        let r = self.nodes[i].replica.as_ref().unwrap();
        r.log
            .read(0, u64::MAX, 100_000)
            .unwrap()
            .into_iter()
            .map(|r| (r.offset, r.value))
            .collect()
    }

    /// Records what the leader has committed; a committed offset must never change value.
    fn note_commits(&mut self, l: usize) {
        let r = self.nodes[l].replica.as_ref().unwrap();
        for rec in r.log.read(0, r.hw, 100_000).unwrap() {
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
            cluster_id: "sim".into(),
            broker_id: self.nodes[l].id,
            topic: "t".into(),
            partition: 0,
            leader_epoch: proposal.leader_epoch,
            partition_epoch: proposal.partition_epoch,
            new_isr: proposal.new_isr,
        };
        let result = self.controller.alter_partition(req);
        let now = self.now_ms;
        self.nodes[l]
            .replica
            .as_mut()
            .unwrap()
            .on_alter_result(result, now, &self.events);
        self.publish();
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
            .append_as_leader(values, Acks::Leader, now);
        self.note_commits(l);
    }

    /// One fetch round trip from follower `f` to its leader, if both are up.
    fn fetch(&mut self, f: usize) {
        let Some(r) = self.nodes[f].replica.as_ref() else {
            return;
        };
        let (Role::Follower, Some(leader_id)) = (r.role, r.leader) else {
            return;
        };
        let req = r.next_fetch("sim", 4, 0);
        let l = self.index_of(leader_id);
        let Some(leader) = self.nodes[l].replica.as_mut() else {
            return;
        };
        let now = self.now_ms;
        let answer = leader.leader_fetch(&req, now);
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
                follower
                    .follower_out_of_range(leader_id, e.log_end_offset.unwrap(), &self.events)
                    .unwrap();
            }
            Err(_) => {}
        }
    }

    fn tick(&mut self) {
        self.now_ms += 150;
        for node in &mut self.nodes {
            if let Some(r) = &node.replica {
                node.hw_checkpoint = r.hw;
            }
        }
        let Some(l) = self.leader() else { return };
        let settings = IsrSettings {
            lag_time_max_ms: LAG_MS,
            lag_max_messages: 0,
        };
        let now = self.now_ms;
        if let Some(p) = self.nodes[l]
            .replica
            .as_mut()
            .unwrap()
            .maybe_shrink_isr(now, settings)
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
        }
    }

    /// Restarts every crashed broker and lets followers fetch until the ISR is whole and every
    /// log has the leader's end.
    fn heal(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].replica.is_none() {
                self.restart(i);
            }
        }
        for _ in 0..500 {
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
        panic!("the cluster did not heal: {:?}", self.partition().0);
    }
}

fn run(ops: &[Op], protocol: Protocol, unclean: bool) -> Sim {
    let mut sim = Sim::new(protocol, unclean);
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
        let sim = run(&ops, Protocol::Current, false);
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
        let sim = run(&ops, Protocol::Current, true);
        let l = sim.leader().expect("a leader after healing");
        let leader_log = sim.log(l);
        for i in 0..sim.nodes.len() {
            prop_assert_eq!(&sim.log(i), &leader_log, "broker {} diverged", sim.nodes[i].id);
        }
    }

    #[test]
    fn legacy_hw_keeps_its_per_step_invariants(ops in prop::collection::vec(op(), 1..80)) {
        let sim = run(&ops, Protocol::LegacyHw, false);
        prop_assert!(sim.leader().is_some());
    }
}
