//! The fit in the Fourier basis: segments, their systems and solves, the model.

use std::ops::Range;
use std::sync::Arc;

use rayon::prelude::*;
use rustfft::num_complex::Complex64;

use super::{nufft, toeplitz};
use crate::combine::censor::{self, Rule};
use crate::combine::types::{
    Cancel, CombineError, MethodResult, Prepared, SpectrumModel, visit_fits,
};
use crate::combine::warning::Warning;
use crate::settings::ForwardSettings;

/// Runs of more than this many no-data output pixels split the fixed-mode fit into segments.
pub const GAP_PIXELS: usize = 8;
/// Fixed mode: input pixels up to this many output spacings beyond a segment's ends are fitted.
/// They pin down the end pixels: on the paper's poorly sampled problem (only 3 of 8 epochs reach
/// the red end) 2 spacings left the last pixel's variance at ~0.3, 10 spacings bring it to ~0.04.
pub const EDGE_PIXELS: f64 = 10.0;
/// Fixed mode: period / span.
pub const PAD_FACTOR: f64 = 1.2;
/// Fixed mode: ridge relative to the normal matrix diagonal.
pub const RIDGE_REL: f64 = 1e-6;
/// Condition numbers above this raise [`Warning::IllConditioned`].
pub const COND_WARN: f64 = 1e8;

/// One independent least-squares problem: a stretch of the output grid and its pixels.
#[derive(Clone, Debug)]
pub struct Segment {
    /// Output pixel indices covered.
    pub out: Range<usize>,
    /// Phase origin (ln lambda): u = (x - x0) * scale.
    pub x0: f64,
    /// Radians per unit ln lambda; the period is L = 2 pi / scale.
    pub scale: f64,
    /// Highest mode: k = -m..=m, P = 2m + 1.
    pub m: usize,
    /// Added to every diagonal element of the complex-basis normal matrix (absolute).
    pub ridge: f64,
    /// A fixed straight line `(x_mid, a, b)`: `a + b (x - x_mid)` removed from the data (`wsy`
    /// holds `w s (y - s line)`) and added back to the fit, so that the ridge shrinks the Fourier
    /// part towards that line rather than towards zero. Zero line in compat mode.
    pub baseline: (f64, f64, f64),
    /// Rest-frame ln lambda of the fitted pixels.
    pub x: Vec<f64>,
    /// w s^2 per fitted pixel.
    pub ws2: Vec<f64>,
    /// w s y per fitted pixel.
    pub wsy: Vec<f64>,
}

impl Segment {
    /// Phase of a position.
    #[must_use]
    pub fn phase(&self, x: f64) -> f64 {
        (x - self.x0) * self.scale
    }

    /// The baseline line at `x`.
    #[must_use]
    pub fn baseline_at(&self, x: f64) -> f64 {
        let (xm, a, b) = self.baseline;
        a + b * (x - xm)
    }
}

/// The problems to solve plus censoring, shared by the fast path and the dense oracle.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Independent problems, in grid order.
    pub segments: Vec<Segment>,
    /// No-data output pixels.
    pub no_data: Vec<bool>,
    /// Propagated flags.
    pub flags: Vec<u64>,
}

/// frizzle's `get_modes` with our error for even explicit values.
fn compat_modes(fs: &ForwardSettings, m_star: usize, n_good: usize) -> Result<usize, CombineError> {
    match fs.n_modes {
        Some(p) if p % 2 == 0 => Err(CombineError::Other(format!(
            "n_modes {p} is even: frizzle 0.2.8 pairs mode k with -k-1 for even n_modes, which gives a \
             rank-deficient basis; in compat mode use an odd number (or turn compat off)"
        ))),
        Some(p) => Ok(p),
        None => {
            let p = m_star.min(n_good);
            Ok(if p.is_multiple_of(2) {
                p.saturating_sub(1)
            } else {
                p
            })
        }
    }
}

/// Build the problems for a prepared combination.
pub fn plan(prep: &Prepared, fs: &ForwardSettings) -> Result<Plan, CombineError> {
    let grid = &prep.grid.ln_wave;
    let n_out = grid.len();
    if n_out < 2 {
        return Err(CombineError::Other(format!(
            "the output grid has {n_out} pixel(s); at least 2 are needed"
        )));
    }
    let rule = if fs.compat { Rule::Compat } else { Rule::Fixed };
    let (no_data, flags) = censor::censor_prepared(prep, rule);
    let (lo, hi) = (grid[0], grid[n_out - 1]);
    let segments = if fs.compat {
        let mut seg = Segment {
            out: 0..n_out,
            x0: lo,
            scale: 0.0,
            m: 0,
            ridge: 0.0,
            baseline: (lo, 0.0, 0.0),
            x: Vec::new(),
            ws2: Vec::new(),
            wsy: Vec::new(),
        };
        let mut n_good = 0;
        for v in prep.included() {
            for i in 0..v.x_rest.len() {
                let x = v.x_rest[i];
                if v.masked[i] || !(lo..=hi).contains(&x) {
                    continue;
                }
                n_good += 1;
                if v.w[i] > 0.0 {
                    seg.x.push(x);
                    seg.ws2.push(v.w[i] * v.s[i] * v.s[i]);
                    seg.wsy.push(v.w[i] * v.s[i] * v.y[i]);
                }
            }
        }
        if seg.x.is_empty() {
            return Err(CombineError::NoUsablePixels);
        }
        let p = compat_modes(fs, n_out, n_good)?;
        let span = hi - lo;
        // frizzle._frizzle: small is dimensionful (sic); in ln lambda it is ~ one output step.
        let small = span / (1.0 + n_out as f64);
        seg.scale = (1.0 - small) * std::f64::consts::TAU / span;
        seg.m = p / 2;
        vec![seg]
    } else {
        fixed_segments(prep, fs, &no_data)?
    };
    Ok(Plan {
        segments,
        no_data,
        flags,
    })
}

/// Output ranges between gaps, trimmed to data pixels.
fn data_ranges(no_data: &[bool]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut last_data = 0;
    let mut run = 0;
    for (j, &nd) in no_data.iter().enumerate() {
        if nd {
            run += 1;
            if run > GAP_PIXELS
                && let Some(s) = start.take()
            {
                out.push(s..last_data + 1);
            }
        } else {
            run = 0;
            if start.is_none() {
                start = Some(j);
            }
            last_data = j;
        }
    }
    if let Some(s) = start {
        out.push(s..last_data + 1);
    }
    out
}

fn fixed_segments(
    prep: &Prepared,
    fs: &ForwardSettings,
    no_data: &[bool],
) -> Result<Vec<Segment>, CombineError> {
    let grid = &prep.grid.ln_wave;
    let n_out = grid.len();
    let ranges = data_ranges(no_data);
    if ranges.is_empty() {
        return Err(CombineError::NoUsablePixels);
    }
    // All weighted pixels sorted by position, so each segment takes a contiguous slice.
    let mut pix: Vec<(f64, f64, f64)> = prep
        .included()
        .flat_map(|v| {
            (0..v.x_rest.len())
                .filter(|&i| v.w[i] > 0.0 && v.s[i] != 0.0)
                .map(|i| {
                    (
                        v.x_rest[i],
                        v.w[i] * v.s[i] * v.s[i],
                        v.w[i] * v.s[i] * v.y[i],
                    )
                })
        })
        .collect();
    pix.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut segs = Vec::with_capacity(ranges.len());
    for r in ranges {
        let (a, b) = (r.start, r.end - 1);
        let step_lo = if a + 1 < n_out {
            grid[a + 1] - grid[a]
        } else {
            grid[a] - grid[a - 1]
        };
        let step_hi = if b > 0 {
            grid[b] - grid[b - 1]
        } else {
            grid[1] - grid[0]
        };
        let x_lo = grid[a] - EDGE_PIXELS * step_lo;
        let x_hi = grid[b] + EDGE_PIXELS * step_hi;
        let i0 = pix.partition_point(|p| p.0 < x_lo);
        let i1 = pix.partition_point(|p| p.0 <= x_hi);
        let sl = &pix[i0..i1];
        let n_seg = r.len();
        let n_data = sl.len();
        let p_nominal = match fs.n_modes {
            Some(p) => ((p as f64 * n_seg as f64 / n_out as f64).round() as usize).max(1),
            None => n_seg.min(n_data).max(1),
        };
        // Period: 1.2 x span, but always longer than the fitted pixels' extent plus two output
        // steps, so that pixels beyond the ends never wrap onto the segment (short segments).
        // m keeps the band limit of P_nominal modes over the span: m / L = (P_nominal / 2) / span.
        let span = grid[b] - grid[a];
        let step = step_lo.max(step_hi);
        let period = (PAD_FACTOR * span).max(span + (2.0 * EDGE_PIXELS + 2.0) * step);
        let m = if span > 0.0 {
            ((p_nominal / 2) as f64 * period / span).round() as usize
        } else {
            0
        };
        segs.push(Segment {
            out: r,
            x0: grid[a],
            scale: std::f64::consts::TAU / period,
            m,
            ridge: 0.0,
            baseline: (0.5 * (grid[a] + grid[b]), 0.0, 0.0),
            x: sl.iter().map(|p| p.0).collect(),
            ws2: sl.iter().map(|p| p.1).collect(),
            wsy: sl.iter().map(|p| p.2).collect(),
        });
        if let Some(s) = segs.last_mut() {
            let diag: f64 = s.ws2.iter().sum();
            s.ridge = RIDGE_REL * diag;
            remove_baseline(s);
        }
    }
    Ok(segs)
}

/// Fit the weighted straight line `y ~ s (a + b (x - x_mid))` and remove it from `wsy`.
fn remove_baseline(s: &mut Segment) {
    let xm = s.baseline.0;
    let (mut s0, mut s1, mut s2, mut r0, mut r1) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for i in 0..s.x.len() {
        let t = s.x[i] - xm;
        s0 += s.ws2[i];
        s1 += s.ws2[i] * t;
        s2 += s.ws2[i] * t * t;
        r0 += s.wsy[i];
        r1 += s.wsy[i] * t;
    }
    let det = s0 * s2 - s1 * s1;
    let (a, b) = if det > 1e-12 * s0 * s2 && det.is_finite() {
        ((r0 * s2 - r1 * s1) / det, (s0 * r1 - s1 * r0) / det)
    } else if s0 > 0.0 {
        (r0 / s0, 0.0)
    } else {
        (0.0, 0.0)
    };
    s.baseline = (xm, a, b);
    for i in 0..s.x.len() {
        s.wsy[i] -= s.ws2[i] * (a + b * (s.x[i] - xm));
    }
}

/// The fast path's answer for one segment.
#[derive(Clone, Debug)]
pub struct SegmentSolution {
    /// Coefficients of e^{iku}, k = -m..=m (index k + m).
    pub coef: Vec<Complex64>,
    /// y* on the segment's output pixels.
    pub flux: Vec<f64>,
    /// `band[k][l] = C*[l, l + k]` within the segment (NaN past its end).
    pub band: Vec<Vec<f64>>,
    /// Estimated condition number of the normal matrix.
    pub cond: f64,
    /// False when the segment's output grid is not uniform in phase (band rows >= 1 are NaN).
    pub uniform: bool,
    /// Ridge added because the system was numerically singular (0 = none).
    pub extra_ridge: f64,
}

/// One segment's normal equations, factored: the Toeplitz matrix A (complex basis e^{iku},
/// k = -m..=m), the Gohberg-Semencul form of A^-1, the right side b and the ridge that had to be
/// added because A was numerically singular (0 = none).
pub struct SegmentSystem {
    /// A (with the segment's ridge and any extra ridge on the diagonal).
    pub a: toeplitz::Toeplitz,
    /// A^-1.
    pub inv: toeplitz::InverseGs,
    /// b_j = sum w s y e^{-iju}, j = -m..=m (index j + m).
    pub b: Vec<Complex64>,
    /// Extra ridge added to the diagonal (absolute; 0 = none).
    pub extra_ridge: f64,
}

/// Fill and factor one segment's normal equations (NUFFT + Levinson).
pub fn factor_segment(seg: &Segment, cancel: &Cancel) -> Result<SegmentSystem, CombineError> {
    let m = seg.m;
    let p = 2 * m + 1;
    let u: Vec<f64> = seg.x.iter().map(|&x| seg.phase(x)).collect();
    let (w_dft, t_dft) = nufft::type1_pair(&u, &seg.ws2, 2 * m, &seg.wsy, m);
    cancel.check()?;
    // A[j][k] = W(k - j): first row t[d] = W(d), d = 0..2m (index d + 2m in w_dft).
    let mut t: Vec<Complex64> = (0..p).map(|d| w_dft[d + 2 * m]).collect();
    t[0] = Complex64::new(t[0].re + seg.ridge, 0.0);
    // b_j = sum w s y e^{-iju} = T(-j), j = -m..m.
    let b: Vec<Complex64> = (0..p).map(|i| t_dft[2 * m - i]).collect();
    // A numerically singular system (e.g. compat mode across a chip gap, where frizzle's LU
    // returns garbage) is regularised by the smallest ridge that lets Levinson through.
    let t0 = t[0].re;
    let mut extra_ridge = 0.0;
    let first = loop {
        match toeplitz::levinson_first_column(&t) {
            Ok(f) => break f,
            Err(e) => {
                extra_ridge = if extra_ridge == 0.0 {
                    1e-12 * t0
                } else {
                    extra_ridge * 100.0
                };
                if extra_ridge > 1e-4 * t0 || !extra_ridge.is_finite() {
                    return Err(CombineError::Singular(format!(
                        "Fourier normal matrix of output pixels {}..{} with P = {p}: {e}",
                        seg.out.start, seg.out.end
                    )));
                }
                t[0] = Complex64::new(t0 + extra_ridge, 0.0);
            }
        }
    };
    Ok(SegmentSystem {
        a: toeplitz::Toeplitz::new(t),
        inv: toeplitz::InverseGs::new(first),
        b,
        extra_ridge,
    })
}

/// Solve one segment: normal equations by NUFFT + Levinson, variance and band by diagonal sums.
pub fn solve_segment(
    seg: &Segment,
    grid: &[f64],
    lags: usize,
    cancel: &Cancel,
) -> Result<SegmentSolution, CombineError> {
    let sys = factor_segment(seg, cancel)?;
    solve_system(seg, &sys, grid, lags, cancel)
}

/// [`solve_segment`] with the normal equations already factored by [`factor_segment`].
pub fn solve_system(
    seg: &Segment,
    sys: &SegmentSystem,
    grid: &[f64],
    lags: usize,
    cancel: &Cancel,
) -> Result<SegmentSolution, CombineError> {
    let m = seg.m;
    let SegmentSystem {
        a,
        inv,
        b,
        extra_ridge,
    } = sys;
    let extra_ridge = *extra_ridge;
    let mut coef = inv.apply(b);
    for _ in 0..2 {
        let r: Vec<Complex64> = a
            .matvec(&coef)
            .iter()
            .zip(b)
            .map(|(ac, bb)| bb - ac)
            .collect();
        let dc = inv.apply(&r);
        coef.iter_mut().zip(&dc).for_each(|(c, d)| *c += d);
    }
    cancel.check()?;
    let u_out: Vec<f64> = grid[seg.out.clone()]
        .iter()
        .map(|&x| seg.phase(x))
        .collect();
    let flux = nufft::type2(&coef, &u_out)
        .iter()
        .zip(&grid[seg.out.clone()])
        .map(|(z, &x)| z.re + seg.baseline_at(x))
        .collect();
    let n = u_out.len();
    let h = if n > 1 {
        (u_out[n - 1] - u_out[0]) / (n - 1) as f64
    } else {
        0.0
    };
    let uniform = u_out
        .windows(2)
        .all(|w| ((w[1] - w[0]) - h).abs() <= 1e-6 * h.abs());
    let mut band = Vec::with_capacity(lags + 1);
    for k in 0..=lags {
        cancel.check()?;
        let mut row = vec![f64::NAN; n];
        if k < n && (k == 0 || uniform) {
            let delta = k as f64 * h;
            let d = inv.diagonal_sums(delta);
            // C*(u, u + delta) = e^{i m delta} sum_d D(d) e^{-idu}: coefficient of e^{iku} is D(-k).
            let ph = Complex64::from_polar(1.0, m as f64 * delta);
            let coefs: Vec<Complex64> = d.iter().rev().map(|z| z * ph).collect();
            let vals = nufft::type2(&coefs, &u_out[..n - k]);
            for (r, v) in row.iter_mut().zip(&vals) {
                *r = v.re;
            }
        }
        band.push(row);
    }
    let cond = toeplitz::condition_estimate(a, inv, 16);
    Ok(SegmentSolution {
        coef,
        flux,
        band,
        cond,
        uniform,
        extra_ridge,
    })
}

/// The fitted continuous model: a Fourier series per segment, NaN outside the segments.
#[derive(Clone, Debug)]
pub struct FourierModel {
    segs: Vec<SegModel>,
}

#[derive(Clone, Debug)]
struct SegModel {
    lo: f64,
    hi: f64,
    x0: f64,
    scale: f64,
    coef: Vec<Complex64>,
    baseline: (f64, f64, f64),
}

impl FourierModel {
    fn eval_with(&self, x: &[f64], deriv: bool) -> Vec<f64> {
        let mut out = vec![f64::NAN; x.len()];
        for s in &self.segs {
            let idx: Vec<usize> = (0..x.len())
                .filter(|&i| x[i] >= s.lo && x[i] <= s.hi)
                .collect();
            if idx.is_empty() {
                continue;
            }
            let u: Vec<f64> = idx.iter().map(|&i| (x[i] - s.x0) * s.scale).collect();
            let m = (s.coef.len() / 2) as f64;
            let c: Vec<Complex64> = if deriv {
                s.coef
                    .iter()
                    .enumerate()
                    .map(|(i, c)| c * Complex64::new(0.0, (i as f64 - m) * s.scale))
                    .collect()
            } else {
                s.coef.clone()
            };
            let v = nufft::type2(&c, &u);
            let (xm, a, b) = s.baseline;
            for (&i, z) in idx.iter().zip(&v) {
                out[i] = z.re + if deriv { b } else { a + b * (x[i] - xm) };
            }
        }
        out
    }
}

impl SpectrumModel for FourierModel {
    fn eval(&self, x: &[f64]) -> Vec<f64> {
        self.eval_with(x, false)
    }

    fn eval_deriv(&self, x: &[f64]) -> Vec<f64> {
        self.eval_with(x, true)
    }
}

/// Fit the Fourier-basis forward model.
pub fn fit(
    prep: &Prepared,
    fs: &ForwardSettings,
    lags: usize,
    cancel: &Cancel,
    warnings: &mut Vec<Warning>,
) -> Result<MethodResult, CombineError> {
    let pl = plan(prep, fs)?;
    cancel.check()?;
    let grid = &prep.grid.ln_wave;
    let n_out = grid.len();
    let sols = pl
        .segments
        .par_iter()
        .map(|s| solve_segment(s, grid, lags, cancel))
        .collect::<Result<Vec<_>, _>>()?;
    let mut flux = vec![f64::NAN; n_out];
    let mut band = vec![vec![f64::NAN; n_out]; lags + 1];
    let mut cond: f64 = 0.0;
    let mut segs = Vec::with_capacity(sols.len());
    for (s, sol) in pl.segments.iter().zip(&sols) {
        flux[s.out.clone()].copy_from_slice(&sol.flux);
        for (k, row) in sol.band.iter().enumerate() {
            band[k][s.out.clone()].copy_from_slice(row);
        }
        cond = cond.max(sol.cond);
        if sol.cond > COND_WARN || !sol.cond.is_finite() {
            warnings.push(Warning::IllConditioned {
                what: format!(
                    "Fourier normal matrix (output pixels {}..{}, P = {})",
                    s.out.start,
                    s.out.end,
                    2 * s.m + 1
                ),
                cond: sol.cond,
            });
        }
        if sol.extra_ridge > 0.0 {
            warnings.push(Warning::Other(format!(
                "Fourier normal matrix (output pixels {}..{}) is numerically singular; a ridge of {:.1e} x its diagonal was added",
                s.out.start,
                s.out.end,
                sol.extra_ridge / s.ws2.iter().sum::<f64>().max(f64::MIN_POSITIVE)
            )));
        }
        if !sol.uniform && lags > 0 {
            warnings.push(Warning::Other(format!(
                "output pixels {}..{} are not uniformly spaced in ln lambda: covariance lags >= 1 were not computed",
                s.out.start, s.out.end
            )));
        }
        segs.push(SegModel {
            lo: grid[s.out.start],
            hi: grid[s.out.end - 1],
            x0: s.x0,
            scale: s.scale,
            coef: sol.coef.clone(),
            baseline: s.baseline,
        });
    }
    // Pixel pairs in different segments are independent fits: covariance 0.
    let seg_of = segment_index(&pl.segments, n_out);
    for (k, row) in band.iter_mut().enumerate().skip(1) {
        for l in 0..n_out.saturating_sub(k) {
            if let (Some(a), Some(b)) = (seg_of[l], seg_of[l + k])
                && a != b
            {
                row[l] = 0.0;
            }
        }
    }
    for l in 0..n_out {
        if pl.no_data[l] {
            flux[l] = f64::NAN;
            for k in 0..=lags {
                band[k][l] = f64::NAN;
                if l >= k {
                    band[k][l - k] = f64::NAN;
                }
            }
        }
    }
    let var = band[0].clone();
    let model = FourierModel { segs };
    let visits = visit_fits(prep, &model);
    Ok(MethodResult {
        flux,
        var,
        band,
        flags: pl.flags,
        no_data: pl.no_data,
        condition: Some(cond),
        visits,
        model: Some(Arc::new(model)),
        fitted_velocity: None,
        ..MethodResult::default()
    })
}

/// Which segment each output pixel belongs to.
fn segment_index(segs: &[Segment], n_out: usize) -> Vec<Option<usize>> {
    let mut v = vec![None; n_out];
    for (i, s) in segs.iter().enumerate() {
        for j in s.out.clone() {
            v[j] = Some(i);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_longer_than_the_threshold_split_segments() {
        let mut nd = vec![false; 60];
        // A short hole stays inside a segment; a long one splits; no-data ends are trimmed.
        nd[..3].iter_mut().for_each(|b| *b = true);
        nd[10..10 + GAP_PIXELS].iter_mut().for_each(|b| *b = true);
        nd[30..30 + GAP_PIXELS + 1]
            .iter_mut()
            .for_each(|b| *b = true);
        nd[57..].iter_mut().for_each(|b| *b = true);
        assert_eq!(data_ranges(&nd), vec![3..30, 30 + GAP_PIXELS + 1..57]);
        assert!(data_ranges(&[true; 5]).is_empty());
    }
}
