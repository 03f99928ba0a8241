//! sandpen-relay: the one way out of a task container in gateway mode. The container has no
//! network but its loopback; this program listens on a loopback port and pipes each
//! connection, byte for byte, to the run's gateway on a Unix socket mounted into the
//! container. It knows nothing of HTTP, tokens or hosts: the gateway decides everything.
//!
//! Compiled by build.rs on its own (std only, statically linked), so that it runs in any
//! image, a user's `--image` included, whatever its C library. Not a module of sandpen.
//!
//! `sandpen-relay LISTEN SOCKET`: binds LISTEN (e.g. 127.0.0.1:3128), then leaves a copy of
//! itself serving in the background, prints its pid and exits 0, so that the caller's next
//! command finds the port listening. Exit 1 with a message when it cannot bind.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Marks the background copy, which finds its listener on its standard input.
const SERVE: &str = "SANDPEN_RELAY_SERVE";
/// Connections piped at once; the gateway has its own limits per task, this only bounds
/// the relay's threads.
const MOST: usize = 256;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, socket] = args.as_slice() else {
        eprintln!("usage: sandpen-relay LISTEN-ADDRESS GATEWAY-SOCKET");
        return ExitCode::from(2);
    };
    let socket = socket.clone();
    if std::env::var_os(SERVE).is_some() {
        return serve(socket);
    }
    let addr: SocketAddr = match listen.parse() {
        Ok(a) => a,
        Err(e) => return fail(&format!("{listen:?} is not an address: {e}")),
    };
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => return fail(&format!("listening on {addr}: {e}")),
    };
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return fail(&format!("finding itself: {e}")),
    };
    // The bound listener is the background copy's standard input: the port listens from
    // now on, and connections wait in its backlog until the copy accepts them.
    let spawned = Command::new(exe)
        .args([listen, &socket])
        .env(SERVE, "1")
        .stdin(Stdio::from(OwnedFd::from(listener)))
        .stdout(Stdio::null())
        .spawn();
    match spawned {
        Ok(child) => {
            println!("{}", child.id());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("starting its background copy: {e}")),
    }
}

fn fail(why: &str) -> ExitCode {
    eprintln!("sandpen-relay: {why}");
    ExitCode::FAILURE
}

fn serve(socket: String) -> ExitCode {
    let fd = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => fd,
        Err(e) => return fail(&format!("taking its listener: {e}")),
    };
    let listener = TcpListener::from(fd);
    let open = Arc::new(AtomicUsize::new(0));
    let mut told = false;
    for conn in listener.incoming() {
        let Ok(tcp) = conn else { continue };
        if open.load(Ordering::SeqCst) >= MOST {
            continue; // dropped: closed at once
        }
        let unix = match UnixStream::connect(&socket) {
            Ok(u) => u,
            Err(e) => {
                if !std::mem::replace(&mut told, true) {
                    eprintln!("sandpen-relay: the gateway at {socket}: {e}");
                }
                continue;
            }
        };
        open.fetch_add(1, Ordering::SeqCst);
        if pipe(tcp, unix, open.clone()).is_err() {
            open.fetch_sub(1, Ordering::SeqCst);
        }
    }
    ExitCode::SUCCESS
}

/// Two threads, one per direction; each ends its direction with a shutdown so the other side
/// sees the end, and the connection is done when both are.
fn pipe(tcp: TcpStream, unix: UnixStream, open: Arc<AtomicUsize>) -> std::io::Result<()> {
    let (tcp2, unix2) = (tcp.try_clone()?, unix.try_clone()?);
    let thread = || std::thread::Builder::new().stack_size(64 << 10);
    let up = thread().spawn(move || {
        copy(&tcp, &unix);
        let _ = unix.shutdown(Shutdown::Write);
    })?;
    thread().spawn(move || {
        copy(&unix2, &tcp2);
        let _ = tcp2.shutdown(Shutdown::Write);
        let _ = up.join();
        open.fetch_sub(1, Ordering::SeqCst);
    })?;
    Ok(())
}

fn copy(mut from: impl Read, mut to: impl Write) {
    let mut buf = [0u8; 16 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}
