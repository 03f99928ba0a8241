//! Admission counts each task's memory reservation (`memory_request`, 512 MiB by default),
//! not its hard limit (`memory`, 4 GiB by default): 16 tasks at `-j 16` run at once on an
//! engine that holds 16 reservations but not 16 limits. A request above the limit is refused
//! before anything is made, and a run that memory holds back says so. Real engine, probe image.

mod common;

use common::*;

fn engine_memory() -> u64 {
    let out = docker(&["info", "--format", "{{.MemTotal}}"]);
    assert!(out.status.success(), "docker info: {}", stderr(&out));
    stdout(&out).trim().parse().expect("MemTotal is a number")
}

#[test]
fn sixteen_tasks_at_j16_with_the_default_limits_run_at_once() {
    let total = engine_memory();
    assert!(
        (16 * (512 << 20)..16 * (4 << 30)).contains(&total),
        "this test needs an engine between 8 and 64 GiB, not {total} bytes"
    );
    let toml: String = (1..=16)
        .map(|i| format!("[[task]]\nid = \"t{i}\"\nprompt_text = \"sleep 6\"\n\n"))
        .collect();
    let repo = make_repo();
    let run = run_tasks(repo.path(), &toml, &["-j", "16", "--json"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();
    let slots = intervals(&report, "began_at", "ended_at");
    let containers = intervals(&report, "started_at", "finished_at");
    eprintln!("slots {slots:?}\ncontainers {containers:?}");
    assert_eq!(max_overlap(&slots), 16, "all 16 admitted at once: {slots:?}");
    assert_eq!(
        max_overlap(&containers),
        16,
        "16 containers ran at once: {containers:?}"
    );
    for t in report["tasks"].as_array().unwrap() {
        assert_eq!(t["memory_request_bytes"], 512 << 20, "{t:#}");
        assert_eq!(
            t["limits"]["memory_bytes"],
            4u64 << 30,
            "the limit is unchanged: {t:#}"
        );
    }
    assert!(report.get("memory_held").is_none(), "{report:#}");
    assert!(
        !stdout(&run.out).contains("waiting_for_memory") && !stdout(&run.out).contains("memory_hold"),
        "{}",
        run.dump()
    );
    let manifest = runs_dir(repo.path())
        .join(field(&report, "run_id"))
        .join("_sandpen/run.json");
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(
        manifest["tasks"][0]["memory_request_bytes"],
        512 << 20,
        "{manifest:#}"
    );
}

#[test]
fn a_request_above_its_limit_is_refused_before_anything_is_made() {
    let repo = make_repo();
    let toml = "[[task]]\nid = \"big\"\nmemory = \"256m\"\nmemory_request = \"1g\"\nprompt_text = \"true\"\n";
    let run = run_tasks(repo.path(), toml, &[]);
    assert_eq!(run.code, 2, "{}", run.dump());
    let e = stderr(&run.out);
    assert!(
        e.contains("task `big` reserves 1.00 GiB of memory (`memory_request`) but may use only 256.00 MiB")
            && e.contains("fix: lower `memory_request` or --memory-request"),
        "{e}"
    );
    let runs = runs_dir(repo.path());
    let made = std::fs::read_dir(&runs).map(|d| d.count()).unwrap_or(0);
    assert_eq!(made, 0, "no run directory in {}", runs.display());

    // The flag, against the default limit (4 GiB): the same refusal, naming the flag's value.
    let toml = "[[task]]\nid = \"t\"\nprompt_text = \"true\"\n";
    let run = run_tasks(repo.path(), toml, &["--memory-request", "5g"]);
    assert_eq!(run.code, 2, "{}", run.dump());
    assert!(stderr(&run.out).contains("reserves 5.00 GiB"), "{}", run.dump());
}

#[test]
fn a_run_held_back_by_memory_says_so_at_its_start_and_in_its_summary() {
    let total = engine_memory();
    // Two reservations of two fifths fit, three do not.
    let mib = (total * 2 / 5) >> 20;
    let toml: String = (1..=3)
        .map(|i| {
            format!(
                "[[task]]\nid = \"m{i}\"\nmemory = \"{mib}m\"\nmemory_request = \"{mib}m\"\n\
                 prompt_text = \"sleep 2\"\n\n"
            )
        })
        .collect();
    let repo = make_repo();
    let run = run_tasks(repo.path(), &toml, &["-j", "3"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let all = format!("{}{}", stdout(&run.out), stderr(&run.out));
    let said = all.matches("memory holds back -j 3").count();
    assert_eq!(said, 2, "at the start and in the summary: {}", run.dump());
    assert!(
        all.contains("fits the memory reservations of 2 tasks at once"),
        "{all}"
    );
    assert!(
        all.contains("1 task waited for memory"),
        "the summary counts: {all}"
    );
    assert!(
        all.contains("--memory-request") && all.contains("pass -j 2"),
        "{all}"
    );
    let report = run.report();
    assert_eq!(report["memory_held"]["at_once"], 2, "{report:#}");
    assert_eq!(report["memory_held"]["waited"], 1, "{report:#}");
}
