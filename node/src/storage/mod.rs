//! On-disk state of one partition replica: the segmented record log, the leader-epoch cache, the
//! idempotent producers' state and the HW checkpoint. Nothing here knows about replication roles or the network; the broker
//! decides what to append and where to truncate, and this module makes it durable and checks it.

pub mod batch;
pub mod checkpoint;
pub mod epoch;
mod flush;
pub mod log;
pub mod producer_state;

pub use batch::{FrameInfo, Frames, ProducerBatch, Record, RecordBatch};
pub use epoch::{EpochEntry, LeaderEpochCache};
pub use log::{Log, LogConfig, RecoveryReport};
