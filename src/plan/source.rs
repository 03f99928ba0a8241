//! A task file's text and where things are in it: `file:line` for messages, the TOML
//! errors, and the governance check for keys that would replace the agent.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use serde::de::IgnoredAny;
use toml::Spanned;

use super::PlanError;

/// Keys that would replace the agent; refused with the governance message, not "unknown field".
const FORBIDDEN_KEYS: &[&str] = &["command", "cmd", "entrypoint", "args", "agent"];

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
pub(super) struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
    /// The offset where each line starts, so that a line is found by binary search: counting
    /// newlines from the top for every message made planning quadratic in the file's size.
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            path,
            text,
            line_starts,
        }
    }

    /// The 1-based line holding byte `offset`.
    pub fn line(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.line_starts.partition_point(|&start| start <= offset)
    }

    /// The 1-based column (in characters) of byte `offset`.
    pub fn column(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        let line_start = self.line_starts[self.line(offset) - 1];
        1 + self.text[line_start..offset].chars().count()
    }

    pub fn at(&self, span: Range<usize>) -> String {
        format!("{}:{}", self.path.display(), self.line(span.start))
    }
}

/// The governance check runs on a lenient parse when the strict one failed, so that
/// `command` gets its own explanation instead of serde's "unknown field" (or whatever other
/// error serde met first).
pub(super) fn forbidden_keys(src: &Source) -> Vec<PlanError> {
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

pub(super) fn toml_error(src: &Source, e: &toml::de::Error) -> PlanError {
    let offset = e.span().map_or(0, |s| s.start);
    let message = e.message().trim().replace('\n', "; ");
    let fix = if message.starts_with("unknown field") {
        "remove the key or correct its spelling (the keys allowed here are listed above)"
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns() {
        let text = "ab\nçd\n\nx";
        let src = Source::new(Path::new("t.toml"), text);
        let at = |offset| (src.line(offset), src.column(offset));
        assert_eq!(at(0), (1, 1));
        assert_eq!(at(2), (1, 3), "the newline ends its line");
        assert_eq!(at(3), (2, 1));
        assert_eq!(at(5), (2, 2), "columns count characters, not bytes");
        assert_eq!(at(7), (3, 1));
        assert_eq!(at(8), (4, 1));
        assert_eq!(at(100), (4, 2), "past the end is the end");
        assert_eq!(src.at(3..4), "t.toml:2");
        assert_eq!(Source::new(Path::new("e"), "").line(0), 1);
    }
}
