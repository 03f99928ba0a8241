//! Interrupting `sandpen run` (SIGINT), killing it (SIGKILL), and `sandpen gc` cleaning up
//! after a dead run without touching a live one. Real engine, probe image.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn sleepers(ids: &[&str], seconds: u32) -> String {
    ids.iter()
        .map(|id| format!("[[task]]\nid = \"{id}\"\ntimeout = \"5m\"\nprompt_text = \"sleep {seconds}\"\n\n"))
        .collect()
}

/// Waits until `n` containers of the sandpen process `pid` are running; their ids.
fn wait_running(run: &mut Background, n: usize) -> Vec<String> {
    let filter = owner_filter(run.pid());
    let found = wait_for(Duration::from_secs(30), || {
        if let Ok(Some(st)) = run.child.try_wait() {
            panic!("sandpen exited early ({st}):\n{}", run.stderr());
        }
        let ids = running_containers(&filter);
        (ids.len() >= n).then_some(ids)
    });
    found.unwrap_or_else(|| {
        panic!(
            "{n} containers of {filter} never ran; there are {:?}\n{}",
            containers(&filter),
            run.stderr()
        )
    })
}

#[test]
fn sigint_stops_every_task_and_exits_130() {
    let repo = make_repo();
    // Three run at once; the fourth waits for a free slot and never gets one.
    let mut run = spawn_run(repo.path(), &sleepers(&["x", "y", "z", "w"], 60), &["-j", "3"]);
    let filter = owner_filter(run.pid());
    let ids = wait_running(&mut run, 3);
    assert_eq!(ids.len(), 3);

    let sent = Instant::now();
    run.signal("INT");
    let status = run
        .wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("still running 15 s after SIGINT:\n{}", run.stderr()));
    let took = sent.elapsed();
    eprintln!("sigint: exited {status} {took:?} after SIGINT");
    assert_eq!(status.code(), Some(130), "{}", run.stderr());

    let left = containers(&filter);
    assert!(left.is_empty(), "containers left behind: {left:?}");
    let report = read_report(&run.tasks.report).unwrap_or_else(|e| panic!("{e}\n{}", run.stderr()));
    assert_eq!(report["cancelled"], true, "{report:#}");
    assert_eq!(report["cancel_reason"], "interrupted", "{report:#}");
    let mut started = 0;
    for id in ["x", "y", "z", "w"] {
        let t = task(&report, id);
        assert_eq!(field(t, "status"), "cancelled", "{t:#}");
        assert!(
            t["duration_s"].as_f64().unwrap() < 60.0,
            "stopped long before its sleep ended: {t:#}"
        );
        started += usize::from(!t["started_at"].is_null());
    }
    assert_eq!(started, 3, "the fourth task never started: {report:#}");
    // The report in the run directory too.
    let run_id = field(&report, "run_id");
    let in_repo = runs_dir(repo.path()).join(run_id).join("report.json");
    assert!(in_repo.is_file(), "{} exists", in_repo.display());
}

#[test]
fn gc_removes_a_killed_runs_containers_and_keeps_a_live_runs() {
    let dead_repo = make_repo();
    let live_repo = make_repo();

    // Each dead task has committed work and uncommitted work when sandpen is killed.
    let workers: String = ["d1", "d2"]
        .iter()
        .map(|id| {
            format!(
                "[[task]]\nid = \"{id}\"\ntimeout = \"5m\"\nprompt_text = \"\"\"\n\
                 echo c > committed-{id}.txt && git add . && git commit -qm c-{id}\n\
                 echo u > uncommitted-{id}.txt\nsleep 60\n\"\"\"\n\n"
            )
        })
        .collect();
    let mut dead = spawn_run(dead_repo.path(), &workers, &["-j", "2"]);
    // Let them commit before the kill.
    std::thread::sleep(Duration::from_secs(2));
    let dead_ids = wait_running(&mut dead, 2);
    dead.signal("KILL");
    let status = dead
        .wait_exit(Duration::from_secs(10))
        .expect("SIGKILL ends sandpen");
    assert_eq!(status.code(), None, "killed by a signal");
    let dead_filter = owner_filter(dead.pid());
    // Nothing cleans up after a killed process: its containers are still there.
    std::thread::sleep(Duration::from_millis(500));
    let mut remaining = task_containers(&dead_filter);
    remaining.sort();
    let mut expected = dead_ids.clone();
    expected.sort();
    assert_eq!(remaining, expected, "a killed run's containers stay");

    let mut live = spawn_run(live_repo.path(), &sleepers(&["l1"], 30), &[]);
    let live_ids = wait_running(&mut live, 1);

    // Two at once (a user's and a CI job's, say): one finishes the dead run, the other
    // leaves it alone, and neither spoils the other's work.
    let both: Vec<_> = (0..2)
        .map(|_| {
            sandpen()
                .arg("gc")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let both: Vec<_> = both.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let (mut out, mut err) = (String::new(), String::new());
    for gc in &both {
        out.push_str(&stdout(gc));
        err.push_str(&stderr(gc));
    }
    eprintln!("gc stdout:\n{out}gc stderr:\n{err}");
    for gc in &both {
        assert!(gc.status.success(), "gc failed:\n{out}\n{err}");
    }
    let dead_dir = runs_dir(dead_repo.path());
    let completions = both
        .iter()
        .filter(|gc| stdout(gc).contains(&format!("completed run {}", dead_dir.display())))
        .count();
    assert_eq!(completions, 1, "one gc completes the dead run:\n{out}");
    for id in &dead_ids {
        let short = &id[..12];
        assert!(
            out.lines().any(|l| l.starts_with("removed") && l.contains(short)),
            "gc names {short} as removed:\n{out}"
        );
    }
    let left = containers(&dead_filter);
    assert!(left.is_empty(), "gc removed the dead run's containers: {left:?}");
    // The dead run's work came back as branches, and its report was completed.
    let runs = runs_dir(dead_repo.path());
    let run_dir = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap().path();
    let run_id = run_dir.file_name().unwrap().to_string_lossy().to_string();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["complete"], true, "{report:#}");
    for id in ["d1", "d2"] {
        let branch = format!("sandpen/{id}/{run_id}");
        for (file, text) in [("committed", "c\n"), ("uncommitted", "u\n")] {
            assert_eq!(
                git(dead_repo.path(), &["show", &format!("{branch}:{file}-{id}.txt")]),
                text,
                "gc brought {file} work of {id} back"
            );
        }
        let t = report["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap();
        assert_eq!(t["branch"], branch.as_str(), "{t:#}");
        assert!(t["message"].as_str().unwrap().contains("gc"), "{t:#}");
        // The checkout is the repository owner's again.
        use std::os::unix::fs::MetadataExt;
        let file = std::fs::metadata(run_dir.join(id).join(format!("uncommitted-{id}.txt"))).unwrap();
        let repo_owner = std::fs::metadata(dead_repo.path()).unwrap();
        assert_eq!(file.uid(), repo_owner.uid(), "{id}'s checkout handed back");
    }
    assert!(out.contains("completed run"), "gc says what it completed:\n{out}");
    assert!(
        !out.contains(&live_ids[0][..12]),
        "gc does not touch the live run:\n{out}"
    );
    assert_eq!(
        running_containers(&owner_filter(live.pid())),
        live_ids,
        "the live run's container is still running"
    );

    // The live run still ends cleanly.
    live.signal("INT");
    let status = live
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("the live run did not stop:\n{}", live.stderr()));
    assert_eq!(status.code(), Some(130), "{}", live.stderr());
    let left = containers(&owner_filter(live.pid()));
    assert!(left.is_empty(), "the live run cleaned up: {left:?}");
}
