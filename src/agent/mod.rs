//! The WorkflowManager: the only way a task runs. This module owns the command line every task
//! container gets and the agent definition sandpen ships.

/// The agent every task runs through.
pub const AGENT_NAME: &str = "workflow-manager";

/// sandpen's WorkflowManager definition, used when the repository has none of its own
/// (`.claude/agents/workflow-manager.md` in the repository takes precedence in the CLI).
pub const DEFINITION: &str = include_str!("workflow-manager.md");

/// The command of every task container: the WorkflowManager delegation, through `uv run` so
/// the task lives in the checkout's uv environment. There is deliberately no other variant.
pub fn command(prompt: &str, max_turns: u32) -> Vec<String> {
    [
        "uv",
        "run",
        "--",
        "claude",
        "--agent",
        AGENT_NAME,
        "-p",
        prompt,
        "--dangerously-skip-permissions",
        "--max-turns",
        &max_turns.to_string(),
        "--verbose",
        "--output-format",
        "stream-json",
    ]
    .map(String::from)
    .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_the_workflow_manager() {
        let cmd = command("do it", 7);
        assert_eq!(&cmd[..4], ["uv", "run", "--", "claude"]);
        let agent = cmd.iter().position(|a| a == "--agent").unwrap();
        assert_eq!(cmd[agent + 1], "workflow-manager");
        let p = cmd.iter().position(|a| a == "-p").unwrap();
        assert_eq!(
            cmd[p + 1],
            "do it",
            "the prompt is one argument, never shell-split"
        );
        assert!(cmd.windows(2).any(|w| w == ["--max-turns", "7"]));
        assert!(
            cmd.windows(2)
                .any(|w| w == ["--output-format", "stream-json"])
        );
    }

    #[test]
    fn the_bundled_definition_names_the_agent_and_all_eleven_phases() {
        assert!(DEFINITION.starts_with("---\nname: workflow-manager\n"));
        for phase in [
            "initial setup",
            "issue creation",
            "branch management",
            "research and planning",
            "implementation",
            "testing",
            "documentation",
            "pull request",
            "review",
            "review response",
            "settings update",
        ] {
            assert!(
                DEFINITION.contains(&format!("**{phase}**")),
                "missing phase {phase}"
            );
        }
    }
}
