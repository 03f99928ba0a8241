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

/// The lines a task's shell runs first: its own copy of the shared environment in its
/// checkout (where `uv run` finds it, at the path it was made for), unless it has one. The
/// copy's directories are its own and its files are links to the shared ones (`cp -s`): a
/// few hundred kilobytes of links where a whole copy wrote hundreds of megabytes per task
/// (numpy, scipy and pandas: 8 tasks at once spent most of their start copying). What the
/// task installs, removes or compiles lands in its own directories; a write through a link
/// reaches the read-only mount and fails, so the shared environment stays as it was made.
pub fn task_shell() -> String {
    format!(
        "if [ -f {ENV_MOUNT}/{READY} ] && [ ! -e {WORKDIR}/.venv ]; then \
         cp -as {ENV_MOUNT}/.venv {WORKDIR}/.venv || echo 'sandpen: could not copy the warm environment; uv makes one' >&2; fi\n"
    )
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
        assert!(
            s.contains("cp -as /run/sandpen/env/.venv /workspace/.venv"),
            "{s}"
        );
        assert!(s.contains("[ ! -e /workspace/.venv ]"), "its own .venv is kept");
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
