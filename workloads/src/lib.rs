//! faultline-workloads: what clients do. It owns the clients for the node API (HTTP, and the
//! Kafka wire protocol for `--client kafka`), the leader cache
//! clients route by, the history writer they record through, the producer's retry and
//! idempotence state, and the workloads (producers of unique values, consumers that poll from
//! their last offset). It does not start processes,
//! own links or inject faults: that is the harness.

pub mod client;
pub mod kafka;
pub mod leaders;
pub mod producer;
pub mod recorder;
pub mod workload;

pub use client::{ClientError, NodeClient};
pub use kafka::KafkaClient;
pub use leaders::{Endpoints, LeaderCache};
pub use producer::ProducerSettings;
pub use recorder::HistoryWriter;
pub use workload::{ClientContext, ClientProcess, RunningWorkload, WorkloadSpec};

/// The workloads a run can drive: test.json's type, under the name callers know.
pub use faultline_checker::config::Workload as WorkloadKind;
