//! The agent's session: the CLI keeps its conversation in
//! `$HOME/.claude/projects/<cwd as a name>/<session-id>.jsonl`. sandpen mounts a directory of
//! the run there (one per task, kept across its attempts), so the transcript outlives the
//! container, and a rerun starts the CLI with `--resume <id>` and a short prompt saying why the
//! last attempt stopped: the WorkflowManager continues instead of starting over.
//!
//! The task writes that directory, so sandpen trusts nothing in it: a session id is used only
//! when it is a plain id, a transcript only when it is a regular file reached without a link,
//! within `LIMIT`; credentials the container had are scrubbed from it once the container is
//! gone.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::spec::{HOME, WORKDIR};

/// The most one transcript may hold to be resumed (the task's disk limit bounds the directory
/// while it runs: it counts there).
pub const LIMIT: u64 = 64 << 20;

/// What a credential becomes in a kept transcript.
pub const REDACTED: &str = "[redacted by sandpen]";

/// The longest message of the last attempt a resume prompt quotes.
const MESSAGE_LIMIT: usize = 600;

/// The attempt's session, as the report records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUse {
    /// The session the CLI ran (its init event's `session_id`, when a plain id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The earlier attempt's session this one resumed (`--resume`); none when it started over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<String>,
}

/// How an attempt resumes its task's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub session_id: String,
    /// What the CLI gets on stdin instead of the task's prompt.
    pub prompt: String,
}

/// Where the directory is mounted in the task's container.
pub fn mount_target() -> String {
    format!("{HOME}/.claude/projects")
}

/// The CLI's name for the checkout's folder: its path with `/` as `-`.
fn project() -> String {
    WORKDIR.replace('/', "-")
}

/// Whether `id` is a plain session id (the CLI's are UUIDs): it goes onto a command line.
pub fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The transcript of session `id` in `dir`.
pub fn transcript(dir: &Path, id: &str) -> PathBuf {
    dir.join(project()).join(format!("{id}.jsonl"))
}

/// Makes the task's session directory (kept when it is there: an earlier attempt's), owned by
/// `owner` when the task runs as another user than sandpen.
pub fn prepare(dir: &Path, owner: Option<(u32, u32)>) -> std::io::Result<()> {
    if std::fs::symlink_metadata(dir).is_ok_and(|m| !m.is_dir()) {
        return Err(std::io::Error::other(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir)?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::lchown(dir, Some(uid), Some(gid))?;
    }
    Ok(())
}

/// Whether session `id` in `dir` can be resumed; Err says why not.
pub fn resumable(dir: &Path, id: &str) -> Result<(), String> {
    if !valid_id(id) {
        return Err(format!("{id:?} is not a session id"));
    }
    let none = || Err(format!("no transcript of its session {id} was kept"));
    let project = dir.join(project());
    for p in [dir, &project] {
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("{} is not a directory", p.display())),
            Err(_) => return none(),
        }
    }
    let path = transcript(dir, id);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() && m.len() <= LIMIT => Ok(()),
        Ok(m) if m.is_file() => Err(format!("its transcript is over {} MiB", LIMIT >> 20)),
        Ok(_) => Err(format!("{} is not a regular file", path.display())),
        Err(_) => none(),
    }
}

/// The prompt of a resumed attempt: why the last one stopped, and to go on from there.
pub fn resume_prompt(attempt: u32, status: &str, message: Option<&str>) -> String {
    let why = match message {
        Some(m) if m.chars().count() > MESSAGE_LIMIT => {
            let cut: String = m.chars().take(MESSAGE_LIMIT).collect();
            format!(": {cut}...")
        }
        Some(m) => format!(": {m}"),
        None => String::new(),
    };
    format!(
        "sandpen: attempt {attempt} of this task stopped ({status}{why}). This is attempt {}, \
         in the same checkout with that attempt's work (committed, or salvaged into a commit). \
         Continue the task from where it stopped, in the workflow phase you were in; do not \
         start over.\n",
        attempt + 1
    )
}

/// Replaces each of `secrets` (those of 8 bytes or more) in every transcript under `dir` by
/// `REDACTED`, without following links; the files keep their owner and mode. Run once the
/// container is gone. Returns how many files changed.
pub fn scrub(dir: &Path, secrets: &[String]) -> std::io::Result<usize> {
    let secrets: Vec<&[u8]> = secrets
        .iter()
        .map(|s| s.as_bytes())
        .filter(|s| s.len() >= 8)
        .collect();
    if secrets.is_empty() || std::fs::symlink_metadata(dir).is_err() {
        return Ok(0);
    }
    let mut changed = 0;
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let entry = entry.map_err(std::io::Error::other)?;
        if entry.file_type().is_file() && scrub_file(entry.path(), &secrets)? {
            changed += 1;
        }
    }
    Ok(changed)
}

/// One file, line by line (a line holds a whole JSON record); rewritten only when a secret
/// was in it.
fn scrub_file(path: &Path, secrets: &[&[u8]]) -> std::io::Result<bool> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    let meta = file.metadata()?;
    let mut reader = BufReader::new(file);
    let tmp = path.with_extension("scrub-tmp");
    let mut out: Option<std::io::BufWriter<File>> = None;
    let (mut line, mut before) = (Vec::new(), Vec::new());
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let clean = redact(&line, secrets);
        if out.is_none() && clean != line {
            // The first secret: from here on the file is written anew.
            let mut w = std::io::BufWriter::new(
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)?,
            );
            w.write_all(&before)?;
            out = Some(w);
        }
        match out.as_mut() {
            Some(w) => w.write_all(&clean)?,
            None => before.extend_from_slice(&line),
        }
    }
    let Some(w) = out else { return Ok(false) };
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))?;
    file.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    std::fs::rename(&tmp, path)?;
    Ok(true)
}

fn redact(line: &[u8], secrets: &[&[u8]]) -> Vec<u8> {
    let mut out = line.to_vec();
    for s in secrets {
        let mut i = 0;
        let mut next = Vec::with_capacity(out.len());
        while i < out.len() {
            if out[i..].starts_with(s) {
                next.extend_from_slice(REDACTED.as_bytes());
                i += s.len();
            } else {
                next.push(out[i]);
                i += 1;
            }
        }
        out = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_id_and_a_regular_transcript_are_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let id = "e0f13148-a9d5-4c83-a15e-fcc8deb5c0bb";
        assert!(resumable(dir.path(), id).unwrap_err().contains("no transcript"));
        std::fs::write(dir.path().join("-workspace"), "").unwrap();
        assert!(resumable(dir.path(), id).unwrap_err().contains("not a directory"));
        std::fs::remove_file(dir.path().join("-workspace")).unwrap();
        std::fs::create_dir_all(dir.path().join("-workspace")).unwrap();
        assert!(resumable(dir.path(), id).unwrap_err().contains("no transcript"));
        std::fs::write(transcript(dir.path(), id), "{}\n").unwrap();
        assert_eq!(resumable(dir.path(), id), Ok(()));
        for bad in ["", "../x", "a b", "--help;x", "a/b"] {
            assert!(!valid_id(bad) && resumable(dir.path(), bad).is_err(), "{bad:?}");
        }
        // A link the task made, to a file of the host's: not followed.
        std::os::unix::fs::symlink("/etc/passwd", transcript(dir.path(), "linked")).unwrap();
        assert!(
            resumable(dir.path(), "linked")
                .unwrap_err()
                .contains("not a regular file")
        );
    }

    #[test]
    fn credentials_are_scrubbed_and_the_file_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("-workspace");
        std::fs::create_dir_all(&project).unwrap();
        let path = project.join("s.jsonl");
        let text = "{\"a\":1}\n{\"env\":\"KEY=sk-secret-123 and sk-secret-123\"}\n{\"b\":2}\n";
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let clean = project.join("clean.jsonl");
        std::fs::write(&clean, "{\"c\":3}\n").unwrap();
        std::os::unix::fs::symlink(&clean, project.join("link.jsonl")).unwrap();
        let secrets = ["sk-secret-123".to_string(), "short".to_string()];
        assert_eq!(scrub(dir.path(), &secrets).unwrap(), 1);
        let after = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            after,
            format!("{{\"a\":1}}\n{{\"env\":\"KEY={REDACTED} and {REDACTED}\"}}\n{{\"b\":2}}\n")
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert_eq!(scrub(dir.path(), &secrets).unwrap(), 0, "nothing left to scrub");
        assert!(!project.join("s.scrub-tmp").exists());
    }

    #[test]
    fn the_resume_prompt_says_why_the_last_attempt_stopped() {
        let p = resume_prompt(1, "timed_out", Some("it ran past its timeout of 30s"));
        assert!(
            p.contains("attempt 1") && p.contains("timed_out: it ran past"),
            "{p}"
        );
        assert!(p.contains("attempt 2") && p.contains("do not start over"), "{p}");
        let long = "x".repeat(5000);
        assert!(resume_prompt(2, "failed", Some(&long)).len() < 1000);
        assert_eq!(mount_target(), "/home/sandpen/.claude/projects");
    }
}
