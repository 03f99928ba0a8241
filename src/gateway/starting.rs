//! The run's gateway while it is being made. Its making runs beside the run's first checkouts
//! and containers instead of before them: a task waits only for the network before its
//! container is made, and for the gateway to serve before its gate opens (`agent::gate`).
//! A failed start fails each admission with the same words.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::watch;

use super::{Admission, Gateway, GatewayError, GatewayOptions, GatewayUsage, TaskGateway};
use secrecy::SecretString;

use crate::engine::spec::Owner;
use crate::engine::{Engine, EngineError, RunNetwork};

#[derive(Clone)]
enum Phase {
    Launching,
    /// The network exists (tasks may join it); the gateway does not serve yet.
    Network,
    Serving(Arc<Gateway>),
    /// With what is left to remove at the run's end (tasks may have joined the network).
    Failed(Leftover, String),
}

#[derive(Clone)]
enum Leftover {
    Nothing,
    Network(RunNetwork),
    Gateway(Arc<Gateway>),
}

pub struct Starting {
    engine: Engine,
    network: String,
    phase: watch::Receiver<Phase>,
}

impl Starting {
    /// Starts making the run's gateway at once.
    pub fn spawn(engine: Engine, owner: Owner, opts: GatewayOptions) -> Self {
        let network = super::network_name(&owner.run_id);
        let (tx, phase) = watch::channel(Phase::Launching);
        let e = engine.clone();
        tokio::spawn(async move {
            let engine = e;
            let made = async {
                let n = Gateway::network(&engine, &owner).await;
                if n.is_ok() {
                    tx.send_replace(Phase::Network);
                }
                n
            };
            let (network, container) = tokio::join!(made, Gateway::container(&engine, &owner, &opts));
            let (network, container) = match (network, container) {
                (Ok(n), Ok(c)) => (n, c),
                (network, container) => {
                    if let Ok(c) = &container {
                        let _ = crate::engine::ContainerEngine::remove(&engine, c.id()).await;
                    }
                    let why = match (&network, &container) {
                        (Err(e), _) | (_, Err(e)) => words(e),
                        _ => unreachable!("one of the two failed"),
                    };
                    let left = network.map_or(Leftover::Nothing, Leftover::Network);
                    return tx.send_replace(Phase::Failed(left, why));
                }
            };
            let gw = Arc::new(Gateway::assemble(&engine, network, container, &opts));
            match gw.ready(&opts).await {
                Ok(()) => tx.send_replace(Phase::Serving(gw)),
                Err(e) => tx.send_replace(Phase::Failed(Leftover::Gateway(gw), words(&e))),
            }
        });
        Self {
            engine,
            network,
            phase,
        }
    }

    /// The first phase that `done` accepts, or a failure. A start that panicked counts as one.
    async fn reach(&self, done: fn(&Phase) -> bool) -> Phase {
        let mut phase = self.phase.clone();
        match phase
            .wait_for(|p| done(p) || matches!(p, Phase::Failed(..)))
            .await
        {
            Ok(p) => p.clone(),
            Err(_) => Phase::Failed(Leftover::Nothing, "the run's gateway: its start stopped".into()),
        }
    }

    async fn serving(&self) -> Result<Arc<Gateway>, GatewayError> {
        match self.reach(|p| matches!(p, Phase::Serving(_))).await {
            Phase::Serving(gw) => Ok(gw),
            Phase::Failed(_, e) => Err(GatewayError::Failed(e)),
            _ => unreachable!("reach returns a phase it was asked for"),
        }
    }
}

/// A failure to start, as each task tells it.
fn words(e: &GatewayError) -> String {
    match e {
        GatewayError::Engine(_) => format!("the run's gateway could not start: {e}"),
        _ => e.to_string(),
    }
}

impl TaskGateway for Starting {
    fn network(&self) -> &str {
        &self.network
    }

    fn prepare<'a>(&'a self, task: &'a str) -> BoxFuture<'a, Result<Admission, GatewayError>> {
        Box::pin(async move {
            match self.reach(|p| !matches!(p, Phase::Launching)).await {
                Phase::Serving(gw) => gw.prepare(task).await,
                // Not serving, so not limited by the upstream yet.
                Phase::Network => Ok(Admission {
                    token: SecretString::from(super::host::new_token()?),
                }),
                Phase::Failed(_, e) => Err(GatewayError::Failed(e)),
                Phase::Launching => unreachable!("reach returns a phase it was asked for"),
            }
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
            let gw = self.serving().await?;
            gw.admit(task, admission, allow, max_cost_usd).await
        })
    }

    fn release<'a>(&'a self, task: &'a str, wait: bool) -> BoxFuture<'a, GatewayUsage> {
        Box::pin(async move {
            match self.serving().await {
                Ok(gw) => gw.release(task, wait).await,
                Err(_) => GatewayUsage::default(),
            }
        })
    }

    fn spent<'a>(&'a self, task: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match self.serving().await {
                Ok(gw) => gw.spent(task).await,
                Err(_) => std::future::pending().await,
            }
        })
    }

    /// Waits for the start to end either way (never cancels it half way, which would leave a
    /// container or a network behind), then removes what it made.
    fn shutdown(&self, engine_answers: bool) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            let network = match self.reach(|p| matches!(p, Phase::Serving(_))).await {
                Phase::Serving(gw) | Phase::Failed(Leftover::Gateway(gw), _) => {
                    return gw.shutdown(engine_answers).await;
                }
                Phase::Failed(Leftover::Network(n), _) => n,
                _ => return Vec::new(),
            };
            let removed = EngineError::limited(
                "removing the run's network",
                std::time::Duration::from_secs(5),
                self.engine.remove_network(&network.name),
            );
            match removed.await {
                Ok(()) => Vec::new(),
                Err(e) => vec![format!(
                    "network {} could not be removed ({e}); `sandpen gc` removes it",
                    network.name
                )],
            }
        })
    }
}
