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

/// Gives every file under `root` (not following symlinks) to `uid:gid`.
pub fn chown_tree(root: &Path, (uid, gid): (u32, u32)) -> std::io::Result<()> {
    std::os::unix::fs::lchown(root, Some(uid), Some(gid))?;
    let meta = std::fs::symlink_metadata(root)?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(root)? {
            chown_tree(&entry?.path(), (uid, gid))?;
        }
    }
    Ok(())
}

/// The first symlink found under `root`, if any (not following symlinks).
pub fn find_symlink(root: &Path) -> std::io::Result<Option<std::path::PathBuf>> {
    let meta = std::fs::symlink_metadata(root)?;
    if meta.file_type().is_symlink() {
        return Ok(Some(root.to_path_buf()));
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(root)? {
            if let Some(p) = find_symlink(&entry?.path())? {
                return Ok(Some(p));
            }
        }
    }
    Ok(None)
}
