//! `frizzview synth paper|apogee [options] -o FILE`: write a seeded synthetic data set as a
//! frizzview `.npz` bundle (visits, velocities, truth, output grid) that `combine` and the window
//! read.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::synth::{apogee::ApogeeParams, paper::PaperParams};

/// Which generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SynthKind {
    /// The paper's generator (Hogg & Casey 2024 §4): 8 epochs, 171 or 340 pixels.
    Paper,
    /// An APOGEE-like star: 3 chips x 4096 pixels per visit, tellurics, sky lines, defects.
    Apogee,
    /// Raw APOGEE exposures: undersampled 2048-pixel chips at half-pixel dithers, written as
    /// apCframe files into the folder `-o DIR`, with an apVisit whose FRAMEn cards list them (its
    /// flux is the pipeline-style dither combination).
    Apcframe,
}

/// Arguments of `frizzview synth`.
#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// Generator.
    #[arg(value_enum)]
    pub kind: SynthKind,
    /// Output file (.npz).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Number of visits (paper default 8, apogee default 12).
    #[arg(long)]
    pub visits: Option<usize>,
    /// Seed of the noise and per-visit draws.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Seed of the truth (line list, tellurics); keep it to share one star between data sets.
    #[arg(long)]
    pub truth_seed: Option<u64>,
    /// Paper preset: "poor" (dx = 2/R, S/N 18) or "well" (dx = 1/R, S/N 12). APOGEE preset:
    /// "faint-cool-star" (8 visits at S/N 5-7 of a faint M dwarf, sky residuals partly common to
    /// every visit, header velocities wrong as DR13's were, two visits at S/N 3 the pipeline
    /// would reject).
    #[arg(long, value_name = "poor|well|faint-cool-star")]
    pub preset: Option<String>,
    /// Resolving power (paper default 135000, apogee 22500).
    #[arg(long)]
    pub resolving_power: Option<f64>,
    /// Paper: continuum S/N per pixel.
    #[arg(long)]
    pub snr: Option<f64>,
    /// Paper: input pixel spacing in units of 1/R.
    #[arg(long)]
    pub spacing: Option<f64>,
    /// Paper: velocity semi-amplitude (km/s). APOGEE: barycentric-correction amplitude.
    #[arg(long)]
    pub velocity_amplitude: Option<f64>,
    /// Paper: fraction of pixels seeding a bad-pixel group.
    #[arg(long)]
    pub bad_fraction: Option<f64>,
    /// Paper: stellar lines per unit ln(lambda).
    #[arg(long)]
    pub line_density: Option<f64>,
    /// Maximum telluric depth (paper: 0 = none; apogee default 0.98).
    #[arg(long)]
    pub telluric_depth: Option<f64>,
    /// APOGEE: per-visit S/N range "LO,HI".
    #[arg(long, value_parser = parse_range, value_name = "LO,HI")]
    pub snr_range: Option<(f64, f64)>,
    /// APOGEE: per-visit resolving power range "LO,HI" (stored as each visit's LSF sigma).
    #[arg(long, value_parser = parse_range, value_name = "LO,HI")]
    pub resolution_range: Option<(f64, f64)>,
    /// APOGEE: error (km/s, Gaussian sigma) added to the stored Vrel; the true one is kept.
    #[arg(long)]
    pub velocity_error: Option<f64>,
    /// APOGEE: fraction of pixels replaced by unflagged 5-20 sigma outliers.
    #[arg(long)]
    pub outliers: Option<f64>,
    /// APOGEE: outlier size range in sigma "LO,HI".
    #[arg(long, value_parser = parse_range, value_name = "LO,HI")]
    pub outlier_sigma: Option<(f64, f64)>,
    /// APOGEE: amplitude of a per-visit multiplicative Legendre throughput tilt.
    #[arg(long)]
    pub tilt: Option<f64>,
    /// APOGEE: systemic (barycentric) velocity of the star, km/s.
    #[arg(long)]
    pub v_sys: Option<f64>,
    /// APOGEE: no tellurics, sky lines, cosmic rays, persistence or bad pixels.
    #[arg(long)]
    pub clean: bool,
}

/// Parse "LO,HI" (or "LO:HI") into an ordered pair.
fn parse_range(s: &str) -> Result<(f64, f64), String> {
    let (a, b) = s
        .split_once([',', ':'])
        .ok_or_else(|| format!("range '{s}' must look like LO,HI"))?;
    let lo: f64 = a.trim().parse().map_err(|e| format!("range '{s}': {e}"))?;
    let hi: f64 = b.trim().parse().map_err(|e| format!("range '{s}': {e}"))?;
    if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
        return Err(format!("range '{s}' must have finite LO <= HI"));
    }
    Ok((lo, hi))
}

/// Overwrite `dst` with the value given on the command line, if any.
fn set<T>(dst: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *dst = v;
    }
}

/// The paper parameters the arguments ask for.
pub fn paper_params(a: &SynthArgs) -> anyhow::Result<PaperParams> {
    let mut p = match &a.preset {
        Some(name) => PaperParams::preset(name)
            .with_context(|| format!("unknown preset '{name}' (use poor or well)"))?,
        None => PaperParams::poor(),
    };
    set(&mut p.n_visits, a.visits);
    set(&mut p.seed, a.seed);
    set(&mut p.truth_seed, a.truth_seed);
    set(&mut p.resolving_power, a.resolving_power);
    set(&mut p.snr, a.snr);
    set(&mut p.pixel_spacing_r, a.spacing);
    set(&mut p.velocity_amplitude_kms, a.velocity_amplitude);
    set(&mut p.bad_fraction, a.bad_fraction);
    set(&mut p.line_density, a.line_density);
    set(&mut p.telluric_depth, a.telluric_depth);
    p.validate().map_err(anyhow::Error::msg)?;
    Ok(p)
}

/// The APOGEE parameters the arguments ask for.
pub fn apogee_params(a: &SynthArgs) -> anyhow::Result<ApogeeParams> {
    let mut p = match (a.preset.as_deref(), a.clean) {
        (Some("faint-cool-star"), false) => ApogeeParams::faint_cool_star(),
        (Some("faint-cool-star"), true) => {
            anyhow::bail!("--preset faint-cool-star has sky residuals; it cannot be --clean")
        }
        (Some(name), _) => {
            anyhow::bail!("unknown APOGEE preset '{name}' (use faint-cool-star)")
        }
        (None, true) => ApogeeParams::clean(),
        (None, false) => ApogeeParams::default(),
    };
    set(&mut p.n_visits, a.visits);
    set(&mut p.seed, a.seed);
    set(&mut p.truth_seed, a.truth_seed);
    set(&mut p.resolving_power, a.resolving_power);
    set(&mut p.bc_amplitude_kms, a.velocity_amplitude);
    set(&mut p.telluric_depth, a.telluric_depth);
    set(&mut p.velocity_error_kms, a.velocity_error);
    set(&mut p.outlier_fraction, a.outliers);
    set(&mut p.tilt_amplitude, a.tilt);
    set(&mut p.v_sys_kms, a.v_sys);
    set(&mut p.line_density, a.line_density);
    if let Some(r) = a.snr_range {
        p.snr_range = r;
    }
    if let Some(s) = a.snr {
        p.snr_range = (s, s);
    }
    if let Some(r) = a.outlier_sigma {
        p.outlier_sigma = r;
    }
    if a.resolution_range.is_some() {
        p.resolution_range = a.resolution_range;
    }
    p.validate().map_err(anyhow::Error::msg)?;
    Ok(p)
}

/// Wavelength, flux, ivar and bad flags of one chip row.
type ChipArrays = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<bool>);

/// Write raw exposures and the apVisit behind them into the folder `args.output`.
fn run_apcframe(args: &SynthArgs) -> anyhow::Result<()> {
    use crate::synth::dither::{self, DitherParams};
    let mut p = DitherParams::default();
    set(&mut p.n_exposures, args.visits);
    set(&mut p.seed, args.seed);
    set(&mut p.truth_seed, args.truth_seed);
    set(&mut p.snr, args.snr);
    set(&mut p.v_sys_kms, args.v_sys);
    let set = dither::generate(&p).map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let files = set
        .write(&args.output)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // The apVisit: the pipeline-style dither combination of the star's fibre (row 1).
    let (mut wave, mut flux) = (Vec::new(), Vec::new());
    let mut npix = 0;
    for c in 0..3 {
        let rows: Vec<ChipArrays> = set
            .chips
            .iter()
            .map(|chips| {
                let fib = &chips[c].fibres[1];
                let err: Vec<f64> = fib.error.iter().map(|e| f64::from(*e)).collect();
                (
                    fib.wavelength.clone(),
                    fib.flux.iter().map(|v| f64::from(*v)).collect(),
                    err.iter()
                        .map(|e| if *e < 1e9 { 1.0 / (e * e) } else { 0.0 })
                        .collect(),
                    err.iter().map(|e| *e >= 1e9).collect(),
                )
            })
            .collect();
        let frames: Vec<crate::combine::dither::Frame> = rows
            .iter()
            .map(|(w, f, iv, b)| crate::combine::dither::Frame {
                wave: w,
                flux: f,
                ivar: iv,
                bad: b,
            })
            .collect();
        let comb = crate::combine::dither::combine_chip(&frames).map_err(anyhow::Error::msg)?;
        npix = comb.wave.len();
        wave.extend(comb.wave);
        flux.extend(
            comb.flux
                .iter()
                .map(|v| if v.is_finite() { *v } else { 0.0 }),
        );
    }
    let mjd = set.frame_numbers()[0] / 10_000 + 55_562;
    let visit = args
        .output
        .join(format!("apVisit-1.3-apo25m-15000-{mjd}-299.fits"));
    frizzview_core::testkit::sdss_layouts::write_apvisit_with_frames(
        &visit,
        dither::STAR_ID,
        299,
        "apo25m",
        (p.ra_deg, p.dec_deg),
        set.exposures[set.exposures.len() / 2].jd_mid,
        &set.frame_numbers(),
        (&wave, &flux, npix),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "wrote {} apCframe files ({} exposures of {}) and {} to {}",
        files.len(),
        set.exposures.len(),
        dither::STAR_ID,
        visit
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        args.output.display()
    );
    Ok(())
}

/// Run `frizzview synth`.
pub fn run(args: &SynthArgs) -> anyhow::Result<()> {
    let data = match args.kind {
        SynthKind::Apcframe => return run_apcframe(args),
        SynthKind::Paper => {
            let p = paper_params(args)?;
            crate::synth::paper::generate(&p).map_err(anyhow::Error::msg)?
        }
        SynthKind::Apogee => {
            let p = apogee_params(args)?;
            crate::synth::apogee::generate(&p).map_err(anyhow::Error::msg)?
        }
    };
    crate::io::npz::write_dataset(&args.output, &data).map_err(|e| anyhow::anyhow!("{e}"))?;
    let n_pix = data.visits.first().map_or(0, |v| v.len());
    println!(
        "wrote {} visits x {} pixels ({}) to {}",
        data.visits.len(),
        n_pix,
        data.name,
        args.output.display()
    );
    Ok(())
}

#[allow(clippy::unwrap_used)]
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_reject_nonsense() {
        assert_eq!(
            parse_range("18000,27000").expect("a range"),
            (18000.0, 27000.0)
        );
        assert_eq!(parse_range("1:2").expect("a range"), (1.0, 2.0));
        assert!(parse_range("3,1").is_err());
        assert!(parse_range("3").is_err());
        assert!(parse_range("a,1").is_err());
    }

    fn apogee_args(preset: Option<&str>, clean: bool) -> SynthArgs {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: SynthArgs,
        }
        let mut argv = vec!["synth", "apogee", "-o", "x.npz"];
        if let Some(p) = preset {
            argv.extend(["--preset", p]);
        }
        if clean {
            argv.push("--clean");
        }
        Cli::try_parse_from(argv).expect("arguments").args
    }

    #[test]
    fn the_faint_cool_star_preset_is_the_generator_s_and_nonsense_is_refused() {
        let p = apogee_params(&apogee_args(Some("faint-cool-star"), false)).expect("preset");
        assert_eq!(p, ApogeeParams::faint_cool_star());
        assert_ne!(p, ApogeeParams::default());
        let d = apogee_params(&apogee_args(None, false)).expect("default");
        assert_eq!(d, ApogeeParams::default());
        let e = apogee_params(&apogee_args(Some("poor"), false)).expect_err("a paper preset");
        assert!(
            e.to_string().contains("unknown APOGEE preset 'poor'"),
            "{e}"
        );
        assert!(apogee_params(&apogee_args(Some("faint-cool-star"), true)).is_err());
    }
}
