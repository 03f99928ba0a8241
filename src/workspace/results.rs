//! What a run's results changed, read in the user's repository: commits, files and lines against
//! the commit a task started from, and whether results merge with each other and with the
//! current branch (`git merge-tree`, in memory: no working tree, no index). A result is
//! task-controlled content: it is only ever read as objects here, never checked out, and no
//! external diff or textconv driver runs on it.

use serde::{Deserialize, Serialize};

use super::git::git;
use super::{Repo, WorkspaceError};

/// Diff options that keep drivers the user configured for their own files off a task's content.
const NO_DRIVERS: [&str; 3] = ["--no-ext-diff", "--no-textconv", "--no-color"];

/// Files changed and lines added and removed between two commits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffStat {
    pub files: u32,
    pub insertions: u64,
    pub deletions: u64,
}

impl std::fmt::Display for DiffStat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = if self.files == 1 { "" } else { "s" };
        write!(
            f,
            "{} file{s} changed, +{} -{}",
            self.files, self.insertions, self.deletions
        )
    }
}

/// One file's change; no line counts for a binary file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub path: String,
    pub lines: Option<(u64, u64)>,
}

/// One commit of a result: its short id and subject (control characters replaced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitLine {
    pub id: String,
    pub subject: String,
}

impl Repo {
    /// What `tip` changed since `base`: the totals and each file (renames as a delete and an add).
    pub async fn changes(
        &self,
        base: &str,
        tip: &str,
    ) -> Result<(DiffStat, Vec<FileChange>), WorkspaceError> {
        let mut args = vec!["diff", "--numstat", "-z", "--no-renames"];
        args.extend(NO_DRIVERS);
        args.extend([base, tip, "--"]);
        let files = parse_numstat(&git(&self.root, args).await?);
        Ok((totals(&files), files))
    }

    /// The totals alone (for the report, at collection time).
    pub async fn diffstat(&self, base: &str, tip: &str) -> Result<DiffStat, WorkspaceError> {
        Ok(self.changes(base, tip).await?.0)
    }

    /// What a collected result changed since its base, for its report entry: None when it
    /// brought no commit back (a figure that cannot be read is left out, not the task's error).
    pub async fn report_changes(&self, base: &str, head: Option<&str>) -> Option<DiffStat> {
        let head = head.filter(|h| *h != base)?;
        self.diffstat(base, head)
            .await
            .inspect_err(|e| tracing::warn!("reading what {head} changed: {e}"))
            .ok()
    }

    /// The commits in `tip` that `base` does not have, oldest first.
    pub async fn commit_lines(&self, base: &str, tip: &str) -> Result<Vec<CommitLine>, WorkspaceError> {
        let range = format!("{base}..{tip}");
        let out = git(
            &self.root,
            [
                "log",
                "--reverse",
                "--no-show-signature",
                "--no-color",
                "--format=%h%x00%s%x00",
                &range,
                "--",
            ],
        )
        .await?;
        let mut fields = out.split('\0').map(|f| f.trim_start_matches('\n'));
        let mut lines = Vec::new();
        while let (Some(id), Some(subject)) = (fields.next(), fields.next()) {
            lines.push(CommitLine {
                id: id.to_string(),
                subject: printable(subject),
            });
        }
        Ok(lines)
    }

    /// The result's changes as a patch, for reading (no drivers, no colour).
    pub async fn patch(&self, base: &str, tip: &str) -> Result<String, WorkspaceError> {
        let mut args = vec!["diff", "--no-renames"];
        args.extend(NO_DRIVERS);
        args.extend([base, tip, "--"]);
        git(&self.root, args).await
    }

    /// The paths that conflict when `theirs` is merged into `ours` (none: they merge cleanly),
    /// with the attributes of `attr_source` (the user's branch, never a result).
    pub async fn conflicts(
        &self,
        ours: &str,
        theirs: &str,
        attr_source: &str,
    ) -> Result<Vec<String>, WorkspaceError> {
        Ok(self.merge_tree(ours, theirs, attr_source).await?.1)
    }

    /// The best common ancestor of two commits.
    pub async fn merge_base(&self, a: &str, b: &str) -> Result<String, WorkspaceError> {
        Ok(git(&self.root, ["merge-base", a, b]).await?.trim().to_string())
    }

    /// Whether `commit` is already part of `tip`'s history.
    pub async fn contains(&self, tip: &str, commit: &str) -> Result<bool, WorkspaceError> {
        let out =
            super::git::git_output(&self.root, &["merge-base", "--is-ancestor", commit, tip], &[]).await?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(super::git::failed(
                &self.root,
                &["merge-base", "--is-ancestor", commit, tip],
                &out,
            )),
        }
    }
}

/// `git diff --numstat -z` (no renames): "added<TAB>deleted<TAB>path\0"; "-" for binary files.
fn parse_numstat(out: &str) -> Vec<FileChange> {
    out.split('\0')
        .filter(|r| !r.is_empty())
        .filter_map(|record| {
            let mut parts = record.trim_start_matches('\n').splitn(3, '\t');
            let (added, deleted, path) = (parts.next()?, parts.next()?, parts.next()?);
            let lines = added.parse().ok().zip(deleted.parse().ok());
            Some(FileChange {
                path: printable(path),
                lines,
            })
        })
        .collect()
}

fn totals(files: &[FileChange]) -> DiffStat {
    let mut stat = DiffStat {
        files: files.len() as u32,
        ..DiffStat::default()
    };
    for (a, d) in files.iter().filter_map(|f| f.lines) {
        stat.insertions += a;
        stat.deletions += d;
    }
    stat
}

/// Text a task wrote, safe to print on a terminal: control characters become U+FFFD.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::git::git_blocking;
    use super::*;

    #[test]
    fn numstat_gives_each_file_and_the_totals_binary_files_without_lines() {
        let files = parse_numstat("3\t1\ta.txt\0-\t-\tbin/x.png\x000\t2\tdir/b c\0");
        assert_eq!(files.len(), 3);
        assert_eq!(files[0].lines, Some((3, 1)));
        assert_eq!(files[1].lines, None);
        assert_eq!(files[2].path, "dir/b c");
        let t = totals(&files);
        assert_eq!(
            t,
            DiffStat {
                files: 3,
                insertions: 3,
                deletions: 3
            }
        );
        assert_eq!(t.to_string(), "3 files changed, +3 -3");
        assert!(parse_numstat("").is_empty());
    }

    #[test]
    fn printable_replaces_terminal_escapes() {
        assert_eq!(printable("ok\x1b[2Jx\r"), "ok\u{fffd}[2Jx\u{fffd}");
        assert_eq!(printable("caf\u{e9}\tx"), "caf\u{e9}\tx");
    }

    #[tokio::test]
    async fn no_diff_driver_runs_on_a_result() {
        // The user configured drivers for their own files; a result naming them in its
        // `.gitattributes` must not make sandpen run them.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let marker = p.join("driver-ran");
        git_blocking(p, &["init", "-q", "-b", "main"]);
        let ran = format!("touch {}; cat", marker.display());
        git_blocking(p, &["config", "diff.planted.textconv", &ran]);
        git_blocking(
            p,
            &["config", "diff.external", &format!("touch {}", marker.display())],
        );
        std::fs::write(p.join("f.txt"), "one\n").unwrap();
        git_blocking(p, &["add", "f.txt"]);
        git_blocking(p, &["commit", "-qm", "base"]);
        std::fs::write(p.join(".gitattributes"), "*.txt diff=planted\n").unwrap();
        std::fs::write(p.join("f.txt"), "two\n").unwrap();
        git_blocking(p, &["add", "-A"]);
        git_blocking(p, &["commit", "-qm", "result"]);
        let repo = Repo::discover(Some(p)).await.unwrap();
        assert!(repo.patch("HEAD~1", "HEAD").await.unwrap().contains("+two"));
        assert_eq!(repo.diffstat("HEAD~1", "HEAD").await.unwrap().files, 2);
        assert!(!marker.exists(), "a diff driver ran");
    }

    #[tokio::test]
    async fn a_result_reads_as_commits_files_and_lines_and_conflicts_are_found_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        git_blocking(p, &["init", "-q", "-b", "main"]);
        std::fs::write(p.join("f"), "one\ntwo\n").unwrap();
        git_blocking(p, &["add", "f"]);
        git_blocking(p, &["commit", "-qm", "base"]);
        for (branch, text) in [("a", "one\nA\n"), ("b", "one\nB\n")] {
            git_blocking(p, &["checkout", "-qb", branch, "main"]);
            std::fs::write(p.join("f"), text).unwrap();
            std::fs::write(p.join(format!("{branch}.txt")), "x\ny\n").unwrap();
            git_blocking(p, &["add", "-A"]);
            git_blocking(p, &["commit", "-qm", &format!("change \x1b[31m{branch}")]);
        }
        git_blocking(p, &["checkout", "-q", "main"]);
        let repo = Repo::discover(Some(p)).await.unwrap();
        let (stat, files) = repo.changes("main", "a").await.unwrap();
        assert_eq!(stat.to_string(), "2 files changed, +3 -1");
        assert_eq!(
            files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
            ["a.txt", "f"]
        );
        let commits = repo.commit_lines("main", "a").await.unwrap();
        assert_eq!(commits.len(), 1);
        assert_eq!(commits[0].subject, "change \u{fffd}[31ma");
        assert!(repo.patch("main", "a").await.unwrap().contains("+A\n"));
        assert_eq!(repo.conflicts("a", "b", "main").await.unwrap(), ["f"]);
        assert!(repo.conflicts("main", "a", "main").await.unwrap().is_empty());
        assert!(repo.contains("a", "main").await.unwrap());
        assert!(!repo.contains("main", "a").await.unwrap());
        assert_eq!(git_blocking(p, &["status", "--porcelain"]), "");
    }
}
