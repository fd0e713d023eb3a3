//! Quadratures against a Gaussian line-spread function, shared by every LSF convolution.
//!
//! Two rules, for two kinds of integrand:
//! - [`gauss_hermite`]: a fixed 16-point Gauss-Hermite rule for integrals against exp(-t^2), used
//!   where the integrand is a smooth basis function times the Gaussian (the local basis's design
//!   rows): exact for polynomials to degree 31.
//! - [`gauss_nodes`]: a trapezoid rule on a unit Gaussian truncated at [`HALF_WIDTH_SIGMAS`],
//!   with node spacing chosen by the caller, used where the integrand is an arbitrary fitted
//!   model that may carry structure at the output-pixel scale (the extensions' convolved model
//!   evaluation): the spacing follows that scale, which a fixed-order rule cannot.

/// Half-width of the trapezoid quadrature in kernel sigmas (the Gaussian is < 2e-9 beyond 6).
pub const HALF_WIDTH_SIGMAS: f64 = 6.0;

/// Gauss-Hermite points for the LSF convolution: the integrand (model times Gaussian) carries
/// pixel-scale structure across a few sigma, which 5 points integrate only to a few percent.
pub const GH_N: usize = 16;

/// Gauss-Hermite nodes (ascending) and weights for integrals against exp(-t^2), by Newton
/// iteration on the orthonormal Hermite recurrence (Numerical Recipes' `gauher`).
pub fn gauss_hermite() -> &'static ([f64; GH_N], [f64; GH_N]) {
    static GH: std::sync::OnceLock<([f64; GH_N], [f64; GH_N])> = std::sync::OnceLock::new();
    GH.get_or_init(|| {
        let n = GH_N;
        let pim4 = std::f64::consts::PI.powf(-0.25);
        let mut x = [0.0; GH_N];
        let mut w = [0.0; GH_N];
        let m = n.div_ceil(2);
        let nf = n as f64;
        let mut z = 0.0_f64;
        for i in 0..m {
            z = match i {
                0 => (2.0 * nf + 1.0).sqrt() - 1.85575 * (2.0 * nf + 1.0).powf(-1.0 / 6.0),
                1 => z - 1.14 * nf.powf(0.426) / z,
                2 => 1.86 * z - 0.86 * x[0],
                3 => 1.91 * z - 0.91 * x[1],
                _ => 2.0 * z - x[i - 2],
            };
            let mut pp = 0.0;
            for _ in 0..100 {
                let mut p1 = pim4;
                let mut p2 = 0.0;
                for j in 0..n {
                    let p3 = p2;
                    p2 = p1;
                    let jf = j as f64;
                    p1 = z * (2.0 / (jf + 1.0)).sqrt() * p2 - (jf / (jf + 1.0)).sqrt() * p3;
                }
                pp = (2.0 * nf).sqrt() * p2;
                let z1 = z;
                z = z1 - p1 / pp;
                if (z - z1).abs() <= 1e-15 {
                    break;
                }
            }
            x[i] = z;
            w[i] = 2.0 / (pp * pp);
        }
        // gauher returns descending positive-first nodes in x[0..m]; mirror into ascending order.
        let mut nodes = [0.0; GH_N];
        let mut weights = [0.0; GH_N];
        for i in 0..m {
            nodes[n - 1 - i] = x[i];
            weights[n - 1 - i] = w[i];
            nodes[i] = -x[i];
            weights[i] = w[i];
        }
        (nodes, weights)
    })
}

/// Nodes (in units of the kernel sigma) and normalised weights of a trapezoid quadrature of a
/// unit Gaussian with node spacing at most `max_step_sigmas`.
pub fn gauss_nodes(max_step_sigmas: f64) -> Vec<(f64, f64)> {
    let step = max_step_sigmas.clamp(1e-3, 0.5);
    let half = (HALF_WIDTH_SIGMAS / step).ceil() as i64;
    let mut nodes: Vec<(f64, f64)> = (-half..=half)
        .map(|j| {
            let t = j as f64 * step;
            (t, (-0.5 * t * t).exp())
        })
        .collect();
    let sum: f64 = nodes.iter().map(|n| n.1).sum();
    for n in &mut nodes {
        n.1 /= sum;
    }
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_hermite_integrates_moments() {
        let (x, w) = gauss_hermite();
        let sp = std::f64::consts::PI.sqrt();
        let m0: f64 = w.iter().sum();
        let m2: f64 = x.iter().zip(w).map(|(x, w)| w * x * x).sum();
        let m4: f64 = x.iter().zip(w).map(|(x, w)| w * x.powi(4)).sum();
        assert!((m0 - sp).abs() < 1e-13, "{m0}");
        assert!((m2 - sp / 2.0).abs() < 1e-13, "{m2}");
        assert!((m4 - 3.0 * sp / 4.0).abs() < 1e-12, "{m4}");
        assert!(x.windows(2).all(|p| p[1] > p[0]));
    }

    #[test]
    fn gauss_nodes_integrate_gaussian_moments() {
        for step in [0.5, 0.1, 0.01] {
            let nodes = gauss_nodes(step);
            let m0: f64 = nodes.iter().map(|n| n.1).sum();
            let m1: f64 = nodes.iter().map(|n| n.1 * n.0).sum();
            let m2: f64 = nodes.iter().map(|n| n.1 * n.0 * n.0).sum();
            assert!((m0 - 1.0).abs() < 1e-14, "{m0}");
            assert!(m1.abs() < 1e-14, "{m1}");
            // The variance of a unit Gaussian; the trapezoid rule on a Gaussian converges
            // spectrally, and the tails beyond 6 sigma hold < 1e-7 of the second moment.
            assert!((m2 - 1.0).abs() < 1e-7, "step {step}: {m2}");
            assert!(nodes.windows(2).all(|p| p[1].0 - p[0].0 <= step + 1e-15));
        }
    }
}
