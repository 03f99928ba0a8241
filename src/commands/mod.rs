//! One file per command: each turns parsed arguments into calls on the library.

mod demo;
mod doctor;
mod gc;
mod image;
mod model_server;
mod run;

use crate::cli::{Cli, Command};
use crate::engine::Engine;
use crate::image::{ImageError, ImageRequest};
use crate::report::build::BuildDisplay;

/// Runs the parsed command; returns the exit code for outcomes that are not errors.
pub async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let host = cli.host.as_deref();
    match cli.command {
        Command::Run(args) => run::run(host, args).await,
        Command::Image(args) => image::run(host, args).await,
        Command::Gc(args) => gc::run(host, args).await,
        Command::Demo(args) => demo::run(host, args).await,
        Command::Doctor(args) => doctor::run(host, args).await,
        Command::ModelServer(args) => model_server::run(host, args).await,
    }
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
