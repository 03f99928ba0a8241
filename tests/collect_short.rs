//! The collection's short path: a task that left its checkout as it got it is said in a handful
//! of processes; anything it did, even what no ref or file shows any more, takes the full path.
//! Real engine, probe image.

mod common;

use common::*;

#[test]
fn an_untouched_checkout_takes_the_short_path_and_hidden_work_the_full_one() {
    let repo = make_repo();
    let toml = "[[task]]\nid = \"idle\"\nprompt_text = \"true\"\n\n\
                [[task]]\nid = \"hidden\"\nprompt_text = '''\n\
                set -e\ngit config core.logAllRefUpdates false\n\
                echo lost > lost.txt; git add lost.txt; git commit -qm lost\n\
                git reset -q --hard HEAD~1\n'''\n\n\
                [[task]]\nid = \"detached\"\nprompt_text = \"git checkout -q --detach\"\n\n\
                [[task]]\nid = \"new-file\"\nprompt_text = \"echo new > new.txt\"\n\n\
                [[task]]\nid = \"nested\"\nprompt_text = \"mkdir sub && git -C sub init -q\"\n";
    let run = run_tasks(repo.path(), toml, &[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();
    let run_dir = runs_dir(repo.path()).join(field(&report, "run_id"));
    // The full path looks for nested repositories (`nested`) and writes what the user's
    // repository already knows (`known`); the short one does neither.
    let out = |t: &str| run_dir.join("_sandpen/out").join(t);
    assert!(out("idle").join("hints").exists(), "the script ran");
    for file in ["nested", "known"] {
        assert!(
            !out("idle").join(file).exists(),
            "an untouched checkout took the short path ({file})"
        );
    }
    let idle = task(&report, "idle");
    assert_eq!(idle["commits"], 0, "{idle:#}");
    assert_eq!(idle["unreachable_commits"], 0, "{idle:#}");
    assert!(idle["head_branch"].is_string(), "{idle:#}");

    // Refs, the tree and the reflog setting as they were: only the commit's object tells.
    assert!(
        out("hidden").join("known").exists(),
        "a new object takes the full path"
    );
    let hidden = task(&report, "hidden");
    assert_eq!(hidden["unreachable_commits"], 1, "{hidden:#}");
    let kept = hidden["unreachable_refs"].as_array().unwrap();
    assert_eq!(kept.len(), 1, "{hidden:#}");
    let tree = git(
        repo.path(),
        &["ls-tree", "-r", "--name-only", kept[0].as_str().unwrap()],
    );
    assert!(tree.contains("lost.txt"), "the lost commit came back: {tree}");

    // What the short path reads from `git status --porcelain=v2 --branch`: a HEAD on no branch,
    // and a new file, each take the full path.
    for t in ["detached", "new-file", "nested"] {
        assert!(out(t).join("known").exists(), "{t} took the full path");
    }
    assert!(task(&report, "detached")["head_branch"].is_null(), "{report:#}");
    let new = task(&report, "new-file");
    assert_eq!(new["salvaged"], true, "{new:#}");
    // A new repository in the tree is a new directory to `git status`: the full path finds it.
    let nested = task(&report, "nested");
    assert!(
        nested["nested_repos"].as_array().is_some_and(|r| !r.is_empty()),
        "{nested:#}"
    );
}
