use super::*;
use faultline_checker::config::TestConfig;
use serde_json::json;

/// A stored run the real checker judges valid, with nothing lost, whose controller shrank the
/// ISR once: it reached `isr_shrunk` and nothing else.
fn run_that_only_shrank_an_isr() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path();
    let config = TestConfig {
        concurrency: 0,
        start_unix_ms: 1_000_000,
        ..TestConfig::default()
    };
    std::fs::write(run.join("test.json"), serde_json::to_vec(&config).unwrap()).unwrap();
    std::fs::write(run.join("history.jsonl"), "").unwrap();
    let read = json!({"complete": true, "partitions": [{"topic": "t", "partition": 0,
        "leader": 1, "leader_epoch": 0, "high_watermark": 0, "isr": [1, 2], "records": []}]});
    std::fs::write(run.join("final.json"), read.to_string()).unwrap();
    for broker in 1..=3 {
        let node = run.join(format!("nodes/{broker}"));
        std::fs::create_dir_all(&node).unwrap();
        std::fs::write(node.join("dump.jsonl"), "").unwrap();
    }
    let shrink = json!({"time_ms": 1_002_000, "node": "controller", "type": "isr_change",
        "topic": "t", "partition": 0, "isr_before": [1, 2, 3], "isr": [1, 2],
        "leader_epoch": 0, "partition_epoch": 1, "reason": "shrink"});
    let controller = run.join("nodes/controller");
    std::fs::create_dir_all(&controller).unwrap();
    std::fs::write(controller.join("events.jsonl"), format!("{shrink}\n")).unwrap();
    let results = faultline_checker::check_run(run).unwrap();
    assert_eq!(results.valid, Valid::True, "{:?}", results.unknown_reasons);
    faultline_checker::write_results(run, &results).unwrap();
    dir
}

#[test]
fn a_run_that_kept_its_outcome_but_missed_a_required_probe_is_vacuous_not_passed() {
    let run = run_that_only_shrank_an_isr();
    let reached = judge(Expect::NoLoss, &[Probe::IsrShrunk], run.path()).unwrap();
    assert!(reached.passed && !reached.vacuous, "{}", reached.detail);
    assert_eq!(reached.word(), "PASS");

    let missed = judge(
        Expect::NoLoss,
        &[Probe::IsrShrunk, Probe::UncleanElection, Probe::Fenced],
        run.path(),
    )
    .unwrap();
    assert!(!missed.passed && missed.vacuous);
    assert_eq!(missed.word(), "VACUOUS");
    assert!(
        missed
            .detail
            .ends_with("VACUOUS: the run never reached unclean_election, fenced"),
        "{}",
        missed.detail
    );

    // An outcome that did not hold is a failure, whatever the probes.
    let failed = judge(Expect::Loss, &[Probe::UncleanElection], run.path()).unwrap();
    assert!(!failed.passed && !failed.vacuous, "{}", failed.detail);
}

#[test]
fn every_scenario_run_requires_probes_and_the_gate_fails_a_vacuous_entry() {
    for scenario in SCENARIOS {
        for run in scenario.runs {
            for expected in run.outcomes {
                assert!(
                    !expected.probes.is_empty(),
                    "{} ({}, {}) names no probe",
                    scenario.name,
                    run.label,
                    expected.version
                );
            }
        }
    }
    let run = run_that_only_shrank_an_isr();
    let judgement = judge(Expect::NoLoss, &[Probe::LeaderPaused], run.path()).unwrap();
    let entry = crate::jobs::suite::outputs::EntryResult {
        name: "durable-pause".into(),
        expect: Expect::NoLoss.as_str().into(),
        passed: judgement.passed,
        vacuous: judgement.vacuous,
        detail: judgement.detail,
        exit_code: 0,
        run_dir: None,
        duration_ms: 1,
        command: String::new(),
        probes: judgement.reached,
        configuration: "durable".into(),
        shrunk: None,
    };
    let suite = crate::jobs::suite::outputs::SuiteResult {
        suite: "ci".into(),
        entries: vec![entry],
    };
    assert!(!suite.passed(), "a vacuous entry fails the gate");
    let junit = crate::jobs::suite::outputs::junit(&suite).unwrap();
    assert!(junit.contains("never reached leader_paused"), "{junit}");
    assert!(crate::jobs::suite::outputs::markdown(&suite).contains("vacuous"));
}
