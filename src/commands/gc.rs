use crate::cli::GcArgs;
use crate::engine::spec::{LABEL_OWNER, LABEL_OWNER_START, LABEL_RUN, LABEL_TASK};
use crate::engine::{ContainerEngine, short};
use crate::exit;
use crate::owner::{OwnerState, owner_state};

/// Removes containers of runs whose owner process is gone. Only containers carrying sandpen's
/// owner label are ever considered; a live owner's containers are never touched.
pub async fn run(host: Option<&str>, args: GcArgs) -> anyhow::Result<i32> {
    let engine = super::connect(host).await?;
    let containers = engine.list(LABEL_OWNER, None).await?;
    let (mut removed, mut kept) = (0, 0);
    for c in containers {
        let label = |k: &str| c.labels.get(k).map(String::as_str);
        let what = format!(
            "{} (run {}, task {}, {})",
            short(&c.id),
            label(LABEL_RUN).unwrap_or("?"),
            label(LABEL_TASK).unwrap_or("?"),
            c.state
        );
        match owner_state(label(LABEL_OWNER), label(LABEL_OWNER_START)) {
            OwnerState::Gone => {
                if args.dry_run {
                    println!("would remove {what}: its sandpen process is gone");
                } else {
                    engine.remove(&c.id).await?;
                    println!("removed {what}: its sandpen process is gone");
                }
                removed += 1;
            }
            OwnerState::Alive => {
                kept += 1;
                tracing::debug!("keeping {what}: its sandpen process is running");
            }
            OwnerState::Elsewhere(host) => {
                kept += 1;
                println!("kept {what}: owned by a process on {host}; run gc there");
            }
            OwnerState::Unknown => {
                kept += 1;
                println!("kept {what}: its owner label is unreadable");
            }
        }
    }
    let verb = if args.dry_run { "would remove" } else { "removed" };
    eprintln!("gc: {verb} {removed} container(s), kept {kept} of live or foreign runs");
    Ok(exit::SUCCESS)
}
