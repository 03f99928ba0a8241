//! Who owns a run: this process's identity (`<host>:<pid>` plus its start time), the run's
//! lease, and whether the owner of a container is still alive. Used to label containers and
//! by `gc`.
//!
//! The lease is an exclusive `flock` on `<run>/_sandpen/lease`, held by the live sandpen
//! process for the whole run and released by the kernel when that process dies, however it
//! dies. A lock is a property of the file, not of a host name or a pid: it holds when
//! sandpen runs in a container (whose host name and pids mean nothing outside it), as long as
//! `gc` sees the same run directory.

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat): with the
/// pid it identifies a process, even after the pid is reused.
pub fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19).map(str::to_string)
}

/// The `sandpen.owner` label value for this process.
pub fn this_owner() -> String {
    format!("{}:{}", hostname(), std::process::id())
}

pub fn this_start_time() -> String {
    start_time(std::process::id()).unwrap_or_default()
}

/// The run's lease: held while this value lives.
#[derive(Debug)]
pub struct Lease {
    _file: std::fs::File,
}

impl Lease {
    /// Takes the lease of a new run.
    pub fn take(path: &std::path::Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        file.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => {
                std::io::Error::other("the run's lease is held by another process")
            }
            std::fs::TryLockError::Error(e) => e,
        })?;
        Ok(Self { _file: file })
    }
}

/// A run's lease as another process finds it.
#[derive(Debug)]
pub enum LeaseState {
    /// A live process holds it.
    Held,
    /// Free, and now held by this process while the value lives: its owner is gone, and no
    /// one else (a second `gc`) can take the run over meanwhile.
    Free(Lease),
    /// No lease file to judge by (or one this process cannot open).
    Missing,
}

/// Tries the lease at `path` without creating it.
pub fn lease_state(path: &std::path::Path) -> LeaseState {
    let Ok(file) = std::fs::OpenOptions::new().write(true).open(path) else {
        return LeaseState::Missing;
    };
    match file.try_lock() {
        Ok(()) => LeaseState::Free(Lease { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => LeaseState::Held,
        Err(std::fs::TryLockError::Error(_)) => LeaseState::Missing,
    }
}

/// Whether a live process holds the lease at `path`: Some(true) alive, Some(false) gone,
/// None when there is no lease file to judge by. Judging does not keep it.
pub fn lease_held(path: &std::path::Path) -> Option<bool> {
    match lease_state(path) {
        LeaseState::Held => Some(true),
        LeaseState::Free(_) => Some(false),
        LeaseState::Missing => None,
    }
}

/// What `gc` concludes about a container's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerState {
    Alive,
    Gone,
    /// Another host's process: sandpen cannot tell, so it leaves the container alone.
    Elsewhere(String),
    Unknown,
}

pub fn owner_state(owner: Option<&str>, start: Option<&str>) -> OwnerState {
    let Some((host, pid)) = owner.and_then(|o| o.rsplit_once(':')) else {
        return OwnerState::Unknown;
    };
    if host != hostname() {
        return OwnerState::Elsewhere(host.to_string());
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return OwnerState::Unknown;
    };
    match (start_time(pid), start) {
        (None, _) => OwnerState::Gone,
        // The pid is alive but is another process than the one that made the container.
        (Some(now), Some(then)) if !then.is_empty() && now != then => OwnerState::Gone,
        (Some(_), _) => OwnerState::Alive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_held_while_its_owner_lives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lease");
        assert_eq!(lease_held(&path), None, "no lease file");
        let lease = Lease::take(&path).unwrap();
        assert_eq!(lease_held(&path), Some(true));
        assert!(Lease::take(&path).is_err(), "one owner at a time");
        drop(lease);
        assert_eq!(lease_held(&path), Some(false));
        assert_eq!(lease_held(&path), Some(false), "judging does not take it");
        let claimed = lease_state(&path);
        assert!(matches!(claimed, LeaseState::Free(_)));
        assert!(
            matches!(lease_state(&path), LeaseState::Held),
            "claimed, it is held"
        );
        drop(claimed);
        assert_eq!(lease_held(&path), Some(false));
    }

    #[test]
    fn this_process_is_alive_and_a_dead_pid_is_gone() {
        let me = this_owner();
        assert_eq!(
            owner_state(Some(&me), Some(&this_start_time())),
            OwnerState::Alive
        );
        assert_eq!(
            owner_state(Some(&me), Some("1")),
            OwnerState::Gone,
            "same pid, other start time"
        );
        let dead = format!("{}:{}", hostname(), u32::MAX - 1);
        assert_eq!(owner_state(Some(&dead), None), OwnerState::Gone);
        assert_eq!(
            owner_state(Some("other-host:1"), None),
            OwnerState::Elsewhere("other-host".into())
        );
        assert_eq!(owner_state(None, None), OwnerState::Unknown);
    }
}
