//! The gate of a task container in gateway mode. The container starts while the run's gateway
//! is still being made (the two are the slow part of a run's start, and each takes about as
//! long as the other), but its program must not send a request before the gateway knows its
//! token. So the command's shell first reads one line on its standard input: the gateway's
//! address, which sandpen writes once the gateway has admitted the task. From it the shell sets
//! the settings that name the address, then runs the task. Input closed without a line (the
//! gateway never admitted the task): the task does not run.

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

/// The shell lines before the task's `exec`: `gw` is `host:port`.
pub fn script() -> String {
    let mut s = format!(
        "IFS= read -r gw || {{ echo 'sandpen: the run'\\''s gateway did not admit this task' >&2; exit {NOT_ADMITTED}; }}\n\
         p=\"http://sandpen:${TOKEN}@$gw\"; np=\"${{gw%:*}},localhost,127.0.0.1\"\n\
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

    /// The script as `sh` runs it: with a line, the settings; without, exit 125.
    fn run(input: Option<&str>) -> (i32, String) {
        let script = format!("{}env | grep -iE 'proxy|anthropic' | sort", script());
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

    #[test]
    fn the_address_sets_the_model_api_and_the_proxies() {
        let (code, env) = run(Some("172.18.0.1:40123\n"));
        assert_eq!(code, 0);
        assert!(
            env.contains("ANTHROPIC_BASE_URL=http://172.18.0.1:40123\n"),
            "{env}"
        );
        for name in PROXY {
            assert!(
                env.contains(&format!("{name}=http://sandpen:tok123@172.18.0.1:40123\n")),
                "{env}"
            );
        }
        for name in NO_PROXY {
            assert!(
                env.contains(&format!("{name}=172.18.0.1,localhost,127.0.0.1\n")),
                "{env}"
            );
        }
    }

    #[test]
    fn no_address_no_task() {
        let (code, env) = run(None);
        assert_eq!(code, NOT_ADMITTED as i32);
        assert_eq!(env, "");
    }
}
