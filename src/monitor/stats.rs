//! Container resource figures, computed from Docker stats samples as the docker CLI does
//! (docker/cli `cli/command/container/stats_helpers.go`).

use bollard::models::{ContainerCpuStats, ContainerMemoryStats, ContainerStatsResponse};

/// One stats sample, reduced to what we show.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct StatsSample {
    /// Percent of one CPU (200.0 = two CPUs busy). `None` without a usable previous sample.
    pub cpu_percent: Option<f64>,
    /// Memory in use, excluding the inactive file cache (as `docker stats` shows it).
    pub memory_bytes: u64,
    pub memory_limit: u64,
    pub pids: Option<u64>,
}

/// One line of a task's `<task>.stats.jsonl`: a sample and when it was taken.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StatsPoint {
    /// Seconds since the container started.
    pub t: f64,
    /// RFC 3339.
    pub at: String,
    pub cpu_percent: Option<f64>,
    pub memory_bytes: u64,
    #[serde(default)]
    pub memory_limit: u64,
    #[serde(default)]
    pub pids: Option<u64>,
}

impl StatsPoint {
    pub fn new(t: f64, at: String, s: &StatsSample) -> Self {
        Self {
            t,
            at,
            cpu_percent: s.cpu_percent,
            memory_bytes: s.memory_bytes,
            memory_limit: s.memory_limit,
            pids: s.pids,
        }
    }
}

/// Reduces one sample of the stats stream.
pub fn sample(s: &ContainerStatsResponse) -> StatsSample {
    let memory = s.memory_stats.as_ref();
    StatsSample {
        cpu_percent: cpu_percent(s.cpu_stats.as_ref(), s.precpu_stats.as_ref()),
        memory_bytes: memory.map_or(0, memory_used),
        memory_limit: memory.and_then(|m| m.limit).unwrap_or(0),
        pids: s.pids_stats.as_ref().and_then(|p| p.current),
    }
}

/// Reduces a sample of a task's stream, given the one before it and the time since the
/// container started. The engine samples every container at one global tick a second, and the
/// first sample of a stream has no baseline (`precpu_stats` is empty): its CPU is the
/// container's CPU time since it started over that time (its counters start at zero), so a
/// task that gets a single sample still has a CPU figure.
pub fn sample_after(
    prev: Option<&ContainerStatsResponse>,
    now: &ContainerStatsResponse,
    since_start: std::time::Duration,
) -> StatsSample {
    let mut s = sample(now);
    if s.cpu_percent.is_none() {
        s.cpu_percent = match prev {
            Some(p) => cpu_between(p, now),
            None => cpu_since_start(now, since_start),
        };
    }
    s
}

/// Below this, the time since the start is too short for a meaningful mean.
const MIN_SINCE_START: std::time::Duration = std::time::Duration::from_millis(100);

fn cpu_since_start(now: &ContainerStatsResponse, since_start: std::time::Duration) -> Option<f64> {
    let used = now.cpu_stats.as_ref()?.cpu_usage.as_ref()?.total_usage?;
    if since_start < MIN_SINCE_START {
        return None;
    }
    Some(used as f64 / since_start.as_nanos() as f64 * 100.0)
}

/// Percent of one CPU between two samples of the same container, by their `read` stamps.
fn cpu_between(prev: &ContainerStatsResponse, now: &ContainerStatsResponse) -> Option<f64> {
    let usage = |s: &ContainerStatsResponse| s.cpu_stats.as_ref()?.cpu_usage.as_ref()?.total_usage;
    let read = |s: &ContainerStatsResponse| {
        let at = humantime::parse_rfc3339_weak(s.read.as_deref()?).ok()?;
        at.duration_since(std::time::UNIX_EPOCH).ok()
    };
    let (u0, u1) = (usage(prev)?, usage(now)?);
    let (t0, t1) = (read(prev)?, read(now)?);
    let wall_ns = t1.checked_sub(t0)?.as_nanos() as f64;
    if u1 < u0 || wall_ns <= 0.0 {
        return None;
    }
    Some((u1 - u0) as f64 / wall_ns * 100.0)
}

/// `cpuDelta / systemDelta × online CPUs × 100`.
///
/// `None` when there is no baseline: the previous sample is absent or empty (its
/// `system_cpu_usage` missing or 0, as in the first sample of a stream), the system delta is not
/// positive, the container's usage went backwards, or the number of CPUs is unknown. A container
/// that used no CPU in the interval gets `Some(0.0)`, as `docker stats` shows 0.00%.
fn cpu_percent(cpu: Option<&ContainerCpuStats>, pre: Option<&ContainerCpuStats>) -> Option<f64> {
    let (cpu, pre) = (cpu?, pre?);
    let total = cpu.cpu_usage.as_ref()?.total_usage?;
    let pre_total = pre.cpu_usage.as_ref().and_then(|u| u.total_usage).unwrap_or(0);
    let system = cpu.system_cpu_usage?;
    let pre_system = pre.system_cpu_usage.filter(|&v| v > 0)?;
    let online = match cpu.online_cpus {
        Some(n) if n > 0 => n as usize,
        _ => cpu
            .cpu_usage
            .as_ref()
            .and_then(|u| u.percpu_usage.as_ref())
            .map_or(0, Vec::len),
    };
    if system <= pre_system || total < pre_total || online == 0 {
        return None;
    }
    let cpu_delta = (total - pre_total) as f64;
    let system_delta = (system - pre_system) as f64;
    Some(cpu_delta / system_delta * online as f64 * 100.0)
}

/// Usage minus the inactive file cache: `total_inactive_file` on cgroup v1, `inactive_file` on
/// cgroup v2, each only when smaller than the usage.
fn memory_used(m: &ContainerMemoryStats) -> u64 {
    let usage = m.usage.unwrap_or(0);
    let below_usage = |key: &str| {
        m.stats
            .as_ref()
            .and_then(|s| s.get(key))
            .copied()
            .filter(|&v| v < usage)
    };
    below_usage("total_inactive_file")
        .or_else(|| below_usage("inactive_file"))
        .map_or(usage, |inactive| usage - inactive)
}

/// Aggregate over a task's samples, for the report.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct StatsSummary {
    /// All samples added, with or without a CPU value.
    pub samples: u32,
    pub peak_memory_bytes: u64,
    /// Mean over the samples that have a CPU value.
    pub mean_cpu_percent: Option<f64>,
    pub peak_cpu_percent: Option<f64>,
    #[serde(skip)]
    cpu_sum: f64,
    #[serde(skip)]
    cpu_samples: u32,
}

impl StatsSummary {
    pub fn add(&mut self, s: &StatsSample) {
        self.samples = self.samples.saturating_add(1);
        self.peak_memory_bytes = self.peak_memory_bytes.max(s.memory_bytes);
        if let Some(cpu) = s.cpu_percent.filter(|c| c.is_finite()) {
            self.cpu_sum += cpu;
            self.cpu_samples += 1;
            self.mean_cpu_percent = Some(self.cpu_sum / f64::from(self.cpu_samples));
            self.peak_cpu_percent = Some(self.peak_cpu_percent.map_or(cpu, |p| p.max(cpu)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ContainerCpuUsage;
    use std::collections::HashMap;

    /// Shaped like a cgroup v1 sample from `GET /containers/{id}/stats` (trimmed).
    const V1: &str = r#"{
      "read": "2024-05-02T10:00:02.000000000Z",
      "preread": "2024-05-02T10:00:01.000000000Z",
      "pids_stats": {"current": 12},
      "blkio_stats": {"io_service_bytes_recursive": [], "io_serviced_recursive": null},
      "num_procs": 0,
      "storage_stats": {},
      "cpu_stats": {
        "cpu_usage": {
          "total_usage": 2500000000,
          "percpu_usage": [700000000, 600000000, 600000000, 600000000],
          "usage_in_kernelmode": 300000000,
          "usage_in_usermode": 2200000000
        },
        "system_cpu_usage": 104000000000,
        "online_cpus": 0,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}
      },
      "precpu_stats": {
        "cpu_usage": {
          "total_usage": 1500000000,
          "percpu_usage": [450000000, 350000000, 350000000, 350000000],
          "usage_in_kernelmode": 200000000,
          "usage_in_usermode": 1300000000
        },
        "system_cpu_usage": 100000000000,
        "online_cpus": 4,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}
      },
      "memory_stats": {
        "usage": 209715200,
        "max_usage": 268435456,
        "stats": {
          "active_anon": 104857600, "active_file": 20971520, "cache": 73400320,
          "inactive_anon": 0, "inactive_file": 50000000, "rss": 104857600,
          "total_active_file": 20971520, "total_cache": 73400320,
          "total_inactive_file": 52428800, "total_rss": 104857600
        },
        "failcnt": 0,
        "limit": 2147483648
      },
      "name": "/sandpen-task-1",
      "id": "3f2a"
    }"#;

    /// Shaped like a cgroup v2 sample: no percpu_usage, no max_usage, `inactive_file`.
    const V2: &str = r#"{
      "read": "2024-05-02T10:00:02.5Z",
      "preread": "2024-05-02T10:00:01.5Z",
      "pids_stats": {"current": 7, "limit": 4096},
      "blkio_stats": {"io_service_bytes_recursive": [{"major": 8, "minor": 0, "op": "read", "value": 4096}]},
      "num_procs": 0,
      "storage_stats": {},
      "cpu_stats": {
        "cpu_usage": {"total_usage": 900000000, "usage_in_kernelmode": 100000000, "usage_in_usermode": 800000000},
        "system_cpu_usage": 28000000000,
        "online_cpus": 8,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}
      },
      "precpu_stats": {
        "cpu_usage": {"total_usage": 400000000, "usage_in_kernelmode": 50000000, "usage_in_usermode": 350000000},
        "system_cpu_usage": 20000000000,
        "online_cpus": 8,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}
      },
      "memory_stats": {
        "usage": 157286400,
        "stats": {
          "active_anon": 83886080, "active_file": 10485760, "anon": 94371840, "file": 41943040,
          "inactive_anon": 10485760, "inactive_file": 31457280, "kernel_stack": 294912,
          "pgfault": 50000, "shmem": 0, "slab": 2097152
        },
        "limit": 8589934592
      },
      "name": "/sandpen-task-2",
      "id": "9c1d"
    }"#;

    /// The first sample of a stream: precpu is empty.
    const FIRST: &str = r#"{
      "read": "2024-05-02T10:00:00.1Z",
      "preread": "0001-01-01T00:00:00Z",
      "pids_stats": {"current": 3},
      "cpu_stats": {
        "cpu_usage": {"total_usage": 50000000, "usage_in_kernelmode": 10000000, "usage_in_usermode": 40000000},
        "system_cpu_usage": 20000000000,
        "online_cpus": 8,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}
      },
      "precpu_stats": {
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}
      },
      "memory_stats": {"usage": 1048576, "stats": {"inactive_file": 0}, "limit": 8589934592}
    }"#;

    fn parse(json: &str) -> ContainerStatsResponse {
        serde_json::from_str(json).expect("fixture parses")
    }

    fn cpu(
        total: u64,
        system: Option<u64>,
        online: Option<u32>,
        percpu: Option<Vec<u64>>,
    ) -> ContainerCpuStats {
        ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage {
                total_usage: Some(total),
                percpu_usage: percpu,
                ..Default::default()
            }),
            system_cpu_usage: system,
            online_cpus: online,
            ..Default::default()
        }
    }

    #[test]
    fn cgroup_v1_sample() {
        // cpu 1e9 / system 4e9 × 4 CPUs (percpu length, since online_cpus is 0) = 100%.
        // memory 209715200 − total_inactive_file 52428800 (not inactive_file).
        assert_eq!(
            sample(&parse(V1)),
            StatsSample {
                cpu_percent: Some(100.0),
                memory_bytes: 157286400,
                memory_limit: 2147483648,
                pids: Some(12),
            }
        );
    }

    #[test]
    fn cgroup_v2_sample() {
        // cpu 5e8 / system 8e9 × 8 CPUs = 50%; memory 157286400 − inactive_file 31457280.
        assert_eq!(
            sample(&parse(V2)),
            StatsSample {
                cpu_percent: Some(50.0),
                memory_bytes: 125829120,
                memory_limit: 8589934592,
                pids: Some(7),
            }
        );
    }

    #[test]
    fn first_sample_has_no_cpu() {
        let s = sample(&parse(FIRST));
        assert_eq!(s.cpu_percent, None);
        assert_eq!((s.memory_bytes, s.pids), (1048576, Some(3)));
    }

    #[test]
    fn empty_sample_is_all_defaults() {
        // What the stream sends once a container has stopped.
        let s = sample(&parse(
            r#"{"read":"0001-01-01T00:00:00Z","cpu_stats":{"cpu_usage":{"total_usage":0},"throttling_data":{}},"precpu_stats":{"cpu_usage":{"total_usage":0},"throttling_data":{}},"memory_stats":{},"pids_stats":{}}"#,
        ));
        assert_eq!(
            s,
            StatsSample {
                cpu_percent: None,
                memory_bytes: 0,
                memory_limit: 0,
                pids: None
            }
        );
        assert_eq!(sample(&ContainerStatsResponse::default()), s);
    }

    #[test]
    fn cpu_edge_cases() {
        let pre = cpu(1_000, Some(10_000), Some(2), None);
        let pct = |now: ContainerCpuStats| cpu_percent(Some(&now), Some(&pre));
        assert_eq!(pct(cpu(1_500, Some(12_000), Some(2), None)), Some(50.0));
        // Idle: zero usage delta is 0%, not missing.
        assert_eq!(pct(cpu(1_000, Some(12_000), Some(2), None)), Some(0.0));
        // No system progress, counters going backwards, unknown CPU count.
        assert_eq!(pct(cpu(1_500, Some(10_000), Some(2), None)), None);
        assert_eq!(pct(cpu(500, Some(12_000), Some(2), None)), None);
        assert_eq!(pct(cpu(1_500, Some(12_000), None, None)), None);
        assert_eq!(pct(cpu(1_500, Some(12_000), Some(0), Some(vec![]))), None);
        // online_cpus absent: the number of per-CPU counters.
        assert_eq!(
            pct(cpu(1_500, Some(12_000), None, Some(vec![1, 2, 3]))),
            Some(75.0)
        );
        assert_eq!(cpu_percent(None, Some(&pre)), None);
        assert_eq!(cpu_percent(Some(&pre), None), None);
    }

    #[test]
    fn a_first_sample_has_cpu_since_the_start_and_later_ones_between_samples() {
        use std::time::Duration;
        // FIRST: 5e7 ns of CPU; 0.5 s after the start that is 10% of one CPU.
        let first = parse(FIRST);
        let s = sample_after(None, &first, Duration::from_millis(500));
        assert!((s.cpu_percent.unwrap() - 10.0).abs() < 1e-9, "{s:?}");
        assert_eq!(
            sample_after(None, &first, Duration::from_millis(20)).cpu_percent,
            None
        );
        // A later sample without a baseline: CPU time over the time between the `read` stamps.
        let mut later = parse(FIRST);
        later.read = Some("2024-05-02T10:00:00.35Z".into());
        later
            .cpu_stats
            .as_mut()
            .unwrap()
            .cpu_usage
            .as_mut()
            .unwrap()
            .total_usage = Some(125_000_000);
        let s = sample_after(Some(&first), &later, Duration::from_secs(1));
        assert!((s.cpu_percent.unwrap() - 30.0).abs() < 1e-6, "{s:?}");
        // The engine's own baseline wins.
        assert_eq!(
            sample_after(Some(&first), &parse(V2), Duration::from_secs(9)).cpu_percent,
            Some(50.0)
        );
    }

    #[test]
    fn memory_rules() {
        let mem = |usage: u64, stats: &[(&str, u64)]| ContainerMemoryStats {
            usage: Some(usage),
            stats: Some(
                stats
                    .iter()
                    .map(|(k, v)| (k.to_string(), *v))
                    .collect::<HashMap<_, _>>(),
            ),
            ..Default::default()
        };
        assert_eq!(
            memory_used(&mem(100, &[("total_inactive_file", 30), ("inactive_file", 10)])),
            70
        );
        // v1 key not below usage: falls through to the v2 key, as docker does.
        assert_eq!(
            memory_used(&mem(100, &[("total_inactive_file", 100), ("inactive_file", 10)])),
            90
        );
        assert_eq!(memory_used(&mem(100, &[("total_inactive_file", 200)])), 100);
        assert_eq!(memory_used(&mem(100, &[("inactive_file", 100)])), 100);
        assert_eq!(memory_used(&mem(100, &[])), 100);
        assert_eq!(memory_used(&ContainerMemoryStats::default()), 0);
    }

    #[test]
    fn summary() {
        let mut sum = StatsSummary::default();
        let s = |cpu: Option<f64>, mem: u64| StatsSample {
            cpu_percent: cpu,
            memory_bytes: mem,
            memory_limit: 1 << 30,
            pids: Some(1),
        };
        sum.add(&s(None, 100));
        assert_eq!(
            (
                sum.samples,
                sum.peak_memory_bytes,
                sum.mean_cpu_percent,
                sum.peak_cpu_percent
            ),
            (1, 100, None, None)
        );
        sum.add(&s(Some(50.0), 300));
        sum.add(&s(Some(150.0), 200));
        sum.add(&s(Some(0.0), 50));
        sum.add(&s(Some(f64::NAN), 50));
        assert_eq!(
            (
                sum.samples,
                sum.peak_memory_bytes,
                sum.mean_cpu_percent,
                sum.peak_cpu_percent
            ),
            (5, 300, Some(200.0 / 3.0), Some(150.0))
        );
        let json = serde_json::to_value(&sum).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"samples": 5, "peak_memory_bytes": 300, "mean_cpu_percent": 200.0 / 3.0, "peak_cpu_percent": 150.0})
        );

        let mut from_fixtures = StatsSummary::default();
        for f in [FIRST, V1, V2] {
            from_fixtures.add(&sample(&parse(f)));
        }
        assert_eq!(from_fixtures.samples, 3);
        assert_eq!(from_fixtures.peak_memory_bytes, 157286400);
        assert_eq!(from_fixtures.mean_cpu_percent, Some(75.0));
        assert_eq!(from_fixtures.peak_cpu_percent, Some(100.0));
    }
}
