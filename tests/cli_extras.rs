//! Completions and the man page, generated from the parser's own definitions.

mod common;

use common::*;

#[test]
fn completions_for_three_shells_and_a_man_page_name_the_real_commands_and_flags() {
    for shell in ["bash", "zsh", "fish"] {
        let out = output(sandpen().args(["completions", shell]));
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        for word in ["run", "demo", "gc", "allow-host", "max-cost", "junit"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
        assert!(
            !script.contains("gateway --listen"),
            "{shell}: the internal command stays hidden"
        );
    }
    let man = output(sandpen().arg("man"));
    assert!(man.status.success(), "{}", stderr(&man));
    let page = stdout(&man);
    assert!(page.contains(".TH sandpen 1"), "{page}");
    assert!(page.contains("completions"), "{page}");
    let bad = output(sandpen().args(["completions", "tcsh"]));
    assert_eq!(bad.status.code(), Some(2), "an unknown shell is a usage error");
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
