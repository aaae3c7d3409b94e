//! The checker's integration tests: hand-written runs, one per anomaly and per guarantee rule,
//! producer retries and idempotence, damaged input, test.json's reading, and property tests
//! over generated runs.

mod anomalies;
mod config;
mod damage;
mod guarantees;
mod idempotence;
mod props;
mod support;
