//! The keys a task file takes, and every unknown one named at once with the closest known key
//! (serde stops at the first).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use toml::Spanned;

use super::PlanError;
use super::source::Source;

/// The keys of `task_file`'s structs, for naming every unknown key at once (serde names the first).
/// A task takes every key `[defaults]` takes, and its own.
pub(super) const KNOWN: KnownKeys = KnownKeys {
    root: &["defaults", "task"],
    defaults: &[
        "cpus",
        "memory",
        "memory_request",
        "pids",
        "timeout",
        "disk",
        "log_limit",
        "salvage_max_file",
        "salvage_max_total",
        "max_cost",
        "allow_hosts",
        "runtime",
        "env",
    ],
    task_only: &["id", "prompt", "prompt_text", "depends_on"],
};

/// A table's keys, each with where it is.
type Keys = BTreeMap<Spanned<String>, IgnoredAny>;

/// The tables whose keys are checked.
#[derive(Deserialize)]
struct KeysProbe {
    defaults: Option<Keys>,
    task: Option<Vec<Keys>>,
}

/// The keys a task file takes, where: the strict parse's structs are the truth, and a unit
/// test holds these lists to them.
pub(super) struct KnownKeys {
    pub root: &'static [&'static str],
    pub defaults: &'static [&'static str],
    /// A task's keys beyond the defaults'.
    pub task_only: &'static [&'static str],
}

impl KnownKeys {
    pub fn task(&self) -> Vec<&'static str> {
        [self.task_only, self.defaults].concat()
    }
}

/// Every key the strict parse does not know, at once, each with the closest known key: serde
/// stops at the first. Empty when the lenient parse cannot read the file (or finds none), and
/// then the strict parse's own error is the one to show.
pub(super) fn unknown_keys(src: &Source, known: &KnownKeys) -> Vec<PlanError> {
    let (Ok(root), Ok(probe)) = (
        toml::from_str::<Keys>(src.text),
        toml::from_str::<KeysProbe>(src.text),
    ) else {
        return Vec::new();
    };
    let task_keys = known.task();
    let mut found: Vec<(usize, String, &str, Vec<&str>)> = Vec::new();
    let mut look = |table: &Keys, name: &'static str, keys: &[&'static str]| {
        for key in table.keys() {
            if !keys.contains(&key.get_ref().as_str()) {
                found.push((key.span().start, key.get_ref().clone(), name, keys.to_vec()));
            }
        }
    };
    look(&root, "the top level", known.root);
    if let Some(d) = &probe.defaults {
        look(d, "[defaults]", known.defaults);
    }
    for t in probe.task.iter().flatten() {
        look(t, "[[task]]", &task_keys);
    }
    found.sort();
    found
        .into_iter()
        .map(|(offset, key, table, keys)| {
            let hint = match closest(&key, &keys) {
                Some(k) => format!(", did you mean `{k}`?"),
                None => String::new(),
            };
            PlanError::Toml {
                path: src.path.to_path_buf(),
                line: src.line(offset),
                column: src.column(offset),
                message: format!("unknown field `{key}` in {table}{hint}"),
                fix: format!(
                    "remove the key or correct its spelling; {table} takes {}",
                    keys.join(", ")
                ),
            }
        })
        .collect()
}

/// The known key nearest to `key`, when it is near enough to be a misspelling.
fn closest<'k>(key: &str, keys: &[&'k str]) -> Option<&'k str> {
    keys.iter()
        .map(|k| (strsim::damerau_levenshtein(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3) && *d < k.len().max(key.len()))
        .min()
        .map(|(_, k)| k)
}
