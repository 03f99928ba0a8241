//! A Podman service of the test's own: Debian's `podman system service` on a socket, storage
//! and state directories of its own, in a network namespace of its own (so its bridges and
//! firewall rules never touch the host's or the system Docker engine's networks), rootful or
//! as a user the test makes. Dropped: its containers removed, its processes ended, the
//! namespace deleted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{ip, run_ok, stderr, wait_for};

/// Whether the Podman tests are asked for (CI sets it after installing Podman).
pub fn wanted() -> bool {
    std::env::var("SANDPEN_TEST_PODMAN").is_ok_and(|v| v == "1")
}

/// The user the rootless service runs as: made if missing, with subordinate ids.
pub const USER: &str = "sandpen-podman-test";

pub struct Podman {
    /// `unix://...` of its API socket.
    pub host: String,
    pub dir: PathBuf,
    /// The address of the host's end of the namespace's link, reachable from its containers.
    pub host_addr: String,
    /// (uid, gid, home) for a rootless service.
    pub user: Option<(u32, u32, PathBuf)>,
    netns: String,
    link: String,
    service: Child,
}

/// The test user's uid, gid and home, made on first use.
fn test_user() -> (u32, u32, PathBuf) {
    let exists = Command::new("id")
        .arg(USER)
        .output()
        .is_ok_and(|o| o.status.success());
    if !exists {
        run_ok(Command::new("useradd").args(["--create-home", "--shell", "/bin/sh", USER]));
    }
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{USER}:"))),
            "{file} gives {USER} no subordinate ids (useradd adds them on Debian)"
        );
    }
    let id = |flag: &str| -> u32 {
        run_ok(Command::new("id").args([flag, USER]))
            .trim()
            .parse()
            .unwrap()
    };
    (id("-u"), id("-g"), PathBuf::from(format!("/home/{USER}")))
}

/// Whether the API answers on `socket` (`GET /_ping` answered 200).
fn ping(socket: &Path) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut answer = String::new();
    s.write_all(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        .is_ok()
        && s.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

impl Podman {
    /// Starts a service; `rootless` runs it as the test user. `slot` keeps two services of one
    /// test binary apart (namespace, link, addresses).
    pub fn start(rootless: bool, slot: u8) -> Self {
        let tag = format!("sp{}{slot}", std::process::id() % 100_000);
        let dir = PathBuf::from(format!("/tmp/sandpen-podman-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (netns, link) = (format!("{tag}-ns"), format!("{tag}-h"));
        let net = format!("10.214.{}", 100 + slot);
        let host_addr = format!("{net}.1");
        let _ = Command::new("ip").args(["netns", "del", &netns]).output();
        let _ = Command::new("ip").args(["link", "del", &link]).output();
        ip(&["netns", "add", &netns]);
        ip(&[
            "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &netns,
        ]);
        ip(&["addr", "add", &format!("{host_addr}/30"), "dev", &link]);
        ip(&["link", "set", &link, "up"]);
        ip(&["-n", &netns, "addr", "add", &format!("{net}.2/30"), "dev", "eth0"]);
        ip(&["-n", &netns, "link", "set", "eth0", "up"]);
        ip(&["-n", &netns, "link", "set", "lo", "up"]);
        ip(&["-n", &netns, "route", "add", "default", "via", &host_addr]);

        let user = rootless.then(test_user);
        let socket = dir.join("podman.sock");
        // Podman stages a loaded or imported image under TMPDIR (default /var/tmp, a small
        // filesystem on some machines: CI's load failed there with ENOSPC). Keep it in the
        // test's own directory, on the disk that holds the storage anyway.
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/var/run/netns/{netns}"));
        let log = std::fs::File::create(dir.join("service.log")).unwrap();
        if let Some((uid, gid, home)) = &user {
            // Its own XDG_RUNTIME_DIR, like a login session's.
            let xdg = dir.join("xdg");
            std::fs::create_dir_all(&xdg).unwrap();
            run_ok(
                Command::new("chown")
                    .arg("-R")
                    .arg(format!("{uid}:{gid}"))
                    .arg(&dir),
            );
            run_ok(Command::new("chmod").arg("700").arg(&xdg));
            cmd.args([
                "setpriv",
                &format!("--reuid={uid}"),
                &format!("--regid={gid}"),
                "--init-groups",
            ])
            .env("HOME", home)
            .env("USER", USER)
            .env("LOGNAME", USER)
            .env("XDG_RUNTIME_DIR", &xdg);
        }
        // Storage and state of its own, rootful or not: nothing shared with another Podman.
        cmd.args(["podman", "--root"])
            .arg(dir.join("root"))
            .arg("--runroot")
            .arg(dir.join("run"))
            .arg("--tmpdir")
            .arg(&tmp)
            .arg("--network-config-dir")
            .arg(dir.join("networks"));
        // Not the test's own directory: a fresh clone's may be closed to the rootless user.
        cmd.current_dir(&dir)
            .env("TMPDIR", &tmp)
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let service = cmd.spawn().expect("starting podman system service");
        let host = format!("unix://{}", socket.display());
        let me = Self {
            host,
            dir,
            host_addr,
            user,
            netns,
            link,
            service,
        };
        let up = wait_for(Duration::from_secs(30), || ping(&socket).then_some(()));
        assert!(
            up.is_some(),
            "the Podman service did not answer: {}",
            std::fs::read_to_string(me.dir.join("service.log")).unwrap_or_default()
        );
        me
    }

    /// Loads sandpen's offline base from the system Docker engine, where it has one (the
    /// suite's other tests made it): what README's `docker save | podman load` does, and 50 s
    /// less than a debootstrap. False when there is none to load.
    pub fn seed_base_from_docker(&self) -> bool {
        let base = "sandpen-base:bookworm";
        let has = Command::new("docker")
            .args(["image", "inspect", base])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has {
            return false;
        }
        let mut save = Command::new("docker")
            .args(["save", base])
            .stdout(Stdio::piped())
            .spawn()
            .expect("docker save");
        let load = Command::new("podman")
            .arg("--url")
            .arg(&self.host)
            .args(["load", "-q"])
            .env("TMPDIR", self.dir.join("tmp"))
            .stdin(save.stdout.take().unwrap())
            .output()
            .expect("podman load");
        let saved = save.wait().expect("docker save");
        assert!(
            saved.success() && load.status.success(),
            "podman load: {}",
            stderr(&load)
        );
        true
    }

    /// Gives `path` (a repository, a task file's directory) to the rootless user.
    pub fn hand_over(&self, path: &Path) {
        if let Some((uid, gid, _)) = &self.user {
            run_ok(
                Command::new("chown")
                    .arg("-R")
                    .arg(format!("{uid}:{gid}"))
                    .arg(path),
            );
        }
    }

    /// `podman` talking to this service through its socket (as root: root reaches any socket).
    pub fn cli(&self, args: &[&str]) -> String {
        run_ok(Command::new("podman").arg("--url").arg(&self.host).args(args))
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .arg("--url")
            .arg(&self.host)
            .args(["rm", "-af", "-t", "0"])
            .output();
        let _ = self.service.kill();
        let _ = self.service.wait();
        // The service's conmon processes name its directories; a rootless service's pause
        // process (`catatonit -P`, holding its user namespace) is named by its pid file.
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &self.dir.display().to_string()])
            .output();
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("tmp/pause.pid")) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).output();
        }
        // Deleting the namespace deletes the link's both ends.
        let _ = Command::new("ip").args(["netns", "del", &self.netns]).output();
        // Mounts the service left under its directories (overlay layers, shm), deepest first.
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut under: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| Path::new(m).starts_with(&self.dir))
            .collect();
        under.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in under {
            let _ = Command::new("umount").args(["-l", m]).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
