//! The forward model with its extensions: the rounds of refits (shifts, robust weights,
//! normalization, LSF) until they settle.

use super::lsf;
use super::normalize::{self, legendre, legendre_domain};
use super::robust::robust_weight;
use super::shifts;
use crate::combine::forward::fit_forward_plain;
use crate::combine::local;
use crate::combine::types::{
    Cancel, CombineError, MethodResult, Prepared, PreparedVisit, SpectrumModel, VelocityZeroPoint,
};
use crate::combine::warning::Warning;
use crate::model::{C_KMS, velocity_from_shift};
use crate::settings::{Extensions, ForwardSettings, LsfMode, Settings, ShiftFitModel};

/// How far (km/s) a fitted velocity may move from a starting velocity that the data's own
/// velocity search measured (`crate::velocity`, accurate to a fraction of a km/s on real stars):
/// the shift fit refines, it never wanders off. Measured need: on the real 16-visit star
/// 2M03442721+3220288 the unconstrained alternation drifted by 8-17 km/s (relative velocities
/// compressed towards each other, the S/N 3.3 visit off by 57 km/s), from starts within 1.3 km/s
/// of the pipeline's.
pub const TRUST_KMS: f64 = 3.0;

/// Most alternation rounds (solves) before stopping with a warning.
pub const MAX_ROUNDS: usize = 40;

/// Shift fitting has converged when no velocity changed by more than this (km/s) in a round.
pub const SHIFT_TOL_KMS: f64 = 1e-3;

/// Normalization has converged when no visit's prediction changed by more than this RMS, in
/// units of its noise sigma, in a round.
pub const NORM_TOL: f64 = 1e-3;

/// Robust reweighting has converged when no weight changed by more than this in a round.
///
/// A weight change of 1% on one pixel moves the result by far less than its sigma; tighter
/// tolerances mostly chase the slow tail of Huber's fixed point (each round is a full solve).
pub const WEIGHT_TOL: f64 = 1e-2;

/// Output pixels at each end of the grid left out of the per-visit refits (shift, normalization).
///
///
/// Every basis is truncated at the grid ends (local basis functions beyond the edge do not exist;
/// the Fourier basis wraps), so the model is least faithful there. Measured with a cubic-spline
/// basis on noise-free data: shift errors of 0.07-0.16 km/s with the edge pixels, 0.001 without.
pub const EDGE_GUARD_PIXELS: f64 = 4.0;

/// Beyond the guard, the refit weights rise smoothly from 0 to 1 over this many output pixels.
///
/// A hard cut makes chi^2(dx) jump when a pixel crosses it, and the alternation can then cycle
/// between two shifts (measured: a 2-cycle of 0.004 km/s with the local basis).
pub const EDGE_TAPER_PIXELS: f64 = 4.0;

/// Weight factor of a pixel at rest-frame `x` for the per-visit refits: 0 within the guard of
/// either grid end, a smoothstep over the taper, 1 inside.
fn edge_taper(x: f64, grid_lo: f64, grid_hi: f64, step: f64) -> f64 {
    let d_px = (x - grid_lo).min(grid_hi - x) / step;
    let t = ((d_px - EDGE_GUARD_PIXELS) / EDGE_TAPER_PIXELS).clamp(0.0, 1.0);
    if t.is_nan() {
        0.0
    } else {
        t * t * (3.0 - 2.0 * t)
    }
}

/// Robust reweighting also counts as converged when the combined spectrum moved by less than
/// this many of its sigmas in a round while only weights were still changing. IRLS converges
/// slowly where a pixel has high leverage (near chip gaps and grid ends the model there rests on
/// few pixels): measured on the synthetic APOGEE star with sky lines, persistence and outliers,
/// weights still moved by 0.012 per round after 40 rounds while the result moved by 0.03 sigma.
pub const RESULT_TOL: f64 = 5e-2;

/// Largest |new - old| / sigma over the output pixels where both are finite.
fn max_change_in_sigma(old: &[f64], new: &[f64], var: &[f64]) -> f64 {
    old.iter()
        .zip(new)
        .zip(var)
        .map(|((a, b), v)| (a - b).abs() / v.sqrt())
        .filter(|d| d.is_finite())
        .fold(0.0, f64::max)
}

/// A plain forward-model solver: the basis-specific part the extensions wrap.
pub type Solver<'a> =
    dyn Fn(&Prepared, &Cancel, &mut Vec<Warning>) -> Result<MethodResult, CombineError> + 'a;

/// The forward model with whatever extensions the settings switch on; the local basis re-uses
/// (and fills) `basis_cache`.
pub fn fit_forward(
    prep: &Prepared,
    fs: &ForwardSettings,
    settings: &Settings,
    cancel: &Cancel,
    warnings: &mut Vec<Warning>,
    basis_cache: &local::BasisCache,
) -> Result<MethodResult, CombineError> {
    if settings.extensions.lsf != LsfMode::Off && !fs.basis.supports_lsf() {
        return Err(CombineError::Other(
            "LSF convolution needs the local basis".into(),
        ));
    }
    if settings.extensions.lsf == LsfMode::FromVisits {
        lsf::check_widths(prep)?;
    }
    let model_weight = if settings.extensions.fit_shifts {
        shift_model_weights(
            prep,
            settings.velocity.shift_fit_model,
            basis_cache,
            cancel,
            warnings,
        )?
    } else {
        Vec::new()
    };
    let ext = &settings.extensions;
    if fs.basis.is_local() {
        // Rounds that change only weights or normalizations re-use the kernel evaluations.
        let cache = basis_cache;
        let solve = |p: &Prepared, c: &Cancel, w: &mut Vec<Warning>| {
            local::fit_with_cache(p, fs, settings.band_lags, c, w, cache)
        };
        let r = fit_with_model(prep, ext, &model_weight, &solve, cancel, warnings);
        return r.map(|r| with_floor(r, settings.velocity.floor_kms));
    }
    let solve = |p: &Prepared, c: &Cancel, w: &mut Vec<Warning>| {
        fit_forward_plain(p, fs, settings.band_lags, c, w)
    };
    fit_with_model(prep, ext, &model_weight, &solve, cancel, warnings)
        .map(|r| with_floor(r, settings.velocity.floor_kms))
}

/// Per visit, the factor on its weights in the model the shifts are fitted against (empty: 1
/// for every visit). The visits the leave-one-out scores of the prepared data name as outliers
/// (`quality::outlier_visits`, the rule of the poor-fit warning) get 0 (left out) with
/// [`ShiftFitModel::WithoutOutliers`], 1 / their leave-one-out chi^2/nu with
/// [`ShiftFitModel::OutliersScaled`]; each is named in a warning.
///
/// Why: alternating a full solve with per-visit shift fits minimises one joint chi^2, so a visit
/// whose stated errors are far too small for its residuals (the data say it does not fit) weighs
/// in the model far beyond its information and pulls the shifts of the visits that share its
/// pixels. The scores are those the second stage of the combination reports (the local basis,
/// the prepared pixels at the starting shifts: `methods::forward::ForwardModel::leave_one_out`),
/// so the visits left out here are the ones the warning names.
fn shift_model_weights(
    prep: &Prepared,
    how: ShiftFitModel,
    basis_cache: &local::BasisCache,
    cancel: &Cancel,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<f64>, CombineError> {
    if how == ShiftFitModel::AllVisits || prep.included().count() < 3 {
        return Ok(Vec::new());
    }
    let loo = match local::leave_one_out(prep, basis_cache, &local::LocalOptions::default(), cancel)
    {
        Ok(l) => l,
        Err(CombineError::Cancelled) => return Err(CombineError::Cancelled),
        Err(e) => {
            warnings.push(Warning::Other(format!(
                "the shift fit could not score the visits ({e}); every included visit is in the \
                 model the shifts are fitted against"
            )));
            return Ok(Vec::new());
        }
    };
    let scores: Vec<f64> = prep
        .visits
        .iter()
        .zip(&loo)
        .map(|(v, l)| match l {
            Some(l) if v.included && v.n_used() > 0 => l.chi2_nu,
            _ => f64::NAN,
        })
        .collect();
    let flagged = crate::combine::quality::outlier_visits(&scores);
    if !flagged.iter().any(|&f| f) {
        return Ok(Vec::new());
    }
    let mut finite: Vec<f64> = scores.iter().copied().filter(|s| s.is_finite()).collect();
    finite.sort_by(f64::total_cmp);
    let median = finite.get(finite.len() / 2).copied().unwrap_or(f64::NAN);
    let mut weight = vec![1.0; prep.visits.len()];
    for (i, &f) in flagged.iter().enumerate() {
        if !f {
            continue;
        }
        let name = &prep.visits[i].visit.meta.name;
        let score = scores[i];
        let what = if how == ShiftFitModel::OutliersScaled {
            weight[i] = 1.0 / score;
            format!("its weight divided by {score:.1} in")
        } else {
            weight[i] = 0.0;
            "left out of".to_owned()
        };
        warnings.push(Warning::Other(format!(
            "visit {name}: leave-one-out chi^2/nu {score:.1} (median of the visits {median:.1}); \
             {what} the model the shifts are fitted against, its own shift fitted against the \
             other visits (the combined spectrum still uses it)"
        )));
    }
    Ok(weight)
}

/// The systematic velocity floor (`VelocitySettings::floor_kms`) added in quadrature to every
/// fitted velocity's stated error.
fn with_floor(mut r: MethodResult, floor_kms: f64) -> MethodResult {
    if floor_kms > 0.0
        && let Some(fv) = r.fitted_velocity.as_mut()
    {
        for (_, e) in fv.iter_mut() {
            *e = (*e * *e + floor_kms * floor_kms).sqrt();
        }
    }
    r
}

/// True when any extension is switched on.
#[must_use]
pub fn any_active(ext: &Extensions) -> bool {
    ext.fit_shifts
        || ext.robust.is_some()
        || ext.normalization_degree.is_some()
        || ext.lsf != LsfMode::Off
}

/// Run the extensions around a plain solver (see the module docs for the alternation).
///
/// Returns the last solve's result with, per visit, `robust_weight` and `outlier_score` filled
/// when reweighting ran, and `fitted_velocity` (km/s, error km/s) when shifts were fitted.
pub fn fit_with(
    prep: &Prepared,
    ext: &Extensions,
    solve: &Solver<'_>,
    cancel: &Cancel,
    warnings: &mut Vec<Warning>,
) -> Result<MethodResult, CombineError> {
    fit_with_model(prep, ext, &[], solve, cancel, warnings)
}

/// [`fit_with`] with, per visit, a factor on its weights in the model of the refit rounds
/// (`model_weight`; empty = 1 for every visit): 0 leaves the visit out of that model (its shift,
/// normalization and robust weights are still fitted, against the others) and out of the
/// shifts' zero point (the gauge's anchor); the last solve, the one returned, uses every
/// included visit with its own weights.
pub fn fit_with_model(
    prep: &Prepared,
    ext: &Extensions,
    model_weight: &[f64],
    solve: &Solver<'_>,
    cancel: &Cancel,
    warnings: &mut Vec<Warning>,
) -> Result<MethodResult, CombineError> {
    if !any_active(ext) {
        return solve(prep, cancel, warnings);
    }
    let mut state = State::new(prep, ext, warnings);
    if model_weight.len() == prep.visits.len() {
        state.model_weight = model_weight.to_vec();
    }
    let mut work = prep.clone();
    let iterative = ext.fit_shifts || ext.robust.is_some() || ext.normalization_degree.is_some();
    let mut round = 0;
    let mut converged = !iterative;
    let mut previous_flux: Option<Vec<f64>> = None;
    loop {
        cancel.check()?;
        let last = converged || round >= MAX_ROUNDS;
        state.apply(prep, &mut work, last);
        let mut round_warnings = Vec::new();
        let mut res = solve(&work, cancel, &mut round_warnings)?;
        if last {
            if !converged {
                warnings.push(Warning::Other(format!(
                    "extensions did not converge in {MAX_ROUNDS} rounds (last change: {})",
                    state.last_change
                )));
            }
            warnings.extend(round_warnings);
            for (i, &h) in state.held.iter().enumerate() {
                if h {
                    warnings.push(Warning::Other(format!(
                        "visit {}: the shift fit pulled its velocity more than {TRUST_KMS} km/s \
                         from the data's; held there",
                        prep.visits[i].visit.meta.name
                    )));
                }
            }
            state.finish(&work, &mut res);
            return Ok(res);
        }
        let Some(model) = res.model.clone() else {
            return Err(CombineError::Other(
                "the solver returned no continuous model to refine shifts, weights or normalizations against"
                    .into(),
            ));
        };
        let result_change = previous_flux.as_deref().map_or(f64::INFINITY, |prev| {
            max_change_in_sigma(prev, &res.flux, &res.var)
        });
        converged = state.update(prep, &work, model.as_ref(), &res.band, cancel)?
            || (state.only_weights_unsettled && result_change < RESULT_TOL);
        previous_flux = Some(res.flux);
        round += 1;
    }
}

/// Errors of anchored shifts: with the gauge "mean of the N included fitted shifts = mean header
/// shift", a fitted shift's error relative to the anchor is e_i - mean(e) for an included visit
/// (variance sigma_i^2 (1 - 2/N) + sum sigma_j^2 / N^2) and e_i - mean(e) with e_i independent of
/// the mean for an excluded one (sigma_i^2 + sum sigma_j^2 / N^2).
#[must_use]
pub fn anchored_errors(sigma: &[f64], in_anchor: &[bool]) -> Vec<f64> {
    let n = in_anchor.iter().filter(|&&a| a).count() as f64;
    if n == 0.0 {
        return sigma.to_vec();
    }
    let sum_sq: f64 = sigma
        .iter()
        .zip(in_anchor)
        .filter(|(_, a)| **a)
        .map(|(s, _)| s * s)
        .sum();
    sigma
        .iter()
        .zip(in_anchor)
        .map(|(&s, &a)| {
            let own = if a { s * s * (1.0 - 2.0 / n) } else { s * s };
            // (f64::max would turn a NaN, "not fitted", into 0.)
            let var = own + sum_sq / (n * n);
            if var.is_nan() {
                f64::NAN
            } else {
                var.max(0.0).sqrt()
            }
        })
        .collect()
}

/// The parameters the extensions adjust, per visit.
struct State {
    fit_shifts: bool,
    robust: Option<crate::settings::Robust>,
    degree: Option<usize>,
    /// Current shifts (ln lambda).
    dx: Vec<f64>,
    /// Conditional shift uncertainties (ln lambda), NaN when not fitted.
    sigma_dx: Vec<f64>,
    /// Per visit, the shift's response to model errors at each output pixel (see
    /// `shifts::ShiftFit::template_sensitivity`); empty when unknown.
    template_sensitivity: Vec<Vec<f64>>,
    /// Shifts from the prepared data (headers or manual).
    dx_header: Vec<f64>,
    /// When the starting shifts are the data's own (the velocity check ran), how far (ln lambda)
    /// a fitted shift may move from its start: [`TRUST_KMS`].
    trust_dx: Option<f64>,
    /// Visits held at the trust region's edge in the last round.
    held: Vec<bool>,
    /// Per visit, the factor on its weights in the model of the refit rounds (0: left out of
    /// it and of the shifts' anchor); see [`fit_with_model`].
    model_weight: Vec<f64>,
    /// Robust weights per pixel.
    rw: Vec<Vec<f64>>,
    /// Legendre basis per pixel (L_0..L_D), per visit; empty when normalization is off.
    legendre: Vec<Vec<Vec<f64>>>,
    /// Polynomial coefficients per visit.
    coef: Vec<Vec<f64>>,
    /// LSF difference-kernel sigma per visit (ln lambda).
    lsf_sigma: Vec<f64>,
    /// Output grid spacing (ln lambda).
    step: f64,
    /// The output grid's ends (ln lambda), for the refits' edge taper.
    grid_ends: (f64, f64),
    /// Description of the last round's largest changes, for the non-convergence warning.
    last_change: String,
    /// In the last round, shifts and normalizations had converged and only robust weights had not.
    only_weights_unsettled: bool,
}

impl State {
    fn new(prep: &Prepared, ext: &Extensions, warnings: &mut Vec<Warning>) -> Self {
        let n = prep.visits.len();
        let lsf_sigma = if ext.lsf == LsfMode::FromVisits {
            lsf::difference_sigmas(&prep.visits, warnings)
        } else {
            vec![0.0; n]
        };
        let (legendre, coef) = match ext.normalization_degree {
            Some(deg) => {
                let basis = prep
                    .visits
                    .iter()
                    .map(|v| {
                        let (c, h) = legendre_domain(v.visit.ln_wave());
                        v.visit
                            .ln_wave()
                            .iter()
                            .map(|x| legendre(deg, (x - c) / h))
                            .collect()
                    })
                    .collect();
                let mut e0 = vec![0.0; deg + 1];
                e0[0] = 1.0;
                (basis, vec![e0; n])
            }
            None => (Vec::new(), Vec::new()),
        };
        Self {
            fit_shifts: ext.fit_shifts,
            robust: ext.robust,
            degree: ext.normalization_degree,
            dx: prep.visits.iter().map(|v| v.dx).collect(),
            sigma_dx: vec![f64::NAN; n],
            template_sensitivity: vec![Vec::new(); n],
            dx_header: prep.visits.iter().map(|v| v.dx).collect(),
            trust_dx: prep.velocity.as_ref().map(|_| (TRUST_KMS / C_KMS).ln_1p()),
            held: vec![false; n],
            model_weight: vec![1.0; n],
            rw: prep.visits.iter().map(|v| vec![1.0; v.y.len()]).collect(),
            legendre,
            coef,
            lsf_sigma,
            step: prep.grid.mean_step().abs(),
            grid_ends: match (prep.grid.ln_wave.first(), prep.grid.ln_wave.last()) {
                (Some(lo), Some(hi)) => (*lo, *hi),
                _ => (f64::NAN, f64::NAN),
            },
            last_change: String::new(),
            only_weights_unsettled: false,
        }
    }

    /// Edge taper of the refit weights at rest-frame `x`.
    fn taper(&self, x: f64) -> f64 {
        edge_taper(x, self.grid_ends.0, self.grid_ends.1, self.step)
    }

    /// The normalization polynomial of visit `i` at its pixels (all 1 when off).
    fn poly(&self, i: usize, len: usize) -> Vec<f64> {
        match (self.legendre.get(i), self.coef.get(i)) {
            (Some(basis), Some(c)) => basis
                .iter()
                .map(|l| l.iter().zip(c).map(|(a, b)| a * b).sum())
                .collect(),
            _ => vec![1.0; len],
        }
    }

    /// Whether visit `i` sets the shifts' zero point: included, and not left out of the model
    /// of the refit rounds.
    fn anchors(&self, work: &Prepared, i: usize) -> bool {
        work.visits[i].included && self.model_weight[i] > 0.0
    }

    /// Write the current parameters into the working copy of the prepared data; the model
    /// weights of [`fit_with_model`] apply except in the `last` solve.
    fn apply(&self, prep: &Prepared, work: &mut Prepared, last: bool) {
        for (i, (base, out)) in prep.visits.iter().zip(work.visits.iter_mut()).enumerate() {
            out.dx = self.dx[i];
            out.v_kms = velocity_from_shift(self.dx[i]);
            for (xr, xo) in out.x_rest.iter_mut().zip(base.visit.ln_wave()) {
                *xr = xo - self.dx[i];
            }
            let mw = if last { 1.0 } else { self.model_weight[i] };
            out.included = base.included && mw > 0.0;
            for ((w, bw), rw) in out.w.iter_mut().zip(&base.w).zip(&self.rw[i]) {
                *w = bw * rw * mw;
            }
            let poly = self.poly(i, base.s.len());
            for ((s, bs), p) in out.s.iter_mut().zip(&base.s).zip(&poly) {
                *s = bs * p;
            }
            set_lsf_sigma(out, self.lsf_sigma[i]);
        }
    }

    /// Likelihood weights of visit `i` for the per-visit fits: ivar times robust weight on its
    /// good pixels, tapered to 0 at the grid ends. Excluded visits are fitted too (against the model they
    /// do not shape).
    fn likelihood_weights(&self, work: &Prepared, i: usize) -> Vec<f64> {
        let v = &work.visits[i];
        let x_obs = v.visit.ln_wave();
        (0..v.y.len())
            .map(|k| {
                if !v.masked[k] && v.ivar[k] > 0.0 {
                    v.ivar[k] * self.rw[i][k] * self.taper(x_obs[k] - self.dx[i])
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// One round of per-visit updates against a fixed model; returns whether all converged.
    fn update(
        &mut self,
        prep: &Prepared,
        work: &Prepared,
        model: &dyn SpectrumModel,
        template_band: &[Vec<f64>],
        cancel: &Cancel,
    ) -> Result<bool, CombineError> {
        let mut converged = true;
        let mut notes = Vec::new();
        self.only_weights_unsettled = false;
        if self.fit_shifts {
            let max_dv = self.update_shifts(work, model, template_band);
            converged &= max_dv < SHIFT_TOL_KMS;
            notes.push(format!("velocity {max_dv:.2e} km/s"));
        }
        cancel.check()?;
        // The model at the (new) shifts, once for both linear updates.
        let base = if self.degree.is_some() || self.robust.is_some() {
            self.base_predictions(prep, model)
        } else {
            Vec::new()
        };
        if self.degree.is_some() {
            let max_norm = self.update_normalization(work, &base);
            converged &= max_norm < NORM_TOL;
            notes.push(format!("normalization {max_norm:.2e} sigma"));
        }
        cancel.check()?;
        if let Some(kind) = self.robust {
            let max_w = self.update_robust(work, &base, kind);
            self.only_weights_unsettled = converged && max_w >= WEIGHT_TOL;
            converged &= max_w < WEIGHT_TOL;
            notes.push(format!("robust weight {max_w:.2e}"));
        }
        self.last_change = notes.join(", ");
        Ok(converged)
    }

    /// Predictions and chi^2 of the visits with an LSF kernel, from the convolved model (the
    /// plain `visit_fits` evaluates the model unconvolved). Same pixel rules as `visit_fits`.
    fn convolved_visit_fits(
        &self,
        work: &Prepared,
        model: &dyn SpectrumModel,
        res: &mut MethodResult,
    ) {
        for (i, fit) in res.visits.iter_mut().enumerate() {
            let (Some(v), Some(&sigma)) = (work.visits.get(i), self.lsf_sigma.get(i)) else {
                continue;
            };
            if sigma <= 0.0 {
                continue;
            }
            let f = lsf::eval_convolved(model, &v.x_rest, sigma, self.step, false);
            fit.prediction = f.iter().zip(&v.s).map(|(f, s)| f * s).collect();
            let mut chi2 = 0.0;
            let mut n_used = 0;
            for k in 0..v.y.len() {
                let good = if v.included {
                    v.w[k] > 0.0
                } else {
                    !v.masked[k]
                };
                if good && v.ivar[k] > 0.0 && fit.prediction[k].is_finite() {
                    let r = v.y[k] - fit.prediction[k];
                    chi2 += v.ivar[k] * r * r;
                    n_used += 1;
                }
            }
            fit.chi2 = chi2;
            fit.n_used = n_used;
            fit.chi2_nu = if n_used > 0 {
                chi2 / n_used as f64
            } else {
                f64::NAN
            };
        }
    }

    /// The model times selection (without normalization) at every visit's pixels for the
    /// current shifts.
    fn base_predictions(&self, prep: &Prepared, model: &dyn SpectrumModel) -> Vec<Vec<f64>> {
        use rayon::prelude::*;
        prep.visits
            .par_iter()
            .enumerate()
            .map(|(i, v)| {
                let x: Vec<f64> = v.visit.ln_wave().iter().map(|x| x - self.dx[i]).collect();
                let f = lsf::eval_convolved(model, &x, self.lsf_sigma[i], self.step, false);
                f.iter().zip(&v.s).map(|(f, s)| f * s).collect()
            })
            .collect()
    }

    fn update_shifts(
        &mut self,
        work: &Prepared,
        model: &dyn SpectrumModel,
        template_band: &[Vec<f64>],
    ) -> f64 {
        use rayon::prelude::*;
        let fits: Vec<Option<shifts::ShiftFit>> = (0..work.visits.len())
            .into_par_iter()
            .map(|i| {
                let v = &work.visits[i];
                let w = self.likelihood_weights(work, i);
                let data = shifts::ShiftData {
                    x_obs: v.visit.ln_wave(),
                    y: &v.y,
                    m: &v.s,
                    w: &w,
                    lsf_sigma: self.lsf_sigma[i],
                    step: self.step,
                    template_band,
                    grid_start: work.grid.ln_wave.first().copied().unwrap_or(0.0),
                };
                shifts::fit_shift(model, &data, self.dx[i])
            })
            .collect();
        let mut new_dx = self.dx.clone();
        for (i, fit) in fits.iter().enumerate() {
            if let Some(f) = fit {
                new_dx[i] = f.dx;
                self.sigma_dx[i] = f.sigma_dx;
                self.template_sensitivity[i] = f.template_sensitivity.clone();
            } else {
                self.sigma_dx[i] = f64::NAN;
                self.template_sensitivity[i] = Vec::new();
            }
        }
        // Gauge: the mean fitted shift of the included visits equals their mean header shift.
        let anchor: Vec<usize> = (0..fits.len())
            .filter(|&i| self.anchors(work, i) && fits[i].is_some())
            .collect();
        if !anchor.is_empty() {
            let n = anchor.len() as f64;
            let offset = anchor
                .iter()
                .map(|&i| self.dx_header[i] - new_dx[i])
                .sum::<f64>()
                / n;
            for (i, dx) in new_dx.iter_mut().enumerate() {
                if fits[i].is_some() {
                    *dx += offset;
                }
            }
        }
        if let Some(t) = self.trust_dx {
            for (i, dx) in new_dx.iter_mut().enumerate() {
                let (lo, hi) = (self.dx_header[i] - t, self.dx_header[i] + t);
                self.held[i] = *dx < lo || *dx > hi;
                *dx = dx.clamp(lo, hi);
            }
        }
        let max_dv = new_dx
            .iter()
            .zip(&self.dx)
            .map(|(a, b)| (velocity_from_shift(*a) - velocity_from_shift(*b)).abs())
            .fold(0.0, f64::max);
        self.dx = new_dx;
        max_dv
    }

    fn update_normalization(&mut self, work: &Prepared, base: &[Vec<f64>]) -> f64 {
        let Some(deg) = self.degree else {
            return 0.0;
        };
        let n_coef = deg + 1;
        let n = work.visits.len();
        let preds = base;
        let mut systems_in: Vec<Option<normalize::NormalEquations>> = Vec::with_capacity(n);
        let mut systems_out: Vec<Option<normalize::NormalEquations>> = Vec::with_capacity(n);
        for i in 0..n {
            let v = &work.visits[i];
            let pred = &preds[i];
            // Same weights as the spectrum solve (weighting scheme, visit weight, robust weight)
            // for included visits, so both steps minimise one objective.
            // (The edge taper keeps the poorly modelled grid ends out, as for the shifts.)
            let w: Vec<f64> = if v.included {
                v.w.iter()
                    .zip(v.visit.ln_wave())
                    .map(|(w, x)| w * self.taper(x - self.dx[i]))
                    .collect()
            } else {
                self.likelihood_weights(work, i)
            };
            let sys =
                normalize::NormalEquations::assemble(&self.legendre[i], pred, &v.y, &w, n_coef);
            let usable = w
                .iter()
                .zip(pred)
                .filter(|(w, p)| **w > 0.0 && p.is_finite())
                .count()
                > n_coef;
            let sys = usable.then_some(sys);
            if v.included {
                systems_in.push(sys);
                systems_out.push(None);
            } else {
                systems_in.push(None);
                systems_out.push(sys);
            }
        }
        let constrained = normalize::constrained_coefficients(&systems_in, n_coef);
        let mut max_change: f64 = 0.0;
        for i in 0..n {
            let new = match (&constrained[i], &systems_out[i]) {
                (Some(c), _) => Some(c.clone()),
                (None, Some(sys)) => normalize::solve_small(sys.a.clone(), sys.b.clone()),
                (None, None) => None,
            };
            let Some(new) = new else { continue };
            let v = &work.visits[i];
            let w = self.likelihood_weights(work, i);
            let mut sum = 0.0;
            let mut count = 0usize;
            for k in 0..v.y.len() {
                if w[k] > 0.0 && preds[i][k].is_finite() {
                    let l = &self.legendre[i][k];
                    let dp: f64 = l
                        .iter()
                        .zip(new.iter().zip(&self.coef[i]))
                        .map(|(l, (a, b))| l * (a - b))
                        .sum();
                    let d = dp * preds[i][k];
                    sum += d * d * v.ivar[k];
                    count += 1;
                }
            }
            if count > 0 {
                max_change = max_change.max((sum / count as f64).sqrt());
            }
            self.coef[i] = new;
        }
        max_change
    }

    fn update_robust(
        &mut self,
        work: &Prepared,
        base: &[Vec<f64>],
        kind: crate::settings::Robust,
    ) -> f64 {
        let mut max_change: f64 = 0.0;
        for i in 0..work.visits.len() {
            let v = &work.visits[i];
            let poly = self.poly(i, v.y.len());
            for k in 0..v.y.len() {
                let pred = base[i][k] * poly[k];
                if !(!v.masked[k] && v.ivar[k] > 0.0 && pred.is_finite()) {
                    continue;
                }
                let z = (v.y[k] - pred) * v.ivar[k].sqrt();
                let new = robust_weight(kind, z);
                max_change = max_change.max((new - self.rw[i][k]).abs());
                self.rw[i][k] = new;
            }
        }
        max_change
    }

    /// The part of each anchored shift error due to the model's own noise: with g_i the shift's
    /// response to model errors and G the mean response of the anchored visits, the anchored
    /// shift dx_i - mean(dx) moves by (g_i - G) . e, variance (g_i - G)^T C* (g_i - G). Smooth
    /// model noise moves every visit alike and cancels in the anchor; pixel-scale noise does not.
    fn template_errors(&self, in_anchor: &[bool], band: &[Vec<f64>]) -> Vec<f64> {
        let n_grid = band.first().map_or(0, Vec::len);
        let usable = |g: &Vec<f64>| g.len() == n_grid && n_grid > 0;
        let anchored: Vec<&Vec<f64>> = self
            .template_sensitivity
            .iter()
            .zip(in_anchor)
            .filter(|(g, a)| **a && usable(g))
            .map(|(g, _)| g)
            .collect();
        let mut mean = vec![0.0; n_grid];
        for g in &anchored {
            for (m, v) in mean.iter_mut().zip(g.iter()) {
                *m += v / anchored.len() as f64;
            }
        }
        self.template_sensitivity
            .iter()
            .map(|g| {
                if !usable(g) {
                    return 0.0;
                }
                let d: Vec<f64> = g.iter().zip(&mean).map(|(a, b)| a - b).collect();
                shifts::band_quadratic_form(band, &d).max(0.0).sqrt()
            })
            .collect()
    }

    /// The zero point of the fitted velocities: the gauge sets the mean fitted velocity of the
    /// anchored visits to the mean of their starting velocities (header or manual), so the
    /// velocities are relative to that mean, and its error is the error of a mean of N header
    /// velocities. The header errors are measured, not assumed: the fitted velocities are far more
    /// precise than the headers, so the scatter of header minus fitted velocity over the anchored
    /// visits (N - 1 degrees of freedom) estimates the header error, and the zero point's error
    /// is that scatter / sqrt(N). NaN with fewer than two anchored visits.
    fn zero_point(&self, work: &Prepared, in_anchor: &[bool]) -> VelocityZeroPoint {
        let idx: Vec<usize> = (0..in_anchor.len()).filter(|&i| in_anchor[i]).collect();
        let n = idx.len() as f64;
        let v_hdr: Vec<f64> = idx
            .iter()
            .map(|&i| velocity_from_shift(self.dx_header[i]))
            .collect();
        let d: Vec<f64> = idx
            .iter()
            .zip(&v_hdr)
            .map(|(&i, vh)| vh - velocity_from_shift(self.dx[i]))
            .collect();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (v_kms, err_kms) = if idx.len() >= 2 {
            let md = mean(&d);
            let var = d.iter().map(|x| (x - md).powi(2)).sum::<f64>() / (n - 1.0);
            (mean(&v_hdr), (var / n).sqrt())
        } else if idx.len() == 1 {
            (v_hdr[0], f64::NAN)
        } else {
            (f64::NAN, f64::NAN)
        };
        let sources: Vec<&str> = idx
            .iter()
            .map(|&i| work.visits[i].v_source.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        VelocityZeroPoint {
            name: format!(
                "relative: mean of the {} included visits' starting velocities ({})",
                idx.len(),
                sources.join(", ")
            ),
            v_kms,
            err_kms,
        }
    }

    /// Fill the result's per-visit extension outputs.
    fn finish(&self, work: &Prepared, res: &mut MethodResult) {
        if let Some(model) = res.model.clone() {
            self.convolved_visit_fits(work, model.as_ref(), res);
        }
        if self.robust.is_some() {
            for (i, fit) in res.visits.iter_mut().enumerate() {
                let Some(v) = work.visits.get(i) else {
                    continue;
                };
                let rw = &self.rw[i];
                let n_used = (0..rw.len())
                    .filter(|&k| !v.masked[k] && v.ivar[k] > 0.0)
                    .count();
                let n_down = (0..rw.len())
                    .filter(|&k| !v.masked[k] && v.ivar[k] > 0.0 && rw[k] < 0.5)
                    .count();
                fit.robust_weight = rw.clone();
                fit.outlier_score = if n_used > 0 {
                    n_down as f64 / n_used as f64
                } else {
                    0.0
                };
            }
        }
        if self.fit_shifts {
            let in_anchor: Vec<bool> = (0..work.visits.len())
                .map(|i| self.anchors(work, i) && self.sigma_dx[i].is_finite())
                .collect();
            let own = anchored_errors(&self.sigma_dx, &in_anchor);
            let template = self.template_errors(&in_anchor, &res.band);
            let err: Vec<f64> = own
                .iter()
                .zip(&template)
                .map(|(o, t)| (o * o + t * t).sqrt())
                .collect();
            res.fitted_velocity = Some(
                self.dx
                    .iter()
                    .zip(&err)
                    .map(|(&dx, &e)| (velocity_from_shift(dx), C_KMS * dx.exp() * e))
                    .collect(),
            );
            res.velocity_zero_point = Some(self.zero_point(work, &in_anchor));
        }
    }
}

/// Hand the LSF difference-kernel width to the solver (the local basis convolves its design rows).
fn set_lsf_sigma(visit: &mut PreparedVisit, sigma: f64) {
    visit.lsf_sigma = sigma;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn anchored_errors_match_a_monte_carlo_of_the_gauge() {
        // e_i ~ N(0, sigma_i^2) independent; the gauge subtracts the mean over the anchored visits.
        let sigma = [0.5, 1.0, 2.0, 1.5, 0.7];
        let in_anchor = [true, true, true, true, false];
        let predicted = anchored_errors(&sigma, &in_anchor);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let normal = rand_distr::Normal::new(0.0, 1.0).expect("unit normal");
        let n_draws = 40_000;
        let mut sum_sq = [0.0; 5];
        for _ in 0..n_draws {
            let e: Vec<f64> = sigma
                .iter()
                .map(|s| s * rand_distr::Distribution::<f64>::sample(&normal, &mut rng))
                .collect();
            let mean = e[..4].iter().sum::<f64>() / 4.0;
            for (acc, ei) in sum_sq.iter_mut().zip(&e) {
                *acc += (ei - mean).powi(2);
            }
        }
        for (acc, p) in sum_sq.iter().zip(&predicted) {
            let empirical = (acc / n_draws as f64).sqrt();
            assert!((empirical / p - 1.0).abs() < 0.02, "{empirical} vs {p}");
        }
    }
}
