//! Finishing what a dead sandpen left: its containers, its tasks' uncollected work, its report.
//! A run is dead when its lease is free (see `owner`), or, for containers of older runs without
//! a run directory label, when its `<host>:<pid>` is gone.

mod finish;

pub use finish::finish_run;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::engine::ListedContainer;
use crate::engine::spec::{LABEL_OWNER, LABEL_OWNER_START, LABEL_RUN, LABEL_RUN_DIR};
use crate::owner::{Lease, LeaseState, OwnerState, lease_held, lease_state, owner_state};
use crate::workspace::RunDir;

/// The containers of one run, as the engine lists them.
#[derive(Debug)]
pub struct RunOnEngine {
    pub run_id: String,
    pub run_dir: Option<PathBuf>,
    pub containers: Vec<ListedContainer>,
}

/// Groups labelled containers by run.
pub fn by_run(containers: Vec<ListedContainer>) -> Vec<RunOnEngine> {
    let mut runs: BTreeMap<String, RunOnEngine> = BTreeMap::new();
    for c in containers {
        let run_id = c.labels.get(LABEL_RUN).cloned().unwrap_or_else(|| "?".into());
        let run = runs.entry(run_id.clone()).or_insert_with(|| RunOnEngine {
            run_id,
            run_dir: c.labels.get(LABEL_RUN_DIR).map(PathBuf::from),
            containers: Vec::new(),
        });
        run.containers.push(c);
    }
    runs.into_values().collect()
}

/// Whether the run's sandpen lives: by its lease when the run directory is reachable, else by
/// the owner label of its first container.
pub fn judge(run: &RunOnEngine) -> OwnerState {
    if let Some(held) = run
        .run_dir
        .as_ref()
        .and_then(|d| lease_held(&RunDir::new(d).lease()))
    {
        return if held { OwnerState::Alive } else { OwnerState::Gone };
    }
    let Some(c) = run.containers.first() else {
        return OwnerState::Unknown;
    };
    let label = |k: &str| c.labels.get(k).map(String::as_str);
    owner_state(label(LABEL_OWNER), label(LABEL_OWNER_START))
}

/// Judges the run as `judge` does and, when its owner is gone, takes its lease: Ok while
/// this process may finish the run (the lease is None only for a run without a reachable
/// directory), Err with why it is kept. Two `gc`s at once thus never finish the same run
/// (seen before: both collected the same checkout, and the second's failure replaced the
/// first's report).
pub fn claim(run: &RunOnEngine) -> Result<Option<Lease>, OwnerState> {
    let lease = run.run_dir.as_ref().map(|d| lease_state(&RunDir::new(d).lease()));
    match lease {
        Some(LeaseState::Free(lease)) => Ok(Some(lease)),
        Some(LeaseState::Held) => Err(OwnerState::Alive),
        None | Some(LeaseState::Missing) => match judge(run) {
            OwnerState::Gone => Ok(None),
            state => Err(state),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn container(run: &str, dir: Option<&std::path::Path>, owner: &str) -> ListedContainer {
        let mut labels = HashMap::from([
            (LABEL_RUN.to_string(), run.to_string()),
            (LABEL_OWNER.to_string(), owner.to_string()),
        ]);
        if let Some(d) = dir {
            labels.insert(LABEL_RUN_DIR.into(), d.display().to_string());
        }
        ListedContainer {
            id: format!("id-{run}"),
            name: run.into(),
            labels,
            state: "running".into(),
        }
    }

    #[test]
    fn the_lease_decides_whatever_the_owner_label_says() {
        let dir = tempfile::tempdir().unwrap();
        let layout = RunDir::new(dir.path());
        std::fs::create_dir_all(layout.internal()).unwrap();
        // A host name from inside a container: meaningless here.
        let runs = by_run(vec![container("r1", Some(dir.path()), "a1b2c3d4e5f6:1")]);
        assert_eq!(runs.len(), 1);
        let lease = crate::owner::Lease::take(&layout.lease()).unwrap();
        assert_eq!(judge(&runs[0]), OwnerState::Alive);
        drop(lease);
        assert_eq!(judge(&runs[0]), OwnerState::Gone);
        let claimed = claim(&runs[0]).expect("gone: gc may finish it");
        assert!(claimed.is_some(), "and holds its lease meanwhile");
        assert_eq!(judge(&runs[0]), OwnerState::Alive, "for a second gc");
        assert!(claim(&runs[0]).is_err());
        drop(claimed);
        // No run directory to judge by: the owner label decides.
        let old = by_run(vec![container("r2", None, "other-host:1")]);
        assert_eq!(judge(&old[0]), OwnerState::Elsewhere("other-host".into()));
        assert_eq!(
            claim(&old[0]).unwrap_err(),
            OwnerState::Elsewhere("other-host".into())
        );
    }
}
