//! `junit.xml` for CI pages, written with quick-junit: one test suite per partition with one
//! case per checked property (each anomaly kind, plus "final read complete"), and one suite
//! `run` whose case `verdict` carries the unknown reasons. A property the run's configuration
//! allows passes with a note; one that breaks the guarantee fails with the checker's
//! explanations and first details; an uncertain one is an error. It reads only `Results` and
//! `TestConfig`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use faultline_checker::config::TestConfig;
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn results(excused_by: Option<&str>) -> Results {
        let ops = json!({"invoke": 3, "ok": 3, "fail": 0, "info": 0});
        let none = json!({"invoke": 0, "ok": 0, "fail": 0, "info": 0});
        let mut anomaly = json!({"kind": "lost", "topic": "t", "partition": 0, "offsets": [1],
            "values": ["7"], "indices": [2, 3], "detail": "value \"7\" of t/0 is not in the final log"});
        let mut excused = json!({});
        if let Some(by) = excused_by {
            anomaly["excused_by"] = json!(by);
            excused = json!({"lost": [by]});
        }
        serde_json::from_value(json!({
            "valid": if excused_by.is_some() { json!(true) } else { json!(false) },
            "guarantee": {"durable": excused_by.is_none(), "weakened_by": [], "excused": excused},
            "counts": {"history_lines": 6, "send": ops, "poll": none, "polled_records": 0,
                "nemesis": 0, "other_ops": 0, "final_records": 2, "dump_records": 6, "distinct_values": 3},
            "partitions": [{"topic": "t", "partition": 0, "leader": 1, "leader_epoch": 2,
                "high_watermark": 2, "isr": [1, 2, 3], "final_records": 2, "final_complete": true,
                "unavailable": false, "send": ops, "write_availability": 1.0,
                "longest_write_gap_ms": 0, "anomalies": {"lost": 1}}],
            "anomaly_counts": {"lost": 1},
            "anomalies": [anomaly],
            "anomalies_truncated": false,
            "explanations": [{"kind": "lost", "topic": "t", "partition": 0, "first_offset": 1,
                "last_offset": 1, "count": 1, "acked_by": 1, "acked_leader_epoch": 1,
                "explained": true, "sentence": "offset 1 of t/0 was lost: broker 3 was elected uncleanly"}],
            "unknown_reasons": [], "warnings": [], "warnings_total": 0
        }))
        .unwrap()
    }

    fn config() -> TestConfig {
        serde_json::from_value(
            json!({"name": "n", "seed": 1, "start_unix_ms": 0, "nodes": 3,
            "topics": ["t"], "partitions": 1, "replication_factor": 3, "acks": "all",
            "min_insync_replicas": 2, "unclean_leader_election": false,
            "replica_lag_time_max_ms": 1000, "kafka_version": "4.1",
            "workload": "produce", "nemesis": [], "nemesis_interval_ms": 1000, "max_faulty": 2,
            "time_limit_ms": 1000, "rate": 1.0, "concurrency": 1}),
        )
        .unwrap()
    }

    fn case<'a>(report: &'a Report, name: &str) -> &'a TestCase {
        report.test_suites[0]
            .test_cases
            .iter()
            .find(|c| c.name.as_str().starts_with(name))
            .unwrap()
    }

    #[test]
    fn a_loss_that_breaks_the_guarantee_fails_with_its_explanation() {
        let report = junit(&config(), &results(None));
        let xml = report.to_string().unwrap();
        let parsed = Report::deserialize_from_str(&xml).unwrap();
        assert_eq!(parsed.test_suites[0].test_cases.len(), CASES);
        match &case(&parsed, "no lost").status {
            TestCaseStatus::NonSuccess {
                kind,
                message,
                description,
                ..
            } => {
                assert_eq!(*kind, NonSuccessKind::Failure);
                assert!(message.as_ref().unwrap().as_str().contains("1 lost in t/0"));
                let text = description.as_ref().unwrap().as_str();
                assert!(text.contains("elected uncleanly"), "{text}");
                assert!(text.contains("not in the final log"), "{text}");
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        assert!(matches!(
            case(&parsed, "no moved").status,
            TestCaseStatus::Success { .. }
        ));
    }

    #[test]
    fn an_allowed_loss_passes_and_says_why() {
        let report = junit(&config(), &results(Some("acks=1")));
        let lost = case(&report, "no lost");
        assert!(matches!(lost.status, TestCaseStatus::Success { .. }));
        let out = lost.system_out.as_ref().unwrap().as_str();
        assert!(
            out.contains("allowed by this configuration (acks=1)"),
            "{out}"
        );
    }

    /// One case per anomaly kind and "final read complete".
    const CASES: usize = AnomalyKind::ALL.len() + 1;
}
