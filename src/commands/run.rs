use crate::cli::RunArgs;

pub async fn run(_host: Option<&str>, _args: RunArgs) -> anyhow::Result<i32> {
    anyhow::bail!("`sandpen run` is not built yet in this version (see README.md, \"Limits\")")
}
