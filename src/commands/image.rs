use crate::cli::{BootstrapBaseArgs, ImageArgs, ImageBuildArgs, ImageCommand, ImagePushArgs, TargetArg};
use crate::exit;
use crate::image::{self, BootstrapOptions, ImageRequest, Target};
use crate::report::build::BuildDisplay;

pub async fn run(host: Option<&str>, args: ImageArgs) -> anyhow::Result<i32> {
    match args.command {
        ImageCommand::Build(b) => build(host, b).await,
        ImageCommand::BootstrapBase(b) => bootstrap(host, b).await,
        ImageCommand::Push(p) => push(host, p).await,
    }
}

async fn push(host: Option<&str>, args: ImagePushArgs) -> anyhow::Result<i32> {
    // A bad address is found before anything is built.
    crate::swarm::check_address(&args.registry)?;
    let (engine, req) = request(host, args.build).await?;
    let built = super::ensure_image(&engine, &req).await?;
    // What a Swarm's tasks run: the image with sandpen's entry step (`swarm::image`).
    let mut display = crate::report::build::BuildDisplay::stderr();
    let tag = crate::swarm::with_entry(&engine, &built, &mut |e| display.on_event(e)).await;
    display.finish();
    let tag = tag?;
    let pinned = crate::swarm::publish(&engine, &tag, &args.registry).await?;
    eprintln!(
        "pushed {tag} ({built} with sandpen's entry step) to {}",
        args.registry
    );
    println!("{pinned}");
    Ok(exit::SUCCESS)
}

async fn build(host: Option<&str>, args: ImageBuildArgs) -> anyhow::Result<i32> {
    let (engine, req) = request(host, args).await?;
    match super::ensure_image(&engine, &req).await {
        Ok(tag) => {
            // Scripts rely on the tag being the last line on stdout.
            println!("{tag}");
            Ok(exit::SUCCESS)
        }
        // A failed build is said by its error: the failing step and its output (the progress
        // above already listed the steps; the whole log again would only repeat them).
        Err(e) => Err(e.into()),
    }
}

/// The engine, and what to build: checked before anything is made.
async fn request(
    host: Option<&str>,
    args: ImageBuildArgs,
) -> anyhow::Result<(crate::engine::Engine, ImageRequest)> {
    let target = match args.target {
        TargetArg::Agent => Target::Agent,
        TargetArg::Probe => Target::Probe,
        TargetArg::Gateway => Target::Gateway,
    };
    // Bad certificate files are input errors: find them before connecting or building.
    image::context_for(target, &args.ca.ca_certs)?;
    let engine = super::connect(host).await?;
    let req = ImageRequest {
        target,
        base: args.base,
        ca_certs: args.ca.ca_certs,
        rebuild: args.rebuild,
        bootstrap_base: args.bootstrap_base,
    };
    Ok((engine, req))
}

async fn bootstrap(host: Option<&str>, args: BootstrapBaseArgs) -> anyhow::Result<i32> {
    let engine = super::connect(host).await?;
    let opts = BootstrapOptions {
        base: args.base.clone(),
        suite: args.suite,
        mirror: args.mirror,
        force: args.force,
    };
    let mut display = BuildDisplay::stderr();
    let result = image::bootstrap_base(&engine, &opts, &mut |e| display.on_event(e)).await;
    display.finish();
    let id = result?;
    eprintln!("{} is {}", args.base, id);
    if args.base == image::OFFLINE_BASE {
        eprintln!(
            "builds use {} where {} cannot be pulled",
            image::OFFLINE_BASE,
            image::DEFAULT_BASE
        );
    }
    println!("{}", args.base);
    Ok(exit::SUCCESS)
}
