//! Where a run and each of its tasks stand. A task that has ended is what the report says; a
//! task that has not is judged from what exists: its container, its checkout, its log.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use super::{read_report, run_id, task_ids};
use crate::engine::ListedContainer;
use crate::engine::spec::{LABEL_ROLE, LABEL_TASK};
use crate::gc::{self, RunOnEngine};
use crate::monitor::{AgentProgress, parse_line};
use crate::owner::OwnerState;
use crate::runner::{TaskResult, TaskStatus};
use crate::workspace::RunDir;

/// A task's state: the report's status once it has ended, else what its traces say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Nothing made yet: waiting for a slot or for its dependencies.
    Queued,
    /// Its checkout is being made (or its container created).
    Preparing,
    Running,
    /// Its container is gone (or stopped) and its work is being brought back.
    Collecting,
    /// Its sandpen is gone before the task ended: `sandpen gc` finishes it.
    Unfinished,
    Ended(TaskStatus),
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Preparing => "preparing",
            Self::Running => "running",
            Self::Collecting => "collecting",
            Self::Unfinished => "unfinished",
            Self::Ended(s) => s.as_str(),
        }
    }
}

impl Serialize for TaskState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The traces of a task that has no report entry yet.
#[derive(Debug, Clone, Copy, Default)]
pub struct Traces<'a> {
    /// Its container's state as the engine lists it (`running`, `created`, `exited`, ...).
    pub container: Option<&'a str>,
    /// A collection sandbox of the task exists.
    pub collecting: bool,
    pub checkout: bool,
    /// Its log file exists (made once its container exists).
    pub log: bool,
    /// The run's sandpen process lives.
    pub alive: bool,
}

/// The state of one task from its report entry, else from its traces.
pub fn task_state(entry: Option<&TaskResult>, t: Traces) -> TaskState {
    match entry {
        Some(e) if e.left_for_gc => return TaskState::Unfinished,
        Some(e) => return TaskState::Ended(e.status),
        None => {}
    }
    match t.container {
        Some("running" | "paused" | "restarting") => return TaskState::Running,
        Some(_) if !t.alive => return TaskState::Unfinished,
        Some("created") => return TaskState::Preparing,
        Some(_) => return TaskState::Collecting,
        None => {}
    }
    match (t.alive, t.collecting, t.log, t.checkout) {
        (false, ..) => TaskState::Unfinished,
        (true, true, ..) | (true, _, true, _) => TaskState::Collecting,
        (true, _, _, true) => TaskState::Preparing,
        _ => TaskState::Queued,
    }
}

/// A run in a line: `sandpen ps`.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub dir: String,
    pub started_at: Option<String>,
    /// When the run ended; None while it goes on (or if its sandpen died before the end).
    pub finished_at: Option<String>,
    pub complete: bool,
    /// `alive`, `gone`, `elsewhere` (another host's process) or `unknown`.
    pub owner: &'static str,
    pub owner_alive: bool,
    pub task_count: usize,
    /// How many tasks are in each state.
    pub states: BTreeMap<&'static str, usize>,
}

/// A run with its tasks: `sandpen ps RUN`.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    #[serde(flatten)]
    pub summary: RunSummary,
    pub tasks: Vec<TaskView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskView {
    pub id: String,
    pub state: TaskState,
    /// Since its checkout was made, while it goes on; its duration once ended.
    pub elapsed_s: Option<f64>,
    /// Now (a running task, from the engine), or the mean over its life (an ended one).
    pub cpu_percent: Option<f64>,
    /// Now (a running task), or the peak (an ended one).
    pub memory_bytes: Option<u64>,
    pub turns: Option<u32>,
    pub phase: Option<u32>,
    pub phase_name: Option<String>,
    pub container_id: Option<String>,
    /// Why it ended as it did (from the report).
    pub message: Option<String>,
    /// The last lines of its stderr, for a task that did not succeed (from the report).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stderr_tail: Vec<String>,
    /// Its attempts in the run (`sandpen rerun` makes more): 1 for most, 0 for a task with
    /// no report entry yet.
    pub attempts: usize,
}

/// Describes the run in `layout`. `containers` are the engine's containers of this run (by
/// its label); `detail` also reads each live task's log and phase (for `ps RUN`).
pub fn describe(layout: &RunDir, containers: Vec<ListedContainer>, detail: bool) -> RunView {
    let id = run_id(layout);
    let report = read_report(layout);
    let engine_run = RunOnEngine {
        run_id: id.clone(),
        run_dir: Some(layout.root.clone()),
        containers,
    };
    let owner = gc::judge(&engine_run);
    let alive = owner == OwnerState::Alive;
    let of_task = |task: &str, role: &str| {
        engine_run.containers.iter().find(|c| {
            c.labels.get(LABEL_TASK).map(String::as_str) == Some(task)
                && c.labels.get(LABEL_ROLE).map(String::as_str) == Some(role)
        })
    };
    // Tasks the engine knows of but the files do not (a run directory gone or half made).
    let mut ids = task_ids(layout);
    for c in &engine_run.containers {
        match (c.labels.get(LABEL_TASK), c.labels.get(LABEL_ROLE)) {
            (Some(t), Some(role)) if role == "task" && !ids.contains(t) => ids.push(t.clone()),
            _ => {}
        }
    }
    let mut tasks = Vec::new();
    for task in ids {
        let entry = report
            .as_ref()
            .and_then(|r| r.tasks.iter().find(|t| t.id == task));
        let container = of_task(&task, "task");
        let traces = Traces {
            container: container.map(|c| c.state.as_str()),
            collecting: of_task(&task, "collect").is_some(),
            checkout: layout.checkout(&task).is_dir(),
            log: layout.log(&task).is_file(),
            alive,
        };
        let state = task_state(entry, traces);
        let mut view = match entry {
            Some(e) => ended_view(e, state),
            None => live_view(layout, &task, state, detail),
        };
        if view.container_id.is_none() {
            view.container_id = container.map(|c| c.id.clone());
        }
        tasks.push(view);
    }
    let mut states = BTreeMap::new();
    for t in &tasks {
        *states.entry(t.state.as_str()).or_insert(0) += 1;
    }
    let started_at = report
        .as_ref()
        .map(|r| r.started_at.clone())
        .filter(|s| !s.is_empty())
        .or_else(|| modified(&layout.manifest()).map(rfc3339));
    let complete = report.as_ref().is_some_and(|r| r.complete);
    let summary = RunSummary {
        run_id: id,
        dir: layout.root.display().to_string(),
        started_at,
        finished_at: report
            .filter(|r| r.complete && !r.finished_at.is_empty())
            .map(|r| r.finished_at),
        complete,
        owner: match owner {
            OwnerState::Alive => "alive",
            OwnerState::Gone => "gone",
            OwnerState::Elsewhere(_) => "elsewhere",
            OwnerState::Unknown => "unknown",
        },
        owner_alive: alive,
        task_count: tasks.len(),
        states,
    };
    RunView { summary, tasks }
}

fn ended_view(e: &TaskResult, state: TaskState) -> TaskView {
    TaskView {
        id: e.id.clone(),
        state,
        elapsed_s: (e.started_at.is_some() || e.duration_s > 0.0).then_some(e.duration_s),
        cpu_percent: e.mean_cpu_percent,
        memory_bytes: e.peak_memory_bytes,
        turns: e.agent.as_ref().map(|a| a.num_turns),
        phase: e.last_phase,
        phase_name: e.last_phase_name.clone(),
        container_id: e.container_id.clone(),
        message: e.message.clone(),
        stderr_tail: e.stderr_tail.clone(),
        attempts: e.attempts.len().max(1),
    }
}

/// A task without a report entry: elapsed since its checkout was made; turns from its log and
/// its phase from its state file when `detail` asks for them.
fn live_view(layout: &RunDir, task: &str, state: TaskState, detail: bool) -> TaskView {
    let elapsed_s = modified(&layout.start_refs(task))
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map(|d| d.as_secs_f64());
    let mut view = TaskView {
        id: task.to_string(),
        state,
        elapsed_s,
        cpu_percent: None,
        memory_bytes: None,
        turns: None,
        phase: None,
        phase_name: None,
        container_id: None,
        message: None,
        stderr_tail: Vec::new(),
        attempts: 0,
    };
    if detail {
        view.turns = turns_in_log(layout, task);
        if let Some(p) = crate::agent::phases::read_state(&layout.checkout(task), task) {
            view.phase = Some(p.phase);
            view.phase_name = Some(p.name);
        }
    }
    view
}

/// What `ps` reads of a live task's log: its last part, as a log can hold gigabytes.
const LOG_TAIL: u64 = 16 << 20;

/// The CLI's turns so far: its result's count once it has one, else the messages seen. Only
/// the log's last `LOG_TAIL` bytes are read; a longer log without a result there has no count
/// (the messages before that part are not seen).
fn turns_in_log(layout: &RunDir, task: &str) -> Option<u32> {
    let mut progress = AgentProgress::default();
    let whole = crate::task_log::lines::last_lines(&layout.log(task), LOG_TAIL, |line, cut| {
        if cut == 0
            && let Some(e) = parse_line(line)
        {
            progress.apply(&e);
        }
        false
    })
    .ok()?;
    match progress.result {
        Some(r) => Some(r.num_turns),
        None => whole.then_some(progress.turns),
    }
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(status: TaskStatus, left_for_gc: bool) -> TaskResult {
        TaskResult {
            status,
            left_for_gc,
            ..TaskResult::new(
                "t",
                "img",
                crate::engine::spec::Limits {
                    nano_cpus: 0,
                    memory_bytes: 0,
                    pids: 0,
                },
            )
        }
    }

    #[test]
    fn a_live_run_is_described_from_its_partial_report_and_its_traces() {
        use crate::manifest::{Manifest, ManifestTask};
        use crate::runner::RunReport;
        let dir = tempfile::tempdir().unwrap();
        let layout = RunDir::new(dir.path().join("20260101-100000-abcd"));
        std::fs::create_dir_all(layout.internal()).unwrap();
        let limits = entry(TaskStatus::Error, false).limits;
        let task = |id: &str| ManifestTask {
            id: id.into(),
            limits,
            memory_request_bytes: None,
            salvage: Default::default(),
            runtime: None,
            definition: None,
        };
        Manifest {
            run_id: "20260101-100000-abcd".into(),
            repo: "/r".into(),
            base: "b".into(),
            image: "i".into(),
            user: (1000, 1000),
            limits_enforced: true,
            backend: None,
            settings: None,
            tasks: vec![task("done"), task("busy"), task("waiting")],
        }
        .write(&layout.manifest())
        .unwrap();
        let mut report = RunReport::started("20260101-100000-abcd", "/r", "i", 2, "2026-01-01T10:00:00.000Z");
        report.tasks.push(TaskResult {
            id: "done".into(),
            duration_s: 2.5,
            agent: Some(crate::runner::events::AgentSummary {
                num_turns: 4,
                ..Default::default()
            }),
            ..entry(TaskStatus::Succeeded, false)
        });
        std::fs::write(layout.report(), serde_json::to_vec(&report).unwrap()).unwrap();
        // `busy` has a checkout and a log: one assistant message so far.
        std::fs::create_dir_all(layout.checkout("busy")).unwrap();
        std::fs::create_dir_all(layout.start_refs("busy").parent().unwrap()).unwrap();
        std::fs::write(layout.start_refs("busy"), "").unwrap();
        std::fs::write(
            layout.log("busy"),
            "{\"type\":\"assistant\",\"message\":{\"id\":\"m1\",\"content\":[]}}\n",
        )
        .unwrap();
        let lease = crate::owner::Lease::take(&layout.lease()).unwrap();

        let view = describe(&layout, Vec::new(), true);
        let s = &view.summary;
        assert_eq!((s.owner, s.owner_alive, s.complete), ("alive", true, false));
        assert_eq!(s.started_at.as_deref(), Some("2026-01-01T10:00:00.000Z"));
        assert_eq!(s.finished_at, None);
        let states: Vec<&str> = view.tasks.iter().map(|t| t.state.as_str()).collect();
        assert_eq!(states, ["succeeded", "collecting", "queued"]);
        assert_eq!(
            (view.tasks[0].turns, view.tasks[0].elapsed_s),
            (Some(4), Some(2.5))
        );
        assert_eq!(view.tasks[1].turns, Some(1));
        assert!(view.tasks[1].elapsed_s.is_some());
        assert_eq!(view.tasks[2].elapsed_s, None);
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(
            json["states"],
            serde_json::json!({"succeeded": 1, "collecting": 1, "queued": 1})
        );
        assert_eq!(json["tasks"][1]["state"], "collecting");

        // Its sandpen dies: what did not end is left for gc.
        drop(lease);
        let view = describe(&layout, Vec::new(), false);
        let states: Vec<&str> = view.tasks.iter().map(|t| t.state.as_str()).collect();
        assert_eq!(states, ["succeeded", "unfinished", "unfinished"]);
        assert_eq!((view.summary.owner, view.tasks[1].turns), ("gone", None));
    }

    #[test]
    fn the_report_decides_once_a_task_has_ended() {
        let t = Traces {
            container: Some("running"),
            alive: true,
            ..Default::default()
        };
        let failed = entry(TaskStatus::Failed, false);
        assert_eq!(task_state(Some(&failed), t).as_str(), "failed");
        let left = entry(TaskStatus::Error, true);
        assert_eq!(task_state(Some(&left), t), TaskState::Unfinished);
    }

    #[test]
    fn a_live_task_is_judged_by_its_traces() {
        let alive = Traces {
            alive: true,
            ..Default::default()
        };
        let state = |t: Traces| task_state(None, t).as_str();
        assert_eq!(state(alive), "queued");
        assert_eq!(
            state(Traces {
                checkout: true,
                ..alive
            }),
            "preparing"
        );
        assert_eq!(
            state(Traces {
                container: Some("created"),
                checkout: true,
                ..alive
            }),
            "preparing"
        );
        assert_eq!(
            state(Traces {
                container: Some("running"),
                ..alive
            }),
            "running"
        );
        assert_eq!(
            state(Traces {
                container: Some("exited"),
                ..alive
            }),
            "collecting"
        );
        assert_eq!(
            state(Traces {
                checkout: true,
                log: true,
                ..alive
            }),
            "collecting"
        );
        assert_eq!(
            state(Traces {
                collecting: true,
                ..alive
            }),
            "collecting"
        );
        // Its sandpen is gone: whatever is left is for gc, but a running container runs.
        let dead = Traces::default();
        assert_eq!(
            state(Traces {
                checkout: true,
                ..dead
            }),
            "unfinished"
        );
        assert_eq!(
            state(Traces {
                container: Some("exited"),
                ..dead
            }),
            "unfinished"
        );
        assert_eq!(
            state(Traces {
                container: Some("running"),
                ..dead
            }),
            "running"
        );
    }
}
