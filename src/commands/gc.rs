use std::collections::HashMap;
use std::path::Path;

use crate::cli::GcArgs;
use crate::engine::spec::{LABEL_OWNER, LABEL_ROLE, LABEL_TASK, ROLE_GATEWAY};
use crate::engine::{ContainerEngine, ListedContainer, short};
use crate::exit;
use crate::gc::{self, RunOnEngine};
use crate::owner::{LeaseState, OwnerState, lease_state};
use crate::swarm::{Placement, SwarmEngine};
use crate::workspace::{Repo, RunDir};

/// Finishes runs whose sandpen is gone: removes their containers, brings their tasks' work
/// back as branches (in the collection sandbox), hands the checkouts back and completes their
/// reports. A live run is never touched.
pub async fn run(host: Option<&str>, args: GcArgs) -> anyhow::Result<i32> {
    // A repository the user named must be one; the one around the working directory may not be.
    let repo = match &args.repo {
        Some(dir) => Some(Repo::discover(Some(dir)).await?),
        None => Repo::discover(None).await.ok(),
    };
    let engine = super::connect(host).await?;
    // A Swarm manager's services are tasks of runs too (`run --backend swarm`).
    let swarm = SwarmEngine::new(engine.clone(), Placement::default()).await.ok();
    let (mut removed, mut kept) = (0, 0);
    let mut finished = Vec::new();
    let local = collect_runs(&engine, args.dry_run, false, &mut finished, &mut Vec::new()).await?;
    removed += local.0;
    kept += local.1;
    if let Some(swarm) = &swarm {
        let mut dead = Vec::new();
        let services = collect_runs(swarm, args.dry_run, true, &mut finished, &mut dead).await?;
        // Their gateways' secrets and overlays (the services went with the rest).
        for run_id in dead.iter().filter(|_| !args.dry_run) {
            for left in swarm.sweep_gateways(run_id).await {
                eprintln!("warning: {left}");
            }
        }
        removed += services.0;
        kept += services.1;
    }
    // The networks of gateway-mode runs made by earlier versions (runs make none now), once
    // their containers are gone.
    let networks = engine.networks_with_label(LABEL_OWNER, None).await?;
    let listed = networks
        .into_iter()
        .map(|(name, labels)| ListedContainer {
            id: name.clone(),
            name,
            labels,
            state: String::new(),
        })
        .collect();
    for run in gc::by_run(listed) {
        let Ok(_lease) = gc::claim(&run) else {
            continue;
        };
        for net in &run.containers {
            if args.dry_run {
                println!(
                    "would remove network {} (run {}): its sandpen process is gone",
                    net.name, run.run_id
                );
            } else {
                match engine.remove_network(&net.name).await {
                    Ok(()) => println!(
                        "removed network {} (run {}): its sandpen process is gone",
                        net.name, run.run_id
                    ),
                    Err(e) => eprintln!(
                        "warning: network {} (run {}) stays: {e}\n  \
                         if no container uses it (`docker network inspect {}` lists none), the engine \
                         kept a stale endpoint: restarting the engine frees it, then run `sandpen gc` again",
                        net.name, run.run_id, net.name
                    ),
                }
            }
        }
    }
    // Runs of this repository whose sandpen died after its containers were gone.
    if let Some(repo) = repo {
        for dir in repo.runs.runs() {
            if finished.contains(&dir) {
                continue;
            }
            // Only a run whose lease this process can take: its sandpen is gone, and no
            // other gc is finishing it.
            let LeaseState::Free(_lease) = lease_state(&RunDir::new(&dir).lease()) else {
                continue;
            };
            match (crate::manifest::on_swarm(&RunDir::new(&dir)), &swarm) {
                (false, _) => finish(&engine, &dir, &HashMap::new(), args.dry_run).await,
                (true, Some(swarm)) => finish(swarm, &dir, &HashMap::new(), args.dry_run).await,
                (true, None) => println!(
                    "kept run {}: it ran on a Docker Swarm; run gc with DOCKER_HOST at its manager",
                    dir.display()
                ),
            }
        }
    }
    let verb = if args.dry_run { "would remove" } else { "removed" };
    eprintln!("gc: {verb} {removed} container(s), kept {kept} of live or foreign runs");
    Ok(exit::SUCCESS)
}

/// The label the Swarm puts on the containers of its services' tasks.
const SWARM_SERVICE_LABEL: &str = "com.docker.swarm.service.id";

/// Removes the containers (or a Swarm's services) of runs whose sandpen is gone and finishes
/// those runs; the containers removed and kept. With `take_offered` (a Swarm's services), the
/// run's exchange listens again meanwhile, to take the work its tasks still offer.
async fn collect_runs<E: ContainerEngine>(
    engine: &E,
    dry_run: bool,
    take_offered: bool,
    finished: &mut Vec<std::path::PathBuf>,
    dead: &mut Vec<String>,
) -> anyhow::Result<(usize, usize)> {
    let mut containers = engine.list(LABEL_OWNER, None).await?;
    // On a manager, a task's container of a Swarm service is listed among the engine's own:
    // the Swarm's pass (`take_offered`) removes its service, which takes its work first.
    if !take_offered {
        containers.retain(|c| !c.labels.contains_key(SWARM_SERVICE_LABEL));
    }
    let (mut removed, mut kept) = (0, 0);
    for run in gc::by_run(containers) {
        match gc::claim(&run) {
            Ok(_lease) => {
                removed += run.containers.len();
                dead.push(run.run_id.clone());
                let layout = run.run_dir.as_ref().map(RunDir::new);
                // Removing a service stops its task, which then sends its work at once.
                let exchange = match (&layout, take_offered && !dry_run) {
                    (Some(layout), true) => crate::swarm::reopen(layout).await,
                    _ => None,
                };
                let exits = remove_containers(engine, &run, dry_run).await?;
                if let Some(dir) = &run.run_dir {
                    finish(engine, dir, &exits, dry_run).await;
                    finished.push(dir.clone());
                }
                if let (Some(layout), Some(_)) = (&layout, exchange) {
                    let _ = std::fs::remove_file(layout.swarm_tokens());
                }
            }
            Err(state) => {
                kept += run.containers.len();
                let why = match state {
                    OwnerState::Alive => {
                        "its sandpen process is running (or another `sandpen gc` is finishing it)".to_string()
                    }
                    OwnerState::Elsewhere(host) => format!("owned by a process on {host}; run gc there"),
                    _ => "its owner cannot be determined".to_string(),
                };
                println!(
                    "kept run {} ({} container(s)): {why}",
                    run.run_id,
                    run.containers.len()
                );
            }
        }
    }
    Ok((removed, kept))
}

/// Removes the run's containers; returns the exit codes of its task containers that had ended.
async fn remove_containers<E: ContainerEngine>(
    engine: &E,
    run: &RunOnEngine,
    dry_run: bool,
) -> anyhow::Result<HashMap<String, i64>> {
    let mut exits = HashMap::new();
    // A task stopped on a Swarm sends its work back through its gateway: gateways go last.
    let mut containers: Vec<&ListedContainer> = run.containers.iter().collect();
    containers.sort_by_key(|c| c.labels.get(LABEL_ROLE).is_some_and(|r| r == ROLE_GATEWAY));
    for c in containers {
        let label = |k: &str| c.labels.get(k).map(String::as_str).unwrap_or("?");
        let what = format!(
            "{} (run {}, task {}, {})",
            short(&c.id),
            run.run_id,
            label(LABEL_TASK),
            c.state
        );
        if c.state != "running"
            && label(LABEL_ROLE) == "task"
            && let Ok(state) = engine.exit_state(&c.id).await
        {
            exits.insert(label(LABEL_TASK).to_string(), state.exit_code);
        }
        if dry_run {
            println!("would remove {what}: its sandpen process is gone");
        } else {
            engine.remove(&c.id).await?;
            println!("removed {what}: its sandpen process is gone");
        }
    }
    Ok(exits)
}

async fn finish<E: ContainerEngine>(engine: &E, dir: &Path, exits: &HashMap<String, i64>, dry_run: bool) {
    let layout = RunDir::new(dir);
    if !layout.manifest().exists() {
        return; // a run of an older sandpen, or a directory this machine cannot see
    }
    if dry_run {
        println!(
            "would complete run {} (collect its unfinished tasks)",
            dir.display()
        );
        return;
    }
    match gc::finish_run(engine, &layout, exits).await {
        Ok(lines) if lines.is_empty() => {}
        Ok(lines) => {
            println!("completed run {}:", dir.display());
            for l in lines {
                println!("  {l}");
            }
        }
        Err(e) => eprintln!(
            "warning: could not complete run {}: {}",
            dir.display(),
            super::render(&e)
        ),
    }
}
