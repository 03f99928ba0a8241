//! Figure 5: sandpen's own footprint while many tasks sleep: peak RSS and CPU from GNU time, beside
//! the Python SDK script doing the same.

use std::process::Command;

use crate::ctx::{Ctx, Measured, argv};
use crate::row::Row;
use crate::target::{Bound, Target};

pub const FIGURE: &str = "5. footprint, concurrent sleeping tasks";

pub fn measure(ctx: &Ctx, notes: &mut Vec<String>) -> Measured<Vec<Row>> {
    let (n, secs) = if ctx.quick { (6, 3) } else { (32, 30) };
    let tasks = ctx.task_file(n, &format!("sleep {secs}"), "64m", 0.1);
    let mut time = Command::new("/usr/bin/time");
    time.args(["-f", "TIME %M %U %S %e"]);
    let (_, _, stderr) = ctx.sandpen_run_in(time, &tasks, n, &[])?;
    let (rss_kib, cpu) = parse_time(&stderr).ok_or("no line from GNU time (apt-get install time)")?;
    let mut other = "Python SDK: not measured (pip install docker)".to_string();
    let mut ratio = None;
    if let Some(py) = &ctx.python {
        let mut cmd = Command::new("/usr/bin/time");
        cmd.args(["-f", "TIME %M %U %S %e"])
            .args(argv(&ctx.python_sdk(py, n, n, &format!("sleep {secs}"))));
        let out = cmd.output().map_err(|e| e.to_string())?;
        match parse_time(&String::from_utf8_lossy(&out.stderr)) {
            Some((py_rss, py_cpu)) => {
                other = format!(
                    "Python SDK, {n} threads: {:.1} MiB, {py_cpu:.2}%",
                    py_rss / 1024.0
                );
                ratio = Some(rss_kib / py_rss);
                notes.push("Footprint ratio is sandpen's peak RSS over the Python SDK script's.".into());
            }
            None => other = "Python SDK: not measured (its script failed)".into(),
        }
    }
    let mib = rss_kib / 1024.0;
    Ok(vec![Row::new(
        FIGURE,
        format!("peak RSS {mib:.1} MiB, CPU {cpu:.2}% of one core ({n} × sleep {secs})"),
        other,
        ratio,
        Target::of(Bound::AtMost(30.0, "MiB"), mib).and(Bound::AtMost(5.0, "%"), cpu),
    )])
}

/// "TIME maxrss_kib user sys elapsed" -> (maxrss KiB, CPU % of one core).
pub fn parse_time(stderr: &str) -> Option<(f64, f64)> {
    let line = stderr.lines().rev().find(|l| l.starts_with("TIME "))?;
    let v: Vec<f64> = line[5..]
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let [rss, user, sys, elapsed] = v[..] else {
        return None;
    };
    Some((rss, 100.0 * (user + sys) / elapsed))
}
