//! Bringing a result into the user's repository. Host-side git here only ever runs in the
//! user's own repository: the task's result arrives as a bundle, a data file that git parses
//! as it parses a pack from an untrusted remote (every object checked), and nothing of the
//! task's repository (its config, hooks, attributes, nested repositories) is read on the host.

use std::path::Path;

use super::git::git;
use super::{Repo, WorkspaceError};

/// Checks every object that arrives, as for a fetch from a hostile server.
const FSCK: [&str; 4] = ["-c", "transfer.fsckObjects=true", "-c", "fetch.fsckObjects=true"];

impl Repo {
    /// Whether some branch of the repository reaches `commit`.
    pub async fn on_a_branch(&self, commit: &str) -> bool {
        let contains = format!("--contains={commit}");
        git(
            &self.root,
            [
                "for-each-ref",
                "--count=1",
                "--format=%(refname)",
                &contains,
                "refs/heads/",
            ],
        )
        .await
        .is_ok_and(|out| !out.trim().is_empty())
    }

    /// Every ref of the repository, as "<oid> <ref>" lines.
    pub async fn ref_listing(&self) -> Result<String, WorkspaceError> {
        git(&self.root, ["for-each-ref", "--format=%(objectname) %(refname)"]).await
    }

    /// The refs a bundle holds (`git bundle list-heads` reads the file, no repository).
    pub async fn bundle_heads(&self, bundle: &Path) -> Result<Vec<(String, String)>, WorkspaceError> {
        let out = git(
            &self.root,
            ["bundle", "list-heads", &bundle.display().to_string()],
        )
        .await?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(oid, name)| (oid.to_string(), name.to_string()))
            .collect())
    }

    /// Fetches exactly the `(source, destination)` refs given from the bundle, nothing else,
    /// every object checked; a destination that exists is moved.
    pub async fn fetch_bundle(&self, bundle: &Path, refs: &[(String, String)]) -> Result<(), WorkspaceError> {
        if refs.is_empty() {
            return Ok(());
        }
        let bundle = bundle.display().to_string();
        let refspecs: Vec<String> = refs.iter().map(|(src, dst)| format!("+{src}:{dst}")).collect();
        let mut args: Vec<&str> = FSCK.to_vec();
        args.extend([
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--no-recurse-submodules",
            "--",
            &bundle,
        ]);
        args.extend(refspecs.iter().map(String::as_str));
        let _guard = self.lock.lock().await;
        git(&self.root, args).await.map(|_| ())
    }

    /// Points `refs/heads/<branch>` at `commit`, which must already be a commit here (a task
    /// whose branch moved to history the user's repository already holds). The branch is one of
    /// sandpen's names for the run's results: made, or moved by a later attempt of the task
    /// (`sandpen rerun`), as the fetch of a bundle moves its refs.
    pub async fn point_branch(&self, branch: &str, commit: &str) -> Result<(), WorkspaceError> {
        if !(commit.len() == 40 || commit.len() == 64) || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(WorkspaceError::Git {
                context: "naming the task's result".into(),
                reason: format!("{commit:?} is not a commit id"),
            });
        }
        let commit = self.commit_of(commit).await?;
        let _guard = self.lock.lock().await;
        git(
            &self.root,
            ["update-ref", &format!("refs/heads/{branch}"), &commit],
        )
        .await
        .map(|_| ())
    }

    /// Commits in `tip` that `base` does not have.
    pub async fn count_commits(&self, base: &str, tip: &str) -> Result<u32, WorkspaceError> {
        let out = git(&self.root, ["rev-list", "--count", &format!("{base}..{tip}")]).await?;
        Ok(out.trim().parse().unwrap_or(0))
    }

    /// Whether `commit` is a salvage commit sandpen made (its `Sandpen-Salvaged` trailer).
    pub async fn is_salvage(&self, commit: &str) -> Result<bool, WorkspaceError> {
        let out = git(
            &self.root,
            [
                "log",
                "-1",
                "--no-show-signature",
                "--format=%(trailers:key=Sandpen-Salvaged,valueonly)",
                commit,
            ],
        )
        .await?;
        Ok(out.trim() == "true")
    }

    /// `name`, or, when it is taken (by an earlier attempt of the task: `sandpen rerun`,
    /// `--retries`), the first of `name-2`, `name-3`, ... that is free: what an earlier attempt
    /// keeps by a ref must keep its ref.
    pub async fn free_ref(&self, name: &str) -> String {
        let mut candidate = name.to_string();
        for k in 2..100 {
            if self.commit_of(&candidate).await.is_err() {
                break;
            }
            candidate = format!("{name}-{k}");
        }
        candidate
    }

    pub async fn commit_of(&self, rev: &str) -> Result<String, WorkspaceError> {
        let spec = format!("{rev}^{{commit}}");
        Ok(git(
            &self.root,
            ["rev-parse", "--verify", "--quiet", "--end-of-options", &spec],
        )
        .await?
        .trim()
        .to_string())
    }
}
