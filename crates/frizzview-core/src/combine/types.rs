//! The types every method and the pipeline share: the cancellation flag, the error, the
//! prepared input ([`Prepared`]), a method's output ([`MethodResult`], [`VisitFit`]) and the
//! outcome of a combination ([`Combined`]).

use std::sync::Arc;

pub use crate::cancel::Cancel;
use crate::cancel::Cancelled;

use super::warning::Warning;
use crate::model::OutputGrid;
use crate::model::Visit;
use crate::settings::{Settings, SettingsError};

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
    /// Output pixels with data that the data do not constrain (see [`crate::combine::constrained`]); drawn and
    /// exported like no-data pixels (NaN flux and variance). Empty when not evaluated.
    pub poorly_constrained: Vec<bool>,
    /// How the leave-one-visit-out scores in `visits` were computed, when not by this method's
    /// own basis (e.g. "local basis" for a Fourier-basis fit).
    pub loo_basis: Option<String>,
    /// What the fitted velocities are anchored to, with its own uncertainty (shift fitting only).
    pub velocity_zero_point: Option<VelocityZeroPoint>,
}

impl MethodResult {
    /// A result from its output-grid arrays, per-visit fits and continuous model; the other
    /// fields at their defaults (no condition number, fitted velocities or constraint flags yet).
    #[must_use]
    pub fn new(
        flux: Vec<f64>,
        var: Vec<f64>,
        band: Vec<Vec<f64>>,
        flags: Vec<u64>,
        no_data: Vec<bool>,
        visits: Vec<VisitFit>,
        model: Option<Arc<dyn SpectrumModel>>,
    ) -> Self {
        Self {
            flux,
            var,
            band,
            flags,
            no_data,
            visits,
            model,
            ..Self::default()
        }
    }
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

/// The outcome of [`crate::combine::combine`].
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
    /// Every further registered method (`crate::combine::METHODS`) that ran, in registration
    /// order, named: the two built-in ones keep their own fields above.
    pub others: Vec<MethodOutcome>,
    /// Per-visit bookkeeping (velocity used, its source, inclusion, weight).
    pub visits: Vec<VisitUsed>,
    /// Everything worth telling the user.
    pub warnings: Vec<Warning>,
    /// The settings that produced this.
    pub settings: Settings,
    /// True in the first of the two results [`crate::combine::combine_staged`] delivers: the forward model's
    /// leave-one-visit-out scores (`VisitFit::loo_*`) are not filled in yet (NaN, empty).
    pub loo_pending: bool,
    /// The check of external velocities against the data's, when the settings asked for it.
    pub velocity: Option<Arc<crate::velocity::VelocityCheck>>,
}

/// What a method says about itself: its name (the key of [`Combined::result`], the Python
/// package's dict key), its label in words (messages) and the prefix of its export keys (`.npz`
/// arrays, CSV columns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodInfo {
    /// Short name, e.g. "forward".
    pub name: &'static str,
    /// In words, e.g. "forward model".
    pub label: &'static str,
    /// Prefix of its export keys, e.g. "" or "standard_".
    pub export_prefix: &'static str,
}

/// The forward model's [`MethodInfo`]: its outcome lives in [`Combined::forward`].
pub const FORWARD: MethodInfo = MethodInfo {
    name: "forward",
    label: "forward model",
    export_prefix: "",
};

/// Standard practice's [`MethodInfo`]: its outcome lives in [`Combined::standard`].
pub const STANDARD: MethodInfo = MethodInfo {
    name: "standard",
    label: "standard practice",
    export_prefix: "standard_",
};

/// The outcome of a method other than the two built-in ones ([`Combined::others`]).
#[derive(Clone, Debug)]
pub struct MethodOutcome {
    /// Which method.
    pub info: MethodInfo,
    /// Its result (`None` when it failed).
    pub result: Option<MethodResult>,
    /// Why it failed, when it did.
    pub error: Option<CombineError>,
}

impl Combined {
    /// Store a method's outcome where it belongs: the built-in methods' fields, or
    /// [`Self::others`].
    pub fn set_outcome(
        &mut self,
        info: MethodInfo,
        result: Option<MethodResult>,
        error: Option<CombineError>,
    ) {
        if info.name == FORWARD.name {
            self.forward = result;
            self.forward_error = error;
        } else if info.name == STANDARD.name {
            self.standard = result;
            self.standard_error = error;
        } else {
            self.others.retain(|o| o.info.name != info.name);
            self.others.push(MethodOutcome {
                info,
                result,
                error,
            });
        }
    }

    /// The result of the method named `name`, if it ran and succeeded.
    #[must_use]
    pub fn result(&self, name: &str) -> Option<&MethodResult> {
        self.results()
            .into_iter()
            .find(|(i, _)| i.name == name)
            .map(|(_, r)| r)
    }

    /// The result of the method named `name`, mutable (the leave-one-out stage fills its
    /// scores in).
    pub fn result_mut(&mut self, name: &str) -> Option<&mut MethodResult> {
        if name == FORWARD.name {
            self.forward.as_mut()
        } else if name == STANDARD.name {
            self.standard.as_mut()
        } else {
            self.others
                .iter_mut()
                .find(|o| o.info.name == name)
                .and_then(|o| o.result.as_mut())
        }
    }

    /// Every method's result, named, in registration order (the forward model, standard
    /// practice, then the others); methods that did not run or failed are left out.
    #[must_use]
    pub fn results(&self) -> Vec<(MethodInfo, &MethodResult)> {
        let mut out = Vec::new();
        if let Some(r) = &self.forward {
            out.push((FORWARD, r));
        }
        if let Some(r) = &self.standard {
            out.push((STANDARD, r));
        }
        for o in &self.others {
            if let Some(r) = &o.result {
                out.push((o.info, r));
            }
        }
        out
    }
}

impl From<Cancelled> for CombineError {
    fn from(_: Cancelled) -> Self {
        Self::Cancelled
    }
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
