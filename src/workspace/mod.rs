//! git on the host: the user's repository, each task's self-contained checkout, and the result
//! branch that comes back. Nothing here deletes work: checkouts stay on disk, uncommitted
//! changes are committed (marked as salvaged), earlier result branches are kept.

mod checkout;
mod git;
pub(crate) use git::SAFE_CONFIG as SAFE_GIT_CONFIG;
mod home;
mod index_stat;
mod inert;
mod layout;
mod merge;
mod objects;
mod owner;
mod remove;
mod result;
mod results;
mod take_in;

pub use checkout::{Checkout, hand_back, task_branch};
pub use git::{GIT_MIN, git_output, git_version};
pub use home::RunsHome;
pub use inert::{GIT_ASIDE, HEAD_ASIDE, Inert, make_inert, revive};
pub use layout::RunDir;
pub use merge::Merged;
pub use objects::OBJECTS_MOUNT;
pub use owner::{chown_tree, owner_of};
pub use remove::{disk_usage, disk_usage_all, remove_tree};
pub use results::{CommitLine, DiffStat, FileChange, printable};
pub use take_in::{TakeIn, Taken};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::exit::{self, HasExitCode};

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("{} is not inside a git repository: {reason}\nfix: run sandpen inside a git repository or pass --repo DIR", path.display())]
    NotARepo { path: PathBuf, reason: String },

    #[error("--base {base} does not name a commit in {}: {reason}\nfix: pass an existing branch, tag or commit (default HEAD)", repo.display())]
    BaseNotFound {
        base: String,
        repo: PathBuf,
        reason: String,
    },

    #[error("{} has no commits yet, so there is nothing for a task to start from\nfix: make a first commit (`git commit`), then run sandpen again", repo.display())]
    NoCommits { repo: PathBuf },

    #[error("cannot make the run directory {}: {reason}\nfix: {fix}", path.display())]
    RunDir {
        path: PathBuf,
        reason: String,
        fix: String,
    },

    #[error("{context}: {reason}")]
    Git { context: String, reason: String },

    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

impl WorkspaceError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

impl HasExitCode for WorkspaceError {
    fn exit_code(&self) -> i32 {
        match self {
            Self::NotARepo { .. }
            | Self::BaseNotFound { .. }
            | Self::NoCommits { .. }
            | Self::RunDir { .. } => exit::INVALID_INPUT,
            _ => exit::FAILURE,
        }
    }
}

/// The user's repository.
#[derive(Debug, Clone)]
pub struct Repo {
    pub root: PathBuf,
    /// uid and gid owning the repository's top directory.
    pub owner: (u32, u32),
    /// The object store checkouts borrow (read-only, through alternates); None when they
    /// get a full copy (`objects::shareable`).
    pub objects: Option<PathBuf>,
    /// The user's current branch and its commit, given to borrowing checkouts as a clone
    /// would have had it (`objects::Borrowed::head`).
    pub head_branch: Option<(String, String)>,
    /// Where the repository's runs are.
    pub runs: RunsHome,
    /// Serialises writes to the user's repository (refs, objects) from parallel tasks.
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Repo {
    /// A file as committed at `rev`, if it is there and no larger than `limit` (its size is
    /// asked first: a task may have written it). Read as a blob: no filter or textconv runs.
    pub async fn small_file_at(&self, rev: &str, path: &Path, limit: u64) -> Option<String> {
        let object = format!("{rev}:{}", path.display());
        let size = git::git(&self.root, ["cat-file", "-s", &object]).await.ok()?;
        if size.trim().parse::<u64>().ok()? > limit {
            return None;
        }
        git::git(&self.root, ["cat-file", "blob", &object]).await.ok()
    }

    /// The repository around `dir` (or the working directory).
    pub async fn discover(dir: Option<&Path>) -> Result<Self, WorkspaceError> {
        let start = match dir {
            Some(d) => d.to_path_buf(),
            None => {
                std::env::current_dir().map_err(|e| WorkspaceError::io("reading the working directory", e))?
            }
        };
        if !start.is_dir() {
            return Err(WorkspaceError::NotARepo {
                path: start,
                reason: "no such directory".into(),
            });
        }
        // Its top directory, and the git directory its worktrees share (where the runs live).
        let out = git::git(&start, ["rev-parse", "--show-toplevel", "--git-common-dir"])
            .await
            .map_err(|e| WorkspaceError::NotARepo {
                path: start.clone(),
                reason: reason_of(e),
            })?;
        let mut lines = out.lines();
        let root = PathBuf::from(lines.next().unwrap_or_default().trim());
        // Relative to `start` when git gives it relative; one spelling for every command.
        let common = start.join(lines.next().unwrap_or_default().trim());
        let common = std::fs::canonicalize(&common).unwrap_or(common);
        let runs = RunsHome::new(&common, &root);
        let owner = owner::owner_of(&root)
            .map_err(|e| WorkspaceError::io(format!("reading {}", root.display()), e))?;
        let mut repo = Self {
            root,
            owner,
            objects: None,
            head_branch: None,
            runs,
            lock: Arc::default(),
        };
        let borrowed = objects::shareable(&repo.root, repo.task_user() == owner).await;
        repo.head_branch = borrowed.as_ref().and_then(|b| b.head.clone());
        repo.objects = borrowed.map(|b| b.objects);
        Ok(repo)
    }

    /// The commit `rev` names.
    pub async fn resolve(&self, rev: &str) -> Result<String, WorkspaceError> {
        let spec = format!("{rev}^{{commit}}");
        let resolved = git::git(
            &self.root,
            ["rev-parse", "--verify", "--quiet", "--end-of-options", &spec],
        )
        .await
        .map(|s| s.trim().to_string());
        let Err(e) = resolved else { return resolved };
        // `--quiet` makes git say nothing: the reason is ours to give.
        let reason = reason_of(e);
        let no_commits = git::git(&self.root, ["rev-list", "-n", "1", "--all"]).await;
        if reason.trim().is_empty() && no_commits.is_ok_and(|s| s.trim().is_empty()) {
            return Err(WorkspaceError::NoCommits {
                repo: self.root.clone(),
            });
        }
        Err(WorkspaceError::BaseNotFound {
            base: rev.into(),
            repo: self.root.clone(),
            reason: match reason.trim() {
                "" => "no branch, tag or commit of that name".into(),
                said => said.into(),
            },
        })
    }

    /// The directory of a new run (`RunsHome`), created with sandpen's own `_sandpen/`.
    pub async fn run_dir(&self, run_id: &str) -> Result<RunDir, WorkspaceError> {
        let root = self
            .runs
            .create_run(run_id)
            .map_err(|e| run_dir_error(&self.runs.dir().join(run_id), e))?;
        let dir = RunDir::new(root);
        std::fs::create_dir(dir.internal()).map_err(|e| run_dir_error(&dir.internal(), e))?;
        Ok(dir)
    }

    /// The uid:gid tasks run as: the repository's owner, or an unprivileged user when root
    /// owns it (as on CI machines). Never root.
    pub fn task_user(&self) -> (u32, u32) {
        match self.owner {
            (0, _) | (_, 0) => owner::UNPRIVILEGED,
            ids => ids,
        }
    }
}

/// Makes `dir` a new repository (branch `main`) with everything in it as the first commit,
/// authored by sandpen: the demo's sample repository.
pub async fn init_repo(dir: &Path, message: &str) -> Result<(), WorkspaceError> {
    let who = [
        ("GIT_AUTHOR_NAME", "sandpen demo"),
        ("GIT_AUTHOR_EMAIL", "demo@sandpen.invalid"),
        ("GIT_COMMITTER_NAME", "sandpen demo"),
        ("GIT_COMMITTER_EMAIL", "demo@sandpen.invalid"),
    ];
    git::git(dir, ["init", "-q", "-b", "main"]).await?;
    git::git(dir, ["add", "-A"]).await?;
    git::git_env(dir, ["commit", "-q", "--no-verify", "-m", message], &who).await?;
    Ok(())
}

fn reason_of(e: WorkspaceError) -> String {
    match e {
        WorkspaceError::Git { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// Why a run directory cannot be made, and what to move or change: the first part of its path
/// that is in the way, or the deepest one that exists.
fn run_dir_error(path: &Path, e: std::io::Error) -> WorkspaceError {
    // Not following links: a link where a directory should be is in the way too.
    let existing = path.ancestors().skip(1).find(|a| a.symlink_metadata().is_ok());
    let fix = match existing {
        Some(a) if !a.symlink_metadata().is_ok_and(|m| m.is_dir()) => format!(
            "{} is a file or a link where sandpen keeps its runs; move it away",
            a.display()
        ),
        Some(a) => format!("make {} writable for you", a.display()),
        None => "run sandpen in a repository you can write".into(),
    };
    WorkspaceError::RunDir {
        path: path.to_path_buf(),
        reason: e.to_string(),
        fix,
    }
}
