//! Where prompt files may come from and how large they may be.
//!
//! A task file can name any path as its `prompt`, and the prompt goes to the model: without a
//! rule, `prompt = "../../../../home/me/.ssh/id_ed25519"` in a task file from someone else
//! would send a secret away. So a prompt file must really be (after every symlink) inside the
//! directory of the file that names it or inside the repository, unless the user says
//! otherwise with `--allow-outside-prompts`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::FileType;

use super::read::{ReadError, check_regular, read_bounded};

/// `--max-prompt-size` when not given: 1 MiB.
pub const DEFAULT_MAX_PROMPT_BYTES: u64 = 1024 * 1024;

/// The rules for prompts, handed to [`super::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptPolicy {
    /// Directories a prompt file may be in besides the directory of the file naming it
    /// (the repository's top). Compared after resolving symlinks on both sides.
    pub roots: Vec<PathBuf>,
    /// `--allow-outside-prompts`: lifts the location rule only.
    pub allow_outside: bool,
    /// `--max-prompt-size`, in bytes, for prompt files and inline prompts alike.
    pub max_bytes: u64,
}

impl Default for PromptPolicy {
    /// Prompts only beside the files naming them, at most 1 MiB.
    fn default() -> Self {
        Self {
            roots: Vec::new(),
            allow_outside: false,
            max_bytes: DEFAULT_MAX_PROMPT_BYTES,
        }
    }
}

/// Who names a prompt file, and so which directory it may be in besides the roots.
#[derive(Debug, Clone, Copy)]
pub(super) enum NamedBy<'a> {
    /// A task file's `prompt` key: the task file's directory (resolved, see [`dir_of`]).
    TaskFile(&'a Path),
    /// The command line: the file's own directory (so only a symlink can lead out of it).
    CommandLine,
}

/// A refused prompt: what is wrong and how to fix it (the caller adds where).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    pub problem: String,
    pub fix: String,
}

impl PromptPolicy {
    /// The policy for a run: the repository around `repo` (`--repo DIR`), or around the
    /// working directory, is a root.
    pub fn for_run(repo: Option<&Path>, allow_outside: bool, max_bytes: u64) -> Self {
        let start = repo
            .map(Path::to_path_buf)
            .or_else(|| std::env::current_dir().ok());
        Self {
            roots: start.as_deref().and_then(repo_top).into_iter().collect(),
            allow_outside,
            max_bytes,
        }
    }

    /// The text of the prompt file at `path`: a regular file, inside the directory `by`
    /// allows or a root (unless allowed outside), at most `max_bytes` of UTF-8.
    pub(super) fn read(&self, path: &Path, by: NamedBy) -> Result<String, Refusal> {
        let real = std::fs::canonicalize(path).map_err(|e| {
            refusal(if e.kind() == std::io::ErrorKind::NotFound {
                ReadError::NotFound
            } else {
                ReadError::Other(e.to_string())
            })
        })?;
        // Messages about a symlink or a `..` say where it leads.
        let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let with_target = |mut r: Refusal| {
            if real != shown {
                r.problem
                    .push_str(&format!(" (it resolves to {})", real.display()));
            }
            r
        };
        // The kind first: that is a problem --allow-outside-prompts would not fix.
        let meta =
            std::fs::metadata(&real).map_err(|e| with_target(refusal(ReadError::Other(e.to_string()))))?;
        check_regular(FileType::from_raw_mode(meta.mode())).map_err(|e| with_target(refusal(e)))?;
        let (dir, dir_is, fix) = match by {
            NamedBy::TaskFile(dir) => (
                dir.to_path_buf(),
                "the task file's directory",
                "move the prompt file into the task file's directory or the repository",
            ),
            NamedBy::CommandLine => (
                dir_of(path),
                "the directory of the link",
                "copy the file into the repository instead of linking to it",
            ),
        };
        if !self.allow_outside && !self.is_inside(&real, &dir) {
            let roots = match self.roots.as_slice() {
                [] => "no repository was found (no .git above the working directory or --repo)".to_string(),
                roots => {
                    let shown: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
                    format!("the repository ({})", shown.join(", "))
                }
            };
            return Err(with_target(Refusal {
                problem: format!("is outside {dir_is} ({}) and {roots}", dir.display()),
                fix: format!(
                    "{fix}, or pass --allow-outside-prompts to read prompt files from anywhere \
                     (they must still be regular files within --max-prompt-size)"
                ),
            }));
        }
        read_bounded(&real, self.max_bytes, false).map_err(|e| with_target(refusal(e)))
    }

    /// Checks an inline prompt against the size limit.
    pub(super) fn check_inline(&self, text: &str) -> Result<(), Refusal> {
        let size = text.len() as u64;
        if size > self.max_bytes {
            return Err(refusal(ReadError::TooLarge {
                size,
                max: self.max_bytes,
            }));
        }
        Ok(())
    }

    fn is_inside(&self, real: &Path, dir: &Path) -> bool {
        std::iter::once(dir)
            .chain(self.roots.iter().map(PathBuf::as_path))
            .any(|root| real.starts_with(root))
    }
}

fn refusal(e: ReadError) -> Refusal {
    let fix = match e {
        ReadError::NotFound => "prompt paths are relative to the task file's directory; correct \
                                the path, or write the prompt inline with `prompt_text`"
            .to_string(),
        ReadError::NotRegular(_) => "a prompt must be a regular text file; copy the text into \
                                     one, or write it inline with `prompt_text`"
            .to_string(),
        ReadError::TooLarge { max, .. } => format!(
            "shorten the prompt, or raise the limit with --max-prompt-size (now {max} bytes; \
             e.g. --max-prompt-size 4m)"
        ),
        ReadError::NotUtf8 | ReadError::Other(_) => "make it a readable UTF-8 text file".into(),
    };
    Refusal {
        problem: e.to_string(),
        fix,
    }
}

/// The directory of `file` with every symlink resolved, as prompt paths are compared: looked
/// up once per input file.
pub(super) fn dir_of(file: &Path) -> PathBuf {
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// The repository's top around `start`, found without running git: the first directory,
/// walking up from `start` (resolved), that holds a `.git` entry (a directory, or a file in a
/// worktree).
pub fn repo_top(start: &Path) -> Option<PathBuf> {
    let start = std::fs::canonicalize(start).ok()?;
    start
        .ancestors()
        .find(|dir| dir.join(".git").symlink_metadata().is_ok())
        .map(Path::to_path_buf)
}
