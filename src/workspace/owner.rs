//! File ownership: who owns the repository, and handing a checkout to the task's user.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The uid:gid tasks use when the repository belongs to root. The agent and probe images
/// have a user with these ids.
pub const UNPRIVILEGED: (u32, u32) = (1000, 1000);

pub fn owner_of(path: &Path) -> std::io::Result<(u32, u32)> {
    let m = std::fs::metadata(path)?;
    Ok((m.uid(), m.gid()))
}

/// Gives every file under `root` (not following symlinks) to `uid:gid`. Iterative, so a
/// task's deeply nested tree cannot exhaust the stack.
pub fn chown_tree(root: &Path, (uid, gid): (u32, u32)) -> std::io::Result<()> {
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let entry = entry.map_err(std::io::Error::other)?;
        let m = entry.metadata().map_err(std::io::Error::other)?;
        if (m.uid(), m.gid()) != (uid, gid) {
            std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid))?;
        }
    }
    Ok(())
}
