//! What the run's exchange does for `SwarmEngine`: a service's command behind the entry step
//! with the task's files registered, and what came back from it (its OOM count, its stats).

use futures_util::StreamExt;

use super::entry::{DISK_OVER, OOM_KILLS};
use super::image::ENTRY;
use super::job::OUT_DIR;
use super::{Delivery, EXCHANGE_ENV, SwarmEngine};
use crate::engine::StatsStream;
use crate::engine::spec::{ContainerSpec, LABEL_RUN_DIR, LABEL_TASK};

impl SwarmEngine {
    /// The spec as its service runs it: its files registered with the exchange, and its
    /// command behind the entry step, which fetches them, collects and sends the work back.
    pub(super) fn delivered(&self, spec: &ContainerSpec) -> Result<(ContainerSpec, Option<String>), String> {
        let Some(exchange) = &self.exchange else {
            return match spec.mounts.is_empty() {
                true => Ok((spec.clone(), None)),
                false => Err("no exchange to deliver its mounted files through".into()),
            };
        };
        let out = spec
            .mounts
            .iter()
            .find(|m| !m.read_only && m.target == OUT_DIR)
            .map(|m| m.source.clone());
        let url = exchange
            .register(Delivery {
                task: spec.name.clone(),
                workspace: spec.workspace.clone(),
                mounts: spec.mounts.clone(),
                out,
            })
            .map_err(|e| format!("registering its files: {e}"))?;
        // (Not the reach probe's: it belongs to no run.)
        let run_dir = spec.labels.get(LABEL_RUN_DIR).filter(|d| !d.is_empty());
        if let (Some(dir), Some(task)) = (run_dir, spec.labels.get(LABEL_TASK)) {
            let tokens = crate::workspace::RunDir::new(dir).swarm_tokens();
            // Without it the task's work dies with sandpen, as before: not a reason to stop it.
            if let Err(e) = keep_token(&tokens, &url, task) {
                tracing::warn!(task = %spec.name, "keeping its token for `sandpen gc` in {}: {e}", tokens.display());
            }
        }
        let mut spec = spec.clone();
        // The URL holds the task's token: a secret, kept out of logs like the credentials.
        spec.secrets.push((EXCHANGE_ENV.to_string(), url.clone().into()));
        let (grace, deadline) = (
            self.placement.grace.as_secs(),
            spec.self_collect.as_ref().map_or(0, |c| c.deadline.as_secs()),
        );
        let mut cmd: Vec<String> = [
            ENTRY,
            "entry",
            "--deadline-secs",
            &deadline.to_string(),
            "--grace-secs",
            &grace.to_string(),
        ]
        .map(String::from)
        .to_vec();
        if let Some(c) = &spec.self_collect {
            cmd.extend(["--collect".to_string(), c.shell.clone()]);
            if let Some(bytes) = c.disk_limit {
                cmd.extend(["--disk-bytes".to_string(), bytes.to_string()]);
            }
        }
        cmd.push("--".into());
        cmd.append(&mut spec.cmd);
        spec.cmd = cmd;
        Ok((spec, Some(url)))
    }

    /// Whether the task's entry step counted an OOM kill in its container (sent back with
    /// its out directory, so known once its work came back).
    pub(super) fn oom_killed(&self, service: &str) -> bool {
        self.returned_count(service, OOM_KILLS).is_some_and(|n| n > 0)
    }

    /// What the task's disk held when its entry step stopped it at its disk limit (sent back
    /// with its out directory), in bytes.
    pub(super) fn disk_over(&self, service: &str) -> Option<u64> {
        self.returned_count(service, DISK_OVER)
    }

    /// A number the entry step wrote in a file of the out directory it sent back.
    fn returned_count(&self, service: &str, file: &str) -> Option<u64> {
        let url = self.urls.lock().unwrap().get(service).cloned()?;
        let dir = self.exchange.as_ref().and_then(|e| e.returned_to(&url))?;
        let read = crate::collect::read_small_file(&dir.join(file), 64)?;
        read.trim().parse::<u64>().ok()
    }

    pub(super) fn forget(&self, url: &str) {
        if let Some(exchange) = &self.exchange {
            exchange.forget(url);
        }
    }

    /// The readings the service's entry step sends of its own cgroup (`sample.rs`), as the
    /// engine's stats stream. None without an exchange: a figure sandpen cannot read is left
    /// out, never made up.
    pub(super) fn readings(&self, service: &str) -> StatsStream {
        let url = self.urls.lock().unwrap().get(service).cloned();
        let Some(readings) = url.and_then(|u| self.exchange.as_ref()?.readings(&u)) else {
            return futures_util::stream::empty().boxed();
        };
        futures_util::stream::unfold(readings, |mut r| async move {
            let reading = r.recv().await?;
            Some((Ok(reading.into_stats()), r))
        })
        .boxed()
    }
}

/// Appends the task's URL (its token) to the run's list for `gc`, readable by its owner alone.
fn keep_token(tokens: &std::path::Path, url: &str, task: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(tokens)?;
    file.write_all(format!("{url} {task}\n").as_bytes())
}
