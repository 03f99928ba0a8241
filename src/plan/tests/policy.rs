//! Where prompt files may come from, what they may be, and how large.

use std::os::unix::fs::symlink;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::*;

/// `base/repo/.git`, `base/repo/tasks/`, and `base/outside.md`: a repository with a task
/// directory in it and a regular file outside it.
struct Layout {
    base: TempDir,
}

impl Layout {
    fn new() -> Self {
        let base = TempDir::new().unwrap();
        fs::create_dir_all(base.path().join("repo/.git")).unwrap();
        fs::create_dir_all(base.path().join("repo/tasks")).unwrap();
        write(base.path(), "outside.md", "a secret from outside");
        Self { base }
    }

    fn repo(&self) -> PathBuf {
        self.base.path().join("repo")
    }

    fn tasks(&self) -> PathBuf {
        self.repo().join("tasks")
    }

    /// A task file in the task directory whose one task has `prompt = "<prompt>"`.
    fn task_file(&self, prompt: &str) -> PathBuf {
        let text = format!("[[task]]\nid = \"a\"\nprompt = \"{prompt}\"\n");
        write(&self.tasks(), "tasks.toml", &text)
    }

    /// The repository as a root, like a run started in it.
    fn policy(&self) -> PromptPolicy {
        PromptPolicy::for_run(Some(&self.repo()), false, DEFAULT_MAX_PROMPT_BYTES)
    }
}

fn load_policy(inputs: &[PathBuf], policy: &PromptPolicy) -> Result<Plan, String> {
    let start = Instant::now();
    let result = load(inputs, &Flags::default(), &Defaults::default(), policy);
    assert!(start.elapsed() < Duration::from_secs(1), "refused at once");
    result.map_err(|e| e.to_string())
}

fn prompt_of(inputs: &[PathBuf], policy: &PromptPolicy) -> String {
    let plan = load_policy(inputs, policy).unwrap_or_else(|e| panic!("{e}"));
    plan.tasks[0].prompt.clone()
}

const OUTSIDE: &[&str] = &[
    "tasks.toml:3",
    "is outside the task file's directory (",
    "the repository (",
    "fix: ",
    "--allow-outside-prompts",
];

#[test]
fn the_repository_is_found_without_git() {
    let l = Layout::new();
    let top = fs::canonicalize(l.repo()).unwrap();
    assert_eq!(repo_top(&l.tasks()), Some(top.clone()));
    assert_eq!(repo_top(&l.repo()), Some(top.clone()));
    assert_eq!(l.policy().roots, [top]);
    // A worktree's `.git` is a file.
    let wt = l.base.path().join("wt");
    write(&wt, ".git", "gitdir: elsewhere\n");
    fs::create_dir_all(wt.join("a/b")).unwrap();
    assert_eq!(repo_top(&wt.join("a/b")), Some(fs::canonicalize(&wt).unwrap()));
    assert_eq!(repo_top(&l.base.path().join("no-such-dir")), None);
}

#[test]
fn prompts_beside_the_task_file_or_in_the_repository_are_read() {
    let l = Layout::new();
    write(&l.tasks(), "p/here.md", "beside");
    write(&l.repo(), "prompts/there.md", "in the repo");
    let t = l.task_file("p/here.md");
    assert_eq!(prompt_of(&[t], &l.policy()), "beside");
    let t = l.task_file("../prompts/there.md");
    assert_eq!(prompt_of(&[t], &l.policy()), "in the repo");
    // A symlink whose target is still inside is fine.
    symlink(l.repo().join("prompts/there.md"), l.tasks().join("link.md")).unwrap();
    let t = l.task_file("link.md");
    assert_eq!(prompt_of(&[t], &l.policy()), "in the repo");
}

#[test]
fn prompts_outside_are_refused_unless_allowed() {
    let l = Layout::new();
    let outside = l.base.path().join("outside.md");
    let cases = [
        ("../../outside.md".to_string(), "relative path out"),
        (outside.display().to_string(), "absolute path"),
        ("../../../../../../../../etc/passwd".to_string(), "a host file"),
    ];
    for (prompt, case) in &cases {
        let t = l.task_file(prompt);
        let text = load_policy(&[t], &l.policy()).expect_err(case);
        assert_has(&text, OUTSIDE);
        assert!(
            !text.contains("secret") && !text.contains("root:"),
            "{case}: no content shown"
        );
    }

    // Without a repository, only the task file's directory.
    let text = load_policy(&[l.task_file("../../outside.md")], &PromptPolicy::default()).unwrap_err();
    assert_has(&text, &["is outside", "no repository was found"]);

    // --allow-outside-prompts lifts exactly that.
    let allow = PromptPolicy {
        allow_outside: true,
        ..l.policy()
    };
    let t = l.task_file("../../outside.md");
    assert_eq!(prompt_of(&[t], &allow), "a secret from outside");
}

#[test]
fn symlinks_to_outside_are_refused() {
    let l = Layout::new();
    let outside = l.base.path().join("outside.md");
    symlink(&outside, l.tasks().join("innocent.md")).unwrap();
    let text = load_policy(&[l.task_file("innocent.md")], &l.policy()).unwrap_err();
    assert_has(&text, OUTSIDE);
    assert_has(&text, &["innocent.md", "it resolves to", "outside.md"]);

    // A symlinked directory on the way counts the same.
    symlink(l.base.path(), l.tasks().join("up")).unwrap();
    let text = load_policy(&[l.task_file("up/outside.md")], &l.policy()).unwrap_err();
    assert_has(&text, OUTSIDE);

    // Named on the command line: its own directory is fine, a link out of it is not.
    let text = load_policy(&[l.tasks().join("innocent.md")], &l.policy()).unwrap_err();
    assert_has(
        &text,
        &[
            "innocent.md: is outside the directory of the link",
            "it resolves to",
            "copy the file into the repository",
            "--allow-outside-prompts",
        ],
    );
    let plain = write(l.base.path(), "elsewhere/plain.md", "fine");
    assert_eq!(prompt_of(&[plain], &l.policy()), "fine");
}

#[test]
fn only_regular_files_are_read_even_when_outside_is_allowed() {
    let l = Layout::new();
    let fifo = l.tasks().join("fifo.md");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let allow = PromptPolicy {
        allow_outside: true,
        ..l.policy()
    };
    for policy in [l.policy(), allow] {
        let text = load_policy(&[l.task_file("fifo.md")], &policy).unwrap_err();
        assert_has(&text, &["tasks.toml:3", "is not a regular file", "FIFO"]);
        let text = load_policy(&[l.task_file("/dev/zero")], &policy).unwrap_err();
        assert_has(
            &text,
            &["tasks.toml:3", "is not a regular file", "character device"],
        );
        // Named on the command line.
        let text = load_policy(std::slice::from_ref(&fifo), &policy).unwrap_err();
        assert_has(&text, &["fifo.md: is not a regular file", "FIFO"]);
    }
    // A task file that is a FIFO is refused the same way, not waited on.
    let fifo_tasks = l.tasks().join("more.toml");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo_tasks,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let text = load_policy(&[fifo_tasks], &l.policy()).unwrap_err();
    assert_has(&text, &["more.toml: is not a regular file", "FIFO"]);
}

#[test]
fn prompts_over_the_size_limit_are_refused() {
    let l = Layout::new();
    let policy = PromptPolicy {
        max_bytes: 100,
        ..l.policy()
    };
    write(&l.tasks(), "exact.md", &"x".repeat(100));
    assert_eq!(prompt_of(&[l.task_file("exact.md")], &policy).len(), 100);
    write(&l.tasks(), "big.md", &"x".repeat(101));
    let text = load_policy(&[l.task_file("big.md")], &policy).unwrap_err();
    assert_has(
        &text,
        &[
            "tasks.toml:3",
            "big.md",
            "is 101 bytes, over the limit of 100 bytes",
            "--max-prompt-size",
        ],
    );
    let text = load_policy(&[l.tasks().join("big.md")], &policy).unwrap_err();
    assert_has(&text, &["big.md: is 101 bytes", "--max-prompt-size"]);

    // Inline prompts have the same limit.
    let inline = format!("[[task]]\nid = \"a\"\nprompt_text = \"{}\"\n", "y".repeat(101));
    let t = write(&l.tasks(), "inline.toml", &inline);
    let text = load_policy(&[t], &policy).unwrap_err();
    assert_has(
        &text,
        &[
            "inline.toml:3",
            "`prompt_text` of task `a` is 101 bytes",
            "--max-prompt-size",
        ],
    );
}

#[test]
fn task_files_have_a_generous_bound() {
    let l = Layout::new();
    let huge = l.tasks().join("huge.toml");
    // Sparse: the size alone refuses it, before anything is read.
    fs::File::create(&huge)
        .unwrap()
        .set_len(MAX_TASK_FILE_BYTES + 1)
        .unwrap();
    let text = load_policy(&[huge], &l.policy()).unwrap_err();
    assert_has(
        &text,
        &[
            "huge.toml: is 16777217 bytes, over the limit of 16777216 bytes",
            "split",
        ],
    );
}
