//! A hermetic uv project for the warm-environment tests (`tests/warm.rs`, the Swarm's in
//! `tests/swarm/cli.rs`): tiny wheels built by the test, served by Python's `http.server` as
//! a package index whose request log says what was fetched, and a repository locked to it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{docker, git, make_repo, stderr, wait_for};
use sandpen::model_server::{Script, TaskScript, Turn};

/// A wheel `name-1.0-py3-none-any.whl` whose module says `VALUE = "<name>-ok"`.
pub fn build_wheel(dir: &Path, name: &str) {
    let py = format!(
        "import zipfile,sys\n\
         n='{name}'; di=n+'-1.0.dist-info'\n\
         with zipfile.ZipFile(sys.argv[1]+'/'+n+'-1.0-py3-none-any.whl','w') as z:\n\
         \x20   z.writestr(n+'/__init__.py', 'VALUE = \"'+n+'-ok\"\\n')\n\
         \x20   z.writestr(di+'/METADATA', 'Metadata-Version: 2.1\\nName: '+n+'\\nVersion: 1.0\\n')\n\
         \x20   z.writestr(di+'/WHEEL', 'Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')\n\
         \x20   z.writestr(di+'/RECORD', '')\n"
    );
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    let ok = Command::new("python3")
        .args(["-c", &py])
        .arg(&files)
        .status()
        .unwrap();
    assert!(ok.success(), "building the wheel {name}");
    let page = dir.join("simple").join(name);
    std::fs::create_dir_all(&page).unwrap();
    std::fs::write(
        page.join("index.html"),
        format!("<html><body><a href=\"/files/{name}-1.0-py3-none-any.whl\">{name}-1.0-py3-none-any.whl</a></body></html>\n"),
    )
    .unwrap();
}

/// The index: its server's process and its request log.
pub struct Index {
    child: Child,
    log: std::path::PathBuf,
    pub host: String,
    dir: std::path::PathBuf,
}

impl Index {
    pub fn start(dir: &Path, ip: std::net::IpAddr) -> Self {
        let port = std::net::TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("requests.log");
        // `python3 -m http.server`, but a wheel waits first while the file `slow` says so
        // (its seconds): a preparation that takes as long as a real one.
        let server = format!(
            "import functools, http.server, os, time\n\
             class H(http.server.SimpleHTTPRequestHandler):\n\
             \x20   def do_GET(self):\n\
             \x20       slow = os.path.join(self.directory, 'slow')\n\
             \x20       if self.path.endswith('.whl') and os.path.exists(slow):\n\
             \x20           time.sleep(float(open(slow).read()))\n\
             \x20       super().do_GET()\n\
             h = functools.partial(H, directory={dir:?})\n\
             http.server.ThreadingHTTPServer(({ip:?}, {port}), h).serve_forever()\n",
            dir = dir.display().to_string(),
            ip = ip.to_string(),
        );
        let child = Command::new("python3")
            .args(["-c", &server])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let host = format!("{ip}:{port}");
        let up = wait_for(Duration::from_secs(10), || {
            std::net::TcpStream::connect(&host).ok()
        });
        assert!(up.is_some(), "the index did not listen");
        Self {
            child,
            log,
            host,
            dir: dir.to_path_buf(),
        }
    }

    /// Makes every wheel wait `secs` before it is sent (None: sent at once).
    pub fn slow(&self, secs: Option<f64>) {
        let path = self.dir.join("slow");
        match secs {
            Some(s) => std::fs::write(path, s.to_string()).unwrap(),
            None => {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// How often `wheel` was fetched so far.
    pub fn fetched(&self, wheel: &str) -> usize {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains(&format!("GET /files/{wheel}-")))
            .count()
    }
}

impl Drop for Index {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn pyproject(index: &str) -> String {
    format!(
        "[project]\nname = \"warmtest\"\nversion = \"0.1.0\"\nrequires-python = \">=3.9\"\n\
         dependencies = [\"tinya\"]\n\n[[tool.uv.index]]\nname = \"local\"\nurl = \"http://{index}/simple\"\ndefault = true\n"
    )
}

/// `uv lock` of the project in `dir`, in the agent image (as root: the test's files are root's).
pub fn uv_lock(dir: &Path, image: &str) -> std::process::Output {
    let mount = format!("{}:/workspace", dir.display());
    let args = [
        "run",
        "--rm",
        "--user",
        "0:0",
        "-e",
        "UV_CACHE_DIR=/tmp/c",
        "-v",
        &mount,
    ];
    docker(&[&args[..], &[image, "uv", "lock"]].concat())
}

/// A committed repository with the project; its `uv.lock` made by `uv lock` in the agent image.
pub fn python_repo(image: &str, index: &str) -> tempfile::TempDir {
    let dir = make_repo();
    let p = dir.path();
    std::fs::write(p.join("pyproject.toml"), pyproject(index)).unwrap();
    let out = uv_lock(p, image);
    assert!(out.status.success(), "uv lock: {}", stderr(&out));
    git(p, &["add", "-A"]);
    git(p, &["commit", "--quiet", "-m", "a uv project"]);
    dir
}

pub fn script(tasks: &[(&str, &str)]) -> Script {
    Script {
        tasks: tasks
            .iter()
            .map(|(id, cmd)| {
                let turns = vec![Turn::bash(*cmd, "check the environment"), Turn::text("done")];
                (id.to_string(), TaskScript { turns })
            })
            .collect(),
        rate_limit: None,
        overloaded: None,
    }
}

/// A committed uv project for the probe image, whose `uv sync` stands in for the real one
/// (nothing fetched): a lock of its own each time, so its environment is new.
pub fn probe_project(dir: &Path, name: &str) {
    let pyproject = format!("[project]\nname = \"{name}\"\nversion = \"0\"\n");
    std::fs::write(dir.join("pyproject.toml"), pyproject).unwrap();
    let lock = format!("version = 1 # {:?}\n", std::time::SystemTime::now());
    std::fs::write(dir.join("uv.lock"), lock).unwrap();
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "--quiet", "-m", "a uv project"]);
}

/// The run prepared its environment and each of `tasks` succeeded from it; its volume is
/// removed (first, whatever the assertions say).
pub fn assert_prepared_for(run: &super::Run, tasks: &[&str]) {
    let report = run.report();
    let volume = report["environment"]["volume"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let _ = docker(&["volume", "rm", "-f", &volume]);
    assert_eq!(report["environment"]["state"], "prepared", "{}", run.dump());
    for t in tasks {
        let entry = super::task(&report, t);
        assert_eq!(super::field(entry, "status"), "succeeded", "{t}:\n{}", run.dump());
        assert_eq!(entry["environment"], volume.as_str(), "{t} started from it");
    }
}
