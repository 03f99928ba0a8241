//! `load` from files on disk, by topic; the helpers they share.

mod ids;
mod loading;
mod policy;
mod prompts;
mod scale;
mod structure;
mod values;

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::*;
use crate::exit::{HasExitCode, INVALID_INPUT};

const GIB: i64 = 1024 * 1024 * 1024;
const MIB: i64 = 1024 * 1024;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, text).unwrap();
    path
}

fn load_with(inputs: &[PathBuf], flags: &Flags) -> Result<Plan, PlanError> {
    load(inputs, flags, &Defaults::default(), &PromptPolicy::default())
}

fn ok(inputs: &[PathBuf]) -> Plan {
    load_with(inputs, &Flags::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// The error's text; also checks that every plan error means "invalid input".
fn err_with(inputs: &[PathBuf], flags: &Flags) -> String {
    let e = load_with(inputs, flags).expect_err("expected an error");
    assert_eq!(e.exit_code(), INVALID_INPUT);
    e.to_string()
}

fn err(inputs: &[PathBuf]) -> String {
    err_with(inputs, &Flags::default())
}

/// A task file in a fresh directory, and the error loading it gives.
fn toml_err(text: &str) -> String {
    let dir = TempDir::new().unwrap();
    let tasks = write(dir.path(), "tasks.toml", text);
    err(&[tasks])
}

fn assert_has(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "missing {part:?} in:\n{text}");
    }
}

fn ids(plan: &Plan) -> Vec<&str> {
    plan.tasks.iter().map(|t| t.id.as_str()).collect()
}
