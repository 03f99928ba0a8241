//! sandpen against Podman's Docker-compatible API: the probe suite's core, rootful and
//! rootless, each against a Podman service of the test's own (`common/podman.rs`). Runs when
//! SANDPEN_TEST_PODMAN=1 (CI installs Podman and sets it); says it skipped otherwise.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::podman::{self, Podman};
use common::*;

fn skip() -> bool {
    if !podman::wanted() {
        eprintln!("skipped: set SANDPEN_TEST_PODMAN=1 (needs Debian's podman, catatonit, uidmap)");
    }
    !podman::wanted()
}

/// git in a repository another user may own (the rootless test's), from this (root) process.
fn git_any(dir: &Path, args: &[&str]) -> String {
    let out = output(
        Command::new("git")
            .args(["-c", "safe.directory=*", "-C"])
            .arg(dir)
            .args(args),
    );
    assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn rootful_podman_runs_the_core_suite() {
    if skip() {
        return;
    }
    let pm = Podman::start(false, 0);
    use_engine(&pm.host);
    // The rootless test makes its base with debootstrap, as README says; this one loads it.
    let seeded = pm.seed_base_from_docker();
    eprintln!("podman: base loaded from the system engine: {seeded}");

    // doctor names the engine it talks to.
    let doctor = output(sandpen().arg("doctor"));
    let said = stdout(&doctor);
    assert!(said.contains("Podman"), "doctor names Podman:\n{said}");
    // Its compatible API ignores a container's runtime: `--runtime` is refused, and says so.
    assert!(said.contains("--runtime is refused here"), "{said}");

    limits_hardening_and_exact_output();
    oom_timeout_and_two_branches();
    sigint_leaves_nothing();
    sigkill_then_gc_leaves_nothing();
    gateway_mode(&pm);
    warm_environment();
    let left = containers("label=sandpen.run");
    assert!(left.is_empty(), "containers left on Podman: {left:?}");
}

/// Limits visible in the container's cgroup, the hardening, the output byte for byte. The
/// task lives 2 s, so its stats are read at least once (it ended in 0.36 s once in CI, before
/// its first reading, and the stats check failed).
fn limits_hardening_and_exact_output() {
    let repo = make_repo();
    let script = r#"
show() { [ -r "$2" ] && echo "$1=$(cat "$2")"; true; }
show v1.cpu.quota /sys/fs/cgroup/cpu/cpu.cfs_quota_us
show v1.memory /sys/fs/cgroup/memory/memory.limit_in_bytes
show v1.pids /sys/fs/cgroup/pids/pids.max
show v2.cpu /sys/fs/cgroup/cpu.max
show v2.memory /sys/fs/cgroup/memory.max
show v2.pids /sys/fs/cgroup/pids.max
echo "uid=$(id -u)"
grep -E '^(CapEff|NoNewPrivs):' /proc/self/status | tr -d '\t' | sed 's/:/=/'
touch /etc/x 2>/dev/null && echo root=writable || echo root=read-only
printf 'exact:\001\377 tab\tend\n'
sleep 2
"#;
    let toml = format!(
        "[[task]]\nid = \"limits\"\ncpus = 1.5\nmemory = \"200m\"\npids = 300\ntimeout = \"1m\"\nprompt_text = '''{script}'''\n"
    );
    let run = run_tasks(repo.path(), &toml, &["--network", "none"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();
    let t = task(&report, "limits");
    assert_eq!(t["limits_enforced"], true, "{t:#}");
    let log = log_of(&report, "limits");
    let v = values(&log);
    eprintln!("podman limits: {v:?}");
    let memory = v.get("v1.memory").or(v.get("v2.memory")).expect("a memory limit");
    assert_eq!(memory, "209715200", "{log}");
    let pids = v.get("v1.pids").or(v.get("v2.pids")).expect("a pids limit");
    assert_eq!(pids, "300", "{log}");
    match v.get("v1.cpu.quota") {
        Some(q) => assert_eq!(q, "150000", "{log}"),
        None => assert!(v["v2.cpu"].starts_with("150000 "), "{log}"),
    }
    assert_ne!(v["uid"], "0", "not root: {log}");
    assert_eq!(v["CapEff"], "0000000000000000", "{log}");
    assert_eq!(v["NoNewPrivs"], "1", "{log}");
    assert_eq!(v["root"], "read-only", "{log}");
    let raw = std::fs::read(field(t, "log")).unwrap();
    let want = b"exact:\x01\xff tab\tend\n";
    assert!(
        raw.windows(want.len()).any(|w| w == want),
        "the output arrives byte for byte:\n{log}"
    );
    assert!(t["peak_memory_bytes"].as_u64().is_some(), "stats: {t:#}");
}

/// A uv project's warm environment on Podman: its volume made first, the tasks mounting it
/// read-only beside the preparation (Podman fills and chowns a volume on its first mount, where
/// Docker fills an empty one), the probe's `uv sync` writing it, each task's own copy.
fn warm_environment() {
    let repo = make_repo();
    uv_index::probe_project(repo.path(), "pm");
    let check = "set -e\ntest \"$(cat .venv/probe-env)\" = 'probe env'\n\
                 ! touch /run/sandpen/env/.venv/poison 2>/dev/null\n";
    let toml = format!(
        "[[task]]\nid = \"a\"\nprompt_text = '''\n{check}'''\n\n\
         [[task]]\nid = \"b\"\nprompt_text = '''\n{check}'''\n"
    );
    let run = run_tasks(repo.path(), &toml, &[]);
    uv_index::assert_prepared_for(&run, &["a", "b"]);
}

/// The hog lives on 2 s after its OOM kill. Podman on cgroup v1 never sets OOMKilled; sandpen
/// reads the OOM count of the container's cgroup from its stats while it runs, and under load
/// a hog that exits at once can be gone before its first stats (seen once: `failed`, 137).
fn oom_timeout_and_two_branches() {
    let repo = make_repo();
    let run = run_tasks(
        repo.path(),
        r#"
[defaults]
memory = "256m"
timeout = "1m"

[[task]]
id = "a"
prompt_text = "echo a > a.txt; git add a.txt; git commit -qm 'add a'"

[[task]]
id = "b"
prompt_text = "echo b > b.txt; git add b.txt; git commit -qm 'add b'; echo left > left.txt"

[[task]]
id = "hog"
memory = "96m"
prompt_text = "head -c 400000000 /dev/zero | tail; sleep 2"

[[task]]
id = "slow"
timeout = "3s"
prompt_text = "sleep 60"
"#,
        &["-j", "4", "--network", "none"],
    );
    assert_eq!(run.code, 1, "{}", run.dump());
    let report = run.report();
    let run_id = field(&report, "run_id").to_string();
    for (id, file) in [("a", "a.txt"), ("b", "b.txt")] {
        let t = task(&report, id);
        assert_eq!(field(t, "status"), "succeeded", "{t:#}");
        let branch = field(t, "branch");
        assert_eq!(branch, format!("sandpen/{id}/{run_id}"));
        assert_eq!(
            git(repo.path(), &["show", &format!("{branch}:{file}")]),
            format!("{id}\n")
        );
    }
    // b's uncommitted file is salvaged onto its branch.
    let b = task(&report, "b");
    assert_eq!(b["salvaged"], true, "{b:#}");
    assert_eq!(
        git(
            repo.path(),
            &["show", &format!("{}:left.txt", field(b, "branch"))]
        ),
        "left\n"
    );
    assert_eq!(field(task(&report, "hog"), "status"), "oom_killed", "{report:#}");
    let slow = task(&report, "slow");
    assert_eq!(field(slow, "status"), "timed_out", "{slow:#}");
    assert!(slow["duration_s"].as_f64().unwrap() < 30.0, "{slow:#}");
    let left = containers(&format!("label=sandpen.run={run_id}"));
    assert!(left.is_empty(), "containers left behind: {left:?}");
}

fn sleepers(ids: &[&str]) -> String {
    ids.iter()
        .map(|id| format!("[[task]]\nid = \"{id}\"\ntimeout = \"5m\"\nprompt_text = \"echo u > u-{id}.txt; sleep 120\"\n\n"))
        .collect()
}

fn wait_running(run: &mut Background, n: usize) {
    let filter = owner_filter(run.pid());
    let up = wait_for(Duration::from_secs(60), || {
        (running_containers(&filter).len() >= n).then_some(())
    });
    assert!(up.is_some(), "{n} tasks never ran:\n{}", run.stderr());
}

fn sigint_leaves_nothing() {
    let repo = make_repo();
    let mut run = spawn_run(repo.path(), &sleepers(&["x", "y"]), &["--network", "none"]);
    wait_running(&mut run, 2);
    run.signal("INT");
    let status = run
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("still running 30 s after SIGINT:\n{}", run.stderr()));
    assert_eq!(status.code(), Some(130), "{}", run.stderr());
    let left = containers(&owner_filter(run.pid()));
    assert!(left.is_empty(), "containers left after SIGINT: {left:?}");
    let report = read_report(&run.tasks.report).unwrap();
    for id in ["x", "y"] {
        assert_eq!(field(task(&report, id), "status"), "cancelled");
    }
}

fn sigkill_then_gc_leaves_nothing() {
    let repo = make_repo();
    let mut run = spawn_run(repo.path(), &sleepers(&["k"]), &["--network", "none"]);
    wait_running(&mut run, 1);
    run.signal("KILL");
    run.wait_exit(Duration::from_secs(10))
        .expect("SIGKILL ends sandpen");
    let filter = owner_filter(run.pid());
    assert_eq!(
        task_containers(&filter).len(),
        1,
        "a killed run's container stays"
    );
    let gc = output(sandpen().arg("gc"));
    assert!(gc.status.success(), "{}\n{}", stdout(&gc), stderr(&gc));
    let left = containers(&filter);
    assert!(
        left.is_empty(),
        "containers left after gc: {left:?}\n{}",
        stdout(&gc)
    );
    // gc collected the killed task's work: its uncommitted file is on its branch.
    let branches = git(repo.path(), &["branch", "--list", "sandpen/k/*"]);
    let branch = branches.trim().trim_start_matches("* ").to_string();
    assert!(!branch.is_empty(), "gc brought k's work back:\n{}", stdout(&gc));
    assert_eq!(git(repo.path(), &["show", &format!("{branch}:u-k.txt")]), "u\n");
}

/// A server on the host end of the Podman namespace's link: what a task may only reach
/// through the gateway, and only when allowlisted.
fn host_server(addr: &str) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind((addr, 0)).unwrap();
    let local = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        use std::io::{Read, Write};
        listener.set_nonblocking(false).unwrap();
        for stream in listener.incoming().take(8) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nhi\n");
        }
    });
    (local, handle)
}

fn gateway_mode(pm: &Podman) {
    let (server, _handle) = host_server(&pm.host_addr);
    let repo = make_repo();
    let script = format!(
        r#"set -u
env | grep -q sandpen-test-not-a-real-key && echo KEY-IN-ENV
proxy=${{HTTPS_PROXY#http://}}; cred=${{proxy%@*}}; hostport=${{proxy#*@}}
gh=${{hostport%:*}}; gp=${{hostport#*:}}
auth=$(printf %s "$cred" | base64 -w0)
req() {{
  bash -c "exec 3<>/dev/tcp/$gh/$gp && printf 'GET http://$1/ HTTP/1.1\r\nHost: $1\r\nProxy-Authorization: Basic $auth\r\nConnection: close\r\n\r\n' >&3 && head -1 <&3" | tr -d '\r'
}}
echo "ALLOWED: $(req {server})"
echo "DENIED: $(req {ip}:9)"
if timeout 4 bash -c 'exec 3<>/dev/tcp/{ip}/{port}' 2>/dev/null; then echo "DIRECT: open"; else echo "DIRECT: closed"; fi
"#,
        ip = server.ip(),
        port = server.port(),
    );
    let toml = format!("[[task]]\nid = \"probe\"\ntimeout = \"1m\"\nprompt_text = '''\n{script}'''\n");
    let tasks = task_file(&toml);
    if pm.user.is_some() {
        // Rootless: sandpen runs as the user, who must own what it reads and writes.
        pm.hand_over(repo.path());
        pm.hand_over(tasks.dir.path());
    }
    let out = output(&mut run_command(
        repo.path(),
        &tasks,
        &["--allow-host", &server.to_string()],
    ));
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        out,
        elapsed: Duration::ZERO,
        tasks,
    };
    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();
    let log = log_of(&report, "probe");
    assert!(
        !log.contains("KEY-IN-ENV"),
        "the key reached the container:\n{log}"
    );
    assert!(
        log.contains("ALLOWED: HTTP/1.1 200"),
        "allowlisted host reached:\n{log}"
    );
    assert!(log.contains("DENIED: HTTP/1.1 403"), "others refused:\n{log}");
    assert!(
        log.contains("DIRECT: closed"),
        "no way out but the gateway:\n{log}"
    );
    let run_id = field(&report, "run_id");
    let networks = stdout(&docker(&[
        "network",
        "ls",
        "-q",
        "--filter",
        &format!("label=sandpen.run={run_id}"),
    ]));
    assert!(networks.trim().is_empty(), "a run makes no network: {networks}");
    let net = stdout(&docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=sandpen.run={run_id}"),
        "-q",
    ]));
    assert!(net.trim().is_empty(), "nothing of the run is left: {net}");
}

#[test]
fn rootless_podman_keeps_the_checkout_the_users_and_says_what_it_cannot_limit() {
    if skip() {
        return;
    }
    let pm = Podman::start(true, 1);
    use_engine(&pm.host);
    let (uid, gid, home) = pm.user.clone().unwrap();
    // The offline base needs root (debootstrap): made by root into the user's engine, as
    // README says; everything after runs as the user.
    let base = output(sandpen().args(["image", "bootstrap-base"]));
    assert!(base.status.success(), "{}", stderr(&base));
    let bin = pm.dir.join("sandpen");
    std::fs::copy(env!("CARGO_BIN_EXE_sandpen"), &bin).unwrap();
    pm.hand_over(&bin);
    run_as(uid, gid, home, bin);
    let image = image("probe");

    let repo = make_repo();
    pm.hand_over(repo.path());
    let tasks = task_file(
        r#"
[defaults]
memory = "200m"
timeout = "1m"

[[task]]
id = "a"
prompt_text = "echo a > a.txt; git add a.txt; git commit -qm 'add a'; echo uid=$(id -u); cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null | sed 's/^/mem=/'"

[[task]]
id = "b"
prompt_text = "echo b > b.txt"
"#,
    );
    pm.hand_over(tasks.dir.path());

    // Gateway mode (the default) works rootless too: tasks have no network to be out of the
    // host's reach, and the gateway runs as the user, as they do.
    gateway_mode(&pm);

    let mut cmd = sandpen();
    with_test_credentials(&mut cmd);
    cmd.current_dir(repo.path())
        .args(["run", "--image", &image, "--network", "none", "--report"])
        .arg(&tasks.report)
        .arg(&tasks.path);
    let out = output(&mut cmd);
    let dump = dump(out.status.code().unwrap_or(-1), Duration::ZERO, &out);
    assert_eq!(out.status.code(), Some(0), "{dump}");
    let report = read_report(&tasks.report).unwrap();
    let run_id = field(&report, "run_id").to_string();

    // The work comes back as the user's branches, committed and salvaged.
    let a = task(&report, "a");
    assert_eq!(
        git_any(repo.path(), &["show", &format!("sandpen/a/{run_id}:a.txt")]),
        "a\n"
    );
    assert_eq!(
        git_any(repo.path(), &["show", &format!("sandpen/b/{run_id}:b.txt")]),
        "b\n"
    );
    assert_eq!(task(&report, "b")["salvaged"], true);
    // Inside, the task ran as the user's own uid; on the host its files stay the user's.
    let v = values(&log_of(&report, "a"));
    assert_eq!(v["uid"], uid.to_string(), "{v:?}");
    use std::os::unix::fs::MetadataExt;
    let written = Path::new(field(a, "checkout")).join("a.txt");
    assert_eq!(
        std::fs::metadata(&written).unwrap().uid(),
        uid,
        "{}",
        written.display()
    );
    for entry in walk(repo.path()) {
        assert_eq!(entry.1, uid, "{} is the user's", entry.0.display());
    }

    // The limits the report claims are the ones applied: on cgroup v1 none can be, and the
    // run says so at its start.
    let cgroup_v1 = !Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let applied = a["limits_enforced"].as_bool().unwrap();
    assert_eq!(applied, !cgroup_v1, "{a:#}");
    if !applied {
        assert!(stderr(&out).contains("no cgroup of their own"), "{dump}");
        assert!(a["peak_memory_bytes"].is_null(), "no made-up figure: {a:#}");
        assert!(v.get("mem").is_none_or(|m| m != "209715200"), "{v:?}");
    } else {
        assert_eq!(v["mem"], "209715200", "{v:?}");
    }
    let left = containers(&format!("label=sandpen.run={run_id}"));
    assert!(left.is_empty(), "containers left: {left:?}");
}

/// Every path under `dir` and its owner.
fn walk(dir: &Path) -> Vec<(std::path::PathBuf, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        out.push((p.clone(), meta.uid()));
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out
}
