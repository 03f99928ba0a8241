//! The table and the page: what this run measured, and, apart and labelled, what a past
//! investigation found.

use std::process::Command;

use crate::ctx::{Ctx, run_ok};
use crate::row::Row;

pub fn table(rows: &[Row]) -> String {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::ASCII_MARKDOWN);
    t.set_header(["figure", "sandpen", "comparison", "ratio", "target", "met"]);
    for r in rows {
        t.add_row([
            r.figure.clone(),
            r.sandpen.clone(),
            r.other.clone(),
            r.ratio.map(|x| format!("{x:.2}x")).unwrap_or_default(),
            r.target.render(),
            match r.met() {
                Some(true) => "yes".into(),
                Some(false) => "NO".into(),
                None => "-".into(),
            },
        ]);
    }
    t.to_string()
}

pub fn markdown(ctx: &Ctx, table: &str, notes: &[String]) -> String {
    let doctor: serde_json::Value = run_ok(Command::new(&ctx.sandpen).args(["doctor", "--json"]))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let e = &doctor["engine"];
    let mem_gib = e["mem_total"].as_f64().unwrap_or(0.0) / (1u64 << 30) as f64;
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let mut s = String::from("# Benchmarks\n\n");
    s.push_str(
        "Written by `sandpen-bench` (`just bench`). Every figure in the table was measured by this \
         run, on this machine; each comparison in the same run, timed the same way (the wall time \
         of the whole process on both sides). A figure that could not be measured says why.\n",
    );
    if ctx.quick {
        s.push_str(
            "\n**Quick mode**: a few small rounds to prove the harness works; the figures are not judged.\n",
        );
    }
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_string();
    s.push_str(&format!(
        "\n- date: {date}\n- machine: {} CPUs, {mem_gib:.1} GiB memory, {} {}\n- engine: Docker Engine {} (API {}), \
         cgroup v{} ({} driver), storage {}\n- sandpen: {}\n- figures: median (min–max, n = runs)\n\n",
        e["ncpu"],
        text(&e["operating_system"]),
        text(&e["kernel"]),
        text(&e["version"]),
        text(&e["api_version"]),
        text(&e["cgroup_version"]),
        text(&e["cgroup_driver"]),
        text(&e["storage_driver"]),
        env!("CARGO_PKG_VERSION"),
    ));
    s.push_str(table);
    s.push_str("\n\n## Measured by this run, beside the table\n\n");
    for n in notes {
        s.push_str(&format!("- {n}\n"));
    }
    s.push_str(NOTES);
    s
}

/// What each figure measures, and a dated past investigation of what bounds them (kept with
/// the harness so that the page and the code agree; its figures are labelled as not this run's).
const NOTES: &str = include_str!("notes.md");
