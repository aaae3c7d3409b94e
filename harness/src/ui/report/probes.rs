//! The report's probe section: every Kafka situation the checker looks for, whether this run
//! went through it, when first, how often and where (docs/results.md, `probes`).

use std::fmt::Write as _;

use faultline_checker::probes::Probe;

use super::data::RunData;
use super::html::escape;

/// What each probe means, for a reader who does not know the names.
fn meaning(probe: Probe) -> &'static str {
    match probe {
        Probe::IsrShrunk => "the controller accepted a smaller ISR",
        Probe::IsrBelowMin => "an ISR fell below min.insync.replicas",
        Probe::IsrLeaderOnly => "an ISR fell to one member",
        Probe::CleanElection => "a leader was elected from the ISR",
        Probe::UncleanElection => "a leader was elected from outside the ISR (and ELR)",
        Probe::ElrElection => "a leader was elected from the Eligible Leader Replicas (KIP-966)",
        Probe::TruncatedBelowHw => {
            "a replica truncated offsets an acks=all send had been acknowledged at"
        }
        Probe::EpochDivergenceResolved => {
            "a follower truncated at the diverging epoch its leader named"
        }
        Probe::Fenced => "the controller fenced a broker",
        Probe::NotEnoughReplicas => "a send was refused with NOT_ENOUGH_REPLICAS",
        Probe::PowerLossLastIsrMember => "a power cut hit the only member of an ISR",
        Probe::LeaderPaused => "a leader was paused (SIGSTOP)",
        Probe::AcksAllTimeout => "an acks=all send timed out waiting for the ISR",
        Probe::StaleFetchRefused => {
            "a leader refused a fetch of a follower's previous incarnation (KIP-903)"
        }
        Probe::RetryDeduplicated => {
            "a leader answered an idempotent producer's retry with the original offsets (KIP-98)"
        }
    }
}

pub(super) fn probes(out: &mut String, data: &RunData) {
    let reached = &data.results.probes;
    let _ = write!(
        out,
        "<h2>What the run went through</h2><p class=\"muted\">Probes: the Kafka situations the \
         checker recognises in the node events and the history, up to the harness's stop. A \
         passing run shows its guarantee held only through the situations it reached. {} of {} \
         reached.</p><table><tr><th>probe</th><th>what it means</th><th>count</th>\
         <th>first (s)</th><th>where</th></tr>",
        reached.len(),
        Probe::ALL.len()
    );
    for probe in Probe::ALL {
        match reached.get(&probe) {
            Some(hit) => {
                let _ = write!(
                    out,
                    "<tr><td><code>{probe}</code></td><td>{}</td><td class=\"num\">{}</td>\
                     <td class=\"num\">{:.1}</td><td>{}</td></tr>",
                    meaning(probe),
                    hit.count,
                    hit.first_ms as f64 / 1000.0,
                    escape(&hit.places.join("; "))
                );
            }
            None => {
                let _ = write!(
                    out,
                    "<tr class=\"zero\"><td><code>{probe}</code></td><td>{}</td>\
                     <td class=\"num\">0</td><td>—</td><td>—</td></tr>",
                    meaning(probe)
                );
            }
        }
    }
    out.push_str("</table>");
}
