//! What a task's gateway on a Swarm is made of (`gateway.rs`): its names, its overlay, its
//! secret, its service's spec; and their removal, each tolerant of what is already gone.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use bollard::models::{
    EndpointSpec, EndpointSpecModeEnum, NetworkAttachmentConfig, NetworkCreateRequest, SecretSpec,
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec,
    TaskSpecContainerSpecFile, TaskSpecContainerSpecSecrets, TaskSpecLogDriver, TaskSpecPlacement,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};

use super::image::ENTRY;
use crate::engine::error::is_not_found;
use crate::engine::hardening::{self, Limits};
use crate::engine::spec::{LABEL_ROLE, LABEL_RUN, ROLE_GATEWAY};
use crate::engine::{CALL_TIMEOUT, Engine, EngineError};

/// The port a task's gateway serves on, on the task's overlay.
pub const PORT: u16 = 41733;
/// Who the gateway runs as (nobody), and so who alone may read its secret.
const UID: &str = "65534";
/// Its secret's file, under `/run/secrets`.
const SECRET_FILE: &str = "sandpen-gateway";
/// How long an overlay's removal is tried while its last endpoint goes.
const NETWORK_GONE: Duration = Duration::from_secs(20);

/// The names of a task's gateway parts, from the task's service's (`sandpen-RUN-TASK`, as the
/// runner names a task's container).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub service: String,
    pub network: String,
    pub secret: String,
}

impl Names {
    pub fn of(run_id: &str, task: &str) -> Self {
        Self::of_service(&crate::engine::spec::task_container_name(run_id, task))
    }

    pub fn of_service(task_service: &str) -> Self {
        Self {
            service: format!("{task_service}-gw"),
            network: format!("{task_service}-net"),
            secret: format!("{task_service}-gw"),
        }
    }

    /// Where the task reaches its gateway: the gateway service's name, on the task's overlay.
    pub fn address(&self) -> String {
        format!("{}:{PORT}", self.service)
    }
}

/// The run's overlay out, shared by its gateways alone.
pub fn out_network(run_id: &str) -> String {
    format!("sandpen-{run_id}-out")
}

/// An overlay of the Swarm; `internal`: with no route out (a task's). Its id.
pub async fn make_network(
    engine: &Engine,
    name: &str,
    internal: bool,
    labels: &HashMap<String, String>,
) -> Result<String, EngineError> {
    let context = format!("creating overlay network {name}");
    let req = NetworkCreateRequest {
        name: name.to_string(),
        driver: Some("overlay".into()),
        internal: Some(internal),
        attachable: Some(false),
        labels: Some(labels.clone()),
        ..Default::default()
    };
    let made = EngineError::limited(&context, CALL_TIMEOUT, async {
        engine
            .docker()
            .create_network(req)
            .await
            .map_err(|e| EngineError::api(&context, &e))
    })
    .await?;
    Ok(made.id)
}

/// A Swarm secret holding `data`; its id.
pub async fn make_secret(
    engine: &Engine,
    name: &str,
    data: &str,
    labels: &HashMap<String, String>,
) -> Result<String, EngineError> {
    let context = format!("creating secret {name}");
    let spec = SecretSpec {
        name: Some(name.to_string()),
        labels: Some(labels.clone()),
        data: Some(base64::engine::general_purpose::STANDARD.encode(data)),
        ..Default::default()
    };
    let made = EngineError::limited(&context, CALL_TIMEOUT, async {
        engine
            .docker()
            .create_secret(spec)
            .await
            .map_err(|e| EngineError::api(&context, &e))
    })
    .await?;
    Ok(made.id)
}

/// The gateway service of a task: `sandpen gateway` from the task's own image, hardened as a
/// task, reading its commands (the real credential among them) from its secret, on the
/// task's overlay and the run's overlay out. One replica, never restarted.
pub fn gateway_service(
    names: &Names,
    image: &str,
    labels: &HashMap<String, String>,
    constraints: &[String],
    (secret_id, out_network): (&str, &str),
) -> ServiceSpec {
    let command = [
        ENTRY,
        "gateway",
        "--listen",
        &format!("0.0.0.0:{PORT}"),
        "--commands",
        &format!("/run/secrets/{SECRET_FILE}"),
    ];
    let container = hardening::service_container(TaskSpecContainerSpec {
        image: Some(image.to_string()),
        labels: Some(labels.clone()),
        command: Some(command.map(String::from).to_vec()),
        user: Some(format!("{UID}:{UID}")),
        mounts: Some(hardening::service_tmpfs().collect()),
        secrets: Some(vec![TaskSpecContainerSpecSecrets {
            file: Some(TaskSpecContainerSpecFile {
                name: Some(SECRET_FILE.into()),
                uid: Some(UID.into()),
                gid: Some(UID.into()),
                mode: Some(0o400),
            }),
            secret_id: Some(secret_id.to_string()),
            secret_name: Some(names.secret.clone()),
        }]),
        stop_grace_period: Some(Duration::from_secs(2).as_nanos() as i64),
        ..Default::default()
    });
    let limits = Limits {
        nano_cpus: 1_000_000_000,
        memory_bytes: 256 << 20,
        pids: 256,
    };
    let attach = |target: &str| NetworkAttachmentConfig {
        target: Some(target.to_string()),
        ..Default::default()
    };
    let task = TaskSpec {
        container_spec: Some(container),
        resources: Some(hardening::service_resources(&limits, Some(32 << 20))),
        restart_policy: Some(TaskSpecRestartPolicy {
            condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
            max_attempts: Some(0),
            ..Default::default()
        }),
        placement: Some(TaskSpecPlacement {
            constraints: (!constraints.is_empty()).then(|| constraints.to_vec()),
            ..Default::default()
        }),
        networks: Some(vec![attach(&names.network), attach(out_network)]),
        // Its reports come back on its log stream.
        log_driver: Some(TaskSpecLogDriver {
            name: Some("json-file".into()),
            options: Some(HashMap::from([("max-size".into(), "50m".into())])),
        }),
        ..Default::default()
    };
    ServiceSpec {
        name: Some(names.service.clone()),
        labels: Some(labels.clone()),
        task_template: Some(task),
        // Its name resolves to its container's address on the overlay: no virtual address,
        // no load balancer between a task and its one gateway.
        endpoint_spec: Some(EndpointSpec {
            mode: Some(EndpointSpecModeEnum::DNSRR),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Runs one removal call within the call limit; gone already is done.
async fn removed<F>(context: String, call: F) -> Result<(), EngineError>
where
    F: std::future::Future<Output = Result<(), bollard::errors::Error>>,
{
    EngineError::limited(&context, CALL_TIMEOUT, async {
        match call.await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(EngineError::api(&context, &e)),
        }
    })
    .await
}

pub async fn remove_secret(engine: &Engine, name: &str) {
    let context = format!("removing secret {name}");
    if let Err(e) = removed(context, engine.docker().delete_secret(name)).await {
        tracing::debug!("{e}");
    }
}

/// Removes an overlay, trying again while its last endpoints go (a removed service's task
/// holds one for a moment).
pub async fn remove_network(engine: &Engine, name: &str) -> Result<(), EngineError> {
    let until = tokio::time::Instant::now() + NETWORK_GONE;
    loop {
        let context = format!("removing overlay network {name}");
        match removed(context, engine.docker().remove_network(name)).await {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= until => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Removes a task's gateway service, secret and overlay, whatever is left of them.
pub async fn remove_all(engine: &Engine, names: &Names) {
    let context = format!("removing service {}", names.service);
    if let Err(e) = removed(context, engine.docker().delete_service(&names.service)).await {
        tracing::debug!("{e}");
    }
    remove_secret(engine, &names.secret).await;
    if let Err(e) = remove_network(engine, &names.network).await {
        tracing::debug!("{e}");
    }
}

/// Everything of the run's gateways left on the Swarm (services, secrets, overlays), removed;
/// `tasks_too`: its tasks' secrets as well (once their services are gone: `gc`). What could not
/// be removed, said.
pub async fn sweep(engine: &Engine, run_id: &str, tasks_too: bool) -> Vec<String> {
    let labels = vec![
        format!("{LABEL_RUN}={run_id}"),
        format!("{LABEL_ROLE}={ROLE_GATEWAY}"),
    ];
    let filters = HashMap::from([("label".to_string(), labels)]);
    let mut failures = Vec::new();
    let docker = engine.docker();
    let opts = bollard::query_parameters::ListServicesOptionsBuilder::default()
        .filters(&filters)
        .build();
    for s in docker.list_services(Some(opts)).await.unwrap_or_default() {
        let name = s.spec.and_then(|s| s.name).unwrap_or_default();
        if let Err(e) = removed(format!("removing service {name}"), docker.delete_service(&name)).await {
            failures.push(e.to_string());
        }
    }
    // A running task's secret (`job::SECRETS_FILE`) goes with its service, not here.
    let of_run = HashMap::from([("label".to_string(), vec![format!("{LABEL_RUN}={run_id}")])]);
    let opts = bollard::query_parameters::ListSecretsOptionsBuilder::default()
        .filters(if tasks_too { &of_run } else { &filters })
        .build();
    for s in docker.list_secrets(Some(opts)).await.unwrap_or_default() {
        let name = s.spec.and_then(|s| s.name).unwrap_or_default();
        if let Err(e) = removed(format!("removing secret {name}"), docker.delete_secret(&name)).await {
            failures.push(e.to_string());
        }
    }
    let nets = engine
        .networks_with_label(LABEL_RUN, Some(run_id))
        .await
        .unwrap_or_default();
    for (name, labels) in nets {
        if labels.get(LABEL_ROLE).map(String::as_str) != Some(ROLE_GATEWAY) {
            continue;
        }
        if let Err(e) = remove_network(engine, &name).await {
            failures.push(format!("{e}; `sandpen gc` removes it"));
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_holds_its_secret_alone_and_reaches_out_through_the_run_overlay() {
        let names = Names::of("r1", "t");
        assert_eq!(names.service, "sandpen-r1-t-gw");
        assert_eq!(names.network, "sandpen-r1-t-net");
        assert_eq!(names.address(), format!("sandpen-r1-t-gw:{PORT}"));
        let s = gateway_service(&names, "img@sha256:x", &HashMap::new(), &[], ("sec1", "out1"));
        let task = s.task_template.unwrap();
        let nets: Vec<_> = task
            .networks
            .unwrap()
            .into_iter()
            .map(|n| n.target.unwrap())
            .collect();
        assert_eq!(nets, ["sandpen-r1-t-net", "out1"]);
        let c = task.container_spec.unwrap();
        let secret = &c.secrets.unwrap()[0];
        let file = secret.file.as_ref().unwrap();
        assert_eq!((file.uid.as_deref(), file.mode), (Some(UID), Some(0o400)));
        assert_eq!(c.user.as_deref(), Some("65534:65534"));
        assert!(c.env.is_none(), "no credential in its environment");
        assert_eq!(
            (c.read_only, c.capability_drop),
            (Some(true), Some(vec!["ALL".into()]))
        );
    }
}
