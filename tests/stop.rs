//! `sandpen stop` from another process, against the real engine with the probe image: one task
//! of a live run, then the whole run, each with the outcome of Ctrl-C in the run's own terminal.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;

const TASKS: &str = r#"
[[task]]
id = "long"
prompt_text = "sleep 120"

[[task]]
id = "short"
prompt_text = "sleep 6; echo done > done.txt; git add done.txt; git commit -qm done"

[[task]]
id = "after"
prompt_text = "true"
depends_on = ["long"]
"#;

fn stop(repo: &Path, args: &[&str]) -> Output {
    output(sandpen().arg("stop").args(args).arg("--repo").arg(repo))
}

/// Waits until task `id`'s container runs; the run's id.
fn running(repo: &Path, bg: &Background, id: &str) -> String {
    wait_for(Duration::from_secs(90), || {
        let run = std::fs::read_dir(runs_dir(repo)).ok()?.flatten().next()?;
        let run = run.file_name().to_string_lossy().into_owned();
        (!running_containers(&format!("name=sandpen-{run}-{id}")).is_empty()).then_some(run)
    })
    .unwrap_or_else(|| panic!("task {id} never ran:\n{}", bg.stderr()))
}

#[test]
fn stopping_one_task_cancels_it_alone_and_stopping_the_run_ends_it_as_ctrl_c_does() {
    let repo = make_repo();
    let mut bg = spawn_run(repo.path(), TASKS, &["--network", "none"]);
    let run = running(repo.path(), &bg, "long");

    let asked = Instant::now();
    let out = stop(repo.path(), &[&run, "long"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(said.contains("long: cancelled: stopped by"), "{said}");
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "stop took {:?}",
        asked.elapsed()
    );
    assert!(
        running_containers(&format!("name=sandpen-{run}-long")).is_empty(),
        "the stopped task's container still runs"
    );
    let status = bg.wait_exit(Duration::from_secs(90)).expect("the run ends");
    // One task stopped is not a cancelled run: the run fails, as any run with a failed task.
    assert_eq!(status.code(), Some(1), "{}", bg.stderr());
    let report = read_report(&runs_dir(repo.path()).join(format!("{run}/report.json"))).unwrap();
    assert_eq!(report["cancelled"], false);
    assert!(
        report.get("cancel_reason").is_none(),
        "one task stopped: {report:#}"
    );
    assert_eq!(field(task(&report, "long"), "status"), "cancelled");
    assert_eq!(
        field(task(&report, "short"), "status"),
        "succeeded",
        "the others go on"
    );
    assert_eq!(task(&report, "short")["commits"], 1, "{report:#}");
    assert_eq!(field(task(&report, "after"), "status"), "skipped");
    assert!(containers(&format!("label=sandpen.run={run}")).is_empty());

    // The whole run, the latest of the repository when no run is named.
    let mut bg = spawn_run(repo.path(), TASKS, &["--network", "none"]);
    let second = wait_for(Duration::from_secs(90), || {
        let runs: Vec<_> = std::fs::read_dir(runs_dir(repo.path()))
            .ok()?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|r| *r != run)
            .collect();
        let r = runs.into_iter().next()?;
        (!running_containers(&format!("name=sandpen-{r}-short")).is_empty()).then_some(r)
    })
    .unwrap_or_else(|| panic!("the second run never started:\n{}", bg.stderr()));
    let out = stop(repo.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("run {second} ended")),
        "{}",
        stderr(&out)
    );
    let status = bg.wait_exit(Duration::from_secs(30)).expect("the run ends");
    assert_eq!(status.code(), Some(130), "as Ctrl-C: {}", bg.stderr());
    let report = read_report(&runs_dir(repo.path()).join(format!("{second}/report.json"))).unwrap();
    assert_eq!(report["cancelled"], true);
    assert_eq!(report["cancel_reason"], "stopped", "{report:#}");
    for id in ["long", "short", "after"] {
        assert_eq!(field(task(&report, id), "status"), "cancelled", "{report:#}");
    }
    assert!(containers(&format!("label=sandpen.run={second}")).is_empty());

    // Nothing left to stop: a clear word and exit 2, as for an unknown task.
    let out = stop(repo.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not live"), "{}", stderr(&out));
    let out = stop(repo.path(), &[&second, "nosuch"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("has no task nosuch"), "{}", stderr(&out));
}
