//! `sandpen report [RUN] --html FILE`: a run's report.json and its tasks' stats logs, read
//! back after the fact, as the page `--html` writes at a run's end.

use crate::cli::ReportArgs;
use crate::exit::UsageError;
use crate::report::html;
use crate::runner::RunReport;
use crate::workspace::Repo;

pub async fn run(args: ReportArgs) -> anyhow::Result<i32> {
    super::run::check_output_file("--html", Some(&args.html))?;
    let repo = Repo::discover(args.repo.as_deref()).await?;
    // Found as `ps` and `logs` find runs: an unknown one exits 2 and the known ones are named.
    let dir = crate::runs::find_run_by_prefix(&repo.runs, args.run.as_deref())?;
    let run_id = dir
        .root
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    let path = dir.report();
    let text = std::fs::read_to_string(&path).map_err(|e| {
        let fix = match e.kind() {
            std::io::ErrorKind::NotFound => {
                "the run has not written its report yet: it is starting, or its sandpen died                  (`sandpen gc` completes it)"
            }
            _ => "check the file's permissions",
        };
        UsageError(format!(
            "run {}: cannot read {} ({e})\nfix: {fix}",
            run_id,
            path.display()
        ))
    })?;
    let report: RunReport = serde_json::from_str(&text).map_err(|e| {
        UsageError(format!(
            "run {}: {} is not a report sandpen can read ({e})\nfix: a run whose sandpen died is completed by `sandpen gc`; a report of another sandpen version needs that version",
            run_id,
            path.display()
        ))
    })?;
    html::write(&report, Some(&dir), &args.html)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", args.html.display()))?;
    eprintln!("html: {}", args.html.display());
    Ok(crate::exit::SUCCESS)
}
