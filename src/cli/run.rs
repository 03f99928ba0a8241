use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::CaCerts;

/// Every numeric flag takes a value that starts with `-` (`--timeout -5s` as `--timeout=-5s`),
/// so that its parser says why a negative value is refused, whichever form was typed.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub engine: super::EngineArg,

    /// Prompt files (*.md, one task each) and/or task files (*.toml).
    #[arg(required = true, value_name = "TASKS")]
    pub tasks: Vec<PathBuf>,

    /// The git repository to work on (default: the one around the working directory).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,

    #[command(flatten)]
    pub flags: RunFlags,

    /// Largest prompt accepted, file or inline, e.g. 512k, 2m (k = 1024).
    #[arg(
        long,
        value_name = "SIZE",
        env = "SANDPEN_MAX_PROMPT_SIZE",
        default_value = "1MiB",
        allow_hyphen_values = true,
        value_parser = crate::plan::parse_prompt_size
    )]
    pub max_prompt_size: u64,

    /// Read prompt files from anywhere, not only from the task file's directory and the
    /// repository (they must still be regular files within --max-prompt-size).
    #[arg(long)]
    pub allow_outside_prompts: bool,

    /// Where tasks start (a commit-ish).
    #[arg(long, value_name = "REF", default_value = "HEAD")]
    pub base: String,

    /// Where a task with `depends_on` starts: `results`, its dependencies' results (one's
    /// branch, or their merge); `base`, --base like every other task.
    #[arg(long, value_enum, value_name = "FROM", default_value = "results")]
    pub deps_from: DepsFromArg,

    #[command(flatten)]
    pub swarm: SwarmArgs,
}

/// How tasks run: the flags `run` and `rerun` share.
#[derive(Debug, Args)]
pub struct RunFlags {
    /// Containers at once, as the engine's memory allows (see --memory-request).
    #[arg(short, long, value_name = "N", default_value = "4", allow_hyphen_values = true, value_parser = crate::plan::parse_jobs)]
    pub jobs: usize,

    /// CPUs per task (Docker's --cpus) [default: 2]
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub cpus: Option<String>,

    /// Hard memory limit per task (Docker's meaning: 512m is 512 MiB); over it the task is
    /// OOM-killed [default: 4g, or the engine's memory if less]
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub memory: Option<String>,

    /// Memory reserved per task from the engine's when deciding what may start (at most its
    /// limit): tasks start while their reservations fit, each may still use up to --memory.
    /// The real Claude CLI peaks near 250 MiB [default: 512m, or the limit if less]
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub memory_request: Option<String>,

    /// Maximum processes per task [default: 1024]
    #[arg(long = "pids-limit", value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<String>,

    /// Wall-clock limit per task [default: 45m]
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub timeout: Option<String>,

    /// What a task may hold in its checkout and out directory together, e.g. 10g (default);
    /// over it, the task is killed at once as disk_exceeded (watched continuously: a fast
    /// writer overshoots by what it writes in a fraction of a second).
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub disk: Option<String>,

    /// What each task's stdout log and stderr log may keep on disk, e.g. 1g (default); past
    /// it a log keeps its first and last halves with a line saying how much was dropped.
    #[arg(long, value_name = "SIZE")]
    pub log_limit: Option<String>,

    /// The largest uncommitted file a task's salvage commits, e.g. 10m (default); a larger one
    /// stays in the checkout and the report names it.
    #[arg(long, value_name = "SIZE")]
    pub salvage_max_file: Option<String>,

    /// The most a task's salvage commits in all, e.g. 100m (default; the smallest files first).
    #[arg(long, value_name = "SIZE")]
    pub salvage_max_total: Option<String>,

    /// Image to run (default: build or reuse the agent image).
    #[arg(long, value_name = "TAG")]
    pub image: Option<String>,

    /// Network for the containers. `gateway` (the default): no network at all but a way to
    /// sandpen's gateway (its model API, with a token instead of the real key, and a proxy to
    /// the allowlisted hosts); no route to the host, other tasks or DNS. `none` (no model API),
    /// `bridge`, `host` or a network name opt out: the real key then goes into every container.
    /// [default: gateway; for rerun, the run's]
    #[arg(long, value_name = "NETWORK")]
    pub network: Option<crate::runner::TaskNetwork>,

    /// The engine's OCI runtime for the tasks' containers and their collection, e.g. `runsc`
    /// (gVisor: a user-space kernel between the task and the host's); the engine must have it
    /// (`sandpen doctor` lists them). A task file's `runtime` beats it [default: the engine's]
    #[arg(long, value_name = "NAME")]
    pub runtime: Option<String>,

    /// A host the tasks may reach through the gateway, beyond the model API and PyPI:
    /// `example.com`, `*.example.com`, `host:8443`, or `*` for any (repeatable).
    #[arg(long = "allow-host", value_name = "HOST[:PORT]")]
    pub allow_hosts: Vec<String>,

    /// The most each task's model requests may cost (USD, metered at the gateway); a task
    /// that reaches it ends budget_exceeded [default: none]
    #[arg(long, value_name = "USD", allow_hyphen_values = true)]
    pub max_cost: Option<String>,

    /// A TOML price table replacing the built-in one (docs/gateway.md).
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,

    /// The CLI's --max-turns [default: 50; for rerun, the run's]
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = crate::plan::parse_turns)]
    pub max_turns: Option<u32>,

    /// Also write the JSON report to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Write the run as JUnit XML to this file when it ends (one test case per task).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Write the run as one self-contained HTML page to this file when it ends: a timeline of
    /// the tasks, CPU and memory over time, a table of the tasks.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// NDJSON events on stdout instead of the live view.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub color: super::ColorArg,

    /// Run a task again, as a new attempt in the same run, when an attempt ends `error` (an
    /// engine or set-up failure, not the agent's) or its model requests ran out of retries on
    /// 529 overloaded, up to N times (0 to 10), after a backoff of 2 s, then 4 s, 8 s, ... (at
    /// most 60 s).
    #[arg(long, value_name = "N", default_value = "0", allow_hyphen_values = true, value_parser = clap::value_parser!(u32).range(0..=10))]
    pub retries: u32,

    /// What else --retries runs again, beyond `error` and `overloaded` (always): `failed`
    /// (the agent failed), `timed_out`. Repeatable, or a comma-separated list.
    #[arg(long, value_name = "KIND", value_enum, value_delimiter = ',')]
    pub retry_on: Vec<crate::runner::retry::RetryOn>,

    /// Cancel the remaining tasks after the first failure.
    #[arg(long)]
    pub fail_fast: bool,

    /// Keep containers after they exit (for debugging).
    #[arg(long)]
    pub keep_containers: bool,

    /// Do not prepare the project's Python environment once per uv.lock: each task builds
    /// its own (`uv run`), as without a lock.
    #[arg(long)]
    pub no_warm: bool,

    #[command(flatten)]
    pub ca: CaCerts,
}

/// `--max-turns` when not given.
pub const DEFAULT_MAX_TURNS: u32 = 50;

impl RunFlags {
    /// `--network`, or the default (the gateway).
    pub fn network(&self) -> crate::runner::TaskNetwork {
        self.network.clone().unwrap_or_default()
    }

    pub fn max_turns(&self) -> u32 {
        self.max_turns.unwrap_or(DEFAULT_MAX_TURNS)
    }
}

/// Where tasks run: this engine's containers, or a Docker Swarm's services.
#[derive(Debug, Args)]
pub struct SwarmArgs {
    /// `local`: containers on the engine (DOCKER_HOST or --host). `swarm`: services on the
    /// Docker Swarm that engine manages; needs --registry and --advertise-addr.
    #[arg(long, value_enum, default_value = "local")]
    pub backend: BackendArg,

    /// On a Swarm: the registry the nodes pull the task image from (HOST:PORT).
    #[arg(long, value_name = "HOST:PORT")]
    pub registry: Option<String>,

    /// On a Swarm: the address of this machine the nodes reach (IP or IP:PORT). sandpen
    /// serves each task its files and takes its work back there.
    #[arg(long, value_name = "ADDR")]
    pub advertise_addr: Option<String>,

    /// On a Swarm: a placement constraint, passed through (`node.labels.pool==agents`).
    /// Repeatable.
    #[arg(long = "constraint", value_name = "EXPR")]
    pub constraints: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    Local,
    Swarm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DepsFromArg {
    /// The dependencies' results: one's branch, or their merge (made before the task starts).
    Results,
    /// --base, as a task without dependencies.
    Base,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// `run --help` states every built-in default, and states it as `plan::Defaults` has it.
    #[test]
    fn the_help_shows_the_defaults_the_plan_uses() {
        let d = crate::plan::Defaults::default();
        let mut cmd = crate::cli::Cli::command();
        let help = cmd
            .find_subcommand_mut("run")
            .expect("a run command")
            .render_long_help()
            .to_string();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for want in [
            format!("[default: {}]", d.nano_cpus / 1_000_000_000),
            format!(
                "[default: {}g, or the engine's memory if less]",
                d.memory_bytes >> 30
            ),
            format!(
                "[default: {}m, or the limit if less]",
                d.memory_request_bytes >> 20
            ),
            format!("[default: {}]", d.pids),
            format!("[default: {}m]", d.timeout.as_secs() / 60),
            format!("{}g (default)", d.disk_bytes >> 30),
            format!("{}g (default)", d.log_limit_bytes >> 30),
            "[default: 4]".to_string(),
        ] {
            assert!(help.contains(&want), "`run --help` lacks {want:?}:\n{help}");
        }
    }
}
