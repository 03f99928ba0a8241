//! What every figure shares: the probe image, a scratch repository, and ways to run sandpen and
//! its comparisons that time both sides alike (the wall time of the whole process).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

pub type Measured<T> = Result<T, String>;

pub struct Ctx {
    pub sandpen: PathBuf,
    pub probe: String,
    pub quick: bool,
    pub work: tempfile::TempDir,
    /// The agent definitions directory the probe needs (`--agent workflow-manager`).
    pub agents: PathBuf,
    pub repo: PathBuf,
    pub python: Option<String>,
    counter: std::cell::Cell<u32>,
}

impl Ctx {
    pub fn setup(quick: bool) -> Self {
        let exe = std::env::current_exe().expect("own path");
        let sandpen = exe.with_file_name("sandpen");
        assert!(
            sandpen.exists(),
            "build the sandpen binary next to this one: cargo build --release --bins"
        );
        let out =
            run_ok(Command::new(&sandpen).args(["image", "build", "--target", "probe", "--bootstrap-base"]))
                .unwrap_or_else(|e| panic!("the probe image: {e}"));
        let probe = out.lines().last().unwrap_or_default().trim().to_string();
        let work = tempfile::Builder::new()
            .prefix("sandpen-bench-")
            .tempdir()
            .expect("temp dir");
        let agents = work.path().join("agents");
        std::fs::create_dir_all(&agents).unwrap();
        std::fs::write(agents.join("workflow-manager.md"), sandpen::agent::DEFINITION).unwrap();
        let repo = work.path().join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::write(repo.join("README.md"), "bench\n").unwrap();
        for args in [&["init", "-q"][..], &["add", "-A"], &["commit", "-qm", "init"]] {
            let mut git = Command::new("git");
            git.arg("-C")
                .arg(&repo)
                .args(["-c", "user.name=b", "-c", "user.email=b@b"])
                .args(args);
            run_ok(&mut git).unwrap_or_else(|e| panic!("{e}"));
        }
        let python = ["python3", "python"]
            .into_iter()
            .find(|p| {
                Command::new(p)
                    .args(["-c", "import docker"])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .map(String::from);
        Self {
            sandpen,
            probe,
            quick,
            agents,
            repo,
            python,
            work,
            counter: Default::default(),
        }
    }

    pub fn next(&self) -> u32 {
        let n = self.counter.get() + 1;
        self.counter.set(n);
        n
    }

    /// The command every sandpen task runs, and the prompt file it reads on stdin: the
    /// comparisons run the same command in the same image, with the same mounts.
    pub fn task_command(&self, prompt: &str) -> (Vec<String>, Vec<String>) {
        let file = self.work.path().join(format!("prompt-{}.md", self.next()));
        std::fs::write(&file, prompt).unwrap();
        let day = std::time::Duration::from_secs(86_400);
        let cmd = sandpen::agent::command(
            50,
            day,
            std::time::Duration::from_secs(10),
            false,
            sandpen::agent::Venv::Uv,
            "",
        );
        let mounts = vec![
            format!("{}:/home/sandpen/.claude/agents:ro", self.agents.display()),
            format!("{}:{}:ro", file.display(), sandpen::agent::PROMPT_PATH),
        ];
        (cmd, mounts)
    }

    /// `docker run --rm` of the same image and command sandpen runs.
    pub fn docker_run(&self, prompt: &str, extra: &[&str]) -> Command {
        let (cmd, mounts) = self.task_command(prompt);
        let mut c = Command::new("docker");
        c.arg("run").args(extra);
        for m in mounts {
            c.args(["-v", &m]);
        }
        c.arg(&self.probe).args(cmd);
        c
    }

    /// A task file of `n` tasks with the same prompt and limits.
    pub fn task_file(&self, n: usize, prompt: &str, memory: &str, cpus: f64) -> PathBuf {
        let path = self.work.path().join(format!("tasks-{}.toml", self.next()));
        let mut text = format!("[defaults]\nmemory = {memory:?}\ncpus = {cpus:?}\n");
        for i in 0..n {
            text.push_str(&format!("[[task]]\nid = \"t{i:03}\"\nprompt_text = {prompt:?}\n"));
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `sandpen run` of a task file, timed as a whole process; its report and stderr. Every
    /// task must succeed.
    pub fn sandpen_run(
        &self,
        tasks: &Path,
        jobs: usize,
        extra: &[&str],
    ) -> Measured<(f64, serde_json::Value, String)> {
        self.sandpen_run_in(Command::new(&self.sandpen), tasks, jobs, extra)
    }

    /// `sandpen_run` in another repository than the scratch one.
    pub fn sandpen_run_at(
        &self,
        repo: &Path,
        tasks: &Path,
        jobs: usize,
        extra: &[&str],
    ) -> Measured<(f64, serde_json::Value, String)> {
        self.run_sandpen(Command::new(&self.sandpen), repo, tasks, jobs, extra)
    }

    /// The same, under a wrapper such as GNU time (`wrapper` is the whole command before sandpen).
    pub fn sandpen_run_in(
        &self,
        cmd: Command,
        tasks: &Path,
        jobs: usize,
        extra: &[&str],
    ) -> Measured<(f64, serde_json::Value, String)> {
        self.run_sandpen(cmd, &self.repo, tasks, jobs, extra)
    }

    fn run_sandpen(
        &self,
        mut cmd: Command,
        repo: &Path,
        tasks: &Path,
        jobs: usize,
        extra: &[&str],
    ) -> Measured<(f64, serde_json::Value, String)> {
        if cmd.get_program() != self.sandpen.as_os_str() {
            cmd.arg(&self.sandpen);
        }
        let report = self.work.path().join(format!("report-{}.json", self.next()));
        cmd.args(["run", "--image", &self.probe, "--repo"])
            .arg(repo)
            .args(["-j", &jobs.to_string(), "--report"])
            .arg(&report);
        // Like for like: the docker side runs on the default bridge. Figure 9 measures the
        // gateway (sandpen's default) against it.
        if !extra.contains(&"--network") {
            cmd.args(["--network", "bridge"]);
        }
        cmd.args(extra)
            .arg(tasks)
            .env("ANTHROPIC_API_KEY", "sk-bench-not-a-key")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let start = Instant::now();
        let out = cmd.output().map_err(|e| format!("running sandpen: {e}"))?;
        let wall = start.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap_or_default())
            .map_err(|_| format!("no report; sandpen said: {}", tail(&stderr)))?;
        let failed = report["tasks"]
            .as_array()
            .map(|t| t.iter().filter(|t| t["status"] != "succeeded").count())
            .unwrap_or(0);
        if failed > 0 {
            return Err(format!("{failed} task(s) did not succeed: {}", tail(&stderr)));
        }
        Ok((wall, report, stderr))
    }

    /// A Python script with the Docker SDK: threads doing create, start, wait, logs, remove,
    /// with the same command and mounts.
    pub fn python_sdk(&self, python: &str, n: usize, jobs: usize, prompt: &str) -> Command {
        let (cmd, mounts) = self.task_command(prompt);
        let volumes: Vec<String> = mounts
            .iter()
            .map(|m| {
                let mut parts = m.split(':');
                let (src, dst) = (parts.next().unwrap(), parts.next().unwrap());
                format!("{src:?}: {{\"bind\": {dst:?}, \"mode\": \"ro\"}}")
            })
            .collect();
        let script = format!(
            r#"
import docker, json
from concurrent.futures import ThreadPoolExecutor
client = docker.from_env(max_pool_size={jobs})
cmd = json.loads({cmd:?})
def one(i):
    c = client.containers.create({image:?}, cmd, volumes={{{volumes}}})
    c.start()
    c.wait()
    c.logs()
    c.remove(force=True)
with ThreadPoolExecutor({jobs}) as pool:
    list(pool.map(one, range({n})))
"#,
            cmd = serde_json::to_string(&cmd).unwrap(),
            image = self.probe,
            volumes = volumes.join(", "),
        );
        let mut c = Command::new(python);
        c.args(["-c", &script]);
        c
    }
}

pub fn run_ok(cmd: &mut Command) -> Measured<String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            tail(&String::from_utf8_lossy(&out.stderr))
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Wall seconds of a whole process whose stdout is discarded. A failure is retried once (the
/// comparisons' own clients can trip on a busy engine); a second failure is the figure's.
pub fn timed(cmd: &mut Command) -> Measured<f64> {
    let mut last = String::new();
    for _ in 0..2 {
        let start = Instant::now();
        let out = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("{:?}: {e}", cmd.get_program()))?;
        let t = start.elapsed().as_secs_f64();
        if out.status.success() {
            return Ok(t);
        }
        last = tail(&String::from_utf8_lossy(&out.stderr));
        eprintln!("attempt failed: {cmd:?}\n{last}");
    }
    Err(format!("{:?} failed twice: {last}", cmd.get_program()))
}

/// The last lines of a process's stderr, on one line.
pub fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.trim().lines().rev().take(3).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" / ")
}

pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The program and arguments of a command, as strings.
pub fn argv(cmd: &Command) -> Vec<String> {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}
