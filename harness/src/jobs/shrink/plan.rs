//! The schedule being shrunk, as data, and every candidate the shrink can make of it — all pure:
//! no process, no file. A step keeps its identity (its index in the run's `schedule.txt`)
//! through every candidate, so what was learnt about it (a replay without it still lost
//! writes, or did not) follows it to the end. It owns the candidates' shapes: the causal cut
//! (the explanations' brokers and times), the time shifts and the rate cuts, the time limit a
//! candidate runs with, and the shrunk schedule's text with a reason before each step. The
//! order in which candidates are tried is `mod.rs`'s; dropping chunks is `ddmin`'s.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use faultline_checker::AnomalyKind;

use crate::cluster::node::{Endpoint, Node};
use crate::duration::format_duration;
use crate::nemesis::schedule::{
    format_step, Action, KafkaLinkSpec, LinkSpec, Member, NetworkPartitionSpec, Target,
};

/// How long a candidate's chaos phase runs past its last step: long enough for the controller
/// to fence a killed leader and elect another (its session timeout is under a second), so the
/// last fault's consequences happen inside the run rather than in its heal phase.
pub const TIME_LIMIT_MARGIN: Duration = Duration::from_secs(3);
/// The smallest gap before a step that the time phase still halves: below it a replay gains
/// less than its own jitter.
pub const MIN_GAP: Duration = Duration::from_millis(500);
/// The least time a move of the whole schedule to the front must save to be worth a replay.
pub const MIN_TO_FRONT: Duration = Duration::from_secs(3);
/// The lowest rate the rate phase tries: fewer sends a second leave too little to lose.
pub const MIN_RATE: f64 = 20.0;

/// One step of the schedule being shrunk.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Its position among the original schedule's steps (0-based): its identity.
    pub id: usize,
    pub at: Option<Duration>,
    pub action: Action,
    /// When the original run performed it (its `at` before any time shift).
    pub original_at: Option<Duration>,
    /// The original run recorded it as failed (`# failed: ...`): it changed nothing there.
    pub failed: bool,
}

impl Item {
    pub fn line(&self) -> String {
        format_step(self.at, &self.action)
    }
}

/// A schedule to replay, with the settings that shrink beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub steps: Vec<Item>,
    pub time_limit: Duration,
    pub rate: f64,
    /// What makes it smaller than the schedule it was made from.
    pub change: Change,
}

/// What a candidate changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The run's own schedule.
    Original,
    /// Only the steps the explanations point at: those touching `brokers`, up to `until`.
    Causal {
        brokers: Vec<u32>,
        until: Option<Duration>,
    },
    /// These steps (by id) dropped.
    Drop { ids: Vec<usize> },
    /// Step `id` and every later one moved earlier by `by`.
    Earlier { id: usize, by: Duration },
    /// The workload's rate lowered from `from`.
    Rate { from: f64 },
}

impl Change {
    pub fn describe(&self) -> String {
        match self {
            Change::Original => "the run's schedule".to_string(),
            Change::Causal { brokers, until } => {
                let names: Vec<String> = brokers.iter().map(u32::to_string).collect();
                let touching = if names.is_empty() {
                    String::new()
                } else {
                    format!(" touching broker(s) {}", names.join(","))
                };
                let until = until.map_or(String::new(), |t| {
                    format!(" up to {}", format_duration(round_ms(t)))
                });
                format!("the steps{touching}{until} (from the explanations)")
            }
            Change::Drop { ids } => format!("drop {}", describe_ids(ids)),
            Change::Earlier { id, by } => format!(
                "step {} and later ones {} earlier",
                id + 1,
                format_duration(*by)
            ),
            Change::Rate { from } => format!("rate lowered from {from}/s"),
        }
    }
}

/// `step 4`, `steps 3–7`, or `steps 1, 4, 9` (1-based, as in the original schedule).
pub fn describe_ids(ids: &[usize]) -> String {
    match ids {
        [one] => format!("step {}", one + 1),
        [first, .., last] if last - first + 1 == ids.len() => {
            format!("steps {}–{}", first + 1, last + 1)
        }
        _ => {
            let names: Vec<String> = ids.iter().map(|id| (id + 1).to_string()).collect();
            format!("steps {}", names.join(", "))
        }
    }
}

/// `1 step`, `4 steps`.
pub fn count_steps(n: usize) -> String {
    format!("{n} step{}", if n == 1 { "" } else { "s" })
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

/// The time limit a schedule runs with: its last step's time plus the margin, never more than
/// the run's own limit. A run whose limit was 0 (the schedule decides) or whose steps carry no
/// times keeps its own.
pub fn time_limit_for(steps: &[Item], original: Duration) -> Duration {
    let last = steps.iter().filter_map(|s| s.at).max();
    match last {
        Some(last) if !original.is_zero() => original.min(last + TIME_LIMIT_MARGIN),
        _ => original,
    }
}

/// The candidate that keeps `steps` from `from`'s settings, with the time limit that fits them.
pub fn with_steps(
    steps: Vec<Item>,
    rate: f64,
    original_limit: Duration,
    change: Change,
) -> Candidate {
    Candidate {
        time_limit: time_limit_for(&steps, original_limit),
        steps,
        rate,
        change,
    }
}

/// What an explanation sentence names: the brokers, and the latest time it mentions (seconds
/// since the run started, as the checker prints them: "at 14.5 s").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Named {
    pub brokers: BTreeSet<u32>,
    pub latest: Option<Duration>,
}

/// Reads the brokers (`broker 2`, `brokers 1, 3`) and times (`at 14.5 s`) out of an
/// explanation's sentence (docs/results.md). Offsets, epochs and LEOs are not brokers.
pub fn named_in(sentence: &str) -> Named {
    let words: Vec<&str> = sentence.split_whitespace().collect();
    let mut named = Named::default();
    for (i, word) in words.iter().enumerate() {
        match *word {
            "broker" => {
                if let Some(id) = words.get(i + 1).and_then(|w| number(w)) {
                    named.brokers.insert(id);
                }
            }
            "brokers" => {
                for next in &words[i + 1..] {
                    match number(next) {
                        Some(id) => named.brokers.insert(id),
                        None => break,
                    };
                    if !next.ends_with(',') {
                        break;
                    }
                }
            }
            "at" => {
                let seconds = words.get(i + 1).and_then(|w| w.parse::<f64>().ok());
                let unit = words
                    .get(i + 2)
                    .map(|w| w.trim_end_matches([',', '.', ')']));
                if let (Some(s), Some("s")) = (seconds, unit) {
                    if s.is_finite() && s >= 0.0 {
                        let t = Duration::from_secs_f64(s);
                        named.latest = Some(named.latest.map_or(t, |l| l.max(t)));
                    }
                }
            }
            _ => {}
        }
    }
    named
}

fn number(word: &str) -> Option<u32> {
    word.trim_end_matches([',', '.', ')', ':']).parse().ok()
}

/// Whether `action` may act on one of `brokers`. A step that names brokers touches those; one
/// that names only the controller or the clients touches none; one that names no one in
/// particular (`heal`, `delay all`, `start all`, `produce`, a wait, a role resolved when it
/// runs) may touch any, so it touches them.
pub fn touches(action: &Action, brokers: &BTreeSet<u32>) -> bool {
    let named = action.brokers();
    if !named.is_empty() {
        return named.iter().any(|b| brokers.contains(b));
    }
    !names_only_others(action)
}

/// True when every party the action names is the controller, the clients or a service.
fn names_only_others(action: &Action) -> bool {
    let node = |n: &Node| n.broker().is_none();
    let target = |t: &Target| matches!(t, Target::Node(n) if node(n));
    let member = |m: &Member| {
        matches!(m, Member::Endpoint(Endpoint::Client))
            || matches!(m, Member::Endpoint(Endpoint::Node(n)) if node(n))
    };
    match action {
        Action::Kill { target: t, .. } | Action::Pause { target: t } => target(t),
        Action::Start { node: Some(n) } | Action::Resume { node: Some(n) } => node(n),
        Action::Delay { links, .. } => match links {
            LinkSpec::All => false,
            LinkSpec::Touching(m) => member(m),
            LinkSpec::Link(a, b) => member(a) && member(b),
        },
        Action::NetworkPartition(spec) => match spec {
            NetworkPartitionSpec::Isolate(t) => target(t),
            NetworkPartitionSpec::Groups(groups) => groups.iter().flatten().all(member),
            NetworkPartitionSpec::OneWay { from, to } => from.iter().chain(to).all(member),
            _ => false,
        },
        _ => false,
    }
}

/// The candidate the explanations point at: the steps that touch `named.brokers` (every step,
/// when it names none), performed no later than `named.latest`, without the steps the original
/// run recorded as failed. The explanations count time from the run's start, the schedule
/// from the chaos phase's, which starts later: comparing the two numbers keeps a step or two
/// more, never fewer. None when it would drop nothing or keep nothing.
pub fn causal(
    steps: &[Item],
    named: &Named,
    rate: f64,
    original_limit: Duration,
) -> Option<Candidate> {
    let kept: Vec<Item> = steps
        .iter()
        .filter(|s| !s.failed)
        .filter(|s| named.brokers.is_empty() || touches(&s.action, &named.brokers))
        .filter(|s| match (s.at, named.latest) {
            (Some(at), Some(latest)) => at <= latest,
            _ => true,
        })
        .cloned()
        .collect();
    if kept.is_empty() || kept.len() == steps.len() {
        return None;
    }
    Some(with_steps(
        kept,
        rate,
        original_limit,
        Change::Causal {
            brokers: named.brokers.iter().copied().collect(),
            until: named.latest,
        },
    ))
}

/// Moves the whole schedule earlier so that its first timed step runs at `lead`: the quiet
/// time before the first kept fault only makes every replay longer. None when that would
/// save less than [`MIN_TO_FRONT`].
pub fn to_front(
    current: &Candidate,
    lead: Duration,
    original_limit: Duration,
) -> Option<Candidate> {
    let first = current.steps.iter().find(|s| s.at.is_some())?;
    let by = round_ms(first.at?.checked_sub(lead)?);
    if by < MIN_TO_FRONT {
        return None;
    }
    let steps = current
        .steps
        .iter()
        .map(|s| Item {
            at: s.at.map(|at| at.saturating_sub(by)),
            ..s.clone()
        })
        .collect();
    Some(with_steps(
        steps,
        current.rate,
        original_limit,
        Change::Earlier { id: first.id, by },
    ))
}

/// The steps grouped into the units the first pass of delta debugging drops together: a
/// fault and the later step that heals it (`kill N` … `start N`, `pause N` … `resume N`, a
/// partition … the next `heal`, `delay L D` … `delay L 0ms` on the same links, a message fault
/// … the `pass-response` of its API key on its links or on all, or the next `heal`); every
/// other step alone. Dropping a fault without its heal, or the other way round, is the second
/// pass's. Units are in the order of their first step, each holding ids in order.
pub fn units(steps: &[Item]) -> Vec<Vec<usize>> {
    let mut taken = vec![false; steps.len()];
    let mut units = Vec::new();
    for i in 0..steps.len() {
        if taken[i] {
            continue;
        }
        let mut unit = vec![steps[i].id];
        for j in i + 1..steps.len() {
            if taken[j] {
                continue;
            }
            match pairs(&steps[i].action, &steps[j].action) {
                Pairing::Heals => {
                    taken[j] = true;
                    unit.push(steps[j].id);
                    break;
                }
                Pairing::Replaces => break,
                Pairing::Unrelated => {}
            }
        }
        units.push(unit);
    }
    units
}

/// How a later step relates to a fault.
#[derive(Debug, PartialEq, Eq)]
enum Pairing {
    /// It undoes the fault.
    Heals,
    /// It replaces the fault (a new partition, another delay on the same links): the fault
    /// has no heal of its own.
    Replaces,
    Unrelated,
}

fn pairs(fault: &Action, later: &Action) -> Pairing {
    let broker_target = |t: &Target| match t {
        Target::Node(n) => Some(*n),
        _ => None,
    };
    match (fault, later) {
        (Action::Kill { target, .. }, Action::Start { node: Some(n) })
        | (Action::Pause { target }, Action::Resume { node: Some(n) })
            if broker_target(target) == Some(*n) =>
        {
            Pairing::Heals
        }
        (Action::NetworkPartition(_), Action::Heal) => Pairing::Heals,
        (Action::Response { .. }, Action::Heal) => Pairing::Heals,
        (
            Action::Response { fault, on },
            Action::PassResponse {
                api_key,
                on: passed,
            },
        ) if fault.api_key == *api_key && (passed == on || *passed == KafkaLinkSpec::All) => {
            Pairing::Heals
        }
        (
            Action::Response { fault, on },
            Action::Response {
                fault: next,
                on: next_on,
            },
        ) if fault.api_key == next.api_key && on == next_on => Pairing::Replaces,
        (Action::NetworkPartition(_), Action::NetworkPartition(_)) => Pairing::Replaces,
        (
            Action::Delay {
                links, delay: d, ..
            },
            Action::Delay {
                links: other,
                delay: next,
                ..
            },
        ) if links == other && d.delay_ms > 0 => {
            if next.delay_ms == 0 {
                Pairing::Heals
            } else {
                Pairing::Replaces
            }
        }
        _ => Pairing::Unrelated,
    }
}

/// The gaps the time phase may halve, largest first: before each timed step, the time since
/// the previous timed step (or since the chaos phase started), when at least [`MIN_GAP`] and
/// not in `tried`. Each candidate moves that step and every later timed step earlier by half
/// the gap, so the order of steps never changes.
pub fn earlier(
    current: &Candidate,
    tried: &BTreeSet<usize>,
    original_limit: Duration,
) -> Vec<Candidate> {
    let mut gaps: Vec<(Duration, usize)> = Vec::new();
    let mut previous = Duration::ZERO;
    for (i, step) in current.steps.iter().enumerate() {
        let Some(at) = step.at else { continue };
        let gap = at.saturating_sub(previous);
        if gap >= MIN_GAP && !tried.contains(&step.id) {
            gaps.push((gap, i));
        }
        previous = at;
    }
    gaps.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    gaps.into_iter()
        .map(|(gap, i)| {
            let by = round_ms(gap / 2);
            let mut steps = current.steps.clone();
            for step in &mut steps[i..] {
                step.at = step.at.map(|at| at.saturating_sub(by));
            }
            let id = current.steps[i].id;
            with_steps(
                steps,
                current.rate,
                original_limit,
                Change::Earlier { id, by },
            )
        })
        .collect()
}

/// The rate phase's next candidate: half the rate, while at least [`MIN_RATE`].
pub fn lower_rate(current: &Candidate) -> Option<Candidate> {
    let rate = (current.rate / 2.0).floor();
    (rate >= MIN_RATE).then(|| Candidate {
        rate,
        change: Change::Rate { from: current.rate },
        ..current.clone()
    })
}

/// What is known about one kept step: the smallest candidate without it that did not
/// reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evidence {
    /// How many other steps that candidate also dropped.
    pub dropped_with: usize,
    pub reproduced: u32,
    pub replays: u32,
}

impl Evidence {
    /// True when `self` says more about the step than `other`: fewer steps dropped along.
    pub fn stronger_than(&self, other: &Evidence) -> bool {
        self.dropped_with < other.dropped_with
    }
}

/// The words a reason uses for a replay that showed `kind`: "0 of 1 replays lost writes".
pub fn showed(kind: AnomalyKind) -> &'static str {
    match kind {
        AnomalyKind::Lost => "lost writes",
        AnomalyKind::Moved => "moved writes",
        AnomalyKind::InconsistentOffset => "showed inconsistent offsets",
        AnomalyKind::Duplicate => "duplicated records",
        AnomalyKind::DirtyRead => "showed dirty reads",
        AnomalyKind::Divergence => "left diverged replicas",
        AnomalyKind::NonmonotonicPoll => "showed non-monotonic polls",
        AnomalyKind::NonmonotonicSend => "showed non-monotonic sends",
        AnomalyKind::PollSkip => "showed poll skips",
        AnomalyKind::Phantom => "showed phantom records",
        AnomalyKind::FailedSendPresent => "kept failed sends",
    }
}

/// The comment before a kept step: why it must stay, or that nobody found out.
pub fn reason(
    evidence: Option<&Evidence>,
    kind: AnomalyKind,
    confirm: u32,
    untried: &str,
) -> String {
    match evidence {
        Some(e) => {
            let with = match e.dropped_with {
                0 => "dropping it".to_string(),
                1 => "dropping it with 1 other step".to_string(),
                n => format!("dropping it with {n} other steps"),
            };
            format!(
                "{with}: {} of {} replays {} ({confirm} of {confirm} needed)",
                e.reproduced,
                e.replays,
                showed(kind)
            )
        }
        None => format!("not tried without it: {untried}"),
    }
}

/// The shrunk schedule's text: `header` lines as comments, then each step after a comment
/// saying why it stays (and where it was, when the time phase moved it).
pub fn schedule_text(
    header: &[String],
    steps: &[Item],
    reasons: &dyn Fn(&Item) -> String,
) -> String {
    let mut out = String::new();
    for line in header {
        let _ = writeln!(out, "# {line}");
    }
    for step in steps {
        let mut why = reasons(step);
        if step.at != step.original_at {
            if let Some(original) = step.original_at {
                let _ = write!(
                    why,
                    "; the run performed it at {}",
                    format_duration(original)
                );
            }
        }
        let _ = writeln!(out, "# step {}: {why}", step.id + 1);
        let _ = writeln!(out, "{}", step.line());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::schedule::parse_schedule;

    fn items(text: &str) -> Vec<Item> {
        parse_schedule(text)
            .unwrap()
            .into_iter()
            .enumerate()
            .map(|(id, s)| Item {
                id,
                at: s.at,
                original_at: s.at,
                action: s.action,
                failed: false,
            })
            .collect()
    }

    fn ids(steps: &[Item]) -> Vec<usize> {
        steps.iter().map(|s| s.id).collect()
    }

    #[test]
    fn explanations_name_brokers_and_their_latest_time() {
        let named = named_in(
            "offsets 3168–3335 of t/0, acknowledged by broker 1 in epoch 5, were lost: broker 2 \
             was elected uncleanly at 14.5 s (epoch 6) with LEO 3168, and broker 1 truncated \
             3168–3335 at 15.3 s.",
        );
        assert_eq!(named.brokers, BTreeSet::from([1, 2]));
        assert_eq!(named.latest, Some(Duration::from_millis(15_300)));
        let power =
            named_in("offsets 0–41 of t/0, ...: brokers 1, 3 lost power at 3.2 s (9 bytes)");
        assert_eq!(power.brokers, BTreeSet::from([1, 3]));
        assert_eq!(power.latest, Some(Duration::from_millis(3200)));
        assert_eq!(
            named_in("no node event explains this loss."),
            Named::default()
        );
    }

    #[test]
    fn a_step_touches_the_brokers_it_names_and_global_steps_touch_all() {
        let named = BTreeSet::from([1, 2]);
        let touched: Vec<bool> = items(
            "kill 3\nkill 1\npartition groups 3 | 1,2\nheal\ndelay all 10ms\nkill controller\n\
             start all\ndelay link controller->client 5ms\npause leader\npartition isolate controller\n",
        )
        .iter()
        .map(|s| touches(&s.action, &named))
        .collect();
        assert_eq!(
            touched,
            [false, true, true, true, true, false, true, false, true, false]
        );
    }

    #[test]
    fn the_causal_candidate_keeps_named_brokers_up_to_the_latest_time_without_failed_steps() {
        let mut steps = items(
            "at 1s kill 1\nat 2s kill 3\nat 3s start 1\nat 4s partition groups 2 | 1,3\n\
             at 5s heal\nat 20s kill 2\n",
        );
        steps[2].failed = true;
        let named = Named {
            brokers: BTreeSet::from([1, 2]),
            latest: Some(Duration::from_secs(6)),
        };
        let c = causal(&steps, &named, 500.0, Duration::from_secs(30)).unwrap();
        assert_eq!(ids(&c.steps), [0, 3, 4]);
        assert_eq!(c.time_limit, Duration::from_secs(8));
        // Only the time: every broker's steps up to it.
        let until = Named {
            brokers: BTreeSet::new(),
            latest: Some(Duration::from_secs(6)),
        };
        let c = causal(&steps, &until, 500.0, Duration::from_secs(30)).unwrap();
        assert_eq!(ids(&c.steps), [0, 1, 3, 4]);
        assert_eq!(
            c.change.describe(),
            "the steps up to 6s (from the explanations)"
        );
        // Nothing to drop: no candidate.
        let all = Named {
            brokers: BTreeSet::from([1, 2, 3]),
            latest: None,
        };
        steps[2].failed = false;
        assert!(causal(&steps, &all, 500.0, Duration::from_secs(30)).is_none());
    }

    #[test]
    fn to_front_moves_the_first_step_to_the_lead_when_it_saves_enough() {
        let steps = items("at 10s kill 1\nwait isr 2\nat 12500ms start 1\n");
        let current = with_steps(steps, 500.0, Duration::from_secs(30), Change::Original);
        let moved = to_front(&current, Duration::from_secs(2), Duration::from_secs(30)).unwrap();
        let lines: Vec<String> = moved.steps.iter().map(Item::line).collect();
        assert_eq!(
            lines,
            [
                "at 2s kill 1",
                "wait isr 2 timeout 30s",
                "at 4500ms start 1"
            ]
        );
        assert_eq!(moved.time_limit, Duration::from_millis(7500));
        assert!(to_front(&moved, Duration::from_secs(2), Duration::from_secs(30)).is_none());
    }

    #[test]
    fn the_time_limit_follows_the_last_step_but_never_grows() {
        let steps = items("at 1s kill 1\nat 4s start 1\n");
        assert_eq!(
            time_limit_for(&steps, Duration::from_secs(30)),
            Duration::from_secs(7)
        );
        assert_eq!(
            time_limit_for(&steps, Duration::from_secs(5)),
            Duration::from_secs(5)
        );
        // A schedule that decides its own length keeps doing so.
        assert_eq!(time_limit_for(&steps, Duration::ZERO), Duration::ZERO);
        assert_eq!(
            time_limit_for(&items("kill 1\nwait 2s\n"), Duration::from_secs(9)),
            Duration::from_secs(9)
        );
    }

    #[test]
    fn earlier_halves_the_largest_gaps_first_and_keeps_the_order() {
        let steps = items("at 8s kill 1\nat 9s heal\nat 9200ms start 1\nwait 1s\nat 15s kill 2\n");
        let current = with_steps(steps, 500.0, Duration::from_secs(30), Change::Original);
        let tried = BTreeSet::from([4]);
        let candidates = earlier(&current, &tried, Duration::from_secs(30));
        // Gaps: 8 s before step 1, 1 s before step 2, 0.2 s before step 3 (too small),
        // 5.8 s before step 5 (tried already).
        let changes: Vec<&Change> = candidates.iter().map(|c| &c.change).collect();
        assert_eq!(
            changes,
            [
                &Change::Earlier {
                    id: 0,
                    by: Duration::from_secs(4)
                },
                &Change::Earlier {
                    id: 1,
                    by: Duration::from_millis(500)
                },
            ]
        );
        let first: Vec<String> = candidates[0].steps.iter().map(Item::line).collect();
        assert_eq!(
            first,
            [
                "at 4s kill 1",
                "at 5s heal",
                "at 5200ms start 1",
                "wait 1s",
                "at 11s kill 2"
            ]
        );
        assert_eq!(candidates[0].time_limit, Duration::from_secs(14));
    }

    #[test]
    fn the_rate_halves_down_to_its_floor() {
        let mut c = with_steps(
            items("kill 1\n"),
            100.0,
            Duration::from_secs(10),
            Change::Original,
        );
        let mut rates = Vec::new();
        while let Some(next) = lower_rate(&c) {
            rates.push(next.rate);
            c = next;
        }
        assert_eq!(rates, [50.0, 25.0]);
    }

    #[test]
    fn the_shrunk_schedule_says_why_before_every_step_and_parses_back() {
        let mut steps = items("at 8s kill 1\nat 9s heal\n");
        steps[1].at = Some(Duration::from_secs(4));
        let evidence = Evidence {
            dropped_with: 0,
            reproduced: 0,
            replays: 1,
        };
        let text = schedule_text(&["shrunk".to_string()], &steps, &|s: &Item| {
            reason(
                (s.id == 0).then_some(&evidence),
                AnomalyKind::Lost,
                2,
                "the budget ran out",
            )
        });
        assert_eq!(
            text,
            "# shrunk\n\
             # step 1: dropping it: 0 of 1 replays lost writes (2 of 2 needed)\n\
             at 8s kill 1\n\
             # step 2: not tried without it: the budget ran out; the run performed it at 9s\n\
             at 4s heal\n"
        );
        let back = parse_schedule(&text).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].at, Some(Duration::from_secs(4)));
    }

    #[test]
    fn a_fault_and_its_heal_make_one_unit() {
        let steps = items(
            "at 1s partition groups 1 | 2,3\nat 2s kill 2\nat 3s heal\nat 4s kill 2\n\
             at 5s start 2\nat 6s partition halves\nat 7s partition groups 3 | 1,2\n\
             at 8s heal\nat 9s delay all 10ms\nat 10s delay all 0ms\nat 11s pause 1\n\
             at 12s resume all\nat 13s start 2\n\
             at 14s drop-response produce on 2 count 1\nat 15s pass-response fetch on 2\n\
             at 16s pass-response produce on all\nat 17s delay-response produce 5ms on 1\n\
             at 18s error-response produce 6 on 1\nat 19s heal\n",
        );
        assert_eq!(
            units(&steps),
            [
                vec![0, 2],
                vec![1, 4],
                vec![3, 12],
                vec![5],
                vec![6, 7],
                vec![8, 9],
                vec![10],
                vec![11],
                vec![13, 15],
                vec![14],
                vec![16],
                vec![17, 18],
            ]
        );
    }

    #[test]
    fn ids_are_described_as_ranges_when_they_are_one() {
        assert_eq!(describe_ids(&[3]), "step 4");
        assert_eq!(describe_ids(&[2, 3, 4]), "steps 3–5");
        assert_eq!(describe_ids(&[0, 4]), "steps 1, 5");
    }
}
