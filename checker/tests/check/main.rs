//! The checker's integration tests: hand-written runs, one per anomaly and per guarantee rule,
//! damaged input, and property tests over generated runs.

mod anomalies;
mod damage;
mod guarantees;
mod props;
mod support;
