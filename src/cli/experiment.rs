//! `frizzview experiment noise --preset poor|well --trials 64 [--seed S] [--json]`: the paper's
//! noise test (empirical residual covariance against lag for both methods).

use anyhow::Context as _;

use crate::combine::Cancel;
use crate::experiment::{DEFAULT_TRUTH_SEED, NOISE_LAGS, noise_experiment};
use crate::synth::paper::PaperParams;

/// Which experiment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExperimentKind {
    /// The noise test: covariance of the residuals against lag (the paper's "noise" figure).
    Noise,
}

/// Arguments of `frizzview experiment`.
#[derive(Debug, clap::Args)]
pub struct ExperimentArgs {
    /// Experiment.
    #[arg(value_enum)]
    pub kind: ExperimentKind,
    /// Sampling preset: "poor" (dx = 2/R, S/N 18) or "well" (dx = 1/R, S/N 12).
    #[arg(long, default_value = "poor", value_name = "poor|well")]
    pub preset: String,
    /// Number of noise realisations.
    #[arg(long, default_value_t = 64)]
    pub trials: usize,
    /// Seed of the first trial (trial t uses seed + t).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Seed of the line list (the truth shared by all trials).
    #[arg(long, default_value_t = DEFAULT_TRUTH_SEED)]
    pub truth_seed: u64,
    /// Print JSON: {"forward": {"cov": [...], "predicted_var": v}, "standard": {"cov": [...]}}.
    #[arg(long)]
    pub json: bool,
}

/// Run `frizzview experiment`.
pub fn run(args: &ExperimentArgs) -> anyhow::Result<()> {
    let ExperimentKind::Noise = args.kind;
    let mut params = PaperParams::preset(&args.preset)
        .with_context(|| format!("unknown preset '{}' (use poor or well)", args.preset))?;
    params.truth_seed = args.truth_seed;
    let r = noise_experiment(&params, args.trials, args.seed, &Cancel::new(), &|_| {})
        .context("noise experiment")?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    println!(
        "noise test, {} sampling (dx = {}/R, S/N {}), {} trials",
        args.preset, params.pixel_spacing_r, params.snr, r.trials
    );
    println!(
        "{:>4}  {:>12}  {:>9}  {:>12}  {:>9}",
        "lag", "forward", "/lag0", "standard", "/lag0"
    );
    for lag in 0..NOISE_LAGS {
        let (f, s) = (r.forward.cov[lag], r.standard.cov[lag]);
        println!(
            "{lag:>4}  {f:>12.3e}  {:>9.3}  {s:>12.3e}  {:>9.3}",
            f / r.forward.cov[0],
            s / r.standard.cov[0]
        );
    }
    if let Some(v) = r.forward.predicted_var {
        println!(
            "forward predicted variance (mean diag C*) {v:.3e}; empirical / predicted {:.3}",
            r.forward.cov[0] / v
        );
    }
    Ok(())
}
