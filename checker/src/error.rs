//! The checker's library error: only a run directory that cannot be analysed at all (missing,
//! or without a readable `test.json`). Damage inside the run's other files is not an error: it is
//! reported as a [`crate::Warning`] and lowers the verdict to at best `unknown`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("run directory {0} does not exist or is not a directory")]
    NoRunDir(PathBuf),
    #[error("cannot read {path}: {source}")]
    TestConfigUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid test configuration: {source}")]
    TestConfigInvalid {
        path: PathBuf,
        source: serde_json::Error,
    },
}
