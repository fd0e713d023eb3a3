//! The average of the pieces per output pixel: uniform or inverse-variance weights times the
//! visit's weight multiplier, the variance of the weighted mean and its covariance band, and
//! the ORed flags. Parallel over runs of output pixels, each pixel summing its pieces in
//! dataset order.

use std::sync::Arc;

use rayon::prelude::*;

use super::pieces::Piece;
use crate::settings::{StandardSettings, Weighting};

/// Output pixels per parallel task of the average.
const AVERAGE_CHUNK: usize = 1024;

/// Sums of one run of output pixels (see [`average`]).
struct Sums {
    w: Vec<f64>,
    wy: Vec<f64>,
    /// `num[k][l]` = sum over pieces of u_l u_(l+k) C[l, l+k].
    num: Vec<Vec<f64>>,
    flags: Vec<u64>,
}

/// The averaged spectrum on the output grid, with the covariance band (`band[0]` is `var`).
pub(super) struct Average {
    pub(super) flux: Vec<f64>,
    pub(super) var: Vec<f64>,
    pub(super) band: Vec<Vec<f64>>,
    pub(super) flags: Vec<u64>,
    pub(super) no_data: Vec<bool>,
}

/// The weighted average of `pieces` (each with its visit's weight multiplier) on `m` output
/// pixels, with `lags` covariance lags.
pub(super) fn average(
    pieces: &[(Arc<Piece>, f64)],
    ss: &StandardSettings,
    lags: usize,
    m: usize,
) -> Average {
    let weight = |p: &Piece, i: usize, visit_weight: f64| -> f64 {
        match ss.weighting {
            Weighting::Uniform => visit_weight,
            // The pipeline's row 0 is an inverse-variance mean of pieces already rescaled to
            // the mean continuum (`continuum::to_mean_continuum`).
            Weighting::InverseVariance | Weighting::ApogeePipeline => {
                let v = p.var[i];
                if v > 0.0 && v.is_finite() {
                    visit_weight / v
                } else {
                    0.0
                }
            }
        }
    };
    // Each piece's averaging weight per output pixel, once, 0 where the pixel is not valid: a
    // zero weight adds exactly 0 to every sum below (all terms are finite), which is what
    // skipping the pixel did, and lets the sums run as plain loops over slices.
    let weights: Vec<Vec<f64>> = pieces
        .par_iter()
        .map(|(p, vw)| {
            (0..p.value.len())
                .map(|i| if p.valid[i] { weight(p, i, *vw) } else { 0.0 })
                .collect()
        })
        .collect();
    let sums: Vec<Sums> = (0..m.div_ceil(AVERAGE_CHUNK))
        .into_par_iter()
        .map(|c| {
            let (a, b) = (c * AVERAGE_CHUNK, ((c + 1) * AVERAGE_CHUNK).min(m));
            let mut s = Sums {
                w: vec![0.0; b - a],
                wy: vec![0.0; b - a],
                num: vec![vec![0.0; b - a]; lags + 1],
                flags: vec![0; b - a],
            };
            for ((p, _), u) in pieces.iter().zip(&weights) {
                let (f0, f1) = (a.max(p.flag_l0), b.min(p.flag_l0 + p.flags.len()));
                if f0 < f1 {
                    let src = &p.flags[f0 - p.flag_l0..f1 - p.flag_l0];
                    for (d, f) in s.flags[f0 - a..f1 - a].iter_mut().zip(src) {
                        *d |= f;
                    }
                }
                let n = p.value.len();
                let (l0, l1) = (a.max(p.l0), b.min(p.l0 + n));
                if l0 >= l1 {
                    continue;
                }
                let (i0, i1) = (l0 - p.l0, l1 - p.l0);
                let (dst, src) = (l0 - a..l1 - a, i0..i1);
                for (((w, wy), n0), ((&ui, &yi), &vi)) in s.w[dst.clone()]
                    .iter_mut()
                    .zip(&mut s.wy[dst.clone()])
                    .zip(&mut s.num[0][dst])
                    .zip(
                        u[src.clone()]
                            .iter()
                            .zip(&p.value[src.clone()])
                            .zip(&p.var[src]),
                    )
                {
                    *w += ui;
                    *wy += ui * yi;
                    *n0 += ui * ui * vi;
                }
                for (k, nk) in s.num.iter_mut().enumerate().skip(1) {
                    // Pairs (i, i + k) inside the piece.
                    let i1k = i1.min(n.saturating_sub(k));
                    if i0 >= i1k {
                        continue;
                    }
                    let dst = &mut nk[l0 - a..l0 - a + (i1k - i0)];
                    for (((d, &ui), &uk), &c) in dst
                        .iter_mut()
                        .zip(&u[i0..i1k])
                        .zip(&u[i0 + k..i1k + k])
                        .zip(&p.cov[k - 1][i0..i1k])
                    {
                        *d += ui * uk * c;
                    }
                }
            }
            s
        })
        .collect();
    let mut sum_w = Vec::with_capacity(m);
    let mut sum_wy = Vec::with_capacity(m);
    let mut num: Vec<Vec<f64>> = vec![Vec::with_capacity(m); lags + 1];
    let mut flags = Vec::with_capacity(m);
    for s in sums {
        sum_w.extend(s.w);
        sum_wy.extend(s.wy);
        for (nk, sk) in num.iter_mut().zip(s.num) {
            nk.extend(sk);
        }
        flags.extend(s.flags);
    }
    let no_data: Vec<bool> = sum_w.iter().map(|&w| w <= 0.0).collect();
    let flux: Vec<f64> = (0..m)
        .map(|l| {
            if no_data[l] {
                f64::NAN
            } else {
                sum_wy[l] / sum_w[l]
            }
        })
        .collect();
    let band: Vec<Vec<f64>> = (0..=lags)
        .map(|k| {
            (0..m)
                .map(|l| {
                    if l + k >= m || no_data[l] || no_data[l + k] {
                        f64::NAN
                    } else {
                        num[k][l] / (sum_w[l] * sum_w[l + k])
                    }
                })
                .collect()
        })
        .collect();
    let var = band.first().cloned().unwrap_or_else(|| vec![f64::NAN; m]);
    Average {
        flux,
        var,
        band,
        flags,
        no_data,
    }
}
