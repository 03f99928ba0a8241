//! The egress gateway (the default network mode), with the real engine and the probe image
//! (whose `claude` runs the prompt as a shell script). The only servers involved are ones this
//! test starts on this machine.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const CANARY: &str = "sk-visible-canary";

/// A container on the default bridge answering HTTP on 8080 (a gateway program: it answers
/// 401 to anything without a token), removed when dropped.
struct BridgeServer {
    name: String,
    ip: String,
}

impl BridgeServer {
    fn start() -> Self {
        let name = format!("sandpen-test-server-{}", std::process::id());
        let _ = docker(&["rm", "-f", &name]);
        let image = image("gateway");
        let out = docker(&[
            "run",
            "-d",
            "-i",
            "--name",
            &name,
            "--network",
            "bridge",
            &image,
            "--listen",
            "0.0.0.0:8080",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let ip = stdout(&docker(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.bridge.IPAddress}}",
            &name,
        ]))
        .trim()
        .to_string();
        assert!(!ip.is_empty(), "the test server has no address");
        Self { name, ip }
    }
}

impl Drop for BridgeServer {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.name]);
    }
}

/// The run directory of the only run in `repo`.
fn run_dir(repo: &Path) -> Option<PathBuf> {
    std::fs::read_dir(runs_dir(repo)).ok()?.find_map(|e| {
        let p = e.ok()?.path();
        p.is_dir().then_some(p)
    })
}

fn networks_of(run_id: &str) -> Vec<String> {
    let out = docker(&[
        "network",
        "ls",
        "-q",
        "--filter",
        &format!("label=sandpen.run={run_id}"),
    ]);
    stdout(&out).lines().map(str::to_string).collect()
}

/// Listeners on the engine host (the test's own process): on the default bridge's address
/// (docker0) and on all addresses. Counts what connects.
struct HostListeners {
    docker0: String,
    any_addr: String,
    port_docker0: u16,
    port_any: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl HostListeners {
    fn start() -> Self {
        // The bridge's own address on the host (docker0), as `ip` shows it.
        let shown = std::process::Command::new("ip")
            .args(["-4", "-o", "addr", "show", "docker0"])
            .output()
            .unwrap();
        let docker0 = String::from_utf8_lossy(&shown.stdout)
            .split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .and_then(|a| a.split('/').next())
            .unwrap_or_default()
            .to_string();
        assert!(!docker0.is_empty(), "the default bridge has a gateway address");
        // Another address of this host, not loopback nor docker0: the first `hostname -I`.
        let all = std::process::Command::new("hostname").arg("-I").output().unwrap();
        let any_addr = String::from_utf8_lossy(&all.stdout)
            .split_whitespace()
            .find(|a| *a != docker0 && a.contains('.'))
            .unwrap_or(&docker0)
            .to_string();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let listen = |addr: &str| {
            let l = std::net::TcpListener::bind((addr, 0)).unwrap();
            let port = l.local_addr().unwrap().port();
            let n = accepted.clone();
            std::thread::spawn(move || {
                for _ in l.incoming() {
                    n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
            port
        };
        let port_docker0 = listen(&docker0);
        let port_any = listen("0.0.0.0");
        Self {
            docker0,
            any_addr,
            port_docker0,
            port_any,
            accepted,
        }
    }
}

/// The prompt of the task that probes the boundary from inside. It reaches the gateway through
/// its own HTTPS_PROXY setting, with bash's /dev/tcp (the probe image has no curl).
fn probe_script(server: &str, host: &HostListeners) -> String {
    let tcp = |name: &str, addr: &str, port: u16| {
        format!(
            "if timeout 4 bash -c 'exec 3<>/dev/tcp/{addr}/{port}' 2>/dev/null; then echo \"{name}: open\"; else echo \"{name}: closed\"; fi\n"
        )
    };
    // The canary is put together at run time: the prompt itself must not hold it.
    format!(
        r#"set -u
c=sk-visible; c=$c-canary
env | grep -q "$c" && echo CANARY-IN-ENV
grep -rqs --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev "$c" / && echo CANARY-IN-FILES
proxy=${{HTTPS_PROXY#http://}}; cred=${{proxy%@*}}; hostport=${{proxy#*@}}
gh=${{hostport%:*}}; gp=${{hostport#*:}}
auth=$(printf %s "$cred" | base64 -w0)
req() {{
  bash -c "exec 3<>/dev/tcp/$gh/$gp && printf 'GET http://$1/ HTTP/1.1\r\nHost: $1\r\nProxy-Authorization: Basic $auth\r\nConnection: close\r\n\r\n' >&3 && head -1 <&3" | tr -d '\r'
}}
echo "ALLOWED: $(req {server}:8080)"
echo "DENIED: $(req {server}:8081)"
{direct}{docker0}{any}case "${{ANTHROPIC_BASE_URL:-}}" in http://$gh:$gp) echo "BASE: the gateway";; *) echo "BASE: elsewhere";; esac
echo "ROUTES: $(tail -n +2 /proc/net/route | wc -l)"
echo "INTERFACES: $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')"
if getent hosts example.com >/dev/null 2>&1; then echo "DNS: answered"; else echo "DNS: none"; fi
while [ ! -e peer-done ]; do sleep 0.2; done
echo "PEER: checked"
"#,
        direct = tcp("DIRECT", server, 8080),
        docker0 = tcp("HOST-DOCKER0", &host.docker0, host.port_docker0),
        any = tcp("HOST-ANY", &host.any_addr, host.port_any),
    )
}

#[test]
fn a_task_reaches_only_the_gateway_and_allowlisted_hosts_through_it() {
    let server = BridgeServer::start();
    let host = HostListeners::start();
    let repo = make_repo();
    let toml = format!(
        "[[task]]\nid = \"probe\"\nprompt_text = '''\n{}'''\n\n\
         [[task]]\nid = \"peer\"\nprompt_text = \"for i in $(seq 1 300); do [ -e stop ] && exit 0; sleep 0.2; done\"\n",
        probe_script(&server.ip, &host)
    );
    let allowed = format!("{}:8080", server.ip);
    let mut run = spawn_run_with(
        repo.path(),
        &toml,
        &["--allow-host", &allowed],
        &[("ANTHROPIC_API_KEY", CANARY)],
    );
    // Once both run: the peer (another task's container) has no address to be reached at, nor
    // has the probe: no network but their own loopback.
    let dir = wait_for(Duration::from_secs(60), || {
        let d = run_dir(repo.path())?;
        let run_id = d.file_name()?.to_string_lossy().to_string();
        let inspect = |task: &str| {
            let out = docker(&[
                "inspect",
                "-f",
                "{{.HostConfig.NetworkMode}} [{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}]",
                &format!("sandpen-{run_id}-{task}"),
            ]);
            out.status.success().then(|| stdout(&out).trim().to_string())
        };
        let (peer, probe) = (inspect("peer")?, inspect("probe")?);
        assert_eq!(peer, "none []", "the peer's network");
        assert_eq!(probe, "none []", "the probe's network");
        d.join("probe").is_dir().then(|| {
            std::fs::write(d.join("probe/peer-done"), "").unwrap();
            d
        })
    })
    .unwrap_or_else(|| panic!("the tasks never ran:\n{}", run.stderr()));
    let log = wait_for(Duration::from_secs(60), || {
        let log = std::fs::read_to_string(dir.join("probe.log")).ok()?;
        log.contains("PEER: ").then_some(log)
    })
    .unwrap_or_else(|| panic!("the probe never finished:\n{}", run.stderr()));
    std::fs::write(dir.join("peer/stop"), "").unwrap();
    let status = run.wait_exit(Duration::from_secs(60)).expect("sandpen ends");
    assert!(status.success(), "{}", run.stderr());

    assert!(
        !log.contains("CANARY-IN"),
        "the real key reached the container:\n{log}"
    );
    assert!(
        log.contains("ALLOWED: HTTP/1.1 401"),
        "an allowlisted host is reached:\n{log}"
    );
    assert!(
        log.contains("DENIED: HTTP/1.1 403"),
        "another port is refused:\n{log}"
    );
    for closed in ["DIRECT: closed", "HOST-DOCKER0: closed", "HOST-ANY: closed"] {
        assert!(
            log.contains(closed),
            "no way out but the gateway ({closed}):\n{log}"
        );
    }
    assert_eq!(
        host.accepted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a task reached the engine host's listeners:\n{log}"
    );
    assert!(log.contains("BASE: the gateway"), "{log}");
    assert!(log.contains("ROUTES: 0\n"), "no route at all:\n{log}");
    assert!(log.contains("INTERFACES: lo \n"), "loopback only:\n{log}");
    assert!(log.contains("DNS: none"), "no resolver answers:\n{log}");

    // The audit names both attempts; the report counts them; the summary names the denial.
    let audit = std::fs::read_to_string(dir.join("egress.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let attempt = |port: u64, allowed: bool| {
        lines.iter().any(|l| {
            l["kind"] == "egress"
                && l["task"] == "probe"
                && l["host"] == server.ip.as_str()
                && l["port"] == port
                && l["allowed"] == allowed
        })
    };
    assert!(attempt(8080, true) && attempt(8081, false), "{audit}");
    assert!(!audit.contains(CANARY), "no key in the audit");
    let report = read_report(&dir.join("report.json")).unwrap();
    let g = &task(&report, "probe")["gateway"];
    assert_eq!(
        g["denied"],
        serde_json::json!([format!("{}:8081", server.ip)]),
        "{g:#}"
    );
    assert!(g["egress_allowed"].as_u64().unwrap() >= 1, "{g:#}");

    // Nothing of the run is left: no container, no network, no socket, no relay.
    let run_id = report["run_id"].as_str().unwrap();
    assert!(containers(&format!("label=sandpen.run={run_id}")).is_empty());
    assert!(networks_of(run_id).is_empty(), "{:?}", networks_of(run_id));
    let internal = dir.join("_sandpen");
    assert!(!internal.join("gateway").exists() && !internal.join("sandpen-relay").exists());
}

#[test]
fn bad_gateway_input_is_refused_before_anything_is_made() {
    let repo = make_repo();
    for (toml, extra, says) in [
        (
            "[[task]]\nid = \"t\"\nprompt_text = \"true\"\n",
            vec!["--allow-host", "https://x.com"],
            "--allow-host",
        ),
        (
            "[[task]]\nid = \"t\"\nprompt_text = \"true\"\n",
            vec!["--max-cost", "0"],
            "max-cost",
        ),
        (
            "[[task]]\nid = \"t\"\nprompt_text = \"true\"\n",
            vec!["--max-cost", "lots"],
            "max-cost",
        ),
        (
            "[[task]]\nid = \"t\"\nprompt_text = \"true\"\nallow_hosts = [\"x.com:99999\"]\n",
            vec![],
            ":4",
        ),
        (
            "[[task]]\nid = \"t\"\nprompt_text = \"true\"\nallow_hosts = [\"x.com\"]\n",
            vec!["--network", "none"],
            "allow_hosts",
        ),
        (
            "[[task]]\nid = \"t\"\nprompt_text = \"true\"\n",
            vec!["--network", "none", "--max-cost", "1"],
            "budget",
        ),
    ] {
        let run = run_tasks(repo.path(), toml, &extra);
        assert_eq!(run.code, 2, "{extra:?}: {}", run.dump());
        let err = stderr(&run.out);
        assert!(err.contains(says), "{extra:?}: {err}");
        assert!(
            !runs_dir(repo.path()).exists() || run_dir(repo.path()).is_none(),
            "nothing made"
        );
    }
}

#[test]
fn ctrl_c_and_sigkill_with_gc_leave_no_container_and_no_network() {
    let sleepers = "[[task]]\nid = \"s1\"\nprompt_text = \"sleep 120\"\n\n[[task]]\nid = \"s2\"\nprompt_text = \"sleep 120\"\n";
    for signal in ["INT", "KILL"] {
        let repo = make_repo();
        let mut run = spawn_run(repo.path(), sleepers, &[]);
        let filter = owner_filter(run.pid());
        wait_for(Duration::from_secs(60), || {
            (running_containers(&filter).len() == 2).then_some(())
        })
        .unwrap_or_else(|| panic!("the tasks never ran:\n{}", run.stderr()));
        let run_id = run_dir(repo.path())
            .and_then(|d| Some(d.file_name()?.to_string_lossy().to_string()))
            .unwrap();
        assert!(networks_of(&run_id).is_empty(), "a run makes no network");
        run.signal(signal);
        run.wait_exit(Duration::from_secs(40)).expect("sandpen ends");
        if signal == "KILL" {
            // Nothing cleaned up after a SIGKILL: gc does it.
            let gc = output(sandpen().arg("gc").current_dir(repo.path()));
            assert!(gc.status.success(), "{}", stderr(&gc));
            assert!(stdout(&gc).contains("removed"), "{}", stdout(&gc));
        }
        assert!(
            containers(&format!("label=sandpen.run={run_id}")).is_empty(),
            "{signal}: containers left"
        );
        assert!(networks_of(&run_id).is_empty(), "{signal}: network left");
    }
}

#[test]
fn a_gateway_that_dies_before_it_serves_fails_every_task_and_leaves_nothing() {
    // A gateway image whose program ends at once: the tasks' containers are made beside it
    // and wait at their gate, which must close, not hang.
    let broken = format!("sandpen-test-broken-gateway:{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let dockerfile = format!(
        "FROM {}\nENTRYPOINT [\"sh\", \"-c\", \"sleep 1; echo broken-on-purpose >&2; exit 3\"]\n",
        image("probe")
    );
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    let built = docker(&["build", "-q", "-t", &broken, &dir.path().display().to_string()]);
    assert!(built.status.success(), "{}", stderr(&built));
    let repo = make_repo();
    let tasks = task_file(
        "[[task]]\nid = \"a\"\nprompt_text = \"echo ran\"\n\n[[task]]\nid = \"b\"\nprompt_text = \"echo ran\"\n",
    );
    let started = std::time::Instant::now();
    // A gate that never closed would hold each task to its timeout: short, to fail, not hang.
    let out = output(
        run_command(repo.path(), &tasks, &["--timeout", "40s"]).env("SANDPEN_TEST_GATEWAY_IMAGE", &broken),
    );
    let _ = docker(&["rmi", "-f", &broken]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // A hang guard, not a timing: the gateway's own limit is 20 s.
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let dir = run_dir(repo.path()).expect("the run has a directory");
    let run_id = dir.file_name().unwrap().to_string_lossy().to_string();
    let report = read_report(&dir.join("report.json")).unwrap();
    for id in ["a", "b"] {
        let t = task(&report, id);
        assert_eq!(field(t, "status"), "error", "{t:#}");
        let message = field(t, "message");
        assert!(message.contains("the run's gateway"), "{message}");
        assert!(
            message.contains("broken-on-purpose"),
            "the gateway's words: {message}"
        );
        let log = std::fs::read_to_string(dir.join(format!("{id}.log"))).unwrap_or_default();
        assert!(!log.contains("ran"), "the task ran without its gateway: {log}");
    }
    assert!(
        containers(&format!("label=sandpen.run={run_id}")).is_empty(),
        "containers left"
    );
    assert!(networks_of(&run_id).is_empty(), "network left");
}
