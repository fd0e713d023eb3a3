//! The interpolators of standard practice as sparse weight rows: linear, the natural cubic
//! spline (truncated rows of its tridiagonal inverse) and the APOGEE pipeline's damped sinc,
//! with the bad-pixel weight redistribution the sinc needs in `Drop` mode; the exact natural
//! spline and the spline model of the combined spectrum.

use crate::combine::types::SpectrumModel;
use crate::settings::Interpolator;

/// Relative truncation of the spline weights.
const SPLINE_TOL: f64 = 1e-12;

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

pub(super) fn dot(start: usize, w: &[f64], v: &[f64]) -> f64 {
    w.iter()
        .zip(&v[start..start + w.len()])
        .map(|(a, b)| a * b)
        .sum()
}

/// Many sparse rows stored flat (one allocation for all; the hot path builds thousands).
#[derive(Clone, Debug, Default)]
pub(super) struct RowSet {
    start: Vec<usize>,
    off: Vec<usize>,
    pub(super) w: Vec<f64>,
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

    pub(super) fn len(&self) -> usize {
        self.start.len()
    }

    pub(super) fn row(&self, l: usize) -> (usize, &[f64]) {
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
pub(super) fn locate(x: &[f64], xq: f64) -> (usize, f64) {
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
pub(super) fn rows_for(x: &[f64], xq: &[f64], interpolator: Interpolator, nres: f64) -> RowSet {
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

/// Move the weight of bad pixels to their nearest good neighbours (linear interpolation in x;
/// constant beyond the first / last good pixel).
pub(super) fn redistribute_bad(rows: &RowSet, x: &[f64], good: &[bool]) -> RowSet {
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

#[allow(clippy::unwrap_used)]
#[cfg(test)]
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
            let sp = NaturalSpline::new(x.clone(), y).expect("a spline");
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
