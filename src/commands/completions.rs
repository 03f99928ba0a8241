//! `sandpen completions SHELL` and `sandpen man`: generated from the same clap definitions the
//! parser uses, so they cannot drift from the real flags.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, CompletionsArgs, ShellArg};

pub fn completions(args: CompletionsArgs) -> anyhow::Result<i32> {
    let shell = match args.shell {
        ShellArg::Bash => Shell::Bash,
        ShellArg::Zsh => Shell::Zsh,
        ShellArg::Fish => Shell::Fish,
    };
    print(&script(shell))
}

fn script(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut visible(Cli::command()), "sandpen", &mut out);
    out
}

/// The command without its hidden subcommands (`gateway`, the program of a run's gateway
/// container), which clap_complete would offer: clap has no way to remove a subcommand, so
/// the root is made again from its own arguments and its visible subcommands.
fn visible(cmd: clap::Command) -> clap::Command {
    let mut root = clap::Command::new("sandpen").version(env!("CARGO_PKG_VERSION"));
    for arg in cmd.get_arguments() {
        root = root.arg(arg.clone());
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        root = root.subcommand(sub.clone());
    }
    root
}

pub fn man() -> anyhow::Result<i32> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    print(&out)
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
    fn completions_offer_every_visible_command_and_no_hidden_one() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = String::from_utf8(script(shell)).unwrap();
            for visible in ["run", "ps", "logs", "gc", "demo", "report", "host"] {
                assert!(text.contains(visible), "{shell}: {visible} missing");
            }
            // Its name is also an image target and a network mode: look for the command.
            for hidden in ["subcmd__gateway", "The egress gateway of a run"] {
                assert!(
                    !text.contains(hidden),
                    "{shell} offers the hidden gateway command"
                );
            }
        }
    }
}
