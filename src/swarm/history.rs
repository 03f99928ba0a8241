//! What a task on a Swarm gets of the user's object store: not the store (its history's size
//! per task, over the network) but one pack of what the checkout needs: every commit and tree
//! its refs reach (so `git log`, `git log -- PATH`, `git diff --name-status OLD NEW` and a
//! bundle against the base work), the blobs of its refs' trees (so `status`, `diff`, `commit` and
//! `checkout` of those refs work), and the blobs of the last `RECENT` commits up to
//! `RECENT_BLOB` bytes each (so `git show`, `log -p` and `diff HEAD~3` work on what changed
//! lately, large files aside). Older blobs are left out: the pack is marked a
//! promisor pack and the checkout a partial clone of a remote that is nowhere, so git knows
//! they are missing on purpose (`fsck`, `gc` and `repack` work) and a command that needs one
//! fails at once, naming that remote, instead of reading garbage or hanging.
//!
//! Made once per set of refs and kept for the run (tasks on one base share it), on sandpen's
//! side, by the git of sandpen's machine from the user's repository: nothing of a task's is
//! read. Served at `OBJECTS_MOUNT`, where the checkout's alternates already point.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The promisor remote the delivered checkout names: nothing answers there, and its name says
/// why to whoever reads git's error.
pub const REMOTE: &str = "sandpen-history-not-delivered";

/// How many of the latest commits keep their small blobs, and how small.
const RECENT: &str = "--max-count=20";
const RECENT_BLOB: &str = "--filter=blob:limit=256k";

/// The packs made for a run's tasks, by the refs they hold.
pub struct Packs {
    dir: tempfile::TempDir,
    made: Mutex<HashMap<String, PathBuf>>,
}

impl Packs {
    /// Packs kept in a new directory under `parent` (removed with this value).
    pub fn new_in(parent: &Path) -> std::io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("sandpen-history-")
            .tempdir_in(parent)?;
        Ok(Self {
            dir,
            made: Default::default(),
        })
    }

    /// A directory laid out as an object store (`pack/pack-*.{pack,idx,promisor}`) holding what
    /// the fresh checkout at `checkout` needs from `store`, the store it borrows. Blocking.
    pub fn for_checkout(&self, checkout: &Path, store: &Path) -> std::io::Result<PathBuf> {
        let git_dir = checkout.join(".git");
        let git = |args: &[&str], input: Option<&[u8]>| run_git(&git_dir, store, args, input);
        let mut tips: Vec<String> =
            String::from_utf8_lossy(&git(&["for-each-ref", "--format=%(objectname)"], None)?)
                .lines()
                .chain(std::iter::once(
                    String::from_utf8_lossy(&git(&["rev-parse", "HEAD"], None)?).trim(),
                ))
                .map(str::to_string)
                .collect();
        tips.sort();
        tips.dedup();
        // One at a time: two tasks on one base wait for the same pack rather than make two.
        let mut made = self.made.lock().unwrap();
        let key = tips.join(" ");
        if let Some(dir) = made.get(&key) {
            return Ok(dir.clone());
        }
        let mut args = vec!["rev-list", "--objects", "--filter=blob:none"];
        args.extend(tips.iter().map(String::as_str));
        let mut wanted = git(&args, None)?;
        let mut args = vec!["rev-list", "--objects", RECENT, RECENT_BLOB];
        args.extend(tips.iter().map(String::as_str));
        wanted.extend(git(&args, None)?);
        for tip in &tips {
            let listed = git(&["ls-tree", "-r", tip], None)?;
            for line in String::from_utf8_lossy(&listed).lines() {
                // "<mode> blob <oid>\t<path>": the path guides pack-objects' deltas.
                let (meta, path) = line.split_once('\t').unwrap_or((line, ""));
                let mut words = meta.split_whitespace().skip(1);
                if let (Some("blob"), Some(oid)) = (words.next(), words.next()) {
                    writeln!(wanted, "{oid} {path}")?;
                }
            }
        }
        let dir = self.dir.path().join(made.len().to_string());
        std::fs::create_dir_all(dir.join("pack"))?;
        let prefix = dir.join("pack/pack").display().to_string();
        let hash = git(&["pack-objects", "-q", &prefix], Some(&wanted))?;
        let hash = String::from_utf8_lossy(&hash).trim().to_string();
        std::fs::write(dir.join(format!("pack/pack-{hash}.promisor")), "")?;
        made.insert(key, dir.clone());
        Ok(dir)
    }
}

/// The checkout's git config as delivered with such a pack: a partial clone of `REMOTE`.
pub fn partial_config(checkout: &Path) -> std::io::Result<Vec<u8>> {
    let mut config = std::fs::read(checkout.join(".git/config"))?;
    // Later lines win: the format version goes up to 1, which extensions need.
    write!(
        config,
        "\n[core]\n\trepositoryformatversion = 1\n[extensions]\n\tpartialClone = {REMOTE}\n\
         [remote \"{REMOTE}\"]\n\turl = /{REMOTE}\n\tpromisor = true\n"
    )?;
    Ok(config)
}

/// Runs git on `git_dir` with `store` as an extra alternate (the checkout's own alternates
/// name the path its container sees, absent here); its output, or why it failed.
fn run_git(git_dir: &Path, store: &Path, args: &[&str], input: Option<&[u8]>) -> std::io::Result<Vec<u8>> {
    let mut child = Command::new("git")
        .args(crate::workspace::SAFE_GIT_CONFIG)
        .arg("--git-dir")
        .arg(git_dir)
        .args(args)
        .env("GIT_ALTERNATE_OBJECT_DIRECTORIES", store)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        // Written from a thread: git may fill its output pipe before it has read all of this.
        let data = data.to_vec();
        std::thread::spawn(move || stdin.write_all(&data));
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why.lines().rfind(|l| !l.contains("alternate object path"));
        return Err(std::io::Error::other(format!(
            "git {}: {}",
            args[0],
            why.unwrap_or("failed")
        )));
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_git::git as git_in;

    #[test]
    fn the_pack_holds_the_refs_trees_and_the_history_without_its_old_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user");
        std::fs::create_dir_all(&user).unwrap();
        git_in(&user, &["init", "-q"]);
        std::fs::write(user.join("old"), vec![7u8; 1 << 20]).unwrap();
        git_in(&user, &["add", "-A"]);
        git_in(&user, &["commit", "-qm", "old"]);
        git_in(&user, &["rm", "-q", "old"]);
        std::fs::write(user.join("a.txt"), "a\n").unwrap();
        git_in(&user, &["add", "-A"]);
        git_in(&user, &["commit", "-qm", "new"]);
        let co = dir.path().join("co");
        let co_s = co.display().to_string();
        git_in(dir.path(), &["clone", "-q", "--shared", "user", &co_s]);
        let store = user.join(".git/objects");
        // As a checkout is handed over: its alternates name the container's path.
        std::fs::write(co.join(".git/objects/info/alternates"), "/run/sandpen/objects\n").unwrap();
        let packs = Packs::new_in(dir.path()).unwrap();
        let got = packs.for_checkout(&co, &store).unwrap();
        assert_eq!(packs.for_checkout(&co, &store).unwrap(), got, "made once");
        std::fs::write(co.join(".git/config"), partial_config(&co).unwrap()).unwrap();
        std::fs::write(
            co.join(".git/objects/info/alternates"),
            format!("{}\n", got.display()),
        )
        .unwrap();
        let size: u64 = std::fs::read_dir(got.join("pack"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(size < 64 << 10, "the old 1 MiB blob stays behind: {size} bytes");
        assert_eq!(git_in(&co, &["log", "--format=%s"]), "new\nold\n");
        assert_eq!(git_in(&co, &["status", "--porcelain"]), "");
        git_in(&co, &["fsck", "--no-progress"]);
        let old = Command::new("git")
            .current_dir(&co)
            .args(["show", "HEAD~1:old"])
            .output()
            .unwrap();
        assert!(!old.status.success());
        assert!(String::from_utf8_lossy(&old.stderr).contains(REMOTE));
    }
}
