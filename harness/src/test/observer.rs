//! What a run tells whoever watches it: messages, the phase it is in, its clients' counters,
//! and the moment its check is done (when the report can be written). The run calls an
//! [`Observer`] and knows nothing of how — or whether — it is shown; the UI's progress line
//! (`ui::progress::Terminal`) is the one implementation. This is how the test layer reports to
//! the UI without importing it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use faultline_checker::Results;
use faultline_workloads::workload::ClientContext;

/// The phases of a run, in order (docs/harness.md "A run").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Setup,
    Chaos,
    Heal,
    FinalRead,
    Stop,
    Check,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::Chaos => "chaos",
            Phase::Heal => "heal and recover",
            Phase::FinalRead => "final read",
            Phase::Stop => "stop and collect",
            Phase::Check => "check and report",
        }
    }
}

/// Writes what a checked run needs besides results.json (the report), once the check is done.
pub type Finisher = Box<dyn FnOnce(&Results) + Send>;

/// Whoever watches a run. Every method is called from the run's own tasks and must not block
/// for long.
pub trait Observer: Send + Sync {
    /// One line for the user.
    fn say(&self, message: &str);
    /// The run's directory exists and its clock starts; the chaos phase lasts `time_limit`.
    fn started(&self, run_dir: &Path, time_limit: Duration);
    fn phase(&self, phase: Phase);
    /// The clients whose counters show the run's progress.
    fn clients(&self, clients: Arc<ClientContext>);
    /// The run is over: stop any live display.
    fn finish(&self);
    /// Called as the check of `run_dir` starts; the returned finisher runs with the results.
    /// Work that needs only the run's files (the report's pass over the history) runs beside
    /// the check in the meantime.
    fn checking(&self, run_dir: &Path) -> Finisher;
}
