//! Measuring and removing a tree a task wrote, never through a symbolic link: a link the task
//! planted to a place outside its checkout is removed as a link. Only called once no
//! container of the run exists and its sandpen is gone, so nothing changes the tree meanwhile.

use std::collections::HashSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The disk the tree at `root` takes (allocated blocks, each inode once), not following links;
/// what cannot be read is not counted.
pub fn disk_usage(root: &Path) -> u64 {
    disk_usage_all(&[root.to_path_buf()])
}

/// The disk the trees at `roots` take together (like `du -s`): each inode once across them (a
/// hard link counts where it is first met, not again), never following symlinks; files that
/// vanish during the walk are skipped. The one measure of a task's disk, for its limit and for
/// `prune`.
pub fn disk_usage_all(roots: &[PathBuf]) -> u64 {
    let mut seen = HashSet::new();
    roots
        .iter()
        .flat_map(|r| walkdir::WalkDir::new(r).follow_links(false))
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.nlink() <= 1 || seen.insert((m.dev(), m.ino())))
        .map(|m| m.blocks() * 512)
        .sum()
}

/// Removes the tree at `root`; the disk it took. Directories the task left without write or
/// search permission for their owner (a read-only module cache) are opened up first: removing
/// an entry needs both on its directory.
pub fn remove_tree(root: &Path) -> std::io::Result<u64> {
    open_up(root)?;
    let bytes = disk_usage(root);
    // `remove_dir_all` removes links as links and does not follow them (std's is safe against
    // a link swapped in meanwhile, too).
    std::fs::remove_dir_all(root)?;
    Ok(bytes)
}

/// Gives the owner rwx on every directory under `root`, not following links. Iterative, so a
/// deeply nested tree cannot exhaust the stack.
fn open_up(root: &Path) -> std::io::Result<()> {
    let mut dirs: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let meta = std::fs::symlink_metadata(&dir)?;
        if !meta.file_type().is_dir() {
            continue;
        }
        let mode = meta.permissions().mode();
        if mode & 0o700 != 0o700 {
            // `dir` is a directory, not a link (checked just above, and nothing runs in the
            // tree), so this changes the directory itself.
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode | 0o700))?;
        }
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            // The entry's own type: a link to a directory is not one.
            if entry.file_type()?.is_dir() {
                dirs.push(entry.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_directories_go_and_links_out_of_the_tree_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep.txt"), "the user's").unwrap();
        std::fs::write(outside.join("big"), vec![9u8; 400_000]).unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o500)).unwrap();

        let tree = dir.path().join("checkout");
        let deep = tree.join("cache/mod/x");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("f"), vec![7u8; 10_000]).unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("link-dir")).unwrap();
        std::os::unix::fs::symlink(outside.join("keep.txt"), tree.join("link-file")).unwrap();
        for d in [&deep, &tree.join("cache/mod"), &tree.join("cache")] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o555)).unwrap();
        }
        // The tree's own file, not what its links point at.
        let used = disk_usage(&tree);
        assert!((10_000..200_000).contains(&used), "{used}");

        assert_eq!(remove_tree(&tree).unwrap(), used);
        assert!(std::fs::symlink_metadata(&tree).is_err());
        // Through neither link: the target and its mode are as they were.
        assert_eq!(
            std::fs::read_to_string(outside.join("keep.txt")).unwrap(),
            "the user's"
        );
        let mode = std::fs::metadata(&outside).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o500);
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[test]
    fn every_directory_is_opened_to_its_owner_and_no_link_target_is() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::create_dir(&target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o500)).unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::os::unix::fs::symlink(&target, tree.join("a/link")).unwrap();
        for (d, m) in [("a/b", 0o000), ("a", 0o555)] {
            std::fs::set_permissions(tree.join(d), std::fs::Permissions::from_mode(m)).unwrap();
        }
        open_up(&tree).unwrap();
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&tree.join("a")), 0o755);
        assert_eq!(mode(&tree.join("a/b")), 0o700);
        assert_eq!(mode(&target), 0o500, "a link's target is not changed");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[test]
    fn hard_links_are_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![1u8; 64 * 1024]).unwrap();
        let one = disk_usage(dir.path());
        std::fs::hard_link(dir.path().join("a"), dir.path().join("b")).unwrap();
        assert_eq!(disk_usage(dir.path()), one);
    }
}
