//! Task files and prompt files -> a validated [`Plan`].
//!
//! Every input error is found here, before anything touches git or the Docker engine, and
//! reported together with the others (exit code 2).

mod error;
mod graph;
mod keys;
mod policy;
mod prompt_file;
mod read;
mod source;
mod task_file;
mod units;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::PlanError;
pub use policy::{DEFAULT_MAX_PROMPT_BYTES, PromptPolicy, repo_top};
pub use read::MAX_TASK_FILE_BYTES;
pub use units::{
    MAX_PROMPT_BYTES, MAX_TIMEOUT, MAX_TURNS, MIN_MEMORY_BYTES, parse_cpus, parse_disk, parse_jobs,
    parse_memory, parse_pids, parse_prompt_size, parse_size, parse_timeout, parse_turns,
};

/// The tasks of one run, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Topological order: every task after its dependencies; otherwise input order.
    pub tasks: Vec<TaskSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    pub id: String,
    /// The prompt text.
    pub prompt: String,
    /// The file the task was defined in (the prompt file, or the task file).
    pub source: PathBuf,
    pub limits: Limits,
    /// What admission reserves for it from the engine's memory (`memory_request`): at most
    /// `limits.memory_bytes`, which stays the hard limit (Kubernetes' requests and limits).
    pub memory_request_bytes: i64,
    pub timeout: Duration,
    /// Ids of tasks that must succeed first, in the order written, without repeats.
    pub depends_on: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// What the task may hold in its checkout (bytes), enforced while it runs.
    pub disk_bytes: Option<u64>,
    /// The most each of its output logs (stdout, stderr) keeps on disk (`log_limit`).
    pub log_limit_bytes: u64,
    /// What its salvage may commit (`salvage_max_file`, `salvage_max_total`).
    pub salvage: SalvageLimits,
    /// Hosts the task may reach through the gateway beyond the run's list (`allow_hosts`).
    pub allow_hosts: Vec<String>,
    /// The most its model requests may cost, metered at the gateway (`max_cost`, USD).
    pub max_cost: Option<f64>,
    /// The engine's OCI runtime for its containers (`runtime`, `--runtime`, e.g. `runsc`);
    /// `None` is the engine's default. Whether the engine has it is checked by `commands/run`.
    pub runtime: Option<String>,
}

pub use crate::collect::SalvageLimits;
/// A task's hard limits: the engine's own type, so the plan hands them over unchanged.
pub use crate::engine::spec::Limits;

/// The CLI's resource flags, as typed, so errors can quote them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    pub cpus: Option<String>,
    pub memory: Option<String>,
    /// `--memory-request`
    pub memory_request: Option<String>,
    /// `--pids-limit`
    pub pids: Option<String>,
    pub timeout: Option<String>,
    /// `--disk`
    pub disk: Option<String>,
    /// `--log-limit`
    pub log_limit: Option<String>,
    /// `--salvage-max-file`
    pub salvage_max_file: Option<String>,
    /// `--salvage-max-total`
    pub salvage_max_total: Option<String>,
    /// `--max-cost` (USD)
    pub max_cost: Option<String>,
    /// `--runtime`
    pub runtime: Option<String>,
}

/// The built-in values, used where neither a task file nor a flag says otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    pub nano_cpus: i64,
    pub memory_bytes: i64,
    /// Reserved per task by admission unless a task says otherwise (or its limit is lower).
    pub memory_request_bytes: i64,
    pub pids: i64,
    pub timeout: Duration,
    pub disk_bytes: u64,
    pub log_limit_bytes: u64,
    pub salvage: SalvageLimits,
}

/// 512 MiB: twice what the real Claude CLI peaks at.
pub const DEFAULT_MEMORY_REQUEST: i64 = 512 << 20;

impl Default for Defaults {
    fn default() -> Self {
        Self {
            nano_cpus: 2_000_000_000,
            memory_bytes: 4 * 1024 * 1024 * 1024,
            // The real Claude CLI peaks near 250 MiB: reserving the 4 GiB limit for each task
            // capped `-j 16` at 5 on a 23.5 GiB engine.
            memory_request_bytes: DEFAULT_MEMORY_REQUEST,
            pids: 1024,
            timeout: Duration::from_secs(45 * 60),
            disk_bytes: 10 << 30,
            log_limit_bytes: 1 << 30,
            salvage: SalvageLimits::default(),
        }
    }
}

impl Plan {
    /// Errors for every task that asks for more CPUs than the engine has (`NCPU` from
    /// `docker info`): Docker would refuse to start it, after other tasks had already run.
    /// A non-positive `engine_ncpu` means "unknown" and checks nothing.
    pub fn check_cpus(&self, engine_ncpu: i64) -> Result<(), PlanError> {
        if engine_ncpu <= 0 {
            return Ok(());
        }
        let available = engine_ncpu.saturating_mul(1_000_000_000);
        let errors = self
            .tasks
            .iter()
            .filter(|t| t.limits.nano_cpus > available)
            .map(|t| PlanError::TooManyCpus {
                id: t.id.clone(),
                source_file: t.source.clone(),
                requested: (t.limits.nano_cpus as f64 / 1e9).to_string(),
                available: engine_ncpu,
            })
            .collect();
        PlanError::from_all(errors).map_or(Ok(()), Err)
    }

    /// Lowers to the engine's memory the limit of every task that has only sandpen's built-in
    /// default (4 GiB) and would not fit in a smaller engine (a small Docker Desktop VM): the
    /// default must run anywhere. A limit the user gave is never changed (`check_memory`
    /// refuses it). Returns how many tasks were lowered.
    pub fn fit_default_memory(&mut self, engine_memory: i64) -> usize {
        let default = Defaults::default().memory_bytes;
        if engine_memory <= 0 || engine_memory >= default {
            return 0;
        }
        let mut lowered = 0;
        for t in &mut self.tasks {
            if t.limits.memory_bytes == default {
                t.limits.memory_bytes = engine_memory;
                t.memory_request_bytes = t.memory_request_bytes.min(engine_memory);
                lowered += 1;
            }
        }
        lowered
    }

    /// An error for the tasks whose memory limit exceeds the engine's memory (`MemTotal`),
    /// one per file and limit: such a task could never start beside another, and alone its
    /// limit would be no limit. A non-positive `engine_memory` means "unknown" and checks
    /// nothing.
    pub fn check_memory(&self, engine_memory: i64) -> Result<(), PlanError> {
        if engine_memory <= 0 {
            return Ok(());
        }
        // (file, limit) -> ids, in the plan's order: 500 tasks of one file and one limit make
        // one message.
        let mut groups: Vec<((&Path, i64), Vec<&str>)> = Vec::new();
        for t in self
            .tasks
            .iter()
            .filter(|t| t.limits.memory_bytes > engine_memory)
        {
            let key = (t.source.as_path(), t.limits.memory_bytes);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, ids)) => ids.push(&t.id),
                None => groups.push((key, vec![&t.id])),
            }
        }
        let human = |b: i64| indicatif::HumanBytes(b.max(0) as u64).to_string();
        let errors = groups
            .into_iter()
            .map(|((source, limit), ids)| PlanError::TooMuchMemory {
                tasks: name_tasks(&ids),
                source_file: source.to_path_buf(),
                requested: human(limit),
                available: human(engine_memory),
                default: human(Defaults::default().memory_bytes),
            })
            .collect();
        PlanError::from_all(errors).map_or(Ok(()), Err)
    }

    pub fn get(&self, id: &str) -> Option<&TaskSpec> {
        self.tasks.iter().find(|t| t.id == id)
    }
}

/// "task `a` has", or "3 tasks (`a`, `b`, `c`) have", naming at most five.
fn name_tasks(ids: &[&str]) -> String {
    let shown: Vec<String> = ids.iter().take(5).map(|id| format!("`{id}`")).collect();
    match ids.len() {
        1 => format!("task {} has", shown[0]),
        n if n <= 5 => format!("{n} tasks ({}) have", shown.join(", ")),
        n => format!("{n} tasks ({} and {} more) have", shown.join(", "), n - 5),
    }
}

/// `[a-z0-9][a-z0-9_-]{0,62}`: safe as a branch name, container name and path component.
pub fn is_valid_id(s: &str) -> bool {
    let bytes = s.as_bytes();
    let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    matches!(bytes.first(), Some(b) if allowed(b))
        && bytes.len() <= 63
        && bytes[1..].iter().all(|b| allowed(b) || *b == b'_' || *b == b'-')
}

/// The flags given to `rerun` over the tasks a run recorded: each flag given replaces the
/// recorded value (the point of a rerun with `--timeout 1h`); the others stay as recorded.
pub fn apply_flags(tasks: &mut [TaskSpec], flags: &Flags) -> Result<(), PlanError> {
    let mut errors = Vec::new();
    let o = parse_flags(flags, &mut errors);
    let runtime = flag_runtime(flags, &mut errors);
    if let Some(e) = PlanError::from_all(errors) {
        return Err(e);
    }
    for t in tasks.iter_mut() {
        t.runtime = runtime.clone().or(t.runtime.take());
        t.limits.nano_cpus = o.nano_cpus.unwrap_or(t.limits.nano_cpus);
        t.limits.memory_bytes = o.memory_bytes.unwrap_or(t.limits.memory_bytes);
        t.limits.pids = o.pids.unwrap_or(t.limits.pids);
        t.memory_request_bytes = o
            .memory_request
            .unwrap_or(t.memory_request_bytes.min(t.limits.memory_bytes));
        t.timeout = o.timeout.unwrap_or(t.timeout);
        t.disk_bytes = o.disk_bytes.or(t.disk_bytes);
        t.log_limit_bytes = o.log_limit_bytes.unwrap_or(t.log_limit_bytes);
        t.salvage.file_bytes = o.salvage_file.unwrap_or(t.salvage.file_bytes);
        t.salvage.total_bytes = o.salvage_total.unwrap_or(t.salvage.total_bytes);
        t.max_cost = o.max_cost.or(t.max_cost);
    }
    PlanError::from_all(tasks.iter().filter_map(request_above_limit).collect()).map_or(Ok(()), Err)
}

/// `--runtime`, checked as a name.
fn flag_runtime(flags: &Flags, errors: &mut Vec<PlanError>) -> Option<String> {
    let r = flags.runtime.as_ref()?;
    units::parse_runtime(r)
        .map_err(|reason| {
            errors.push(PlanError::Flag {
                flag: "runtime",
                value: r.clone(),
                reason,
            })
        })
        .ok()
}

/// Reads and validates every input, prompt files under `prompts`' rules. On failure, the
/// error holds every problem found (dependency problems only once the tasks themselves are
/// valid). Runs in O(n log n) for n tasks.
pub fn load(
    inputs: &[PathBuf],
    flags: &Flags,
    defaults: &Defaults,
    prompts: &PromptPolicy,
) -> Result<Plan, PlanError> {
    if inputs.is_empty() {
        return Err(PlanError::NoInputs);
    }
    let mut errors = Vec::new();
    let ctx = Context {
        flags: parse_flags(flags, &mut errors),
        runtime: flag_runtime(flags, &mut errors),
        defaults,
        prompts,
    };

    let mut drafts: Vec<Draft> = Vec::new();
    for input in inputs {
        match kind(input) {
            Err(e) => errors.push(e),
            Ok(Kind::Prompt) => drafts.extend(prompt_file::load(input, &ctx, &mut errors)),
            Ok(Kind::Tasks) => drafts.extend(task_file::load(input, &ctx, &mut errors)),
        }
    }

    let mut seen: HashMap<&str, &str> = HashMap::new();
    for draft in &drafts {
        if let Some(first) = seen.insert(&draft.spec.id, &draft.at) {
            errors.push(PlanError::DuplicateId {
                id: draft.spec.id.clone(),
                first: first.to_string(),
                second: draft.at.clone(),
            });
        }
    }
    errors.extend(drafts.iter().filter_map(|d| request_above_limit(&d.spec)));
    if let Some(e) = PlanError::from_all(errors) {
        return Err(e);
    }

    let nodes: Vec<graph::Node> = drafts
        .iter()
        .map(|d| graph::Node {
            id: &d.spec.id,
            deps: &d.deps,
        })
        .collect();
    if let Some(e) = PlanError::from_all(graph::unknown_dependencies(&nodes)) {
        return Err(e);
    }
    if let Some(e) = graph::find_cycle(&nodes) {
        return Err(e);
    }
    let order = graph::topological_order(&nodes);

    let mut slots: Vec<Option<TaskSpec>> = drafts.into_iter().map(|d| Some(d.spec)).collect();
    let tasks = order.into_iter().filter_map(|i| slots[i].take()).collect();
    Ok(Plan { tasks })
}

/// A reservation larger than the hard limit would reserve memory the task can never use.
fn request_above_limit(t: &TaskSpec) -> Option<PlanError> {
    let human = |b: i64| indicatif::HumanBytes(b.max(0) as u64).to_string();
    (t.memory_request_bytes > t.limits.memory_bytes).then(|| PlanError::RequestAboveLimit {
        id: t.id.clone(),
        source_file: t.source.clone(),
        request: human(t.memory_request_bytes),
        limit: human(t.limits.memory_bytes),
    })
}

/// What `load` hands to the file readers.
struct Context<'a> {
    /// Values from CLI flags (those that parsed).
    flags: Overrides,
    /// `--runtime`, checked: the runtime of every task that names none itself.
    runtime: Option<String>,
    defaults: &'a Defaults,
    prompts: &'a PromptPolicy,
}

/// A task before the graph checks: its spec plus where it was defined, for messages.
struct Draft {
    spec: TaskSpec,
    /// `file:line` of the id (just the file for a prompt file).
    at: String,
    deps: Vec<graph::Dep>,
}

/// One layer of resource settings; `None` lets a lower layer decide.
#[derive(Debug, Clone, Copy, Default)]
struct Overrides {
    nano_cpus: Option<i64>,
    memory_bytes: Option<i64>,
    memory_request: Option<i64>,
    pids: Option<i64>,
    timeout: Option<Duration>,
    disk_bytes: Option<u64>,
    log_limit_bytes: Option<u64>,
    salvage_file: Option<u64>,
    salvage_total: Option<u64>,
    max_cost: Option<f64>,
}

/// A task's resources, every layer applied.
struct Resolved {
    limits: Limits,
    memory_request_bytes: i64,
    timeout: Duration,
    disk_bytes: u64,
    log_limit_bytes: u64,
    salvage: SalvageLimits,
    max_cost: Option<f64>,
}

impl Overrides {
    /// `self` wins where it has a value.
    fn over(self, lower: Overrides) -> Overrides {
        Overrides {
            nano_cpus: self.nano_cpus.or(lower.nano_cpus),
            memory_bytes: self.memory_bytes.or(lower.memory_bytes),
            memory_request: self.memory_request.or(lower.memory_request),
            pids: self.pids.or(lower.pids),
            timeout: self.timeout.or(lower.timeout),
            disk_bytes: self.disk_bytes.or(lower.disk_bytes),
            log_limit_bytes: self.log_limit_bytes.or(lower.log_limit_bytes),
            salvage_file: self.salvage_file.or(lower.salvage_file),
            salvage_total: self.salvage_total.or(lower.salvage_total),
            max_cost: self.max_cost.or(lower.max_cost),
        }
    }

    fn resolve(self, base: &Defaults) -> Resolved {
        let memory_bytes = self.memory_bytes.unwrap_or(base.memory_bytes);
        Resolved {
            // Unsaid, never above the limit; said, checked against it (`request_above_limit`).
            memory_request_bytes: self
                .memory_request
                .unwrap_or(base.memory_request_bytes.min(memory_bytes)),
            limits: Limits {
                nano_cpus: self.nano_cpus.unwrap_or(base.nano_cpus),
                memory_bytes,
                pids: self.pids.unwrap_or(base.pids),
            },
            timeout: self.timeout.unwrap_or(base.timeout),
            disk_bytes: self.disk_bytes.unwrap_or(base.disk_bytes),
            log_limit_bytes: self.log_limit_bytes.unwrap_or(base.log_limit_bytes),
            salvage: SalvageLimits {
                file_bytes: self.salvage_file.unwrap_or(base.salvage.file_bytes),
                total_bytes: self.salvage_total.unwrap_or(base.salvage.total_bytes),
            },
            max_cost: self.max_cost,
        }
    }
}

fn parse_flags(flags: &Flags, errors: &mut Vec<PlanError>) -> Overrides {
    fn flag<T>(
        name: &'static str,
        raw: &Option<String>,
        parse: fn(&str) -> Result<T, String>,
        errors: &mut Vec<PlanError>,
    ) -> Option<T> {
        let raw = raw.as_ref()?;
        parse(raw)
            .map_err(|reason| {
                errors.push(PlanError::Flag {
                    flag: name,
                    value: raw.clone(),
                    reason,
                })
            })
            .ok()
    }
    Overrides {
        nano_cpus: flag("cpus", &flags.cpus, parse_cpus, errors),
        memory_bytes: flag("memory", &flags.memory, parse_memory, errors),
        memory_request: flag("memory-request", &flags.memory_request, parse_memory, errors),
        pids: flag("pids-limit", &flags.pids, parse_pids, errors),
        timeout: flag("timeout", &flags.timeout, parse_timeout, errors),
        disk_bytes: flag("disk", &flags.disk, parse_disk, errors),
        log_limit_bytes: flag("log-limit", &flags.log_limit, parse_size, errors),
        salvage_file: flag("salvage-max-file", &flags.salvage_max_file, parse_size, errors),
        salvage_total: flag("salvage-max-total", &flags.salvage_max_total, parse_size, errors),
        max_cost: flag("max-cost", &flags.max_cost, units::parse_cost, errors),
    }
}

enum Kind {
    Prompt,
    Tasks,
}

fn kind(path: &Path) -> Result<Kind, PlanError> {
    if !path.exists() {
        return Err(PlanError::NotFound {
            path: path.to_path_buf(),
        });
    }
    let bad = |problem: String, fix: &str| PlanError::BadInput {
        path: path.to_path_buf(),
        problem,
        fix: fix.into(),
    };
    const FIX: &str = "pass prompt files ending in .md (one task each) or task files ending in .toml";
    if path.is_dir() {
        return Err(bad("is a directory".into(), FIX));
    }
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("md") => Ok(Kind::Prompt),
        Some("toml") => Ok(Kind::Tasks),
        Some(other) => Err(bad(format!("unsupported file type `.{other}`"), FIX)),
        None => Err(bad(
            "the file has no extension, so its type is unknown".into(),
            FIX,
        )),
    }
}
