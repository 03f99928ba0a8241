//! The red-team corpus: tasks that try to run a command on the host, or to change the user's
//! repository beyond their own result ref, through anything git or sandpen's collection might
//! read. Real engine, probe image (whose `claude` runs the prompt as a shell script).
//!
//! Every marker command writes into a directory that exists only on the host (a container's
//! `/tmp` is its own tmpfs), so a marker file appears only if the command ran on the host.
//! For every case: no marker, the user's repository passes `git fsck --strict` with only the
//! result refs added and its own git files unchanged, and the task's committed and uncommitted
//! work comes back; a task that destroys its own repository ends with a message instead, its
//! checkout kept.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;

/// The work every case does before its trick: one commit, one uncommitted file.
fn work(id: &str) -> String {
    format!(
        "set -e\necho committed > committed-{id}.txt\ngit add committed-{id}.txt\n\
         git commit -qm 'work of {id}'\necho uncommitted > uncommitted-{id}.txt\n"
    )
}

/// A hook or command that leaves the marker `m` (as a filter it passes its input through).
fn mark(m: &Path) -> String {
    format!("sh -c 'touch {} && cat'", m.display())
}

/// A nested repository `sub` (recorded in the outer index as a gitlink), set up by `setup`.
fn nested(setup: &str) -> String {
    format!(
        "git init -q sub && cd sub && echo x > f && git add f && git commit -qm s\n{setup}\n\
         cd .. && git update-index --add --cacheinfo 160000,$(git -C sub rev-parse HEAD),sub\n\
         git commit -qm gitlink\n"
    )
}

/// Hooks that leave the marker, in directory `dir`.
fn hooks(dir: &str, m: &Path) -> String {
    let mut s = format!("mkdir -p {dir}\n");
    for hook in [
        "pre-commit",
        "post-commit",
        "post-checkout",
        "reference-transaction",
        "fsmonitor-watchman",
        "pre-auto-gc",
        "post-index-change",
    ] {
        s.push_str(&format!(
            "printf '#!/bin/sh\\ntouch {}\\n' > {dir}/{hook}; chmod +x {dir}/{hook}\n",
            m.display()
        ));
    }
    s
}

/// The cases: id -> (the trick, whether its work cannot come back: the task destroyed its own
/// repository, or git's fsck refuses what it made).
fn cases(markers: &Path, user: &Path) -> BTreeMap<&'static str, (String, bool)> {
    let m = |id: &str| markers.join(id);
    let user_git = user.join(".git");
    let u = user_git.display();
    let mut c: BTreeMap<&'static str, (String, bool)> = BTreeMap::new();
    let mut add = |id: &'static str, trick: String, destroys: bool| {
        c.insert(id, (trick, destroys));
    };
    // The reproduction of the issue, and its relatives in a nested repository.
    add(
        "sub-filter",
        nested(&format!(
            "git config filter.evil.clean \"{}\"\ngit config filter.evil.smudge \"{}\"\n\
             echo '* filter=evil' > .gitattributes && touch -d '2030-01-01' f",
            mark(&m("sub-filter")),
            mark(&m("sub-filter"))
        )),
        false,
    );
    add(
        "sub-fsmonitor",
        nested(&format!(
            "git config core.fsmonitor \"{}\"",
            mark(&m("sub-fsmonitor"))
        )),
        false,
    );
    add("sub-hooks", nested(&hooks(".git/hooks", &m("sub-hooks"))), false);
    add(
        "sub-hookspath",
        nested(&format!(
            "{}git config core.hooksPath \"$PWD/../evil-hooks\"",
            hooks("../evil-hooks", &m("sub-hookspath"))
        )),
        false,
    );
    // The checkout's own configuration.
    add(
        "top-fsmonitor",
        format!("git config core.fsmonitor \"{}\"", mark(&m("top-fsmonitor"))),
        false,
    );
    add(
        "top-hooks",
        format!(
            "{}{}git config core.hooksPath evil-hooks",
            hooks(".git/hooks", &m("top-hooks")),
            hooks("evil-hooks", &m("top-hooks"))
        ),
        false,
    );
    add(
        "top-filters",
        format!(
            "git config filter.evil.clean \"{0}\"\ngit config filter.evil.smudge \"{0}\"\n\
             git config filter.evil.process \"{0}\"\necho '* filter=evil' > .gitattributes",
            mark(&m("top-filters"))
        ),
        false,
    );
    add(
        "top-diff",
        format!(
            "git config diff.evil.textconv \"{0}\"\ngit config diff.evil.command \"{0}\"\n\
             echo '* diff=evil' > .gitattributes",
            mark(&m("top-diff"))
        ),
        false,
    );
    let mut commands = String::new();
    for key in [
        "core.pager",
        "pager.status",
        "pager.log",
        "core.editor",
        "sequence.editor",
        "gpg.program",
        "core.sshCommand",
        "credential.helper",
        "uploadpack.packObjectsHook",
        "core.alternateRefsCommand",
        "core.askPass",
        "merge.evil.driver",
    ] {
        commands.push_str(&format!("git config {key} \"{}\"\n", mark(&m("top-commands"))));
    }
    commands.push_str("git config commit.gpgsign true\n");
    commands.push_str(&format!(
        "git config alias.st \"!{}\"\n",
        mark(&m("top-commands"))
    ));
    add("top-commands", commands, false);
    add(
        "include",
        format!(
            "printf '[core]\\n\\tfsmonitor = {0}\\n[filter \"inc\"]\\n\\tclean = {0}\\n' > evil.cfg\n\
             echo '* filter=inc' > .gitattributes\n\
             git config include.path ../evil.cfg\ngit config 'includeIf.gitdir:/.path' ../evil.cfg",
            mark(&m("include")).replace('\'', "'\\''")
        ),
        false,
    );
    // git's own fsck refuses a `.gitmodules` naming a command (the user's `git fsck --strict`
    // would fail with it): the result is refused whole, and the report says why.
    add(
        "gitmodules",
        format!(
            "{}printf '[submodule \"sub\"]\\n\\tpath = sub\\n\\turl = ./sub\\n\\tupdate = !touch {}\\n' > .gitmodules\n\
             git config submodule.sub.update '!touch {}'",
            nested(""),
            m("gitmodules").display(),
            m("gitmodules").display()
        ),
        true,
    );
    add(
        "worktree",
        format!("git config core.worktree {}", user.display()),
        false,
    );
    add("commondir", format!("echo {u} > .git/commondir"), false);
    add(
        "alternates",
        format!("echo {u}/objects > .git/objects/info/alternates"),
        false,
    );
    add(
        "replace-refs",
        "git replace $(git rev-list --max-parents=0 HEAD) $(git rev-parse HEAD)".into(),
        false,
    );
    add(
        "packed-refs",
        format!(
            "echo \"$(git rev-parse HEAD) refs/heads/main\" >> .git/packed-refs\n\
             git update-ref refs/remotes/evil/x HEAD\ngit symbolic-ref HEAD refs/remotes/evil/x\n\
             echo 'ref: refs/heads/main' > .git/ORIG_HEAD\nln -s {u}/HEAD .git/FETCH_HEAD"
        ),
        false,
    );
    add(
        "symlinks",
        format!(
            "mkdir -p .github/workflow-states/symlinks\n\
             ln -s {u}/config .github/workflow-states/symlinks/state.json\n\
             mkdir -p .claude/agents && ln -sf {u}/config .claude/agents/workflow-manager.md\n\
             ln -s /etc/shadow shadow-link\nln -s {u}/config config-link"
        ),
        false,
    );
    add(
        "wide-deep",
        "mkdir wide && (cd wide && seq 20000 | xargs touch)\n\
         d=deep; mkdir $d; for i in $(seq 300); do d=$d/d; mkdir $d; done; echo bottom > $d/f"
            .into(),
        false,
    );
    // Tricks that leave the task without a repository of its own: nothing can come back.
    add(
        "gitfile",
        format!("mv .git .git-moved && echo 'gitdir: {u}' > .git"),
        true,
    );
    add(
        "git-symlink",
        format!("mv .git .git-moved && ln -s {u} .git"),
        true,
    );
    add(
        "objects-symlink",
        format!("mv .git/objects .git/objects-moved && ln -s {u}/objects .git/objects"),
        true,
    );
    add(
        "head-symlink",
        format!("rm .git/HEAD && ln -s {u}/HEAD .git/HEAD"),
        true,
    );
    c
}

/// What a user runs in a directory of a finished checkout, as the user, with the user's
/// environment: whatever it prints or fails with, it must run nothing the task planted.
fn host_git_everywhere(dir: &Path) {
    for args in [
        &["status"][..],
        &["diff"],
        &["diff", "--cached"],
        &["log", "-p", "-2"],
        &["st"],
        &["add", "--dry-run", "."],
    ] {
        let _ = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
    }
}

/// The user's own git files, byte for byte (info/exclude without sandpen's line).
fn snapshot(repo: &Path) -> BTreeMap<String, Vec<u8>> {
    let git = repo.join(".git");
    let mut files = BTreeMap::new();
    for rel in ["config", "HEAD", "packed-refs", "info/exclude"] {
        let mut bytes = std::fs::read(git.join(rel)).unwrap_or_default();
        if rel == "info/exclude" {
            let text = String::from_utf8_lossy(&bytes)
                .lines()
                .filter(|l| !l.contains(".sandpen") && !l.starts_with("# sandpen"))
                .collect::<Vec<_>>()
                .join("\n");
            bytes = text.into_bytes();
        }
        files.insert(rel.to_string(), bytes);
    }
    for entry in std::fs::read_dir(git.join("hooks")).unwrap() {
        let p = entry.unwrap().path();
        files.insert(
            format!("hooks/{}", p.file_name().unwrap().to_string_lossy()),
            std::fs::read(&p).unwrap(),
        );
    }
    files
}

fn refs(repo: &Path) -> Vec<String> {
    git(repo, &["for-each-ref", "--format=%(refname) %(objectname)"])
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn no_task_runs_code_on_the_host_or_changes_the_users_repository() {
    let repo = make_repo();
    let user = std::fs::canonicalize(repo.path()).unwrap();
    let markers = tempfile::Builder::new()
        .prefix("sandpen-redteam-")
        .tempdir()
        .unwrap();
    let cases = cases(markers.path(), &user);
    let mut toml = String::from("[defaults]\ntimeout = \"2m\"\n\n");
    for (id, (trick, _)) in &cases {
        toml.push_str(&format!(
            "[[task]]\nid = \"{id}\"\nprompt_text = '''\n{}{trick}\n'''\n\n",
            work(id)
        ));
    }
    let before = snapshot(&user);
    let refs_before = refs(&user);
    let run = run_tasks(&user, &toml, &["-j", "4"]);
    let report = run.report();
    let run_id = field(&report, "run_id").to_string();
    eprintln!("red team: {} cases in {:?}", cases.len(), run.elapsed);

    let fired = || -> Vec<String> {
        std::fs::read_dir(markers.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert!(
        fired().is_empty(),
        "commands ran on the host for: {:?}\n{}",
        fired(),
        run.dump()
    );
    // After the run, the user does the natural next thing: git in a task's checkout (or a
    // shell prompt does it on `cd`), and in the repository nested in it.
    for id in cases.keys() {
        let checkout = Path::new(field(task(&report, id), "checkout")).to_path_buf();
        for dir in [checkout.clone(), checkout.join("sub")] {
            if dir.is_dir() {
                host_git_everywhere(&dir);
            }
        }
    }
    assert!(
        fired().is_empty(),
        "the host's git in a finished checkout ran a task's command for: {:?}",
        fired()
    );

    let fsck = git_output(
        &user,
        &[
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.fsmonitor=false",
            "fsck",
            "--strict",
            "--no-progress",
        ],
    );
    assert!(fsck.status.success(), "git fsck --strict: {}", stderr(&fsck));
    assert_eq!(snapshot(&user), before, "the user's own git files are unchanged");
    let added: Vec<String> = refs(&user)
        .into_iter()
        .filter(|r| !refs_before.contains(r))
        .collect();
    for r in &added {
        let name = r.split(' ').next().unwrap();
        // refs/heads/sandpen/<task>/<run>[+<branch>] or refs/sandpen/<task>/<run>/unreachable-<n>
        let ours = name.strip_prefix("refs/heads/sandpen/").is_some_and(|rest| {
            rest.split_once('/')
                .is_some_and(|(_, run)| run == run_id || run.starts_with(&format!("{run_id}+")))
        }) || name.strip_prefix("refs/sandpen/").is_some_and(|rest| {
            rest.split_once('/').is_some_and(|(_, tail)| {
                tail.strip_prefix(&format!("{run_id}/unreachable-"))
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
        });
        assert!(ours, "only result refs of this run were added: {r}");
    }
    assert!(
        refs(&user).iter().filter(|r| refs_before.contains(r)).count() == refs_before.len(),
        "no ref of the user's changed"
    );

    for (id, (_, destroys)) in &cases {
        let t = task(&report, id);
        if *destroys {
            assert_ne!(field(t, "status"), "succeeded", "{id}: {t:#}");
            assert!(!field(t, "message").is_empty(), "{id} says why: {t:#}");
            assert!(
                Path::new(field(t, "checkout")).is_dir(),
                "{id}: the checkout is kept: {t:#}"
            );
            if *id == "gitmodules" {
                assert!(field(t, "message").contains("gitmodulesUpdate"), "{t:#}");
            }
            continue;
        }
        assert_eq!(field(t, "status"), "succeeded", "{id}: {t:#}");
        let branch = format!("sandpen/{id}/{run_id}");
        for (file, text) in [("committed", "committed\n"), ("uncommitted", "uncommitted\n")] {
            let shown = git_output(&user, &["show", &format!("{branch}:{file}-{id}.txt")]);
            assert_eq!(
                stdout(&shown),
                text,
                "{id}: its {file} work came back on {branch}: {} {t:#}",
                stderr(&shown)
            );
        }
    }
    // Symlinks come back as links, never as the content of what they point at.
    let branch = format!("sandpen/symlinks/{run_id}");
    let link = git(&user, &["show", &format!("{branch}:shadow-link")]);
    assert_eq!(link, "/etc/shadow", "a symlink is stored as its target's name");
    let mode = git(&user, &["ls-tree", &branch, "config-link"]);
    assert!(
        mode.starts_with("120000"),
        "config-link is a symlink object: {mode}"
    );
    let wide = git(
        &user,
        &[
            "ls-tree",
            "-r",
            "--name-only",
            &format!("sandpen/wide-deep/{run_id}"),
        ],
    );
    assert!(
        wide.lines().filter(|l| l.starts_with("wide/")).count() == 20000,
        "every file of wide/"
    );

    let left = containers(&format!("label=sandpen.run={run_id}"));
    assert!(left.is_empty(), "containers left: {left:?}");
}
