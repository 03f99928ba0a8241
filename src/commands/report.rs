//! `sandpen report RUN --html FILE`: a run's report.json and its tasks' stats logs, read
//! back after the fact, as the page `--html` writes at a run's end.

use std::path::Path;

use crate::cli::ReportArgs;
use crate::exit::UsageError;
use crate::report::html;
use crate::runner::RunReport;
use crate::workspace::{Repo, RunDir, SANDPEN_DIR};

/// How many of the newest runs a wrong RUN's message names.
const RUNS_NAMED: usize = 5;

pub async fn run(args: ReportArgs) -> anyhow::Result<i32> {
    super::run::check_output_file("--html", Some(&args.html))?;
    let repo = Repo::discover(args.repo.as_deref()).await?;
    let dir = find_run(&repo.root.join(SANDPEN_DIR).join("runs"), &args.run)?;
    let path = dir.report();
    let text = std::fs::read_to_string(&path).map_err(|e| {
        UsageError(format!(
            "run {}: cannot read {} ({e})\nfix: check the file's permissions",
            args.run,
            path.display()
        ))
    })?;
    let report: RunReport = serde_json::from_str(&text).map_err(|e| {
        UsageError(format!(
            "run {}: {} is not a report sandpen can read ({e})\nfix: a run whose sandpen died is completed by `sandpen gc`; a report of another sandpen version needs that version",
            args.run,
            path.display()
        ))
    })?;
    html::write(&report, Some(&dir), &args.html)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", args.html.display()))?;
    eprintln!("html: {}", args.html.display());
    Ok(crate::exit::SUCCESS)
}

/// The run directory of `id`, which must be a plain name (nothing that climbs out of `runs/`)
/// holding a report.json; otherwise the error names the newest runs there are.
fn find_run(runs: &Path, id: &str) -> Result<RunDir, UsageError> {
    let plain = !id.is_empty()
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let dir = RunDir::new(runs.join(id));
    if plain && dir.report().is_file() {
        return Ok(dir);
    }
    let mut known: Vec<String> = std::fs::read_dir(runs)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.path().join("report.json").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    known.sort(); // run ids start with their time: the newest last
    let fix = match known.len() {
        0 => format!(
            "fix: {} holds no runs; pass --repo PATH for the repository that ran it",
            runs.display()
        ),
        n => format!(
            "fix: name a run under {}, e.g. {} (the newest last), or pass --repo PATH",
            runs.display(),
            known[n.saturating_sub(RUNS_NAMED)..].join(", ")
        ),
    };
    Err(UsageError(format!("run {id:?}: no such run\n{fix}")))
}
