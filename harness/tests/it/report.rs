//! The report of a real run: report.html holds the plots and the anomaly tables and fetches
//! nothing; junit.xml parses back with one case per property per partition; the Markdown
//! summary is appended to $GITHUB_STEP_SUMMARY when it is set; `faultline report` regenerates
//! everything from the stored run alone, even one without results.json.

use std::path::Path;
use std::process::Command;

use faultline_checker::AnomalyKind;
use quick_junit::Report;

use crate::common::{faultline_bin, Finished, TestRun};

/// Cases per partition: one per anomaly kind, and "final read complete".
const CASES_PER_PARTITION: usize = AnomalyKind::ALL.len() + 1;

fn small_run(step_summary: &Path) -> Finished {
    let run = TestRun::new(&[
        "--time-limit",
        "3s",
        "--nemesis",
        "kill,pause,partition",
        "--nemesis-interval",
        "500ms",
        "--workload",
        "produce-consume",
        "--partitions",
        "2",
        "--rate",
        "200",
        "--concurrency",
        "4",
        "--seed",
        "11",
        "--request-timeout",
        "1s",
    ]);
    let mut command = run.command();
    command.env("GITHUB_STEP_SUMMARY", step_summary);
    let output = command.output().expect("running faultline");
    let finished = Finished::from_output(run, output);
    finished.expect_valid();
    finished
}

fn assert_report_html(run_dir: &Path) {
    let html = std::fs::read_to_string(run_dir.join("report.html")).expect("report.html");
    // Timeline, latency, throughput, and per partition offsets and ISR size.
    let svgs = html.matches("<svg").count();
    assert!(
        svgs >= 5,
        "expected the timeline and plots, found {svgs} <svg>"
    );
    for needle in [
        "<h2>Anomalies</h2>",
        "allowed by this configuration?",
        "Latency of every operation",
        "Throughput",
        "Partition t/0: offsets and ISR",
        "Partition t/1: offsets and ISR",
        "seconds since run start",
    ] {
        assert!(html.contains(needle), "report.html lacks {needle:?}");
    }
    for kind in AnomalyKind::ALL {
        assert!(
            html.contains(&format!("<code>{}</code>", kind.as_str())),
            "the anomaly table lacks {}",
            kind.as_str()
        );
    }
    // Self-contained: no script, no stylesheet or image from elsewhere.
    for fetch in ["<script", "src=\"http", "href=\"http", "@import", "url("] {
        assert!(!html.contains(fetch), "report.html fetches: {fetch}");
    }
}

fn assert_junit(run_dir: &Path, partitions: usize) {
    let xml = std::fs::read_to_string(run_dir.join("junit.xml")).expect("junit.xml");
    let report = Report::deserialize_from_str(&xml).expect("junit.xml parses");
    let cases: usize = report.test_suites.iter().map(|s| s.test_cases.len()).sum();
    assert_eq!(cases, partitions * CASES_PER_PARTITION + 1, "{xml}");
    let names: Vec<&str> = report.test_suites.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["partition t/0", "partition t/1", "run"]);
}

#[test]
fn a_real_run_writes_report_junit_and_step_summary() {
    let dir = tempfile::tempdir().unwrap();
    let step_summary = dir.path().join("step-summary.md");
    let finished = small_run(&step_summary);
    let stdout = String::from_utf8_lossy(&finished.output.stdout).into_owned();
    for needle in ["configuration", "verdict", "availability", "report.html"] {
        assert!(
            stdout.contains(needle),
            "terminal summary lacks {needle:?}:\n{stdout}"
        );
    }
    assert_report_html(&finished.run_dir);
    assert_junit(&finished.run_dir, 2);
    let summary = std::fs::read_to_string(&step_summary).expect("$GITHUB_STEP_SUMMARY written");
    assert!(
        summary.contains("faultline run `produce-consume-kill+pause+partition`"),
        "{summary}"
    );
    assert!(summary.contains("Availability"), "{summary}");
    assert!(finished.run_dir.join("summary.md").is_file());
    // node.log is a file: no colour codes in it.
    let log = std::fs::read_to_string(finished.run_dir.join("nodes/1/node.log")).unwrap();
    assert!(!log.contains('\x1b'), "ANSI colour codes in node.log");

    // `faultline report STORE` regenerates everything from the stored run alone, also when the
    // run has no results.json (a run stored before the report existed).
    for file in ["report.html", "junit.xml", "summary.md", "results.json"] {
        std::fs::remove_file(finished.run_dir.join(file)).unwrap();
    }
    let store = finished.run_dir.parent().unwrap().parent().unwrap();
    let output = Command::new(faultline_bin())
        .args(["report", store.to_str().unwrap()])
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("using its latest run"), "{stderr}");
    assert_report_html(&finished.run_dir);
    assert_junit(&finished.run_dir, 2);
    assert!(
        !finished.run_dir.join("results.json").exists(),
        "report must not rewrite the checker's results"
    );
}
