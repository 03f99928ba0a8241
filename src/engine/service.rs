//! sandpen's own long-lived containers (a run's gateway): hardened like task containers, but on
//! a network the caller names and talked to through their standard input and output.

use std::collections::HashMap;
use std::pin::Pin;

use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{AttachContainerOptionsBuilder, CreateContainerOptionsBuilder};
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::AsyncWrite;

use super::containers::{OutputStream, Stream};
use super::spec::Limits;
use super::{CALL_TIMEOUT, Engine, EngineError};

#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub name: String,
    pub image: String,
    pub cmd: Vec<String>,
    pub labels: HashMap<String, String>,
    pub user: (u32, u32),
    pub limits: Limits,
    pub network: String,
}

impl ServiceSpec {
    /// No capabilities, no privilege gain, an init, a read-only root, no swap, no TTY, no
    /// mounts; stdin open, so the caller can talk to it.
    pub fn to_body(&self) -> ContainerCreateBody {
        let (uid, gid) = self.user;
        ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: Some(self.cmd.clone()),
            user: Some(format!("{uid}:{gid}")),
            labels: Some(self.labels.clone()),
            tty: Some(false),
            open_stdin: Some(true),
            stdin_once: Some(true),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(HostConfig {
                nano_cpus: Some(self.limits.nano_cpus),
                memory: Some(self.limits.memory_bytes),
                memory_swap: Some(self.limits.memory_bytes),
                pids_limit: Some(self.limits.pids),
                cap_drop: Some(vec!["ALL".into()]),
                security_opt: Some(vec!["no-new-privileges:true".into()]),
                init: Some(true),
                readonly_rootfs: Some(true),
                network_mode: Some(self.network.clone()),
                privileged: Some(false),
                log_config: Some(HostConfigLogConfig {
                    typ: Some("none".into()),
                    config: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

pub type Input = Pin<Box<dyn AsyncWrite + Send>>;

impl Engine {
    pub async fn create_service(&self, spec: &ServiceSpec) -> Result<String, EngineError> {
        let opts = CreateContainerOptionsBuilder::default().name(&spec.name).build();
        let context = format!("creating container {}", spec.name);
        let created = EngineError::limited(&context, CALL_TIMEOUT, async {
            self.docker()
                .create_container(Some(opts), spec.to_body())
                .await
                .map_err(|e| EngineError::api(&context, &e))
        })
        .await?;
        Ok(created.id)
    }

    /// The container's stdout and stderr, and its stdin: closing the input ends the container's
    /// standard input (it was created with `stdin_once`).
    pub async fn attach_stdio(&self, id: &str) -> Result<(OutputStream, Input), EngineError> {
        let opts = AttachContainerOptionsBuilder::default()
            .stream(true)
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .build();
        let context = format!("attaching to container {}", super::short(id));
        let attached = EngineError::limited(&context, CALL_TIMEOUT, async {
            self.docker()
                .attach_container(id, Some(opts))
                .await
                .map_err(|e| EngineError::api(&context, &e))
        })
        .await?;
        let output = attached
            .output
            .map_err(move |e| EngineError::api(context.clone(), &e))
            .try_filter_map(|out| async move {
                Ok(match out {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        Some((Stream::Stdout, message))
                    }
                    LogOutput::StdErr { message } => Some((Stream::Stderr, message)),
                    LogOutput::StdIn { .. } => None,
                })
            })
            .boxed();
        Ok((output, attached.input))
    }
}
