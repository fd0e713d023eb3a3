//! Robust reweighting: iteratively reweighted least squares on residual/sigma at native pixels.
//!
//! The noise scale is the inverse variance the data come with (not re-estimated from the
//! residuals): a 5-sigma outlier is 5 sigma by the file's own account. Residuals are taken against
//! the model that includes the pixel itself; with N visits the pixel's leverage is about 1/N, so
//! thresholds act on slightly shrunken residuals, which the usual thresholds tolerate.

use crate::settings::Robust;

/// The IRLS weight in [0, 1] of a pixel whose residual is `z` sigma.
#[must_use]
pub fn robust_weight(kind: Robust, z: f64) -> f64 {
    let a = z.abs();
    if !a.is_finite() {
        return if a.is_nan() { 1.0 } else { 0.0 };
    }
    match kind {
        // Huber: quadratic inside t, linear outside (weight t/|z|); convex, so IRLS converges.
        Robust::Huber(t) => {
            if a <= t {
                1.0
            } else {
                t / a
            }
        }
        // Cauchy (Lorentzian): redescending, big outliers get weight ~ (c/z)^2.
        Robust::Cauchy(c) => 1.0 / (1.0 + (a / c) * (a / c)),
        // Hard clipping: the pixel is in or out.
        Robust::SigmaClip(k) => {
            if a > k {
                0.0
            } else {
                1.0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_follow_their_definitions() {
        assert_eq!(robust_weight(Robust::Huber(2.0), 1.5), 1.0);
        assert!((robust_weight(Robust::Huber(2.0), -8.0) - 0.25).abs() < 1e-15);
        assert!((robust_weight(Robust::Cauchy(2.0), 2.0) - 0.5).abs() < 1e-15);
        assert_eq!(robust_weight(Robust::SigmaClip(3.0), 3.5), 0.0);
        assert_eq!(robust_weight(Robust::SigmaClip(3.0), -2.9), 1.0);
        assert_eq!(robust_weight(Robust::Cauchy(2.0), f64::INFINITY), 0.0);
    }
}
