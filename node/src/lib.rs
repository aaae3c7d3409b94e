//! faultline-node: the system under test. A Kafka-style ISR-replicated log: a controller that
//! holds the cluster metadata and elects leaders, and brokers that host partition replicas,
//! replicate by follower fetch, keep the ISR and the high watermark, and truncate by leader epoch
//! (or, in the legacy-hw variant, to the HW). It knows nothing of the harness that tests it.

pub mod api;
pub mod broker;
pub mod broker_http;
pub mod controller;
pub mod dump;
pub mod events;
pub mod kafka;
pub mod listeners;
pub mod server;
#[cfg(test)]
mod sim;
pub mod storage;
pub mod version;
