//! What may start now: the run's concurrency limits as data, checked in one place. A task
//! takes a slot of `--jobs` and its memory *reservation* (`memory_request`) from the engine's
//! memory (`MemTotal`), and gives both back when it is done. The reservation is what a task is
//! expected to need, not its hard limit (`memory`): reserving the limit held a `-j 16` run of
//! the real CLI (which peaks near 250 MiB) at 5 tasks at once on a 23.5 GiB engine, as
//! Kubernetes tells requests from limits.

use serde::{Deserialize, Serialize};

/// Why a ready task does not start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Start,
    /// Every slot of `--jobs` is taken.
    NoSlot,
    /// Its reservation does not fit beside the running tasks' reservations.
    Memory {
        needs: u64,
        free: u64,
        total: u64,
    },
}

#[derive(Debug)]
pub struct Admission {
    jobs: usize,
    /// The engine's memory in bytes; 0 when unknown, which checks nothing.
    memory_total: u64,
    running: usize,
    reserved: u64,
}

impl Admission {
    pub fn new(jobs: usize, memory_total: u64) -> Self {
        Self {
            jobs,
            memory_total,
            running: 0,
            reserved: 0,
        }
    }

    /// Whether a task reserving `request` bytes may start now. A task alone always may: one
    /// larger than the engine is refused before the run (`Plan::check_memory`), and must not
    /// wait forever if it gets here anyway.
    pub fn check(&self, request: i64) -> Verdict {
        if self.running >= self.jobs {
            return Verdict::NoSlot;
        }
        let needs = bytes(request);
        if self.memory_total == 0 || self.running == 0 || self.reserved + needs <= self.memory_total {
            return Verdict::Start;
        }
        Verdict::Memory {
            needs,
            free: self.memory_total.saturating_sub(self.reserved),
            total: self.memory_total,
        }
    }

    pub fn take(&mut self, request: i64) {
        self.running += 1;
        self.reserved += bytes(request);
    }

    pub fn release(&mut self, request: i64) {
        self.running = self.running.saturating_sub(1);
        self.reserved = self.reserved.saturating_sub(bytes(request));
    }
}

fn bytes(request: i64) -> u64 {
    request.max(0) as u64
}

/// The engine's memory holds back `--jobs`: said when the run starts (an event), and in the
/// report with how many tasks waited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryHold {
    pub jobs: usize,
    /// How many of the first tasks' reservations fit in the engine at once.
    pub at_once: usize,
    /// The largest of those reservations.
    pub request_bytes: u64,
    pub total_bytes: u64,
    /// Tasks that waited for memory (0 in the event at the start).
    #[serde(default)]
    pub waited: usize,
}

impl MemoryHold {
    /// When the first `--jobs` tasks' reservations (in the plan's order, as the scheduler
    /// starts them) do not all fit in the engine's memory: how many do.
    pub fn estimate(jobs: usize, total: u64, requests: &[i64]) -> Option<Self> {
        let first = jobs.min(requests.len());
        if total == 0 || first == 0 {
            return None;
        }
        Some(Self::fit(jobs, total, requests)).filter(|h| h.at_once < first)
    }

    /// How many of the first `--jobs` reservations fit in `total` (at least one: a task alone
    /// always starts).
    pub fn fit(jobs: usize, total: u64, requests: &[i64]) -> Self {
        let first = &requests[..jobs.min(requests.len())];
        let mut sum = 0;
        let at_once = first
            .iter()
            .take_while(|r| {
                sum += bytes(**r);
                sum <= total
            })
            .count()
            .max(1);
        Self {
            jobs,
            at_once,
            request_bytes: first.iter().copied().map(bytes).max().unwrap_or(0),
            total_bytes: total,
            waited: 0,
        }
    }

    /// The hold in words, with the fix.
    pub fn describe(&self) -> String {
        let b = |n: u64| indicatif::HumanBytes(n).to_string();
        let waited = match self.waited {
            0 => String::new(),
            1 => "; 1 task waited for memory".into(),
            n => format!("; {n} tasks waited for memory"),
        };
        format!(
            "memory holds back -j {}: the engine's {} fits the memory reservations of {} tasks at \
             once ({} each){waited}\nfix: lower --memory-request (or `memory_request` in the task \
             file) if the tasks need less, or pass -j {} to say so",
            self.jobs,
            b(self.total_bytes),
            self.at_once,
            b(self.request_bytes),
            self.at_once
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn mem(bytes: u64) -> i64 {
        bytes as i64
    }

    #[test]
    fn memory_limits_add_up_to_the_engines_memory_and_no_more() {
        let mut a = Admission::new(8, 23 * GIB);
        assert_eq!(a.check(mem(10 * GIB)), Verdict::Start);
        a.take(mem(10 * GIB));
        a.take(mem(10 * GIB));
        let third = a.check(mem(10 * GIB));
        assert_eq!(
            third,
            Verdict::Memory {
                needs: 10 * GIB,
                free: 3 * GIB,
                total: 23 * GIB
            }
        );
        assert_eq!(a.check(mem(3 * GIB)), Verdict::Start, "exactly what is free fits");
        a.release(mem(10 * GIB));
        assert_eq!(a.check(mem(10 * GIB)), Verdict::Start);
    }

    #[test]
    fn the_jobs_limit_comes_first_and_unknown_memory_checks_nothing() {
        let mut a = Admission::new(1, 0);
        assert_eq!(a.check(mem(100 * GIB)), Verdict::Start);
        a.take(mem(100 * GIB));
        assert_eq!(a.check(mem(GIB)), Verdict::NoSlot);
    }

    #[test]
    fn a_task_larger_than_the_engine_starts_alone_rather_than_never() {
        let mut a = Admission::new(4, 8 * GIB);
        assert_eq!(a.check(mem(16 * GIB)), Verdict::Start);
        a.take(mem(GIB));
        assert!(matches!(a.check(mem(16 * GIB)), Verdict::Memory { .. }));
    }
}

#[cfg(test)]
mod hold_tests {
    use super::*;

    const GIB: i64 = 1 << 30;
    const MIB: i64 = 1 << 20;

    #[test]
    fn sixteen_default_reservations_fit_where_sixteen_limits_did_not() {
        let engine = 23 * GIB as u64 + GIB as u64 / 2;
        assert_eq!(MemoryHold::estimate(16, engine, &[512 * MIB; 16]), None);
        let held = MemoryHold::estimate(16, engine, &[4 * GIB; 16]).expect("held back");
        assert_eq!((held.at_once, held.request_bytes), (5, 4 << 30));
        let text = held.describe();
        assert!(
            text.contains("-j 16") && text.contains("5 tasks at once"),
            "{text}"
        );
        assert!(
            text.contains("--memory-request") && text.contains("-j 5"),
            "{text}"
        );
    }

    #[test]
    fn fewer_tasks_than_jobs_or_unknown_memory_hold_nothing() {
        assert_eq!(MemoryHold::estimate(16, 10 * GIB as u64, &[4 * GIB; 2]), None);
        assert_eq!(MemoryHold::estimate(16, 0, &[4 * GIB; 16]), None);
        let one = MemoryHold::estimate(4, GIB as u64, &[2 * GIB; 4]).unwrap();
        assert_eq!(one.at_once, 1, "a task alone always starts");
    }

    #[test]
    fn the_event_says_the_hold_as_json() {
        let hold = MemoryHold::estimate(8, 8 * GIB as u64, &[2 * GIB; 8]).unwrap();
        let json = serde_json::to_value(crate::runner::Event::MemoryHold { hold }).unwrap();
        assert_eq!(json["event"], "memory_hold");
        assert_eq!(
            (json["jobs"].as_u64(), json["at_once"].as_u64()),
            (Some(8), Some(4))
        );
    }
}
