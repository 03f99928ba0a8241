//! A local container's stats read from its cgroup, when sandpen can see it.
//!
//! Engine 20.10 samples every container at one shared tick a second, and a one-shot stats
//! call waits for that tick too (measured: 0.07, 0.99, 1.00 s), so a task of under a second
//! often gets no sample at all from the Engine API. Where the engine runs on this host and
//! sandpen shares its pid namespace, the container's cgroup files are readable here, at any
//! moment: the readings come out shaped like the Engine API's samples, so everything
//! downstream is the same. A remote engine, or sandpen in a container, keeps the API stream.
//!
//! The cgroup also tells of OOM kills where the engine may not: Podman 4.3 on cgroup v1 never
//! sets `OOMKilled`. On v1 the kernel signals an eventfd registered on `memory.oom_control`
//! the moment it kills (as containerd and conmon listen), so a kill is seen while the cgroup
//! still exists; v2's `memory.events` counts kills and is read with every reading.
//!
//! And it kills: the processes in it get SIGKILL from sandpen at once (`kill_all`), before
//! the engine, busy, gets to it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use bollard::models::{
    ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats, ContainerPidsStats, ContainerStatsResponse,
};
use futures_util::StreamExt;

use super::StatsStream;

/// Readings come this often for the first seconds (so a task of half a second gets some),
/// then about once a second like the engine's own stream.
const EARLY_EVERY: Duration = Duration::from_millis(200);
const EARLY_FOR: Duration = Duration::from_secs(2);
const EVERY: Duration = Duration::from_secs(1);
/// Passes over the cgroup's processes when killing them (each catches what forked meanwhile).
const KILL_ROUNDS: usize = 3;

/// Where one container's figures are, by cgroup version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cgroup {
    /// One directory per controller.
    V1 {
        memory: PathBuf,
        cpuacct: PathBuf,
        pids: PathBuf,
    },
    /// The unified hierarchy: one directory.
    V2(PathBuf),
}

impl Cgroup {
    /// The cgroup of the container whose first process is `pid`, if this host shows it: its
    /// path must name the container (so a reused pid or a foreign namespace is refused) and
    /// its files must be readable here.
    pub fn of_process(pid: i64, container_id: &str) -> Option<Self> {
        if pid <= 0 || container_id.len() < 12 {
            return None;
        }
        let table = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let cg = Self::from_table(&table, container_id, Path::new("/sys/fs/cgroup"))?;
        cg.read().is_some().then_some(cg)
    }

    /// Parses `/proc/<pid>/cgroup` (`id:controllers:path` lines) under the mount `root`.
    fn from_table(table: &str, container_id: &str, root: &Path) -> Option<Self> {
        let v1 = |want: &str| {
            table.lines().find_map(|line| {
                let mut parts = line.splitn(3, ':');
                let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                let names = controllers.split(',').any(|c| c == want);
                (names && path.contains(container_id))
                    .then(|| root.join(controllers).join(path.trim_start_matches('/')))
            })
        };
        if let (Some(memory), Some(cpuacct), Some(pids)) = (v1("memory"), v1("cpuacct"), v1("pids")) {
            return Some(Self::V1 {
                memory,
                cpuacct,
                pids,
            });
        }
        let unified = table.lines().find_map(|line| line.strip_prefix("0::"))?;
        unified
            .contains(container_id)
            .then(|| Self::V2(root.join(unified.trim_start_matches('/'))))
    }

    /// SIGKILLs every process in the cgroup at once, without the engine (whose kill waits its
    /// turn behind all else it does: seconds on a busy machine), in a few rounds for processes
    /// forked meanwhile. The signals sent (a process still dying is signalled again).
    pub fn kill_all(&self, container_id: &str) -> usize {
        let procs = match self {
            Self::V1 { pids, .. } => pids.join("cgroup.procs"),
            Self::V2(dir) => dir.join("cgroup.procs"),
        };
        let mut killed = 0;
        for _ in 0..KILL_ROUNDS {
            let Ok(list) = std::fs::read_to_string(&procs) else {
                break;
            };
            let pids: Vec<i32> = list.lines().filter_map(|l| l.trim().parse().ok()).collect();
            if pids.is_empty() {
                break;
            }
            killed += pids.into_iter().filter(|&p| kill_in(p, container_id)).count();
        }
        killed
    }

    /// One reading, as the Engine API would give it; `None` once the cgroup is gone (the
    /// container ended).
    pub fn read(&self) -> Option<ContainerStatsResponse> {
        let (usage_ns, memory, limit, inactive_key, pids) = match self {
            Self::V1 {
                memory,
                cpuacct,
                pids,
            } => (
                number(&cpuacct.join("cpuacct.usage"))?,
                number(&memory.join("memory.usage_in_bytes"))?,
                number(&memory.join("memory.limit_in_bytes")),
                ("total_inactive_file", memory.join("memory.stat")),
                number(&pids.join("pids.current")),
            ),
            Self::V2(dir) => (
                keyed(&dir.join("cpu.stat"), "usage_usec")?.saturating_mul(1000),
                number(&dir.join("memory.current"))?,
                number(&dir.join("memory.max")),
                ("inactive_file", dir.join("memory.stat")),
                number(&dir.join("pids.current")),
            ),
        };
        let (key, stat) = inactive_key;
        let stats = keyed(&stat, key).map(|v| [(key.to_string(), v)].into_iter().collect());
        Some(ContainerStatsResponse {
            read: Some(rfc3339_nanos(SystemTime::now())),
            cpu_stats: Some(ContainerCpuStats {
                cpu_usage: Some(ContainerCpuUsage {
                    total_usage: Some(usage_ns),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(memory),
                limit,
                stats,
                ..Default::default()
            }),
            pids_stats: Some(ContainerPidsStats {
                current: pids,
                limit: None,
            }),
            ..Default::default()
        })
    }

    /// How many processes of the cgroup the kernel has killed for want of memory.
    pub fn oom_kills(&self) -> Option<u64> {
        match self {
            Self::V1 { memory, .. } => keyed(&memory.join("memory.oom_control"), "oom_kill"),
            Self::V2(dir) => keyed(&dir.join("memory.events"), "oom_kill"),
        }
    }

    /// Readings until the cgroup goes: every 200 ms for the first two seconds, then every
    /// second, and at once when the kernel signals an OOM kill (v1). Each reading is a
    /// blocking read of a few small kernel files. `on_oom` is called once a reading counts a
    /// kill.
    pub fn stream(self, on_oom: impl Fn() + Send + Sync + 'static) -> StatsStream {
        let began = Instant::now();
        let events = self.oom_events();
        let state = (self, true, events, on_oom);
        futures_util::stream::unfold(state, move |(cg, first, events, on_oom)| async move {
            if !first {
                let every = if began.elapsed() < EARLY_FOR {
                    EARLY_EVERY
                } else {
                    EVERY
                };
                match &events {
                    Some(ev) => tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = ev.signalled() => {}
                    },
                    None => tokio::time::sleep(every).await,
                }
            }
            let reading = cg.read()?;
            if cg.oom_kills().is_some_and(|n| n > 0) {
                on_oom();
            }
            Some((Ok(reading), (cg, false, events, on_oom)))
        })
        .boxed()
    }

    /// v1's OOM notification, where this process may register it (root, a local engine).
    fn oom_events(&self) -> Option<OomEvents> {
        let Self::V1 { memory, .. } = self else {
            return None;
        };
        OomEvents::register(memory)
    }
}

/// An eventfd the kernel signals when it OOM-kills in a v1 memory cgroup (and when the cgroup
/// is removed).
struct OomEvents {
    fd: tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
    /// The registration lasts while the control file stays open.
    _control: std::fs::File,
}

impl OomEvents {
    fn register(memory: &Path) -> Option<Self> {
        use rustix::event::{EventfdFlags, eventfd};
        use std::os::fd::AsRawFd;
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).ok()?;
        let control = std::fs::File::open(memory.join("memory.oom_control")).ok()?;
        let line = format!("{} {}", fd.as_raw_fd(), control.as_raw_fd());
        std::fs::write(memory.join("cgroup.event_control"), line).ok()?;
        // SAFETY: an OwnedFd owns its descriptor until dropped, and the AsyncFd owns the
        // OwnedFd: the descriptor stays open and the same for the AsyncFd's whole life.
        let fd = unsafe { tokio::io::unix::AsyncFd::register(fd) }.ok()?;
        Some(Self {
            fd,
            _control: control,
        })
    }

    /// Resolves when the kernel has signalled since the last time (and clears the signal).
    async fn signalled(&self) {
        loop {
            let Ok(mut ready) = self.fd.readable().await else {
                return std::future::pending().await;
            };
            let mut count = [0u8; 8];
            match rustix::io::read(self.fd.get_ref(), &mut count) {
                Ok(_) => return,
                Err(_) => ready.clear_ready(),
            }
        }
    }
}

/// The first number in a cgroup file ("max" and unreadable files are `None`).
/// SIGKILLs process `pid` if it is in the container's cgroup. The process is held by a pidfd
/// before its cgroup is checked, and the signal goes through that pidfd: to the process that
/// was checked, or (if it ended and its pid was reused) to none.
fn kill_in(pid: i32, container_id: &str) -> bool {
    use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};
    let Some(fd) = Pid::from_raw(pid).and_then(|p| pidfd_open(p, PidfdFlags::empty()).ok()) else {
        return false;
    };
    let ours = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|t| t.contains(container_id));
    ours && pidfd_send_signal(&fd, Signal::KILL).is_ok()
}

fn number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `key value` lines (memory.stat, cpu.stat): the value of `key`.
fn keyed(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// RFC 3339 with nanoseconds, as the engine stamps its samples (and as `cpu_between` reads).
fn rfc3339_nanos(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn v1_controllers_are_found_by_name_even_when_mounted_together() {
        let table =
            format!("12:pids:/docker/{ID}\n4:memory:/docker/{ID}\n2:cpu,cpuacct:/docker/{ID}\n0::/\n");
        let cg = Cgroup::from_table(&table, ID, Path::new("/cg")).unwrap();
        assert_eq!(
            cg,
            Cgroup::V1 {
                memory: PathBuf::from(format!("/cg/memory/docker/{ID}")),
                cpuacct: PathBuf::from(format!("/cg/cpu,cpuacct/docker/{ID}")),
                pids: PathBuf::from(format!("/cg/pids/docker/{ID}")),
            }
        );
    }

    #[test]
    fn v2_is_the_unified_line() {
        let table = format!("0::/system.slice/docker-{ID}.scope\n");
        let cg = Cgroup::from_table(&table, ID, Path::new("/cg")).unwrap();
        assert_eq!(
            cg,
            Cgroup::V2(PathBuf::from(format!("/cg/system.slice/docker-{ID}.scope")))
        );
    }

    #[test]
    fn a_cgroup_that_does_not_name_the_container_is_refused() {
        // A reused pid, or a process seen through another cgroup namespace.
        let table = "4:memory:/user.slice\n2:cpu,cpuacct:/\n12:pids:/\n0::/\n";
        assert_eq!(Cgroup::from_table(table, ID, Path::new("/cg")), None);
        assert_eq!(Cgroup::of_process(0, ID), None);
    }

    #[test]
    fn readings_are_shaped_as_the_engine_s_samples() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("cpu.stat"), "usage_usec 1500\nuser_usec 1000\n").unwrap();
        std::fs::write(d.join("memory.current"), "4096000\n").unwrap();
        std::fs::write(d.join("memory.max"), "max\n").unwrap();
        std::fs::write(d.join("memory.stat"), "anon 10\ninactive_file 96000\n").unwrap();
        std::fs::write(d.join("pids.current"), "3\n").unwrap();
        let raw = Cgroup::V2(d.to_path_buf()).read().unwrap();
        let s = crate::monitor::sample(&raw);
        assert_eq!(s.memory_bytes, 4_000_000);
        assert_eq!(s.memory_limit, 0);
        assert_eq!(s.pids, Some(3));
        let cpu = raw.cpu_stats.unwrap().cpu_usage.unwrap().total_usage;
        assert_eq!(cpu, Some(1_500_000));
        assert!(humantime::parse_rfc3339(&raw.read.unwrap()).is_ok());

        std::fs::remove_file(d.join("memory.current")).unwrap();
        assert!(
            Cgroup::V2(d.to_path_buf()).read().is_none(),
            "a removed cgroup ends the readings"
        );
    }
}
