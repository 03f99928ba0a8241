//! Prompt files (`*.md`) named on the command line: one task each, its id the file name.

use std::collections::BTreeMap;
use std::path::Path;

use super::policy::NamedBy;
use super::{Context, Draft, PlanError, Resolved, TaskSpec, is_valid_id};

pub(super) const ID_RULE: &str = "ids must match [a-z0-9][a-z0-9_-]{0,62}: lowercase letters, digits, \
                       '-' and '_', starting with a letter or digit, at most 63 characters";

/// A prompt file: one task, its id is the file stem and the defaults are built-in < flags.
pub(super) fn load(path: &Path, ctx: &Context, errors: &mut Vec<PlanError>) -> Option<Draft> {
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
    let prompt = match ctx.prompts.read(path, NamedBy::CommandLine) {
        Ok(text) => text,
        Err(refused) => {
            errors.push(bad_input(path, refused.problem, refused.fix));
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
    let Resolved {
        limits,
        memory_request_bytes,
        timeout,
        disk_bytes,
        log_limit_bytes,
        salvage,
        max_cost,
    } = ctx.flags.resolve(ctx.defaults);
    Some(Draft {
        at: path.display().to_string(),
        deps: Vec::new(),
        spec: TaskSpec {
            id: stem,
            prompt,
            source: path.to_path_buf(),
            limits,
            memory_request_bytes,
            timeout,
            depends_on: Vec::new(),
            env: BTreeMap::new(),
            disk_bytes: Some(disk_bytes),
            log_limit_bytes,
            salvage,
            allow_hosts: Vec::new(),
            max_cost,
            runtime: ctx.runtime.clone(),
        },
    })
}

pub(super) fn bad_input(path: &Path, problem: String, fix: impl Into<String>) -> PlanError {
    PlanError::BadInput {
        path: path.to_path_buf(),
        problem,
        fix: fix.into(),
    }
}

/// A valid id close to `s`, for "for example" hints: `Add Login` -> `add-login`.
pub(super) fn suggest_id(s: &str) -> String {
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
}
