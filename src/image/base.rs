//! The base image: present, pulled, or made offline with debootstrap and imported through the
//! Engine API (for machines that reach Debian's mirror but no image registry).
//!
//! What sandpen makes is tagged with sandpen's own name ([`OFFLINE_BASE`]), never as Debian's
//! `debian:bookworm-slim`: on a shared engine, other users' `FROM debian:bookworm-slim` would
//! otherwise silently build on sandpen's root filesystem.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::{DEFAULT_BASE, ImageError, ImageEvent, OFFLINE_BASE};
use crate::engine::{Engine, EngineError};

/// How to make a base image offline.
#[derive(Debug, Clone)]
pub struct BootstrapOptions {
    pub base: String,
    pub suite: String,
    pub mirror: String,
    pub force: bool,
}

impl BootstrapOptions {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_string(),
            suite: "bookworm".into(),
            mirror: "http://deb.debian.org/debian".into(),
            force: false,
        }
    }
}

/// Which base a build asks for, and what may stand in for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseChoice {
    /// The image to build from, pulled when absent.
    pub preferred: String,
    /// sandpen's own base, made offline with debootstrap, used when `preferred` cannot be had
    /// (and made when bootstrapping is allowed). None when the user named a base: theirs wins.
    pub offline: Option<String>,
}

impl BaseChoice {
    /// For `--base`: the default base may be stood in for by [`OFFLINE_BASE`]; any other
    /// base is that base or nothing.
    pub fn for_base(base: &str) -> Self {
        Self {
            preferred: base.to_string(),
            offline: (base == DEFAULT_BASE).then(|| OFFLINE_BASE.to_string()),
        }
    }

    /// The base on this engine now, without pulling: `(name, id)`.
    pub async fn present(&self, engine: &Engine) -> Result<Option<(String, String)>, ImageError> {
        for name in std::iter::once(&self.preferred).chain(&self.offline) {
            if let Some(id) = engine.image_id(name).await? {
                return Ok(Some((name.clone(), id)));
            }
        }
        Ok(None)
    }
}

/// The name and id of the base to build from: the preferred base when present or pullable,
/// else the offline base when present, else (when `allow_bootstrap` is set) the offline base
/// made with debootstrap. Pulling comes first, so that a machine that reaches a registry
/// builds on Debian's own image.
pub async fn ensure_base(
    engine: &Engine,
    choice: &BaseChoice,
    allow_bootstrap: bool,
    on_event: &mut dyn FnMut(ImageEvent),
) -> Result<(String, String), ImageError> {
    let base = &choice.preferred;
    if let Some(id) = engine.image_id(base).await? {
        return Ok((base.clone(), id));
    }
    let pulled = engine
        .pull_image(base, |status| {
            on_event(ImageEvent::PullingBase {
                base: base.to_string(),
                status: status.to_string(),
            })
        })
        .await;
    let reason = match pulled {
        Ok(()) => {
            let id = engine
                .image_id(base)
                .await?
                .ok_or_else(|| ImageError::BaseUnavailable {
                    base: base.to_string(),
                    reason: "the pull ended but the engine has no such image".into(),
                    offline: choice.offline.clone(),
                })?;
            return Ok((base.clone(), id));
        }
        Err(EngineError::Api { reason, .. }) => reason,
        Err(e) => return Err(e.into()),
    };
    let unavailable = || ImageError::BaseUnavailable {
        base: base.to_string(),
        reason: reason.clone(),
        offline: choice.offline.clone(),
    };
    let Some(offline) = &choice.offline else {
        return Err(unavailable());
    };
    if let Some(id) = engine.image_id(offline).await? {
        on_event(ImageEvent::StandIn {
            line: format!("pulling {base} failed ({reason}); building on {offline}, made offline by sandpen"),
        });
        return Ok((offline.clone(), id));
    }
    if !allow_bootstrap {
        return Err(unavailable());
    }
    on_event(ImageEvent::Bootstrap {
        line: format!("pulling {base} failed ({reason}); making {offline} with debootstrap"),
    });
    let id = bootstrap_base(engine, &BootstrapOptions::new(offline), on_event).await?;
    Ok((offline.clone(), id))
}

/// Makes `opts.base` with `debootstrap --variant=minbase` and imports it (`docker import`
/// through the Engine API). Returns the image id. Needs root and debootstrap on the host.
/// An image already under that tag is kept unless `opts.force` is set.
pub async fn bootstrap_base(
    engine: &Engine,
    opts: &BootstrapOptions,
    on_event: &mut dyn FnMut(ImageEvent),
) -> Result<String, ImageError> {
    let fail = |reason: String| ImageError::Bootstrap {
        base: opts.base.clone(),
        reason,
    };
    if !opts.force
        && let Some(id) = engine.image_id(&opts.base).await?
    {
        on_event(ImageEvent::Bootstrap {
            line: format!("{} is already present", opts.base),
        });
        return Ok(id);
    }
    let debootstrap = find_program("debootstrap").ok_or_else(|| {
        fail("debootstrap is not installed\nfix: `apt-get install -y debootstrap` (Debian/Ubuntu)".into())
    })?;
    if !is_root() {
        return Err(fail(
            "debootstrap needs root\nfix: run it as root, e.g. `sudo sandpen image bootstrap-base`".into(),
        ));
    }
    let (repo, tag) = split_reference(&opts.base);
    let rootfs = tempfile::Builder::new()
        .prefix("sandpen-rootfs-")
        .tempdir()
        .map_err(|e| fail(format!("making a temporary directory: {e}")))?;

    on_event(ImageEvent::Bootstrap {
        line: format!("debootstrap {} from {} (about 30 s)", opts.suite, opts.mirror),
    });
    let mut child = Command::new(&debootstrap)
        .args(["--variant=minbase", "--include=git,ca-certificates", &opts.suite])
        .arg(rootfs.path())
        .arg(&opts.mirror)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("starting debootstrap: {e}")))?;
    let mut lines = forward_lines(&mut child);
    let mut tail: Vec<String> = Vec::new();
    while let Some(line) = lines.next().await {
        tail.push(line.clone());
        if tail.len() > 20 {
            tail.remove(0);
        }
        on_event(ImageEvent::Bootstrap { line });
    }
    let status = child
        .wait()
        .await
        .map_err(|e| fail(format!("waiting for debootstrap: {e}")))?;
    if !status.success() {
        return Err(fail(format!(
            "debootstrap failed ({status}):\n{}",
            tail.join("\n")
        )));
    }

    on_event(ImageEvent::Bootstrap {
        line: format!("importing the root filesystem as {repo}:{tag}"),
    });
    let mut tar = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(rootfs.path())
        .args(["-c", "."])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("starting tar: {e}")))?;
    let stdout = tar.stdout.take().expect("stdout is piped");
    let body = tokio_util::io::ReaderStream::with_capacity(stdout, 256 * 1024);
    let message = format!(
        "sandpen image bootstrap-base: debootstrap {} {}",
        opts.suite, opts.mirror
    );
    engine.import_rootfs(body, &repo, &tag, &message).await?;
    let out = tar
        .wait_with_output()
        .await
        .map_err(|e| fail(format!("waiting for tar: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "tar of the root filesystem failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    engine
        .image_id(&opts.base)
        .await?
        .ok_or_else(|| fail("the import ended but the engine has no such image".into()))
}

/// `repo[:tag]` split the way the engine does: a colon after the last slash starts the tag.
fn split_reference(reference: &str) -> (String, String) {
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
        _ => (reference.to_string(), "latest".to_string()),
    }
}

/// Searches PATH and the sbin directories, which a non-root PATH often lacks.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The owner of /proc/self is the process's effective uid.
fn is_root() -> bool {
    Path::new("/proc/self")
        .metadata()
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Merges a child's stdout and stderr into one stream of lines.
fn forward_lines(child: &mut tokio::process::Child) -> impl futures_util::Stream<Item = String> + use<> {
    let out = child.stdout.take().map(|s| lines_of(BufReader::new(s)));
    let err = child.stderr.take().map(|s| lines_of(BufReader::new(s)));
    futures_util::stream::select(
        futures_util::stream::iter(out).flatten().boxed(),
        futures_util::stream::iter(err).flatten().boxed(),
    )
}

fn lines_of<R: tokio::io::AsyncBufRead + Unpin + Send + 'static>(
    reader: R,
) -> impl futures_util::Stream<Item = String> + Send {
    futures_util::stream::unfold(reader.lines(), |mut lines| async move {
        lines.next_line().await.ok().flatten().map(|l| (l, lines))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_like_the_engine() {
        assert_eq!(
            split_reference("debian:bookworm-slim"),
            ("debian".into(), "bookworm-slim".into())
        );
        assert_eq!(split_reference("debian"), ("debian".into(), "latest".into()));
        assert_eq!(
            split_reference("localhost:5000/debian"),
            ("localhost:5000/debian".into(), "latest".into())
        );
        assert_eq!(
            split_reference("localhost:5000/debian:12"),
            ("localhost:5000/debian".into(), "12".into())
        );
    }
}
