//! The tar of a task's files that the exchange sends (`GET /v1/TOKEN/files`), packed as it is
//! sent: the checkout at `workspace/`, every other mount at its target, the borrowed store as
//! the pack of what the checkout needs (`history.rs`).

use std::io::Write;

use super::Delivery;
use super::history::{self, Packs};
use crate::workspace::OBJECTS_MOUNT;

/// A writer that counts what went through it.
pub(super) struct Counted<W> {
    pub into: W,
    pub bytes: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.into.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.into.flush()
    }
}

/// The tar the entry step unpacks at `/`, written into `into`. The borrowed store goes as a
/// pack of what the checkout needs when `packs` can make one, else whole.
pub(super) fn pack<W: Write>(d: &Delivery, packs: Option<&Packs>, into: W) -> std::io::Result<W> {
    let mut tar = tar::Builder::new(into);
    tar.follow_symlinks(false);
    tar.mode(tar::HeaderMode::Complete);
    let workdir = crate::engine::spec::WORKDIR.trim_start_matches('/');
    tar.append_dir_all(workdir, &d.workspace)?;
    for m in &d.mounts {
        let target = m.target.trim_start_matches('/');
        let history = (m.target == OBJECTS_MOUNT && m.source.is_dir())
            .then_some(packs)
            .flatten()
            .map(|p| p.for_checkout(&d.workspace, &m.source));
        if let Some(made) = history {
            match made {
                Ok(dir) => {
                    tar.append_dir_all(target, dir)?;
                    // A second entry for the same file: unpacked later, it wins.
                    let config = history::partial_config(&d.workspace)?;
                    let mut h = tar::Header::new_gnu();
                    h.set_size(config.len() as u64);
                    h.set_mode(0o644);
                    h.set_mtime(0);
                    tar.append_data(&mut h, format!("{workdir}/.git/config"), &config[..])?;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(task = %d.task, "packing the task's history ({e}): it gets the whole store")
                }
            }
        }
        if m.source.is_dir() {
            tar.append_dir_all(target, &m.source)?;
        } else {
            tar.append_path_with_name(&m.source, target)?;
        }
    }
    let mut into = tar.into_inner()?;
    into.flush()?;
    Ok(into)
}
