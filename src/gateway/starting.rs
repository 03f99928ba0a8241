//! The run's gateway while it is being made. Its making runs beside the run's first checkouts
//! and containers instead of before them: a task waits only for the gateway's directory and
//! relay before its container is made, and for the gateway to serve before its gate opens
//! (`gateway::gate`). A failed start fails each admission with the same words.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::watch;

use super::relay::{self, Placement};
use super::{Admission, Gateway, GatewayError, GatewayOptions, GatewayUsage, TaskGateway};
use secrecy::SecretString;

use crate::engine::Engine;
use crate::engine::spec::{BindMount, Owner};

#[derive(Clone)]
enum Phase {
    Launching,
    /// The directory and the relay exist (tasks may mount them); the gateway does not serve yet.
    Placed,
    Serving(Arc<Gateway>),
    /// With what is left to remove at the run's end.
    Failed(Leftover, String),
}

#[derive(Clone)]
enum Leftover {
    Nothing,
    Placement(Placement),
    Gateway(Arc<Gateway>),
}

pub struct Starting {
    mounts: Vec<BindMount>,
    phase: watch::Receiver<Phase>,
}

impl Starting {
    /// Starts making the run's gateway at once.
    pub fn spawn(engine: Engine, owner: Owner, opts: GatewayOptions) -> Self {
        let mounts = relay::task_mounts(&opts.dir, &opts.relay);
        let (tx, phase) = watch::channel(Phase::Launching);
        tokio::spawn(async move {
            let placement = match Gateway::place(&opts).await {
                Ok(p) => p,
                Err(e) => return tx.send_replace(Phase::Failed(Leftover::Nothing, words(&e))),
            };
            tx.send_replace(Phase::Placed);
            let container = match Gateway::container(&engine, &owner, &opts, &placement).await {
                Ok(c) => c,
                Err(e) => return tx.send_replace(Phase::Failed(Leftover::Placement(placement), words(&e))),
            };
            let gw = Arc::new(Gateway::assemble(&engine, placement, container, &opts));
            match gw.ready(&opts).await {
                Ok(()) => tx.send_replace(Phase::Serving(gw)),
                Err(e) => tx.send_replace(Phase::Failed(Leftover::Gateway(gw), words(&e))),
            }
        });
        Self { mounts, phase }
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
    fn task_mounts(&self) -> Vec<BindMount> {
        self.mounts.clone()
    }

    fn prepare<'a>(&'a self, task: &'a str) -> BoxFuture<'a, Result<Admission, GatewayError>> {
        Box::pin(async move {
            match self.reach(|p| !matches!(p, Phase::Launching)).await {
                Phase::Serving(gw) => gw.prepare(task).await,
                // Not serving, so not limited by the upstream yet.
                Phase::Placed => Ok(Admission {
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
    /// container behind), then removes what it made.
    fn shutdown(&self, engine_answers: bool) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            match self.reach(|p| matches!(p, Phase::Serving(_))).await {
                Phase::Serving(gw) | Phase::Failed(Leftover::Gateway(gw), _) => {
                    gw.shutdown(engine_answers).await
                }
                Phase::Failed(Leftover::Placement(p), _) => {
                    p.remove();
                    Vec::new()
                }
                _ => Vec::new(),
            }
        })
    }
}
