//! The checker's library errors: only a run directory that cannot be analysed at all (missing,
//! or without a readable and valid `test.json`). Damage inside the run's other files is not an
//! error: it is reported as a [`crate::Warning`] and lowers the verdict to at best `unknown`.

use std::fmt;
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
    /// Reads `.../test.json: kafka_version: unknown variant "4.11", ...`.
    #[error("{}: {source}", path.display())]
    TestConfigInvalid { path: PathBuf, source: ConfigError },
}

/// What is wrong with the text of a test.json, and in which field.
#[derive(Debug)]
pub struct ConfigError {
    /// The field as a path (`kafka_version`, `nemesis[1]`, `extra.kill_signal`); empty
    /// when the problem is the text as a whole (not JSON, trailing characters).
    pub field: String,
    pub source: serde_json::Error,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.source)
        } else {
            write!(f, "{}: {}", self.field, self.source)
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A serde error as the short description of a damaged line. It lives here, beside the
/// errors, so that the format modules and the readers share it without importing each other.
pub(crate) fn line_problem(e: &serde_json::Error) -> String {
    format!("not a valid line ({e})")
}
