//! Figure 11: a run of 500 trivial tasks at -j 16, beside `xargs -P 16 docker run --rm` of as
//! many, each timed once as a whole process; sandpen's peak RSS from GNU time (its memory must
//! stay flat however many tasks a run has).

use std::process::Command;

use super::footprint::parse_time;
use super::throughput::xargs_docker_run;
use crate::ctx::{Ctx, Measured, timed};
use crate::row::Row;
use crate::target::{Bound, Target};

pub const FIGURE: &str = "11. 500 trivial tasks, -j 16 (tasks/s; peak RSS)";

pub fn measure(ctx: &Ctx, _notes: &mut Vec<String>) -> Measured<Vec<Row>> {
    let (n, jobs) = if ctx.quick { (16, 8) } else { (500, 16) };
    let tasks = ctx.task_file(n, "true", "256m", 0.5);
    let mut time = Command::new("/usr/bin/time");
    time.args(["-f", "TIME %M %U %S %e"]);
    let (wall, report, stderr) = ctx.sandpen_run_in(time, &tasks, jobs, &[])?;
    let (rss_kib, _) = parse_time(&stderr).ok_or("no line from GNU time (apt-get install time)")?;
    let done = report["tasks"].as_array().map_or(0, Vec::len);
    if done != n {
        return Err(format!("the report holds {done} of {n} tasks"));
    }
    let ours = n as f64 / wall;
    let theirs = n as f64 / timed(&mut xargs_docker_run(ctx, n, jobs))?;
    let ratio = ours / theirs;
    let mib = rss_kib / 1024.0;
    Ok(vec![Row::new(
        FIGURE,
        format!("{ours:.2} tasks/s, peak RSS {mib:.1} MiB ({n} tasks, -j {jobs})"),
        format!("xargs -P {jobs} docker run --rm: {theirs:.2} tasks/s"),
        Some(ratio),
        Target::of(Bound::AtLeast(0.95, "x"), ratio).and(Bound::AtMost(40.0, "MiB"), mib),
    )])
}
