//! `sandpen merge [RUN] [TASK...]`: takes a run's results into the current branch, one task at a
//! time in the run's order: the succeeded ones, or those named. It refuses a working tree with
//! uncommitted changes, and stops before the first result that conflicts, leaving the
//! repository as the results before it left it (`workspace::take_in`).

use crate::cli::MergeArgs;
use crate::exit::{self, UsageError};
use crate::runner::TaskStatus;
use crate::runs::{self, results};
use crate::workspace::{Repo, TakeIn, Taken};

use super::diff::{Resolved, here, resolve, shown_paths, status};

/// Where the WorkflowManager keeps its bookkeeping, merged unless the user leaves it out.
const STATE_DIR: &str = ".github/workflow-states/";

pub async fn run(args: MergeArgs) -> anyhow::Result<i32> {
    check_excludes(&args.exclude)?;
    let repo = Repo::discover(args.repo.as_deref()).await?;
    let (layout, named) = results::target(&repo.runs, &args.args)?;
    let run = runs::run_id(&layout);
    let report = runs::read_report(&layout);
    let picks = results::picks(&layout, report.as_ref(), &named);
    let mut todo = Vec::new();
    let mut refused = Vec::new();
    for pick in &picks {
        match resolve(&repo, pick).await {
            Ok(r) if !named.is_empty() || r.status == Some(TaskStatus::Succeeded) => todo.push(r),
            Ok(r) => note(&format!(
                "{}{}: not taken (name it to take it: `sandpen merge {run} {}`)",
                r.task,
                status(r.status),
                r.task
            )),
            Err(why) if named.is_empty() => note(&format!(
                "{}{}: no result ({why})",
                pick.task,
                status(pick.status)
            )),
            Err(why) => refused.push(format!("{}: {why}", pick.task)),
        }
    }
    if !refused.is_empty() {
        return Err(UsageError(format!(
            "no result to merge for {}\nfix: name only tasks with a result branch (`sandpen diff {run}` lists them)",
            refused.join("; ")
        ))
        .into());
    }
    if todo.is_empty() {
        note(&format!("run {run} has no result to merge"));
        return Ok(exit::SUCCESS);
    }
    refuse_uncommitted(&repo).await?;
    let here = here(&repo).await;
    warn_state_files(&repo, &todo, &args.exclude).await;
    for (i, r) in todo.iter().enumerate() {
        let message = message(r, &run, args.squash);
        let take = TakeIn {
            result: &r.tip,
            squash: args.squash,
            exclude: &args.exclude,
            message: &message,
        };
        let taken = repo.take_in(&take).await.map_err(|e| {
            anyhow::anyhow!(
                "taking {} ({}) in failed: {e}; nothing of it was merged\nfix: do what git asks \
                 (move untracked files it names out of the way, say), then run `sandpen merge {run}` \
                 again: the results already in are skipped",
                r.task,
                r.branch
            )
        })?;
        match taken {
            Taken::Merged(c) => println!(
                "merged {} ({}) into {here} as {}",
                r.task,
                r.branch,
                &c[..c.len().min(10)]
            ),
            Taken::AlreadyIn => println!("{}: already in {here}", r.task),
            Taken::NothingLeft => println!(
                "{}: nothing left to merge once {} are left out",
                r.task,
                args.exclude.join(", ")
            ),
            Taken::Conflict(paths) => return Err(conflict(r, &here, &paths, &todo[i + 1..], &run)),
        }
    }
    Ok(exit::SUCCESS)
}

/// `--exclude` takes paths inside the repository, from its top.
fn check_excludes(exclude: &[String]) -> Result<(), UsageError> {
    match exclude
        .iter()
        .find(|p| p.is_empty() || p.starts_with('/') || p.split('/').any(|c| c == ".."))
    {
        Some(bad) => Err(UsageError(format!(
            "--exclude {bad:?} is not a path inside the repository\nfix: give a path from the \
             repository's top, e.g. `--exclude .github/workflow-states`"
        ))),
        None => Ok(()),
    }
}

/// Refuses a working tree or index with changes not committed: a merge would mix with them.
async fn refuse_uncommitted(repo: &Repo) -> anyhow::Result<()> {
    let dirty = repo.uncommitted().await?;
    if dirty.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = dirty.iter().take(10).map(String::as_str).collect();
    let more = match dirty.len() > shown.len() {
        true => format!(" and {} more", dirty.len() - shown.len()),
        false => String::new(),
    };
    Err(UsageError(format!(
        "{} has uncommitted changes ({}{more}); nothing was merged\nfix: commit or stash them \
         (`git stash`), then run `sandpen merge` again",
        repo.root.display(),
        shown.join(", ")
    ))
    .into())
}

/// The error for a result that conflicts: the task, the paths, and what was not attempted.
fn conflict(r: &Resolved, here: &str, paths: &[String], rest: &[Resolved], run: &str) -> anyhow::Error {
    let mut text = format!(
        "{} ({}) conflicts with {here} in {}; nothing of it was merged, the repository is as it \
         was before it",
        r.task,
        r.branch,
        shown_paths(paths)
    );
    if !rest.is_empty() {
        let names: Vec<&str> = rest.iter().map(|r| r.task.as_str()).collect();
        text.push_str(&format!("; not attempted: {}", names.join(", ")));
    }
    text.push_str(&format!(
        "\nfix: merge it by hand and resolve the conflict (`git merge {}`), or take the others \
         without it (`sandpen merge {run} TASK...`); `sandpen diff {run}` shows every conflict",
        r.branch
    ));
    anyhow::anyhow!(text)
}

/// The commit message: which task and run the result came from.
fn message(r: &Resolved, run: &str, squash: bool) -> String {
    match squash {
        true => format!(
            "{}: the result of sandpen task {} (run {run}, squashed)",
            r.task, r.task
        ),
        false => format!("Merge {} (sandpen task {}, run {run})", r.branch, r.task),
    }
}

/// Says, before merging, that the WorkflowManager's state files go in with the results unless
/// they are left out: they are the task's, not the user's.
async fn warn_state_files(repo: &Repo, todo: &[Resolved], exclude: &[String]) {
    let covered = |p: &str| exclude.iter().any(|e| p.starts_with(e.trim_end_matches('/')));
    for r in todo {
        let Ok((_, files)) = repo.changes(&r.base, &r.tip).await else {
            continue;
        };
        if files
            .iter()
            .any(|f| f.path.starts_with(STATE_DIR) && !covered(&f.path))
        {
            note(&format!(
                "note: the results include the WorkflowManager's state files ({STATE_DIR}); \
                 `--exclude {}` leaves them out",
                STATE_DIR.trim_end_matches('/')
            ));
            return;
        }
    }
}

fn note(line: &str) {
    eprintln!("{line}");
}
