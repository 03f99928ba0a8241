//! `sandpen prune` against the real engine with the probe image: a checkout whose branch holds
//! its HEAD goes; one with credentials left out of the salvage, or whose branch the user
//! deleted, stays and is named; a live run, or one the engine still has containers of, is
//! never touched; `--logs` takes the run's directory once no checkout is left.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::*;

const TASKS: &str = r#"
[[task]]
id = "intact"
prompt_text = '''
set -e
echo work > work.txt
mkdir -p cache/mod
echo cached > cache/mod/f
ln -s ../../../../README outside-link
git add -A
git commit -qm work
chmod -R a-w cache
'''

[[task]]
id = "secret"
prompt_text = "echo SECRET=1 > .env; echo salvaged > b.txt"

[[task]]
id = "doomed"
prompt_text = "echo doomed > d.txt; git add d.txt; git commit -qm doomed"

[[task]]
id = "merged"
prompt_text = "echo merged > m.txt; git add m.txt; git commit -qm merged"
"#;

fn prune(repo: &Path, args: &[&str]) -> Output {
    output(sandpen().arg("prune").args(args).arg("--repo").arg(repo))
}

fn said(out: &Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

/// The line of `out` that starts with `prefix`.
fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{out}"))
}

#[test]
fn prune_removes_only_what_the_repository_holds_and_never_a_live_run() {
    let repo = make_repo();
    let root = repo.path();
    let done = run_tasks(root, TASKS, &["--network", "none"]);
    assert_eq!(done.code, 0, "{}", done.dump());
    let report = done.report();
    let run = report["run_id"].as_str().unwrap().to_string();
    let secret = task(&report, "secret");
    assert_eq!(
        secret["salvage_left_out"],
        serde_json::json!([".env"]),
        "{secret:#}"
    );
    for id in ["intact", "secret", "doomed", "merged"] {
        let t = task(&report, id);
        let branch = field(t, "branch");
        assert_eq!(
            git(root, &["rev-parse", &format!("refs/heads/{branch}")]).trim(),
            field(t, "head_commit"),
            "the report records the commit its branch came back at: {t:#}"
        );
    }
    git(root, &["branch", "-q", "-D", &format!("sandpen/doomed/{run}")]);
    // Merged into main, then its branch deleted: its work is safe on main.
    git(
        root,
        &["merge", "-q", "--no-edit", &format!("sandpen/merged/{run}")],
    );
    git(root, &["branch", "-q", "-D", &format!("sandpen/merged/{run}")]);
    let checkout = |r: &str, t: &str| runs_dir(root).join(r).join(t);

    // A live run: its task sleeps while prune runs.
    let mut bg = spawn_run(
        root,
        "[[task]]\nid = \"sleeper\"\nprompt_text = \"sleep 120\"\n",
        &["--network", "none"],
    );
    let live = wait_for(Duration::from_secs(90), || {
        let r = std::fs::read_dir(runs_dir(root))
            .ok()?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|r| *r != run)?;
        (!running_containers(&format!("name=sandpen-{r}-sleeper")).is_empty()).then_some(r)
    })
    .unwrap_or_else(|| panic!("the live run never started:\n{}", bg.stderr()));

    // Dry: everything named, nothing removed.
    let out = prune(root, &["--dry-run", "--logs"]);
    assert!(out.status.success(), "{}", said(&out));
    let text = stdout(&out);
    assert!(
        line(&text, &format!("would remove .git/sandpen/runs/{run}/intact ("))
            .ends_with("its result is in the repository"),
        "{text}"
    );
    assert_eq!(
        line(&text, &format!("kept .git/sandpen/runs/{run}/secret")),
        format!("kept .git/sandpen/runs/{run}/secret: uncommitted paths were left out of the salvage (.env)")
    );
    assert_eq!(
        line(&text, &format!("kept .git/sandpen/runs/{run}/doomed")),
        format!("kept .git/sandpen/runs/{run}/doomed: branch sandpen/doomed/{run} was deleted")
    );
    assert!(
        line(&text, &format!("kept run {live}")).contains("its sandpen process is running"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "kept the logs and report of run {run}: 2 of its checkouts remain"
        )),
        "{text}"
    );
    assert!(
        line(&text, &format!("would remove .git/sandpen/runs/{run}/merged ("))
            .ends_with("its result is in the repository"),
        "{text}"
    );
    assert!(
        stderr(&out).contains("prune: would remove 2 checkout(s) and the logs of 0 run(s)"),
        "{}",
        said(&out)
    );
    for t in ["intact", "secret", "doomed"] {
        assert!(checkout(&run, t).is_dir(), "dry run removed {t}");
    }

    // For real.
    let out = prune(root, &[]);
    assert!(out.status.success(), "{}", said(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("removed .git/sandpen/runs/{run}/intact (")),
        "{text}"
    );
    assert!(
        stderr(&out).contains("prune: removed 2 checkout(s) (freed "),
        "{}",
        said(&out)
    );
    assert!(!checkout(&run, "intact").exists(), "{text}");
    assert!(!checkout(&run, "merged").exists(), "{text}");
    assert!(
        checkout(&run, "secret").join(".env").is_file(),
        "the left-out credentials stay"
    );
    assert!(checkout(&run, "doomed").join("d.txt").is_file());
    // Through no link: the task's link pointed at the repository's README.
    assert!(root.join("README").is_file());
    // The result and the logs stay.
    git(
        root,
        &[
            "rev-parse",
            "--verify",
            &format!("refs/heads/sandpen/intact/{run}"),
        ],
    );
    assert!(runs_dir(root).join(&run).join("intact.log").is_file());
    assert!(runs_dir(root).join(&run).join("report.json").is_file());
    // The live run was not touched, and still runs.
    assert!(checkout(&live, "sleeper").is_dir());
    assert!(!running_containers(&format!("name=sandpen-{live}-sleeper")).is_empty());
    assert!(matches!(bg.child.try_wait(), Ok(None)), "{}", bg.stderr());

    // An unknown run: exit 2, the known ones listed, nothing done.
    let out = prune(root, &["--run", "nosuch"]);
    assert_eq!(out.status.code(), Some(2), "{}", said(&out));
    assert!(stderr(&out).contains("no run nosuch"), "{}", said(&out));
    assert!(stderr(&out).contains(&run), "{}", said(&out));

    // Once the run has ended, its checkout (HEAD never moved) and with --logs its directory go.
    bg.signal("INT");
    bg.wait_exit(Duration::from_secs(60)).expect("the live run ends");
    let out = prune(root, &["--run", &live, "--older-than", "1h"]);
    assert!(out.status.success(), "{}", said(&out));
    let kept = line(&stdout(&out), &format!("kept run {live}: it ended ")).to_string();
    assert!(kept.ends_with("ago, not longer than --older-than 1h"), "{kept}");
    assert!(checkout(&live, "sleeper").is_dir());
    let out = prune(root, &["--run", &live, "--run", &run, "--logs"]);
    assert!(out.status.success(), "{}", said(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("removed .git/sandpen/runs/{live}/sleeper (")),
        "{text}"
    );
    assert!(
        text.contains(&format!("removed the logs and report of run {live} (")),
        "{text}"
    );
    assert!(!runs_dir(root).join(&live).exists(), "{text}");
    // The other run's logs stay beside its kept checkouts.
    assert!(
        text.contains(&format!(
            "kept the logs and report of run {run}: 2 of its checkouts remain"
        )),
        "{text}"
    );
    assert!(runs_dir(root).join(&run).join("secret.log").is_file());
}

#[test]
fn a_run_the_engine_still_has_containers_of_is_kept() {
    let repo = make_repo();
    let root = repo.path();
    let done = run_tasks(
        root,
        "[[task]]\nid = \"one\"\nprompt_text = \"true\"\n",
        &["--network", "none", "--keep-containers"],
    );
    assert_eq!(done.code, 0, "{}", done.dump());
    let run = done.report()["run_id"].as_str().unwrap().to_string();
    let kept = containers(&format!("label=sandpen.run={run}"));
    assert_eq!(kept.len(), 1, "{}", done.dump());
    let out = prune(root, &["--logs"]);
    for id in &kept {
        docker(&["rm", "-f", id]);
    }
    assert!(out.status.success(), "{}", said(&out));
    assert!(
        stdout(&out).contains(&format!(
            "kept run {run}: the engine still has 1 container(s) of it"
        )),
        "{}",
        said(&out)
    );
    assert!(runs_dir(root).join(&run).join("one").is_dir());
    // Without its containers it goes (HEAD never moved: nothing to lose).
    let out = prune(root, &[]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(!runs_dir(root).join(&run).join("one").exists(), "{}", said(&out));
}
