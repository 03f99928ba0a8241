use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(flatten)]
    pub engine: super::EngineArg,

    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build an image, or reuse it when nothing changed. Prints the tag as the last line.
    Build(ImageBuildArgs),
    /// Make sandpen's own base image offline with debootstrap (for machines without a
    /// registry).
    BootstrapBase(BootstrapBaseArgs),
    /// Build (or reuse) an image, add sandpen's entry step, and push it to a registry, for a
    /// Docker Swarm's nodes to pull by digest (what `run --backend swarm` does before its
    /// tasks). Prints the pinned reference (`REGISTRY/sandpen-swarm@sha256:...`) last.
    Push(ImagePushArgs),
}

#[derive(Debug, Args)]
pub struct ImagePushArgs {
    /// The registry the nodes pull from, as HOST:PORT. A plain-HTTP registry must be in the
    /// engine's `insecure-registries`.
    #[arg(long, value_name = "HOST:PORT")]
    pub registry: String,

    #[command(flatten)]
    pub build: ImageBuildArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetArg {
    /// The task image: uv and the real Claude Code CLI.
    Agent,
    /// A small image with a scripted `claude` stand-in, for testing the runner.
    Probe,
    /// A run's egress gateway: this sandpen executable on the base (made by `run` as needed).
    Gateway,
}

#[derive(Debug, Args)]
pub struct ImageBuildArgs {
    /// Which image to build.
    #[arg(long, value_enum, default_value = "agent")]
    pub target: TargetArg,

    /// Base image to build from.
    #[arg(long, value_name = "IMAGE", default_value = crate::image::DEFAULT_BASE)]
    pub base: String,

    #[command(flatten)]
    pub ca: super::CaCerts,

    /// Build from nothing (no layer cache) even if an image with the same content tag exists.
    #[arg(long)]
    pub rebuild: bool,

    /// If the base image is absent and cannot be pulled, make it with debootstrap.
    #[arg(long)]
    pub bootstrap_base: bool,
}

#[derive(Debug, Args)]
pub struct BootstrapBaseArgs {
    /// Tag to import the base under (sandpen's own name: builds use it where the default
    /// base cannot be pulled).
    #[arg(long, value_name = "IMAGE", default_value = crate::image::OFFLINE_BASE)]
    pub base: String,

    /// Debian suite to install.
    #[arg(long, default_value = "bookworm")]
    pub suite: String,

    /// Debian mirror to install from.
    #[arg(long, default_value = "http://deb.debian.org/debian")]
    pub mirror: String,

    /// Replace the image if the tag already exists.
    #[arg(long)]
    pub force: bool,
}
