//! `run`'s side of the gateway: its image, the flags only it gives meaning to, and starting
//! it with the host's credentials (which go to the gateway alone).

use secrecy::{ExposeSecret, SecretString};

use super::{Prepared, RunOptions, warn};
use crate::agent::env::CREDENTIAL_ENV;
use crate::cli::RunFlags;
use crate::engine::Engine;
use crate::engine::spec::Owner;
use crate::exit::UsageError;
use crate::gateway::allow::HostPattern;
use crate::gateway::price::PriceTable;
use crate::gateway::protocol::CredentialKind;
use crate::gateway::{GatewayHandle, GatewayOptions, Starting};
use crate::image::{ImageRequest, Target};
use crate::plan::Plan;
use crate::runner::EventSender;
use crate::swarm::SwarmGateway;
use crate::workspace::RunDir;

/// The gateway image: sandpen's own executable on the base, made once per sandpen build (and
/// said only then: reusing it is every run's normal case).
pub async fn gateway_image(engine: &Engine) -> anyhow::Result<String> {
    let mut display = crate::report::build::BuildDisplay::stderr();
    let tag = crate::image::ensure(engine, &ImageRequest::new(Target::Gateway), &mut |e| {
        if !matches!(e, crate::image::ImageEvent::Reused { .. }) {
            display.on_event(e)
        }
    })
    .await;
    display.finish();
    Ok(tag?)
}

/// `--allow-host`, `allow_hosts` and `--max-cost` mean something only with the gateway.
pub(super) fn check_gateway_input(args: &RunFlags, plan: &Plan) -> anyhow::Result<()> {
    for entry in &args.allow_hosts {
        if let Err(why) = HostPattern::parse(entry) {
            return Err(UsageError(format!(
                "--allow-host {entry:?}: {why}\nfix: pass a host name or address, optionally with :PORT, `*.suffix`, or `*`"
            ))
            .into());
        }
    }
    let network = args.network();
    if network.is_gateway() {
        return Ok(());
    }
    let fix = "fix: use the default --network gateway, or drop the allowlist and budget";
    if !args.allow_hosts.is_empty() {
        return Err(UsageError(format!(
            "--allow-host with --network {network}: only the gateway has an allowlist\n{fix}"
        ))
        .into());
    }
    if let Some(t) = plan.tasks.iter().find(|t| !t.allow_hosts.is_empty()) {
        return Err(UsageError(format!(
            "task {} ({}) sets allow_hosts, but --network {network} has no allowlist\n{fix}",
            t.id,
            t.source.display()
        ))
        .into());
    }
    if let Some(t) = plan.tasks.iter().find(|t| t.max_cost.is_some()) {
        return Err(UsageError(format!(
            "a budget (--max-cost or max_cost, task {}) needs the gateway to meter it, but --network is {network}\n{fix}",
            t.id
        ))
        .into());
    }
    Ok(())
}

/// The run's gateway, started now and made beside the run's first checkouts (on a Swarm, a
/// gateway per task, made before the task's service): its upstream is
/// the host's `ANTHROPIC_BASE_URL` or the real API, with the host's key (or token), which goes
/// to the gateway alone.
pub(super) fn start_gateway(
    p: &Prepared,
    owner: &Owner,
    layout: &RunDir,
    g: &(String, PriceTable),
    opts: &RunOptions,
    events: EventSender,
    users: usize,
) -> anyhow::Result<GatewayHandle> {
    if opts.allow_hosts.iter().any(|h| h.trim() == "*") {
        warn("--allow-host '*': tasks may reach any host through the gateway (still metered and logged)");
    }
    let options = gateway_options(p, layout, g, opts, events);
    // On a Swarm, a gateway per task, made with it; here, the run's one, made now.
    let gw: std::sync::Arc<dyn crate::gateway::TaskGateway> = match &p.swarm {
        Some(on) => std::sync::Arc::new(SwarmGateway::new(on.engine.clone(), owner.clone(), options)?),
        None => std::sync::Arc::new(Starting::spawn(p.engine.clone(), owner.clone(), options)),
    };
    Ok(GatewayHandle::new(gw, users))
}

/// On a Swarm, the warm environment's preparation's own gateway (`warm::Layered`): on the
/// manager's engine, from `image` (the task image's local tag with the entry step, which holds
/// sandpen: the pinned reference is the registry's), started only when a preparation runs.
/// Its audit and log are files of their own (the Swarm's gateways hold `egress.jsonl` and
/// `gateway.log` open): `env-egress.jsonl`, `env-gateway.log`.
pub(super) fn preparation_gateway(
    p: &Prepared,
    owner: &Owner,
    layout: &RunDir,
    (image, prices): (&str, &PriceTable),
    opts: &RunOptions,
    events: EventSender,
) -> crate::warm::GatewayMaker {
    let g = (image.to_string(), prices.clone());
    let mut options = gateway_options(p, layout, &g, opts, events);
    options.cmd = vec![crate::swarm::ENTRY.to_string(), "gateway".to_string()];
    options.audit = layout.root.join("env-egress.jsonl");
    options.log = layout.root.join("env-gateway.log");
    let (engine, owner) = (p.engine.clone(), owner.clone());
    let options = std::sync::Mutex::new(Some(options));
    Box::new(move || {
        let options = options.lock().ok()?.take()?;
        let gw = Starting::spawn(engine.clone(), owner.clone(), options);
        Some(GatewayHandle::new(std::sync::Arc::new(gw), 1))
    })
}

fn gateway_options(
    p: &Prepared,
    layout: &RunDir,
    (image, prices): &(String, PriceTable),
    opts: &RunOptions,
    events: EventSender,
) -> GatewayOptions {
    let cred = |k: &str| p.credentials.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let upstream = cred("ANTHROPIC_BASE_URL").map_or_else(
        || "https://api.anthropic.com".to_string(),
        |v| v.expose_secret().to_string(),
    );
    let credential = CredentialKind::ALL
        .into_iter()
        .find_map(|k| cred(k.env()).map(|v| (k, v)));
    let mut allow: Vec<String> = crate::gateway::allow::DEFAULTS
        .iter()
        .map(|s| s.to_string())
        .collect();
    allow.extend(opts.allow_hosts.iter().cloned());
    GatewayOptions {
        image: image.clone(),
        cmd: Vec::new(),
        upstream,
        credential,
        prices: prices.clone(),
        allow,
        audit: layout.egress(),
        log: layout.gateway_log(),
        dir: layout.gateway_dir(),
        relay: layout.relay(),
        on_rate_limit: Some(std::sync::Arc::new(move |r: crate::gateway::RateLimit| {
            events.send(crate::runner::Event::RateLimited {
                task: r.task,
                status: r.status,
                resume_in_s: r.resume_in.as_secs_f64(),
            })
        })),
    }
}

/// The credentials set on the host.
pub(super) fn host_credentials() -> Vec<(String, SecretString)> {
    CREDENTIAL_ENV
        .iter()
        .filter_map(|k| {
            let v = std::env::var(k).ok().filter(|v| !v.is_empty())?;
            Some((k.to_string(), SecretString::from(v)))
        })
        .collect()
}
