//! The checks `run` makes of its flags before anything is read or made, and of the plan
//! against the engine before anything is created.

use crate::cli::RunFlags;
use crate::engine::Engine;
use crate::exit::UsageError;
use crate::plan::{self, Flags};
use crate::runner;

/// The flags checked before anything is read: the output files, `--jobs`.
pub fn check_flags(f: &RunFlags) -> anyhow::Result<()> {
    check_output_file("--junit", f.junit.as_deref())?;
    check_output_file("--html", f.html.as_deref())?;
    if f.jobs == 0 {
        return Err(UsageError(
            "--jobs 0: at least one container must run at a time\nfix: pass --jobs 1 or more".into(),
        )
        .into());
    }
    Ok(())
}

/// The resource flags as typed, for the plan to parse and apply.
pub fn plan_flags(f: &RunFlags) -> Flags {
    Flags {
        cpus: f.cpus.clone(),
        memory: f.memory.clone(),
        memory_request: f.memory_request.clone(),
        pids: f.pids_limit.clone(),
        timeout: f.timeout.clone(),
        disk: f.disk.clone(),
        log_limit: f.log_limit.clone(),
        salvage_max_file: f.salvage_max_file.clone(),
        salvage_max_total: f.salvage_max_total.clone(),
        max_cost: f.max_cost.clone(),
        runtime: f.runtime.clone(),
    }
}

/// An output file named on the command line can be written: checked before anything starts.
pub fn check_output_file(flag: &str, path: Option<&std::path::Path>) -> anyhow::Result<()> {
    let Some(path) = path else { return Ok(()) };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let refused = |why: String| {
        UsageError(format!(
            "{flag} {}: {why}\nfix: name a file in a directory you can write",
            path.display()
        ))
    };
    if path.is_dir() {
        return Err(refused("is a directory".into()).into());
    }
    tempfile::NamedTempFile::new_in(dir)
        .map(drop)
        .map_err(|e| refused(format!("cannot write in {} ({e})", dir.display())).into())
}

/// Every runtime the tasks name is one the engine has (and, for gVisor in gateway mode, one
/// whose tasks can reach the gateway): refused before anything is made.
pub(super) fn check_runtimes(
    info: &crate::engine::EngineInfo,
    plan: &plan::Plan,
    gateway_mode: bool,
    on_swarm: bool,
) -> anyhow::Result<()> {
    let mut named: Vec<&str> = plan.tasks.iter().filter_map(|t| t.runtime.as_deref()).collect();
    named.sort_unstable();
    named.dedup();
    if on_swarm && let Some(name) = named.first() {
        return Err(UsageError(format!(
            "runtime {name}: a Swarm service cannot choose its container runtime\nfix: make it \
             the nodes' default (`\"default-runtime\"` in each node's daemon.json), or run on one \
             engine (--backend local)"
        ))
        .into());
    }
    for name in named {
        if let Some(why) = info.runtime_refusal(name, gateway_mode) {
            return Err(UsageError(why).into());
        }
    }
    Ok(())
}

/// A named network exists on the engine.
pub(super) async fn check_network(engine: &Engine, network: &runner::TaskNetwork) -> anyhow::Result<()> {
    let runner::TaskNetwork::Named(name) = network else {
        return Ok(());
    };
    if engine.network_exists(name).await? {
        return Ok(());
    }
    Err(UsageError(format!(
        "--network {network}: no such network on the engine\nfix: use gateway (the default), none, bridge, or create it with `docker network create {network}`"
    ))
    .into())
}
