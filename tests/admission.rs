//! Admission by memory on the real engine: the running tasks' memory reservations add up to no more
//! than the engine's memory (`MemTotal`), and a task that would not fit waits, said as an
//! event. The limits are large fractions of the real engine's memory, not a pretend-small
//! engine; they are only cgroup limits, so sleeping tasks under them use next to nothing.

mod common;

use common::*;

/// The engine's memory in bytes, as `docker info` reports it.
fn engine_memory() -> u64 {
    let out = docker(&["info", "--format", "{{.MemTotal}}"]);
    assert!(out.status.success(), "docker info: {}", stderr(&out));
    stdout(&out).trim().parse().expect("MemTotal is a number")
}

/// [began_at, ended_at] of every task (its slot: checkout to collection), in epoch seconds.
fn slots(report: &serde_json::Value) -> Vec<(String, f64, f64)> {
    intervals(report, "began_at", "ended_at")
}

#[test]
fn three_tasks_of_two_fifths_of_the_engine_run_two_at_a_time() {
    let total = engine_memory();
    // Two fit (4/5 of the engine), three do not (6/5), whatever the engine's size.
    let mib = (total * 2 / 5) >> 20;
    let limit = mib << 20;
    let toml: String = (1..=3)
        .map(|i| {
            format!("[[task]]\nid = \"m{i}\"\nmemory = \"{mib}m\"\nmemory_request = \"{mib}m\"\ntimeout = \"1m\"\nprompt_text = \"sleep 3\"\n\n")
        })
        .collect();
    let repo = make_repo();
    let run = run_tasks(repo.path(), &toml, &["-j", "3", "--json"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();
    let iv = slots(&report);
    eprintln!("engine {total} bytes, limit {limit} per task: {iv:?}");
    assert_eq!(
        max_overlap(&iv),
        2,
        "-j 3, but only two of three {mib} MiB limits fit in {total} bytes: {iv:?}"
    );

    // The task that waited said so on the event stream, with the figures.
    let events: Vec<serde_json::Value> = stdout(&run.out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let waits: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "waiting_for_memory")
        .collect();
    assert_eq!(waits.len(), 1, "one task waited, once: {waits:?}");
    let w = waits[0];
    assert_eq!(w["needs_bytes"], limit);
    assert_eq!(w["free_bytes"], total - 2 * limit);
    assert_eq!(w["total_bytes"], total);
    // It is the one that began last, after another had ended.
    let waited = w["task"].as_str().unwrap();
    let (_, began, _) = iv.iter().find(|(id, ..)| id == waited).unwrap();
    let first_end = iv.iter().map(|i| i.2).fold(f64::MAX, f64::min);
    assert!(*began >= first_end, "{waited} waited for memory: {iv:?}");
}
