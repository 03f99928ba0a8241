//! Why a task did not succeed, in one place for every reporter: its reason (the report
//! entry's `message`) and the last lines of its stderr (`stderr_tail`, read once at its end),
//! as nextest shows a failing test's output; and where to read the rest (`sandpen logs`).

use crate::runner::{RunReport, TaskResult, TaskStatus};

/// Whether the task ended in a way its reporters explain.
pub fn explained(t: &TaskResult) -> bool {
    t.status != TaskStatus::Succeeded && (t.message.is_some() || !t.stderr_tail.is_empty())
}

/// The reason in words: the message, or the status when there is none.
pub fn reason(t: &TaskResult) -> String {
    t.message.clone().unwrap_or_else(|| t.status.as_str().to_string())
}

/// The reason and then the stderr tail, one per line: JUnit's failure body, the HTML cell.
pub fn text(t: &TaskResult) -> String {
    let mut out = reason(t);
    for line in &t.stderr_tail {
        out.push('\n');
        out.push_str(line);
    }
    out
}

/// The summary's block for one task: `  id: reason` and its tail lines indented under it.
pub fn block(t: &TaskResult) -> String {
    let mut out = format!("  {}: {}\n", t.id, reason(t));
    for line in &t.stderr_tail {
        out.push_str(&format!("    | {line}\n"));
    }
    out
}

/// The summary's last line when a task did not succeed: where its whole output is.
pub fn pointer(report: &RunReport) -> Option<String> {
    let first = report
        .tasks
        .iter()
        .find(|t| !matches!(t.status, TaskStatus::Succeeded | TaskStatus::Skipped))?;
    Some(format!(
        "see a task's whole session and stderr: sandpen logs {} TASK (e.g. sandpen logs {} {})\n",
        report.run_id, report.run_id, first.id
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::spec::Limits;

    fn failed() -> TaskResult {
        let limits = Limits {
            nano_cpus: 1_000_000_000,
            memory_bytes: 1 << 30,
            pids: 64,
        };
        let mut t = TaskResult::new("build", "img", limits);
        t.status = TaskStatus::Failed;
        t.message = Some("exited with code 1".into());
        t.stderr_tail = vec!["warning: x".into(), "error: could not find module foo".into()];
        t
    }

    #[test]
    fn a_failure_shows_its_reason_and_its_stderr_under_it() {
        let t = failed();
        assert!(explained(&t));
        assert_eq!(
            block(&t),
            "  build: exited with code 1\n    | warning: x\n    | error: could not find module foo\n"
        );
        assert_eq!(
            text(&t),
            "exited with code 1\nwarning: x\nerror: could not find module foo"
        );
        let mut run = RunReport::started("r1", "/repo", "img", 1, "now");
        run.tasks.push(t);
        let p = pointer(&run).expect("a pointer to the logs");
        assert!(p.contains("sandpen logs r1 build"), "{p}");
    }

    #[test]
    fn success_and_skips_are_not_explained_or_pointed_at() {
        let mut t = failed();
        t.status = TaskStatus::Succeeded;
        assert!(!explained(&t));
        let mut run = RunReport::started("r1", "/repo", "img", 1, "now");
        t.status = TaskStatus::Skipped;
        run.tasks.push(t);
        assert_eq!(pointer(&run), None);
        let mut bare = failed();
        (bare.message, bare.stderr_tail) = (None, Vec::new());
        assert_eq!(reason(&bare), "failed");
    }
}
