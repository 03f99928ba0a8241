//! `sandpen ps`: the runs of this repository, or one run's tasks, as they stand now.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use comfy_table::{Cell, Table, presets::UTF8_FULL_CONDENSED};
use indicatif::HumanBytes;

use crate::cli::PsArgs;
use crate::engine::spec::{LABEL_OWNER, LABEL_RUN, LABEL_RUN_DIR};
use crate::engine::{ContainerEngine, Engine, ListedContainer};
use crate::exit;
use crate::report::style::{self, Stream, Style};
use crate::runs::{self, RunSummary, RunView, TaskState};
use crate::workspace::{Repo, RunDir};

/// Live states first, in the order a task goes through them.
const LIVE: [&str; 5] = ["running", "preparing", "collecting", "queued", "unfinished"];

pub async fn run(host: Option<&str>, args: PsArgs) -> anyhow::Result<i32> {
    let repo = Repo::discover(args.repo.as_deref()).await?;
    // A bad run id is said before the engine is asked anything.
    let one = match &args.run {
        Some(id) => Some(runs::find_run_by_prefix(&repo.runs, Some(id))?),
        None => None,
    };
    // The engine adds the containers' states; without it the run directories still say most.
    let engine = match Engine::connect(host).await {
        Ok(e) => Some(e),
        Err(e) => {
            let first = e.to_string().lines().next().unwrap_or_default().to_string();
            eprintln!("warning: {first}; showing what the run directories say");
            None
        }
    };
    let out = match one {
        Some(layout) => {
            let id = runs::run_id(&layout);
            let containers = match &engine {
                Some(e) => e.list(LABEL_RUN, Some(&id)).await?,
                None => Vec::new(),
            };
            let mut view = runs::describe(&layout, containers, true);
            if let Some(e) = &engine {
                add_live_stats(e, &mut view).await;
            }
            match args.json {
                true => serde_json::to_string_pretty(&view)? + "\n",
                false => run_table(&view, &Style::for_stream(args.color.color, Stream::Stdout)),
            }
        }
        None => {
            let mut by_run: HashMap<String, Vec<ListedContainer>> = HashMap::new();
            if let Some(e) = &engine {
                for r in crate::gc::by_run(e.list(LABEL_OWNER, None).await?) {
                    by_run.insert(r.run_id, r.containers);
                }
            }
            let mut layouts = runs::runs(&repo.runs);
            // Runs of this repository the engine has containers of, whose directory is gone.
            for (id, containers) in &by_run {
                let dir = containers
                    .first()
                    .and_then(|c| c.labels.get(LABEL_RUN_DIR))
                    .map(PathBuf::from);
                if let Some(dir) = dir.filter(|d| repo.runs.holds(d))
                    && !layouts.iter().any(|l| &runs::run_id(l) == id)
                {
                    layouts.push(RunDir::new(dir));
                }
            }
            layouts.sort_by_key(runs::run_id);
            let all: Vec<RunSummary> = layouts
                .iter()
                .map(|l| {
                    let containers = by_run.remove(&runs::run_id(l)).unwrap_or_default();
                    runs::describe(l, containers, false).summary
                })
                .collect();
            if all.is_empty() && !args.json {
                eprintln!("no runs in {} yet", repo.root.display());
            }
            match args.json {
                true => serde_json::to_string_pretty(&all)? + "\n",
                false if all.is_empty() => String::new(),
                false => runs_table(&all),
            }
        }
    };
    // A closed pipe (`sandpen ps | head`) is not an error worth a message.
    let _ = std::io::stdout().write_all(out.as_bytes());
    Ok(exit::SUCCESS)
}

/// CPU and memory now, for each running task: one sample each, asked for all at once.
async fn add_live_stats(engine: &Engine, view: &mut RunView) {
    let running: Vec<(usize, String)> = view
        .tasks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.state == TaskState::Running)
        .filter_map(|(i, t)| Some((i, t.container_id.clone()?)))
        .collect();
    let samples = futures_util::future::join_all(running.iter().map(|(_, id)| engine.stats_once(id))).await;
    for ((i, _), sample) in running.iter().zip(samples) {
        if let Ok(s) = sample {
            view.tasks[*i].cpu_percent = s.cpu_percent;
            view.tasks[*i].memory_bytes = Some(s.memory_bytes);
        }
    }
}

fn runs_table(all: &[RunSummary]) -> String {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    table.set_header(["run", "started", "state", "tasks"]);
    for r in all {
        table.add_row([
            r.run_id.clone(),
            r.started_at.as_deref().map_or("-".into(), when),
            run_state(r),
            states(r),
        ]);
    }
    table.to_string() + "\n"
}

fn run_table(view: &RunView, style: &Style) -> String {
    let s = &view.summary;
    let mut out = format!(
        "run {} (started {}; {}; {})\n",
        s.run_id,
        s.started_at.as_deref().map_or("-".into(), when),
        run_state(s),
        states(s)
    );
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    table.set_header(["task", "state", "elapsed", "cpu", "memory", "turns", "phase"]);
    if style.color() {
        table.enforce_styling();
    }
    for t in &view.tasks {
        let mut row: Vec<Cell> = [
            t.id.clone(),
            match t.attempts {
                // A rerun task: which attempt the row describes.
                n @ 2.. => format!("{} (attempt {n})", t.state.as_str()),
                _ => t.state.as_str().to_string(),
            },
            t.elapsed_s.map_or("-".into(), duration),
            t.cpu_percent.map_or("-".into(), |c| format!("{c:.0}%")),
            t.memory_bytes.map_or("-".into(), |b| HumanBytes(b).to_string()),
            t.turns.map_or("-".into(), |n| n.to_string()),
            match (t.phase, &t.phase_name) {
                (Some(p), Some(n)) => format!("{p}/11 {n}"),
                (Some(p), None) => format!("{p}/11"),
                _ => "-".into(),
            },
        ]
        .map(Cell::new)
        .to_vec();
        if style.color()
            && let Some(color) = style::table_color(style::tone_of(t.state.as_str()))
        {
            row[1] = row[1].clone().fg(color);
        }
        table.add_row(row);
    }
    out.push_str(&table.to_string());
    out.push('\n');
    for t in view
        .tasks
        .iter()
        .filter(|t| t.state != TaskState::Ended(crate::runner::TaskStatus::Succeeded))
    {
        if let Some(m) = &t.message {
            out.push_str(&format!("  {}: {m}\n", t.id));
        }
        for line in &t.stderr_tail {
            out.push_str(&format!("    | {line}\n"));
        }
    }
    if view.tasks.iter().any(|t| !t.stderr_tail.is_empty()) {
        out.push_str(&format!(
            "see a task's whole session and stderr: sandpen logs {} TASK\n",
            s.run_id
        ));
    }
    out
}

/// Where the run stands: "finished" once its report is complete, else "running" while its
/// sandpen lives, or "gone" with what that means.
fn run_state(r: &RunSummary) -> String {
    match (r.complete, r.owner) {
        (true, _) => "finished".into(),
        (false, "alive") => "running".into(),
        (false, "gone") => "gone (`sandpen gc` finishes the run)".into(),
        (false, o) => format!("owner {o}"),
    }
}

/// "1 running, 2 succeeded": live states first, then the ended ones.
fn states(r: &RunSummary) -> String {
    let mut keys: Vec<&str> = LIVE
        .iter()
        .copied()
        .filter(|k| r.states.contains_key(k))
        .collect();
    keys.extend(r.states.keys().copied().filter(|k| !LIVE.contains(k)));
    let parts: Vec<String> = keys.iter().map(|k| format!("{} {k}", r.states[k])).collect();
    match parts.is_empty() {
        true => "no tasks".into(),
        false => parts.join(", "),
    }
}

/// An RFC 3339 time without its fractions: "2026-12-01 10:29:49 UTC".
fn when(t: &str) -> String {
    match t.get(..19) {
        Some(s) if t.ends_with('Z') => format!("{} UTC", s.replace('T', " ")),
        _ => t.to_string(),
    }
}

/// "8.2s", "4m05s", "1h02m".
fn duration(s: f64) -> String {
    let whole = s as u64;
    match whole {
        0..60 => format!("{s:.1}s"),
        60..3600 => format!("{}m{:02}s", whole / 60, whole % 60),
        _ => format!("{}h{:02}m", whole / 3600, whole % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_at_a_glance() {
        assert_eq!(duration(8.24), "8.2s");
        assert_eq!(duration(245.0), "4m05s");
        assert_eq!(duration(3720.0), "1h02m");
        assert_eq!(when("2026-12-01T10:29:49.123Z"), "2026-12-01 10:29:49 UTC");
        assert_eq!(when("odd"), "odd");
        let summary = RunSummary {
            run_id: "r".into(),
            dir: "d".into(),
            started_at: None,
            finished_at: None,
            complete: false,
            owner: "gone",
            owner_alive: false,
            task_count: 4,
            states: [("failed", 1), ("running", 2), ("succeeded", 1)]
                .into_iter()
                .collect(),
        };
        assert_eq!(states(&summary), "2 running, 1 failed, 1 succeeded");
        assert_eq!(run_state(&summary), "gone (`sandpen gc` finishes the run)");
        let finished = RunSummary {
            complete: true,
            ..summary
        };
        assert_eq!(run_state(&finished), "finished");
    }
}
