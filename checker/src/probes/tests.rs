use super::*;
use crate::jsonl::Damage;

/// Events as a node writes them, loaded the way the check loads them.
fn events(lines: &[serde_json::Value]) -> Events {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(&path, text.join("\n") + "\n").unwrap();
    let mut events = Events::default();
    let mut damage = Damage::default();
    events.load(&path, "events.jsonl", &mut damage);
    events.finish();
    assert_eq!(damage.total, 0, "{:?}", damage.warnings);
    events
}

fn controller(time_ms: u64, kind: &str, fields: serde_json::Value) -> serde_json::Value {
    let mut e = serde_json::json!({"time_ms": time_ms, "node": "controller", "type": kind,
        "topic": "t", "partition": 0});
    e.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    e
}

const START: u64 = 1_000_000;

#[test]
fn isr_changes_and_elections_name_their_probes_once_per_transition() {
    let ev = events(&[
        controller(
            START + 10,
            "election",
            serde_json::json!({"leader": 1, "leader_epoch": 0,
            "isr": [1, 2, 3], "unclean": false, "reason": "topic_created"}),
        ),
        controller(
            START + 100,
            "isr_change",
            serde_json::json!({"isr_before": [1, 2, 3],
            "isr": [1, 2], "reason": "shrink"}),
        ),
        controller(
            START + 200,
            "isr_change",
            serde_json::json!({"isr_before": [1, 2],
            "isr": [1], "reason": "shrink"}),
        ),
        controller(
            START + 300,
            "isr_change",
            serde_json::json!({"isr_before": [1],
            "isr": [1, 2], "reason": "expand"}),
        ),
        controller(
            START + 400,
            "election",
            serde_json::json!({"leader": 2, "leader_epoch": 1,
            "isr": [2], "unclean": false, "reason": "broker_fenced"}),
        ),
    ]);
    let probes = detect(&ev, &ProbeInputs::default(), 2, START, None);
    let count = |p| probes.get(&p).map_or(0, |h: &ProbeHit| h.count);
    // Topic creation is neither an election probe nor an ISR change.
    assert_eq!(count(Probe::CleanElection), 1);
    assert_eq!(probes[&Probe::CleanElection].places, ["t/0 broker 2"]);
    // {1,2,3}→{1,2}, {1,2}→{1}, and the election's {1,2}→{2}.
    assert_eq!(count(Probe::IsrShrunk), 3);
    assert_eq!(probes[&Probe::IsrShrunk].first_ms, 100);
    // Below min (2) twice: {1,2}→{1} and {1,2}→{2}; not again while it stays below.
    assert_eq!(count(Probe::IsrBelowMin), 2);
    assert_eq!(count(Probe::IsrLeaderOnly), 2);
    assert_eq!(probes[&Probe::IsrLeaderOnly].first_ms, 200);
    for absent in [Probe::UncleanElection, Probe::ElrElection, Probe::Fenced] {
        assert!(!probes.contains_key(&absent), "{absent}");
    }
}

#[test]
fn an_election_from_the_elr_and_an_unclean_one_are_told_apart() {
    let ev = events(&[
        controller(
            START,
            "election",
            serde_json::json!({"leader": 1, "leader_epoch": 0,
            "isr": [1, 2, 3], "elr": [], "reason": "topic_created"}),
        ),
        controller(
            START + 100,
            "isr_change",
            serde_json::json!({"isr_before": [1, 2, 3],
            "isr": [1], "elr": [2], "reason": "shrink"}),
        ),
        controller(
            START + 200,
            "election",
            serde_json::json!({"leader": null,
            "leader_epoch": 1, "isr": [], "elr": [2], "reason": "broker_fenced"}),
        ),
        controller(
            START + 300,
            "election",
            serde_json::json!({"leader": 2, "leader_epoch": 2,
            "isr": [2], "elr": [], "unclean": false, "reason": "broker_unfenced"}),
        ),
        controller(
            START + 400,
            "election",
            serde_json::json!({"leader": 3, "leader_epoch": 3,
            "isr": [3], "elr": [], "unclean": true, "reason": "broker_fenced"}),
        ),
    ]);
    let probes = detect(&ev, &ProbeInputs::default(), 2, START, None);
    assert_eq!(probes[&Probe::ElrElection].places, ["t/0 broker 2"]);
    assert_eq!(probes[&Probe::UncleanElection].places, ["t/0 broker 3"]);
    assert!(!probes.contains_key(&Probe::CleanElection));
}

#[test]
fn a_truncation_counts_below_the_hw_only_under_a_proven_acknowledgement() {
    let truncation = |time_ms: u64, to: u64| {
        serde_json::json!({"time_ms": time_ms, "node": 3, "type": "truncation", "topic": "t",
            "partition": 0, "from": 30, "to": to, "reason": "diverging_epoch", "leader": 1,
            "leader_epoch": 2})
    };
    let ev = events(&[truncation(START + 500, 25), truncation(START + 2_000, 10)]);
    let mut inputs = ProbeInputs::default();
    // Offset 19 acknowledged with acks=all at 1 s: the HW was at least 20 from then on.
    inputs.committed("t", 0, 1_000_000_000, 19);
    let probes = detect(&ev, &inputs, 2, START, None);
    assert_eq!(probes[&Probe::EpochDivergenceResolved].count, 2);
    // At 0.5 s nothing was proven; at 2 s, truncating to 10 < 20 removed committed records.
    let below = &probes[&Probe::TruncatedBelowHw];
    assert_eq!((below.count, below.first_ms), (1, 2_000));
}

#[test]
fn faults_are_probes_only_when_they_hit_the_situation() {
    let ev = events(&[
        controller(
            START,
            "election",
            serde_json::json!({"leader": 1, "leader_epoch": 0,
            "isr": [1, 2, 3], "reason": "topic_created"}),
        ),
        controller(
            START + 1_000,
            "isr_change",
            serde_json::json!({"isr_before": [1, 2, 3],
            "isr": [1], "reason": "shrink"}),
        ),
        serde_json::json!({"time_ms": START + 50, "node": "controller", "type": "broker_fenced",
            "broker": 2, "reason": "session_timeout"}),
    ]);
    let mut inputs = ProbeInputs {
        // Broker 2 paused (a follower), then broker 1 (the leader).
        pauses: vec![(100_000_000, 2), (200_000_000, 1)],
        // A power cut of broker 1 before it was the last ISR member, and one after.
        power_losses: vec![(500_000_000, vec![1]), (1_500_000_000, vec![1, 2])],
        ..ProbeInputs::default()
    };
    inputs.refused(1_600_000_000, "t", 0);
    inputs.timed_out(1_700_000_000, "t", 0);
    let probes = detect(&ev, &inputs, 2, START, None);
    assert_eq!(probes[&Probe::LeaderPaused].places, ["t/0 broker 1"]);
    assert_eq!(probes[&Probe::LeaderPaused].first_ms, 200);
    let last = &probes[&Probe::PowerLossLastIsrMember];
    assert_eq!((last.count, last.first_ms), (1, 1_500));
    assert_eq!(
        probes[&Probe::Fenced].places,
        ["broker 2 (session_timeout)"]
    );
    assert_eq!(probes[&Probe::NotEnoughReplicas].first_ms, 1_600);
    assert_eq!(probes[&Probe::AcksAllTimeout].places, ["t/0"]);
    // What happens after the harness's stop marker is the harness's doing.
    let stopped_at_900 = detect(&ev, &inputs, 2, START, Some(900));
    assert!(!stopped_at_900.contains_key(&Probe::IsrShrunk));
    assert!(stopped_at_900.contains_key(&Probe::Fenced));
}

#[test]
fn probe_names_round_trip_and_an_unknown_one_names_the_known() {
    for p in Probe::ALL {
        assert_eq!(p.as_str().parse::<Probe>(), Ok(p));
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, format!("\"{p}\""));
    }
    let error = "isr_shrank".parse::<Probe>().unwrap_err();
    assert!(error.contains("isr_shrunk"), "{error}");
}
