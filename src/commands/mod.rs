//! One file per command: each turns parsed arguments into calls on the library.

mod completions;
pub use completions::completion_command;
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

use crate::cli::{Cli, Command};
use crate::engine::Engine;
use crate::exit::HasExitCode;
use crate::image::{ImageError, ImageRequest};
use crate::report::build::BuildDisplay;

/// Runs the parsed command; returns the exit code for outcomes that are not errors.
pub async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    // `--host` after the command wins over one before it.
    let top = cli.host;
    let host = |e: &crate::cli::EngineArg| e.host.clone().or_else(|| top.clone());
    match cli.command {
        Command::Run(args) => run::run(host(&args.engine).as_deref(), *args).await,
        Command::Rerun(args) => rerun::run(host(&args.engine).as_deref(), *args).await,
        Command::Ps(args) => ps::run(host(&args.engine).as_deref(), args).await,
        Command::Logs(args) => logs::run(args).await,
        Command::Stop(args) => stop::run(args).await,
        Command::Diff(args) => diff::run(args).await,
        Command::Merge(args) => merge::run(args).await,
        Command::Image(args) => image::run(host(&args.engine).as_deref(), args).await,
        Command::Gc(args) => gc::run(host(&args.engine).as_deref(), args).await,
        Command::Prune(args) => prune::run(host(&args.engine).as_deref(), args).await,
        Command::Demo(args) => demo::run(host(&args.engine).as_deref(), args).await,
        Command::Report(args) => report::run(args).await,
        Command::Doctor(args) => doctor::run(host(&args.engine).as_deref(), args).await,
        Command::ModelServer(args) => model_server::run(host(&args.engine).as_deref(), args).await,
        Command::Gateway(args) => gateway::run(args).await,
        Command::Entry(args) => entry::run(args).await,
        Command::Completions(args) => completions::completions(args),
        Command::Man(args) => completions::man(args),
    }
}

/// The exit code of a failed command: the first error in the chain that knows its code.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    fn known(e: &(dyn std::error::Error + 'static)) -> Option<i32> {
        if let Some(e) = e.downcast_ref::<crate::engine::EngineError>() {
            return Some(e.exit_code());
        }
        if let Some(e) = e.downcast_ref::<crate::image::ImageError>() {
            return Some(e.exit_code());
        }
        if let Some(e) = e.downcast_ref::<crate::exit::UsageError>() {
            return Some(e.exit_code());
        }
        if let Some(e) = e.downcast_ref::<crate::plan::PlanError>() {
            return Some(e.exit_code());
        }
        if let Some(e) = e.downcast_ref::<crate::workspace::WorkspaceError>() {
            return Some(e.exit_code());
        }
        if let Some(e) = e.downcast_ref::<crate::runs::RunsError>() {
            return Some(e.exit_code());
        }
        if let Some(e) = e.downcast_ref::<crate::runner::rerun::RerunError>() {
            return Some(e.exit_code());
        }
        if let Some(e) = e.downcast_ref::<crate::swarm::RegistryError>() {
            return Some(e.exit_code());
        }
        if let Some(e) = e.downcast_ref::<crate::swarm::SwarmError>() {
            return Some(e.exit_code());
        }
        if let Some(e) = e.downcast_ref::<crate::swarm::ReachError>() {
            return Some(e.exit_code());
        }
        None
    }
    err.chain().find_map(known).unwrap_or(crate::exit::FAILURE)
}

/// An error and its causes on one line, each cause once: a message that already says its
/// cause (thiserror's `"{context}: {source}"`) is not followed by it again, as anyhow's `{:#}`
/// would.
pub fn render(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Builds or reuses an image, showing progress on stderr.
async fn ensure_image(engine: &Engine, req: &ImageRequest) -> Result<String, ImageError> {
    let mut display = BuildDisplay::stderr();
    let tag = crate::image::ensure(engine, req, &mut |e| display.on_event(e)).await;
    display.finish();
    tag
}

/// Connects to the engine; every command that needs one starts here.
async fn connect(host: Option<&str>) -> anyhow::Result<Engine> {
    Ok(Engine::connect(host).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_is_said_once() {
        let io = std::io::Error::from_raw_os_error(20);
        let said = io.to_string();
        // A variant whose message holds its source, and a context above it.
        let err = anyhow::Error::from(crate::workspace::WorkspaceError::Io {
            context: "creating /x".into(),
            source: io,
        })
        .context("starting the run");
        assert_eq!(render(&err), format!("starting the run: creating /x: {said}"));
        // A cause the message does not hold is still said.
        let err = anyhow::anyhow!("inner").context("outer");
        assert_eq!(render(&err), "outer: inner");
    }
}
