//! What happens during a run, as data. The runner sends these; displays and file writers
//! consume them (see `report/`). Serialised as-is for `--json`.

use serde::{Deserialize, Serialize};

use crate::collect::{BranchResult, Collected, NestedRepo};
use crate::engine::spec::Limits;
use crate::monitor::StatsSample;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Succeeded,
    Failed,
    OomKilled,
    TimedOut,
    Cancelled,
    Skipped,
    /// Stopped for writing more than its disk limit to its checkout and out directory.
    DiskExceeded,
    /// Its model requests reached its budget (`max_cost`), metered at the gateway.
    BudgetExceeded,
    Error,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::OomKilled => "oom_killed",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
            Self::Skipped => "skipped",
            Self::DiskExceeded => "disk_exceeded",
            Self::BudgetExceeded => "budget_exceeded",
            Self::Error => "error",
        }
    }
}

/// What the CLI reported about its own run (its stream-json `result` line).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentSummary {
    pub num_turns: u32,
    pub cost_usd: Option<f64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub is_error: bool,
    pub subtype: String,
    /// The API error's HTTP status when the session ended on one (529: the model API was
    /// overloaded past the CLI's retries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_error_status: Option<u16>,
}

/// One task's entry in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    pub id: String,
    pub status: TaskStatus,
    pub exit_code: Option<i64>,
    /// When its dependencies were done and it waited for a slot (`--jobs`, the engine's memory).
    #[serde(default)]
    pub queued_at: Option<String>,
    /// When it got its slot (its checkout began); `duration_s` runs from here to `ended_at`.
    #[serde(default)]
    pub began_at: Option<String>,
    /// When its container started and ended.
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// When it was done, its work collected.
    #[serde(default)]
    pub ended_at: Option<String>,
    pub duration_s: f64,
    /// The commit the task started from: `--base`, its one dependency's result, or the merge
    /// of its dependencies' results (kept as `refs/sandpen/<task>/<run>/base`). None for a task
    /// that never got a checkout.
    #[serde(default)]
    pub base_commit: Option<String>,
    pub branch: Option<String>,
    pub commits: u32,
    /// Files changed and lines added and removed from `base_commit` to `head_commit` (None:
    /// nothing came back, or a report of an older sandpen).
    #[serde(default)]
    pub changes: Option<crate::workspace::DiffStat>,
    pub salvaged: bool,
    /// Uncommitted paths kept out of the salvage because they look like credentials (.env,
    /// *.pem, id_rsa, ...); they stay in the checkout.
    pub salvage_left_out: Vec<String>,
    /// Uncommitted files left out of the salvage for their size (they stay in the checkout).
    #[serde(default)]
    pub salvage_left_out_large: Vec<crate::collect::LargeFile>,
    /// The branch HEAD was on in the checkout (None: a detached HEAD, or nothing collected).
    #[serde(default)]
    pub head_branch: Option<String>,
    /// The commit HEAD held in the checkout once collected (the salvage included): where
    /// `branch` pointed when it came back, or the base when HEAD had not moved. None: nothing
    /// was collected. `sandpen prune` compares the branch with it; the tasks that depend on
    /// this one start from it, so moving the branch meanwhile changes nothing.
    #[serde(default)]
    pub head_commit: Option<String>,
    /// Every other branch the task created or moved, brought back as
    /// `sandpen/<task>/<run>+<branch>`.
    #[serde(default)]
    pub branches: Vec<BranchResult>,
    /// Branches beyond the first 1000, left in the checkout.
    #[serde(default)]
    pub branches_not_collected: u32,
    /// Commits no branch reaches (a detached HEAD, a deleted branch, a stash), and the refs
    /// (`refs/sandpen/<task>/<run>/unreachable-<n>`) that keep those a detached HEAD's
    /// branch does not.
    #[serde(default)]
    pub unreachable_commits: u32,
    #[serde(default)]
    pub unreachable_refs: Vec<String>,
    /// Tags the task created or moved: listed, not imported.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Repositories nested in the checkout: salvaged as files, or kept and why.
    #[serde(default)]
    pub nested_repos: Vec<NestedRepo>,
    /// What the run's gateway metered for the task (gateway mode only): model requests,
    /// tokens and cost beside the CLI's own figures in `agent`, rate limits, egress.
    #[serde(default)]
    pub gateway: Option<crate::gateway::GatewayUsage>,
    /// The engine never confirmed that the task's container was gone, so its work was not
    /// collected: `sandpen gc` collects it.
    pub left_for_gc: bool,
    pub container_id: Option<String>,
    /// The node the task ran on, on a Swarm (its host name); None on one engine.
    #[serde(default)]
    pub node: Option<String>,
    pub image: String,
    /// The warm environment (volume) its container started from; None: it started cold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The limits sandpen asked the engine for.
    pub limits: Limits,
    /// What admission reserved for it from the engine's memory (`memory_request`).
    #[serde(default)]
    pub memory_request_bytes: Option<u64>,
    /// Whether the engine applied them: false where it cannot (a rootless engine on cgroup
    /// v1 gives containers no cgroup of their own; the task then has no CPU or memory figures).
    #[serde(default = "yes")]
    pub limits_enforced: bool,
    pub peak_memory_bytes: Option<u64>,
    pub mean_cpu_percent: Option<f64>,
    pub peak_cpu_percent: Option<f64>,
    /// The task's disk limit (what its checkout and out directory may hold together), and
    /// the most they held when measured (while it ran, and once its container stopped).
    pub disk_limit_bytes: Option<u64>,
    pub peak_disk_bytes: Option<u64>,
    pub log: String,
    pub stderr_log: String,
    /// Bytes of stdout and of stderr left out of the logs by their cap (`--log-limit`): 0
    /// when the output fitted.
    #[serde(default)]
    pub log_dropped_bytes: u64,
    #[serde(default)]
    pub stderr_dropped_bytes: u64,
    /// The task's CPU and memory samples over time (`<task>.stats.jsonl`, one JSON line each).
    #[serde(default)]
    pub stats_log: Option<String>,
    pub checkout: String,
    pub agent: Option<AgentSummary>,
    pub timings: Timings,
    /// How often the CLI retried the API (its `api_retry` events), whether or not it finished.
    pub api_retries: u32,
    /// The WorkflowManager phase the task's state file last named (1 to 11), and its name.
    pub last_phase: Option<u32>,
    pub last_phase_name: Option<String>,
    /// How many of the 11 phases the state file marks completed.
    pub phases_completed: u32,
    /// Why the task ended as it did, in words (the error, the dependency that failed, ...).
    pub message: Option<String>,
    /// A task that did not succeed: the last lines of its stderr (of its output when stderr
    /// is empty), each cut to a bounded width, read once at its end for every reporter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stderr_tail: Vec<String>,
    /// Every attempt of the task in this run, oldest first, this one last (`sandpen rerun`
    /// makes more); empty in reports of older sandpens.
    #[serde(default)]
    pub attempts: Vec<super::Attempt>,
    /// The agent's session in this attempt: its id, and the earlier one it resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<crate::agent::session::SessionUse>,
}

/// For `#[serde(default)]` of flags that older reports did not have and were true then.
pub(crate) fn yes() -> bool {
    true
}

/// Where a task's time went, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Making the checkout.
    pub checkout_s: f64,
    /// The container's whole life: create, start, run, inspect, remove. Null if none was made.
    pub container_s: Option<f64>,
    /// Salvage and bringing the result branch back.
    pub collect_s: f64,
}

impl TaskResult {
    /// What collection brought back, into this entry.
    pub fn set_collected(&mut self, c: Collected) {
        self.branch = c.branch;
        self.commits = c.commits;
        self.salvaged = c.salvaged;
        self.salvage_left_out = c.left_out;
        self.salvage_left_out_large = c.left_out_large;
        self.head_branch = c.head_branch;
        self.head_commit = c.head;
        self.branches = c.branches;
        self.branches_not_collected = c.branches_not_collected;
        self.unreachable_commits = c.unreachable_commits;
        self.unreachable_refs = c.unreachable_refs;
        self.tags = c.tags;
        self.nested_repos = c.nested_repos;
    }

    /// An entry for a task that has not run yet: nothing measured, status `error` until set.
    pub fn new(id: &str, image: &str, limits: Limits) -> Self {
        Self {
            id: id.to_string(),
            status: TaskStatus::Error,
            exit_code: None,
            queued_at: None,
            began_at: None,
            started_at: None,
            finished_at: None,
            ended_at: None,
            duration_s: 0.0,
            base_commit: None,
            branch: None,
            commits: 0,
            changes: None,
            salvaged: false,
            salvage_left_out: Vec::new(),
            salvage_left_out_large: Vec::new(),
            head_branch: None,
            head_commit: None,
            branches: Vec::new(),
            branches_not_collected: 0,
            unreachable_commits: 0,
            unreachable_refs: Vec::new(),
            tags: Vec::new(),
            environment: None,
            nested_repos: Vec::new(),
            gateway: None,
            left_for_gc: false,
            container_id: None,
            node: None,
            image: image.to_string(),
            limits,
            memory_request_bytes: None,
            limits_enforced: true,
            peak_memory_bytes: None,
            mean_cpu_percent: None,
            peak_cpu_percent: None,
            disk_limit_bytes: None,
            peak_disk_bytes: None,
            log: String::new(),
            stderr_log: String::new(),
            log_dropped_bytes: 0,
            stderr_dropped_bytes: 0,
            stats_log: None,
            checkout: String::new(),
            agent: None,
            timings: Timings::default(),
            api_retries: 0,
            last_phase: None,
            last_phase_name: None,
            phases_completed: 0,
            message: None,
            stderr_tail: Vec::new(),
            attempts: Vec::new(),
            session: None,
        }
    }
}

/// Why a running task is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    Timeout,
    Cancelled,
    /// The CLI did not load the WorkflowManager.
    Governance,
    /// The checkout and out directory grew past the task's disk limit.
    Disk,
    /// The gateway metered the task's model cost up to its budget.
    Budget,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: String,
        repo: String,
        image: String,
        jobs: usize,
        tasks: Vec<String>,
        at: String,
    },
    /// At the start: the engine's memory fits fewer tasks' reservations than `--jobs`.
    MemoryHold {
        #[serde(flatten)]
        hold: super::MemoryHold,
    },
    /// The task is ready, but its memory reservation does not fit beside the running tasks' limits
    /// in the engine's memory: it starts once enough is free. Said again when `free_bytes`
    /// changes.
    WaitingForMemory {
        task: String,
        needs_bytes: u64,
        free_bytes: u64,
        total_bytes: u64,
    },
    /// The run's warm environment is being prepared (or looked for) before the first task.
    EnvironmentPreparing,
    /// The run's warm environment is ready, or its preparation failed (once per run).
    Environment {
        env: crate::warm::Environment,
    },
    /// The task's checkout is being made.
    TaskPreparing {
        task: String,
        /// The commit it starts from (`TaskResult::base_commit`).
        base_commit: String,
    },
    TaskStarted {
        task: String,
        container_id: String,
        at: String,
    },
    Stats {
        task: String,
        #[serde(flatten)]
        sample: StatsSample,
    },
    /// The CLI's activity changed (a turn, a tool, an API retry, its result).
    Agent {
        task: String,
        activity: String,
        turns: u32,
        tool: Option<String>,
        api_retries: u32,
    },
    /// The task's workflow state file names a new phase.
    Phase {
        task: String,
        phase: u32,
        name: String,
        completed: Vec<u32>,
    },
    /// The model API limits the run (429 or 529): the gateway holds the task's request, and
    /// no new task starts, until it resumes.
    RateLimited {
        task: String,
        status: u16,
        resume_in_s: f64,
    },
    TaskStopping {
        task: String,
        reason: StopReason,
    },
    TaskFinished {
        task: String,
        result: Box<TaskResult>,
    },
    /// An attempt ended `error` and the task runs again (`--retries`) after `after_s`, as
    /// attempt `attempt` of at most `of`; `message` says why the last one ended.
    TaskRetrying {
        task: String,
        attempt: u32,
        of: u32,
        after_s: f64,
        message: String,
    },
    /// Ctrl-C or SIGTERM: `kill` is false for the graceful stop, true for the immediate one.
    RunCancelling {
        kill: bool,
    },
    /// The final cleanup could not remove something of the run.
    CleanupFailed {
        message: String,
    },
    RunFinished {
        report: Box<RunReport>,
    },
}

/// The whole run, as written to report.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub run_id: String,
    pub repo: String,
    pub image: String,
    pub started_at: String,
    pub finished_at: String,
    pub wall_s: f64,
    pub jobs: usize,
    /// Task time over wall time: how many tasks ran at once on average. Not a speedup, which
    /// would need the same tasks run one at a time to compare with.
    pub concurrency: f64,
    pub cancelled: bool,
    /// False while the run goes on (the report is rewritten as each task ends), and for a run
    /// whose sandpen died before the end (until `sandpen gc` completes it).
    pub complete: bool,
    pub tasks: Vec<TaskResult>,
    /// What the final cleanup could not remove, in words (`sandpen gc` removes it later).
    pub cleanup_failures: Vec<String>,
    /// The engine's memory held tasks back from `--jobs` (their reservations did not fit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_held: Option<super::MemoryHold>,
    /// Why the run's remaining tasks were cancelled, when they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<CancelReason>,
    /// The project's warm environment: prepared, reused or failed (None: none was needed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<crate::warm::Environment>,
}

/// What cancelled a run (as nextest's `CancelReason`): its tasks' entries say `cancelled`,
/// and this says why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// Ctrl-C, SIGTERM or SIGHUP in the run's own terminal.
    Interrupted,
    /// `sandpen stop RUN` from another terminal.
    Stopped,
    /// `--fail-fast`, after a task did not succeed.
    FailFast,
}

impl CancelReason {
    /// In words, for the summary and the HTML page.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Interrupted => {
                "the run was interrupted (Ctrl-C or a signal): its remaining tasks were cancelled"
            }
            Self::Stopped => "the run was stopped by `sandpen stop`: its remaining tasks were cancelled",
            Self::FailFast => "--fail-fast: a task did not succeed, so the remaining tasks were cancelled",
        }
    }
}

impl RunReport {
    /// The report of a run that has just started: no task has ended yet.
    pub fn started(run_id: &str, repo: &str, image: &str, jobs: usize, at: &str) -> Self {
        Self {
            run_id: run_id.into(),
            repo: repo.into(),
            image: image.into(),
            started_at: at.into(),
            finished_at: String::new(),
            wall_s: 0.0,
            jobs,
            concurrency: 0.0,
            cancelled: false,
            complete: false,
            tasks: Vec::new(),
            cleanup_failures: Vec::new(),
            cancel_reason: None,
            memory_held: None,
            environment: None,
        }
    }

    pub fn all_succeeded(&self) -> bool {
        self.tasks.iter().all(|t| t.status == TaskStatus::Succeeded)
    }
}

/// Now as RFC 3339 (UTC, milliseconds).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
