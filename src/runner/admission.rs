//! What may start now: the run's concurrency limits as data, checked in one place. A task
//! takes a slot of `--jobs` and its memory limit from the engine's memory (`MemTotal`), and
//! gives both back when it is done. Limits are cgroup limits, not use: the point is that the
//! tasks running at once could all use what they are allowed without the engine running out.

use crate::engine::spec::Limits;

/// Why a ready task does not start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Start,
    /// Every slot of `--jobs` is taken.
    NoSlot,
    /// Its memory limit does not fit beside the running tasks' limits.
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

    /// Whether a task with these limits may start now. A task alone always may: one larger
    /// than the engine is refused before the run (`Plan::check_memory`), and must not wait
    /// forever if it gets here anyway.
    pub fn check(&self, limits: &Limits) -> Verdict {
        if self.running >= self.jobs {
            return Verdict::NoSlot;
        }
        let needs = memory(limits);
        if self.memory_total == 0 || self.running == 0 || self.reserved + needs <= self.memory_total {
            return Verdict::Start;
        }
        Verdict::Memory {
            needs,
            free: self.memory_total.saturating_sub(self.reserved),
            total: self.memory_total,
        }
    }

    pub fn take(&mut self, limits: &Limits) {
        self.running += 1;
        self.reserved += memory(limits);
    }

    pub fn release(&mut self, limits: &Limits) {
        self.running = self.running.saturating_sub(1);
        self.reserved = self.reserved.saturating_sub(memory(limits));
    }
}

fn memory(limits: &Limits) -> u64 {
    limits.memory_bytes.max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn mem(bytes: u64) -> Limits {
        Limits {
            nano_cpus: 1_000_000_000,
            memory_bytes: bytes as i64,
            pids: 64,
        }
    }

    #[test]
    fn memory_limits_add_up_to_the_engines_memory_and_no_more() {
        let mut a = Admission::new(8, 23 * GIB);
        assert_eq!(a.check(&mem(10 * GIB)), Verdict::Start);
        a.take(&mem(10 * GIB));
        a.take(&mem(10 * GIB));
        let third = a.check(&mem(10 * GIB));
        assert_eq!(
            third,
            Verdict::Memory {
                needs: 10 * GIB,
                free: 3 * GIB,
                total: 23 * GIB
            }
        );
        assert_eq!(
            a.check(&mem(3 * GIB)),
            Verdict::Start,
            "exactly what is free fits"
        );
        a.release(&mem(10 * GIB));
        assert_eq!(a.check(&mem(10 * GIB)), Verdict::Start);
    }

    #[test]
    fn the_jobs_limit_comes_first_and_unknown_memory_checks_nothing() {
        let mut a = Admission::new(1, 0);
        assert_eq!(a.check(&mem(100 * GIB)), Verdict::Start);
        a.take(&mem(100 * GIB));
        assert_eq!(a.check(&mem(GIB)), Verdict::NoSlot);
    }

    #[test]
    fn a_task_larger_than_the_engine_starts_alone_rather_than_never() {
        let mut a = Admission::new(4, 8 * GIB);
        assert_eq!(a.check(&mem(16 * GIB)), Verdict::Start);
        a.take(&mem(GIB));
        assert!(matches!(a.check(&mem(16 * GIB)), Verdict::Memory { .. }));
    }
}
