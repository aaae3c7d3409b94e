//! What a shrink leaves in `RUN/shrunk/`: `schedule.txt` (the smallest schedule found, in the
//! schedule language, a comment before each step saying why it stays, and the replay line),
//! `replay.sh` (that line, runnable), and `shrink.json` (the figures: steps before and after,
//! candidates, replays, time, budget, every candidate tried). The candidates' own runs are
//! already under `candidates/`. Nothing outside `shrunk/` is written.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::plan::{self, Item};
use super::replay::Tried;
use super::{Options, PhaseFigures, Point, Shrinker, BUDGET};
use crate::duration::format_duration;
use crate::jobs::entry::shell_words;

/// shrink.json.
#[derive(Debug, Serialize)]
struct Figures<'a> {
    run: &'a Path,
    anomaly: &'static str,
    /// A schedule smaller than the run's counted.
    shrunk: bool,
    confirm: u32,
    jobs: usize,
    budget_ms: u64,
    budget_ran_out: bool,
    interrupted: bool,
    elapsed_ms: u64,
    steps_before: usize,
    steps_after: usize,
    time_limit_ms_before: u64,
    time_limit_ms_after: u64,
    rate_before: f64,
    rate_after: f64,
    candidates_tried: usize,
    replays: u32,
    replays_cancelled: u32,
    /// The shrunk schedule's steps, in the schedule language.
    schedule: Vec<String>,
    replay: &'a str,
    phases: &'a [PhaseFigures],
    /// Each time the smallest schedule shrank.
    progress: &'a [Point],
    candidates: &'a [Tried],
}

/// What was written, for the terminal.
pub struct Written {
    pub summary: String,
    pub replay: String,
}

/// Writes schedule.txt, replay.sh and shrink.json into `out`. `reason` is why the shrink
/// stopped early: the budget, a signal, or nothing.
pub fn write(
    out: &Path,
    shrinker: &Shrinker,
    options: &Options,
    reason: Option<&'static str>,
) -> anyhow::Result<Written> {
    let schedule = out.join("schedule.txt");
    let best = &shrinker.best;
    let lines: Vec<String> = best.steps.iter().map(Item::line).collect();
    // The replay line is validated against the steps themselves, before the header exists.
    write_file(&schedule, &(lines.join("\n") + "\n"))?;
    let replay = replay_line(shrinker, &schedule)?;
    let progress = &shrinker.replayer.progress;
    let elapsed = progress.elapsed();
    let (budget_ran_out, interrupted) =
        (reason == Some(BUDGET), reason.is_some_and(|r| r != BUDGET));
    let stopped = if budget_ran_out {
        format!(
            "; the budget of {} ran out",
            format_duration(options.budget)
        )
    } else if interrupted {
        "; interrupted".to_string()
    } else {
        String::new()
    };
    let summary = format!(
        "shrink {}: {} steps → {}, time limit {} → {}, rate {}/s → {}/s; {} candidates, {} replays in {}{stopped}",
        shrinker.input.class.as_str(),
        shrinker.original.steps.len(),
        best.steps.len(),
        format_duration(shrinker.original.time_limit),
        format_duration(best.time_limit),
        shrinker.original.rate,
        best.rate,
        shrinker.replayer.tried.len(),
        progress.replays.load(Ordering::Relaxed),
        format_duration(Duration::from_secs(elapsed.as_secs())),
    );
    write_file(
        &schedule,
        &schedule_text(shrinker, &summary, &replay, reason),
    )?;
    write_replay_script(&out.join("replay.sh"), &replay, &shrinker.input.run_dir)?;
    let figures = Figures {
        run: &shrinker.input.run_dir,
        anomaly: shrinker.input.class.as_str(),
        shrunk: shrinker.shrunk(),
        confirm: shrinker.replayer.confirm,
        jobs: shrinker.replayer.jobs,
        budget_ms: options.budget.as_millis() as u64,
        budget_ran_out,
        interrupted,
        elapsed_ms: elapsed.as_millis() as u64,
        steps_before: shrinker.original.steps.len(),
        steps_after: best.steps.len(),
        time_limit_ms_before: shrinker.original.time_limit.as_millis() as u64,
        time_limit_ms_after: best.time_limit.as_millis() as u64,
        rate_before: shrinker.original.rate,
        rate_after: best.rate,
        candidates_tried: shrinker.replayer.tried.len(),
        replays: progress.replays.load(Ordering::Relaxed),
        replays_cancelled: progress.cancelled.load(Ordering::Relaxed),
        schedule: lines,
        replay: &replay,
        phases: &shrinker.phases,
        progress: &shrinker.timeline,
        candidates: &shrinker.replayer.tried,
    };
    crate::test::store::write_json(&out.join("shrink.json"), &figures)?;
    Ok(Written {
        summary: format!(
            "{summary}\nwrote {}, replay.sh and shrink.json",
            schedule.display()
        ),
        replay,
    })
}

/// `faultline test` with the run's settings, the shrunk time limit and rate, and the shrunk
/// schedule; named after the run, with `-shrunk`.
fn replay_line(shrinker: &Shrinker, schedule: &Path) -> anyhow::Result<String> {
    let mut request = shrinker.input.request.clone();
    request.name = Some(format!("{}-shrunk", shrinker.input.config.name));
    request.schedule = Some(schedule.to_path_buf());
    request.time_limit = Some(shrinker.best.time_limit);
    request.rate = shrinker.best.rate;
    let opts = request
        .validate()
        .context("the shrunk schedule does not validate")?;
    Ok(format!(
        "faultline {}",
        shell_words(&opts.replay_args(schedule))
    ))
}

fn schedule_text(
    shrinker: &Shrinker,
    summary: &str,
    replay: &str,
    reason: Option<&'static str>,
) -> String {
    let class = shrinker.input.class;
    let confirm = shrinker.replayer.confirm;
    let what = if shrinker.shrunk() {
        format!(
            "the smallest schedule found that still {} (`{}`): {confirm} of {confirm} replays showed it",
            plan::showed(class),
            class.as_str()
        )
    } else {
        format!(
            "no smaller schedule {} in {confirm} of {confirm} replays; this is the run's own \
             schedule",
            plan::showed(class)
        )
    };
    let header = [
        format!(
            "faultline shrink of {}: {what}.",
            shrinker.input.run_dir.display()
        ),
        format!("{summary}."),
        "Before each step: why it stays (what a replay without it showed).".to_string(),
        format!("Replay: {replay}"),
    ];
    let untried = match reason {
        Some(BUDGET) => "the budget ran out first",
        Some(_) => "the shrink was interrupted first",
        None => "it is the last step",
    };
    plan::schedule_text(&header, &shrinker.best.steps, &|step: &Item| {
        plan::reason(shrinker.evidence.get(&step.id), class, confirm, untried)
    })
}

fn write_replay_script(path: &Path, replay: &str, run_dir: &Path) -> anyhow::Result<()> {
    let text = format!(
        "#!/bin/sh\n\
         # Replays the schedule `faultline shrink` found for {} (docs/shrink.md).\n\
         # Extra arguments go to `faultline test`, e.g. --store DIR or --node-bin PATH.\n\
         exec {replay} \"$@\"\n",
        run_dir.display()
    );
    write_file(path, &text)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
