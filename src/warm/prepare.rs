//! The preparation container: once per (image, lock), before the tasks that need it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::shell::{PREP_MOUNT, prepare_shell};
use super::{
    AUDIT_NAME, EnvState, Environment, LABEL, LABEL_FROM, LABEL_IMAGE, LABEL_RUN, Prepare, Project,
    volume_name,
};
use crate::engine::spec::{BindMount, ContainerSpec, HOME, Limits, NetworkMode, Owner, WORKDIR};
use crate::engine::{ContainerEngine, Engine};
use crate::gateway::GatewayHandle;

/// How long a preparation may take (gigabytes of wheels included).
const PREP_LIMIT: Duration = Duration::from_secs(30 * 60);
/// The failure output kept: its last bytes.
const OUTPUT_KEPT: usize = 16 * 1024;

/// A preparation of the run's environment on a local engine.
pub struct Preparation {
    pub engine: Engine,
    pub project: Project,
    pub image: String,
    pub image_id: String,
    pub owner: Owner,
    /// The tasks' uid and gid, limits and runtime: the preparation is confined as a task is.
    pub user: (u32, u32),
    pub limits: Limits,
    pub runtime: Option<String>,
    /// The tasks' network outside gateway mode.
    pub network: NetworkMode,
    /// Its workspace on the host (the project's files, then its `.venv`), removed after.
    pub dir: PathBuf,
    /// The run's stop: a stopped run does not wait for the preparation.
    pub stop: CancellationToken,
}

/// How the container ended: its exit code (None: stopped or not run) and its output.
struct Ran {
    code: Option<i64>,
    output: String,
    bytes: u64,
}

impl Prepare for Preparation {
    fn open(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async move {
            let key = self.project.key(&self.image_id);
            let volume = volume_name(&key);
            // Not made: the preparation makes it, says why it could not, and tasks wait.
            self.volume(&volume, &key).await.ok().map(|()| volume)
        })
    }

    fn discard<'a>(&'a self, env: &'a Environment) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let _ = self.engine.remove_volume(&env.volume).await;
        })
    }

    fn prepare<'a>(&'a self, gateway: Option<&'a GatewayHandle>) -> BoxFuture<'a, Environment> {
        Box::pin(async move {
            let (t0, started_at) = (Instant::now(), now());
            let key = self.project.key(&self.image_id);
            let volume = volume_name(&key);
            let ran = match self.volume(&volume, &key).await {
                Ok(()) => self.run(&volume, gateway).await,
                Err(e) => Err(e),
            };
            let dir = self.dir.clone();
            let _ = tokio::task::spawn_blocking(move || crate::workspace::remove_tree(&dir)).await;
            let (state, output, bytes) = match ran {
                Ok(r) if r.code == Some(0) => {
                    let reused = r.output.contains("the environment is ready");
                    let state = if reused {
                        EnvState::Reused
                    } else {
                        EnvState::Prepared
                    };
                    (state, None, r.bytes)
                }
                Ok(r) => {
                    let code = r.code.map_or("was stopped".into(), |c| format!("exited {c}"));
                    (
                        EnvState::Failed,
                        Some(format!("{}\n(the preparation {code})", r.output)),
                        r.bytes,
                    )
                }
                Err(e) => (EnvState::Failed, Some(e), 0),
            };
            if state == EnvState::Failed {
                // Half made: gone, so the next run prepares it anew. Tasks that started beside
                // the preparation still mount it: the runner discards it once they are gone.
                let _ = self.engine.remove_volume(&volume).await;
            }
            Environment {
                volume,
                from: self.project.from().to_string(),
                state,
                started_at,
                duration_s: t0.elapsed().as_secs_f64(),
                bytes_fetched: bytes,
                output,
                image: None,
            }
        })
    }
}

impl Preparation {
    async fn volume(&self, volume: &str, key: &str) -> Result<(), String> {
        if self
            .engine
            .volume_exists(volume)
            .await
            .map_err(|e| e.to_string())?
        {
            return Ok(());
        }
        let labels = [
            (LABEL, key.to_string()),
            (LABEL_FROM, self.project.from().to_string()),
            (LABEL_IMAGE, self.image_id.clone()),
            (LABEL_RUN, self.owner.run_id.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        self.engine
            .create_volume(volume, labels)
            .await
            .map_err(|e| e.to_string())
    }

    fn spec(&self, volume: &str, gated: bool) -> ContainerSpec {
        let script = match gated {
            // Ready: no need to wait for the gateway.
            true => format!(
                "[ -f {PREP_MOUNT}/{} ] && {{ echo 'sandpen: the environment is ready'; exit 0; }}\n{}{}",
                super::shell::READY,
                crate::gateway::gate::script(),
                prepare_shell(self.project.lock.is_some())
            ),
            false => prepare_shell(self.project.lock.is_some()),
        };
        ContainerSpec {
            name: format!("sandpen-{}-env", self.owner.run_id),
            image: self.image.clone(),
            cmd: ["sh", "-c", &script].map(String::from).to_vec(),
            env: vec![
                format!("HOME={HOME}"),
                // The preparation's download cache: on the host's disk, in its workspace.
                format!("UV_CACHE_DIR={WORKDIR}/.uv-cache"),
            ],
            secrets: Vec::new(),
            user: self.user,
            labels: self.owner.labels(AUDIT_NAME, "env"),
            workspace: self.dir.clone(),
            mounts: vec![BindMount::volume(volume, PREP_MOUNT, false)],
            limits: self.limits,
            network: self.network.clone(),
            engine_log: false,
            gated,
            self_collect: None,
            runtime: self.runtime.clone(),
            memory_request: None,
        }
    }

    /// Runs the preparation's container to its end, and removes it.
    async fn run(&self, volume: &str, gateway: Option<&GatewayHandle>) -> Result<Ran, String> {
        std::fs::create_dir_all(&self.dir)
            .and_then(|()| self.project.write_to(&self.dir))
            .and_then(|()| crate::workspace::chown_tree(&self.dir, self.user))
            .map_err(|e| format!("making {}: {e}", self.dir.display()))?;
        let mut spec = self.spec(volume, gateway.is_some());
        let admission = match gateway {
            Some(g) => {
                let a = g.gw.prepare(AUDIT_NAME).await.map_err(|e| e.to_string())?;
                spec.network = NetworkMode::None;
                spec.mounts.extend(g.gw.task_mounts());
                spec.env.extend(a.env().iter().map(|(k, v)| format!("{k}={v}")));
                spec.secrets = a.secrets();
                Some((g, a))
            }
            None => None,
        };
        let id = self.engine.create(&spec).await.map_err(|e| e.to_string())?;
        let ran = self.attached(&id, admission.as_ref().map(|(g, a)| (*g, a))).await;
        let _ = self.engine.remove(&id).await;
        let bytes = match admission {
            Some((g, _)) => g.gw.release(AUDIT_NAME, true).await.egress_bytes_down,
            None => 0,
        };
        ran.map(|(code, output)| Ran { code, output, bytes })
    }

    async fn attached(
        &self,
        id: &str,
        admission: Option<(&GatewayHandle, &crate::gateway::Admission)>,
    ) -> Result<(Option<i64>, String), String> {
        let err = |e: crate::engine::EngineError| e.to_string();
        let (mut output, input) = match admission {
            Some(_) => {
                let (o, i) = self.engine.attach_with_input(id).await.map_err(err)?;
                (o, Some(i))
            }
            None => (self.engine.attach(id).await.map_err(err)?, None),
        };
        self.engine.start(id).await.map_err(err)?;
        if let (Some((g, a)), Some(mut input)) = (admission, input) {
            // The gate's line: the relay's address once the gateway admitted the token.
            let addr = g.gw.admit(AUDIT_NAME, a, &[], Some(0.0)).await;
            if let Ok(addr) = &addr {
                let _ = input.write_all(format!("{addr}\n").as_bytes()).await;
            }
            let _ = input.shutdown().await;
        }
        let mut kept: Vec<u8> = Vec::new();
        let read = async {
            while let Some(Ok((_, bytes))) = output.next().await {
                kept.extend_from_slice(&bytes);
                if kept.len() > 2 * OUTPUT_KEPT {
                    kept.drain(..kept.len() - OUTPUT_KEPT);
                }
            }
            self.engine.wait(id).await
        };
        let code = tokio::select! {
            waited = tokio::time::timeout(PREP_LIMIT, read) => match waited {
                Ok(Ok(code)) => Some(code),
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => None,
            },
            _ = self.stop.cancelled() => None,
        };
        if code.is_none() {
            let _ = self.engine.kill(id).await;
        }
        let start = kept.len().saturating_sub(OUTPUT_KEPT);
        Ok((code, String::from_utf8_lossy(&kept[start..]).into_owned()))
    }
}

pub(super) fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
