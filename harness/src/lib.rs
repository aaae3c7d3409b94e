//! faultline: the harness. It owns a run — the node processes, the link proxies, the faults,
//! the store, the jobs built from runs, and the command line and reports that show them. It
//! does not own what clients do (faultline-workloads) or the analysis (faultline-checker).
//!
//! Five layers, each a module, with imports pointing one way only (CONTRIBUTING.md has the map):
//!
//! ```text
//! ui       the command line (clap → TestRequest), the live progress line, the report
//! jobs     entry, suite, scenarios, repro, detection: runs judged against what they must show
//! test     one run: its options, errors, store and phases
//! nemesis  faults as data, their windows, the schedule language, packages, generator, executor
//! cluster  processes, proxies, network, lazy mounts, the cluster handle, the final read
//! ```
//!
//! `ui → jobs → test → nemesis → cluster`; the report reads only the checker's files and
//! `nemesis::windows`. `duration` is a leaf every layer may use. A layer never imports one above
//! it: the run tells whoever watches it through [`test::observer::Observer`], which the UI
//! implements.

pub(crate) mod cluster;
pub(crate) mod duration;
pub(crate) mod jobs;
pub(crate) mod nemesis;
pub(crate) mod test;
pub(crate) mod ui;

// What the binary, the integration tests and the benches use; everything else is the crate's.
pub use cluster::proxy;
pub use ui::command::main;
pub use ui::report;
