//! The live view's lines and counts, without a terminal.

use super::fit::extra_rows;
use super::*;
use crate::report::Consumer;
use crate::runner::Event;

fn started(view: &mut LiveView, tasks: &[String]) {
    view.on_event(&Event::RunStarted {
        run_id: "r".into(),
        repo: "/r".into(),
        image: "i".into(),
        jobs: 16,
        tasks: tasks.to_vec(),
        at: "now".into(),
    });
}

fn preparing(task: impl Into<String>) -> Event {
    Event::TaskPreparing {
        task: task.into(),
        base_commit: "0123abcd".into(),
    }
}

fn ended(view: &mut LiveView, task: &str, status: TaskStatus) {
    let limits = crate::engine::spec::Limits {
        nano_cpus: 1_000_000_000,
        memory_bytes: 1 << 30,
        pids: 64,
    };
    let mut result = TaskResult::new(task, "i", limits);
    result.status = status;
    view.on_event(&Event::TaskFinished {
        task: task.into(),
        result: Box::new(result),
    });
}

#[test]
fn a_task_line_shows_its_phase_and_its_activity() {
    let mut view = LiveView::with_target(None, false);
    started(&mut view, &["t1".into()]);
    view.on_event(&preparing("t1"));
    view.on_event(&Event::Phase {
        task: "t1".into(),
        phase: 3,
        name: "branch management".into(),
        completed: vec![1, 2],
    });
    assert!(
        view.line("t1").ends_with("phase 3/11: branch management"),
        "{}",
        view.line("t1")
    );
    view.on_event(&Event::Agent {
        task: "t1".into(),
        activity: "Bash: git switch -c feature".into(),
        turns: 2,
        tool: Some("Bash".into()),
        api_retries: 0,
    });
    let line = view.line("t1");
    assert!(
        line.contains("phase 3/11: branch management · Bash: git switch -c feature"),
        "{line}"
    );
}

#[test]
fn a_retried_task_says_which_attempt_runs() {
    let mut view = LiveView::with_target(None, false);
    started(&mut view, &["t1".into()]);
    view.on_event(&preparing("t1"));
    view.on_event(&Event::TaskRetrying {
        task: "t1".into(),
        attempt: 2,
        of: 3,
        after_s: 2.0,
        message: "the model API was overloaded".into(),
    });
    assert!(
        view.line("t1").contains("attempt 2/3 in 2s"),
        "{}",
        view.line("t1")
    );
    view.on_event(&preparing("t1"));
    view.on_event(&Event::Agent {
        task: "t1".into(),
        activity: "Bash: ls".into(),
        turns: 1,
        tool: Some("Bash".into()),
        api_retries: 0,
    });
    assert!(
        view.line("t1").ends_with("attempt 2/3 · Bash: ls"),
        "{}",
        view.line("t1")
    );
}

#[test]
fn five_hundred_tasks_keep_a_line_each_only_while_they_run() {
    let mut view = LiveView::with_target(Some(ProgressDrawTarget::hidden()), false);
    let tasks: Vec<String> = (0..500).map(|i| format!("t{i:03}")).collect();
    started(&mut view, &tasks);
    let jobs = 16;
    let mut most_lines = 0;
    for (i, t) in tasks.iter().enumerate() {
        view.on_event(&preparing(t.clone()));
        view.on_event(&Event::TaskStarted {
            task: t.clone(),
            container_id: "0123456789abcdef".into(),
            at: "now".into(),
        });
        most_lines = most_lines.max(view.screen.as_ref().unwrap().lines.len());
        if i + 1 >= jobs {
            let status = match (i + 1 - jobs) % 50 {
                0 => TaskStatus::Failed,
                _ => TaskStatus::Succeeded,
            };
            ended(&mut view, &tasks[i + 1 - jobs], status);
        }
    }
    assert_eq!(most_lines, jobs, "a line per running task, not per task");
    assert_eq!(view.active.len(), jobs - 1);
    assert!(
        view.counts() == "485/500 done: 15 running · 0 queued · 475 succeeded · 10 failed",
        "{}",
        view.counts()
    );
    for t in &tasks[485..] {
        ended(&mut view, t, TaskStatus::Succeeded);
    }
    assert!(view.active.is_empty());
    assert!(view.screen.as_ref().unwrap().lines.is_empty());
    assert_eq!(
        view.counts(),
        "500/500 done: 0 running · 0 queued · 490 succeeded · 10 failed"
    );
}

#[test]
fn more_tasks_in_progress_than_lines_say_how_many_more() {
    let mut view = LiveView::with_target(Some(ProgressDrawTarget::hidden()), false);
    let tasks: Vec<String> = (0..100).map(|i| format!("t{i:03}")).collect();
    started(&mut view, &tasks);
    for t in &tasks {
        view.on_event(&preparing(t.clone()));
    }
    let lines = &view.screen.as_ref().unwrap().lines;
    assert_eq!(lines.len(), MAX_TASK_LINES + 1);
    assert_eq!(lines[MAX_TASK_LINES].message(), "… and 68 more");
    assert!(
        lines[0].message().starts_with("t000 preparing"),
        "{}",
        lines[0].message()
    );
}

#[test]
fn a_task_waiting_for_memory_says_what_it_needs() {
    let mut view = LiveView::with_target(Some(ProgressDrawTarget::hidden()), false);
    let tasks: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    started(&mut view, &tasks);
    for t in ["a", "b"] {
        view.on_event(&preparing(t));
    }
    view.on_event(&Event::WaitingForMemory {
        task: "c".into(),
        needs_bytes: 10 << 30,
        free_bytes: 3 << 30,
        total_bytes: 23 << 30,
    });
    let line = view.line("c");
    assert!(line.starts_with("c    waiting"), "{line}");
    assert!(
        line.ends_with("waiting for memory: needs 10.00 GiB, 3.00 GiB free of 23.00 GiB"),
        "{line}"
    );
    assert_eq!(
        view.counts(),
        "0/3 done: 2 running · 1 waiting for memory · 0 queued"
    );
    ended(&mut view, "a", TaskStatus::Succeeded);
    view.on_event(&preparing("c"));
    let line = view.line("c");
    assert!(line.contains(" preparing ") && !line.contains("memory"), "{line}");
    assert_eq!(view.counts(), "1/3 done: 2 running · 0 queued · 1 succeeded");
}

#[test]
fn on_a_narrow_terminal_ids_are_cut_and_the_figures_go() {
    assert_eq!(layout(40, None), (40, true), "no terminal: everything in full");
    assert_eq!(layout(40, Some(77)), (25, true));
    assert_eq!(layout(8, Some(77)), (8, true), "a short id keeps its width");
    assert_eq!(layout(40, Some(57)), (19, false));
    let id = "alpha-task-with-a-rather-long-identifier";
    let mut view = LiveView::with_target(None, false);
    started(&mut view, &[id.into()]);
    view.on_event(&preparing(id));
    view.on_event(&Event::Phase {
        task: id.into(),
        phase: 3,
        name: "branch management".into(),
        completed: vec![1, 2],
    });
    let (_, row) = view.active.values().next().expect("the task's row");
    for width in [57, 77, 117] {
        let line = view.row_line(id, row, Some(width));
        assert!(style::width_of(&line) <= width, "{width}: {line}");
        assert!(line.starts_with("alpha-task-"), "{line}");
        assert!(line.contains('…'), "cut with an ellipsis at {width}: {line}");
    }
    assert!(
        view.row_line(id, row, None).starts_with(id),
        "in full without a terminal"
    );
}

#[test]
fn a_frame_reflowed_by_a_narrower_terminal_takes_more_rows() {
    // Three lines padded to 120 columns, the last 50 wide: 290 columns, 5 rows at 60.
    assert_eq!(extra_rows(3, 50, 120, 60), 2);
    assert_eq!(extra_rows(3, 50, 120, 120), 0, "the same width: nothing");
    assert_eq!(extra_rows(1, 30, 120, 60), 0, "one short line still fits");
    assert_eq!(extra_rows(1, 100, 120, 60), 1);
}
