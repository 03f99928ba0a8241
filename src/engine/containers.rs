//! The narrow interface the runner needs from the engine, and its bollard implementation.
//! Unit tests of the scheduler use a fake behind the same trait; integration tests use this.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::models::ContainerStatsResponse;
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, KillContainerOptionsBuilder,
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, StatsOptionsBuilder,
    StopContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};

use super::error::{is_not_found, is_removal_in_progress};
use super::spec::ContainerSpec;
use super::{CALL_TIMEOUT, Engine, EngineError};

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How a container ended, read from its state after it stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitState {
    pub exit_code: i64,
    pub oom_killed: bool,
    pub error: Option<String>,
    /// What a container that watches its own disk (on an engine far from sandpen's disk) held
    /// when it stopped its task for passing the disk limit, in bytes.
    pub disk_over: Option<u64>,
}

/// A container as listed by label.
#[derive(Debug, Clone)]
pub struct ListedContainer {
    pub id: String,
    pub name: String,
    pub labels: HashMap<String, String>,
    pub state: String,
}

pub type OutputStream = BoxStream<'static, Result<(Stream, Bytes), EngineError>>;
pub type StatsStream = BoxStream<'static, Result<ContainerStatsResponse, EngineError>>;

/// The container operations of one task's lifecycle.
pub trait ContainerEngine: Clone + Send + Sync + 'static {
    fn create(&self, spec: &ContainerSpec) -> impl Future<Output = Result<String, EngineError>> + Send;
    fn start(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Resolves when the container is no longer running, with its exit code.
    fn wait(&self, id: &str) -> impl Future<Output = Result<i64, EngineError>> + Send;
    /// The container's output, attached before it starts (call between `create` and `start`),
    /// so nothing is lost and nothing depends on the engine's log driver or its rotation.
    fn attach(&self, id: &str) -> impl Future<Output = Result<OutputStream, EngineError>> + Send;
    /// The same, with the container's standard input (created with `ContainerSpec::gated`).
    fn attach_with_input(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<(OutputStream, super::Input), EngineError>> + Send;
    fn stats(&self, id: &str) -> StatsStream;
    fn exit_state(&self, id: &str) -> impl Future<Output = Result<ExitState, EngineError>> + Send;
    /// SIGTERM, then SIGKILL after `grace`.
    fn stop(&self, id: &str, grace: Duration) -> impl Future<Output = Result<(), EngineError>> + Send;
    fn kill(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Force-removes; a container that is already gone is not an error. Ok means the engine
    /// confirmed the container is gone (a removal "already in progress" is not that).
    fn remove(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Whether containers see sandpen's disk (bind mounts). Without it a task's files travel
    /// to its container and its work comes back from it (`swarm`), and no collection sandbox
    /// can reach a checkout the container left.
    fn shares_disk(&self) -> bool {
        true
    }
    /// The machine the container ran on, where the engine spans several (a Swarm's node).
    fn node(&self, _id: &str) -> impl Future<Output = Option<String>> + Send {
        std::future::ready(None)
    }
    /// Containers (running or not) carrying `key=value`, or just `key` when value is None.
    fn list(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> impl Future<Output = Result<Vec<ListedContainer>, EngineError>> + Send;
}

impl Engine {
    /// One stats sample of a running container (the engine waits for a second reading, so
    /// the CPU figure has a baseline): for `sandpen ps`, which has no stream to follow.
    pub async fn stats_once(&self, id: &str) -> Result<crate::monitor::StatsSample, EngineError> {
        let opts = StatsOptionsBuilder::default().stream(false).build();
        let context = format!("reading the stats of container {}", short(id));
        if !self.dialect().cgroup_per_container() {
            return Err(EngineError::Api {
                context,
                reason: "this engine gives containers no cgroup of their own".into(),
            });
        }
        let first = EngineError::limited(&context, CALL_TIMEOUT, async {
            self.docker()
                .stats(id, Some(opts))
                .next()
                .await
                .transpose()
                .map_err(|e| EngineError::api(&context, &e))
        })
        .await?;
        let stats = first.ok_or_else(|| EngineError::Api {
            context,
            reason: "the engine sent no sample".into(),
        })?;
        Ok(crate::monitor::sample(&stats))
    }

    fn stats_stream(&self, id: &str) -> StatsStream {
        let opts = StatsOptionsBuilder::default().stream(true).build();
        let context = format!("reading the stats of container {}", short(id));
        self.docker()
            .stats(id, Some(opts))
            .map_err(move |e| EngineError::api(context.clone(), &e))
            .boxed()
    }

    /// The cgroup of a running container, if this host shows it (a local engine, sandpen in
    /// the engine's pid namespace).
    async fn local_cgroup(&self, id: &str) -> Option<super::cgroup::Cgroup> {
        let info = tokio::time::timeout(
            CALL_TIMEOUT,
            self.docker()
                .inspect_container(id, None::<bollard::query_parameters::InspectContainerOptions>),
        )
        .await
        .ok()?
        .ok()?;
        let pid = info.state?.pid?;
        let full_id = info.id?;
        tokio::task::spawn_blocking(move || super::cgroup::Cgroup::of_process(pid, &full_id))
            .await
            .ok()
            .flatten()
    }

    /// Attaches to a container's stdout and stderr (as sandpen reads them: chunks, errors in
    /// words) and, with `stdin`, its standard input.
    pub(crate) async fn attach_streams(
        &self,
        id: &str,
        stdin: bool,
        context: String,
    ) -> Result<(OutputStream, super::Input), EngineError> {
        let opts = AttachContainerOptionsBuilder::default()
            .stream(true)
            .stdin(stdin)
            .stdout(true)
            .stderr(true)
            .build();
        let attached = EngineError::limited(&context, CALL_TIMEOUT, async {
            self.docker()
                .attach_container(id, Some(opts))
                .await
                .map_err(|e| EngineError::api(&context, &e))
        })
        .await?;
        Ok((output_stream(attached.output, context), attached.input))
    }
}

/// An attach or log stream as sandpen reads it: stdout and stderr chunks, errors in words.
pub(crate) fn output_stream(
    output: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
    >,
    context: String,
) -> OutputStream {
    output
        .map_err(move |e| EngineError::api(context.clone(), &e))
        .try_filter_map(|out| async move {
            Ok(match out {
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    Some((Stream::Stdout, message))
                }
                LogOutput::StdErr { message } => Some((Stream::Stderr, message)),
                LogOutput::StdIn { .. } => None,
            })
        })
        .boxed()
}

impl Engine {
    /// Creates a container named `name` from a complete Engine API body.
    pub(crate) async fn create_named(
        &self,
        name: &str,
        body: bollard::models::ContainerCreateBody,
    ) -> Result<String, EngineError> {
        let opts = CreateContainerOptionsBuilder::default().name(name).build();
        let context = format!("creating container {name}");
        let created = EngineError::limited(&context, CALL_TIMEOUT, async {
            self.docker()
                .create_container(Some(opts), body)
                .await
                .map_err(|e| EngineError::api(&context, &e))
        })
        .await?;
        Ok(created.id)
    }
}

impl ContainerEngine for Engine {
    async fn create(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        self.create_named(&spec.name, spec.to_body(&self.dialect())).await
    }

    async fn start(&self, id: &str) -> Result<(), EngineError> {
        let context = format!("starting container {}", short(id));
        EngineError::limited(&context, CALL_TIMEOUT, async {
            self.docker()
                .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
                .await
                .map_err(|e| EngineError::api(&context, &e))
        })
        .await
    }

    async fn wait(&self, id: &str) -> Result<i64, EngineError> {
        let opts = WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        let mut stream = self.docker().wait_container(id, Some(opts));
        match stream.next().await {
            Some(Ok(r)) => Ok(r.status_code),
            // bollard reports a non-zero exit as an error that carries the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(EngineError::api(
                format!("waiting for container {}", short(id)),
                &e,
            )),
            None => Err(EngineError::Api {
                context: format!("waiting for container {}", short(id)),
                reason: "the engine closed the wait without a status".into(),
            }),
        }
    }

    async fn attach(&self, id: &str) -> Result<OutputStream, EngineError> {
        let context = format!("reading the output of container {}", short(id));
        Ok(self.attach_streams(id, false, context).await?.0)
    }

    async fn attach_with_input(&self, id: &str) -> Result<(OutputStream, super::Input), EngineError> {
        let context = format!("attaching to container {}", short(id));
        self.attach_streams(id, true, context).await
    }

    /// The container's cgroup read directly when this host shows it (`cgroup.rs`: readings
    /// at any moment, not only on the engine's tick a second), else the engine's stream.
    fn stats(&self, id: &str) -> StatsStream {
        if !self.dialect().cgroup_per_container() {
            // The engine's figures would be the user's whole cgroup's: none is honest.
            return futures_util::stream::empty().boxed();
        }
        let (engine, id) = (self.clone(), id.to_string());
        futures_util::stream::once(async move {
            match engine.local_cgroup(&id).await {
                Some(cg) => {
                    engine
                        .cgroups
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id.clone(), cg.clone());
                    let seen = engine.oom_seen.clone();
                    cg.stream(move || {
                        seen.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone());
                    })
                }
                None => engine.stats_stream(&id),
            }
        })
        .flatten()
        .boxed()
    }

    async fn exit_state(&self, id: &str) -> Result<ExitState, EngineError> {
        let context = format!("inspecting container {}", short(id));
        let info = EngineError::limited(&context, CALL_TIMEOUT, async {
            self.docker()
                .inspect_container(id, None::<bollard::query_parameters::InspectContainerOptions>)
                .await
                .map_err(|e| EngineError::api(&context, &e))
        })
        .await?;
        let state = info.state.unwrap_or_default();
        Ok(ExitState {
            exit_code: state.exit_code.unwrap_or(-1),
            // The engine's flag, or what the container's cgroup counted (Podman on cgroup v1
            // never sets the flag).
            oom_killed: state.oom_killed.unwrap_or(false)
                || self
                    .oom_seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(id),
            error: state.error.filter(|e| !e.is_empty()),
            disk_over: None,
        })
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<(), EngineError> {
        let opts = StopContainerOptionsBuilder::default()
            .t(grace.as_secs() as i32)
            .build();
        // The engine itself waits out the grace before it answers.
        let context = format!("stopping container {}", short(id));
        EngineError::limited(&context, grace + CALL_TIMEOUT, async {
            match self.docker().stop_container(id, Some(opts)).await {
                Ok(()) => Ok(()),
                Err(e) if is_gone_or_stopped(&e) => Ok(()),
                Err(e) => Err(EngineError::api(&context, &e)),
            }
        })
        .await
    }

    /// SIGKILL: first from sandpen through the container's cgroup when this host shows it
    /// (at once, where the engine may take seconds to get to it), then through the engine.
    async fn kill(&self, id: &str) -> Result<(), EngineError> {
        let cgroup = self
            .cgroups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned();
        if let Some(cg) = cgroup {
            let full_id = id.to_string();
            let killed = tokio::task::spawn_blocking(move || cg.kill_all(&full_id)).await;
            tracing::debug!(container = short(id), ?killed, "killed through its cgroup");
        }
        let opts = KillContainerOptionsBuilder::default().signal("SIGKILL").build();
        let context = format!("killing container {}", short(id));
        EngineError::limited(&context, CALL_TIMEOUT, async {
            match self.docker().kill_container(id, Some(opts)).await {
                Ok(()) => Ok(()),
                Err(e) if is_gone_or_stopped(&e) => Ok(()),
                Err(e) => Err(EngineError::api(&context, &e)),
            }
        })
        .await
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        let context = format!("removing container {}", short(id));
        EngineError::limited(&context, CALL_TIMEOUT, async {
            let remove = || self.docker().remove_container(id, Some(opts.clone()));
            self.oom_seen.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
            self.cgroups.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
            match super::dialect::retrying(remove).await {
                Ok(()) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                // Someone else's removal: done when the container is gone.
                Err(e) if is_removal_in_progress(&e) => loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    match self
                        .docker()
                        .inspect_container(id, None::<bollard::query_parameters::InspectContainerOptions>)
                        .await
                    {
                        Err(e) if is_not_found(&e) => return Ok(()),
                        Err(e) => return Err(EngineError::api(&context, &e)),
                        Ok(_) => {}
                    }
                },
                Err(e) => Err(EngineError::api(&context, &e)),
            }
        })
        .await
    }

    async fn list(&self, key: &str, value: Option<&str>) -> Result<Vec<ListedContainer>, EngineError> {
        let label = match value {
            Some(v) => format!("{key}={v}"),
            None => key.to_string(),
        };
        let filters = HashMap::from([("label", vec![label])]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = EngineError::limited("listing containers", CALL_TIMEOUT, async {
            super::dialect::retrying(|| self.docker().list_containers(Some(opts.clone())))
                .await
                .map_err(|e| EngineError::api("listing containers", &e))
        })
        .await?;
        Ok(list
            .into_iter()
            .map(|c| ListedContainer {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .unwrap_or_default()
                    .first()
                    .cloned()
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                labels: c.labels.unwrap_or_default(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
            })
            .collect())
    }
}

/// 404 (gone), 304 (already stopped), 409 (removal already in progress) and Podman's passing
/// `stopped` state all mean the container is on its way out: cleanup treats them as done.
fn is_gone_or_stopped(e: &bollard::errors::Error) -> bool {
    is_not_found(e)
        || super::dialect::is_stopped_state(e)
        || matches!(
            e,
            bollard::errors::Error::DockerResponseServerError {
                status_code: 304 | 409,
                ..
            }
        )
}

pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}
