//! Leave-one-visit-out fits: the normal equations of the other visits by subtraction of a
//! visit's own sums, their solution, and the predictive chi^2 of the visit against them.

use std::sync::Arc;

use rayon::prelude::*;

use super::banded::BandLdl;
use super::basis::{GROUP, GridMap, NO_ROW, VisitBasis};
use super::cache::BasisCache;
use super::method::{
    LocalModel, LocalOptions, censor_functions, covariance_bandwidth, model_inverse_band,
    output_and_covariance_from, predict_cached,
};
use super::partial::Partial;
use crate::combine::types::{Cancel, CombineError, Prepared, PreparedVisit, VisitFit};

/// A visit's leave-one-out fit: its pixels predicted by the model fitted to the other visits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LooFit {
    /// S f_{-i}(x - dx) at the visit's pixels (NaN where the other visits leave the model
    /// unconstrained or without data).
    pub prediction: Vec<f64>,
    /// Variance of `prediction` from the leave-one-out fit's covariance,
    /// S^2 g(x)^T A_{-i}^-1 g(x) with the pixel's design row g(x) (NaN where not predicted).
    pub prediction_var: Vec<f64>,
    /// Predictive chi^2: sum of (y - prediction)^2 / (sigma^2 + `prediction_var`) over the
    /// visit's pixels with positive weight and ivar that are predicted.
    pub chi2: f64,
    /// Pixels in `chi2`.
    pub n_used: usize,
    /// `chi2 / n_used`.
    pub chi2_nu: f64,
    /// Used pixels of the visit (positive weight, on the grid) that were not scored because
    /// the other visits do not constrain the model there.
    pub n_unconstrained: usize,
}

/// Leave-one-visit-out fits of the local basis, one per dataset visit (`None` for excluded
/// visits: the full fit already predicts them out of sample).
///
/// For visit i the normal equations of the other visits are the total minus visit i's own sums,
/// A_{-i} = A - A_i and b_{-i} = b - b_i (the per-visit sums are the ones [`super::fit_with`] caches), then
/// censored, ridged, factored and solved exactly as [`fit_with`] would with visit i excluded:
/// O(P b^2) per visit, no kernel evaluation. The variance of the leave-one-out model on the
/// output grid (selected inverse) feeds the same poorly-constrained rule as the full fit
/// ([`crate::combine::constrained`]); the visit's pixels whose nearest output pixel is no-data or poorly
/// constrained without it are not scored, and are counted in `n_unconstrained`.
pub fn leave_one_out(
    prep: &Prepared,
    cache: &BasisCache,
    opts: &LocalOptions,
    cancel: &Cancel,
) -> Result<Vec<Option<LooFit>>, CombineError> {
    let grid = &prep.grid;
    let p = grid.len();
    let map = GridMap::checked(grid)?;
    let kernel = opts.kernel;
    let gen_ = cache.begin();
    let bases: Vec<Arc<VisitBasis>> = prep
        .visits
        .par_iter()
        .map(|pv| cache.get(pv, &map, kernel, gen_))
        .collect();
    let used: Vec<usize> = (0..prep.visits.len())
        .filter(|&i| prep.visits[i].included)
        .collect();
    let width = used
        .iter()
        .map(|&i| bases[i].width)
        .max()
        .unwrap_or(kernel.width());
    let b = width - 1;
    let per_visit_bytes = (b + 1) * p * 8 + p * 17;
    let cached = used.len() * per_visit_bytes <= cache.partial_budget;
    let partial = |i: usize| -> Arc<Partial> {
        let (pv, vb) = (&prep.visits[i], &bases[i]);
        if cached {
            cache.get_partial(pv, vb, p, gen_)
        } else {
            Arc::new(Partial::of_visit(pv, vb, p))
        }
    };
    // The total and, per output pixel, how many visits cover it (coverage is a union, so it
    // cannot be subtracted; a count can).
    let mut total = Partial::new(p, b);
    let mut n_cover = vec![0u32; p];
    for chunk in used.chunks(GROUP) {
        cancel.check()?;
        let parts: Vec<Arc<Partial>> = chunk.par_iter().map(|&i| partial(i)).collect();
        for part in &parts {
            let Partial {
                a,
                rhs,
                covered,
                flags,
                ..
            } = &mut total;
            part.add_rows(0, &mut a.a, b, rhs, covered, flags);
            for (j, &c) in part.covered.iter().enumerate() {
                n_cover[part.lo + j] += u32::from(c);
            }
        }
    }
    let fits: Vec<(usize, LooFit)> = used
        .par_iter()
        .map(|&i| -> Result<(usize, LooFit), CombineError> {
            cancel.check()?;
            let part = partial(i);
            let (pv, vb) = (&prep.visits[i], &bases[i]);
            let mut a = total.a.clone();
            let mut rhs = total.rhs.clone();
            let sb = part.a.b + 1;
            for jl in 0..part.rhs.len() {
                let j = part.lo + jl;
                let src = &part.a.a[jl * sb..(jl + 1) * sb];
                for (x, y) in a.a[j * (b + 1)..j * (b + 1) + sb].iter_mut().zip(src) {
                    *x -= y;
                }
                rhs[j] -= part.rhs[jl];
            }
            let covered: Vec<bool> = (0..p)
                .map(|j| {
                    let own = j >= part.lo
                        && j < part.lo + part.covered.len()
                        && part.covered[j - part.lo];
                    n_cover[j] > u32::from(own)
                })
                .collect();
            let unscored = || LooFit {
                prediction: vec![f64::NAN; pv.x_rest.len()],
                prediction_var: vec![f64::NAN; pv.x_rest.len()],
                chi2: f64::NAN,
                n_used: 0,
                chi2_nu: f64::NAN,
                n_unconstrained: used_pixels(pv, vb),
            };
            let Ok(no_data) = censor_functions(&mut a, &mut rhs, &covered, opts.ridge) else {
                return Ok((i, unscored()));
            };
            let Ok(ldl) = BandLdl::new(&a) else {
                return Ok((i, unscored()));
            };
            let theta = ldl.solve(&rhs);
            let mut model = LocalModel {
                map: map.clone(),
                kernel,
                theta,
                no_data,
            };
            // One band of A_{-i}^-1 serves both the output variance (for the poorly-constrained
            // rule) and the variance of the prediction at the visit's pixels (its design rows
            // span at most b + 1 functions, within the band).
            let bw = covariance_bandwidth(kernel, b, 0);
            let z = model_inverse_band(&ldl, &model.no_data, bw);
            let (_, band) = output_and_covariance_from(&z, bw, &model, kernel, 0);
            let zs = bw + 1;
            let weak = crate::combine::constrained::poorly_constrained(&band[0], &model.no_data);
            for (nd, w) in model.no_data.iter_mut().zip(weak) {
                *nd |= w;
            }
            let prediction = predict_cached(pv, &model, vb);
            let prediction_var = prediction_variance(pv, vb, &prediction, &z, zs, p);
            let fit = VisitFit::from_prediction(pv, prediction);
            // Predictive chi^2: the residual against the prediction from the other visits has
            // variance sigma^2 + var(prediction), not sigma^2 alone.
            let mut chi2 = 0.0;
            for k in 0..fit.prediction.len() {
                if pv.w[k] > 0.0 && pv.ivar[k] > 0.0 && fit.prediction[k].is_finite() {
                    let r = pv.y[k] - fit.prediction[k];
                    chi2 += r * r / (1.0 / pv.ivar[k] + prediction_var[k]);
                }
            }
            let n_unconstrained = used_pixels(pv, vb) - fit.n_used.min(used_pixels(pv, vb));
            Ok((
                i,
                LooFit {
                    prediction: fit.prediction,
                    prediction_var,
                    chi2,
                    n_used: fit.n_used,
                    chi2_nu: if fit.n_used > 0 {
                        chi2 / fit.n_used as f64
                    } else {
                        f64::NAN
                    },
                    n_unconstrained,
                },
            ))
        })
        .collect::<Result<_, _>>()?;
    cache.evict(gen_);
    let mut out = vec![None; prep.visits.len()];
    for (i, f) in fits {
        out[i] = Some(f);
    }
    Ok(out)
}

/// var(S f_{-i}(x - dx)) = S^2 g(x)^T A_{-i}^-1 g(x) at the visit's pixels from its cached
/// design rows and the band `z[j * zs + d] = (A_{-i}^-1)[j][j + d]` (NaN where not predicted).
pub(super) fn prediction_variance(
    pv: &PreparedVisit,
    vb: &VisitBasis,
    prediction: &[f64],
    z: &[f64],
    zs: usize,
    p: usize,
) -> Vec<f64> {
    let w = vb.width;
    (0..prediction.len())
        .map(|k| {
            if !prediction[k].is_finite() {
                return f64::NAN;
            }
            let j0 = vb.j0[k];
            let row = &vb.vals[k * w..(k + 1) * w];
            let mut q = 0.0;
            for m in 0..w {
                let j = j0 + m as i64;
                if j < 0 || j >= p as i64 {
                    continue;
                }
                let j = j as usize;
                let gm = f64::from(row[m]);
                let zr = &z[j * zs..(j + 1) * zs];
                let mut cross = 0.0;
                for (&g2, &zd) in row[m + 1..].iter().zip(&zr[1..]) {
                    cross += f64::from(g2) * zd;
                }
                q += gm * (gm * zr[0] + 2.0 * cross);
            }
            q * pv.s[k] * pv.s[k]
        })
        .collect()
}

/// Pixels of an included visit that enter the fit: positive weight and ivar, on the grid.
pub(super) fn used_pixels(pv: &PreparedVisit, vb: &VisitBasis) -> usize {
    (0..pv.x_rest.len())
        .filter(|&k| pv.w[k] > 0.0 && pv.ivar[k] > 0.0 && vb.j0[k] != NO_ROW)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inverse of a dense symmetric positive definite matrix by Gauss-Jordan elimination
    /// with partial pivoting (row-major, n x n).
    fn gauss_jordan_inverse(a: &[f64], n: usize) -> Vec<f64> {
        let mut m = a.to_vec();
        let mut inv = vec![0.0; n * n];
        for i in 0..n {
            inv[i * n + i] = 1.0;
        }
        for c in 0..n {
            let piv = (c..n)
                .max_by(|&x, &y| m[x * n + c].abs().total_cmp(&m[y * n + c].abs()))
                .expect("a row");
            for k in 0..n {
                m.swap(c * n + k, piv * n + k);
                inv.swap(c * n + k, piv * n + k);
            }
            let d = m[c * n + c];
            for k in 0..n {
                m[c * n + k] /= d;
                inv[c * n + k] /= d;
            }
            for r in 0..n {
                let f = m[r * n + c];
                if r == c || f == 0.0 {
                    continue;
                }
                for k in 0..n {
                    m[r * n + k] -= f * m[c * n + k];
                    inv[r * n + k] -= f * inv[c * n + k];
                }
            }
        }
        inv
    }

    /// The leave-one-out prediction variance S^2 g^T A_{-i}^-1 g against A_{-i} assembled densely
    /// from the other visits' design rows (not by subtraction), ridged as the fit ridges it, and
    /// inverted by Gauss-Jordan (not by the banded factor and the selected inverse).
    #[test]
    fn loo_prediction_variance_matches_a_dense_inverse() {
        use crate::synth::paper::{PaperParams, generate};
        let pp = PaperParams {
            n_visits: 4,
            velocity_amplitude_kms: 1.0,
            ..PaperParams::default()
        };
        let data = generate(&pp).expect("synthetic data");
        // An output grid well inside every visit's pixels, so that no function is censored.
        let step = 1.0 / pp.resolving_power;
        let ln10 = std::f64::consts::LN_10;
        let n_out = ((pp.x_max - pp.x_min) / step) as usize - 20;
        let settings = crate::settings::Settings {
            grid: crate::settings::GridSpec::LogLinear {
                log10_start: (pp.x_min + 10.0 * step) / ln10,
                log10_step: step / ln10,
                n: n_out,
            },
            ..crate::settings::Settings::default()
        };
        let prep = crate::combine::prepare(&data, &settings).expect("prepared");
        let opts = LocalOptions::default();
        let loo = leave_one_out(&prep, &BasisCache::new(), &opts, &Cancel::new()).expect("loo");
        let map = GridMap::new(&prep.grid);
        let p = prep.grid.len();
        let bases: Vec<VisitBasis> = prep
            .visits
            .iter()
            .map(|pv| VisitBasis::compute(pv, &map, opts.kernel))
            .collect();
        let row = |vb: &VisitBasis, k: usize| -> Vec<(usize, f64)> {
            let w = vb.width;
            (0..w)
                .filter_map(|m| {
                    let j = vb.j0[k] + m as i64;
                    (j >= 0 && j < p as i64).then(|| (j as usize, f64::from(vb.vals[k * w + m])))
                })
                .collect()
        };
        let mut compared = 0;
        for (i, fit) in loo.iter().enumerate() {
            let fit = fit.as_ref().expect("every visit is included");
            let mut a = vec![0.0; p * p];
            for (m, (pv, vb)) in prep.visits.iter().zip(&bases).enumerate() {
                if m == i {
                    continue;
                }
                for k in 0..pv.y.len() {
                    if vb.j0[k] == NO_ROW || pv.w[k] <= 0.0 {
                        continue;
                    }
                    let t = pv.w[k] * pv.s[k] * pv.s[k];
                    let g = row(vb, k);
                    for &(j1, g1) in &g {
                        for &(j2, g2) in &g {
                            a[j1 * p + j2] += t * g1 * g2;
                        }
                    }
                }
            }
            let mean_diag = (0..p).map(|j| a[j * p + j]).sum::<f64>() / p as f64;
            for j in 0..p {
                a[j * p + j] += opts.ridge * mean_diag;
            }
            let inv = gauss_jordan_inverse(&a, p);
            let (pv, vb) = (&prep.visits[i], &bases[i]);
            for k in 0..pv.y.len() {
                if !fit.prediction[k].is_finite() {
                    assert!(fit.prediction_var[k].is_nan());
                    continue;
                }
                let g = row(vb, k);
                let mut q = 0.0;
                for &(j1, g1) in &g {
                    for &(j2, g2) in &g {
                        q += g1 * g2 * inv[j1 * p + j2];
                    }
                }
                let want = q * pv.s[k] * pv.s[k];
                let got = fit.prediction_var[k];
                assert!(
                    (got - want).abs() <= 1e-7 * want.abs(),
                    "visit {i} pixel {k}: {got:e} against the dense {want:e}"
                );
                compared += 1;
            }
        }
        let pixels: usize = prep.visits.iter().map(|v| v.y.len()).sum();
        assert!(
            compared * 10 >= pixels * 8,
            "compared {compared} of {pixels} pixels"
        );
    }
}
