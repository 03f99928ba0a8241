//! A one-replica service through the `ContainerEngine` trait: what the runner asks of a
//! container, in the Swarm's terms. The Swarm starts a service's task as soon as it is created
//! (so `start` has nothing to do), reports its state on the task, not the service, and has no
//! stop or kill of its own: removing the service stops its container (SIGTERM, SIGKILL after
//! the spec's grace) and the task, inspected by id, says when the container is down.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{Task, TaskState};
use bollard::query_parameters::{ListServicesOptionsBuilder, ListTasksOptionsBuilder, LogsOptionsBuilder};
use futures_util::StreamExt;

use super::{SwarmEngine, job, parts, service_spec};
use crate::engine::containers::output_stream;
use crate::engine::error::is_not_found;
use crate::engine::spec::ContainerSpec;
use crate::engine::{
    CALL_TIMEOUT, ContainerEngine, EngineError, ExitState, Input, ListedContainer, OutputStream, StatsStream,
    short,
};

/// How long a task may take to start: its node pulls the image, or waits for room.
const START_LIMIT: Duration = Duration::from_secs(600);
/// How long a new service may be without a task (the Swarm's orchestrator makes it at once).
const TASK_LIMIT: Duration = Duration::from_secs(60);
/// How often a task's state is asked for while it runs.
const POLL: Duration = Duration::from_millis(500);
/// The log stream of a task never ends by itself (the Swarm keeps following it): once the task
/// has ended, it is closed after this long without output.
const QUIET: Duration = Duration::from_millis(1500);

/// Where a task is in its life, as far as its container goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not placed, or its container is still running.
    Live,
    /// Its container ran and is down (or never ran: rejected).
    Down,
    /// Its node is lost: nobody can say what its container does.
    Lost,
}

fn phase(task: &Task) -> Phase {
    match task.status.as_ref().and_then(|s| s.state) {
        Some(TaskState::COMPLETE | TaskState::FAILED | TaskState::SHUTDOWN | TaskState::REJECTED) => {
            Phase::Down
        }
        Some(TaskState::ORPHANED) => Phase::Lost,
        _ => Phase::Live,
    }
}

fn exit_code(task: &Task) -> i64 {
    let status = task.status.as_ref();
    status
        .and_then(|s| s.container_status.as_ref())
        .and_then(|c| c.exit_code)
        .unwrap_or(-1)
}

impl SwarmEngine {
    /// The service's task: by its id once known (a removed service's task stays inspectable
    /// until its container is down), else found by the service. None: not created yet, or
    /// gone; the last state seen is kept for then.
    pub(super) async fn task_of(&self, service: &str) -> Result<Option<Task>, EngineError> {
        let known = self.tasks.lock().unwrap().get(service).cloned();
        let docker = self.engine.docker();
        let found = match known {
            Some(task) => {
                let context = format!("inspecting the task of service {}", short(service));
                let id = task.id.clone().unwrap_or_default();
                let got = EngineError::limited(&context, CALL_TIMEOUT, async {
                    match docker.inspect_task(&id).await {
                        Ok(t) => Ok(Some(t)),
                        Err(e) if is_not_found(&e) => Ok(None),
                        Err(e) => Err(EngineError::api(&context, &e)),
                    }
                })
                .await?;
                // Gone: its container is down and the Swarm let go of it (as last seen: its
                // node, its exit code).
                Some(got.unwrap_or_else(|| gone(task)))
            }
            None => {
                let context = format!("listing the tasks of service {}", short(service));
                let filters = HashMap::from([("service", vec![service.to_string()])]);
                let opts = ListTasksOptionsBuilder::default().filters(&filters).build();
                EngineError::limited(&context, CALL_TIMEOUT, async {
                    match docker.list_tasks(Some(opts)).await {
                        Ok(tasks) => Ok(tasks.into_iter().next()),
                        Err(e) if is_not_found(&e) => Ok(None),
                        Err(e) => Err(EngineError::api(&context, &e)),
                    }
                })
                .await?
            }
        };
        if let Some(task) = &found {
            self.tasks
                .lock()
                .unwrap()
                .insert(service.to_string(), task.clone());
        }
        Ok(found)
    }

    /// Waits until the service's task is down, or lost.
    async fn until_down(&self, service: &str) -> Result<Task, EngineError> {
        loop {
            let task = match self.task_of(service).await? {
                Some(task) => Some(task),
                // Removed before the Swarm made its task (or before sandpen saw it: `stop`
                // looks first): no container was ever started for it.
                None if !self.service_exists(service).await? => return Ok(gone(Task::default())),
                None => None,
            };
            if let Some(task) = task {
                match phase(&task) {
                    Phase::Down => return Ok(task),
                    Phase::Lost => {
                        return Err(EngineError::Api {
                            context: format!("waiting for service {}", short(service)),
                            reason: "the Swarm lost the node its task ran on".into(),
                        });
                    }
                    Phase::Live => {}
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn service_exists(&self, service: &str) -> Result<bool, EngineError> {
        let context = format!("inspecting service {}", short(service));
        EngineError::limited(&context, CALL_TIMEOUT, async {
            let opts = None::<bollard::query_parameters::InspectServiceOptions>;
            match self.engine.docker().inspect_service(service, opts).await {
                Ok(_) => Ok(true),
                Err(e) if is_not_found(&e) => Ok(false),
                Err(e) => Err(EngineError::api(&context, &e)),
            }
        })
        .await
    }

    /// Removes the service, once its task is known: a removed service's task is found only
    /// by its own id.
    pub(super) async fn create_service(
        &self,
        service: bollard::models::ServiceSpec,
        context: &str,
    ) -> Result<String, EngineError> {
        let created = EngineError::limited(context, CALL_TIMEOUT, async {
            self.engine
                .docker()
                .create_service(service, None)
                .await
                .map_err(|e| EngineError::api(context, &e))
        })
        .await?;
        created.id.ok_or_else(|| EngineError::Api {
            context: context.to_string(),
            reason: "the engine gave no service id".into(),
        })
    }

    async fn remove_service(&self, service: &str) -> Result<(), EngineError> {
        self.task_of(service).await?;
        let context = format!("removing service {}", short(service));
        EngineError::limited(&context, CALL_TIMEOUT, async {
            match self.engine.docker().delete_service(service).await {
                Ok(()) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                Err(e) => Err(EngineError::api(&context, &e)),
            }
        })
        .await
    }
}

/// A task the Swarm no longer shows: as last seen, but down.
fn gone(mut task: Task) -> Task {
    let status = task.status.get_or_insert_with(Default::default);
    if !matches!(
        status.state,
        Some(TaskState::COMPLETE | TaskState::FAILED | TaskState::REJECTED)
    ) {
        status.state = Some(TaskState::SHUTDOWN);
    }
    task
}

impl ContainerEngine for SwarmEngine {
    async fn create(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        let context = format!("creating service {}", spec.name);
        let refused = |reason: String| EngineError::Api {
            context: context.clone(),
            reason,
        };
        let (mut spec, url) = self.delivered(spec).map_err(refused)?;
        let behind_gateway = spec.network == crate::engine::NetworkMode::None;
        if behind_gateway {
            super::gateway::behind(&mut spec);
        }
        let secret = match job::secrets_data(&spec) {
            Some(data) => {
                let name = job::secret_name(&spec.name);
                let made = parts::make_secret(&self.engine, &name, &data, &spec.labels).await;
                Some(made)
            }
            None => None,
        }
        .transpose();
        let service = secret.and_then(|secret| {
            service_spec(&spec, &self.placement, secret.as_deref()).map_err(|e| refused(e.to_string()))
        });
        let created = match service {
            Ok(service) => self.create_service(service, &context).await,
            Err(e) => Err(e),
        };
        match &created {
            Ok(id) => {
                let made = (spec.name.clone(), behind_gateway);
                self.made.lock().unwrap().insert(id.clone(), made);
            }
            Err(_) => parts::remove_secret(&self.engine, &job::secret_name(&spec.name)).await,
        }
        match (&created, url) {
            (Ok(id), Some(url)) => {
                self.urls.lock().unwrap().insert(id.clone(), url);
            }
            (Err(_), Some(url)) => self.forget(&url),
            _ => {}
        }
        created
    }

    /// The Swarm scheduled the task when the service was made; this waits until its container
    /// runs (or ran), so that the task's time counts from there and not from its node's pull
    /// of the image or its wait for room.
    async fn start(&self, id: &str) -> Result<(), EngineError> {
        let waiting = async {
            loop {
                if let Some(task) = self.task_of(id).await?
                    && (phase(&task) != Phase::Live
                        || task.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
                {
                    return Ok::<(), EngineError>(());
                }
                tokio::time::sleep(POLL).await;
            }
        };
        match tokio::time::timeout(START_LIMIT, waiting).await {
            Ok(r) => r,
            Err(_) => {
                let task = self.task_of(id).await.ok().flatten();
                let status = task.as_ref().and_then(|t| t.status.as_ref());
                let state = status
                    .and_then(|s| s.state)
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                let said = status
                    .and_then(|s| s.err.clone().or(s.message.clone()))
                    .unwrap_or_default();
                Err(EngineError::Api {
                    context: format!("starting service {}", short(id)),
                    reason: format!(
                        "its task did not run within {}s (state {state}: {said}); `docker service ps` on the manager says why",
                        START_LIMIT.as_secs()
                    ),
                })
            }
        }
    }

    async fn wait(&self, id: &str) -> Result<i64, EngineError> {
        self.until_down(id).await.map(|t| exit_code(&t))
    }

    /// The task's log stream, from its first line (the nodes keep it: `json-file`), closed
    /// once the task is down and its output has stopped coming.
    async fn attach(&self, id: &str) -> Result<OutputStream, EngineError> {
        let context = format!("reading the output of service {}", short(id));
        // The Swarm gives a new service its task within moments; one that never does (the
        // service was removed meanwhile) must not hold the runner.
        let first_task = async {
            loop {
                match self.task_of(id).await? {
                    Some(t) => return Ok(t),
                    None => tokio::time::sleep(POLL).await,
                }
            }
        };
        let task = EngineError::limited(context.clone(), TASK_LIMIT, first_task).await?;
        let opts = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .build();
        let task_id = task.id.unwrap_or_default();
        let logs = output_stream(
            self.engine.docker().task_logs(&task_id, Some(opts)).boxed(),
            context,
        );
        let state = (logs, self.clone(), id.to_string(), false);
        let closing = futures_util::stream::unfold(state, |(mut logs, me, id, mut down)| async move {
            loop {
                tokio::select! {
                    chunk = logs.next() => return chunk.map(|c| (c, (logs, me, id, down))),
                    _ = tokio::time::sleep(QUIET) => {
                        if down {
                            return None;
                        }
                        down = matches!(me.task_of(&id).await, Ok(Some(t)) if phase(&t) != Phase::Live);
                    }
                }
            }
        });
        Ok(closing.boxed())
    }

    async fn attach_with_input(&self, id: &str) -> Result<(OutputStream, Input), EngineError> {
        Err(EngineError::Api {
            context: format!("attaching to service {}", short(id)),
            reason: "a Swarm service has no standard input sandpen can write to".into(),
        })
    }

    /// The readings the task's entry step sends of its own cgroup (`sample.rs`).
    fn stats(&self, id: &str) -> StatsStream {
        self.readings(id)
    }

    async fn exit_state(&self, id: &str) -> Result<ExitState, EngineError> {
        let task = self.task_of(id).await?.ok_or_else(|| EngineError::Api {
            context: format!("inspecting service {}", short(id)),
            reason: "the Swarm shows no task for it".into(),
        })?;
        // The Swarm's `Err` of a container that exited is only "non-zero exit (N)": an error of
        // the engine is a task that never got to run its container.
        let ran = task
            .status
            .as_ref()
            .and_then(|s| s.container_status.as_ref())
            .and_then(|c| c.exit_code);
        let error = task
            .status
            .as_ref()
            .and_then(|s| s.err.clone())
            .filter(|e| !e.is_empty() && ran.is_none());
        Ok(ExitState {
            exit_code: exit_code(&task),
            // The Swarm does not say: the entry step counted the cgroup's kills.
            oom_killed: self.oom_killed(id),
            error,
            // Nor does it watch a disk: the entry step stopped the task and said so.
            disk_over: self.disk_over(id),
        })
    }

    /// Removing the service stops its container: SIGTERM, SIGKILL after the grace its spec
    /// was made with (`Placement::grace`).
    async fn stop(&self, id: &str, _grace: Duration) -> Result<(), EngineError> {
        self.remove_service(id).await
    }

    /// The Swarm has no kill: the same removal, with the spec's grace.
    async fn kill(&self, id: &str) -> Result<(), EngineError> {
        self.remove_service(id).await
    }

    /// Removes the service and waits, within the call limit, until its container is down;
    /// then its token is dead.
    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        self.remove_service(id).await?;
        let context = format!("waiting for the container of service {} to stop", short(id));
        EngineError::limited(&context, CALL_TIMEOUT, self.until_down(id)).await?;
        if let Some(url) = self.urls.lock().unwrap().remove(id) {
            self.forget(&url);
        }
        // Its secret, and its gateway's parts, whatever the gateway's release left (its
        // overlay, which this service held until now).
        let made = self.made.lock().unwrap().remove(id);
        if let Some((name, behind_gateway)) = made {
            parts::remove_secret(&self.engine, &job::secret_name(&name)).await;
            if behind_gateway {
                parts::remove_all(&self.engine, &parts::Names::of_service(&name)).await;
            }
        }
        Ok(())
    }

    fn shares_disk(&self) -> bool {
        false
    }

    async fn node(&self, id: &str) -> Option<String> {
        let node = self.node_of(id).await.ok().flatten()?;
        Some(match node.hostname.is_empty() {
            true => node.id,
            false => node.hostname,
        })
    }

    async fn list(&self, key: &str, value: Option<&str>) -> Result<Vec<ListedContainer>, EngineError> {
        let label = match value {
            Some(v) => format!("{key}={v}"),
            None => key.to_string(),
        };
        let filters = HashMap::from([("label", vec![label])]);
        let opts = ListServicesOptionsBuilder::default().filters(&filters).build();
        let list = EngineError::limited("listing services", CALL_TIMEOUT, async {
            self.engine
                .docker()
                .list_services(Some(opts))
                .await
                .map_err(|e| EngineError::api("listing services", &e))
        })
        .await?;
        Ok(list
            .into_iter()
            .map(|s| {
                let spec = s.spec.unwrap_or_default();
                ListedContainer {
                    id: s.id.unwrap_or_default(),
                    name: spec.name.unwrap_or_default(),
                    labels: spec.labels.unwrap_or_default(),
                    // Its task may still run: no exit code is taken from a listed service.
                    state: "running".into(),
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerStatus, TaskStatus};

    fn task(state: TaskState, code: Option<i64>) -> Task {
        Task {
            id: Some("t1".into()),
            status: Some(TaskStatus {
                state: Some(state),
                container_status: code.map(|c| ContainerStatus {
                    exit_code: Some(c),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_task_is_down_once_its_container_is() {
        assert_eq!(phase(&task(TaskState::RUNNING, None)), Phase::Live);
        assert_eq!(phase(&task(TaskState::PENDING, None)), Phase::Live);
        assert_eq!(phase(&task(TaskState::COMPLETE, Some(0))), Phase::Down);
        assert_eq!(phase(&task(TaskState::FAILED, Some(3))), Phase::Down);
        assert_eq!(phase(&task(TaskState::SHUTDOWN, Some(143))), Phase::Down);
        assert_eq!(phase(&task(TaskState::ORPHANED, None)), Phase::Lost);
        assert_eq!(exit_code(&task(TaskState::FAILED, Some(3))), 3);
        assert_eq!(exit_code(&task(TaskState::REJECTED, None)), -1);
    }

    #[test]
    fn a_task_the_swarm_let_go_of_is_down_with_what_was_last_seen() {
        let t = gone(task(TaskState::RUNNING, Some(0)));
        assert_eq!(phase(&t), Phase::Down);
        let t = gone(task(TaskState::COMPLETE, Some(0)));
        assert_eq!(t.status.unwrap().state, Some(TaskState::COMPLETE));
    }
}
