//! sandpen's side of a run's gateway: its directory, the relay and the gateway container, made
//! once per run; a token per task; the gateway's reports read into `egress.jsonl` and each
//! task's meter; everything removed at the end. No network is made: tasks have none.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

use super::meter::GatewayUsage;
use super::price::PriceTable;
use tokio_util::sync::CancellationToken;

use super::files::{self, GatewayLine};
use super::protocol::{Command, CredentialKind, Endpoint, Report};
use super::relay::{self, Placement};
use super::reports::{Reports, spent_signal};
use super::window::Window;
use super::{Admission, GatewayError, OnRateLimit, TaskGateway};
use crate::engine::spec::{BindMount, Limits, NetworkMode, Owner};
use crate::engine::{Engine, EngineError, Input, OutputStream, ServiceSpec, Stream, left_for_gc, short};
use crate::monitor::LineAssembler;

/// How long the gateway may take to say it listens, and to acknowledge a command (an
/// admission; a release waits less, as the run's end does not wait on a hung engine).
const READY_LIMIT: Duration = Duration::from_secs(20);
const ACK_LIMIT: Duration = Duration::from_secs(10);
const RELEASE_LIMIT: Duration = Duration::from_secs(3);
/// Each removal at the end (as the runner's final sweep).
const REMOVE_LIMIT: Duration = Duration::from_secs(5);
/// Then for its last lines to reach `egress.jsonl` and `gateway.log` (its output has ended).
const FILES_LIMIT: Duration = Duration::from_secs(2);

/// What a run's gateway needs to know.
pub struct GatewayOptions {
    pub image: String,
    /// Its command: empty for the gateway image (its entrypoint); a task image on a Swarm
    /// names sandpen's own (`swarm::ENTRY gateway`).
    pub cmd: Vec<String>,
    /// The model API: the real one, or the host's `ANTHROPIC_BASE_URL`.
    pub upstream: String,
    /// The real credential, and how it is sent upstream.
    pub credential: Option<(CredentialKind, SecretString)>,
    pub prices: PriceTable,
    /// What every task may reach (the defaults and `--allow-host`).
    pub allow: Vec<String>,
    /// Where every report goes, one JSON line each.
    pub audit: PathBuf,
    /// The gateway's own messages (stderr).
    pub log: PathBuf,
    /// Where its socket goes (`RunDir::gateway_dir`), and the relay (`RunDir::relay`).
    pub dir: PathBuf,
    pub relay: PathBuf,
    /// Told of each rate limit as it happens (the caller turns it into its displays' event).
    pub on_rate_limit: Option<OnRateLimit>,
}

/// The network of a run made by an earlier sandpen (one per run, before tasks had none): named
/// for the run, so that `gc` can still find and remove it.
pub fn network_name(run_id: &str) -> String {
    format!("sandpen-{run_id}")
}

/// The gateway container's name, likewise.
pub fn container_name(run_id: &str) -> String {
    format!("sandpen-{run_id}-gateway")
}

/// The gateway's container, started, before it knows its address.
pub struct Launched {
    id: String,
    name: String,
    output: OutputStream,
    input: Input,
}

impl Launched {
    pub fn id(&self) -> &str {
        &self.id
    }
}

type Waiters = HashMap<String, oneshot::Sender<()>>;

pub struct Gateway {
    engine: Engine,
    placement: Placement,
    container: String,
    /// The container's name, for the user.
    name: String,
    /// Once the gateway said it listens.
    listening: AtomicBool,
    allow: Vec<String>,
    input: tokio::sync::Mutex<Option<Input>>,
    /// Its reports, until `ready` reads them.
    output: Mutex<Option<OutputStream>>,
    meters: Arc<Mutex<HashMap<String, GatewayUsage>>>,
    waiters: Arc<Mutex<Waiters>>,
    /// Per task, cancelled when its budget is reached.
    spent: Arc<Mutex<HashMap<String, CancellationToken>>>,
    /// While the upstream limits the run, no task is admitted (so no container starts).
    paused: Arc<Window>,
    /// The reader of its reports, which ends once its files are written whole.
    reader: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Gateway {
    /// Makes the run's gateway directory, relay and container, and waits until it serves; on
    /// any failure removes what it made.
    pub async fn start(engine: &Engine, owner: &Owner, opts: &GatewayOptions) -> Result<Self, GatewayError> {
        let placement = Self::place(opts).await?;
        let container = match Self::container(engine, owner, opts, &placement).await {
            Ok(c) => c,
            Err(e) => {
                placement.remove();
                return Err(e);
            }
        };
        let gw = Self::assemble(engine, placement, container, opts);
        match gw.ready(opts).await {
            Ok(()) => Ok(gw),
            Err(e) => {
                gw.shutdown_now().await;
                Err(e)
            }
        }
    }

    /// The directory the socket goes in and the relay, on the host (files: off the runtime).
    pub async fn place(opts: &GatewayOptions) -> Result<Placement, GatewayError> {
        let (dir, relay) = (opts.dir.clone(), opts.relay.clone());
        let made = tokio::task::spawn_blocking(move || Placement::make(&dir, &relay)).await;
        match made {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(e)) => Err(GatewayError::Start(format!(
                "making its directory {}: {e}",
                opts.dir.display()
            ))),
            Err(e) => Err(GatewayError::Start(format!("making its directory: {e}"))),
        }
    }

    /// The gateway's container, started; it waits to be told where to listen (`ready`). On
    /// failure removes what it made.
    pub async fn container(
        engine: &Engine,
        owner: &Owner,
        opts: &GatewayOptions,
        placement: &Placement,
    ) -> Result<Launched, GatewayError> {
        let spec = ServiceSpec {
            name: container_name(&owner.run_id),
            image: opts.image.clone(),
            cmd: opts.cmd.clone(),
            labels: owner.labels("", crate::engine::spec::ROLE_GATEWAY),
            // Its directory's owner: it alone writes there.
            user: engine.dialect().user_owning(placement.owner),
            limits: Limits {
                nano_cpus: 1_000_000_000,
                memory_bytes: 256 << 20,
                pids: 256,
            },
            // The host's network: the gateway is the tasks' way out (and the model API may be
            // a server on the host's loopback). It listens on no address, only its socket.
            network: NetworkMode::Host,
            mounts: vec![placement.gateway_mount()],
        };
        let id = engine.create_service(&spec).await?;
        let started = async {
            let (output, input) = engine.attach_stdio(&id).await?;
            crate::engine::ContainerEngine::start(engine, &id).await?;
            Ok::<_, GatewayError>((output, input))
        };
        match started.await {
            Ok((output, input)) => Ok(Launched {
                id,
                name: spec.name,
                output,
                input,
            }),
            Err(e) => {
                let _ = crate::engine::ContainerEngine::remove(engine, &id).await;
                Err(e)
            }
        }
    }

    /// The gateway of a directory and a container: `ready` tells it where to listen.
    pub fn assemble(
        engine: &Engine,
        placement: Placement,
        container: Launched,
        opts: &GatewayOptions,
    ) -> Self {
        Self {
            engine: engine.clone(),
            placement,
            container: container.id,
            name: container.name,
            listening: AtomicBool::new(false),
            allow: opts.allow.clone(),
            input: tokio::sync::Mutex::new(Some(container.input)),
            output: Mutex::new(Some(container.output)),
            meters: Default::default(),
            waiters: Default::default(),
            spent: Default::default(),
            paused: Default::default(),
            reader: Mutex::new(None),
        }
    }

    /// Tells the gateway where to listen, waits until it does, configures it, and reads its
    /// reports from then on. A failure leaves the gateway in place (`shutdown` removes it).
    pub async fn ready(&self, opts: &GatewayOptions) -> Result<(), GatewayError> {
        let taken = self.output.lock().unwrap().take();
        let Some(mut output) = taken else {
            return Err(GatewayError::Start("it was made ready twice".into()));
        };
        let listen = Command::Listen {
            on: Endpoint::Unix(relay::socket_in_container().into()),
        };
        match tokio::time::timeout(ACK_LIMIT, self.send(&listen)).await {
            Ok(sent) => sent?,
            Err(_) => return Err(GatewayError::Start("it did not take its address".into())),
        }
        let mut lines = LineAssembler::new();
        let mut stderr = Vec::new();
        let ready = tokio::time::timeout(READY_LIMIT, async {
            while let Some(chunk) = output.next().await {
                let (stream, bytes) = chunk?;
                if stream == Stream::Stderr {
                    stderr.extend_from_slice(&bytes);
                    continue;
                }
                for line in lines.push(&bytes) {
                    if let Ok(Report::Ready { .. }) = serde_json::from_slice(&line) {
                        return Ok(Some(()));
                    }
                }
            }
            Ok::<_, GatewayError>(None)
        })
        .await;
        let said = || String::from_utf8_lossy(&stderr).trim().to_string();
        match ready {
            Ok(Ok(Some(()))) => {}
            Ok(Ok(None)) => {
                return Err(GatewayError::Start(format!(
                    "it ended before it listened: {}",
                    said()
                )));
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(GatewayError::Start(format!(
                    "it did not listen within {}s: {}",
                    READY_LIMIT.as_secs(),
                    said()
                )));
            }
        };
        self.listening.store(true, Ordering::SeqCst);
        self.send(&Command::Config {
            upstream: opts.upstream.clone(),
            credential_kind: opts.credential.as_ref().map(|(k, _)| *k),
            credential: opts
                .credential
                .as_ref()
                .map(|(_, v)| v.expose_secret().to_string()),
            prices: opts.prices.clone(),
        })
        .await?;
        let files = files::open(&opts.audit, &opts.log)?;
        files.send(GatewayLine::Log(stderr.into())).await;
        let waiters = self.waiters.clone();
        let reports = Reports {
            meters: self.meters.clone(),
            spent: self.spent.clone(),
            paused: self.paused.clone(),
            on_rate_limit: opts.on_rate_limit.clone(),
        };
        let reader = tokio::spawn(async move {
            let admitted = |report: &Report| {
                if let Report::Admitted { task } | Report::Released { task } = report
                    && let Some(w) = waiters.lock().unwrap().remove(task)
                {
                    let _ = w.send(());
                }
            };
            reports.follow(output, lines, &files, admitted).await;
            let _ = files.finish().await;
        });
        *self.reader.lock().unwrap() = Some(reader);
        Ok(())
    }

    async fn send(&self, cmd: &Command) -> Result<(), GatewayError> {
        let mut line = serde_json::to_vec(cmd).map_err(|e| GatewayError::Start(e.to_string()))?;
        line.push(b'\n');
        let mut input = self.input.lock().await;
        let input = input
            .as_mut()
            .ok_or_else(|| GatewayError::Start("the gateway has stopped".into()))?;
        input
            .write_all(&line)
            .await
            .and(input.flush().await)
            .map_err(|e| GatewayError::Start(format!("talking to the gateway: {e}")))
    }

    /// Sends `cmd` and waits up to `limit` for the gateway to acknowledge it for `task`.
    async fn send_and_wait(&self, task: &str, cmd: &Command, limit: Duration) -> Result<(), GatewayError> {
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().unwrap().insert(task.to_string(), tx);
        let sent = tokio::time::timeout(limit, self.send(cmd)).await;
        let acked = match sent {
            Ok(Ok(())) => tokio::time::timeout(limit, rx).await.is_ok_and(|r| r.is_ok()),
            Ok(Err(e)) => return Err(e),
            Err(_) => false,
        };
        if acked {
            Ok(())
        } else {
            Err(GatewayError::Start(format!(
                "the gateway did not acknowledge task {task} within {}s",
                limit.as_secs()
            )))
        }
    }

    async fn shutdown_now(&self) -> Vec<String> {
        // Its input closed, the gateway ends by itself; removing it makes sure. Every step has
        // a short limit, as the final sweep's: a hung engine must not hold the run's end.
        if let Ok(mut input) = tokio::time::timeout(REMOVE_LIMIT, self.input.lock()).await
            && let Some(mut input) = input.take()
        {
            let _ = tokio::time::timeout(REMOVE_LIMIT, input.shutdown()).await;
        }
        let mut failures = Vec::new();
        let removed = EngineError::limited(
            "removing the gateway container",
            REMOVE_LIMIT,
            crate::engine::ContainerEngine::remove(&self.engine, &self.container),
        );
        if let Err(e) = removed.await {
            failures.push(format!(
                "the gateway container {} ({}) could not be removed ({e}); `sandpen gc` removes it",
                self.name,
                short(&self.container)
            ));
        }
        // Its output ends with it: `egress.jsonl` and `gateway.log` are then written whole
        // (within the limit: a hung disk must not hold the run's end either).
        let reader = self.reader.lock().unwrap().take();
        if let Some(reader) = reader
            && failures.is_empty()
        {
            let _ = tokio::time::timeout(FILES_LIMIT, reader).await;
        }
        // Its socket and the relay go once the container is gone (no task container is left
        // then either: the gateway ends after the last task's). Small files: no need to leave
        // the runtime for them.
        if failures.is_empty() {
            self.placement.remove();
        }
        failures
    }
}

/// A fresh secret token for a task.
pub(super) fn new_token() -> Result<String, GatewayError> {
    crate::token::new_token().map_err(|e| GatewayError::Start(format!("reading /dev/urandom: {e}")))
}

impl TaskGateway for Gateway {
    fn task_mounts(&self) -> Vec<BindMount> {
        self.placement.task_mounts()
    }

    fn prepare<'a>(&'a self, _task: &'a str) -> BoxFuture<'a, Result<Admission, GatewayError>> {
        Box::pin(async move {
            // No new task while the upstream limits the run.
            self.paused.wait_out().await;
            Ok(Admission {
                token: SecretString::from(new_token()?),
            })
        })
    }

    fn admit<'a>(
        &'a self,
        task: &'a str,
        admission: &'a Admission,
        allow: &'a [String],
        max_cost_usd: Option<f64>,
    ) -> BoxFuture<'a, Result<SocketAddr, GatewayError>> {
        Box::pin(async move {
            if !self.listening.load(Ordering::SeqCst) {
                return Err(GatewayError::Start("it is not listening yet".into()));
            }
            let mut all = self.allow.clone();
            all.extend(allow.iter().cloned());
            let admit = Command::Admit {
                task: task.to_string(),
                token: admission.token.expose_secret().to_string(),
                allow: all,
                max_cost_usd,
            };
            self.send_and_wait(task, &admit, ACK_LIMIT).await?;
            Ok(relay::LISTEN)
        })
    }

    fn release<'a>(&'a self, task: &'a str, wait: bool) -> BoxFuture<'a, GatewayUsage> {
        Box::pin(async move {
            let release = Command::Release {
                task: task.to_string(),
            };
            let limit = if wait { RELEASE_LIMIT } else { Duration::ZERO };
            if let Err(e) = self.send_and_wait(task, &release, limit).await {
                tracing::debug!("releasing task {task}: {e}");
            }
            self.meters.lock().unwrap().get(task).cloned().unwrap_or_default()
        })
    }

    fn spent<'a>(&'a self, task: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(spent_signal(&self.spent, task).cancelled_owned())
    }

    fn shutdown(&self, engine_answers: bool) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            if engine_answers {
                return self.shutdown_now().await;
            }
            if let Ok(mut input) = tokio::time::timeout(Duration::from_secs(1), self.input.lock()).await {
                input.take();
            }
            let left = [format!(
                "the gateway container {} ({})",
                self.name,
                short(&self.container)
            )];
            vec![format!("not removed: {}", left_for_gc(&left))]
        })
    }
}
