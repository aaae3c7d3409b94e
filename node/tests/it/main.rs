//! Integration tests for faultline-node: a controller and three brokers as real processes on
//! loopback, driven over HTTP and with real signals. Bounded in time; every wait polls with a
//! deadline.

mod bad_input;
mod broker_rules;
mod controller_rules;
mod corruption;
mod failover;
mod fuzz_input;
mod idempotence;
mod kafka_bad_input;
mod kafka_clients;
mod replica_repair;
mod replication;
mod serving;
mod support;
