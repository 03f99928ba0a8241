use std::net::SocketAddr;

use crate::cli::ModelServerArgs;
use crate::exit::{self, UsageError};
use crate::model_server::{ModelServer, Script};

pub async fn run(host: Option<&str>, args: ModelServerArgs) -> anyhow::Result<i32> {
    let script = Script::load(&args.script).map_err(|e| {
        UsageError(format!(
            "{e}\nfix: see docs/model-server.md for the script format"
        ))
    })?;
    let bind = match args.bind {
        Some(b) => b,
        None => {
            let engine = super::connect(host).await?;
            SocketAddr::new(engine.bridge_gateway().await?, 0)
        }
    };
    let server = ModelServer::start(script.clone(), bind, args.record).await?;
    for task in script.tasks.keys() {
        eprintln!(
            "task {task}: ANTHROPIC_BASE_URL={}",
            server.base_url_for(&server.addr.ip().to_string(), task)
        );
    }
    // For `sandpen run`, one value serves every task: sandpen replaces {task} per container.
    println!("http://{}/task/{{task}}", server.addr);
    tokio::signal::ctrl_c().await?;
    server.stop().await;
    Ok(exit::SUCCESS)
}
