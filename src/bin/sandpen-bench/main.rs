//! sandpen's benchmarks, measured side by side in one run with what users would use instead:
//! the docker CLI one at a time, `xargs -P N docker run --rm`, and the Python Docker SDK with
//! threads (the stack of the orchestrator sandpen replaces). Prints a table and writes
//! docs/BENCHMARKS.md (or `--out FILE`). `--quick` runs a few small rounds of each, to prove
//! the harness works (CI), without judging timings. `--only N` runs the figures numbered N and rewrites
//! their rows of the page in place (each row says the day it was measured).
//!
//! Run: `cargo build --release --bins && target/release/sandpen-bench` (or `just bench`).

mod cpu;
mod ctx;
mod figures;
mod page;
mod row;
mod stats;
mod target;

use std::path::PathBuf;

use ctx::{Ctx, Measured};
use figures::*;
use row::Row;

type Figure = (&'static str, fn(&Ctx, &mut Vec<String>) -> Measured<Vec<Row>>);

/// In the page's order; a figure that fails is a row that says why.
const FIGURES: [Figure; 13] = [
    (lifecycle::FIGURE, lifecycle::measure),
    (throughput::FIGURE, throughput::measure),
    (throughput::FIGURE_BARE, throughput::measure_bare),
    (speedup::FIGURE, speedup::measure),
    (logs::FIGURE, logs::measure),
    (footprint::FIGURE, footprint::measure),
    (image_cache::FIGURE, image_cache::measure),
    (real_cli::FIGURE, real_cli::measure),
    (plan::FIGURE, plan::measure),
    (gateway::FIGURE, gateway::measure),
    (checkouts::FIGURE, checkouts::measure),
    (many::FIGURE, many::measure),
    (warm::FIGURE, warm::measure),
];

/// sandpen's benchmarks, side by side with what users would use instead; writes the page.
#[derive(clap::Parser)]
#[command(name = "sandpen-bench")]
struct Args {
    /// A few small rounds of each figure: proves the harness works, judges no timing.
    #[arg(long)]
    quick: bool,
    /// Where the page goes [default: docs/BENCHMARKS.md, or target/BENCHMARKS.quick.md with
    /// --quick].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Only the figures whose names start so (`--only 9`), for working on one figure.
    #[arg(long, value_name = "N")]
    only: Option<String>,
}

fn main() {
    let Args { quick, out, only } = clap::Parser::parse();
    let out = out.unwrap_or_else(|| match quick {
        true => PathBuf::from("target/BENCHMARKS.quick.md"),
        false => PathBuf::from("docs/BENCHMARKS.md"),
    });
    let ctx = Ctx::setup(quick);
    let (mut rows, mut notes) = (Vec::new(), Vec::new());
    for (name, measure) in FIGURES {
        if only.as_ref().is_some_and(|o| !name.starts_with(o.as_str())) {
            continue;
        }
        eprintln!("== {name}");
        match measure(&ctx, &mut notes) {
            Ok(r) => rows.extend(r),
            Err(why) => {
                eprintln!("not measured: {why}");
                rows.push(Row::not_measured(name, why));
            }
        }
    }
    if quick {
        // Small rounds prove the harness works; their figures are not held to the targets.
        rows.iter_mut().for_each(|r| r.target = target::Target::none());
    }
    println!("{}", page::table(&rows));
    // `--only` on a page written earlier: its rows in place, the others kept.
    let earlier = std::fs::read_to_string(&out).ok().filter(|_| !quick);
    let rewritten = match (&only, earlier) {
        (Some(only), Some(page)) => page::rewrite(&page, &rows, &notes, only),
        _ => None,
    };
    let doc = rewritten.unwrap_or_else(|| page::markdown(&ctx, &page::table(&rows), &notes));
    if let Some(dir) = out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&out, doc).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
    eprintln!("wrote {}", out.display());
}
