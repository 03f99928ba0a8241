//! The shell lines of the environment, in the preparation and in each task.

use super::ENV_MOUNT;
use crate::engine::spec::WORKDIR;

/// Where the preparation's container has the environment's volume: a directory every
/// Debian-based image has, world-writable (1777), which the engine copies to a new volume's
/// top (so the preparation's user, never root, may write it).
pub const PREP_MOUNT: &str = "/var/tmp";
/// The mark the preparation leaves last: without it, the volume is not ready.
pub const READY: &str = ".sandpen-ready";
/// A task's package cache: on the disk of its checkout (counted in its disk use, never a
/// tmpfs in its memory), inside its `.venv`, which uv keeps out of git.
pub const CACHE_DIR: &str = "/workspace/.venv/.uv-cache";

/// The mark a task's own environment is ready at (in its container's /tmp): its tools wait
/// for it ([`tool_gate`]).
pub const TASK_READY: &str = "/tmp/.sandpen-env-ready";

/// The lines a task's shell runs before the CLI (after the gateway's gate, so they have its
/// proxy). In the background: wait for the shared environment (the task may start while it is
/// being prepared), make the task's own copy of it in its checkout (where uv finds it, at the
/// path it was made for) unless it has one, sync the project into it as `uv run` would (the
/// project itself, a lock changed since), then the mark. Meanwhile the CLI starts in that
/// environment (`VIRTUAL_ENV`, `PATH`) and sends its first request; its first tool waits for
/// the mark. The copy's directories are its own and its files are links to the shared ones
/// (`cp -s`): a few hundred kilobytes of links where a whole copy wrote hundreds of megabytes
/// per task. What the task installs, removes or compiles lands in its own directories; a write
/// through a link reaches the read-only mount and fails, so the shared environment stays as it
/// was made. The job writes to stderr: stdout is the CLI's stream.
pub fn task_shell() -> String {
    format!(
        "( until [ -f {ENV_MOUNT}/{READY} ]; do sleep 0.1; done\n\
         if [ ! -e {WORKDIR}/.venv ]; then cp -as {ENV_MOUNT}/.venv {WORKDIR}/.venv || echo 'sandpen: could not copy the warm environment; uv makes one' >&2; fi\n\
         uv sync --inexact --quiet || echo 'sandpen: uv sync in the task failed; its tools run in the environment as it is' >&2\n\
         : > {TASK_READY} ) >&2 &\n\
         export VIRTUAL_ENV={WORKDIR}/.venv PATH={WORKDIR}/.venv/bin:$PATH\n"
    )
}

/// The CLI's settings (`--settings`) that hold each tool call until the task's environment is
/// ready: a `PreToolUse` hook on every tool. The model's first turn runs meanwhile. The hook
/// is a convenience, never a wall: a task that removes it only runs its tools early, in its
/// own checkout.
pub fn tool_gate() -> String {
    let wait = format!("until [ -e {TASK_READY} ]; do sleep 0.1; done");
    serde_json::json!({
        "hooks": {"PreToolUse": [{"matcher": "*", "hooks": [
            // A day: as long as a preparation may take, and longer than any task's first turn.
            {"type": "command", "command": wait, "timeout": 86400}
        ]}]}
    })
    .to_string()
}

/// Held by the preparation that makes the environment: two runs on the same lock at once
/// share its volume, and the second waits for the first, then finds the environment ready.
pub const LOCK: &str = ".sandpen-lock";

/// The preparation's script: nothing to do when the volume is ready; else, holding the
/// volume's lock, `uv sync` (frozen with a lock) into the workspace's `.venv`, copied into the
/// volume, then the mark.
pub fn prepare_shell(frozen: bool) -> String {
    let frozen = if frozen { " --frozen" } else { "" };
    format!(
        "set -e\n\
         if [ -f {PREP_MOUNT}/{READY} ]; then echo 'sandpen: the environment is ready'; exit 0; fi\n\
         [ -w {PREP_MOUNT} ] || {{ echo 'sandpen: the environment volume is not writable by the task user (does the image have a world-writable {PREP_MOUNT}?)' >&2; exit 3; }}\n\
         exec 9> {PREP_MOUNT}/{LOCK}\n\
         if command -v flock > /dev/null 2>&1; then flock 9; fi\n\
         if [ -f {PREP_MOUNT}/{READY} ]; then echo 'sandpen: the environment is ready'; exit 0; fi\n\
         uv sync{frozen} --no-install-project\n\
         rm -rf {PREP_MOUNT}/.venv\n\
         cp -a {WORKDIR}/.venv {PREP_MOUNT}/.venv\n\
         touch {PREP_MOUNT}/{READY}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_copies_the_ready_environment_into_its_checkout_and_never_writes_it() {
        let s = task_shell();
        let (waited, copied) = (
            s.find("until [ -f /run/sandpen/env/.sandpen-ready ]").unwrap(),
            s.find("cp -as /run/sandpen/env/.venv /workspace/.venv").unwrap(),
        );
        let marked = s.find(&format!(": > {TASK_READY}")).unwrap();
        assert!(waited < copied && copied < marked, "{s}");
        assert!(
            s.contains(") >&2 &"),
            "in the background, never on the CLI's stdout: {s}"
        );
        assert!(s.contains("[ ! -e /workspace/.venv ]"), "its own .venv is kept");
        assert!(s.contains("export VIRTUAL_ENV=/workspace/.venv PATH=/workspace/.venv/bin:$PATH"));
        let gate: serde_json::Value = serde_json::from_str(&tool_gate()).unwrap();
        let hook = &gate["hooks"]["PreToolUse"][0];
        assert_eq!(hook["matcher"], "*");
        assert!(hook["hooks"][0]["command"].as_str().unwrap().contains(TASK_READY));
        assert!(
            CACHE_DIR.starts_with("/workspace/.venv/"),
            "on disk, ignored by git"
        );
        assert!(prepare_shell(true).contains("uv sync --frozen --no-install-project"));
        let p = prepare_shell(true);
        let (locked, synced) = (p.find("flock 9").unwrap(), p.find("uv sync").unwrap());
        assert!(
            locked < synced && p[locked..synced].contains(READY),
            "ready looked at again once locked"
        );
        assert!(prepare_shell(false).contains("uv sync --no-install-project"));
    }
}
