//! The container of one task: what the runner asks of `engine::spec`.

use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use super::Ctx;
use crate::agent;
use crate::engine::ContainerEngine;
use crate::engine::NetworkMode;
use crate::engine::spec::{BindMount, ContainerSpec, HOME, SelfCollect};
use crate::warm;
use crate::workspace::OBJECTS_MOUNT;

pub fn task_container<E: ContainerEngine>(ctx: &Ctx<E>, checkout: &Path) -> ContainerSpec {
    let mut spec = network_and_credentials(ctx, checkout);
    // A warm environment: the shared volume read-only (the one rule, `warm`), ready or still
    // being prepared, or on a Swarm the image holding it as root's files; the task's own copy
    // in its checkout (`command`), its package cache on that disk.
    if let Some(from) = ctx.cfg.warm.as_ref().and_then(|w| w.start_from()) {
        match from {
            warm::StartFrom::Image(image) => spec.image = image.to_string(),
            warm::StartFrom::Volume(volume) => {
                spec.mounts.push(BindMount::volume(volume, warm::ENV_MOUNT, true))
            }
        }
        spec.env.push(format!("UV_CACHE_DIR={}", warm::CACHE_DIR));
    }
    spec
}

fn network_and_credentials<E: ContainerEngine>(ctx: &Ctx<E>, checkout: &Path) -> ContainerSpec {
    // In gateway mode the task gets the gateway's settings and its own token, never the real
    // credentials, and no network: it mounts the gateway's socket and the relay to it.
    if let (true, Some(a), Some(g)) = (ctx.cfg.network.is_gateway(), &ctx.admission, &ctx.cfg.gateway) {
        let mut spec = with_credentials(ctx, checkout, a.secrets(), &NetworkMode::None);
        spec.mounts.extend(g.gw.task_mounts());
        spec.env.extend(a.env().iter().map(|(k, v)| format!("{k}={v}")));
        spec.gated = g.gw.gated();
        spec.cmd = command(ctx, spec.gated);
        return spec;
    }
    let (cfg, task) = (&ctx.cfg, &ctx.task);
    // `{task}` in a passed-through value becomes the task's id: one ANTHROPIC_BASE_URL can
    // then give each task its own path (a scripted model server, a per-task proxy route).
    let secrets: Vec<(String, SecretString)> = cfg
        .credentials
        .iter()
        .map(|(k, v)| {
            let value = v.expose_secret().replace("{task}", &task.id);
            (k.clone(), SecretString::from(value))
        })
        .collect();
    with_credentials(ctx, checkout, secrets, &cfg.network.container())
}

fn with_credentials<E: ContainerEngine>(
    ctx: &Ctx<E>,
    checkout: &Path,
    secrets: Vec<(String, SecretString)>,
    network: &NetworkMode,
) -> ContainerSpec {
    let (cfg, task) = (&ctx.cfg, &ctx.task);
    let mut env: Vec<String> = agent::env::task_env(&cfg.run_id, &task.id)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    env.extend(task.env.iter().map(|(k, v)| format!("{k}={v}")));
    ContainerSpec {
        name: container_name(&cfg.run_id, &task.id),
        image: cfg.image.clone(),
        cmd: command(ctx, false),
        env,
        secrets,
        user: cfg.repo.task_user(),
        labels: cfg.owner.labels(&task.id, "task"),
        workspace: checkout.to_path_buf(),
        mounts: [
            BindMount::read_only(cfg.layout.agents(), format!("{HOME}/.claude/agents")),
            BindMount::read_only(cfg.layout.prompt(&task.id), agent::PROMPT_PATH),
        ]
        .into_iter()
        .chain(
            cfg.repo
                .objects
                .as_ref()
                .map(|o| BindMount::read_only(o, OBJECTS_MOUNT)),
        )
        .chain(ctx.in_place.iter().flat_map(|p| p.mounts.iter().cloned()))
        .chain(super::session::mount(ctx))
        .collect(),
        limits: task.limits,
        runtime: task.runtime.clone(),
        memory_request: Some(task.memory_request_bytes),
        network: network.clone(),
        engine_log: cfg.keep_containers,
        gated: false,
        // Far from sandpen's disk the container collects after its command however it ended:
        // no sandbox can reach what it leaves.
        self_collect: ctx
            .in_place
            .as_ref()
            .filter(|_| !ctx.engine.shares_disk())
            .map(|p| SelfCollect {
                shell: p.collect.clone(),
                deadline: task.timeout,
                disk_limit: task.disk_bytes,
            }),
    }
}

fn command<E: ContainerEngine>(ctx: &Ctx<E>, gated: bool) -> Vec<String> {
    let (cfg, task) = (&ctx.cfg, &ctx.task);
    let then = match ctx.engine.shares_disk() {
        true => ctx.in_place.as_ref().map_or("", |p| p.shell.as_str()),
        false => "",
    };
    let (lines, settings) = (warm::task_shell(), warm::tool_gate());
    let venv = match cfg.warm.as_ref().and_then(|w| w.start_from()) {
        Some(_) => agent::Venv::Warm {
            lines: &lines,
            settings: &settings,
        },
        None => agent::Venv::Uv,
    };
    let cmd = agent::command(
        cfg.max_turns,
        task.timeout + cfg.grace,
        cfg.grace,
        gated,
        venv,
        then,
    );
    match super::session::resume(ctx) {
        Some(r) => agent::resumed(cmd, &r.session_id),
        None => cmd,
    }
}

/// A task's container's name: what the engine shows, and what sandpen names as left behind.
pub fn container_name(run_id: &str, task: &str) -> String {
    crate::engine::spec::task_container_name(run_id, task)
}
