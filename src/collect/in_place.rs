//! Collection in the task's own container, once its CLI has ended by itself: the same script
//! as the sandbox's, run by the container's shell before it exits, so that a task costs one
//! container, not two (a container's start and removal is most of a short task's cost).
//!
//! It confines git exactly as the sandbox does: same image, same user, same limits, and no
//! host process reads the task's tree. What differs is whom it shares the container with: the
//! task's leftover background processes, and the task's network. Neither reaches anything the
//! task did not already have, and the host trusts nothing the script writes: the bundle and the
//! hints are untrusted data either way, read as regular files only after the engine confirmed
//! the container gone. A task that forges them forges only its own result, which it controls
//! anyway. When the CLI was stopped (timeout, Ctrl-C, governance, disk), when there is too
//! little time left before the task's timeout, or when the script did not report success, the
//! sandbox collects as before.

use std::path::Path;
use std::time::Duration;

use super::sandbox::{self, Hints};
use super::{CollectError, Job};
use crate::engine::spec::BindMount;

/// Where the script is mounted in the task's container.
const SCRIPT_MOUNT: &str = "/run/sandpen/collect.sh";
/// Files of the out directory: the script's hints, its errors, and its exit code (written
/// last, in one write: a container stopped before it leaves no file or an empty one, never
/// "0", so the host reads "0" only from a script that ended well).
const HINTS: &str = "hints";
const DONE: &str = "done";
/// The script starts only with this much time left before the task's timeout, and is stopped
/// this long before it (the shell counts whole seconds): the host's timer must never find it
/// running, or a task that ended in time would be called timed out.
const MIN_LEFT: u64 = 5;
const MARGIN: u64 = 3;
/// The most of the hints the host reads.
const HINTS_LIMIT: u64 = 256 * 1024;

/// What a task's container needs to collect in place: mounts, and the shell lines its command
/// runs after the CLI ended by itself.
#[derive(Debug, Clone)]
pub struct InPlace {
    pub mounts: Vec<BindMount>,
    pub shell: String,
    /// The collection alone, within `$left` seconds: what a container far from sandpen's disk
    /// runs after its command however that ended (`swarm::entry` sets `$left`).
    pub collect: String,
}

/// Prepares the out directory (as for the sandbox) and says how the container collects.
/// `timeout`: the task's, counted by the host from the container's start.
pub async fn prepare(job: &Job<'_>, timeout: Duration) -> Result<InPlace, CollectError> {
    let out_dir = job.run.collect_out(job.task);
    let (start_refs, since) = super::start_refs(job).await?;
    sandbox::prepare_out_dir(&out_dir, job, &start_refs)?;
    let script = job.run.collect_script();
    write_script(&script)?;
    // The checkout's borrowed objects are mounted for the task already.
    let mounts = vec![
        BindMount {
            source: out_dir,
            target: sandbox::OUT.into(),
            read_only: false,
            volume: false,
        },
        BindMount::read_only(script, SCRIPT_MOUNT),
    ];
    let args: Vec<String> = sandbox::script_args(job, since)
        .iter()
        .map(|a| quote(a))
        .collect();
    let env: Vec<String> = sandbox::env().iter().map(|a| quote(a)).collect();
    let out = sandbox::OUT;
    // Within `$left` seconds: the script, then its exit code.
    let collect = format!(
        "env -i PATH=\"$PATH\" {env} timeout -k 1 \"$left\" sh {SCRIPT_MOUNT} {args} > {out}/{HINTS} 2> {out}/errors < /dev/null\n\
         echo $? > {out}/{DONE}\n",
        env = env.join(" "),
        args = args.join(" "),
    );
    let shell = format!(
        "{now}left=$(({secs} - (now - started) - {MARGIN}))\n\
         if [ \"$left\" -ge {MIN_LEFT} ]; then\n{collect}fi\n",
        secs = timeout.as_secs(),
        now = crate::agent::now_seconds(),
    );
    Ok(InPlace {
        mounts,
        shell,
        collect,
    })
}

/// The hints of a collection done in place, if it ran to its end and succeeded. Read only
/// once the engine confirmed the container gone.
pub fn outcome(out_dir: &Path) -> Option<Hints> {
    let read = |name: &str, limit: u64| super::read_small_file(&out_dir.join(name), limit);
    if read(DONE, 16)?.trim() != "0" {
        return None;
    }
    Some(Hints::parse(&read(HINTS, HINTS_LIMIT)?))
}

/// Why a collection did not come back, as far as its out directory says (its errors, the
/// start of them), for the message.
pub fn errors(out_dir: &Path) -> String {
    let text = super::read_small_file(&out_dir.join("errors"), 4096).unwrap_or_default();
    match text.trim() {
        "" => "nothing came back".into(),
        t => format!(
            "the collection said: {}",
            t.lines().take(5).collect::<Vec<_>>().join(" / ")
        ),
    }
}

/// The run's copy of the script, written once (renamed in: tasks prepare at once).
/// The run's one copy of the script, written by whichever task prepares first. Tasks prepare
/// at once, so each writes through a temporary file of its own (a name shared by the process's
/// tasks lost renames, and the task lost its in-place collection: on a Swarm, its work).
fn write_script(path: &Path) -> Result<(), CollectError> {
    if path.is_file() {
        return Ok(());
    }
    crate::atomic_file::write_atomically(path, sandbox::SCRIPT.as_bytes())
        .map_err(|e| crate::workspace::WorkspaceError::io(format!("writing {}", path.display()), e).into())
}

/// One shell word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_preparing_at_once_all_get_the_script() {
        // Rounds of writers starting together: a lost rename shows in most rounds' worth.
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("collect.sh");
            let start = std::sync::Arc::new(std::sync::Barrier::new(32));
            let writers: Vec<_> = (0..32)
                .map(|_| {
                    let (path, start) = (path.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        write_script(&path).map_err(|e| e.to_string())
                    })
                })
                .collect();
            for w in writers {
                assert_eq!(w.join().unwrap(), Ok(()));
            }
            assert_eq!(std::fs::read_to_string(&path).unwrap(), sandbox::SCRIPT);
            let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
            assert_eq!(left.len(), 1, "no temporary file left: {left:?}");
        }
    }

    #[test]
    fn only_a_finished_successful_collection_counts() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(outcome(d).is_none(), "nothing ran");
        std::fs::write(d.join(HINTS), "sandpen-collect: head abc\n").unwrap();
        assert!(outcome(d).is_none(), "hints without the end");
        std::fs::write(d.join(DONE), "124\n").unwrap();
        assert!(outcome(d).is_none(), "the script failed or was cut");
        std::fs::write(d.join(DONE), "0\n").unwrap();
        assert_eq!(outcome(d).unwrap().head.as_deref(), Some("abc"));
        // A task could leave a link or a FIFO there: never followed, never blocking.
        std::fs::remove_file(d.join(HINTS)).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", d.join(HINTS)).unwrap();
        assert!(outcome(d).is_none());
    }

    #[test]
    fn words_are_quoted_for_the_shell() {
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("printf '%s|' {}", quote("it's a $HOME `x`"))])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's a $HOME `x`|");
    }
}
