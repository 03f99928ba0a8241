//! Task files (`*.toml`): any number of `[[task]]`s sharing an optional `[defaults]`.
//!
//! Fields checked after deserialization are `Spanned` so that errors can name the line.
//! Problems are pushed to `errors` rather than returned, so one run reports every bad
//! task instead of one per attempt.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::{Spanned, Value};

use super::graph::Dep;
use super::keys::{KNOWN, unknown_keys};
use super::policy::NamedBy;
use super::prompt_file::{ID_RULE, bad_input, suggest_id};
use super::read::{MAX_TASK_FILE_BYTES, ReadError, read_bounded};
use super::source::{Source, forbidden_keys, toml_error};
use super::{Context, Draft, Overrides, PlanError, Resolved, TaskSpec, is_valid_id, policy, units};

type Env = BTreeMap<Spanned<String>, Spanned<Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    defaults: Option<RawDefaults>,
    #[serde(default)]
    task: Vec<Spanned<RawTask>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    cpus: Option<Spanned<Value>>,
    memory: Option<Spanned<Value>>,
    memory_request: Option<Spanned<Value>>,
    pids: Option<Spanned<Value>>,
    timeout: Option<Spanned<Value>>,
    disk: Option<Spanned<Value>>,
    log_limit: Option<Spanned<Value>>,
    salvage_max_file: Option<Spanned<Value>>,
    salvage_max_total: Option<Spanned<Value>>,
    max_cost: Option<Spanned<Value>>,
    allow_hosts: Option<Vec<Spanned<String>>>,
    runtime: Option<Spanned<Value>>,
    env: Option<Env>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    id: Option<Spanned<String>>,
    prompt: Option<Spanned<String>>,
    prompt_text: Option<Spanned<String>>,
    depends_on: Option<Vec<Spanned<String>>>,
    cpus: Option<Spanned<Value>>,
    memory: Option<Spanned<Value>>,
    memory_request: Option<Spanned<Value>>,
    pids: Option<Spanned<Value>>,
    timeout: Option<Spanned<Value>>,
    disk: Option<Spanned<Value>>,
    log_limit: Option<Spanned<Value>>,
    salvage_max_file: Option<Spanned<Value>>,
    salvage_max_total: Option<Spanned<Value>>,
    max_cost: Option<Spanned<Value>>,
    allow_hosts: Option<Vec<Spanned<String>>>,
    runtime: Option<Spanned<Value>>,
    env: Option<Env>,
}

/// A task file: any number of `[[task]]`s sharing an optional `[defaults]`.
pub(super) fn load(path: &Path, ctx: &Context, errors: &mut Vec<PlanError>) -> Vec<Draft> {
    let text = match read_bounded(path, MAX_TASK_FILE_BYTES, true) {
        Ok(text) => text,
        Err(e @ ReadError::TooLarge { .. }) => {
            errors.push(bad_input(
                path,
                format!("{e} for a task file"),
                "split the tasks over several task files, and keep long prompts in prompt files",
            ));
            return Vec::new();
        }
        Err(e) => {
            let fix = match e {
                ReadError::NotRegular(_) => "pass a regular file: a task file is read once, whole",
                _ => "make it a readable UTF-8 text file",
            };
            errors.push(bad_input(path, e.to_string(), fix));
            return Vec::new();
        }
    };
    let src = Source::new(path, &text);
    let dir = policy::dir_of(path);

    let raw: RawFile = match toml::from_str(&text) {
        Ok(raw) => raw,
        Err(e) => {
            // A key that would replace the agent fails the strict parse (no such field), so
            // the second, lenient parse that explains it is only needed then.
            let forbidden = forbidden_keys(&src);
            let unknown = match forbidden.is_empty() {
                true => unknown_keys(&src, &KNOWN),
                false => Vec::new(),
            };
            if !forbidden.is_empty() {
                errors.extend(forbidden);
            } else if !unknown.is_empty() {
                errors.extend(unknown);
            } else {
                errors.push(toml_error(&src, &e));
            }
            return Vec::new();
        }
    };
    if raw.task.is_empty() {
        errors.push(bad_input(
            path,
            "no tasks: the file has no [[task]] table".into(),
            "add at least one task, e.g.\n  [[task]]\n  id = \"add-login\"\n  \
             prompt = \"prompts/add-login.md\"",
        ));
        return Vec::new();
    }

    let (file_defaults, default_env, default_allow) = match &raw.defaults {
        Some(d) => (
            overrides(
                &src,
                [
                    &d.cpus,
                    &d.memory,
                    &d.memory_request,
                    &d.pids,
                    &d.timeout,
                    &d.disk,
                    &d.log_limit,
                    &d.salvage_max_file,
                    &d.salvage_max_total,
                    &d.max_cost,
                ],
                errors,
            ),
            env(&src, d.env.as_ref(), errors),
            allow_hosts(&src, d.allow_hosts.as_deref(), errors),
        ),
        None => (Overrides::default(), BTreeMap::new(), Vec::new()),
    };
    let file_runtime = raw
        .defaults
        .as_ref()
        .and_then(|d| check(&src, "runtime", &d.runtime, units::runtime_value, errors));
    let shared = Shared {
        // Precedence: built-in < [defaults] < CLI flags < the task's own keys.
        overrides: ctx.flags.over(file_defaults),
        env: default_env,
        allow_hosts: default_allow,
        runtime: ctx.runtime.clone().or(file_runtime),
        dir,
    };

    raw.task
        .iter()
        .filter_map(|task| {
            let header = src.at(task.span());
            let task = task.get_ref();
            let before = errors.len();
            let draft = load_task(&src, &header, task, &shared, ctx, errors);
            // A task with any error is left out: the run fails anyway, and only complete
            // tasks should take part in the duplicate-id check.
            draft.filter(|_| errors.len() == before)
        })
        .collect()
}

/// What every task of one file starts from.
struct Shared {
    overrides: Overrides,
    env: BTreeMap<String, String>,
    /// `[defaults] allow_hosts`, which each task's own list adds to.
    allow_hosts: Vec<String>,
    /// `--runtime`, else `[defaults] runtime`; a task's own key beats both.
    runtime: Option<String>,
    /// The file's directory, resolved ([`policy::dir_of`]).
    dir: PathBuf,
}

fn load_task(
    src: &Source,
    header: &str,
    task: &RawTask,
    shared: &Shared,
    ctx: &Context,
    errors: &mut Vec<PlanError>,
) -> Option<Draft> {
    // The id and where it was written (the task's header line when it is missing).
    let id: Option<(String, String)> = match &task.id {
        None => {
            let suggestion = task
                .prompt
                .as_ref()
                .and_then(|p| {
                    Path::new(p.get_ref())
                        .file_stem()
                        .map(|s| suggest_id(&s.to_string_lossy()))
                })
                .unwrap_or_else(|| "my-task".into());
            errors.push(PlanError::Invalid {
                at: header.into(),
                problem: "this [[task]] has no `id`".into(),
                fix: format!("add one, e.g. id = \"{suggestion}\" ({ID_RULE})"),
            });
            None
        }
        Some(id) if !is_valid_id(id.get_ref()) => {
            errors.push(PlanError::Invalid {
                at: src.at(id.span()),
                problem: format!("`{}` is not a valid task id", id.get_ref().escape_debug()),
                fix: format!("{ID_RULE}; for example `{}`", suggest_id(id.get_ref())),
            });
            None
        }
        Some(id) => Some((id.get_ref().clone(), src.at(id.span()))),
    };
    let name = id
        .as_ref()
        .map_or("this task".into(), |(id, _)| format!("task `{id}`"));

    let prompt = prompt(src, header, &name, task, &shared.dir, ctx, errors);

    let mut deps: Vec<Dep> = Vec::new();
    let mut listed: HashSet<&str> = HashSet::new();
    for dep in task.depends_on.iter().flatten() {
        // Listing a dependency twice means the same thing as once.
        if listed.insert(dep.get_ref()) {
            deps.push(Dep {
                id: dep.get_ref().clone(),
                at: src.at(dep.span()),
            });
        }
    }

    let own = overrides(
        src,
        [
            &task.cpus,
            &task.memory,
            &task.memory_request,
            &task.pids,
            &task.timeout,
            &task.disk,
            &task.log_limit,
            &task.salvage_max_file,
            &task.salvage_max_total,
            &task.max_cost,
        ],
        errors,
    );
    let mut env_vars = shared.env.clone();
    env_vars.extend(env(src, task.env.as_ref(), errors));

    let mut hosts = shared.allow_hosts.clone();
    hosts.extend(allow_hosts(src, task.allow_hosts.as_deref(), errors));
    let Resolved {
        limits,
        memory_request_bytes,
        timeout,
        disk_bytes,
        log_limit_bytes,
        salvage,
        max_cost,
    } = own.over(shared.overrides).resolve(ctx.defaults);
    let (id, at) = id?;
    Some(Draft {
        at,
        spec: TaskSpec {
            id,
            prompt: prompt?,
            source: src.path.to_path_buf(),
            limits,
            memory_request_bytes,
            timeout,
            depends_on: deps.iter().map(|d| d.id.clone()).collect(),
            env: env_vars,
            disk_bytes: Some(disk_bytes),
            log_limit_bytes,
            salvage,
            allow_hosts: hosts,
            max_cost,
            runtime: check(src, "runtime", &task.runtime, units::runtime_value, errors)
                .or_else(|| shared.runtime.clone()),
        },
        deps,
    })
}

/// The prompt text, from exactly one of `prompt` (a file) and `prompt_text` (inline).
fn prompt(
    src: &Source,
    header: &str,
    name: &str,
    task: &RawTask,
    dir: &Path,
    ctx: &Context,
    errors: &mut Vec<PlanError>,
) -> Option<String> {
    let (text, at) = match (&task.prompt, &task.prompt_text) {
        (Some(_), Some(inline)) => {
            errors.push(PlanError::Invalid {
                at: src.at(inline.span()),
                problem: format!("{name} sets both `prompt` and `prompt_text`"),
                fix: "keep one: `prompt` names a file, `prompt_text` holds the text itself".into(),
            });
            return None;
        }
        (None, None) => {
            errors.push(PlanError::Invalid {
                at: header.into(),
                problem: format!("{name} has no prompt"),
                fix: "add `prompt = \"prompts/<file>.md\"` (relative to this task file) or \
                      `prompt_text = \"what the task should do\"`"
                    .into(),
            });
            return None;
        }
        (None, Some(inline)) => {
            let at = src.at(inline.span());
            if let Err(refused) = ctx.prompts.check_inline(inline.get_ref()) {
                errors.push(PlanError::Invalid {
                    at,
                    problem: format!("the `prompt_text` of {name} {}", refused.problem),
                    fix: refused.fix,
                });
                return None;
            }
            (inline.get_ref().clone(), at)
        }
        (Some(file), None) => {
            let at = src.at(file.span());
            if file.get_ref().trim().is_empty() {
                errors.push(PlanError::Invalid {
                    at,
                    problem: format!("{name} has an empty `prompt` path"),
                    fix: "name the prompt file, or use `prompt_text` for an inline prompt".into(),
                });
                return None;
            }
            let resolved = resolve_prompt_path(src.path, file.get_ref());
            match ctx.prompts.read(&resolved, NamedBy::TaskFile(dir)) {
                Ok(text) => (text, format!("{at} (prompt file {})", resolved.display())),
                Err(refused) => {
                    errors.push(PlanError::Invalid {
                        at,
                        problem: format!(
                            "the prompt file of {name}, {}, {}",
                            resolved.display(),
                            refused.problem
                        ),
                        fix: refused.fix,
                    });
                    return None;
                }
            }
        }
    };
    if text.trim().is_empty() {
        errors.push(PlanError::Invalid {
            at,
            problem: format!("the prompt of {name} is empty (only whitespace)"),
            fix: "write what the task should do".into(),
        });
        return None;
    }
    Some(text)
}

/// `prompt` paths are relative to the task file's directory, not the working directory,
/// so a task file works the same from wherever `sandpen run` is started.
fn resolve_prompt_path(task_file: &Path, prompt: &str) -> PathBuf {
    let prompt = Path::new(prompt);
    match task_file.parent() {
        Some(dir) if prompt.is_relative() => dir.join(prompt),
        _ => prompt.to_path_buf(),
    }
}

/// The resource keys of a `[defaults]` or `[[task]]` table: cpus, memory, memory_request,
/// pids, timeout, disk, log_limit, salvage_max_file, salvage_max_total, max_cost.
fn overrides(src: &Source, keys: [&Option<Spanned<Value>>; 10], errors: &mut Vec<PlanError>) -> Overrides {
    let [
        cpus,
        memory,
        memory_request,
        pids,
        timeout,
        disk,
        log_limit,
        salvage_file,
        salvage_total,
        max_cost,
    ] = keys;
    Overrides {
        nano_cpus: check(src, "cpus", cpus, units::cpus_value, errors),
        memory_bytes: check(src, "memory", memory, units::memory_value, errors),
        memory_request: check(src, "memory_request", memory_request, units::memory_value, errors),
        pids: check(src, "pids", pids, units::pids_value, errors),
        timeout: check(src, "timeout", timeout, units::timeout_value, errors),
        disk_bytes: check(src, "disk", disk, units::disk_value, errors),
        log_limit_bytes: check(src, "log_limit", log_limit, units::disk_value, errors),
        salvage_file: check(src, "salvage_max_file", salvage_file, units::disk_value, errors),
        salvage_total: check(src, "salvage_max_total", salvage_total, units::disk_value, errors),
        max_cost: check(src, "max_cost", max_cost, units::cost_value, errors),
    }
}

/// One key's value through its parser; a bad one is an error naming the key and its line.
fn check<T>(
    src: &Source,
    key: &str,
    value: &Option<Spanned<Value>>,
    parse: fn(&Value) -> Result<T, String>,
    errors: &mut Vec<PlanError>,
) -> Option<T> {
    let value = value.as_ref()?;
    parse(value.get_ref())
        .map_err(|reason| {
            errors.push(PlanError::BadValue {
                at: src.at(value.span()),
                what: format!("`{key}` = {}", value.get_ref()),
                reason,
            })
        })
        .ok()
}

/// An `allow_hosts` list, every entry checked as the gateway will read it.
fn allow_hosts(src: &Source, list: Option<&[Spanned<String>]>, errors: &mut Vec<PlanError>) -> Vec<String> {
    let mut out = Vec::new();
    for entry in list.into_iter().flatten() {
        match crate::gateway::allow::HostPattern::parse(entry.get_ref()) {
            Ok(_) => out.push(entry.get_ref().trim().to_string()),
            Err(reason) => errors.push(PlanError::BadValue {
                at: src.at(entry.span()),
                what: format!("`allow_hosts` entry {:?}", entry.get_ref()),
                reason,
            }),
        }
    }
    out
}

fn env(src: &Source, env: Option<&Env>, errors: &mut Vec<PlanError>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (key, value) in env.into_iter().flatten() {
        let at = src.at(key.span());
        if let Err(reason) = units::check_env_key(key.get_ref()) {
            errors.push(PlanError::BadValue {
                at,
                what: format!("`env` name `{}`", key.get_ref().escape_debug()),
                reason,
            });
            continue;
        }
        match value.get_ref() {
            Value::String(s) => {
                out.insert(key.get_ref().clone(), s.clone());
            }
            other => errors.push(PlanError::BadValue {
                at: src.at(value.span()),
                what: format!("`env` value {} = {other}", key.get_ref()),
                reason: format!(
                    "environment values are strings; quote it: {} = \"{}\"",
                    key.get_ref(),
                    other.to_string().trim_matches('"')
                ),
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_paths_are_relative_to_the_task_file() {
        assert_eq!(
            resolve_prompt_path(Path::new("dir/tasks.toml"), "p/a.md"),
            PathBuf::from("dir/p/a.md")
        );
        assert_eq!(
            resolve_prompt_path(Path::new("tasks.toml"), "a.md"),
            PathBuf::from("a.md")
        );
        assert_eq!(
            resolve_prompt_path(Path::new("dir/t.toml"), "/abs/a.md"),
            PathBuf::from("/abs/a.md")
        );
    }
}
