//! The checker's integration tests: hand-written runs, one per anomaly and per guarantee rule,
//! damaged input, test.json's reading, and property tests over generated runs.

mod anomalies;
mod config;
mod damage;
mod guarantees;
mod props;
mod support;
