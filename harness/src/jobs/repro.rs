//! `faultline repro SCENARIO [--kafka-version V]`: runs a built-in scenario (`scenarios`) — each
//! of its runs under each Kafka version it names (V's alone when given) in turn, with the run's usual output and explanations — and says whether the expected outcome
//! happened. Exit 0 when every run showed it, 1 when not.

use std::path::Path;
use std::sync::Arc;

use faultline_checker::config::KafkaVersion;

use crate::jobs::scenarios;
use crate::test::error::{BadArgs, EXIT_INVALID, EXIT_VALID};
use crate::test::observer::Observer;
use crate::test::run::Interrupt;

pub async fn repro(
    name: &str,
    version: Option<KafkaVersion>,
    store: &Path,
    seed: u64,
    node_bin: Option<&Path>,
    interrupt: Interrupt,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<i32> {
    let Some(scenario) = scenarios::find(name) else {
        let known: Vec<&str> = scenarios::SCENARIOS.iter().map(|s| s.name).collect();
        return Err(BadArgs(format!(
            "unknown scenario {name:?} (known: {})",
            known.join(", ")
        ))
        .into());
    };
    let runs = scenario.entries("repro", seed, version);
    if runs.is_empty() {
        let versions: Vec<&str> = scenario.versions().iter().map(|v| v.as_str()).collect();
        return Err(BadArgs(format!(
            "scenario {} states no outcome under Kafka {} (it does under {})",
            scenario.name,
            version.map_or("?", KafkaVersion::as_str),
            versions.join(", ")
        ))
        .into());
    }
    eprintln!("faultline: repro {}: {}", scenario.name, scenario.summary);
    let mut all_passed = true;
    for run in runs {
        let outcome = run
            .entry
            .run(store, node_bin, interrupt.clone(), observer.clone())
            .await?;
        all_passed &= outcome.judgement.passed;
        println!(
            "repro {} ({}, Kafka {}): expected {}: {} — {}",
            scenario.name,
            run.label,
            run.version,
            run.entry.expect.as_str(),
            outcome.judgement.detail,
            if outcome.judgement.passed {
                "REPRODUCED"
            } else if outcome.judgement.vacuous {
                "VACUOUS"
            } else {
                "NOT REPRODUCED"
            }
        );
        if let Some(dir) = &outcome.run_dir {
            println!("  run: {}", dir.display());
        }
    }
    Ok(if all_passed { EXIT_VALID } else { EXIT_INVALID })
}
