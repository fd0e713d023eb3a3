//! `frizzview combine`.

/// Arguments of `frizzview combine`.
#[derive(Debug, clap::Args)]
pub struct CombineArgs {}

/// Run `frizzview combine`.
pub fn run(_args: &CombineArgs) -> anyhow::Result<()> {
    anyhow::bail!("`combine` is not implemented yet")
}
