use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::cli::DemoArgs;
use crate::exit::UsageError;
use crate::image::{self, ImageRequest, Target};
use crate::model_server::ModelServer;
use crate::plan::{self, Defaults, Flags, PromptPolicy};
use crate::workspace::Repo;
use crate::{demo, workspace};

/// The demo: a sample repository, the agent image, the scripted model server, and the sample
/// tasks run in parallel through the WorkflowManager, exactly as `sandpen run` runs tasks.
pub async fn run(host: Option<&str>, args: DemoArgs) -> anyhow::Result<i32> {
    image::context_for(Target::Agent, &args.ca.ca_certs)?;
    super::run::check_output_file("--junit", args.junit.as_deref())?;
    super::run::check_output_file("--html", args.html.as_deref())?;
    let engine = super::connect(host).await?;
    // Before the sample repository is made: a runtime the engine lacks leaves nothing behind.
    let refused = args
        .runtime
        .as_deref()
        .and_then(|rt| engine.info().runtime_refusal(rt, true));
    if let Some(why) = refused {
        return Err(UsageError(why).into());
    }
    let dir = sample_dir(args.repo.as_deref())?;
    make_repo(&dir).await?;
    eprintln!("sample repository: {}", dir.display());

    let mut req = ImageRequest::new(Target::Agent);
    req.ca_certs = args.ca.ca_certs.clone();
    // The demo is the one command of a fresh machine: make the base offline if need be.
    req.bootstrap_base = true;
    let image = super::ensure_image(&engine, &req).await?;

    let sandpen_dir = Repo::discover(Some(&dir)).await?.runs.sandpen_dir().to_path_buf();
    std::fs::create_dir_all(&sandpen_dir)?;
    let record = sandpen_dir.join("demo-model-requests.jsonl");
    // Only the run's gateway talks to the model server, from the engine host's network: the
    // loopback address is enough, and reaches nothing else. (The default bridge's address
    // would not do on every engine: rootful Podman makes that bridge only once a container
    // joins it.)
    let bind = SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), 0);
    let server = ModelServer::start(demo::script(), bind, Some(record.clone()))
        .await
        .map_err(|e| anyhow::anyhow!("starting the demo's model server on {bind}: {e}"))?;
    eprintln!(
        "model: sandpen's scripted model server at {} (no Anthropic account is used; the answers are scripted)",
        server.addr
    );

    let prompts: Vec<PathBuf> = demo::TASKS
        .iter()
        .map(|t| dir.join("tasks").join(format!("{}.md", t.id)))
        .collect();
    let flags = Flags {
        memory: Some("1g".into()),
        cpus: Some("1".into()),
        timeout: Some("10m".into()),
        runtime: args.runtime.clone(),
        ..Default::default()
    };
    let policy = PromptPolicy::for_run(Some(&dir), false, plan::DEFAULT_MAX_PROMPT_BYTES);
    let plan = plan::load(&prompts, &flags, &Defaults::default(), &policy)?;
    let repo = Repo::discover(Some(&dir)).await?;
    let base = repo.resolve("HEAD").await?;
    let credentials = vec![
        (
            "ANTHROPIC_BASE_URL".to_string(),
            format!("http://{}/task/{{task}}", server.addr).into(),
        ),
        (
            "ANTHROPIC_API_KEY".to_string(),
            "sandpen-demo-not-a-real-key".to_string().into(),
        ),
    ];
    let gateway_image = super::run::gateway_image(&engine).await?;
    let engine_memory = engine.info().mem_total;
    let prepared = super::run::Prepared {
        engine_memory,
        gateway: Some((gateway_image, Default::default())),
        engine,
        plan,
        repo,
        base,
        image,
        credentials,
        swarm: None,
    };
    let opts = super::run::RunOptions {
        jobs: args.jobs,
        network: crate::runner::TaskNetwork::Gateway,
        allow_hosts: Vec::new(),
        max_turns: 50,
        deps_from: Default::default(),
        fail_fast: false,
        retries: 0,
        retry_on: Vec::new(),
        keep_containers: false,
        warm: true,
        json: args.json,
        report: args.report.clone(),
        junit: args.junit.clone(),
        html: args.html.clone(),
        color: args.color.color,
    };
    let code = super::run::execute(prepared, opts).await;
    server.stop().await;
    let code = code?;
    eprintln!(
        "\nThe model was scripted: sandpen's model server played each task's turns; the tool calls were real."
    );
    eprintln!("branches: git -C {} branch --list 'sandpen/*'", dir.display());
    eprintln!("requests the model server received: {}", record.display());
    eprintln!(
        "with a real key, the same tasks: cd {} && ANTHROPIC_API_KEY=... sandpen run tasks/*.md",
        dir.display()
    );
    Ok(code)
}

/// The directory for the sample repository: new or empty.
fn sample_dir(requested: Option<&Path>) -> anyhow::Result<PathBuf> {
    match requested {
        None => Ok(tempfile::Builder::new().prefix("sandpen-demo-").tempdir()?.keep()),
        Some(d) => {
            if d.exists() && std::fs::read_dir(d)?.next().is_some() {
                return Err(UsageError(format!(
                    "--repo {}: the directory is not empty\nfix: give a new or empty directory; the demo creates its own repository there",
                    d.display()
                ))
                .into());
            }
            std::fs::create_dir_all(d)?;
            Ok(std::fs::canonicalize(d)?)
        }
    }
}

async fn make_repo(dir: &Path) -> anyhow::Result<()> {
    demo::write_repo(dir)?;
    for t in &demo::TASKS {
        let p = dir.join("tasks").join(format!("{}.md", t.id));
        std::fs::create_dir_all(p.parent().expect("has a parent"))?;
        std::fs::write(p, format!("{}\n", t.prompt))?;
    }
    workspace::init_repo(dir, "textkit: the demo repository").await?;
    Ok(())
}
