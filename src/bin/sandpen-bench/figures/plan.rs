//! Figure 8: Planning: 10,000 tasks in one task file (inline prompts, a chain and a fan of
//! dependencies) through `sandpen::plan::load`, in-process; 1,000 tasks ten times over shows
//! whether it grows linearly.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sandpen::plan::{self, Defaults, Flags, PromptPolicy};

use crate::ctx::{Ctx, Measured};
use crate::row::Row;
use crate::stats::Sample;
use crate::target::{Bound, Target};

pub const FIGURE: &str = "8. planning 10,000 tasks (s)";

pub fn measure(ctx: &Ctx, _notes: &mut Vec<String>) -> Measured<Vec<Row>> {
    let rounds = if ctx.quick { 2 } else { 5 };
    let big = task_file(ctx.work.path(), 10_000);
    let small = task_file(ctx.work.path(), 1_000);
    let mut times = Vec::new();
    for _ in 0..rounds {
        times.push(load(&big, 10_000)?);
    }
    let mut small_times = Vec::new();
    for _ in 0..rounds {
        small_times.push(load(&small, 1_000)? * 10.0);
    }
    let (s, small) = (Sample::new(times), Sample::new(small_times));
    let ratio = s.median() / small.median();
    Ok(vec![Row::new(
        FIGURE,
        s.show(3),
        format!("10 × 1,000 tasks: {}", small.show(3)),
        Some(ratio),
        Target::of(Bound::AtMost(0.5, "s"), s.median()),
    )])
}

/// Seconds to plan `path`, checked to hold `n` tasks.
fn load(path: &Path, n: usize) -> Measured<f64> {
    let start = Instant::now();
    let plan = plan::load(
        &[path.to_path_buf()],
        &Flags::default(),
        &Defaults::default(),
        &PromptPolicy::default(),
    )
    .map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    if plan.tasks.len() != n {
        return Err(format!("planned {} tasks, not {n}", plan.tasks.len()));
    }
    Ok(secs)
}

fn task_file(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join(format!("plan-{n}.toml"));
    let mut text = String::with_capacity(n * 80);
    for i in 0..n {
        text.push_str(&format!(
            "[[task]]\nid = \"t{i:05}\"\nprompt_text = \"task {i}\"\n"
        ));
        // Every tenth task depends on the one before it; the rest on the first: a chain and a fan.
        match i {
            0 => {}
            i if i % 10 == 0 => text.push_str(&format!("depends_on = [\"t{:05}\"]\n", i - 1)),
            _ => text.push_str("depends_on = [\"t00000\"]\n"),
        }
    }
    std::fs::write(&path, text).unwrap();
    path
}
