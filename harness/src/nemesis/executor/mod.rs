//! The executor (Jepsen's nemesis proper): applies a fault to the cluster and records it as it
//! is applied (`record`). It owns the network faults in force and the `--max-faulty` budget:
//! the random nemesis offers each fault through [`Nemesis::try_apply`], which checks and
//! applies it under one lock of that state, so two plans cannot both take the last faulty
//! broker; a schedule's steps and the heals go through [`Nemesis::apply_unbudgeted`], because a
//! written schedule may exceed the budget on purpose and a heal never adds a faulty broker.
//! Roles are resolved in `resolve`, faults applied in `apply`. It does not choose faults
//! (`generator`) or run client operations (`ops`). A failed action is recorded, never fatal.

mod apply;
mod resolve;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use serde_json::json;

use crate::cluster::network::LinkSelector;
use crate::cluster::node::Node;
use crate::cluster::proxy::Delay;
use crate::cluster::supervisor::{KillSignal, ProcState};
use crate::cluster::{Cluster, TopicSpec};
use crate::nemesis::fault::Fault;
use crate::nemesis::record::Recorder;
use crate::nemesis::schedule::Action;

/// The network faults in force, as the faults that put them there (process faults are the
/// supervisor's to know).
#[derive(Debug, Default)]
struct InForce {
    /// The network partition in force, always a [`Fault::NetworkPartition`]: a partition
    /// replaces the one before it, a heal removes it.
    partition: Option<Fault>,
    /// The latency some link has, if any link has one.
    delay: Option<Delay>,
    /// The message faults applied and not yet healed, each a [`Fault::Response`]: one
    /// replaces another on the same links and API key; a pass-response or a heal removes them.
    /// A counted one stays here once spent, so the heal phase records its heal.
    responses: Vec<Fault>,
}

/// What became of a fault offered within the budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Applied and recorded (with its error, if the action failed).
    Applied,
    /// Not applied, for this reason; recorded as skipped.
    Refused(String),
}

pub struct Nemesis {
    cluster: Arc<Cluster>,
    recorder: Arc<Recorder>,
    topics: Vec<TopicSpec>,
    rng: Mutex<StdRng>,
    /// Held while a fault is applied, and while a budgeted fault is checked and applied, so
    /// the check sees every fault applied before it.
    in_force: tokio::sync::Mutex<InForce>,
}

impl Nemesis {
    pub fn new(
        cluster: Arc<Cluster>,
        recorder: Arc<Recorder>,
        topics: Vec<TopicSpec>,
        rng: StdRng,
    ) -> Self {
        Nemesis {
            cluster,
            recorder,
            topics,
            rng: Mutex::new(rng),
            in_force: tokio::sync::Mutex::new(InForce::default()),
        }
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Records a fault step that was not applied, with the reason, in the history and in
    /// `schedule.txt` (as a comment-marked failure).
    pub fn record_skipped(&self, action: &Action, reason: &str) -> std::io::Result<()> {
        let at = self.recorder.since_start();
        self.recorder.log_step(at, action, Some(reason));
        self.recorder.record(
            action.f(),
            json!({ "step": action.to_string(), "skipped": true }),
            Some(reason.to_string()),
        )
    }

    /// Runs a closure with the run's seeded random source (shared with the generator, so one
    /// seed decides every choice of a run).
    pub fn rng<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        f(&mut self.rng.lock().unwrap())
    }

    /// Performs a schedule's fault step, outside the budget: resolves its roles, applies it and
    /// records it. A step that cannot be resolved (no leader, no live follower) is recorded
    /// with its error. Only a history write error is returned.
    pub async fn perform(&self, action: &Action) -> std::io::Result<()> {
        match self.resolve(action).await {
            Ok(faults) => {
                for fault in faults {
                    self.apply_unbudgeted(&fault).await?;
                }
                Ok(())
            }
            Err(error) => self.record_skipped(action, &error),
        }
    }

    /// Applies a concrete fault and records it, whatever the budget: for a schedule's steps
    /// (a written schedule may exceed `--max-faulty` on purpose) and for heals.
    pub async fn apply_unbudgeted(&self, fault: &Fault) -> std::io::Result<()> {
        let mut in_force = self.in_force.lock().await;
        self.apply_and_record(fault, &mut in_force).await
    }

    /// Applies a concrete fault and records it if it keeps within the budget: at most
    /// `max_faulty` brokers faulty after it, its target running, and no network partition of
    /// another's replaced. Otherwise records it as skipped and says why.
    pub async fn try_apply(&self, fault: &Fault, max_faulty: u32) -> std::io::Result<Admission> {
        let mut in_force = self.in_force.lock().await;
        if let Some(reason) = self.refusal(fault, max_faulty, &in_force).await {
            self.record_skipped(&Action::from(fault.clone()), &reason)?;
            return Ok(Admission::Refused(reason));
        }
        self.apply_and_record(fault, &mut in_force).await?;
        Ok(Admission::Applied)
    }

    async fn apply_and_record(&self, fault: &Fault, in_force: &mut InForce) -> std::io::Result<()> {
        let at = self.recorder.since_start();
        let (value, error) = match self.apply(fault, in_force).await {
            Ok(learnt) => (fault.value_with(learnt), None),
            Err(error) => (fault.value(), Some(error)),
        };
        self.recorder
            .log_step(at, &Action::from(fault.clone()), error.as_deref());
        self.recorder.record(fault.f(), value, error)
    }

    /// Why a fault must not be applied within the budget now, if it must not. A network
    /// partition never replaces one in force: the plan that cut it heals it (no plan cuts
    /// twice before it heals).
    async fn refusal(&self, fault: &Fault, max_faulty: u32, in_force: &InForce) -> Option<String> {
        let targets: Vec<Node> = match fault {
            Fault::Pause { node } | Fault::Kill { node, .. } => vec![*node],
            Fault::PowerLoss { nodes } => nodes.iter().map(|&id| Node::Broker(id)).collect(),
            _ => Vec::new(),
        };
        for node in targets {
            if self.cluster.supervisor.state(node).await != Some(ProcState::Running) {
                return Some(format!("{node} is not running"));
            }
        }
        if matches!(fault, Fault::NetworkPartition { .. }) && in_force.partition.is_some() {
            return Some("another network partition is in force".to_string());
        }
        let faulty = self.faulty_after(fault, in_force).await.len();
        if faulty > max_faulty as usize {
            return Some(format!(
                "{faulty} brokers would be faulty, over --max-faulty {max_faulty}"
            ));
        }
        None
    }

    /// The brokers that would be faulty (down, paused or cut off) after `fault`.
    async fn faulty_after(&self, fault: &Fault, in_force: &InForce) -> BTreeSet<u32> {
        let mut faulty: BTreeSet<u32> = self
            .nodes_in(|s| *s != ProcState::Running)
            .await
            .into_iter()
            .filter_map(Node::broker)
            .collect();
        faulty.extend(fault.faulty_brokers());
        // A network partition replaces the one in force; any other fault adds to it.
        if !matches!(fault, Fault::NetworkPartition { .. }) {
            faulty.extend(in_force.partition.iter().flat_map(Fault::faulty_brokers));
        }
        faulty
    }

    /// The faults in force now, each as a fault that would have put it there: a paused node
    /// as a pause, a node down as a kill (killed, cut by a power loss whose restart failed, or
    /// exited on its own), latency on any link as a delay of every link, the message faults,
    /// and the network partition (last: its heal removes message faults too).
    async fn faults_in_force(&self, in_force: &InForce) -> Vec<Fault> {
        let mut faults = Vec::new();
        for node in self.nodes_in(|s| *s == ProcState::Paused).await {
            faults.push(Fault::Pause { node });
        }
        for node in self.nodes_in(is_down).await {
            let signal = KillSignal::Kill;
            faults.push(Fault::Kill { node, signal });
        }
        if let Some(delay) = in_force.delay {
            let links = LinkSelector::All;
            faults.push(Fault::Delay {
                links,
                delay,
                one_way: false,
            });
        }
        faults.extend(in_force.responses.iter().cloned());
        faults.extend(in_force.partition.clone());
        faults
    }

    /// Heals everything, recording each heal. A node that ended without being killed is a
    /// finding in itself: it is named on stderr before it is restarted.
    pub async fn heal_all(&self) -> std::io::Result<()> {
        for (node, state) in self.cluster.supervisor.states().await {
            if let ProcState::Exited(status) = state {
                eprintln!(
                    "faultline: node {node} exited on its own ({status}); see {}",
                    crate::cluster::log_path(&self.cluster.spec.run_dir, node).display()
                );
            }
        }
        let mut in_force = self.in_force.lock().await;
        for fault in self.faults_in_force(&in_force).await {
            if let Some(heal) = fault.heal() {
                self.apply_and_record(&heal, &mut in_force).await?;
            }
        }
        Ok(())
    }

    pub async fn nodes_in(&self, pred: impl Fn(&ProcState) -> bool) -> Vec<Node> {
        let states = self.cluster.supervisor.states().await;
        states
            .into_iter()
            .filter(|(_, s)| pred(s))
            .map(|(n, _)| n)
            .collect()
    }
}

pub fn is_down(state: &ProcState) -> bool {
    matches!(state, ProcState::Down | ProcState::Exited(_))
}
