//! Unit tests of the fault packages: every plan is repeatable from its seed, ends healed, aims
//! only at the partition it records and cuts the network at most once before it heals;
//! `leader-loss` keeps its mix of variants.

use std::collections::BTreeMap;

use rand::SeedableRng;

use super::leader_loss::LeaderLoss;
use super::*;

fn ctx() -> PlanContext {
    PlanContext {
        topics: vec![TopicSpec {
            name: "t".into(),
            partitions: 2,
            replication_factor: 3,
            min_insync_replicas: 2,
            unclean_leader_election: false,
        }],
        brokers: vec![1, 2, 3],
        replica_lag_time_max_ms: 1000,
        interval: Duration::from_secs(3),
        kill_signal: KillSignal::Kill,
        targets: crate::nemesis::generator::TargetKind::ALL.to_vec(),
        legacy_hw: false,
        controller: true,
        services: Vec::new(),
    }
}

#[test]
fn without_a_controller_no_plan_aims_at_one() {
    let without = PlanContext {
        controller: false,
        ..ctx()
    };
    let mut variants = std::collections::BTreeSet::new();
    for kind in FaultKind::ALL {
        for seed in 0..200 {
            let plan = plan(kind, &mut StdRng::seed_from_u64(seed), &without);
            variants.insert(plan.variant);
            let text = format!("{:?}", plan.steps);
            assert!(!text.contains("Controller"), "{kind:?} seed {seed}: {text}");
        }
    }
    assert!(!variants.contains("with-controller"), "{variants:?}");
    // The check can fail: with a controller, plans do name it.
    let with: usize = (0..200)
        .map(|seed| {
            plan(
                FaultKind::LeaderLoss,
                &mut StdRng::seed_from_u64(seed),
                &ctx(),
            )
        })
        .filter(|p| format!("{:?}", p.steps).contains("Controller"))
        .count();
    assert!(with > 0);
}

/// Without a controller, the `controller` target kind aims at the system's services, and a
/// power loss (services are not on lazy mounts) at a broker.
#[test]
fn without_a_controller_the_controller_kind_aims_at_a_service() {
    let pg = Node::service("postgres");
    let system = PlanContext {
        controller: false,
        services: vec![pg],
        targets: vec![crate::nemesis::generator::TargetKind::Controller],
        ..ctx()
    };
    let mut aimed = 0;
    for seed in 0..100 {
        for kind in [FaultKind::Kill, FaultKind::Pause, FaultKind::PowerLoss] {
            let plan = plan(kind, &mut StdRng::seed_from_u64(seed), &system);
            let text = format!("{:?}", plan.steps);
            if kind == FaultKind::PowerLoss {
                assert!(!text.contains("Service"), "seed {seed}: {text}");
            } else if text.contains("Service(\"postgres\")") {
                aimed += 1;
            }
        }
    }
    assert_eq!(aimed, 200, "every kill and pause aims at the service");
}

#[test]
fn under_legacy_hw_leader_loss_aims_at_the_hw_truncation_window_more_often() {
    let twice = |legacy_hw: bool| {
        let ctx = PlanContext { legacy_hw, ..ctx() };
        (0..400)
            .filter(|&seed| {
                plan(
                    FaultKind::LeaderLoss,
                    &mut StdRng::seed_from_u64(seed),
                    &ctx,
                )
                .variant
                    == "twice"
            })
            .count()
    };
    let (current, legacy) = (twice(false), twice(true));
    assert!(
        current > 40 && legacy > 2 * current,
        "{current} vs {legacy}"
    );
}

#[test]
fn every_plan_ends_healed_and_is_repeatable_from_its_seed() {
    for kind in FaultKind::ALL {
        for seed in 0..50 {
            let a = plan(kind, &mut StdRng::seed_from_u64(seed), &ctx());
            let b = plan(kind, &mut StdRng::seed_from_u64(seed), &ctx());
            assert_eq!(a, b, "{kind:?} seed {seed}");
            assert_eq!(a.steps.last(), Some(&PlanStep::HealMine), "{a:?}");
            assert!(a.steps.iter().any(|s| matches!(s, PlanStep::Fault(_))));
        }
    }
}

#[test]
fn leader_loss_reaches_the_unclean_window() {
    let found = (0..100).any(|seed| {
        let p = plan(
            FaultKind::LeaderLoss,
            &mut StdRng::seed_from_u64(seed),
            &ctx(),
        );
        p.variant == "after-isr-shrink"
            && p.steps[0] == PlanStep::Fault(cut_leader_from_followers(&p.partition))
            && matches!(p.steps[1], PlanStep::WaitIsr { size: 1, .. })
    });
    assert!(found);
}

#[test]
fn every_kind_describes_itself_and_weighs_something() {
    for kind in FaultKind::ALL {
        assert!(!describe(kind).is_empty());
        assert!(weight(kind) > 0);
    }
}

/// A context with several topics and partitions, so a plan that drew its partition twice
/// would name two.
fn many_partitions() -> PlanContext {
    let topic = |name: &str| TopicSpec {
        name: name.into(),
        partitions: 5,
        ..ctx().topics[0].clone()
    };
    PlanContext {
        topics: vec![topic("t"), topic("u")],
        ..ctx()
    }
}

/// The topic-partitions a step's roles name.
fn partitions_named(action: &Action) -> Vec<Option<TopicPartition>> {
    let of_target = |t: &Target| match t {
        Target::Leader(tp) | Target::Follower(tp) => vec![tp.clone()],
        Target::Node(_) | Target::Random => Vec::new(),
    };
    let of_member = |m: &Member| match m {
        Member::Leader(tp) | Member::Follower(tp) | Member::Followers(tp) => vec![tp.clone()],
        Member::Endpoint(_) | Member::Others => Vec::new(),
    };
    let of_side = |side: &Vec<Member>| side.iter().flat_map(of_member).collect::<Vec<_>>();
    match action {
        Action::Kill { target, .. } | Action::Pause { target } => of_target(target),
        Action::Delay { links, .. } => match links {
            LinkSpec::All => Vec::new(),
            LinkSpec::Touching(m) => of_member(m),
            LinkSpec::Link(a, b) => [of_member(a), of_member(b)].concat(),
        },
        Action::NetworkPartition(spec) => match spec {
            NetworkPartitionSpec::Groups(groups) => groups.iter().flat_map(of_side).collect(),
            NetworkPartitionSpec::OneWay { from, to } => [of_side(from), of_side(to)].concat(),
            NetworkPartitionSpec::Isolate(target) => of_target(target),
            _ => Vec::new(),
        },
        Action::PowerLoss(PowerLossTargets::Some(targets)) => {
            targets.iter().flat_map(of_target).collect()
        }
        _ => Vec::new(),
    }
}

#[test]
fn every_plan_aims_only_at_the_partition_it_records() {
    let ctx = many_partitions();
    let mut rolling_restart_aimed = 0;
    for kind in FaultKind::ALL {
        for seed in 0..200 {
            let p = plan(kind, &mut StdRng::seed_from_u64(seed), &ctx);
            for step in &p.steps {
                let PlanStep::Fault(action) = step else {
                    continue;
                };
                for tp in partitions_named(action) {
                    assert_eq!(
                        tp.as_ref(),
                        Some(&p.partition),
                        "{kind:?} seed {seed}: {p:?}"
                    );
                    rolling_restart_aimed += usize::from(kind == FaultKind::RollingRestart);
                }
            }
        }
    }
    assert!(rolling_restart_aimed > 50, "{rolling_restart_aimed}");
}

#[test]
fn no_plan_cuts_the_network_twice_before_it_heals() {
    // The executor refuses a budgeted network partition while one is in force; a plan that cut
    // twice would refuse itself.
    for kind in FaultKind::ALL {
        for seed in 0..200 {
            let p = plan(kind, &mut StdRng::seed_from_u64(seed), &ctx());
            let mut cut = false;
            for step in &p.steps {
                match step {
                    PlanStep::Fault(Action::NetworkPartition(_)) => {
                        assert!(!cut, "{kind:?} seed {seed}: {p:?}");
                        cut = true;
                    }
                    PlanStep::Fault(Action::Heal) | PlanStep::HealMine => cut = false,
                    _ => {}
                }
            }
        }
    }
}

#[test]
fn leader_loss_weights_are_the_old_arms_shares() {
    // The arms of `gen_range(0..9)` were 0..=2 after-isr-shrink, 3|4 followers-behind,
    // 5|6 twice, 7 with-controller, 8 plain.
    let old = [
        ("after-isr-shrink", 3),
        ("followers-behind", 2),
        ("twice", 2),
        ("with-controller", 1),
        ("plain", 1),
    ];
    let weights: Vec<(&str, u32)> = LeaderLoss::ALL
        .iter()
        .map(|v| (v.name(), v.weight()))
        .collect();
    assert_eq!(weights, old);
}

#[test]
fn leader_loss_draws_its_variants_in_their_shares() {
    let ctx = ctx();
    let runs = 9000;
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    for seed in 0..runs {
        let p = plan(
            FaultKind::LeaderLoss,
            &mut StdRng::seed_from_u64(seed),
            &ctx,
        );
        *counts.entry(p.variant).or_default() += 1;
    }
    for v in LeaderLoss::ALL {
        let expected = runs as f64 * v.weight() as f64 / 9.0;
        let got = counts.get(v.name()).copied().unwrap_or(0) as f64;
        assert!((got - expected).abs() < 0.1 * expected, "{counts:?}");
    }
}

#[test]
fn drop_response_drops_a_few_produce_responses_from_the_leader_then_may_lose_it() {
    let mut variants = BTreeMap::new();
    for seed in 0..300 {
        let p = plan(
            FaultKind::DropResponse,
            &mut StdRng::seed_from_u64(seed),
            &ctx(),
        );
        *variants.entry(p.variant).or_insert(0) += 1;
        let PlanStep::Fault(Action::Response { fault, on }) = &p.steps[0] else {
            panic!("seed {seed}: a drop first: {p:?}");
        };
        assert_eq!(fault.api_key, 0, "Produce");
        assert_eq!(fault.action, ResponseAction::Drop);
        assert!(matches!(fault.count, Some(1..=3)), "{fault:?}");
        assert_eq!(*on, KafkaLinkSpec::To(leader(&p.partition)));
        let loses_leader = p.steps.iter().skip(1).any(|s| {
            matches!(s, PlanStep::Fault(Action::Kill { target, .. } | Action::Pause { target })
                if *target == leader(&p.partition))
        });
        assert_eq!(loses_leader, p.variant != "single", "{p:?}");
    }
    assert_eq!(
        variants.keys().copied().collect::<Vec<_>>(),
        ["single", "then-kill-leader", "then-pause-leader"]
    );
    assert!(variants.values().all(|&n| n > 60), "{variants:?}");
}
