//! The jobs layer: runs judged against what they must show. `entry` is one judged run,
//! `scenarios` the built-in reproductions (data plus judgement), `repro` runs one scenario,
//! `suite` the CI gate and the nightly chaos, `detection` how often random faults find each
//! known loss, `shrink` the smallest schedule that still shows a stored run's anomaly. Every
//! job builds `TestOptions` values; arguments are only printed, for replay.

pub mod detection;
pub mod entry;
pub mod repro;
pub mod scenarios;
pub mod shrink;
pub mod suite;
