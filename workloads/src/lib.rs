//! faultline-workloads: what clients do. It owns the client for the node API, the leader cache
//! clients route by, the history writer they record through, and the workloads (producers of
//! unique values, consumers that poll from their last offset). It does not start processes,
//! own links or inject faults: that is the harness.

pub mod client;
pub mod leaders;
pub mod recorder;
pub mod workload;

pub use client::{ClientError, NodeClient};
pub use leaders::{Endpoints, LeaderCache};
pub use recorder::HistoryWriter;
pub use workload::{ClientContext, ClientProcess, RunningWorkload, WorkloadKind, WorkloadSpec};
