//! Per-visit line-spread function: difference-kernel widths and convolved model evaluation.
//!
//! Following the paper's discussion (Hogg & Casey 2024, arXiv:2403.11011 §5, LSF variation: model
//! only differences from a fiducial state with difference kernels), the model is the spectrum at the
//! resolution of the sharpest visit, and each broader visit sees it convolved with the Gaussian
//! *difference* kernel of width sqrt(sigma_i^2 - sigma_min^2), never an infinite-resolution
//! spectrum.

use crate::combine::quadrature::gauss_nodes;
use crate::combine::types::{CombineError, Prepared, PreparedVisit, SpectrumModel};
use crate::combine::warning::Warning;

/// The difference-kernel sigma (ln lambda) of every visit from `VisitMeta::lsf_sigma_ln`.
///
/// The narrowest width among the included visits is the model's own resolution. Visits without
/// a width, or with a non-finite or non-positive one, are not convolved and get a warning.
pub(crate) fn difference_sigmas(visits: &[PreparedVisit], warnings: &mut Vec<Warning>) -> Vec<f64> {
    let valid = |s: Option<f64>| s.filter(|s| s.is_finite() && *s > 0.0);
    let sigma_min = visits
        .iter()
        .filter(|v| v.included)
        .filter_map(|v| valid(v.visit.meta.lsf_sigma_ln))
        .fold(f64::INFINITY, f64::min);
    visits
        .iter()
        .map(|v| match valid(v.visit.meta.lsf_sigma_ln) {
            Some(s) if sigma_min.is_finite() => (s * s - sigma_min * sigma_min).max(0.0).sqrt(),
            Some(s) => {
                // Only excluded visits have a width: compare them with the narrowest of their own.
                let own_min = visits
                    .iter()
                    .filter_map(|v| valid(v.visit.meta.lsf_sigma_ln))
                    .fold(s, f64::min);
                (s * s - own_min * own_min).max(0.0).sqrt()
            }
            None => {
                warnings.push(Warning::Other(format!(
                    "visit {}: no line-spread-function width, its model is not convolved",
                    v.visit.meta.name
                )));
                0.0
            }
        })
        .collect()
}

/// The widest difference kernel, in output pixels, the local basis builds design rows for: its
/// rows are about 13 sigma wider than the kernel, and every input pixel stores one row.
pub const MAX_KERNEL_SIGMA_OUTPUT_PIXELS: f64 = 200.0;

/// Refuse visits whose difference kernel is wider than [`MAX_KERNEL_SIGMA_OUTPUT_PIXELS`] output
/// pixels (a fine explicit grid under a coarse spectrograph), before any row is allocated.
pub(crate) fn check_widths(prep: &Prepared) -> Result<(), CombineError> {
    let g = &prep.grid.ln_wave;
    let mut steps: Vec<f64> = g.windows(2).map(|p| p[1] - p[0]).collect();
    steps.sort_by(f64::total_cmp);
    let Some(&step) = steps.get(steps.len() / 2) else {
        return Ok(());
    };
    let mut ignored = Vec::new();
    let sigmas = difference_sigmas(&prep.visits, &mut ignored);
    for (v, s) in prep.visits.iter().zip(sigmas) {
        let px = s / step;
        if !(px <= MAX_KERNEL_SIGMA_OUTPUT_PIXELS) {
            return Err(CombineError::Other(format!(
                "visit {}: its line-spread-function difference kernel is {px:.3e} output pixels \
                 wide (sigma), above the limit of {MAX_KERNEL_SIGMA_OUTPUT_PIXELS}; use a coarser \
                 output grid or switch the LSF off",
                v.visit.meta.name
            )));
        }
    }
    Ok(())
}

/// The model (or its derivative) convolved with a Gaussian of `sigma` (ln lambda) at `x`.
///
/// `step` is the finest scale the model carries (the output grid spacing): the quadrature samples
/// the model at half of it so that pixel-scale structure is integrated accurately. With
/// `sigma == 0` this is a plain evaluation.
pub(crate) fn eval_convolved(
    model: &dyn SpectrumModel,
    x: &[f64],
    sigma: f64,
    step: f64,
    derivative: bool,
) -> Vec<f64> {
    let eval = |xs: &[f64]| {
        if derivative {
            model.eval_deriv(xs)
        } else {
            model.eval(xs)
        }
    };
    if sigma.is_nan() || sigma <= 0.0 {
        return eval(x);
    }
    let nodes = gauss_nodes(0.5 * step / sigma);
    let mut out = vec![0.0; x.len()];
    let mut shifted = vec![0.0; x.len()];
    for &(t, weight) in &nodes {
        for (s, &xi) in shifted.iter_mut().zip(x) {
            *s = xi + t * sigma;
        }
        for (o, f) in out.iter_mut().zip(eval(&shifted)) {
            *o += weight * f;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Cosine(f64);

    impl SpectrumModel for Cosine {
        fn eval(&self, x: &[f64]) -> Vec<f64> {
            x.iter().map(|x| (self.0 * x).cos()).collect()
        }
        fn eval_deriv(&self, x: &[f64]) -> Vec<f64> {
            x.iter().map(|x| -self.0 * (self.0 * x).sin()).collect()
        }
    }

    #[test]
    fn gaussian_convolution_of_a_cosine_is_damped_by_the_fourier_transform() {
        // Analytic: cos(kx) * N(0, s^2) = exp(-k^2 s^2 / 2) cos(kx).
        let k = 3.0;
        let sigma = 0.4;
        let x = [0.0, 0.3, 1.1, -2.0];
        let got = eval_convolved(&Cosine(k), &x, sigma, 0.2, false);
        let damp = (-0.5 * k * k * sigma * sigma).exp();
        for (g, xi) in got.iter().zip(x) {
            assert!((g - damp * (k * xi).cos()).abs() < 1e-8, "{g} at {xi}");
        }
        let got_d = eval_convolved(&Cosine(k), &x, sigma, 0.2, true);
        for (g, xi) in got_d.iter().zip(x) {
            assert!((g + damp * k * (k * xi).sin()).abs() < 1e-8, "{g} at {xi}");
        }
    }
}
