//! One task's checkout: a clone with its own git metadata (so git works inside the container,
//! where a worktree's `.git` file would point outside the mount) that borrows the user's
//! objects read-only (`objects`), so it costs about what a worktree costs. Host-side git
//! runs here only while the checkout is fresh, before any task touched it; what comes back
//! afterwards goes through the collection sandbox (`collect`).

use std::path::{Path, PathBuf};

use super::git::git;
use super::{Repo, RunDir, WorkspaceError, owner};

/// The branch inside each checkout that the task starts on.
const TASK_BRANCH_PREFIX: &str = "sandpen/";

/// The branch a task's checkout starts on, at the task's base (so its recorded refs name it).
pub fn task_branch(task_id: &str) -> String {
    format!("{TASK_BRANCH_PREFIX}{task_id}")
}

#[derive(Debug, Clone)]
pub struct Checkout {
    pub path: PathBuf,
    pub task_id: String,
    pub base: String,
    /// Set when the checkout was handed to another user and must be handed back.
    handed_to: Option<(u32, u32)>,
}

impl Checkout {
    /// Clones the repository into the run's checkout of `task_id` at `base`, owned by `user`,
    /// and records its refs (`RunDir::start_refs`): what the task finds, so that collection
    /// can tell what it created or moved.
    pub async fn create(
        repo: &Repo,
        run_dir: &RunDir,
        task_id: &str,
        base: &str,
        user: (u32, u32),
    ) -> Result<Self, WorkspaceError> {
        let path = run_dir.checkout(task_id);
        // --shared borrows the user's objects (read-only in the container). Without a store
        // to borrow, --no-hardlinks: hard-linked objects would let a task that owns them
        // rewrite the user's own object files.
        // --single-branch with borrowed objects: every object is there anyway, and the refs
        // of the user's other branches would only be copied and then removed with the remote
        // (2.0 s per checkout with 3,000 branches, against 17 ms).
        let borrowed = repo.objects.is_some();
        let copy = if borrowed {
            ["--shared", "--single-branch"]
        } else {
            ["--no-hardlinks", "--no-single-branch"]
        };
        git(
            &repo.root,
            [
                "clone",
                "--quiet",
                // No template: the sample hooks would be most of a small checkout's metadata.
                "--template=",
                copy[0],
                copy[1],
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
        if borrowed {
            // A single-branch clone's origin/HEAD outlives its remote, pointing at nothing
            // (`git fsck` would fail in the task).
            let _ = git(
                &path,
                ["symbolic-ref", "--delete", "--quiet", "refs/remotes/origin/HEAD"],
            )
            .await;
        }
        let refs = git(&path, ["for-each-ref", "--format=%(objectname) %(refname)"]).await?;
        let start_refs = run_dir.start_refs(task_id);
        std::fs::create_dir_all(start_refs.parent().expect("in a directory"))
            .and_then(|()| std::fs::write(&start_refs, refs))
            .map_err(|e| WorkspaceError::io("recording the checkout's refs", e))?;
        let git_dir = path.join(".git");
        // The `uv run` that wraps every task makes .venv/, and uv.lock when the project has
        // none: sandpen's byproducts, not the task's work. A repository that tracks uv.lock
        // keeps seeing its changes. (A fresh checkout holds exactly the tracked files.)
        let mut exclude = String::from(".venv/\n");
        if std::fs::symlink_metadata(path.join("uv.lock")).is_err() {
            exclude.push_str("/uv.lock\n");
        }
        std::fs::create_dir_all(git_dir.join("info"))
            .and_then(|()| std::fs::write(git_dir.join("info").join("exclude"), exclude))
            .map_err(|e| WorkspaceError::io("writing the checkout's info/exclude", e))?;
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
        if borrowed {
            super::objects::settle_index(&path).await;
            // The last host-side git in the checkout is above: from here its objects are
            // found where its container sees them.
            super::objects::point_at_mount(&path)
                .map_err(|e| WorkspaceError::io("pointing the checkout at the borrowed objects", e))?;
        }
        Ok(Self {
            path,
            task_id: task_id.to_string(),
            base: base.to_string(),
            handed_to,
        })
    }

    /// The uid:gid the checkout was handed to, when it was.
    pub fn handed_to(&self) -> Option<(u32, u32)> {
        self.handed_to
    }
}

/// Gives `dir` and everything in it to `to` when it was handed to a task's user.
pub async fn hand_back(dir: &Path, was_handed: bool, to: (u32, u32)) -> Result<(), WorkspaceError> {
    if !was_handed {
        return Ok(());
    }
    let p = dir.to_path_buf();
    tokio::task::spawn_blocking(move || owner::chown_tree(&p, to))
        .await
        .map_err(|e| WorkspaceError::io("handing the checkout back", std::io::Error::other(e)))?
        .map_err(|e| WorkspaceError::io("handing the checkout back to the repository's owner", e))
}

#[cfg(test)]
mod tests {
    use super::super::git::git_blocking as git_in;
    use super::*;

    #[tokio::test]
    async fn a_fresh_checkout_is_settled_and_excludes_uv_lock_unless_tracked() {
        for tracked in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("repo");
            std::fs::create_dir_all(root.join("src")).unwrap();
            git_in(&root, &["init", "-q"]);
            std::fs::write(root.join("src/a.txt"), "a\n").unwrap();
            if tracked {
                std::fs::write(root.join("uv.lock"), "version = 1\n").unwrap();
            }
            git_in(&root, &["add", "-A"]);
            git_in(&root, &["commit", "-qm", "c"]);
            // The base is on another branch than the user's current one.
            git_in(&root, &["checkout", "-q", "-b", "feature"]);
            std::fs::write(root.join("src/b.txt"), "b\n").unwrap();
            git_in(&root, &["add", "-A"]);
            git_in(&root, &["commit", "-qm", "feature"]);
            let base = git_in(&root, &["rev-parse", "HEAD"]).trim().to_string();
            git_in(&root, &["checkout", "-q", "-"]);
            for i in 0..50 {
                git_in(&root, &["branch", &format!("other/{i}")]);
            }
            let repo = Repo::discover(Some(&root)).await.unwrap();
            let runs = RunDir::new(dir.path().join("run"));
            let user = repo.owner;
            let c = Checkout::create(&repo, &runs, "t", &base, user).await.unwrap();
            let exclude = std::fs::read_to_string(c.path.join(".git/info/exclude")).unwrap();
            assert_eq!(exclude.contains("/uv.lock"), !tracked, "{exclude}");
            assert!(exclude.contains(".venv/"), "{exclude}");
            assert_eq!(c.handed_to(), None, "already the task user's");
            if let Some(objects) = &repo.objects {
                // Host git can read it again once the alternates name the host's store.
                let alternates = c.path.join(".git/objects/info/alternates");
                std::fs::write(alternates, objects.display().to_string()).unwrap();
            }
            assert_eq!(git_in(&c.path, &["diff-files", "--name-only"]), "", "settled");
            assert_eq!(git_in(&c.path, &["rev-parse", "HEAD"]).trim(), base);
            assert_eq!(git_in(&c.path, &["show", "HEAD:src/b.txt"]), "b\n");
            let refs = git_in(&c.path, &["for-each-ref", "--format=%(refname)"]);
            assert_eq!(
                refs.lines().count(),
                2,
                "the user's branch and the task's: {refs}"
            );
            git_in(&c.path, &["fsck", "--no-progress"]);
        }
    }
}
