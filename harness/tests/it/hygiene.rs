//! Process hygiene: no node of a run outlives the harness, whether it is SIGKILLed or
//! interrupted; an interrupted run heals (resumes, restarts) before it stops its nodes.

use std::process::Child;
use std::time::Duration;

use faultline_checker::history::Process;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::common::{poll, processes_mentioning, read_history, TestRun};

/// Starts a long run with pauses and kills and waits until it has paused or killed a node.
fn start_faulty_run(run: &TestRun) -> (Child, String) {
    let (child, run_dir) = run.spawn_until("a pause or kill in the history", |op| {
        op.process == Process::nemesis() && matches!(op.f.as_str(), "pause" | "kill")
    });
    let needle = run_dir.join("nodes").display().to_string();
    assert!(
        !processes_mentioning(&needle).is_empty(),
        "no node process found for {needle}"
    );
    (child, needle)
}

fn long_run() -> TestRun {
    TestRun::new(&[
        "--time-limit",
        "60s",
        "--nemesis",
        "pause,kill",
        "--nemesis-interval",
        "300ms",
        "--rate",
        "50",
        "--concurrency",
        "2",
        "--seed",
        "3",
    ])
}

#[test]
fn no_node_outlives_a_sigkilled_harness() {
    let run = long_run();
    let (mut child, needle) = start_faulty_run(&run);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    poll(
        "every node of the run to die",
        Duration::from_secs(10),
        || processes_mentioning(&needle).is_empty().then_some(()),
    );
}

#[test]
fn an_interrupted_run_heals_and_stops_its_nodes() {
    let run = long_run();
    let (mut child, needle) = start_faulty_run(&run);
    let pid = Pid::from_raw(child.id() as i32);
    kill(pid, Signal::SIGINT).unwrap();
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let log = std::fs::read_to_string(run.harness_log()).unwrap_or_default();
            panic!("the harness did not exit within 30 s of SIGINT:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        status.code(),
        Some(255),
        "an interrupted run is not a verdict"
    );
    assert!(
        processes_mentioning(&needle).is_empty(),
        "nodes left behind"
    );
    let history = read_history(&run.run_dir_as_named().unwrap());
    let done = |f: &str| {
        history
            .iter()
            .filter(|op| op.process == Process::nemesis() && op.f == f && op.error.is_none())
            .count()
    };
    let abort = history
        .iter()
        .find(|op| op.f == "abort")
        .expect("an abort marker");
    assert_eq!(abort.process, Process::Named("harness".to_string()));
    assert_eq!(abort.error.as_deref(), Some("interrupted by SIGINT"));
    assert_eq!(done("pause"), done("resume"), "every pause was resumed");
    assert_eq!(
        done("kill"),
        done("start"),
        "every killed node was restarted"
    );
}
