//! `--nemesis`: which faults the random nemesis may start, as asked for (`all`, `none` or a
//! list) and as it resolves for a run (power loss only on lazy mounts, message faults only on
//! Kafka-aware links).

use std::str::FromStr;

use faultline_checker::config::FaultKind;

/// Which faults the random nemesis may start (`--nemesis`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NemesisChoice {
    /// Every fault this run can inject (power loss only with `--lazyfs`, drop-response only
    /// with Kafka-aware links).
    All,
    /// These kinds, in [`FaultKind::ALL`]'s order; empty means none.
    Kinds(Vec<FaultKind>),
}

impl NemesisChoice {
    pub fn none() -> NemesisChoice {
        NemesisChoice::Kinds(Vec::new())
    }

    /// What this choice means for a run with or without lazy mounts and Kafka-aware links.
    pub fn kinds(&self, lazyfs: bool, kafka_links: bool) -> Vec<FaultKind> {
        match self {
            NemesisChoice::All => available_kinds(lazyfs, kafka_links),
            NemesisChoice::Kinds(kinds) => kinds.clone(),
        }
    }
}

impl FromStr for NemesisChoice {
    type Err = String;

    /// A comma-separated list of kinds, `all` or `none` (`latency` is accepted for `delay`).
    fn from_str(text: &str) -> Result<NemesisChoice, String> {
        match text.trim() {
            "all" => return Ok(NemesisChoice::All),
            "none" | "" => return Ok(NemesisChoice::none()),
            _ => {}
        }
        let mut kinds = Vec::new();
        for word in text.split(',').map(str::trim) {
            let kind = FaultKind::from_str(word).map_err(|_| {
                let known: Vec<&str> = FaultKind::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "unknown nemesis {word:?} (known: {}, all, none)",
                    known.join(", ")
                )
            })?;
            kinds.push(kind);
        }
        Ok(NemesisChoice::Kinds(in_canonical_order(kinds)))
    }
}

/// `kinds` without repeats, in [`FaultKind::ALL`]'s order.
fn in_canonical_order(kinds: Vec<FaultKind>) -> Vec<FaultKind> {
    FaultKind::ALL
        .into_iter()
        .filter(|k| kinds.contains(k))
        .collect()
}

/// What `--nemesis all` means for a run: every kind, but power loss only when the brokers'
/// data dirs are lazy mounts (`--lazyfs`), and drop-response only when the clients reach the
/// brokers through Kafka-aware links (`--client kafka`, `--system`).
pub fn available_kinds(lazyfs: bool, kafka_links: bool) -> Vec<FaultKind> {
    FaultKind::ALL
        .into_iter()
        .filter(|k| lazyfs || *k != FaultKind::PowerLoss)
        .filter(|k| kafka_links || *k != FaultKind::DropResponse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nemesis_lists_parse_in_one_order_and_name_the_unknown() {
        assert_eq!("all".parse(), Ok(NemesisChoice::All));
        assert_eq!("none".parse(), Ok(NemesisChoice::none()));
        assert_eq!(
            "leader-loss,latency,delay".parse(),
            Ok(NemesisChoice::Kinds(vec![
                FaultKind::Delay,
                FaultKind::LeaderLoss
            ]))
        );
        assert!(!available_kinds(false, false).contains(&FaultKind::PowerLoss));
        assert!(available_kinds(true, false).contains(&FaultKind::PowerLoss));
        assert!(!available_kinds(true, false).contains(&FaultKind::DropResponse));
        assert!(available_kinds(false, true).contains(&FaultKind::DropResponse));
        assert_eq!(
            NemesisChoice::All.kinds(true, true).len(),
            FaultKind::ALL.len()
        );
        assert_eq!(
            "drop-response".parse(),
            Ok(NemesisChoice::Kinds(vec![FaultKind::DropResponse]))
        );
        let error = "flood".parse::<NemesisChoice>().unwrap_err();
        assert!(error.contains("unknown nemesis \"flood\""), "{error}");
        assert!(error.contains("isr-pressure"), "{error}");
    }
}
