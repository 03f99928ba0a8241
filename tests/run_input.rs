//! Bad input through the CLI: exit code 2, a message that says where the problem is, and
//! nothing created (no run directory, no container). Real engine, probe image.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::refused::{VALID, assert_refused};
use common::*;

#[test]
fn bad_task_files_are_refused_with_their_file_and_line() {
    // (case, task file, fragments of the message besides the file name)
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "malformed TOML",
            "[[task]\nid = \"a\"\nprompt_text = \"echo\"\n",
            &["tasks.toml:1:"],
        ),
        (
            "unknown key",
            "[[task]]\nid = \"a\"\nprompt_text = \"echo\"\ncolour = \"blue\"\n",
            &["tasks.toml:4", "colour"],
        ),
        (
            "a command key",
            "[[task]]\nid = \"a\"\nprompt_text = \"echo\"\ncommand = \"rm -rf /\"\n",
            &["tasks.toml:4", "`command`", "WorkflowManager"],
        ),
        (
            "duplicate ids",
            "[[task]]\nid = \"a\"\nprompt_text = \"echo\"\n\n[[task]]\nid = \"a\"\nprompt_text = \"echo\"\n",
            &["duplicate task id `a`", "tasks.toml:2", "tasks.toml:6"],
        ),
        (
            "an id with a slash",
            "[[task]]\nid = \"a/b\"\nprompt_text = \"echo\"\n",
            &["tasks.toml:2", "a/b", "not a valid task id"],
        ),
        (
            "an id of ..",
            "[[task]]\nid = \"..\"\nprompt_text = \"echo\"\n",
            &["tasks.toml:2", "`..`", "not a valid task id"],
        ),
        (
            "a missing prompt file",
            "[[task]]\nid = \"a\"\nprompt = \"prompts/missing.md\"\n",
            &["tasks.toml:3", "missing.md", "does not exist"],
        ),
        (
            "an empty prompt",
            "[[task]]\nid = \"a\"\nprompt_text = \"  \\n  \"\n",
            &["tasks.toml:3", "empty"],
        ),
        (
            "an empty prompt file",
            "[[task]]\nid = \"a\"\nprompt = \"empty.md\"\n",
            &["tasks.toml:3", "empty"],
        ),
        (
            "an unknown dependency",
            "[[task]]\nid = \"a\"\nprompt_text = \"echo\"\ndepends_on = [\"ghost\"]\n",
            &["tasks.toml:4", "ghost", "not a task in this run"],
        ),
        (
            "a cycle",
            "[[task]]\nid = \"a\"\nprompt_text = \"echo\"\ndepends_on = [\"b\"]\n\n\
             [[task]]\nid = \"b\"\nprompt_text = \"echo\"\ndepends_on = [\"a\"]\n",
            &["tasks.toml:", "cycle", "a -> b -> a"],
        ),
        (
            "cpus 0",
            "[[task]]\nid = \"a\"\nprompt_text = \"echo\"\ncpus = 0\n",
            &["tasks.toml:4", "cpus", "greater than zero"],
        ),
        (
            "memory 5m",
            "[[task]]\nid = \"a\"\nprompt_text = \"echo\"\nmemory = \"5m\"\n",
            &["tasks.toml:4", "memory", "6 MiB"],
        ),
        (
            "timeout soon",
            "[[task]]\nid = \"a\"\nprompt_text = \"echo\"\ntimeout = \"soon\"\n",
            &["tasks.toml:4", "timeout", "soon"],
        ),
        (
            "a bad default",
            "[defaults]\nmemory = \"lots\"\n\n[[task]]\nid = \"a\"\nprompt_text = \"echo\"\n",
            &["tasks.toml:2", "memory", "lots"],
        ),
    ];
    let probe = image("probe");
    for (case, toml, expected) in cases {
        let repo = make_repo();
        let tasks = task_file(toml);
        std::fs::write(tasks.dir.path().join("empty.md"), " \n\t\n").unwrap();
        let path = tasks.path.display().to_string();
        let mut all: Vec<&str> = vec![&path];
        all.extend(expected.iter());
        let mut cmd = sandpen();
        with_test_credentials(&mut cmd)
            .current_dir(repo.path())
            .args(["run", "--image", &probe])
            .arg(&tasks.path);
        assert_refused(case, cmd, &[repo.path()], &all);
    }
}

#[test]
fn a_repo_that_is_not_a_git_repository_is_refused() {
    let plain = tempfile::tempdir().unwrap();
    let repo = make_repo();
    let tasks = task_file(VALID);
    let mut cmd = sandpen();
    with_test_credentials(&mut cmd)
        .current_dir(repo.path())
        .args(["run", "--image", &image("probe"), "--repo"])
        .arg(plain.path())
        .arg(&tasks.path);
    let shown = plain.path().display().to_string();
    assert_refused(
        "--repo not a git repository",
        cmd,
        &[plain.path(), repo.path()],
        &[&shown, "not inside a git repository"],
    );
}

#[test]
fn a_run_without_credentials_is_refused() {
    let repo = make_repo();
    let tasks = task_file(VALID);
    let mut cmd = sandpen();
    cmd.env_remove("ANTHROPIC_API_KEY")
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
        .env("ANTHROPIC_BASE_URL", "")
        .current_dir(repo.path())
        .args(["run", "--image", &image("probe")])
        .arg(&tasks.path);
    assert_refused(
        "no credentials",
        cmd,
        &[repo.path()],
        &["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"],
    );
}

#[test]
fn a_valid_run_is_accepted_by_the_same_checks() {
    // The control: the same setup with valid input runs, creates a run and a container.
    let repo = make_repo();
    let run = run_tasks(repo.path(), VALID, &[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert!(runs_dir(repo.path()).is_dir());
    assert_eq!(field(task(&run.report(), "ok"), "status"), "succeeded");
}

// ---- prompts: only regular files, only from safe places, bounded ----

fn mkfifo(path: &Path) {
    let out = output(Command::new("mkfifo").arg(path));
    assert!(out.status.success(), "mkfifo: {}", stderr(&out));
}

/// One refusal: extra arguments before the input, the input, an extra environment variable,
/// and fragments of the message.
struct Case<'a> {
    case: &'a str,
    env: Option<(&'a str, &'a str)>,
    args: &'a [&'a str],
    input: &'a str,
    expected: Vec<&'a str>,
}

impl<'a> Case<'a> {
    fn new(case: &'a str, input: &'a str) -> Self {
        Self {
            case,
            env: None,
            args: &[],
            input,
            expected: Vec::new(),
        }
    }

    fn args(self, args: &'a [&'a str]) -> Self {
        Self { args, ..self }
    }

    fn env(self, key: &'a str, value: &'a str) -> Self {
        Self {
            env: Some((key, value)),
            ..self
        }
    }

    fn expect(self, expected: &[&'a str]) -> Self {
        Self {
            expected: expected.to_vec(),
            ..self
        }
    }
}

/// A one-task task file at `path` whose prompt is the file `prompt`.
fn prompt_task(path: &Path, prompt: &str) -> String {
    std::fs::write(path, format!("[[task]]\nid = \"a\"\nprompt = \"{prompt}\"\n")).unwrap();
    path.display().to_string()
}

#[test]
fn unsafe_prompts_are_refused_at_once() {
    let repo = make_repo();
    let r = repo.path();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.md");
    std::fs::write(&secret, "echo a secret from outside the repository\n").unwrap();
    std::fs::create_dir(r.join("prompts")).unwrap();
    mkfifo(&r.join("prompts/fifo.md"));
    std::os::unix::fs::symlink(&secret, r.join("prompts/link.md")).unwrap();
    let big = format!("echo big\n{}\n", "#".repeat(2048));
    std::fs::write(r.join("prompts/big.md"), &big).unwrap();
    let over = format!("is {} bytes, over the limit of 1024 bytes", big.len());
    let fifo_tasks = outside.path().join("fifo-tasks.toml");
    mkfifo(&fifo_tasks);
    let secret_shown = secret.display().to_string();

    let fifo_toml = prompt_task(&r.join("fifo.toml"), "prompts/fifo.md");
    let zero_toml = prompt_task(&r.join("zero.toml"), "/dev/zero");
    let link_toml = prompt_task(&r.join("link.toml"), "prompts/link.md");
    let big_toml = prompt_task(&r.join("big.toml"), "prompts/big.md");
    let passwd = task_file("[[task]]\nid = \"a\"\nprompt = \"../../../../../../../../etc/passwd\"\n");
    let passwd_toml = passwd.path.display().to_string();
    let fifo_tasks_shown = fifo_tasks.display().to_string();

    let cases = [
        Case::new("a FIFO named on the command line", "prompts/fifo.md")
            .expect(&["prompts/fifo.md: is not a regular file", "FIFO"]),
        Case::new("a FIFO as a task's prompt", &fifo_toml).expect(&[
            "fifo.toml:3",
            "fifo.md",
            "is not a regular file",
            "FIFO",
        ]),
        Case::new("a FIFO as the task file", &fifo_tasks_shown)
            .expect(&["fifo-tasks.toml: is not a regular file", "FIFO"]),
        Case::new("/dev/zero as a task's prompt", &zero_toml).expect(&[
            "zero.toml:3",
            "/dev/zero",
            "is not a regular file",
            "character device",
        ]),
        Case::new("/dev/zero, even with --allow-outside-prompts", &zero_toml)
            .args(&["--allow-outside-prompts"])
            .expect(&["zero.toml:3", "is not a regular file", "character device"]),
        Case::new("../../etc/passwd as a task's prompt", &passwd_toml).expect(&[
            "tasks.toml:3",
            "etc/passwd",
            "is outside the task file's directory",
            "--allow-outside-prompts",
        ]),
        Case::new(
            "a symlink in the repository to a file outside, named on the command line",
            "prompts/link.md",
        )
        .expect(&[
            "prompts/link.md: is outside",
            "it resolves to",
            &secret_shown,
            "--allow-outside-prompts",
        ]),
        Case::new("the same symlink as a task's prompt", &link_toml).expect(&[
            "link.toml:3",
            "is outside",
            "it resolves to",
            "--allow-outside-prompts",
        ]),
        Case::new("a prompt over --max-prompt-size", "prompts/big.md")
            .args(&["--max-prompt-size", "1k"])
            .expect(&["prompts/big.md", &over, "--max-prompt-size"]),
        Case::new("a task's prompt over SANDPEN_MAX_PROMPT_SIZE", &big_toml)
            .env("SANDPEN_MAX_PROMPT_SIZE", "1KiB")
            .expect(&["big.toml:3", &over, "--max-prompt-size"]),
    ];
    let probe = image("probe");
    for Case {
        case,
        env,
        args,
        input,
        expected,
    } in cases
    {
        let mut cmd = sandpen();
        with_test_credentials(&mut cmd)
            .env_remove("SANDPEN_MAX_PROMPT_SIZE")
            .current_dir(r)
            .args(["run", "--image", &probe])
            .args(args)
            .arg(input);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let (elapsed, err) = assert_refused(case, cmd, &[r, outside.path()], &expected);
        assert!(
            elapsed < Duration::from_secs(1),
            "{case}: refused only after {elapsed:?}"
        );
        assert!(
            !err.contains("a secret from") && !err.contains("root:"),
            "{case}: no content shown:\n{err}"
        );
    }
}

#[test]
fn allow_outside_prompts_reads_a_regular_file_from_anywhere() {
    let repo = make_repo();
    let outside = tempfile::tempdir().unwrap();
    let prompt = outside.path().join("elsewhere.md");
    std::fs::write(&prompt, "echo read from outside\n").unwrap();
    let toml = format!(
        "[[task]]\nid = \"ok\"\nprompt = \"{}\"\ntimeout = \"1m\"\n",
        prompt.display()
    );

    // Refused without the flag...
    let tasks = task_file(&toml);
    let (elapsed, _) = assert_refused(
        "an outside prompt without the flag",
        run_command(repo.path(), &tasks, &[]),
        &[repo.path()],
        &[
            "tasks.toml:3",
            "elsewhere.md",
            "is outside",
            "--allow-outside-prompts",
        ],
    );
    assert!(elapsed < Duration::from_secs(1), "refused only after {elapsed:?}");

    // ...and run with it.
    let run = run_tasks(repo.path(), &toml, &["--allow-outside-prompts"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(field(task(&run.report(), "ok"), "status"), "succeeded");
}
