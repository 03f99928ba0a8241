//! Bringing a task's work back, once its container is gone. Everything that reads the task's
//! working tree or its repository's config (status, add, the salvage commit, listing its
//! branches, the export) runs in a container: the task's own once its CLI ended by itself
//! (`in_place`), else the collection sandbox (`sandbox`): a short-lived container of the
//! task's own image, as the task's user, with no network, no credentials, the task's limits
//! and a time limit. The script writes a git bundle of HEAD, every branch the task
//! created or moved and the commits no branch reaches; the host copies it (a regular file,
//! read without following links and with a bound) and fetches those refs, and only those,
//! into the user's repository (`import`). Host-side git never runs in a task-controlled tree.

mod import;
mod in_place;
mod sandbox;

use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::engine::spec::{Limits, Owner};
use crate::engine::{ContainerEngine, EngineError};
use crate::workspace::{Repo, RunDir, WorkspaceError};

pub use in_place::{InPlace, prepare as prepare_in_place};
pub use sandbox::TIME_LIMIT;

/// What came back from a task's checkout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Collected {
    /// The branch in the user's repository holding the task's HEAD; None when HEAD is the base.
    pub branch: Option<String>,
    pub head: Option<String>,
    /// Commits on the branch beyond the base, the salvage commit included.
    pub commits: u32,
    /// Whether uncommitted work was saved as a commit.
    pub salvaged: bool,
    /// Uncommitted paths kept out of the salvage because they look like credentials (they
    /// stay in the checkout).
    pub left_out: Vec<String>,
    /// Uncommitted files kept out of the salvage by its bounds (`SalvageLimits`); they stay
    /// in the checkout.
    pub left_out_large: Vec<LargeFile>,
    /// The branch HEAD was on in the checkout; None for a detached HEAD.
    pub head_branch: Option<String>,
    /// Every other branch the task created or moved, as brought back.
    pub branches: Vec<BranchResult>,
    /// Branches beyond the first 1000, not brought back (they stay in the checkout).
    pub branches_not_collected: u32,
    /// Commits no branch reaches (a detached HEAD, a deleted branch, a stash), and the refs
    /// that keep those a detached HEAD does not.
    pub unreachable_commits: u32,
    pub unreachable_refs: Vec<String>,
    /// Tags the task created or moved: listed, not imported.
    pub tags: Vec<String>,
    /// Repositories nested in the checkout, and what the salvage did with each.
    pub nested_repos: Vec<NestedRepo>,
}

/// One of a task's branches, brought back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchResult {
    /// Its name in the task's checkout.
    pub task_branch: String,
    /// Its name in the user's repository.
    pub branch: String,
    /// Commits on it beyond the base.
    pub commits: u32,
    /// The commit it held when it came back (None in reports of older sandpens).
    #[serde(default)]
    pub tip: Option<String>,
}

/// An uncommitted file the salvage left out for its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LargeFile {
    pub path: String,
    pub bytes: u64,
}

/// What the salvage takes of a task's uncommitted files: none above `file_bytes`, and no more
/// than `total_bytes` in all (the smallest first). A task's leftovers are not a way to put
/// hundreds of megabytes into the user's repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SalvageLimits {
    pub file_bytes: u64,
    pub total_bytes: u64,
}

impl Default for SalvageLimits {
    fn default() -> Self {
        Self {
            file_bytes: 10 << 20,
            total_bytes: 100 << 20,
        }
    }
}

/// A repository nested in a task's checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NestedRepo {
    pub path: String,
    /// Its files are on the result branch (its own history is not).
    pub salvaged: bool,
    /// Why it was left as it was, when it was.
    pub reason: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("the collection sandbox: {0}")]
    Engine(#[from] EngineError),
    #[error("the collection sandbox exited with code {code}: {output}")]
    Sandbox { code: i64, output: String },
    #[error("the collection sandbox did not finish within {}s", TIME_LIMIT.as_secs())]
    TimedOut,
    #[error("the result bundle: {0}")]
    Bundle(String),
    #[error("the task's container did not send its work back ({0})")]
    NotReturned(String),
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
}

impl crate::exit::HasExitCode for CollectError {
    fn exit_code(&self) -> i32 {
        match self {
            Self::Engine(e) => e.exit_code(),
            Self::Workspace(e) => e.exit_code(),
            _ => crate::exit::FAILURE,
        }
    }
}

/// One task to collect: all plain data, so `gc` can collect a run whose sandpen died.
pub struct Job<'a> {
    pub repo: &'a Repo,
    pub run: &'a RunDir,
    pub owner: &'a Owner,
    pub task: &'a str,
    pub base: &'a str,
    pub image: &'a str,
    /// The task's uid:gid, and whether its checkout was handed to it (and must come back).
    pub user: (u32, u32),
    pub handed: bool,
    pub limits: Limits,
    /// The task's OCI runtime (`--runtime`), which the sandbox runs under too.
    pub runtime: Option<&'a str>,
    pub salvage: SalvageLimits,
    /// Whether what the task's container collected in place may be taken: not when sandpen
    /// stopped it (the script did not run, and whatever is there the task wrote).
    pub ended_by_itself: bool,
}

impl Job<'_> {
    fn run_id(&self) -> &str {
        &self.owner.run_id
    }
}

/// Takes what the task's container collected in place or else runs the sandbox, brings the
/// result into the user's repository, hands the checkout back.
pub async fn collect<E: ContainerEngine>(engine: &E, job: &Job<'_>) -> Result<Collected, CollectError> {
    let out_dir = job.run.collect_out(job.task);
    // A container far from sandpen's disk collected after its command however that ended, and
    // sent the result back: there is nothing else to take it from.
    let remote = !engine.shares_disk();
    let in_place = (job.ended_by_itself || remote)
        .then(|| in_place::outcome(&out_dir))
        .flatten();
    let hints = match in_place {
        Some(hints) => Ok(hints),
        None if remote => Err(CollectError::NotReturned(in_place::errors(&out_dir))),
        // Its failure too is returned only once the files are handed back below.
        None => in_sandbox(engine, job, &out_dir).await,
    };
    // Whatever the sandbox did, the files go back to their owner, and no git on the host may
    // read the task's repository from now on.
    let checkout = job.run.checkout(job.task);
    // Both are tried: a checkout that could not be handed back must not keep the out directory.
    let checkout_back = crate::workspace::hand_back(&checkout, job.handed, job.repo.owner).await;
    let out_back = crate::workspace::hand_back(&out_dir, job.handed, job.repo.owner).await;
    checkout_back.and(out_back)?;
    make_inert(checkout).await?;
    import::import(job, &out_dir, hints?).await
}

/// The sandbox's collection: the refs the checkout started from, the out directory, the run.
async fn in_sandbox<E: ContainerEngine>(
    engine: &E,
    job: &Job<'_>,
    out_dir: &std::path::Path,
) -> Result<sandbox::Hints, CollectError> {
    let (start_refs, since) = start_refs(job).await?;
    // Collected once already by a sandpen that died before it said so.
    crate::workspace::revive(&job.run.checkout(job.task))
        .map_err(|e| WorkspaceError::io("making the checkout a repository again", e))?;
    sandbox::prepare_out_dir(out_dir, job, &start_refs)?;
    sandbox::run_sandbox(engine, job, out_dir, since).await
}

/// `workspace::make_inert`, off the async workers.
async fn make_inert(checkout: std::path::PathBuf) -> Result<(), WorkspaceError> {
    let context = format!("moving the git directories of {} aside", checkout.display());
    let done = tokio::task::spawn_blocking(move || crate::workspace::make_inert(&checkout))
        .await
        .map_err(|e| WorkspaceError::io(&context, std::io::Error::other(e)))?
        .map_err(|e| WorkspaceError::io(&context, e))?;
    if done.incomplete {
        tracing::warn!("{context}: the tree is too large to walk whole; do not run git in it");
    }
    Ok(())
}

/// A small regular file, read without following links and within `limit` bytes: for files a
/// task's container wrote.
pub fn read_small_file(path: &std::path::Path, limit: u64) -> Option<String> {
    use std::io::Read;
    let file = import::open_regular_file(path, limit).ok()?;
    let mut text = String::new();
    file.take(limit).read_to_string(&mut text).ok()?;
    Some(text)
}

/// The commit `task` started from, as its checkout's recorded refs say (its branch at the
/// base): a dependency's result, perhaps, not the run's base. None when they do not say.
pub fn recorded_base(run: &RunDir, task: &str) -> Option<String> {
    let refs = std::fs::read_to_string(run.start_refs(task)).ok()?;
    base_in(&refs, task)
}

fn base_in(refs: &str, task: &str) -> Option<String> {
    let branch = format!("refs/heads/{}", crate::workspace::task_branch(task));
    refs.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(oid, name)| *name == branch && !oid.is_empty() && oid.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|(oid, _)| oid.to_string())
}

/// The checkout's refs as sandpen made it, and when (seconds since the epoch, a minute early).
/// A run from before sandpen recorded them (finished by `gc`) gets the user's refs instead:
/// what its clone copied.
async fn start_refs(job: &Job<'_>) -> Result<(String, u64), CollectError> {
    let path = job.run.start_refs(job.task);
    match std::fs::read_to_string(&path) {
        Ok(refs) => {
            let made = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs().saturating_sub(60));
            Ok((refs, made))
        }
        Err(_) => Ok((job.repo.ref_listing().await?, 0)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_recorded_base_is_the_task_branch_as_the_checkout_began() {
        let refs = "aaaa refs/heads/main\nbbbb refs/heads/sandpen/fix\ncccc refs/heads/sandpen/fix-2\n";
        assert_eq!(super::base_in(refs, "fix").as_deref(), Some("bbbb"));
        assert_eq!(super::base_in(refs, "fix-2").as_deref(), Some("cccc"));
        assert_eq!(super::base_in(refs, "other"), None);
        assert_eq!(super::base_in("zz! refs/heads/sandpen/fix\n", "fix"), None);
    }
}
