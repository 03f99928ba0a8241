//! The red-team corpus, continued: what a task leaves for the host and for the next task to
//! read (the shared warm environment, the agent's session directory) is never a way to change
//! the next task's start or to make the host follow a link. Real engine, probe image.

mod common;

use common::*;

/// The shared warm environment (`warm/`) is read-only to tasks: a task that tries to poison,
/// delete or mark it changes nothing, and the task after it starts from it unchanged, with
/// its own copy in its checkout. The copy's files are links to the shared ones: appending
/// through one fails at the read-only mount; replacing one (as an install does) is the task's. (Probe image: its `uv sync` stands in for the real one.)
#[test]
fn no_task_changes_the_shared_environment() {
    let repo = make_repo();
    let p = repo.path();
    uv_index::probe_project(p, "rt");
    let env = "/run/sandpen/env";
    let attack = format!(
        "for w in 'touch {env}/.venv/poison' 'rm -rf {env}/.venv' 'rm -f {env}/.sandpen-ready' \
         'chmod -R 777 {env}' 'ln -s /tmp {env}/.venv/bin/evil' 'mkdir {env}/x'; do\n\
         if sh -c \"$w\" 2>/dev/null; then echo \"wrote: $w\"; exit 1; fi\ndone\n\
         test -f .venv/probe-env\n\
         if echo own >> .venv/probe-env 2>/dev/null; then echo 'wrote through a link'; exit 1; fi\n\
         rm .venv/probe-env && echo own > .venv/probe-env && test \"$(cat .venv/probe-env)\" = own\n"
    );
    let check = format!(
        "test -f .venv/probe-env && test \"$(cat .venv/probe-env)\" = 'probe env'\n\
         test -f {env}/.venv/probe-env && test ! -e {env}/.venv/poison\n"
    );
    let toml = format!(
        "[[task]]\nid = \"attack\"\nprompt_text = '''\n{attack}'''\n\n\
         [[task]]\nid = \"after\"\ndepends_on = [\"attack\"]\nprompt_text = '''\nset -e\n{check}'''\n"
    );
    let run = run_tasks(p, &toml, &["--deps-from", "base"]);
    uv_index::assert_prepared_for(&run, &["attack", "after"]);
}

/// The agent's session directory is the task's to write, and sandpen reads it on the host: a
/// link planted there (as a transcript, or as the folder) to a host file holding the key is
/// neither scrubbed through nor resumed; the task's own file is scrubbed of the key.
#[test]
fn a_planted_session_link_is_never_followed_on_the_host() {
    let repo = make_repo();
    let host = tempfile::tempdir().unwrap();
    let bait = host.path().join("bait.jsonl");
    std::fs::write(&bait, format!("{TEST_API_KEY}\n")).unwrap();
    let script = format!(
        "d=$HOME/.claude/projects/-workspace; mkdir -p $d\n\
         i=1; while [ $i -le 300 ]; do ln -s {b} $d/probe-$i.jsonl; i=$((i+1)); done\n\
         ln -s {h} $HOME/.claude/projects/-host\n\
         echo \"{{\\\"key\\\":\\\"$ANTHROPIC_API_KEY\\\"}}\" > $d/own.jsonl\nexit 1\n",
        b = bait.display(),
        h = host.path().display()
    );
    let toml = format!("[[task]]\nid = \"planter\"\nprompt_text = '''\n{script}'''\n");
    let run = run_tasks(repo.path(), &toml, &["--network", "none"]);
    assert_eq!(run.code, 1, "{}", run.dump());
    let report = run.report();
    let sessions = runs_dir(repo.path())
        .join(field(&report, "run_id"))
        .join("_sandpen/sessions/planter");
    let own = std::fs::read_to_string(sessions.join("-workspace/own.jsonl")).unwrap();
    assert!(
        !own.contains(TEST_API_KEY) && own.contains("[redacted by sandpen]"),
        "{own}"
    );
    let mut rerun = sandpen();
    with_test_credentials(&mut rerun);
    let out = output(
        rerun
            .current_dir(repo.path())
            .args(["rerun", "--network", "none"]),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot be resumed"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("unknown option"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&bait).unwrap(),
        format!("{TEST_API_KEY}\n")
    );
    assert_eq!(
        std::fs::read_dir(host.path()).unwrap().count(),
        1,
        "nothing written there"
    );
}
