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

/// The exit code of the first error in `err`'s chain that has one (`HasExitCode`), else 1.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    let known = |e: &(dyn std::error::Error + 'static)| CODED.iter().find_map(|code| code(e));
    err.chain().find_map(known).unwrap_or(crate::exit::FAILURE)
}

type Coded = fn(&(dyn std::error::Error + 'static)) -> Option<i32>;

/// Every library error type that can reach the edge. `error_types_all_have_codes` fails when
/// a `pub enum ...Error` of src/ is missing here.
const CODED: &[Coded] = &[
    code::<crate::engine::EngineError>,
    code::<crate::image::ImageError>,
    code::<crate::exit::UsageError>,
    code::<crate::plan::PlanError>,
    code::<crate::workspace::WorkspaceError>,
    code::<crate::runs::RunsError>,
    code::<crate::runner::rerun::RerunError>,
    code::<crate::swarm::RegistryError>,
    code::<crate::swarm::SwarmError>,
    code::<crate::swarm::ReachError>,
    code::<crate::swarm::JobError>,
    code::<crate::gateway::GatewayError>,
    code::<crate::collect::CollectError>,
];

fn code<E: HasExitCode + std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> Option<i32> {
    e.downcast_ref::<E>().map(HasExitCode::exit_code)
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

    /// Every `pub enum NameError` / `pub struct NameError` in src/ is in `CODED`, so no error
    /// type reaches the edge without its exit code.
    #[test]
    fn error_types_all_have_codes() {
        let listed = include_str!("mod.rs");
        let listed = &listed[listed.find("const CODED").unwrap()..];
        let listed = &listed[..listed.find("];").unwrap()];
        let mut missing = Vec::new();
        let mut stack = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src"
        ))];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for line in text.lines() {
                    let decl = line
                        .trim_start()
                        .strip_prefix("pub enum ")
                        .or_else(|| line.trim_start().strip_prefix("pub struct "));
                    let name = decl.and_then(|d| d.split(|c: char| !c.is_alphanumeric()).next());
                    let name = name.filter(|n| n.ends_with("Error"));
                    if let Some(name) = name.filter(|n| !listed.contains(&format!("::{n}>"))) {
                        missing.push(format!("{name} ({})", path.display()));
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "error types with no exit code in CODED: {missing:?}"
        );
    }
}
