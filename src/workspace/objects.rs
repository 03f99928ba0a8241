//! Borrowed objects: a task's checkout reads the user's object store through git alternates
//! instead of copying it, so a checkout costs its working tree, whatever the history's size.
//! The store is mounted read-only into the task's container (and the collection sandbox) at
//! `OBJECTS_MOUNT`, the path the checkout's `objects/info/alternates` names; new objects land in
//! the checkout's own store. Read-only, so a task can neither write nor delete the user's
//! objects (`git gc` and `git repack` in the checkout work locally: gc repacks with `-l`, and
//! prune only looks at the checkout's own store).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::git::git;

/// Where a task's container sees the user's object store (read-only).
pub const OBJECTS_MOUNT: &str = "/run/sandpen/objects";

/// What a borrowing checkout takes from the user's repository.
#[derive(Debug, Clone, PartialEq)]
pub struct Borrowed {
    /// The object store the checkout's alternates name.
    pub objects: PathBuf,
    /// The user's current branch and its commit (`refs/heads/...`), which a clone of the
    /// repository would have had too; None when HEAD is detached.
    pub head: Option<(String, String)>,
}

/// The user's object store, when a checkout can borrow it: not when the repository borrows
/// from another store itself (its alternates name host paths a container cannot see), nor
/// when tasks run as another user (root's repositories) and the store is not readable by all.
/// Those repositories get a full copy, as before; so do repositories of another object format
/// than SHA-1 (a borrowing checkout is made by `git init`, which would need to be told it).
pub async fn shareable(root: &Path, tasks_run_as_owner: bool) -> Option<Borrowed> {
    let args = [
        "rev-parse",
        "--path-format=absolute",
        "--git-common-dir",
        "--show-object-format",
        "HEAD",
        "--symbolic-full-name",
        "HEAD",
    ];
    let out = git(root, args).await.ok()?;
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    let [common, format, oid, name] = lines[..] else {
        return None;
    };
    if format != "sha1" {
        return None;
    }
    let objects = PathBuf::from(common).join("objects");
    if !objects.is_dir() {
        return None;
    }
    let info = objects.join("info");
    let borrows = ["alternates", "http-alternates"]
        .iter()
        .any(|f| std::fs::read_to_string(info.join(f)).is_ok_and(|text| !text.trim().is_empty()));
    if borrows || !(tasks_run_as_owner || readable_by_all(&objects)) {
        return None;
    }
    let head = name
        .starts_with("refs/heads/")
        .then(|| (name.to_string(), oid.to_string()));
    Some(Borrowed { objects, head })
}

/// Whether the store's directories and pack files are open to every user (git makes them so
/// under the usual umask 022; a umask of 077 does not). Loose objects are judged by their
/// directories.
fn readable_by_all(objects: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let open =
        |p: &Path, bits: u32| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & bits == bits);
    let pack = objects.join("pack");
    let packs_open = std::fs::read_dir(&pack).map_or(true, |entries| {
        entries
            .flatten()
            .all(|e| open(&e.path(), if e.path().is_dir() { 0o005 } else { 0o004 }))
    });
    let loose_open = std::fs::read_dir(objects).is_ok_and(|entries| {
        entries
            .flatten()
            .filter(|e| e.file_name().len() == 2)
            .all(|e| open(&e.path(), 0o005))
    });
    open(objects, 0o005) && (!pack.exists() || open(&pack, 0o005)) && packs_open && loose_open
}

/// Makes a fresh checkout's index match its files exactly, so that git in the task never hashes
/// an unchanged file again. It would: handing the checkout over changes every file's owner and
/// ctime, and files written in the same second as the index are "racily clean", which `git add`
/// treats as changed. And git writes an object it cannot freshen (touch) in the read-only
/// borrowed store anew, locally: a `git add -A` would copy the whole tree's blobs into the
/// checkout. So the fresh files' times go two seconds back and the index records their stat
/// data (`index_stat`); for an index it cannot patch, git refreshes it, comparing every file's
/// content and writing nothing. Only an optimisation: a failure costs disk.
pub async fn settle_index(checkout: &Path) {
    let tree = checkout.to_path_buf();
    let patched = tokio::task::spawn_blocking(move || {
        super::index_stat::backdate_and_record(&tree, Duration::from_secs(2))
    })
    .await;
    match patched {
        Ok(Ok(_)) => return,
        Ok(Err(why)) => tracing::debug!("recording the index's stat data: {why}; git refreshes it"),
        Err(e) => tracing::debug!("recording the index's stat data: {e}"),
    }
    let tree = checkout.to_path_buf();
    let back = tokio::task::spawn_blocking(move || backdate_files(&tree, Duration::from_secs(2)));
    if back.await.is_ok_and(|r| r.is_ok()) {
        let _ = git(checkout, ["update-index", "-q", "--refresh"]).await;
    }
}

/// Sets the modification time of every file of the working tree (not .git's, not following
/// links) `by` into the past. The checkout is fresh: nothing of the task's is in it yet.
fn backdate_files(tree: &Path, by: Duration) -> std::io::Result<()> {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
    let then = SystemTime::now()
        .checked_sub(by)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .unwrap_or_default();
    let when = Timespec {
        tv_sec: then.as_secs() as i64,
        tv_nsec: then.subsec_nanos().into(),
    };
    let times = Timestamps {
        last_access: when,
        last_modification: when,
    };
    let walk = walkdir::WalkDir::new(tree)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| !(e.depth() == 1 && e.file_name() == ".git"));
    for entry in walk {
        let entry = entry.map_err(std::io::Error::other)?;
        if entry.file_type().is_file() {
            utimensat(CWD, entry.path(), &times, AtFlags::SYMLINK_NOFOLLOW)?;
        }
    }
    Ok(())
}

/// Points a fresh checkout's store at `OBJECTS_MOUNT`, where its container sees the user's.
/// Host-side git never reads the checkout after this (the collection sandbox does, with the
/// same mount), and the sandbox points it back at the host's path when it is done, so the
/// user can look at the checkout with git.
pub fn point_at_mount(checkout: &Path) -> std::io::Result<()> {
    std::fs::write(
        checkout.join(".git/objects/info/alternates"),
        format!("{OBJECTS_MOUNT}\n"),
    )
}
