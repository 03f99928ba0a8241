//! A task's image on a Swarm: the task image sandpen built (or `--image`) with sandpen's own
//! executable added as the entry step, and the places the exchange fills made open to any
//! uid (a node's new volume takes its mode from the image). Content-addressed by the task
//! image's id and the executable, and made on the manager's engine, like the gateway's.

use std::collections::HashMap;

use crate::engine::Engine;
use crate::image::{self, BuildContext, ImageError, ImageEvent, LABEL_EXE_STAMP, LABEL_TARGET};

/// The repository of these images.
pub const REPOSITORY: &str = "sandpen-swarm";

const DOCKERFILE: &str = "\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
USER root
COPY sandpen /usr/local/bin/sandpen
RUN mkdir -p /workspace /run/sandpen /sandpen-out \\
 && chmod 1777 /workspace /run/sandpen /sandpen-out
";

/// Where the entry step is in a task's image (copied there by the Dockerfile above).
pub const ENTRY: &str = "/usr/local/bin/sandpen";

/// The tag of `task_image` with the entry step: reused when this executable already made it.
pub async fn with_entry(
    engine: &Engine,
    task_image: &str,
    on_event: &mut dyn FnMut(ImageEvent),
) -> Result<String, ImageError> {
    let task_id = engine
        .image_id(task_image)
        .await?
        .ok_or_else(|| ImageError::Bootstrap {
            base: task_image.to_string(),
            reason: "no such image on the engine".into(),
        })?;
    let stamp = format!("{}@{task_id}", image::exe_stamp()?);
    if let Some(tag) = image::made_by_this_executable(engine, REPOSITORY, &stamp).await? {
        on_event(ImageEvent::Reused { tag: tag.clone() });
        return Ok(tag);
    }
    let (ctx, hash) = context(task_id.clone()).await?;
    let tag = format!("{REPOSITORY}:{}", &hash[..16]);
    let args = HashMap::from([("BASE_IMAGE".to_string(), task_image.to_string())]);
    let labels = HashMap::from([
        (LABEL_TARGET.to_string(), "swarm".to_string()),
        (LABEL_EXE_STAMP.to_string(), stamp),
    ]);
    image::build(engine, &ctx, &tag, &args, &labels, false, on_event).await?;
    Ok(tag)
}

/// The context (sandpen's own executable and the Dockerfile) and its hash, made off the async
/// workers: the executable is read and hashed whole.
async fn context(task_id: String) -> Result<(BuildContext, String), ImageError> {
    let failed = |reason: String| ImageError::Bootstrap {
        base: REPOSITORY.into(),
        reason,
    };
    tokio::task::spawn_blocking(move || {
        let exe = image::own_executable()?;
        let bytes = std::fs::read(&exe)
            .map_err(|e| failed(format!("reading sandpen's own executable {}: {e}", exe.display())))?;
        let mut ctx = BuildContext::new();
        ctx.add("Dockerfile", 0o644, DOCKERFILE.as_bytes().to_vec());
        ctx.add("sandpen", 0o755, bytes);
        let hash = ctx.hash([("BASE_IMAGE", task_id.as_str())]);
        Ok((ctx, hash))
    })
    .await
    .unwrap_or_else(|e| Err(failed(format!("making the build context: {e}"))))
}
