//! Networks: the mode a container's network is in (`NetworkMode`), and finding and removing
//! the networks of runs made by earlier versions (one per run), by label.

use std::collections::HashMap;

use super::{CALL_TIMEOUT, Engine, EngineError};

/// A container's network as the engine takes it. Named, not a string: the few kinds sandpen
/// means differ in what a task can reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// Loopback only: nothing outside the container, no resolver.
    None,
    /// The engine's default bridge: the internet, and the host's addresses.
    Bridge,
    /// The engine host's own network namespace (sandpen's gateway only).
    Host,
    /// A network the user made on the engine.
    Named(String),
}

impl NetworkMode {
    pub fn parse(s: &str) -> Self {
        match s {
            "none" => Self::None,
            "bridge" => Self::Bridge,
            "host" => Self::Host,
            other => Self::Named(other.to_string()),
        }
    }

    /// As the engine's API names it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::None => "none",
            Self::Bridge => "bridge",
            Self::Host => "host",
            Self::Named(n) => n,
        }
    }
}

impl std::fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Engine {
    /// Removes a network; one that is already gone is not an error.
    pub async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        let context = format!("removing network {name}");
        EngineError::limited(&context, CALL_TIMEOUT, async {
            match self.docker().remove_network(name).await {
                Ok(()) => Ok(()),
                Err(e) if super::error::is_not_found(&e) => Ok(()),
                Err(e) => Err(EngineError::api(&context, &e)),
            }
        })
        .await
    }

    /// Names and labels of the networks carrying label `key` (with `value`, when given).
    pub async fn networks_with_label(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<(String, HashMap<String, String>)>, EngineError> {
        let label = match value {
            Some(v) => format!("{key}={v}"),
            None => key.to_string(),
        };
        let filters = HashMap::from([("label".to_string(), vec![label])]);
        let opts = bollard::query_parameters::ListNetworksOptions {
            filters: Some(filters),
        };
        let nets = EngineError::limited("listing networks", CALL_TIMEOUT, async {
            self.docker()
                .list_networks(Some(opts))
                .await
                .map_err(|e| EngineError::api("listing networks", &e))
        })
        .await?;
        Ok(nets
            .into_iter()
            .filter_map(|n| Some((n.name?, n.labels.unwrap_or_default())))
            .collect())
    }
}
