//! The run's end on the engine: nothing of it stays, whatever happened before. The final sweep
//! removes every container still labelled with the run; the gateway is ended by its handle.

use std::collections::HashMap;
use std::time::Duration;

use super::RunConfig;
use super::events::TaskResult;
use super::task::container_name;
use crate::engine::spec::LABEL_RUN;
use crate::engine::{ContainerEngine, EngineError, left_for_gc, short};
use crate::plan::Plan;

/// The final sweep's limits: listing, and each removal. Short, so a dead engine delays the end
/// of the run by seconds, not minutes; shorter still once a task's container went without
/// the engine confirming it (the engine was not answering a moment ago: a last look, within
/// the `STOP_MARGIN` of a stop).
const SWEEP_LIST_LIMIT: Duration = Duration::from_secs(3);
const SWEEP_LIST_WHEN_HUNG: Duration = Duration::from_secs(1);
const SWEEP_REMOVE_LIMIT: Duration = Duration::from_secs(5);

/// Belt and braces after the last task: removes what of the run is left on the engine and
/// ends the gateway (ended already when the last task was done with it: this waits for that);
/// says what could not be removed.
pub(super) async fn cleanup<E: ContainerEngine>(
    engine: &E,
    cfg: &RunConfig,
    plan: &Plan,
    done: &HashMap<String, TaskResult>,
) -> Vec<String> {
    let (mut failures, engine_answers) = if cfg.keep_containers {
        (Vec::new(), true)
    } else {
        let unconfirmed: Vec<String> = plan
            .tasks
            .iter()
            .filter_map(|t| done.get(&t.id))
            .filter(|r| r.left_for_gc)
            .filter_map(|r| {
                let id = r.container_id.as_deref()?;
                Some(format!(
                    "container {} ({})",
                    container_name(&cfg.run_id, &r.id),
                    short(id)
                ))
            })
            .collect();
        // The gateway's container is its handle's to remove (below): a second removal here
        // would only wait for that one to finish.
        let gateway = cfg.gateway.is_some();
        sweep(engine, &cfg.run_id, &unconfirmed, gateway).await
    };
    if let Some(g) = &cfg.gateway {
        if !engine_answers {
            g.unsettled();
        }
        let left = g.end().await;
        if left.is_empty() || !engine_answers || cfg.keep_containers {
            failures.extend(left);
        } else {
            // Left when a task's container was not confirmed gone; the engine answers now.
            failures.extend(sweep(engine, &cfg.run_id, &[], false).await.0);
        }
    }
    failures
}

/// Removes every container still labelled with the run; says what it could not, and whether
/// the engine answered at all. `unconfirmed`: the task containers the engine never confirmed
/// gone, named when it does not answer now either.
async fn sweep<E: ContainerEngine>(
    engine: &E,
    run_id: &str,
    unconfirmed: &[String],
    skip_gateway: bool,
) -> (Vec<String>, bool) {
    let limit = match unconfirmed.is_empty() {
        true => SWEEP_LIST_LIMIT,
        false => SWEEP_LIST_WHEN_HUNG,
    };
    let listed = EngineError::limited(
        "listing the run's containers",
        limit,
        engine.list(LABEL_RUN, Some(run_id)),
    )
    .await;
    let left = match listed {
        Ok(left) => left,
        Err(e) if unconfirmed.is_empty() => {
            let failure = format!(
                "could not check the engine for containers of run {run_id} ({e}); `sandpen gc` removes any that are left"
            );
            return (vec![failure], false);
        }
        Err(e) => return (vec![format!("{e}; {}", left_for_gc(unconfirmed))], false),
    };
    let mut failures = Vec::new();
    let gateway = |c: &crate::engine::ListedContainer| {
        skip_gateway
            && c.labels.get(crate::engine::spec::LABEL_ROLE).map(String::as_str)
                == Some(crate::engine::spec::ROLE_GATEWAY)
    };
    for c in left.into_iter().filter(|c| !gateway(c)) {
        tracing::debug!("removing leftover container {}", c.name);
        if let Err(e) =
            EngineError::limited("removing a container", SWEEP_REMOVE_LIMIT, engine.remove(&c.id)).await
        {
            failures.push(format!(
                "container {} could not be removed ({e}); `sandpen gc` removes it",
                c.name
            ));
        }
    }
    (failures, true)
}
