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
