//! The image mode's one pipeline, shared by the CLI, Python and the window: from image files (or
//! exposures already read) and options to both methods' products.
//!
//! Two steps, kept apart so the window can re-solve cheaply:
//! - [`prepare`] (or [`prepare_paths`]): the output grid, every exposure's pixmap (from its WCS,
//!   from a shift-rotation, or given), the DQ policy applied, per-exposure include / weight /
//!   shift: a [`Prepared`] set of [`Exposure2d`]s.
//! - [`solve`]: the 2-D Frizzle forward model and drizzle on the same inputs, with everything
//!   each method reports, in one [`ImageProducts`]. After an include or weight change,
//!   [`reweight`] re-solves the stored forward model (no NUFFT) and re-drizzles.
//!
//! Sky: with `frizzle.sky` on, the forward model fits one additive offset per exposure relative to
//! the first included exposure (so the combined image keeps that exposure's sky level). Drizzle
//! has no sky model; as the JWST pipeline runs `skymatch` before `resample`, drizzle's inputs get
//! the same fitted offsets subtracted (`drizzle_skymatch`, on by default), so both methods
//! describe the same sky level. Apertures subtract a local background from an annulus (a linear
//! functional, so its exact variance still holds).

use std::path::PathBuf;

use ndarray::{Array2, Array3};

use super::drizzle::{self, DrizzleResult};
use super::frizzle2d::{self, FrizzleResult, FrizzleSettings, VarianceKind, VarianceMode};
use super::read::{self, DqPolicy, ImageExposure};
use super::wcs::{self, OutputOptions, ShiftRotation, Wcs};
use super::{Exposure2d, ImageError};
use crate::io::LoadError;

/// What went wrong in the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// An input file could not be read.
    #[error("{0}")]
    Load(#[from] LoadError),
    /// The engine refused the inputs or settings.
    #[error("{0}")]
    Image(#[from] ImageError),
    /// The options do not fit the inputs.
    #[error("{0}")]
    Settings(String),
}

/// Per-exposure choices (index-aligned with the exposures; missing entries are the default).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExposureChoice {
    pub include: bool,
    /// Scalar weight multiplying the inverse variance (>= 0).
    pub weight: f64,
    /// Extra shift (x, y) in OUTPUT pixels added to this exposure's pixmap (changing it needs a
    /// new [`prepare`]).
    pub shift: [f64; 2],
    /// Photometric scale: the data are multiplied by it (inverse variance divided by its
    /// square) to bring exposures with different exposure times or zero points onto one
    /// scale (changing it needs a new [`prepare`]).
    pub flux_scale: f64,
}

impl Default for ExposureChoice {
    fn default() -> Self {
        Self {
            include: true,
            weight: 1.0,
            shift: [0.0, 0.0],
            flux_scale: 1.0,
        }
    }
}

/// Where each exposure's pixels land on the output grid.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Geometry {
    /// Every exposure's own WCS onto a TAN output grid ([`wcs::output_grid`] with
    /// [`PipelineOptions::output`]); an error names the first exposure without a WCS.
    #[default]
    Wcs,
    /// One [`ShiftRotation`] per exposure, in order (the dither sequence). The output grid is
    /// `output.size` or the first exposure's size times its `scale`; there is no sky WCS.
    ShiftRotation(Vec<ShiftRotation>),
    /// Given pixmaps (ny, nx, 2), one per exposure, onto an output of `shape` (ny, nx).
    Pixmaps {
        pixmaps: Vec<Array3<f64>>,
        shape: (usize, usize),
    },
}

/// Everything the pipeline needs besides the inputs.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    pub output: OutputOptions,
    pub geometry: Geometry,
    pub dq: DqPolicy,
    /// Index-aligned per-exposure choices (shorter = defaults for the rest).
    pub choices: Vec<ExposureChoice>,
    /// Drizzle's pixfrac.
    pub pixfrac: f64,
    /// The forward model's settings (sky, ridge, pad, variance, robust clipping, LOO...).
    pub frizzle: FrizzleSettings,
    /// Run the forward model / drizzle.
    pub run_frizzle: bool,
    pub run_drizzle: bool,
    /// Subtract the forward model's fitted sky offsets from drizzle's inputs (see the module
    /// docs). Ignored when the forward model does not run or fits no skies.
    pub drizzle_skymatch: bool,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            output: OutputOptions::default(),
            geometry: Geometry::Wcs,
            dq: DqPolicy::default(),
            choices: Vec::new(),
            pixfrac: 1.0,
            frizzle: FrizzleSettings::default(),
            run_frizzle: true,
            run_drizzle: true,
            drizzle_skymatch: true,
        }
    }
}

impl PipelineOptions {
    /// The choice for exposure `e` (default when not given).
    #[must_use]
    pub fn choice(&self, e: usize) -> ExposureChoice {
        self.choices.get(e).copied().unwrap_or_default()
    }
}

/// The prepared inputs: the engine's exposures on one output grid.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The engine's exposures (DQ policy applied, choices applied, pixmaps onto the grid).
    pub exposures: Vec<Exposure2d>,
    /// Each exposure's file.
    pub paths: Vec<PathBuf>,
    /// Output shape (ny, nx).
    pub shape: (usize, usize),
    /// The output grid's TAN WCS (None for shift-rotation or given pixmaps).
    pub wcs: Option<Wcs>,
    /// Facts a user should know (units, unit weights, masked fractions, M/P...).
    pub notes: Vec<String>,
    /// Warnings (the M/P trap, exposures landing off the grid...).
    pub warnings: Vec<String>,
}

impl Prepared {
    /// The index of the exposure called `name` (exact, else the unique one whose name contains it).
    #[must_use]
    pub fn index_of(&self, name: &str) -> Option<usize> {
        index_of(self.exposures.iter().map(|e| e.name.as_str()), name)
    }

    /// Output pixel scale in arcsec (from the WCS), if there is one.
    #[must_use]
    pub fn scale_arcsec(&self) -> Option<f64> {
        self.wcs.as_ref().map(|w| {
            let d = w.cd[0][0] * w.cd[1][1] - w.cd[0][1] * w.cd[1][0];
            d.abs().sqrt() * 3600.0
        })
    }
}

/// The index of `name` among `names`: exact match, else the unique name containing it.
pub fn index_of<'a>(names: impl Iterator<Item = &'a str> + Clone, name: &str) -> Option<usize> {
    if let Some(i) = names.clone().position(|n| n == name) {
        return Some(i);
    }
    let hits: Vec<usize> = names
        .enumerate()
        .filter(|(_, n)| n.contains(name))
        .map(|(i, _)| i)
        .collect();
    (hits.len() == 1).then(|| hits[0])
}

/// Reads the files, then [`prepare`].
///
/// # Errors
/// The first unreadable file (named), or as [`prepare`].
pub fn prepare_paths(paths: &[PathBuf], opts: &PipelineOptions) -> Result<Prepared, PipelineError> {
    let inputs = read::load_images(paths)?;
    prepare(&inputs, opts)
}

/// Builds the output grid and every exposure's pixmap, applies the DQ policy and the choices.
///
/// # Errors
/// No inputs, an exposure without a WCS in WCS mode, a geometry list of the wrong length,
/// an unusable output option, or a bad weight.
pub fn prepare(
    inputs: &[ImageExposure],
    opts: &PipelineOptions,
) -> Result<Prepared, PipelineError> {
    let bad = |s: String| PipelineError::Settings(s);
    if inputs.is_empty() {
        return Err(bad("no exposures to combine".into()));
    }
    if opts.choices.len() > inputs.len() {
        return Err(bad(format!(
            "{} per-exposure choices for {} exposures",
            opts.choices.len(),
            inputs.len()
        )));
    }
    if !(opts.pixfrac > 0.0 && opts.pixfrac <= 1.0) {
        return Err(bad(format!("pixfrac {} must be in (0, 1]", opts.pixfrac)));
    }
    let (pixmaps, shape, out_wcs): (Vec<Array3<f64>>, (usize, usize), Option<Wcs>) = match &opts
        .geometry
    {
        Geometry::Wcs => {
            let mut ws = Vec::new();
            for x in inputs {
                let w = x.wcs.as_ref().ok_or_else(|| {
                        bad(format!(
                            "{} ({}): no celestial WCS in its header; give the geometry another way (e.g. --shifts CSV)",
                            x.name,
                            x.path.display()
                        ))
                    })?;
                ws.push((w, x.size()));
            }
            let g = wcs::output_grid(&ws, &opts.output).map_err(bad)?;
            let pms = ws
                .iter()
                .map(|(w, (nx, ny))| wcs::pixmap_wcs(w, *nx, *ny, &g.wcs))
                .collect();
            (pms, (g.ny, g.nx), Some(g.wcs))
        }
        Geometry::ShiftRotation(sr) => {
            if sr.len() != inputs.len() {
                return Err(bad(format!(
                    "{} shifts for {} exposures (one row per exposure, in order)",
                    sr.len(),
                    inputs.len()
                )));
            }
            if opts.output.scale_arcsec.is_some() || opts.output.center.is_some() {
                return Err(bad(
                        "--scale and --center need a WCS; with shifts the scale is output pixels per input pixel (--zoom)".into(),
                    ));
            }
            let shape = match opts.output.size {
                Some((nx, ny)) if nx > 0 && ny > 0 => (ny, nx),
                Some((nx, ny)) => return Err(bad(format!("--size {nx}x{ny} is empty"))),
                None => {
                    let (nx, ny) = inputs[0].size();
                    let s = sr[0].scale;
                    (
                        (ny as f64 * s).round() as usize,
                        (nx as f64 * s).round() as usize,
                    )
                }
            };
            for g in sr {
                let ok = g.scale > 0.0
                    && g.scale.is_finite()
                    && g.dx.is_finite()
                    && g.dy.is_finite()
                    && g.theta.is_finite();
                if !ok {
                    return Err(bad(format!("shift-rotation {g:?} is not usable")));
                }
            }
            let pms = inputs
                .iter()
                .zip(sr)
                .map(|(x, g)| {
                    let (nx, ny) = x.size();
                    wcs::pixmap_shift_rotation(nx, ny, g)
                })
                .collect();
            (pms, shape, None)
        }
        Geometry::Pixmaps { pixmaps, shape } => {
            if pixmaps.len() != inputs.len() {
                return Err(bad(format!(
                    "{} pixmaps for {} exposures",
                    pixmaps.len(),
                    inputs.len()
                )));
            }
            (pixmaps.clone(), *shape, None)
        }
    };
    if shape.0 == 0 || shape.1 == 0 {
        return Err(bad("the output grid is empty".into()));
    }
    let mut exposures = Vec::new();
    let mut notes = Vec::new();
    let mut warnings = Vec::new();
    for (e, (x, mut pm)) in inputs.iter().zip(pixmaps).enumerate() {
        let c = opts.choice(e);
        if c.shift != [0.0, 0.0] {
            pm.outer_iter_mut().for_each(|mut row| {
                row.outer_iter_mut().for_each(|mut p| {
                    p[0] += c.shift[0];
                    p[1] += c.shift[1];
                });
            });
        }
        let mut ex = x
            .to_exposure2d(pm, &opts.dq, c.weight)
            .map_err(PipelineError::Settings)?;
        ex.include = c.include;
        if !(c.flux_scale > 0.0 && c.flux_scale.is_finite()) {
            return Err(bad(format!(
                "{}: flux scale {} must be a finite number > 0",
                x.name, c.flux_scale
            )));
        }
        if c.flux_scale != 1.0 {
            let f = c.flux_scale;
            ex.sci.mapv_inplace(|v| v * f);
            ex.ivar.mapv_inplace(|w| w / (f * f));
        }
        ex.check()?;
        // Pixels whose pixmap is not finite cannot be placed: weight 0.
        let mut unplaced = 0usize;
        for ((iy, ix), w) in ex.ivar.indexed_iter_mut() {
            if !(ex.pixmap[[iy, ix, 0]].is_finite() && ex.pixmap[[iy, ix, 1]].is_finite()) {
                *w = 0.0;
                unplaced += 1;
            }
            if !ex.sci[[iy, ix]].is_finite() {
                *w = 0.0;
            }
        }
        if unplaced > 0 {
            warnings.push(format!(
                "{}: {unplaced} pixels have no position on the output grid",
                x.name
            ));
        }
        let n = ex.ivar.len();
        let masked = ex.ivar.iter().filter(|w| !(**w > 0.0)).count();
        if masked > 0 {
            notes.push(format!(
                "{}: {masked} of {n} pixels ({:.1} %) have zero weight (DQ policy, no data or zero inverse variance)",
                x.name,
                100.0 * masked as f64 / n as f64
            ));
        }
        if masked == n {
            warnings.push(format!("{}: every pixel has zero weight", x.name));
        }
        // The units note is given once for all exposures below.
        for s in x.notes.iter().filter(|s| !s.contains("BUNIT")) {
            notes.push(format!("{}: {s}", x.name));
        }
        exposures.push(ex);
    }
    if inputs.iter().any(|x| x.bunit.is_none()) {
        let which: Vec<&str> = inputs
            .iter()
            .filter(|x| x.bunit.is_none())
            .map(|x| x.name.as_str())
            .collect();
        notes.push(format!(
            "units unknown (no BUNIT in {} of {} exposures): values are taken as intensities (per pixel); SCI, VAR and aperture sums are in the inputs' units",
            which.len(),
            inputs.len()
        ));
    }
    let scales: Vec<f64> = (0..inputs.len())
        .map(|e| opts.choice(e).flux_scale)
        .collect();
    if scales.iter().any(|f| *f != 1.0) {
        notes.push(format!(
            "flux scales applied (data x scale): {}",
            inputs
                .iter()
                .zip(&scales)
                .map(|(x, f)| format!("{} {f:.6}", x.name))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    } else if inputs.len() > 1 {
        notes.push(
            "no flux scales given: the exposures are combined as they are; exposures with different exposure times or zero points must be put on one scale first (--flux-scale NAME=F)".into(),
        );
    }
    warnings.extend(mp_warning(&exposures, shape));
    Ok(Prepared {
        paths: inputs.iter().map(|x| x.path.clone()).collect(),
        exposures,
        shape,
        wcs: out_wcs,
        notes,
        warnings,
    })
}

/// M/P: used input samples landing on the grid per output pixel they cover. Near or below 1 the
/// fit sits on the double-descent peak (docs/image-mode.md, the M/P trap): a warning.
fn mp_warning(exps: &[Exposure2d], shape: (usize, usize)) -> Option<String> {
    let (ny, nx) = shape;
    let mut hit = Array2::<bool>::from_elem(shape, false);
    let mut m = 0usize;
    for x in exps.iter().filter(|x| x.include && x.weight > 0.0) {
        for ((iy, ix), w) in x.ivar.indexed_iter() {
            if *w > 0.0 {
                let (px, py) = (x.pixmap[[iy, ix, 0]], x.pixmap[[iy, ix, 1]]);
                let (cx, cy) = (px.round(), py.round());
                if cx >= 0.0 && cy >= 0.0 && (cx as usize) < nx && (cy as usize) < ny {
                    m += 1;
                    hit[[cy as usize, cx as usize]] = true;
                }
            }
        }
    }
    let p = hit.iter().filter(|h| **h).count();
    if p == 0 {
        return Some("no used input pixel lands on the output grid".into());
    }
    let r = m as f64 / p as f64;
    (r < 2.0).then(|| {
        format!(
            "M/P = {r:.2} (used input pixels per covered output pixel) is near the double-descent peak (the M/P trap, docs/image-mode.md): expect amplified noise and slow convergence; use a coarser output scale, more dithers, or a ridge"
        )
    })
}

/// One row of the per-exposure table.
#[derive(Clone, Debug, PartialEq)]
pub struct ExposureRow {
    pub name: String,
    pub include: bool,
    pub weight: f64,
    /// Fitted additive sky offset (relative to the first included exposure; NaN without a fit).
    pub sky: f64,
    /// Residual chi^2/nu against the forward model.
    pub chi2nu: f64,
    /// Leave-one-out chi^2/nu (NaN when not computed).
    pub loo_chi2nu: f64,
}

/// Both methods' products.
pub struct ImageProducts {
    /// Output shape (ny, nx).
    pub shape: (usize, usize),
    /// The output grid's WCS (None without one).
    pub wcs: Option<Wcs>,
    /// The forward model's result (SCI, VAR + kind, coverage, DQ, residuals, chi^2/nu, LOO,
    /// skies, noise correlation, the model for re-solves).
    pub frizzle: Option<FrizzleResult>,
    /// Drizzle's result (SCI, WHT, squared-weight VAR, count).
    pub drizzle: Option<DrizzleResult>,
    /// The sky offsets subtracted from drizzle's inputs (zeros without skymatch).
    pub drizzle_sky: Vec<f64>,
    /// Drizzle's exact output noise correlation at lags 1..3 along x (row 0) and y (row 1) at the
    /// output centre (the same pixel as the forward model's).
    pub drizzle_noise_corr: [[f64; 3]; 2],
    /// The per-exposure table.
    pub table: Vec<ExposureRow>,
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
}

/// Runs both methods on prepared inputs.
///
/// # Errors
/// As the engine ([`frizzle2d::combine`], [`drizzle::drizzle`]).
pub fn solve(prep: &Prepared, opts: &PipelineOptions) -> Result<ImageProducts, PipelineError> {
    let frizzle = if opts.run_frizzle {
        Some(frizzle2d::combine(
            &prep.exposures,
            prep.shape,
            &opts.frizzle,
        )?)
    } else {
        None
    };
    let mut notes = prep.notes.clone();
    let mut warnings = prep.warnings.clone();
    let n = prep.exposures.len();
    let drizzle_sky = drizzle_sky(frizzle.as_ref(), opts, n);
    let (drizzle, drizzle_noise_corr) = if opts.run_drizzle {
        let d = run_drizzle(prep, &drizzle_sky, opts.pixfrac)?;
        let nc = drizzle_noise_correlation(&prep.exposures, &d)?;
        (Some(d), nc)
    } else {
        (None, [[f64::NAN; 3]; 2])
    };
    if let Some(f) = &frizzle {
        describe_frizzle(f, prep, opts, &mut notes, &mut warnings);
    }
    let table = table(prep, frizzle.as_ref());
    Ok(ImageProducts {
        shape: prep.shape,
        wcs: prep.wcs.clone(),
        frizzle,
        drizzle,
        drizzle_sky,
        drizzle_noise_corr,
        table,
        notes,
        warnings,
    })
}

/// [`prepare_paths`] then [`solve`].
///
/// # Errors
/// As those.
pub fn run_paths(
    paths: &[PathBuf],
    opts: &PipelineOptions,
) -> Result<(Prepared, ImageProducts), PipelineError> {
    let p = prepare_paths(paths, opts)?;
    let r = solve(&p, opts)?;
    Ok((p, r))
}

fn drizzle_sky(f: Option<&FrizzleResult>, opts: &PipelineOptions, n: usize) -> Vec<f64> {
    match f {
        Some(f) if opts.drizzle_skymatch && opts.frizzle.sky && f.sky.len() == n => f
            .sky
            .iter()
            .map(|s| if s.is_finite() { *s } else { 0.0 })
            .collect(),
        _ => vec![0.0; n],
    }
}

fn run_drizzle(prep: &Prepared, sky: &[f64], pixfrac: f64) -> Result<DrizzleResult, ImageError> {
    if sky.iter().all(|s| *s == 0.0) {
        return drizzle::drizzle(&prep.exposures, prep.shape, pixfrac);
    }
    let exps: Vec<Exposure2d> = prep
        .exposures
        .iter()
        .zip(sky)
        .map(|(x, s)| {
            let mut x = x.clone();
            x.sci.mapv_inplace(|v| v - s);
            x
        })
        .collect();
    drizzle::drizzle(&exps, prep.shape, pixfrac)
}

/// Drizzle's exact output correlation around the centre: cov(p, q) from the exact variances of
/// e_p, e_q and e_p + e_q ([`drizzle::aperture`]).
fn drizzle_noise_correlation(
    exps: &[Exposure2d],
    d: &DrizzleResult,
) -> Result<[[f64; 3]; 2], ImageError> {
    let (ny, nx) = d.sci.dim();
    let (y0, x0) = (ny / 2, nx / 2);
    let var_of = |pts: &[(usize, usize)]| -> Result<f64, ImageError> {
        let mut a = Array2::zeros((ny, nx));
        for p in pts {
            a[*p] += 1.0;
        }
        Ok(drizzle::aperture(exps, d, &a)?.1)
    };
    let v0 = var_of(&[(y0, x0)])?;
    let mut out = [[f64::NAN; 3]; 2];
    if !(v0 > 0.0) {
        return Ok(out);
    }
    for l in 1..=3 {
        for (axis, q) in [(0, (y0, x0 + l)), (1, (y0 + l, x0))] {
            if q.0 < ny && q.1 < nx {
                let vq = var_of(&[q])?;
                let vs = var_of(&[(y0, x0), q])?;
                if vq > 0.0 {
                    out[axis][l - 1] = (vs - v0 - vq) / 2.0 / (v0 * vq).sqrt();
                }
            }
        }
    }
    Ok(out)
}

fn describe_frizzle(
    f: &FrizzleResult,
    prep: &Prepared,
    opts: &PipelineOptions,
    notes: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    notes.push(format!(
        "forward model: {} CG iterations (relative residual {:.1e}), {} samples clipped, variance {}",
        f.iterations,
        f.rel_residual,
        f.clipped,
        variance_label(f.var_kind)
    ));
    if f.iterations >= opts.frizzle.max_iter {
        warnings.push(format!(
            "CG stopped at its cap of {} iterations (relative residual {:.1e}): the fit may be unconverged",
            opts.frizzle.max_iter, f.rel_residual
        ));
    }
    if opts.frizzle.sky {
        if let Some(z) = prep
            .exposures
            .iter()
            .position(|x| x.include && x.weight > 0.0)
        {
            notes.push(format!(
                "sky offsets fitted relative to {} (its sky level stays in the output; the sky itself is not subtracted: subtract a local background, e.g. the aperture annulus)",
                prep.exposures[z].name
            ));
        }
        if opts.run_drizzle && opts.drizzle_skymatch {
            notes.push(
                "drizzle's inputs had the fitted sky offsets subtracted (as skymatch before resample), so both methods share one sky level".into(),
            );
        }
    } else {
        notes.push("no sky offsets fitted (--no-sky): exposures with different sky levels leave a patchwork where their coverage differs".into());
    }
    let dropped: usize = f.model.dropped().iter().sum();
    if dropped > 0 {
        notes.push(format!(
            "{dropped} input samples fall outside the model's period and are unused (add --pad to keep them)"
        ));
    }
}

/// "EXACT", "PROBE n" or "NONE": the header value for the variance kind.
#[must_use]
pub fn variance_label(k: VarianceKind) -> String {
    match k {
        VarianceKind::None => "NONE".into(),
        VarianceKind::Exact => "EXACT".into(),
        VarianceKind::Probe(n) => format!("PROBE {n}"),
    }
}

fn table(prep: &Prepared, f: Option<&FrizzleResult>) -> Vec<ExposureRow> {
    prep.exposures
        .iter()
        .enumerate()
        .map(|(e, x)| {
            let get = |v: Option<&Vec<f64>>| v.and_then(|v| v.get(e)).copied().unwrap_or(f64::NAN);
            ExposureRow {
                name: x.name.clone(),
                include: x.include,
                weight: x.weight,
                sky: get(f.map(|f| &f.sky)),
                chi2nu: get(f.map(|f| &f.chi2nu)),
                loo_chi2nu: get(f.map(|f| &f.loo_chi2nu)),
            }
        })
        .collect()
}

/// What [`reweight`] recomputes beyond the solution, image, residuals and drizzle.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Recompute {
    /// The per-pixel variance (as `opts.frizzle.variance`; otherwise VAR is left as it was and a
    /// note says it is stale).
    pub variance: bool,
    /// Leave-one-out scores (one solve per exposure).
    pub loo: bool,
    /// The noise correlation (one solve).
    pub noise_correlation: bool,
}

/// Applies new include / weight choices (index-aligned; shifts are ignored here, they need a new
/// [`prepare`]) and re-solves: the stored forward model is re-weighted (no NUFFT, warm start) and
/// drizzle re-run. The robust clipping of the first solve is kept.
///
/// # Errors
/// A bad weight, or when nothing is included.
pub fn reweight(
    prep: &mut Prepared,
    products: &mut ImageProducts,
    choices: &[ExposureChoice],
    opts: &PipelineOptions,
    what: Recompute,
) -> Result<(), PipelineError> {
    for (e, x) in prep.exposures.iter_mut().enumerate() {
        let c = choices.get(e).copied().unwrap_or_default();
        if !(c.weight >= 0.0 && c.weight.is_finite()) {
            return Err(PipelineError::Settings(format!(
                "{}: weight {} is not finite and >= 0",
                x.name, c.weight
            )));
        }
        x.include = c.include;
        x.weight = c.weight;
    }
    if let Some(f) = products.frizzle.as_mut() {
        for (e, x) in prep.exposures.iter().enumerate() {
            f.model.set_weight(e, x.weight, x.include)?;
        }
        let c = f.model.solve()?;
        f.sci = f.model.image(&c);
        let (res, chi) = f.model.residuals(&c);
        f.residuals = res;
        f.chi2nu = chi;
        f.sky.clone_from(&c.sky);
        f.iterations = c.iterations;
        f.rel_residual = c.rel_residual;
        if what.variance {
            let nmodes = f.model.n_modes() + prep.exposures.len();
            let (var, kind) = match opts.frizzle.variance {
                VarianceMode::None => (Array2::from_elem(prep.shape, f64::NAN), VarianceKind::None),
                VarianceMode::Exact => (f.model.variance_exact()?, VarianceKind::Exact),
                VarianceMode::Probe(n) => (f.model.variance_probe(n), VarianceKind::Probe(n)),
                VarianceMode::Auto { probes } => {
                    if nmodes <= opts.frizzle.exact_max_modes {
                        (f.model.variance_exact()?, VarianceKind::Exact)
                    } else {
                        (f.model.variance_probe(probes), VarianceKind::Probe(probes))
                    }
                }
            };
            f.var = var;
            f.var_kind = kind;
        }
        f.loo_chi2nu = if what.loo {
            f.model.loo(&c)?
        } else {
            vec![f64::NAN; prep.exposures.len()]
        };
        if what.noise_correlation {
            f.noise_corr = f
                .model
                .noise_correlation((prep.shape.0 / 2, prep.shape.1 / 2));
        }
        f.coeffs = c;
        if opts.frizzle.coverage {
            let d = drizzle::drizzle(&prep.exposures, prep.shape, 1.0)?;
            f.dq = d.count.mapv(|c| u8::from(c == 0));
            f.coverage = d.count;
        }
    }
    products.drizzle_sky = drizzle_sky(products.frizzle.as_ref(), opts, prep.exposures.len());
    if products.drizzle.is_some() {
        let d = run_drizzle(prep, &products.drizzle_sky, opts.pixfrac)?;
        if what.noise_correlation {
            products.drizzle_noise_corr = drizzle_noise_correlation(&prep.exposures, &d)?;
        }
        products.drizzle = Some(d);
    }
    products.table = table(prep, products.frizzle.as_ref());
    if !what.variance {
        products
            .notes
            .retain(|n| !n.starts_with("VAR is from before"));
        products
            .notes
            .push("VAR is from before the last weight change (not recomputed)".into());
    }
    Ok(())
}

/// Where an aperture is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ApertureCenter {
    /// (RA, Dec) degrees; radii in arcsec (needs the output WCS).
    Sky(f64, f64),
    /// Output pixel (x, y), 0-based; radii in output pixels.
    Pixel(f64, f64),
}

/// A circular aperture with an optional background annulus (radii in arcsec for a sky centre,
/// output pixels for a pixel centre).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Aperture {
    pub center: ApertureCenter,
    pub radius: f64,
    /// (inner, outer) radii of the background annulus; the aperture sum has the annulus mean
    /// times the aperture area subtracted.
    pub annulus: Option<(f64, f64)>,
}

/// Both methods' aperture photometry.
#[derive(Clone, Debug, PartialEq)]
pub struct ApertureResult {
    /// Centre in output pixels (x, y), radius and annulus in output pixels.
    pub center_px: [f64; 2],
    pub radius_px: f64,
    pub annulus_px: Option<(f64, f64)>,
    /// Effective aperture area (output pixels) and annulus area.
    pub area: f64,
    pub annulus_area: f64,
    /// Forward model: sum and its exact variance (C* included).
    pub frizzle: Option<(f64, f64)>,
    /// Drizzle: sum, its exact variance (covariance included), and the per-pixel VAR sum that
    /// ignores the covariance (what drizzle's VAR gives).
    pub drizzle: Option<(f64, f64, f64)>,
}

/// Fractional coverage of output pixels by a disc (5 x 5 sub-samples per pixel).
fn disc(shape: (usize, usize), c: [f64; 2], r: f64) -> Array2<f64> {
    const K: usize = 5;
    let (ny, nx) = shape;
    let mut a = Array2::zeros(shape);
    if !(r > 0.0) {
        return a;
    }
    let y0 = ((c[1] - r - 1.0).floor().max(0.0)) as usize;
    let y1 = ((c[1] + r + 1.0).ceil().max(0.0) as usize).min(ny);
    let x0 = ((c[0] - r - 1.0).floor().max(0.0)) as usize;
    let x1 = ((c[0] + r + 1.0).ceil().max(0.0) as usize).min(nx);
    for iy in y0..y1 {
        for ix in x0..x1 {
            let mut k = 0;
            for sy in 0..K {
                for sx in 0..K {
                    let x = ix as f64 - 0.5 + (sx as f64 + 0.5) / K as f64;
                    let y = iy as f64 - 0.5 + (sy as f64 + 0.5) / K as f64;
                    if (x - c[0]).powi(2) + (y - c[1]).powi(2) <= r * r {
                        k += 1;
                    }
                }
            }
            a[[iy, ix]] = k as f64 / (K * K) as f64;
        }
    }
    a
}

/// An aperture's weights on the output grid and its geometry in output pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct ApertureWeights {
    /// Disc coverage minus the area-scaled annulus coverage.
    pub a: Array2<f64>,
    pub center_px: [f64; 2],
    pub radius_px: f64,
    pub annulus_px: Option<(f64, f64)>,
    pub area: f64,
    pub annulus_area: f64,
}

/// The aperture's weights on the output grid (disc minus area-scaled annulus) and its geometry.
///
/// # Errors
/// A sky centre without an output WCS, a centre off the grid, or unusable radii.
pub fn aperture_weights(
    shape: (usize, usize),
    wcs: Option<&Wcs>,
    ap: &Aperture,
) -> Result<ApertureWeights, PipelineError> {
    let bad = |s: String| PipelineError::Settings(s);
    let (c, per) = match ap.center {
        ApertureCenter::Pixel(x, y) => ([x, y], 1.0),
        ApertureCenter::Sky(ra, dec) => {
            let w = wcs.ok_or_else(|| {
                bad("a sky aperture needs an output WCS (give the centre in pixels)".into())
            })?;
            let p = w
                .sky_to_pixel(ra, dec)
                .ok_or_else(|| bad(format!("aperture centre ({ra}, {dec}) is off the grid")))?;
            let d = w.cd[0][0] * w.cd[1][1] - w.cd[0][1] * w.cd[1][0];
            (p, 1.0 / (d.abs().sqrt() * 3600.0))
        }
    };
    let (ny, nx) = shape;
    if !(c[0] >= -0.5 && c[1] >= -0.5 && c[0] <= nx as f64 - 0.5 && c[1] <= ny as f64 - 0.5) {
        return Err(bad(format!(
            "aperture centre (x {:.2}, y {:.2}) px is outside the {nx} x {ny} output",
            c[0], c[1]
        )));
    }
    let r = ap.radius * per;
    if !(r > 0.0 && r.is_finite()) {
        return Err(bad(format!("aperture radius {} must be > 0", ap.radius)));
    }
    let mut a = disc(shape, c, r);
    let area: f64 = a.sum();
    let mut ann_px = None;
    let mut ann_area = 0.0;
    if let Some((ri, ro)) = ap.annulus {
        let (ri, ro) = (ri * per, ro * per);
        if !(ri >= r && ro > ri && ro.is_finite()) {
            return Err(bad(format!(
                "annulus ({}, {}) must satisfy radius <= inner < outer",
                ri / per,
                ro / per
            )));
        }
        let ann = disc(shape, c, ro) - disc(shape, c, ri);
        ann_area = ann.sum();
        if !(ann_area > 0.0) {
            return Err(bad("the background annulus covers no output pixel".into()));
        }
        a = a - ann * (area / ann_area);
        ann_px = Some((ri, ro));
    }
    Ok(ApertureWeights {
        a,
        center_px: c,
        radius_px: r,
        annulus_px: ann_px,
        area,
        annulus_area: ann_area,
    })
}

/// Aperture photometry of both methods with their exact variances.
///
/// # Errors
/// As [`aperture_weights`] and the engine's apertures.
pub fn aperture(
    prep: &Prepared,
    products: &ImageProducts,
    ap: &Aperture,
) -> Result<ApertureResult, PipelineError> {
    let w = aperture_weights(products.shape, products.wcs.as_ref(), ap)?;
    let a = &w.a;
    let frizzle = match &products.frizzle {
        Some(f) => Some(f.model.aperture(&f.coeffs, a)?),
        None => None,
    };
    let drizzle = match &products.drizzle {
        Some(d) => Some(drizzle::aperture(&prep.exposures, d, a)?),
        None => None,
    };
    Ok(ApertureResult {
        center_px: w.center_px,
        radius_px: w.radius_px,
        annulus_px: w.annulus_px,
        area: w.area,
        annulus_area: w.annulus_area,
        frizzle,
        drizzle,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::synth::SplitMix;

    fn exposure(name: &str, sci: Array2<f64>) -> ImageExposure {
        let ivar = Array2::ones(sci.dim());
        ImageExposure::new(name, name, "0", sci, ivar)
    }

    #[test]
    fn shift_rotation_pipeline_runs_both_methods_and_reweights() {
        let mut rng = SplitMix(7);
        let n = 12;
        let shifts = [
            (0.0, 0.0),
            (0.31, 0.12),
            (0.07, 0.55),
            (0.62, 0.41),
            (0.44, 0.83),
        ];
        let inputs: Vec<ImageExposure> = shifts
            .iter()
            .enumerate()
            .map(|(k, _)| {
                exposure(
                    &format!("f{k}"),
                    Array2::from_shape_fn((n, n), |_| 3.0 + rng.normal()),
                )
            })
            .collect();
        let sr = shifts
            .iter()
            .map(|&(dx, dy)| ShiftRotation {
                dx,
                dy,
                scale: 1.0,
                ..ShiftRotation::default()
            })
            .collect();
        let opts = PipelineOptions {
            geometry: Geometry::ShiftRotation(sr),
            ..PipelineOptions::default()
        };
        let mut prep = prepare(&inputs, &opts).expect("prepare");
        assert_eq!(prep.shape, (n, n));
        assert!(prep.notes.iter().any(|s| s.contains("units unknown")));
        let mut prod = solve(&prep, &opts).expect("solve");
        let f = prod.frizzle.as_ref().expect("frizzle");
        let d = prod.drizzle.as_ref().expect("drizzle");
        assert_eq!(f.sci.dim(), (n, n));
        assert_eq!(d.sci.dim(), (n, n));
        assert_eq!(prod.table.len(), 5);
        // The aperture's exact variances are positive; the annulus removes the constant level.
        let ap = Aperture {
            center: ApertureCenter::Pixel(5.5, 5.5),
            radius: 2.0,
            annulus: Some((3.0, 4.5)),
        };
        let r = aperture(&prep, &prod, &ap).expect("aperture");
        let (ff, fv) = r.frizzle.expect("f");
        let (df, dv, _) = r.drizzle.expect("d");
        assert!(fv > 0.0 && dv > 0.0);
        assert!(ff.abs() < 6.0 * fv.sqrt(), "{ff} {fv}");
        assert!(df.abs() < 6.0 * dv.sqrt(), "{df} {dv}");
        // Excluding an exposure: the re-solve equals a fresh prepare + solve.
        let mut ch = vec![ExposureChoice::default(); 5];
        ch[2].include = false;
        reweight(&mut prep, &mut prod, &ch, &opts, Recompute::default()).expect("reweight");
        let opts2 = PipelineOptions {
            choices: ch,
            ..opts.clone()
        };
        let fresh = solve(&prepare(&inputs, &opts2).expect("p2"), &opts2).expect("s2");
        let a = &prod.frizzle.as_ref().expect("f").sci;
        let b = &fresh.frizzle.as_ref().expect("f").sci;
        let diff = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        assert!(diff < 1e-6, "{diff}");
        let da = &prod.drizzle.as_ref().expect("d").sci;
        let db = &fresh.drizzle.as_ref().expect("d").sci;
        for (x, y) in da.iter().zip(db) {
            assert!((x - y).abs() < 1e-9 || (x.is_nan() && y.is_nan()));
        }
        assert!(!prod.table[2].include);
    }

    #[test]
    fn bad_options_are_named_errors() {
        let inputs = vec![exposure("a", Array2::zeros((4, 4)))];
        let e = prepare(&inputs, &PipelineOptions::default()).expect_err("no wcs");
        assert!(e.to_string().contains("no celestial WCS"), "{e}");
        let o = PipelineOptions {
            geometry: Geometry::ShiftRotation(vec![]),
            ..PipelineOptions::default()
        };
        let e = prepare(&inputs, &o).expect_err("count");
        assert!(e.to_string().contains("0 shifts for 1"), "{e}");
        let o = PipelineOptions {
            pixfrac: 0.0,
            ..PipelineOptions::default()
        };
        assert!(prepare(&inputs, &o).is_err());
    }

    #[test]
    fn disc_area_is_pi_r_squared() {
        let a = disc((40, 40), [20.3, 19.7], 7.0);
        let area: f64 = a.sum();
        assert!((area - std::f64::consts::PI * 49.0).abs() < 1.0, "{area}");
    }
}
