//! Shift refinement: one visit's shift by Gauss-Newton on chi^2(dx) against a fixed model.
//!
//! The prediction is p_k(dx) = m_k f(x_k - dx) (m = selection times normalization, f convolved
//! with the visit's LSF kernel), so dp/d(dx) = -m_k f'(x_k - dx), analytic from the model. The
//! curvature gives the conditional uncertainty sigma_dx = 1 / sqrt(sum w (m f')^2).

use super::super::SpectrumModel;
use super::lsf::eval_convolved;

/// Most Gauss-Newton steps per visit and round (the outer alternation refines further).
const MAX_STEPS: usize = 8;

/// A converged step is below this in ln(lambda) (3e-6 km/s).
const STEP_TOL: f64 = 1e-11;

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
}

fn sums_at(model: &dyn SpectrumModel, d: &ShiftData<'_>, dx: f64) -> Sums {
    let x: Vec<f64> = d.x_obs.iter().map(|xo| xo - dx).collect();
    let f = eval_convolved(model, &x, d.lsf_sigma, d.step, false);
    let fp = eval_convolved(model, &x, d.lsf_sigma, d.step, true);
    let mut s = Sums {
        jr: 0.0,
        curvature: 0.0,
        chi2: 0.0,
        n_used: 0,
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
    let mut dx = dx0;
    let mut s = sums_at(model, d, dx);
    for _ in 0..MAX_STEPS {
        if s.curvature.is_nan() || s.curvature <= 0.0 {
            return None;
        }
        let delta = (s.jr / s.curvature).clamp(-d.step, d.step);
        dx += delta;
        s = sums_at(model, d, dx);
        if delta.abs() < STEP_TOL {
            break;
        }
    }
    if s.curvature.is_nan() || s.curvature <= 0.0 || s.n_used == 0 {
        return None;
    }
    // Misfit beyond the noise (underestimated ivar, variability, LSF mismatch) makes the curvature
    // error optimistic, so inflate by sqrt(chi^2/nu) then; never deflate, because a flexible
    // model that contains the visit absorbs part of its noise (chi^2/nu ~ 1 - 1/N is expected).
    let chi2_nu = s.chi2 / s.n_used as f64;
    let sigma_dx = (1.0 / s.curvature).sqrt() * chi2_nu.max(1.0).sqrt();
    Some(ShiftFit { dx, sigma_dx })
}
