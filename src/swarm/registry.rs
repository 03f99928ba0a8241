//! Images through a registry: nodes pull a task's image from it, by digest, so every node runs
//! the same bytes as the content-addressed tag sandpen built.

use crate::engine::{Engine, EngineError};

/// Why an image could not be published.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "--registry {0:?} is not HOST:PORT (for example `registry.internal:5000`)\n\
         fix: give the registry's address the Swarm's nodes pull from, without a scheme or path"
    )]
    BadAddress(String),
    #[error(
        "{failure}\n\
         fix: check that the registry at {registry} answers from the engine at {engine} \
         (a plain-HTTP registry must be in the engine's `insecure-registries`)"
    )]
    Push {
        registry: String,
        engine: String,
        failure: EngineError,
    },
}

impl crate::exit::HasExitCode for RegistryError {
    fn exit_code(&self) -> i32 {
        match self {
            Self::BadAddress(_) => crate::exit::INVALID_INPUT,
            Self::Push { .. } => crate::exit::ENGINE_UNREACHABLE,
        }
    }
}

/// Checks `HOST:PORT` (a name or an IPv4 address, and a port).
pub fn check_address(registry: &str) -> Result<(), RegistryError> {
    let bad = || RegistryError::BadAddress(registry.to_string());
    let (host, port) = registry.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = !host.is_empty()
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    match (host_ok, port.parse::<u16>()) {
        (true, Ok(p)) if p > 0 => Ok(()),
        _ => Err(bad()),
    }
}

/// Pushes the local image `name:tag` (as sandpen built it) to `registry` through `engine`;
/// the reference the nodes pull: `REGISTRY/name@sha256:...`.
pub async fn publish(engine: &Engine, image: &str, registry: &str) -> Result<String, RegistryError> {
    check_address(registry)?;
    let (name, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
    let repo = format!("{registry}/{name}");
    let failed = |failure| RegistryError::Push {
        registry: registry.to_string(),
        engine: engine.address().to_string(),
        failure,
    };
    engine.tag_image(image, &repo, tag).await.map_err(failed)?;
    let pushed = engine.push_image(&repo, tag).await;
    // The registry's name was only the push's address: the engine keeps the image as it was.
    let untagged = engine.remove_image(&format!("{repo}:{tag}")).await;
    let digest = pushed.map_err(failed)?;
    untagged.map_err(failed)?;
    Ok(format!("{repo}@{digest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_is_host_and_port() {
        for good in ["registry.internal:5000", "10.213.100.1:5000", "localhost:443"] {
            assert!(check_address(good).is_ok(), "{good}");
        }
        for bad in [
            "registry",
            "http://r:5000",
            "r:0",
            "r:port",
            ":5000",
            "r/x:5000",
            "r..x:1",
        ] {
            let e = check_address(bad).unwrap_err();
            assert!(e.to_string().contains("HOST:PORT"), "{bad}: {e}");
        }
    }
}
