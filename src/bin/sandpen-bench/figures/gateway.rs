//! Figure 9: the egress gateway. (a) One trivial task with the gateway (the default) against the
//! same with `--network bridge`, both as whole processes. (b) A model request's round trip
//! through the gateway against straight to the scripted model server, from the same client.
//! (c) The gateway's peak memory while 16 tasks' clients send requests at once.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sandpen::engine::Engine;
use sandpen::engine::spec::Owner;
use sandpen::gateway::{Gateway, GatewayOptions, TaskGateway, relay};
use sandpen::model_server::{ModelServer, Script};

use crate::ctx::{Ctx, Measured, run_ok};
use crate::row::Row;
use crate::stats::Sample;
use crate::target::{Bound, Target};

pub const FIGURE: &str =
    "9. egress gateway: one trivial task gateway / bridge; model round trip; gateway memory";

type Http = Client<HttpConnector, Full<Bytes>>;

pub fn measure(ctx: &Ctx, notes: &mut Vec<String>) -> Measured<Vec<Row>> {
    let n = if ctx.quick { 2 } else { 20 };
    // The gateway image is made once per sandpen build: not part of any run timed here.
    let image = run_ok(Command::new(&ctx.sandpen).args(["image", "build", "--target", "gateway"]))?;
    let image = image.lines().last().unwrap_or_default().trim().to_string();
    let tasks = ctx.task_file(1, "true", "256m", 0.5);
    let (mut gateway, mut bridge) = (vec![], vec![]);
    // In pairs, each side first in every other pair: neither gains from going second (the
    // engine's state, the page cache) or from a drift of the machine.
    for round in 0..n {
        let mut pair = [("gateway", &mut gateway), ("bridge", &mut bridge)];
        if round % 2 == 1 {
            pair.reverse();
        }
        for (network, times) in pair {
            times.push(ctx.sandpen_run(&tasks, 1, &["--network", network])?.0);
        }
    }
    let (gateway, bridge) = (Sample::new(gateway), Sample::new(bridge));
    let ratio = gateway.median() / bridge.median();
    let mut rows = vec![Row::new(
        "9a. one trivial task, --network gateway (s)",
        gateway.show(3),
        format!("--network bridge {}", bridge.show(3)),
        Some(ratio),
        Target::of(Bound::AtMost(1.05, "x"), ratio),
    )];

    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let (trip, direct, peak) = rt.block_on(round_trips(ctx, &image))?;
    let extra_ms = (trip.median() - direct.median()) * 1000.0;
    rows.push(Row::new(
        "9b. model request round trip, through the gateway (ms)",
        format!("{} (+{extra_ms:.1} ms)", ms(&trip)),
        format!("straight to the model server {}", ms(&direct)),
        Some(trip.median() / direct.median()),
        Target::of(Bound::AtMost(5.0, "ms added"), extra_ms),
    ));
    rows.push(Row::new(
        "9c. gateway peak memory, 16 tasks sending at once (MiB)",
        format!("{peak:.1}"),
        "-".into(),
        None,
        Target::of(Bound::AtMost(15.0, "MiB"), peak),
    ));
    notes.push(
        "Figure 9: the gateway costs a container and its removal per run (not per task), made \
         beside the run's first tasks; its tasks have no network at all, and start a relay. 9a is \
         that cost on a one-task run. 9b and 9c drive the gateway from the host through the \
         relay (the path a task's request takes): each request is a non-streaming Messages API \
         call the scripted server answers at once."
            .into(),
    );
    Ok(rows)
}

fn ms(s: &Sample) -> String {
    let n = s.values.len();
    format!(
        "{:.2} ({:.2}–{:.2}, n={n})",
        s.median() * 1e3,
        s.min() * 1e3,
        s.max() * 1e3
    )
}

async fn round_trips(ctx: &Ctx, image: &str) -> Measured<(Sample, Sample, f64)> {
    let engine = Engine::connect(None).await.map_err(|e| e.to_string())?;
    let bridge = engine.bridge_gateway().await.map_err(|e| e.to_string())?;
    let server = ModelServer::start(Script::default(), SocketAddr::new(bridge, 0), None)
        .await
        .map_err(|e| e.to_string())?;
    let run_dir = ctx.work.path().join(format!("gw-{}", ctx.next()));
    std::fs::create_dir_all(&run_dir).map_err(|e| e.to_string())?;
    let owner = Owner {
        run_id: format!("bench-{}-{}", std::process::id(), ctx.next()),
        process: sandpen::owner::this_owner(),
        process_start: sandpen::owner::this_start_time(),
        run_dir: run_dir.clone(),
    };
    let gw = Gateway::start(
        &engine,
        &owner,
        &GatewayOptions {
            image: image.to_string(),
            cmd: Vec::new(),
            upstream: format!("http://{}/task/{{task}}", server.addr),
            credential: Some((
                sandpen::gateway::protocol::CredentialKind::ApiKey,
                "sk-bench-not-a-key".to_string().into(),
            )),
            prices: Default::default(),
            allow: Vec::new(),
            audit: run_dir.join("egress.jsonl"),
            log: run_dir.join("gateway.log"),
            dir: run_dir.join("gateway"),
            relay: run_dir.join("relay"),
            on_rate_limit: None,
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    // The relay as a task container runs it, here on the host's loopback: the whole way a
    // task's request goes but the container's own loopback.
    let relay = HostRelay::start(&run_dir)?;
    let measured = drive(ctx, &gw, &server, &owner.run_id, relay.addr).await;
    drop(relay);
    gw.shutdown(true).await;
    server.stop().await;
    measured
}

/// `sandpen-relay` serving a loopback port of the host, ended when dropped.
struct HostRelay {
    child: std::process::Child,
    addr: SocketAddr,
}

impl HostRelay {
    fn start(run_dir: &std::path::Path) -> Measured<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let socket = run_dir.join("gateway").join(relay::SOCKET_NAME);
        // The relay's serving half, handed its listener as a task container's first half does.
        let child = Command::new(run_dir.join("relay"))
            .arg(addr.to_string())
            .arg(&socket)
            .env(relay::SERVE_ENV, "1")
            .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(listener)))
            .spawn()
            .map_err(|e| format!("starting the relay: {e}"))?;
        Ok(Self { child, addr })
    }
}

impl Drop for HostRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn drive(
    ctx: &Ctx,
    gw: &Gateway,
    server: &ModelServer,
    run_id: &str,
    relay: SocketAddr,
) -> Measured<(Sample, Sample, f64)> {
    let http: Http = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let body = r#"{"model":"claude-sonnet-4","max_tokens":8,"stream":false,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut tokens = Vec::new();
    for i in 0..16 {
        let task = format!("t{i:02}");
        let a = gw.prepare(&task).await.map_err(|e| e.to_string())?;
        gw.admit(&task, &a, &[], None).await.map_err(|e| e.to_string())?;
        let key = secrecy::ExposeSecret::expose_secret(&a.token).to_string();
        tokens.push((format!("http://{relay}"), key));
    }
    let n = if ctx.quick { 20 } else { 300 };
    let (mut trip, mut direct) = (vec![], vec![]);
    let (base, key) = &tokens[0];
    let through = format!("{base}/v1/messages");
    let straight = format!("http://{}/task/t00/v1/messages", server.addr);
    for i in 0..n {
        // Alternated, so that both see the same machine.
        let order = if i % 2 == 0 { [true, false] } else { [false, true] };
        for gateway in order {
            let (url, into) = if gateway {
                (&through, &mut trip)
            } else {
                (&straight, &mut direct)
            };
            into.push(post(&http, url, key, body).await?);
        }
    }
    // 16 clients at once, one per task.
    let rounds = if ctx.quick { 10 } else { 100 };
    let mut all = Vec::new();
    for (base, key) in tokens.clone() {
        let http = http.clone();
        all.push(tokio::spawn(async move {
            for _ in 0..rounds {
                post(&http, &format!("{base}/v1/messages"), &key, body).await?;
            }
            Ok::<_, String>(())
        }));
    }
    for t in all {
        t.await.map_err(|e| e.to_string())??;
    }
    let name = format!("sandpen-{run_id}-gateway");
    let pid = run_ok(Command::new("docker").args(["inspect", "-f", "{{.State.Pid}}", &name]))?;
    // The container's first process is its init; the gateway is its child.
    let init = pid.trim();
    let child = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap_or_default();
    let gateway = child.split_whitespace().next().unwrap_or(init).to_string();
    let status = std::fs::read_to_string(format!("/proc/{gateway}/status"))
        .map_err(|e| format!("reading the gateway's memory: {e}"))?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .ok_or("no VmHWM for the gateway")?;
    Ok((Sample::new(trip), Sample::new(direct), kib / 1024.0))
}

async fn post(http: &Http, url: &str, key: &str, body: &'static str) -> Measured<f64> {
    let req = hyper::Request::post(url)
        .header("x-api-key", key)
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let answer = http.request(req).await.map_err(|e| format!("{url}: {e}"))?;
    let status = answer.status();
    answer.into_body().collect().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{url}: answered {status}"));
    }
    Ok(start.elapsed().as_secs_f64())
}
