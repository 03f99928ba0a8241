use crate::cli::DemoArgs;

pub async fn run(_host: Option<&str>, _args: DemoArgs) -> anyhow::Result<i32> {
    anyhow::bail!("`sandpen demo` is not built yet in this version (see README.md, \"Limits\")")
}
