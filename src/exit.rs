//! Exit codes, as data, and the one place that maps an error to its code.

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

/// Library errors that decide the process exit code implement this.
pub trait HasExitCode {
    fn exit_code(&self) -> i32;
}

/// Walks an error chain and returns the code of the first error that knows its code.
pub fn code_for(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<crate::engine::EngineError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<crate::image::ImageError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<UsageError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<crate::plan::PlanError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<crate::workspace::WorkspaceError>() {
            return e.exit_code();
        }
    }
    FAILURE
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
