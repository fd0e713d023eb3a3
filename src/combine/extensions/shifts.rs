//! Shift refinement: one visit's shift by Gauss-Newton on chi^2(dx) against a fixed model.
//!
//! The prediction is p_k(dx) = m_k f(x_k - dx) (m = selection times normalization, f convolved
//! with the visit's LSF kernel), so dp/d(dx) = -m_k f'(x_k - dx), analytic from the model. The
//! curvature gives the conditional uncertainty sigma_dx = 1 / sqrt(sum w (m f')^2).

use super::super::SpectrumModel;
use super::lsf::eval_convolved;

/// Most Gauss-Newton steps per visit and round: the model changes every round anyway, so the
/// outer alternation does the rest (each step costs two model evaluations per pixel).
const MAX_STEPS: usize = 3;

/// A converged step is below this in ln(lambda) (3e-5 km/s, 1/30 of the outer tolerance).
const STEP_TOL: f64 = 1e-10;

/// The result of fitting one visit's shift.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShiftFit {
    /// Fitted shift (ln lambda).
    pub dx: f64,
    /// Conditional 1-sigma uncertainty from the curvature, inflated by sqrt(chi^2/nu) when that
    /// exceeds 1.
    pub sigma_dx: f64,
}

/// The pixels and weights of one visit, as the shift fit sees them.
pub(crate) struct ShiftData<'a> {
    /// Observed-frame ln(lambda).
    pub x_obs: &'a [f64],
    /// Data.
    pub y: &'a [f64],
    /// Multiplier of the model (S times normalization).
    pub m: &'a [f64],
    /// Likelihood weights (inverse variance times robust weight; 0 = unused).
    pub w: &'a [f64],
    /// LSF difference-kernel sigma (ln lambda).
    pub lsf_sigma: f64,
    /// Output grid spacing (ln lambda), the finest scale of the model.
    pub step: f64,
    /// The model's own variance on the output grid (empty = unknown): the template is noisy too.
    pub template_var: &'a [f64],
    /// The output grid's first ln(lambda) (for interpolating `template_var`).
    pub grid_start: f64,
}

/// Linear interpolation of a quantity on the uniform output grid at `x` (NaN outside).
fn interp_grid(values: &[f64], start: f64, step: f64, x: f64) -> f64 {
    let u = (x - start) / step;
    if values.is_empty() || !(u >= 0.0) || u > (values.len() - 1) as f64 {
        return f64::NAN;
    }
    let j = (u.floor() as usize).min(values.len().saturating_sub(2));
    let t = u - j as f64;
    match (values.get(j), values.get(j + 1)) {
        (Some(a), Some(b)) => a + t * (b - a),
        (Some(a), None) => *a,
        _ => f64::NAN,
    }
}

/// Sums over the usable pixels at one trial shift.
struct Sums {
    /// sum w J r with J = dp/d(dx).
    jr: f64,
    /// sum w J^2.
    curvature: f64,
    /// sum w r^2.
    chi2: f64,
    /// Pixels that entered.
    n_used: usize,
    /// sum (w J)^2 var_model: the shift variance the template's own noise adds, times curvature^2.
    template: f64,
}

/// Sums at trial shift `dx`, with the model slope `fp` taken at the round's starting shift.
fn sums_at(model: &dyn SpectrumModel, d: &ShiftData<'_>, dx: f64, fp: &[f64]) -> Sums {
    let x: Vec<f64> = d.x_obs.iter().map(|xo| xo - dx).collect();
    let f = eval_convolved(model, &x, d.lsf_sigma, d.step, false);
    let mut s = Sums {
        jr: 0.0,
        curvature: 0.0,
        chi2: 0.0,
        n_used: 0,
        template: 0.0,
    };
    for k in 0..x.len() {
        if !(d.w[k] > 0.0 && f[k].is_finite() && fp[k].is_finite()) {
            continue;
        }
        let r = d.y[k] - d.m[k] * f[k];
        let jac = -d.m[k] * fp[k];
        s.jr += d.w[k] * jac * r;
        s.curvature += d.w[k] * jac * jac;
        s.chi2 += d.w[k] * r * r;
        s.n_used += 1;
        let tv = interp_grid(d.template_var, d.grid_start, d.step, x[k]);
        if tv.is_finite() {
            s.template += (d.w[k] * jac).powi(2) * tv * d.m[k] * d.m[k];
        }
    }
    s
}

/// Gauss-Newton on chi^2(dx), each step limited to one output pixel so that a far start cannot
/// jump across lines. `None` when no pixel has a finite model and positive weight and slope.
pub(crate) fn fit_shift(
    model: &dyn SpectrumModel,
    d: &ShiftData<'_>,
    dx0: f64,
) -> Option<ShiftFit> {
    // The slope is evaluated once per round (chord Gauss-Newton): within a round the shift moves
    // by a fraction of a pixel, the outer alternation re-evaluates it, and derivatives of wide
    // kernels cost several model evaluations.
    let x0: Vec<f64> = d.x_obs.iter().map(|xo| xo - dx0).collect();
    let fp = eval_convolved(model, &x0, d.lsf_sigma, d.step, true);
    let mut dx = dx0;
    let mut s = sums_at(model, d, dx, &fp);
    for _ in 0..MAX_STEPS {
        if s.curvature.is_nan() || s.curvature <= 0.0 {
            return None;
        }
        let delta = (s.jr / s.curvature).clamp(-d.step, d.step);
        dx += delta;
        if delta.abs() < STEP_TOL {
            // Curvature and chi^2 at a point this close are those of the final dx.
            break;
        }
        s = sums_at(model, d, dx, &fp);
    }
    if s.curvature.is_nan() || s.curvature <= 0.0 || s.n_used == 0 {
        return None;
    }
    // Misfit beyond the noise (underestimated ivar, variability, LSF mismatch) makes the curvature
    // error optimistic, so inflate by sqrt(chi^2/nu) then; never deflate, because a flexible
    // model that contains the visit absorbs part of its noise (chi^2/nu ~ 1 - 1/N is expected).
    let chi2_nu = s.chi2 / s.n_used as f64;
    let var_dx = chi2_nu.max(1.0) / s.curvature + s.template / (s.curvature * s.curvature);
    let sigma_dx = var_dx.sqrt();
    Some(ShiftFit { dx, sigma_dx })
}
