//! One test per guarantee rule: which setting excuses which anomaly (docs/results.md).

use crate::support::*;
use faultline_checker::config::KafkaVersion;
use faultline_checker::history::{Acks, OpType, Process, SendValue};
use faultline_checker::{AnomalyKind, Valid};

/// v3 was acknowledged at offset 3 and is gone.
fn tail_loss() -> Run {
    let mut run = Run::happy(4);
    run.set_final(0, records(&["v0", "v1", "v2"]));
    for broker in 1..=3 {
        run.set_dump(broker, 0, &records(&["v0", "v1", "v2"]), Some(3));
    }
    run
}

/// A consumer read w at offset 3, below HW, and w is gone.
fn committed_loss() -> Run {
    let mut run = Run::happy(3);
    run.send(1, "w", "info", None);
    run.poll(2, 3, &[(3, "w")]);
    run
}

#[test]
fn the_durable_configuration_excuses_nothing() {
    let results = tail_loss().check();
    assert!(results.guarantee.durable);
    assert_eq!(results.valid, Valid::False);
    assert_eq!(of_kind(&results, AnomalyKind::Lost)[0].excused_by, None);
}

#[test]
fn acks_1_allows_loss_and_says_so() {
    let mut run = tail_loss();
    run.config.acks = Acks::One;
    let results = run.check();
    let lost = of_kind(&results, AnomalyKind::Lost);
    assert_eq!(lost[0].excused_by.as_deref(), Some("acks=1"));
    assert_eq!(
        results.valid,
        Valid::True,
        "loss alone does not break a weak guarantee"
    );
    assert!(!results.guarantee.durable);
    assert_eq!(results.guarantee.weakened_by, vec!["acks=1".to_string()]);
    assert!(
        results.summary().contains("lost 1 (allowed)"),
        "{}",
        results.summary()
    );
}

#[test]
fn acks_0_and_min_insync_1_allow_loss() {
    let mut run = tail_loss();
    run.config.acks = Acks::Zero;
    run.config.min_insync_replicas = 1;
    let results = run.check();
    assert_eq!(
        of_kind(&results, AnomalyKind::Lost)[0]
            .excused_by
            .as_deref(),
        Some("acks=0, min.insync.replicas=1")
    );
    assert_eq!(results.valid, Valid::True);
}

#[test]
fn every_broker_faulty_allows_loss() {
    let mut run = tail_loss();
    run.config.max_faulty = 3;
    assert_eq!(run.check().valid, Valid::True);
}

#[test]
fn acks_1_does_not_excuse_a_dirty_read() {
    let mut run = committed_loss();
    run.config.acks = Acks::One;
    let results = run.check();
    assert_eq!(
        of_kind(&results, AnomalyKind::Lost)[0]
            .excused_by
            .as_deref(),
        Some("acks=1")
    );
    assert_eq!(
        of_kind(&results, AnomalyKind::DirtyRead)[0].excused_by,
        None
    );
    assert_eq!(results.valid, Valid::False);
}

#[test]
fn unclean_election_excuses_loss_below_hw_and_dirty_reads() {
    let mut run = committed_loss();
    run.config.unclean_leader_election = true;
    let results = run.check();
    let setting = Some("unclean.leader.election.enable=true");
    assert_eq!(
        of_kind(&results, AnomalyKind::DirtyRead)[0]
            .excused_by
            .as_deref(),
        setting
    );
    assert_eq!(
        of_kind(&results, AnomalyKind::Lost)[0]
            .excused_by
            .as_deref(),
        setting
    );
    assert_eq!(results.valid, Valid::True);
}

#[test]
fn legacy_hw_excuses_loss_but_not_phantoms_or_duplicates() {
    let mut run = tail_loss();
    run.config.kafka_version = KafkaVersion::V0_10_2;
    assert_eq!(run.check().valid, Valid::True);
    let log = records(&["v0", "v1", "v2", "ghost", "v1"]);
    run.set_final(0, log.clone());
    for broker in 1..=3 {
        run.set_dump(broker, 0, &log, Some(5));
    }
    let results = run.check();
    assert_eq!(of_kind(&results, AnomalyKind::Phantom)[0].excused_by, None);
    assert_eq!(
        of_kind(&results, AnomalyKind::Duplicate)[0].excused_by,
        None
    );
    assert_eq!(results.valid, Valid::False);
}

#[test]
fn an_excused_loss_in_an_incomplete_run_is_still_unknown() {
    let mut run = tail_loss();
    run.config.acks = Acks::One;
    run.final_complete = Some(false);
    assert_eq!(run.check().valid, Valid::Unknown);
}

#[test]
fn power_loss_excuses_committed_loss_only_without_fsync() {
    const SETTING: &str = "power loss without fsync (--lazyfs, no --fsync)";
    let mut run = committed_loss();
    run.config.harness.lazyfs = true;
    let results = run.check();
    assert_eq!(results.guarantee.weakened_by, vec![SETTING.to_string()]);
    let dirty = of_kind(&results, AnomalyKind::DirtyRead);
    assert_eq!(dirty[0].excused_by.as_deref(), Some(SETTING));
    assert_eq!(results.valid, Valid::True);
    run.config.harness.node_args = vec!["--fsync".to_string()];
    let results = run.check();
    assert!(results.guarantee.durable);
    assert_eq!(results.valid, Valid::False);
}

/// A system file's system is held to the fsync it promises: `--fsync` is a flag of
/// faultline-node's and means nothing to it.
#[test]
fn a_systems_power_loss_is_excused_only_when_it_does_not_promise_fsync() {
    const SETTING: &str = "power loss, and tansu does not promise to fsync before acknowledging";
    let mut run = committed_loss();
    run.config.harness.lazyfs = true;
    run.config.harness.node_args = vec!["--fsync".to_string()];
    run.config.system = Some(faultline_checker::config::SystemInfo {
        name: "tansu".into(),
        version: "0.6.0".into(),
        file: "tansu.toml".into(),
        dump: true,
        promise_acks: Acks::All,
        promise_min_insync_replicas: 2,
        promise_fsync: false,
    });
    let results = run.check();
    assert_eq!(results.guarantee.weakened_by, vec![SETTING.to_string()]);
    assert_eq!(results.valid, Valid::True);
    if let Some(system) = &mut run.config.system {
        system.promise_fsync = true;
    }
    run.config.harness.node_args.clear();
    let results = run.check();
    assert!(results.guarantee.durable);
    assert_eq!(results.valid, Valid::False);
}

/// A schedule's `produce 1 acks 1` in an acks=all run: Kafka promises nothing of that write
/// beyond the leader, so losing it is excused by the send's own acks, while losing an acks=all
/// write of the same run is not.
#[test]
fn a_lost_acks_1_send_is_excused_by_its_own_acks_in_an_acks_all_run() {
    let mut run = Run::happy(3);
    let weak = SendValue {
        acks: Some(Acks::One),
        ..send_value(0, "weak")
    };
    let done = SendValue {
        offset: Some(3),
        ..weak.clone()
    };
    run.ops
        .push(op(Process::Client(0), OpType::Invoke, "send", &weak, None));
    run.ops
        .push(op(Process::Client(0), OpType::Ok, "send", &done, None));
    let results = run.check();
    let lost = of_kind(&results, AnomalyKind::Lost);
    assert_eq!(lost.len(), 1);
    assert_eq!(
        lost[0].excused_by.as_deref(),
        Some("acks=1 or 0 on this send")
    );
    assert_eq!(results.valid, Valid::True);

    run.send(0, "strong", "ok", Some(4));
    let results = run.check();
    assert_eq!(of_kind(&results, AnomalyKind::Lost).len(), 2);
    assert_eq!(
        results.valid,
        Valid::False,
        "the acks=all loss is not excused"
    );
}
