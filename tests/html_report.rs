//! `--html FILE` and `sandpen report RUN --html FILE`: the stats samples of each task, and
//! the page rendered by a real browser (headless Chromium, which `.ci/run` installs). Real
//! engine, probe image.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Headless Chromium. Its absence fails the test: a page no browser loaded proves nothing.
fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "these tests render the HTML report in headless Chromium, which is not installed: \
         `apt-get install -y chromium` (.ci/run does)"
    );
}

/// What the browser said while it loaded `page`, with `mode` (`--dump-dom`, or
/// `--screenshot=FILE --window-size=...`): (stdout, stderr). Fails on a browser that failed.
fn browse(page: &Path, mode: &[String]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out = output(
        Command::new("timeout")
            .arg("120")
            .arg(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
            ])
            .args(["--enable-logging=stderr", "--v=0"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(mode)
            .arg(format!("file://{}", page.display())),
    );
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "chromium failed: {:?}\n{e}", out.status);
    // The page has no script; any console line (an error, an Uncaught ...) is a defect.
    let console: Vec<&str> = e
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    (o, e)
}

/// The DOM as the browser built it must hold the charts of both tasks.
fn check_dom(page: &Path) {
    let (dom, _) = browse(page, &["--dump-dom".to_string()]);
    for id in ["quick", "slow"] {
        assert!(
            dom.contains(&format!(r#"class="bar run st-succeeded" data-task="{id}""#)),
            "no timeline bar for {id}: {dom}"
        );
        assert!(
            dom.contains(&format!(r#"<tr class="st-succeeded" data-task="{id}">"#)),
            "{dom}"
        );
    }
    for series in ["cpu", "mem"] {
        assert!(
            dom.contains(&format!(
                r#"<polyline class="{series}" data-task="slow" points=""#
            )),
            "no {series} line for slow: {dom}"
        );
    }
    assert!(!dom.contains("<script"), "{dom}");
}

#[test]
fn a_run_with_html_records_samples_and_its_page_renders_in_a_browser() {
    chromium(); // first: without a browser, nothing below would be proven
    let repo = make_repo();
    let out = tempfile::tempdir().unwrap();
    let html = out.path().join("run.html");
    let run = run_tasks(
        repo.path(),
        "[[task]]\nid = \"quick\"\nprompt_text = \"echo hi\"\n\n\
         [[task]]\nid = \"slow\"\nprompt_text = \"sleep 2; echo done\"\n\n\
         [[task]]\nid = \"blink\"\nprompt_text = \"sleep 0.6\"\n\n\
         [[task]]\nid = \"spin\"\nprompt_text = '''\nend=$(($(date +%s%N)+700000000))\n\
         while [ $(date +%s%N) -lt $end ]; do :; done\n'''\n",
        &["--html", html.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();

    // The 2 s task: samples over time in its stats log, and its figures in the report.
    let slow = task(&report, "slow");
    let log = field(slow, "stats_log");
    assert!(log.ends_with("slow.stats.jsonl"), "{slow:#}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(log)
        .unwrap_or_else(|e| panic!("{log}: {e}"))
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert!(lines.len() >= 2, "a 2 s task gets a sample a second: {lines:#?}");
    for l in &lines {
        assert!(l["t"].as_f64().unwrap() >= 0.0, "{l}");
        epoch_s(l["at"].as_str().unwrap());
        assert!(l["memory_bytes"].as_u64().unwrap() > 0, "{l}");
    }
    assert!(slow["peak_memory_bytes"].as_u64().unwrap_or(0) > 0, "{slow:#}");
    assert!(slow["mean_cpu_percent"].is_number(), "{slow:#}");
    assert!(slow["peak_cpu_percent"].is_number(), "{slow:#}");
    for key in ["queued_at", "began_at", "ended_at"] {
        epoch_s(field(slow, key));
    }
    // Tasks under a second: the engine's own stream samples on a shared tick a second and
    // often misses them; sandpen reads a local container's cgroup.
    for id in ["blink", "spin"] {
        let t = task(&report, id);
        assert!(t["peak_memory_bytes"].as_u64().unwrap_or(0) > 0, "{t:#}");
        assert!(t["mean_cpu_percent"].is_number(), "{t:#}");
        assert!(t["peak_cpu_percent"].is_number(), "{t:#}");
    }
    let spin = task(&report, "spin")["peak_cpu_percent"].as_f64().unwrap();
    assert!(spin > 30.0, "a busy loop shows as busy: {spin}%");

    // The page, as a browser renders it: a screenshot of some substance, and the DOM.
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(text.starts_with("<!DOCTYPE html>"), "{text}");
    let png = out.path().join("run.png");
    browse(
        &html,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1200,2000".into(),
        ],
    );
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot: {e}"));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let (w, h) = (
        u32::from_be_bytes(bytes[16..20].try_into().unwrap()),
        u32::from_be_bytes(bytes[20..24].try_into().unwrap()),
    );
    assert_eq!((w, h), (1200, 2000));
    // A blank or near-blank page of this size compresses to about 10 KB.
    assert!(
        bytes.len() > 40_000,
        "a near-empty screenshot: {} bytes",
        bytes.len()
    );
    check_dom(&html);

    // The same page after the fact, from the run directory.
    let run_id = report["run_id"].as_str().unwrap();
    let again = out.path().join("again.html");
    let o = output(
        sandpen()
            .args(["report", run_id, "--repo"])
            .arg(repo.path())
            .arg("--html")
            .arg(&again),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    check_dom(&again);

    // A run that is not there: exit 2, and the fix names the runs there are.
    let missing = out.path().join("missing.html");
    let o = output(
        sandpen()
            .args(["report", "no-such-run", "--repo"])
            .arg(repo.path())
            .arg("--html")
            .arg(&missing),
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no-such-run") && err.contains("fix:") && err.contains(run_id),
        "{err}"
    );
    assert!(!missing.exists());
}

#[test]
fn an_unwritable_html_path_is_refused_before_anything_starts() {
    let repo = make_repo();
    let run = run_tasks(
        repo.path(),
        "[[task]]\nid = \"t\"\nprompt_text = \"true\"\n",
        &["--html", "/nonexistent-dir/run.html"],
    );
    assert_eq!(run.code, 2, "{}", run.dump());
    assert!(
        stderr(&run.out).contains("--html /nonexistent-dir/run.html"),
        "{}",
        run.dump()
    );
    assert!(!runs_dir(repo.path()).exists(), "nothing made");
}
