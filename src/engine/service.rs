//! sandpen's own long-lived containers (a run's gateway): hardened like task containers, but on
//! a network the caller names and talked to through their standard input and output.

use std::collections::HashMap;
use std::pin::Pin;

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use tokio::io::AsyncWrite;

use super::containers::OutputStream;
use super::spec::Limits;
use super::{Engine, EngineError};

#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub name: String,
    pub image: String,
    pub cmd: Vec<String>,
    pub labels: HashMap<String, String>,
    pub user: (u32, u32),
    pub limits: Limits,
    pub network: super::NetworkMode,
    /// Its only writable places (the root is read-only).
    pub mounts: Vec<super::spec::BindMount>,
}

impl ServiceSpec {
    /// No capabilities, no privilege gain, an init, a read-only root, no swap, no TTY, only
    /// the mounts it names; stdin open, so the caller can talk to it.
    pub fn to_body(&self, dialect: &super::Dialect) -> ContainerCreateBody {
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
                network_mode: Some(self.network.to_string()),
                mounts: Some(self.mounts.iter().map(super::spec::BindMount::to_mount).collect()),
                log_config: Some(HostConfigLogConfig {
                    typ: Some("none".into()),
                    config: None,
                }),
                ..super::hardening::host_config(&self.limits, dialect)
            }),
            ..Default::default()
        }
    }
}

pub type Input = Pin<Box<dyn AsyncWrite + Send>>;

impl Engine {
    pub async fn create_service(&self, spec: &ServiceSpec) -> Result<String, EngineError> {
        self.create_named(&spec.name, spec.to_body(&self.dialect)).await
    }

    /// The container's stdout and stderr, and its stdin: closing the input ends the container's
    /// standard input (it was created with `stdin_once`).
    pub async fn attach_stdio(&self, id: &str) -> Result<(OutputStream, Input), EngineError> {
        let context = format!("attaching to container {}", super::short(id));
        self.attach_streams(id, true, context).await
    }
}
