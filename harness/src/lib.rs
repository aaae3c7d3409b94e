//! faultline: the harness. It owns a run — the node processes (supervisor), the link proxies
//! (proxy, network), the nemesis and schedules, the store, and the CLI that ties them together.
//! It does not own what clients do (faultline-workloads) or the analysis (faultline-checker).

pub mod cli;
pub mod cluster;
pub mod duration;
pub mod faults;
pub mod nemesis;
pub mod network;
pub mod node;
pub mod progress;
pub mod proxy;
pub mod report;
pub mod run;
pub mod schedule;
pub mod store;
pub mod supervisor;
