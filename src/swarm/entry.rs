//! The entry step of a task's container on a Swarm node (`sandpen entry`, the first program of
//! the task's service, from the image sandpen adds itself to): fetch the task's files from the
//! run's exchange, run the task's command, then collect its work in the container (the same
//! collection script as a local container's, whether the command ended by itself or was
//! stopped: there is no sandbox to fall back on), and send the out directory back.
//!
//! A stop reaches it as SIGTERM (the service's removal): it passes it on to the command and
//! collects within what is left of the grace. No watcher of sandpen's sees the node's disk, so
//! the entry step watches the task's checkout and out directory itself (`disk_watch`, as the
//! host does for a local task): past the limit it kills every process of the task at once,
//! collects, and says so in the out directory (`DISK_OVER`). When sandpen is gone (killed), the
//! work is offered again for a while, for `sandpen gc` to take (`offer_out`).

use std::path::Path;
use std::time::{Duration, Instant};

use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

use super::job::OUT_DIR as OUT;
use super::transfer::{Body, fetch, offer_out, send_reading, send_readings};

use crate::disk_watch;
use crate::engine::spec::WORKDIR;

/// The variable that names the task's exchange URL (kept from the command's environment).
pub const EXCHANGE_ENV: &str = "SANDPEN_EXCHANGE";
/// Set on a task behind its gateway (gateway mode on a Swarm): the gateway's `HOST:PORT`.
pub const GATEWAY_ENV: &str = "SANDPEN_GATEWAY";
/// How long the entry step waits for its gateway to take a connection.
const GATEWAY_WAIT: Duration = Duration::from_secs(30);
/// The variable the collection line reads its time budget from, in seconds.
pub const LEFT_ENV: &str = "left";
/// The file of the out directory that counts the container's OOM kills.
pub const OOM_KILLS: &str = "oom-kills";
/// The file of the out directory that holds the bytes on disk when the task was stopped at
/// its disk limit (absent when it was not).
pub const DISK_OVER: &str = "disk-over";
/// Kept back from the grace for sending the result.
const SEND_MARGIN: u64 = 3;
/// The least the collection gets.
const MIN_COLLECT: u64 = 3;

/// What `sandpen entry` is told.
#[derive(Debug, Clone)]
pub struct EntryArgs {
    /// The task's timeout as the host counts it, and the grace of a stop.
    pub deadline: Duration,
    pub grace: Duration,
    /// Shell lines that collect the work (they read `$left`).
    pub collect: Option<String>,
    /// The task's disk limit, in bytes.
    pub disk_limit: Option<u64>,
    pub command: Vec<String>,
}

/// Runs the entry step; the command's exit code.
pub async fn run(args: EntryArgs) -> anyhow::Result<i32> {
    let started = Instant::now();
    // Before anything of the task: what the service could not set (`engine::hardening`).
    crate::engine::hardening::in_container()
        .map_err(|e| anyhow::anyhow!("forbidding privilege gain (no-new-privileges): {e}"))?;
    // The task runs as this step's uid: not dumpable, it cannot be traced or have its memory
    // (the exchange's URL, with the task's token) read by the task, nor its watch undone.
    use rustix::process::{DumpableBehavior, set_dumpable_behavior};
    set_dumpable_behavior(DumpableBehavior::NotDumpable)
        .map_err(|e| anyhow::anyhow!("making the entry step untraceable: {e}"))?;
    let url = std::env::var(EXCHANGE_ENV).map_err(|_| anyhow::anyhow!("{EXCHANGE_ENV} is not set"))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    // From the container's start: the first reading, of a cgroup that has hardly run, is the
    // baseline of the CPU figures (the runner counts the first one against its own clock).
    let sampling = tokio::spawn(send_readings(client.clone(), url.clone()));
    until_gateway_answers().await;
    fetch(&client, &url).await?;

    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("no command to run"))?;
    // What the task can write, watched while its command runs (the collection after it is
    // sandpen's own work).
    let (over, watched) = (CancellationToken::new(), CancellationToken::new());
    let trees = vec![WORKDIR.into(), OUT.into()];
    let watching = tokio::spawn(disk_watch::watch(
        trees,
        args.disk_limit,
        over.clone(),
        watched.clone(),
    ));
    let secrets = task_secrets();
    let mut child = tokio::process::Command::new(program)
        .args(rest)
        .envs(&secrets)
        .envs(gateway_settings(&secrets))
        .env_remove(EXCHANGE_ENV)
        .spawn()
        .map_err(|e| anyhow::anyhow!("starting {program}: {e}"))?;
    let (code, stopped_at) = wait_passing_stops(&mut child, &over).await;
    watched.cancel();
    let disk = watching.await.unwrap_or_default();
    sampling.abort();
    // The last reading, at the command's end: the task's figures run to here.
    send_reading(&client, &url).await;

    if let Some(collect) = &args.collect {
        let left = match stopped_at {
            Some(at) => args
                .grace
                .saturating_sub(at.elapsed())
                .as_secs()
                .saturating_sub(SEND_MARGIN),
            None => args
                .deadline
                .saturating_sub(started.elapsed())
                .as_secs()
                .saturating_sub(SEND_MARGIN),
        };
        let status = tokio::process::Command::new("sh")
            .args(["-c", collect])
            .env(LEFT_ENV, left.max(MIN_COLLECT).to_string())
            .env_remove(EXCHANGE_ENV)
            .status()
            .await;
        if let Err(e) = status {
            eprintln!("sandpen entry: running the collection: {e}");
        }
    }
    // The Swarm does not say that a task was killed for memory: its own cgroup does.
    if let Some(kills) = oom_kills() {
        let _ = std::fs::write(Path::new(OUT).join(OOM_KILLS), format!("{kills}\n"));
    }
    if over.is_cancelled() {
        let bytes = disk.peak_bytes.unwrap_or_default();
        let _ = std::fs::write(Path::new(OUT).join(DISK_OVER), format!("{bytes}\n"));
    }
    offer_out(&client, &url).await;
    Ok(code)
}

/// Behind a gateway, until its name resolves and it takes a connection (its address reaches
/// the task's node through the overlay's gossip, a moment after it serves), within a limit.
async fn until_gateway_answers() {
    let Ok(gw) = std::env::var(GATEWAY_ENV) else {
        return;
    };
    let until = Instant::now() + GATEWAY_WAIT;
    while tokio::net::TcpStream::connect(&gw).await.is_err() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The task's credentials or token, from its service's secret (`job::SECRETS_FILE`): for its
/// command's environment, as a local container has them. None without a secret.
fn task_secrets() -> std::collections::HashMap<String, String> {
    let file = Path::new("/run/secrets").join(super::job::SECRETS_FILE);
    std::fs::read(file)
        .ok()
        .and_then(|text| serde_json::from_slice(&text).ok())
        .unwrap_or_default()
}

/// Behind a gateway: what a local task's gate sets (`gateway::gate`), naming the gateway.
fn gateway_settings(secrets: &std::collections::HashMap<String, String>) -> Vec<(String, String)> {
    match (
        std::env::var(GATEWAY_ENV),
        secrets.get(crate::gateway::gate::TOKEN),
    ) {
        (Ok(gw), Some(token)) => crate::gateway::gate::settings(&gw, token),
        _ => Vec::new(),
    }
}

/// Waits for the command, passing SIGTERM, SIGINT and SIGHUP on to it, and killing every
/// process of the task once `over` (its disk limit passed); its exit code (128 + the signal
/// that ended it) and when the first stop came.
async fn wait_passing_stops(
    child: &mut tokio::process::Child,
    over: &CancellationToken,
) -> (i32, Option<Instant>) {
    use tokio::signal::unix::{SignalKind, signal};
    let pid = child.id().and_then(|p| rustix::process::Pid::from_raw(p as i32));
    let mut stopped_at = None;
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        return (status_code(child.wait().await), None);
    };
    let mut killed = false;
    loop {
        let sig = tokio::select! {
            status = child.wait() => return (status_code(status), stopped_at),
            // No grace to write more, as for a local task at its disk limit.
            _ = over.cancelled(), if !killed => {
                killed = true;
                kill_the_task(pid);
                continue;
            }
            _ = term.recv() => rustix::process::Signal::TERM,
            _ = int.recv() => rustix::process::Signal::INT,
            _ = hup.recv() => rustix::process::Signal::HUP,
        };
        stopped_at.get_or_insert_with(Instant::now);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, sig);
        }
    }
}

/// Kills every process of the container but this one and its init (the task's command and
/// whatever it started, in any process group), a few times over to catch a fork in flight.
/// Only as the child of a container's init: anywhere else, the command alone.
fn kill_the_task(command: Option<rustix::process::Pid>) {
    use rustix::process::{Pid, Signal, getppid, kill_process};
    if getppid() != Pid::from_raw(1) {
        if let Some(pid) = command {
            let _ = kill_process(pid, Signal::KILL);
        }
        return;
    }
    let me = std::process::id();
    for _ in 0..5 {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return;
        };
        let pids: Vec<i32> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|p| *p != me && *p != 1)
            .filter_map(|p| i32::try_from(p).ok())
            .collect();
        if pids.is_empty() {
            return;
        }
        for pid in pids.into_iter().filter_map(Pid::from_raw) {
            let _ = kill_process(pid, Signal::KILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status_code(status: std::io::Result<std::process::ExitStatus>) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => s.code().or(s.signal().map(|n| 128 + n)).unwrap_or(1),
        Err(_) => 1,
    }
}

/// How many processes the kernel killed in this container for want of memory: cgroup v2's
/// `memory.events`, or v1's `memory.oom_control` (as the container sees its own cgroup).
fn oom_kills() -> Option<u64> {
    let count = |file: &str| -> Option<u64> {
        let text = std::fs::read_to_string(file).ok()?;
        let line = text.lines().find(|l| l.starts_with("oom_kill "))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    count("/sys/fs/cgroup/memory.events").or_else(|| count("/sys/fs/cgroup/memory/memory.oom_control"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signals reach the whole test process: the tests that wait for them take turns.
    static SIGNALS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    #[tokio::test]
    async fn a_stop_is_passed_on_and_the_command_ends_with_its_own_code() {
        let _turn = SIGNALS.lock().await;
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "trap 'exit 7' TERM; sleep 30 & wait"])
            .spawn()
            .unwrap();
        let me = rustix::process::getpid();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let _ = rustix::process::kill_process(me, rustix::process::Signal::TERM);
        });
        let never = CancellationToken::new();
        let (code, stopped) =
            tokio::time::timeout(Duration::from_secs(10), wait_passing_stops(&mut child, &never))
                .await
                .unwrap();
        assert_eq!(code, 7);
        assert!(stopped.is_some());
    }

    #[tokio::test]
    async fn past_the_disk_limit_the_command_is_killed_without_a_grace() {
        let _turn = SIGNALS.lock().await;
        // Deaf to SIGTERM: only a kill ends it. Outside a container only the command is
        // killed (this test's process is no container's init's child).
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "trap '' TERM; sleep 30"])
            .spawn()
            .unwrap();
        let over = CancellationToken::new();
        let cancel = over.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            cancel.cancel();
        });
        let (code, stopped) =
            tokio::time::timeout(Duration::from_secs(10), wait_passing_stops(&mut child, &over))
                .await
                .expect("killed at once");
        assert_eq!(code, 128 + 9, "SIGKILL");
        assert!(stopped.is_none(), "not a stop: no grace counted");
    }
}
