//! Whether a run prepares a warm environment (`warm/`), and with what.

use std::sync::Arc;

use super::{Prepared, RunOptions, note};
use crate::engine::spec::Owner;
use crate::runner::Stop;
use crate::warm::{Preparation, Project, Warm};
use crate::workspace::RunDir;

/// The run's warm environment: a uv project at the base, on one engine, not `--no-warm`.
pub(super) async fn for_run(
    p: &Prepared,
    opts: &RunOptions,
    owner: &Owner,
    layout: &RunDir,
    stop: &Stop,
) -> anyhow::Result<Option<Warm>> {
    if !opts.warm {
        return Ok(None);
    }
    let Some(project) = Project::at(&p.repo.root, &p.base)
        .await
        .map_err(anyhow::Error::msg)?
    else {
        return Ok(None);
    };
    if p.swarm.is_some() {
        note(
            "note: --backend swarm prepares no warm environment: each task builds its own (docs/SCALE-OUT.md)",
        );
        return Ok(None);
    }
    let Some(first) = p.plan.tasks.first() else {
        return Ok(None);
    };
    let Some(image_id) = p.engine.image_id(&p.image).await? else {
        return Ok(None);
    };
    let prep = Preparation {
        engine: p.engine.clone(),
        project,
        image: p.image.clone(),
        image_id,
        owner: owner.clone(),
        user: p.repo.task_user(),
        limits: first.limits,
        runtime: first.runtime.clone(),
        network: opts.network.container(),
        dir: layout.env_prepare(),
        stop: stop.graceful.clone(),
    };
    Ok(Some(Warm::new(Arc::new(prep))))
}
