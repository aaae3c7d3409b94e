//! One run of `faultline test`, phase by phase (design.md "A run"): setup, chaos, heal,
//! recovery, final read, stop and collect, check. Whatever happens in the middle — an error or
//! an interrupt — the run ends by healing every fault and stopping every node.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use faultline_checker::history::{OpType, Process, TestConfig};
use faultline_workloads::{ClientContext, ClientProcess, HistoryWriter, NodeClient, WorkloadSpec};
use rand::SeedableRng;
use serde_json::{json, Map};
use tokio::sync::watch;

use crate::cli::TestOptions;
use crate::cluster::{unrecovered, Cluster, ClusterSpec, TopicSpec};
use crate::duration::format_duration;
use crate::nemesis::{Nemesis, NemesisParts};
use crate::store;

/// Set once by a signal handler to the signal's name (`SIGINT`, `SIGTERM`).
pub type Interrupt = watch::Receiver<Option<&'static str>>;

fn interrupted(interrupt: &Interrupt) -> Option<&'static str> {
    *interrupt.borrow()
}

/// The run was interrupted (Ctrl-C or SIGTERM); nodes were healed and stopped.
#[derive(Debug, thiserror::Error)]
#[error("interrupted; the run's nodes were healed and stopped ({0})")]
pub struct Interrupted(pub PathBuf);

/// The slack given to clients to finish calls in flight when the chaos phase ends.
const FINAL_READ_DEADLINE: Duration = Duration::from_secs(30);

pub fn test_config(opts: &TestOptions, start_unix_ms: u64, cluster_id: &str) -> TestConfig {
    let mut extra = Map::new();
    extra.insert(
        "node_bin".into(),
        json!(opts.node_bin.display().to_string()),
    );
    extra.insert("cluster_id".into(), json!(cluster_id));
    extra.insert(
        "kill_signal".into(),
        json!(opts.nemesis.kill_signal.as_str()),
    );
    let targets: Vec<&str> = opts.nemesis.targets.iter().map(|t| t.as_str()).collect();
    extra.insert("nemesis_targets".into(), json!(targets));
    extra.insert(
        "request_timeout_ms".into(),
        json!(opts.request_timeout.as_millis() as u64),
    );
    extra.insert(
        "recovery_timeout_ms".into(),
        json!(opts.recovery_timeout.as_millis() as u64),
    );
    extra.insert("node_args".into(), json!(opts.node_args));
    extra.insert("harness_version".into(), json!(env!("CARGO_PKG_VERSION")));
    TestConfig {
        name: opts.name.clone(),
        seed: opts.seed,
        start_unix_ms,
        nodes: opts.nodes,
        topics: vec![opts.topic.clone()],
        partitions: opts.partitions,
        replication_factor: opts.replication_factor,
        acks: opts.acks,
        min_insync_replicas: opts.min_insync_replicas,
        unclean_leader_election: opts.unclean_leader_election,
        replica_lag_time_max_ms: opts.replica_lag_time_max_ms,
        replication_protocol: opts.replication_protocol.clone(),
        workload: opts.workload.as_str().to_string(),
        nemesis: if opts.schedule.is_some() {
            vec!["schedule".to_string()]
        } else {
            opts.nemesis
                .kinds
                .iter()
                .map(|k| k.as_str().to_string())
                .collect()
        },
        nemesis_interval_ms: opts.nemesis.interval.as_millis() as u64,
        max_faulty: opts.nemesis.max_faulty,
        time_limit_ms: opts.time_limit.as_millis() as u64,
        rate: opts.rate,
        concurrency: opts.concurrency,
        schedule: opts
            .schedule
            .as_ref()
            .map(|(path, _)| path.display().to_string()),
        extra,
    }
}

fn say(message: impl AsRef<str>) {
    crate::progress::say(message);
}

/// Runs one test and returns the verdict's exit code.
pub async fn run_test(opts: TestOptions, interrupt: Interrupt) -> anyhow::Result<i32> {
    let start = Instant::now();
    let start_time = SystemTime::now();
    let start_unix_ms = store::unix_ms(start_time);
    let cluster_id = format!("faultline-{:x}-{start_unix_ms:x}", opts.seed);
    let run_dir = store::create_run_dir(&opts.store, &opts.name, start_time)?;
    store::write_test_config(&run_dir, &test_config(&opts, start_unix_ms, &cluster_id))?;
    say(format!("seed {} — run {}", opts.seed, run_dir.display()));
    crate::progress::start(&run_dir, opts.time_limit);
    let history = Arc::new(
        HistoryWriter::create(&run_dir.join("history.jsonl"), start).context("creating history")?,
    );
    let spec = ClusterSpec {
        node_bin: opts.node_bin.clone(),
        run_dir: run_dir.clone(),
        brokers: opts.nodes,
        cluster_id,
        replica_lag_time_max_ms: opts.replica_lag_time_max_ms,
        replication_protocol: opts.replication_protocol.clone(),
        seed: opts.seed,
        broker_args: opts.node_args.clone(),
    };
    let cluster = tokio::select! {
        cluster = Cluster::start(spec) => match cluster {
            Ok(cluster) => Arc::new(cluster),
            Err(error) => {
                record_abort(&history, &format!("setup failed: {error:#}"));
                return Err(error);
            }
        },
        _ = wait_interrupt(interrupt.clone()) => {
            let signal = interrupted(&interrupt).unwrap_or("a signal");
            record_abort(&history, &format!("interrupted by {signal} during setup"));
            return Err(Interrupted(run_dir).into());
        }
    };
    say(format!(
        "cluster up: controller {} and {} brokers",
        cluster.controller_addr, opts.nodes
    ));
    let run = Run {
        opts,
        run_dir,
        cluster,
        history,
    };
    run.execute(interrupt).await
}

async fn wait_interrupt(mut interrupt: Interrupt) {
    let _ = interrupt.wait_for(|i| i.is_some()).await;
}

/// Marks a run that stopped early (docs/history.md, `abort`): the checker then reports it
/// `unknown`, never `valid`.
fn record_abort(history: &HistoryWriter, why: &str) {
    let result = history.append(
        Process::Named("harness".to_string()),
        OpType::Info,
        "abort",
        json!({}),
        Some(why.to_string()),
    );
    if let Err(error) = result {
        say(format!(
            "could not record the abort in the history: {error}"
        ));
    }
}

struct Run {
    opts: TestOptions,
    run_dir: PathBuf,
    cluster: Arc<Cluster>,
    history: Arc<HistoryWriter>,
}

impl Run {
    fn topics(&self) -> Vec<TopicSpec> {
        vec![TopicSpec {
            name: self.opts.topic.clone(),
            partitions: self.opts.partitions,
            replication_factor: self.opts.replication_factor,
            min_insync_replicas: self.opts.min_insync_replicas,
            unclean_leader_election: self.opts.unclean_leader_election,
        }]
    }

    fn workload_spec(&self) -> WorkloadSpec {
        WorkloadSpec {
            kind: self.opts.workload,
            topics: vec![self.opts.topic.clone()],
            partitions: self.opts.partitions,
            acks: self.opts.acks,
            rate: self.opts.rate,
            concurrency: self.opts.concurrency,
        }
    }

    async fn execute(self, interrupt: Interrupt) -> anyhow::Result<i32> {
        let clients = Arc::new(ClientContext::new(
            NodeClient::new(self.opts.request_timeout),
            self.cluster.network.client_endpoints(),
            self.history.clone(),
        ));
        crate::progress::watch_clients(clients.clone());
        let spec = self.workload_spec();
        let schedule_log = self.create_schedule_log()?;
        let nemesis = Arc::new(Nemesis::new(NemesisParts {
            cluster: self.cluster.clone(),
            clients: clients.clone(),
            topics: self.topics(),
            default_acks: self.opts.acks,
            produce_process: ClientProcess {
                id: spec.schedule_process(),
                stride: spec.process_stride(),
            },
            schedule_log,
            rng: rand::rngs::StdRng::seed_from_u64(self.opts.seed),
        }));
        let outcome = self
            .chaos_and_read(&clients, &nemesis, interrupt.clone())
            .await;
        if let Some(signal) = interrupted(&interrupt) {
            record_abort(&self.history, &format!("interrupted by {signal}"));
        } else if let Err(error) = &outcome {
            record_abort(&self.history, &format!("{error:#}"));
        }
        // Whatever happened: heal, stop every node, collect what they left.
        crate::progress::phase(crate::progress::Phase::Stop);
        if let Err(e) = nemesis.heal_all().await {
            say(format!("recording the final heal failed: {e}"));
        }
        let stopping = Instant::now();
        let forced = self.cluster.stop().await;
        if !forced.is_empty() {
            let forced: Vec<String> = forced.iter().map(ToString::to_string).collect();
            say(format!(
                "nodes {} ignored SIGTERM for {} and were killed",
                forced.join(", "),
                format_duration(crate::supervisor::TERM_DEADLINE)
            ));
        }
        say(format!(
            "nodes stopped in {} ms",
            stopping.elapsed().as_millis()
        ));
        for problem in self.cluster.collect().await {
            say(problem);
        }
        say(format!("operations: {}", clients.counters.summary()));
        if interrupted(&interrupt).is_some() {
            return Err(Interrupted(self.run_dir.clone()).into());
        }
        outcome?;
        check(&self.run_dir, Failure::Harness)
    }

    /// `schedule.txt`, opened with a header saying how to replay it.
    fn create_schedule_log(&self) -> anyhow::Result<std::fs::File> {
        use std::io::Write;
        let path = self.run_dir.join("schedule.txt");
        let mut file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let args: Vec<String> = std::env::args().skip(1).collect();
        writeln!(
            file,
            "# The faults this run performed (seed {}), with times from the start of the chaos phase.\n\
             # Replay: faultline {} --schedule {}",
            self.opts.seed,
            args.join(" "),
            path.display()
        )?;
        Ok(file)
    }

    async fn chaos_and_read(
        &self,
        clients: &Arc<ClientContext>,
        nemesis: &Arc<Nemesis>,
        interrupt: Interrupt,
    ) -> anyhow::Result<()> {
        for topic in self.topics() {
            self.cluster.create_topic(&topic).await?;
        }
        self.chaos(clients, nemesis, interrupt.clone()).await?;
        if interrupted(&interrupt).is_some() {
            return Ok(());
        }
        crate::progress::phase(crate::progress::Phase::Heal);
        nemesis.heal_all().await?;
        let topics = self.topics();
        let deadline = tokio::time::Instant::now() + self.opts.recovery_timeout;
        let recovered = self
            .cluster
            .wait_for(deadline, |m| unrecovered(m, &topics).is_empty())
            .await;
        match recovered {
            Ok(_) => say("recovered: every partition has a leader and a full ISR"),
            Err(last) => {
                let missing = last.map(|m| unrecovered(&m, &topics)).unwrap_or_default();
                say(format!(
                    "not recovered within {}: {}",
                    format_duration(self.opts.recovery_timeout),
                    if missing.is_empty() {
                        "the controller did not answer".to_string()
                    } else {
                        missing.join("; ")
                    }
                ));
            }
        }
        crate::progress::phase(crate::progress::Phase::FinalRead);
        let deadline = tokio::time::Instant::now() + FINAL_READ_DEADLINE;
        let reads = self.cluster.final_read(&topics, deadline).await;
        let records: usize = reads.partitions.iter().map(|p| p.records.len()).sum();
        say(format!(
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
        interrupt: Interrupt,
    ) -> anyhow::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let (done_tx, mut done) = watch::channel(self.opts.schedule.is_none());
        nemesis.start_clock();
        crate::progress::phase(crate::progress::Phase::Chaos);
        let workload = (self.opts.concurrency > 0)
            .then(|| faultline_workloads::workload::spawn(clients.clone(), &self.workload_spec()));
        let task = {
            let nemesis = nemesis.clone();
            let schedule = self.opts.schedule.clone();
            let random = self.opts.nemesis.clone();
            tokio::spawn(async move {
                let result = match schedule {
                    Some((_, steps)) => nemesis.run_schedule(&steps, stopped).await,
                    None => nemesis.run_random(&random, stopped).await,
                };
                let _ = done_tx.send(true);
                result
            })
        };
        let time_limit = self.opts.time_limit;
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

/// Who is at fault when the checker cannot read a run: a run we just wrote is the harness's
/// failure (255); a directory the user named is a bad argument (254).
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    Harness,
    BadArgs,
}

/// Analyses a stored run, writes `results.json`, prints the summary; returns the exit code.
pub fn check(run_dir: &Path, failure: Failure) -> anyhow::Result<i32> {
    crate::progress::phase(crate::progress::Phase::Check);
    let results = match faultline_checker::check_run(run_dir) {
        Ok(results) => results,
        Err(error) => {
            return Err(match failure {
                Failure::Harness => anyhow::Error::new(error).context("checking the run"),
                Failure::BadArgs => crate::cli::BadArgs(error.to_string()).into(),
            })
        }
    };
    faultline_checker::write_results(run_dir, &results)
        .with_context(|| format!("writing results.json in {}", run_dir.display()))?;
    crate::progress::finish();
    crate::report::finish(run_dir, &results);
    Ok(results.exit_code())
}
