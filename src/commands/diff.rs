//! `sandpen diff [RUN] [TASK...]`: what each result of a run changed against the commit its task
//! started from (commits, files, lines; `--patch` the diff), and which results conflict with
//! each other and with the current branch, found by merges in memory (nothing checked out).

use std::fmt::Write as _;
use std::io::Write as _;

use crate::cli::DiffArgs;
use crate::exit;
use crate::runner::TaskStatus;
use crate::runs::{self, results};
use crate::workspace::{Repo, printable};

/// The most commit subjects shown per result.
const SUBJECTS: usize = 20;

/// A task's result as it stands in the repository now.
pub(super) struct Resolved {
    pub task: String,
    pub status: Option<TaskStatus>,
    pub branch: String,
    /// The branch's commit now, and the commit the task started from.
    pub tip: String,
    pub base: String,
}

pub async fn run(args: DiffArgs) -> anyhow::Result<i32> {
    let repo = Repo::discover(args.repo.as_deref()).await?;
    let (layout, named) = results::target(&repo.runs, &args.args)?;
    let report = runs::read_report(&layout);
    let picks = results::picks(&layout, report.as_ref(), &named);
    let head = repo.commit_of("HEAD").await?;
    let here = here(&repo).await;
    let mut out = Out::default();
    out.write(&format!("run {} (into {here})\n", runs::run_id(&layout)));
    let mut shown = Vec::new();
    for pick in &picks {
        match resolve(&repo, pick).await {
            Ok(r) => {
                out.write(&describe(&repo, &r, &head, &here).await?);
                if args.patch {
                    out.write(&printable_patch(&repo.patch(&r.base, &r.tip).await?));
                }
                shown.push(r);
            }
            Err(why) => out.write(&format!(
                "\n{}{}: no result ({why})\n",
                pick.task,
                status(pick.status)
            )),
        }
    }
    out.write(&conflicts(&repo, &shown, &head, &here).await?);
    Ok(exit::SUCCESS)
}

/// The result branch and its base, or why there is none to show.
pub(super) async fn resolve(repo: &Repo, pick: &results::Pick) -> Result<Resolved, String> {
    let branch = pick.result.clone()?;
    let tip = repo
        .commit_of(&format!("refs/heads/{}", branch.name))
        .await
        .map_err(|_| format!("its branch {} is gone", branch.name))?;
    let base = match branch.base {
        Some(b) => b,
        None => repo
            .merge_base("HEAD", &tip)
            .await
            .map_err(|e| format!("no base to compare with: {e}"))?,
    };
    Ok(Resolved {
        task: pick.task.clone(),
        status: pick.status,
        branch: branch.name,
        tip,
        base,
    })
}

/// The current branch's name, for messages.
pub(super) async fn here(repo: &Repo) -> String {
    repo.current_branch()
        .await
        .unwrap_or_else(|| "HEAD (detached)".into())
}

pub(super) fn status(s: Option<TaskStatus>) -> String {
    s.map(|s| format!(" ({})", s.as_str())).unwrap_or_default()
}

/// One result: its commits and files against its base, and whether `head` holds it already.
async fn describe(repo: &Repo, r: &Resolved, head: &str, here: &str) -> anyhow::Result<String> {
    let commits = repo.commit_lines(&r.base, &r.tip).await?;
    let (stat, files) = repo.changes(&r.base, &r.tip).await?;
    let short = &r.base[..r.base.len().min(10)];
    let mut s = format!("\n{}{}: {}\n", r.task, status(r.status), r.branch);
    let n = commits.len();
    let plural = if n == 1 { "" } else { "s" };
    let _ = writeln!(s, "  {n} commit{plural} since {short}, {stat}");
    for c in commits.iter().take(SUBJECTS) {
        let _ = writeln!(s, "    {} {}", c.id, c.subject);
    }
    if n > SUBJECTS {
        let _ = writeln!(s, "    ... and {} more", n - SUBJECTS);
    }
    let width = files.iter().map(|f| f.path.chars().count()).max().unwrap_or(0);
    for f in &files {
        let lines = match f.lines {
            Some((a, d)) => format!("+{a} -{d}"),
            None => "binary".into(),
        };
        let _ = writeln!(s, "  {:width$}  {lines}", f.path);
    }
    if repo.contains(head, &r.tip).await? {
        let _ = writeln!(s, "  already in {here}");
    }
    Ok(s)
}

/// Which results conflict with each other (pairwise) and with `head`.
async fn conflicts(repo: &Repo, shown: &[Resolved], head: &str, here: &str) -> anyhow::Result<String> {
    let mut lines = Vec::new();
    for (i, a) in shown.iter().enumerate() {
        for b in &shown[i + 1..] {
            let paths = repo.conflicts(&a.tip, &b.tip, head).await?;
            if !paths.is_empty() {
                lines.push(format!("  {} and {}: {}", a.task, b.task, shown_paths(&paths)));
            }
        }
    }
    for r in shown {
        let paths = repo.conflicts(head, &r.tip, head).await?;
        if !paths.is_empty() {
            lines.push(format!("  {} and {here}: {}", r.task, shown_paths(&paths)));
        }
    }
    Ok(match (shown.len(), lines.is_empty()) {
        (0, _) => "\nno results to compare\n".into(),
        (_, true) => format!("\nno conflicts: the results merge with each other and with {here}\n"),
        (_, false) => format!("\nconflicts:\n{}\n", lines.join("\n")),
    })
}

pub(super) fn shown_paths(paths: &[String]) -> String {
    paths.iter().map(|p| printable(p)).collect::<Vec<_>>().join(", ")
}

/// A patch of task-written content, made safe for a terminal line by line.
fn printable_patch(patch: &str) -> String {
    patch.lines().map(|l| printable(l) + "\n").collect()
}

/// stdout that notes when its reader has gone (`sandpen diff --patch | head`), to stop quietly.
#[derive(Default)]
struct Out {
    closed: bool,
}

impl Out {
    fn write(&mut self, text: &str) {
        if self.closed {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        self.closed = stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .is_err();
    }
}
