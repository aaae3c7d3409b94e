//! `faultline test --system FILE` (docs/systems.md): faultline-node described only by a system
//! file and reached only by Kafka's protocol runs valid, loses acknowledged writes in the
//! unclean-election scenario as it does natively, and bad system files exit 254 naming the key
//! or the node with no process left behind. The nodes are real processes started by `sh -c`.

use std::path::{Path, PathBuf};

use faultline_checker::history::OpType;

use crate::common::{count, node_bin, processes_mentioning, TestRun};

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// PATH with faultline-node's directory first: the example system file runs `faultline-node`.
fn path_with_node() -> String {
    let dir = node_bin().parent().unwrap().to_path_buf();
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn system_run(system: &Path, args: &[&str]) -> crate::common::Finished {
    let mut all = vec!["--system", system.to_str().unwrap()];
    all.extend_from_slice(args);
    let run = TestRun::new(&all);
    let output = run
        .command()
        .env("PATH", path_with_node())
        .output()
        .expect("running faultline");
    crate::common::Finished::from_output(run, output)
}

fn results(run_dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run_dir.join("results.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn faultline_node_by_its_system_file_runs_valid() {
    let system = repo_file("examples/systems/faultline-node.toml");
    let finished = system_run(
        &system,
        &[
            "--time-limit",
            "6s",
            "--nemesis",
            "kill,pause,partition",
            "--seed",
            "3",
        ],
    );
    finished.expect_valid();
    let history = finished.history();
    assert!(
        count(&history, "send", OpType::Ok) > 100,
        "too few acknowledged sends"
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(finished.run_dir.join("test.json")).unwrap())
            .unwrap();
    assert_eq!(config["system"]["name"], "faultline-node");
    assert_eq!(config["system"]["dump"], true);
    assert_eq!(config["extra"]["client"], "kafka");
    // Its dump command ran: the replicas' logs were checked, nothing is left unchecked.
    assert!(finished.run_dir.join("nodes/1/dump.jsonl").is_file());
    assert!(results(&finished.run_dir).get("not_checked").is_none());
}

#[test]
fn the_unclean_election_scenario_loses_acknowledged_writes_under_the_system_file() {
    let system = repo_file("examples/systems/faultline-node.toml");
    let schedule = repo_file("harness/scenarios/unclean-election.txt");
    let finished = system_run(
        &system,
        &[
            "--schedule",
            schedule.to_str().unwrap(),
            "--acks",
            "all",
            "--min-insync-replicas",
            "1",
            "--unclean-leader-election",
            "--seed",
            "1",
        ],
    );
    // Allowed by unclean.leader.election.enable, so the verdict is valid, but the loss is there.
    finished.expect_valid();
    let results = results(&finished.run_dir);
    let lost = results["anomaly_counts"]["lost"].as_u64().unwrap_or(0);
    assert!(lost > 0, "no acknowledged write lost: {results}");
}

/// faultline-node's brokers reach their controller, a `[[services]]` entry, through
/// `{service_link:controller}`: a partition can cut a broker from it, and the controller then
/// fences that broker (its heartbeats stop arriving) — the broker↔service link is real.
#[test]
fn a_partition_cuts_a_broker_from_a_service_it_reaches_through_a_link() {
    let system = repo_file("examples/systems/faultline-node.toml");
    let dir = tempfile::tempdir().unwrap();
    let schedule = dir.path().join("cut-2-from-controller.txt");
    std::fs::write(
        &schedule,
        "wait 2s\npartition groups 2 | service:controller\nwait 3s\nheal\nwait 2s\n",
    )
    .unwrap();
    let finished = system_run(&system, &["--schedule", schedule.to_str().unwrap()]);
    finished.expect_valid();
    let history = finished.history();
    let partition = crate::common::nemesis_ops(&history)
        .into_iter()
        .find(|op| op.f == "partition")
        .expect("the partition step ran");
    // A step that cut no link would carry an error ("the partition cuts no link").
    assert!(partition.error.is_none(), "{:?}", partition.error);
    let text = serde_json::to_string(&partition.value).unwrap();
    assert!(text.contains("service:controller"), "{text}");
    // The controller (its data dir is the service's) fenced broker 2, and no other, for
    // silence (at the end every broker leaves by controlled shutdown, a different reason).
    let events = std::fs::read_to_string(finished.run_dir.join("services/controller/events.jsonl"))
        .expect("the controller's events");
    let fenced: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["type"] == "broker_fenced" && e["reason"] == "session_timeout")
        .collect();
    assert!(
        fenced.iter().any(|e| e["broker"] == 2),
        "broker 2 was not fenced while cut from its controller: {fenced:?}"
    );
    assert!(fenced.iter().all(|e| e["broker"] == 2), "{fenced:?}");
    // The replay line and the recorded schedule name the service as written.
    let recorded = std::fs::read_to_string(finished.run_dir.join("schedule.txt")).unwrap();
    assert!(
        recorded.contains("partition groups 2 | service:controller"),
        "{recorded}"
    );
}

/// A service is a process target too: a schedule kills, starts, pauses and resumes
/// faultline-node's controller (a `[[services]]` entry) by its process group, the brokers carry
/// on through it, and the run is valid.
#[test]
fn a_schedule_kills_pauses_and_restarts_a_service() {
    let system = repo_file("examples/systems/faultline-node.toml");
    let dir = tempfile::tempdir().unwrap();
    let schedule = dir.path().join("controller-faults.txt");
    std::fs::write(
        &schedule,
        "wait 1s\nkill service:controller\nwait 2s\nstart service:controller\nwait 2s\n\
         pause service:controller\nwait 2s\nresume service:controller\nwait 2s\n",
    )
    .unwrap();
    let finished = system_run(&system, &["--schedule", schedule.to_str().unwrap()]);
    finished.expect_valid();
    let history = finished.history();
    let ops: Vec<String> = crate::common::nemesis_ops(&history)
        .into_iter()
        .filter(|op| op.f != "wait")
        .map(|op| {
            let node = op.value["node"].as_str().unwrap_or("?").to_string();
            assert!(op.error.is_none(), "{} {node}: {:?}", op.f, op.error);
            format!("{} {node}", op.f)
        })
        .collect();
    for expected in ["kill", "start", "pause", "resume"] {
        let step = format!("{expected} service:controller");
        assert!(ops.contains(&step), "{step} not in {ops:?}");
    }
    // The controller process ran twice: its log (appended across starts) says so.
    let log = std::fs::read_to_string(finished.run_dir.join("services/controller/service.log"))
        .expect("the controller's log");
    assert_eq!(log.matches("listening on").count(), 2, "{log}");
    // The report's timeline has a lane for the service its faults hit.
    let report = std::fs::read_to_string(finished.run_dir.join("report.html")).unwrap();
    assert!(
        report.contains(">service:controller</text>"),
        "no service lane"
    );
    assert!(
        count(&history, "send", OpType::Ok) > 100,
        "too few acknowledged sends"
    );
}

/// A system file made from the minimal example by `edit`, in a fresh directory.
fn bad_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("system.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const MINIMAL: &str = r#"
name = "sleepy"
version = "1"
[nodes]
count = 2
command = "exec sleep 299.123 {kafka_port}"
ready_timeout = "2s"
[promise]
acks = "all"
min_insync_replicas = 2
[faults]
kill = true
"#;

fn expect_bad(text: &str, names: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let path = bad_file(dir.path(), text);
    let finished = system_run(&path, &["--nemesis", "kill", "--time-limit", "1s"]);
    finished.expect_exit(254);
    let stderr = finished.stderr();
    for name in names {
        assert!(stderr.contains(name), "{name:?} not named in: {stderr}");
    }
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("faultline: bad"))
            .count(),
        1,
        "one error: {stderr}"
    );
    let left = processes_mentioning("299.123");
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

#[test]
fn bad_system_files_exit_254_naming_the_key_or_node_and_leave_nothing_behind() {
    expect_bad(&MINIMAL.replace("version = \"1\"\n", ""), &["version"]);
    expect_bad(
        &MINIMAL.replace("kill = true", "kill = true\nclock = true"),
        &["clock"],
    );
    expect_bad(
        &MINIMAL.replace("count = 2", "count = 2\nmetadata = \"slef\""),
        &["slef", "cluster", "self"],
    );
    expect_bad(
        &MINIMAL.replace("{kafka_port}", "{kafka_prot}"),
        &["nodes.command", "{kafka_prot}"],
    );
    // A command that never gets ready: its Kafka port never answers.
    expect_bad(MINIMAL, &["node 1", "nodes.ready_timeout"]);
    // A command that does not start: the shell exits at once.
    expect_bad(
        &MINIMAL.replace("exec sleep 299.123", "exec /nonexistent/broker"),
        &["node 1", "exited during startup"],
    );
    // A service whose fixed port is in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let with_service = format!(
        "{MINIMAL}[[services]]\nname = \"db\"\ncommand = \"exec sleep 299.123\"\nport = {port}\n"
    );
    expect_bad(&with_service, &["services[0] (db).port", "in use"]);
    // A schedule naming the controller: the system has none.
    let dir = tempfile::tempdir().unwrap();
    let schedule = dir.path().join("s.txt");
    std::fs::write(&schedule, "kill controller\n").unwrap();
    let path = bad_file(dir.path(), MINIMAL);
    let finished = system_run(&path, &["--schedule", schedule.to_str().unwrap()]);
    finished.expect_exit(254);
    assert!(
        finished.stderr().contains("names the controller"),
        "{}",
        finished.stderr()
    );
    // A schedule naming a service no broker reaches through a link.
    std::fs::write(&schedule, "partition groups 1 | service:db\n").unwrap();
    let finished = system_run(&path, &["--schedule", schedule.to_str().unwrap()]);
    finished.expect_exit(254);
    assert!(
        finished.stderr().contains("names service \"db\""),
        "{}",
        finished.stderr()
    );
}
