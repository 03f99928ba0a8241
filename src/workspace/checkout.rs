//! One task's checkout: a full clone with its own git metadata (so git works inside the
//! container, where a worktree's `.git` file would point outside the mount), and the way its
//! work comes back into the user's repository as a branch.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::git::{git, git_env};
use super::{Repo, WorkspaceError, owner};

/// The branch inside each checkout that the task starts on.
const TASK_BRANCH_PREFIX: &str = "sandpen/";

#[derive(Debug, Clone)]
pub struct Checkout {
    pub path: PathBuf,
    pub task_id: String,
    pub base: String,
    /// The git config sandpen wrote, restored before sandpen runs git there again.
    config: Vec<u8>,
    /// Set when the checkout was handed to another user and must be handed back.
    handed_to: Option<(u32, u32)>,
}

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
}

impl Checkout {
    /// Clones the repository into `<run_dir>/<task_id>` at `base`, owned by `user`.
    pub async fn create(
        repo: &Repo,
        run_dir: &Path,
        task_id: &str,
        base: &str,
        user: (u32, u32),
    ) -> Result<Self, WorkspaceError> {
        let path = run_dir.join(task_id);
        // --no-hardlinks: hard-linked objects would let a task that owns them rewrite the
        // user's own object files.
        git(
            &repo.root,
            [
                "clone",
                "--quiet",
                "--no-hardlinks",
                "--no-checkout",
                "--",
                &repo.root.display().to_string(),
                &path.display().to_string(),
            ],
        )
        .await?;
        let branch = format!("{TASK_BRANCH_PREFIX}{task_id}");
        git(&path, ["checkout", "--quiet", "-B", &branch, base]).await?;
        // The task has no business with the host path of the user's repository.
        git(&path, ["remote", "remove", "origin"]).await?;
        let git_dir = path.join(".git");
        // The `uv run` that wraps every task makes .venv/, and uv.lock when the project has
        // none: sandpen's byproducts, not the task's work. A repository that tracks uv.lock
        // keeps seeing its changes.
        let mut exclude = String::from(".venv/\n");
        if git(&path, ["ls-files", "--error-unmatch", "--", "uv.lock"])
            .await
            .is_err()
        {
            exclude.push_str("/uv.lock\n");
        }
        std::fs::write(git_dir.join("info").join("exclude"), exclude)
            .map_err(|e| WorkspaceError::io("writing the checkout's info/exclude", e))?;
        let config = std::fs::read(git_dir.join("config"))
            .map_err(|e| WorkspaceError::io("reading the checkout's git config", e))?;
        let current =
            owner::owner_of(&path).map_err(|e| WorkspaceError::io("reading the checkout's owner", e))?;
        let handed_to = if current != user {
            let p = path.clone();
            tokio::task::spawn_blocking(move || owner::chown_tree(&p, user))
                .await
                .expect("chown task panicked")
                .map_err(|e| {
                    WorkspaceError::io(
                        format!(
                            "giving {} to uid {}:{} (sandpen must run as the repository's owner or as root)",
                            path.display(),
                            user.0,
                            user.1
                        ),
                        e,
                    )
                })?;
            Some(user)
        } else {
            None
        };
        Ok(Self {
            path,
            task_id: task_id.to_string(),
            base: base.to_string(),
            config,
            handed_to,
        })
    }

    /// After the container is gone: hands the checkout back, commits any uncommitted work
    /// (marked as salvaged), and brings the result into the user's repository as
    /// `sandpen/<task-id>/<run-id>`, a new branch per run so earlier results are kept.
    pub async fn collect(&self, repo: &Repo, run_id: &str) -> Result<Collected, WorkspaceError> {
        if self.handed_to.is_some() {
            let (p, to) = (self.path.clone(), repo.owner);
            tokio::task::spawn_blocking(move || owner::chown_tree(&p, to))
                .await
                .expect("chown task panicked")
                .map_err(|e| WorkspaceError::io("handing the checkout back to the repository's owner", e))?;
        }
        self.seal()?;
        let status = git(&self.path, ["status", "--porcelain", "--untracked-files=all"]).await?;
        let salvaged = !status.trim().is_empty();
        if salvaged {
            git(&self.path, ["add", "--all"]).await?;
            let message = format!(
                "sandpen: salvage uncommitted work of task {}\n\n\
                 The task ended with these changes uncommitted; sandpen committed them so that\n\
                 nothing is lost.\n\nSandpen-Salvaged: true\nSandpen-Run: {run_id}\nSandpen-Task: {}\n",
                self.task_id, self.task_id
            );
            let who = [
                ("GIT_AUTHOR_NAME", "sandpen"),
                ("GIT_AUTHOR_EMAIL", "sandpen@localhost"),
                ("GIT_COMMITTER_NAME", "sandpen"),
                ("GIT_COMMITTER_EMAIL", "sandpen@localhost"),
            ];
            git_env(
                &self.path,
                ["commit", "--quiet", "--no-verify", "-m", &message],
                &who,
            )
            .await?;
        }
        let head = git(&self.path, ["rev-parse", "--verify", "HEAD"])
            .await?
            .trim()
            .to_string();
        if head == self.base {
            return Ok(Collected {
                head: Some(head),
                ..Default::default()
            });
        }
        let commits = git(
            &self.path,
            ["rev-list", "--count", &format!("{}..{head}", self.base)],
        )
        .await?
        .trim()
        .parse()
        .unwrap_or(0);
        let branch = format!("sandpen/{}/{run_id}", self.task_id);
        let _guard = repo.lock.lock().await;
        git(
            &repo.root,
            [
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                "--",
                &self.path.display().to_string(),
                &format!("+HEAD:refs/heads/{branch}"),
            ],
        )
        .await?;
        Ok(Collected {
            branch: Some(branch),
            head: Some(head),
            commits,
            salvaged,
        })
    }

    /// Makes the checkout's git metadata safe to use from the host again: no symlinks that
    /// could redirect writes into the user's repository, sandpen's own config (a task could
    /// have added hooks, filters or an fsmonitor command), no hooks.
    fn seal(&self) -> Result<(), WorkspaceError> {
        let git_dir = self.path.join(".git");
        let tampered = |reason: String| WorkspaceError::Tampered {
            path: self.path.clone(),
            reason,
        };
        // A `.git` file ("gitdir: ...") would send git to another repository on the host.
        if !std::fs::symlink_metadata(&git_dir).is_ok_and(|m| m.is_dir()) {
            return Err(tampered(".git is no longer a directory".into()));
        }
        match owner::find_symlink(&git_dir) {
            Ok(None) => {}
            Ok(Some(link)) => return Err(tampered(format!("{} is a symlink", link.display()))),
            Err(e) => return Err(tampered(format!("cannot read its .git: {e}"))),
        }
        // Files that point git at other directories: `commondir` would make the checkout a
        // worktree of, say, the user's repository (and a commit would move the user's branch);
        // alternates would read objects from wherever they name.
        for planted in [
            "commondir",
            "gitdir",
            "objects/info/alternates",
            "objects/info/http-alternates",
        ] {
            let p = git_dir.join(planted);
            if std::fs::symlink_metadata(&p).is_ok() {
                std::fs::remove_file(&p)
                    .map_err(|e| WorkspaceError::io(format!("removing the checkout's {planted}"), e))?;
            }
        }
        std::fs::write(git_dir.join("config"), &self.config)
            .map_err(|e| WorkspaceError::io("restoring the checkout's git config", e))?;
        let hooks = git_dir.join("hooks");
        if hooks.exists() {
            std::fs::remove_dir_all(&hooks)
                .map_err(|e| WorkspaceError::io("removing the checkout's git hooks", e))?;
        }
        Ok(())
    }
}
