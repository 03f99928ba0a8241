//! Figure 2: Trivial tasks per second at -j N, against `xargs -P N docker run --rm` and the Python
//! Docker SDK with N threads (the stack of the orchestrator sandpen replaces).

use std::process::Command;

use crate::cpu::Cpu;
use crate::ctx::{Ctx, Measured, argv, shell_quote, timed};
use crate::row::Row;
use crate::stats::Sample;
use crate::target::{Bound, Target};

pub const FIGURE: &str = "2a. throughput, trivial tasks (tasks/s)";
pub const FIGURE_SDK: &str = "2b. throughput vs the Python SDK (tasks/s)";
pub const FIGURE_BARE: &str = "2c. trivial tasks against a bare `docker run true` (tasks/s)";

/// `seq n | xargs -P jobs docker run --rm ...` of the trivial task: what a user would script.
pub fn xargs_docker_run(ctx: &Ctx, n: usize, jobs: usize) -> Command {
    let line: Vec<String> = argv(&ctx.docker_run("true", &["--rm"]))[1..]
        .iter()
        .map(|a| shell_quote(a))
        .collect();
    let script = format!(
        "seq {n} | xargs -P {jobs} -I{{}} docker {} >/dev/null",
        line.join(" ")
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]);
    cmd
}

/// `seq n | xargs -P jobs docker run --rm` of `true` alone, with the repository mounted: the
/// container and nothing in it, what sandpen's whole per-task cost is measured against.
fn xargs_bare_true(ctx: &Ctx, n: usize, jobs: usize) -> Command {
    let script = format!(
        "seq {n} | xargs -P {jobs} -I{{}} docker run --rm --memory 1g --network bridge -v {}:/workspace {} true",
        shell_quote(&ctx.repo.display().to_string()),
        shell_quote(&ctx.probe)
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]);
    cmd
}

/// Rounds of sandpen's run of `tasks` and of `theirs`, one after the other: each side's tasks/s,
/// and the CPU per task of each side's first round (where the time goes). `also` runs after
/// each round (a third side).
struct Sides {
    ours: Sample,
    theirs: Sample,
    ours_cpu: String,
    theirs_cpu: String,
}

fn side_by_side(
    ctx: &Ctx,
    (n, jobs, rounds): (usize, usize, usize),
    tasks: &std::path::Path,
    mut theirs: impl FnMut() -> Command,
    theirs_whose: &str,
    mut also: impl FnMut() -> Measured<()>,
) -> Measured<Sides> {
    let (mut ours, mut their) = (vec![], vec![]);
    let (mut ours_cpu, mut theirs_cpu) = (None, None);
    for _ in 0..rounds {
        let before = Cpu::now();
        let (wall, _, _) = ctx.sandpen_run(tasks, jobs, &[])?;
        ours_cpu.get_or_insert(before.since());
        ours.push(n as f64 / wall);
        let before = Cpu::now();
        their.push(n as f64 / timed(&mut theirs())?);
        theirs_cpu.get_or_insert(before.since());
        also()?;
    }
    Ok(Sides {
        ours: Sample::new(ours),
        theirs: Sample::new(their),
        ours_cpu: ours_cpu.unwrap_or_default().per_task(n, "sandpen and its git"),
        theirs_cpu: theirs_cpu.unwrap_or_default().per_task(n, theirs_whose),
    })
}

/// Figure 2c: 48 tasks of `true` at -j 16 (1 GiB each), sandpen's whole process against xargs
/// of bare containers: everything a task costs beyond its container (the probe CLI, the
/// collection, the checkout, the engine calls), on each side's CPU too.
pub fn measure_bare(ctx: &Ctx, _notes: &mut Vec<String>) -> Measured<Vec<Row>> {
    let (n, jobs, rounds) = if ctx.quick { (16, 8, 1) } else { (48, 16, 3) };
    let tasks = ctx.task_file(n, "true", "1g", 2.0);
    let bare = || xargs_bare_true(ctx, n, jobs);
    let s = side_by_side(ctx, (n, jobs, rounds), &tasks, bare, "the docker CLIs", || Ok(()))?;
    let ratio = s.ours.median() / s.theirs.median();
    Ok(vec![Row::new(
        FIGURE_BARE,
        format!(
            "{} ({n} tasks of `true`, -j {jobs}); {}",
            s.ours.show(2),
            s.ours_cpu
        ),
        format!(
            "xargs -P {jobs} docker run --rm IMAGE true: {}; {}",
            s.theirs.show(2),
            s.theirs_cpu
        ),
        Some(ratio),
        Target::of(Bound::AtLeast(0.85, "x"), ratio),
    )])
}

pub fn measure(ctx: &Ctx, _notes: &mut Vec<String>) -> Measured<Vec<Row>> {
    let (n, jobs, rounds) = if ctx.quick { (16, 8, 1) } else { (64, 16, 3) };
    let tasks = ctx.task_file(n, "true", "256m", 0.5);
    let mut python = vec![];
    let sdk = || -> Measured<()> {
        if let Some(py) = &ctx.python {
            python.push(n as f64 / timed(&mut ctx.python_sdk(py, n, jobs, "true"))?);
        }
        Ok(())
    };
    let xargs = || xargs_docker_run(ctx, n, jobs);
    let s = side_by_side(ctx, (n, jobs, rounds), &tasks, xargs, "the docker CLIs", sdk)?;
    let ours = s.ours;
    let ratio = ours.median() / s.theirs.median();
    let mut rows = vec![Row::new(
        FIGURE,
        format!("{} ({n} tasks, -j {jobs}); {}", ours.show(2), s.ours_cpu),
        format!(
            "xargs -P {jobs} docker run --rm: {}; {}",
            s.theirs.show(2),
            s.theirs_cpu
        ),
        Some(ratio),
        Target::of(Bound::AtLeast(1.2, "x"), ratio),
    )];
    if python.is_empty() {
        rows.push(Row::not_measured(
            FIGURE_SDK,
            "the Python Docker SDK is not installed (pip install docker)",
        ));
    } else {
        let python = Sample::new(python);
        let ratio = ours.median() / python.median();
        rows.push(Row::new(
            FIGURE_SDK,
            ours.show(2),
            format!("docker SDK, {jobs} threads: {}", python.show(2)),
            Some(ratio),
            Target::of(Bound::AtLeast(1.5, "x"), ratio),
        ));
    }
    Ok(rows)
}
