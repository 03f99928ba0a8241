//! A task's attempts: each time it ran in the same run (`sandpen rerun` makes more). The
//! report keeps every one in the task's `attempts`; the task's other fields describe the last.
//! An earlier attempt's logs, stats and checkout stay in the run directory under the names of
//! `RunDir::attempt_key` (`<task>.<n>.log`, `<task>.<n>/`, ...), out of the next one's way.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::events::{AgentSummary, TaskResult, TaskStatus, Timings};
use crate::workspace::RunDir;

/// One attempt of a task, as its report entry said when it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1 for the first.
    pub number: u32,
    pub status: TaskStatus,
    pub message: Option<String>,
    pub exit_code: Option<i64>,
    pub began_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub ended_at: Option<String>,
    pub duration_s: f64,
    /// Where it started (the previous attempt's result, for a rerun) and what it left.
    pub base_commit: Option<String>,
    pub head_commit: Option<String>,
    pub commits: u32,
    pub log: String,
    pub stderr_log: String,
    pub stats_log: Option<String>,
    /// Bytes its logs' cap left out (`--log-limit`).
    #[serde(default)]
    pub log_dropped_bytes: u64,
    #[serde(default)]
    pub stderr_dropped_bytes: u64,
    pub checkout: String,
    pub container_id: Option<String>,
    pub agent: Option<AgentSummary>,
    pub api_retries: u32,
    pub gateway: Option<crate::gateway::GatewayUsage>,
    pub timings: Timings,
    /// Its agent session, and the one it resumed (`agent::session`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<crate::agent::session::SessionUse>,
}

impl Attempt {
    /// Attempt `number`, as `r` describes it.
    pub fn of(r: &TaskResult, number: u32) -> Self {
        Self {
            number,
            status: r.status,
            message: r.message.clone(),
            exit_code: r.exit_code,
            began_at: r.began_at.clone(),
            started_at: r.started_at.clone(),
            finished_at: r.finished_at.clone(),
            ended_at: r.ended_at.clone(),
            duration_s: r.duration_s,
            base_commit: r.base_commit.clone(),
            head_commit: r.head_commit.clone(),
            commits: r.commits,
            log: r.log.clone(),
            stderr_log: r.stderr_log.clone(),
            stats_log: r.stats_log.clone(),
            log_dropped_bytes: r.log_dropped_bytes,
            stderr_dropped_bytes: r.stderr_dropped_bytes,
            checkout: r.checkout.clone(),
            container_id: r.container_id.clone(),
            agent: r.agent.clone(),
            api_retries: r.api_retries,
            gateway: r.gateway.clone(),
            timings: r.timings.clone(),
            session: r.session.clone(),
        }
    }

    /// Whether it had a container, so logs to keep (not skipped or cancelled before it began).
    pub fn ran(&self) -> bool {
        !self.log.is_empty()
    }
}

/// The attempts a report entry records: its `attempts`, or, in a report of an older sandpen
/// (or a `gc` that completed it), the entry itself as the first.
pub fn recorded(r: &TaskResult) -> Vec<Attempt> {
    match r.attempts.is_empty() {
        true => vec![Attempt::of(r, 1)],
        false => r.attempts.clone(),
    }
}

/// What a rerun carries over from the run's earlier attempts.
#[derive(Debug, Clone, Default)]
pub struct Earlier {
    /// The entries of the tasks not run again, as they stand: in this attempt's report as is.
    pub kept: Vec<TaskResult>,
    /// Each task run again: its earlier attempts, oldest first.
    pub attempts: HashMap<String, Vec<Attempt>>,
    /// Each task run again that has a result: the commit it continues from.
    pub from: HashMap<String, String>,
    /// Each task run again that resumes its agent's session (not `rerun --fresh`).
    pub resume: HashMap<String, crate::agent::session::Resume>,
}

impl Earlier {
    /// `result` with every attempt of its task: the earlier ones, those `retried` in this
    /// process (`--retries`), itself the last.
    pub fn with_attempts(&self, mut result: TaskResult, retried: &[Attempt]) -> TaskResult {
        let mut all = self.attempts.get(&result.id).cloned().unwrap_or_default();
        all.extend_from_slice(retried);
        all.push(Attempt::of(&result, all.len() as u32 + 1));
        result.attempts = all;
        result
    }

    pub fn is_kept(&self, task: &str) -> bool {
        self.kept.iter().any(|k| k.id == task)
    }
}

/// The earlier attempts of a rerun's tasks, written before it starts (`RunDir::earlier_attempts`),
/// so that `gc` can complete a rerun whose sandpen died with every attempt.
pub fn save(path: &std::path::Path, attempts: &HashMap<String, Vec<Attempt>>) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(attempts).map_err(std::io::Error::other)?;
    crate::atomic_file::write_atomically(path, &json)
}

/// What `save` wrote; nothing when there is no such file (no rerun) or it cannot be read.
pub fn load(path: &std::path::Path) -> HashMap<String, Vec<Attempt>> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// An entry `gc` completed, its last attempt as it now says, after the earlier ones (its own
/// list, or else those `saved`).
pub fn completed(mut r: TaskResult, saved: &HashMap<String, Vec<Attempt>>) -> TaskResult {
    let mut all = std::mem::take(&mut r.attempts);
    match all.is_empty() {
        true => all = saved.get(&r.id).cloned().unwrap_or_default(),
        false => {
            all.pop();
        }
    }
    all.push(Attempt::of(&r, all.len() as u32 + 1));
    r.attempts = all;
    r
}

/// Moves the files of `a`, the last attempt of `task` so far, to its numbered names (logs,
/// stats, checkout, out directory), so the next attempt starts with none; `a`'s paths follow.
/// Renames within the run directory only: nothing is copied or removed.
pub fn set_aside(layout: &RunDir, task: &str, a: &mut Attempt) -> std::io::Result<()> {
    let key = RunDir::attempt_key(task, a.number);
    let moves = [
        (layout.log(task), layout.log(&key)),
        (layout.stderr_log(task), layout.stderr_log(&key)),
        (layout.streams_log(task), layout.streams_log(&key)),
        (layout.stats_log(task), layout.stats_log(&key)),
        (layout.checkout(task), layout.checkout(&key)),
        (layout.collect_out(task), layout.collect_out(&key)),
    ];
    for (from, to) in moves {
        if std::fs::symlink_metadata(&to).is_ok() {
            return Err(std::io::Error::other(format!(
                "{} is in the way of attempt {} of {task}'s files",
                to.display(),
                a.number
            )));
        }
        match std::fs::rename(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("moving {} aside: {e}", from.display()),
                ));
            }
        }
    }
    let moved = |p: &str, to: std::path::PathBuf| match p.is_empty() {
        true => String::new(),
        false => to.display().to_string(),
    };
    a.log = moved(&a.log, layout.log(&key));
    a.stderr_log = moved(&a.stderr_log, layout.stderr_log(&key));
    a.stats_log = a
        .stats_log
        .as_ref()
        .map(|_| layout.stats_log(&key).display().to_string());
    a.checkout = moved(&a.checkout, layout.checkout(&key));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::spec::Limits;

    const LIMITS: Limits = Limits {
        nano_cpus: 1,
        memory_bytes: 1 << 30,
        pids: 1,
    };

    #[test]
    fn an_attempt_set_aside_keeps_its_files_under_numbered_names() {
        let dir = tempfile::tempdir().unwrap();
        let layout = RunDir::new(dir.path());
        std::fs::write(layout.log("a"), "first").unwrap();
        std::fs::write(layout.stderr_log("a"), "err").unwrap();
        std::fs::create_dir_all(layout.checkout("a").join("src")).unwrap();
        let r = TaskResult {
            status: TaskStatus::Failed,
            log: layout.log("a").display().to_string(),
            stderr_log: layout.stderr_log("a").display().to_string(),
            stats_log: Some(layout.stats_log("a").display().to_string()),
            checkout: layout.checkout("a").display().to_string(),
            ..TaskResult::new("a", "img", LIMITS)
        };
        let mut a = recorded(&r).remove(0);
        assert_eq!(a.number, 1);
        set_aside(&layout, "a", &mut a).unwrap();
        assert_eq!(std::fs::read_to_string(&a.log).unwrap(), "first");
        assert!(a.log.ends_with("a.1.log") && a.stderr_log.ends_with("a.1.stderr.log"));
        assert!(std::path::Path::new(&a.checkout).join("src").is_dir());
        assert!(!layout.log("a").exists() && !layout.checkout("a").exists());
        // A second time, something is in the way: refused, nothing moved or lost.
        std::fs::write(layout.log("a"), "second").unwrap();
        let mut again = Attempt::of(&r, 1);
        let err = set_aside(&layout, "a", &mut again).unwrap_err().to_string();
        assert!(err.contains("in the way"), "{err}");
        assert_eq!(std::fs::read_to_string(layout.log("a")).unwrap(), "second");
    }

    #[test]
    fn every_attempt_is_listed_and_the_last_is_the_entry_itself() {
        let first = TaskResult {
            status: TaskStatus::Error,
            ..TaskResult::new("a", "img", LIMITS)
        };
        let mut earlier = Earlier::default();
        earlier.attempts.insert("a".into(), recorded(&first));
        let second = earlier.with_attempts(
            TaskResult {
                status: TaskStatus::Succeeded,
                ..TaskResult::new("a", "img", LIMITS)
            },
            &[],
        );
        let statuses: Vec<_> = second.attempts.iter().map(|a| (a.number, a.status)).collect();
        assert_eq!(statuses, [(1, TaskStatus::Error), (2, TaskStatus::Succeeded)]);
        assert_eq!(recorded(&second), second.attempts);
        // gc completes an entry: its last attempt says what gc found, after the earlier ones.
        let mut saved = HashMap::new();
        saved.insert("a".to_string(), second.attempts[..1].to_vec());
        let left = TaskResult {
            status: TaskStatus::Cancelled,
            ..TaskResult::new("a", "img", LIMITS)
        };
        let done = completed(left.clone(), &saved);
        let statuses: Vec<_> = done.attempts.iter().map(|a| (a.number, a.status)).collect();
        assert_eq!(statuses, [(1, TaskStatus::Error), (2, TaskStatus::Cancelled)]);
        assert_eq!(completed(done.clone(), &HashMap::new()).attempts, done.attempts);
        assert_eq!(completed(left, &HashMap::new()).attempts.len(), 1);
        // A task of a plain run: one attempt.
        let only = Earlier::default().with_attempts(TaskResult::new("b", "img", LIMITS), &[]);
        assert_eq!(only.attempts.len(), 1);
    }
}
