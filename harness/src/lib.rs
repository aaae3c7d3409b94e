//! faultline: the harness. It owns a run — the node processes (supervisor), the link proxies
//! (proxy, network), the faults, the store, and the CLI that ties them together. It does not
//! own what clients do (faultline-workloads) or the analysis (faultline-checker).
//!
//! The fault machinery keeps Jepsen's roles apart, with dependencies pointing one way:
//! `fault` (the vocabulary, as data) ← `schedule` (the language: parse and print) ←
//! `nemesis` (the executor: resolves roles, applies and records faults) and `ops` (a
//! schedule's own client operations and waits) ← `generator` (what happens next: a schedule's
//! steps or the random nemesis, whose single faults and fault packages are `packages`' plans).
//! `record` is the clock and the record they share.

pub mod cli;
pub mod cluster;
pub mod detection;
pub mod duration;
pub mod entry;
pub mod fault;
pub mod final_read;
pub mod generator;
pub mod lazy;
pub mod nemesis;
pub mod network;
pub mod node;
pub mod ops;
pub mod packages;
pub mod progress;
pub mod proxy;
pub mod record;
pub mod report;
pub mod repro;
pub mod run;
pub mod scenarios;
pub mod schedule;
pub mod store;
pub mod suite;
pub mod supervisor;
