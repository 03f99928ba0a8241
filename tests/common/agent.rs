//! What the real-CLI tests share (tests/e2e/ on one engine, tests/swarm/cli.rs on a Swarm):
//! the bundled WorkflowManager's sentences the model must see, the demo's repository with
//! prompts, and the agent's own requests among what the scripted server recorded.

use sandpen::demo;
use sandpen::model_server::Recorded;
use tempfile::TempDir;

use super::git;

/// sandpen's bundled WorkflowManager definition, as the test reads it from the source tree.
const BUNDLED_DEFINITION: &str = include_str!("../../src/agent/workflow-manager.md");

/// Whole sentences of the bundled definition that no other prompt would hold.
const BUNDLED_SENTENCES: [&str; 2] = [
    "The task id is in the environment variable SANDPEN_TASK_ID (also ORCHESTRATOR_TASK_ID).",
    "Finish with every change committed and a short summary of what was done.",
];

/// The sentences, checked to be still in the definition.
pub fn bundled_sentences() -> [&'static str; 2] {
    for s in BUNDLED_SENTENCES {
        assert!(
            BUNDLED_DEFINITION.contains(s),
            "the bundled definition no longer says {s:?}: update this test"
        );
    }
    BUNDLED_SENTENCES
}

/// A committed git repository: the demo's Python project, `extra` files, and one prompt file
/// `tasks/<id>.md` per `(id, prompt)`.
pub fn repo_with(extra: &[(&str, &str)], prompts: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let p = dir.path();
    demo::write_repo(p).expect("writing the demo repository");
    for (path, content) in extra {
        let f = p.join(path);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, content).unwrap();
    }
    for (id, prompt) in prompts {
        let f = p.join("tasks").join(format!("{id}.md"));
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, format!("{prompt}\n")).unwrap();
    }
    git(p, &["init", "--quiet", "--initial-branch=main"]);
    git(p, &["config", "user.name", "sandpen-e2e"]);
    git(p, &["config", "user.email", "e2e@sandpen.invalid"]);
    git(p, &["config", "commit.gpgsign", "false"]);
    git(p, &["add", "-A"]);
    git(p, &["commit", "--quiet", "-m", "the repository under test"]);
    dir
}

/// The requests of the agent's own conversation (side requests left out) for `task`.
pub fn agent_requests(recorded: &[Recorded], task: &str) -> Vec<Recorded> {
    recorded
        .iter()
        .filter(|r| r.task == task && !r.side_request)
        .cloned()
        .collect()
}

/// `branch` holds, beyond `base`, a commit "phase N: NAME" for each of the eleven phases.
pub fn assert_a_commit_per_phase(repo: &std::path::Path, base: &str, branch: &str) {
    let subjects = git(repo, &["log", "--format=%s", &format!("{base}..{branch}")]);
    for (n, name) in sandpen::agent::phases::PHASES.iter().enumerate() {
        let subject = format!("phase {}: {name}", n + 1);
        assert!(
            subjects.lines().any(|l| l == subject),
            "{branch} lacks the commit {subject:?}:\n{subjects}"
        );
    }
}
