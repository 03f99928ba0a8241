//! Completions and the man page, generated from the parser's own definitions.

mod common;

use common::*;

/// What the shell gets at a TAB: `COMPLETE=fish sandpen -- sandpen WORDS...` (fish's
/// protocol is the plainest: the words as arguments, one `value\thelp` line per candidate).
fn complete(dir: &std::path::Path, words: &[&str]) -> Vec<String> {
    let out = output(
        sandpen()
            .current_dir(dir)
            .env("COMPLETE", "fish")
            .args(["--", "sandpen"])
            .args(words),
    );
    assert!(out.status.success(), "{words:?}: {}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| l.split('\t').next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn completions_for_three_shells_and_a_man_page_name_the_real_commands_and_flags() {
    for shell in ["bash", "zsh", "fish"] {
        let out = output(sandpen().args(["completions", shell]));
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        // The script asks sandpen itself at each TAB.
        assert!(
            script.contains("COMPLETE=") && script.contains("sandpen"),
            "{script}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let commands = complete(dir.path(), &[""]);
    for word in ["run", "demo", "gc", "rerun", "diff"] {
        assert!(
            commands.contains(&word.to_string()),
            "{word} missing: {commands:?}"
        );
    }
    assert!(
        !commands.contains(&"gateway".to_string()),
        "the internal command stays hidden"
    );
    let flags = complete(dir.path(), &["run", "--"]);
    for flag in ["--allow-host", "--max-cost", "--junit"] {
        assert!(flags.contains(&flag.to_string()), "{flag} missing: {flags:?}");
    }
    let man = output(sandpen().arg("man"));
    assert!(man.status.success(), "{}", stderr(&man));
    let page = stdout(&man);
    assert!(page.contains(".TH sandpen 1"), "{page}");
    assert!(page.contains("completions"), "{page}");
    let bad = output(sandpen().args(["completions", "tcsh"]));
    assert_eq!(bad.status.code(), Some(2), "an unknown shell is a usage error");
}

/// Run ids complete from the repository around the working directory (newest first), and task
/// ids from its latest run; outside a repository, nothing and no error.
#[test]
fn run_and_task_ids_complete_from_the_repository() {
    let repo = common::agent::repo_with(&[], &[]);
    let runs = repo.path().join(".git/sandpen/runs");
    for (run, tasks) in [
        ("20261201-090000-aaaa", ["old-task"]),
        ("20261205-100000-3f2a", ["fix-docs"]),
    ] {
        std::fs::create_dir_all(runs.join(run)).unwrap();
        for t in tasks {
            std::fs::write(runs.join(run).join(format!("{t}.log")), "").unwrap();
        }
    }
    // Values only: an empty word is offered the flags too.
    let values = |words: &[&str]| -> Vec<String> {
        let all = complete(repo.path(), words);
        all.into_iter().filter(|w| !w.starts_with('-')).collect()
    };
    let first = values(&["logs", ""]);
    assert_eq!(
        first,
        ["20261205-100000-3f2a", "20261201-090000-aaaa", "fix-docs"]
    );
    assert_eq!(values(&["logs", "fi"]), ["fix-docs"]);
    assert_eq!(
        values(&["report", "2026120"]),
        ["20261205-100000-3f2a", "20261201-090000-aaaa"]
    );
    let nowhere = tempfile::tempdir().unwrap();
    let outside = complete(nowhere.path(), &["logs", ""]);
    assert!(outside.iter().all(|w| w.starts_with('-')), "{outside:?}");
}

/// `--host` is offered where an engine is used (after the command, or before it), and nowhere
/// else.
#[test]
fn host_is_taken_only_by_commands_that_use_an_engine() {
    for args in [
        &["doctor", "--host", "tcp://127.0.0.1:1"][..],
        &["--host", "tcp://127.0.0.1:1", "doctor"],
        &["image", "build", "--host", "tcp://127.0.0.1:1"],
    ] {
        let out = output(sandpen().args(args));
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("tcp://127.0.0.1:1"), "{}", stderr(&out));
    }
    for cmd in ["completions", "man", "logs", "diff", "report"] {
        let help = stdout(&output(sandpen().args([cmd, "--help"])));
        assert!(!help.contains("--host"), "{cmd} offers --host: {help}");
    }
    let bad = output(sandpen().args(["completions", "bash", "--host", "x"]));
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}
