//! The WorkflowManager: the only way a task runs. This module owns the command line every task
//! container gets and the agent definition sandpen ships.

pub mod env;
pub mod phases;
pub mod session;

use std::path::Path;
use std::time::Duration;

/// The agent every task runs through.
pub const AGENT_NAME: &str = "workflow-manager";

/// sandpen's WorkflowManager definition, used when the repository has none of its own
/// (`.claude/agents/workflow-manager.md` in the repository takes precedence in the CLI).
pub const DEFINITION: &str = include_str!("workflow-manager.md");

/// Where the task's prompt is mounted (read-only) in its container. It reaches the CLI on
/// standard input, never through the argument list: a prompt of any allowed size arrives
/// whole (one argument is limited to 128 KiB by the kernel).
pub const PROMPT_PATH: &str = "/run/sandpen/prompt.md";

/// Where the CLI finds the project's environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Venv<'a> {
    /// `uv run`: uv makes or updates the checkout's environment before the CLI starts.
    Uv,
    /// A warm environment (`warm/`): `lines` make the task's own copy of it beside the CLI,
    /// which starts in it at once; `settings` (`--settings`) hold its tools until the copy is
    /// ready, so the model's first turn runs while the environment is still being prepared.
    Warm { lines: &'a str, settings: &'a str },
}

/// The command of every task container: the WorkflowManager delegation, in the checkout's uv
/// environment (`venv`: through `uv run`, or a warm environment's copy). There is deliberately
/// no other variant.
///
/// `timeout` is the container's own deadline: it stops the CLI at `deadline` (SIGTERM, then
/// SIGKILL after `kill_after`) even when sandpen itself is gone, so an orphan ends itself.
/// sandpen, while alive, stops the task earlier, at its timeout.
///
/// `gated`: in gateway mode, the shell first waits at the gate for the gateway's address.
///
/// `then`: shell lines run after the CLI ended by itself (not when the container is stopped),
/// before the container exits with the CLI's code; `started` (seconds, [`now_seconds`]) and
/// `code` are set for them. Empty: the CLI replaces the shell.
pub fn command(
    max_turns: u32,
    deadline: Duration,
    kill_after: Duration,
    gated: bool,
    venv: Venv,
    then: &str,
) -> Vec<String> {
    let secs = |d: Duration| format!("{}s", d.as_secs().max(1));
    let gate = if gated {
        crate::gateway::gate::script()
    } else {
        String::new()
    };
    // `<`: the prompt file on stdin.
    let run = if then.is_empty() {
        // No shell stays between the init and the CLI.
        format!("exec \"$@\" < {PROMPT_PATH}")
    } else {
        // The shell stays, so it passes a stop on to the CLI (the init signals only the
        // shell), and runs `then` only when the CLI ended on its own.
        format!(
            "{now}started=$now stopped=\n\
             \"$@\" < {PROMPT_PATH} &\n\
             pid=$!\n\
             trap 'stopped=1 again=1; kill -TERM $pid 2>/dev/null' TERM INT HUP\n\
             while :; do again=; wait $pid; code=$?; [ -n \"$again\" ] || break; done\n\
             trap - TERM INT HUP\n\
             if [ -z \"$stopped\" ]; then\n{then}\nfi\n\
             exit $code",
            now = now_seconds()
        )
    };
    let (lines, runner, settings) = match venv {
        Venv::Uv => ("", &["uv", "run", "--"][..], None),
        Venv::Warm { lines, settings } => (lines, &[][..], Some(settings)),
    };
    let mut cmd: Vec<String> = [
        "sh",
        "-c",
        &format!("{gate}{lines}{run}"),
        "sandpen-task",
        "timeout",
    ]
    .map(String::from)
    .to_vec();
    cmd.push(format!("--kill-after={}", secs(kill_after)));
    cmd.push(secs(deadline));
    cmd.extend(runner.iter().map(|a| a.to_string()));
    cmd.push("claude".into());
    if let Some(settings) = settings {
        cmd.extend(["--settings".to_string(), settings.to_string()]);
    }
    cmd.extend(
        [
            "--agent",
            AGENT_NAME,
            "-p",
            "--dangerously-skip-permissions",
            "--max-turns",
            &max_turns.to_string(),
            "--verbose",
            "--output-format",
            "stream-json",
        ]
        .map(String::from),
    );
    cmd
}

/// Shell lines that set `now` to a count of seconds, for durations within one container: the
/// machine's uptime, read by the shell itself (a short task's container runs few processes,
/// and `date` was two of them); `date` where /proc/uptime cannot be read.
pub fn now_seconds() -> String {
    "now=; { read -r now _ < /proc/uptime; } 2>/dev/null; now=${now%%.*}\n\
     case $now in ''|*[!0-9]*) now=$(date +%s) ;; esac\n"
        .to_string()
}

/// `cmd` (from `command`) continuing the CLI's session `id` (`session::Resume`): its last
/// arguments are the CLI's, so the flag goes at the end.
pub fn resumed(mut cmd: Vec<String>, id: &str) -> Vec<String> {
    cmd.extend(["--resume".to_string(), id.to_string()]);
    cmd
}

/// Where a repository's own definition lives; the CLI prefers it to sandpen's.
pub const REPO_DEFINITION: &str = ".claude/agents/workflow-manager.md";

/// Checks a checkout before its container starts. A repository may bring its own
/// WorkflowManager, but it must be one: a file at that path that defines another agent, or
/// none, would leave the task without the workflow. Err says what is wrong.
pub fn check_definition(checkout: &Path) -> Result<(), String> {
    let path = checkout.join(REPO_DEFINITION);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(_) => return Ok(()), // sandpen's definition is mounted instead
    };
    if !meta.is_file() {
        return Err(format!(
            "{REPO_DEFINITION} in the repository is not a regular file"
        ));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {REPO_DEFINITION}: {e}"))?;
    match front_matter_name(&text) {
        Some(name) if name == AGENT_NAME => Ok(()),
        Some(name) => Err(format!(
            "{REPO_DEFINITION} defines the agent {name:?}, not {AGENT_NAME:?}"
        )),
        None => Err(format!(
            "{REPO_DEFINITION} has no front matter with `name: {AGENT_NAME}`"
        )),
    }
}

/// The `name:` of a definition's YAML front matter.
fn front_matter_name(text: &str) -> Option<String> {
    let rest = text.strip_prefix("---")?;
    let end = rest.find("\n---")?;
    rest[..end].lines().find_map(|l| {
        let v = l.trim().strip_prefix("name:")?;
        Some(v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repository_definition_must_define_the_workflow_manager() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check_definition(dir.path()), Ok(()), "none: sandpen's is used");
        let path = dir.path().join(REPO_DEFINITION);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, DEFINITION).unwrap();
        assert_eq!(check_definition(dir.path()), Ok(()));
        std::fs::write(&path, "---\nname: helper\n---\nx").unwrap();
        assert!(check_definition(dir.path()).unwrap_err().contains("\"helper\""));
        std::fs::write(&path, "no front matter").unwrap();
        assert!(check_definition(dir.path()).is_err());
    }

    #[test]
    fn every_task_runs_the_workflow_manager_with_its_prompt_on_stdin() {
        let cmd = command(
            7,
            Duration::from_secs(70),
            Duration::from_secs(10),
            false,
            Venv::Uv,
            "",
        );
        let claude = cmd.iter().position(|a| a == "claude").unwrap();
        assert_eq!(&cmd[claude - 3..=claude], ["uv", "run", "--", "claude"]);
        let agent = cmd.iter().position(|a| a == "--agent").unwrap();
        assert_eq!(cmd[agent + 1], "workflow-manager");
        let p = cmd.iter().position(|a| a == "-p").unwrap();
        assert!(cmd[p + 1].starts_with("--"), "no prompt in the argument list");
        assert!(cmd[2].ends_with(&format!("< {PROMPT_PATH}")), "{}", cmd[2]);
        assert!(
            cmd.windows(3)
                .any(|w| w == ["timeout", "--kill-after=10s", "70s"])
        );
        assert!(cmd.windows(2).any(|w| w == ["--max-turns", "7"]));
        assert!(cmd.windows(2).any(|w| w == ["--output-format", "stream-json"]));
        assert!(!cmd.contains(&"--resume".to_string()));
        let again = resumed(cmd, "5f1c-77");
        assert_eq!(&again[again.len() - 2..], ["--resume", "5f1c-77"]);
    }

    #[test]
    fn in_a_warm_environment_the_cli_starts_in_it_directly_with_its_tools_gated() {
        let venv = Venv::Warm {
            lines: "WARM LINES\n",
            settings: "{\"hooks\":{}}",
        };
        let cmd = command(
            7,
            Duration::from_secs(70),
            Duration::from_secs(10),
            true,
            venv,
            "",
        );
        let claude = cmd.iter().position(|a| a == "claude").unwrap();
        assert_eq!(&cmd[claude - 1], "70s", "no `uv run`: {cmd:?}");
        assert_eq!(&cmd[claude + 1..=claude + 2], ["--settings", "{\"hooks\":{}}"]);
        assert!(cmd.windows(2).any(|w| w == ["--agent", "workflow-manager"]));
        let (gate, lines, run) = (
            cmd[2].find("IFS= read -r gw").unwrap(),
            cmd[2].find("WARM LINES").unwrap(),
            cmd[2].find("exec \"$@\"").unwrap(),
        );
        assert!(
            gate < lines && lines < run,
            "after the gate (its proxy), before the CLI"
        );
    }

    /// The command's shell as the container runs it, with `program` in place of the CLI.
    fn shell(then: &str, program: &str) -> std::process::Child {
        let cmd = command(
            1,
            Duration::from_secs(60),
            Duration::from_secs(1),
            false,
            Venv::Uv,
            then,
        );
        let script = cmd[2].replace(PROMPT_PATH, "/dev/null");
        std::process::Command::new("sh")
            .args(["-c", &script, "sandpen-task", "sh", "-c", program])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    #[test]
    fn then_runs_after_a_cli_that_ended_by_itself_and_the_cli_s_code_is_kept() {
        let out = shell("echo then-ran $code\n", "exit 3")
            .wait_with_output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "then-ran 3\n");
    }

    #[test]
    fn a_stop_reaches_the_cli_and_then_does_not_run() {
        let dir = tempfile::tempdir().unwrap();
        let mark = dir.path().join("got-term");
        let program = format!(
            "trap 'touch {}; exit 143' TERM; echo up; while :; do sleep 0.05; done",
            mark.display()
        );
        let mut child = shell("echo then-ran\n", &program);
        let mut up = [0u8; 3];
        std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut up).unwrap();
        let pid = child.id().to_string();
        let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status();
        assert!(killed.unwrap().success());
        let out = child.wait_with_output().unwrap();
        assert!(mark.exists(), "the CLI got the stop");
        assert_eq!(out.status.code(), Some(143));
        assert!(!String::from_utf8_lossy(&out.stdout).contains("then-ran"));
    }

    #[test]
    fn the_bundled_definition_names_the_agent_and_all_eleven_phases() {
        assert!(DEFINITION.starts_with("---\nname: workflow-manager\n"));
        for phase in phases::PHASES {
            assert!(
                DEFINITION.contains(&format!("**{phase}**")),
                "missing phase {phase}"
            );
        }
    }
}
