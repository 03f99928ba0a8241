//! Bringing what the sandbox bundled into the user's repository, under sandpen's names:
//! HEAD as `sandpen/<task>/<run>`, every other branch the task created or moved as
//! `sandpen/<task>/<run>+<branch>` (git cannot hold both `x` and `x/y` as branches), and the
//! commits no branch reaches as `refs/sandpen/<task>/<run>/unreachable-<n>`. Only refs named
//! here are fetched, every object checked; names from the sandbox are checked before use.

use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::sandbox::Hints;
use super::{BranchResult, CollectError, Collected, Job, NestedRepo};

/// The largest bundle the host accepts.
const BUNDLE_LIMIT: u64 = 16 << 30;

pub(super) async fn import(job: &Job<'_>, out_dir: &Path, hints: Hints) -> Result<Collected, CollectError> {
    let repo = job.repo;
    let head_ref = format!("sandpen/{}/{}", job.task, job.owner.run_id);
    let copy = job.run.bundle_copy(job.task);
    let in_bundle: HashSet<String> = if hints.bundle {
        copy_regular_file(&out_dir.join("result.bundle"), &copy, BUNDLE_LIMIT)?;
        let heads = repo.bundle_heads(&copy).await?;
        heads.into_iter().map(|(_, name)| name).collect()
    } else {
        HashSet::new()
    };

    let mut fetch: Vec<(String, String)> = Vec::new();
    let head_in_bundle = in_bundle.contains("HEAD");
    if head_in_bundle {
        fetch.push(("HEAD".into(), format!("refs/heads/{head_ref}")));
    }
    // The other branches: fetched when the bundle has them, pointed at history the user's
    // repository already holds otherwise.
    let mut to_point: Vec<(String, String)> = Vec::new();
    let mut branches: Vec<(String, String)> = Vec::new();
    for (i, (oid, name)) in hints.branches.iter().enumerate() {
        if hints.head_branch.as_ref() == Some(name) || oid == job.base {
            continue;
        }
        let dest = if safe_name(name) {
            format!("{head_ref}+{name}")
        } else {
            format!("{head_ref}+branch-{}", i + 1)
        };
        let src = format!("refs/heads/{name}");
        if in_bundle.contains(&src) && safe_name(name) {
            fetch.push((src, format!("refs/heads/{dest}")));
        } else {
            to_point.push((dest.clone(), oid.clone()));
        }
        branches.push((shown(name), dest));
    }
    let mut unreachable_refs = Vec::new();
    for (n, _) in &hints.unreachable {
        let src = format!("refs/sandpen-collect/unreachable-{n}");
        if in_bundle.contains(&src) {
            let dest = repo
                .free_ref(&format!(
                    "refs/sandpen/{}/{}/unreachable-{n}",
                    job.task, job.owner.run_id
                ))
                .await;
            fetch.push((src, dest.clone()));
            unreachable_refs.push(dest);
        }
    }
    let fetched = repo.fetch_bundle(&copy, &fetch).await;
    // sandpen's own copies; the commits are in the user's repository now (or the error says
    // why not, and the checkout keeps them).
    let _ = std::fs::remove_file(&copy);
    let _ = std::fs::remove_file(out_dir.join("result.bundle"));
    fetched?;

    let head = if head_in_bundle {
        Some(repo.commit_of(&format!("refs/heads/{head_ref}")).await?)
    } else {
        match &hints.head {
            Some(h) if h != job.base => {
                repo.point_branch(&head_ref, h).await?;
                Some(h.clone())
            }
            _ => None,
        }
    };
    for (dest, oid) in &to_point {
        repo.point_branch(dest, oid).await?;
    }
    let mut c = Collected {
        head: hints.head.clone(),
        head_branch: hints.head_branch.as_deref().map(shown),
        left_out: hints.left_out,
        left_out_large: hints.left_out_large,
        unreachable_commits: hints.unreachable_commits,
        unreachable_refs,
        tags: hints.tags.iter().map(|(_, name)| shown(name)).collect(),
        branches_not_collected: hints.branches_over.unwrap_or(0),
        nested_repos: nested(hints.nested_files, hints.nested_kept),
        ..Default::default()
    };
    for (task_branch, branch) in branches {
        let tip = repo.commit_of(&format!("refs/heads/{branch}")).await?;
        let commits = repo.count_commits(job.base, &tip).await?;
        c.branches.push(BranchResult {
            task_branch,
            branch,
            commits,
            tip: Some(tip),
        });
    }
    if let Some(head) = head {
        c.commits = repo.count_commits(job.base, &head).await?;
        c.salvaged = hints.salvaged && repo.is_salvage(&head).await?;
        c.branch = Some(head_ref);
        c.head = Some(head);
    }
    Ok(c)
}

fn nested(files: Vec<String>, kept: Vec<(String, String)>) -> Vec<NestedRepo> {
    let files = files.into_iter().map(|p| NestedRepo {
        path: shown(&p),
        salvaged: true,
        reason: None,
    });
    let kept = kept.into_iter().map(|(p, why)| NestedRepo {
        path: shown(&p),
        salvaged: false,
        reason: Some(shown(&why)),
    });
    files.chain(kept).collect()
}

/// A branch name sandpen uses as part of its own ref names: a conservative subset of what git
/// allows (letters, digits, `._-+/`, no empty or dot-led component, no `..`, no `.lock`).
fn safe_name(name: &str) -> bool {
    name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+/".contains(&b))
        && !name.contains("..")
        && name
            .split('/')
            .all(|c| !c.is_empty() && !c.starts_with('.') && !c.ends_with(".lock"))
        && !name.ends_with('.')
}

/// A name from the sandbox as the report shows it: as is when plain, quoted when unusual.
fn shown(name: &str) -> String {
    if name.chars().all(|c| !c.is_control()) && name.len() <= 500 {
        name.to_string()
    } else {
        format!("{:?}", name.chars().take(500).collect::<String>())
    }
}

/// Copies `from` to `to` if it is a regular file (not a symlink, FIFO or device) of at most
/// `limit` bytes; opening never blocks and never follows a link.
pub(super) fn copy_regular_file(from: &Path, to: &Path, limit: u64) -> Result<(), CollectError> {
    let bad = |why: String| CollectError::Bundle(format!("{}: {why}", from.display()));
    let file = open_regular_file(from, limit)?;
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| bad(e.to_string()))?;
    }
    let mut dest = std::fs::File::create(to).map_err(|e| bad(e.to_string()))?;
    std::io::copy(&mut file.take(limit), &mut dest).map_err(|e| bad(e.to_string()))?;
    Ok(())
}

/// Opens `from` if it is a regular file of at most `limit` bytes, without blocking and without
/// following a link: a file a task could have written is read as data, never as a FIFO.
pub(super) fn open_regular_file(from: &Path, limit: u64) -> Result<std::fs::File, CollectError> {
    let bad = |why: String| CollectError::Bundle(format!("{}: {why}", from.display()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(from)
        .map_err(|e| bad(e.to_string()))?;
    let meta = file.metadata().map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    if meta.len() > limit {
        return Err(bad(format!("larger than {limit} bytes")));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn only_plain_branch_names_become_part_of_sandpens_names() {
        for ok in ["feature", "feature/x-1", "v1.2", "a+b", "fix_2"] {
            assert!(safe_name(ok), "{ok}");
        }
        for bad in [
            "", "a..b", ".hidden", "a/.b", "x.lock", "a//b", "/a", "a/", "a b", "a:b", "a*", "é", "end.",
        ] {
            assert!(!safe_name(bad), "{bad:?}");
        }
        assert_eq!(shown("plain/name"), "plain/name");
        assert_eq!(shown("bell\u{7}"), "\"bell\\u{7}\"");
    }

    #[test]
    fn only_regular_files_are_copied_and_never_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("b"), dir.path().join("copy/b"));
        std::fs::write(&src, b"bundle").unwrap();
        copy_regular_file(&src, &dst, 100).unwrap();
        assert_eq!(std::fs::read(&dst).unwrap(), b"bundle");
        assert!(copy_regular_file(&src, &dst, 3).is_err(), "over the bound");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&src, &link).unwrap();
        assert!(copy_regular_file(&link, &dst, 100).is_err(), "a symlink");
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let t = Instant::now();
        assert!(copy_regular_file(&fifo, &dst, 100).is_err(), "a FIFO");
        assert!(t.elapsed() < Duration::from_secs(1), "without blocking");
    }
}
