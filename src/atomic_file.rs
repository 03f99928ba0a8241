//! Write-then-rename: a file readers see whole or not at all (reports, the manifest).

use std::path::Path;

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename: a
/// reader sees the old file or the new one, never half of one. The file gets the mode any new
/// file gets (0666 under the user's umask), not a temporary file's 0600: reports are shared.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_data()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_gets_a_new_files_mode_not_a_temporary_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.html");
        write_atomically(&path, b"x").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        // Under the usual umask (022): readable by all, as any file the user makes.
        assert_eq!(mode & 0o644, 0o644, "mode {mode:o}");
    }
}
