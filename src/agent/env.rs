//! The environment of every task container: what sandpen sets, and the credentials it passes
//! through. The plan refuses a task `env` naming any of these; that list is derived from the
//! very function that sets them, so the two cannot drift apart.

use crate::engine::spec::{HOME, WORKDIR};

/// Credentials passed from the host into every task container when set (never printed).
pub const CREDENTIAL_ENV: [&str; 4] = [
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
];

/// Every variable sandpen sets in a task's container, with its value.
pub fn task_env(run_id: &str, task_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("SANDPEN_RUN_ID", run_id.to_string()),
        ("SANDPEN_TASK_ID", task_id.to_string()),
        ("ORCHESTRATOR_TASK_ID", task_id.to_string()),
        ("ORCHESTRATOR_WORKTREE", WORKDIR.to_string()),
        ("HOME", HOME.to_string()),
        // The CLI refuses --dangerously-skip-permissions as root unless told it is sandboxed;
        // tasks never run as root, and the container is the sandbox.
        ("IS_SANDBOX", "1".to_string()),
    ]
}

/// The names a task's own `env` may not set: sandpen's, the credentials, what the gateway
/// sets (its address, the proxy settings), and `SANDPEN_*`.
pub fn reserved() -> Vec<String> {
    let mut names: Vec<String> = task_env("", "").into_iter().map(|(k, _)| k.to_string()).collect();
    names.extend(CREDENTIAL_ENV.map(String::from));
    for name in crate::gateway::Admission::names() {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Whether a task's `env` may set `key`.
pub fn is_reserved(key: &str) -> bool {
    key.starts_with("SANDPEN_") || reserved().iter().any(|r| r == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_sandpen_sets_is_reserved() {
        for (k, _) in task_env("r", "t") {
            assert!(is_reserved(k), "{k}");
        }
        for k in CREDENTIAL_ENV {
            assert!(is_reserved(k), "{k}");
        }
        for k in [
            "HTTPS_PROXY",
            "https_proxy",
            "NO_PROXY",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
        ] {
            assert!(is_reserved(k), "{k}: the gateway sets it");
        }
        assert!(is_reserved("SANDPEN_ANYTHING"));
        assert!(!is_reserved("FEATURE_FLAG"));
    }
}
