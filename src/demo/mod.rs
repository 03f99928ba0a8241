//! `sandpen demo`'s material: a small Python repository, a few tasks for it, and the scripts
//! the model server plays for them, each walking the WorkflowManager's 11 phases with real tool
//! calls (files written, tests run with `uv run`, commits made).

use std::path::Path;

use crate::agent::phases::PHASES;
use crate::model_server::{Script, TaskScript, Turn, Usage};

/// One sample task: its prompt and the code it ends up writing.
pub struct SampleTask {
    pub id: &'static str,
    pub prompt: &'static str,
    /// (path, content) of the implementation, and of its test.
    pub code: (&'static str, &'static str),
    pub test: (&'static str, &'static str),
    pub doc: &'static str,
}

pub const TASKS: [SampleTask; 4] = [
    SampleTask {
        id: "add-slugify",
        prompt: "Add a slugify(text) function to textkit that lowercases text and joins its words with dashes, with tests.",
        code: (
            "textkit/slug.py",
            "def slugify(text):\n    return \"-\".join(text.lower().split())\n",
        ),
        test: (
            "tests/test_slug.py",
            "import unittest\nfrom textkit.slug import slugify\n\n\nclass SlugTest(unittest.TestCase):\n    def test_slugify(self):\n        self.assertEqual(slugify(\"Hello  Big World\"), \"hello-big-world\")\n",
        ),
        doc: "- `slugify(text)`: `\"Hello World\"` becomes `\"hello-world\"`.",
    },
    SampleTask {
        id: "add-reverse",
        prompt: "Add reverse_words(text) to textkit, which reverses the order of the words, with tests.",
        code: (
            "textkit/reverse.py",
            "def reverse_words(text):\n    return \" \".join(reversed(text.split()))\n",
        ),
        test: (
            "tests/test_reverse.py",
            "import unittest\nfrom textkit.reverse import reverse_words\n\n\nclass ReverseTest(unittest.TestCase):\n    def test_reverse(self):\n        self.assertEqual(reverse_words(\"a b c\"), \"c b a\")\n",
        ),
        doc: "- `reverse_words(text)`: `\"a b c\"` becomes `\"c b a\"`.",
    },
    SampleTask {
        id: "fix-count",
        prompt: "count_words in textkit/words.py miscounts text with repeated spaces or newlines. Fix it and add a regression test.",
        code: (
            "textkit/words.py",
            "def count_words(text):\n    return len(text.split())\n",
        ),
        test: (
            "tests/test_words_whitespace.py",
            "import unittest\nfrom textkit.words import count_words\n\n\nclass WhitespaceTest(unittest.TestCase):\n    def test_runs_of_whitespace(self):\n        self.assertEqual(count_words(\"a  b\\n c\"), 3)\n",
        ),
        doc: "- `count_words(text)` counts words separated by any whitespace.",
    },
    SampleTask {
        id: "add-initials",
        prompt: "Add initials(name) to textkit, returning the upper-case first letters of each word, with tests.",
        code: (
            "textkit/initials.py",
            "def initials(name):\n    return \"\".join(w[0].upper() for w in name.split())\n",
        ),
        test: (
            "tests/test_initials.py",
            "import unittest\nfrom textkit.initials import initials\n\n\nclass InitialsTest(unittest.TestCase):\n    def test_initials(self):\n        self.assertEqual(initials(\"ada lovelace\"), \"AL\")\n",
        ),
        doc: "- `initials(name)`: `\"ada lovelace\"` becomes `\"AL\"`.",
    },
];

/// The sample repository's files.
pub const REPO_FILES: [(&str, &str); 5] = [
    (
        "README.md",
        "# textkit\n\nSmall text helpers (sandpen's demo repository).\n\n## Functions\n\n- `count_words(text)`\n",
    ),
    (
        "pyproject.toml",
        "[project]\nname = \"textkit\"\nversion = \"0.1.0\"\nrequires-python = \">=3.9\"\ndependencies = []\n",
    ),
    ("textkit/__init__.py", ""),
    (
        "textkit/words.py",
        "def count_words(text):\n    return len(text.split(\" \"))\n",
    ),
    (
        "tests/test_words.py",
        "import unittest\nfrom textkit.words import count_words\n\n\nclass WordsTest(unittest.TestCase):\n    def test_simple(self):\n        self.assertEqual(count_words(\"a b\"), 2)\n",
    ),
];

/// Writes the sample repository's files under `dir` (which must exist).
pub fn write_repo(dir: &Path) -> std::io::Result<()> {
    for (path, content) in REPO_FILES {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().expect("files have a parent"))?;
        std::fs::write(p, content)?;
    }
    Ok(())
}

/// Model latency the demo's scripted turns stand for.
const LATENCY_MS: u64 = 150;

/// The scripts of all sample tasks.
pub fn script() -> Script {
    Script {
        tasks: TASKS.iter().map(|t| (t.id.to_string(), task_script(t))).collect(),
        rate_limit: None,
        overloaded: None,
    }
}

/// A shell snippet that writes the task's workflow state file for `phase` (1-based) with the
/// phases before it (or up to it, when `done`) marked completed.
fn state(phase: usize, done: bool) -> String {
    let last = if done { phase } else { phase - 1 };
    let completed: Vec<String> = (1..=last).map(|n| n.to_string()).collect();
    format!(
        "d=.github/workflow-states/$SANDPEN_TASK_ID && mkdir -p $d && printf '{{\"task_id\": \"%s\", \"phase\": {phase}, \"phase_name\": \"{}\", \"completed\": [{}], \"updated_at\": \"%s\"}}\\n' \"$SANDPEN_TASK_ID\" \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\" > $d/state.json",
        PHASES[phase - 1],
        completed.join(", ")
    )
}

/// A shell command that writes `content` to `path` (single-quoted, so nothing is expanded).
fn write_file(path: &str, content: &str) -> String {
    let dir = Path::new(path)
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mkdir = if dir.is_empty() {
        String::new()
    } else {
        format!("mkdir -p {dir} && ")
    };
    format!("{mkdir}printf '%s' '{}' > {path}", content.replace('\'', "'\\''"))
}

fn task_script(t: &SampleTask) -> TaskScript {
    let d = "$d";
    let work: [String; 11] = [
        "ls -a && head -3 README.md".into(),
        format!(
            "printf '# {}\\n\\n{}\\n\\nAcceptance: tests pass with uv run.\\n' > {d}/issue.md",
            t.id, t.prompt
        ),
        "git branch --show-current".into(),
        format!(
            "printf 'Plan: change {}; test in {}.\\n' > {d}/plan.md",
            t.code.0, t.test.0
        ),
        write_file(t.code.0, t.code.1),
        format!(
            "{} && uv run --quiet python -m unittest discover -s tests -v",
            write_file(t.test.0, t.test.1)
        ),
        format!("printf '%s\\n' '{}' >> README.md", t.doc),
        format!(
            "printf '## {}\\n\\n{}\\n\\nTested with: uv run python -m unittest\\n' > {d}/pull-request.md",
            t.id, t.prompt
        ),
        format!("git diff --stat HEAD~5 > {d}/review.md && printf 'No findings.\\n' >> {d}/review.md"),
        format!("printf 'All review findings addressed (none open).\\n' >> {d}/review.md"),
        format!(
            "printf 'Nothing to carry over.\\n' > {d}/notes.md && {}",
            state(11, true)
        ),
    ];
    let mut turns: Vec<Turn> = work
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let phase = i + 1;
            let cmd = format!(
                "set -e; {}; {w}; git add -A && git commit -qm 'phase {phase}: {}' && echo committed phase {phase}",
                state(phase, false),
                PHASES[i]
            );
            Turn::bash(cmd, format!("phase {phase}: {}", PHASES[i]))
                .with_delay(LATENCY_MS)
                .with_usage(Usage { input_tokens: 1000 + 100 * phase as u64, output_tokens: 50 + 5 * phase as u64 })
        })
        .collect();
    turns.push(
        Turn::text(format!("Done: {}. All 11 phases completed and committed.", t.id))
            .with_delay(LATENCY_MS)
            .with_usage(Usage {
                input_tokens: 2300,
                output_tokens: 40,
            }),
    );
    TaskScript { turns }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_walks_all_eleven_phases_then_ends() {
        let s = script();
        assert_eq!(s.tasks.len(), TASKS.len());
        for (id, t) in &s.tasks {
            assert_eq!(t.turns.len(), 12, "{id}");
            assert!(t.turns[..11].iter().all(Turn::has_tool_use));
            assert!(!t.turns[11].has_tool_use(), "the last turn ends the session");
            let last = serde_json::to_string(&t.turns[10]).unwrap();
            assert!(last.contains("\\\"phase\\\": 11"), "{last}");
        }
    }
}
