//! Gateway mode on a Swarm: a gateway service per task (a sidecar), made before the task's
//! service and removed with it. The task's service is attached to an `internal` overlay of its
//! own and nothing else, so it has no route but to its gateway (a service cannot have no
//! network: docs/SCALE-OUT.md); the gateway is on that overlay and on the run's one
//! non-internal overlay, its way out. The real credential reaches the gateway alone, as a
//! Swarm secret (`/run/secrets`, its uid's, mode 0400), never an environment variable; the
//! task gets only its own token. The task's entry step reaches the run's exchange through the
//! gateway, which passes the exchange's paths and nothing else there (`gateway::serve`). Its
//! reports come back on its service's log stream, into `egress.jsonl` and the task's meter.
//!
//! One gateway per task, not per node: nothing to coordinate between gateways, the task's
//! budget is its gateway's alone, and a gateway that cannot be placed or does not come up
//! fails its task only. What it costs: a service more per task (about a second's start).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use super::SwarmEngine;
use super::parts::{self, Names};
use crate::blocking_writer::BlockingWriter;
use crate::engine::ContainerEngine;
use crate::engine::spec::Owner;
use crate::gateway::files::{self, GatewayLine};
use crate::gateway::protocol::{Command, Report};
use crate::gateway::reports::{Reports, spent_signal};
use crate::gateway::window::Window;
use crate::gateway::{Admission, GatewayError, GatewayOptions, GatewayUsage, TaskGateway};
use crate::monitor::LineAssembler;

/// How long a task's gateway may take to serve: its node may pull the image first.
const READY_LIMIT: Duration = Duration::from_secs(180);
/// Then for its last reports to arrive once it is removed.
const LAST_REPORTS: Duration = Duration::from_secs(5);

/// The run's gateways on a Swarm, as the runner uses them.
pub struct SwarmGateway {
    swarm: SwarmEngine,
    owner: Owner,
    opts: GatewayOptions,
    /// The run's exchange, as the nodes reach it (`HOST:PORT`).
    exchange: String,
    /// The run's overlay out, made with the first task's gateway.
    out: tokio::sync::OnceCell<String>,
    files: Mutex<Option<Arc<BlockingWriter<GatewayLine>>>>,
    meters: Arc<Mutex<HashMap<String, GatewayUsage>>>,
    spent: Arc<Mutex<HashMap<String, CancellationToken>>>,
    /// While the upstream limits a task, no task is admitted (as locally; told a little later,
    /// through the log stream).
    paused: Arc<Window>,
    /// Per task: its gateway's service and the reader of its reports.
    live: Mutex<HashMap<String, (String, tokio::task::JoinHandle<()>)>>,
}

impl SwarmGateway {
    /// The run's gateways: `opts.image` is the pinned task image (it holds sandpen).
    pub fn new(swarm: SwarmEngine, owner: Owner, opts: GatewayOptions) -> Result<Self, GatewayError> {
        let exchange = swarm
            .exchange_addr()
            .ok_or_else(|| GatewayError::Start("no exchange to pass the tasks' files through".into()))?;
        let files = files::open(&opts.audit, &opts.log)?;
        Ok(Self {
            swarm,
            owner,
            opts,
            exchange,
            out: Default::default(),
            files: Mutex::new(Some(Arc::new(files))),
            meters: Default::default(),
            spent: Default::default(),
            paused: Default::default(),
            live: Default::default(),
        })
    }

    /// The commands the task's gateway reads from its secret: the upstream with the real
    /// credential, the task's token, the exchange.
    fn commands(&self, task: &str, token: &SecretString, allow: &[String], max_cost: Option<f64>) -> String {
        let o = &self.opts;
        let mut all = o.allow.clone();
        all.extend(allow.iter().cloned());
        let cmds = [
            Command::Config {
                upstream: o.upstream.clone(),
                credential_kind: o.credential.as_ref().map(|(k, _)| *k),
                credential: o.credential.as_ref().map(|(_, v)| v.expose_secret().to_string()),
                prices: o.prices.clone(),
            },
            Command::Admit {
                task: task.to_string(),
                token: token.expose_secret().to_string(),
                allow: all,
                max_cost_usd: max_cost,
            },
            Command::Exchange {
                addr: self.exchange.clone(),
            },
        ];
        cmds.iter()
            .filter_map(|c| serde_json::to_string(c).ok())
            .map(|l| l + "\n")
            .collect()
    }

    /// Makes the task's overlay, secret and gateway service, and waits until it serves. On
    /// any failure, removes what it made.
    async fn start_for(&self, task: &str, commands: String) -> Result<(), GatewayError> {
        let names = Names::of(&self.owner.run_id, task);
        let labels = self.owner.labels(task, crate::engine::spec::ROLE_GATEWAY);
        let out_name = parts::out_network(&self.owner.run_id);
        let engine = self.swarm.engine();
        let out = self
            .out
            .get_or_try_init(|| parts::make_network(engine, &out_name, false, &labels))
            .await?;
        let made = async {
            parts::make_network(self.swarm.engine(), &names.network, true, &labels).await?;
            let secret = parts::make_secret(self.swarm.engine(), &names.secret, &commands, &labels).await?;
            let spec = parts::gateway_service(
                &names,
                &self.opts.image,
                &labels,
                &self.swarm.placement.constraints,
                (&secret, out),
            );
            let context = format!("creating the gateway service of task {task}");
            self.swarm
                .create_service(spec, &context)
                .await
                .map_err(GatewayError::from)
        };
        let id = match made.await {
            Ok(id) => id,
            Err(e) => {
                parts::remove_all(self.swarm.engine(), &names).await;
                return Err(e);
            }
        };
        let (ready, reader) = self.read_reports(&id).await;
        self.live
            .lock()
            .unwrap()
            .insert(task.to_string(), (id.clone(), reader));
        let why = tokio::select! {
            r = ready => match r {
                Ok(()) => return Ok(()),
                Err(_) => "its reports ended before it served".to_string(),
            },
            _ = self.swarm.wait(&id) => format!("it ended before it served ({})", self.said(&id).await),
            _ = tokio::time::sleep(READY_LIMIT) => {
                format!("it did not serve within {}s ({})", READY_LIMIT.as_secs(), self.said(&id).await)
            }
        };
        self.end(task).await;
        parts::remove_all(self.swarm.engine(), &names).await;
        Err(GatewayError::Start(format!(
            "the gateway of task {task} (service {}): {why}; `docker service ps` on the manager says where it was placed; nothing of it is left",
            names.service
        )))
    }

    /// Follows the gateway's log stream: its reports into `egress.jsonl` and the meters, its
    /// own messages into `gateway.log`. The first resolves once it serves; the reader ends
    /// once the gateway is down and quiet.
    async fn read_reports(
        &self,
        id: &str,
    ) -> (tokio::sync::oneshot::Receiver<()>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let files = self.files.lock().unwrap().clone();
        let reports = Reports {
            meters: self.meters.clone(),
            spent: self.spent.clone(),
            paused: self.paused.clone(),
            on_rate_limit: self.opts.on_rate_limit.clone(),
        };
        let logs = self.swarm.attach(id).await;
        let reader = tokio::spawn(async move {
            let (Ok(logs), Some(files)) = (logs, files) else {
                return;
            };
            let mut tx = Some(tx);
            let ready = |report: &Report| {
                if matches!(report, Report::Ready { .. })
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(());
                }
            };
            reports.follow(logs, LineAssembler::new(), &files, ready).await;
        });
        (rx, reader)
    }

    /// What the Swarm says of the gateway's task: its state and its error or message.
    async fn said(&self, id: &str) -> String {
        let task = self.swarm.task_of(id).await.ok().flatten().unwrap_or_default();
        let status = task.status.unwrap_or_default();
        let state = status
            .state
            .map_or_else(|| "unknown".to_string(), |s| s.to_string());
        // A task whose container never ran (rejected) has no exit code worth telling.
        let ran =
            |c: &bollard::models::ContainerStatus| c.container_id.as_deref().is_some_and(|i| !i.is_empty());
        let code = status.container_status.filter(ran).and_then(|c| c.exit_code);
        let why = status
            .err
            .filter(|e| !e.is_empty())
            .or(status.message)
            .unwrap_or_default();
        match code {
            Some(code) => format!("state {state}, exit {code}: {why}"),
            None => format!("state {state}: {why}"),
        }
    }

    /// Removes the task's gateway service and waits for its last reports.
    async fn end(&self, task: &str) {
        let Some((id, reader)) = self.live.lock().unwrap().remove(task) else {
            return;
        };
        if let Err(e) = self.swarm.remove(&id).await {
            tracing::debug!("removing the gateway of task {task}: {e}");
        }
        let _ = tokio::time::timeout(LAST_REPORTS, reader).await;
    }
}

/// A task's spec behind its gateway: its entry step reaches the exchange through the gateway
/// (its URL's address replaced by the gateway's) and sets the task's model API and proxy to
/// the gateway (`entry::GATEWAY_ENV`); its overlay is `job::service_spec`'s.
pub(super) fn behind(spec: &mut crate::engine::spec::ContainerSpec) {
    let gateway = Names::of_service(&spec.name).address();
    for (name, value) in spec.secrets.iter_mut() {
        if name == super::EXCHANGE_ENV
            && let Some((_, path)) = value
                .expose_secret()
                .trim_start_matches("http://")
                .split_once('/')
        {
            *value = SecretString::from(format!("http://{gateway}/{path}"));
        }
    }
    spec.env.push(format!("{}={gateway}", super::entry::GATEWAY_ENV));
}

impl TaskGateway for SwarmGateway {
    /// Nothing: the task reaches its gateway over its overlay (`SwarmEngine::create`).
    fn task_mounts(&self) -> Vec<crate::engine::spec::BindMount> {
        Vec::new()
    }

    fn gated(&self) -> bool {
        false
    }

    fn prepare<'a>(&'a self, _task: &'a str) -> BoxFuture<'a, Result<Admission, GatewayError>> {
        Box::pin(async move {
            self.paused.wait_out().await;
            let token = crate::token::new_token()
                .map_err(|e| GatewayError::Start(format!("reading /dev/urandom: {e}")))?;
            Ok(Admission {
                token: SecretString::from(token),
            })
        })
    }

    /// Starts the task's gateway with its token live. The address is the relay's, unused: a
    /// task on a Swarm has no gate (its entry step names the gateway, `swarm::entry`).
    fn admit<'a>(
        &'a self,
        task: &'a str,
        admission: &'a Admission,
        allow: &'a [String],
        max_cost_usd: Option<f64>,
    ) -> BoxFuture<'a, Result<SocketAddr, GatewayError>> {
        Box::pin(async move {
            let commands = self.commands(task, &admission.token, allow, max_cost_usd);
            self.start_for(task, commands).await?;
            Ok(crate::gateway::relay::LISTEN)
        })
    }

    /// Removes the task's gateway (its secret with it); the overlay goes with the task's
    /// service, which is still attached to it (`SwarmEngine::remove`).
    fn release<'a>(&'a self, task: &'a str, _wait: bool) -> BoxFuture<'a, GatewayUsage> {
        Box::pin(async move {
            self.end(task).await;
            let names = Names::of(&self.owner.run_id, task);
            parts::remove_secret(self.swarm.engine(), &names.secret).await;
            self.meters.lock().unwrap().get(task).cloned().unwrap_or_default()
        })
    }

    fn spent<'a>(&'a self, task: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(spent_signal(&self.spent, task).cancelled_owned())
    }

    /// Whatever of the run's gateways is left (a task's that was never released), then the
    /// run's overlay out; `egress.jsonl` written whole.
    fn shutdown(&self, engine_answers: bool) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            let tasks: Vec<String> = self.live.lock().unwrap().keys().cloned().collect();
            let mut failures = Vec::new();
            if engine_answers {
                for task in tasks {
                    self.end(&task).await;
                }
                failures = parts::sweep(self.swarm.engine(), &self.owner.run_id, false).await;
            } else {
                failures.push(format!(
                    "not removed: the gateways of run {} (services, secrets, overlays); `sandpen gc` with DOCKER_HOST at the manager removes them",
                    self.owner.run_id
                ));
            }
            let files = self.files.lock().unwrap().take();
            if let Some(files) = files.and_then(|f| Arc::try_unwrap(f).ok()) {
                let _ = files.finish().await;
            }
            failures
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::spec::ContainerSpec;

    #[test]
    fn behind_its_gateway_a_task_fetches_through_it_and_names_it() {
        let mut spec = ContainerSpec {
            name: "sandpen-r1-t".into(),
            image: "img".into(),
            cmd: vec![],
            env: vec![],
            secrets: vec![
                (
                    super::super::EXCHANGE_ENV.into(),
                    "http://10.0.0.5:7070/v1/abc".into(),
                ),
                ("ANTHROPIC_API_KEY".into(), "tok".into()),
            ],
            user: (1000, 1000),
            labels: HashMap::new(),
            workspace: "/nonexistent".into(),
            mounts: vec![],
            limits: crate::engine::spec::Limits {
                nano_cpus: 1_000_000_000,
                memory_bytes: 64 << 20,
                pids: 64,
            },
            network: crate::engine::NetworkMode::None,
            engine_log: false,
            gated: false,
            self_collect: None,
            runtime: None,
            memory_request: None,
        };
        behind(&mut spec);
        let url = spec.secrets[0].1.expose_secret().to_string();
        assert_eq!(url, format!("http://sandpen-r1-t-gw:{}/v1/abc", parts::PORT));
        assert_eq!(spec.secrets[1].1.expose_secret(), "tok", "the token is kept");
        let gw = format!(
            "{}=sandpen-r1-t-gw:{}",
            super::super::entry::GATEWAY_ENV,
            parts::PORT
        );
        assert!(spec.env.contains(&gw), "{:?}", spec.env);
    }
}
