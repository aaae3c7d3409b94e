//! Probes: the Kafka situations a run went through, detected from the nodes' events and the
//! history — an ISR that shrank, fell below min.insync.replicas or to the leader alone, clean,
//! unclean and ELR elections, truncations, fencing, refused writes, a power cut of the last
//! ISR member, a paused leader, acks=all timeouts, a stale fetch refused. A passing run proves
//! something only about the situations it reached: the gate and the scenarios declare the
//! probes they need, and a run that missed one is `vacuous`, not passed (docs/results.md).
//!
//! This module only detects; the history pass collects its inputs ([`ProbeInputs`]) and the
//! events come from [`crate::partition_events::Events`].

use crate::events::NodeEvent;
use crate::partition_events::Events;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A named situation a run may go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    /// The controller accepted an ISR with fewer members than the one before.
    IsrShrunk,
    /// An ISR went below min.insync.replicas.
    IsrBelowMin,
    /// An ISR went down to one member.
    IsrLeaderOnly,
    /// A new leader was elected from the ISR (topic creation does not count).
    CleanElection,
    /// A leader was elected from outside the ISR (and ELR): the topic's unclean election, or
    /// KIP-966's last known leader.
    UncleanElection,
    /// A leader was elected from the Eligible Leader Replicas (KIP-966, Kafka 4.1).
    ElrElection,
    /// A replica truncated records below a high watermark the history proves: offsets some
    /// acks=all send had been acknowledged at before the truncation.
    TruncatedBelowHw,
    /// A follower truncated its log at the diverging epoch the leader named, removing records.
    EpochDivergenceResolved,
    /// The controller fenced a broker.
    Fenced,
    /// A send was refused with NOT_ENOUGH_REPLICAS (or …_AFTER_APPEND).
    NotEnoughReplicas,
    /// A power cut hit a broker that was then the only member of some partition's ISR.
    PowerLossLastIsrMember,
    /// A broker was paused (SIGSTOP) while it led some partition.
    LeaderPaused,
    /// An acks=all send timed out waiting for the ISR (REQUEST_TIMED_OUT).
    AcksAllTimeout,
    /// A leader refused a fetch of a follower's previous incarnation by its broker epoch.
    StaleFetchRefused,
    /// A leader answered an idempotent producer's retry with the original batch's offsets
    /// instead of writing it twice (node event `duplicate_batch`).
    RetryDeduplicated,
}

impl Probe {
    pub const ALL: [Probe; 15] = [
        Probe::IsrShrunk,
        Probe::IsrBelowMin,
        Probe::IsrLeaderOnly,
        Probe::CleanElection,
        Probe::UncleanElection,
        Probe::ElrElection,
        Probe::TruncatedBelowHw,
        Probe::EpochDivergenceResolved,
        Probe::Fenced,
        Probe::NotEnoughReplicas,
        Probe::PowerLossLastIsrMember,
        Probe::LeaderPaused,
        Probe::AcksAllTimeout,
        Probe::StaleFetchRefused,
        Probe::RetryDeduplicated,
    ];

    /// The name in results.json, the CLI and the docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Probe::IsrShrunk => "isr_shrunk",
            Probe::IsrBelowMin => "isr_below_min",
            Probe::IsrLeaderOnly => "isr_leader_only",
            Probe::CleanElection => "clean_election",
            Probe::UncleanElection => "unclean_election",
            Probe::ElrElection => "elr_election",
            Probe::TruncatedBelowHw => "truncated_below_hw",
            Probe::EpochDivergenceResolved => "epoch_divergence_resolved",
            Probe::Fenced => "fenced",
            Probe::NotEnoughReplicas => "not_enough_replicas",
            Probe::PowerLossLastIsrMember => "power_loss_last_isr_member",
            Probe::LeaderPaused => "leader_paused",
            Probe::AcksAllTimeout => "acks_all_timeout",
            Probe::StaleFetchRefused => "stale_fetch_refused",
            Probe::RetryDeduplicated => "retry_deduplicated",
        }
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Probe {
    type Err = String;
    fn from_str(text: &str) -> Result<Probe, String> {
        Probe::ALL
            .into_iter()
            .find(|p| p.as_str() == text)
            .ok_or_else(|| {
                let known: Vec<&str> = Probe::ALL.iter().map(|p| p.as_str()).collect();
                format!("unknown probe {text:?} (known: {})", known.join(", "))
            })
    }
}

/// Places kept per probe: enough to say where, bounded for long runs.
pub const MAX_PLACES: usize = 8;

/// How often and where a run reached one probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeHit {
    /// The first time, in milliseconds since the run's start.
    pub first_ms: u64,
    pub count: u64,
    /// Where, in the order first reached (`t/0 broker 2`), at most [`MAX_PLACES`].
    pub places: Vec<String>,
}

/// Every probe the run reached (the ones it did not are absent).
pub type Probes = BTreeMap<Probe, ProbeHit>;

/// What the history pass collects for the probes, in its own clock (ns since the run's start).
#[derive(Debug, Default)]
pub struct ProbeInputs {
    /// Sends refused with NOT_ENOUGH_REPLICAS: (time, partition name).
    pub not_enough_replicas: Vec<(u64, String)>,
    /// acks=all sends that ended REQUEST_TIMED_OUT: (time, partition name).
    pub acks_all_timeouts: Vec<(u64, String)>,
    /// Applied pauses: (time, broker).
    pub pauses: Vec<(u64, u32)>,
    /// Applied power cuts: (time, brokers).
    pub power_losses: Vec<(u64, Vec<u32>)>,
    /// Per partition, when the history proves the HW reached an offset: (time bucket end,
    /// highest acks=all acknowledged offset + 1), rising.
    pub committed: BTreeMap<(String, u32), Vec<(u64, u64)>>,
}

/// acks=all acknowledgements are kept one per this many ns per partition: the HW they prove
/// is taken at the end of the bucket, so it is never earlier than the acknowledgement.
const COMMIT_BUCKET_NS: u64 = 10_000_000;

/// Cap on the samples kept per kind of history input (a refusal storm writes thousands).
const MAX_SAMPLES: usize = 100_000;

impl ProbeInputs {
    /// Records that an acks=all send was acknowledged at `offset` at `time_ns`.
    pub fn committed(&mut self, topic: &str, partition: u32, time_ns: u64, offset: u64) {
        let key = (topic.to_string(), partition);
        let list = self.committed.entry(key).or_default();
        let bucket_end = (time_ns / COMMIT_BUCKET_NS + 1) * COMMIT_BUCKET_NS;
        let full = list.len() >= MAX_SAMPLES;
        match list.last_mut() {
            Some((t, hw)) if *t == bucket_end => *hw = (*hw).max(offset + 1),
            Some((_, hw)) if *hw > offset => {}
            _ if !full => list.push((bucket_end, offset + 1)),
            _ => {}
        }
    }

    pub fn refused(&mut self, time_ns: u64, topic: &str, partition: u32) {
        if self.not_enough_replicas.len() < MAX_SAMPLES {
            self.not_enough_replicas
                .push((time_ns, format!("{topic}/{partition}")));
        }
    }

    pub fn timed_out(&mut self, time_ns: u64, topic: &str, partition: u32) {
        if self.acks_all_timeouts.len() < MAX_SAMPLES {
            self.acks_all_timeouts
                .push((time_ns, format!("{topic}/{partition}")));
        }
    }

    /// The HW the history proves for the partition at `time_ns` (0 when it proves none).
    fn proven_hw(&self, topic: &str, partition: u32, time_ns: u64) -> u64 {
        let Some(list) = self.committed.get(&(topic.to_string(), partition)) else {
            return 0;
        };
        let n = list.partition_point(|(t, _)| *t <= time_ns);
        list[..n].iter().map(|(_, hw)| *hw).max().unwrap_or(0)
    }
}

/// What the controller last said of one partition, as it changed.
#[derive(Debug, Clone, Default)]
struct PartitionState {
    leader: Option<u32>,
    isr: Vec<u32>,
    elr: Vec<u32>,
}

/// Detects every probe. `start_unix_ms` maps the events' wall clock onto the history's;
/// events after `until_ms` (the harness's `stop` marker: the nodes' controlled shutdowns at the
/// end of every run) are not the run's and are left out.
pub fn detect(
    events: &Events,
    inputs: &ProbeInputs,
    min_insync_replicas: u32,
    start_unix_ms: u64,
    until_ms: Option<u64>,
) -> Probes {
    let mut probes = Probes::new();
    let mut hit = |probe: Probe, ms: u64, place: String| {
        let entry = probes.entry(probe).or_insert(ProbeHit {
            first_ms: ms,
            count: 0,
            places: Vec::new(),
        });
        entry.count += 1;
        entry.first_ms = entry.first_ms.min(ms);
        if entry.places.len() < MAX_PLACES && !entry.places.contains(&place) {
            entry.places.push(place);
        }
    };
    let since_start = |e: &NodeEvent| e.time_ms.saturating_sub(start_unix_ms);
    let min = min_insync_replicas as usize;
    // Each partition's leader and ISR over time, for the faults' moments.
    let mut timelines: BTreeMap<(String, u32), Vec<(u64, PartitionState)>> = BTreeMap::new();
    for ((topic, partition), list) in events.partitions() {
        let name = format!("{topic}/{partition}");
        let mut state = PartitionState::default();
        let mut timeline = Vec::new();
        for e in list {
            let ms = since_start(e);
            if until_ms.is_some_and(|until| ms > until) {
                break;
            }
            match (e.kind.as_str(), e.is_controller()) {
                ("election", true) => {
                    let created = e.reason.as_deref() == Some("topic_created");
                    if let (Some(leader), false) = (e.leader, created) {
                        let place = format!("{name} broker {leader}");
                        if e.unclean == Some(true) {
                            let last_known = e.extra.get("last_known_leader")
                                == Some(&serde_json::Value::Bool(true));
                            let place = if last_known {
                                format!("{place} (KIP-966 last known leader)")
                            } else {
                                place
                            };
                            hit(Probe::UncleanElection, ms, place);
                        } else if state.elr.contains(&leader) && !state.isr.contains(&leader) {
                            hit(Probe::ElrElection, ms, place);
                        } else {
                            hit(Probe::CleanElection, ms, place);
                        }
                    }
                    state.leader = e.leader;
                    if !created {
                        isr_probes(&mut hit, &state.isr, e.isr.as_deref(), min, ms, &name);
                    }
                    state.isr = e.isr.clone().unwrap_or_default();
                    state.elr = e.elr.clone().unwrap_or_default();
                    timeline.push((ms, state.clone()));
                }
                ("isr_change", true) => {
                    let before = e.isr_before.as_deref().unwrap_or(&state.isr).to_vec();
                    isr_probes(&mut hit, &before, e.isr.as_deref(), min, ms, &name);
                    if let Some(isr) = &e.isr {
                        state.isr = isr.clone();
                    }
                    if let Some(elr) = &e.elr {
                        state.elr = elr.clone();
                    }
                    timeline.push((ms, state.clone()));
                }
                ("truncation", false) => {
                    let (Some(from), Some(to)) = (e.from, e.to) else {
                        continue;
                    };
                    let place = format!("{name} broker {}", e.broker().unwrap_or(0));
                    if from > to && e.reason.as_deref() == Some("diverging_epoch") {
                        hit(Probe::EpochDivergenceResolved, ms, place.clone());
                    }
                    let hw = inputs.proven_hw(topic, *partition, ms.saturating_mul(1_000_000));
                    if from > to && to < hw {
                        hit(Probe::TruncatedBelowHw, ms, place);
                    }
                }
                ("stale_fetch_refused", false) => {
                    let place = format!("{name} broker {}", e.broker.unwrap_or(0));
                    hit(Probe::StaleFetchRefused, ms, place);
                }
                ("duplicate_batch", false) => {
                    let place = format!("{name} {}", e.node_name());
                    hit(Probe::RetryDeduplicated, ms, place);
                }
                _ => {}
            }
        }
        timelines.insert((topic.clone(), *partition), timeline);
    }
    for e in events.without_partition() {
        if until_ms.is_some_and(|until| since_start(e) > until) {
            break;
        }
        if e.kind == "broker_fenced" && e.is_controller() {
            let reason = e.reason.as_deref().unwrap_or("?");
            let place = format!("broker {} ({reason})", e.broker.unwrap_or(0));
            hit(Probe::Fenced, since_start(e), place);
        }
    }
    let ms = |ns: u64| ns / 1_000_000;
    for (t, place) in &inputs.not_enough_replicas {
        hit(Probe::NotEnoughReplicas, ms(*t), place.clone());
    }
    for (t, place) in &inputs.acks_all_timeouts {
        hit(Probe::AcksAllTimeout, ms(*t), place.clone());
    }
    let state_at = |timeline: &[(u64, PartitionState)], at_ms: u64| {
        let n = timeline.partition_point(|(t, _)| *t <= at_ms);
        n.checked_sub(1).map(|i| timeline[i].1.clone())
    };
    for &(t, broker) in &inputs.pauses {
        for ((topic, partition), timeline) in &timelines {
            if state_at(timeline, ms(t)).is_some_and(|s| s.leader == Some(broker)) {
                let place = format!("{topic}/{partition} broker {broker}");
                hit(Probe::LeaderPaused, ms(t), place);
            }
        }
    }
    for (t, brokers) in &inputs.power_losses {
        for ((topic, partition), timeline) in &timelines {
            let Some(state) = state_at(timeline, ms(*t)) else {
                continue;
            };
            if let [only] = state.isr.as_slice() {
                if brokers.contains(only) {
                    let place = format!("{topic}/{partition} broker {only}");
                    hit(Probe::PowerLossLastIsrMember, ms(*t), place);
                }
            }
        }
    }
    probes
}

/// The ISR probes of one change from `before` to `after`.
fn isr_probes(
    hit: &mut impl FnMut(Probe, u64, String),
    before: &[u32],
    after: Option<&[u32]>,
    min: usize,
    ms: u64,
    name: &str,
) {
    let Some(after) = after else { return };
    let members = |isr: &[u32]| {
        let ids: Vec<String> = isr.iter().map(u32::to_string).collect();
        format!("{{{}}}", ids.join(","))
    };
    let place = format!("{name} {} -> {}", members(before), members(after));
    if after.len() < before.len() {
        hit(Probe::IsrShrunk, ms, place.clone());
    }
    if after.len() < min && before.len() >= min {
        hit(Probe::IsrBelowMin, ms, place.clone());
    }
    if after.len() == 1 && before.len() > 1 {
        hit(Probe::IsrLeaderOnly, ms, place);
    }
}

/// One line: each probe reached with its count, in the order of [`Probe::ALL`].
pub fn one_line(probes: &Probes) -> String {
    if probes.is_empty() {
        return "none".to_string();
    }
    let parts: Vec<String> = probes
        .iter()
        .map(|(p, h)| format!("{p} ×{}", h.count))
        .collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests;
