//! Named volumes: the one kind sandpen keeps between runs is a warm environment's
//! (`warm/`), labelled as sandpen's and named by what it holds.

use std::collections::HashMap;

use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::{ListVolumesOptions, RemoveVolumeOptions};

use super::error::is_not_found;
use super::{CALL_TIMEOUT, Engine, EngineError};

/// A volume as the engine lists it.
#[derive(Debug, Clone)]
pub struct VolumeSummary {
    pub name: String,
    pub labels: HashMap<String, String>,
    /// RFC 3339, as the engine says it.
    pub created_at: Option<String>,
    /// Bytes on disk, where the engine says (`/system/df`); None when it does not.
    pub size: Option<i64>,
}

impl Engine {
    /// Whether a volume of that name exists.
    pub async fn volume_exists(&self, name: &str) -> Result<bool, EngineError> {
        let context = format!("inspecting volume {name}");
        EngineError::limited(&context, CALL_TIMEOUT, async {
            match self.docker().inspect_volume(name).await {
                Ok(_) => Ok(true),
                Err(e) if is_not_found(&e) => Ok(false),
                Err(e) => Err(EngineError::api(&context, &e)),
            }
        })
        .await
    }

    /// Makes a volume (an existing one of that name is kept as it is).
    pub async fn create_volume(
        &self,
        name: &str,
        labels: HashMap<String, String>,
    ) -> Result<(), EngineError> {
        let context = format!("creating volume {name}");
        let req = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..Default::default()
        };
        EngineError::limited(&context, CALL_TIMEOUT, async {
            self.docker()
                .create_volume(req)
                .await
                .map(|_| ())
                .map_err(|e| EngineError::api(&context, &e))
        })
        .await
    }

    /// Removes a volume; one already gone is not an error. The engine refuses one in use.
    pub async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        let context = format!("removing volume {name}");
        EngineError::limited(&context, CALL_TIMEOUT, async {
            match self
                .docker()
                .remove_volume(name, None::<RemoveVolumeOptions>)
                .await
            {
                Ok(()) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                Err(e) => Err(EngineError::api(&context, &e)),
            }
        })
        .await
    }

    /// Volumes carrying the label `key`, with their sizes where the engine tells them.
    pub async fn volumes_with_label(&self, key: &str) -> Result<Vec<VolumeSummary>, EngineError> {
        let context = "listing volumes";
        let filters = HashMap::from([("label".to_string(), vec![key.to_string()])]);
        let opts = ListVolumesOptions {
            filters: Some(filters),
        };
        let listed = EngineError::limited(context, CALL_TIMEOUT, async {
            self.docker()
                .list_volumes(Some(opts))
                .await
                .map_err(|e| EngineError::api(context, &e))
        })
        .await?;
        let sizes = self.volume_sizes().await;
        Ok(listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| VolumeSummary {
                size: sizes.get(&v.name).copied(),
                created_at: v.created_at.map(|d| d.to_string()),
                name: v.name,
                labels: v.labels,
            })
            .collect())
    }

    /// Each volume's size from `/system/df` (engines whose answer bollard reads); empty if not.
    async fn volume_sizes(&self) -> HashMap<String, i64> {
        let df = tokio::time::timeout(CALL_TIMEOUT, self.docker().df(None)).await;
        let Ok(Ok(df)) = df else {
            return HashMap::new();
        };
        let items = df.volume_usage.and_then(|u| u.items).unwrap_or_default();
        items
            .iter()
            .filter_map(|v| {
                let name = v.get("Name")?.as_str()?.to_string();
                let size = v.get("UsageData")?.get("Size")?.as_i64()?;
                Some((name, size))
            })
            .collect()
    }
}
