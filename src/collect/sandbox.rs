//! The collection sandbox: a short-lived container of the task's own image, as the task's
//! user, with no network, no credentials, the task's limits and a time limit, running
//! `sandbox.sh` over the checkout. It is the only place git reads the task's settings.

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::{CollectError, Job};
use crate::engine::spec::{BindMount, ContainerSpec, HOME};
use crate::engine::{ContainerEngine, EngineError, Stream, short};
use crate::workspace::{OBJECTS_MOUNT, WorkspaceError};

/// The sandbox's script (POSIX sh, run by the image's `sh`).
pub(super) const SCRIPT: &str = include_str!("sandbox.sh");
/// Where the sandbox writes the bundle.
pub(super) const OUT: &str = "/sandpen-out";
/// The whole sandbox, from create to remove.
pub const TIME_LIMIT: Duration = Duration::from_secs(300);
/// What the host keeps of the sandbox's output (for its messages and hints).
const OUTPUT_LIMIT: usize = 256 * 1024;

/// A fresh directory the sandbox's user can write (and nothing else of the run), holding the
/// checkout's refs as sandpen made it.
pub(super) fn prepare_out_dir(dir: &Path, job: &Job, start_refs: &str) -> Result<(), CollectError> {
    let io = |what: &str, e| WorkspaceError::io(format!("{what} {}", dir.display()), e);
    // Whatever the task left there goes, directories it made unwritable too (its owner is the
    // task's user, which may be sandpen's own): it is no one's work, and it counted towards
    // the task's disk limit only while the task ran.
    if std::fs::symlink_metadata(dir).is_ok() {
        crate::workspace::remove_tree(dir).map_err(|e| io("clearing", e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| io("creating", e))?;
    std::fs::write(dir.join("start-refs"), start_refs).map_err(|e| io("writing start-refs in", e))?;
    if job.handed {
        crate::workspace::chown_tree(dir, job.user).map_err(|e| io("handing over", e))?;
    }
    Ok(())
}

/// What the sandbox said it did: hints only; the host checks whatever it relies on.
#[derive(Debug, Default)]
pub(super) struct Hints {
    pub head: Option<String>,
    /// The branch HEAD was on; None for a detached HEAD.
    pub head_branch: Option<String>,
    pub bundle: bool,
    pub salvaged: bool,
    pub left_out: Vec<String>,
    pub left_out_large: Vec<super::LargeFile>,
    /// Branches the task created or moved: (commit, name).
    pub branches: Vec<(String, String)>,
    /// More branches than the sandbox brings back.
    pub branches_over: Option<u32>,
    pub tags: Vec<(String, String)>,
    /// Refs of the bundle holding commits no branch reaches: (n, commit).
    pub unreachable: Vec<(u32, String)>,
    pub unreachable_commits: u32,
    pub nested_files: Vec<String>,
    /// Nested repositories left as they were: (path, why).
    pub nested_kept: Vec<(String, String)>,
}

/// The most of each list the host takes from the sandbox.
const LIST_LIMIT: usize = 1000;

fn push<T>(list: &mut Vec<T>, item: Option<T>) {
    if let Some(item) = item
        && list.len() < LIST_LIMIT
    {
        list.push(item);
    }
}

impl Hints {
    pub fn parse(stdout: &str) -> Self {
        let mut h = Self::default();
        let pair = |v: &str| v.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string()));
        for line in stdout.lines() {
            let Some(rest) = line.strip_prefix("sandpen-collect: ") else {
                continue;
            };
            let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
            match key {
                "head" => h.head = Some(value.trim().to_string()),
                "head-branch" => h.head_branch = Some(value.to_string()),
                "bundle" => h.bundle = true,
                "salvaged" => h.salvaged = true,
                "left-out" => push(&mut h.left_out, Some(value.to_string())),
                "left-out-large" => push(
                    &mut h.left_out_large,
                    value.split_once('\t').and_then(|(n, p)| {
                        Some(super::LargeFile {
                            path: p.to_string(),
                            bytes: n.parse().ok()?,
                        })
                    }),
                ),
                "branch" => push(&mut h.branches, pair(value)),
                "branches-over" => h.branches_over = value.trim().parse().ok(),
                "tag" => push(&mut h.tags, pair(value)),
                "unreachable" => push(
                    &mut h.unreachable,
                    pair(value).and_then(|(n, oid)| Some((n.parse().ok()?, oid))),
                ),
                "unreachable-commits" => h.unreachable_commits = value.trim().parse().unwrap_or(0),
                "nested-files" => push(&mut h.nested_files, Some(value.to_string())),
                "nested-kept" => push(
                    &mut h.nested_kept,
                    value
                        .split_once('\t')
                        .map(|(p, why)| (p.to_string(), why.to_string())),
                ),
                _ => {}
            }
        }
        h
    }
}

/// The script's arguments: the base, the task, the run, when the checkout was made, and the
/// salvage's bounds.
pub(super) fn script_args(job: &Job<'_>, since: u64) -> Vec<String> {
    vec![
        job.base.to_string(),
        job.task.to_string(),
        job.run_id().to_string(),
        since.to_string(),
        job.salvage.file_bytes.to_string(),
        job.salvage.total_bytes.to_string(),
    ]
}

/// The script's whole environment: neither the image's nor any global git config, only the
/// task's own, and a fixed identity for the salvage commit.
pub(super) fn env() -> Vec<String> {
    vec![
        format!("HOME={HOME}"),
        "GIT_CONFIG_NOSYSTEM=1".into(),
        "GIT_CONFIG_GLOBAL=/dev/null".into(),
        "GIT_TERMINAL_PROMPT=0".into(),
        "GIT_AUTHOR_NAME=sandpen".into(),
        "GIT_AUTHOR_EMAIL=sandpen@localhost".into(),
        "GIT_COMMITTER_NAME=sandpen".into(),
        "GIT_COMMITTER_EMAIL=sandpen@localhost".into(),
        "LC_ALL=C".into(),
    ]
}

pub(super) async fn run_sandbox<E: ContainerEngine>(
    engine: &E,
    job: &Job<'_>,
    out_dir: &Path,
    since: u64,
) -> Result<Hints, CollectError> {
    let spec = ContainerSpec {
        name: format!("sandpen-{}-{}-collect", job.run_id(), job.task),
        image: job.image.to_string(),
        cmd: ["sh", "-c", SCRIPT, "sandpen-collect"]
            .map(String::from)
            .into_iter()
            .chain(script_args(job, since))
            .collect(),
        env: env(),
        secrets: Vec::new(),
        user: job.user,
        labels: job.owner.labels(job.task, "collect"),
        workspace: job.run.checkout(job.task),
        mounts: [BindMount {
            source: out_dir.to_path_buf(),
            target: OUT.into(),
            read_only: false,
        }]
        .into_iter()
        .chain(
            job.repo
                .objects
                .as_ref()
                .map(|o| BindMount::read_only(o, OBJECTS_MOUNT)),
        )
        .collect(),
        limits: job.limits,
        network: crate::engine::NetworkMode::None,
        engine_log: false,
        gated: false,
        self_collect: None,
        // The task's own runtime: what the task planted runs behind the same wall.
        runtime: job.runtime.map(str::to_string),
        memory_request: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_are_read_from_marked_lines_only() {
        let h = Hints::parse(
            "noise\nsandpen-collect: salvaged yes\nsandpen-collect: left-out .env\n\
             sandpen-collect: head abc\nsandpen-collect: bundle result.bundle\n\
             sandpen-collect: head-branch feature/x\nsandpen-collect: branch def feature/x\n\
             sandpen-collect: tag 123 v1\nsandpen-collect: unreachable 2 fed\n\
             sandpen-collect: unreachable-commits 3\nsandpen-collect: nested-files sub\n\
             sandpen-collect: nested-kept lib\ta submodule\nsandpen-collect: branch nospace\n",
        );
        assert!(h.salvaged && h.bundle);
        assert_eq!(h.head.as_deref(), Some("abc"));
        assert_eq!(h.head_branch.as_deref(), Some("feature/x"));
        assert_eq!(h.left_out, [".env"]);
        assert_eq!(h.branches, [("def".to_string(), "feature/x".to_string())]);
        assert_eq!(h.tags, [("123".to_string(), "v1".to_string())]);
        assert_eq!(h.unreachable, [(2, "fed".to_string())]);
        assert_eq!(h.unreachable_commits, 3);
        assert_eq!(h.nested_files, ["sub"]);
        assert_eq!(h.nested_kept, [("lib".to_string(), "a submodule".to_string())]);
        assert!(!Hints::parse("sandpen-collect:bundle").bundle);
    }

    #[test]
    fn the_script_finds_the_borrowed_objects_where_containers_see_them() {
        assert!(SCRIPT.contains(&format!("\nborrowed={OBJECTS_MOUNT}\n")));
    }

    #[test]
    fn lists_are_bounded() {
        let many: String = (0..5000)
            .map(|i| format!("sandpen-collect: branch {i} b{i}\n"))
            .collect();
        assert_eq!(Hints::parse(&many).branches.len(), LIST_LIMIT);
    }
}
