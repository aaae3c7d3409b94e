//! Fault packages: the shapes in which Kafka's replication really breaks, as plans of schedule
//! steps that the generator runs on their own timers (Jepsen's nemesis packages, Vortex's fault
//! mixes). A [`Plan`] is data — steps in the schedule language plus plan-only steps (`wait isr`
//! on the plan's partition, "heal what this plan did") — built from a seeded random source and
//! the run's settings. This module only builds plans; the generator runs them and the executor
//! applies their faults.
//!
//! The single faults of `--nemesis kill,pause,delay,partition` are one-step plans too: a fault,
//! held for a while, then healed. `drop-response` (only with Kafka-aware links) drops the next
//! few Produce responses from the leader, and in some plans then loses the leader, so a
//! client's retry lands on a new one. `leader_loss` holds that package's weighted variants;
//! the unit tests are in `tests`.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use crate::cluster::node::Node;
use crate::cluster::proxy::kafka::faults::{ResponseAction, ResponseFault};
use crate::cluster::proxy::Delay;
use crate::cluster::TopicSpec;
use crate::nemesis::schedule::{
    Action, KafkaLinkSpec, LinkSpec, Member, NetworkPartitionSpec, PowerLossTargets, Target,
    TopicPartition,
};
pub use faultline_checker::config::FaultKind;
use faultline_checker::config::KillSignal;
use kafka_protocol::messages::ApiKey;

mod leader_loss;
#[cfg(test)]
mod tests;

use leader_loss::leader_loss;

/// One line for `faultline list` and `--help`: what a fault kind or package does and what it
/// aims at. (The kinds are the checker's, the names test.json records.)
pub fn describe(kind: FaultKind) -> &'static str {
    match kind {
        FaultKind::Kill => "SIGKILL (or SIGTERM) a target, restart it a while later",
        FaultKind::Pause => "SIGSTOP a target, SIGCONT it a while later",
        FaultKind::Delay => "delay every link 20-200 ms with jitter, remove it a while later",
        FaultKind::Partition => {
            "cut the network: isolate a target, halves, bridge or one-way; heal a while later"
        }
        FaultKind::IsrPressure => {
            "shrink the ISR while the leader keeps acknowledging: cut the leader from its \
             followers but not from the controller, or pause followers, past \
             replica.lag.time.max.ms"
        }
        FaultKind::LeaderLoss => {
            "lose the leader: kill or pause it, also right after its followers fell behind or \
             out of the ISR (the unclean-election and acks=1 windows), also with the controller"
        }
        FaultKind::RollingRestart => {
            "kill and restart brokers one after another, faster and slower than the session \
             timeout and the HW checkpoint interval (KIP-101's window)"
        }
        FaultKind::PowerLoss => {
            "only with --lazyfs: SIGKILL a broker, drop every byte it had not fsynced, \
             restart it (a power cut; the page cache does not survive it); in half the plans \
             the partition's last ISR member, once its followers were cut off (KIP-966's case)"
        }
        FaultKind::DropResponse => {
            "only with Kafka-aware links (--client kafka, --system): drop the next 1-3 Produce \
             responses from the leader and close the client's connection after the broker \
             appended; in two plans of three then kill or pause the leader, so a retry lands \
             on a new leader (without idempotence, the value is written twice)"
        }
    }
}

/// How often `--nemesis all` picks this kind, relative to the others. The packages weigh more:
/// they are what finds the losses the weaker settings allow.
pub fn weight(kind: FaultKind) -> u32 {
    match kind {
        FaultKind::Kill | FaultKind::Pause | FaultKind::Delay | FaultKind::Partition => 1,
        FaultKind::IsrPressure => 2,
        FaultKind::LeaderLoss => 6,
        FaultKind::RollingRestart => 2,
        FaultKind::PowerLoss => 2,
        FaultKind::DropResponse => 2,
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanStep {
    /// A fault step of the schedule language; the runner remembers how to heal what it did.
    Fault(Action),
    Wait(Duration),
    /// Until the plan's partition has an ISR of exactly `size`, at most `timeout`; the plan
    /// goes on either way (a timeout is recorded).
    WaitIsr {
        size: usize,
        timeout: Duration,
    },
    /// Until the plan's partition has a leader other than the one it had when the step began,
    /// at most `timeout`; the plan goes on either way.
    WaitNewLeader {
        timeout: Duration,
    },
    /// Heals every fault this plan applied and has not healed yet.
    HealMine,
}

/// A package's plan: steps run in order by one task, ending with `HealMine`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub kind: FaultKind,
    /// Which variant of the package, for the record (`leader-loss/after-isr-shrink`).
    pub variant: &'static str,
    pub partition: TopicPartition,
    pub steps: Vec<PlanStep>,
}

/// What plans are built from: the run's settings and the seeded source.
#[derive(Debug, Clone)]
pub struct PlanContext {
    pub topics: Vec<TopicSpec>,
    pub brokers: Vec<u32>,
    pub replica_lag_time_max_ms: u64,
    /// How long a single fault is held, on average (`--nemesis-interval`).
    pub interval: Duration,
    pub kill_signal: KillSignal,
    pub targets: Vec<crate::nemesis::generator::TargetKind>,
    /// The brokers truncate to their HW when they follow a new leader
    /// (`--replication-protocol legacy-hw`): `leader-loss` then aims at that window more often.
    pub legacy_hw: bool,
    /// The cluster has a controller to aim at (faultline-node); a system file's system has none.
    pub controller: bool,
    /// A system file's services (`service:NAME`): where there is no controller, the
    /// `controller` target kind aims at one of them — the shared part of the system, as
    /// PostgreSQL is Tansu's, as a partition puts them where the controller would be.
    pub services: Vec<Node>,
}

impl PlanContext {
    fn lag(&self) -> Duration {
        Duration::from_millis(self.replica_lag_time_max_ms)
    }

    /// A duration uniformly in `[low, high]` times the lag time.
    fn lags(&self, rng: &mut StdRng, low: f64, high: f64) -> Duration {
        self.lag().mul_f64(rng.gen_range(low..=high))
    }

    fn hold(&self, rng: &mut StdRng) -> Duration {
        self.interval.mul_f64(rng.gen_range(0.5..=2.0))
    }

    fn random_partition(&self, rng: &mut StdRng) -> TopicPartition {
        let topic = self.topics.choose(rng).expect("a run has a topic");
        TopicPartition {
            topic: topic.name.clone(),
            partition: rng.gen_range(0..topic.partitions),
        }
    }

    fn target(&self, rng: &mut StdRng, tp: &TopicPartition) -> Target {
        use crate::nemesis::generator::TargetKind;
        match self
            .targets
            .choose(rng)
            .copied()
            .unwrap_or(TargetKind::Random)
        {
            TargetKind::Random => Target::Random,
            TargetKind::Leader => Target::Leader(Some(tp.clone())),
            TargetKind::Follower => Target::Follower(Some(tp.clone())),
            TargetKind::Controller if self.controller => Target::Node(Node::Controller),
            // No controller (a system file's system): one of its services, else any broker.
            TargetKind::Controller => self
                .services
                .choose(rng)
                .map_or(Target::Random, |s| Target::Node(*s)),
        }
    }
}

/// Builds one plan of `kind`. The plan's partition is chosen once, first: the plan records it
/// and every role in its steps names it.
pub fn plan(kind: FaultKind, rng: &mut StdRng, ctx: &PlanContext) -> Plan {
    let tp = ctx.random_partition(rng);
    let (variant, steps) = match kind {
        FaultKind::Kill => {
            let action = kill(ctx.target(rng, &tp), ctx.kill_signal);
            single(ctx, rng, action)
        }
        FaultKind::Pause => {
            let action = Action::Pause {
                target: ctx.target(rng, &tp),
            };
            single(ctx, rng, action)
        }
        FaultKind::Delay => {
            let delay_ms = *[20u64, 50, 100, 200].choose(rng).expect("not empty");
            let action = Action::Delay {
                links: LinkSpec::All,
                delay: Delay {
                    delay_ms,
                    jitter_ms: delay_ms / 4,
                },
                one_way: false,
            };
            single(ctx, rng, action)
        }
        FaultKind::Partition => {
            let spec = match rng.gen_range(0..4) {
                0 => NetworkPartitionSpec::Isolate(ctx.target(rng, &tp)),
                1 => NetworkPartitionSpec::Halves,
                2 => NetworkPartitionSpec::Bridge,
                _ => NetworkPartitionSpec::OneWayRandom,
            };
            single(ctx, rng, Action::NetworkPartition(spec))
        }
        FaultKind::IsrPressure => isr_pressure(rng, ctx, &tp),
        FaultKind::LeaderLoss => leader_loss(rng, ctx, &tp),
        FaultKind::RollingRestart => rolling_restart(rng, ctx, &tp),
        FaultKind::PowerLoss => power_loss(rng, ctx, &tp),
        FaultKind::DropResponse => drop_response(rng, ctx, &tp),
    };
    Plan {
        kind,
        variant,
        partition: tp,
        steps,
    }
}

/// A power cut of one broker; in half the plans, of the partition's last ISR member: its
/// followers are cut from it until the ISR is the leader alone, and it loses power there — the
/// case KIP-966 (Eligible Leader Replicas) was written for. Without fsync, Kafka 3.7 elects it
/// again with what survived and its followers truncate committed records; 4.1 elects an
/// Eligible Leader Replica (the scenario `last-replica-standing` shows both).
fn power_loss(
    rng: &mut StdRng,
    ctx: &PlanContext,
    tp: &TopicPartition,
) -> (&'static str, Vec<PlanStep>) {
    if rng.gen_bool(0.5) {
        let steps = vec![
            PlanStep::Fault(cut_leader_from_followers(tp)),
            PlanStep::WaitIsr {
                size: 1,
                timeout: ctx.lags(rng, 4.0, 6.0),
            },
            PlanStep::Fault(Action::PowerLoss(PowerLossTargets::Some(vec![leader(tp)]))),
            PlanStep::Wait(ctx.hold(rng)),
            PlanStep::HealMine,
        ];
        return ("last-isr-member", steps);
    }
    let target = match ctx.target(rng, tp) {
        // The controller's metadata and a service's files are not on lazy mounts: aim at a
        // broker instead.
        Target::Node(Node::Controller | Node::Service(_)) => Target::Random,
        target => target,
    };
    let action = Action::PowerLoss(PowerLossTargets::Some(vec![target]));
    single(ctx, rng, action)
}

/// The next 1–3 Produce responses from the partition's leader are dropped: the leader
/// appended, the client sees its connection close. In a third of the plans that is all (held,
/// then passed); in the others the leader is then killed or paused 20–200 ms later (by when
/// the drops have happened at any usual rate), so a client that retries sends the same value
/// to a new leader — the write that lands twice without an idempotent producer.
fn drop_response(
    rng: &mut StdRng,
    ctx: &PlanContext,
    tp: &TopicPartition,
) -> (&'static str, Vec<PlanStep>) {
    let drop = Action::Response {
        fault: ResponseFault {
            api_key: ApiKey::Produce as i16,
            action: ResponseAction::Drop,
            count: Some(rng.gen_range(1..=3)),
        },
        on: KafkaLinkSpec::To(leader(tp)),
    };
    let (variant, lose_leader) = match rng.gen_range(0..3) {
        0 => return single(ctx, rng, drop),
        1 => ("then-kill-leader", kill(leader(tp), ctx.kill_signal)),
        _ => ("then-pause-leader", Action::Pause { target: leader(tp) }),
    };
    let steps = vec![
        PlanStep::Fault(drop),
        PlanStep::Wait(Duration::from_millis(rng.gen_range(20..=200))),
        PlanStep::Fault(lose_leader),
        PlanStep::Wait(ctx.hold(rng)),
        PlanStep::HealMine,
    ];
    (variant, steps)
}

fn kill(target: Target, signal: KillSignal) -> Action {
    Action::Kill { target, signal }
}

fn leader(tp: &TopicPartition) -> Target {
    Target::Leader(Some(tp.clone()))
}

/// The leader cut from its followers; the controller and the clients still reach both.
fn cut_leader_from_followers(tp: &TopicPartition) -> Action {
    Action::NetworkPartition(NetworkPartitionSpec::Groups(vec![
        vec![Member::Leader(Some(tp.clone()))],
        vec![Member::Followers(Some(tp.clone()))],
    ]))
}

fn single(ctx: &PlanContext, rng: &mut StdRng, action: Action) -> (&'static str, Vec<PlanStep>) {
    let hold = ctx.hold(rng);
    (
        "single",
        vec![
            PlanStep::Fault(action),
            PlanStep::Wait(hold),
            PlanStep::HealMine,
        ],
    )
}

/// The ISR shrinks while the leader keeps acknowledging.
fn isr_pressure(
    rng: &mut StdRng,
    ctx: &PlanContext,
    tp: &TopicPartition,
) -> (&'static str, Vec<PlanStep>) {
    if rng.gen_bool(0.6) {
        let steps = vec![
            PlanStep::Fault(cut_leader_from_followers(tp)),
            PlanStep::Wait(ctx.lags(rng, 1.5, 4.0)),
            PlanStep::HealMine,
        ];
        ("cut-followers", steps)
    } else {
        let steps = vec![
            PlanStep::Fault(Action::Pause {
                target: Target::Follower(Some(tp.clone())),
            }),
            PlanStep::Wait(ctx.lags(rng, 1.5, 3.0)),
            PlanStep::HealMine,
        ];
        ("pause-follower", steps)
    }
}

/// Brokers killed and restarted one after another, or a follower restarted just before the
/// leader dies (KIP-101: the restarted follower has truncated and not yet caught up).
fn rolling_restart(
    rng: &mut StdRng,
    ctx: &PlanContext,
    tp: &TopicPartition,
) -> (&'static str, Vec<PlanStep>) {
    if rng.gen_bool(0.5) {
        let steps = vec![
            PlanStep::Fault(kill(Target::Follower(Some(tp.clone())), KillSignal::Kill)),
            PlanStep::HealMine,
            PlanStep::Wait(Duration::from_millis(rng.gen_range(20..=400))),
            PlanStep::Fault(kill(leader(tp), KillSignal::Kill)),
            PlanStep::Wait(Duration::from_millis(rng.gen_range(500..=2000))),
            PlanStep::HealMine,
        ];
        return ("follower-then-leader", steps);
    }
    // Faster than the session timeout (the controller may never notice) or slower than it and
    // than the HW checkpoint interval; one gap for the whole roll.
    let (variant, gap) = if rng.gen_bool(0.5) {
        ("fast", Duration::from_millis(rng.gen_range(50..=300)))
    } else {
        ("slow", ctx.lags(rng, 1.5, 3.0))
    };
    let mut brokers = ctx.brokers.clone();
    brokers.shuffle(rng);
    let mut steps = Vec::new();
    for id in brokers {
        steps.push(PlanStep::Fault(kill(
            Target::Node(Node::Broker(id)),
            ctx.kill_signal,
        )));
        steps.push(PlanStep::Wait(gap));
        steps.push(PlanStep::HealMine);
        steps.push(PlanStep::Wait(gap));
    }
    // The roll ends with its last restart; the plan's last step is the heal.
    steps.pop();
    (variant, steps)
}
