//! Bringing a task's work back, once its container is gone. Everything that reads the task's
//! working tree or its repository's config (status, add, the salvage commit, the export) runs
//! in the collection sandbox: a short-lived container of the task's own image, as the task's
//! user, with no network, no credentials, the task's limits and a time limit. The sandbox
//! writes a git bundle; the host copies it (a regular file, read without following links and
//! with a bound) and fetches the bundle's one `HEAD` ref into the user's repository as
//! `sandpen/<task>/<run>`. Host-side git never runs in a task-controlled tree.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;

use crate::engine::spec::{BindMount, ContainerSpec, HOME, Limits, Owner};
use crate::engine::{ContainerEngine, EngineError, Stream, short};
use crate::workspace::{Repo, RunDir, WorkspaceError};

/// The sandbox's script (POSIX sh, run by the image's `sh`).
const SCRIPT: &str = include_str!("sandbox.sh");
/// Where the sandbox writes the bundle.
const OUT: &str = "/sandpen-out";
/// The whole sandbox, from create to remove.
pub const TIME_LIMIT: Duration = Duration::from_secs(300);
/// What the host keeps of the sandbox's output (for its messages and hints).
const OUTPUT_LIMIT: usize = 64 * 1024;
/// The largest bundle the host accepts.
const BUNDLE_LIMIT: u64 = 16 << 30;

/// What came back from a task's checkout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Collected {
    /// The branch in the user's repository holding the task's work; None when there was none.
    pub branch: Option<String>,
    pub head: Option<String>,
    /// Commits on the branch beyond the base, the salvage commit included.
    pub commits: u32,
    /// Whether uncommitted work was saved as a commit.
    pub salvaged: bool,
    /// Uncommitted paths kept out of the salvage because they look like credentials (they
    /// stay in the checkout).
    pub left_out: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("the collection sandbox: {0}")]
    Engine(#[from] EngineError),
    #[error("the collection sandbox exited with code {code}: {output}")]
    Sandbox { code: i64, output: String },
    #[error("the collection sandbox did not finish within {}s", TIME_LIMIT.as_secs())]
    TimedOut,
    #[error("the result bundle: {0}")]
    Bundle(String),
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
}

/// One task to collect: all plain data, so `gc` can collect a run whose sandpen died.
pub struct Job<'a> {
    pub repo: &'a Repo,
    pub run: &'a RunDir,
    pub owner: &'a Owner,
    pub task: &'a str,
    pub base: &'a str,
    pub image: &'a str,
    /// The task's uid:gid, and whether its checkout was handed to it (and must come back).
    pub user: (u32, u32),
    pub handed: bool,
    pub limits: Limits,
}

/// Runs the sandbox, brings the result into the user's repository, hands the checkout back.
pub async fn collect<E: ContainerEngine>(engine: &E, job: &Job<'_>) -> Result<Collected, CollectError> {
    let out_dir = job.run.collect_out(job.task);
    prepare_out_dir(&out_dir, job)?;
    let hints = run_sandbox(engine, job, &out_dir).await;
    // Whatever the sandbox did, the files go back to their owner.
    crate::workspace::hand_back(&job.run.checkout(job.task), job.handed, job.repo.owner).await?;
    crate::workspace::hand_back(&out_dir, job.handed, job.repo.owner).await?;
    let hints = hints?;

    let branch = format!("sandpen/{}/{}", job.task, job.run_id());
    let head = if hints.bundle {
        let copy = job.run.bundle_copy(job.task);
        copy_regular_file(&out_dir.join("result.bundle"), &copy, BUNDLE_LIMIT)?;
        let head = job.repo.fetch_bundle(&copy, &branch).await?;
        // sandpen's own copy; the commits are on the branch now.
        let _ = std::fs::remove_file(&copy);
        let _ = std::fs::remove_file(out_dir.join("result.bundle"));
        Some(head)
    } else {
        match &hints.head {
            Some(h) if h != job.base => {
                job.repo.point_branch(&branch, h).await?;
                Some(h.clone())
            }
            _ => None,
        }
    };
    let Some(head) = head else {
        return Ok(Collected {
            head: hints.head,
            left_out: hints.left_out,
            ..Default::default()
        });
    };
    Ok(Collected {
        commits: job.repo.count_commits(job.base, &head).await?,
        salvaged: hints.salvaged && job.repo.is_salvage(&head).await?,
        branch: Some(branch),
        head: Some(head),
        left_out: hints.left_out,
    })
}

impl Job<'_> {
    fn run_id(&self) -> &str {
        &self.owner.run_id
    }
}

/// A fresh, empty directory the sandbox's user can write (and nothing else of the run).
fn prepare_out_dir(dir: &Path, job: &Job) -> Result<(), CollectError> {
    let io = |what: &str, e| WorkspaceError::io(format!("{what} {}", dir.display()), e);
    if std::fs::symlink_metadata(dir).is_ok() {
        std::fs::remove_dir_all(dir).map_err(|e| io("clearing", e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| io("creating", e))?;
    if job.handed {
        crate::workspace::chown_tree(dir, job.user).map_err(|e| io("handing over", e))?;
    }
    Ok(())
}

/// What the sandbox said it did: hints only; the host checks whatever it relies on.
#[derive(Debug, Default)]
struct Hints {
    head: Option<String>,
    bundle: bool,
    salvaged: bool,
    left_out: Vec<String>,
}

impl Hints {
    fn parse(stdout: &str) -> Self {
        let mut h = Self::default();
        for line in stdout.lines() {
            let Some(rest) = line.strip_prefix("sandpen-collect: ") else {
                continue;
            };
            let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
            match key {
                "head" => h.head = Some(value.trim().to_string()),
                "bundle" => h.bundle = true,
                "salvaged" => h.salvaged = true,
                "left-out" if h.left_out.len() < 100 => h.left_out.push(value.to_string()),
                _ => {}
            }
        }
        h
    }
}

async fn run_sandbox<E: ContainerEngine>(
    engine: &E,
    job: &Job<'_>,
    out_dir: &Path,
) -> Result<Hints, CollectError> {
    let spec = ContainerSpec {
        name: format!("sandpen-{}-{}-collect", job.run_id(), job.task),
        image: job.image.to_string(),
        cmd: [
            "sh",
            "-c",
            SCRIPT,
            "sandpen-collect",
            job.base,
            job.task,
            job.run_id(),
        ]
        .map(String::from)
        .to_vec(),
        env: [
            format!("HOME={HOME}"),
            // Neither the image's nor any global git config: only the task's own, in here.
            "GIT_CONFIG_NOSYSTEM=1".into(),
            "GIT_CONFIG_GLOBAL=/dev/null".into(),
            "GIT_TERMINAL_PROMPT=0".into(),
            "GIT_AUTHOR_NAME=sandpen".into(),
            "GIT_AUTHOR_EMAIL=sandpen@localhost".into(),
            "GIT_COMMITTER_NAME=sandpen".into(),
            "GIT_COMMITTER_EMAIL=sandpen@localhost".into(),
            "LC_ALL=C".into(),
        ]
        .to_vec(),
        secrets: Vec::new(),
        user: job.user,
        labels: job.owner.labels(job.task, "collect"),
        workspace: job.run.checkout(job.task),
        mounts: vec![BindMount {
            source: out_dir.to_path_buf(),
            target: OUT.into(),
            read_only: false,
        }],
        limits: job.limits,
        network: "none".into(),
        engine_log: false,
    };
    let deadline = Instant::now() + TIME_LIMIT;
    let id = engine.create(&spec).await?;
    let ran = tokio::time::timeout_at(deadline.into(), async {
        let mut output = engine.attach(&id).await?;
        engine.start(&id).await?;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Some(chunk) = output.next().await {
            let Ok((stream, bytes)) = chunk else { break };
            let buf = if stream == Stream::Stdout {
                &mut stdout
            } else {
                &mut stderr
            };
            let room = OUTPUT_LIMIT.saturating_sub(buf.len());
            buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        let code = engine.wait(&id).await?;
        Ok::<_, EngineError>((code, stdout, stderr))
    })
    .await;
    let removed = EngineError::limited(
        format!("removing the collection sandbox {}", short(&id)),
        crate::engine::CALL_TIMEOUT,
        engine.remove(&id),
    )
    .await;
    let (code, stdout, stderr) = match ran {
        Err(_) => return Err(CollectError::TimedOut),
        Ok(r) => r?,
    };
    // Files are only trusted once nothing of the task's uid runs any more.
    removed?;
    if code != 0 {
        let text = String::from_utf8_lossy(&stderr);
        let tail: String = text
            .trim()
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("; ");
        return Err(CollectError::Sandbox { code, output: tail });
    }
    Ok(Hints::parse(&String::from_utf8_lossy(&stdout)))
}

/// Copies `from` to `to` if it is a regular file (not a symlink, FIFO or device) of at most
/// `limit` bytes; opening never blocks and never follows a link.
fn copy_regular_file(from: &Path, to: &Path, limit: u64) -> Result<(), CollectError> {
    let bad = |why: String| CollectError::Bundle(format!("{}: {why}", from.display()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(from)
        .map_err(|e| bad(e.to_string()))?;
    let meta = file.metadata().map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    if meta.len() > limit {
        return Err(bad(format!("larger than {limit} bytes")));
    }
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| bad(e.to_string()))?;
    }
    let mut dest = std::fs::File::create(to).map_err(|e| bad(e.to_string()))?;
    std::io::copy(&mut file.take(limit), &mut dest).map_err(|e| bad(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_are_read_from_marked_lines_only() {
        let h = Hints::parse(
            "noise\nsandpen-collect: salvaged yes\nsandpen-collect: left-out .env\n\
             sandpen-collect: head abc\nsandpen-collect: bundle result.bundle\n",
        );
        assert!(h.salvaged && h.bundle);
        assert_eq!(h.head.as_deref(), Some("abc"));
        assert_eq!(h.left_out, [".env"]);
        assert!(!Hints::parse("sandpen-collect:bundle").bundle);
    }

    #[test]
    fn only_regular_files_are_copied_and_never_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("b"), dir.path().join("copy/b"));
        std::fs::write(&src, b"bundle").unwrap();
        copy_regular_file(&src, &dst, 100).unwrap();
        assert_eq!(std::fs::read(&dst).unwrap(), b"bundle");
        assert!(copy_regular_file(&src, &dst, 3).is_err(), "over the bound");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&src, &link).unwrap();
        assert!(copy_regular_file(&link, &dst, 100).is_err(), "a symlink");
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let t = Instant::now();
        assert!(copy_regular_file(&fifo, &dst, 100).is_err(), "a FIFO");
        assert!(t.elapsed() < Duration::from_secs(1), "without blocking");
    }
}
