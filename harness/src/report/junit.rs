//! `junit.xml` for CI pages, written with quick-junit: one test suite per partition with one
//! case per checked property (each anomaly kind, plus "final read complete"), and one suite
//! `run` whose case `verdict` carries the unknown reasons. A property the run's configuration
//! allows passes with a note; one that breaks the guarantee fails with the checker's
//! explanations and first details; an uncertain one is an error. It reads only `Results` and
//! `TestConfig`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use faultline_checker::history::TestConfig;
use faultline_checker::{AnomalyKind, PartitionSummary, Results, Valid};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{describe_kind, standing, Standing};

/// The JUnit report of a run.
pub fn junit(config: &TestConfig, results: &Results) -> Report {
    let mut report = Report::new(format!("faultline {}", config.name));
    for p in &results.partitions {
        report.add_test_suite(partition_suite(results, p));
    }
    report.add_test_suite(run_suite(config, results));
    report
}

pub fn write_junit(path: &Path, config: &TestConfig, results: &Results) -> anyhow::Result<()> {
    let text = junit(config, results)
        .to_string()
        .context("serialising junit.xml")?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn partition_suite(results: &Results, p: &PartitionSummary) -> TestSuite {
    let name = format!("{}/{}", p.topic, p.partition);
    let mut suite = TestSuite::new(format!("partition {name}"));
    for kind in AnomalyKind::ALL {
        let mut case = property_case(results, p, kind);
        case.set_classname(format!("faultline.{name}"));
        suite.add_test_case(case);
    }
    let mut read = TestCase::new(
        "final read complete",
        if p.final_complete && !p.unavailable {
            TestCaseStatus::success()
        } else {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status.set_message(if p.unavailable {
                format!("{name} has no leader: unavailable")
            } else {
                format!("the final read of {name} did not cover offsets 0..HW")
            });
            status
        },
    );
    read.set_classname(format!("faultline.{name}"));
    suite.add_test_case(read);
    suite
}

fn property_case(results: &Results, p: &PartitionSummary, kind: AnomalyKind) -> TestCase {
    let count = p.anomalies.get(&kind).copied().unwrap_or(0);
    let name = format!("no {} ({})", kind.as_str(), describe_kind(kind));
    let status = match standing(results, kind, Some((&p.topic, p.partition))) {
        Standing::None => TestCaseStatus::success(),
        Standing::Allowed(by) => {
            let mut case = TestCase::new(name, TestCaseStatus::success());
            case.set_system_out(format!(
                "{count} {} found, allowed by this configuration ({by})",
                kind.as_str()
            ));
            return case;
        }
        Standing::Breaks => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_message(format!(
                "{count} {} in {}/{}: breaks the guarantee",
                kind.as_str(),
                p.topic,
                p.partition
            ));
            status.set_description(details(results, p, kind));
            status
        }
        Standing::Uncertain(why) => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status.set_message(format!(
                "{count} {} that may be artefacts: {why}",
                kind.as_str()
            ));
            status.set_description(details(results, p, kind));
            status
        }
    };
    TestCase::new(name, status)
}

/// The checker's explanations for this partition and kind, then the first anomalies' details.
fn details(results: &Results, p: &PartitionSummary, kind: AnomalyKind) -> String {
    let mut text = String::new();
    let mine = |topic: &str, partition: u32| topic == p.topic && partition == p.partition;
    for e in results
        .explanations
        .iter()
        .filter(|e| e.kind == kind && mine(&e.topic, e.partition))
    {
        let _ = writeln!(text, "why: {} (times since run start)", e.sentence);
    }
    let listed = results
        .anomalies
        .iter()
        .filter(|a| a.kind == kind && mine(&a.topic, a.partition));
    for a in listed.take(20) {
        let _ = writeln!(text, "- {}", a.detail);
    }
    text
}

fn run_suite(config: &TestConfig, results: &Results) -> TestSuite {
    let mut suite = TestSuite::new("run");
    let status = match results.valid {
        Valid::True => TestCaseStatus::success(),
        Valid::False => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message("invalid: an anomaly breaks the run's guarantee");
            s
        }
        Valid::Unknown => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
            s.set_message("unknown: the run cannot be proven valid");
            s.set_description(results.unknown_reasons.join("\n"));
            s
        }
    };
    let mut case = TestCase::new("verdict", status);
    case.set_classname(format!("faultline.{}", config.name));
    case.set_system_out(results.summary());
    suite.add_test_case(case);
    suite
}
