//! The task's agent session across its attempts (`agent::session`): its directory, mounted
//! into the container; the session an attempt resumes; the transcript scrubbed of the
//! container's credentials once the container is gone. Only on an engine that shares sandpen's
//! disk: elsewhere a directory of the run cannot be mounted.

use secrecy::ExposeSecret;

use super::Ctx;
use crate::agent::session::{self, Resume, SessionUse};
use crate::engine::ContainerEngine;
use crate::engine::spec::BindMount;
use crate::monitor::AgentProgress;

fn kept<E: ContainerEngine>(ctx: &Ctx<E>) -> bool {
    ctx.engine.shares_disk()
}

/// Makes the session directory (an earlier attempt's is kept), the task user's when the
/// checkout was handed to it.
pub(super) fn prepare<E: ContainerEngine>(ctx: &Ctx<E>, owner: Option<(u32, u32)>) -> Result<(), String> {
    if !kept(ctx) {
        return Ok(());
    }
    let dir = ctx.cfg.layout.session(&ctx.task.id);
    session::prepare(&dir, owner)
        .map_err(|e| format!("preparing the agent's session directory {}: {e}", dir.display()))
}

/// The session this attempt resumes (a rerun's choice), if any.
pub(super) fn resume<E: ContainerEngine>(ctx: &Ctx<E>) -> Option<&Resume> {
    let r = ctx.cfg.earlier.resume.get(&ctx.task.id)?;
    kept(ctx).then_some(r)
}

/// The directory's mount: writable, at the CLI's projects folder.
pub(super) fn mount<E: ContainerEngine>(ctx: &Ctx<E>) -> Option<BindMount> {
    kept(ctx).then(|| BindMount {
        source: ctx.cfg.layout.session(&ctx.task.id),
        target: session::mount_target(),
        read_only: false,
        volume: false,
    })
}

/// What the report says of the attempt's session: the id the CLI announced (a plain one only:
/// the task writes its own output), and the one it resumed.
pub(super) fn used<E: ContainerEngine>(ctx: &Ctx<E>, progress: &AgentProgress) -> Option<SessionUse> {
    let id = progress
        .init
        .as_ref()
        .map(|i| i.session_id.clone())
        .filter(|id| session::valid_id(id));
    let resumed_from = resume(ctx).map(|r| r.session_id.clone());
    (id.is_some() || resumed_from.is_some()).then_some(SessionUse { id, resumed_from })
}

/// Scrubs every credential the container had from the kept transcripts; run only once the
/// engine confirmed the container gone.
pub(super) async fn scrub<E: ContainerEngine>(ctx: &Ctx<E>) {
    if !kept(ctx) {
        return;
    }
    let task = &ctx.task.id;
    let mut secrets: Vec<String> = ctx
        .cfg
        .credentials
        .iter()
        .map(|(_, v)| v.expose_secret().replace("{task}", task))
        .collect();
    if let Some(a) = &ctx.admission {
        secrets.extend(a.secrets().iter().map(|(_, v)| v.expose_secret().to_string()));
    }
    let dir = ctx.cfg.layout.session(task);
    let done = tokio::task::spawn_blocking(move || session::scrub(&dir, &secrets)).await;
    match done {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::info!(task = %task, "scrubbed credentials from {n} session file(s)"),
        Ok(Err(e)) => tracing::warn!(task = %task, "scrubbing the agent's session: {e}"),
        Err(e) => tracing::warn!(task = %task, "scrubbing the agent's session: {e}"),
    }
}
