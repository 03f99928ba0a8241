//! The tasks' stats logs (`<task>.stats.jsonl`), read back for the charts.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::monitor::StatsPoint;
use crate::runner::RunReport;
use crate::workspace::RunDir;

/// Each task's samples by task id; a task without a log (or an empty one) has none.
pub type Samples = HashMap<String, Vec<StatsPoint>>;

/// More than a day of samples at one a second is not a stats log sandpen wrote.
const MAX_READ: u64 = 64 << 20;
/// What a chart draws at most; longer series are thinned, keeping each stretch's peaks.
pub const MAX_POINTS: usize = 1000;

/// The samples of every task of `run`: from the run directory when given (a run read back
/// later, perhaps moved), else from the paths in the report.
pub fn load(run: &RunReport, dir: Option<&RunDir>) -> Samples {
    run.tasks
        .iter()
        .map(|t| {
            let path = match (dir, &t.stats_log) {
                (Some(d), _) => Some(d.stats_log(&t.id)),
                (None, Some(p)) => Some(p.into()),
                (None, None) => None,
            };
            (t.id.clone(), path.map(|p| thin(read(&p))).unwrap_or_default())
        })
        .collect()
}

/// The points of one stats log; lines that do not parse (a line cut short by a crash) are
/// skipped, and a missing file has none.
pub fn read(path: &Path) -> Vec<StatsPoint> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    BufReader::new(file.take(MAX_READ))
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<StatsPoint>(&l).ok())
        .filter(|p| p.t.is_finite())
        .collect()
}

/// At most `MAX_POINTS` points: each stretch of consecutive samples becomes one, at the
/// stretch's first time, with its highest CPU and memory (a chart must not hide a peak).
pub fn thin(points: Vec<StatsPoint>) -> Vec<StatsPoint> {
    if points.len() <= MAX_POINTS {
        return points;
    }
    let per = points.len().div_ceil(MAX_POINTS);
    points
        .chunks(per)
        .map(|c| {
            let mut p = c[0].clone();
            p.memory_bytes = c.iter().map(|q| q.memory_bytes).max().unwrap_or(0);
            p.cpu_percent = c
                .iter()
                .filter_map(|q| q.cpu_percent)
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(t: f64, cpu: Option<f64>, mem: u64) -> StatsPoint {
        StatsPoint {
            t,
            at: String::new(),
            cpu_percent: cpu,
            memory_bytes: mem,
            memory_limit: 0,
            pids: None,
        }
    }

    #[test]
    fn a_log_reads_back_skipping_broken_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.stats.jsonl");
        std::fs::write(
            &path,
            "{\"t\":0.1,\"at\":\"x\",\"cpu_percent\":null,\"memory_bytes\":5}\n\
             not json\n\
             {\"t\":1.1,\"at\":\"y\",\"cpu_percent\":12.5,\"memory_bytes\":7,\"memory_limit\":9,\"pids\":2}\n\
             {\"t\":2.1,\"at\":",
        )
        .unwrap();
        let points = read(&path);
        assert_eq!(points.len(), 2);
        assert_eq!(points[1].cpu_percent, Some(12.5));
        assert!(read(&dir.path().join("none")).is_empty());
    }

    #[test]
    fn thinning_keeps_the_peaks() {
        let mut points: Vec<_> = (0..5000).map(|i| point(i as f64, Some(1.0), 10)).collect();
        points[2345].memory_bytes = 999;
        points[4001].cpu_percent = Some(350.0);
        let thin = thin(points);
        assert!(thin.len() <= MAX_POINTS);
        assert_eq!(thin.iter().map(|p| p.memory_bytes).max(), Some(999));
        assert!(thin.iter().any(|p| p.cpu_percent == Some(350.0)));
        assert_eq!(super::thin(vec![point(0.0, None, 1)]).len(), 1);
    }
}
