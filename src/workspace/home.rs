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
    /// The repository's git directory shared by its worktrees: the user's, trusted.
    git_dir: PathBuf,
    /// Its top-level working directory, where older sandpens kept runs (`.sandpen/runs`).
    root: PathBuf,
    /// `<git_dir>/sandpen`: sandpen's directory in the git directory.
    sandpen: PathBuf,
}

/// Where new runs go, below the git directory; where older sandpens' are, below the root.
const HERE: [&str; 2] = ["sandpen", "runs"];
const LEGACY: [&str; 2] = [".sandpen", "runs"];

impl RunsHome {
    /// `common_dir` is the repository's git directory shared by all its worktrees
    /// (`git rev-parse --git-common-dir`), `root` its top-level working directory.
    pub fn new(common_dir: &Path, root: &Path) -> Self {
        Self {
            git_dir: common_dir.to_path_buf(),
            root: root.to_path_buf(),
            sandpen: common_dir.join(HERE[0]),
        }
    }

    /// sandpen's directory in the git directory, for files of its own beside the runs.
    pub fn sandpen_dir(&self) -> &Path {
        &self.sandpen
    }

    /// Where new runs go.
    pub fn dir(&self) -> PathBuf {
        self.sandpen.join(HERE[1])
    }

    /// Makes the directory of a new run, and every directory on the way that does not exist
    /// yet; refuses one that is there but is not a real directory (a symlink, a file).
    pub fn create_run(&self, run_id: &str) -> io::Result<PathBuf> {
        let run = real_chain(&self.git_dir, &HERE, true)?.join(run_id);
        std::fs::create_dir(&run)?;
        Ok(run)
    }

    /// Every run directory, oldest first (run ids sort by time): the ones here, then those of
    /// older sandpens. Only real directories: a symlink anywhere on the way is not followed.
    pub fn runs(&self) -> Vec<PathBuf> {
        let mut all: Vec<PathBuf> = [(&self.git_dir, HERE), (&self.root, LEGACY)]
            .into_iter()
            .filter_map(|(base, names)| real_chain(base, &names, false).ok())
            .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        all.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        all
    }

    /// Whether `path` is where a run of this repository would be.
    pub fn holds(&self, path: &Path) -> bool {
        path.parent()
            .is_some_and(|p| p == self.dir() || p == self.root.join(LEGACY[0]).join(LEGACY[1]))
    }
}

/// `base` joined with `names`, each step a real directory (made when `create` and missing),
/// never a symlink to one.
fn real_chain(base: &Path, names: &[&str], create: bool) -> io::Result<PathBuf> {
    let mut at = base.to_path_buf();
    for name in names {
        at.push(name);
        real_dir(&at, create)?;
    }
    Ok(at)
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
