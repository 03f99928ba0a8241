//! A warm environment for tasks on a Swarm: an image layer per lock. A named volume lives on
//! one engine and a task's node is chosen by the Swarm, so the environment travels as an image
//! the nodes pull by digest: `FROM` the task image (with its entry step) plus the prepared
//! environment at [`ENV_MOUNT`], where a task sees it locally. The preparation is the local
//! one (`prepare.rs`, on the manager's engine, through a gateway of its own); the layer is
//! built from its volume, tagged by its key, kept between runs and pushed beside the task
//! image. `COPY` makes every file root's: the shared environment is read-only to tasks.

use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{ENV_MOUNT, EnvState, Environment, LABEL, Preparation, Prepare, volume_name};
use crate::engine::spec::{BindMount, ContainerSpec, Limits, NetworkMode, WORKDIR};
use crate::engine::{BuildContext, ContainerEngine, EngineError, OutputStream, Stream};
use crate::gateway::GatewayHandle;

/// The repository of environment layers (tagged by their key).
pub const REPOSITORY: &str = "sandpen-env";

/// Starts the preparation's own gateway (None: the run has none, its network is the node's).
pub type GatewayMaker = Box<dyn Fn() -> Option<GatewayHandle> + Send + Sync>;

/// The run's environment on a Swarm.
pub struct Layered {
    /// The local preparation, on the manager's engine (its volume keyed by the task image).
    pub prep: Preparation,
    /// The local tag of the task image with its entry step, and its id: the layer's base.
    pub base: String,
    pub base_id: String,
    /// Where the nodes pull from (`--registry`).
    pub registry: String,
    /// The preparation's gateway: a Swarm's gateways are services on overlays no local
    /// container can join, so it gets one of its own on the manager's engine, for its time.
    pub gateway: GatewayMaker,
    /// Where the layer's Dockerfile is written (removed after).
    pub dir: PathBuf,
}

impl Prepare for Layered {
    fn prepare<'a>(&'a self, _run_gateway: Option<&'a GatewayHandle>) -> BoxFuture<'a, Environment> {
        Box::pin(async move {
            let (t0, key) = (Instant::now(), self.prep.project.key(&self.base_id));
            let tag = format!("{REPOSITORY}:{key}");
            let made = matches!(self.prep.engine.image_id(&tag).await, Ok(Some(_)));
            let mut env = match made {
                // Kept from an earlier run: nothing prepared, nothing fetched, nothing built.
                true => Environment {
                    volume: volume_name(&self.prep.project.key(&self.prep.image_id)),
                    from: self.prep.project.from().to_string(),
                    state: EnvState::Reused,
                    started_at: super::prepare::now(),
                    duration_s: 0.0,
                    bytes_fetched: 0,
                    output: None,
                    image: None,
                },
                false => {
                    let gateway = (self.gateway)();
                    let env = self.prep.prepare(gateway.as_ref()).await;
                    if let Some(g) = gateway {
                        g.end().await;
                    }
                    env
                }
            };
            if env.failed() {
                return env;
            }
            let layered = match made {
                true => Ok(()),
                false => self.build(&env.volume, &tag, &key).await,
            };
            let pinned = match layered {
                Ok(()) => crate::swarm::publish(&self.prep.engine, &tag, &self.registry)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match pinned {
                Ok(image) => env.image = Some(image),
                Err(e) => {
                    env.state = EnvState::Failed;
                    env.output = Some(format!("making the environment's image {tag}: {e}"));
                }
            }
            env.duration_s = t0.elapsed().as_secs_f64();
            env
        })
    }
}

impl Layered {
    /// Builds `tag` from the volume: a container tars the build context (the Dockerfile and
    /// the volume's files under `env/`) to its output, streamed into the engine's build as it
    /// comes, never held whole (an environment can weigh gigabytes).
    async fn build(&self, volume: &str, tag: &str, key: &str) -> Result<(), String> {
        let dockerfile = format!("FROM {}\nCOPY env/ {ENV_MOUNT}/\n", self.base);
        std::fs::create_dir_all(&self.dir)
            .and_then(|()| std::fs::write(self.dir.join("Dockerfile"), dockerfile))
            .map_err(|e| format!("writing {}: {e}", self.dir.display()))?;
        let tarring = self.context(volume).await;
        let dir = self.dir.clone();
        let (context, tarred) = match tarring {
            Ok(t) => t,
            Err(e) => {
                let _ = tokio::task::spawn_blocking(move || crate::workspace::remove_tree(&dir)).await;
                return Err(e);
            }
        };
        let (labels, args) = ([(LABEL.to_string(), key.to_string())].into(), Default::default());
        let build = self
            .prep
            .engine
            .build_image(context, tag, &args, &labels, false, |_| {});
        // A stopped run does not wait for the build (the engine removes its own containers).
        let built = tokio::select! {
            built = build => built.map_err(|e| e.to_string()),
            _ = self.prep.stop.cancelled() => Err("the run was stopped".into()),
        };
        // The tar's own failure says more than the upload it cut short.
        let tarred = tarred.await.unwrap_or_else(|e| Err(e.to_string()));
        let _ = tokio::task::spawn_blocking(move || crate::workspace::remove_tree(&dir)).await;
        tarred?;
        built?
            .map(|_| ())
            .map_err(|f| format!("{}\n{}", f.message, f.step_output))
    }

    /// The build context, streamed from a container that tars the volume, and the tar's end:
    /// Err when it failed (its stream then ends in an error, which fails the build).
    async fn context(&self, volume: &str) -> Result<(BuildContext, JoinHandle<Result<(), String>>), String> {
        // Names under `env/`; link targets inside the archive too, never a symlink's target.
        let script = format!(
            "tar -cf - --numeric-owner -C {WORKDIR} Dockerfile -C /v --transform 'flags=rh;s,^\\.,env,' ."
        );
        let spec = ContainerSpec {
            name: format!("sandpen-{}-env-layer", self.prep.owner.run_id),
            image: self.prep.image.clone(),
            cmd: ["sh", "-c", &script].map(String::from).to_vec(),
            env: Vec::new(),
            secrets: Vec::new(),
            user: self.prep.user,
            labels: self.prep.owner.labels(super::AUDIT_NAME, "env"),
            workspace: self.dir.clone(),
            mounts: vec![BindMount::volume(volume, "/v", true)],
            limits: Limits {
                memory_bytes: 512 << 20,
                ..self.prep.limits
            },
            network: NetworkMode::None,
            engine_log: false,
            gated: false,
            self_collect: None,
            runtime: self.prep.runtime.clone(),
            memory_request: None,
        };
        let engine = self.prep.engine.clone();
        let id = engine.create(&spec).await.map_err(|e| e.to_string())?;
        let output = match engine.attach(&id).await {
            Ok(out) => out,
            Err(e) => {
                let _ = engine.remove(&id).await;
                return Err(e.to_string());
            }
        };
        let (tx, rx) = mpsc::channel(CHUNKS_AHEAD);
        let tarred = tokio::spawn(async move {
            let result = match engine.start(&id).await {
                Ok(()) => forward(output, &tx, engine.wait(&id)).await,
                Err(e) => Err(e.to_string()),
            };
            if let Err(why) = &result {
                let _ = tx.send(Err(std::io::Error::other(why.clone()))).await;
            }
            // Also when the build went away first: the tar stops with its container.
            let _ = engine.remove(&id).await;
            result
        });
        let chunks =
            futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
        Ok((BuildContext::Streamed(chunks.boxed()), tarred))
    }
}

/// Chunks of the tar held between the container and the build (a few megabytes at most).
const CHUNKS_AHEAD: usize = 16;

/// Sends the tar's stdout on to the build, then waits for its exit: Err with what it said on
/// stderr when it failed, or when the build stopped taking the stream.
async fn forward(
    mut output: OutputStream,
    tx: &mpsc::Sender<std::io::Result<Bytes>>,
    exited: impl Future<Output = Result<i64, EngineError>>,
) -> Result<(), String> {
    let mut said = Vec::new();
    loop {
        // A build that went away (failed, or the run stopped) ends this at once, even while
        // the tar writes nothing.
        let chunk = tokio::select! {
            chunk = output.next() => chunk,
            _ = tx.closed() => return Err("the build stopped reading the environment".into()),
        };
        let Some(chunk) = chunk else { break };
        match chunk.map_err(|e| e.to_string())? {
            (Stream::Stdout, b) => {
                if tx.send(Ok(b)).await.is_err() {
                    return Err("the build stopped reading the environment".into());
                }
            }
            (Stream::Stderr, b) => {
                let room = 4096usize.saturating_sub(said.len());
                said.extend_from_slice(&b[..b.len().min(room)]);
            }
        }
    }
    match exited.await.map_err(|e| e.to_string())? {
        0 => Ok(()),
        code => Err(format!(
            "tarring the environment's volume exited {code}: {}",
            String::from_utf8_lossy(&said)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn output(chunks: Vec<(Stream, &'static [u8])>) -> OutputStream {
        futures_util::stream::iter(chunks.into_iter().map(|(s, b)| Ok((s, Bytes::from_static(b))))).boxed()
    }

    async fn received(mut rx: mpsc::Receiver<std::io::Result<Bytes>>) -> Vec<u8> {
        let mut all = Vec::new();
        while let Ok(Some(Ok(b))) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
            all.extend_from_slice(&b);
        }
        all
    }

    #[tokio::test]
    async fn the_tar_goes_on_to_the_build_and_its_failure_is_named() {
        let tar = || {
            output(vec![
                (Stream::Stdout, b"tar "),
                (Stream::Stderr, b"tar: ./x: Permission denied"),
                (Stream::Stdout, b"bytes"),
            ])
        };
        let (tx, rx) = mpsc::channel(CHUNKS_AHEAD);
        assert_eq!(forward(tar(), &tx, async { Ok(0) }).await, Ok(()));
        assert_eq!(received(rx).await, b"tar bytes", "stdout only, in order");

        let (tx, _rx) = mpsc::channel(CHUNKS_AHEAD);
        let failed = forward(tar(), &tx, async { Ok(2) }).await.unwrap_err();
        assert!(
            failed.contains("exited 2") && failed.contains("Permission denied"),
            "{failed}"
        );
    }

    #[tokio::test]
    async fn a_build_that_stops_reading_stops_the_forwarding() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let tar = output(vec![(Stream::Stdout, b"a"), (Stream::Stdout, b"b")]);
        let ended = forward(tar, &tx, async { Ok(0) }).await.unwrap_err();
        assert!(ended.contains("stopped reading"), "{ended}");
    }
}
