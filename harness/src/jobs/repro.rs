//! `faultline repro SCENARIO`: runs a built-in scenario (`scenarios`) — each of its runs in
//! turn, with the run's usual output and explanations — and says whether the expected outcome
//! happened. Exit 0 when every run showed it, 1 when not.

use std::path::Path;
use std::sync::Arc;

use crate::jobs::entry::Entry;
use crate::jobs::scenarios;
use crate::test::error::{BadArgs, EXIT_INVALID, EXIT_VALID};
use crate::test::observer::Observer;
use crate::test::run::Interrupt;

pub async fn repro(
    name: &str,
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
    eprintln!("faultline: repro {}: {}", scenario.name, scenario.summary);
    let mut all_passed = true;
    for (i, run) in scenario.runs.iter().enumerate() {
        let entry = Entry {
            name: scenario.entry_name("repro", i),
            request: run.request(seed),
            schedule: Some(run.schedule),
            expect: run.expect,
        };
        let outcome = entry
            .run(store, node_bin, interrupt.clone(), observer.clone())
            .await?;
        all_passed &= outcome.judgement.passed;
        println!(
            "repro {} ({}): expected {}: {} — {}",
            scenario.name,
            run.label,
            run.expect.as_str(),
            outcome.judgement.detail,
            if outcome.judgement.passed {
                "REPRODUCED"
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
