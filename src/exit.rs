//! Exit codes, as data. This module sits below every error type: each module's error says
//! its own code through `HasExitCode`, and the edge (`commands::exit_code`) walks the chain.

/// Every task succeeded (or the command did what it was asked).
pub const SUCCESS: i32 = 0;
/// Something failed: a task did not succeed, a build failed.
pub const FAILURE: i32 = 1;
/// Invalid input: nothing was started.
pub const INVALID_INPUT: i32 = 2;
/// The Docker engine could not be reached.
pub const ENGINE_UNREACHABLE: i32 = 3;
/// Interrupted by Ctrl-C or SIGTERM.
pub const INTERRUPTED: i32 = 130;

/// The codes above as `--help` and the man pages show them.
pub const HELP: &str = "Exit codes: 0 every task succeeded (or the command did what it was asked); \
1 a task did not succeed, or something failed; 2 invalid input (nothing was started); \
3 the Docker engine cannot be reached; 130 interrupted (Ctrl-C or SIGTERM).";

/// Library errors that decide the process exit code implement this.
pub trait HasExitCode {
    fn exit_code(&self) -> i32;
}

/// A bad argument found at the edge (not in a task file): exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl HasExitCode for UsageError {
    fn exit_code(&self) -> i32 {
        INVALID_INPUT
    }
}
