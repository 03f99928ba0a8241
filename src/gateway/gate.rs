//! The gate of a task container in gateway mode. The container starts while the run's gateway
//! is still being made (the two are the slow part of a run's start, and each takes about as
//! long as the other), but its program must not send a request before the gateway knows its
//! token. So the command's shell first reads one line on its standard input: the address to
//! reach the gateway at, on the container's own loopback, which sandpen writes once the
//! gateway has admitted the task. The shell starts the relay there (`gateway::relay`: the
//! container has no network, the relay pipes to the gateway's socket), sets the settings that
//! name the address, then runs the task. Input closed without a line (the gateway never
//! admitted the task), or a relay that cannot listen: the task does not run.

use super::relay::{RELAY_MOUNT, socket_in_container};

/// The exit code of a container whose gate never opened.
pub const NOT_ADMITTED: i64 = 125;

/// Proxy settings: the gateway, with the task's token as the proxy password.
const PROXY: [&str; 4] = ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"];
/// What bypasses the proxy: the gateway itself (the model API) and the loopback.
const NO_PROXY: [&str; 2] = ["NO_PROXY", "no_proxy"];
/// The model API, which is the gateway.
const BASE_URL: &str = "ANTHROPIC_BASE_URL";
/// The task's token: its API key at the gateway, set in the container's environment.
pub const TOKEN: &str = "ANTHROPIC_API_KEY";

/// Every variable the gate sets, for the names a task may not set itself.
pub fn names() -> impl Iterator<Item = &'static str> {
    PROXY.into_iter().chain(NO_PROXY).chain([BASE_URL, TOKEN])
}

/// The settings the gate's script makes, for a task that reaches its gateway at `gw`
/// (`host:port`) directly (on a Swarm, where the entry step sets them for the task).
pub fn settings(gw: &str, token: &str) -> Vec<(String, String)> {
    let host = gw.rsplit_once(':').map_or(gw, |(h, _)| h);
    let proxy = format!("http://sandpen:{token}@{gw}");
    let no_proxy = format!("localhost,127.0.0.1,{host}");
    let mut set = vec![(BASE_URL.to_string(), format!("http://{gw}"))];
    set.extend(PROXY.map(|n| (n.to_string(), proxy.clone())));
    set.extend(NO_PROXY.map(|n| (n.to_string(), no_proxy.clone())));
    set
}

/// The shell lines before the task's `exec`: `gw` is `host:port`.
pub fn script() -> String {
    script_with(RELAY_MOUNT, &socket_in_container())
}

/// The script with the relay and the socket at the given paths (tests run it on the host).
fn script_with(relay: &str, socket: &str) -> String {
    let mut s = format!(
        "IFS= read -r gw || {{ echo 'sandpen: the run'\\''s gateway did not admit this task' >&2; exit {NOT_ADMITTED}; }}\n\
         {relay} \"$gw\" {socket} >/dev/null || {{ echo 'sandpen: no way to the run'\\''s gateway' >&2; exit {NOT_ADMITTED}; }}\n\
         p=\"http://sandpen:${TOKEN}@$gw\"; np=\"localhost,127.0.0.1\"\n\
         export {BASE_URL}=\"http://$gw\""
    );
    for name in PROXY {
        s.push_str(&format!(" {name}=\"$p\""));
    }
    for name in NO_PROXY {
        s.push_str(&format!(" {name}=\"$np\""));
    }
    s.push_str("\nunset p np gw\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// The script as `sh` runs it, with `relay` in the relay's place: with a line, the
    /// settings; without, exit 125.
    fn run_with(relay: &str, input: Option<&str>) -> (i32, String) {
        let script = format!(
            "{}env | grep -iE 'proxy|anthropic' | sort",
            script_with(relay, "/x.sock")
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .env_clear()
            .env(TOKEN, "tok123")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        if let Some(line) = input {
            std::io::Write::write_all(&mut stdin, line.as_bytes()).unwrap();
        }
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap())
    }

    fn run(input: Option<&str>) -> (i32, String) {
        run_with("true", input)
    }

    #[test]
    fn the_address_sets_the_model_api_and_the_proxies() {
        let (code, env) = run(Some("127.0.0.1:41733\n"));
        assert_eq!(code, 0);
        assert!(
            env.contains("ANTHROPIC_BASE_URL=http://127.0.0.1:41733\n"),
            "{env}"
        );
        for name in PROXY {
            assert!(
                env.contains(&format!("{name}=http://sandpen:tok123@127.0.0.1:41733\n")),
                "{env}"
            );
        }
        for name in NO_PROXY {
            assert!(env.contains(&format!("{name}=localhost,127.0.0.1\n")), "{env}");
        }
    }

    #[test]
    fn a_relay_that_cannot_start_stops_the_task() {
        let (code, env) = run_with("false", Some("127.0.0.1:41733\n"));
        assert_eq!(code, NOT_ADMITTED as i32);
        assert_eq!(env, "");
    }

    #[test]
    fn the_relay_is_started_on_the_address_with_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let relay = dir.path().join("relay");
        std::fs::write(
            &relay,
            "#!/bin/sh\ntest \"$1\" = 127.0.0.1:41733 && test \"$2\" = /x.sock\n",
        )
        .unwrap();
        std::fs::set_permissions(&relay, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let (code, env) = run_with(relay.to_str().unwrap(), Some("127.0.0.1:41733\n"));
        assert_eq!(code, 0, "{env}");
    }

    #[test]
    fn direct_settings_name_the_gateway_and_bypass_it_for_the_model_api() {
        let set: std::collections::HashMap<_, _> = settings("gw-svc:41733", "tok").into_iter().collect();
        assert_eq!(set[BASE_URL], "http://gw-svc:41733");
        assert_eq!(set["HTTPS_PROXY"], "http://sandpen:tok@gw-svc:41733");
        assert_eq!(set["no_proxy"], "localhost,127.0.0.1,gw-svc");
        assert_eq!(set.len(), names().count() - 1, "every name but the token's");
    }

    #[test]
    fn no_address_no_task() {
        let (code, env) = run(None);
        assert_eq!(code, NOT_ADMITTED as i32);
        assert_eq!(env, "");
    }
}
