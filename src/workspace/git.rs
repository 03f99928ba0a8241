//! Running git on the host. Every call goes through here so that the options that keep a task
//! from running code on the host (hooks, fsmonitor, signing prompts) are never forgotten.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use super::WorkspaceError;

/// Config that neutralises what a task could have planted in its checkout's git metadata.
pub(crate) const SAFE_CONFIG: [&str; 10] = [
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "safe.directory=*",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "advice.detachedHead=false",
];

/// Tests' git: blocking, with an identity for commits and no hooks; stdout, or a panic with
/// git's words.
#[cfg(test)]
pub fn git_blocking(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@e"])
        .args(SAFE_CONFIG)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `git -C dir args...`; stdout on success, a `Git` error with stderr otherwise.
pub async fn git<I, S>(dir: &Path, args: I) -> Result<String, WorkspaceError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    git_env(dir, args, &[]).await
}

pub async fn git_env<I, S>(dir: &Path, args: I, env: &[(&str, &str)]) -> Result<String, WorkspaceError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
    let out = git_output(dir, &args, env).await?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(failed(dir, &args, &out))
    }
}

/// Runs git as `git_env` does, and returns its output whatever its exit status (for commands
/// whose status is an answer, as `merge-tree`'s 1 for a conflict).
pub async fn git_output<S: AsRef<OsStr>>(
    dir: &Path,
    args: &[S],
    env: &[(&str, &str)],
) -> Result<std::process::Output, WorkspaceError> {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir).args(SAFE_CONFIG).args(args);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Never open an editor or ask for credentials: sandpen runs unattended.
    cmd.env("GIT_TERMINAL_PROMPT", "0").env("GIT_EDITOR", "true");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.map_err(|e| WorkspaceError::Git {
        context: format!("running git in {}", dir.display()),
        reason: format!("{e} (is git installed?)"),
    })
}

/// The error for a git command that failed: the command, where, and what git said.
pub fn failed<S: AsRef<OsStr>>(dir: &Path, args: &[S], out: &std::process::Output) -> WorkspaceError {
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    WorkspaceError::Git {
        context: format!("git {} (in {})", shown.join(" "), dir.display()),
        reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    }
}

/// The oldest git sandpen's merges work with: `merge-tree --write-tree` (2.38) with
/// `--attr-source` (2.42), used by `diff`, `merge` and tasks with several dependencies.
pub const GIT_MIN: (u32, u32) = (2, 42);

/// The host's git version (`git --version`): its text and (major, minor); None when git
/// cannot be run.
pub async fn git_version() -> Option<(String, (u32, u32))> {
    let out = git(Path::new("/"), ["--version"]).await.ok()?;
    let text = out.trim().trim_start_matches("git version ").to_string();
    let mut parts = text.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((text, (major, minor)))
}
