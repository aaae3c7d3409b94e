//! faultline-lazyfs: a lazy FUSE filesystem for power-loss faults, after Jepsen's lazyfs. It is
//! a pass-through over a backing directory that holds every file's written data in memory
//! until that file is fsynced, and can drop everything unsynced on command, as a power cut
//! would. Metadata operations (create, mkdir, rename, unlink, rmdir, chmod, utimes) pass
//! straight through to the backing directory and so survive a loss (docs/power-loss.md says
//! how that is weaker than a disk).
//!
//! The crate owns the filesystem (`held`, `state`, `fs`), its control channel (`control`) and
//! the handle the harness uses ([`LazyFs`], [`probe`]). It knows nothing of brokers, faults or
//! histories: the harness decides when to cut power.
//!
//! ```no_run
//! # use std::path::Path;
//! faultline_lazyfs::probe()?; // names what is missing: /dev/fuse, kernel FUSE, rights
//! let fs = faultline_lazyfs::LazyFs::spawn(
//!     Path::new("target/debug/faultline-lazyfs"),
//!     Path::new("store/nodes/1/backing"),
//!     Path::new("store/nodes/1/data"),
//!     Path::new("store/nodes/1/lazyfs.log"),
//! )?;
//! // ... SIGKILL the broker, then:
//! let lost = fs.lose_unsynced()?;
//! println!("dropped {} bytes in {} files", lost.lost_bytes, lost.lost_files);
//! fs.stop()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod control;
pub mod fs;
pub mod handle;
pub mod held;
pub mod state;

pub use control::ControlReply;
pub use handle::{detach, is_mounted, probe, LazyFs, LazyFsError, ProbeError};
