//! Scripted schedules: a written-down scenario runs step by step, and the schedule a run
//! records replays the same sequence of faults; a message fault makes a send's response vanish
//! while its record stays in the log.

use faultline_checker::final_reads::FinalReads;
use faultline_checker::history::{Op, OpType, Process};

use crate::common::{count, nemesis_ops, Finished, TestRun};

const SCENARIO: &str = "\
# Kill the leader, produce to the survivors, bring it back.
at 300ms kill leader
wait isr 2 timeout 15s
produce 5 acks all
at 2s start all
wait isr 3 timeout 15s
";

fn run_schedule(path: &std::path::Path) -> Finished {
    let finished = TestRun::new(&[
        "--schedule",
        path.to_str().unwrap(),
        "--concurrency",
        "0",
        "--seed",
        "9",
    ])
    .run();
    finished.expect_valid();
    finished
}

/// The nemesis's steps as (f, node, error) triples.
fn steps(history: &[Op]) -> Vec<(String, String, Option<String>)> {
    nemesis_ops(history)
        .iter()
        .map(|op| {
            let node = op
                .value
                .get("node")
                .map(|n| n.to_string())
                .unwrap_or_default();
            (op.f.clone(), node, op.error.clone())
        })
        .collect()
}

#[test]
fn a_written_scenario_runs_in_order_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenario.txt");
    std::fs::write(&path, SCENARIO).unwrap();
    let first = run_schedule(&path);
    let history = first.history();
    let fs: Vec<_> = steps(&history)
        .into_iter()
        .map(|(f, _, e)| (f, e))
        .collect();
    let expected: Vec<(String, Option<String>)> = ["kill", "wait", "start", "wait"]
        .iter()
        .map(|f| (f.to_string(), None))
        .collect();
    assert_eq!(fs, expected, "{}", first.stderr());
    // The five scheduled sends, each completed, from the schedule's own process (a send may
    // fail while the new leader takes over, so only completions are certain).
    assert_eq!(count(&history, "send", OpType::Invoke), 5);
    let done: usize = [OpType::Ok, OpType::Fail, OpType::Info]
        .iter()
        .map(|t| count(&history, "send", *t))
        .sum();
    assert_eq!(done, 5);
    assert!(
        count(&history, "send", OpType::Ok) > 0,
        "{}",
        first.stderr()
    );
    assert!(history
        .iter()
        .filter(|op| op.f == "send")
        .all(|op| matches!(op.process, Process::Client(_))));

    // The recorded schedule names the node it killed and replays the same sequence.
    let recorded = std::fs::read_to_string(first.run_dir.join("schedule.txt")).unwrap();
    assert!(!recorded.contains("leader"), "{recorded}");
    let replay = run_schedule(&first.run_dir.join("schedule.txt"));
    assert_eq!(steps(&replay.history()), steps(&history));

    // The replay line is a clean command: every setting once, and a replay of the replay
    // prints the same line but for the schedule's path.
    let line = |run: &Finished| -> String {
        let text = std::fs::read_to_string(run.run_dir.join("schedule.txt")).unwrap();
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("# Replay: "))
            .expect("a replay line")
            .to_string();
        let path = run.run_dir.join("schedule.txt");
        line.replace(path.to_str().unwrap(), "SCHEDULE")
    };
    let (first_line, replay_line) = (line(&first), line(&replay));
    assert_eq!(first_line, replay_line);
    for flag in ["--schedule", "--seed", "--time-limit", "--acks"] {
        assert_eq!(first_line.matches(flag).count(), 1, "{flag}: {first_line}");
    }
    assert!(!first_line.contains("--store"), "{first_line}");
}

#[test]
fn roles_in_network_partitions_resolve_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roles.txt");
    std::fs::write(
        &path,
        "partition groups leader | followers\n\
         delay link leader->follower 10ms\n\
         heal\n\
         delay all 0ms\n",
    )
    .unwrap();
    let finished = run_schedule(&path);
    let history = finished.history();
    let partition = nemesis_ops(&history)
        .into_iter()
        .find(|op| op.f == "partition")
        .expect("a partition step");
    assert_eq!(partition.error, None, "{partition:?}");
    let groups = partition.value["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].as_array().unwrap().len(), 1, "the leader alone");
    assert_eq!(groups[1].as_array().unwrap().len(), 2, "its two followers");
    let recorded = std::fs::read_to_string(finished.run_dir.join("schedule.txt")).unwrap();
    assert!(
        !recorded.lines().skip(2).any(|l| l.contains("leader")),
        "schedule.txt names concrete brokers: {recorded}"
    );
}

/// `drop-response produce on leader count 1` with `--client kafka` and `--retries 0`: the first
/// send's response vanishes (the proxy closes the connection, the send is `info`, not retried:
/// a retried one is `ok` and written twice, `producers.rs`), the final read holds its
/// value (the broker appended it), the next sends are answered, and the run says what the
/// fault did. The run stays valid: an `info` send may have happened.
#[test]
fn a_dropped_produce_response_leaves_its_record_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drop.txt");
    std::fs::write(
        &path,
        "drop-response produce on leader count 1\nproduce 3 acks all\n",
    )
    .unwrap();
    let finished = TestRun::new(&[
        "--client",
        "kafka",
        "--schedule",
        path.to_str().unwrap(),
        "--concurrency",
        "0",
        "--retries",
        "0",
        "--seed",
        "23",
    ])
    .run();
    finished.expect_valid();
    let history = finished.history();
    let nemesis = nemesis_ops(&history);
    let drop = nemesis
        .iter()
        .find(|op| op.f == "drop-response")
        .expect("the drop-response step is recorded");
    assert_eq!(drop.error, None, "{drop:?}");
    let leader = drop.value["node"].as_u64().expect("the leader, resolved") as u32;
    assert_eq!(drop.value["api"], "produce");
    assert_eq!(drop.value["api_key"], 0);
    assert_eq!(drop.value["count"], 1);
    assert!(
        nemesis
            .iter()
            .any(|op| op.f == "pass-response" && op.value["node"] == leader),
        "the heal phase passes produce responses again: {nemesis:?}"
    );

    // The first send's completion is `info` (a closed connection), the others `ok`.
    let completions: Vec<&Op> = history
        .iter()
        .filter(|op| op.f == "send" && op.kind != OpType::Invoke)
        .collect();
    let kinds: Vec<OpType> = completions.iter().map(|op| op.kind).collect();
    assert_eq!(
        kinds,
        [OpType::Info, OpType::Ok, OpType::Ok],
        "{}",
        finished.stderr()
    );
    let vanished = completions[0].value["value"].as_str().unwrap().to_string();

    // The broker appended it: the final read holds every value, the vanished one first.
    let reads: FinalReads =
        serde_json::from_slice(&std::fs::read(finished.run_dir.join("final.json")).unwrap())
            .unwrap();
    assert!(reads.complete, "{reads:?}");
    let values: Vec<&str> = reads.partitions[0]
        .records
        .iter()
        .map(|r| r.value.as_str())
        .collect();
    let sent: Vec<&str> = completions
        .iter()
        .map(|op| op.value["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        values, sent,
        "the final read holds {vanished} where it was sent"
    );

    let stderr = finished.stderr();
    let said = format!("message faults: client->{leader} (kafka): responses 1 dropped");
    assert!(stderr.contains(&said), "{stderr}");
    let recorded = std::fs::read_to_string(finished.run_dir.join("schedule.txt")).unwrap();
    assert!(
        recorded.contains(&format!("drop-response produce on {leader} count 1")),
        "{recorded}"
    );
}
