use crate::exit::{self, HasExitCode};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "cannot reach the Docker engine at {address}: {reason}\n\
         fix: start Docker (for example `sudo systemctl start docker`, or `dockerd &`), \
         or point DOCKER_HOST or --host at a running engine"
    )]
    Unreachable { address: String, reason: String },

    #[error("{context}: {reason}")]
    Api { context: String, reason: String },

    /// A call that got no answer in time: the engine is hung, overloaded or gone.
    #[error("{context}: the engine did not answer within {}", seconds(*limit))]
    TimedOut {
        context: String,
        limit: std::time::Duration,
    },
}

impl EngineError {
    pub(crate) fn unreachable(address: &str, err: &bollard::errors::Error) -> Self {
        Self::Unreachable {
            address: address.to_string(),
            reason: describe(err),
        }
    }

    /// Runs an engine call with a time limit: no call but the wait may hang sandpen.
    pub(crate) async fn limited<T>(
        context: impl Into<String>,
        limit: std::time::Duration,
        call: impl std::future::Future<Output = Result<T, EngineError>>,
    ) -> Result<T, EngineError> {
        match tokio::time::timeout(limit, call).await {
            Ok(r) => r,
            Err(_) => Err(Self::TimedOut {
                context: context.into(),
                limit,
            }),
        }
    }

    pub(crate) fn api(context: impl Into<String>, err: &bollard::errors::Error) -> Self {
        Self::Api {
            context: context.into(),
            reason: describe(err),
        }
    }
}

impl HasExitCode for EngineError {
    fn exit_code(&self) -> i32 {
        match self {
            Self::Unreachable { .. } => exit::ENGINE_UNREACHABLE,
            Self::Api { .. } | Self::TimedOut { .. } => exit::FAILURE,
        }
    }
}

/// A wait as the user reads it: whole seconds, or tenths below ten ("12s", "1.5s").
pub fn seconds(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    if d.subsec_millis() == 0 || s >= 10.0 {
        format!("{}s", s.round())
    } else {
        format!("{s:.1}s")
    }
}

/// What the engine may still hold when it stopped answering, and what removes it: the one
/// wording of every such message (`what`: names and ids).
pub fn left_for_gc(what: &[String]) -> String {
    format!(
        "left on the engine: {}; run `sandpen gc` once the engine answers",
        what.join(", ")
    )
}

/// bollard's errors wrap hyper's, whose Display hides the cause ("client error (Connect)").
/// Joining the source chain gives the user the part that matters ("No such file or directory").
pub(crate) fn describe(err: &bollard::errors::Error) -> String {
    use bollard::errors::Error as B;
    match err {
        B::DockerResponseServerError { status_code, message } => {
            format!("the engine answered {status_code}: {}", message.trim())
        }
        _ => {
            let mut parts = vec![err.to_string()];
            let mut source = std::error::Error::source(err);
            while let Some(s) = source {
                let text = s.to_string();
                if !parts.iter().any(|p| p.contains(&text)) {
                    parts.push(text);
                }
                source = s.source();
            }
            parts.join(": ")
        }
    }
}

/// True when the engine said the object does not exist.
/// The engine is already removing the container (another client asked first: a request a
/// dead sandpen left queued, or `gc` beside a live run).
pub(crate) fn is_removal_in_progress(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError { status_code: 409, message }
            if message.contains("already in progress")
    )
}

pub(crate) fn is_not_found(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn waits_read_as_given() {
        assert_eq!(seconds(Duration::from_secs(12)), "12s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5s");
        assert_eq!(seconds(Duration::from_millis(12_400)), "12s");
        let e = EngineError::TimedOut {
            context: "stopping".into(),
            limit: Duration::from_millis(2500),
        };
        assert_eq!(e.to_string(), "stopping: the engine did not answer within 2.5s");
    }
}
