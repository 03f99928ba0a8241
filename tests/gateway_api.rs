//! The model API through the run's gateway, tried as a hostile task would: which calls pass,
//! budgets under a burst of parallel requests, and a subscription's OAuth token. Real engine,
//! probe image (its `claude` runs the prompt as a shell script), and sandpen's scripted model
//! server on this machine as the upstream, recording everything that reaches it.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sandpen::model_server::{ModelServer, Recorded, Script, Turn, Usage};
use serde_json::Value;

/// The host's key: it must reach the upstream, and only through the gateway.
const HOST_KEY: &str = "sk-host-key-gw-api-test";

/// As the model server records a key: the first 16 hex digits of its sha256.
fn key_digest(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))[..16].to_string()
}

/// The scripted model server on the engine's bridge gateway (where the gateway container
/// reaches it), on a runtime of its own; stopped when dropped.
struct Upstream {
    rt: tokio::runtime::Runtime,
    server: Option<ModelServer>,
}

impl Upstream {
    fn start(script: Script) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = rt.block_on(async {
            let ip = engine()
                .await
                .bridge_gateway()
                .await
                .expect("the bridge's gateway");
            ModelServer::start(script, SocketAddr::new(ip, 0), None)
                .await
                .expect("starting the model server")
        });
        Self {
            rt,
            server: Some(server),
        }
    }

    fn base_url(&self) -> String {
        format!("http://{}/task/{{task}}", self.server.as_ref().unwrap().addr)
    }

    fn recorded(&self) -> Vec<Recorded> {
        self.server.as_ref().unwrap().recorded()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.stop());
        }
    }
}

/// A POSIX prompt that runs `body` under bash, with `call METHOD TARGET [BODY]`: one request
/// to the model API (the gateway) with the task's key, printing `METHOD TARGET => <status
/// line> | <last line of the answer>`.
fn bash_prompt(body: &str) -> String {
    format!(
        r#"cat > /tmp/t.sh <<'SCRIPT'
set -u
gw=${{ANTHROPIC_BASE_URL#http://}}; gh=${{gw%:*}}; gp=${{gw#*:}}
call() {{
  body=${{3:-}}
  exec 3<>/dev/tcp/$gh/$gp || {{ echo "$1 $2 => NO CONNECTION"; return; }}
  printf '%s %s HTTP/1.1\r\nHost: %s\r\nx-api-key: %s\r\nauthorization: Bearer sk-task-own\r\ncookie: s=1\r\nanthropic-version: 2023-06-01\r\ncontent-type: application/json\r\ncontent-length: %s\r\nconnection: close\r\n\r\n%s' "$1" "$2" "$gw" "$ANTHROPIC_API_KEY" "${{#body}}" "$body" >&3
  answer=$(tr -d '\r' <&3)
  exec 3<&-
  echo "$1 $2 => $(printf '%s\n' "$answer" | head -1) | $(printf '%s\n' "$answer" | grep . | tail -1)"
}}
{body}
SCRIPT
exec bash /tmp/t.sh
"#
    )
}

fn toml_task(id: &str, prompt: &str) -> String {
    format!("[[task]]\nid = \"{id}\"\nprompt_text = '''\n{prompt}'''\n")
}

/// `sandpen run` of `toml` with `upstream` as the model API and `env` set (`unset` removed).
fn run_against(
    upstream: &Upstream,
    repo: &Path,
    toml: &str,
    extra: &[&str],
    env: &[(&str, &str)],
    unset: &[&str],
) -> (Output, Duration, TaskFile) {
    let tasks = task_file(toml);
    let mut cmd = run_command(repo, &tasks, extra);
    cmd.env("ANTHROPIC_BASE_URL", upstream.base_url());
    cmd.envs(env.iter().copied());
    for k in unset {
        cmd.env_remove(k);
    }
    let start = Instant::now();
    let out = output(&mut cmd);
    (out, start.elapsed(), tasks)
}

fn audit_lines(report: &Value, repo: &Path) -> Vec<Value> {
    let dir = runs_dir(repo).join(report["run_id"].as_str().unwrap());
    std::fs::read_to_string(dir.join("egress.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const OK_BODY: &str = r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;

/// The calls a hostile task tried on main, each of which reached the upstream with the key.
const REFUSED: [(&str, &str); 13] = [
    ("POST", "/v1/messages/batches"),
    ("GET", "/v1/messages/batches/msgbatch_1/results"),
    ("GET", "/v1/files"),
    ("DELETE", "/v1/files/file_1"),
    ("POST", "/v1/organizations/api_keys"),
    ("GET", "/v1/organizations/usage_report/messages"),
    ("PUT", "/v1/messages"),
    ("PATCH", "/v1/messages"),
    ("POST", "//evil.example/x"),
    ("POST", "/v1/messages/../files"),
    ("POST", "/v1/%6dessages"),
    ("POST", "/v1/messages%2F..%2Ffiles"),
    ("POST", "/v1/messages?x=/../files"),
];

#[test]
fn only_message_calls_reach_the_upstream_and_everything_else_is_refused_and_logged() {
    let upstream = Upstream::start(Script::default());
    let repo = make_repo();
    let mut calls = vec![
        "call HEAD /api/hello".to_string(),
        format!("call POST '/v1/messages?beta=true' '{OK_BODY}'"),
        format!("call POST /v1/messages/count_tokens '{OK_BODY}'"),
    ];
    calls.extend(REFUSED.iter().map(|(m, t)| format!("call {m} '{t}' '{OK_BODY}'")));
    // The same server through the proxy (allowlisted): a request must name it as its Host.
    let server = upstream.server.as_ref().unwrap().addr.to_string();
    calls.push(format!(
        r#"auth=$(printf 'sandpen:%s' "$ANTHROPIC_API_KEY" | base64 -w0)
proxied() {{
  exec 3<>/dev/tcp/$gh/$gp
  printf 'GET http://{server}/via-proxy HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\nConnection: close\r\n\r\n' "$1" "$auth" >&3
  echo "PROXY $1 => $(tr -d '\r' <&3 | head -1)"
  exec 3<&-
}}
proxied evil.example
proxied {server}"#
    ));
    let toml = toml_task("probe", &bash_prompt(&calls.join("\n")));
    let (out, elapsed, tasks) = run_against(
        &upstream,
        repo.path(),
        &toml,
        &["--allow-host", &server],
        &[("ANTHROPIC_API_KEY", HOST_KEY)],
        &[],
    );
    let code = out.status.code().unwrap_or(-1);
    assert_eq!(code, 0, "{}", dump(code, elapsed, &out));
    let report = read_report(&tasks.report).unwrap();
    let log = log_of(&report, "probe");
    let answers: Vec<&str> = log.lines().filter(|l| l.contains(" => ")).collect();
    eprintln!("{}", answers.join("\n"));
    let said = |m: &str, t: &str| {
        log.lines()
            .find(|l| l.starts_with(&format!("{m} {t} => ")))
            .unwrap_or_else(|| panic!("no answer to {m} {t}:\n{log}"))
            .to_string()
    };
    assert!(said("HEAD", "/api/hello").contains("HTTP/1.1 200"), "{log}");
    assert!(
        said("POST", "/v1/messages?beta=true").contains("HTTP/1.1 200"),
        "{log}"
    );
    for (m, t) in REFUSED {
        let line = said(m, t);
        assert!(line.contains("HTTP/1.1 403"), "{line}");
        assert!(
            line.contains(r#""type":"error""#) && line.contains("invalid_request_error"),
            "the API's error shape: {line}"
        );
    }

    assert!(log.contains("PROXY evil.example => HTTP/1.1 403"), "{log}");
    assert!(log.contains(&format!("PROXY {server} => HTTP/1.1 404")), "{log}");

    // The upstream saw the two message calls (the token count answered 404 by this server),
    // with the host's key as x-api-key and nothing the task sent as a credential; and the
    // proxied request that named it, without a key.
    let mut got = upstream.recorded();
    let proxied: Vec<Recorded> = got.iter().filter(|r| r.target == "/via-proxy").cloned().collect();
    assert_eq!(proxied.len(), 1, "{got:#?}");
    assert_eq!(proxied[0].key_header, None, "no key through the proxy");
    got.retain(|r| r.target != "/via-proxy");
    let targets: Vec<(&str, &str)> = got
        .iter()
        .map(|r| (r.method.as_str(), r.target.as_str()))
        .collect();
    assert_eq!(
        targets,
        [
            ("POST", "/task/probe/v1/messages?beta=true"),
            ("POST", "/task/probe/v1/messages/count_tokens")
        ],
        "{got:#?}"
    );
    for r in &got {
        assert_eq!(r.api_key_sha256.as_deref(), Some(key_digest(HOST_KEY).as_str()));
        assert_eq!(r.key_header.as_deref(), Some("x-api-key"));
    }

    // Each refusal is in the audit, and in the report's denials.
    let audit = audit_lines(&report, repo.path());
    for (m, t) in REFUSED {
        assert!(
            audit.iter().any(|l| l["kind"] == "api_denied"
                && l["task"] == "probe"
                && l["method"] == m
                && l["path"] == t
                && l["status"] == 403),
            "{m} {t} not audited: {audit:#?}"
        );
    }
    let denied = &task(&report, "probe")["gateway"]["denied"];
    assert!(
        denied.as_array().unwrap().iter().any(|d| d == "GET /v1/files"),
        "{denied}"
    );
    let text = serde_json::to_string(&audit).unwrap();
    assert!(!text.contains(HOST_KEY), "no key in the audit");
}

#[test]
fn ten_parallel_streaming_requests_are_held_to_a_budget_of_two() {
    // $0.0006 a request (100 tokens in at $2/M, 20 out at $20/M), a budget of $0.001.
    let turn = Turn::text("ok")
        .with_usage(Usage {
            input_tokens: 100,
            output_tokens: 20,
        })
        .with_delay(1500);
    let upstream = Upstream::start(Script::one("burst", vec![turn]));
    let repo = make_repo();
    let prices = task_file("[[price]]\nmodel = \"m\"\ninput = 2.0\noutput = 20.0\n");
    let body = r#"{"model":"m","max_tokens":20,"stream":true,"tools":[{"name":"Bash"}],"messages":[{"role":"user","content":"go"}]}"#;
    // A stop (SIGTERM) lets the answers be printed first, then ends the script.
    let script = format!(
        "trap 'echo STOPPED; stopped=1' TERM\n\
         for i in 1 2 3 4 5 6 7 8 9 10; do (trap '' TERM; call POST /v1/messages '{body}' > /tmp/r.$i) & done\n\
         until wait; do :; done\ncat /tmp/r.*\necho BURST-DONE\n\
         [ -n \"${{stopped:-}}\" ] && exit 0\nsleep 60 & wait $!\n\
         [ -n \"${{stopped:-}}\" ] && exit 0\necho SLEPT-THROUGH"
    );
    let toml = toml_task("burst", &bash_prompt(&script));
    let price_file = prices.path.display().to_string();
    let (out, elapsed, tasks) = run_against(
        &upstream,
        repo.path(),
        &toml,
        &["--max-cost", "0.001", "--prices", &price_file],
        &[("ANTHROPIC_API_KEY", HOST_KEY)],
        &[],
    );
    let code = out.status.code().unwrap_or(-1);
    let report = read_report(&tasks.report).unwrap_or_else(|e| panic!("{e}\n{}", dump(code, elapsed, &out)));
    let t = task(&report, "burst");
    let log = log_of(&report, "burst");
    let passed = log.matches("=> HTTP/1.1 200").count();
    let refused = log.matches("=> HTTP/1.1 400").count();
    let g = &t["gateway"];
    let metered = g["cost_usd"].as_f64().unwrap();
    eprintln!(
        "burst of 10 at $0.0006 against $0.001: {passed} passed, {refused} refused, ${metered:.4} metered, run {elapsed:?}"
    );
    assert_eq!(passed + refused, 10, "{log}");
    assert!((1..=3).contains(&passed), "{log}");
    assert!(log.contains("budget") && log.contains("is spent"), "{log}");
    assert!(metered <= 0.0019 + 1e-12, "metered ${metered}: {g:#}");
    assert!((metered - passed as f64 * 0.0006).abs() < 1e-9, "{g:#}");
    assert_eq!(g["budget_exceeded"], true, "{g:#}");
    let reached = upstream
        .recorded()
        .into_iter()
        .filter(|r| r.task == "burst")
        .count();
    assert_eq!(reached, passed, "only the admitted requests reached the upstream");

    // Reaching the budget ends the task: its container is stopped, not left to sleep.
    assert_eq!(
        field(t, "status"),
        "budget_exceeded",
        "{}",
        dump(code, elapsed, &out)
    );
    assert_eq!(code, 1);
    assert!(
        log.contains("BURST-DONE") && log.contains("STOPPED") && !log.contains("SLEPT-THROUGH"),
        "{log}"
    );
    // Stopped 15 s after its budget was reached (its time to end by itself), not after its
    // sleep of 60 s.
    assert!(
        elapsed < Duration::from_secs(55),
        "stopped at its budget: {elapsed:?}"
    );
}

#[test]
fn a_subscription_token_alone_reaches_the_upstream_as_a_bearer_and_never_the_container() {
    const OAUTH: &str = "sk-ant-oat01-gw-api-test-token";
    let upstream = Upstream::start(Script::default());
    let repo = make_repo();
    // The token is put together at run time: the prompt itself must not hold it.
    let script = format!(
        "c=sk-ant-oat01; c=$c-gw-api-test-token\n\
         env | grep -q \"$c\" && echo TOKEN-IN-ENV\n\
         call POST /v1/messages '{OK_BODY}'\n\
         while [ ! -e inspected ]; do sleep 0.2; done\necho DONE"
    );
    let toml = toml_task("sub", &bash_prompt(&script));
    let tasks = task_file(&toml);
    let stderr_path = tasks.dir.path().join("sandpen.stderr");
    let mut cmd = run_command(repo.path(), &tasks, &["--timeout", "90s"]);
    cmd.env("ANTHROPIC_BASE_URL", upstream.base_url())
        .env("CLAUDE_CODE_OAUTH_TOKEN", OAUTH)
        .env_remove("ANTHROPIC_API_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    let child = cmd.spawn().expect("starting sandpen run");
    let mut run = Background {
        child,
        tasks,
        stderr_path,
    };
    let filter = owner_filter(run.pid());
    let id = wait_for(Duration::from_secs(90), || {
        running_containers(&filter).into_iter().find(|c| {
            stdout(&docker(&[
                "inspect",
                "-f",
                "{{index .Config.Labels \"sandpen.task\"}}",
                c,
            ]))
            .trim()
                == "sub"
        })
    })
    .unwrap_or_else(|| panic!("the task never ran:\n{}", run.stderr()));
    let inspected = stdout(&docker(&["inspect", "-f", "{{json .Config.Env}}", &id]));
    assert!(
        !inspected.is_empty() && !inspected.contains(OAUTH),
        "the container holds the token: {inspected}"
    );
    let checkout = wait_for(Duration::from_secs(30), || {
        let runs = std::fs::read_dir(runs_dir(repo.path())).ok()?;
        runs.filter_map(|e| Some(e.ok()?.path().join("sub")))
            .find(|p| p.is_dir())
    })
    .expect("the task's checkout");
    std::fs::write(checkout.join("inspected"), "").unwrap();
    let status = run.wait_exit(Duration::from_secs(90)).expect("sandpen ends");
    assert!(status.success(), "{}", run.stderr());

    let report = read_report(&run.tasks.report).unwrap();
    let log = log_of(&report, "sub");
    assert!(!log.contains("TOKEN-IN-ENV"), "{log}");
    assert!(log.contains("POST /v1/messages => HTTP/1.1 200"), "{log}");
    let got = upstream.recorded();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(
        got[0].key_header.as_deref(),
        Some("authorization"),
        "sent as a bearer"
    );
    assert_eq!(got[0].api_key_sha256.as_deref(), Some(key_digest(OAUTH).as_str()));
    let beta = got[0].anthropic_beta.clone().unwrap_or_default();
    assert!(beta.contains("oauth-2025-04-20"), "the OAuth beta: {beta:?}");
    let text = serde_json::to_string(&audit_lines(&report, repo.path())).unwrap();
    assert!(!text.contains(OAUTH), "no token in the audit");
}

#[test]
fn a_task_has_at_most_64_requests_in_flight() {
    // Each answer takes 4 s: 70 requests sent at once are all in flight together.
    let turn = Turn::text("ok").with_delay(4000);
    let upstream = Upstream::start(Script::one("many", vec![turn]));
    let repo = make_repo();
    let body = r#"{"model":"m","max_tokens":5,"tools":[{"name":"Bash"}],"messages":[{"role":"user","content":"go"}]}"#;
    let script = format!(
        "i=0; while [ $i -lt 70 ]; do i=$((i+1)); call POST /v1/messages '{body}' > /tmp/r.$i & done\n\
         wait\ncat /tmp/r.*"
    );
    let toml = toml_task("many", &bash_prompt(&script));
    let (out, elapsed, tasks) = run_against(
        &upstream,
        repo.path(),
        &toml,
        &[],
        &[("ANTHROPIC_API_KEY", HOST_KEY)],
        &[],
    );
    let code = out.status.code().unwrap_or(-1);
    assert_eq!(code, 0, "{}", dump(code, elapsed, &out));
    let report = read_report(&tasks.report).unwrap();
    let log = log_of(&report, "many");
    let passed = log.matches("=> HTTP/1.1 200").count();
    let limited = log.matches("=> HTTP/1.1 429").count();
    eprintln!("70 at once: {passed} passed, {limited} answered 429");
    assert_eq!((passed, limited), (64, 6), "{log}");
    assert!(log.contains("64 requests in flight"), "{log}");
    let reached = upstream.recorded().iter().filter(|r| r.task == "many").count();
    assert_eq!(reached, 64);
    let audit = audit_lines(&report, repo.path());
    let denied = audit
        .iter()
        .filter(|l| l["kind"] == "api_denied" && l["task"] == "many" && l["status"] == 429)
        .count();
    assert_eq!(denied, 6, "{audit:#?}");
}
