//! A finished checkout made inert to the host's git. A task controls its checkout's config,
//! attributes, hooks and any repository nested in it; once its work has been collected, a
//! `git status` the user (or a shell prompt with git integration) runs anywhere in the
//! checkout would run what the task planted (`core.fsmonitor`, a clean filter, a pager, an
//! alias), as the user. So nothing under the checkout may look like a repository to git any
//! more: every `.git` (directory, file or link, at any depth) is renamed aside, and every
//! directory that git would take for a repository itself (a `HEAD` beside `refs`, `objects`
//! or `commondir`, as in a bare repository or the renamed `.git` itself) loses its `HEAD` the
//! same way. git then finds, walking up, the user's own git directory around the runs (which
//! holds the user's config only), or nothing. The names are [`GIT_ASIDE`] and [`HEAD_ASIDE`],
//! with `-N` appended when a task already used one.
//!
//! Runs on the host only once the engine confirmed the task's container gone: no process of
//! the task is left to race the walk, which never follows a link and renames entries in place.

use std::io;
use std::path::{Path, PathBuf};

/// What a checkout's `.git` becomes.
pub const GIT_ASIDE: &str = ".git.sandpen-inert";
/// What a repository-like directory's `HEAD` becomes.
pub const HEAD_ASIDE: &str = "HEAD.sandpen-inert";
/// The most entries a walk looks at (a tree larger than this is left partly as it is: said).
const WALK_LIMIT: usize = 2_000_000;

/// What making a checkout inert did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Inert {
    pub renamed: usize,
    /// The walk stopped at `WALK_LIMIT` entries.
    pub incomplete: bool,
}

/// Renames aside everything under `checkout` that git would discover as a repository.
pub fn make_inert(checkout: &Path) -> io::Result<Inert> {
    let mut aside: Vec<(PathBuf, &str)> = Vec::new();
    let mut seen = 0;
    let mut incomplete = false;
    for entry in walkdir::WalkDir::new(checkout).follow_links(false) {
        let Ok(entry) = entry else { continue };
        seen += 1;
        if seen > WALK_LIMIT {
            incomplete = true;
            break;
        }
        let name = entry.file_name();
        if name == ".git" {
            aside.push((entry.path().to_path_buf(), GIT_ASIDE));
        } else if name == "HEAD" && looks_like_git_dir(entry.path().parent()) {
            aside.push((entry.path().to_path_buf(), HEAD_ASIDE));
        }
    }
    // Deepest first, so that renaming a `.git` does not move what is still to be renamed.
    aside.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    let mut renamed = 0;
    for (path, to) in aside {
        rename_aside(&path, to)?;
        renamed += 1;
    }
    Ok(Inert { renamed, incomplete })
}

/// Undoes [`make_inert`] for the checkout's own repository (nested ones stay aside, and the
/// collection leaves their renamed directories out), for a collection that must run again: a
/// sandpen killed after it made the checkout inert, whose run `gc` finishes. Whether it did.
pub fn revive(checkout: &Path) -> io::Result<bool> {
    let git = checkout.join(".git");
    let aside = checkout.join(GIT_ASIDE);
    let is_dir = |p: &Path| p.symlink_metadata().is_ok_and(|m| m.is_dir());
    if git.symlink_metadata().is_ok() || !is_dir(&aside) {
        return Ok(false);
    }
    std::fs::rename(&aside, &git)?;
    let head = git.join(HEAD_ASIDE);
    if head.symlink_metadata().is_ok() && git.join("HEAD").symlink_metadata().is_err() {
        std::fs::rename(head, git.join("HEAD"))?;
    }
    Ok(true)
}

/// A directory git could take for a git directory: one with `refs`, `objects` or `commondir`
/// beside its `HEAD` (what git's own check looks for, made broader, never narrower).
fn looks_like_git_dir(dir: Option<&Path>) -> bool {
    dir.is_some_and(|d| {
        ["refs", "objects", "commondir"]
            .iter()
            .any(|n| d.join(n).symlink_metadata().is_ok())
    })
}

/// `path` renamed to `to` in its own directory (`to-1`, `to-2`... when taken). A rename never
/// follows the link it renames.
fn rename_aside(path: &Path, to: &str) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    for n in 0..1000 {
        let name = if n == 0 {
            to.to_string()
        } else {
            format!("{to}-{n}")
        };
        let target = dir.join(&name);
        if target.symlink_metadata().is_ok() {
            continue;
        }
        return std::fs::rename(path, target);
    }
    Err(io::Error::other(format!(
        "{}: no free name to move it aside to",
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// git in `dir`, looking for a repository no higher than the test's own directory.
    fn git(dir: &Path, args: &[&str]) -> std::process::Output {
        let ceiling = dir
            .ancestors()
            .find(|a| a.file_name().is_some_and(|n| n == "checkout"));
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_CEILING_DIRECTORIES", ceiling.and_then(Path::parent).unwrap())
            .output()
            .unwrap()
    }

    #[test]
    fn no_repository_is_left_for_git_to_find() {
        let top = tempfile::tempdir().unwrap();
        let co = top.path().join("checkout");
        std::fs::create_dir(&co).unwrap();
        assert!(git(&co, &["init", "-q"]).status.success());
        std::fs::create_dir_all(co.join("nested")).unwrap();
        assert!(git(&co.join("nested"), &["init", "-q"]).status.success());
        std::fs::create_dir_all(co.join("bare")).unwrap();
        assert!(git(&co.join("bare"), &["init", "-q", "--bare"]).status.success());
        // A `.git` file, a link named `.git`, and a name the task took first.
        std::fs::create_dir_all(co.join("wt")).unwrap();
        std::fs::write(co.join("wt/.git"), "gitdir: ../.git\n").unwrap();
        std::fs::create_dir_all(co.join("ln")).unwrap();
        std::os::unix::fs::symlink(co.join(".git"), co.join("ln/.git")).unwrap();
        std::fs::write(co.join(GIT_ASIDE), "the task's own\n").unwrap();
        // A file named HEAD in an ordinary directory is the task's work: left as it is.
        std::fs::create_dir_all(co.join("docs")).unwrap();
        std::fs::write(co.join("docs/HEAD"), "not a repository\n").unwrap();

        let done = make_inert(&co).unwrap();
        assert!(!done.incomplete);
        for dir in [
            "",
            "nested",
            "bare",
            "wt",
            "ln",
            ".git.sandpen-inert-1",
            "nested/.git.sandpen-inert",
        ] {
            let out = git(&co.join(dir), &["rev-parse", "--git-dir"]);
            assert!(
                !out.status.success(),
                "git finds a repository in {dir:?}: {out:?}"
            );
        }
        assert_eq!(
            std::fs::read_to_string(co.join(GIT_ASIDE)).unwrap(),
            "the task's own\n"
        );
        assert!(co.join("docs/HEAD").is_file());
        assert!(co.join("bare").join(HEAD_ASIDE).is_file());
        assert!(
            co.join("ln/.git.sandpen-inert")
                .symlink_metadata()
                .unwrap()
                .is_symlink()
        );
        assert_eq!(make_inert(&co).unwrap().renamed, 0, "once is enough");
        // Made a repository again for a collection that must run again (its own only).
        std::fs::remove_file(co.join(GIT_ASIDE)).unwrap();
        std::fs::rename(co.join(".git.sandpen-inert-1"), co.join(GIT_ASIDE)).unwrap();
        assert!(revive(&co).unwrap());
        assert!(git(&co, &["rev-parse", "--git-dir"]).status.success());
        assert!(
            !git(&co.join("nested"), &["rev-parse", "--show-toplevel"])
                .stdout
                .ends_with(b"nested\n")
        );
        assert!(!revive(&co).unwrap(), "once");
    }
}
