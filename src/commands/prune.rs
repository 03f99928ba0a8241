//! `sandpen prune`: removes the checkouts of finished runs whose result is safely in the
//! repository (`prune::checkouts` judges them), with their out directories, names the others
//! and why they stay, and with `--logs` removes a run's directory once none of its checkouts
//! is left. A live run, or one the engine still has containers of, is never touched.

use std::path::Path;
use std::time::{Duration, SystemTime};

use indicatif::HumanBytes;

use crate::cli::PruneArgs;
use crate::engine::ContainerEngine;
use crate::engine::spec::LABEL_OWNER;
use crate::exit;
use crate::gc::{self, RunOnEngine};
use crate::owner::lease_held;
use crate::prune::{self, Refs, Verdict};
use crate::runs;
use crate::workspace::{Repo, RunDir};

#[derive(Default)]
struct Tally {
    removed: usize,
    kept: usize,
    logs: usize,
    freed: u64,
    failed: bool,
}

pub async fn run(host: Option<&str>, args: PruneArgs) -> anyhow::Result<i32> {
    let repo = Repo::discover(args.repo.as_deref()).await?;
    // An unknown run is said before anything is judged or removed.
    let mut layouts: Vec<RunDir> = Vec::new();
    for id in &args.runs {
        let layout = runs::find_run(&repo.runs, Some(id))?;
        if !layouts.contains(&layout) {
            layouts.push(layout);
        }
    }
    if args.runs.is_empty() {
        layouts = runs::runs(&repo.runs);
    }
    let engine = super::connect(host).await?;
    let on_engine = gc::by_run(engine.list(LABEL_OWNER, None).await?);
    let mut refs = Refs::parse(&repo.ref_listing().await?);
    let now = SystemTime::now();
    let mut tally = Tally::default();
    for layout in &layouts {
        let run = runs::run_id(layout);
        if let Some(why) = run_kept(layout, &on_engine, args.older_than, now) {
            println!("kept run {run}: {why}");
            continue;
        }
        // A result merged into a branch, its own branch then deleted or moved, is safe.
        for commit in prune::displaced(layout, &refs) {
            if repo.on_a_branch(&commit).await {
                refs.mark_on_a_branch(&commit);
            }
        }
        prune_run(&repo.root, layout, &refs, &args, &mut tally);
    }
    let (verb, freed) = match args.dry_run {
        true => ("would remove", "would free"),
        false => ("removed", "freed"),
    };
    let logs = match args.logs {
        true => format!(" and the logs of {} run(s)", tally.logs),
        false => String::new(),
    };
    eprintln!(
        "prune: {verb} {} checkout(s){logs} ({freed} {}), kept {}",
        tally.removed,
        HumanBytes(tally.freed),
        tally.kept
    );
    if args.envs {
        let (lines, all) = crate::warm::stored::prune(&engine, args.older_than, args.dry_run).await?;
        for line in lines {
            println!("{line}");
        }
        tally.failed |= !all;
    }
    Ok(if tally.failed {
        exit::FAILURE
    } else {
        exit::SUCCESS
    })
}

/// Why the whole run stays, if it does: its sandpen lives, the engine has its containers, or
/// it is younger than `--older-than`.
fn run_kept(
    layout: &RunDir,
    on_engine: &[RunOnEngine],
    older_than: Option<Duration>,
    now: SystemTime,
) -> Option<String> {
    match lease_held(&layout.lease()) {
        Some(true) => return Some("its sandpen process is running (a live run is never pruned)".into()),
        None => return Some("no lease it can open tells whether its sandpen lives".into()),
        Some(false) => {}
    }
    let id = runs::run_id(layout);
    let containers: usize = on_engine
        .iter()
        .filter(|r| r.run_id == id || r.run_dir.as_deref() == Some(layout.root.as_path()))
        .map(|r| r.containers.len())
        .sum();
    if containers > 0 {
        return Some(format!(
            "the engine still has {containers} container(s) of it (`sandpen gc` finishes it)"
        ));
    }
    let limit = older_than?;
    let Some(age) = prune::run_time(layout).map(|t| now.duration_since(t).unwrap_or_default()) else {
        return Some("its age is unknown".into());
    };
    (age < limit).then(|| {
        format!(
            "it ended {} ago, not longer than --older-than {}",
            humantime::format_duration(Duration::from_secs(age.as_secs())),
            humantime::format_duration(limit)
        )
    })
}

/// Removes (or, dry, names) the run's checkouts that can go, then its logs if asked and none
/// is left.
fn prune_run(root: &Path, layout: &RunDir, refs: &Refs, args: &PruneArgs, tally: &mut Tally) {
    let shown = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
    let (mut left, mut checkouts_bytes) = (0, 0);
    for c in prune::checkouts(layout, refs) {
        let path = shown(&c.path);
        match c.verdict {
            Verdict::Keep(why) => {
                println!("kept {path}: {why}");
                tally.kept += 1;
                left += 1;
            }
            Verdict::Remove => match remove_task(layout, &c, args.dry_run) {
                Ok(bytes) => {
                    let verb = if args.dry_run { "would remove" } else { "removed" };
                    println!(
                        "{verb} {path} ({}): its result is in the repository",
                        HumanBytes(bytes)
                    );
                    tally.removed += 1;
                    tally.freed += bytes;
                    checkouts_bytes += bytes;
                }
                Err(e) => {
                    eprintln!("error: removing {path}: {e}");
                    tally.failed = true;
                    left += 1;
                }
            },
        }
    }
    if !args.logs {
        return;
    }
    let run = runs::run_id(layout);
    if left > 0 {
        println!("kept the logs and report of run {run}: {left} of its checkouts remain");
        return;
    }
    match remove(&layout.root, args.dry_run) {
        Ok(bytes) => {
            // Dry, the checkouts are still there and already counted.
            let bytes = if args.dry_run {
                bytes.saturating_sub(checkouts_bytes)
            } else {
                bytes
            };
            let verb = if args.dry_run { "would remove" } else { "removed" };
            println!("{verb} the logs and report of run {run} ({})", HumanBytes(bytes));
            tally.logs += 1;
            tally.freed += bytes;
        }
        Err(e) => {
            eprintln!("error: removing {}: {e}", shown(&layout.root));
            tally.failed = true;
        }
    }
}

/// The task's checkout and its out directory (sandpen's channel with the task's container,
/// never the user's work, and of no use once the result came back): the disk they take,
/// removed unless dry.
fn remove_task(layout: &RunDir, c: &prune::Checkout, dry_run: bool) -> std::io::Result<u64> {
    let bytes = remove(&c.path, dry_run)?;
    let out = layout.collect_out(&c.task);
    match std::fs::symlink_metadata(&out) {
        Ok(_) => Ok(bytes + remove(&out, dry_run)?),
        Err(_) => Ok(bytes),
    }
}

/// The disk the tree takes, removed unless dry.
fn remove(path: &Path, dry_run: bool) -> std::io::Result<u64> {
    match dry_run {
        true => Ok(crate::workspace::disk_usage(path)),
        false => crate::workspace::remove_tree(path),
    }
}
