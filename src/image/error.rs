use std::path::PathBuf;

use crate::engine::EngineError;
use crate::exit::{self, HasExitCode};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "CA certificate {}: {reason}\n\
         fix: give --ca-cert a readable PEM file that holds at least one \
         '-----BEGIN CERTIFICATE-----' block",
        path.display()
    )]
    CaCert { path: PathBuf, reason: String },

    #[error(
        "base image {base} is not on this engine and could not be pulled: {reason}\n\
         fix: {}",
        match offline {
            Some(offline) => format!(
                "without a registry, make sandpen's own base offline: `sudo sandpen image \
                 bootstrap-base` (debootstrap from Debian's mirror, tagged {offline}; builds use \
                 it while {base} cannot be had), or add --bootstrap-base to `sandpen image build`; \
                 or `docker load` {base} from a saved archive"
            ),
            None => format!(
                "check the name, or `docker load` {base} from a saved archive; without a \
                 registry, build on sandpen's own base instead: `sudo sandpen image \
                 bootstrap-base` makes it, then omit --base"
            ),
        }
    )]
    BaseUnavailable {
        base: String,
        reason: String,
        /// sandpen's own base that could stand in (only for the default base).
        offline: Option<String>,
    },

    #[error(
        "building {tag} failed{}: {message}\n--- output of the failing step ---\n{}",
        step.as_deref().map(|s| format!(" at {s}")).unwrap_or_default(),
        step_output.trim_end()
    )]
    BuildFailed {
        tag: String,
        step: Option<String>,
        message: String,
        step_output: String,
        /// The whole build output, for displays that show it in full on failure.
        log: String,
    },

    #[error("bootstrapping base image {base}: {reason}")]
    Bootstrap { base: String, reason: String },

    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl HasExitCode for ImageError {
    fn exit_code(&self) -> i32 {
        match self {
            Self::CaCert { .. } => exit::INVALID_INPUT,
            Self::Engine(e) => e.exit_code(),
            _ => exit::FAILURE,
        }
    }
}
