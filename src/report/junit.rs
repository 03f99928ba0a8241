//! `--junit FILE`: the run as JUnit XML for CI systems, one test suite per run and one test
//! case per task, written (atomically) when the run ends. Failures: `failed`, `oom_killed`,
//! `timed_out`, `disk_exceeded`, `budget_exceeded`; skipped: `skipped`, `cancelled`; errors:
//! `error`. Each case carries the task's duration and the tail of its output; a failure
//! carries its reason and the last lines of its stderr (`report::failure`). A task's earlier
//! attempts (`sandpen rerun`) that failed are its reruns, as nextest writes them:
//! `flakyFailure` when it succeeded at last, `rerunFailure` when it did not.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestRerun, TestSuite};

use super::Consumer;
use crate::atomic_file::write_atomically;
use crate::runner::{Event, RunReport, TaskResult, TaskStatus};

/// How much of a task's output goes into its `system-out`.
const OUTPUT_TAIL: u64 = 8 * 1024;

pub struct JunitWriter {
    path: PathBuf,
    /// A problem writing, for the command to show after the display has finished.
    pub errors: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl JunitWriter {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            errors: Default::default(),
        }
    }
}

impl Consumer for JunitWriter {
    fn on_event(&mut self, event: &Event) {
        let Event::RunFinished { report } = event else {
            return;
        };
        let written = to_xml(report)
            .map_err(|e| e.to_string())
            .and_then(|xml| write_atomically(&self.path, xml.as_bytes()).map_err(|e| e.to_string()));
        if let Err(e) = written {
            self.errors
                .lock()
                .unwrap()
                .push(format!("writing {}: {e}", self.path.display()));
        }
    }
}

/// The report as JUnit XML.
pub fn to_xml(run: &RunReport) -> Result<String, quick_junit::SerializeError> {
    let mut suite = TestSuite::new(format!("sandpen run {}", run.run_id));
    suite.set_time(Duration::from_secs_f64(run.wall_s.max(0.0)));
    suite.add_test_cases(run.tasks.iter().map(case));
    let mut report = Report::new("sandpen");
    report.set_time(Duration::from_secs_f64(run.wall_s.max(0.0)));
    report.add_test_suite(suite);
    report.to_string()
}

fn case(t: &TaskResult) -> TestCase {
    let mut status = match t.status {
        TaskStatus::Succeeded => TestCaseStatus::success(),
        TaskStatus::Skipped | TaskStatus::Cancelled => TestCaseStatus::skipped(),
        TaskStatus::Error => TestCaseStatus::non_success(NonSuccessKind::Error),
        TaskStatus::Failed
        | TaskStatus::OomKilled
        | TaskStatus::TimedOut
        | TaskStatus::DiskExceeded
        | TaskStatus::BudgetExceeded => TestCaseStatus::non_success(NonSuccessKind::Failure),
    };
    if t.status != TaskStatus::Succeeded {
        status.set_type(t.status.as_str());
        // The message alone is what many CI pages show: the reason and the last stderr line.
        let mut message = super::failure::reason(t);
        if let Some(last) = t.stderr_tail.last() {
            message = format!("{message}; stderr: {last}");
        }
        status.set_message(message);
        status.set_description(super::failure::text(t));
    }
    // Earlier attempts that ran and did not succeed: nextest's `flakyFailure` under a case
    // that passed at last, `rerunFailure` under one that did not.
    status.add_reruns(t.attempts.iter().rev().skip(1).rev().filter_map(rerun));
    let mut case = TestCase::new(t.id.clone(), status);
    case.set_classname("sandpen");
    case.set_time(Duration::from_secs_f64(t.duration_s.max(0.0)));
    let mut out = tail(Path::new(&t.log));
    if let Some(b) = &t.branch {
        out = format!("branch: {b}\nlog: {}\n\n{out}", t.log);
    }
    case.set_system_out_lossy(out.as_bytes());
    let err = tail(Path::new(&t.stderr_log));
    if !err.is_empty() {
        case.set_system_err_lossy(err.as_bytes());
    }
    case
}

/// An earlier attempt as a rerun of the case, when it ran and did not succeed.
fn rerun(a: &crate::runner::Attempt) -> Option<TestRerun> {
    if !a.ran() || a.status == TaskStatus::Succeeded {
        return None;
    }
    let mut r = TestRerun::new(match a.status {
        TaskStatus::Error => NonSuccessKind::Error,
        _ => NonSuccessKind::Failure,
    });
    r.set_type(a.status.as_str());
    r.set_time(Duration::from_secs_f64(a.duration_s.max(0.0)));
    r.set_message(format!(
        "attempt {}: {}",
        a.number,
        a.message.as_deref().unwrap_or(a.status.as_str())
    ));
    r.set_system_out_lossy(format!("log: {}\n\n{}", a.log, tail(Path::new(&a.log))).as_bytes());
    let err = tail(Path::new(&a.stderr_log));
    if !err.is_empty() {
        r.set_system_err_lossy(err.as_bytes());
    }
    Some(r)
}

/// The last `OUTPUT_TAIL` bytes of a log (a regular file, never through a link).
fn tail(path: &Path) -> String {
    let read = || -> std::io::Result<String> {
        let mut f = std::fs::File::open(path)?;
        if !f.metadata()?.is_file() {
            return Ok(String::new());
        }
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(OUTPUT_TAIL)))?;
        let mut bytes = Vec::new();
        f.take(OUTPUT_TAIL).read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    read().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::spec::Limits;

    #[test]
    fn every_status_maps_to_what_junit_readers_count() {
        let limits = Limits {
            nano_cpus: 1_000_000_000,
            memory_bytes: 1 << 30,
            pids: 64,
        };
        let mut run = RunReport::started("r1", "/repo", "img", 2, "now");
        for (id, status) in [
            ("ok", TaskStatus::Succeeded),
            ("bad", TaskStatus::Failed),
            ("slow", TaskStatus::TimedOut),
            ("spent", TaskStatus::BudgetExceeded),
            ("later", TaskStatus::Skipped),
            ("stopped", TaskStatus::Cancelled),
            ("broke", TaskStatus::Error),
        ] {
            let mut t = TaskResult::new(id, "img", limits);
            t.status = status;
            t.message = Some(format!("{id} <&> message"));
            if status == TaskStatus::Failed {
                t.stderr_tail = vec!["warning: w".into(), "error: could not find module m".into()];
            }
            run.tasks.push(t);
        }
        let xml = to_xml(&run).unwrap();
        assert!(
            !xml.contains("flakyFailure") && !xml.contains("rerunFailure"),
            "{xml}"
        );
        // Reruns: ok failed once then succeeded; bad failed twice; a skipped attempt is no run.
        let log = |t: &TaskResult, n| TaskResult {
            log: format!("/nowhere/{}.{n}.log", t.id),
            ..t.clone()
        };
        for (i, earlier) in [
            (0, TaskStatus::Failed),
            (1, TaskStatus::Error),
            (4, TaskStatus::Skipped),
        ] {
            let t = &run.tasks[i];
            let mut first = log(t, 1);
            first.status = earlier;
            if earlier == TaskStatus::Skipped {
                first.log.clear();
            }
            let mut attempts = vec![crate::runner::Attempt::of(&first, 1)];
            attempts.push(crate::runner::Attempt::of(t, 2));
            run.tasks[i].attempts = attempts;
        }
        let xml = to_xml(&run).unwrap();
        assert_eq!(xml.matches("<flakyFailure").count(), 1, "{xml}");
        assert_eq!(xml.matches("<rerunError").count(), 1, "{xml}");
        assert!(xml.contains("attempt 1: ok &lt;&amp;&gt; message"), "{xml}");
        assert!(xml.contains("log: /nowhere/ok.1.log"), "{xml}");
        assert!(xml.contains(r#"failures="3""#), "{xml}");
        assert!(xml.contains(r#"errors="1""#), "{xml}");
        assert!(xml.contains(r#"skipped="2""#), "{xml}");
        assert!(xml.contains("spent &lt;&amp;&gt; message"), "escaped: {xml}");
        assert!(
            xml.contains(r#"message="bad &lt;&amp;&gt; message; stderr: error: could not find module m""#),
            "{xml}"
        );
        assert!(
            xml.contains("warning: w\nerror: could not find module m</failure>"),
            "{xml}"
        );
    }
}
