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
        "building {tag} failed{}: {message}\n--- output of the failing step ---\n{}{}",
        step.as_deref().map(|s| format!(" at {s}")).unwrap_or_default(),
        step_output.trim_end(),
        certificate_hint(step_output)
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

/// Where Debian-like hosts keep the CA certificates they trust.
pub const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

impl ImageError {
    /// A build step failed to verify a TLS certificate.
    pub fn is_certificate_failure(&self) -> bool {
        matches!(self, Self::BuildFailed { step_output, .. } if tls_failure(step_output))
    }
}

fn tls_failure(output: &str) -> bool {
    let lower = output.to_ascii_lowercase();
    let tls = [
        "certificate verify failed",
        "certificate_verify_failed",
        "ssl certificate problem",
        "unknown issuer",
        "self-signed certificate",
        "self signed certificate",
    ];
    tls.iter().any(|t| lower.contains(t))
}

/// When a build step failed to verify a TLS certificate (a TLS-inspecting proxy between the
/// builder and PyPI or Debian), the fix, concretely.
fn certificate_hint(output: &str) -> String {
    if !tls_failure(output) {
        return String::new();
    }
    let bundle = HOST_CA_BUNDLE;
    let host = if std::path::Path::new(bundle).is_file() {
        format!(" (this host's bundle may already hold it: --ca-cert {bundle})")
    } else {
        String::new()
    };
    format!(
        "\nfix: a TLS certificate could not be verified, as behind a TLS-inspecting proxy: give \
         the build that proxy's CA, --ca-cert /path/to/your/proxy-ca.pem{host}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_failure_names_the_fix_and_other_failures_do_not() {
        let err = |out: &str| {
            ImageError::BuildFailed {
                tag: "t".into(),
                step: Some("Step 3/5 : RUN pip install uv".into()),
                message: "non-zero code: 1".into(),
                step_output: out.into(),
                log: String::new(),
            }
            .to_string()
        };
        let tls = err("SSL: CERTIFICATE_VERIFY_FAILED certificate verify failed: unable to get local issuer");
        assert!(tls.contains("--ca-cert /path/to/your/proxy-ca.pem"), "{tls}");
        assert_eq!(
            tls.matches("RUN pip install uv").count(),
            1,
            "the step once: {tls}"
        );
        assert!(!err("No matching distribution found").contains("--ca-cert"));
    }

    #[test]
    fn only_a_certificate_failure_is_retried_with_the_hosts_bundle() {
        let failed = |out: &str| ImageError::BuildFailed {
            tag: "t".into(),
            step: None,
            message: "m".into(),
            step_output: out.into(),
            log: String::new(),
        };
        assert!(
            failed("curl: (60) SSL certificate problem: self-signed certificate").is_certificate_failure()
        );
        assert!(!failed("No matching distribution found").is_certificate_failure());
        let other = ImageError::CaCert {
            path: "x".into(),
            reason: "certificate verify failed".into(),
        };
        assert!(!other.is_certificate_failure());
    }
}
