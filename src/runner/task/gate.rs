//! Opening a task container's gate (`gateway::gate`) in gateway mode: once the run's gateway has
//! admitted the task's token, its address goes to the container's standard input, and the
//! input closes. A refused admission closes the input alone: the container ends without
//! running the task, and the task ends as `error` with the gateway's words.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::engine::Input;
use crate::gateway::{Admission, GatewayHandle};

/// Opens the gate in the background: the admission's round trip to the gateway overlaps the
/// container's start, and what it came to is written once `started` (never to a container
/// that has not started).
pub fn open(
    gateway: GatewayHandle,
    task: String,
    admission: Admission,
    allow: Vec<String>,
    max_cost: Option<f64>,
    mut input: Input,
    started: CancellationToken,
) -> JoinHandle<Result<(), String>> {
    tokio::spawn(async move {
        let admitted = gateway.gw.admit(&task, &admission, &allow, max_cost).await;
        started.cancelled().await;
        let told = match &admitted {
            Ok(addr) => input.write_all(format!("{addr}\n").as_bytes()).await,
            Err(_) => Ok(()),
        };
        // Shut, not dropped: the input shares its connection with the output, which stays
        // open, so only a shutdown reaches the container as the end of its input.
        let shut = input.shutdown().await;
        admitted.map_err(|e| format!("{e}; the task did not run"))?;
        told.and(shut)
            .map_err(|e| format!("telling the container the gateway's address: {e}"))
    })
}

/// What the gate's opening came to, once the container has ended. A gate still waiting
/// (the container was stopped first) is given up.
pub async fn outcome(gate: JoinHandle<Result<(), String>>) -> Option<String> {
    // The container ends right after a refusal closes its input: the gate is done or about to be.
    let waited = tokio::time::timeout(Duration::from_secs(1), gate);
    match waited.await {
        Ok(Ok(Ok(()))) => None,
        Ok(Ok(Err(e))) => Some(e),
        Ok(Err(join)) => Some(format!("opening the gate failed: {join}")),
        Err(_) => None,
    }
}
