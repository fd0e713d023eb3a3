//! Standard practice: shift each visit, interpolate it onto the output grid, average.
//!
//! The comparison method of Hogg & Casey (2024) §4. Each included visit is split into its
//! segments (chips, cameras); each segment ("piece") is interpolated, at its rest-frame positions
//! `PreparedVisit::x_rest`, onto the output pixels it covers; the pieces are averaged per output
//! pixel. Every interpolator here is linear in the data, so each output value of a piece is
//! `sum_j a_lj y_j` over the piece's input pixels, and the method propagates the input variances
//! exactly: `var_l = sum_j a_lj^2 var_j` and the covariance band `C[l, l+k] = sum_j a_lj a_(l+k)j
//! var_j` (covariances between pieces are zero: they share no pixel). The natural cubic spline's
//! weights come from rows of the inverse of its tridiagonal system, which decay geometrically;
//! they are truncated below 1e-13 of the leading entry (exact to rounding for the data).
//!
//! Choices, documented:
//! - Interpolators: natural cubic spline (the paper's method; scipy's `interp1d(kind="cubic")`
//!   uses not-a-knot ends instead, which differs only near the ends), linear, and the APOGEE
//!   pipeline's damped sinc (`sincint`: kernel exp(-(u/(3.25 nres/2))^2) sinc(u) / (nres/2) with
//!   u = pixel offset / (nres/2), 21 nres/2 taps). `nres` (pixels per resolution element) comes
//!   from the visit's LSF sigma when known, else APOGEE's per-chip 5 / 4.25 / 3.5 for a 3-chip
//!   visit, else 2 (Nyquist). The fractional pixel position of an output pixel is linear in
//!   ln(lambda) between the two neighbouring pixels (exact for log-uniform pixels).
//! - Masks: `Drop` interpolates the good pixels only and gives no value outside the first..last
//!   good pixel of a piece (Casey 2025; the revised figures). The damped sinc works on the
//!   pixel grid, so in `Drop` mode a bad pixel's kernel weight goes to its two nearest good
//!   neighbours by linear interpolation (the APOGEE pipeline replaces bad pixels by a smoothed
//!   spectrum instead, which is not linear in the data). `Conservative` interpolates every pixel,
//!   bad ones included (non-finite values enter as 0), interpolates the 0/1 good-pixel mask with
//!   the same weights, and keeps an output pixel only where |b' - 1| < 0.03 (Hogg 2024). For the
//!   variance, a bad pixel counts with the piece's median good-pixel variance.
//! - Selection function: standard practice cannot multiply a model by S, so in `Multiply` mode it
//!   divides the data by S (flux / S, ivar S^2; S < `MIN_SELECTION` is bad). That is what standard
//!   practice does with telluric-corrected spectra.
//! - Averaging: `Uniform` = the plain mean of the pieces covering a pixel (the paper's code);
//!   `InverseVariance` weights each piece by 1 / its propagated variance. Either weight is
//!   multiplied by the visit's weight multiplier k, in the forward model's sense (its
//!   w = ivar * k): an integer k averages as if the visit were in the data k times, and k -> 0
//!   approaches leaving it out. The variance is that of the weighted mean,
//!   `C[l, l+k] = sum u_l u_(l+k) C_piece[l, l+k] / (sum u_l sum u_(l+k))` with each piece's
//!   actual noise (putting the visit in the data k times would instead count its noise as k
//!   independent copies).
//! - Flags: APOGEE's `maskcontrib` rule: each bit plane is interpolated linearly over all pixels
//!   of the piece and the bit is set where the result exceeds 0.1; pieces are ORed.
//! - Per-visit predictions interpolate the combined result back to each visit's rest positions
//!   with a natural cubic spline, times S.
//!
//! Speed (the window recomputes on every slider step): the per-piece interpolation is memoised
//! in a [`StandardCache`] (rows keyed by the visit, its shift, its good-pixel mask, the grid and
//! the interpolator; interpolated values and (co)variances additionally by a hash of the data),
//! so a change of visit weights, inclusion or the weighting only re-averages. Pieces are computed
//! in parallel and the average runs in parallel over runs of output pixels, each pixel summing
//! its pieces in dataset order: results do not depend on the thread count or on the cache.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::{Cancel, CombineError, MethodResult, Prepared, PreparedVisit, SpectrumModel};
use crate::model::Visit;
use crate::settings::{Interpolator, MIN_SELECTION, StandardMask, StandardSettings, Weighting};

/// Relative truncation of the spline weights.
const SPLINE_TOL: f64 = 1e-12;

/// Threshold of the conservative mask: keep output pixels with |b' - 1| below this.
const CONSERVATIVE_MASK_TOL: f64 = 0.03;

/// APOGEE's `maskcontrib` threshold for propagating a bit.
const MASKCONTRIB: f64 = 0.1;

/// A sparse row of an interpolation matrix: `weights[i]` multiplies knot `start + i`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    /// Index of the first knot with a weight.
    pub start: usize,
    /// Weights of knots `start..start + weights.len()`.
    pub weights: Vec<f64>,
}

impl Row {
    /// `sum_i w_i v[start + i]`.
    #[must_use]
    pub fn dot(&self, v: &[f64]) -> f64 {
        dot(self.start, &self.weights, v)
    }
}

fn dot(start: usize, w: &[f64], v: &[f64]) -> f64 {
    w.iter()
        .zip(&v[start..start + w.len()])
        .map(|(a, b)| a * b)
        .sum()
}

/// Many sparse rows stored flat (one allocation for all; the hot path builds thousands).
#[derive(Clone, Debug, Default)]
struct RowSet {
    start: Vec<usize>,
    off: Vec<usize>,
    w: Vec<f64>,
}

impl RowSet {
    fn with_capacity(rows: usize, per_row: usize) -> Self {
        let mut off = Vec::with_capacity(rows + 1);
        off.push(0);
        Self {
            start: Vec::with_capacity(rows),
            off,
            w: Vec::with_capacity(rows * per_row),
        }
    }

    fn len(&self) -> usize {
        self.start.len()
    }

    fn row(&self, l: usize) -> (usize, &[f64]) {
        (self.start[l], &self.w[self.off[l]..self.off[l + 1]])
    }

    /// Open a new row covering `start..start + len` (zero weights); returns its weights.
    fn push_zeros(&mut self, start: usize, len: usize) -> &mut [f64] {
        let o = self.w.len();
        self.w.resize(o + len, 0.0);
        self.start.push(start);
        self.off.push(o + len);
        &mut self.w[o..]
    }

    fn to_rows(&self) -> Vec<Row> {
        (0..self.len())
            .map(|l| {
                let (start, w) = self.row(l);
                Row {
                    start,
                    weights: w.to_vec(),
                }
            })
            .collect()
    }
}

/// What the natural cubic spline's weights need, per knot system (see [`CubicWeights::row`]).
///
/// Interior unknowns q = 0..m are the second derivatives M_(q+1) (M_0 = M_(n-1) = 0); they solve
/// S M = r with diagonal d_q = 2(h_q + h_(q+1)), off-diagonal S[q, q+1] = h_(q+1) and
/// r_i = 6[(y_(i+1) - y_i)/h_i - (y_i - y_(i-1))/h_(i-1)]. The inverse G = S^-1 has the
/// Green's-function structure G[p-1, q] = -lo_p G[p, q] below the diagonal and
/// G[p+1, q] = -up_p G[p, q] above it, with the ratios of the forward and backward
/// eliminations, and G[q, q] = 1 / (F_q + B_q - d_q). So a spline value, a combination of two
/// adjacent rows of G, is two products of ratios that decay at least geometrically
/// (|ratio| < 1/2); they are cut below `SPLINE_TOL` of the leading entry.
struct CubicWeights {
    lo: Vec<f64>,
    up: Vec<f64>,
    diag: Vec<f64>,
    six_over_h: Vec<f64>,
}

impl CubicWeights {
    /// Knots must be strictly increasing, at least 3.
    fn new(x: &[f64]) -> Self {
        let n = x.len();
        let h: Vec<f64> = x.windows(2).map(|p| p[1] - p[0]).collect();
        let six_over_h = h.iter().map(|v| 6.0 / v).collect();
        let m = n - 2;
        let d: Vec<f64> = (0..m).map(|q| 2.0 * (h[q] + h[q + 1])).collect();
        let e = |q: usize| h[q + 1];
        let mut fwd = vec![0.0; m];
        let mut lo = vec![0.0; m];
        fwd[0] = d[0];
        for q in 1..m {
            lo[q] = e(q - 1) / fwd[q - 1];
            fwd[q] = d[q] - lo[q] * e(q - 1);
        }
        let mut bwd = vec![0.0; m];
        let mut up = vec![0.0; m];
        bwd[m - 1] = d[m - 1];
        for q in (0..m - 1).rev() {
            up[q] = e(q) / bwd[q + 1];
            bwd[q] = d[q] - up[q] * e(q);
        }
        let diag = (0..m).map(|q| 1.0 / (fwd[q] + bwd[q] - d[q])).collect();
        Self {
            lo,
            up,
            diag,
            six_over_h,
        }
    }

    /// Push the weights of the spline value in interval `i` at fraction `t` (knots i, i+1).
    fn row(&self, out: &mut RowSet, scratch: &mut Vec<f64>, i: usize, t: f64, h: f64) {
        let m = self.diag.len();
        let (a, b) = (1.0 - t, t);
        let (ca, cb) = ((a * a * a - a) * h * h / 6.0, (b * b * b - b) * h * h / 6.0);
        // M_i is interior q = i - 1 (if 1 <= i <= m), M_(i+1) is q = i (if i < m).
        let has_a = i >= 1;
        let has_b = i < m;
        // G[i-1, i-1], G[i-1, i] = G[i, i-1], G[i, i].
        let g_aa = if has_a { self.diag[i - 1] } else { 0.0 };
        let g_bb = if has_b { self.diag[i] } else { 0.0 };
        let g_ab = if has_a && has_b {
            -self.up[i - 1] * g_aa
        } else {
            0.0
        };
        // Coefficients of the interior entries p <= i-1 (chain downwards) and p >= i (upwards).
        let low = ca * g_aa + cb * g_ab;
        let high = ca * g_ab + cb * g_bb;
        let cut = SPLINE_TOL * low.abs().max(high.abs());
        // scratch = c_p for p = plo..phi, built as [downward chain reversed, upward chain].
        scratch.clear();
        let mut plo = i;
        if has_a {
            let mut c = low;
            let mut p = i - 1;
            scratch.push(c);
            plo = p;
            while p > 0 {
                c *= -self.lo[p];
                if c.abs() < cut {
                    break;
                }
                scratch.push(c);
                p -= 1;
                plo = p;
            }
            scratch.reverse();
        }
        if has_b {
            let mut c = high;
            let mut p = i;
            scratch.push(c);
            while p + 1 < m {
                c *= -self.up[p];
                if c.abs() < cut {
                    break;
                }
                scratch.push(c);
                p += 1;
            }
        }
        let phi = plo + scratch.len(); // exclusive, interior indices
        // Knots touched: plo..phi+2 (the stencil of r) and i, i+1.
        let klo = plo.min(i);
        let khi = (phi + 2).max(i + 2);
        let row = out.push_zeros(klo, khi - klo);
        row[i - klo] += a;
        row[i + 1 - klo] += b;
        for (k, c) in scratch.iter().enumerate() {
            let knot = plo + k + 1;
            let (u, v) = (c * self.six_over_h[knot], c * self.six_over_h[knot - 1]);
            let base = knot - 1 - klo;
            row[base + 2] += u;
            row[base + 1] -= u + v;
            row[base] += v;
        }
    }
}

/// Where `xq` falls among increasing knots `x`: the interval `i` with x_i <= xq <= x_(i+1) and
/// the fraction t = (xq - x_i) / (x_(i+1) - x_i). Clamped to the first / last interval.
fn locate(x: &[f64], xq: f64) -> (usize, f64) {
    let n = x.len();
    let i = x.partition_point(|&v| v <= xq).saturating_sub(1).min(n - 2);
    (i, (xq - x[i]) / (x[i + 1] - x[i]))
}

/// [`locate`] starting from interval `hint` (updated; `usize::MAX` = none): a walk of a few
/// steps for nearby queries, else the binary search. Gives exactly [`locate`]'s answer: the
/// interval is the unique i in 0..=n-2 with (i = 0 or x_i <= xq) and (i = n-2 or xq < x_(i+1)).
fn locate_hinted(x: &[f64], xq: f64, hint: &mut usize) -> (usize, f64) {
    let n = x.len();
    let mut i = (*hint).min(n - 2);
    let mut steps = 0;
    while i + 2 < n && x[i + 1] <= xq && steps < 8 {
        i += 1;
        steps += 1;
    }
    while i > 0 && x[i] > xq && steps < 8 {
        i -= 1;
        steps += 1;
    }
    let found = (i == 0 || x[i] <= xq) && (i + 2 >= n || xq < x[i + 1]);
    let (i, t) = if found {
        (i, (xq - x[i]) / (x[i + 1] - x[i]))
    } else {
        locate(x, xq)
    };
    *hint = i;
    (i, t)
}

/// Rows for query points `xq` (increasing, inside the knot range) over increasing knots `x`.
fn rows_for(x: &[f64], xq: &[f64], interpolator: Interpolator, nres: f64) -> RowSet {
    let n = x.len();
    let mut out = RowSet::with_capacity(xq.len(), 8);
    if n < 2 {
        for _ in xq {
            out.push_zeros(0, 0);
        }
        return out;
    }
    match interpolator {
        Interpolator::CubicSpline if n >= 3 => {
            let cw = CubicWeights::new(x);
            let mut scratch = Vec::with_capacity(64);
            for &q in xq {
                let (i, t) = locate(x, q);
                cw.row(&mut out, &mut scratch, i, t, x[i + 1] - x[i]);
            }
        }
        Interpolator::DampedSinc => {
            for &q in xq {
                let (i, t) = locate(x, q);
                push_sinc_row(&mut out, n, i as f64 + t, nres);
            }
        }
        _ => {
            for &q in xq {
                let (i, t) = locate(x, q);
                let row = out.push_zeros(i, 2);
                row[0] = 1.0 - t;
                row[1] = t;
            }
        }
    }
    out
}

/// Interpolation rows for query points `xq` (inside the knot range) over increasing knots `x`
/// with the linear or natural cubic interpolator, or the damped sinc with 2 pixels per
/// resolution element (in pixel-index units).
#[must_use]
pub fn interpolation_rows(x: &[f64], xq: &[f64], interpolator: Interpolator) -> Vec<Row> {
    rows_for(x, xq, interpolator, 2.0).to_rows()
}

/// The APOGEE pipeline's damped-sinc weights (`sincint`) at fractional pixel position `pos` of
/// an `n`-pixel array with `nres` pixels per resolution element. Taps outside the array are
/// dropped, as in `sincint`.
#[must_use]
pub fn sinc_row(n: usize, pos: f64, nres: f64) -> Row {
    let mut set = RowSet::with_capacity(1, 64);
    push_sinc_row(&mut set, n, pos, nres);
    set.to_rows().pop().unwrap_or_default()
}

fn push_sinc_row(out: &mut RowSet, n: usize, pos: f64, nres: f64) {
    let half = nres / 2.0;
    let dampfac = 3.25 * half;
    let mut ksize = (21.0 * half) as usize;
    if ksize.is_multiple_of(2) {
        ksize += 1;
    }
    let nhalf = ksize as i64 / 2;
    let ix = pos.floor();
    let fx = pos - ix;
    let ix = ix as i64;
    let first = (ix - nhalf).max(0);
    let last = (ix - nhalf + ksize as i64).min(n as i64); // exclusive
    if last <= first {
        out.push_zeros(0, 0);
        return;
    }
    let row = out.push_zeros(first as usize, (last - first) as usize);
    // Recurrences instead of one exp and one sin per tap: xk_m = (m - nhalf - fx) / half
    // steps by d = 1/half; sin(pi xk) rotates by pi d; the Gaussian's ratio by exp(-2 e^2).
    let m0 = first - (ix - nhalf);
    let d = 1.0 / half;
    let xk0 = (m0 as f64 - nhalf as f64 - fx) * d;
    let (mut sn, mut cs) = (std::f64::consts::PI * xk0).sin_cos();
    let (ds, dc) = (std::f64::consts::PI * d).sin_cos();
    let e = d / dampfac;
    let u0 = xk0 / dampfac;
    let mut gauss = (-(u0 * u0)).exp();
    let mut ratio = (-(2.0 * u0 * e + e * e)).exp();
    let q = (-2.0 * e * e).exp();
    for (k, slot) in row.iter_mut().enumerate() {
        let xk = xk0 + k as f64 * d;
        let u2 = std::f64::consts::PI * xk;
        // Near the centre the recurrence's absolute error would dominate sn / u2.
        let sinc = if u2.abs() < 1e-12 {
            1.0
        } else if u2.abs() < 1.0 {
            u2.sin() / u2
        } else {
            sn / u2
        };
        *slot = gauss * sinc / half;
        let s_next = sn * dc + cs * ds;
        cs = cs * dc - sn * ds;
        sn = s_next;
        gauss *= ratio;
        ratio *= q;
    }
}

/// A natural cubic spline through (x, y), evaluated exactly (Thomas algorithm).
#[derive(Clone, Debug, PartialEq)]
pub struct NaturalSpline {
    x: Vec<f64>,
    y: Vec<f64>,
    m: Vec<f64>,
}

impl NaturalSpline {
    /// The spline through strictly increasing `x` and values `y` (same length, at least 2).
    /// Returns `None` otherwise.
    #[must_use]
    pub fn new(x: Vec<f64>, y: Vec<f64>) -> Option<Self> {
        let n = x.len();
        if n < 2 || y.len() != n || !x.windows(2).all(|p| p[1] > p[0]) {
            return None;
        }
        let mut m = vec![0.0; n];
        if n >= 3 {
            let h: Vec<f64> = x.windows(2).map(|p| p[1] - p[0]).collect();
            let k = n - 2;
            let mut c = vec![0.0; k];
            let mut r = vec![0.0; k];
            for q in 0..k {
                let i = q + 1;
                let diag = 2.0 * (h[i - 1] + h[i]);
                let rhs = 6.0 * ((y[i + 1] - y[i]) / h[i] - (y[i] - y[i - 1]) / h[i - 1]);
                if q == 0 {
                    c[q] = h[i] / diag;
                    r[q] = rhs / diag;
                } else {
                    let den = diag - h[i - 1] * c[q - 1];
                    c[q] = h[i] / den;
                    r[q] = (rhs - h[i - 1] * r[q - 1]) / den;
                }
            }
            for q in (0..k).rev() {
                m[q + 1] = r[q] - if q + 1 < k { c[q] * m[q + 2] } else { 0.0 };
            }
        }
        Some(Self { x, y, m })
    }

    /// The knots' range.
    #[must_use]
    pub fn range(&self) -> (f64, f64) {
        (self.x[0], self.x[self.x.len() - 1])
    }

    /// The knot interval i holding `xq` (searched from `hint`, updated), its width h and the
    /// weights a = 1 - t, b = t of its ends; `None` outside the knots' range.
    fn interval(&self, xq: f64, hint: &mut usize) -> Option<(usize, f64, f64, f64)> {
        let (lo, hi) = self.range();
        if !(xq >= lo && xq <= hi) {
            return None;
        }
        let (i, t) = locate_hinted(&self.x, xq, hint);
        Some((i, self.x[i + 1] - self.x[i], 1.0 - t, t))
    }

    /// Value at `xq` (NaN outside the knots' range).
    #[must_use]
    pub fn eval(&self, xq: f64) -> f64 {
        let mut hint = usize::MAX;
        self.eval_hinted(xq, &mut hint)
    }

    /// [`NaturalSpline::eval`] starting the interval search at `hint` (updated): a short walk
    /// for sorted queries instead of a binary search each, with the same result.
    fn eval_hinted(&self, xq: f64, hint: &mut usize) -> f64 {
        let Some((i, h, a, b)) = self.interval(xq, hint) else {
            return f64::NAN;
        };
        a * self.y[i]
            + b * self.y[i + 1]
            + ((a * a * a - a) * self.m[i] + (b * b * b - b) * self.m[i + 1]) * h * h / 6.0
    }

    /// Derivative at `xq` (NaN outside the knots' range).
    #[must_use]
    pub fn deriv(&self, xq: f64) -> f64 {
        let mut hint = usize::MAX;
        self.deriv_hinted(xq, &mut hint)
    }

    /// [`NaturalSpline::deriv`] with an interval hint (see [`NaturalSpline::eval_hinted`]).
    fn deriv_hinted(&self, xq: f64, hint: &mut usize) -> f64 {
        let Some((i, h, a, b)) = self.interval(xq, hint) else {
            return f64::NAN;
        };
        (self.y[i + 1] - self.y[i]) / h - (3.0 * a * a - 1.0) * h / 6.0 * self.m[i]
            + (3.0 * b * b - 1.0) * h / 6.0 * self.m[i + 1]
    }
}

/// The combined spectrum as a continuous model: natural cubic splines through each run of
/// finite output pixels.
#[derive(Clone, Debug)]
pub struct SplineModel {
    runs: Vec<NaturalSpline>,
}

impl SplineModel {
    /// Splines through the finite runs of (x, y); runs of one pixel are skipped.
    #[must_use]
    pub fn new(x: &[f64], y: &[f64]) -> Self {
        let mut runs = Vec::new();
        let mut start = None;
        for i in 0..=x.len() {
            let ok = i < x.len() && y[i].is_finite();
            match (ok, start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    if let Some(sp) = NaturalSpline::new(x[s..i].to_vec(), y[s..i].to_vec()) {
                        runs.push(sp);
                    }
                    start = None;
                }
                _ => {}
            }
        }
        Self { runs }
    }

    /// The run containing `xq`, trying the previous query's run `hint.0` first (the runs are
    /// disjoint, so at most one contains it); `hint.1` is the interval hint inside the run.
    fn find(&self, xq: f64, hint: &mut (usize, usize)) -> Option<&NaturalSpline> {
        let inside = |r: &NaturalSpline| r.range().0 <= xq && xq <= r.range().1;
        if let Some(r) = self.runs.get(hint.0).filter(|r| inside(r)) {
            return Some(r);
        }
        let i = self.runs.partition_point(|r| r.range().1 < xq);
        let r = self.runs.get(i).filter(|r| r.range().0 <= xq)?;
        *hint = (i, usize::MAX);
        Some(r)
    }
}

impl SpectrumModel for SplineModel {
    fn eval(&self, x: &[f64]) -> Vec<f64> {
        let mut hint = (usize::MAX, usize::MAX);
        x.iter()
            .map(|&q| {
                self.find(q, &mut hint)
                    .map_or(f64::NAN, |s| s.eval_hinted(q, &mut hint.1))
            })
            .collect()
    }

    fn eval_deriv(&self, x: &[f64]) -> Vec<f64> {
        let mut hint = (usize::MAX, usize::MAX);
        x.iter()
            .map(|&q| {
                self.find(q, &mut hint)
                    .map_or(f64::NAN, |s| s.deriv_hinted(q, &mut hint.1))
            })
            .collect()
    }
}

/// One segment of one visit in increasing rest-frame x, as standard practice sees it: values
/// divided by S, variances (NaN where bad), the good-pixel mask and the pixel flags.
struct SegmentInput {
    x: Vec<f64>,
    y: Vec<f64>,
    var: Vec<f64>,
    good: Vec<bool>,
    flags: Vec<u64>,
}

impl SegmentInput {
    /// `None` when the segment has fewer than two pixels or fewer than two good ones.
    fn new(v: &PreparedVisit, seg_index: usize) -> Option<Self> {
        let seg = v.visit.segments().get(seg_index)?.clone();
        // All pixels of the segment in increasing rest-frame x.
        let mut idx: Vec<usize> = seg.collect();
        if idx.len() >= 2 && v.x_rest[idx[0]] > v.x_rest[idx[idx.len() - 1]] {
            idx.reverse();
        }
        let x: Vec<f64> = idx.iter().map(|&i| v.x_rest[i]).collect();
        // Standard practice divides by S (see the module documentation).
        let mut y = Vec::with_capacity(idx.len());
        let mut var = Vec::with_capacity(idx.len());
        let mut good = Vec::with_capacity(idx.len());
        for &i in &idx {
            let s = v.s[i];
            let ok_s = s == 1.0 || (s.is_finite() && s >= MIN_SELECTION);
            let g = !v.masked[i] && v.ivar[i] > 0.0 && ok_s && v.y[i].is_finite();
            let (yi, vi) = if g {
                (v.y[i] / s, 1.0 / (v.ivar[i] * s * s))
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
struct Knots {
    x: Vec<f64>,
    y: Vec<f64>,
    var: Vec<f64>,
    good: Vec<bool>,
    lo: f64,
    hi: f64,
}

impl Knots {
    fn new(inp: &SegmentInput, ss: &StandardSettings) -> Self {
        let n = inp.x.len();
        match ss.mask {
            StandardMask::Drop => {
                let sel: Vec<usize> = (0..n).filter(|&k| inp.good[k]).collect();
                let (lo, hi) = (inp.x[sel[0]], inp.x[sel[sel.len() - 1]]);
                if ss.interpolator == Interpolator::DampedSinc {
                    // The sinc works on all pixels; bad ones get redistributed weights (their
                    // variance never counts: 0, not NaN, so zero weights stay harmless).
                    Self {
                        x: inp.x.clone(),
                        y: inp.y.clone(),
                        var: inp
                            .var
                            .iter()
                            .map(|&v| if v.is_finite() { v } else { 0.0 })
                            .collect(),
                        good: inp.good.clone(),
                        lo,
                        hi,
                    }
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
                Self {
                    x: inp.x.clone(),
                    y: inp.y.clone(),
                    var: inp
                        .var
                        .iter()
                        .map(|&v| if v.is_finite() { v } else { med })
                        .collect(),
                    good: inp.good.clone(),
                    lo: inp.x[0],
                    hi: inp.x[n - 1],
                }
            }
        }
    }
}

/// Pixels per resolution element for the damped sinc (see the module documentation).
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
struct Stencil {
    l0: usize,
    rows: RowSet,
    /// Flags over `flag_l0..flag_l0 + flags.len()` (the segment's whole range).
    flag_l0: usize,
    flags: Vec<u64>,
}

impl Stencil {
    /// The rows onto `grid_x[l0..l1]` (non-empty) and the flags of the whole segment.
    fn new(
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

    fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + 16 * self.rows.len()
            + 8 * self.rows.w.len()
            + 8 * self.flags.len()
    }
}

/// One segment of one visit interpolated onto the output pixels `l0..l0 + value.len()`.
#[derive(Debug, Default)]
struct Piece {
    l0: usize,
    value: Vec<f64>,
    var: Vec<f64>,
    valid: Vec<bool>,
    /// `cov[k - 1][i]` = covariance of output pixels l0 + i and l0 + i + k (k = 1..=lags).
    cov: Vec<Vec<f64>>,
    /// Flags over `flag_l0..flag_l0 + flags.len()` (the segment's whole range).
    flag_l0: usize,
    flags: Vec<u64>,
}

impl Piece {
    /// Apply a stencil to the knots' values and variances.
    fn new(st: &Stencil, knots: &Knots, mask: StandardMask, lags: usize) -> Self {
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

    fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.value.len() * (8 + 8 + 1 + 8 * self.cov.len())
            + 8 * self.flags.len()
    }
}

/// Identity of a piece's stencil. The visit is identified by its address, which cannot be reused
/// while a cache entry holds the visit alive; its wavelengths and flags are immutable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct StencilKey {
    visit_ptr: usize,
    segment: usize,
    dx: u64,
    /// Length and hash of the output grid's ln(lambda).
    grid: (usize, u64),
    interpolator: u8,
    mask: u8,
    /// Hash of the segment's rest-frame positions and good-pixel mask (the knots in `Drop`
    /// mode, the mask otherwise); `dx` alone would trust `prepare` to derive the positions.
    geometry: u64,
}

/// Identity of a piece: its stencil, a hash of its values and variances, and the lags.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PieceKey {
    stencil: StencilKey,
    data: u64,
    lags: usize,
}

/// One lane of a hash of 64-bit words (FxHash-style rotate, xor, multiply, so that a change in
/// any bit of any word reaches every later bit of the state), finished with a murmur-style mix.
#[derive(Clone, Copy)]
struct HashLane(u64, u64);

impl HashLane {
    fn new() -> Self {
        Self(0x243f_6a88_85a3_08d3, 0)
    }

    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
        self.1 += 1;
    }

    fn finish(self) -> u64 {
        let mut h = self.0 ^ self.1;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 33)
    }
}

fn hash_words(words: impl Iterator<Item = u64>) -> u64 {
    let mut h = HashLane::new();
    for w in words {
        h.add(w);
    }
    h.finish()
}

/// Hashes of one segment's inputs: (its rest-frame positions and good-pixel mask as
/// [`SegmentInput`] computes it, its values, inverse variances and selection factors as given).
/// One pass with independent lanes, because each lane's chain is latency bound; this is all a
/// cache hit costs per segment.
fn segment_hashes(v: &PreparedVisit, seg: std::ops::Range<usize>) -> (u64, u64) {
    let mut h = [HashLane::new(); 5];
    for i in seg {
        let (y, ivar, s) = (v.y[i], v.ivar[i], v.s[i]);
        let ok_s = s == 1.0 || (s.is_finite() && s >= MIN_SELECTION);
        let g = !v.masked[i] && ivar > 0.0 && ok_s && y.is_finite();
        h[0].add(v.x_rest[i].to_bits());
        h[1].add(u64::from(g));
        h[2].add(y.to_bits());
        h[3].add(ivar.to_bits());
        h[4].add(s.to_bits());
    }
    let [x, g, y, iv, s] = h.map(HashLane::finish);
    (
        x ^ g.rotate_left(32),
        y ^ iv.rotate_left(21) ^ s.rotate_left(42),
    )
}

/// A cached stencil or piece, with the last generation that used it.
#[derive(Debug)]
struct Entry<T> {
    used: u64,
    /// Holds the visit alive, so that its address in the key cannot be reused.
    visit: Arc<Visit>,
    value: Arc<T>,
    bytes: usize,
}

impl<T> Entry<T> {
    fn new(used: u64, visit: &Arc<Visit>, value: &Arc<T>, bytes: usize) -> Self {
        Self {
            used,
            visit: Arc::clone(visit),
            value: Arc::clone(value),
            bytes,
        }
    }
}

/// Keep `entry` under `key` if the map's `total` bytes stay within `budget` (replacing an older
/// entry under the same key), and keep `total` the sum of the entries' sizes.
fn store<K: Eq + std::hash::Hash, T>(
    map: &mut HashMap<K, Entry<T>>,
    total: &mut usize,
    budget: usize,
    key: K,
    entry: Entry<T>,
) {
    if *total + entry.bytes > budget {
        return;
    }
    *total += entry.bytes;
    let old = map.insert(key, entry);
    *total -= old.map_or(0, |e| e.bytes);
}

#[derive(Debug, Default)]
struct CacheMaps {
    stencils: HashMap<StencilKey, Entry<Stencil>>,
    stencil_bytes: usize,
    pieces: HashMap<PieceKey, Entry<Piece>>,
    piece_bytes: usize,
}

/// A memo of standard practice's per-piece work (one piece = one segment of one visit).
///
/// Two levels: the interpolation rows and flags of a piece ("stencil"), keyed by the visit
/// (address), its shift, its good-pixel mask, the grid and the interpolator; and the
/// interpolated values, variances and covariances ("piece"), keyed by the stencil and a hash of
/// the segment's values and variances. Neither depends on visit weights or inclusion, so a
/// recompute after such a change only re-averages; a changed selection mode that keeps the
/// mask re-uses the stencils. Entries unused in the last `KEEP_GENERATIONS` combinations are
/// evicted at the end of each, except those of visits that are currently excluded (so that
/// re-including one is instant). Thread-safe; results never depend on what is cached.
#[derive(Debug)]
pub struct StandardCache {
    maps: Mutex<CacheMaps>,
    generation: AtomicU64,
    stencil_misses: AtomicUsize,
    piece_hits: AtomicUsize,
    piece_misses: AtomicUsize,
    /// Largest total size (bytes) of cached pieces; beyond it new pieces are not kept.
    pub piece_budget: usize,
    /// Largest total size (bytes) of cached stencils (a cubic-spline stencil holds ~40 weights
    /// per output pixel: ~3 MB per APOGEE visit); beyond it new stencils are not kept.
    pub stencil_budget: usize,
}

/// How many combinations an unused entry survives.
const KEEP_GENERATIONS: u64 = 3;

impl Default for StandardCache {
    fn default() -> Self {
        Self::new()
    }
}

impl StandardCache {
    /// An empty cache (256 MB for pieces, 128 MB for stencils).
    #[must_use]
    pub fn new() -> Self {
        Self {
            maps: Mutex::new(CacheMaps::default()),
            generation: AtomicU64::new(0),
            stencil_misses: AtomicUsize::new(0),
            piece_hits: AtomicUsize::new(0),
            piece_misses: AtomicUsize::new(0),
            piece_budget: 256 << 20,
            stencil_budget: 128 << 20,
        }
    }

    /// The process-wide cache that [`combine_standard`] uses, so that the window's live
    /// recomputations re-use earlier work without plumbing a cache through every caller.
    #[must_use]
    pub fn shared() -> &'static Self {
        static SHARED: std::sync::OnceLock<StandardCache> = std::sync::OnceLock::new();
        SHARED.get_or_init(Self::new)
    }

    /// Pieces answered from the cache so far.
    #[must_use]
    pub fn piece_hits(&self) -> usize {
        self.piece_hits.load(Ordering::Relaxed)
    }

    /// Pieces that had to be interpolated so far.
    #[must_use]
    pub fn piece_misses(&self) -> usize {
        self.piece_misses.load(Ordering::Relaxed)
    }

    /// Stencils that had to be computed so far.
    #[must_use]
    pub fn stencil_misses(&self) -> usize {
        self.stencil_misses.load(Ordering::Relaxed)
    }

    /// Bytes held by cached stencils and pieces.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.maps
            .lock()
            .map_or(0, |m| m.stencil_bytes + m.piece_bytes)
    }

    /// Number of cached (stencils, pieces).
    #[must_use]
    pub fn len(&self) -> (usize, usize) {
        self.maps
            .lock()
            .map_or((0, 0), |m| (m.stencils.len(), m.pieces.len()))
    }

    /// True when nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }

    /// Drop everything.
    pub fn clear(&self) {
        if let Ok(mut m) = self.maps.lock() {
            *m = CacheMaps::default();
        }
    }

    fn begin(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn end(&self, gen_: u64, prep: &Prepared) {
        let excluded: Vec<usize> = prep
            .visits
            .iter()
            .filter(|v| !v.included)
            .map(|v| Arc::as_ptr(&v.visit) as usize)
            .collect();
        let keep =
            |used: u64, ptr: usize| used + KEEP_GENERATIONS > gen_ || excluded.contains(&ptr);
        if let Ok(mut m) = self.maps.lock() {
            let m = &mut *m;
            m.stencils.retain(|k, e| keep(e.used, k.visit_ptr));
            m.stencil_bytes = m.stencils.values().map(|e| e.bytes).sum();
            m.pieces.retain(|k, e| keep(e.used, k.stencil.visit_ptr));
            m.piece_bytes = m.pieces.values().map(|e| e.bytes).sum();
        }
    }

    /// The piece for one segment of one visit, from the cache or computed (and kept if the
    /// budget allows). `None` when the segment gives no output pixel.
    fn piece(
        &self,
        v: &PreparedVisit,
        seg_index: usize,
        grid: (&[f64], (usize, u64)),
        ss: &StandardSettings,
        lags: usize,
        gen_: u64,
    ) -> Option<Arc<Piece>> {
        let (grid_x, grid_sig) = grid;
        let (geometry, data) = segment_hashes(v, v.visit.segments().get(seg_index)?.clone());
        let skey = StencilKey {
            visit_ptr: Arc::as_ptr(&v.visit) as usize,
            segment: seg_index,
            dx: v.dx.to_bits(),
            grid: grid_sig,
            interpolator: ss.interpolator as u8,
            mask: ss.mask as u8,
            geometry,
        };
        let pkey = PieceKey {
            stencil: skey.clone(),
            data,
            lags,
        };
        if let Ok(mut m) = self.maps.lock()
            && let Some(e) = m.pieces.get_mut(&pkey)
            && Arc::ptr_eq(&e.visit, &v.visit)
        {
            e.used = gen_;
            let piece = Arc::clone(&e.value);
            // Its stencil stays as fresh as the piece (another lag count or selection mode
            // with the same mask needs it again).
            if let Some(se) = m.stencils.get_mut(&skey) {
                se.used = gen_;
            }
            self.piece_hits.fetch_add(1, Ordering::Relaxed);
            return Some(piece);
        }
        let inp = SegmentInput::new(v, seg_index)?;
        let knots = Knots::new(&inp, ss);
        let l0 = grid_x.partition_point(|&g| g < knots.lo);
        let l1 = grid_x.partition_point(|&g| g <= knots.hi);
        if l1 <= l0 {
            return None;
        }
        self.piece_misses.fetch_add(1, Ordering::Relaxed);
        let cached = self.maps.lock().ok().and_then(|mut m| {
            let e = m.stencils.get_mut(&skey)?;
            if !Arc::ptr_eq(&e.visit, &v.visit) {
                return None;
            }
            e.used = gen_;
            Some(Arc::clone(&e.value))
        });
        let stencil = cached.unwrap_or_else(|| {
            self.stencil_misses.fetch_add(1, Ordering::Relaxed);
            let st = Arc::new(Stencil::new(
                v,
                seg_index,
                &inp,
                &knots,
                grid_x,
                ss,
                (l0, l1),
            ));
            if let Ok(mut m) = self.maps.lock() {
                let m = &mut *m;
                let entry = Entry::new(gen_, &v.visit, &st, st.bytes());
                store(
                    &mut m.stencils,
                    &mut m.stencil_bytes,
                    self.stencil_budget,
                    skey,
                    entry,
                );
            }
            st
        });
        let piece = Arc::new(Piece::new(&stencil, &knots, ss.mask, lags));
        if let Ok(mut m) = self.maps.lock() {
            let m = &mut *m;
            let entry = Entry::new(gen_, &v.visit, &piece, piece.bytes());
            store(
                &mut m.pieces,
                &mut m.piece_bytes,
                self.piece_budget,
                pkey,
                entry,
            );
        }
        Some(piece)
    }
}

/// Move the weight of bad pixels to their nearest good neighbours (linear interpolation in x;
/// constant beyond the first / last good pixel).
fn redistribute_bad(rows: &RowSet, x: &[f64], good: &[bool]) -> RowSet {
    let n = x.len();
    let mut prev = vec![usize::MAX; n];
    let mut next = vec![usize::MAX; n];
    let mut p = usize::MAX;
    for k in 0..n {
        if good[k] {
            p = k;
        }
        prev[k] = p;
    }
    let mut q = usize::MAX;
    for k in (0..n).rev() {
        if good[k] {
            q = k;
        }
        next[k] = q;
    }
    // The good pixels a bad pixel k leans on (the same pixel twice if k is good).
    let targets = |k: usize| -> [(usize, f64); 2] {
        if good[k] {
            return [(k, 1.0), (k, 0.0)];
        }
        match (prev[k], next[k]) {
            (usize::MAX, usize::MAX) => [(k, 0.0), (k, 0.0)],
            (usize::MAX, b) => [(b, 1.0), (b, 0.0)],
            (a, usize::MAX) => [(a, 1.0), (a, 0.0)],
            (a, b) => {
                let t = (x[k] - x[a]) / (x[b] - x[a]);
                [(a, 1.0 - t), (b, t)]
            }
        }
    };
    let mut out = RowSet::with_capacity(rows.len(), 64);
    for l in 0..rows.len() {
        let (start, w) = rows.row(l);
        if w.is_empty() {
            out.push_zeros(0, 0);
            continue;
        }
        if good[start..start + w.len()].iter().all(|&g| g) {
            out.push_zeros(start, w.len()).copy_from_slice(w);
            continue;
        }
        let (mut lo, mut hi) = (usize::MAX, 0);
        for k in start..start + w.len() {
            for (t, _) in targets(k) {
                lo = lo.min(t);
                hi = hi.max(t + 1);
            }
        }
        let row = out.push_zeros(lo, hi - lo);
        for (i, &wk) in w.iter().enumerate() {
            for (t, f) in targets(start + i) {
                row[t - lo] += wk * f;
            }
        }
    }
    out
}

/// Shift, interpolate and average (see the module documentation), re-using work from the
/// process-wide [`StandardCache::shared`].
pub fn combine_standard(
    prep: &Prepared,
    ss: &StandardSettings,
    lags: usize,
    cancel: &Cancel,
) -> Result<MethodResult, CombineError> {
    combine_standard_with_cache(prep, ss, lags, cancel, StandardCache::shared())
}

/// Output pixels per parallel task of the average.
const AVERAGE_CHUNK: usize = 1024;

/// Sums of one run of output pixels (see [`combine_standard_with_cache`]).
struct Sums {
    w: Vec<f64>,
    wy: Vec<f64>,
    /// `num[k][l]` = sum over pieces of u_l u_(l+k) C[l, l+k].
    num: Vec<Vec<f64>>,
    flags: Vec<u64>,
}

/// [`combine_standard`] with an explicit cache.
///
/// The pieces are computed in parallel; the average runs in parallel over runs of output pixels,
/// each pixel summing its pieces in dataset order, so results do not depend on the thread count.
pub fn combine_standard_with_cache(
    prep: &Prepared,
    ss: &StandardSettings,
    lags: usize,
    cancel: &Cancel,
    cache: &StandardCache,
) -> Result<MethodResult, CombineError> {
    let grid_x = &prep.grid.ln_wave;
    let m = grid_x.len();
    let grid_sig = (m, hash_words(grid_x.iter().map(|x| x.to_bits())));
    let jobs: Vec<(usize, usize)> = prep
        .visits
        .iter()
        .enumerate()
        .filter(|(_, v)| v.included)
        .flat_map(|(vi, v)| (0..v.visit.segments().len()).map(move |s| (vi, s)))
        .collect();
    let gen_ = cache.begin();
    let pieces: Result<Vec<Option<Arc<Piece>>>, CombineError> = jobs
        .par_iter()
        .map(|&(vi, s)| {
            cancel.check()?;
            Ok(cache.piece(&prep.visits[vi], s, (grid_x, grid_sig), ss, lags, gen_))
        })
        .collect();
    cache.end(gen_, prep);
    // Each piece with its visit's weight multiplier (the same sense as the forward model's
    // w = ivar * weight: an integer weight k counts the visit k times).
    let pieces: Vec<(Arc<Piece>, f64)> = pieces?
        .into_iter()
        .zip(&jobs)
        .filter_map(|(p, &(vi, _))| p.map(|p| (p, prep.visits[vi].weight)))
        .collect();
    cancel.check()?;

    let weight = |p: &Piece, i: usize, visit_weight: f64| -> f64 {
        match ss.weighting {
            Weighting::Uniform => visit_weight,
            Weighting::InverseVariance => {
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
    let model: Arc<dyn SpectrumModel> = Arc::new(SplineModel::new(grid_x, &flux));
    let visits = super::visit_fits(prep, model.as_ref());
    Ok(MethodResult {
        flux,
        var,
        band,
        flags,
        no_data,
        condition: None,
        visits,
        model: Some(model),
        fitted_velocity: None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Dense natural spline through impulses: the reference for the sparse rows.
    #[test]
    fn sparse_rows_match_exact_spline_impulse_responses() {
        let x: Vec<f64> = (0..40)
            .map(|k| f64::from(k) + 0.3 * (f64::from(k) * 1.7).sin())
            .collect();
        let xq: Vec<f64> = (0..100).map(|k| 0.2 + f64::from(k) * 0.385).collect();
        let rows = interpolation_rows(&x, &xq, Interpolator::CubicSpline);
        for j in 0..x.len() {
            let mut y = vec![0.0; x.len()];
            y[j] = 1.0;
            let sp = NaturalSpline::new(x.clone(), y).unwrap();
            for (q, row) in xq.iter().zip(&rows) {
                let w = if j >= row.start && j < row.start + row.weights.len() {
                    row.weights[j - row.start]
                } else {
                    0.0
                };
                assert!((w - sp.eval(*q)).abs() < 1e-12, "knot {j} at {q}");
            }
        }
    }

    /// The hinted search is an optimisation only: same interval and fraction as `locate`.
    #[test]
    fn hinted_locate_and_spline_model_match_the_binary_search() {
        let x: Vec<f64> = (0..300)
            .map(|k| f64::from(k) + 0.4 * (f64::from(k) * 0.9).sin())
            .collect();
        let mut rng = crate::synth::SynthRng::new(5);
        let mut hint = usize::MAX;
        for k in 0..5000u32 {
            // Mostly sorted queries, with jumps, ends and exact knots.
            let q = match k % 7 {
                0 => -3.0 + 310.0 * (rng.normal() * 0.3 + 0.5),
                1 => x[k as usize % x.len()],
                2 => 400.0,
                _ => f64::from(k) * 0.06 - 2.0,
            };
            assert_eq!(locate_hinted(&x, q, &mut hint), locate(&x, q), "{q}");
        }
        // A model with two runs (a gap of NaN pixels); queries in each visit's order.
        let y: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(k, v)| {
                if (140..150).contains(&k) {
                    f64::NAN
                } else {
                    v.sin()
                }
            })
            .collect();
        let model = SplineModel::new(&x, &y);
        let xq: Vec<f64> = (0..3000).map(|k| f64::from(k) * 0.1 - 1.0).collect();
        let rev: Vec<f64> = xq.iter().rev().copied().collect();
        for q in [xq, rev] {
            let v = model.eval(&q);
            let d = model.eval_deriv(&q);
            for (k, &qk) in q.iter().enumerate() {
                let mut h = (usize::MAX, usize::MAX);
                let want = model.find(qk, &mut h).map_or(f64::NAN, |s| s.eval(qk));
                let want_d = model.find(qk, &mut h).map_or(f64::NAN, |s| s.deriv(qk));
                assert_eq!(v[k].to_bits(), want.to_bits(), "{qk}");
                assert_eq!(d[k].to_bits(), want_d.to_bits(), "{qk}");
            }
            assert!(v.iter().filter(|f| f.is_finite()).count() > 2500);
        }
    }

    #[test]
    fn sinc_row_interpolates_a_constant_and_hits_samples() {
        let r = sinc_row(200, 100.37, 4.0);
        let s: f64 = r.weights.iter().sum();
        assert!((s - 1.0).abs() < 1e-3, "{s}");
        let r = sinc_row(200, 100.0, 4.0);
        assert!((r.weights[r.weights.len() / 2] - 0.5).abs() < 1e-12);
    }
}
