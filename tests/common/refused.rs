//! The harness of the bad-input tests (`run_input*.rs`): a refused `sandpen run` exits 2,
//! says the problem, its reason (once, never empty) and the fix, and creates nothing.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::*;

/// A task file that is valid, for the cases whose problem is elsewhere.
pub const VALID: &str = "[[task]]\nid = \"ok\"\nprompt_text = \"echo ok\"\ntimeout = \"1m\"\n";

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Runs `cmd` (a `sandpen run ...`) and checks that it refused: exit 2, every `expected`
/// fragment in its stderr, no sandpen directory in any of `dirs`, and no container event on the
/// engine from that process; no reason said twice or left empty. Returns how long the process
/// took, and its stderr.
pub fn assert_refused(case: &str, mut cmd: Command, dirs: &[&Path], expected: &[&str]) -> (Duration, String) {
    let since = now_s();
    let start = Instant::now();
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{case}: cannot start sandpen: {e}"));
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let elapsed = start.elapsed();
    let until = now_s() + 0.5;
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{case}: invalid input exits 2\nstdout:\n{}\nstderr:\n{err}",
        stdout(&out)
    );
    for e in expected {
        assert!(err.contains(e), "{case}: the message mentions {e:?}:\n{err}");
    }
    assert!(
        err.contains("fix") || err.contains("use "),
        "{case}: the message says the fix:\n{err}"
    );
    assert_well_said(case, &err);
    for d in dirs {
        assert!(
            !d.join(".sandpen").exists() && !super::sandpen_dir_of(d).is_some_and(|s| s.exists()),
            "{case}: nothing created, but {} has sandpen's directory",
            d.display()
        );
    }
    let events = docker(&[
        "events",
        "--since",
        &format!("{since:.3}"),
        "--until",
        &format!("{until:.3}"),
        "--filter",
        "type=container",
        "--filter",
        &owner_filter(pid),
        "--format",
        "{{.Action}} {{.Actor.ID}}",
    ]);
    assert!(events.status.success(), "docker events: {}", stderr(&events));
    assert_eq!(
        stdout(&events),
        "",
        "{case}: the engine saw container events from sandpen (pid {pid})"
    );
    (elapsed, err)
}

/// No line of `err` ends a `problem:` without its reason, and none says a reason twice in a
/// row (`...: Not a directory: Not a directory`, an error chain printed twice).
pub fn assert_well_said(case: &str, err: &str) {
    for line in err.lines() {
        let l = line.trim_end();
        assert!(
            !l.ends_with(':') && !l.contains(":  "),
            "{case}: an empty reason in {line:?}:\n{err}"
        );
        for (at, _) in l.match_indices(": ") {
            let (head, tail) = (&l[..at], &l[at + 2..]);
            assert!(
                tail.is_empty() || !head.ends_with(tail),
                "{case}: {tail:?} said twice in {line:?}"
            );
        }
    }
}
