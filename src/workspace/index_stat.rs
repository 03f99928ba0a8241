//! Settling a fresh checkout's index without hashing its files: each tracked file's time goes
//! back, and the index records the files' stat data as they now are. This is what
//! `git update-index --refresh` would record, without reading every file to prove its content
//! unchanged: sandpen knows it is, as git has just written the files and nothing else has
//! run in the checkout. On 16 checkouts at once the refresh's hashing (every file, on every
//! checkout) was the largest of sandpen's own steps.
//!
//! Only the plain format is patched (index version 2 or 3, SHA-1, no split index, no sparse
//! directories), in place: the stat fields of each entry and the trailing checksum; every
//! other byte stays. Anything else is an error, and the caller refreshes with git instead.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use sha1::{Digest, Sha1};

const HASH_LEN: usize = 20;
/// ctime, mtime (seconds and nanoseconds), dev, ino, mode, uid, gid, size: 32 bits each.
const STAT_LEN: usize = 40;
const FLAGS_AT: usize = STAT_LEN + HASH_LEN;

/// One entry of the index, as far as this module cares.
#[derive(Debug)]
struct Entry {
    /// Where its stat data starts.
    at: usize,
    path: Vec<u8>,
    mode: u32,
    size: u32,
    /// Merged (stage 0), in the working tree (not skip-worktree).
    plain: bool,
}

/// Sets every tracked file's modification time `by` into the past and records the files'
/// stat data in `checkout`'s index. Returns the number of entries recorded; Err says why the
/// index was left alone (files already moved back stay so, which is harmless).
pub fn backdate_and_record(checkout: &Path, by: Duration) -> Result<usize, String> {
    let git_dir = checkout.join(".git");
    let index = git_dir.join("index");
    let mut data = std::fs::read(&index).map_err(|e| format!("reading the index: {e}"))?;
    let meta = std::fs::metadata(&index).map_err(|e| format!("reading the index: {e}"))?;
    let entries = parse(&data)?;
    let checksum_at = data.len() - HASH_LEN;
    let unhashed = data[checksum_at..].iter().all(|b| *b == 0); // index.skipHash
    if !unhashed && Sha1::digest(&data[..checksum_at])[..] != data[checksum_at..] {
        return Err("the index's checksum is not SHA-1 (another object format?)".into());
    }
    let then = SystemTime::now()
        .checked_sub(by)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .ok_or("the clock is before 1970")?;
    let when = rustix::fs::Timespec {
        tv_sec: then.as_secs() as i64,
        tv_nsec: then.subsec_nanos().into(),
    };
    let times = rustix::fs::Timestamps {
        last_access: when,
        last_modification: when,
    };
    let mut recorded = 0;
    for e in &entries {
        let kind = e.mode & 0o170000;
        if !e.plain || !(kind == 0o100000 || kind == 0o120000) {
            continue; // submodules, conflicts, sparse entries: left as git wrote them
        }
        let path = checkout.join(OsStr::from_bytes(&e.path));
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &path,
            &times,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| format!("setting the time of {}: {e}", path.display()))?;
        let st = std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let same_kind = if kind == 0o120000 {
            st.file_type().is_symlink()
        } else {
            st.file_type().is_file()
        };
        if !same_kind || st.size() as u32 != e.size {
            return Err(format!("{} is not what the index says", path.display()));
        }
        // As git's fill_stat_data truncates them.
        let fields = [
            st.ctime() as u32,
            st.ctime_nsec() as u32,
            st.mtime() as u32,
            st.mtime_nsec() as u32,
            st.dev() as u32,
            st.ino() as u32,
            e.mode,
            st.uid(),
            st.gid(),
            e.size,
        ];
        for (i, v) in fields.iter().enumerate() {
            data[e.at + 4 * i..e.at + 4 * i + 4].copy_from_slice(&v.to_be_bytes());
        }
        recorded += 1;
    }
    if !unhashed {
        let sum = Sha1::digest(&data[..checksum_at]);
        data[checksum_at..].copy_from_slice(&sum);
    }
    write_as_git_does(&git_dir, &data, &meta).map_err(|e| format!("writing the index: {e}"))?;
    Ok(recorded)
}

/// Through `index.lock`, as git writes it (a git that holds the lock makes this fail), with
/// the old file's owner and mode.
fn write_as_git_does(git_dir: &Path, data: &[u8], was: &std::fs::Metadata) -> std::io::Result<()> {
    let lock = git_dir.join("index.lock");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(was.mode() & 0o777)
        .open(&lock)?;
    let written = file
        .write_all(data)
        .and_then(|()| std::os::unix::fs::fchown(&file, Some(was.uid()), Some(was.gid())))
        .and_then(|()| file.set_permissions(was.permissions())) // whatever the umask
        .and_then(|()| std::fs::rename(&lock, git_dir.join("index")));
    if written.is_err() {
        let _ = std::fs::remove_file(&lock);
    }
    written
}

fn be32(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(data[at..at + 4].try_into().expect("4 bytes"))
}

/// The entries of an index of version 2 or 3 (git's index-format.txt).
fn parse(data: &[u8]) -> Result<Vec<Entry>, String> {
    if data.len() < 12 + HASH_LEN || &data[..4] != b"DIRC" {
        return Err("not an index file".into());
    }
    let version = be32(data, 4);
    if !(2..=3).contains(&version) {
        return Err(format!("index version {version}"));
    }
    let end = data.len() - HASH_LEN;
    let count = be32(data, 8) as usize;
    let mut entries = Vec::with_capacity(count);
    let mut at = 12;
    for _ in 0..count {
        if at + FLAGS_AT + 2 > end {
            return Err("the index ends inside an entry".into());
        }
        let flags = u16::from_be_bytes([data[at + FLAGS_AT], data[at + FLAGS_AT + 1]]);
        let extended = flags & 0x4000 != 0;
        if extended && version < 3 {
            return Err("extended flags in a version 2 index".into());
        }
        let mut name_at = at + FLAGS_AT + 2;
        let mut skip_worktree = false;
        if extended {
            if name_at + 2 > end {
                return Err("the index ends inside an entry".into());
            }
            let more = u16::from_be_bytes([data[name_at], data[name_at + 1]]);
            skip_worktree = more & 0x4000 != 0;
            name_at += 2;
        }
        let nul = data[name_at..end]
            .iter()
            .position(|b| *b == 0)
            .ok_or("a path without its end")?;
        let len = match (flags & 0xfff) as usize {
            0xfff => nul,
            n if n == nul => n,
            _ => return Err("a path whose length disagrees with its flags".into()),
        };
        entries.push(Entry {
            at,
            path: data[name_at..name_at + len].to_vec(),
            mode: be32(data, at + 24),
            size: be32(data, at + 36),
            plain: (flags >> 12) & 3 == 0 && !skip_worktree,
        });
        // 1 to 8 NULs pad the entry to a multiple of 8 bytes.
        at += (name_at - at + len + 8) & !7;
    }
    // Extensions follow; a split index ("link") or sparse directories ("sdir") keep entries
    // elsewhere or in another form.
    while at + 8 <= end {
        let (sig, size) = (&data[at..at + 4], be32(data, at + 4) as usize);
        if sig == b"link" || sig == b"sdir" {
            return Err(format!(
                "the index has the {} extension",
                String::from_utf8_lossy(sig)
            ));
        }
        at += 8 + size;
    }
    if at != end {
        return Err("the index's extensions do not end at its checksum".into());
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::super::git::git_blocking as git;
    use super::*;

    /// A repository of plain, executable, linked, nested and long-named files, cloned; then
    /// the git command `rewrite`, if any, rewrites the clone's index.
    fn fresh_checkout(rewrite: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let origin = dir.path().join("origin");
        std::fs::create_dir_all(origin.join("a/b")).unwrap();
        git(&origin, &["init", "-q"]);
        std::fs::write(origin.join("plain.txt"), "plain\n").unwrap();
        std::fs::write(origin.join("a/b/deep.txt"), "deep\n").unwrap();
        std::fs::write(origin.join("a/run.sh"), "#!/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("plain.txt", origin.join("link")).unwrap();
        // A long path (one past the 12 bits of an entry's length, 4095 bytes, would not fit
        // the kernel's limit under a temporary directory).
        let long: std::path::PathBuf = (0..4).map(|i| format!("{i}{}", "n".repeat(250))).collect();
        std::fs::create_dir_all(origin.join(&long)).unwrap();
        std::fs::write(origin.join(&long).join("f"), "long name\n").unwrap();
        git(&origin, &["update-index", "--add", "--chmod=+x", "a/run.sh"]);
        git(&origin, &["add", "-A"]);
        git(&origin, &["commit", "-qm", "c"]);
        git(dir.path(), &["clone", "-q", "origin", "work"]);
        if !rewrite.is_empty() {
            git(&dir.path().join("work"), rewrite);
        }
        dir
    }

    #[test]
    fn git_finds_every_file_clean_without_refreshing() {
        let skip_hash = ["-c", "index.skipHash=true", "update-index", "--force-write-index"];
        // Version 3 only with an entry that needs its extended flags (git writes 2 otherwise).
        let v3 = ["update-index", "--skip-worktree", "a/b/deep.txt"];
        for config in [&[][..], &v3, &skip_hash] {
            let dir = fresh_checkout(config);
            let work = dir.path().join("work");
            let index = std::fs::read(work.join(".git/index")).unwrap();
            assert_eq!(index.ends_with(&[0; HASH_LEN]), config == skip_hash);
            assert_eq!(be32(&index, 4), if config == v3 { 3 } else { 2 });
            let before = git(&work, &["ls-files", "-s"]);
            // A skip-worktree entry is left as it is.
            let plain = if config == v3 { 4 } else { 5 };
            assert_eq!(
                backdate_and_record(&work, Duration::from_secs(2)),
                Ok(plain),
                "{config:?}"
            );
            // diff-files trusts the stat data: an entry it does not match is listed.
            assert_eq!(git(&work, &["diff-files", "--name-only"]), "", "{config:?}");
            assert_eq!(git(&work, &["ls-files", "-s"]), before, "{config:?}");
            let mtime = std::fs::metadata(work.join("plain.txt"))
                .unwrap()
                .modified()
                .unwrap();
            let age = SystemTime::now().duration_since(mtime).unwrap();
            assert!(age >= Duration::from_secs(2), "{age:?}");
            // And the index is whole, as git reads it.
            assert_eq!(git(&work, &["status", "--porcelain"]), "", "{config:?}");
            git(&work, &["fsck", "--no-progress"]);
        }
    }

    #[test]
    fn a_changed_file_or_an_unknown_format_is_left_to_git() {
        let dir = fresh_checkout(&[]);
        let work = dir.path().join("work");
        std::fs::write(work.join("plain.txt"), "longer than before\n").unwrap();
        let index = std::fs::read(work.join(".git/index")).unwrap();
        assert!(backdate_and_record(&work, Duration::from_secs(2)).is_err());
        assert_eq!(
            std::fs::read(work.join(".git/index")).unwrap(),
            index,
            "untouched"
        );

        let dir = fresh_checkout(&["update-index", "--index-version", "4"]);
        let err = backdate_and_record(&dir.path().join("work"), Duration::from_secs(2)).unwrap_err();
        assert!(err.contains("version 4"), "{err}");
        let dir = fresh_checkout(&["update-index", "--split-index"]);
        let err = backdate_and_record(&dir.path().join("work"), Duration::from_secs(2)).unwrap_err();
        assert!(err.contains("link"), "{err}");
    }

    #[test]
    fn a_cut_or_garbled_index_is_an_error_not_a_panic() {
        let dir = fresh_checkout(&["update-index", "--skip-worktree", "plain.txt"]);
        let index = std::fs::read(dir.path().join("work/.git/index")).unwrap();
        assert_eq!(be32(&index, 4), 3);
        for cut in 0..index.len() {
            let _ = parse(&index[..cut]);
        }
        let mut garbled = index.clone();
        for i in 12..garbled.len() {
            garbled[i] = 0xff;
            let _ = parse(&garbled);
        }
        assert!(parse(&index).is_ok());
        // An extended entry whose flags end where the checksum begins.
        let mut short = index[..12 + FLAGS_AT + 2].to_vec();
        short[12 + FLAGS_AT] |= 0x40;
        short.extend([0; HASH_LEN]);
        assert!(parse(&short).is_err());
    }

    #[test]
    fn a_git_holding_the_lock_wins() {
        let dir = fresh_checkout(&[]);
        let work = dir.path().join("work");
        std::fs::write(work.join(".git/index.lock"), "").unwrap();
        let err = backdate_and_record(&work, Duration::from_secs(2)).unwrap_err();
        assert!(err.contains("exists"), "{err}");
        assert!(work.join(".git/index.lock").exists(), "its lock stays");
    }
}
