//! Every way a run can end leaves nothing behind and says what happened: SIGHUP, a second
//! Ctrl-C, a panic in one task, a hung engine, a SIGKILLed sandpen whose containers end
//! themselves, a task that turns its state file into a FIFO, and no secret in any log at any
//! verbosity. Real engine, probe image.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::frozen::FreezableEngine;
use common::*;

fn sleepers(ids: &[&str], seconds: u32, timeout: &str) -> String {
    ids.iter()
        .map(|id| {
            format!("[[task]]\nid = \"{id}\"\ntimeout = \"{timeout}\"\nprompt_text = \"sleep {seconds}\"\n\n")
        })
        .collect()
}

/// The run's directory (the only one under the repository's runs).
fn run_dir(repo: &Path) -> PathBuf {
    let runs = runs_dir(repo);
    wait_for(Duration::from_secs(20), || {
        std::fs::read_dir(&runs).ok()?.next()?.ok().map(|e| e.path())
    })
    .expect("the run directory appears")
}

fn report_of(repo: &Path) -> serde_json::Value {
    read_report(&run_dir(repo).join("report.json")).expect("report.json parses")
}

fn left(run: &serde_json::Value) -> Vec<String> {
    containers(&format!("label=sandpen.run={}", run["run_id"].as_str().unwrap()))
}

/// `sandpen gc` until the run of `repo` is finished: no container of it left and its lease
/// free. gc finishes every dead run on the engine, so another test's gc may be finishing this
/// one, holding its lease (this gc then keeps it: "another `sandpen gc` is finishing it").
/// The last gc's output.
fn gc_until_finished(repo: &Path) -> std::process::Output {
    let _one_at_a_time = gc_lock();
    gc_loop(repo)
}

/// gc acts on every dead run of the engine: a test that needs a dead run left alone for a
/// while (the orphan's own deadline) holds this, and the other tests' gc waits.
fn gc_lock() -> std::sync::MutexGuard<'static, ()> {
    static GC: std::sync::Mutex<()> = std::sync::Mutex::new(());
    GC.lock().unwrap_or_else(|e| e.into_inner())
}

fn gc_loop(repo: &Path) -> std::process::Output {
    let lease = run_dir(repo).join("_sandpen/lease");
    let mut last = None;
    wait_for(Duration::from_secs(120), || {
        let gc = output(sandpen().arg("gc").current_dir(repo));
        assert!(gc.status.success(), "{}", stderr(&gc));
        last = Some(gc);
        let free = output(
            std::process::Command::new("flock")
                .arg("-n")
                .arg(&lease)
                .arg("true"),
        );
        (left(&report_of(repo)).is_empty() && free.status.success()).then_some(())
    });
    last.expect("gc ran")
}

/// Waits until `n` of the run's task containers run.
fn wait_running(run: &mut Background, n: usize) {
    let filter = owner_filter(run.pid());
    wait_for(Duration::from_secs(30), || {
        if let Ok(Some(st)) = run.child.try_wait() {
            panic!("sandpen exited early ({st}):\n{}", run.stderr());
        }
        (running_containers(&filter).len() >= n).then_some(())
    })
    .unwrap_or_else(|| panic!("{n} containers never ran:\n{}", run.stderr()));
}

#[test]
fn sighup_stops_the_run_writes_the_report_and_leaves_nothing() {
    let repo = make_repo();
    let mut run = spawn_run(repo.path(), &sleepers(&["h1", "h2"], 60, "5m"), &["-j", "2"]);
    wait_running(&mut run, 2);
    let sent = Instant::now();
    run.signal("HUP");
    let status = run
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("SIGHUP did not end the run:\n{}", run.stderr()));
    eprintln!(
        "sighup: exit {:?} {:?} after the signal",
        status.code(),
        sent.elapsed()
    );
    assert_eq!(status.code(), Some(130), "{}", run.stderr());
    let report = report_of(repo.path());
    assert_eq!(report["complete"], true, "{report:#}");
    for id in ["h1", "h2"] {
        assert_eq!(field(task(&report, id), "status"), "cancelled", "{report:#}");
    }
    assert!(left(&report).is_empty(), "containers left: {:?}", left(&report));
}

#[test]
fn a_second_interrupt_leaves_within_two_seconds() {
    let repo = make_repo();
    // Tasks that ignore SIGTERM, so that the first Ctrl-C alone would take the whole grace.
    let stubborn =
        "[[task]]\nid = \"s\"\ntimeout = \"5m\"\nprompt_text = \"trap '' TERM; sleep 60 & wait; sleep 60\"\n";
    let mut run = spawn_run(repo.path(), stubborn, &[]);
    wait_running(&mut run, 1);
    run.signal("INT");
    std::thread::sleep(Duration::from_millis(300));
    let second = Instant::now();
    run.signal("INT");
    let status = run
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the second interrupt did not end the run:\n{}", run.stderr()));
    let took = second.elapsed();
    eprintln!("second interrupt: exit {:?} after {took:?}", status.code());
    assert!(
        took < Duration::from_secs(2),
        "left {took:?} after the second interrupt"
    );
    assert_eq!(status.code(), Some(130));
    let err = run.stderr();
    assert!(
        err.contains("sandpen gc") || err.contains("report:"),
        "says what to do:\n{err}"
    );
    // Whatever was left, gc finishes it.
    gc_until_finished(repo.path());
    let report = report_of(repo.path());
    assert!(left(&report).is_empty(), "after gc: {:?}", left(&report));
}

#[test]
fn a_panic_in_one_task_leaves_the_others_and_the_engine_clean() {
    let repo = make_repo();
    let toml: String = ["p1", "p2", "p3"]
        .iter()
        .map(|id| format!("[[task]]\nid = \"{id}\"\ntimeout = \"1m\"\nprompt_text = \"sleep 2; echo {id} > {id}.txt\"\n\n"))
        .collect();
    let tasks = task_file(&toml);
    let out =
        output(run_command(repo.path(), &tasks, &["-j", "3"]).env("SANDPEN_TEST_PANIC_AFTER_START", "p2"));
    let report = read_report(&tasks.report).unwrap_or_else(|e| panic!("{e}\n{}", stderr(&out)));
    let p2 = task(&report, "p2");
    assert_eq!(field(p2, "status"), "error", "{p2:#}");
    assert!(
        field(p2, "message").contains("runner for this task failed"),
        "{p2:#}"
    );
    for id in ["p1", "p3"] {
        let t = task(&report, id);
        assert_eq!(field(t, "status"), "succeeded", "{t:#}");
        let shown = git(
            repo.path(),
            &["show", &format!("{}:{id}.txt", field(t, "branch"))],
        );
        assert_eq!(shown, format!("{id}\n"));
    }
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(left(&report).is_empty(), "containers left: {:?}", left(&report));
}

#[test]
fn a_hung_engine_ends_the_task_in_bounded_time_and_gc_finishes_it() {
    let engine = FreezableEngine::start();
    let repo = make_repo();
    let host = engine.host();
    let started = Instant::now();
    let mut run = spawn_run_with(
        repo.path(),
        "[[task]]\nid = \"hung\"\ntimeout = \"5s\"\nprompt_text = \"echo w > w.txt; sleep 60\"\n",
        &[],
        &[("DOCKER_HOST", &host)],
    );
    wait_running(&mut run, 1);
    // Past its gate: the gateway's address reaches the container through the engine, and a
    // container whose gate never opens never runs its task.
    let written = run_dir(repo.path()).join("hung/w.txt");
    wait_for(Duration::from_secs(30), || written.exists().then_some(()))
        .unwrap_or_else(|| panic!("the task never started:\n{}", run.stderr()));
    engine.frozen.store(true, Ordering::Relaxed);
    let status = run
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("a hung engine hung sandpen:\n{}", run.stderr()));
    let took = started.elapsed();
    eprintln!("hung engine: exit {:?} after {took:?}", status.code());
    // Checkout, timeout 5 s, grace 10 s + STOP_MARGIN 5 s (the run's last look for leftovers
    // included), and slack for a loaded machine: 20 s measured (28 s before the stop's calls
    // and that look shared the margin).
    assert!(
        took < Duration::from_secs(36),
        "ended {took:?} after the start:\n{}",
        run.stderr()
    );
    let report = report_of(repo.path());
    let t = task(&report, "hung");
    assert_eq!(field(t, "status"), "error", "{t:#}");
    assert!(field(t, "message").contains("not collected"), "{t:#}");
    assert!(
        t["branch"].is_null(),
        "no collection while the container may run: {t:#}"
    );
    assert!(
        !report["cleanup_failures"].as_array().unwrap().is_empty(),
        "{report:#}"
    );

    // The engine answers again: gc removes the container and brings the work back.
    engine.frozen.store(false, Ordering::Relaxed);
    let gc = gc_until_finished(repo.path());
    assert!(left(&report).is_empty(), "after gc: {:?}", left(&report));
    let report = report_of(repo.path());
    let t = task(&report, "hung");
    let branch = field(t, "branch");
    assert!(
        !branch.is_empty(),
        "gc brought no branch back:\n{t:#}\ngc said:\n{}{}\nthe task's log:\n{}",
        String::from_utf8_lossy(&gc.stdout),
        stderr(&gc),
        std::fs::read_to_string(field(t, "log")).unwrap_or_default()
    );
    assert_eq!(
        git(repo.path(), &["show", &format!("{branch}:w.txt")]),
        "w\n",
        "{t:#}"
    );
}

#[test]
fn an_orphan_container_ends_itself_at_its_deadline() {
    let repo = make_repo();
    let toml = "[[task]]\nid = \"orphan\"\ntimeout = \"3s\"\nprompt_text = \"echo > started; sleep 300\"\n";
    let mut run = spawn_run(repo.path(), toml, &[]);
    wait_running(&mut run, 1);
    // Past its gate (a container whose gate closes before it opens never runs its task).
    let started = run_dir(repo.path()).join("orphan/started");
    wait_for(Duration::from_secs(30), || started.exists().then_some(()))
        .unwrap_or_else(|| panic!("the task never started:\n{}", run.stderr()));
    let filter = owner_filter(run.pid());
    // No other test's gc may finish this dead run before its deadline does.
    let _alone = gc_lock();
    let killed = Instant::now();
    run.signal("KILL");
    run.wait_exit(Duration::from_secs(10))
        .expect("SIGKILL ends sandpen");
    // Nobody stops it: its own deadline (timeout 3 s + grace 10 s) does.
    let ended = wait_for(Duration::from_secs(40), || {
        (running_containers(&filter).is_empty()).then_some(killed.elapsed())
    })
    .expect("the orphan ran past its deadline");
    eprintln!("orphan: ended {ended:?} after sandpen was killed");
    assert!(ended < Duration::from_secs(30), "{ended:?}");
    let report = report_of(repo.path());
    let gc = gc_loop(repo.path());
    let run_filter = format!("label=sandpen.run={}", report["run_id"].as_str().unwrap());
    assert!(
        left(&report).is_empty(),
        "after gc: {}\ngc said:\n{}{}",
        stdout(&docker(&[
            "ps",
            "-a",
            "--filter",
            &run_filter,
            "--format",
            "{{.Names}} {{.Status}} {{.Labels}}"
        ])),
        stdout(&gc),
        stderr(&gc)
    );
    let report = report_of(repo.path());
    assert_eq!(report["complete"], true, "gc completed the report: {report:#}");
    assert!(
        field(task(&report, "orphan"), "message").contains("deadline"),
        "{report:#}"
    );
}

#[test]
fn a_fifo_for_a_state_file_neither_hangs_the_run_nor_ctrl_c() {
    let repo = make_repo();
    let fifo = "mkdir -p .github/workflow-states/{id} && mkfifo .github/workflow-states/{id}/state.json && sleep {s}";
    let run = run_tasks(
        repo.path(),
        &format!(
            "[[task]]\nid = \"ff\"\ntimeout = \"1m\"\nprompt_text = \"{}\"\n",
            fifo.replace("{id}", "ff").replace("{s}", "3")
        ),
        &[],
    );
    assert!(run.elapsed < Duration::from_secs(30), "{:?}", run.elapsed);
    assert_eq!(
        field(task(&run.report(), "ff"), "status"),
        "succeeded",
        "{}",
        run.dump()
    );

    let mut live = spawn_run(
        repo.path(),
        &format!(
            "[[task]]\nid = \"fg\"\ntimeout = \"1m\"\nprompt_text = \"{}\"\n",
            fifo.replace("{id}", "fg").replace("{s}", "60")
        ),
        &[],
    );
    wait_running(&mut live, 1);
    std::thread::sleep(Duration::from_secs(2)); // the watcher has met the FIFO
    live.signal("INT");
    let status = live
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("Ctrl-C did not end the run:\n{}", live.stderr()));
    assert_eq!(status.code(), Some(130));
}

#[test]
fn no_verbosity_prints_the_api_key() {
    let repo = make_repo();
    let canary = format!("sk-canary-{}", std::process::id());
    let toml = "[[task]]\nid = \"quiet\"\ntimeout = \"1m\"\nprompt_text = \"echo ok > ok.txt\"\n";
    for (args, log) in [
        (&["-vvv"][..], None),
        (&[][..], Some("trace,bollard=trace,hyper=trace")),
    ] {
        let tasks = task_file(toml);
        let mut cmd = run_command(repo.path(), &tasks, &[]);
        cmd.env("ANTHROPIC_API_KEY", &canary);
        // -vvv goes before the subcommand.
        let mut full = sandpen();
        full.env("ANTHROPIC_API_KEY", &canary)
            .current_dir(repo.path())
            .args(args);
        full.args(cmd.get_args());
        if let Some(l) = log {
            full.env("SANDPEN_LOG", l);
        }
        let out = output(&mut full);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let mut written = String::from_utf8_lossy(&out.stdout).into_owned();
        written.push_str(&String::from_utf8_lossy(&out.stderr));
        assert!(written.lines().count() > 3, "it did log: {written}");
        for entry in walkdir::WalkDir::new(runs_dir(repo.path())) {
            let entry = entry.unwrap();
            if entry.file_type().is_file() {
                written.push_str(&String::from_utf8_lossy(&std::fs::read(entry.path()).unwrap()));
            }
        }
        written.push_str(&std::fs::read_to_string(&tasks.report).unwrap());
        assert!(
            !written.contains(&canary),
            "the key was printed ({args:?}, {log:?})"
        );
    }
}

#[test]
fn a_double_interrupt_ends_sandpen_within_two_seconds_even_with_a_hung_engine() {
    let engine = FreezableEngine::start();
    let repo = make_repo();
    let host = engine.host();
    let mut run = spawn_run_with(
        repo.path(),
        &sleepers(&["frozen"], 60, "5m"),
        &[],
        &[("DOCKER_HOST", &host)],
    );
    wait_running(&mut run, 1);
    engine.frozen.store(true, Ordering::Relaxed);
    run.signal("INT");
    std::thread::sleep(Duration::from_millis(500));
    let second = Instant::now();
    run.signal("INT");
    let status = run.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| {
        panic!(
            "a hung engine held sandpen after two interrupts:\n{}",
            run.stderr()
        )
    });
    let took = second.elapsed();
    eprintln!(
        "double interrupt, hung engine: exit {:?} after {took:?}",
        status.code()
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(status.code(), Some(130));
    assert!(run.stderr().contains("sandpen gc"), "{}", run.stderr());
    engine.frozen.store(false, Ordering::Relaxed);
    gc_until_finished(repo.path());
    let report = report_of(repo.path());
    assert!(left(&report).is_empty(), "after gc: {:?}", left(&report));
}

#[test]
fn one_interrupt_with_a_hung_engine_ends_within_the_grace_and_lists_what_is_left() {
    let engine = FreezableEngine::start();
    let repo = make_repo();
    let host = engine.host();
    // Two tasks in the default network mode: their containers and the run's gateway.
    let toml: String = ["i1", "i2"]
        .iter()
        .map(|id| {
            format!(
                "[[task]]\nid = \"{id}\"\ntimeout = \"5m\"\nprompt_text = \"echo > started; sleep 120\"\n\n"
            )
        })
        .collect();
    let mut run = spawn_run_with(repo.path(), &toml, &["-j", "2"], &[("DOCKER_HOST", &host)]);
    wait_running(&mut run, 2);
    let dir = run_dir(repo.path());
    for id in ["i1", "i2"] {
        let started = dir.join(id).join("started");
        wait_for(Duration::from_secs(30), || started.exists().then_some(()))
            .unwrap_or_else(|| panic!("{id} never started:\n{}", run.stderr()));
    }
    let run_id = dir.file_name().unwrap().to_string_lossy().into_owned();
    let ours = containers(&format!("label=sandpen.run={run_id}"));
    assert_eq!(ours.len(), 3, "two tasks and the gateway: {ours:?}");
    engine.frozen.store(true, Ordering::Relaxed);
    let sent = Instant::now();
    run.signal("INT");
    let status = run
        .wait_exit(Duration::from_secs(40))
        .unwrap_or_else(|| panic!("one interrupt with a hung engine:\n{}", run.stderr()));
    let took = sent.elapsed();
    let err = run.stderr();
    eprintln!(
        "one interrupt, hung engine: exit {:?} after {took:?}\n{err}",
        status.code()
    );
    // The stop grace (10 s) plus STOP_MARGIN (5 s).
    assert!(took <= Duration::from_secs(15), "{took:?}:\n{err}");
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(!err.contains("within 0s"), "the waits are the real ones:\n{err}");
    // What is left, by name, and what removes it.
    for name in ["i1", "i2", "gateway"] {
        let name = format!("sandpen-{run_id}-{name}");
        assert!(err.contains(&name), "{name} is listed as left:\n{err}");
    }
    assert!(err.contains("run `sandpen gc` once the engine answers"), "{err}");

    engine.frozen.store(false, Ordering::Relaxed);
    let gc = gc_until_finished(repo.path());
    let left = containers(&format!("label=sandpen.run={run_id}"));
    assert!(left.is_empty(), "after gc: {left:?}\n{}", stderr(&gc));
    let networks = stdout(&docker(&[
        "network",
        "ls",
        "-q",
        "--filter",
        &format!("name=sandpen-{run_id}"),
    ]));
    assert_eq!(networks.trim(), "", "a run makes no network");
}
