//! The nemesis layer: faults as data and what performs them. Jepsen's roles stay apart, with
//! dependencies pointing one way: `fault` (the vocabulary, with each fault's heal) and
//! `windows` (which faults are in force, from the history's lines) ← `schedule` (the language:
//! parse and print) ← `executor` (resolves roles, applies and records faults, keeps the
//! `--max-faulty` budget) and `ops` (a schedule's own client operations and waits) ←
//! `generator` (what happens next: a schedule's steps or the random nemesis, whose single faults
//! and fault packages are `packages`' plans). `record` is the clock and the record they share.
//! It drives the cluster layer and knows nothing of runs, jobs or the UI.

pub mod executor;
pub mod fault;
pub mod generator;
pub mod ops;
pub mod packages;
pub mod record;
pub mod schedule;
pub mod windows;
