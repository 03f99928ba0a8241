//! The environments kept on the engine between runs: listed by `doctor`, removed by `prune`.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use futures_util::StreamExt;

use super::{LABEL, LABEL_FROM, LABEL_IMAGE};
use crate::engine::spec::{BindMount, ContainerSpec, Limits, NetworkMode};
use crate::engine::{ContainerEngine, Engine, EngineError};

/// One kept environment.
#[derive(Debug, Clone, Serialize)]
pub struct StoredEnv {
    pub volume: String,
    /// `uv.lock` or `pyproject.toml`.
    pub from: String,
    pub created_at: Option<String>,
    /// Bytes on disk; None where the engine does not say (Engine 20.10's `/system/df`).
    pub size_bytes: Option<i64>,
}

impl StoredEnv {
    /// How long ago it was made (None: unknown).
    pub fn age(&self, now: SystemTime) -> Option<Duration> {
        let made = humantime::parse_rfc3339_weak(self.created_at.as_deref()?.get(..19)?).ok()?;
        now.duration_since(made).ok()
    }
}

/// One kept environment image: a Swarm's tasks' environment (`layer.rs`).
#[derive(Debug, Clone, Serialize)]
pub struct StoredImage {
    pub tag: String,
    /// RFC 3339, to the second.
    pub created_at: String,
    pub size_bytes: i64,
}

/// Every environment image on the engine (tagged in `layer::REPOSITORY`), oldest first.
pub async fn list_images(engine: &Engine) -> Result<Vec<StoredImage>, EngineError> {
    let prefix = format!("{}:", super::layer::REPOSITORY);
    let mut images: Vec<(i64, StoredImage)> = Vec::new();
    for image in engine.images_with_label_key(LABEL).await? {
        let made = SystemTime::UNIX_EPOCH + Duration::from_secs(image.created.max(0) as u64);
        for tag in image.tags.iter().filter(|t| t.starts_with(&prefix)) {
            let stored = StoredImage {
                tag: tag.clone(),
                created_at: humantime::format_rfc3339_seconds(made).to_string(),
                size_bytes: image.size,
            };
            images.push((image.created, stored));
        }
    }
    images.sort_by_key(|(created, _)| *created);
    Ok(images.into_iter().map(|(_, i)| i).collect())
}

/// Every environment volume on the engine, oldest first, with its size.
pub async fn list(engine: &Engine) -> Result<Vec<StoredEnv>, EngineError> {
    let volumes = engine.volumes_with_label(LABEL).await?;
    // Engines that do not say the sizes (`/system/df` of Engine 20.10): measured by `du`, in
    // one container of the image each volume was made with.
    let mut by_image: std::collections::HashMap<String, Vec<String>> = Default::default();
    for v in volumes.iter().filter(|v| v.size.is_none()) {
        if let Some(image) = v.labels.get(LABEL_IMAGE) {
            by_image.entry(image.clone()).or_default().push(v.name.clone());
        }
    }
    let mut measured = std::collections::HashMap::new();
    for (image, names) in by_image {
        measured.extend(measure(engine, &image, &names).await.unwrap_or_default());
    }
    let mut envs: Vec<StoredEnv> = volumes
        .into_iter()
        .map(|v| StoredEnv {
            from: v.labels.get(LABEL_FROM).cloned().unwrap_or_default(),
            created_at: v.created_at,
            size_bytes: v.size.or_else(|| measured.get(&v.name).copied()),
            volume: v.name,
        })
        .collect();
    envs.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    Ok(envs)
}

/// `du -sk` of each volume, read-only, in a container of `image` with no network.
async fn measure(engine: &Engine, image: &str, names: &[String]) -> Option<Vec<(String, i64)>> {
    engine.image_id(image).await.ok()??;
    let empty = tempfile::tempdir().ok()?;
    let spec = ContainerSpec {
        name: format!("sandpen-env-measure-{}", std::process::id()),
        image: image.to_string(),
        cmd: ["sh", "-c", "cd /v && du -sk *"].map(String::from).to_vec(),
        env: Vec::new(),
        secrets: Vec::new(),
        user: (65534, 65534),
        labels: [("sandpen.role".to_string(), "measure".to_string())].into(),
        workspace: empty.path().to_path_buf(),
        mounts: names
            .iter()
            .map(|n| BindMount::volume(n, format!("/v/{n}"), true))
            .collect(),
        limits: Limits {
            nano_cpus: 1_000_000_000,
            memory_bytes: 256 << 20,
            pids: 64,
        },
        network: NetworkMode::None,
        engine_log: false,
        gated: false,
        self_collect: None,
        runtime: None,
        memory_request: None,
    };
    let id = engine.create(&spec).await.ok()?;
    let read = async {
        let mut out = engine.attach(&id).await.ok()?;
        engine.start(&id).await.ok()?;
        let mut text = Vec::new();
        while let Some(Ok((_, bytes))) = out.next().await {
            text.extend_from_slice(&bytes);
        }
        Some(String::from_utf8_lossy(&text).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .ok()
        .flatten();
    let _ = engine.remove(&id).await;
    Some(
        text?
            .lines()
            .filter_map(|l| {
                let (kib, name) = l.split_once('\t')?;
                Some((name.trim().to_string(), kib.trim().parse::<i64>().ok()? * 1024))
            })
            .collect(),
    )
}

/// Removes the environments made longer ago than `older_than` (all: None); says what it did
/// for each, and whether all went. One in use by a container stays (the engine refuses).
pub async fn prune(
    engine: &Engine,
    older_than: Option<Duration>,
    dry_run: bool,
) -> Result<(Vec<String>, bool), EngineError> {
    let now = SystemTime::now();
    let (mut lines, mut all) = (Vec::new(), true);
    for env in list(engine).await? {
        let old = match older_than {
            None => true,
            Some(limit) => env.age(now).is_some_and(|a| a > limit),
        };
        if !old {
            lines.push(format!(
                "kept environment {}: younger than --older-than",
                env.volume
            ));
            continue;
        }
        if dry_run {
            lines.push(format!("would remove environment {}", env.volume));
            continue;
        }
        match engine.remove_volume(&env.volume).await {
            Ok(()) => lines.push(format!("removed environment {}", env.volume)),
            Err(e) => {
                all = false;
                lines.push(format!("kept environment {}: {e}", env.volume));
            }
        }
    }
    all &= prune_images(engine, older_than, dry_run, now, &mut lines).await?;
    Ok((lines, all))
}

/// The environments made for a Swarm's tasks (`layer.rs`): images, whose tags go the same way
/// (what a registry was sent stays there).
async fn prune_images(
    engine: &Engine,
    older_than: Option<Duration>,
    dry_run: bool,
    now: SystemTime,
    lines: &mut Vec<String>,
) -> Result<bool, EngineError> {
    let mut all = true;
    for image in list_images(engine).await? {
        let made = humantime::parse_rfc3339(&image.created_at).unwrap_or(now);
        let old = older_than.is_none_or(|limit| now.duration_since(made).is_ok_and(|a| a > limit));
        let tag = &image.tag;
        let line = match (old, dry_run) {
            (false, _) => format!("kept environment image {tag}: younger than --older-than"),
            (true, true) => format!("would remove environment image {tag}"),
            (true, false) => match engine.remove_image(tag).await {
                Ok(()) => format!("removed environment image {tag}"),
                Err(e) => {
                    all = false;
                    format!("kept environment image {tag}: {e}")
                }
            },
        };
        lines.push(line);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_environment_s_age_comes_from_the_engine_s_date() {
        let env = StoredEnv {
            volume: "v".into(),
            from: "uv.lock".into(),
            created_at: Some("2026-12-01T10:00:00Z".into()),
            size_bytes: None,
        };
        let now = humantime::parse_rfc3339("2026-12-02T10:00:00Z").unwrap();
        assert_eq!(env.age(now), Some(Duration::from_secs(86_400)));
        let unknown = StoredEnv {
            created_at: None,
            ..env
        };
        assert_eq!(unknown.age(now), None);
    }
}
