//! Ten thousand tasks in one file: planned, and planned right (the benchmark times the same).

use std::collections::HashMap;
use std::fmt::Write;

use tempfile::TempDir;

use super::*;

const N: usize = 10_000;

/// `[[task]]` entries in input order; `deps(i)` are the dependencies of task `t{i}`.
fn task_file(dir: &Path, extra_first: &str, deps: impl Fn(usize) -> Vec<String>) -> PathBuf {
    let mut text = String::from(extra_first);
    for i in 0..N {
        let quoted: Vec<String> = deps(i).iter().map(|d| format!("{d:?}")).collect();
        write!(text, "[[task]]\nid = \"t{i}\"\nprompt_text = \"task {i}\"\n").unwrap();
        if !quoted.is_empty() {
            writeln!(text, "depends_on = [{}]", quoted.join(", ")).unwrap();
        }
        text.push('\n');
    }
    write(dir, "tasks.toml", &text)
}

#[test]
fn ten_thousand_tasks_come_after_their_dependencies() {
    let dir = TempDir::new().unwrap();
    // A fan-in written first (so it has to move to the end), forward edges that force
    // reordering, and a tree of backward edges; acyclic.
    let all: Vec<String> = (0..N).map(|i| format!("\"t{i}\"")).collect();
    let first = format!(
        "[[task]]\nid = \"all\"\nprompt_text = \"gather\"\ndepends_on = [{}]\n\n",
        all.join(", ")
    );
    let deps = |i: usize| match i {
        0 => vec![],
        i if i % 3 == 0 && i + 1 < N => vec![format!("t{}", i + 1)],
        i => vec![format!("t{}", i / 2), format!("t{}", i / 2)],
    };
    let tasks = task_file(dir.path(), &first, deps);
    let plan = ok(&[tasks]);

    assert_eq!(plan.tasks.len(), N + 1);
    let position: HashMap<&str, usize> = plan
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    assert_eq!(position.len(), N + 1, "every task once");
    for (at, task) in plan.tasks.iter().enumerate() {
        for dep in &task.depends_on {
            assert!(position[dep.as_str()] < at, "{} before {}", dep, task.id);
        }
    }
    assert_eq!(plan.tasks.last().unwrap().id, "all");
    assert_eq!(plan.tasks[0].id, "t0");
    assert_eq!(plan.get("t7").unwrap().depends_on, ["t3"], "repeats dropped");
    assert_eq!(plan.get("all").unwrap().depends_on.len(), N);
    // Where nothing forces otherwise, input order: t1 (needs t0) comes right after t0.
    assert_eq!(plan.tasks[1].id, "t1");
}

#[test]
fn ten_thousand_errors_are_all_reported() {
    let dir = TempDir::new().unwrap();
    let tasks = task_file(dir.path(), "", |_| vec!["ghost".into()]);
    let text = err(&[tasks]);
    assert!(text.starts_with(&format!("{N} problems")), "{}", &text[..200]);
    assert_eq!(text.matches("depends on `ghost`").count(), N);
    assert_has(&text, &["tasks.toml:4:", "tasks.toml:49999:", "and 9980 more"]);
}
