//! Per-visit pieces: one segment of one visit as standard practice sees it (divided by the
//! selection function, its good-pixel mask), the knots each mask mode interpolates through,
//! the data-independent stencil (interpolation rows and propagated flags), the interpolated
//! piece with its variances and covariances, and the pixel policy's inflation after resampling.

use std::sync::Arc;

use super::interpolators::{RowSet, dot, locate, redistribute_bad, rows_for};
use crate::combine::types::PreparedVisit;
use crate::model::pixel_policy::{InflateBit, sigma_factor};
use crate::settings::{Interpolator, MIN_SELECTION, StandardMask, StandardSettings};

/// Threshold of the conservative mask: keep output pixels with |b' - 1| below this.
const CONSERVATIVE_MASK_TOL: f64 = 0.03;

/// APOGEE's `maskcontrib` threshold for propagating a bit.
const MASKCONTRIB: f64 = 0.1;

/// One segment of one visit in increasing rest-frame x, as standard practice sees it: values
/// divided by S, variances (NaN where bad), the good-pixel mask and the pixel flags.
pub(super) struct SegmentInput {
    x: Vec<f64>,
    y: Vec<f64>,
    var: Vec<f64>,
    good: Vec<bool>,
    flags: Vec<u64>,
}

impl SegmentInput {
    /// `None` when the segment has fewer than two pixels or fewer than two good ones.
    pub(super) fn new(v: &PreparedVisit, seg_index: usize, inflate: &[InflateBit]) -> Option<Self> {
        let seg = v.visit.segments().get(seg_index)?.clone();
        // All pixels of the segment in increasing rest-frame x.
        let mut idx: Vec<usize> = seg.collect();
        if idx.len() >= 2 && v.x_rest[idx[0]] > v.x_rest[idx[idx.len() - 1]] {
            idx.reverse();
        }
        let x: Vec<f64> = idx.iter().map(|&i| v.x_rest[i]).collect();
        // Standard practice divides by S (see the `standard` module documentation).
        let mut y = Vec::with_capacity(idx.len());
        let mut var = Vec::with_capacity(idx.len());
        let mut good = Vec::with_capacity(idx.len());
        for &i in &idx {
            let s = v.s[i];
            let ok_s = s == 1.0 || (s.is_finite() && s >= MIN_SELECTION);
            let g = !v.masked[i] && v.ivar[i] > 0.0 && ok_s && v.y[i].is_finite();
            let (yi, vi) = if g {
                // The variance before the pixel policy's inflation (see `inflate_pieces`).
                let f = sigma_factor(v.visit.flags()[i], inflate);
                (v.y[i] / s, 1.0 / (v.ivar[i] * s * s * f * f))
            } else {
                (
                    if v.y[i].is_finite() && ok_s {
                        v.y[i] / s
                    } else {
                        0.0
                    },
                    f64::NAN,
                )
            };
            y.push(yi);
            var.push(vi);
            good.push(g);
        }
        let flags = idx.iter().map(|&i| v.visit.flags()[i]).collect();
        let n_good = good.iter().filter(|&&g| g).count();
        if n_good < 2 || x.len() < 2 {
            return None;
        }
        Some(Self {
            x,
            y,
            var,
            good,
            flags,
        })
    }
}

/// The knots a mask mode interpolates through, and the x range it gives values for.
pub(super) struct Knots {
    x: Vec<f64>,
    y: Vec<f64>,
    var: Vec<f64>,
    good: Vec<bool>,
    pub(super) lo: f64,
    pub(super) hi: f64,
}

impl Knots {
    /// Every pixel of the segment, bad ones included, a non-finite variance replaced by `fill`.
    fn every_pixel(inp: &SegmentInput, fill: f64, lo: f64, hi: f64) -> Self {
        Self {
            x: inp.x.clone(),
            y: inp.y.clone(),
            var: inp
                .var
                .iter()
                .map(|&v| if v.is_finite() { v } else { fill })
                .collect(),
            good: inp.good.clone(),
            lo,
            hi,
        }
    }

    pub(super) fn new(inp: &SegmentInput, ss: &StandardSettings) -> Self {
        let n = inp.x.len();
        match ss.mask {
            StandardMask::Drop => {
                let sel: Vec<usize> = (0..n).filter(|&k| inp.good[k]).collect();
                let (lo, hi) = (inp.x[sel[0]], inp.x[sel[sel.len() - 1]]);
                if ss.interpolator == Interpolator::DampedSinc {
                    // The sinc works on all pixels; bad ones get redistributed weights (their
                    // variance never counts: 0, not NaN, so zero weights stay harmless).
                    Self::every_pixel(inp, 0.0, lo, hi)
                } else {
                    Self {
                        x: sel.iter().map(|&k| inp.x[k]).collect(),
                        y: sel.iter().map(|&k| inp.y[k]).collect(),
                        var: sel.iter().map(|&k| inp.var[k]).collect(),
                        good: vec![true; sel.len()],
                        lo,
                        hi,
                    }
                }
            }
            StandardMask::Conservative => {
                let mut gv: Vec<f64> = (0..n)
                    .filter(|&k| inp.good[k])
                    .map(|k| inp.var[k])
                    .collect();
                gv.sort_by(f64::total_cmp);
                let med = gv[gv.len() / 2];
                Self::every_pixel(inp, med, inp.x[0], inp.x[n - 1])
            }
        }
    }
}

/// Pixels per resolution element for the damped sinc (see the `standard` module documentation).
fn sinc_nres(v: &PreparedVisit, seg_index: usize, x_sorted: &[f64]) -> f64 {
    if let Some(sigma) = v.visit.meta.lsf_sigma_ln {
        let mut steps: Vec<f64> = x_sorted.windows(2).map(|p| p[1] - p[0]).collect();
        if !steps.is_empty() && sigma > 0.0 {
            steps.sort_by(f64::total_cmp);
            let step = steps[steps.len() / 2];
            if step > 0.0 {
                return (2.354_820_045 * sigma / step).clamp(1.0, 20.0);
            }
        }
    }
    if v.visit.segments().len() == 3 {
        return [5.0, 4.25, 3.5][seg_index.min(2)];
    }
    2.0
}

/// The part of a piece that does not depend on the data values: its interpolation rows onto
/// output pixels `l0..l0 + rows.len()` and its propagated flags. A function of the visit's
/// wavelengths and flags, its shift, its good-pixel mask, the grid and the interpolator.
#[derive(Debug)]
pub(super) struct Stencil {
    l0: usize,
    rows: RowSet,
    /// Flags over `flag_l0..flag_l0 + flags.len()` (the segment's whole range).
    flag_l0: usize,
    flags: Vec<u64>,
}

impl Stencil {
    /// The rows onto `grid_x[l0..l1]` (non-empty) and the flags of the whole segment.
    pub(super) fn new(
        v: &PreparedVisit,
        seg_index: usize,
        inp: &SegmentInput,
        knots: &Knots,
        grid_x: &[f64],
        ss: &StandardSettings,
        (l0, l1): (usize, usize),
    ) -> Self {
        let (interpolator, mask) = (ss.interpolator, ss.mask);
        let nres = if interpolator == Interpolator::DampedSinc {
            sinc_nres(v, seg_index, &knots.x)
        } else {
            2.0
        };
        let mut rows = rows_for(&knots.x, &grid_x[l0..l1], interpolator, nres);
        if interpolator == Interpolator::DampedSinc && mask == StandardMask::Drop {
            rows = redistribute_bad(&rows, &knots.x, &knots.good);
        }
        // Flags: linear interpolation of each bit plane over all pixels, threshold 0.1.
        let x_all = &inp.x;
        let flag_l0 = grid_x.partition_point(|&g| g < x_all[0]);
        let flag_l1 = grid_x.partition_point(|&g| g <= x_all[x_all.len() - 1]);
        let flags = grid_x[flag_l0..flag_l1.max(flag_l0)]
            .iter()
            .map(|&q| {
                let (i, t) = locate(x_all, q);
                let mut f = 0;
                if 1.0 - t > MASKCONTRIB {
                    f |= inp.flags[i];
                }
                if t > MASKCONTRIB {
                    f |= inp.flags[i + 1];
                }
                f
            })
            .collect();
        Self {
            l0,
            rows,
            flag_l0,
            flags,
        }
    }

    pub(super) fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + 16 * self.rows.len()
            + 8 * self.rows.w.len()
            + 8 * self.flags.len()
    }
}

/// One segment of one visit interpolated onto the output pixels `l0..l0 + value.len()`.
#[derive(Debug, Default)]
pub(super) struct Piece {
    pub(super) l0: usize,
    pub(super) value: Vec<f64>,
    pub(super) var: Vec<f64>,
    pub(super) valid: Vec<bool>,
    /// `cov[k - 1][i]` = covariance of output pixels l0 + i and l0 + i + k (k = 1..=lags).
    pub(super) cov: Vec<Vec<f64>>,
    /// Flags over `flag_l0..flag_l0 + flags.len()` (the segment's whole range).
    pub(super) flag_l0: usize,
    pub(super) flags: Vec<u64>,
}

impl Piece {
    /// Apply a stencil to the knots' values and variances.
    pub(super) fn new(st: &Stencil, knots: &Knots, mask: StandardMask, lags: usize) -> Self {
        let rows = &st.rows;
        let n_out = rows.len();
        let mut value = Vec::with_capacity(n_out);
        let mut var = Vec::with_capacity(n_out);
        let mut valid = Vec::with_capacity(n_out);
        let good_f: Vec<f64> = knots
            .good
            .iter()
            .map(|&g| if g { 1.0 } else { 0.0 })
            .collect();
        for l in 0..n_out {
            let (start, w) = rows.row(l);
            value.push(dot(start, w, &knots.y));
            var.push(
                w.iter()
                    .zip(&knots.var[start..])
                    .map(|(a, s)| a * a * s)
                    .sum(),
            );
            valid.push(match mask {
                StandardMask::Drop => true,
                StandardMask::Conservative => {
                    (dot(start, w, &good_f) - 1.0).abs() < CONSERVATIVE_MASK_TOL
                }
            });
        }
        let cov = (1..=lags)
            .map(|k| {
                (0..n_out)
                    .map(|i| {
                        if i + k >= n_out {
                            return 0.0;
                        }
                        let (sa, wa) = rows.row(i);
                        let (sb, wb) = rows.row(i + k);
                        let s = sa.max(sb);
                        let e = (sa + wa.len()).min(sb + wb.len());
                        if e <= s {
                            return 0.0;
                        }
                        wa[s - sa..e - sa]
                            .iter()
                            .zip(&wb[s - sb..e - sb])
                            .zip(&knots.var[s..e])
                            .map(|((a, b), v)| a * b * v)
                            .sum()
                    })
                    .collect()
            })
            .collect();
        Self {
            l0: st.l0,
            value,
            var,
            valid,
            cov,
            flag_l0: st.flag_l0,
            flags: st.flags.clone(),
        }
    }

    pub(super) fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.value.len() * (8 + 8 + 1 + 8 * self.cov.len())
            + 8 * self.flags.len()
    }
}

/// The pixel policy applied after resampling, as the APOGEE pipeline's visit combination does
/// (sdss/apogee_drp `apred/rv.py` `visitcomb`: the errors of resampled pixels whose propagated
/// PERSIST_* or SIG_SKYLINE bit is set are multiplied by the bit's factor): each output pixel's
/// sigma is multiplied by the factors of the flags the piece propagated to it (the `maskcontrib`
/// rule), so the variance by F_l^2 and the covariance of pixels l, l + k by F_l F_(l+k).
/// Inflating the input pixels before the sinc instead would spread every factor over the
/// kernel's 21 nres / 2 taps and down-weight far more of the spectrum than the pipeline does.
pub(super) fn inflate_piece(p: Arc<Piece>, inflate: &[InflateBit]) -> Arc<Piece> {
    if inflate.is_empty() {
        return p;
    }
    let factor = |i: usize| -> f64 {
        (p.l0 + i)
            .checked_sub(p.flag_l0)
            .and_then(|j| p.flags.get(j))
            .map_or(1.0, |&f| sigma_factor(f, inflate))
    };
    let f: Vec<f64> = (0..p.value.len()).map(factor).collect();
    if f.iter().all(|&x| x == 1.0) {
        return p;
    }
    let var = p.var.iter().zip(&f).map(|(v, a)| v * a * a).collect();
    let cov = p
        .cov
        .iter()
        .enumerate()
        .map(|(km1, row)| {
            let k = km1 + 1;
            row.iter()
                .enumerate()
                .map(|(i, c)| c * f[i] * f.get(i + k).copied().unwrap_or(1.0))
                .collect()
        })
        .collect();
    Arc::new(Piece {
        l0: p.l0,
        value: p.value.clone(),
        var,
        valid: p.valid.clone(),
        cov,
        flag_l0: p.flag_l0,
        flags: p.flags.clone(),
    })
}
