use std::io::Write;
use std::path::PathBuf;

use secrecy::SecretString;

use crate::agent;
use crate::cli::{DepsFromArg, RunArgs, RunFlags};
use crate::engine::Engine;
use crate::engine::spec::Owner;
use crate::exit::{self, UsageError};
use crate::gateway::price::PriceTable;
use crate::image::{ImageRequest, Target};
use crate::manifest::{Manifest, ManifestTask, RunSettings};
use crate::owner::{self, Lease};
use crate::plan::{self, Defaults, Plan, PromptPolicy};
use crate::report;
use crate::runner::{self, Event, EventSender, RunConfig, Stop};
use crate::workspace::{Repo, RunDir};

mod checks;
mod gateway;
mod outputs;
mod signals;
mod swarm;
mod warm;

pub use checks::{check_flags, check_output_file, plan_flags};
use checks::{check_network, check_runtimes};
pub use gateway::gateway_image;
use gateway::{check_gateway_input, host_credentials, start_gateway};
use signals::Signals;

pub async fn run(host: Option<&str>, args: RunArgs) -> anyhow::Result<i32> {
    let prepared = prepare(host, &args).await?;
    let mut opts = RunOptions::from(&args.flags);
    opts.deps_from = match args.deps_from {
        DepsFromArg::Results => runner::DepsFrom::Results,
        DepsFromArg::Base => runner::DepsFrom::Base,
    };
    execute(prepared, opts).await
}

/// How to run a prepared plan: the part of `run`'s arguments that `demo` shares.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub jobs: usize,
    /// The run's gateway, or the network task containers join directly.
    pub network: runner::TaskNetwork,
    /// What every task may reach through the gateway beyond the defaults.
    pub allow_hosts: Vec<String>,
    pub max_turns: u32,
    /// Where tasks with dependencies start.
    pub deps_from: runner::DepsFrom,
    pub fail_fast: bool,
    /// How often a task whose attempt ended `error` runs again (`--retries`).
    pub retries: u32,
    /// What else `retries` covers (`--retry-on`).
    pub retry_on: Vec<runner::retry::RetryOn>,
    pub keep_containers: bool,
    /// Prepare the project's environment once per lock (`--no-warm`: no).
    pub warm: bool,
    /// NDJSON on stdout instead of the live view.
    pub json: bool,
    /// Another place to write report.json.
    pub report: Option<PathBuf>,
    /// Where to write the run as JUnit XML.
    pub junit: Option<PathBuf>,
    /// Where to write the run as an HTML page.
    pub html: Option<PathBuf>,
    /// Colour in the live view and the summary.
    pub color: report::style::ColorChoice,
}

impl From<&RunFlags> for RunOptions {
    fn from(a: &RunFlags) -> Self {
        Self {
            jobs: a.jobs,
            network: a.network(),
            allow_hosts: a.allow_hosts.clone(),
            max_turns: a.max_turns(),
            deps_from: runner::DepsFrom::default(),
            fail_fast: a.fail_fast,
            retries: a.retries,
            retry_on: a.retry_on.clone(),
            keep_containers: a.keep_containers,
            warm: !a.no_warm,
            json: a.json,
            report: a.report.clone(),
            junit: a.junit.clone(),
            html: a.html.clone(),
            color: a.color.color,
        }
    }
}

/// Everything checked and made before the first container: errors here leave nothing behind.
pub struct Prepared {
    pub engine: Engine,
    pub plan: Plan,
    pub repo: Repo,
    pub base: String,
    pub image: String,
    /// Credentials given to every container, by name (to the gateway alone in gateway mode).
    pub credentials: Vec<(String, SecretString)>,
    /// In gateway mode: the gateway's image and price table.
    pub gateway: Option<(String, PriceTable)>,
    /// The engine's memory (`MemTotal`), which the running tasks' memory limits share (on a
    /// Swarm, its nodes' together).
    pub engine_memory: i64,
    /// With `--backend swarm`: where the tasks go instead of `engine`'s containers.
    pub swarm: Option<swarm::OnSwarm>,
}

pub async fn prepare(host: Option<&str>, args: &RunArgs) -> anyhow::Result<Prepared> {
    // Input first: no git, no engine, until the tasks are known to be valid.
    check_flags(&args.flags)?;
    let prompts = PromptPolicy::for_run(
        args.repo.as_deref(),
        args.allow_outside_prompts,
        args.max_prompt_size,
    );
    let plan = plan::load(
        &args.tasks,
        &plan_flags(&args.flags),
        &Defaults::default(),
        &prompts,
    )?;
    let swarm_input = swarm::check_input(&args.swarm, &args.flags.network())?;
    let target = RunTarget {
        repo: args.repo.as_deref(),
        base: &args.base,
    };
    prepare_plan(host, &args.flags, plan, target, swarm_input).await
}

/// The repository a plan runs in and where its tasks start.
pub struct RunTarget<'a> {
    pub repo: Option<&'a std::path::Path>,
    pub base: &'a str,
}

/// A valid plan checked against the flags, the repository and the engine, and its image made.
pub async fn prepare_plan(
    host: Option<&str>,
    args: &RunFlags,
    mut plan: Plan,
    target: RunTarget<'_>,
    swarm_input: Option<swarm::SwarmInput>,
) -> anyhow::Result<Prepared> {
    check_gateway_input(args, &plan)?;
    let prices = match &args.prices {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| PriceTable::from_toml(&t))
            .map_err(|e| {
                UsageError(format!(
                    "--prices {}: {e}\nfix: give a TOML file of [[price]] entries (model, input, output: USD per million tokens); see docs/gateway.md",
                    path.display()
                ))
            })?,
        None => PriceTable::default(),
    };
    let credentials = host_credentials();
    if credentials.is_empty() {
        return Err(UsageError(
            "no credentials for the Claude CLI: none of ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN, \
             CLAUDE_CODE_OAUTH_TOKEN or ANTHROPIC_BASE_URL is set\nfix: export ANTHROPIC_API_KEY=..., \
             or with a Claude subscription CLAUDE_CODE_OAUTH_TOKEN=... (from `claude setup-token`), or \
             point ANTHROPIC_BASE_URL at a proxy or a scripted model server; `sandpen demo` runs without any"
                .into(),
        )
        .into());
    }
    let repo = Repo::discover(target.repo).await?;
    let base = repo.resolve(target.base).await?;

    let engine = super::connect(host).await?;
    let info = engine.info().clone();
    let mut on_swarm = match &swarm_input {
        Some(input) => Some(swarm::connect(&engine, input, runner::STOP_GRACE).await?),
        None => None,
    };
    // What one task may ask for, and what the running tasks share: one engine, or a Swarm's
    // biggest node and all its nodes together.
    let (ncpu, one, all) = match &on_swarm {
        Some(on) => (
            on.capacity.max_cpus,
            on.capacity.max_memory,
            on.capacity.total_memory,
        ),
        None => (info.ncpu, info.mem_total, info.mem_total),
    };
    plan.check_cpus(ncpu)?;
    let lowered = plan.fit_default_memory(one);
    if lowered > 0 {
        eprintln!(
            "note: the engine has {} of memory, less than the default limit of 4 GiB: {lowered} task(s) get {} (set `memory` or --memory to choose)",
            indicatif::HumanBytes(one as u64),
            indicatif::HumanBytes(one as u64)
        );
    }
    plan.check_memory(one)?;
    for line in engine.dialect().warnings() {
        eprintln!(
            "warning: {} at {}: {line}",
            engine.dialect().name(),
            engine.address()
        );
    }
    check_network(&engine, &args.network()).await?;
    check_runtimes(&info, &plan, args.network().is_gateway(), on_swarm.is_some())?;
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
    let image = match (&mut on_swarm, &swarm_input) {
        (Some(on), Some(input)) => swarm::ready(on, input, &image).await?,
        _ => image,
    };
    // On a Swarm the gateways run the task image, which holds sandpen (pushed, by digest).
    let gateway = match (args.network().is_gateway(), &on_swarm) {
        (true, Some(_)) => Some((image.clone(), prices)),
        (true, None) => Some((gateway_image(&engine).await?, prices)),
        (false, _) => None,
    };
    // Failure injection for the test of a gateway that dies before it serves: test builds only.
    #[cfg(feature = "fault-injection")]
    let gateway = match std::env::var("SANDPEN_TEST_GATEWAY_IMAGE") {
        Ok(image) => gateway.map(|(_, prices)| (image, prices)),
        Err(_) => gateway,
    };
    Ok(Prepared {
        engine,
        plan,
        repo,
        base,
        image,
        credentials,
        gateway,
        engine_memory: all,
        swarm: on_swarm,
    })
}

pub async fn execute(p: Prepared, opts: RunOptions) -> anyhow::Result<i32> {
    let run_id = runner::new_run_id();
    let layout = p.repo.run_dir(&run_id).await?;
    // Held until this process ends, however it ends: `gc` judges the run by it.
    let lease = Lease::take(&layout.lease()).inspect_err(|_| discard_new_run(&layout))?;
    let run = InRun {
        run_id,
        layout,
        _lease: lease,
        earlier: runner::Earlier::default(),
        manifest: None,
    };
    execute_in(p, opts, run).await
}

/// The run a plan executes in: a new one, or (`rerun`) an earlier one, its lease taken.
pub struct InRun {
    pub run_id: String,
    pub layout: RunDir,
    /// Held until this process ends, however it ends: `gc` judges the run by it.
    pub _lease: Lease,
    pub earlier: runner::Earlier,
    /// The manifest to write (a rerun's, which keeps what the run recorded); None: the plan's.
    pub manifest: Option<Manifest>,
}

pub async fn execute_in(mut p: Prepared, opts: RunOptions, run: InRun) -> anyhow::Result<i32> {
    let (run_id, layout, earlier) = (run.run_id.clone(), run.layout.clone(), run.earlier.clone());
    // A new run whose directory cannot be written leaves none behind (it holds only this).
    let fresh = run.manifest.is_none();
    if let Err(e) = record(&p, &opts, &run) {
        if fresh {
            discard_new_run(&layout);
        }
        return Err(e);
    }
    if opts.keep_containers
        && p.gateway.is_none()
        && p.credentials.iter().any(|(k, _)| k != "ANTHROPIC_BASE_URL")
    {
        warn(
            "--keep-containers: the kept containers hold your API credentials in their environment \
              (visible to `docker inspect`); remove them with `sandpen gc` or `docker rm` when done",
        );
    }
    let owner = Owner {
        run_id: run_id.clone(),
        process: owner::this_owner(),
        process_start: owner::this_start_time(),
        run_dir: layout.root.clone(),
    };
    let (events, rx) = EventSender::channel();
    // Watched from here on: a Ctrl-C while the gateway starts stops the run as any other.
    let stop = Stop::default();
    let signals = p
        .swarm
        .as_mut()
        .and_then(|on| on.signals.take())
        .or_else(Signals::new);
    let signals = tokio::spawn(signals::watch(
        signals,
        stop.clone(),
        events.clone(),
        layout.clone(),
    ));
    let control = tokio::spawn(crate::runs::control::serve(layout.clone(), {
        let (stop, events) = (stop.clone(), events.clone());
        move |request| obey(&stop, &events, request)
    }));
    let gateway = p
        .gateway
        .as_ref()
        .map(|g| {
            // The tasks that will use it: a rerun's kept tasks do not run.
            let users = p.plan.tasks.len().saturating_sub(earlier.kept.len());
            start_gateway(&p, &owner, &layout, g, &opts, events.clone(), users)
        })
        .transpose()?;
    let warm = warm::for_run(&p, &opts, &owner, &layout, &stop, &events).await?;
    let cfg = RunConfig {
        run_id: run_id.clone(),
        owner,
        gateway,
        repo: p.repo,
        layout: layout.clone(),
        base: p.base,
        deps_from: opts.deps_from,
        image: p.image,
        network: opts.network.clone(),
        max_turns: opts.max_turns,
        jobs: opts.jobs,
        engine_memory: p.engine_memory.max(0) as u64,
        limits_enforced: p.engine.dialect().cgroup_per_container(),
        fail_fast: opts.fail_fast,
        retries: opts.retries,
        retry_on: opts.retry_on.clone(),
        keep_containers: opts.keep_containers,
        grace: runner::STOP_GRACE,
        credentials: p.credentials,
        earlier,
        warm,
    };

    let (consumers, written) = outputs::Outputs::new(&opts, &layout).split();
    let display = tokio::task::spawn_blocking(move || report::consume(rx, consumers));

    let report = match p.swarm {
        Some(on) => {
            let report = runner::execute(on.engine, p.plan, cfg, events, stop.clone()).await;
            // Every task's work came back or never will: the tokens `gc` would need go.
            if report.complete {
                let _ = std::fs::remove_file(layout.swarm_tokens());
            }
            report
        }
        None => runner::execute(p.engine.clone(), p.plan, cfg, events, stop.clone()).await,
    };
    signals.abort();
    control.abort();
    let _ = tokio::join!(signals, control);
    let _ = display.await;

    let unwritten = written.say(&layout);
    Ok(if report.cancelled {
        exit::INTERRUPTED
    } else if report.all_succeeded() && !unwritten {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}

/// `sandpen stop` from another terminal: the run, as a first Ctrl-C stops it, or one task.
fn obey(stop: &Stop, events: &EventSender, request: crate::runs::control::StopRequest) {
    match request.task {
        None if !stop.graceful.is_cancelled() => {
            stop.cancel(runner::CancelReason::Stopped);
            events.send(Event::RunCancelling { kill: false });
        }
        None => {}
        Some(task) if !stop.stop_task(&task) => {
            tracing::warn!("sandpen stop: this run has no task {task}");
        }
        Some(_) => {}
    }
}

/// Writes the run's agents and its manifest (a rerun's, or one of the plan).
fn record(p: &Prepared, opts: &RunOptions, run: &InRun) -> anyhow::Result<()> {
    write_agents(&run.layout)?;
    let manifest = match &run.manifest {
        Some(m) => m.clone(),
        None => Manifest {
            run_id: run.run_id.clone(),
            repo: p.repo.root.display().to_string(),
            base: p.base.clone(),
            image: p.image.clone(),
            user: p.repo.task_user(),
            limits_enforced: p.engine.dialect().cgroup_per_container(),
            backend: p.swarm.as_ref().map(|_| "swarm".to_string()),
            settings: None,
            tasks: p.plan.tasks.iter().map(ManifestTask::of).collect(),
        },
    };
    let manifest = Manifest {
        settings: Some(RunSettings {
            network: opts.network.to_string(),
            max_turns: opts.max_turns,
            allow_hosts: opts.allow_hosts.clone(),
        }),
        ..manifest
    };
    Ok(manifest.write(&run.layout.manifest())?)
}

/// Removes the directory of a run that never started: sandpen made it a moment ago and it
/// holds nothing but what sandpen wrote.
fn discard_new_run(layout: &RunDir) {
    if let Err(e) = std::fs::remove_dir_all(&layout.root) {
        tracing::warn!("removing {}: {e}", layout.root.display());
    }
}

/// sandpen's WorkflowManager definition, mounted read-only into every container.
fn write_agents(layout: &RunDir) -> anyhow::Result<()> {
    let dir = layout.agents();
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("{}.md", agent::AGENT_NAME)), agent::DEFINITION)?;
    Ok(())
}

/// Lines for the user after the display has finished. A closed terminal (SIGHUP) must not turn
/// a message into a panic, so write errors are ignored.
fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn warn(line: &str) {
    note(&format!("warning: {line}"));
}
