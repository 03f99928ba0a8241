//! Networks: the run's own network for gateway mode (internal: no route out; inter-container
//! traffic off: no task reaches another), and finding and removing them by label.

use std::collections::HashMap;
use std::net::IpAddr;

use bollard::models::NetworkCreateRequest;

use super::{CALL_TIMEOUT, Engine, EngineError};

/// A network made for one run.
#[derive(Debug, Clone)]
pub struct RunNetwork {
    pub name: String,
    /// The engine host's address on it: the only address its containers can reach.
    pub gateway: IpAddr,
}

impl Engine {
    pub async fn create_internal_network(
        &self,
        name: &str,
        labels: HashMap<String, String>,
    ) -> Result<RunNetwork, EngineError> {
        let context = format!("creating network {name}");
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            internal: Some(true),
            options: Some(HashMap::from([(
                "com.docker.network.bridge.enable_icc".to_string(),
                "false".to_string(),
            )])),
            labels: Some(labels),
            ..Default::default()
        };
        EngineError::limited(&context, CALL_TIMEOUT, async {
            self.docker()
                .create_network(request)
                .await
                .map_err(|e| EngineError::api(&context, &e))
        })
        .await?;
        match self.network_gateway(name).await {
            Ok(gateway) => Ok(RunNetwork {
                name: name.to_string(),
                gateway,
            }),
            Err(e) => {
                let _ = self.remove_network(name).await;
                Err(e)
            }
        }
    }

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
