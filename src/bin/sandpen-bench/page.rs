//! The table and the page: what this run measured, and, apart and labelled, what a past
//! investigation found.

use std::process::Command;

use crate::ctx::{Ctx, run_ok};
use crate::row::Row;

/// The table's columns for one row.
fn cells(r: &Row) -> Vec<String> {
    let met = match r.met() {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "-",
    };
    let ratio = r.ratio.map(|x| format!("{x:.2}x")).unwrap_or_default();
    let row = [
        &r.figure,
        &r.sandpen,
        &r.other,
        &ratio,
        &r.target.render(),
        met,
        &r.measured,
    ];
    row.iter().map(|c| c.to_string()).collect()
}

fn render(rows: &[Vec<String>]) -> String {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::ASCII_MARKDOWN);
    t.set_header([
        "figure",
        "sandpen",
        "comparison",
        "ratio",
        "target",
        "met",
        "measured",
    ]);
    for r in rows {
        t.add_row(r);
    }
    t.to_string()
}

pub fn table(rows: &[Row]) -> String {
    render(&rows.iter().map(cells).collect::<Vec<_>>())
}

const INTRO: &str = "Written by `sandpen-bench` (`just bench`). Every figure in the table was measured by a \
run of the harness on this machine kind, on the day its row gives: a full run writes every row \
and the page, `sandpen-bench --only N` rewrites the rows of the figures it measured in place \
(and adds its notes, dated) and leaves the others. Each comparison is measured in the same run, \
timed the same way (the wall time of the whole process on both sides). A figure that could not \
be measured says why.\n";

/// `page`, written earlier, with the rows of `rows`' figures replaced by them (in place; a
/// figure it lacked goes last), the others as they were, and `notes` added, dated. None when
/// the page has no table to rewrite.
pub fn rewrite(page: &str, rows: &[Row], notes: &[String], only: &str) -> Option<String> {
    let start = page.find("\n| figure")? + 1;
    let end = start + page[start..].find("\n\n").unwrap_or(page.len() - start);
    // Rows of a page from before the column: the day of the run that wrote it.
    let day = page
        .lines()
        .find_map(|l| l.strip_prefix("- date: "))
        .unwrap_or("?");
    let day: String = day.chars().take(10).collect();
    let mut table: Vec<Vec<String>> = page[start..end]
        .lines()
        .skip(2)
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .map(|mut c: Vec<String>| {
            c.resize(6, String::new());
            c.push(day.clone());
            c.truncate(7);
            c
        })
        .collect();
    for r in rows {
        let new = cells(r);
        match table.iter_mut().find(|c| c[0] == new[0]) {
            Some(old) => *old = new,
            None => table.push(new),
        }
    }
    // The intro: the first paragraph after the title, as this version says it.
    let intro_at = page.find("\n\n")? + 2;
    let intro_end = intro_at + page[intro_at..].find('\n')? + 1;
    let mut out = format!("{}{INTRO}{}", &page[..intro_at], &page[intro_end..start]);
    out.push_str(&render(&table));
    let mut rest = page[end..].to_string();
    let head = "## Measured by this run, beside the table\n\n";
    if let Some(i) = rest.find(head) {
        let today = crate::row::today();
        let added: String = notes
            .iter()
            .map(|n| format!("- {today}, `--only {only}`: {n}\n"))
            .collect();
        rest.insert_str(i + head.len(), &added);
    }
    out.push_str(&rest);
    Some(out)
}

pub fn markdown(ctx: &Ctx, table: &str, notes: &[String]) -> String {
    let doctor: serde_json::Value = run_ok(Command::new(&ctx.sandpen).args(["doctor", "--json"]))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let e = &doctor["engine"];
    let mem_gib = e["mem_total"].as_f64().unwrap_or(0.0) / (1u64 << 30) as f64;
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let mut s = String::from("# Benchmarks\n\n");
    s.push_str(INTRO);
    if ctx.quick {
        s.push_str(
            "\n**Quick mode**: a few small rounds to prove the harness works; the figures are not judged.\n",
        );
    }
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_string();
    s.push_str(&format!(
        "\n- date: {date}\n- machine: {} CPUs, {mem_gib:.1} GiB memory, {} {}\n- engine: Docker Engine {} (API {}), \
         cgroup v{} ({} driver), storage {}\n- sandpen: {}\n- figures: median (min–max, n = runs)\n\n",
        e["ncpu"],
        text(&e["operating_system"]),
        text(&e["kernel"]),
        text(&e["version"]),
        text(&e["api_version"]),
        text(&e["cgroup_version"]),
        text(&e["cgroup_driver"]),
        text(&e["storage_driver"]),
        env!("CARGO_PKG_VERSION"),
    ));
    s.push_str(table);
    s.push_str("\n\n## Measured by this run, beside the table\n\n");
    for n in notes {
        s.push_str(&format!("- {n}\n"));
    }
    s.push_str(NOTES);
    s
}

/// What each figure measures, and a dated past investigation of what bounds them (kept with
/// the harness so that the page and the code agree; its figures are labelled as not this run's).
const NOTES: &str = include_str!("notes.md");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Target;

    const PAGE: &str = "# Benchmarks\n\nOld intro.\n\n- date: 2026-11-25T10:27:05Z\n\n\
| figure | sandpen | comparison | ratio | target | met |\n|---|---|---|---|---|---|\n\
| 1. one | 0.8 | 0.4 | 2.00x | ≤ 1.5x | NO |\n| 9a. gw | 0.7 | 0.6 | 1.06x | ≤ 1.05x | NO |\n\n\
## Measured by this run, beside the table\n\n- an old note\n";

    #[test]
    fn only_rewrites_its_rows_in_place_and_dates_every_row() {
        let row = Row::new("9a. gw", "0.6".into(), "0.6".into(), Some(1.0), Target::none());
        let page = rewrite(PAGE, &[row], &["a new note".into()], "9").unwrap();
        let today = crate::row::today();
        let rows: Vec<&str> = page
            .lines()
            .filter(|l| l.starts_with("| 1.") || l.starts_with("| 9a"))
            .collect();
        assert_eq!(rows.len(), 2, "{page}");
        assert!(
            rows[0].contains("0.8") && rows[0].trim_end().ends_with("2026-11-25 |"),
            "{page}"
        );
        assert!(rows[1].contains("1.00x") && rows[1].contains(&today), "{page}");
        assert!(page.contains(INTRO) && !page.contains("Old intro."), "{page}");
        assert!(
            page.contains(&format!("- {today}, `--only 9`: a new note\n- an old note")),
            "{page}"
        );
        // Laid out alike: every table line as wide as the header.
        let widths: Vec<usize> = page
            .lines()
            .filter(|l| l.starts_with('|'))
            .map(|l| l.chars().count())
            .collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{widths:?}\n{page}");
    }
}
