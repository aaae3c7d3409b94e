//! The report's anomaly sections: the table of anomaly classes (count, whether this run's
//! configuration allows them, and the explanation of each), and every listed anomaly in detail,
//! folded away.

use std::fmt::Write as _;

use faultline_checker::AnomalyKind;

use super::data::RunData;
use super::html::escape;
use super::{describe_kind, standing, Standing};

/// Anomalies of one kind listed in detail on the page; the rest are counted.
const MAX_PER_KIND: usize = 50;

pub(super) fn anomalies(out: &mut String, data: &RunData) {
    let r = &data.results;
    out.push_str("<h2>Anomalies</h2><table><tr><th>kind</th><th>what it means</th><th>count</th><th>allowed by this configuration?</th><th>found</th></tr>");
    for kind in AnomalyKind::ALL {
        let count = r.anomaly_counts.get(&kind).copied().unwrap_or(0);
        let per_send = r.guarantee.excused_per_send.get(&kind);
        let allowed = match r.guarantee.excused.get(&kind).filter(|by| !by.is_empty()) {
            Some(by) => format!("yes ({})", by.join(", ")),
            None => match per_send.filter(|by| !by.is_empty()) {
                Some(by) => format!("for sends of more than one attempt ({})", by.join(", ")),
                None => "no".to_string(),
            },
        };
        let (class, found) = match standing(r, kind, None) {
            Standing::None => ("zero", "—".to_string()),
            Standing::Allowed(_) => (
                "allowed",
                "allowed: does not make the run invalid".to_string(),
            ),
            Standing::Breaks => ("breaks", "breaks the guarantee".to_string()),
            Standing::Uncertain(why) => ("allowed", format!("uncertain: {why}")),
        };
        let _ = write!(
            out,
            "<tr class=\"{class}\"><td><code>{}</code></td><td>{}</td><td class=\"num\">{count}</td><td>{}</td><td>{}</td></tr>",
            kind.as_str(),
            describe_kind(kind),
            escape(&allowed),
            escape(&found)
        );
    }
    out.push_str("</table>");
    if !r.explanations.is_empty() {
        out.push_str("<h3>Why: what removed the lost and moved records (the checker's explanations; times since run start)</h3>");
        for e in &r.explanations {
            let allowed = matches!(
                standing(r, e.kind, Some((&e.topic, e.partition))),
                Standing::Allowed(_)
            );
            let _ = write!(
                out,
                "<div class=\"why{}\">{}</div>",
                if allowed { " allowed" } else { "" },
                escape(&e.sentence)
            );
        }
    }
}

/// Listed anomalies, at most [`MAX_PER_KIND`] of each kind, folded away.
pub(super) fn anomaly_details(out: &mut String, data: &RunData) {
    let r = &data.results;
    if !r.anomalies.is_empty() {
        let shown: Vec<_> = AnomalyKind::ALL
            .iter()
            .flat_map(|k| {
                r.anomalies
                    .iter()
                    .filter(move |a| a.kind == *k)
                    .take(MAX_PER_KIND)
            })
            .collect();
        let _ = write!(
            out,
            "<details><summary>Anomalies in detail ({} of {} shown: at most {MAX_PER_KIND} of each kind; results.json lists up to 10 000 of each{})</summary><table><tr><th>kind</th><th>partition</th><th>offsets</th><th>values</th><th>history indices</th><th>brokers</th><th>detail</th><th>standing</th></tr>",
            shown.len(),
            r.anomaly_counts.values().sum::<u64>(),
            if r.anomalies_truncated { "; the checker listed only part of them" } else { "" }
        );
        for a in shown {
            let standing = match (&a.excused_by, &a.uncertain) {
                (_, Some(why)) => format!("uncertain: {why}"),
                (Some(by), None) => format!("allowed ({by})"),
                (None, None) => "breaks the guarantee".to_string(),
            };
            let _ = write!(
                out,
                "<tr class=\"{}\"><td><code>{}</code></td><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if a.breaks_guarantee() { "breaks" } else { "allowed" },
                a.kind.as_str(),
                escape(&a.topic),
                a.partition,
                join(&a.offsets),
                escape(&a.values.join(", ")),
                join(&a.indices),
                join(&a.brokers),
                escape(&a.detail),
                escape(&standing)
            );
        }
        out.push_str("</table></details>");
    }
}

pub(super) fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
