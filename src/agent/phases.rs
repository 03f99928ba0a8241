//! The WorkflowManager's 11 phases and the state file through which a task reports progress:
//! `.github/workflow-states/<task-id>/state.json` in its checkout.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const PHASES: [&str; 11] = [
    "initial setup",
    "issue creation",
    "branch management",
    "research and planning",
    "implementation",
    "testing",
    "documentation",
    "pull request",
    "review",
    "review response",
    "settings update",
];

/// Where a task stands, as its state file says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PhaseState {
    /// The current phase, 1 to 11.
    pub phase: u32,
    pub name: String,
    /// Phases marked completed, sorted, each 1 to 11.
    pub completed: Vec<u32>,
}

impl PhaseState {
    /// "phase 3/11: branch management"
    pub fn label(&self) -> String {
        format!("phase {}/{}: {}", self.phase, PHASES.len(), self.name)
    }
}

/// A phase announced in the agent's own words ("Phase 5: implementation", "phase 5/11"):
/// the stream's markers, for tasks whose state file is not (yet) there. Only a number from 1
/// to 11 right after the word, followed by `:`, `/`, `)`, `.`, ` -` or ` of`, counts.
pub fn marker(text: &str) -> Option<u32> {
    let lower = text.to_ascii_lowercase();
    let mut best = None;
    for (i, _) in lower.match_indices("phase ") {
        let rest = &lower[i + "phase ".len()..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).take(3).collect();
        let Ok(n) = digits.parse::<u32>() else { continue };
        let after = &rest[digits.len()..];
        let follows = [":", "/", ")", ".", " -", " of"]
            .iter()
            .any(|p| after.starts_with(p))
            || after.is_empty();
        if follows && (1..=PHASES.len() as u32).contains(&n) {
            best = best.max(Some(n));
        }
    }
    best
}

/// The state file of a task, relative to its checkout.
pub fn state_path(task_id: &str) -> PathBuf {
    Path::new(".github")
        .join("workflow-states")
        .join(task_id)
        .join("state.json")
}

/// The file as tasks write it; every field optional, unknown fields ignored. Agents write the
/// phase as `phase` or `current_phase`, and each phase as a number, a numeric string or a name.
#[derive(Deserialize)]
struct RawState {
    phase: Option<serde_json::Value>,
    current_phase: Option<serde_json::Value>,
    #[serde(default, alias = "completed_phases")]
    completed: Vec<serde_json::Value>,
}

/// The most of a state file read.
pub const STATE_LIMIT: u64 = 64 * 1024;

/// Reads a task's state file from its checkout on the host. The checkout belongs to the task,
/// so nothing on the way may be a symlink (it could point at the host's files), the file is
/// opened without following links and without blocking (a FIFO would block a plain open
/// forever), it must be a regular file, and only a bounded amount is read.
pub fn read_state(checkout: &Path, task_id: &str) -> Option<PhaseState> {
    let rel = state_path(task_id);
    let mut path = checkout.to_path_buf();
    for part in rel.components() {
        path.push(part);
        if std::fs::symlink_metadata(&path).ok()?.file_type().is_symlink() {
            return None;
        }
    }
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(&path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(STATE_LIMIT).read_to_string(&mut text).ok()?;
    parse_state(&text)
}

pub fn parse_state(text: &str) -> Option<PhaseState> {
    let raw: RawState = serde_json::from_str(text).ok()?;
    let phase = [&raw.phase, &raw.current_phase]
        .into_iter()
        .flatten()
        .find_map(phase_number)?;
    let mut completed: Vec<u32> = raw.completed.iter().filter_map(phase_number).collect();
    completed.sort_unstable();
    completed.dedup();
    // The name comes from sandpen's list: the file only chooses the number.
    Some(PhaseState {
        phase,
        name: PHASES[phase as usize - 1].to_string(),
        completed,
    })
}

/// A phase as a state file may give it: 5, "5", "implementation", "Research_and_Planning",
/// "phase 5", "5: implementation". None for anything else or out of range.
fn phase_number(v: &serde_json::Value) -> Option<u32> {
    let in_range = |n: u64| (1..=PHASES.len() as u64).contains(&n).then_some(n as u32);
    if let Some(n) = v.as_u64() {
        return in_range(n);
    }
    let text = v.as_str()?.trim().to_lowercase().replace(['_', '-'], " ");
    let text = text.strip_prefix("phase").unwrap_or(&text).trim_start();
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    if !digits.is_empty() {
        return in_range(digits.parse().ok()?);
    }
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    PHASES.iter().position(|p| *p == words).map(|i| i as u32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_state_file_and_ignores_nonsense() {
        let s = parse_state(r#"{"phase": 3, "phase_name": "x", "completed": [1, 2, 2, "1", 99]}"#).unwrap();
        assert_eq!(
            s,
            PhaseState {
                phase: 3,
                name: "branch management".into(),
                completed: vec![1, 2]
            }
        );
        assert_eq!(s.label(), "phase 3/11: branch management");
        assert_eq!(parse_state(r#"{"phase": 12}"#), None);
        assert_eq!(parse_state("not json"), None);
        assert_eq!(parse_state(r#"{"phase": "11"}"#).unwrap().name, "settings update");
    }

    #[test]
    fn current_phase_and_phase_names_as_agents_write_them() {
        let phase = |text: &str| parse_state(text).map(|s| s.phase);
        assert_eq!(phase(r#"{"current_phase": 4}"#), Some(4));
        assert_eq!(phase(r#"{"current_phase": "implementation"}"#), Some(5));
        assert_eq!(phase(r#"{"current_phase": "Research_and_Planning"}"#), Some(4));
        assert_eq!(phase(r#"{"phase": "pull-request"}"#), Some(8));
        assert_eq!(phase(r#"{"phase": "Phase 6"}"#), Some(6));
        assert_eq!(phase(r#"{"current_phase": "7: documentation"}"#), Some(7));
        assert_eq!(phase(r#"{"phase": "nonsense", "current_phase": 2}"#), Some(2));
        assert_eq!(phase(r#"{"current_phase": "phase 0"}"#), None);
        assert_eq!(phase(r#"{"current_phase": "deployment"}"#), None);
        let s =
            parse_state(r#"{"current_phase": 3, "completed_phases": ["initial setup", "issue_creation"]}"#);
        assert_eq!(s.unwrap().completed, vec![1, 2]);
    }

    #[test]
    fn markers_in_the_agents_words() {
        assert_eq!(marker("Starting Phase 5: implementation"), Some(5));
        assert_eq!(marker("phase 3/11 done; on to phase 4/11"), Some(4));
        assert_eq!(marker("Phase 11 of 11."), Some(11));
        assert_eq!(marker("phase 12: nothing"), None);
        assert_eq!(
            marker("the phase 2 tests"),
            None,
            "a number in passing is not a marker"
        );
        assert_eq!(marker("no phases here"), None);
    }

    #[test]
    fn reads_from_a_checkout_but_never_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(state_path("t1"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, r#"{"phase": 5, "completed": [1,2,3,4]}"#).unwrap();
        assert_eq!(read_state(dir.path(), "t1").unwrap().phase, 5);

        let other = tempfile::tempdir().unwrap();
        let link_dir = other.path().join(".github").join("workflow-states");
        std::fs::create_dir_all(&link_dir).unwrap();
        std::os::unix::fs::symlink(path.parent().unwrap(), link_dir.join("t2")).unwrap();
        assert_eq!(
            read_state(other.path(), "t2"),
            None,
            "a symlinked directory is not followed"
        );
    }

    #[test]
    fn a_fifo_as_the_state_file_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(state_path("t"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &path,
            rustix::fs::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        let started = std::time::Instant::now();
        assert_eq!(read_state(dir.path(), "t"), None);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "without blocking"
        );
    }
}
