use clap::Parser;
use sandpen::cli::Cli;
use sandpen::exit;

fn main() {
    // A shell asking for completions (`COMPLETE=bash sandpen -- ...`, from the script
    // `sandpen completions` prints): answer and exit before anything else runs.
    clap_complete::CompleteEnv::with_factory(sandpen::commands::completion_command).complete();
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    // The gateway serves one run's tasks from a small container: one thread is plenty, and a
    // worker per core would cost memory for nothing.
    let mut builder = match cli.command {
        sandpen::cli::Command::Gateway(_) | sandpen::cli::Command::Entry(_) => {
            tokio::runtime::Builder::new_current_thread()
        }
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    // A task's whole life is one future of many nested steps: in a debug build its polls need
    // more than the default 2 MiB of stack (a worker overflowed stopping a Swarm task).
    builder.thread_stack_size(8 << 20);
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(exit::FAILURE);
        }
    };
    let code = match runtime.block_on(sandpen::commands::dispatch(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", sandpen::commands::render(&err));
            sandpen::commands::exit_code(&err)
        }
    };
    // Do not wait for stray blocking tasks (a stuck engine call) once the outcome is known.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    std::process::exit(code);
}

/// Logs go to stderr; `-v` shows sandpen's debug lines, SANDPEN_LOG overrides the level. The
/// engine client and the HTTP stack stay at `info` whatever is asked: at debug they print
/// request bodies, and a container's create body holds its environment (the credentials).
fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "sandpen=debug",
        _ => "sandpen=trace",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("SANDPEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    for quiet in ["bollard=info", "hyper=info", "hyper_util=info", "h2=info"] {
        filter = filter.add_directive(quiet.parse().expect("a valid directive"));
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
