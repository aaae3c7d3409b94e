//! The exit-code taxonomy of `faultline` (Jepsen's convention), and the one error that changes
//! it: [`BadArgs`]. A run's verdict gives 0, 1 or 2 (unknown: an aborted run, a damaged file)
//! by the checker's `Valid::exit_code`; a job's judgement gives 0 or 1. The binary maps every outcome to a code in one place (`ui::cli::exit_code`);
//! everything below it returns a verdict's code or an error, and names a bad argument with
//! [`BadArgs`] so that it becomes 254 instead of 255.

/// The run kept its guarantee (a verdict of `valid`), or a job showed what it had to.
pub const EXIT_VALID: i32 = 0;
/// The run broke its guarantee (`invalid`), or a job did not show what it had to.
pub const EXIT_INVALID: i32 = 1;
/// Bad command-line arguments, or a bad input they name (a schedule, a run directory).
pub const EXIT_BAD_ARGS: i32 = 254;
/// The harness itself failed.
pub const EXIT_HARNESS_FAILED: i32 = 255;

/// Bad command-line arguments or inputs named by them: exit 254.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadArgs(pub String);

/// A [`BadArgs`] as an `anyhow::Error`.
pub fn bad(message: impl Into<String>) -> anyhow::Error {
    BadArgs(message.into()).into()
}

/// Who is at fault when the checker cannot read a run: a run we just wrote is the harness's
/// failure (255); a directory the user named is a bad argument (254).
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    Harness,
    BadArgs,
}

/// The exit code of a command's result; prints the error, if any, in the one voice.
pub fn exit_code(result: anyhow::Result<i32>) -> i32 {
    match result {
        Ok(code) => code,
        Err(error) if error.downcast_ref::<BadArgs>().is_some() => {
            eprintln!("faultline: bad arguments: {error}");
            EXIT_BAD_ARGS
        }
        Err(error) => {
            eprintln!("faultline: error: {error:#}");
            EXIT_HARNESS_FAILED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checker decides a verdict's code; it must be the one this taxonomy names.
    #[test]
    fn the_checkers_verdict_codes_are_the_taxonomys() {
        use faultline_checker::Valid;
        assert_eq!(Valid::True.exit_code(), EXIT_VALID);
        assert_eq!(Valid::False.exit_code(), EXIT_INVALID);
        assert_eq!(Valid::Unknown.exit_code(), 2);
        assert!(![EXIT_VALID, EXIT_INVALID, 2].contains(&EXIT_BAD_ARGS));
        assert!(![EXIT_VALID, EXIT_INVALID, 2].contains(&EXIT_HARNESS_FAILED));
    }
}
