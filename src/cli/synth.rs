//! `frizzview synth`.

/// Arguments of `frizzview synth`.
#[derive(Debug, clap::Args)]
pub struct SynthArgs {}

/// Run `frizzview synth`.
pub fn run(_args: &SynthArgs) -> anyhow::Result<()> {
    anyhow::bail!("`synth` is not implemented yet")
}
