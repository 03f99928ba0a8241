//! `sandpen completions SHELL` and `sandpen man`: generated from the same clap definitions the
//! parser uses, so they cannot drift from the real flags.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, CompletionsArgs, ManArgs, ShellArg};
use crate::exit::UsageError;

pub fn completions(args: CompletionsArgs) -> anyhow::Result<i32> {
    let shell = match args.shell {
        ShellArg::Bash => Shell::Bash,
        ShellArg::Zsh => Shell::Zsh,
        ShellArg::Fish => Shell::Fish,
    };
    print(&script(shell))
}

/// The shell's registration: at each TAB the shell asks `sandpen` itself (`COMPLETE=SHELL
/// sandpen -- WORDS`), so run and task ids complete from the repository as it is then.
fn script(shell: Shell) -> Vec<u8> {
    use clap_complete::env::EnvCompleter;
    let shell: &dyn EnvCompleter = match shell {
        Shell::Zsh => &clap_complete::env::Zsh,
        Shell::Fish => &clap_complete::env::Fish,
        _ => &clap_complete::env::Bash,
    };
    let mut out = Vec::new();
    // Written into a Vec: cannot fail.
    let _ = shell.write_registration("COMPLETE", "sandpen", "sandpen", "sandpen", &mut out);
    out
}

/// The command the shell's completions are made from: the parser's, without hidden commands.
pub fn completion_command() -> clap::Command {
    visible(Cli::command())
}

/// The command without its hidden subcommands (`gateway`, the program of a run's gateway
/// container), which clap_complete would offer: clap has no way to remove a subcommand, so
/// the root is made again from its own arguments and its visible subcommands.
fn visible(cmd: clap::Command) -> clap::Command {
    let mut root = clap::Command::new("sandpen")
        .version(env!("CARGO_PKG_VERSION"))
        .about(cmd.get_about().cloned().unwrap_or_default())
        .after_help(crate::exit::HELP);
    for arg in cmd.get_arguments() {
        root = root.arg(arg.clone());
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        root = root.subcommand(sub.clone());
    }
    root
}

pub fn man(args: ManArgs) -> anyhow::Result<i32> {
    let Some(dir) = args.dir else {
        let mut out = Vec::new();
        clap_mangen::Man::new(Cli::command()).render(&mut out)?;
        return print(&out);
    };
    if !dir.is_dir() {
        return Err(UsageError(format!(
            "--dir {}: no such directory\nfix: make it first (mkdir -p {}) or name another",
            dir.display(),
            dir.display()
        ))
        .into());
    }
    // Hidden commands (the gateway's and the Swarm entry step's programs) get no page.
    clap_mangen::generate_to(visible(Cli::command()), &dir)
        .map_err(|e| anyhow::anyhow!("writing the man pages into {}: {e}", dir.display()))?;
    let mut pages: Vec<_> = std::fs::read_dir(&dir)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("sandpen") && n.ends_with(".1"))
        .collect();
    pages.sort();
    eprintln!(
        "wrote {} man pages into {}: {}",
        pages.len(),
        dir.display(),
        pages.join(", ")
    );
    Ok(crate::exit::SUCCESS)
}

/// To stdout; a reader that stops early (`| head`) is not an error.
fn print(bytes: &[u8]) -> anyhow::Result<i32> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(crate::exit::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_dir_writes_a_page_per_visible_command_with_the_exit_codes() {
        let dir = tempfile::tempdir().unwrap();
        let args = ManArgs {
            dir: Some(dir.path().to_path_buf()),
        };
        assert_eq!(man(args).unwrap(), crate::exit::SUCCESS);
        let page = |name: &str| std::fs::read_to_string(dir.path().join(name));
        for name in [
            "sandpen.1",
            "sandpen-run.1",
            "sandpen-logs.1",
            "sandpen-image-build.1",
        ] {
            assert!(page(name).is_ok(), "{name} missing");
        }
        assert!(page("sandpen.1").unwrap().contains("Exit codes"));
        assert!(page("sandpen-run.1").unwrap().contains("Exit codes"));
        assert!(
            page("sandpen-gateway.1").is_err(),
            "the hidden command has no page"
        );
        let missing = ManArgs {
            dir: Some(dir.path().join("nope")),
        };
        assert!(
            man(missing)
                .unwrap_err()
                .to_string()
                .contains("no such directory")
        );
    }

    #[test]
    fn completions_offer_every_visible_command_and_no_hidden_one() {
        let cmd = super::completion_command();
        let names: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
        for visible in ["run", "ps", "logs", "gc", "demo", "report", "rerun"] {
            assert!(names.contains(&visible), "{visible} missing: {names:?}");
        }
        assert!(
            !names.contains(&"gateway"),
            "the hidden gateway command is offered"
        );
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = String::from_utf8(script(shell)).unwrap();
            assert!(text.contains("COMPLETE="), "{shell}: {text}");
        }
    }
}
