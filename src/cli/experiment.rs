//! `frizzview experiment`.

/// Arguments of `frizzview experiment`.
#[derive(Debug, clap::Args)]
pub struct ExperimentArgs {}

/// Run `frizzview experiment`.
pub fn run(_args: &ExperimentArgs) -> anyhow::Result<()> {
    anyhow::bail!("`experiment` is not implemented yet")
}
