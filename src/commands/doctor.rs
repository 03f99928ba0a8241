use serde::Serialize;

use crate::agent::env::CREDENTIAL_ENV;
use crate::cli::DoctorArgs;
use crate::engine::EngineInfo;
use crate::exit;
use crate::gateway::protocol::CredentialKind;
use crate::image::{self, BaseChoice, ImageStatus, Target};
use crate::swarm::SwarmStatus;

#[derive(Serialize)]
struct Report {
    engine: EngineInfo,
    base_image: String,
    base_image_present: bool,
    /// The base builds use now: `base_image`, sandpen's offline base, or none.
    base_in_use: Option<String>,
    images: Vec<ImageStatus>,
    credentials: Vec<(String, bool)>,
    /// The variable whose credential a run would send the model API (never its value).
    credential_in_use: Option<String>,
    swarm: SwarmStatus,
    /// The host's git version; None when git cannot be run.
    git: Option<String>,
    /// Whether it is new enough for `diff`, `merge` and tasks with several dependencies.
    git_new_enough: bool,
    /// The warm environments kept on the engine (`warm/`), with their sizes.
    environments: Vec<crate::warm::stored::StoredEnv>,
    /// The same made for a Swarm's tasks: images, one per lock (`warm/layer.rs`).
    environment_images: Vec<crate::warm::stored::StoredImage>,
}

pub async fn run(host: Option<&str>, args: DoctorArgs) -> anyhow::Result<i32> {
    let engine = super::connect(host).await?;
    let info = engine.info().clone();
    let base = image::DEFAULT_BASE;
    let base_image_present = engine.image_id(base).await?.is_some();
    let choice = BaseChoice::for_base(base);
    let base_in_use = choice.present(&engine).await?.map(|(name, _)| name);
    let mut images = Vec::new();
    for target in Target::ALL {
        images.push(image::status(&engine, target, &choice).await?);
    }
    let credentials = CREDENTIAL_ENV
        .iter()
        .map(|v| (v.to_string(), std::env::var_os(v).is_some_and(|x| !x.is_empty())))
        .collect();
    let set = |v: &str| std::env::var_os(v).is_some_and(|x| !x.is_empty());
    let credential_in_use = CredentialKind::ALL
        .into_iter()
        .map(CredentialKind::env)
        .find(|v| set(v))
        .map(String::from);
    let swarm = crate::swarm::status(&engine).await?;
    let git = crate::workspace::git_version().await;
    let git_new_enough = git.as_ref().is_some_and(|(_, v)| *v >= crate::workspace::GIT_MIN);
    let environments = crate::warm::stored::list(&engine).await?;
    let environment_images = crate::warm::stored::list_images(&engine).await?;
    let report = Report {
        environments,
        environment_images,
        engine: info,
        base_image: base.into(),
        base_image_present,
        base_in_use,
        images,
        credentials,
        credential_in_use,
        swarm,
        git: git.map(|(text, _)| text),
        git_new_enough,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(exit::SUCCESS)
}

fn print_text(r: &Report) {
    let e = &r.engine;
    println!(
        "engine      {} ({} {}, API {})",
        e.address, e.name, e.version, e.api_version
    );
    for w in &e.warnings {
        println!("warning     {w}");
    }
    println!(
        "host        {} {}/{}, kernel {}",
        e.operating_system, e.os, e.arch, e.kernel
    );
    println!("cgroups     v{} ({} driver)", e.cgroup_version, e.cgroup_driver);
    println!(
        "resources   {} CPUs, {:.1} GiB memory",
        e.ncpu,
        e.mem_total as f64 / (1u64 << 30) as f64
    );
    let base = match (r.base_image_present, &r.base_in_use) {
        (true, _) => "present".to_string(),
        (false, Some(offline)) => format!(
            "absent; builds use {offline}, sandpen's own made offline (a build tries to pull \
             {} first)",
            r.base_image
        ),
        (false, None) => format!(
            "absent (`sandpen image build` pulls it; without a registry, \
             `sudo sandpen image bootstrap-base` makes sandpen's own, {})",
            image::OFFLINE_BASE
        ),
    };
    println!("base image  {}: {base}", r.base_image);
    for s in &r.images {
        let state = match (&s.current_tag, s.built) {
            (Some(tag), true) => format!("built and current ({tag})"),
            (Some(tag), false) => format!("not built for the current sources (would be {tag})"),
            (None, _) => "cannot tell: the base image is absent".to_string(),
        };
        println!("{:<11} {state}", format!("{} image", s.target.name()));
        if !s.stale_tags.is_empty() {
            println!("            other builds: {}", s.stale_tags.join(", "));
        }
    }
    print_runtimes(e);
    let swarm = match &r.swarm {
        SwarmStatus::Manager(c) => format!(
            "a manager: {} nodes ready and active (the largest {} CPUs, {:.1} GiB); \
             `run --backend swarm` runs tasks on them",
            c.nodes,
            c.max_cpus,
            c.max_memory as f64 / (1u64 << 30) as f64
        ),
        SwarmStatus::NotManager(why) => {
            format!("not a manager ({why}); `run --backend swarm` needs DOCKER_HOST at one")
        }
    };
    println!("swarm       {swarm}");
    for env in &r.environments {
        let size = env.size_bytes.map_or("size not told by the engine".into(), |b| {
            indicatif::HumanBytes(b.max(0) as u64).to_string()
        });
        let made = env.created_at.as_deref().unwrap_or("?");
        println!(
            "environment {} (from {}, made {made}): {size}",
            env.volume, env.from
        );
    }
    for image in &r.environment_images {
        let size = indicatif::HumanBytes(image.size_bytes.max(0) as u64);
        println!(
            "environment image {} (for a Swarm, made {}): {size}",
            image.tag, image.created_at
        );
    }
    if r.environments.is_empty() && r.environment_images.is_empty() {
        println!("environment none kept (a run on a uv project prepares one per lock)");
    }
    for (var, set) in &r.credentials {
        println!(
            "{:<11} {var} {}",
            "credentials",
            if *set { "is set" } else { "is not set" }
        );
    }
    let used = match &r.credential_in_use {
        Some(var) => {
            format!("a run would use {var} (in gateway mode it goes to the gateway alone; tasks get a token)")
        }
        None => "a run would have no credential for the model API".to_string(),
    };
    println!("{:<11} {used}", "credentials");
    let (major, minor) = crate::workspace::GIT_MIN;
    match &r.git {
        Some(v) if r.git_new_enough => println!("{:<11} {v}", "git"),
        Some(v) => println!(
            "warning     git {v} is older than {major}.{minor}: `sandpen diff`, `sandpen merge` and \
             tasks with several dependencies need {major}.{minor} or newer\nfix: install a newer git"
        ),
        None => println!("warning     git cannot be run: sandpen needs git {major}.{minor} or newer"),
    }
}

/// The engine's runtimes, whether gVisor is among them, and what it lacks for sandpen.
fn print_runtimes(e: &EngineInfo) {
    use crate::engine::runtimes::{HOW_TO_ADD_RUNSC, RUNSC};
    for r in &e.runtimes {
        let default = if r.name == e.default_runtime {
            " (default)"
        } else {
            ""
        };
        let path = if r.path.is_empty() { "?" } else { &r.path };
        let args = match r.args.is_empty() {
            true => String::new(),
            false => format!(" {}", r.args.join(" ")),
        };
        println!("{:<11} {}{default}: {path}{args}", "runtime", r.name);
    }
    if let Some(why) = e.dialect.runtime_refused() {
        println!(
            "{:<11} --runtime is refused here: {}",
            "runtime",
            why.replace('\n', "; ")
        );
        return;
    }
    let gvisor: Vec<_> = e.runtimes.iter().filter(|r| r.is_gvisor()).collect();
    if gvisor.is_empty() {
        println!(
            "{:<11} no `{RUNSC}` (gVisor, a user-space kernel under `run --runtime {RUNSC}`): {HOW_TO_ADD_RUNSC}",
            "runtime"
        );
    }
    for r in gvisor {
        let gaps = r.gvisor_gaps();
        if gaps.is_empty() {
            println!(
                "{:<11} `run --runtime {}` puts tasks under gVisor",
                "runtime", r.name
            );
        }
        for gap in gaps {
            println!("warning     {gap}");
        }
    }
}
