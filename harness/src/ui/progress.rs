//! What a run shows while it runs: the phase (setup, chaos, heal, final read, stop, check), the
//! time elapsed of the limit, client operations ok/fail/info, and the faults in force now. On a
//! terminal it is one indicatif status line redrawn a few times a second; when stderr is not a
//! terminal (CI), plain `faultline: ...` lines, at most one every [`PLAIN_INTERVAL`].
//!
//! It is the terminal's [`Observer`] of a run ([`Terminal`]): fed by the run's hooks (`phase`,
//! `clients`), it reads the faults in force by following the run's own `history.jsonl` (the
//! nemesis lines only) with `nemesis::windows`' rule for pairing a fault with its heal, and it
//! writes the report once the run is checked; it changes nothing in the run. Every message the
//! harness prints goes through [`say`] so that it never tears the status line.

use std::io::{IsTerminal, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use faultline_checker::history::Op;
use faultline_workloads::workload::ClientContext;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use faultline_checker::Results;

use crate::nemesis::windows::FaultState;
use crate::test::observer::{Finisher, Observer, Phase};

/// The most often a plain (non-terminal) progress line is printed.
pub const PLAIN_INTERVAL: Duration = Duration::from_secs(5);
/// How often the status is recomputed.
const TICK: Duration = Duration::from_millis(250);
/// The most history read per tick, so one tick stays short whatever the rate.
const MAX_READ_BYTES: usize = 8 << 20;

struct State {
    run_start: Instant,
    phase: Phase,
    chaos_start: Option<Instant>,
    time_limit: Duration,
    clients: Option<Arc<ClientContext>>,
    faults: FaultState,
    history: PathBuf,
    history_pos: u64,
    partial: Vec<u8>,
    last_plain: Option<Instant>,
    bar: Option<ProgressBar>,
}

struct Live {
    state: Arc<Mutex<State>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

static LIVE: Mutex<Option<Live>> = Mutex::new(None);

fn live() -> MutexGuard<'static, Option<Live>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts showing the progress of the run stored in `run_dir`.
pub fn start(run_dir: &Path, time_limit: Duration) {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar
    });
    let state = Arc::new(Mutex::new(State {
        run_start: Instant::now(),
        phase: Phase::Setup,
        chaos_start: None,
        time_limit,
        clients: None,
        faults: FaultState::default(),
        history: run_dir.join("history.jsonl"),
        history_pos: 0,
        partial: Vec::new(),
        last_plain: None,
        bar,
    }));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = {
        let (state, stop) = (state.clone(), stop.clone());
        std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    tick(&mut lock(&state));
                    std::thread::sleep(TICK);
                }
            })
            .ok()
    };
    finish();
    *live() = Some(Live {
        state,
        stop,
        ticker,
    });
}

/// The run entered `phase`.
pub fn phase(phase: Phase) {
    if let Some(live) = live().as_ref() {
        let mut state = lock(&live.state);
        state.phase = phase;
        if phase == Phase::Chaos {
            state.chaos_start = Some(Instant::now());
        }
        // A new phase is always worth a plain line.
        state.last_plain = None;
        tick(&mut state);
    }
}

/// Counts client operations from now on.
pub fn watch_clients(clients: Arc<ClientContext>) {
    if let Some(live) = live().as_ref() {
        lock(&live.state).clients = Some(clients);
    }
}

/// Prints one `faultline: ...` line on stderr without tearing the status line.
pub fn say(message: impl AsRef<str>) {
    let line = format!("faultline: {}", message.as_ref());
    let guard = live();
    let bar = guard.as_ref().and_then(|l| lock(&l.state).bar.clone());
    drop(guard);
    match bar {
        Some(bar) => bar.suspend(|| eprintln!("{line}")),
        None => eprintln!("{line}"),
    }
}

/// Stops the display (idempotent).
pub fn finish() {
    let Some(mut live) = live().take() else {
        return;
    };
    live.stop.store(true, Ordering::Relaxed);
    if let Some(ticker) = live.ticker.take() {
        let _ = ticker.join();
    }
    let bar = lock(&live.state).bar.take();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

fn tick(state: &mut State) {
    follow_history(state);
    let status = status(state);
    if let Some(bar) = &state.bar {
        bar.set_message(status);
        bar.tick();
    } else if state
        .last_plain
        .is_none_or(|t| t.elapsed() >= PLAIN_INTERVAL)
    {
        state.last_plain = Some(Instant::now());
        eprintln!("faultline: {status}");
    }
}

fn status(state: &State) -> String {
    let elapsed = |since: Instant| since.elapsed().as_secs_f64();
    let clock = match (state.phase, state.chaos_start) {
        // A scheduled run has no time limit: it lasts as long as its schedule.
        (Phase::Chaos, Some(start)) if state.time_limit.is_zero() => {
            format!("{:.0}s into the schedule", elapsed(start))
        }
        (Phase::Chaos, Some(start)) => format!(
            "{:.0}s of {:.0}s",
            elapsed(start),
            state.time_limit.as_secs_f64()
        ),
        _ => format!("{:.0}s since run start", elapsed(state.run_start)),
    };
    let mut text = format!("{} {clock}", state.phase.as_str());
    if let Some(clients) = &state.clients {
        let c = &clients.counters;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        text.push_str(&format!(
            " | sends ok {} fail {} info {}",
            get(&c.send_ok),
            get(&c.send_fail),
            get(&c.send_info)
        ));
        let polls = get(&c.poll_ok) + get(&c.poll_fail) + get(&c.poll_info);
        if polls > 0 {
            text.push_str(&format!(
                " | polls ok {} fail {} info {}",
                get(&c.poll_ok),
                get(&c.poll_fail),
                get(&c.poll_info)
            ));
        }
    }
    let active = state.faults.active();
    text.push_str(" | faults now: ");
    text.push_str(&if active.is_empty() {
        "none".to_string()
    } else {
        active.join(", ")
    });
    text
}

/// Reads what was appended to the history since the last tick and applies its nemesis lines.
fn follow_history(state: &mut State) {
    let Ok(mut file) = std::fs::File::open(&state.history) else {
        return;
    };
    if file.seek(SeekFrom::Start(state.history_pos)).is_err() {
        return;
    }
    let mut chunk = Vec::new();
    let Ok(read) = file.take(MAX_READ_BYTES as u64).read_to_end(&mut chunk) else {
        return;
    };
    state.history_pos += read as u64;
    state.partial.extend_from_slice(&chunk);
    let Some(last_newline) = state.partial.iter().rposition(|b| *b == b'\n') else {
        return;
    };
    let complete: Vec<u8> = state.partial.drain(..=last_newline).collect();
    for line in complete.split(|b| *b == b'\n') {
        // Client lines are most of the file; only nemesis lines change the faults in force.
        if !contains(line, b"\"nemesis\"") {
            continue;
        }
        if let Ok(op) = serde_json::from_slice::<Op>(line) {
            let time_s = op.time_ns as f64 / 1e9;
            state
                .faults
                .apply(&op.f, &op.value, op.error.as_deref(), time_s);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The terminal's observer of a run: the live status line while it runs, the report once it
/// is checked.
#[derive(Debug, Default, Clone, Copy)]
pub struct Terminal;

impl Observer for Terminal {
    fn say(&self, message: &str) {
        say(message);
    }

    fn started(&self, run_dir: &Path, time_limit: Duration) {
        start(run_dir, time_limit);
    }

    fn phase(&self, phase: Phase) {
        self::phase(phase);
    }

    fn clients(&self, clients: Arc<ClientContext>) {
        watch_clients(clients);
    }

    fn finish(&self) {
        finish();
    }

    fn checking(&self, run_dir: &Path) -> Finisher {
        // The report's pass over the history needs nothing the checker finds, so it runs beside
        // the checker: on the 2-core VM a 10 M-operation `faultline check` went from 7.3 s to
        // 4.8 s (BENCHMARKS.md). When the check fails, the thread is not waited for.
        let history = {
            let run_dir = run_dir.to_path_buf();
            std::thread::spawn(move || crate::ui::report::data::read_history(&run_dir))
        };
        let run_dir = run_dir.to_path_buf();
        Box::new(move |results: &Results| {
            let history = history.join().unwrap_or_else(|_| {
                say("the report's history pass panicked; the report shows no operations");
                Default::default()
            });
            crate::ui::report::finish(&run_dir, results, history);
        })
    }
}
