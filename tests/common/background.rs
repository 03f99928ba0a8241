//! `sandpen run` in the background, for tests that signal, stop or watch a run mid-way.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{TaskFile, containers, docker, owner_filter, run_command, task_file, wait_for};

/// A `sandpen run` started in the background (stdout discarded, stderr to a file).
pub struct Background {
    pub child: Child,
    pub tasks: TaskFile,
    pub stderr_path: PathBuf,
}

impl Background {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("running kill");
        assert!(st.success(), "kill -{sig} {} failed", self.pid());
    }

    /// Waits up to `deadline` for the process to exit; its exit status, None if still running.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        wait_for(deadline, || self.child.try_wait().expect("waiting for sandpen"))
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // A test that failed half-way must not leave its sandpen (or its containers) behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let pid = self.child.id();
        for id in containers(&owner_filter(pid)) {
            let _ = docker(&["rm", "-f", &id]);
        }
    }
}

pub fn spawn_run(repo: &Path, toml: &str, extra: &[&str]) -> Background {
    spawn_run_with(repo, toml, extra, &[])
}

/// `spawn_run` with extra environment variables for sandpen.
pub fn spawn_run_with(repo: &Path, toml: &str, extra: &[&str], env: &[(&str, &str)]) -> Background {
    let tasks = task_file(toml);
    let stderr_path = tasks.dir.path().join("sandpen.stderr");
    let err = std::fs::File::create(&stderr_path).unwrap();
    let mut cmd = run_command(repo, &tasks, extra);
    cmd.envs(env.iter().copied());
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("starting sandpen run");
    Background {
        child,
        tasks,
        stderr_path,
    }
}
