//! CPU time as the kernel counts it, around one measured command: the bench's waited-for
//! children (the command and every process it waited for: sandpen and its git processes, or
//! xargs and its docker CLIs) and the whole machine's busy time (the engine, its shims and the
//! containers included; meaningful on a quiet machine, as every figure is).

/// Clock ticks per second in /proc (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    /// Seconds of CPU of the bench's waited-for children.
    pub children: f64,
    /// Seconds of busy CPU of the whole machine (every core).
    pub machine: f64,
}

impl Cpu {
    pub fn now() -> Self {
        Self {
            children: children().unwrap_or(f64::NAN),
            machine: machine().unwrap_or(f64::NAN),
        }
    }

    /// What was spent since `self`.
    pub fn since(self) -> Self {
        let now = Self::now();
        Self {
            children: now.children - self.children,
            machine: now.machine - self.machine,
        }
    }

    /// "CPU per task X ms (Y ms <whose>)".
    pub fn per_task(&self, n: usize, whose: &str) -> String {
        let ms = |s: f64| 1000.0 * s / n as f64;
        format!(
            "CPU per task {:.0} ms ({:.0} ms {whose})",
            ms(self.machine),
            ms(self.children)
        )
    }
}

/// cutime + cstime of /proc/self/stat (fields 16 and 17), in seconds.
fn children() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command's name, which may hold spaces: the first is field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    Some((f.get(13)? + f.get(14)?) / TICKS)
}

/// user + nice + system + irq + softirq + steal of /proc/stat's first line, in seconds.
fn machine() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    Some([0, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum::<f64>() / TICKS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_child_counts_on_both_sides() {
        let before = Cpu::now();
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
            .status()
            .unwrap();
        assert!(status.success());
        let spent = before.since();
        assert!(spent.children > 0.05, "{spent:?}");
        assert!(spent.machine >= spent.children * 0.5, "{spent:?}");
    }
}
