//! Whether a run prepares a warm environment (`warm/`), and with what: on one engine a volume,
//! on a Swarm an image layer made from one (`warm::Layered`).

use std::sync::Arc;

use super::{Prepared, RunOptions, note};
use crate::engine::spec::Owner;
use crate::runner::{EventSender, Stop};
use crate::warm::{Layered, Preparation, Project, Warm};
use crate::workspace::RunDir;

/// The run's warm environment: a uv project at the base, not `--no-warm`.
pub(super) async fn for_run(
    p: &Prepared,
    opts: &RunOptions,
    owner: &Owner,
    layout: &RunDir,
    stop: &Stop,
    events: &EventSender,
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
    let Some(first) = p.plan.tasks.first() else {
        return Ok(None);
    };
    // The preparation binds this machine's files (its workspace, the gateway's relay) into
    // containers of the manager's engine: that engine must be this machine's.
    if p.swarm.is_some() && !p.engine.address().starts_with("unix://") {
        note(&format!(
            "note: no warm environment: on a Swarm it is prepared on the manager's engine, which must \
             be this machine's (a unix socket), not {}; each task builds its own (docs/SCALE-OUT.md)",
            p.engine.address()
        ));
        return Ok(None);
    }
    // On a Swarm the preparation runs the task image as given, on the manager's engine.
    let image = match p.swarm.as_ref().and_then(|on| on.images.as_ref()) {
        Some((task_image, _)) => task_image.clone(),
        None => p.image.clone(),
    };
    let Some(image_id) = p.engine.image_id(&image).await? else {
        return Ok(None);
    };
    let prep = Preparation {
        engine: p.engine.clone(),
        project,
        image,
        image_id,
        owner: owner.clone(),
        user: p.repo.task_user(),
        limits: first.limits,
        runtime: first.runtime.clone(),
        network: opts.network.container(),
        dir: layout.env_prepare(),
        stop: stop.graceful.clone(),
    };
    let Some(on) = &p.swarm else {
        return Ok(Some(Warm::new(Arc::new(prep))));
    };
    let Some((_, base)) = on.images.clone() else {
        return Ok(None);
    };
    let Some(base_id) = p.engine.image_id(&base).await? else {
        return Ok(None);
    };
    let gateway = match &p.gateway {
        Some((_, prices)) => {
            let g = (base.as_str(), prices);
            super::gateway::preparation_gateway(p, owner, layout, g, opts, events.clone())
        }
        None => Box::new(|| None),
    };
    Ok(Some(Warm::new(Arc::new(Layered {
        prep,
        base,
        base_id,
        registry: on.registry.clone(),
        gateway,
        dir: layout.env_prepare().with_extension("layer"),
    }))))
}
