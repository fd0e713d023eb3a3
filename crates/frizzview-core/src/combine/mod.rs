//! The combination engine: Frizzle's forward model and standard practice.
//!
//! The forward model (Hogg & Casey 2024) fits one linear model f(x; theta) = sum_j theta_j g_j(x)
//! to every good pixel of every visit at its rest-frame position x - dx_i, optionally multiplied by
//! the visit's selection factor S:
//!
//! ```text
//!   y_ik = S_ik f(x_ik - dx_i; theta) + noise,      w_ik = ivar_ik * weight_i  (0 = masked)
//!   theta = (X^T W X)^-1 X^T W y,   y* = X* theta,   C* = X* (X^T W X)^-1 X*^T
//! ```
//!
//! and evaluates it on the output grid x*. Standard practice shifts, interpolates and averages.
//!
//! Data flow: [`prepare`] turns a [`Dataset`] and [`Settings`] into per-visit rest-frame pixels
//! with weights ([`Prepared`]); a method (`fourier`, `local`, `standard`) turns that into a
//! [`MethodResult`]; [`combine`] runs the requested methods (each
//! with its own outcome: one failing keeps the other) and collects warnings. Nothing here
//! imports egui.

pub mod censor;
pub mod constrained;
pub mod dense;
pub mod dither;
pub mod extensions;
pub mod fourier;
pub mod local;
pub mod memo;
pub mod quadrature;
pub mod standard;

use rayon::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::model::{Dataset, OutputGrid, Visit, shift_from_velocity};
use crate::settings::{
    MIN_SELECTION, SelectionMode, Settings, SettingsError, ShiftSource, Weighting,
};

/// A cancellation flag shared between a requester and a running combination.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A fresh, not-cancelled flag.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask the computation to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether cancellation was requested.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Cancelled)` if cancellation was requested.
    pub fn check(&self) -> Result<(), CombineError> {
        if self.is_cancelled() {
            Err(CombineError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// Why a combination could not be computed at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CombineError {
    #[error("no visits to combine")]
    NoVisits,
    #[error("no usable pixel in any included visit inside the output grid")]
    NoUsablePixels,
    #[error("invalid settings: {0}")]
    Settings(#[from] SettingsError),
    #[error("the linear system is singular or not positive definite ({0})")]
    Singular(String),
    #[error("cancelled")]
    Cancelled,
    #[error("the combination failed with an internal error (a bug; please report it): {0}")]
    Panicked(String),
    #[error("{0}")]
    Other(String),
}

/// Something worth telling the user that did not stop the combination.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Warning {
    #[error("visit {visit}: no usable pixel (all masked, zero weight or outside the grid)")]
    NoUsablePixels { visit: String },
    #[error("visit {visit}: no velocity for shift source '{source_name}', using 0 km/s")]
    MissingVelocity { visit: String, source_name: String },
    #[error("visit {visit}: {n} pixels had NaN/inf flux or NaN/inf/negative ivar and were masked")]
    InvalidPixels { visit: String, n: usize },
    #[error("visit {visit}: {n} pixels with selection factor below {min} got zero weight")]
    TinySelection { visit: String, n: usize, min: f64 },
    #[error("visit {visit}: no selection factor, treated as S = 1")]
    NoSelection { visit: String },
    #[error("{what}: condition number {cond:.3e} exceeds 1e8; the result may be unreliable")]
    IllConditioned { what: String, cond: f64 },
    #[error("only one visit is included: the result is a change of basis, noise stays correlated")]
    SingleVisit,
    #[error(
        "{n} visits shifted by -BC only (barycentric frame): the star's own velocity is unknown, so \
         lines of visits whose velocities differ are averaged apart. Supply it with an apStar file \
         given with the visits, --visits-table allVisit.fits, or --velocity NAME=KMS (the window: \
         open them together, or set each visit's velocity), or fit it with --fit-shifts"
    )]
    StarVelocityUnknown { n: usize },
    #[error(
        "{n} visit(s) already resampled by the pipeline, not native pixels ({example}): shown for \
         inspection; forward-modelling them again is not Frizzle (it does not undo that \
         interpolation, and their noise is correlated): open the native-pixel files (apVisit, \
         apCframe) instead"
    )]
    Resampled { n: usize, example: String },
    #[error("{}", poor_fit_text(*.chi2_nu, .outliers, .ranked, *.loo))]
    PoorFit {
        /// chi^2/nu over the included visits' used pixels.
        chi2_nu: f64,
        /// Visits whose score is far above the others' ([`OUTLIER_LOO_CHI2_NU`],
        /// [`OUTLIER_LOO_FACTOR`]), worst first, with their scores.
        outliers: Vec<(String, f64)>,
        /// The included visits with the highest scores (up to 3), worst first.
        ranked: Vec<(String, f64)>,
        /// True when the scores are leave-one-out chi^2/nu; false while they are still to come
        /// (the first stage of [`combine_staged`]) and the in-sample chi^2/nu is used.
        loo: bool,
    },
    #[error(
        "visit {visit}: its {source_name} velocity {external_kms:.2} km/s disagrees with the data's \
         {data_kms:.2} +- {err_kms:.2} km/s (relative velocities compared): replaced by the data's"
    )]
    VelocityReplaced {
        visit: String,
        source_name: String,
        external_kms: f64,
        data_kms: f64,
        err_kms: f64,
    },
    #[error(
        "visit {visit}: too faint for a velocity from the data; its {source_name} velocity \
         {external_kms:.2} km/s is used unchecked"
    )]
    VelocityUnchecked {
        visit: String,
        source_name: String,
        external_kms: f64,
    },
    #[error(
        "the star looks RV-variable: barycentric velocities scatter by {scatter_kms:.2} km/s, \
         chi^2 = {chi2:.1} for {dof} degrees of freedom of a constant velocity; each visit is \
         combined at its own velocity"
    )]
    RvVariable {
        scatter_kms: f64,
        chi2: f64,
        dof: usize,
    },
    /// The combined spectrum's rest frame: the files' common zero point contradicted by the
    /// lines and replaced, or an absolute frame nothing verifies (`crate::velocity::frame_warning`).
    #[error("{0}")]
    RestFrame(String),
    #[error("{0}")]
    Other(String),
}

/// The chi^2/nu of a combination above which [`Warning::PoorFit`] is raised.
///
/// Chosen from the real stars (`tests/integration/multistar.rs`, forward model, default
/// settings, the pipeline's velocities): the four multi-visit DR13 stars of
/// `../shared/data/apogee_multistar` combined with their apStar's velocities give chi^2/nu 0.78,
/// 1.13, 1.04 and (`2M03442721+3220288` without its S/N 3.3 visit) 1.27; with it 41.4. A
/// combination with wrong errors or velocities lands far higher (issue 17: 25 for a 12-visit star with
/// header velocities off by hundreds of km/s). With ~10^4 pixels the statistical spread of
/// chi^2/nu is ~0.01, so what separates good from bad is the systematics floor of real data
/// (sky and telluric residuals, LSF mismatch), which stays below 1.3 on every good star seen:
/// 3 leaves more than twice that and still flags every bad case.
pub const POOR_FIT_CHI2_NU: f64 = 3.0;

/// A visit is named as an outlier when its leave-one-out chi^2/nu is above this ...
///
/// The good real stars' leave-one-out scores are 0.8-2.0 (every visit), so 5 is never reached
/// by a good visit; the S/N 3.3 visit of `2M03442721+3220288` scores 682.
pub const OUTLIER_LOO_CHI2_NU: f64 = 5.0;

/// ... and above this many times the median score of the included visits: one bad visit inflates
/// every other visit's score too (the good visits of `2M03442721+3220288` score 2-20, median 8.7,
/// beside it), and the factor keeps the ranking about the one that stands out.
pub const OUTLIER_LOO_FACTOR: f64 = 5.0;

fn poor_fit_text(
    chi2_nu: f64,
    outliers: &[(String, f64)],
    ranked: &[(String, f64)],
    loo: bool,
) -> String {
    let score = if loo {
        "leave-one-out chi2/nu"
    } else {
        "chi2/nu (leave-one-out scores to come)"
    };
    let list = |v: &[(String, f64)]| {
        v.iter()
            .map(|(n, x)| format!("{n} {x:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut s = format!("poor fit: chi2/nu {chi2_nu:.3}");
    if chi2_nu > POOR_FIT_CHI2_NU {
        s.push_str(&format!(
            " is far above what the data allow (about 1; warned above {POOR_FIT_CHI2_NU})"
        ));
    }
    if outliers.is_empty() {
        s.push_str(&format!(
            "; likely causes: wrong velocities (check the shift source), wrong errors or units, or \
             bad visits; highest {score}: {}",
            list(ranked)
        ));
    } else {
        s.push_str(&format!(
            "; {} visit(s) stand out by {score}: {} (likely a bad visit: low S/N, another star, a \
             wrong velocity; exclude it to see the others' fit); other likely causes: wrong \
             velocities, wrong errors or units; highest: {}",
            outliers.len(),
            list(outliers),
            list(ranked)
        ));
    }
    s
}

/// The [`Warning::PoorFit`] of a combination, if it deserves one: its chi^2/nu above
/// [`POOR_FIT_CHI2_NU`], or a visit's score above both [`OUTLIER_LOO_CHI2_NU`] and
/// [`OUTLIER_LOO_FACTOR`] times the median. The scores are the forward model's leave-one-out
/// chi^2/nu when they are known, else each visit's chi^2/nu (first stage); the standard-practice
/// result stands in when there is no forward model.
#[must_use]
pub fn fit_quality(c: &Combined) -> Option<Warning> {
    let r = c.forward.as_ref().or(c.standard.as_ref())?;
    let loo =
        c.forward.is_some() && !c.loo_pending && r.visits.iter().any(|v| v.loo_chi2_nu.is_finite());
    let (mut chi2, mut n) = (0.0, 0usize);
    let mut scores: Vec<(String, f64)> = Vec::new();
    for (k, (fit, used)) in r.visits.iter().zip(&c.visits).enumerate() {
        if !used.included || fit.n_used == 0 {
            continue;
        }
        chi2 += fit.chi2;
        n += fit.n_used;
        let score = if loo { fit.loo_chi2_nu } else { fit.chi2_nu };
        if score.is_finite() {
            let name = if used.name.is_empty() {
                format!("visit {}", k + 1)
            } else {
                used.name.clone()
            };
            scores.push((name, score));
        }
    }
    if n == 0 {
        return None;
    }
    let chi2_nu = chi2 / n as f64;
    scores.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut sorted: Vec<f64> = scores.iter().map(|s| s.1).collect();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
    let outliers: Vec<(String, f64)> = if scores.len() >= 3 {
        scores
            .iter()
            .filter(|s| s.1 > OUTLIER_LOO_CHI2_NU && s.1 > OUTLIER_LOO_FACTOR * median)
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    if !(chi2_nu > POOR_FIT_CHI2_NU) && outliers.is_empty() {
        return None;
    }
    Some(Warning::PoorFit {
        chi2_nu,
        outliers,
        ranked: scores.into_iter().take(3).collect(),
        loo,
    })
}

/// Replace the [`Warning::PoorFit`] of `c` by the one its current figures give.
fn refresh_fit_quality(c: &mut Combined) {
    c.warnings.retain(|w| !matches!(w, Warning::PoorFit { .. }));
    if let Some(w) = fit_quality(c) {
        c.warnings.push(w);
    }
}

/// One visit made ready for a method: rest-frame positions, fit values and weights.
#[derive(Clone, Debug)]
pub struct PreparedVisit {
    /// The visit itself.
    pub visit: Arc<Visit>,
    /// Index in the dataset.
    pub index: usize,
    /// Included in the combination.
    pub included: bool,
    /// Velocity used for the shift (km/s).
    pub v_kms: f64,
    /// Where `v_kms` came from (a [`crate::settings::ShiftSource`] label or "manual").
    pub v_source: String,
    /// Shift dx = ln(1 + v/c).
    pub dx: f64,
    /// Rest-frame ln(lambda) of every pixel: observed - dx.
    pub x_rest: Vec<f64>,
    /// Values to fit (flux as observed, or divided by S in divide mode).
    pub y: Vec<f64>,
    /// Weights (0 = excluded: bad pixel, masked bit, excluded visit, S too small).
    pub w: Vec<f64>,
    /// Model multiplier S per pixel (all 1 unless in multiply mode).
    pub s: Vec<f64>,
    /// True where the pixel is bad (mask bits, source bad flag, invalid values). Independent of
    /// inclusion and weights; frizzle-compatible censoring uses all pixels including these.
    pub masked: Vec<bool>,
    /// Inverse variance of `y` (before the visit weight multiplier and weighting scheme); used for
    /// chi^2. 0 where bad.
    pub ivar: Vec<f64>,
    /// Gaussian LSF sigma in ln(lambda) to convolve the model with for this visit (0 = none).
    pub lsf_sigma: f64,
    /// The visit's weight multiplier from the settings (already folded into `w`); standard
    /// practice, which does not use `w`, applies it to its average.
    pub weight: f64,
}

impl PreparedVisit {
    /// Number of pixels with positive weight.
    #[must_use]
    pub fn n_used(&self) -> usize {
        self.w.iter().filter(|&&w| w > 0.0).count()
    }
}

/// The input of every method.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Output grid.
    pub grid: OutputGrid,
    /// Every visit of the dataset, in order (excluded ones too, with `included = false`).
    pub visits: Vec<PreparedVisit>,
    /// Warnings raised while preparing.
    pub warnings: Vec<Warning>,
    /// The pixel policy's inflating bits (already applied to every `PreparedVisit::ivar`);
    /// standard practice undoes them before it interpolates and applies them to its output
    /// pixels, as the APOGEE pipeline does.
    pub inflate_bits: Vec<crate::model::pixel_policy::InflateBit>,
    /// The check of external velocities against the data's (`crate::velocity::check`), when
    /// the settings ask for it.
    pub velocity: Option<Arc<crate::velocity::VelocityCheck>>,
}

impl Prepared {
    /// The included visits.
    pub fn included(&self) -> impl Iterator<Item = &PreparedVisit> {
        self.visits.iter().filter(|v| v.included)
    }
}

/// What [`prepare`] does to one pixel's flux for the selection function S.
#[derive(Clone, Copy, Debug, PartialEq)]
enum SelectionStep {
    /// Nothing: ignore mode, or a flux already in the frame the mode compares in.
    Keep,
    /// Multiply mode on a flux the pipeline divided by S: undo the division so that the model
    /// times S faces the data as observed, y = flux S, sigma_y = sigma S.
    Times(f64),
    /// Divide mode on a flux not divided by S: y = flux / S, sigma_y = sigma / S.
    Over(f64),
    /// S too small (or not finite) to use: the pixel is masked.
    Unusable,
}

/// S as multiply mode uses it (the model's factor `PreparedVisit::s`): negative and non-finite
/// values become 0.
fn clamped_selection(si: f64) -> f64 {
    if si.is_finite() { si.max(0.0) } else { 0.0 }
}

/// The one rule for [`SelectionStep`], shared by [`prepare`] and [`file_frame_factor`].
fn selection_step(mode: SelectionMode, divided: bool, si: f64) -> SelectionStep {
    match mode {
        SelectionMode::Multiply if divided => {
            let si = clamped_selection(si);
            if si < MIN_SELECTION {
                SelectionStep::Unusable
            } else {
                SelectionStep::Times(si)
            }
        }
        SelectionMode::Divide if !divided => {
            if si.is_finite() && si >= MIN_SELECTION {
                SelectionStep::Over(si)
            } else {
                SelectionStep::Unusable
            }
        }
        _ => SelectionStep::Keep,
    }
}

/// Per pixel of `visit`, the factor `c` that takes the frame the fit compares in
/// ([`PreparedVisit::y`], and the predictions S f of [`VisitFit::prediction`]) to the frame of
/// the visit's own flux array: flux = c y and sigma = c sigma_y, as [`prepare`] converts them.
/// It is 1 unless `prepare` changed the flux for the selection function: 1/S in multiply mode on
/// a flux the pipeline divided by S (APOGEE's telluric-corrected FLUX), S in divide mode on a
/// flux it did not; NaN where the selection is too small to use (`prepare` masks the pixel).
/// A display of a visit beside its model draws the prediction times `c` over the file's flux.
#[must_use]
pub fn file_frame_factor(visit: &Visit, settings: &Settings) -> Vec<f64> {
    (0..visit.len())
        .map(|p| file_frame_factor_at(visit, settings, p))
        .collect()
}

/// [`file_frame_factor`] of pixel `p` alone (e.g. for a hover readout).
#[must_use]
pub fn file_frame_factor_at(visit: &Visit, settings: &Settings, p: usize) -> f64 {
    let Some(&si) = visit.selection().and_then(|sel| sel.get(p)) else {
        return 1.0;
    };
    match selection_step(settings.selection, visit.flux_divided_by_selection(), si) {
        SelectionStep::Keep => 1.0,
        SelectionStep::Times(si) => 1.0 / si,
        SelectionStep::Over(si) => si,
        SelectionStep::Unusable => f64::NAN,
    }
}

/// Build the rest-frame, weighted pixels for a dataset and settings.
pub fn prepare(data: &Dataset, settings: &Settings) -> Result<Prepared, CombineError> {
    settings.validate()?;
    if data.visits.is_empty() {
        return Err(CombineError::NoVisits);
    }
    let grid = settings.resolve_grid(data)?;
    let velocity = crate::velocity::check(data, settings).map(Arc::new);
    // Visits are independent: prepared in parallel, warnings kept in visit order.
    let (visits, per_visit_warnings): (Vec<_>, Vec<_>) = data
        .visits
        .par_iter()
        .enumerate()
        .map(|(index, visit)| {
            let mut w = Vec::new();
            let checked = velocity.as_ref().and_then(|c| c.visits.get(index));
            let pv = prepare_visit(index, visit, settings, checked, &mut w);
            (pv, w)
        })
        .unzip();
    // What reading found (visits a companion file does not list, visits of another object...)
    // comes first: it is known before any fit.
    let mut warnings: Vec<Warning> = data
        .load_warnings
        .iter()
        .map(|w| Warning::Other(w.clone()))
        .collect();
    warnings.extend(per_visit_warnings.into_iter().flatten());
    if let Some((external, rest)) = velocity.as_ref().and_then(|c| c.zero_point_replaced) {
        warnings.push(Warning::RestFrame(format!(
            "the files' velocities share a zero point {external:+.2} km/s that the spectra's own \
             lines contradict ({rest:+.2} km/s against the shipped laboratory reference): every \
             visit's velocity is off by {:.1} km/s; the rest frame of the lines is used",
            external - rest
        )));
    }
    if let Some(w) = velocity.as_deref().and_then(crate::velocity::frame_warning) {
        warnings.push(Warning::RestFrame(w));
    }
    if let Some(st) = velocity.as_ref().and_then(|c| c.star.as_ref())
        && st.rv_variable
    {
        warnings.push(Warning::RvVariable {
            scatter_kms: st.scatter_kms,
            chi2: st.chi2,
            dof: st.dof,
        });
    }
    let n_included = visits.iter().filter(|v| v.included).count();
    if n_included == 1 && data.visits.len() > 1 {
        warnings.push(Warning::SingleVisit);
    }
    let n_bc = visits
        .iter()
        .filter(|v| v.included && v.v_source == ShiftSource::MinusBc.label())
        .count();
    if n_bc > 1 && !settings.extensions.fit_shifts {
        warnings.push(Warning::StarVelocityUnknown { n: n_bc });
    }
    // Resampled visits: flagged by their reader (`VisitMeta::resampled`; apStar rows also carry
    // the card naming where they came from).
    let resampled: Vec<String> = visits
        .iter()
        .filter(|v| v.included)
        .filter_map(|v| {
            let card = v
                .visit
                .meta
                .header
                .iter()
                .find(|(k, _)| k == crate::model::RESAMPLED_CARD)
                .map(|(_, x)| x.clone());
            match card {
                Some(c) => Some(c),
                None if v.visit.meta.resampled => Some(v.visit.meta.name.clone()),
                None => None,
            }
        })
        .collect();
    if let Some(first) = resampled.first() {
        warnings.push(Warning::Resampled {
            n: resampled.len(),
            example: first.clone(),
        });
    }
    Ok(Prepared {
        grid,
        visits,
        warnings,
        inflate_bits: settings.inflate_bits.clone(),
        velocity,
    })
}

/// One visit, shifted by the velocity of the shift rule ([`crate::velocity::rule::choose`]);
/// `checked` is the velocity check's entry when the settings check external velocities.
fn prepare_visit(
    index: usize,
    visit: &Arc<Visit>,
    settings: &Settings,
    checked: Option<&crate::velocity::VisitVelocity>,
    warnings: &mut Vec<Warning>,
) -> PreparedVisit {
    use crate::velocity::rule::{VelocityChoice, choose};
    let vs = settings.visit(index);
    let name = visit.meta.name.clone();
    let (v_kms, v_source) = match choose(settings, index, &visit.meta, checked) {
        VelocityChoice::Manual(v) => (v, "manual".to_owned()),
        VelocityChoice::Checked(c) => {
            let source_name = settings.shift.label().to_owned();
            match (c.status, c.external_kms) {
                (crate::velocity::VelocityStatus::Measured, Some(e)) if c.replaced => {
                    warnings.push(Warning::VelocityReplaced {
                        visit: name.clone(),
                        source_name,
                        external_kms: e,
                        data_kms: c.data_kms,
                        err_kms: c.err_kms,
                    });
                }
                (crate::velocity::VelocityStatus::TooFaint, Some(e)) => {
                    warnings.push(Warning::VelocityUnchecked {
                        visit: name.clone(),
                        source_name,
                        external_kms: e,
                    });
                }
                (crate::velocity::VelocityStatus::TooFaint, None) => {
                    warnings.push(Warning::MissingVelocity {
                        visit: name.clone(),
                        source_name,
                    });
                }
                _ => {}
            }
            (c.used_kms, c.used_source.clone())
        }
        other @ (VelocityChoice::Source(_) | VelocityChoice::Missing) => match other.kms() {
            Some(v) => {
                // Survey files say which card or column gave the velocity.
                let kind = match settings.shift {
                    ShiftSource::ApStar => Some(crate::model::VelocityKind::ApStar),
                    ShiftSource::AllVisit => Some(crate::model::VelocityKind::AllVisit),
                    ShiftSource::MwmVisit => Some(crate::model::VelocityKind::MwmVisit),
                    _ => None,
                };
                let from = kind.and_then(|k| {
                    let card = format!("FV_V_{k:?}").to_ascii_uppercase();
                    visit.meta.header.iter().find(|(c, _)| *c == card)
                });
                match from {
                    Some((_, x)) => (v, format!("{}: {x}", settings.shift.label())),
                    None => (v, settings.shift.label().to_owned()),
                }
            }
            None => {
                warnings.push(Warning::MissingVelocity {
                    visit: name.clone(),
                    source_name: settings.shift.label().to_owned(),
                });
                (0.0, "missing".to_owned())
            }
        },
    };
    let dx = shift_from_velocity(v_kms);
    let n = visit.len();
    let x_rest = visit.ln_wave().iter().map(|x| x - dx).collect();
    let mut masked = vec![false; n];
    let mut y = visit.flux().to_vec();
    let mut ivar = visit.ivar().to_vec();
    let mut s = vec![1.0; n];
    let bad_bits = settings.bad_bits;
    for i in 0..n {
        masked[i] = visit.bad()[i] || (visit.flags()[i] & bad_bits) != 0 || ivar[i] <= 0.0;
    }
    // Pixel policy: inflating bits multiply sigma (divide ivar by the factor squared), for every
    // method alike (standard practice and the shift fit read this ivar too).
    if !settings.inflate_bits.is_empty() {
        for i in 0..n {
            if !masked[i] {
                let f = crate::model::pixel_policy::sigma_factor(
                    visit.flags()[i],
                    &settings.inflate_bits,
                );
                if f != 1.0 {
                    ivar[i] /= f * f;
                }
            }
        }
    }
    if visit.n_invalid() > 0 {
        warnings.push(Warning::InvalidPixels {
            visit: name.clone(),
            n: visit.n_invalid(),
        });
    }
    if let Some(sel) = visit.selection() {
        let divided = visit.flux_divided_by_selection();
        let mut n_tiny = 0;
        for i in 0..n {
            match selection_step(settings.selection, divided, sel[i]) {
                SelectionStep::Keep => {}
                SelectionStep::Times(si) => {
                    y[i] *= si;
                    ivar[i] /= si * si;
                }
                SelectionStep::Over(si) => {
                    y[i] /= si;
                    ivar[i] *= si * si;
                }
                SelectionStep::Unusable => {
                    masked[i] = true;
                    ivar[i] = 0.0;
                    if settings.selection == SelectionMode::Divide {
                        y[i] = 0.0;
                    }
                    n_tiny += 1;
                }
            }
            if settings.selection == SelectionMode::Multiply {
                s[i] = clamped_selection(sel[i]);
            }
        }
        if n_tiny > 0 {
            warnings.push(Warning::TinySelection {
                visit: name.clone(),
                n: n_tiny,
                min: MIN_SELECTION,
            });
        }
    }
    if settings.selection != SelectionMode::Ignore && visit.selection().is_none() {
        warnings.push(Warning::NoSelection {
            visit: name.clone(),
        });
    }
    for i in 0..n {
        if masked[i] {
            ivar[i] = 0.0;
        }
    }
    let included = vs.include && vs.weight > 0.0;
    let w = ivar
        .iter()
        .zip(&masked)
        .map(|(&iv, &m)| {
            if !included || m {
                0.0
            } else {
                match settings.weighting {
                    Weighting::InverseVariance => iv * vs.weight,
                    Weighting::Uniform => vs.weight,
                }
            }
        })
        .collect::<Vec<f64>>();
    let pv = PreparedVisit {
        visit: Arc::clone(visit),
        index,
        included,
        v_kms,
        v_source,
        dx,
        x_rest,
        y,
        w,
        s,
        masked,
        ivar,
        lsf_sigma: 0.0,
        weight: vs.weight,
    };
    if included && pv.n_used() == 0 {
        warnings.push(Warning::NoUsablePixels { visit: name });
    }
    pv
}

/// A continuous model that can be evaluated anywhere (the fitted f of the forward model).
pub trait SpectrumModel: Send + Sync + std::fmt::Debug {
    /// f at rest-frame ln(lambda) positions `x` (NaN outside the model's domain).
    fn eval(&self, x: &[f64]) -> Vec<f64>;
    /// df/dx at `x` (NaN outside the domain).
    fn eval_deriv(&self, x: &[f64]) -> Vec<f64>;
}

/// Per-visit diagnostics of a method.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VisitFit {
    /// The model's prediction at the visit's own pixels (S f(x - dx)); NaN where not defined.
    pub prediction: Vec<f64>,
    /// Sum of ivar (y - prediction)^2 over used pixels.
    pub chi2: f64,
    /// Number of pixels used.
    pub n_used: usize,
    /// chi^2 / n_used (NaN when no pixel).
    pub chi2_nu: f64,
    /// Robust weights per pixel in (0, 1] when robust reweighting ran (empty otherwise).
    pub robust_weight: Vec<f64>,
    /// Outlier score: fraction of the visit's used pixels down-weighted below 0.5.
    pub outlier_score: f64,
    /// Leave-one-visit-out prediction at the visit's pixels: the model fitted to the *other*
    /// visits (NaN where they do not constrain it). Empty when not computed.
    pub loo_prediction: Vec<f64>,
    /// chi^2 of the visit against `loo_prediction` (same pixels and ivar as `chi2`).
    pub loo_chi2: f64,
    /// Pixels in `loo_chi2`.
    pub loo_n_used: usize,
    /// `loo_chi2 / loo_n_used`: the leave-one-out outlier score (NaN when not computed).
    pub loo_chi2_nu: f64,
    /// Used pixels of the visit that the other visits leave unconstrained (not scored).
    pub loo_n_unconstrained: usize,
}

impl VisitFit {
    /// chi^2 of a visit against `prediction` (S f at its pixels; NaN = not predicted): over the
    /// pixels with positive weight for an included visit, over its good pixels for an excluded one,
    /// using the inverse variance of `y` (`PreparedVisit::ivar`) so that chi^2 does not depend on
    /// the weighting scheme or the visit's weight multiplier.
    #[must_use]
    pub fn from_prediction(v: &PreparedVisit, prediction: Vec<f64>) -> Self {
        let mut chi2 = 0.0;
        let mut n_used = 0;
        for i in 0..prediction.len() {
            let good = if v.included {
                v.w[i] > 0.0
            } else {
                !v.masked[i]
            };
            if good && v.ivar[i] > 0.0 && prediction[i].is_finite() {
                let r = v.y[i] - prediction[i];
                chi2 += v.ivar[i] * r * r;
                n_used += 1;
            }
        }
        Self {
            prediction,
            chi2,
            n_used,
            chi2_nu: if n_used > 0 {
                chi2 / n_used as f64
            } else {
                f64::NAN
            },
            robust_weight: Vec::new(),
            outlier_score: 0.0,
            loo_prediction: Vec::new(),
            loo_chi2: f64::NAN,
            loo_n_used: 0,
            loo_chi2_nu: f64::NAN,
            loo_n_unconstrained: 0,
        }
    }
}

/// What one method produced on the output grid.
#[derive(Clone, Debug, Default)]
pub struct MethodResult {
    /// Combined flux y* (NaN in no-data pixels).
    pub flux: Vec<f64>,
    /// Variance diag(C*) (NaN in no-data pixels).
    pub var: Vec<f64>,
    /// Covariance band: `band[k][l] = C*[l, l + k]` for k = 0..=K (NaN past the end).
    pub band: Vec<Vec<f64>>,
    /// Propagated pixel flags.
    pub flags: Vec<u64>,
    /// Output pixels with no data.
    pub no_data: Vec<bool>,
    /// Largest condition number of the linear systems solved (forward model).
    pub condition: Option<f64>,
    /// Per-visit diagnostics, aligned with the dataset's visits.
    pub visits: Vec<VisitFit>,
    /// The continuous model (forward model only).
    pub model: Option<Arc<dyn SpectrumModel>>,
    /// Fitted velocities and their errors (km/s) when shift fitting ran, per visit. The errors
    /// are relative to the zero point ([`Self::velocity_zero_point`]) and exclude its own error.
    pub fitted_velocity: Option<Vec<(f64, f64)>>,
    /// Output pixels with data that the data do not constrain (see [`constrained`]); drawn and
    /// exported like no-data pixels (NaN flux and variance). Empty when not evaluated.
    pub poorly_constrained: Vec<bool>,
    /// How the leave-one-visit-out scores in `visits` were computed, when not by this method's
    /// own basis (e.g. "local basis" for a Fourier-basis fit).
    pub loo_basis: Option<String>,
    /// What the fitted velocities are anchored to, with its own uncertainty (shift fitting only).
    pub velocity_zero_point: Option<VelocityZeroPoint>,
}

/// The zero point of fitted velocities: shifts fitted against a model made from the same visits
/// are only defined up to a common offset, so their mean is set to a reference.
#[derive(Clone, Debug, PartialEq)]
pub struct VelocityZeroPoint {
    /// What the velocities are anchored to, in words.
    pub name: String,
    /// Its value (km/s).
    pub v_kms: f64,
    /// Its 1-sigma uncertainty (km/s); NaN when it cannot be estimated (one visit). It is not part
    /// of the per-visit errors: add it in quadrature for an absolute velocity.
    pub err_kms: f64,
}

/// The outcome of [`combine`].
#[derive(Clone, Debug)]
pub struct Combined {
    /// The output grid.
    pub grid: OutputGrid,
    /// Forward model result (`None` when not asked for or failed).
    pub forward: Option<MethodResult>,
    /// Why the forward model failed, when it was asked for and did.
    pub forward_error: Option<CombineError>,
    /// Standard practice result (`None` when not asked for or failed).
    pub standard: Option<MethodResult>,
    /// Why standard practice failed, when it was asked for and did.
    pub standard_error: Option<CombineError>,
    /// Per-visit bookkeeping (velocity used, its source, inclusion, weight).
    pub visits: Vec<VisitUsed>,
    /// Everything worth telling the user.
    pub warnings: Vec<Warning>,
    /// The settings that produced this.
    pub settings: Settings,
    /// True in the first of the two results [`combine_staged`] delivers: the forward model's
    /// leave-one-visit-out scores (`VisitFit::loo_*`) are not filled in yet (NaN, empty).
    pub loo_pending: bool,
    /// The check of external velocities against the data's, when the settings asked for it.
    pub velocity: Option<Arc<crate::velocity::VelocityCheck>>,
}

/// What was used for each visit.
#[derive(Clone, Debug, PartialEq)]
pub struct VisitUsed {
    /// Display name.
    pub name: String,
    /// Velocity used (km/s).
    pub v_kms: f64,
    /// Its source.
    pub v_source: String,
    /// Included.
    pub included: bool,
    /// Weight multiplier.
    pub weight: f64,
    /// Pixels used.
    pub n_used: usize,
    /// Bad pixels (by mask bits and validity).
    pub n_bad: usize,
}

/// The memos the methods re-use between combinations: the local basis' kernel evaluations and
/// normal-equation sums, and standard practice's stencils and pieces. The engine owns one (so
/// the window's live recomputations re-use earlier work, and the teaching panel's engine does not
/// evict the main window's entries); [`combine`] makes a fresh one for one-shot use.
#[derive(Debug, Default)]
pub struct Caches {
    /// Local-basis kernel evaluations and sums.
    pub basis: local::BasisCache,
    /// Standard-practice stencils and pieces.
    pub standard: standard::StandardCache,
}

impl Caches {
    /// Empty caches with the default budgets.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held by all of them.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.basis.bytes() + self.standard.bytes()
    }

    /// Drop everything.
    pub fn clear(&self) {
        self.basis.clear();
        self.standard.clear();
    }
}

/// Run the methods the settings ask for, with fresh [`Caches`] (one-shot use: the command line,
/// tests); see [`combine_with`].
pub fn combine(
    data: &Dataset,
    settings: &Settings,
    cancel: &Cancel,
) -> Result<Combined, CombineError> {
    combine_with(data, settings, cancel, &Caches::new())
}

/// Run the methods the settings ask for, re-using `caches`.
///
/// Each method gives its own outcome: a method that fails leaves its result `None` and its error
/// in [`Combined::forward_error`] / [`Combined::standard_error`], and the other method's result
/// is kept. `Err` only when there is nothing to show: preparation failed, the request was
/// cancelled, or every method asked for failed (the single method's error; both errors in one
/// message when both failed).
pub fn combine_with(
    data: &Dataset,
    settings: &Settings,
    cancel: &Cancel,
    caches: &Caches,
) -> Result<Combined, CombineError> {
    combine_staged(data, settings, cancel, caches, &mut |_| {})
}

/// [`combine_with`] in two stages, for live use: `first` receives the combination as soon as
/// both methods are done, with the leave-one-visit-out scores still to come
/// ([`Combined::loo_pending`]); the complete result (scores filled in) is then returned. The
/// scores cost one banded factorisation per visit, many times the fit itself with tens of visits,
/// so a window shows the fit at once and a newer request can cancel the scoring. `first` is not
/// called when there is nothing to score (no forward-model result).
pub fn combine_staged(
    data: &Dataset,
    settings: &Settings,
    cancel: &Cancel,
    caches: &Caches,
    first: &mut dyn FnMut(&Combined),
) -> Result<Combined, CombineError> {
    let prep = prepare(data, settings)?;
    if prep.included().all(|v| v.n_used() == 0) {
        return Err(CombineError::NoUsablePixels);
    }
    let mut warnings = prep.warnings.clone();
    // The two methods run side by side: each is parallel inside, but both have serial parts
    // (the banded factorisation, the spline solves) that the other can overlap.
    let run_forward = || -> Result<(MethodOutcome, Vec<Warning>), CombineError> {
        let Some(fs) = &settings.forward else {
            return Ok(((None, None), Vec::new()));
        };
        let mut w = Vec::new();
        match extensions::fit_forward(&prep, fs, settings, cancel, &mut w, &caches.basis) {
            Ok(mut r) => {
                constrained::apply(&mut r);
                Ok(((Some(r), None), w))
            }
            Err(CombineError::Cancelled) => Err(CombineError::Cancelled),
            Err(e) => Ok(((None, Some(e)), w)),
        }
    };
    let run_standard = || -> Result<MethodOutcome, CombineError> {
        let Some(ss) = &settings.standard else {
            return Ok((None, None));
        };
        match standard::combine_standard_with_cache(
            &prep,
            ss,
            settings.band_lags,
            cancel,
            &caches.standard,
        ) {
            Ok(mut r) => {
                constrained::apply(&mut r);
                Ok((Some(r), None))
            }
            Err(CombineError::Cancelled) => Err(CombineError::Cancelled),
            Err(e) => Ok((None, Some(e))),
        }
    };
    let (f, st) = rayon::join(run_forward, run_standard);
    let ((forward, forward_error), forward_warnings) = f?;
    let (standard, standard_error) = st?;
    warnings.extend(forward_warnings);
    cancel.check()?;
    let failed_all = (settings.forward.is_some() || settings.standard.is_some())
        && forward.is_none()
        && standard.is_none();
    if failed_all {
        return Err(match (forward_error, standard_error) {
            (Some(f), Some(s)) => {
                CombineError::Other(format!("forward model: {f}; standard practice: {s}"))
            }
            (Some(e), None) | (None, Some(e)) => e,
            (None, None) => CombineError::Other("no method produced a result".into()),
        });
    }
    let visits = prep
        .visits
        .iter()
        .map(|v| VisitUsed {
            name: v.visit.meta.name.clone(),
            v_kms: v.v_kms,
            v_source: v.v_source.clone(),
            included: v.included,
            weight: settings.visit(v.index).weight,
            n_used: v.n_used(),
            n_bad: v.masked.iter().filter(|&&m| m).count(),
        })
        .collect();
    // Fitted shifts start from the checked velocities, whose zero point the check fixed (and
    // whose error it knows): the fit's own estimate assumes it started from the headers.
    let mut forward = forward;
    if let (Some(r), Some(vc)) = (forward.as_mut(), prep.velocity.as_ref())
        && let Some(z) = r.velocity_zero_point.as_mut()
    {
        z.err_kms = vc.zero_point.err_kms;
        z.name = format!("{}; zero point: {}", z.name, vc.zero_point.how);
    }
    let mut combined = Combined {
        grid: prep.grid.clone(),
        forward,
        forward_error,
        standard,
        standard_error,
        visits,
        warnings,
        settings: settings.clone(),
        loo_pending: false,
        velocity: prep.velocity.clone(),
    };
    if combined.forward.is_some() {
        combined.loo_pending = true;
        refresh_fit_quality(&mut combined);
        first(&combined);
        fill_leave_one_out(&prep, &mut combined, cancel, &caches.basis)?;
    }
    refresh_fit_quality(&mut combined);
    Ok(combined)
}

/// A method's result, or why it failed (the other method's result is kept either way).
type MethodOutcome = (Option<MethodResult>, Option<CombineError>);

/// Fill in the leave-one-visit-out scores of a result delivered with
/// [`Combined::loo_pending`] (e.g. exported before the second stage arrived): the same scores
/// [`combine_with`] computes, from its own dataset and settings. Does nothing when none are
/// pending.
pub fn complete_leave_one_out(
    data: &Dataset,
    combined: &mut Combined,
    cancel: &Cancel,
    caches: &Caches,
) -> Result<(), CombineError> {
    if !combined.loo_pending {
        return Ok(());
    }
    let prep = prepare(data, &combined.settings)?;
    fill_leave_one_out(&prep, combined, cancel, &caches.basis)?;
    refresh_fit_quality(combined);
    Ok(())
}

/// The second stage: the scores into the forward result. Their failure is a warning, never the
/// loss of the fit itself; only cancellation is an error.
fn fill_leave_one_out(
    prep: &Prepared,
    combined: &mut Combined,
    cancel: &Cancel,
    cache: &local::BasisCache,
) -> Result<(), CombineError> {
    let Combined {
        forward: Some(r),
        settings,
        warnings,
        ..
    } = combined
    else {
        combined.loo_pending = false;
        return Ok(());
    };
    match add_leave_one_out(prep, settings, r, cancel, cache) {
        Ok(()) => {}
        Err(CombineError::Cancelled) => return Err(CombineError::Cancelled),
        Err(e) => warnings.push(Warning::Other(format!("leave-one-out scores: {e}"))),
    }
    combined.loo_pending = false;
    Ok(())
}

/// Fill the leave-one-visit-out scores of a forward-model result.
///
/// Always by the local basis ([`local::leave_one_out`]): with it, removing a visit is a
/// subtraction of its cached normal-equation sums and one banded solve, cheap enough to run on
/// every live recomputation. For a Fourier-basis fit the same local-basis scores are used (and
/// `loo_basis` says so): an exact Fourier refit would cost one full solve per visit, and the two
/// bases fit the same pixels with nearly the same function space (0.13-0.19 sigma RMS apart on
/// the paper's test data), which is all a ranking of visits by misfit needs. The scores use the
/// prepared pixels of the combination (header or manual shifts, the pixel mask and weights), not
/// the reweighted or shifted ones of extension rounds. Excluded visits are already predicted out
/// of sample by the full fit: their score is their chi^2 against it.
fn add_leave_one_out(
    prep: &Prepared,
    settings: &Settings,
    r: &mut MethodResult,
    cancel: &Cancel,
    cache: &local::BasisCache,
) -> Result<(), CombineError> {
    let fourier = settings
        .forward
        .as_ref()
        .is_some_and(|fs| fs.basis == crate::settings::Basis::Fourier);
    let loo = local::leave_one_out(prep, cache, &local::LocalOptions::default(), cancel)?;
    for (fit, l) in r.visits.iter_mut().zip(loo) {
        match l {
            Some(l) => {
                fit.loo_prediction = l.prediction;
                fit.loo_chi2 = l.chi2;
                fit.loo_n_used = l.n_used;
                fit.loo_chi2_nu = l.chi2_nu;
                fit.loo_n_unconstrained = l.n_unconstrained;
            }
            None => {
                fit.loo_prediction.clone_from(&fit.prediction);
                fit.loo_chi2 = fit.chi2;
                fit.loo_n_used = fit.n_used;
                fit.loo_chi2_nu = fit.chi2_nu;
            }
        }
    }
    if fourier {
        r.loo_basis = Some("local basis".into());
    }
    Ok(())
}

/// Fit the plain forward model (no extensions) with the basis the settings ask for.
pub fn fit_forward_plain(
    prep: &Prepared,
    fs: &crate::settings::ForwardSettings,
    lags: usize,
    cancel: &Cancel,
    warnings: &mut Vec<Warning>,
) -> Result<MethodResult, CombineError> {
    match fs.basis {
        crate::settings::Basis::Fourier => fourier::fit(prep, fs, lags, cancel, warnings),
        crate::settings::Basis::Local => local::fit(prep, fs, lags, cancel, warnings),
    }
}

/// Per-visit predictions S f(x - dx) at the visit's own pixels and chi^2 against the data.
///
/// chi^2 uses the inverse variance of `y` (`PreparedVisit::ivar`) over the pixels with positive
/// weight, so it does not depend on the weighting scheme or visit weight multipliers. Excluded
/// visits get predictions too (useful to see how they disagree) with chi^2 over their good pixels.
#[must_use]
pub fn visit_fits(prep: &Prepared, model: &dyn SpectrumModel) -> Vec<VisitFit> {
    use rayon::prelude::*;
    prep.visits
        .par_iter()
        .map(|v| {
            let f = model.eval(&v.x_rest);
            let prediction = f.iter().zip(&v.s).map(|(f, s)| f * s).collect();
            VisitFit::from_prediction(v, prediction)
        })
        .collect()
}
