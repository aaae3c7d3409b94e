//! One run of `faultline test`, phase by phase (docs/harness.md "A run"): setup, chaos, heal,
//! recovery, final read, stop and collect, check. Whatever happens in the middle — an error or
//! an interrupt — the run ends by healing every fault and stopping every node.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use faultline_checker::history::{OpType, Process};
use faultline_workloads::{
    ClientContext, ClientProcess, HistoryWriter, KafkaClient, NodeClient, WorkloadSpec,
};
use rand::SeedableRng;
use serde_json::json;
use tokio::sync::watch;

use crate::cluster::final_read::final_read;
use crate::cluster::{unrecovered, Cluster, ClusterSpec, TopicSpec};
use crate::duration::format_duration;
use crate::nemesis::executor::Nemesis;
use crate::nemesis::generator;
use crate::nemesis::ops::ScheduleClient;
use crate::nemesis::packages::PlanContext;
use crate::nemesis::record::Recorder;
use crate::test::error::{bad, BadArgs, Failure};
use crate::test::observer::{Observer, Phase};
use crate::test::options::TestOptions;
use crate::test::store;
use faultline_checker::config::Client;

/// Set once by a signal handler to the signal's name (`SIGINT`, `SIGTERM`).
pub type Interrupt = watch::Receiver<Option<&'static str>>;

fn interrupted(interrupt: &Interrupt) -> Option<&'static str> {
    *interrupt.borrow()
}

/// The run was interrupted (Ctrl-C or SIGTERM); nodes were healed and stopped.
#[derive(Debug, thiserror::Error)]
#[error("interrupted; the run's nodes were healed and stopped ({0})")]
pub struct Interrupted(pub PathBuf);

/// How long the final read may take over every partition, retries included: a partition not
/// read whole by then is recorded with its last error, and final.json is marked incomplete.
const FINAL_READ_DEADLINE: Duration = Duration::from_secs(30);

/// Runs one test, tells `observer` how it goes, and returns the verdict's exit code.
pub async fn run_test(
    mut opts: TestOptions,
    interrupt: Interrupt,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<i32> {
    let say = |message: String| observer.say(&message);
    let start = Instant::now();
    let start_time = SystemTime::now();
    let start_unix_ms = store::unix_ms(start_time);
    let cluster_id = format!("faultline-{:x}-{start_unix_ms:x}", opts.config.seed);
    opts.config.start_unix_ms = start_unix_ms;
    opts.config.harness.cluster_id = cluster_id.clone();
    let run_dir = store::create_run_dir(&opts.store, &opts.config.name, start_time)?;
    store::write_test_config(&run_dir, &opts.config)?;
    say(format!(
        "seed {} — run {}",
        opts.config.seed,
        run_dir.display()
    ));
    observer.started(&run_dir, opts.time_limit());
    let history = Arc::new(
        HistoryWriter::create(&run_dir.join("history.jsonl"), start).context("creating history")?,
    );
    let spec = ClusterSpec {
        node_bin: opts.config.harness.node_bin.clone(),
        run_dir: run_dir.clone(),
        brokers: opts.config.nodes,
        cluster_id,
        replica_lag_time_max_ms: opts.config.replica_lag_time_max_ms,
        kafka_version: opts.config.kafka_version,
        seed: opts.config.seed,
        broker_args: opts.config.harness.node_args.clone(),
        kafka: opts.client() == Client::Kafka,
        lazyfs_bin: opts.lazyfs_bin.clone(),
        system: opts.system.clone(),
    };
    let cluster = tokio::select! {
        cluster = Cluster::start(spec) => match cluster {
            Ok(cluster) => Arc::new(cluster),
            Err(error) => {
                record_abort(&history, &format!("setup failed: {error:#}"), &*observer);
                // A system file's system that does not come up is the file's doing (a bad
                // command, a port in use): a bad input, named, rather than a harness failure.
                if let Some(system) = &opts.system {
                    return Err(bad(format!(
                        "system file {}: {error:#}",
                        system.path.display()
                    )));
                }
                return Err(error);
            }
        },
        _ = wait_interrupt(interrupt.clone()) => {
            let signal = interrupted(&interrupt).unwrap_or("a signal");
            record_abort(
                &history,
                &format!("interrupted by {signal} during setup"),
                &*observer,
            );
            return Err(Interrupted(run_dir).into());
        }
    };
    match (&opts.system, cluster.controller_addr) {
        (Some(system), _) => say(format!(
            "cluster up: {} {}, {} nodes",
            system.name, system.version, opts.config.nodes
        )),
        (None, Some(controller)) => say(format!(
            "cluster up: controller {controller} and {} brokers",
            opts.config.nodes
        )),
        (None, None) => {}
    }
    let run = Run {
        opts,
        run_dir,
        cluster,
        history,
        observer,
    };
    run.execute(interrupt).await
}

async fn wait_interrupt(mut interrupt: Interrupt) {
    let _ = interrupt.wait_for(|i| i.is_some()).await;
}

/// Marks a run that stopped early (docs/history.md, `abort`): the checker then reports it
/// `unknown`, never `valid`.
fn record_abort(history: &HistoryWriter, why: &str, observer: &dyn Observer) {
    let result = history.append(
        Process::Named("harness".to_string()),
        OpType::Info,
        "abort",
        json!({}),
        Some(why.to_string()),
    );
    if let Err(error) = result {
        observer.say(&format!(
            "could not record the abort in the history: {error}"
        ));
    }
}

struct Run {
    opts: TestOptions,
    run_dir: PathBuf,
    cluster: Arc<Cluster>,
    history: Arc<HistoryWriter>,
    observer: Arc<dyn Observer>,
}

impl Run {
    fn say(&self, message: impl AsRef<str>) {
        self.observer.say(message.as_ref());
    }

    fn topics(&self) -> Vec<TopicSpec> {
        vec![TopicSpec {
            name: self.opts.topic().to_string(),
            partitions: self.opts.config.partitions,
            replication_factor: self.opts.config.replication_factor,
            min_insync_replicas: self.opts.config.min_insync_replicas,
            unclean_leader_election: self.opts.config.unclean_leader_election,
        }]
    }

    fn workload_spec(&self) -> WorkloadSpec {
        WorkloadSpec {
            kind: self.opts.workload(),
            topics: self.opts.config.topics.clone(),
            partitions: self.opts.config.partitions,
            acks: self.opts.config.acks,
            rate: self.opts.config.rate,
            concurrency: self.opts.config.concurrency,
        }
    }

    async fn execute(self, interrupt: Interrupt) -> anyhow::Result<i32> {
        let mut clients = ClientContext::new(
            NodeClient::new(self.opts.request_timeout()),
            self.cluster.network.client_endpoints(),
            self.history.clone(),
        );
        if self.opts.client() == Client::Kafka {
            clients = clients.with_kafka(KafkaClient::new(self.opts.request_timeout()));
        }
        clients = clients.with_producer(self.opts.producer());
        let clients = Arc::new(clients);
        self.observer.clients(clients.clone());
        let spec = self.workload_spec();
        let recorder = Arc::new(Recorder::new(
            self.history.clone(),
            self.create_schedule_log()?,
        ));
        let nemesis = Arc::new(Nemesis::new(
            self.cluster.clone(),
            recorder.clone(),
            self.topics(),
            rand::rngs::StdRng::seed_from_u64(self.opts.config.seed),
        ));
        let schedule_client = Arc::new(ScheduleClient {
            cluster: self.cluster.clone(),
            clients: clients.clone(),
            recorder,
            topics: self.topics(),
            default_acks: self.opts.config.acks,
            process: std::sync::Mutex::new(ClientProcess {
                id: spec.schedule_process(),
                stride: spec.process_stride(),
            }),
        });
        let outcome = self
            .chaos_and_read(&clients, &nemesis, &schedule_client, interrupt.clone())
            .await;
        if let Some(signal) = interrupted(&interrupt) {
            record_abort(
                &self.history,
                &format!("interrupted by {signal}"),
                &*self.observer,
            );
        } else if let Err(error) = &outcome {
            record_abort(&self.history, &format!("{error:#}"), &*self.observer);
        }
        // Whatever happened: heal, stop every node, collect what they left.
        self.observer.phase(Phase::Stop);
        if let Err(e) = nemesis.heal_all().await {
            self.say(format!("recording the final heal failed: {e}"));
        }
        // What the nodes do from here (controlled shutdowns, their elections) is the harness's
        // doing, not the run's: the checker's probes end at this marker.
        let marked = self.history.append(
            Process::Named("harness".to_string()),
            OpType::Info,
            "stop",
            json!({}),
            None,
        );
        if let Err(error) = marked {
            self.say(format!("could not record the stop in the history: {error}"));
        }
        let stopping = Instant::now();
        let forced = self.cluster.stop().await;
        if !forced.is_empty() {
            let forced: Vec<String> = forced.iter().map(ToString::to_string).collect();
            self.say(format!(
                "nodes {} ignored SIGTERM for {} and were killed",
                forced.join(", "),
                format_duration(crate::cluster::supervisor::TERM_DEADLINE)
            ));
        }
        self.say(format!(
            "nodes stopped in {} ms",
            stopping.elapsed().as_millis()
        ));
        for problem in self.cluster.collect().await {
            self.say(problem);
        }
        // The mounts go last: the dumps above read the brokers' logs through them.
        for problem in self.cluster.unmount().await {
            self.say(problem);
        }
        self.say(format!("operations: {}", clients.counters.summary()));
        for line in self.cluster.network.message_fault_counts() {
            self.say(format!("message faults: {line}"));
        }
        if interrupted(&interrupt).is_some() {
            return Err(Interrupted(self.run_dir.clone()).into());
        }
        outcome?;
        check(&self.run_dir, Failure::Harness, &*self.observer)
    }

    /// `schedule.txt`, opened with a header saying how to replay it.
    fn create_schedule_log(&self) -> anyhow::Result<std::fs::File> {
        use std::io::Write;
        let path = self.run_dir.join("schedule.txt");
        let mut file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let replay = self.opts.replay_args(&path).join(" ");
        writeln!(
            file,
            "# The faults this run performed (seed {}), with times since the chaos phase started.\n\
             # Replay: faultline {replay}",
            self.opts.config.seed,
        )?;
        Ok(file)
    }

    async fn chaos_and_read(
        &self,
        clients: &Arc<ClientContext>,
        nemesis: &Arc<Nemesis>,
        schedule_client: &Arc<ScheduleClient>,
        interrupt: Interrupt,
    ) -> anyhow::Result<()> {
        for topic in self.topics() {
            self.cluster.create_topic(&topic).await?;
        }
        self.chaos(clients, nemesis, schedule_client, interrupt.clone())
            .await?;
        if interrupted(&interrupt).is_some() {
            return Ok(());
        }
        self.observer.phase(Phase::Heal);
        nemesis.heal_all().await?;
        let topics = self.topics();
        let deadline = tokio::time::Instant::now() + self.opts.recovery_timeout();
        let recovered = self
            .cluster
            .wait_for(deadline, |m| unrecovered(m, &topics).is_empty())
            .await;
        match recovered {
            Ok(_) => self.say("recovered: every partition has a leader and a full ISR"),
            Err(last) => {
                let missing = last.map(|m| unrecovered(&m, &topics)).unwrap_or_default();
                self.say(format!(
                    "not recovered within {}: {}",
                    format_duration(self.opts.recovery_timeout()),
                    if missing.is_empty() {
                        "the controller did not answer".to_string()
                    } else {
                        missing.join("; ")
                    }
                ));
            }
        }
        self.observer.phase(Phase::FinalRead);
        let deadline = tokio::time::Instant::now() + FINAL_READ_DEADLINE;
        let reads = final_read(&self.cluster, &topics, deadline).await;
        let records: usize = reads.partitions.iter().map(|p| p.records.len()).sum();
        self.say(format!(
            "final read: {records} records{}",
            if reads.complete { "" } else { " (incomplete)" }
        ));
        store::write_json(&self.run_dir.join("final.json"), &reads)
    }

    /// Clients and the nemesis run until the time limit has passed and the schedule (if any)
    /// is done, or until interrupted; then calls in flight complete.
    async fn chaos(
        &self,
        clients: &Arc<ClientContext>,
        nemesis: &Arc<Nemesis>,
        schedule_client: &Arc<ScheduleClient>,
        interrupt: Interrupt,
    ) -> anyhow::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let (done_tx, mut done) = watch::channel(self.opts.steps.is_none());
        schedule_client.recorder.start_clock();
        self.observer.phase(Phase::Chaos);
        let workload = (self.opts.config.concurrency > 0)
            .then(|| faultline_workloads::workload::spawn(clients.clone(), &self.workload_spec()));
        let task = {
            let nemesis = nemesis.clone();
            let schedule_client = schedule_client.clone();
            let schedule = self.opts.steps.clone();
            let plan_context = PlanContext {
                topics: self.topics(),
                brokers: self.cluster.brokers(),
                replica_lag_time_max_ms: self.opts.config.replica_lag_time_max_ms,
                interval: self.opts.nemesis.interval,
                kill_signal: self.opts.nemesis.kill_signal,
                targets: self.opts.nemesis.targets.clone(),
                legacy_hw: self.opts.config.kafka_version.hw_truncation(),
                controller: self.cluster.controller_addr.is_some(),
                services: self.cluster.services(),
            };
            let random = self.opts.nemesis.clone();
            tokio::spawn(async move {
                let result = match schedule {
                    Some(steps) => {
                        generator::run_schedule(&nemesis, &schedule_client, &steps, stopped).await
                    }
                    None => generator::run_random(nemesis, random, plan_context, stopped).await,
                };
                let _ = done_tx.send(true);
                result
            })
        };
        let time_limit = self.opts.time_limit();
        let chaos_over = async {
            tokio::time::sleep(time_limit).await;
            let _ = done.wait_for(|d| *d).await;
        };
        tokio::select! {
            _ = chaos_over => {}
            _ = wait_interrupt(interrupt) => {}
        }
        let _ = stop.send(true);
        let nemesis_result = task.await.context("the nemesis task panicked")?;
        if let Some(workload) = workload {
            workload
                .finish()
                .await
                .context("recording client operations")?;
        }
        nemesis_result.context("recording nemesis operations")?;
        Ok(())
    }
}

/// Analyses a stored run, writes `results.json`, hands the results to `observer` (which
/// writes the report); returns the exit code.
pub fn check(run_dir: &Path, failure: Failure, observer: &dyn Observer) -> anyhow::Result<i32> {
    observer.phase(Phase::Check);
    let finish = observer.checking(run_dir);
    let results = match faultline_checker::check_run(run_dir) {
        Ok(results) => results,
        Err(error) => {
            return Err(match failure {
                Failure::Harness => anyhow::Error::new(error).context("checking the run"),
                Failure::BadArgs => BadArgs(error.to_string()).into(),
            })
        }
    };
    faultline_checker::write_results(run_dir, &results)
        .with_context(|| format!("writing results.json in {}", run_dir.display()))?;
    observer.finish();
    finish(&results);
    Ok(results.exit_code())
}
