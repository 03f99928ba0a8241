//! A fake engine for unit tests of the scheduler's logic (jobs limit, dependencies, fail-fast,
//! timeouts). It proves nothing about containers: the real-engine tests in tests/ do that.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;

use crate::engine::spec::{ContainerSpec, LABEL_ROLE, LABEL_TASK};
use crate::engine::{
    ContainerEngine, EngineError, ExitState, ListedContainer, OutputStream, StatsStream, Stream,
};

/// How a fake container behaves, by task id: it runs for `secs`, then exits with `code`.
#[derive(Clone, Copy)]
pub struct Behaviour {
    pub secs: f64,
    pub code: i64,
}

#[derive(Default)]
struct State {
    /// container id -> (task id, behaviour, stopped early)
    containers: HashMap<String, (String, Behaviour, bool)>,
    /// container id -> its memory limit, from its spec
    memory: HashMap<String, u64>,
    running: usize,
    pub max_running: usize,
    /// The memory limits of the running containers, added up, and the most they reached.
    reserved: u64,
    max_reserved: u64,
    pub stops: Vec<String>,
}

#[derive(Clone, Default)]
pub struct FakeEngine {
    behaviours: Arc<HashMap<String, Behaviour>>,
    /// The `init` line of each task's CLI, when not the default one (which lists the agent).
    init_lines: Arc<HashMap<String, String>>,
    state: Arc<Mutex<State>>,
    stopped: Arc<tokio::sync::Notify>,
    /// On another machine (shares no disk), where task containers never get past their
    /// node's pull of the image; notified when one starts waiting for it.
    far: Option<Arc<tokio::sync::Notify>>,
    /// Tasks whose next task container's create fails, once each.
    fail_create: Arc<Mutex<std::collections::HashSet<String>>>,
}

impl FakeEngine {
    pub fn new(behaviours: impl IntoIterator<Item = (&'static str, Behaviour)>) -> Self {
        Self {
            behaviours: Arc::new(behaviours.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
            ..Default::default()
        }
    }

    /// Makes `task`'s CLI print `line` as its init event.
    pub fn with_init(mut self, task: &str, line: &str) -> Self {
        Arc::make_mut(&mut self.init_lines).insert(task.into(), line.into());
        self
    }

    /// Makes it a far engine whose task containers wait for an image pull that never ends;
    /// the returned notice comes when one begins to wait.
    pub fn far_and_pulling(mut self) -> (Self, Arc<tokio::sync::Notify>) {
        let pulling = Arc::new(tokio::sync::Notify::new());
        self.far = Some(pulling.clone());
        (self, pulling)
    }

    /// Makes the create of `task`'s next task container fail, once.
    pub fn fail_create_once(self, task: &str) -> Self {
        self.fail_create.lock().unwrap().insert(task.into());
        self
    }

    pub fn max_running(&self) -> usize {
        self.state.lock().unwrap().max_running
    }

    /// The most memory the running containers' limits added up to at one time.
    pub fn max_reserved_memory(&self) -> u64 {
        self.state.lock().unwrap().max_reserved
    }

    /// Tasks that got a (task) container.
    pub fn created_tasks(&self) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.containers
            .iter()
            .filter(|(id, _)| id.ends_with("-task"))
            .map(|(_, (task, ..))| task.clone())
            .collect()
    }

    pub fn stopped_tasks(&self) -> Vec<String> {
        self.state.lock().unwrap().stops.clone()
    }

    fn task_of(&self, id: &str) -> (String, Behaviour, bool) {
        self.state.lock().unwrap().containers[id].clone()
    }
}

/// The stream-json a CLI would print for an exit code.
fn cli_output(init: Option<&str>, code: i64) -> Vec<u8> {
    let init = init.unwrap_or(r#"{"type":"system","subtype":"init","agents":["workflow-manager"]}"#);
    format!(
        "{init}\n{{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":{},\"num_turns\":1}}\n",
        code != 0
    )
    .into_bytes()
}

impl ContainerEngine for FakeEngine {
    async fn create(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        let task = spec.labels[LABEL_TASK].clone();
        let role = &spec.labels[LABEL_ROLE];
        // The collection sandbox ends at once and finds nothing to bring back.
        let b = match role.as_str() {
            "task" => self.behaviours.get(&task).copied(),
            _ => None,
        }
        .unwrap_or(Behaviour { secs: 0.0, code: 0 });
        if role == "task" && self.fail_create.lock().unwrap().remove(&task) {
            return Err(EngineError::Api {
                context: "creating a container".into(),
                reason: "the fake engine failed a create".into(),
            });
        }
        let id = format!("fake-{task}-{role}");
        let mut s = self.state.lock().unwrap();
        s.memory.insert(id.clone(), spec.limits.memory_bytes as u64);
        s.containers.insert(id.clone(), (task, b, false));
        Ok(id)
    }

    async fn attach(&self, id: &str) -> Result<OutputStream, EngineError> {
        let (task, b, _) = self.task_of(id);
        let text = match id.ends_with("-task") {
            true => cli_output(self.init_lines.get(&task).map(String::as_str), b.code),
            false => Vec::new(),
        };
        let (engine, id) = (self.clone(), id.to_string());
        // Output ends when the container does, as the engine's attach stream does.
        let end = async move { engine.wait(&id).await.ok() };
        let out = futures_util::stream::once(async move { Ok((Stream::Stdout, Bytes::from(text))) });
        Ok(out
            .chain(futures_util::stream::once(end).filter_map(|_| async { None }))
            .boxed())
    }

    async fn attach_with_input(&self, id: &str) -> Result<(OutputStream, crate::engine::Input), EngineError> {
        Ok((self.attach(id).await?, Box::pin(tokio::io::sink())))
    }

    async fn start(&self, id: &str) -> Result<(), EngineError> {
        if let Some(pulling) = &self.far
            && id.ends_with("-task")
        {
            pulling.notify_one();
            std::future::pending::<()>().await;
        }
        let mut s = self.state.lock().unwrap();
        s.running += 1;
        s.max_running = s.max_running.max(s.running);
        s.reserved += s.memory[id];
        s.max_reserved = s.max_reserved.max(s.reserved);
        Ok(())
    }

    async fn wait(&self, id: &str) -> Result<i64, EngineError> {
        let (_, b, _) = self.task_of(id);
        let deadline = tokio::time::sleep(Duration::from_secs_f64(b.secs));
        tokio::pin!(deadline);
        loop {
            // Registered before the check, so a stop in between is not missed.
            let notified = self.stopped.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.task_of(id).2 {
                return Ok(143);
            }
            tokio::select! {
                _ = &mut deadline => return Ok(b.code),
                _ = notified => {}
            }
        }
    }

    fn stats(&self, _id: &str) -> StatsStream {
        futures_util::stream::empty().boxed()
    }

    async fn exit_state(&self, id: &str) -> Result<ExitState, EngineError> {
        let (_, b, stopped) = self.task_of(id);
        Ok(ExitState {
            exit_code: if stopped { 143 } else { b.code },
            oom_killed: false,
            error: None,
            disk_over: None,
        })
    }

    async fn stop(&self, id: &str, _grace: Duration) -> Result<(), EngineError> {
        {
            let mut s = self.state.lock().unwrap();
            let task = s.containers[id].0.clone();
            s.stops.push(task);
            s.containers.get_mut(id).unwrap().2 = true;
        }
        self.stopped.notify_waiters();
        Ok(())
    }

    async fn kill(&self, id: &str) -> Result<(), EngineError> {
        self.stop(id, Duration::ZERO).await
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        let mut s = self.state.lock().unwrap();
        s.running = s.running.saturating_sub(1);
        // Once: a container removed twice frees its memory once.
        let memory = s.memory.remove(id).unwrap_or(0);
        s.reserved = s.reserved.saturating_sub(memory);
        Ok(())
    }

    fn shares_disk(&self) -> bool {
        self.far.is_none()
    }

    async fn list(&self, _key: &str, _value: Option<&str>) -> Result<Vec<ListedContainer>, EngineError> {
        Ok(Vec::new())
    }
}
