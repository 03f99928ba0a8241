//! CPU and memory of a task on a Swarm node. The node's engine may be out of sandpen's reach
//! (and a Swarm has no stats API for services), so the entry step reads its own container's
//! cgroup about once a second and posts each reading to the run's exchange, which hands them to
//! the runner as that task's stats stream. They are the container's word about itself: a task
//! can forge its own figures, as it can its own result, never another task's.

use std::path::Path;

use bollard::models::{
    ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats, ContainerPidsStats, ContainerStatsResponse,
};

/// One reading of a container's cgroup, as the entry step sends it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reading {
    /// RFC 3339 on the node's clock: only the differences between one task's readings count.
    pub read: String,
    /// CPU time used since the container started, in nanoseconds.
    pub cpu_ns: Option<u64>,
    pub memory_bytes: Option<u64>,
    /// The inactive file cache, left out of the memory figure as `docker stats` does.
    pub memory_inactive_file: Option<u64>,
    pub memory_limit: Option<u64>,
    pub pids: Option<u64>,
}

impl Reading {
    /// The container's own cgroup as it sees it (cgroup v2 or v1); None where none is shown.
    pub fn of_own_cgroup() -> Option<Self> {
        let mut r = read_cgroup(Path::new("/sys/fs/cgroup"))?;
        r.read = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
        Some(r)
    }

    /// The reading as the engine's stats API would have given it, so the runner reduces it
    /// with the arithmetic it uses for every container (`monitor::sample_after`).
    pub fn into_stats(self) -> ContainerStatsResponse {
        let stats = self
            .memory_inactive_file
            .map(|v| [("inactive_file".to_string(), v)].into_iter().collect());
        ContainerStatsResponse {
            read: Some(self.read),
            cpu_stats: Some(ContainerCpuStats {
                cpu_usage: Some(ContainerCpuUsage {
                    total_usage: self.cpu_ns,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            memory_stats: Some(ContainerMemoryStats {
                usage: self.memory_bytes,
                limit: self.memory_limit,
                stats,
                ..Default::default()
            }),
            pids_stats: Some(ContainerPidsStats {
                current: self.pids,
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// Reads a cgroup mounted at `root`: v2's unified files when `cgroup.controllers` is there,
/// else v1's per-controller directories.
fn read_cgroup(root: &Path) -> Option<Reading> {
    let text = |p: &str| std::fs::read_to_string(root.join(p)).ok();
    let number = |p: &str| text(p).and_then(|t| t.trim().parse::<u64>().ok());
    let keyed = |p: &str, key: &str| -> Option<u64> {
        let t = text(p)?;
        let line = t.lines().find(|l| l.split_whitespace().next() == Some(key))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let r = if root.join("cgroup.controllers").exists() {
        Reading {
            cpu_ns: keyed("cpu.stat", "usage_usec").map(|us| us.saturating_mul(1000)),
            memory_bytes: number("memory.current"),
            memory_inactive_file: keyed("memory.stat", "inactive_file"),
            // "max" (no limit) does not parse: no figure.
            memory_limit: number("memory.max"),
            pids: number("pids.current"),
            ..Default::default()
        }
    } else {
        Reading {
            cpu_ns: number("cpuacct/cpuacct.usage").or_else(|| number("cpu,cpuacct/cpuacct.usage")),
            memory_bytes: number("memory/memory.usage_in_bytes"),
            memory_inactive_file: keyed("memory/memory.stat", "total_inactive_file"),
            memory_limit: number("memory/memory.limit_in_bytes"),
            pids: number("pids/pids.current"),
            ..Default::default()
        }
    };
    (r.memory_bytes.is_some() || r.cpu_ns.is_some()).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::sample_after;
    use std::time::Duration;

    fn write(root: &Path, files: &[(&str, &str)]) {
        for (p, t) in files {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        }
    }

    #[test]
    fn a_v2_cgroup_reads_as_the_engine_would_report_it() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            &[
                ("cgroup.controllers", "cpu memory pids\n"),
                ("cpu.stat", "usage_usec 1500000\nuser_usec 1000000\n"),
                ("memory.current", "109051904\n"),
                ("memory.stat", "anon 50\ninactive_file 4194304\nactive_file 9\n"),
                ("memory.max", "268435456\n"),
                ("pids.current", "7\n"),
            ],
        );
        let mut r = read_cgroup(d.path()).unwrap();
        assert_eq!(r.cpu_ns, Some(1_500_000_000));
        r.read = "2026-12-03T10:00:01.000000000Z".into();
        let first = r.clone().into_stats();
        let s = sample_after(None, &first, Duration::from_secs(3));
        assert_eq!(s.memory_bytes, 100 << 20, "inactive file cache left out");
        assert_eq!(s.memory_limit, 256 << 20);
        assert_eq!(s.pids, Some(7));
        assert_eq!(s.cpu_percent, Some(50.0), "1.5 s of CPU over 3 s");

        r.read = "2026-12-03T10:00:02.000000000Z".into();
        r.cpu_ns = Some(2_250_000_000);
        let s = sample_after(Some(&first), &r.into_stats(), Duration::from_secs(4));
        assert_eq!(
            s.cpu_percent,
            Some(75.0),
            "0.75 s of CPU over the second between readings"
        );
    }

    #[test]
    fn a_v1_cgroup_reads_too_and_an_unlimited_v2_one_has_no_limit() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            &[
                ("cpuacct/cpuacct.usage", "42\n"),
                ("memory/memory.usage_in_bytes", "1000\n"),
                ("memory/memory.stat", "cache 5\ntotal_inactive_file 100\n"),
                ("memory/memory.limit_in_bytes", "2000\n"),
                ("pids/pids.current", "3\n"),
            ],
        );
        let r = read_cgroup(d.path()).unwrap();
        assert_eq!(
            (
                r.cpu_ns,
                r.memory_bytes,
                r.memory_inactive_file,
                r.memory_limit,
                r.pids
            ),
            (Some(42), Some(1000), Some(100), Some(2000), Some(3))
        );

        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            &[
                ("cgroup.controllers", ""),
                ("memory.current", "10\n"),
                ("memory.max", "max\n"),
            ],
        );
        assert_eq!(read_cgroup(d.path()).unwrap().memory_limit, None);
        assert!(read_cgroup(tempfile::tempdir().unwrap().path()).is_none());
    }
}
