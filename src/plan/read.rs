//! Reading an input file without ever blocking or reading without end: a FIFO, a device or a
//! socket is refused before a byte is read, and a file is read up to a bound.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};

/// Task files are small; this only stops a huge or endless file from filling memory.
pub const MAX_TASK_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ReadError {
    NotFound,
    /// What it is instead: "a FIFO, a named pipe", "a directory", ...
    NotRegular(&'static str),
    /// Its size (or the bytes read before giving up) and the limit.
    TooLarge {
        size: u64,
        max: u64,
    },
    NotUtf8,
    Other(String),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotFound => f.write_str("does not exist"),
            ReadError::NotRegular(what) => write!(f, "is not a regular file (it is {what})"),
            ReadError::TooLarge { size, max } => {
                write!(f, "is {size} bytes, over the limit of {max} bytes")
            }
            ReadError::NotUtf8 => f.write_str("is not UTF-8 text"),
            ReadError::Other(e) => write!(f, "cannot be read: {e}"),
        }
    }
}

/// The whole text of the regular file at `path`, at most `max` bytes of UTF-8.
/// With `follow_links` false, a symlink as the last component is refused (for paths that
/// were already resolved, so that what was checked is what is read).
pub(super) fn read_bounded(path: &Path, max: u64, follow_links: bool) -> Result<String, ReadError> {
    // Looked at before opening: opening a device can have effects of its own.
    let meta = if follow_links {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    }
    .map_err(io_error)?;
    let kind = FileType::from_raw_mode(std::os::unix::fs::MetadataExt::mode(&meta));
    check_regular(kind)?;

    // O_NONBLOCK: should the path have become a FIFO since, opening it still returns at once.
    let mut flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    if !follow_links {
        flags |= OFlags::NOFOLLOW;
    }
    let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| io_error(e.into()))?;
    // The descriptor is what counts: the path may have been swapped since the check above.
    let stat = rustix::fs::fstat(&fd).map_err(|e| io_error(e.into()))?;
    check_regular(FileType::from_raw_mode(stat.st_mode))?;
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    if size > max {
        return Err(ReadError::TooLarge { size, max });
    }

    // The size can change while reading: read one byte past the bound to notice.
    let mut bytes = Vec::with_capacity(size as usize);
    File::from(fd)
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > max {
        return Err(ReadError::TooLarge {
            size: bytes.len() as u64,
            max,
        });
    }
    String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8)
}

pub(super) fn check_regular(kind: FileType) -> Result<(), ReadError> {
    let what = match kind {
        FileType::RegularFile => return Ok(()),
        FileType::Directory => "a directory",
        FileType::Fifo => "a FIFO, a named pipe",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Symlink => "a symbolic link",
        FileType::Unknown => "not a file",
    };
    Err(ReadError::NotRegular(what))
}

fn io_error(e: std::io::Error) -> ReadError {
    match e.kind() {
        std::io::ErrorKind::NotFound => ReadError::NotFound,
        _ if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            ReadError::NotRegular("a symbolic link")
        }
        _ => ReadError::Other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn regular_files_are_read_up_to_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.md");
        std::fs::write(&p, "0123456789").unwrap();
        assert_eq!(read_bounded(&p, 10, true).unwrap(), "0123456789");
        assert_eq!(
            read_bounded(&p, 9, true),
            Err(ReadError::TooLarge { size: 10, max: 9 })
        );
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert_eq!(read_bounded(&p, 10, true), Err(ReadError::NotUtf8));
        assert_eq!(
            read_bounded(&dir.path().join("gone.md"), 10, true),
            Err(ReadError::NotFound)
        );
    }

    #[test]
    fn anything_but_a_regular_file_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.md");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let socket = dir.path().join("socket.md");
        let _listener = UnixListener::bind(&socket).unwrap();
        let cases: &[(&Path, &str)] = &[
            (&fifo, "FIFO"),
            (Path::new("/dev/zero"), "character device"),
            (dir.path(), "directory"),
            (&socket, "socket"),
        ];
        for (path, what) in cases {
            let start = Instant::now();
            let err = read_bounded(path, 1024, true).unwrap_err();
            assert!(start.elapsed() < Duration::from_secs(1), "{}", path.display());
            let text = err.to_string();
            assert!(
                text.contains("is not a regular file") && text.contains(what),
                "{text}"
            );
        }
    }

    #[test]
    fn a_link_is_refused_where_links_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t.md");
        std::fs::write(&target, "x").unwrap();
        let link = dir.path().join("l.md");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(read_bounded(&link, 10, true).unwrap(), "x");
        assert!(matches!(
            read_bounded(&link, 10, false),
            Err(ReadError::NotRegular(_))
        ));
    }
}
