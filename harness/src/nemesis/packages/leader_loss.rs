//! The `leader-loss` package: the leader lost, alone or in the windows where loss is possible
//! (followers out of the ISR, followers behind, two failovers in a row, with the controller).
//! Its variants are a weighted enum (Vortex's `enum_weighted`): each has a weight, and the
//! seeded source picks one with probability weight / sum of weights. It builds steps only.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use super::{cut_leader_from_followers, kill, leader, PlanContext, PlanStep};
use crate::cluster::node::Node;
use crate::nemesis::schedule::{Action, Target, TopicPartition};
use faultline_checker::config::KillSignal;

/// One variant of `leader-loss`; its name is the plan's `variant` in the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LeaderLoss {
    AfterIsrShrink,
    FollowersBehind,
    Twice,
    WithController,
    Plain,
}

impl LeaderLoss {
    pub(super) const ALL: [LeaderLoss; 5] = [
        LeaderLoss::AfterIsrShrink,
        LeaderLoss::FollowersBehind,
        LeaderLoss::Twice,
        LeaderLoss::WithController,
        LeaderLoss::Plain,
    ];

    /// How often the variant is chosen, out of the sum (9). These are the shares the numbered
    /// arms of `gen_range(0..9)` gave each before (3, 2, 2, 1, 1 of 9), kept so a seeded
    /// run's mix of variants stays what it was.
    pub(super) fn weight(self) -> u32 {
        match self {
            LeaderLoss::AfterIsrShrink => 3,
            LeaderLoss::FollowersBehind => 2,
            LeaderLoss::Twice => 2,
            LeaderLoss::WithController => 1,
            LeaderLoss::Plain => 1,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            LeaderLoss::AfterIsrShrink => "after-isr-shrink",
            LeaderLoss::FollowersBehind => "followers-behind",
            LeaderLoss::Twice => "twice",
            LeaderLoss::WithController => "with-controller",
            LeaderLoss::Plain => "plain",
        }
    }

    fn choose(rng: &mut StdRng, ctx: &PlanContext) -> LeaderLoss {
        // Under legacy-hw half the plans take the window that protocol has (`Twice`): the
        // other windows lose data under every protocol, this one only there.
        if ctx.legacy_hw && rng.gen_bool(0.5) {
            return LeaderLoss::Twice;
        }
        let chosen = *LeaderLoss::ALL
            .choose_weighted(rng, |v| v.weight())
            .expect("the variants are listed and weigh something");
        match chosen {
            // Without a controller (a system file's system) the leader goes down alone.
            LeaderLoss::WithController if !ctx.controller => LeaderLoss::Plain,
            chosen => chosen,
        }
    }

    /// The variant's steps; the leader stays down for `down` before the plan heals.
    fn steps(
        self,
        rng: &mut StdRng,
        ctx: &PlanContext,
        tp: &TopicPartition,
        down: Duration,
    ) -> Vec<PlanStep> {
        let mut steps = match self {
            LeaderLoss::AfterIsrShrink => after_isr_shrink(rng, ctx, tp),
            LeaderLoss::FollowersBehind => followers_behind(rng, ctx, tp),
            LeaderLoss::Twice => twice(rng, ctx, tp),
            // The leader and the controller at once: the election waits for the controller.
            LeaderLoss::WithController => vec![
                PlanStep::Fault(kill(leader(tp), ctx.kill_signal)),
                PlanStep::Fault(kill(Target::Node(Node::Controller), KillSignal::Kill)),
            ],
            LeaderLoss::Plain => vec![PlanStep::Fault(if rng.gen_bool(0.5) {
                kill(leader(tp), ctx.kill_signal)
            } else {
                Action::Pause { target: leader(tp) }
            })],
        };
        steps.push(PlanStep::Wait(down));
        steps.push(PlanStep::HealMine);
        steps
    }
}

/// Builds a `leader-loss` plan's variant and steps.
pub(super) fn leader_loss(
    rng: &mut StdRng,
    ctx: &PlanContext,
    tp: &TopicPartition,
) -> (&'static str, Vec<PlanStep>) {
    let down = Duration::from_millis(rng.gen_range(500..=3000));
    let variant = LeaderLoss::choose(rng, ctx);
    (variant.name(), variant.steps(rng, ctx, tp, down))
}

/// The unclean-election window: followers fall out of the ISR while the leader keeps
/// acknowledging; then the leader dies and the network heals, so a lagging follower is all that
/// is left to elect.
fn after_isr_shrink(rng: &mut StdRng, ctx: &PlanContext, tp: &TopicPartition) -> Vec<PlanStep> {
    vec![
        PlanStep::Fault(cut_leader_from_followers(tp)),
        PlanStep::WaitIsr {
            size: 1,
            timeout: ctx.lags(rng, 3.0, 3.0) + Duration::from_secs(2),
        },
        PlanStep::Wait(Duration::from_millis(rng.gen_range(100..=800))),
        PlanStep::Fault(kill(leader(tp), KillSignal::Kill)),
        PlanStep::Fault(Action::Heal),
    ]
}

/// The acks=1 window: followers behind (but still in the ISR) when the leader dies.
fn followers_behind(rng: &mut StdRng, ctx: &PlanContext, tp: &TopicPartition) -> Vec<PlanStep> {
    vec![
        PlanStep::Fault(cut_leader_from_followers(tp)),
        PlanStep::Wait(ctx.lags(rng, 0.2, 0.7)),
        PlanStep::Fault(kill(leader(tp), KillSignal::Kill)),
        PlanStep::Fault(Action::Heal),
    ]
}

/// Two leaders lost in a row: the first failover makes the other followers truncate (to their
/// HW under legacy-hw: Kafka 0.10's makeFollower), the new leader is cut from them before they
/// fetch back what they cut, and it dies; a truncated follower, still in the ISR, is elected.
fn twice(rng: &mut StdRng, ctx: &PlanContext, tp: &TopicPartition) -> Vec<PlanStep> {
    vec![
        PlanStep::Fault(kill(leader(tp), KillSignal::Kill)),
        PlanStep::WaitNewLeader {
            timeout: ctx.lags(rng, 4.0, 4.0) + Duration::from_secs(2),
        },
        PlanStep::Fault(cut_leader_from_followers(tp)),
        PlanStep::Wait(Duration::from_millis(rng.gen_range(100..=400))),
        PlanStep::Fault(kill(leader(tp), KillSignal::Kill)),
        PlanStep::Fault(Action::Heal),
    ]
}
