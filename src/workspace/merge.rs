//! The start of a task that depends on several others: their results merged into one commit, in
//! the user's repository, without a working tree (`git merge-tree --write-tree`, then
//! `git commit-tree`). Nothing a task planted runs: the merge reads objects only, and the
//! attributes that could name a merge driver are read from a commit the caller names (the
//! run's base), not from the user's worktree, which may hold a task's result checked out.

use super::git::{failed, git, git_env, git_output};
use super::{Repo, WorkspaceError};

/// The merge commit's author and committer.
const WHO: [(&str, &str); 4] = [
    ("GIT_AUTHOR_NAME", "sandpen"),
    ("GIT_AUTHOR_EMAIL", "sandpen@sandpen.invalid"),
    ("GIT_COMMITTER_NAME", "sandpen"),
    ("GIT_COMMITTER_EMAIL", "sandpen@sandpen.invalid"),
];

/// What merging several results gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merged {
    /// The commit to start from: one of the results when it holds all the others, else a new
    /// merge commit whose parents they are.
    Commit(String),
    /// The result at index `at` conflicts with the merge of those before it, in `paths`.
    Conflict { at: usize, paths: Vec<String> },
}

impl Repo {
    /// Merges `commits` into one, pairwise in their order. The merge commit is kept by the ref
    /// `keep_as` (created; it must not exist): the task's checkout is made from it, and tasks
    /// depending on one that made no commit start from it too, so `git gc` must not prune it
    /// while the run goes on, and the report names it (`base_commit`) for later. The
    /// intermediate commits of three or more results are left unreferenced (git prunes them).
    pub async fn merge_results(
        &self,
        commits: &[String],
        attr_source: &str,
        keep_as: &str,
        message: &str,
    ) -> Result<Merged, WorkspaceError> {
        let kept = self.independent(commits).await?;
        let (first, rest) = match kept.as_slice() {
            [] => return Err(git_error("merging results", "no commit to merge")),
            [only] => return Ok(Merged::Commit(commits[*only].clone())),
            [first, rest @ ..] => (*first, rest),
        };
        let mut acc = commits[first].clone();
        let mut tree = String::new();
        for (n, &i) in rest.iter().enumerate() {
            let (t, paths) = self.merge_tree(&acc, &commits[i], attr_source).await?;
            if !paths.is_empty() {
                return Ok(Merged::Conflict { at: i, paths });
            }
            tree = t;
            if n + 1 < rest.len() {
                // The next merge finds its merge base from this commit's parents.
                acc = self
                    .commit_tree(&tree, &[acc.as_str(), &commits[i]], "sandpen: partial merge")
                    .await?;
            }
        }
        let parents: Vec<&str> = kept.iter().map(|&i| commits[i].as_str()).collect();
        let merge = self.commit_tree(&tree, &parents, message).await?;
        let _guard = self.lock.lock().await;
        git(&self.root, ["update-ref", keep_as, &merge, ""]).await?;
        Ok(Merged::Commit(merge))
    }

    /// The indices of `commits` that no other of them contains (duplicates once), in order.
    async fn independent(&self, commits: &[String]) -> Result<Vec<usize>, WorkspaceError> {
        let mut args = vec!["merge-base", "--independent"];
        args.extend(commits.iter().map(String::as_str));
        let out = git(&self.root, args).await?;
        let heads: Vec<&str> = out.split_whitespace().collect();
        let mut kept: Vec<usize> = Vec::new();
        for (i, c) in commits.iter().enumerate() {
            if heads.contains(&c.as_str()) && !kept.iter().any(|&k| commits[k] == *c) {
                kept.push(i);
            }
        }
        Ok(kept)
    }

    /// The merged tree of `ours` and `theirs`, and the paths that conflict (none: clean).
    pub(super) async fn merge_tree(
        &self,
        ours: &str,
        theirs: &str,
        attr_source: &str,
    ) -> Result<(String, Vec<String>), WorkspaceError> {
        let attrs = format!("--attr-source={attr_source}");
        let args = [
            &attrs,
            "merge-tree",
            "--write-tree",
            "--name-only",
            "--no-messages",
            "-z",
            ours,
            theirs,
        ];
        let out = git_output(&self.root, &args, &[]).await?;
        // 0: clean, 1: conflicts; anything else is git failing.
        match out.status.code() {
            Some(0 | 1) => parse_merge_tree(&out.stdout)
                .ok_or_else(|| git_error("git merge-tree", "its output names no tree")),
            _ => Err(failed(&self.root, &args, &out)),
        }
    }

    async fn commit_tree(
        &self,
        tree: &str,
        parents: &[&str],
        message: &str,
    ) -> Result<String, WorkspaceError> {
        let mut args = vec!["commit-tree", "--no-gpg-sign", tree];
        for p in parents {
            args.extend(["-p", p]);
        }
        args.extend(["-m", message]);
        Ok(git_env(&self.root, args, &WHO).await?.trim().to_string())
    }
}

/// `merge-tree --write-tree --name-only --no-messages -z` output: the tree, then each
/// conflicting path, all NUL-terminated. Paths once each, as git gave them (lossily UTF-8).
fn parse_merge_tree(out: &[u8]) -> Option<(String, Vec<String>)> {
    let mut fields = out.split(|&b| b == 0);
    let tree = String::from_utf8_lossy(fields.next()?).trim().to_string();
    if tree.is_empty() || !tree.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut paths: Vec<String> = Vec::new();
    for p in fields.filter(|p| !p.is_empty()) {
        let p = String::from_utf8_lossy(p).into_owned();
        if !paths.contains(&p) {
            paths.push(p);
        }
    }
    Some((tree, paths))
}

fn git_error(context: &str, reason: &str) -> WorkspaceError {
    WorkspaceError::Git {
        context: context.into(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_tree_output_gives_the_tree_and_each_conflicting_path_once() {
        let tree = "629c0bb1de0c82131a0fe06596c7e1967147d46c";
        assert_eq!(
            parse_merge_tree(format!("{tree}\0").as_bytes()),
            Some((tree.to_string(), vec![]))
        );
        let out = format!("{tree}\0f\0dir/a b\0f\0caf\u{e9}\0");
        let (t, paths) = parse_merge_tree(out.as_bytes()).unwrap();
        assert_eq!(t, tree);
        assert_eq!(paths, ["f", "dir/a b", "caf\u{e9}"]);
        assert_eq!(parse_merge_tree(b""), None);
        assert_eq!(parse_merge_tree(b"fatal: not a tree\0"), None);
    }

    /// A repository whose `main` holds `f`, with a branch per `(name, path, content)` off it.
    fn repo_with(branches: &[(&str, &str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let sh = |script: &str| {
            let ok = std::process::Command::new("sh")
                .args(["-ec", script])
                .current_dir(dir.path())
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@t")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@t")
                .status()
                .unwrap()
                .success();
            assert!(ok, "{script}");
        };
        sh("git init -q -b main && echo base > f && git add f && git commit -qm base");
        for (name, path, content) in branches {
            sh(&format!(
                "git checkout -q -b {name} main && mkdir -p \"$(dirname {path})\" && echo {content} > {path} \
                 && git add -A && git commit -qm {name} && git checkout -q main"
            ));
        }
        dir
    }

    async fn commits(repo: &Repo, names: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for n in names {
            out.push(repo.resolve(n).await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn three_results_merge_into_one_commit_with_all_as_parents_and_a_ref() {
        let dir = repo_with(&[("a", "a.txt", "A"), ("b", "b.txt", "B"), ("c", "d/c.txt", "C")]);
        let repo = Repo::discover(Some(dir.path())).await.unwrap();
        let cs = commits(&repo, &["a", "b", "c"]).await;
        let main = repo.resolve("main").await.unwrap();
        let keep = "refs/sandpen/t/r1/base";
        let Merged::Commit(m) = repo.merge_results(&cs, &main, keep, "msg").await.unwrap() else {
            panic!("a clean merge")
        };
        let g = |args: &[&str]| {
            let mut a = vec!["-C", dir.path().to_str().unwrap()];
            a.extend(args);
            let out = std::process::Command::new("git").args(a).output().unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(g(&["rev-parse", keep]).trim(), m);
        assert_eq!(
            g(&["rev-list", "--parents", "-n1", &m]).trim(),
            format!("{m} {}", cs.join(" "))
        );
        assert_eq!(
            g(&["ls-tree", "-r", "--name-only", &m]),
            "a.txt\nb.txt\nd/c.txt\nf\n"
        );
        assert_eq!(
            g(&["log", "-1", "--format=%an <%ae>|%s", &m]).trim(),
            "sandpen <sandpen@sandpen.invalid>|msg"
        );
        // The user's branch and worktree are as they were.
        assert_eq!(repo.resolve("HEAD").await.unwrap(), main);
        assert_eq!(g(&["status", "--porcelain"]), "");
    }

    #[tokio::test]
    async fn a_result_that_holds_the_others_is_the_start_and_no_commit_is_made() {
        let dir = repo_with(&[("a", "a.txt", "A")]);
        let repo = Repo::discover(Some(dir.path())).await.unwrap();
        let cs = commits(&repo, &["main", "a", "a"]).await;
        let keep = "refs/sandpen/t/r1/base";
        let got = repo.merge_results(&cs, &cs[0], keep, "m").await.unwrap();
        assert_eq!(got, Merged::Commit(cs[1].clone()));
        assert!(
            repo.resolve(keep).await.is_err(),
            "no ref for a commit that is not new"
        );
    }

    #[tokio::test]
    async fn a_conflict_names_the_result_and_every_conflicting_path() {
        let dir = repo_with(&[("a", "x/s.txt", "A"), ("b", "b.txt", "B"), ("c", "x/s.txt", "C")]);
        let repo = Repo::discover(Some(dir.path())).await.unwrap();
        let cs = commits(&repo, &["a", "b", "c"]).await;
        let keep = "refs/sandpen/t/r1/base";
        let got = repo.merge_results(&cs, &cs[0], keep, "m").await.unwrap();
        assert_eq!(
            got,
            Merged::Conflict {
                at: 2,
                paths: vec!["x/s.txt".into()]
            }
        );
        assert!(
            repo.resolve(keep).await.is_err(),
            "no ref for a merge that failed"
        );
    }

    #[tokio::test]
    async fn merge_drivers_named_in_the_worktree_do_not_run() {
        // A task's result checked out in the user's worktree could name a driver the user
        // configured; attributes come from the given commit instead.
        let dir = repo_with(&[("a", "f", "A"), ("b", "f", "B")]);
        let root = dir.path();
        let marker = root.join("driver-ran");
        std::fs::write(root.join(".gitattributes"), "* merge=planted\n").unwrap();
        let ok = std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["config", "merge.planted.driver"])
            .arg(format!("touch {}; exit 1", marker.display()))
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let repo = Repo::discover(Some(root)).await.unwrap();
        let cs = commits(&repo, &["a", "b"]).await;
        let main = repo.resolve("main").await.unwrap();
        let got = repo
            .merge_results(&cs, &main, "refs/sandpen/t/r/base", "m")
            .await
            .unwrap();
        assert_eq!(
            got,
            Merged::Conflict {
                at: 1,
                paths: vec!["f".into()]
            }
        );
        assert!(!marker.exists(), "the worktree's merge driver ran");
    }
}
