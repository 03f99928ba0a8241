use std::path::{Path, PathBuf};

use crate::cli::RunArgs;
use crate::engine::spec::{CREDENTIAL_ENV, LABEL_RUN};
use crate::engine::{ContainerEngine, Engine};
use crate::exit::{self, UsageError};
use crate::image::{ImageRequest, Target};
use crate::plan::{self, Defaults, Flags, Plan, PromptPolicy};
use crate::report::{self, Consumer, LiveView, Ndjson, ReportWriter};
use crate::runner::{self, Event, EventSender, RunConfig, Stop};
use crate::workspace::Repo;
use crate::{agent, owner};

pub async fn run(host: Option<&str>, args: RunArgs) -> anyhow::Result<i32> {
    let prepared = prepare(host, &args).await?;
    execute(prepared, &args).await
}

/// Everything checked and made before the first container: errors here leave nothing behind.
pub struct Prepared {
    pub engine: Engine,
    pub plan: Plan,
    pub repo: Repo,
    pub base: String,
    pub image: String,
    /// `KEY=value` credentials given to every container.
    pub env: Vec<String>,
}

pub async fn prepare(host: Option<&str>, args: &RunArgs) -> anyhow::Result<Prepared> {
    // Input first: no git, no engine, until the tasks are known to be valid.
    if args.jobs == 0 {
        return Err(UsageError(
            "--jobs 0: at least one container must run at a time\nfix: pass --jobs 1 or more".into(),
        )
        .into());
    }
    let flags = Flags {
        cpus: args.cpus.clone(),
        memory: args.memory.clone(),
        pids: args.pids_limit.clone(),
        timeout: args.timeout.clone(),
    };
    let prompts = PromptPolicy::for_run(
        args.repo.as_deref(),
        args.allow_outside_prompts,
        args.max_prompt_size,
    );
    let plan = plan::load(&args.tasks, &flags, &Defaults::default(), &prompts)?;
    let env = passthrough_env();
    if env.is_empty() {
        return Err(UsageError(
            "no credentials for the Claude CLI: none of ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN or \
             ANTHROPIC_BASE_URL is set\nfix: export ANTHROPIC_API_KEY=... (or point ANTHROPIC_BASE_URL \
             at a proxy or a scripted model server); `sandpen demo` runs without any"
                .into(),
        )
        .into());
    }
    let repo = Repo::discover(args.repo.as_deref()).await?;
    let base = repo.resolve(&args.base).await?;

    let engine = super::connect(host).await?;
    let info = engine.info().await?;
    plan.check_cpus(info.ncpu)?;
    check_network(&engine, &args.network).await?;
    let image = match &args.image {
        Some(tag) => {
            if engine.image_id(tag).await?.is_none() {
                return Err(UsageError(format!(
                    "--image {tag}: no such image on the engine\nfix: build one with `sandpen image build` (it prints the tag) or omit --image"
                ))
                .into());
            }
            tag.clone()
        }
        None => {
            let mut req = ImageRequest::new(Target::Agent);
            req.ca_certs = args.ca.ca_certs.clone();
            super::ensure_image(&engine, &req).await?
        }
    };
    Ok(Prepared {
        engine,
        plan,
        repo,
        base,
        image,
        env,
    })
}

/// The credentials set on the host, as `KEY=value`.
fn passthrough_env() -> Vec<String> {
    CREDENTIAL_ENV
        .iter()
        .filter_map(|k| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.is_empty())
                .map(|v| format!("{k}={v}"))
        })
        .collect()
}

async fn check_network(engine: &Engine, network: &str) -> anyhow::Result<()> {
    if matches!(network, "none" | "bridge" | "host") || engine.network_exists(network).await? {
        return Ok(());
    }
    Err(UsageError(format!(
        "--network {network}: no such network on the engine\nfix: use none, bridge, or create it with `docker network create {network}`"
    ))
    .into())
}

pub async fn execute(p: Prepared, args: &RunArgs) -> anyhow::Result<i32> {
    let run_id = runner::new_run_id();
    let run_dir = p.repo.run_dir(&run_id).await?;
    let agents_dir = write_agents(&run_dir)?;
    let cfg = RunConfig {
        run_id: run_id.clone(),
        repo: p.repo,
        run_dir: run_dir.clone(),
        base: p.base,
        image: p.image,
        network: args.network.clone(),
        max_turns: args.max_turns,
        jobs: args.jobs,
        fail_fast: args.fail_fast,
        keep_containers: args.keep_containers,
        grace: runner::STOP_GRACE,
        passthrough_env: p.env,
        owner: owner::this_owner(),
        owner_start: owner::this_start_time(),
        agents_dir,
    };

    let report_path = run_dir.join("report.json");
    let mut report_paths = vec![report_path.clone()];
    report_paths.extend(args.report.clone());
    let writer = ReportWriter::new(report_paths);
    let write_errors = writer.errors.clone();
    let mut consumers: Vec<Box<dyn Consumer>> = vec![Box::new(writer)];
    if args.json {
        consumers.push(Box::new(Ndjson));
    } else {
        consumers.push(Box::new(LiveView::new(false)));
    }

    let (events, rx) = EventSender::channel();
    let display = tokio::spawn(report::consume(rx, consumers));
    let stop = Stop::default();
    let signals = tokio::spawn(watch_signals(stop.clone(), events.clone()));

    let report = runner::execute(p.engine.clone(), p.plan, cfg, events, stop.clone()).await;
    signals.abort();
    let _ = signals.await;
    let _ = display.await;

    // Belt and braces: nothing of this run stays on the engine, whatever happened above.
    if !args.keep_containers {
        sweep(&p.engine, &run_id).await;
    }
    for e in write_errors.lock().unwrap().iter() {
        eprintln!("warning: {e}");
    }
    eprintln!("report: {}", report_path.display());
    eprintln!("logs:   {}/<task>.log", run_dir.display());
    Ok(if report.cancelled {
        exit::INTERRUPTED
    } else if report.all_succeeded() {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}

/// First Ctrl-C or SIGTERM: stop every container with the grace. Second: kill at once.
/// Third: leave immediately, whatever is still running (`sandpen gc` cleans up after that).
async fn watch_signals(stop: Stop, events: EventSender) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return;
    };
    for count in 1.. {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        match count {
            1 => {
                events.send(Event::RunCancelling { kill: false });
                stop.graceful.cancel();
            }
            2 => {
                events.send(Event::RunCancelling { kill: true });
                stop.kill.cancel();
            }
            _ => {
                eprintln!("third interrupt: exiting now; run `sandpen gc` to remove what is left");
                std::process::exit(exit::INTERRUPTED);
            }
        }
    }
}

/// Removes any container still labelled with this run (each removal with its own limit).
async fn sweep(engine: &Engine, run_id: &str) {
    let Ok(Ok(left)) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        engine.list(LABEL_RUN, Some(run_id)),
    )
    .await
    else {
        return;
    };
    for c in left {
        tracing::warn!("removing leftover container {}", c.name);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(30), engine.remove(&c.id)).await;
    }
}

/// sandpen's WorkflowManager definition, mounted read-only into every container.
fn write_agents(run_dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = run_dir.join("agents");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("{}.md", agent::AGENT_NAME)), agent::DEFINITION)?;
    Ok(dir)
}
