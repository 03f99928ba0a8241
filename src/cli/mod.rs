//! Command-line argument structs only (clap derive). No logic lives here: `commands/` turns
//! these into calls on the library.

mod completions;
mod demo;
mod diff;
mod doctor;
mod entry;
mod gateway;
mod gc;
mod image;
mod logs;
mod merge;
mod model_server;
mod prune;
mod ps;
mod report;
mod rerun;
mod run;
mod stop;

pub use completions::{CompletionsArgs, ManArgs, ShellArg};
pub use demo::DemoArgs;
pub use diff::DiffArgs;
pub use doctor::DoctorArgs;
pub use entry::EntryArgs;
pub use gateway::GatewayArgs;
pub use gc::GcArgs;
pub use image::{BootstrapBaseArgs, ImageArgs, ImageBuildArgs, ImageCommand, ImagePushArgs, TargetArg};
pub use logs::LogsArgs;
pub use merge::MergeArgs;
pub use model_server::ModelServerArgs;
pub use prune::PruneArgs;
pub use ps::PsArgs;
pub use report::ReportArgs;
pub use rerun::RerunArgs;
pub use run::{BackendArg, DepsFromArg, RunArgs, RunFlags, SwarmArgs};
pub use stop::StopArgs;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Extra CA certificates for image builds, shared by every command that may build the agent
/// image (a TLS-inspecting proxy between the builder and PyPI or Debian needs its CA).
#[derive(Debug, Clone, Default, Args)]
pub struct CaCerts {
    /// CA certificate (PEM) to add to the image when it is built. Repeatable; the environment
    /// variable takes a `:`-separated list.
    #[arg(
        long = "ca-cert",
        value_name = "FILE",
        env = "SANDPEN_CA_CERT",
        value_delimiter = ':'
    )]
    pub ca_certs: Vec<PathBuf>,
}

/// `--host`, on the commands that talk to an engine (and the top level, before the command).
#[derive(Debug, Clone, Default, Args)]
pub struct EngineArg {
    /// Docker engine address (unix://, tcp://, http://, https://, ssh://).
    /// Overrides DOCKER_HOST.
    #[arg(long = "host", value_name = "URL", global = true)]
    pub host: Option<String>,
}

/// `--color`, shared by the commands that show task statuses.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct ColorArg {
    /// Colour the statuses: auto (on a terminal, unless NO_COLOR is set), always, never.
    /// Files (report.json, JUnit, HTML, logs) never get colour.
    #[arg(long = "color", value_name = "WHEN", value_enum, default_value_t)]
    pub color: crate::report::style::ColorChoice,
}

/// Run many AI coding tasks in parallel, each sealed in its own Docker container.
#[derive(Debug, Parser)]
#[command(
    name = "sandpen",
    version,
    about,
    long_about = None,
    propagate_version = true,
    after_help = crate::exit::HELP
)]
pub struct Cli {
    /// Docker engine address (unix://, tcp://, http://, https://, ssh://).
    /// Overrides DOCKER_HOST. Also taken after the commands that use an engine.
    #[arg(long, value_name = "URL")]
    pub host: Option<String>,

    /// More detail on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run tasks in parallel, one container each, through the WorkflowManager agent.
    #[command(after_help = crate::exit::HELP)]
    Run(Box<RunArgs>),
    /// Run again the tasks of a run that did not succeed (or the ones named), each from its
    /// result so far, as new attempts of the same run; its dependents that did not succeed
    /// follow from its new result.
    Rerun(Box<RerunArgs>),
    /// The runs of this repository (or one run's tasks): state, owner, elapsed, CPU, memory,
    /// turns, phase.
    Ps(PsArgs),
    /// A task's session as a readable transcript (or its raw log, or its stderr); -f follows
    /// a live task.
    Logs(LogsArgs),
    /// Stop a live run, or one of its tasks, from another terminal (as Ctrl-C in the run's
    /// own: statuses `cancelled`, containers removed, work brought back, report written).
    Stop(StopArgs),
    /// What each result of a run changed (commits, files, lines against where its task
    /// started) and which results conflict with each other or with the current branch.
    Diff(DiffArgs),
    /// Take a run's results into the current branch: one merge commit per task (or
    /// `--squash`), in the run's order, stopping before the first that conflicts.
    Merge(MergeArgs),
    /// Build, reuse or bootstrap sandpen's images.
    Image(ImageArgs),
    /// Finish runs whose sandpen process is gone: remove their containers, bring their work
    /// back, complete their reports.
    Gc(GcArgs),
    /// Remove the checkouts of finished runs whose result is safely in the repository (the
    /// result branch holds exactly the checkout's HEAD, nothing was left uncommitted); name
    /// the others, and why they stay.
    Prune(PruneArgs),
    /// Run sample tasks end to end against a scripted model (no account needed).
    #[command(after_help = crate::exit::HELP)]
    Demo(DemoArgs),
    /// Write a finished run as one self-contained HTML page (`--html FILE`), from its
    /// report.json and the tasks' stats logs.
    Report(ReportArgs),
    /// Describe the Docker engine and sandpen's images.
    Doctor(DoctorArgs),
    /// Serve a scripted stand-in for the Anthropic API (for demos and tests).
    ModelServer(ModelServerArgs),
    /// Print a shell completion script (bash, zsh, fish), e.g.
    /// `sandpen completions bash > ~/.local/share/bash-completion/completions/sandpen`.
    Completions(CompletionsArgs),
    /// Print sandpen's man page (roff), e.g. `sandpen man > ~/.local/share/man/man1/sandpen.1`;
    /// `--dir DIR` writes a page per command there instead (sandpen-run.1, ...).
    Man(ManArgs),
    /// The egress gateway of a run (runs in the run's gateway container).
    #[command(hide = true)]
    Gateway(GatewayArgs),
    /// The entry step of a task's container on a Swarm node.
    #[command(hide = true)]
    Entry(EntryArgs),
}
