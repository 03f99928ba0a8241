//! Every way the user's task inputs can be wrong. All of them mean "nothing was started"
//! (exit 2), and every message says where (file:line, or the flag) and how to fix it.

use std::path::PathBuf;

use crate::exit::{self, HasExitCode};

#[derive(Debug, Clone, thiserror::Error)]
pub enum PlanError {
    #[error("no tasks given\nfix: pass at least one prompt file (*.md) or task file (*.toml)")]
    NoInputs,

    #[error("{path}: no such file\nfix: check the path (relative paths start at the current directory)")]
    NotFound { path: PathBuf },

    #[error("{path}: {problem}\nfix: {fix}")]
    BadInput {
        path: PathBuf,
        problem: String,
        fix: String,
    },

    /// The TOML itself: syntax, wrong types, unknown keys. `message` is toml's.
    #[error("{path}:{line}:{column}: {message}\nfix: {fix}")]
    Toml {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        fix: String,
    },

    #[error(
        "{path}:{line}: `{key}` is not allowed: tasks always run through the WorkflowManager \
         agent (claude --agent workflow-manager); a task cannot set `{key}`.\n\
         fix: Remove the key and put what the task should do in its prompt."
    )]
    Governance { path: PathBuf, line: usize, key: String },

    /// A value that parsed as TOML but is not acceptable. `at` is `file:line`.
    #[error("{at}: {problem}\nfix: {fix}")]
    Invalid {
        at: String,
        problem: String,
        fix: String,
    },

    /// A value that is not acceptable; `what` names the key and value, `reason` says why
    /// and how to fix it.
    #[error("{at}: invalid {what}: {reason}")]
    BadValue {
        at: String,
        what: String,
        reason: String,
    },

    /// A CLI flag's value, e.g. `--memory 5m`.
    #[error("--{flag} {value:?}: {reason}")]
    Flag {
        flag: &'static str,
        value: String,
        reason: String,
    },

    #[error(
        "duplicate task id `{id}`: defined at {first} and again at {second}\n\
         fix: ids must be unique in a run; rename one of them (a prompt file's id is its file name)"
    )]
    DuplicateId {
        id: String,
        first: String,
        second: String,
    },

    #[error(
        "{at}: task `{task}` depends on `{dependency}`, which is not a task in this run \
         (known ids: {known})\nfix: correct the id in depends_on, or add the missing task to the run"
    )]
    UnknownDependency {
        at: String,
        task: String,
        dependency: String,
        /// Comma-separated, in input order (the first 20, then "and N more").
        known: String,
    },

    #[error(
        "{at}: dependency cycle: {cycle}\nfix: remove one of these depends_on entries; \
         a task can only start after its dependencies succeed"
    )]
    Cycle {
        at: String,
        /// `a -> b -> c -> a`
        cycle: String,
    },

    #[error(
        "{source_file}: task `{id}` asks for {requested} CPUs but the Docker engine has only \
         {available}\nfix: lower `cpus` for this task (a task's own `cpus` key wins over --cpus), \
         or give the engine more CPUs"
    )]
    TooManyCpus {
        id: String,
        source_file: PathBuf,
        requested: String,
        available: i64,
    },

    #[error(
        "{source_file}: {tasks} a memory limit of {requested} but the Docker engine has only \
         {available}\nfix: lower `memory` in the task file, or pass --memory (the default is \
         {default}; a task's own `memory` key wins over --memory), or give the engine more memory"
    )]
    TooMuchMemory {
        /// "task `a` has", "3 tasks (`a`, `b`, `c`) have"
        tasks: String,
        source_file: PathBuf,
        requested: String,
        available: String,
        default: String,
    },

    #[error(
        "{source_file}: task `{id}` reserves {request} of memory (`memory_request`) but may use \
         only {limit} (`memory`)\nfix: lower `memory_request` or --memory-request to at most \
         the limit, or raise `memory`; the reservation is what admission counts against the \
         engine's memory, the limit what the task may use"
    )]
    RequestAboveLimit {
        id: String,
        source_file: PathBuf,
        request: String,
        limit: String,
    },

    /// Several independent problems, reported together so one run shows them all.
    #[error("{}", join(.0))]
    Multiple(Vec<PlanError>),
}

fn join(errors: &[PlanError]) -> String {
    let mut out = format!("{} problems in the task inputs:", errors.len());
    for e in errors {
        out.push_str("\n\n");
        out.push_str(&e.to_string());
    }
    out
}

impl PlanError {
    /// One error as itself, several as `Multiple`; `None` when there is nothing to report.
    pub(super) fn from_all(mut errors: Vec<PlanError>) -> Option<PlanError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(PlanError::Multiple(errors)),
        }
    }
}

impl HasExitCode for PlanError {
    fn exit_code(&self) -> i32 {
        exit::INVALID_INPUT
    }
}
