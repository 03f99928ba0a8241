//! A Docker Swarm of the test's own: private `dockerd`s, each in a network namespace of its own
//! (never the host's: a second engine in the host's namespace takes the system bridge's subnet
//! for `docker_gwbridge` and the system's `docker0` disappears), joined by a bridge in a hub
//! namespace; the host reaches the hub through one link, so the system's firewall never sees
//! the nodes' traffic to each other. The first node is the manager. A registry (Debian's
//! `docker-registry`) listens on the host's end of the link, where every node reaches it.
//! Dropped: services removed, engines and the registry ended (only the processes it started),
//! namespaces and links deleted, and the system engine's networks checked unchanged.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{image, ip, output, run_ok, sandpen, stderr, stdout, wait_for};

/// Whether the Swarm tests are asked for (CI sets it after installing the registry).
pub fn wanted() -> bool {
    std::env::var("SANDPEN_TEST_SWARM").is_ok_and(|v| v == "1")
}

pub struct Node {
    /// `unix://...` of its API socket.
    pub host: String,
    pub hostname: String,
    pub addr: String,
    netns: String,
    dockerd: Child,
}

pub struct Swarm {
    pub nodes: Vec<Node>,
    /// The host's address on the nodes' network: where they reach the registry and sandpen.
    pub host_addr: String,
    /// `HOST:PORT` of the registry.
    pub registry: String,
    pub dir: PathBuf,
    hub: String,
    link: String,
    registry_proc: Child,
    /// The system engine's networks before, to check after.
    networks_before: String,
}

fn docker_at(host: &str, args: &[&str]) -> std::process::Output {
    output(Command::new("docker").env("DOCKER_HOST", host).args(args))
}

/// The system engine's networks and its bridge's address, as text to compare.
fn system_networks() -> String {
    let nets =
        output(Command::new("docker").args(["network", "ls", "--format", "{{.ID}} {{.Name}} {{.Driver}}"]));
    let bridge = output(Command::new("ip").args(["-br", "addr", "show", "docker0"]));
    let mut text = String::from_utf8_lossy(&nets.stdout).into_owned();
    // Its name and IPv4 address: not its state, which follows the system's own containers.
    let bridge = String::from_utf8_lossy(&bridge.stdout).into_owned();
    let words = bridge.split_whitespace().enumerate();
    text.extend(
        words
            .filter(|(i, w)| *i == 0 || w.contains('.'))
            .map(|(_, w)| format!(" {w}")),
    );
    text
}

impl Swarm {
    /// Starts `workers + 1` engines, makes the first the manager and joins the others, and
    /// starts the registry. `slot` keeps Swarms that run at once apart (the nodes' network is
    /// 10.213.(100 + slot).0/24; the tests of tests/swarm/ run side by side): services.rs takes
    /// 0 and 1, cli.rs 2, delivery.rs 3, gateway.rs 7.
    pub fn start(workers: usize, slot: u8) -> Self {
        let tag = format!("sw{}{slot}", std::process::id() % 10_000);
        let dir = PathBuf::from(format!("/tmp/sandpen-swarm-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let net = format!("10.213.{}", 100 + slot);
        let host_addr = format!("{net}.1");
        let (hub, link) = (format!("{tag}-hub"), format!("{tag}-h"));
        let networks_before = system_networks();
        let _ = Command::new("ip").args(["netns", "del", &hub]).output();
        let _ = Command::new("ip").args(["link", "del", &link]).output();
        ip(&["netns", "add", &hub]);
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &hub, "link", "set", "br0", "up"]);
        ip(&[
            "link", "add", &link, "type", "veth", "peer", "name", "host", "netns", &hub,
        ]);
        ip(&["-n", &hub, "link", "set", "host", "master", "br0", "up"]);
        ip(&["addr", "add", &format!("{host_addr}/24"), "dev", &link]);
        ip(&["link", "set", &link, "up"]);

        let registry = format!("{host_addr}:5000");
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {registry}\n",
                dir.join("registry").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let registry_proc = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry (Debian's package)");

        let mut me = Self {
            nodes: Vec::new(),
            host_addr: host_addr.clone(),
            registry: registry.clone(),
            dir: dir.clone(),
            hub,
            link,
            registry_proc,
            networks_before,
        };
        for i in 0..=workers {
            let node = me.start_node(&tag, &net, i);
            me.nodes.push(node);
        }
        let answered = wait_for(Duration::from_secs(20), || {
            let o = output(Command::new("curl").args(["-sf", "-m", "2", &format!("http://{registry}/v2/")]));
            o.status.success().then_some(())
        });
        assert!(
            answered.is_some(),
            "the registry did not answer: {}",
            me.log("registry.log")
        );

        let manager = me.nodes[0].host.clone();
        run_ok(Command::new("docker").env("DOCKER_HOST", &manager).args([
            "swarm",
            "init",
            "--advertise-addr",
            &me.nodes[0].addr,
        ]));
        let token = run_ok(Command::new("docker").env("DOCKER_HOST", &manager).args([
            "swarm",
            "join-token",
            "-q",
            "worker",
        ]));
        for node in &me.nodes[1..] {
            run_ok(
                Command::new("timeout")
                    .args(["60", "docker"])
                    .env("DOCKER_HOST", &node.host)
                    .args([
                        "swarm",
                        "join",
                        "--token",
                        token.trim(),
                        &format!("{}:2377", me.nodes[0].addr),
                    ]),
            );
        }
        let ready = wait_for(Duration::from_secs(30), || {
            let o = docker_at(&manager, &["node", "ls", "--format", "{{.Status}}"]);
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            (text.lines().filter(|l| *l == "Ready").count() == me.nodes.len()).then_some(())
        });
        assert!(ready.is_some(), "the nodes did not all become ready");
        me
    }

    /// One engine in its own network namespace (and host name, so the Swarm tells the nodes
    /// apart), on the hub's bridge.
    fn start_node(&self, tag: &str, net: &str, i: usize) -> Node {
        let netns = format!("{tag}-n{i}");
        let addr = format!("{net}.{}", 10 + i);
        let _ = Command::new("ip").args(["netns", "del", &netns]).output();
        ip(&["netns", "add", &netns]);
        let port = format!("n{i}");
        ip(&[
            "-n", &self.hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &netns,
        ]);
        ip(&["-n", &self.hub, "link", "set", &port, "master", "br0", "up"]);
        ip(&["-n", &netns, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
        ip(&["-n", &netns, "link", "set", "eth0", "up"]);
        ip(&["-n", &netns, "link", "set", "lo", "up"]);
        ip(&["-n", &netns, "route", "add", "default", "via", &self.host_addr]);

        let dir = self.dir.join(format!("node{i}"));
        // The registry as insecure (plain HTTP), and addresses of its own for its bridges.
        let json = serde_json::json!({
            "insecure-registries": [self.registry],
            "bip": format!("10.214.{}.1/24", 10 + i),
            "default-address-pools": [{"base": "10.215.0.0/16", "size": 24}],
        });
        let hostname = format!("{tag}-node{i}");
        let (host, dockerd) = start_dockerd(&dir, &netns, &hostname, json);
        Node {
            host,
            hostname,
            addr,
            netns,
            dockerd,
        }
    }

    pub fn manager(&self) -> &str {
        &self.nodes[0].host
    }

    /// The probe image on the manager ([`probe_on`]).
    pub fn probe(&self, args: &[&str]) -> String {
        probe_on(self.manager(), args)
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Copies `image` from the system engine to every node (what a registry saves in real use).
    pub fn load_everywhere(&self, image: &str) {
        for node in &self.nodes {
            load_into(image, &node.host);
        }
    }

    /// The services on the manager (their names).
    pub fn services(&self) -> Vec<String> {
        let o = docker_at(self.manager(), &["service", "ls", "--format", "{{.Name}}"]);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// No service is left, and within 30 s no container on any node.
    pub fn assert_clean(&self, when: &str) {
        assert!(
            self.services().is_empty(),
            "services left {when}: {:?}",
            self.services()
        );
        let clean = wait_for(Duration::from_secs(30), || {
            self.containers().is_empty().then_some(())
        });
        assert!(
            clean.is_some(),
            "containers left on the nodes {when}: {:?}",
            self.containers()
        );
    }

    /// Containers left on any node (their names).
    pub fn containers(&self) -> Vec<String> {
        self.nodes
            .iter()
            .flat_map(|n| {
                let o = docker_at(&n.host, &["ps", "-a", "--format", "{{.Names}}"]);
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// `docker save IMAGE | DOCKER_HOST=host docker load`.
/// `sandpen image ARGS --target probe --bootstrap-base` on the engine at `host`, from the base
/// the system engine has (made there first when missing): its last line, the image's name there
/// (`build`: a tag; `push`: a reference by digest). Never the system engine's tag: another
/// engine's image is its own build.
pub fn probe_on(host: &str, args: &[&str]) -> String {
    image("probe");
    load_into("sandpen-base:bookworm", host);
    let built = output(
        sandpen()
            .env("DOCKER_HOST", host)
            .args(["image"])
            .args(args)
            .args(["--target", "probe", "--bootstrap-base"]),
    );
    assert!(built.status.success(), "{}", stderr(&built));
    stdout(&built).lines().last().unwrap_or_default().to_string()
}

pub fn load_into(image: &str, host: &str) {
    load_all_into(&[image], host)
}

/// `docker save IMAGE... | DOCKER_HOST=host docker load`: layers they share go once.
pub fn load_all_into(images: &[&str], host: &str) {
    let mut save = Command::new("docker")
        .arg("save")
        .args(images)
        .stdout(Stdio::piped())
        .spawn()
        .expect("docker save");
    let load = output(
        Command::new("docker")
            .env("DOCKER_HOST", host)
            .args(["load", "-q"])
            .stdin(save.stdout.take().unwrap()),
    );
    assert!(
        save.wait().unwrap().success() && load.status.success(),
        "docker load: {}",
        stderr(&load)
    );
}

/// Starts a `dockerd` in the network namespace `netns` (the caller's) with the host name
/// `hostname`, its socket, data and state under `dir`, its containers' cgroups under
/// `sandpen-<hostname>`, and `config` for its daemon.json (the system's storage driver and the
/// json-file log driver added), and waits until it answers: its `unix://` address and process.
pub fn start_dockerd(
    dir: &Path,
    netns: &str,
    hostname: &str,
    mut config: serde_json::Value,
) -> (String, Child) {
    std::fs::create_dir_all(dir).unwrap();
    // The system's storage driver: this machine's kernel needs fuse-overlayfs.
    let driver = run_ok(Command::new("docker").args(["info", "--format", "{{.Driver}}"]));
    config["storage-driver"] = driver.trim().into();
    config["log-driver"] = "json-file".into();
    let path = dir.join("daemon.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let socket = dir.join("d.sock");
    let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
    // `ip netns exec` remounts /sys, and dockerd then finds no devices cgroup: nsenter.
    let script = format!(
        "hostname {hostname} && exec dockerd --config-file {c} --host unix://{s} --data-root {d}/root \
         --exec-root {d}/exec --pidfile {d}/dockerd.pid --cgroup-parent sandpen-{hostname}",
        c = path.display(),
        s = socket.display(),
        d = dir.display(),
    );
    let mut dockerd = Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{netns}"))
        .args(["unshare", "--uts", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting dockerd");
    let host = format!("unix://{}", socket.display());
    let up = wait_for(Duration::from_secs(60), || {
        docker_at(&host, &["info", "--format", "{{.ID}}"])
            .status
            .success()
            .then_some(())
    });
    if up.is_none() {
        stop_dockerd(&mut dockerd);
        panic!(
            "the dockerd in {netns} did not answer: {}",
            std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default()
        );
    }
    (host, dockerd)
}

/// Ends a `dockerd` `start_dockerd` started (it ends its containers as it stops).
pub fn stop_dockerd(dockerd: &mut Child) {
    let _ = Command::new("kill").arg(dockerd.id().to_string()).status();
    let gone = wait_for(Duration::from_secs(20), || dockerd.try_wait().ok().flatten());
    if gone.is_none() {
        let _ = dockerd.kill();
        let _ = dockerd.wait();
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        let manager = self.manager().to_string();
        for name in self.services() {
            let _ = docker_at(&manager, &["service", "rm", &name]);
        }
        // Workers first, then the manager: each ends its own containers as it stops.
        for node in self.nodes.iter_mut().rev() {
            stop_dockerd(&mut node.dockerd);
            let _ = Command::new("ip").args(["netns", "del", &node.netns]).status();
        }
        let _ = self.registry_proc.kill();
        let _ = self.registry_proc.wait();
        let _ = Command::new("ip").args(["link", "del", &self.link]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.hub]).status();
        // Containers' mounts are gone with their engines; what is left is files.
        let _ = unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
        let after = system_networks();
        if !std::thread::panicking() {
            assert_eq!(
                after, self.networks_before,
                "the system engine's networks changed"
            );
        }
    }
}

/// Unmounts whatever an ended engine left mounted under `dir` (deepest first).
pub fn unmount_under(dir: &Path) -> std::io::Result<()> {
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    let prefix = dir.display().to_string();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").args(["-l", p]).status();
    }
    Ok(())
}
