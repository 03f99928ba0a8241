//! Figure 3: Speedup: the same tasks of `sleep` at -j N against -j 1, wall time of the whole process.

use crate::ctx::{Ctx, Measured};
use crate::row::Row;
use crate::target::{Bound, Target};

pub const FIGURE: &str = "3. speedup, tasks of sleep (wall -j 1 / wall -j N)";
pub const FIGURE_NONE: &str = "3b. the same with --network none";

pub fn measure(ctx: &Ctx, _notes: &mut Vec<String>) -> Measured<Vec<Row>> {
    let (n, secs) = if ctx.quick { (4, 2) } else { (16, 5) };
    let tasks = ctx.task_file(n, &format!("sleep {secs}"), "256m", 0.5);
    // The default network first; then without one, which shows what the bridge's set-up costs.
    let networks: &[&str] = if ctx.quick {
        &["bridge"]
    } else {
        &["bridge", "none"]
    };
    networks
        .iter()
        .map(|net| {
            let extra = ["--network", net];
            let (parallel, report, _) = ctx.sandpen_run(&tasks, n, &extra)?;
            let (serial, _, _) = ctx.sandpen_run(&tasks, 1, &extra)?;
            let ratio = serial / parallel;
            Ok(Row::new(
                if *net == "bridge" { FIGURE } else { FIGURE_NONE },
                format!(
                    "{ratio:.1}x: -j {n} {parallel:.1} s, -j 1 {serial:.1} s ({n} × sleep {secs}, \
                     --network {net}; the report's concurrency at -j {n}: {:.1})",
                    report["concurrency"].as_f64().unwrap_or(f64::NAN)
                ),
                format!("the same tasks at -j 1; at most {n}x"),
                Some(ratio),
                Target::of(Bound::AtLeast(12.0, "x"), ratio),
            ))
        })
        .collect()
}
