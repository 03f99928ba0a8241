//! The embedded relay, run for real on this host: a Unix-socket echo server behind it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixListener;
use std::process::Command;

use super::*;

fn placed() -> (tempfile::TempDir, Placement) {
    let tmp = tempfile::tempdir().unwrap();
    let p = Placement::make(&tmp.path().join("gw"), &tmp.path().join("relay")).unwrap();
    (tmp, p)
}

struct Kill(u32);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.to_string()).status();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_relay_is_a_static_executable() {
    // ELF64, and no program interpreter (PT_INTERP), so no C library of the image is needed.
    assert_eq!(&PROGRAM[..5], b"\x7fELF\x02");
    let u16_at = |o: usize| u16::from_le_bytes([PROGRAM[o], PROGRAM[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(PROGRAM[0x20..0x28].try_into().unwrap()) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    assert!(count > 0);
    const PT_INTERP: u32 = 3;
    for i in 0..count {
        let at = phoff + i * size;
        let kind = u32::from_le_bytes(PROGRAM[at..at + 4].try_into().unwrap());
        assert_ne!(kind, PT_INTERP, "the relay names a dynamic loader");
    }
    assert!(PROGRAM.len() < 4 << 20, "{} bytes", PROGRAM.len());
}

#[test]
fn it_pipes_loopback_connections_to_the_socket_both_ways() {
    let (_tmp, p) = placed();
    let socket = p.dir.join(SOCKET_NAME);
    let server = UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        for conn in server.incoming().take(2) {
            let mut conn = conn.unwrap();
            let mut got = Vec::new();
            conn.read_to_end(&mut got).unwrap();
            conn.write_all(b"echo:").unwrap();
            conn.write_all(&got).unwrap();
        }
    });
    let addr = format!("127.0.0.1:{}", free_port());
    // Its serving copy keeps the stderr it inherits: not a pipe the test would wait on.
    let started = Command::new(&p.relay)
        .args([&addr, socket.to_str().unwrap()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(started.status.success(), "the relay exits 0 once it listens");
    // It says which process serves: ended at the test's end.
    let pid: u32 = String::from_utf8_lossy(&started.stdout).trim().parse().unwrap();
    let _serving = Kill(pid);
    // It listens as soon as it exited: no wait, no retry.
    for body in [&b"hello"[..], &vec![7u8; 300_000][..]] {
        let mut c = TcpStream::connect(&addr).unwrap();
        c.write_all(body).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).unwrap();
        assert_eq!(&back[..5], b"echo:");
        assert_eq!(&back[5..], body);
    }
}

#[test]
fn a_port_in_use_is_an_error_that_says_so() {
    let (_tmp, p) = placed();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(&p.relay)
        .args([&addr, "/nonexistent.sock"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(&format!("listening on {addr}")), "{said}");
}

#[test]
fn the_directory_lets_others_through_but_not_in() {
    use std::os::unix::fs::PermissionsExt;
    let (_tmp, p) = placed();
    let mode = std::fs::metadata(&p.dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o711);
    let owner = crate::workspace::owner_of(&p.dir).unwrap();
    assert_eq!(owner, p.owner);
    assert_ne!(owner.0, 0, "never root's");
    let relay = std::fs::metadata(&p.relay).unwrap().permissions().mode() & 0o777;
    assert_eq!(relay, 0o555);
    let mounts = p.task_mounts();
    assert!(mounts.iter().all(|m| m.read_only));
    assert!(!p.gateway_mount().read_only);
    p.remove();
    assert!(!p.dir.exists() && !p.relay.exists());
}
