//! Whether the run's base commit is a uv project, and the key of its environment.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::workspace::git_output;

/// The files of a project the preparation needs, as committed at the base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub pyproject: Vec<u8>,
    pub lock: Option<Vec<u8>>,
    /// `.python-version`, which picks the interpreter.
    pub python_version: Option<Vec<u8>>,
}

impl Project {
    /// The project at `commit` of the repository at `root`; None when it has no
    /// `pyproject.toml` at its top.
    pub async fn at(root: &Path, commit: &str) -> Result<Option<Self>, String> {
        let read = |name: &'static str| async move {
            let spec = format!("{commit}:{name}");
            let out = git_output(root, &["cat-file", "blob", spec.as_str()], &[]).await;
            match out {
                Ok(o) if o.status.success() => Ok(Some(o.stdout)),
                Ok(_) => Ok(None), // no such file at the commit
                Err(e) => Err(format!("reading {name} at {commit}: {e}")),
            }
        };
        let Some(pyproject) = read("pyproject.toml").await? else {
            return Ok(None);
        };
        Ok(Some(Self {
            pyproject,
            lock: read("uv.lock").await?,
            python_version: read(".python-version").await?,
        }))
    }

    /// The file the environment is made from.
    pub fn from(&self) -> &'static str {
        match self.lock {
            Some(_) => "uv.lock",
            None => "pyproject.toml",
        }
    }

    /// The environment's key: the image's id and the files that decide what `uv sync` makes
    /// (the lock when there is one, else the project file), hashed.
    pub fn key(&self, image_id: &str) -> String {
        let mut h = Sha256::new();
        let mut part = |name: &str, bytes: &[u8]| {
            h.update(name.as_bytes());
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        part("image", image_id.as_bytes());
        match &self.lock {
            Some(lock) => part("uv.lock", lock),
            None => part("pyproject.toml", &self.pyproject),
        }
        if let Some(v) = &self.python_version {
            part(".python-version", v);
        }
        hex::encode(&h.finalize()[..8])
    }

    /// Writes the files into `dir` (the preparation's workspace).
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::write(dir.join("pyproject.toml"), &self.pyproject)?;
        if let Some(lock) = &self.lock {
            std::fs::write(dir.join("uv.lock"), lock)?;
        }
        if let Some(v) = &self.python_version {
            std::fs::write(dir.join(".python-version"), v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(lock: Option<&str>) -> Project {
        Project {
            pyproject: b"[project]\nname='x'".to_vec(),
            lock: lock.map(|l| l.as_bytes().to_vec()),
            python_version: None,
        }
    }

    #[test]
    fn the_key_follows_the_image_and_the_lock() {
        let a = project(Some("lock-a"));
        assert_eq!(a.key("img1"), a.key("img1"));
        assert_ne!(a.key("img1"), a.key("img2"));
        assert_ne!(a.key("img1"), project(Some("lock-b")).key("img1"));
        assert_ne!(a.key("img1"), project(None).key("img1"));
        assert_eq!(a.key("img1").len(), 16);
        assert_eq!(a.from(), "uv.lock");
        assert_eq!(project(None).from(), "pyproject.toml");
    }
}
