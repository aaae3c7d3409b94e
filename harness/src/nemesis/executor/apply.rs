//! Applying a concrete fault to the cluster: signals through the supervisor, delays, cuts and
//! message faults through the link proxies, and the power cut through the lazy mounts. It
//! updates the network faults in force ([`InForce`]) under the lock its caller holds, and
//! returns what it learnt for the record. It neither resolves roles (`resolve`), nor keeps the budget, nor records
//! (`executor`'s `mod.rs` does both).

use serde_json::{Map, Value};

use super::{InForce, Nemesis};
use crate::cluster::network::KafkaLinks;
use crate::cluster::node::Node;
use crate::cluster::proxy::Delay;
use crate::cluster::supervisor::{KillSignal, ProcState};
use crate::nemesis::fault::{Fault, LostOnBroker, PowerLossOutcome};

impl Nemesis {
    /// Applies a fault, with the faults in force locked; what it learnt while applying (a
    /// power loss's lost bytes) is returned for the record.
    pub(super) async fn apply(
        &self,
        fault: &Fault,
        in_force: &mut InForce,
    ) -> Result<Map<String, Value>, String> {
        match fault {
            Fault::PowerLoss { nodes } => Ok(self.power_loss(nodes).await?.into_detail()),
            other => self
                .apply_simple(other, in_force)
                .await
                .map(|()| Map::new()),
        }
    }

    /// The power cut: every target is SIGKILLed first (the cut stops them all at the same
    /// instant), then each lazy mount drops what it held unfsynced, then the brokers that were
    /// up are restarted on what survived. A broker that was already down loses its unsynced
    /// data too and stays down. A failed restart is recorded (`restart_error`) and left to the
    /// heal, which starts every broker that is down.
    async fn power_loss(&self, nodes: &[u32]) -> Result<PowerLossOutcome, String> {
        let mounts = self.cluster.mounts.as_ref().ok_or_else(|| {
            "power-loss needs --lazyfs (the brokers' data dirs on lazy mounts)".to_string()
        })?;
        let supervisor = &self.cluster.supervisor;
        let cut_at = std::time::Instant::now();
        let mut were_up = Vec::new();
        for &id in nodes {
            let node = Node::Broker(id);
            match supervisor.state(node).await {
                None => return Err(format!("no such broker {id}")),
                Some(ProcState::Running | ProcState::Paused) => {
                    supervisor.kill(node, KillSignal::Kill).await.map_err(err)?;
                    were_up.push(node);
                }
                Some(_) => {}
            }
        }
        let mut outcome = PowerLossOutcome::default();
        for &id in nodes {
            let reply = mounts.lose(id).await?;
            outcome.lost_bytes += reply.lost_bytes;
            outcome.lost_files += reply.lost_files;
            outcome.lost.push(LostOnBroker {
                node: id,
                lost_bytes: reply.lost_bytes,
                lost_files: reply.lost_files,
            });
        }
        let mut restart_errors = Vec::new();
        for node in were_up {
            if let Err(e) = supervisor.start(node).await {
                restart_errors.push(e.to_string());
            }
        }
        outcome.down_ms = cut_at.elapsed().as_millis() as u64;
        if !restart_errors.is_empty() {
            outcome.restart_error = Some(restart_errors.join("; "));
        }
        Ok(outcome)
    }

    async fn apply_simple(&self, fault: &Fault, in_force: &mut InForce) -> Result<(), String> {
        let supervisor = &self.cluster.supervisor;
        let network = &self.cluster.network;
        match fault {
            Fault::Kill { node, signal } => supervisor.kill(*node, *signal).await.map_err(err),
            Fault::Start { node } => supervisor.start(*node).await.map(|_| ()).map_err(err),
            Fault::Pause { node } => supervisor.pause(*node).await.map_err(err),
            Fault::Resume { node } => supervisor.resume(*node).await.map_err(err),
            Fault::Delay {
                links,
                delay,
                one_way,
            } => {
                if network.delay(*links, *delay, *one_way) == 0 {
                    return Err(format!("no link matches {links}"));
                }
                in_force.delay = self.delay_in_force();
                Ok(())
            }
            Fault::NetworkPartition { net, .. } => {
                // A network partition replaces the one in force.
                network.heal();
                let cut = network.cut(&net.cuts());
                if cut == 0 {
                    // Nothing is in force: the heal above removed the previous partition.
                    in_force.partition = None;
                    return Err("the partition cuts no link".to_string());
                }
                in_force.partition = Some(fault.clone());
                Ok(())
            }
            Fault::Heal => {
                network.heal();
                in_force.partition = None;
                // A heal removes every message fault too.
                network.clear_response_faults();
                in_force.responses.clear();
                Ok(())
            }
            Fault::Response { links, fault: rule } => {
                if !network.has_kafka_links() {
                    return Err(NO_KAFKA_LINKS.to_string());
                }
                if network.set_response_fault(*links, *rule) == 0 {
                    return Err(format!("no Kafka link to broker {links}"));
                }
                // It replaces the fault on the same links and API key.
                in_force.responses.retain(|f| f.heal() != fault.heal());
                in_force.responses.push(fault.clone());
                Ok(())
            }
            Fault::PassResponse { links, api_key } => {
                if !network.has_kafka_links() {
                    return Err(NO_KAFKA_LINKS.to_string());
                }
                network.pass_responses(*links, *api_key);
                in_force.responses.retain(|f| {
                    !matches!(f, Fault::Response { links: l, fault }
                        if fault.api_key == *api_key && (*links == KafkaLinks::All || l == links))
                });
                Ok(())
            }
            Fault::PowerLoss { .. } => unreachable!("applied by power_loss"),
        }
    }

    /// The latency some link has now, if any (the first found: every delay is healed at once).
    fn delay_in_force(&self) -> Option<Delay> {
        self.cluster.network.links().find_map(|(_, link)| {
            let c = link.control();
            [c.forward, c.backward]
                .into_iter()
                .find(|d| *d != Delay::NONE)
        })
    }
}

/// Why a message fault cannot apply to a run whose clients speak HTTP (the options refuse it
/// before a run starts; this guards the executor itself).
const NO_KAFKA_LINKS: &str =
    "message faults need Kafka-aware links (--client kafka, or a system file's system)";

fn err(error: impl std::fmt::Display) -> String {
    error.to_string()
}
