//! The tasks' network as the user chose it (`run --network`), from the command line to the
//! container: the run's gateway, or a network the containers join directly. Not
//! `engine::NetworkMode`, which is what one container's network is: in gateway mode a task's
//! container has none at all (its way out is the gateway's relay).

use std::fmt;
use std::str::FromStr;

use crate::engine::NetworkMode;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TaskNetwork {
    /// No network but a way to the run's gateway (the default).
    #[default]
    Gateway,
    /// Loopback only: not even the model API.
    None,
    /// The engine's default bridge.
    Bridge,
    /// The engine host's own network.
    Host,
    /// A network the user made on the engine (checked against it before anything starts).
    Named(String),
}

impl TaskNetwork {
    pub fn is_gateway(&self) -> bool {
        matches!(self, Self::Gateway)
    }

    /// The task container's own network: none in gateway mode.
    pub fn container(&self) -> NetworkMode {
        match self {
            Self::Gateway | Self::None => NetworkMode::None,
            Self::Bridge => NetworkMode::Bridge,
            Self::Host => NetworkMode::Host,
            Self::Named(n) => NetworkMode::Named(n.clone()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Gateway => "gateway",
            Self::None => "none",
            Self::Bridge => "bridge",
            Self::Host => "host",
            Self::Named(n) => n,
        }
    }
}

impl FromStr for TaskNetwork {
    type Err = std::convert::Infallible;

    /// Any name parses: one that is none of the modes is a network whose existence the engine
    /// answers for (`commands/run`), with the error that names the fix.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "gateway" => Self::Gateway,
            "none" => Self::None,
            "bridge" => Self::Bridge,
            "host" => Self::Host,
            other => Self::Named(other.to_string()),
        })
    }
}

impl fmt::Display for TaskNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_reads_back_as_written_and_gives_its_containers_network() {
        for (text, container) in [
            ("gateway", NetworkMode::None),
            ("none", NetworkMode::None),
            ("bridge", NetworkMode::Bridge),
            ("host", NetworkMode::Host),
            ("my-net", NetworkMode::Named("my-net".into())),
        ] {
            let n: TaskNetwork = text.parse().unwrap();
            assert_eq!(n.to_string(), text);
            assert_eq!(n.container(), container, "{text}");
            assert_eq!(n.is_gateway(), text == "gateway");
        }
        assert_eq!(TaskNetwork::default(), TaskNetwork::Gateway);
    }
}
