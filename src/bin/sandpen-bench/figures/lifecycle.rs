//! Figure 1: One trivial task: the whole `sandpen run` process against what a user would type
//! instead, `git clone --local` plus `docker run --rm`, both timed as whole processes.

use std::process::Command;

use crate::ctx::{Ctx, Measured, timed};
use crate::row::Row;
use crate::stats::Sample;
use crate::target::{Bound, Target};

pub const FIGURE: &str = "1. one trivial task, whole process (s)";

pub fn measure(ctx: &Ctx, notes: &mut Vec<String>) -> Measured<Vec<Row>> {
    let n = if ctx.quick { 3 } else { 20 };
    let tasks = ctx.task_file(1, "true", "256m", 0.5);
    let (mut docker, mut whole, mut clone) = (vec![], vec![], vec![]);
    let (mut checkout, mut container, mut collect) = (vec![], vec![], vec![]);
    for i in 0..n {
        docker.push(timed(&mut ctx.docker_run("true", &["--rm"]))?);
        let dest = ctx.work.path().join(format!("clone-{i}"));
        let mut git = Command::new("git");
        git.args(["clone", "--local", "-q"]).arg(&ctx.repo).arg(&dest);
        clone.push(timed(&mut git)?);
        let (wall, report, _) = ctx.sandpen_run(&tasks, 1, &[])?;
        let t = &report["tasks"][0]["timings"];
        checkout.push(t["checkout_s"].as_f64().unwrap_or(f64::NAN));
        container.push(t["container_s"].as_f64().unwrap_or(f64::NAN));
        collect.push(t["collect_s"].as_f64().unwrap_or(f64::NAN));
        whole.push(wall);
    }
    let (docker, whole, clone) = (Sample::new(docker), Sample::new(whole), Sample::new(clone));
    let baseline = clone.median() + docker.median();
    notes.push(format!(
        "Where sandpen's time goes in figure 1 (medians of its own report, a breakdown, not a \
         comparison): checkout {:.3} s, container {:.3} s, collection (sandbox and result \
         branch) {:.3} s; the process as a whole {:.3} s.",
        Sample::new(checkout).median(),
        Sample::new(container).median(),
        Sample::new(collect).median(),
        whole.median()
    ));
    let ratio = whole.median() / baseline;
    Ok(vec![Row::new(
        FIGURE,
        whole.show(3),
        format!(
            "git clone --local {:.3} + docker run --rm {}",
            clone.median(),
            docker.show(3)
        ),
        Some(ratio),
        Target::of(Bound::AtMost(1.5, "x"), ratio),
    )])
}
