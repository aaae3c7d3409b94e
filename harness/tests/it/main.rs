//! Integration tests of the harness: one test binary, a module per area. Tests that run a
//! cluster drive the real `faultline` binary against the real `faultline-node` (built beside
//! it: `make build` or `cargo build -p faultline-node`). Every wait polls with a deadline.

mod common;

mod args;
mod contract;
mod crashes;
mod hygiene;
mod jobs;
mod kafka_proxy;
mod layers;
mod power;
mod producers;
mod proxy;
mod report;
mod runs;
mod schedule;
mod shrink;
mod systems;
