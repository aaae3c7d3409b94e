//! Client operations that a schedule performs itself, beside the workload's clients: `produce
//! N` (sent one after another from the schedule's own client process and recorded in the
//! history like every send) and the waits (`wait 2s`, `wait leader 2 on t/0`, `wait isr 1`),
//! which poll the controller's metadata with a deadline (the waits are the cluster's, shared with
//! the fault plans). They are recorded (`record`) like faults; they inject nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_checker::history::Acks;
use faultline_workloads::client::Metadata;
use faultline_workloads::workload::send_one;
use faultline_workloads::{ClientContext, ClientProcess};
use serde_json::json;
use tokio::time::Instant;

use crate::cluster::{default_partition, Cluster, TopicSpec, POLL_INTERVAL};
use crate::nemesis::record::Recorder;
use crate::nemesis::schedule::{Action, TopicPartition};

/// How long a `produce` step waits for a leader before giving up on its remaining records.
const PRODUCE_NO_LEADER_DEADLINE: Duration = Duration::from_secs(10);

pub struct ScheduleClient {
    pub cluster: Arc<Cluster>,
    pub clients: Arc<ClientContext>,
    pub recorder: Arc<Recorder>,
    pub topics: Vec<TopicSpec>,
    pub default_acks: Acks,
    /// The schedule's own client process for `produce` steps.
    pub process: Mutex<ClientProcess>,
}

impl ScheduleClient {
    /// Performs a `produce` or `wait` step. Only a history write error is returned.
    pub async fn perform(&self, action: &Action) -> std::io::Result<()> {
        let at = self.recorder.since_start();
        match action {
            Action::Produce { count, acks, to } => {
                self.produce(at, *count, *acks, to.clone()).await
            }
            _ => self.wait(at, action).await,
        }
    }

    async fn produce(
        &self,
        at: Duration,
        count: u32,
        acks: Option<Acks>,
        to: Option<TopicPartition>,
    ) -> std::io::Result<()> {
        let acks = acks.unwrap_or(self.default_acks);
        let tp = default_partition(&self.topics, &to);
        let mut process = *self.process.lock().unwrap();
        let mut sent = 0;
        let mut no_leader_since: Option<Instant> = None;
        while sent < count {
            match send_one(&self.clients, &mut process, &tp.topic, tp.partition, acks).await? {
                Some(_) => {
                    sent += 1;
                    no_leader_since = None;
                }
                None => {
                    let since = *no_leader_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > PRODUCE_NO_LEADER_DEADLINE {
                        break;
                    }
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
            }
        }
        *self.process.lock().unwrap() = process;
        let action = Action::Produce {
            count,
            acks: Some(acks),
            to: Some(tp),
        };
        let error = (sent < count).then(|| format!("no leader: sent {sent} of {count}"));
        self.recorder.log_step(at, &action, error.as_deref());
        Ok(())
    }

    async fn wait(&self, at: Duration, action: &Action) -> std::io::Result<()> {
        let started = Instant::now();
        let (mut value, error) = match action {
            Action::Wait(d) => {
                tokio::time::sleep(*d).await;
                (json!({ "until": "time" }), None)
            }
            Action::WaitLeader { node, on, timeout } => {
                let tp = default_partition(&self.topics, on);
                let deadline = started + *timeout;
                let reached = match node {
                    Some(node) => {
                        let leads = |m: &Metadata| {
                            m.partition(&tp.topic, tp.partition).and_then(|p| p.leader)
                                == Some(*node)
                        };
                        self.cluster.wait_for(deadline, leads).await
                    }
                    None => self.cluster.wait_new_leader(&tp, deadline).await,
                };
                let value = json!({ "until": "leader", "node": node, "topic": tp.topic, "partition": tp.partition });
                (value, reached.err().map(|_| "timed out".to_string()))
            }
            Action::WaitIsr { size, on, timeout } => {
                let tp = default_partition(&self.topics, on);
                let reached = self.cluster.wait_isr(&tp, *size, started + *timeout).await;
                let value = json!({ "until": "isr", "size": size, "topic": tp.topic, "partition": tp.partition });
                (value, reached.err().map(|_| "timed out".to_string()))
            }
            other => (
                json!({ "step": other.to_string() }),
                Some(format!("`{other}` is not a client operation")),
            ),
        };
        value["waited_ms"] = json!(started.elapsed().as_millis() as u64);
        self.recorder.log_step(at, action, error.as_deref());
        self.recorder.record("wait", value, error)
    }
}
