//! Shift refinement: one visit's shift by Gauss-Newton on chi^2(dx) against a fixed model.
//!
//! The prediction is p_k(dx) = m_k f(x_k - dx) (m = selection times normalization, f convolved
//! with the visit's LSF kernel), so dp/d(dx) = -m_k f'(x_k - dx), analytic from the model. The
//! curvature gives the conditional uncertainty sigma_dx = 1 / sqrt(sum w (m f')^2).
//!
//! Robust: the fit reweights its own pixels (iteratively reweighted least squares with Tukey's
//! biweight, c = 4.685, on the residuals in sigma divided by the visit's robust scale, 1.4826
//! times their median absolute value, never below 1), so pixels the model does not describe
//! (sky-line and telluric residuals that stand still in the observed frame, persistence, unflagged
//! defects) cannot pull the shift towards the observed-frame alignment. The weights are
//! recomputed from the residuals at the start of every call, so across the alternation rounds
//! this is IRLS to a fixed point.

use super::lsf::eval_convolved;
use crate::combine::types::SpectrumModel;

/// Most Gauss-Newton steps per visit and round: the model changes every round anyway, so the
/// outer alternation does the rest (each step costs two model evaluations per pixel).
const MAX_STEPS: usize = 3;

/// A converged step is below this in ln(lambda) (3e-5 km/s, 1/30 of the outer tolerance).
const STEP_TOL: f64 = 1e-10;

/// Tukey's biweight tuning constant (95% efficiency for Gaussian residuals).
const TUKEY_C: f64 = 4.685;

/// The biweight of a residual `z` (in sigma) against robust scale `scale`.
fn tukey(z: f64, scale: f64) -> f64 {
    let u = z / (TUKEY_C * scale);
    if u.abs() < 1.0 {
        let t = 1.0 - u * u;
        t * t
    } else {
        0.0
    }
}

/// Robust weights of the pixels from their residuals at shift `dx` (1 where a pixel is unused).
fn robust_weights(model: &dyn SpectrumModel, d: &ShiftData<'_>, dx: f64) -> Vec<f64> {
    let x: Vec<f64> = d.x_obs.iter().map(|xo| xo - dx).collect();
    let f = eval_convolved(model, &x, d.lsf_sigma, d.step, false);
    let z: Vec<f64> = (0..x.len())
        .map(|k| {
            if d.w[k] > 0.0 && f[k].is_finite() {
                (d.y[k] - d.m[k] * f[k]) * d.w[k].sqrt()
            } else {
                f64::NAN
            }
        })
        .collect();
    let mut a: Vec<f64> = z
        .iter()
        .filter(|v| v.is_finite())
        .map(|v| v.abs())
        .collect();
    if a.is_empty() {
        return vec![1.0; x.len()];
    }
    let mid = a.len() / 2;
    a.select_nth_unstable_by(mid, f64::total_cmp);
    let scale = (1.4826 * a[mid]).max(1.0);
    z.iter()
        .map(|&v| if v.is_finite() { tukey(v, scale) } else { 1.0 })
        .collect()
}

/// The result of fitting one visit's shift.
#[derive(Clone, Debug)]
pub(crate) struct ShiftFit {
    /// Fitted shift (ln lambda).
    pub dx: f64,
    /// Conditional 1-sigma uncertainty from the (robustly weighted) curvature, inflated by
    /// sqrt(chi^2/nu) of the weighted residuals when that exceeds 1 (the visit's own misfit; the
    /// template's noise is in `template_sensitivity`).
    pub sigma_dx: f64,
    /// d(dx)/d(template value at output pixel l): the fitted shift moves by
    /// sum_l template_sensitivity[l] * (error of the model at pixel l). Empty when the model's
    /// covariance is unknown.
    pub template_sensitivity: Vec<f64>,
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
    /// The model's own covariance band on the output grid, `band[k][l] = C*[l, l + k]` (empty =
    /// unknown): the template is noisy too.
    pub template_band: &'a [Vec<f64>],
    /// The output grid's first ln(lambda) (for locating pixels in `template_band`).
    pub grid_start: f64,
}

/// The shift's linear response to errors of the model at the output pixels: the step is
/// sum_k w_k J_k (y_k - S_k f(x_k)) / curvature, so an error e_l of the model at output pixel l,
/// interpolated linearly to the visit's pixels, moves the shift by -sum_k w_k J_k S_k
/// (weight of l at x_k) e_l / curvature.
fn template_sensitivity(
    d: &ShiftData<'_>,
    dx: f64,
    fp: &[f64],
    rw: &[f64],
    curvature: f64,
) -> Vec<f64> {
    let Some(n_grid) = d.template_band.first().map(Vec::len) else {
        return Vec::new();
    };
    let mut g = vec![0.0; n_grid];
    for k in 0..d.x_obs.len() {
        if !(d.w[k] > 0.0 && fp[k].is_finite()) {
            continue;
        }
        let u = (d.x_obs[k] - dx - d.grid_start) / d.step;
        if !(u >= 0.0 && u <= (n_grid - 1) as f64) {
            continue;
        }
        let j = (u.floor() as usize).min(n_grid.saturating_sub(2));
        let t = u - j as f64;
        let a = -d.w[k] * rw[k] * (-d.m[k] * fp[k]) * d.m[k] / curvature;
        g[j] += (1.0 - t) * a;
        if let Some(next) = g.get_mut(j + 1) {
            *next += t * a;
        }
    }
    g
}

/// The quadratic form v^T C v with C symmetric, given as its band `band[k][l] = C[l, l + k]`
/// (entries beyond the band are taken as 0; NaN entries, no-data pixels, are skipped).
#[must_use]
pub(crate) fn band_quadratic_form(band: &[Vec<f64>], v: &[f64]) -> f64 {
    let mut q = 0.0;
    for (k, row) in band.iter().enumerate() {
        let factor = if k == 0 { 1.0 } else { 2.0 };
        for l in 0..v.len().saturating_sub(k) {
            let c = row.get(l).copied().unwrap_or(f64::NAN);
            if c.is_finite() {
                q += factor * v[l] * v[l + k] * c;
            }
        }
    }
    q
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
    /// Their robust weights summed (the effective number of pixels).
    n_eff: f64,
}

/// Sums at trial shift `dx`, with the model slope `fp` taken at the round's starting shift.
fn sums_at(model: &dyn SpectrumModel, d: &ShiftData<'_>, dx: f64, fp: &[f64], rw: &[f64]) -> Sums {
    let x: Vec<f64> = d.x_obs.iter().map(|xo| xo - dx).collect();
    let f = eval_convolved(model, &x, d.lsf_sigma, d.step, false);
    let mut s = Sums {
        jr: 0.0,
        curvature: 0.0,
        chi2: 0.0,
        n_used: 0,
        n_eff: 0.0,
    };
    for k in 0..x.len() {
        if !(d.w[k] > 0.0 && f[k].is_finite() && fp[k].is_finite()) {
            continue;
        }
        let r = d.y[k] - d.m[k] * f[k];
        let jac = -d.m[k] * fp[k];
        let w = d.w[k] * rw[k];
        s.jr += w * jac * r;
        s.curvature += w * jac * jac;
        s.chi2 += w * r * r;
        s.n_eff += rw[k];
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
    // The slope is evaluated once per round (chord Gauss-Newton): within a round the shift moves
    // by a fraction of a pixel, the outer alternation re-evaluates it, and derivatives of wide
    // kernels cost several model evaluations.
    let x0: Vec<f64> = d.x_obs.iter().map(|xo| xo - dx0).collect();
    let fp = eval_convolved(model, &x0, d.lsf_sigma, d.step, true);
    let rw = robust_weights(model, d, dx0);
    let mut dx = dx0;
    let mut s = sums_at(model, d, dx, &fp, &rw);
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
        s = sums_at(model, d, dx, &fp, &rw);
    }
    if s.curvature.is_nan() || s.curvature <= 0.0 || s.n_used == 0 {
        return None;
    }
    // Misfit beyond the noise (underestimated ivar, variability, LSF mismatch) makes the curvature
    // error optimistic, so inflate by sqrt(chi^2/nu) then; never deflate, because a flexible
    // model that contains the visit absorbs part of its noise (chi^2/nu ~ 1 - 1/N is expected).
    let chi2_nu = if s.n_eff > 0.0 {
        s.chi2 / s.n_eff
    } else {
        f64::INFINITY
    };
    let sigma_dx = (chi2_nu.max(1.0) / s.curvature).sqrt();
    let template_sensitivity = template_sensitivity(d, dx, &fp, &rw, s.curvature);
    Some(ShiftFit {
        dx,
        sigma_dx,
        template_sensitivity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_quadratic_form_equals_the_dense_product() {
        // A symmetric matrix with bandwidth 2, stored densely and as a band.
        let n = 6;
        let dense = |i: usize, j: usize| -> f64 {
            let d = i.abs_diff(j);
            match d {
                0 => 2.0 + i as f64 * 0.1,
                1 => -0.4 + 0.05 * i.min(j) as f64,
                2 => 0.1,
                _ => 0.0,
            }
        };
        let band: Vec<Vec<f64>> = (0..3)
            .map(|k| {
                (0..n)
                    .map(|l| if l + k < n { dense(l, l + k) } else { f64::NAN })
                    .collect()
            })
            .collect();
        let v = [0.3, -1.2, 0.8, 2.0, -0.5, 1.1];
        let mut want = 0.0;
        for i in 0..n {
            for j in 0..n {
                want += v[i] * dense(i, j) * v[j];
            }
        }
        assert!((band_quadratic_form(&band, &v) - want).abs() < 1e-12);
    }
}
