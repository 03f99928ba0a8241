//! Taking one result into the user's current branch (`sandpen merge`). The merge is made in
//! memory first (`git merge-tree --write-tree`, attributes from the user's HEAD), so a conflict
//! is found before anything changes; only a clean merge becomes a commit, which the branch and
//! working tree then fast-forward to (`git merge --ff-only`: it either moves both or refuses and
//! leaves both as they were). sandpen adds no config: which merge or filter drivers run is the
//! user's own repository config alone.

use super::git::{git, git_env};
use super::{Repo, WorkspaceError};

/// How to take a result in.
#[derive(Debug, Clone)]
pub struct TakeIn<'a> {
    /// The result's commit.
    pub result: &'a str,
    /// One commit with the result's changes (HEAD its only parent) instead of a merge commit.
    pub squash: bool,
    /// Paths (from the repository's top) whose changes stay out: they keep HEAD's content.
    pub exclude: &'a [String],
    pub message: &'a str,
}

/// What taking a result in did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// The branch moved to this new commit.
    Merged(String),
    /// HEAD already holds the result: nothing to do.
    AlreadyIn,
    /// Nothing of the result is left to take (it changes only excluded paths, or nothing).
    NothingLeft,
    /// It conflicts with HEAD in these paths; nothing changed.
    Conflict(Vec<String>),
}

impl Repo {
    /// Tracked paths with changes not committed (staged or not, unmerged included).
    pub async fn uncommitted(&self) -> Result<Vec<String>, WorkspaceError> {
        let out = git(
            &self.root,
            ["status", "--porcelain=v1", "-z", "--untracked-files=no"],
        )
        .await?;
        // "XY path\0", and a rename's source as one more field.
        let mut paths = Vec::new();
        let mut fields = out.split('\0').filter(|f| !f.is_empty());
        while let Some(entry) = fields.next() {
            if entry.starts_with('R') || entry.starts_with('C') {
                fields.next();
            }
            paths.push(super::results::printable(entry.get(3..).unwrap_or(entry)));
        }
        Ok(paths)
    }

    /// The name of the current branch, None on a detached HEAD.
    pub async fn current_branch(&self) -> Option<String> {
        let out = git(&self.root, ["symbolic-ref", "--quiet", "--short", "HEAD"]).await;
        out.ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }

    /// Takes one result into HEAD (see the module's comment); nothing changes unless it merged.
    pub async fn take_in(&self, t: &TakeIn<'_>) -> Result<Taken, WorkspaceError> {
        let head = self.commit_of("HEAD").await?;
        if self.contains(&head, t.result).await? {
            return Ok(Taken::AlreadyIn);
        }
        let (mut tree, mut conflicts) = self.merge_tree(&head, t.result, &head).await?;
        if !t.exclude.is_empty() {
            let kept = self.without(&tree, &head, t.exclude).await?;
            // A conflict only in excluded paths is settled: they keep HEAD's content.
            let settled = self.changed_paths(&tree, &kept, &conflicts).await?;
            conflicts.retain(|p| !settled.contains(p));
            tree = kept;
        }
        if !conflicts.is_empty() {
            return Ok(Taken::Conflict(conflicts));
        }
        let unchanged = git(&self.root, ["rev-parse", &format!("{head}^{{tree}}")])
            .await?
            .trim()
            == tree;
        if unchanged && (t.squash || !t.exclude.is_empty()) {
            return Ok(Taken::NothingLeft);
        }
        let mut args = vec!["commit-tree", "--no-gpg-sign", &tree, "-p", &head];
        if !t.squash {
            args.extend(["-p", t.result]);
        }
        args.extend(["-m", t.message]);
        let commit = git(&self.root, args).await?.trim().to_string();
        // The commit's first parent is HEAD: a fast-forward, or a refusal if HEAD moved since.
        git(
            &self.root,
            [
                "merge",
                "--quiet",
                "--ff-only",
                "--no-verify-signatures",
                "--no-stat",
                &commit,
            ],
        )
        .await?;
        Ok(Taken::Merged(commit))
    }

    /// `tree` with the paths of `exclude` as HEAD has them, through an index of its own (the
    /// user's index is not touched).
    async fn without(&self, tree: &str, head: &str, exclude: &[String]) -> Result<String, WorkspaceError> {
        let dir = tempfile::tempdir().map_err(|e| WorkspaceError::io("making a temporary index", e))?;
        let index = dir.path().join("index");
        let index = index.to_string_lossy();
        let env = [("GIT_INDEX_FILE", index.as_ref())];
        git_env(&self.root, ["read-tree", tree], &env).await?;
        let specs: Vec<String> = exclude.iter().map(|p| format!(":(top){p}")).collect();
        let mut args = vec!["reset", "--quiet", head, "--"];
        args.extend(specs.iter().map(String::as_str));
        git_env(&self.root, args, &env).await?;
        Ok(git_env(&self.root, ["write-tree"], &env)
            .await?
            .trim()
            .to_string())
    }

    /// Which of `paths` differ between two trees.
    async fn changed_paths(&self, a: &str, b: &str, paths: &[String]) -> Result<Vec<String>, WorkspaceError> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let specs: Vec<String> = paths.iter().map(|p| format!(":(top,literal){p}")).collect();
        let mut args = vec!["diff", "--name-only", "-z", "--no-renames", a, b, "--"];
        args.extend(specs.iter().map(String::as_str));
        let out = git(&self.root, args).await?;
        Ok(out
            .split('\0')
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::git::git_blocking;
    use super::*;

    /// A repository on `main` with branches `a` (a.txt, f changed), `b` (f changed otherwise)
    /// and `w` (only `state/w.json`), each from the first commit.
    async fn repo() -> (tempfile::TempDir, Repo) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        git_blocking(p, &["init", "-q", "-b", "main"]);
        std::fs::write(p.join("f"), "one\n").unwrap();
        git_blocking(p, &["add", "f"]);
        git_blocking(p, &["commit", "-qm", "base"]);
        for (b, files) in [
            ("a", &[("f", "A\n"), ("a.txt", "a\n")][..]),
            ("b", &[("f", "B\n")][..]),
            ("w", &[("state/w.json", "{}\n")][..]),
        ] {
            git_blocking(p, &["checkout", "-qb", b, "main"]);
            for (path, text) in files {
                let path = p.join(path);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
            }
            git_blocking(p, &["add", "-A"]);
            git_blocking(p, &["commit", "-qm", b]);
        }
        git_blocking(p, &["checkout", "-q", "main"]);
        git_blocking(p, &["config", "user.name", "t"]);
        git_blocking(p, &["config", "user.email", "t@e"]);
        let repo = Repo::discover(Some(p)).await.unwrap();
        (dir, repo)
    }

    fn take<'a>(result: &'a str, squash: bool, exclude: &'a [String]) -> TakeIn<'a> {
        TakeIn {
            result,
            squash,
            exclude,
            message: "take",
        }
    }

    #[tokio::test]
    async fn a_clean_result_merges_and_a_conflicting_one_changes_nothing() {
        let (dir, repo) = repo().await;
        let p = dir.path();
        let a = repo.commit_of("a").await.unwrap();
        let Taken::Merged(m) = repo.take_in(&take(&a, false, &[])).await.unwrap() else {
            panic!("a merges")
        };
        assert_eq!(repo.commit_of("main").await.unwrap(), m);
        assert_eq!(
            git_blocking(p, &["rev-list", "--parents", "-n1", "HEAD"])
                .split(' ')
                .count(),
            3
        );
        assert_eq!(std::fs::read_to_string(p.join("a.txt")).unwrap(), "a\n");
        assert_eq!(
            repo.take_in(&take(&a, false, &[])).await.unwrap(),
            Taken::AlreadyIn
        );
        let b = repo.commit_of("b").await.unwrap();
        let got = repo.take_in(&take(&b, false, &[])).await.unwrap();
        assert_eq!(got, Taken::Conflict(vec!["f".into()]));
        assert_eq!(repo.commit_of("HEAD").await.unwrap(), m);
        assert_eq!(git_blocking(p, &["status", "--porcelain"]), "");
        assert!(repo.uncommitted().await.unwrap().is_empty());
        // Excluding the conflicting path settles it: HEAD's content stays, and nothing is left.
        let ex = vec!["f".to_string()];
        assert_eq!(
            repo.take_in(&take(&b, false, &ex)).await.unwrap(),
            Taken::NothingLeft
        );
        assert_eq!(std::fs::read_to_string(p.join("f")).unwrap(), "A\n");
    }

    #[tokio::test]
    async fn a_squash_has_one_parent_and_excluded_paths_stay_out() {
        let (dir, repo) = repo().await;
        let p = dir.path();
        let w = repo.commit_of("w").await.unwrap();
        let ex = vec!["state/".to_string()];
        assert_eq!(
            repo.take_in(&take(&w, true, &ex)).await.unwrap(),
            Taken::NothingLeft
        );
        assert_eq!(
            repo.commit_of("HEAD").await.unwrap(),
            repo.commit_of("main").await.unwrap()
        );
        let a = repo.commit_of("a").await.unwrap();
        let Taken::Merged(_) = repo.take_in(&take(&a, true, &[])).await.unwrap() else {
            panic!("a squashes")
        };
        assert_eq!(
            git_blocking(p, &["rev-list", "--parents", "-n1", "HEAD"])
                .split(' ')
                .count(),
            2
        );
        assert_eq!(git_blocking(p, &["log", "-1", "--format=%s"]), "take\n");
        // An untracked file where the result has one: refused, nothing changed.
        let head = repo.commit_of("HEAD").await.unwrap();
        let w = repo.commit_of("w").await.unwrap();
        std::fs::create_dir(p.join("state")).unwrap();
        std::fs::write(p.join("state/w.json"), "mine\n").unwrap();
        let err = repo.take_in(&take(&w, false, &[])).await.unwrap_err().to_string();
        assert!(
            err.contains("untracked working tree files would be overwritten"),
            "{err}"
        );
        assert_eq!(repo.commit_of("HEAD").await.unwrap(), head);
        assert_eq!(std::fs::read_to_string(p.join("state/w.json")).unwrap(), "mine\n");
        assert!(repo.uncommitted().await.unwrap().is_empty());
        std::fs::write(p.join("f"), "dirty\n").unwrap();
        assert_eq!(repo.uncommitted().await.unwrap(), ["f"]);
        assert_eq!(repo.current_branch().await.as_deref(), Some("main"));
    }
}
