//! The environments kept on the engine between runs: listed by `doctor`, removed by `prune`.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{LABEL, LABEL_FROM};
use crate::engine::{Engine, EngineError};

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

/// Every environment volume on the engine, oldest first.
pub async fn list(engine: &Engine) -> Result<Vec<StoredEnv>, EngineError> {
    let mut envs: Vec<StoredEnv> = engine
        .volumes_with_label(LABEL)
        .await?
        .into_iter()
        .map(|v| StoredEnv {
            from: v.labels.get(LABEL_FROM).cloned().unwrap_or_default(),
            created_at: v.created_at,
            size_bytes: v.size,
            volume: v.name,
        })
        .collect();
    envs.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    Ok(envs)
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
    Ok((lines, all))
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
