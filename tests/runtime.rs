//! `--runtime runsc` (issue 30): tasks under gVisor's user-space kernel, on a private engine
//! with runsc registered (`common/runsc.rs`: its own dockerd in a network namespace of its own;
//! the system engine is never reconfigured). Runs when CI asks (`SANDPEN_TEST_RUNSC=1`, as
//! root, with Debian's runsc), and says why it skips otherwise.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::runsc::{self, RunscEngine};
use common::*;

/// `sandpen run --image PROBE --repo REPO --report ... EXTRA... TASKS` on this thread's engine.
fn run_on(probe: &str, repo: &Path, tasks: &TaskFile, extra: &[&str]) -> Command {
    let mut cmd = sandpen();
    with_test_credentials(&mut cmd);
    cmd.current_dir(repo)
        .args(["run", "--image", probe, "--repo"])
        .arg(repo)
        .arg("--report")
        .arg(&tasks.report)
        .args(extra)
        .arg(&tasks.path);
    cmd
}

/// The task prints the kernel it sees and its gateway's first answer (through the relay, with
/// bash's /dev/tcp: the probe image has no curl), and commits its work.
const GVISOR_TASK: &str = r#"
echo "KERNEL=$(uname -r)"
h=${ANTHROPIC_BASE_URL#http://}; gh=${h%%:*}; gp=${h#*:}; gp=${gp%%/*}
echo "GATEWAY=$(bash -c "exec 3<>/dev/tcp/$gh/$gp && printf 'GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3 && head -1 <&3" | tr -d '\r')"
echo under-gvisor > work.txt && git add work.txt && git commit -qm 'work under gVisor'
"#;

#[test]
fn tasks_run_under_gvisor_with_every_promise_kept() {
    if !runsc::wanted() {
        eprintln!("skipped: set SANDPEN_TEST_RUNSC=1 (CI does) to run the runsc tests");
        return;
    }
    if let Some(why) = runsc::missing() {
        eprintln!("skipped: {why}");
        return;
    }
    // Made on the system engine (shared with the other tests), then copied over with the base
    // the gateway's tag is computed from (its layers are theirs: they go once).
    let (probe, gateway) = (image("probe"), image("gateway"));
    let base = ["debian:bookworm-slim", "sandpen-base:bookworm"]
        .into_iter()
        .find(|b| docker(&["image", "inspect", b]).status.success())
        .expect("the images' base is on the system engine");
    let t = Instant::now();
    let engine = RunscEngine::start(&[&probe, &gateway, base]);
    eprintln!("private engine with runsc, images loaded: {:?}", t.elapsed());
    use_engine(&engine.host);
    let repo = make_repo();

    // doctor names the engine's runtimes, runsc's arguments, and that it is ready.
    let doctor = run_ok(sandpen().arg("doctor"));
    assert!(doctor.contains("runc (default)"), "{doctor}");
    assert!(
        doctor.contains("runsc: /usr/bin/runsc --host-uds=open --network=none")
            && doctor.contains("`run --runtime runsc` puts tasks under gVisor"),
        "{doctor}"
    );

    // An unknown runtime: exit 2 naming the engine's, before anything is made.
    let t = Instant::now();
    let tasks = task_file("[[task]]\nid = \"x\"\nprompt_text = \"true\"\n");
    let out = output(&mut run_on(
        &probe,
        repo.path(),
        &tasks,
        &["--runtime", "no-such-rt"],
    ));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no-such-rt") && err.contains("runc, runsc"), "{err}");
    assert!(!runs_dir(repo.path()).exists(), "a run directory was made");
    assert!(engine.containers().is_empty(), "{:?}", engine.containers());
    eprintln!("unknown runtime refused: {:?}", t.elapsed());

    // gVisor's kernel, the gateway reached, the work back as a branch; the memory limit holds.
    let t = Instant::now();
    let toml = format!(
        "[defaults]\nruntime = \"runsc\"\n\n[[task]]\nid = \"gv\"\nprompt_text = '''{GVISOR_TASK}'''\n\n\
         [[task]]\nid = \"oom\"\nmemory = \"128m\"\n\
         prompt_text = 'echo start; head -c 400m /dev/zero | tail > /dev/null; echo survived'\n\n\
         [[task]]\nid = \"disk\"\ndisk = \"50m\"\n\
         prompt_text = 'dd if=/dev/zero of=big bs=1M count=1000 2>/dev/null; echo survived'\n"
    );
    let tasks = task_file(&toml);
    let out = output(&mut run_on(&probe, repo.path(), &tasks, &[]));
    let report = read_report(&tasks.report).unwrap_or_else(|e| panic!("{e}\n{}", stderr(&out)));
    let log = log_of(&report, "gv");
    let host_kernel = run_ok(Command::new("uname").arg("-r"));
    let kernel = values(&log).get("KERNEL").cloned().unwrap_or_default();
    assert!(
        !kernel.is_empty() && kernel != host_kernel.trim(),
        "the task saw the host's kernel {kernel:?}:\n{log}"
    );
    let gw = task(&report, "gv");
    assert_eq!(field(gw, "status"), "succeeded", "{}", stderr(&out));
    let answer = values(&log).get("GATEWAY").cloned().unwrap_or_default();
    assert!(
        answer.starts_with("HTTP/1.1 "),
        "no answer from the gateway: {log}"
    );
    let branch = field(gw, "branch");
    assert_eq!(
        git(repo.path(), &["show", &format!("{branch}:work.txt")]).trim(),
        "under-gvisor"
    );
    let oom = task(&report, "oom");
    let status = field(oom, "status");
    assert!(
        status == "oom_killed" || (status == "failed" && !field(oom, "message").is_empty()),
        "over its memory: {oom}"
    );
    assert!(!log_of(&report, "oom").contains("survived"));
    // The checkout is the host's directory behind gVisor's file proxy: its growth is seen.
    let disk = task(&report, "disk");
    assert_eq!(field(disk, "status"), "disk_exceeded", "{disk}");
    let manifest = std::fs::read_to_string(
        runs_dir(repo.path())
            .join(field(&report, "run_id"))
            .join("_sandpen/run.json"),
    )
    .unwrap();
    assert!(manifest.contains("\"runtime\": \"runsc\""), "{manifest}");
    assert!(engine.containers().is_empty(), "{:?}", engine.containers());
    eprintln!(
        "gVisor tasks (kernel {kernel}, oom {status}, disk peak {}): {:?}",
        disk["peak_disk_bytes"],
        t.elapsed()
    );

    // Ctrl-C while a task runs under gVisor leaves nothing on the engine.
    let t = Instant::now();
    let tasks = task_file("[[task]]\nid = \"long\"\nprompt_text = \"sleep 60\"\n");
    let mut child = run_on(&probe, repo.path(), &tasks, &["--runtime", "runsc"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting sandpen run");
    let running = wait_for(Duration::from_secs(30), || {
        engine
            .containers()
            .iter()
            .any(|c| c.ends_with("-long"))
            .then_some(())
    });
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let ended = wait_for(Duration::from_secs(30), || child.try_wait().ok().flatten());
    if ended.is_none() {
        let _ = child.kill();
    }
    assert!(running.is_some(), "the task never ran");
    assert_eq!(
        ended.and_then(|s| s.code()),
        Some(130),
        "sandpen's exit after Ctrl-C"
    );
    assert!(engine.containers().is_empty(), "left: {:?}", engine.containers());
    eprintln!("Ctrl-C under gVisor: {:?}", t.elapsed());
}
