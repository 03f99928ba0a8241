//! git for unit tests: in a directory, with an identity, failing the test when git fails.

use std::path::Path;
use std::process::Command;

/// `git ARGS` in `dir` (author and committer "t"); its stdout. Panics with git's stderr when
/// it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
