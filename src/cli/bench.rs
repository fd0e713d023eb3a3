//! `frizzview bench`.

/// Arguments of `frizzview bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {}

/// Run `frizzview bench`.
pub fn run(_args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("`bench` is not implemented yet")
}
