//! `frizzview combine`: one star from files, or many stars from a manifest (batch).
//!
//! Defaults follow the survey the input looks like (see [`headless_defaults`]); every flag overrides
//! them. The output format follows the extension of `-o` (`.fits`, `.npz`, `.csv`, `.tsv`).
//!
//! Batch mode (`--manifest FILE --out-dir DIR`): one star per line, `name file1 file2 ...`
//! (whitespace-separated) or `name<TAB>glob` (`*` and `?` in the file-name part). Relative paths
//! are relative to the manifest's folder; blank lines and `#` comments are skipped. Stars whose
//! output already exists are skipped unless `--force`. `--shard K/N` processes every N-th star
//! starting at K (0-based), for job arrays, e.g. with Slurm
//! `#SBATCH --array=0-9` and `--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::combine::{self, Cancel, Combined};
use crate::io::{self, LoadOptions};
use crate::model::{Dataset, Survey, VelocityKind, mask, pixel_policy};
use crate::settings::{
    Basis, Extensions, ForwardSettings, GridSpec, Interpolator, LsfMode, Robust, SelectionMode,
    Settings, ShiftSource, StandardMask, StandardSettings, VisitSetting, Weighting,
};
use crate::vocab::{self, Methods, Named, OutputFormat};

/// Arguments of `frizzview combine`.
#[derive(Debug, Default, clap::Args)]
pub struct CombineArgs {
    /// Input files or folders (apVisit, BOSS spec, FITS/CSV tables, .npz bundles), one star.
    #[arg(required_unless_present = "manifest")]
    pub inputs: Vec<PathBuf>,
    /// Output file; the format follows the extension: .fits (apStar-like), .npz, .csv, .tsv.
    #[arg(short, long, required_unless_present = "manifest")]
    pub output: Option<PathBuf>,
    /// Batch mode: a manifest with one star per line (`name file1 file2 ...` or `name<TAB>glob`).
    #[arg(long, requires = "out_dir", conflicts_with = "inputs")]
    pub manifest: Option<PathBuf>,
    /// Batch mode: folder for the results (`NAME.EXT`).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Batch mode: output format (fits, npz, csv).
    #[arg(long, default_value = "fits")]
    pub format: String,
    /// Batch mode: redo stars whose output exists.
    #[arg(long)]
    pub force: bool,
    /// Batch mode: process every N-th star starting at K (0-based), e.g. `--shard 3/10`.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Combine visits that name different objects anyway.
    #[arg(long)]
    pub allow_mixed: bool,
    /// Take every setting from a previous result (.fits or .npz export, or a JSON file) to
    /// reproduce it; the other setting flags are then ignored.
    #[arg(long, value_name = "FILE")]
    pub settings: Option<PathBuf>,
    /// Output grid: apogee, boss, auto, input, or LOG10START:LOG10STEP:N.
    #[arg(long)]
    pub grid: Option<String>,
    /// Velocity that sets each visit's shift: none, vrad (the visit file's own), -bc (barycentric
    /// frame only), true (synthetic), apstar (an apStar given with the visits), allvisit
    /// (--visits-table), mwmvisit, or checked (= auto, the default). Default: the first of apstar,
    /// allvisit, mwmvisit, vrad, true that every visit has, else -bc for APOGEE (with a warning),
    /// else none; its velocities are checked against the data's own (a global cross-correlation
    /// search): inconsistent ones are replaced by the data's and named in a warning. Naming a
    /// source forces its velocities unchecked.
    #[arg(long, allow_hyphen_values = true)]
    pub shift: Option<String>,
    /// Half-width of the data's velocity search window (km/s; default 1000).
    #[arg(long, value_name = "KMS")]
    pub velocity_window: Option<f64>,
    /// An allVisit summary (DR17 `allVisit-dr17-*.fits` or DR19 `allVisit-1.3-*.fits`) whose
    /// rows give the visits' velocities, matched by file name (shift source `allvisit`), or an
    /// astra mwmVisit file whose APOGEE rows do, matched by plate, MJD and fibre (`mwmvisit`).
    #[arg(long, value_name = "allVisit.fits")]
    pub visits_table: Option<PathBuf>,
    /// Per-visit velocity override in km/s, NAME=KMS (NAME: visit name, file name, or 0-based index).
    #[arg(long, value_name = "NAME=KMS", allow_hyphen_values = true)]
    pub velocity: Vec<String>,
    /// Pixel weighting: ivar, uniform or apogee-pipeline (standard practice's apStar row 0;
    /// the forward model weights by ivar under it). Default: ivar, and apogee-pipeline for
    /// standard practice on APOGEE data.
    #[arg(long)]
    pub weighting: Option<String>,
    /// Leave a visit out (name, file name or 0-based index); repeatable.
    #[arg(long, value_name = "NAME")]
    pub exclude: Vec<String>,
    /// Per-visit weight multiplier, NAME=W; repeatable.
    #[arg(long, value_name = "NAME=W")]
    pub weight: Vec<String>,
    /// Mask bits that make a pixel bad: a number, apogee (16639), boss, or none.
    #[arg(long)]
    pub bad_bits: Option<String>,
    /// Pixel policy preset: apogee-pipeline (APOGEE default: 16639 bad, persistence and sky-line
    /// sigma inflated as the APOGEE DRP does), bad-bits (16639 bad, nothing inflated),
    /// boss-pipeline. Applied before `--bad-bits` and `--bit`.
    #[arg(long, value_name = "PRESET")]
    pub pixel_policy: Option<String>,
    /// Per-bit override of the pixel policy, BIT=bad, BIT=ignore or BIT=inflate:FACTOR (BIT a
    /// number or a mask-bit name such as SIG_TELLURIC); repeatable.
    #[arg(long = "bit", value_name = "BIT=ACTION")]
    pub bits: Vec<String>,
    /// Selection factor (telluric...): ignore, multiply (the model), divide (the data).
    #[arg(long)]
    pub selection: Option<String>,
    /// Methods: forward, standard, both.
    #[arg(long, default_value = "both")]
    pub method: String,
    /// Forward-model basis: fourier or local.
    #[arg(long, default_value = "fourier")]
    pub basis: String,
    /// Reproduce a reference implementation exactly: `frizzle` (frizzle 0.2.8).
    #[arg(long)]
    pub compat: Option<String>,
    /// Number of Fourier modes P (default: frizzle's rule).
    #[arg(long)]
    pub modes: Option<usize>,
    /// Standard-practice interpolator: cubic, linear, sinc (default: sinc for APOGEE data, as the
    /// APOGEE pipeline resamples; cubic otherwise, as the paper).
    #[arg(long)]
    pub interp: Option<String>,
    /// Standard-practice mask handling: drop or conservative.
    #[arg(long, default_value = "drop")]
    pub std_mask: String,
    /// Covariance lags to compute beyond 0 (at least 5).
    #[arg(long, default_value_t = 5)]
    pub lags: usize,
    /// Fit each visit's shift against the combined model.
    #[arg(long)]
    pub fit_shifts: bool,
    /// Robust reweighting: huber:T, cauchy:T or clip:T (T in sigma).
    #[arg(long)]
    pub robust: Option<String>,
    /// Fit a per-visit multiplicative Legendre continuum of this degree.
    #[arg(long, value_name = "DEG")]
    pub normalize: Option<usize>,
    /// Convolve the model with each visit's Gaussian LSF (from its metadata).
    #[arg(long)]
    pub lsf: bool,
    /// No summary on stdout.
    #[arg(short, long)]
    pub quiet: bool,
    /// Read the raw exposures behind each apVisit given: its FRAMEn apCframe files in DIR.
    #[arg(long, value_name = "DIR")]
    pub exposures: Option<PathBuf>,
    /// apCframe inputs: the star to read, by APOGEE id (2M...) or CATALOGID.
    #[arg(long, value_name = "ID", conflicts_with = "fiber")]
    pub star: Option<String>,
    /// apCframe inputs: the fibre to read (FIBERID 1-300; image row 300 - FIBERID).
    #[arg(long, value_name = "N")]
    pub fiber: Option<i32>,
}

/// The apCframe star selection of `--star` / `--fiber`.
pub fn star_selector(a: &CombineArgs) -> anyhow::Result<Option<io::apcframe::StarSelector>> {
    star_selector_of(a.star.as_deref(), a.fiber)
}

/// The apCframe star selection of a `--star` and a `--fiber` (the window's flags and
/// `combine`'s).
pub fn star_selector_of(
    star: Option<&str>,
    fiber: Option<i32>,
) -> anyhow::Result<Option<io::apcframe::StarSelector>> {
    use io::apcframe::StarSelector;
    Ok(match (star, fiber) {
        (Some(s), _) => Some(StarSelector::Id(s.to_owned())),
        (None, Some(n)) if (1..=300).contains(&n) => Some(StarSelector::Fiber(n)),
        (None, Some(n)) => bail!("--fiber {n}: expected a fibre number 1-300"),
        (None, None) => None,
    })
}

/// The defaults of a combination without a window live with the settings (the Python package
/// uses them too).
pub use crate::settings::headless_defaults;
/// The former name of [`headless_defaults`], kept so that code written against it still builds.
#[doc(hidden)]
pub use crate::settings::headless_defaults as survey_defaults;

fn parse_grid(g: &str) -> anyhow::Result<GridSpec> {
    g.parse().map_err(|e| match e {
        vocab::GridNameError::Unknown(_) => {
            anyhow::anyhow!("--grid {g}: expected {}", vocab::GRID_EXPECTED)
        }
        vocab::GridNameError::BadPart { part, value, .. } => {
            anyhow::anyhow!("--grid {g}: the {part} '{value}' is not a number")
        }
    })
}

fn parse_shift(s: &str) -> anyhow::Result<ShiftSource> {
    s.parse().map_err(|_| {
        anyhow::anyhow!(
            "--shift {s}: expected checked (auto), {}",
            ShiftSource::expected(false)
        )
    })
}

/// A choice by its name ([`vocab::Named`]), or the CLI's error naming the flag.
fn choice<T: Named>(flag: &str, s: &str) -> anyhow::Result<T> {
    T::from_name(s).map_err(|e| anyhow::anyhow!("--{flag} {s}: expected {}", e.expected))
}

fn parse_bad_bits(s: &str) -> anyhow::Result<u64> {
    vocab::bad_bits_from_str(s)
        .map_err(|e| anyhow::anyhow!("--bad-bits {s}: expected {}", e.expected))
}

/// `BIT=ACTION` with BIT a number or a bit name of the survey's mask.
fn parse_bit_override(x: &str, survey: Survey) -> anyhow::Result<(u32, pixel_policy::BitAction)> {
    let (b, act) = x
        .split_once('=')
        .with_context(|| format!("--bit {x}: expected BIT=bad, BIT=ignore or BIT=inflate:F"))?;
    let defs = match survey {
        Survey::Boss => mask::BOSS_SPPIXMASK,
        _ => mask::APOGEE_PIXMASK,
    };
    let bit = match b.trim().parse::<u32>() {
        Ok(n) => n,
        Err(_) => defs
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(b.trim()))
            .map(|d| d.bit)
            .with_context(|| format!("--bit {x}: '{b}' is neither a bit number nor a bit name"))?,
    };
    if bit >= 64 {
        bail!("--bit {x}: bits are 0-63");
    }
    let what = pixel_policy::BitAction::parse(act).map_err(|e| anyhow::anyhow!("--bit {e}"))?;
    Ok((bit, what))
}

fn parse_robust(s: &str) -> anyhow::Result<Robust> {
    s.parse().map_err(|e| match e {
        vocab::RobustNameError::Unknown(_) => {
            anyhow::anyhow!("--robust {s}: expected {}", vocab::ROBUST_EXPECTED)
        }
        vocab::RobustNameError::BadThreshold { value, .. } => {
            anyhow::anyhow!("--robust {s}: threshold '{value}' is not a number")
        }
    })
}

/// The visit indices that `name` designates ([`vocab::find_visits`]).
fn find_visits(data: &Dataset, name: &str) -> anyhow::Result<Vec<usize>> {
    Ok(vocab::find_visits(data, name)?)
}

fn name_value<'a>(flag: &str, s: &'a str) -> anyhow::Result<(&'a str, f64)> {
    let (n, v) = s
        .rsplit_once('=')
        .with_context(|| format!("--{flag} {s}: expected NAME=VALUE"))?;
    let v: f64 = v
        .parse()
        .with_context(|| format!("--{flag} {s}: '{v}' is not a number"))?;
    Ok((n, v))
}

/// Build the settings for `data` from the defaults and the flags.
pub fn settings_from_args(a: &CombineArgs, data: &Dataset) -> anyhow::Result<Settings> {
    let mut s = headless_defaults(data);
    if let Some(g) = &a.grid {
        s.grid = parse_grid(g)?;
    }
    if let Some(x) = &a.shift {
        if matches!(x.to_ascii_lowercase().as_str(), "checked" | "auto") {
            s.velocity.check = true;
        } else {
            s.shift = parse_shift(x)?;
            s.velocity.check = false;
        }
    }
    if let Some(w) = a.velocity_window {
        s.velocity.window_kms = w;
    }
    if let Some(w) = &a.weighting {
        s.weighting = choice::<Weighting>("weighting", w)?;
    }
    if let Some(p) = &a.pixel_policy {
        s.apply_policy_preset(choice::<pixel_policy::Preset>("pixel-policy", p)?);
    }
    if let Some(b) = &a.bad_bits {
        s.bad_bits = parse_bad_bits(b)?;
    }
    for b in &a.bits {
        let (bit, what) = parse_bit_override(b, data.survey)?;
        s.set_bit_action(bit, what);
    }
    if let Some(x) = &a.selection {
        s.selection = choice::<SelectionMode>("selection", x)?;
    }
    let methods = choice::<Methods>("method", &a.method)?;
    let (fw, st) = (methods.forward(), methods.standard());
    let basis = choice::<Basis>("basis", &a.basis)?;
    let compat = match a.compat.as_deref() {
        None => false,
        Some(c) => vocab::compat_from_name(c).map_err(|_| {
            anyhow::anyhow!(
                "--compat {c}: the only reference is '{}'",
                vocab::COMPAT_FRIZZLE
            )
        })?,
    };
    s.forward = fw.then_some(ForwardSettings {
        basis,
        compat,
        n_modes: a.modes,
    });
    let default_interp = s
        .standard
        .as_ref()
        .map_or(Interpolator::CubicSpline, |st| st.interpolator);
    let interpolator = match a.interp.as_deref() {
        None => default_interp,
        Some(i) => choice::<Interpolator>("interp", i)?,
    };
    let std_mask = choice::<StandardMask>("std-mask", &a.std_mask)?;
    // --weighting sets both methods' weighting; without it standard practice keeps the survey's
    // default (the APOGEE pipeline's row-0 weighting for APOGEE data).
    let std_weighting = match (&a.weighting, s.standard.as_ref()) {
        (None, Some(st)) => st.weighting,
        _ => s.weighting,
    };
    s.standard = st.then_some(StandardSettings {
        interpolator,
        weighting: std_weighting,
        mask: std_mask,
    });
    if a.lags < 5 {
        bail!("--lags {}: at least 5 lags are computed", a.lags);
    }
    s.band_lags = a.lags;
    s.extensions = Extensions {
        fit_shifts: a.fit_shifts,
        robust: a.robust.as_deref().map(parse_robust).transpose()?,
        normalization_degree: a.normalize,
        lsf: if a.lsf {
            LsfMode::FromVisits
        } else {
            LsfMode::Off
        },
    };
    s.visits = vec![VisitSetting::default(); data.visits.len()];
    for x in &a.exclude {
        for i in find_visits(data, x).with_context(|| format!("--exclude {x}"))? {
            s.visits[i].include = false;
        }
    }
    for x in &a.weight {
        let (n, w) = name_value("weight", x)?;
        for i in find_visits(data, n).with_context(|| format!("--weight {x}"))? {
            s.visits[i].weight = w;
        }
    }
    for x in &a.velocity {
        let (n, v) = name_value("velocity", x)?;
        for i in find_visits(data, n).with_context(|| format!("--velocity {x}"))? {
            s.visits[i].shift_kms = Some(v);
        }
    }
    s.validate().context("invalid settings")?;
    Ok(s)
}

/// Load, combine and write one star; returns the summary paragraph.
pub fn combine_one(a: &CombineArgs, inputs: &[PathBuf], output: &Path) -> anyhow::Result<String> {
    let fmt = OutputFormat::from_path(output)?;
    let mut data = io::load_paths(
        inputs,
        &LoadOptions {
            force: a.allow_mixed,
            star: star_selector(a)?,
            exposures: a.exposures.clone(),
        },
    )?;
    if let Some(t) = &a.visits_table {
        let table = io::survey_rv::read_visits_table(t)?;
        if table.apply(&mut data) == 0 {
            bail!(
                "{}: none of its {} rows names a visit file given ({})",
                t.display(),
                table.rows.len(),
                data.visits
                    .iter()
                    .map(|v| v.meta.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let settings = match &a.settings {
        Some(p) => {
            let s = crate::export::fits::read_settings(p)?;
            s.validate()
                .with_context(|| format!("settings from {}", p.display()))?;
            if !a.quiet {
                eprintln!(
                    "note: every setting is taken from {}; other setting flags are ignored",
                    p.display()
                );
            }
            s
        }
        None => settings_from_args(a, &data)?,
    };
    let result = combine::combine(&data, &settings, &Cancel::new())
        .with_context(|| format!("combining {}", data.name))?;
    let mut all_inputs: Vec<PathBuf> = inputs.to_vec();
    all_inputs.extend(data.visits.iter().filter_map(|v| v.meta.source.clone()));
    match fmt {
        OutputFormat::Fits => crate::export::fits::write_fits(output, &data, &result, &all_inputs)?,
        OutputFormat::Npz => crate::export::write_npz(output, &result, &all_inputs)?,
        OutputFormat::Csv => crate::export::write_csv(output, &result, &all_inputs)?,
    }
    Ok(summary(&data, &result, output))
}

/// The shift source's label, with the file it came from when it is a survey file.
fn shift_source(data: &Dataset, c: &Combined) -> String {
    let label = c.settings.shift.label();
    let kind = match c.settings.shift {
        ShiftSource::ApStar => VelocityKind::ApStar,
        ShiftSource::AllVisit => VelocityKind::AllVisit,
        ShiftSource::MwmVisit => VelocityKind::MwmVisit,
        _ => return label.to_owned(),
    };
    let card = io::survey_rv::provenance_card(kind);
    data.visits
        .iter()
        .find_map(|v| v.meta.header.iter().find(|(k, _)| *k == card))
        .and_then(|(_, x)| x.split_whitespace().next())
        .map_or_else(|| label.to_owned(), |f| format!("{label} ({f})"))
}

/// The one-paragraph summary printed after a combination.
#[must_use]
pub fn summary(data: &Dataset, c: &Combined, output: &Path) -> String {
    let mut s = String::new();
    let n_inc = c.visits.iter().filter(|v| v.included).count();
    let used: usize = c
        .visits
        .iter()
        .filter(|v| v.included)
        .map(|v| v.n_used)
        .sum();
    let policy = pixel_policy::matching_preset(c.settings.bad_bits, &c.settings.inflate_bits)
        .map_or("custom", pixel_policy::Preset::label);
    let _ = write!(
        s,
        "{}: {} visits ({} included), {} pixels used, output grid {} px ({:.2}-{:.2} A), pixel policy {policy}, shifts from {}",
        data.name,
        c.visits.len(),
        n_inc,
        used,
        c.grid.len(),
        c.grid.ln_wave.first().map_or(f64::NAN, |x| x.exp()),
        c.grid.ln_wave.last().map_or(f64::NAN, |x| x.exp()),
        shift_source(data, c),
    );
    let mut part = |label: &str, r: &crate::combine::MethodResult| {
        let chi2: f64 = r
            .visits
            .iter()
            .filter(|v| v.n_used > 0)
            .map(|v| v.chi2)
            .sum();
        let n: usize = r.visits.iter().map(|v| v.n_used).sum();
        let no_data = r.no_data.iter().filter(|&&x| x).count();
        let _ = write!(s, "; {label}: ");
        if n > 0 {
            let _ = write!(s, "chi2/nu {:.3}", chi2 / n as f64);
        } else {
            let _ = write!(s, "chi2/nu n/a");
        }
        if let Some(cond) = r.condition {
            let _ = write!(s, ", condition {cond:.2e}");
        }
        if let Some(fv) = &r.fitted_velocity {
            let mut errs: Vec<f64> = fv.iter().map(|x| x.1).filter(|e| e.is_finite()).collect();
            errs.sort_by(f64::total_cmp);
            let med = errs.get(errs.len() / 2).copied().unwrap_or(f64::NAN);
            let _ = write!(
                s,
                ", shifts fitted for {} visits (median error {med:.3} km/s)",
                fv.len()
            );
            if let Some(z) = &r.velocity_zero_point {
                let _ = write!(
                    s,
                    ", velocities relative to {:.3} +- {:.3} km/s ({})",
                    z.v_kms, z.err_kms, z.name
                );
            }
        }
        let _ = write!(
            s,
            ", {no_data} px without data, {} px poorly constrained",
            crate::combine::constrained::count(r)
        );
        let loo: Vec<String> = r
            .visits
            .iter()
            .filter(|v| v.loo_chi2_nu.is_finite())
            .map(|v| format!("{:.3}", v.loo_chi2_nu))
            .collect();
        if !loo.is_empty() {
            let basis = r
                .loo_basis
                .as_ref()
                .map_or(String::new(), |b| format!(" ({b})"));
            let _ = write!(
                s,
                ", leave-one-out chi2/nu per visit{basis} [{}]",
                loo.join(", ")
            );
        }
    };
    if let Some(f) = &c.forward {
        part("forward model", f);
    }
    if let Some(f) = &c.standard {
        part("standard practice", f);
    }
    if let Some(e) = &c.forward_error {
        let _ = write!(s, "; forward model FAILED: {e}");
    }
    if let Some(e) = &c.standard_error {
        let _ = write!(s, "; standard practice FAILED: {e}");
    }
    if c.warnings.is_empty() {
        let _ = write!(s, "; no warnings");
    } else {
        let w: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
        let _ = write!(s, "; {} warnings: {}", w.len(), w.join("; "));
    }
    let _ = write!(s, "; wrote {}", output.display());
    if let Some(v) = &c.velocity {
        s.push('\n');
        s.push_str(&velocity_table(v));
    }
    s
}

/// The per-visit velocity table of the check (data velocity, error, CCF quality, external
/// velocity, replaced?) and the star's barycentric mean and scatter.
#[must_use]
pub fn velocity_table(v: &crate::velocity::VelocityCheck) -> String {
    let mut s = String::new();
    let kind = v
        .external_kind
        .map_or_else(|| "external".to_owned(), |k| format!("{k:?}"));
    let _ = writeln!(
        s,
        "velocities from the data (zero point {:+.3} +- {:.3} km/s: {}):",
        v.zero_point.offset_kms, v.zero_point.err_kms, v.zero_point.how
    );
    let _ = writeln!(s, "  {}", v.rest_frame.describe());
    let _ = writeln!(
        s,
        "  {:<36} {:>10} {:>7} {:>6} {:>7} {:>10} {:>9} {:>10}  used",
        "visit", "data km/s", "+-", "peak/", "FWHM", kind, "replaced", "v+BC"
    );
    for x in &v.visits {
        let _ = writeln!(
            s,
            "  {:<36} {:>10.3} {:>7.3} {:>6.2} {:>7.1} {:>10} {:>9} {:>10}  {}",
            x.name,
            x.data_kms,
            x.err_kms,
            x.quality.peak_ratio,
            x.quality.width_kms,
            x.external_kms
                .map_or_else(|| "-".to_owned(), |e| format!("{e:.3}")),
            if x.replaced { "yes" } else { "no" },
            x.v_bary_kms
                .map_or_else(|| "-".to_owned(), |b| format!("{b:.3}")),
            x.used_source
        );
    }
    match &v.star {
        Some(st) => {
            let _ = write!(
                s,
                "star: mean barycentric velocity {:.3} km/s, scatter {:.3} km/s over the visits, chi2 {:.2} for {} dof of a constant velocity{}",
                st.mean_bary_kms,
                st.scatter_kms,
                st.chi2,
                st.dof,
                if st.rv_variable {
                    " (looks RV-variable)"
                } else {
                    ""
                }
            );
        }
        None => {
            let _ = write!(
                s,
                "star: no barycentric figures (fewer than two measured visits with a BC)"
            );
        }
    }
    s
}

/// One star of a manifest.
#[derive(Clone, Debug, PartialEq)]
pub struct ManifestEntry {
    /// Star name (output file stem).
    pub name: String,
    /// Its input files.
    pub files: Vec<PathBuf>,
}

/// Match `name` against a glob with `*` and `?`.
fn glob_match(pat: &[char], name: &[char]) -> bool {
    match (pat.first(), name.first()) {
        (None, None) => true,
        (Some('*'), _) => {
            glob_match(&pat[1..], name) || (!name.is_empty() && glob_match(pat, &name[1..]))
        }
        (Some('?'), Some(_)) => glob_match(&pat[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => glob_match(&pat[1..], &name[1..]),
        _ => false,
    }
}

fn expand(base: &Path, token: &str) -> anyhow::Result<Vec<PathBuf>> {
    let p = base.join(token);
    if !token.contains(['*', '?']) {
        return Ok(vec![p]);
    }
    let dir = p
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let pat: Vec<char> = p
        .file_name()
        .map(|f| f.to_string_lossy().chars().collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e.with_context(|| format!("listing {}", dir.display()))?;
        let name: Vec<char> = e.file_name().to_string_lossy().chars().collect();
        if glob_match(&pat, &name) {
            out.push(e.path());
        }
    }
    out.sort();
    if out.is_empty() {
        bail!("{token}: no file matches");
    }
    Ok(out)
}

/// Parse a manifest (see the module documentation).
pub fn read_manifest(path: &Path) -> anyhow::Result<Vec<ManifestEntry>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new(""));
    let mut out = Vec::new();
    for (ln, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let ctx = || format!("{} line {}", path.display(), ln + 1);
        let (name, rest) = match line.split_once('\t') {
            Some((n, r)) => (n.trim(), r.trim()),
            None => {
                let mut it = line.splitn(2, char::is_whitespace);
                (
                    it.next().unwrap_or_default().trim(),
                    it.next().unwrap_or_default().trim(),
                )
            }
        };
        if name.is_empty() || rest.is_empty() {
            bail!(
                "{}: expected `name file1 file2 ...` or `name<TAB>glob`",
                ctx()
            );
        }
        if name.contains(['/', '\\']) {
            bail!(
                "{}: the star name '{name}' must not contain a path separator",
                ctx()
            );
        }
        let mut files = Vec::new();
        for tok in rest.split_whitespace() {
            files.extend(expand(base, tok).with_context(ctx)?);
        }
        out.push(ManifestEntry {
            name: name.to_owned(),
            files,
        });
    }
    Ok(out)
}

fn parse_shard(s: &str) -> anyhow::Result<(usize, usize)> {
    let (k, n) = s
        .split_once('/')
        .with_context(|| format!("--shard {s}: expected K/N"))?;
    let k: usize = k
        .trim()
        .parse()
        .with_context(|| format!("--shard {s}: K"))?;
    let n: usize = n
        .trim()
        .parse()
        .with_context(|| format!("--shard {s}: N"))?;
    if n == 0 || k >= n {
        bail!("--shard {s}: need 0 <= K < N");
    }
    Ok((k, n))
}

fn run_batch(a: &CombineArgs, manifest: &Path) -> anyhow::Result<()> {
    let out_dir = a.out_dir.as_ref().context("--manifest needs --out-dir")?;
    let ext = a.format.to_ascii_lowercase();
    if OutputFormat::from_extension(&ext).is_none() {
        bail!(
            "--format {}: expected {}",
            a.format,
            vocab::one_of(&OutputFormat::extensions(), false)
        );
    }
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut entries = read_manifest(manifest)?;
    if let Some(sh) = &a.shard {
        let (k, n) = parse_shard(sh)?;
        entries = entries
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % n == k)
            .map(|(_, e)| e)
            .collect();
    }
    // indicatif draws only on a terminal; redirected stderr gets nothing.
    let bar = indicatif::ProgressBar::new(entries.len() as u64);
    let mut failed = Vec::new();
    let (mut done, mut skipped) = (0, 0);
    for e in &entries {
        bar.set_message(e.name.clone());
        let out = out_dir.join(format!("{}.{ext}", e.name));
        if out.exists() && !a.force {
            skipped += 1;
        } else {
            match combine_one(a, &e.files, &out) {
                Ok(s) => {
                    done += 1;
                    if !a.quiet {
                        bar.suspend(|| println!("{s}"));
                    }
                }
                Err(err) => {
                    bar.suspend(|| eprintln!("error: {}: {err:#}", e.name));
                    failed.push(e.name.clone());
                }
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if !a.quiet {
        println!(
            "batch: {} stars, {done} combined, {skipped} skipped (output exists; --force redoes), {} failed",
            entries.len(),
            failed.len()
        );
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} stars failed: {}",
            failed.len(),
            entries.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// Run `frizzview combine`.
pub fn run(a: &CombineArgs) -> anyhow::Result<()> {
    if let Some(m) = &a.manifest {
        return run_batch(a, m);
    }
    let output = a.output.as_ref().context("-o OUTPUT is required")?;
    let s = combine_one(a, &a.inputs, output)?;
    if !a.quiet {
        println!("{s}");
    }
    Ok(())
}
