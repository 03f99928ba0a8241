use crate::cli::GcArgs;

pub async fn run(_host: Option<&str>, _args: GcArgs) -> anyhow::Result<i32> {
    anyhow::bail!("`sandpen gc` is not built yet in this version (see README.md, \"Limits\")")
}
