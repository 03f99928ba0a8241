//! Where a repository's runs live: `<git-common-dir>/sandpen/runs/<run-id>/`.
//!
//! Not in the working tree. A result branch is the task's work, and the user merges it: a
//! tracked `.sandpen` file or a symlink at `.sandpen/runs` would make git replace the runs
//! (every checkout, log and report) or redirect the next run's writes through the task's link.
//! No checkout, merge, reset or clean writes inside the git directory, and no tracked path can
//! name it; git keeps its own worktrees' data there for the same reason. Runs that earlier
//! sandpens made in `<repo>/.sandpen/runs/` are still found, used where they are, and never
//! through a symlink.

use std::io;
use std::path::{Path, PathBuf};

/// The runs of one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunsHome {
    /// `<git-common-dir>/sandpen`: sandpen's directory in the repository's git directory.
    sandpen: PathBuf,
    /// `<repo>/.sandpen/runs`, where older sandpens kept runs.
    legacy: PathBuf,
}

impl RunsHome {
    /// `common_dir` is the repository's git directory shared by all its worktrees
    /// (`git rev-parse --git-common-dir`), `root` its top-level working directory.
    pub fn new(common_dir: &Path, root: &Path) -> Self {
        Self {
            sandpen: common_dir.join("sandpen"),
            legacy: root.join(".sandpen").join("runs"),
        }
    }

    /// sandpen's directory in the git directory, for files of its own beside the runs.
    pub fn sandpen_dir(&self) -> &Path {
        &self.sandpen
    }

    /// Where new runs go.
    pub fn dir(&self) -> PathBuf {
        self.sandpen.join("runs")
    }

    /// Where runs of older sandpens are, if anything is there.
    pub fn legacy_dir(&self) -> &Path {
        &self.legacy
    }

    /// Makes the directory of a new run, and every directory on the way that does not exist
    /// yet; refuses one that is there but is not a real directory (a symlink, a file).
    pub fn create_run(&self, run_id: &str) -> io::Result<PathBuf> {
        let run = self.dir().join(run_id);
        for dir in [&self.sandpen, &self.dir()] {
            real_dir(dir, true)?;
        }
        std::fs::create_dir(&run)?;
        Ok(run)
    }

    /// Every run directory, oldest first (run ids sort by time): the ones here, then those of
    /// older sandpens. Only real directories: a symlink anywhere on the way is not followed.
    pub fn runs(&self) -> Vec<PathBuf> {
        let mut all: Vec<PathBuf> = [self.dir(), self.legacy.clone()]
            .iter()
            .filter(|d| is_real_dir_chain(d, self.base_of(d)))
            .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        all.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        all
    }

    /// Whether `path` is where a run of this repository would be.
    pub fn holds(&self, path: &Path) -> bool {
        path.parent().is_some_and(|p| p == self.dir() || p == self.legacy)
    }

    /// The directory below which `dir` is sandpen's to check: the git directory is the
    /// user's, `.sandpen` is in the working tree.
    fn base_of(&self, dir: &Path) -> PathBuf {
        if dir.starts_with(&self.sandpen) {
            self.sandpen.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            self.legacy
                .parent()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .unwrap_or_default()
        }
    }
}

/// `dir` is a real directory (made when `create` and missing); never a symlink to one.
fn real_dir(dir: &Path, create: bool) -> io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        // ENOTDIR, as creating something inside it would say (`run_dir_error` says the fix).
        Ok(_) => Err(io::Error::from_raw_os_error(20)),
        Err(e) if create && e.kind() == io::ErrorKind::NotFound => match std::fs::create_dir(dir) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => real_dir(dir, false),
            r => r,
        },
        Err(e) => Err(e),
    }
}

/// Every directory from below `base` down to `dir` is a real directory.
fn is_real_dir_chain(dir: &Path, base: PathBuf) -> bool {
    let Ok(rest) = dir.strip_prefix(&base) else {
        return false;
    };
    let mut at = base;
    rest.components().all(|c| {
        at.push(c);
        real_dir(&at, false).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home(repo: &Path) -> RunsHome {
        RunsHome::new(&repo.join(".git"), repo)
    }

    #[test]
    fn runs_are_made_in_the_git_directory_and_listed_with_older_ones() {
        let repo = tempfile::tempdir().unwrap();
        std::fs::create_dir(repo.path().join(".git")).unwrap();
        let h = home(repo.path());
        let new = h.create_run("20260102-100000-bbbb").unwrap();
        assert_eq!(new, repo.path().join(".git/sandpen/runs/20260102-100000-bbbb"));
        assert!(
            h.create_run("20260102-100000-bbbb").is_err(),
            "a run directory is made once"
        );
        std::fs::create_dir_all(repo.path().join(".sandpen/runs/20260101-100000-aaaa")).unwrap();
        let names: Vec<_> = h
            .runs()
            .iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["20260101-100000-aaaa", "20260102-100000-bbbb"]);
        assert!(h.holds(&new) && h.holds(&repo.path().join(".sandpen/runs/x")));
        assert!(!h.holds(&repo.path().join("x")));
    }

    #[test]
    fn a_planted_symlink_is_neither_followed_nor_written_through() {
        let repo = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::create_dir(repo.path().join(".git")).unwrap();
        std::fs::create_dir_all(elsewhere.path().join("runs/20260101-100000-aaaa")).unwrap();
        // A merged result tracks `.sandpen` as a link to another place.
        std::os::unix::fs::symlink(elsewhere.path(), repo.path().join(".sandpen")).unwrap();
        let h = home(repo.path());
        assert!(h.runs().is_empty(), "runs through a link are not listed");
        // A link in sandpen's own place (none can be made by a result; checked anyway).
        std::os::unix::fs::symlink(elsewhere.path(), repo.path().join(".git/sandpen")).unwrap();
        let err = h.create_run("20260103-100000-cccc").unwrap_err();
        assert!(err.to_string().contains("Not a directory"), "{err}");
        assert!(!elsewhere.path().join("runs/20260103-100000-cccc").exists());
        assert!(h.runs().is_empty());
        // A run entry that is a link is not a run.
        std::fs::remove_file(repo.path().join(".git/sandpen")).unwrap();
        h.create_run("20260104-100000-dddd").unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), h.dir().join("20260105-100000-eeee")).unwrap();
        assert_eq!(h.runs().len(), 1);
    }
}
