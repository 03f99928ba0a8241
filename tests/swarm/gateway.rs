//! Gateway mode on a real Swarm (the default there as on one engine): a gateway service per
//! task, the task's service on an internal overlay of its own. The Swarm is the test's own
//! (`common/swarm.rs`: private engines in network namespaces, a registry); the model API is
//! sandpen's scripted model server on the host's address on the nodes' network. Runs when CI
//! asks (`SANDPEN_TEST_SWARM=1`, as root).

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::swarm::{self, Swarm};
use common::{output, sandpen, stderr, stdout, wait_for};
use sandpen::model_server::{ModelServer, Script, Turn};

/// The host's key: it must reach the model server, and no task's container.
const KEY: &str = "sk-swarm-gateway-canary";

/// As the model server records a key: the first 16 hex digits of its sha256.
fn key_digest(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))[..16].to_string()
}

/// The probe's prompt (a shell script in the probe image): what its environment and files
/// hold, its privileges, direct connections to the host and a node, a model request to its
/// gateway with its token, and a proxy request for a host not on the allowlist. Its findings go
/// to `probe.txt` in its checkout, which comes back as its branch.
fn probe_script(host: (&str, u16), node: &str) -> String {
    format!(
        r#"set -u
c=sk-swarm-gateway; c=$c-canary
{{
env | grep -q "$c" && echo CANARY-IN-ENV
grep -rqs --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev "$c" / && echo CANARY-IN-FILES
grep NoNewPrivs /proc/self/status
tcp() {{ if timeout 4 bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null; then echo "$1: open"; else echo "$1: closed"; fi; }}
tcp HOST {hh} {hp}
tcp NODE {node} 2377
gw=${{ANTHROPIC_BASE_URL#http://}}; gh=${{gw%:*}}; gp=${{gw#*:}}
echo "ROUTES: $(tail -n +2 /proc/net/route | awk '$2 == "00000000"' | wc -l)"
body='{{"model":"claude-test","max_tokens":16,"messages":[{{"role":"user","content":"hi"}}]}}'
printf 'POST /v1/messages HTTP/1.1\r\nHost: %s\r\nx-api-key: %s\r\ncontent-type: application/json\r\ncontent-length: %s\r\nconnection: close\r\n\r\n%s' "$gw" "$ANTHROPIC_API_KEY" "${{#body}}" "$body" > /tmp/model
echo "MODEL: $(timeout 20 bash -c 'exec 3<>/dev/tcp/$0/$1; cat /tmp/model >&3; head -1 <&3' "$gh" "$gp" | tr -d '\r')"
proxy=${{HTTPS_PROXY#http://}}; auth=$(printf %s "${{proxy%@*}}" | base64 -w0)
printf 'GET http://denied.invalid/ HTTP/1.1\r\nHost: denied.invalid\r\nProxy-Authorization: Basic %s\r\nconnection: close\r\n\r\n' "$auth" > /tmp/denied
echo "DENIED: $(timeout 20 bash -c 'exec 3<>/dev/tcp/$0/$1; cat /tmp/denied >&3; head -1 <&3' "$gh" "$gp" | tr -d '\r')"
}} > probe.txt 2>&1
"#,
        hh = host.0,
        hp = host.1,
    )
}

/// A listener on the host's address on the nodes' network: counts what connects.
fn host_listener(addr: &str) -> (u16, Arc<AtomicUsize>) {
    let l = std::net::TcpListener::bind((addr, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let n = accepted.clone();
    std::thread::spawn(move || {
        for _ in l.incoming() {
            n.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, accepted)
}

/// What the manager holds of sandpen's: services, secrets and networks with its labels.
fn leftovers(manager: &str) -> Vec<String> {
    let ls = |what: &[&str]| {
        let o = output(
            std::process::Command::new("docker")
                .env("DOCKER_HOST", manager)
                .args(what)
                .args(["--filter", "label=sandpen.run", "--format", "{{.Name}}"]),
        );
        stdout(&o).lines().map(str::to_string).collect::<Vec<_>>()
    };
    [
        ls(&["service", "ls"]),
        ls(&["secret", "ls"]),
        ls(&["network", "ls"]),
    ]
    .concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_the_default_mode_a_task_on_the_swarm_has_no_key_and_no_way_out_but_its_gateway() {
    if !swarm::wanted() {
        eprintln!("skipped: set SANDPEN_TEST_SWARM=1 (as root, with docker-registry installed)");
        return;
    }
    let cluster = tokio::task::spawn_blocking(|| Swarm::start(1, 7)).await.unwrap();
    let manager = cluster.manager().to_string();
    let probe = {
        let manager = manager.clone();
        tokio::task::spawn_blocking(move || swarm::probe_on(&manager, &["build"]))
            .await
            .unwrap()
    };
    let host_ip: std::net::IpAddr = cluster.host_addr.parse().unwrap();
    let script = Script::one("probe", vec![Turn::text("done")]);
    let server = ModelServer::start(script, SocketAddr::new(host_ip, 0), None)
        .await
        .expect("starting the model server on the nodes' network");
    let (port, accepted) = host_listener(&cluster.host_addr);

    let repo = common::make_repo();
    let tasks = common::task_file(&format!(
        "[[task]]\nid = \"probe\"\nprompt_text = '''\n{}'''\n",
        probe_script((&cluster.host_addr, port), &cluster.nodes[0].addr)
    ));
    let mut cmd = sandpen();
    common::with_test_credentials(&mut cmd);
    cmd.env("ANTHROPIC_API_KEY", KEY)
        .env(
            "ANTHROPIC_BASE_URL",
            format!("http://{}/task/{{task}}", server.addr),
        )
        .env("DOCKER_HOST", &manager)
        .current_dir(repo.path())
        .args(["run", "--backend", "swarm", "--registry", &cluster.registry])
        .args(["--advertise-addr", &cluster.host_addr, "--image", &probe])
        .arg("--report")
        .arg(&tasks.report)
        .arg(&tasks.path);
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || output(&mut cmd))
        .await
        .unwrap();
    let dump = common::dump(out.status.code().unwrap_or(-1), started.elapsed(), &out);
    assert_eq!(out.status.code(), Some(0), "{dump}");
    let report = common::read_report(&tasks.report).unwrap_or_else(|e| panic!("{e}: {dump}"));
    let run_id = report["run_id"].as_str().unwrap().to_string();
    let t = common::task(&report, "probe");
    assert_eq!(common::field(t, "status"), "succeeded", "{t:#}\n{dump}");
    let found = common::git(
        repo.path(),
        &["show", &format!("sandpen/probe/{run_id}:probe.txt")],
    );
    eprintln!("the probe found:\n{found}");

    // No key in the task's container: its environment and files hold none.
    assert!(
        !found.contains("CANARY-IN"),
        "the real key reached the task:\n{found}"
    );
    // The hardening of one engine: no privilege gain.
    assert!(found.contains("NoNewPrivs:\t1"), "{found}");
    // No way out but the gateway: no default route, the host's and a node's addresses closed.
    assert!(found.contains("ROUTES: 0\n"), "a default route:\n{found}");
    assert!(found.contains("HOST: closed"), "{found}");
    assert!(found.contains("NODE: closed"), "{found}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "a task reached the host's listener"
    );
    // Through its gateway: the model request answered, a host off the allowlist refused.
    assert!(found.contains("MODEL: HTTP/1.1 200"), "{found}");
    assert!(found.contains("DENIED: HTTP/1.1 403"), "{found}");
    // Upstream, the host's key arrived, swapped in for the task's token.
    let recorded = server.recorded();
    server.stop().await;
    assert!(!recorded.is_empty(), "the model server saw no request");
    for r in &recorded {
        assert_eq!(r.task, "probe");
        assert_eq!(r.api_key_sha256.as_deref(), Some(&key_digest(KEY)[..]));
    }
    // Its egress in the run's audit, as locally; no key there.
    let run_dir = common::runs_dir(repo.path()).join(&run_id);
    let audit = std::fs::read_to_string(run_dir.join("egress.jsonl")).unwrap();
    assert!(!audit.contains(KEY), "the key in the audit");
    let lines: Vec<serde_json::Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        lines.iter().any(|l| l["kind"] == "egress"
            && l["task"] == "probe"
            && l["host"] == "denied.invalid"
            && l["allowed"] == false),
        "the denied attempt:\n{audit}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["kind"] == "model" && l["task"] == "probe" && l["status"] == 200),
        "the model request:\n{audit}"
    );
    let gw = &t["gateway"];
    assert!(
        gw["requests"].as_u64().unwrap_or(0) >= 1,
        "the task's meter: {t:#}"
    );
    assert!(!stderr(&out).contains(KEY) && !stdout(&out).contains(KEY));

    // Nothing left on the Swarm: services, secrets, overlays.
    assert_eq!(leftovers(&manager), Vec::<String>::new(), "left on the Swarm");
    cluster.assert_clean("after the run");
    tokio::task::spawn_blocking(move || {
        a_gateway_that_does_not_come_up_fails_its_task_and_leaves_nothing(&cluster, repo.path(), &probe);
        interrupted_and_killed_runs_leave_nothing(&cluster, repo.path());
    })
    .await
    .unwrap();
}

/// A task's gateway whose image its node cannot pull (test builds only: the gateway's image
/// replaced): the task ends `error`, the message names its gateway, nothing of it is left.
fn a_gateway_that_does_not_come_up_fails_its_task_and_leaves_nothing(
    cluster: &Swarm,
    repo: &std::path::Path,
    probe: &str,
) {
    let manager = cluster.manager();
    let tasks = common::task_file("[[task]]\nid = \"lonely\"\nprompt_text = 'echo ran > ran.txt'\n");
    let nowhere = format!("{}/sandpen-no-such-image:1", cluster.registry);
    let mut cmd = sandpen();
    common::with_test_credentials(&mut cmd);
    cmd.env("DOCKER_HOST", manager)
        .env("SANDPEN_TEST_GATEWAY_IMAGE", &nowhere)
        .current_dir(repo)
        .args(["run", "--backend", "swarm", "--registry", &cluster.registry])
        .args(["--advertise-addr", &cluster.host_addr, "--image", probe])
        .arg("--report")
        .arg(&tasks.report)
        .arg(&tasks.path);
    let started = Instant::now();
    let out = output(&mut cmd);
    let dump = common::dump(out.status.code().unwrap_or(-1), started.elapsed(), &out);
    assert_eq!(out.status.code(), Some(1), "{dump}");
    let report = common::read_report(&tasks.report).unwrap_or_else(|e| panic!("{e}: {dump}"));
    let t = common::task(&report, "lonely");
    assert_eq!(common::field(t, "status"), "error", "{t:#}");
    let message = common::field(t, "message");
    assert!(
        message.contains("the gateway of task lonely") && message.contains("nothing of it is left"),
        "{message}"
    );
    eprintln!(
        "a gateway that did not come up: {message} ({:.1}s)",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(leftovers(manager), Vec::<String>::new(), "left on the Swarm");
}

/// Ctrl-C while a task runs behind its gateway: the task's service and its gateway's, the
/// secret and the overlays go. SIGKILL leaves them; `sandpen gc` at the manager removes them.
fn interrupted_and_killed_runs_leave_nothing(cluster: &Swarm, repo: &std::path::Path) {
    let manager = cluster.manager();
    let long = "[[task]]\nid = \"long\"\nprompt_text = 'sleep 300'\n";
    let extra = [
        "--backend",
        "swarm",
        "--registry",
        &cluster.registry,
        "--advertise-addr",
        &cluster.host_addr,
        "--memory",
        "64m",
    ];
    let env = [("DOCKER_HOST", manager), ("ANTHROPIC_API_KEY", KEY)];
    let running = || {
        wait_for(Duration::from_secs(120), || {
            let service = cluster.services().into_iter().find(|s| s.ends_with("-long"))?;
            let o = output(
                std::process::Command::new("docker")
                    .env("DOCKER_HOST", manager)
                    .args(["service", "ps", "--format", "{{.CurrentState}}", &service]),
            );
            stdout(&o).starts_with("Running").then_some(())
        })
    };
    let mut bg = common::spawn_run_with(repo, long, &extra, &env);
    assert!(running().is_some(), "the task never ran: {}", bg.stderr());
    assert!(
        cluster.services().iter().any(|s| s.ends_with("-long-gw")),
        "its gateway runs beside it: {:?}",
        cluster.services()
    );
    // No credential, no task token in any service's environment (`docker service inspect`).
    for service in cluster.services() {
        let o = output(
            std::process::Command::new("docker")
                .env("DOCKER_HOST", manager)
                .args([
                    "service",
                    "inspect",
                    "--format",
                    "{{json .Spec.TaskTemplate.ContainerSpec.Env}}",
                    &service,
                ]),
        );
        let env = stdout(&o);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            !env.contains(KEY) && !env.contains("ANTHROPIC_API_KEY"),
            "{service}: {env}"
        );
    }
    bg.signal("INT");
    let status = bg
        .wait_exit(Duration::from_secs(90))
        .expect("sandpen ends after Ctrl-C");
    assert_eq!(status.code(), Some(130), "{}", bg.stderr());
    assert_eq!(leftovers(manager), Vec::<String>::new(), "left after Ctrl-C");

    let mut bg = common::spawn_run_with(repo, long, &extra, &env);
    assert!(running().is_some(), "the task never ran: {}", bg.stderr());
    bg.signal("KILL");
    bg.wait_exit(Duration::from_secs(10)).expect("killed");
    assert!(
        !leftovers(manager).is_empty(),
        "the dead run's services are still there"
    );
    let gc = output(sandpen().env("DOCKER_HOST", manager).current_dir(repo).arg("gc"));
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert_eq!(
        leftovers(manager),
        Vec::<String>::new(),
        "left after gc: {}",
        stdout(&gc)
    );
    cluster.assert_clean("after gc");
}
