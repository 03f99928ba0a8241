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
        let branch = format!("{TASK_BRANCH_PREFIX}{task_id}");
        match &repo.objects {
            Some(objects) => init_borrowing(repo, &path, objects).await?,
            None => clone_copy(repo, &path).await?,
        }
        git(&path, ["checkout", "--quiet", "-B", &branch, base]).await?;
        let borrowed = repo.objects.is_some();
        let refs = match borrowed {
            true => borrowed_refs(repo, &path, &branch, base)?,
            false => None,
        };
        let refs = match refs {
            Some(refs) => refs,
            None => git(&path, ["for-each-ref", "--format=%(objectname) %(refname)"]).await?,
        };
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

/// A checkout that borrows the user's objects: a new repository whose alternates name the
/// user's store (`checkout -B` then finds every object there). Two processes where a `clone
/// --shared` took five (clone, its upload-pack and shell, removing the remote and its HEAD),
/// and the task's repository never names the user's path as a remote or in its reflog.
async fn init_borrowing(repo: &Repo, path: &Path, objects: &Path) -> Result<(), WorkspaceError> {
    // No template: the sample hooks would be most of a small checkout's metadata.
    let dir = path.display().to_string();
    git(&repo.root, ["init", "--quiet", "--template=", "--", &dir]).await?;
    let info = path.join(".git/objects/info");
    std::fs::create_dir_all(&info)
        .and_then(|()| std::fs::write(info.join("alternates"), format!("{}\n", objects.display())))
        .map_err(|e| WorkspaceError::io("borrowing the repository's objects", e))
}

/// A borrowing checkout's refs, without asking git: the task's branch at the base, and the
/// user's current branch at its commit, as a clone would have had it (a task may check it
/// out); as `for-each-ref` lists them. None when the base is not a full commit id.
fn borrowed_refs(
    repo: &Repo,
    path: &Path,
    branch: &str,
    base: &str,
) -> Result<Option<String>, WorkspaceError> {
    if base.len() != 40 || !base.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let task = format!("refs/heads/{branch}");
    let mut refs = vec![(task.clone(), base.to_string())];
    if let Some((name, oid)) = repo.head_branch.as_ref().filter(|(name, _)| *name != task) {
        let file = path.join(".git").join(name);
        std::fs::create_dir_all(file.parent().expect("under refs/heads"))
            .and_then(|()| std::fs::write(&file, format!("{oid}\n")))
            .map_err(|e| WorkspaceError::io("giving the checkout the repository's branch", e))?;
        refs.push((name.clone(), oid.clone()));
    }
    refs.sort();
    Ok(Some(
        refs.iter().map(|(name, oid)| format!("{oid} {name}\n")).collect(),
    ))
}

/// A checkout with its own copy of the objects (`--no-hardlinks`: hard-linked objects would
/// let a task that owns them rewrite the user's own object files), its remote removed (the
/// task has no business with the host path of the user's repository).
async fn clone_copy(repo: &Repo, path: &Path) -> Result<(), WorkspaceError> {
    let (from, to) = (repo.root.display().to_string(), path.display().to_string());
    let args = [
        "clone",
        "--quiet",
        "--template=",
        "--no-hardlinks",
        "--no-single-branch",
        "--no-checkout",
    ];
    git(
        &repo.root,
        args.iter().copied().chain(["--", from.as_str(), to.as_str()]),
    )
    .await?;
    git(path, ["remote", "remove", "origin"]).await.map(|_| ())
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
            let refs = git_in(&c.path, &["for-each-ref", "--format=%(objectname) %(refname)"]);
            let recorded = std::fs::read_to_string(runs.start_refs("t")).unwrap();
            assert_eq!(refs, recorded, "the refs recorded are the checkout's");
            if repo.objects.is_some() {
                let user = git_in(&root, &["rev-parse", "HEAD"]);
                let branch = git_in(&root, &["branch", "--show-current"]);
                let (user, branch) = (user.trim(), branch.trim());
                let expected = format!("{user} refs/heads/{branch}\n{base} refs/heads/sandpen/t\n");
                assert_eq!(refs, expected, "the user's branch and the task's");
                let logs = std::fs::read_to_string(c.path.join(".git/logs/HEAD")).unwrap_or_default();
                let config = std::fs::read_to_string(c.path.join(".git/config")).unwrap();
                for text in [&logs, &config] {
                    assert!(!text.contains(&*root.to_string_lossy()), "no host path: {text}");
                }
            }
            git_in(&c.path, &["fsck", "--no-progress"]);
        }
    }
}
