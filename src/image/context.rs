//! In-memory build contexts: a set of files that becomes a tar archive and a content hash.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// The files of a build context, keyed by path so that the tar and the hash do not depend on
/// the order files were added in.
#[derive(Debug, Clone, Default)]
pub struct BuildContext {
    files: BTreeMap<String, (u32, Vec<u8>)>,
}

impl BuildContext {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, path: impl Into<String>, mode: u32, bytes: impl Into<Vec<u8>>) {
        self.files.insert(path.into(), (mode, bytes.into()));
    }

    pub fn contains(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }

    /// A reproducible tar archive: fixed mtime, owner and order, so that the same files always
    /// give the same bytes.
    pub fn to_tar(&self) -> std::io::Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, (mode, bytes)) in &self.files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(*mode);
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            header.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut header, path, bytes.as_slice())?;
        }
        builder.into_inner()
    }

    /// A hash over every file (path, mode, bytes) and every extra input (build args, the base
    /// image's id), so that an image tagged with it is current exactly when nothing changed.
    pub fn hash<'a>(&self, extra: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
        let mut h = Sha256::new();
        h.update(b"sandpen-context-v1\0");
        for (path, (mode, bytes)) in &self.files {
            h.update(path.as_bytes());
            h.update([0]);
            h.update(mode.to_le_bytes());
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        }
        let mut extra: Vec<_> = extra.into_iter().collect();
        extra.sort();
        for (k, v) in extra {
            h.update(k.as_bytes());
            h.update([0]);
            h.update(v.as_bytes());
            h.update([0]);
        }
        hex::encode(h.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(files: &[(&str, &str)]) -> BuildContext {
        let mut c = BuildContext::new();
        for (p, b) in files {
            c.add(*p, 0o644, b.as_bytes());
        }
        c
    }

    #[test]
    fn hash_ignores_insertion_order_but_not_content() {
        let a = ctx(&[("Dockerfile", "FROM x"), ("f", "1")]);
        let b = ctx(&[("f", "1"), ("Dockerfile", "FROM x")]);
        let c = ctx(&[("f", "2"), ("Dockerfile", "FROM x")]);
        assert_eq!(a.hash([]), b.hash([]));
        assert_ne!(a.hash([]), c.hash([]));
    }

    #[test]
    fn hash_covers_extra_inputs_and_modes() {
        let a = ctx(&[("Dockerfile", "FROM x")]);
        assert_ne!(a.hash([("BASE", "1")]), a.hash([("BASE", "2")]));
        let mut exec = BuildContext::new();
        exec.add("Dockerfile", 0o755, "FROM x");
        assert_ne!(a.hash([]), exec.hash([]));
    }

    #[test]
    fn tar_is_reproducible_and_readable() {
        let a = ctx(&[("Dockerfile", "FROM x"), ("dir/f", "hello")]);
        let t1 = a.to_tar().unwrap();
        assert_eq!(t1, a.to_tar().unwrap());
        let mut archive = tar::Archive::new(t1.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["Dockerfile", "dir/f"]);
    }
}
