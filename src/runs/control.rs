//! How `sandpen stop` reaches a run's owning process: a request is a file in the run's
//! `_sandpen/control/`, which the owner reads every quarter second and removes once applied.
//! Files rather than a signal or a socket, for the reasons the lease is a file: they need
//! nothing but the run directory (sandpen may run in a container, where its pid means nothing
//! outside), have no path-length limit, and only who may write the run directory may stop it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::workspace::RunDir;

/// How often the owner looks for requests.
pub const POLL: Duration = Duration::from_millis(250);

/// What `sandpen stop` asks of the run's owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopRequest {
    /// One task; None stops the whole run (as Ctrl-C in the run's terminal does).
    pub task: Option<String>,
}

/// Leaves a request for the run's owner; its path, which disappears once the owner took it.
pub fn send(layout: &RunDir, request: &StopRequest) -> std::io::Result<PathBuf> {
    let dir = layout.control();
    std::fs::create_dir_all(&dir)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let name = format!("stop-{}-{nanos}", std::process::id());
    // Written aside and renamed into place: the owner never reads half a request.
    let part = dir.join(format!(".{name}.part"));
    std::fs::write(&part, serde_json::to_vec(request)?)?;
    let path = dir.join(format!("{name}.json"));
    std::fs::rename(&part, &path)?;
    Ok(path)
}

/// The requests waiting in the run directory, each removed as it is read (oldest first).
/// Unreadable ones are removed too: they would be read again every time.
pub fn take(layout: &RunDir) -> Vec<StopRequest> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(layout.control())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .filter_map(|p| {
            let request = read(p);
            let _ = std::fs::remove_file(p);
            request
        })
        .collect()
}

fn read(path: &Path) -> Option<StopRequest> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Applies every request as it arrives, until the run ends (the caller aborts this). Each look
/// (a directory listing, reads, removals) runs off the async workers, one at a time.
pub async fn serve(layout: RunDir, apply: impl Fn(StopRequest) + Send + 'static) {
    loop {
        let look = layout.clone();
        let taken = tokio::task::spawn_blocking(move || take(&look))
            .await
            .unwrap_or_default();
        for request in taken {
            apply(request);
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_taken_once_in_order_and_junk_is_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let layout = RunDir::new(dir.path());
        assert!(take(&layout).is_empty(), "no control directory yet");
        let run = StopRequest { task: None };
        let one = StopRequest {
            task: Some("t1".into()),
        };
        let a = send(&layout, &one).unwrap();
        let b = send(&layout, &run).unwrap();
        std::fs::write(layout.control().join("junk.json"), "{").unwrap();
        assert!(a.exists() && b.exists());
        let taken = take(&layout);
        assert!(taken.contains(&one) && taken.contains(&run), "{taken:?}");
        assert_eq!(taken.len(), 2, "the unreadable one is not a request");
        assert!(!a.exists() && !b.exists(), "taken requests disappear");
        assert_eq!(std::fs::read_dir(layout.control()).unwrap().count(), 0);
        assert!(take(&layout).is_empty(), "each is taken once");
    }
}
