//! Reading inputs: prompt files (`*.md`, one task) and task files (`*.toml`).
//!
//! Fields checked after deserialization are `Spanned` so that errors can name the line.
//! Problems are pushed to `errors` rather than returned, so one run reports every bad
//! task instead of one per attempt.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IgnoredAny;
use toml::{Spanned, Value};

use super::graph::Dep;
use super::{Context, Draft, Overrides, PlanError, TaskSpec, is_valid_id, units};

const ID_RULE: &str = "ids must match [a-z0-9][a-z0-9_-]{0,62}: lowercase letters, digits, \
                       '-' and '_', starting with a letter or digit, at most 63 characters";

/// Keys that would replace the agent; refused with the governance message, not "unknown field".
const FORBIDDEN_KEYS: &[&str] = &["command", "cmd", "entrypoint", "args", "agent"];

type Env = BTreeMap<Spanned<String>, Spanned<Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    defaults: Option<RawDefaults>,
    #[serde(default)]
    task: Vec<Spanned<RawTask>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    cpus: Option<Spanned<Value>>,
    memory: Option<Spanned<Value>>,
    pids: Option<Spanned<Value>>,
    timeout: Option<Spanned<Value>>,
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
    pids: Option<Spanned<Value>>,
    timeout: Option<Spanned<Value>>,
    env: Option<Env>,
}

/// A lenient view of the file that only looks for the forbidden keys, wherever they are.
#[derive(Deserialize)]
struct Probe {
    command: Option<Spanned<IgnoredAny>>,
    cmd: Option<Spanned<IgnoredAny>>,
    entrypoint: Option<Spanned<IgnoredAny>>,
    args: Option<Spanned<IgnoredAny>>,
    agent: Option<Spanned<IgnoredAny>>,
    defaults: Option<BTreeMap<String, Spanned<IgnoredAny>>>,
    task: Option<Vec<BTreeMap<String, Spanned<IgnoredAny>>>>,
}

/// A file's path and text, to turn byte offsets into `file:line`.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn line(&self, offset: usize) -> usize {
        1 + self.text[..offset.min(self.text.len())].matches('\n').count()
    }

    fn column(&self, offset: usize) -> usize {
        let before = &self.text[..offset.min(self.text.len())];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        1 + before[line_start..].chars().count()
    }

    fn at(&self, span: Range<usize>) -> String {
        format!("{}:{}", self.path.display(), self.line(span.start))
    }
}

/// A prompt file: one task, its id is the file stem and the defaults are built-in < flags.
pub(super) fn load_prompt_file(path: &Path, ctx: &Context, errors: &mut Vec<PlanError>) -> Option<Draft> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !is_valid_id(&stem) {
        errors.push(PlanError::BadInput {
            path: path.to_path_buf(),
            problem: format!(
                "the file name `{stem}` is not a valid task id (a prompt file's task id is its \
                 file name without .md); {ID_RULE}"
            ),
            fix: format!(
                "rename the file (e.g. to {}.md), or list it in a task file with an explicit \
                 id:\n  [[task]]\n  id = \"{}\"\n  prompt = \"{}\"",
                suggest_id(&stem),
                suggest_id(&stem),
                path.display()
            ),
        });
    }
    let prompt = match read_text(path) {
        Ok(text) => text,
        Err(problem) => {
            errors.push(bad_input(path, problem, "make it a readable UTF-8 text file"));
            return None;
        }
    };
    if prompt.trim().is_empty() {
        errors.push(bad_input(
            path,
            "the prompt is empty (only whitespace)".into(),
            "write what the task should do in the file",
        ));
        return None;
    }
    if !is_valid_id(&stem) {
        return None;
    }
    let (limits, timeout) = ctx.flags.resolve(ctx.defaults);
    Some(Draft {
        at: path.display().to_string(),
        deps: Vec::new(),
        spec: TaskSpec {
            id: stem,
            prompt,
            source: path.to_path_buf(),
            limits,
            timeout,
            depends_on: Vec::new(),
            env: BTreeMap::new(),
            disk_bytes: None,
        },
    })
}

/// A task file: any number of `[[task]]`s sharing an optional `[defaults]`.
pub(super) fn load_task_file(path: &Path, ctx: &Context, errors: &mut Vec<PlanError>) -> Vec<Draft> {
    let text = match read_text(path) {
        Ok(text) => text,
        Err(problem) => {
            errors.push(bad_input(path, problem, "make it a readable UTF-8 text file"));
            return Vec::new();
        }
    };
    let src = Source { path, text: &text };

    let forbidden = forbidden_keys(&src);
    if !forbidden.is_empty() {
        errors.extend(forbidden);
        return Vec::new();
    }

    let raw: RawFile = match toml::from_str(&text) {
        Ok(raw) => raw,
        Err(e) => {
            errors.push(toml_error(&src, &e));
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

    let (file_defaults, default_env) = match &raw.defaults {
        Some(d) => (
            overrides(&src, &d.cpus, &d.memory, &d.pids, &d.timeout, errors),
            env(&src, d.env.as_ref(), errors),
        ),
        None => (Overrides::default(), BTreeMap::new()),
    };
    // Precedence: built-in < [defaults] < CLI flags < the task's own keys.
    let inherited = ctx.flags.over(file_defaults);

    raw.task
        .iter()
        .filter_map(|task| {
            let header = src.at(task.span());
            let task = task.get_ref();
            let before = errors.len();
            let draft = load_task(&src, &header, task, inherited, &default_env, ctx, errors);
            // A task with any error is left out: the run fails anyway, and only complete
            // tasks should take part in the duplicate-id check.
            draft.filter(|_| errors.len() == before)
        })
        .collect()
}

fn load_task(
    src: &Source,
    header: &str,
    task: &RawTask,
    inherited: Overrides,
    default_env: &BTreeMap<String, String>,
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

    let prompt = prompt(src, header, &name, task, errors);

    let mut deps: Vec<Dep> = Vec::new();
    for dep in task.depends_on.iter().flatten() {
        // Listing a dependency twice means the same thing as once.
        if !deps.iter().any(|d| d.id == *dep.get_ref()) {
            deps.push(Dep {
                id: dep.get_ref().clone(),
                at: src.at(dep.span()),
            });
        }
    }

    let own = overrides(src, &task.cpus, &task.memory, &task.pids, &task.timeout, errors);
    let mut env_vars = default_env.clone();
    env_vars.extend(env(src, task.env.as_ref(), errors));

    let (limits, timeout) = own.over(inherited).resolve(ctx.defaults);
    let (id, at) = id?;
    Some(Draft {
        at,
        spec: TaskSpec {
            id,
            prompt: prompt?,
            source: src.path.to_path_buf(),
            limits,
            timeout,
            depends_on: deps.iter().map(|d| d.id.clone()).collect(),
            env: env_vars,
            disk_bytes: None,
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
        (None, Some(inline)) => (inline.get_ref().clone(), src.at(inline.span())),
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
            match read_text(&resolved) {
                Ok(text) => (text, format!("{at} (prompt file {})", resolved.display())),
                Err(problem) => {
                    errors.push(PlanError::Invalid {
                        at,
                        problem: format!("the prompt file of {name}, {}: {problem}", resolved.display()),
                        fix: "prompt paths are relative to the task file's directory; correct \
                              the path, or write the prompt inline with `prompt_text`"
                            .into(),
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

fn overrides(
    src: &Source,
    cpus: &Option<Spanned<Value>>,
    memory: &Option<Spanned<Value>>,
    pids: &Option<Spanned<Value>>,
    timeout: &Option<Spanned<Value>>,
    errors: &mut Vec<PlanError>,
) -> Overrides {
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
    Overrides {
        nano_cpus: check(src, "cpus", cpus, units::cpus_value, errors),
        memory_bytes: check(src, "memory", memory, units::memory_value, errors),
        pids: check(src, "pids", pids, units::pids_value, errors),
        timeout: check(src, "timeout", timeout, units::timeout_value, errors),
    }
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

/// The governance check runs on a lenient parse, before the strict one, so that `command`
/// gets its own explanation instead of serde's "unknown field".
fn forbidden_keys(src: &Source) -> Vec<PlanError> {
    // Anything the lenient parse cannot read, the strict parse will report properly.
    let Ok(probe) = toml::from_str::<Probe>(src.text) else {
        return Vec::new();
    };
    let mut found: Vec<(usize, String)> = Vec::new();
    let root = [
        ("command", &probe.command),
        ("cmd", &probe.cmd),
        ("entrypoint", &probe.entrypoint),
        ("args", &probe.args),
        ("agent", &probe.agent),
    ];
    for (key, value) in root {
        if let Some(v) = value {
            found.push((v.span().start, key.to_string()));
        }
    }
    let tables = probe.defaults.iter().chain(probe.task.iter().flatten());
    for table in tables {
        for (key, value) in table {
            if FORBIDDEN_KEYS.contains(&key.as_str()) {
                found.push((value.span().start, key.clone()));
            }
        }
    }
    found.sort();
    found
        .into_iter()
        .map(|(offset, key)| PlanError::Governance {
            path: src.path.to_path_buf(),
            line: src.line(offset),
            key,
        })
        .collect()
}

fn toml_error(src: &Source, e: &toml::de::Error) -> PlanError {
    let offset = e.span().map_or(0, |s| s.start);
    let message = e.message().trim().replace('\n', "; ");
    let fix = if message.starts_with("unknown field") {
        "remove the key or correct its spelling (the keys allowed here are listed above; \
         [defaults] takes cpus, memory, pids, timeout and env)"
    } else if message.contains("expected a sequence") {
        "lists are written in brackets, e.g. depends_on = [\"setup-db\"], and each task is its \
         own [[task]] table (double brackets)"
    } else if message.starts_with("invalid type") {
        "give the key a value of the expected type; text such as ids, prompts and env values \
         goes in quotes"
    } else {
        "fix the TOML syntax at that position (see https://toml.io)"
    };
    PlanError::Toml {
        path: src.path.to_path_buf(),
        line: src.line(offset),
        column: src.column(offset),
        message,
        fix: fix.into(),
    }
}

fn read_text(path: &Path) -> Result<String, String> {
    if path.is_dir() {
        return Err("is a directory, not a file".into());
    }
    std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "does not exist".to_string(),
        std::io::ErrorKind::InvalidData => "is not UTF-8 text".to_string(),
        _ => format!("cannot be read: {e}"),
    })
}

fn bad_input(path: &Path, problem: String, fix: &str) -> PlanError {
    PlanError::BadInput {
        path: path.to_path_buf(),
        problem,
        fix: fix.into(),
    }
}

/// A valid id close to `s`, for "for example" hints: `Add Login` -> `add-login`.
fn suggest_id(s: &str) -> String {
    let mut id = String::new();
    for c in s.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            c
        } else {
            '-'
        };
        if !(c == '-' && (id.is_empty() || id.ends_with('-'))) {
            id.push(c);
        }
    }
    let id: String = id.trim_start_matches(['_', '-']).chars().take(63).collect();
    let id = id.trim_end_matches('-').to_string();
    if is_valid_id(&id) { id } else { "my-task".into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_valid_ids() {
        assert_eq!(suggest_id("Add Login"), "add-login");
        assert_eq!(suggest_id("../x/y"), "x-y");
        assert_eq!(suggest_id("a.b"), "a-b");
        assert_eq!(suggest_id("__"), "my-task");
        assert_eq!(suggest_id(""), "my-task");
        assert!(is_valid_id(&suggest_id(&"A".repeat(100))));
    }

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
