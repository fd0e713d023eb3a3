//! The global velocity search: every visit cross-correlated in ln(lambda) against the others.
//!
//! 1. Each visit is continuum-normalised per segment (chip): the 90th percentile of the good
//!    fluxes in blocks of [`CONTINUUM_BLOCK`] pixels, linearly interpolated between the blocks'
//!    centres; the signal is `a = flux / continuum - 1` with weight `ivar * continuum^2`. Pixels
//!    that are bad (the settings' bad bits, the source's own bad flag, ivar <= 0, non-finite),
//!    have a selection factor (telluric) below 0.5, or stand far above the continuum (sky-line
//!    residuals, a > 0.3) or below zero flux get weight 0. Chip gaps are simply no pixels.
//! 2. A uniform ln(lambda) grid with the visits' median pixel step spans all visits. The visits
//!    are ordered by S/N. The best is the first template; every next visit is cross-correlated
//!    (FFT, weighted normalised correlation coefficient) against the running stack of the
//!    visits aligned so far, over +-window; then every visit once more (twice) against the stack
//!    of all the *others* (leave-self-out, so a visit never correlates with its own noise).
//! 3. The CCF's highest peak within the window gives the integer lag; a parabola through the
//!    peak and its neighbours a sub-pixel start; then Gauss-Newton on chi^2(dx) =
//!    sum w_eff (a_k - b - s t(x_k - dx))^2 over the visit's *native* pixels (t the stack,
//!    Catmull-Rom interpolated; b, s fitted linearly; w_eff = 1 / (1/w + s^2 var(t)), so the
//!    template's own noise is in the error; one 5-sigma clip of the residuals) gives the shift
//!    and its formal error sqrt(chi^2/nu / curvature).
//!
//! The quality of a visit's CCF is its peak height over the highest point outside the main peak
//! (between the minima that bound it), and the peak's full width at half maximum in km/s.

use rustfft::FftPlanner;
use rustfft::num_complex::Complex64;

use crate::model::{C_KMS, Visit};

/// Pixels per continuum block.
pub const CONTINUUM_BLOCK: usize = 128;

/// Pixels per block of the high-pass filter (the block means of the signal are subtracted).
pub const HIGH_PASS_BLOCK: usize = 256;

/// No pixel weighs more than this many times its segment's median weight.
pub const WEIGHT_CLIP: f64 = 5.0;

/// A visit whose CCF over the whole window is ambiguous is searched again within this many
/// km/s of the velocity its barycentric correction predicts for a constant star (the APOGEE
/// pipeline's low-S/N rule: +-50 km/s around a BC-only combination).
pub const PRIOR_WINDOW_KMS: f64 = 50.0;

/// Percentile of the good fluxes in a block taken as the continuum.
pub const CONTINUUM_PERCENTILE: f64 = 0.9;

/// A visit's peak height over the next peak must reach this for a measured velocity.
pub const MIN_PEAK_RATIO: f64 = 1.25;

/// The lowest CCF peak (correlation coefficient) accepted as a measurement.
pub const MIN_PEAK_HEIGHT: f64 = 0.05;

/// What the search needs to know besides the visits.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchParams {
    /// Half-width of the search window (km/s).
    pub window_kms: f64,
    /// Mask bits that make a pixel unusable (the settings' bad bits, and for APOGEE data the
    /// sky-line and telluric bits: residuals fixed in the observed frame pull every visit
    /// towards zero relative velocity).
    pub bad_bits: u64,
}

/// A visit's CCF peak.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quality {
    /// The peak's correlation coefficient.
    pub peak_height: f64,
    /// Peak height over the highest CCF value outside the main peak (infinite when none).
    pub peak_ratio: f64,
    /// Full width at half maximum of the peak (km/s).
    pub width_kms: f64,
}

/// One visit's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchResult {
    /// Shift dx = ln(1 + v/c) relative to the reference (best-S/N) visit's frame; NaN when not
    /// measured.
    pub dx: f64,
    /// Formal 1-sigma error of `dx` (ln lambda), template noise included.
    pub sigma_dx: f64,
    /// CCF quality (NaN fields when the visit had no usable pixels).
    pub quality: Quality,
    /// True when the peak passed [`MIN_PEAK_RATIO`] and [`MIN_PEAK_HEIGHT`] and the refinement
    /// converged.
    pub measured: bool,
    /// The S/N used to order the visits.
    pub snr: f64,
    /// The factor (>= 1) `sigma_dx` was multiplied by: the scatter of the segments' (chips')
    /// own shifts over their formal errors, pooled over the visits ([`segment_error_scale`]); 1
    /// when the segments agree within their errors or are too few to say.
    pub error_scale: f64,
    /// How far (ln lambda) the shift moves when the pixels the search leaves out as sky and
    /// telluric residuals (`SearchParams::bad_bits` beyond the settings' own) are used after
    /// all, relative to the other visits (the common offset removed); 0 when not measured.
    /// Added to `sigma_dx` in quadrature (`crate::velocity::search_dataset`): at S/N 5-7 the
    /// velocities move by several km/s with the choice of pixels, far beyond the formal error.
    pub pixel_sensitivity_dx: f64,
}

/// A visit prepared for the search: ascending ln(lambda) per segment, signal and weight.
#[derive(Clone, Debug)]
struct Norm {
    x: Vec<f64>,
    a: Vec<f64>,
    w: Vec<f64>,
    segs: Vec<std::ops::Range<usize>>,
    snr: f64,
}

impl Norm {
    /// One segment of this visit alone.
    fn segment(&self, r: std::ops::Range<usize>) -> Self {
        Self {
            x: self.x[r.clone()].to_vec(),
            a: self.a[r.clone()].to_vec(),
            w: self.w[r.clone()].to_vec(),
            segs: std::iter::once(0..r.len()).collect(),
            snr: self.snr,
        }
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    let k = ((v.len() as f64 - 1.0) * p).round() as usize;
    let k = k.min(v.len() - 1);
    v.select_nth_unstable_by(k, f64::total_cmp);
    v[k]
}

fn normalise(visit: &Visit, bad_bits: u64) -> Norm {
    let (lnw, flux, ivar, flags, bad) = (
        visit.ln_wave(),
        visit.flux(),
        visit.ivar(),
        visit.flags(),
        visit.bad(),
    );
    let sel = visit.selection();
    let mut segs: Vec<std::ops::Range<usize>> = visit.segments().to_vec();
    segs.sort_by(|a, b| lnw[a.start].total_cmp(&lnw[b.start]));
    let (mut x, mut a, mut w) = (Vec::new(), Vec::new(), Vec::new());
    let mut out_segs = Vec::new();
    let mut snrs = Vec::new();
    for r in segs {
        let mut idx: Vec<usize> = r.clone().collect();
        if idx.len() >= 2 && lnw[idx[0]] > lnw[idx[1]] {
            idx.reverse();
        }
        let good: Vec<bool> = idx
            .iter()
            .map(|&i| {
                !bad[i]
                    && flags[i] & bad_bits == 0
                    && ivar[i] > 0.0
                    && ivar[i].is_finite()
                    && flux[i].is_finite()
                    && sel.is_none_or(|s| s[i] >= 0.5)
            })
            .collect();
        // Continuum: block percentiles.
        let mut centres = Vec::new();
        let mut levels = Vec::new();
        for chunk in (0..idx.len()).collect::<Vec<_>>().chunks(CONTINUUM_BLOCK) {
            let mut f: Vec<f64> = chunk
                .iter()
                .filter(|&&j| good[j])
                .map(|&j| flux[idx[j]])
                .collect();
            if f.len() >= CONTINUUM_BLOCK / 5 {
                let xs: f64 = chunk.iter().map(|&j| lnw[idx[j]]).sum::<f64>() / chunk.len() as f64;
                centres.push(xs);
                levels.push(percentile(&mut f, CONTINUUM_PERCENTILE));
            }
        }
        let start = x.len();
        for (j, &i) in idx.iter().enumerate() {
            let xi = lnw[i];
            let c = interp_clamped(&centres, &levels, xi);
            let (ai, wi) = if good[j] && c > 0.0 && c.is_finite() {
                let ai = flux[i] / c - 1.0;
                if (-1.0..=0.3).contains(&ai) {
                    (ai, ivar[i] * c * c)
                } else {
                    (0.0, 0.0)
                }
            } else {
                (0.0, 0.0)
            };
            if wi > 0.0 {
                snrs.push(wi.sqrt());
            }
            x.push(xi);
            a.push(ai);
            w.push(wi);
        }
        // No pixel weighs more than WEIGHT_CLIP times the segment's median weight (error arrays
        // of near-zero flux at chip ends, defects).
        let mut ws: Vec<f64> = w[start..].iter().copied().filter(|&v| v > 0.0).collect();
        if !ws.is_empty() {
            let cap = WEIGHT_CLIP * percentile(&mut ws, 0.5);
            for v in &mut w[start..] {
                *v = v.min(cap);
            }
        }
        // High-pass: subtract the weighted block means of the signal (continuum placement and
        // broad structure differ between visits; only the lines carry the velocity).
        let (mut bc, mut bm) = (Vec::new(), Vec::new());
        let seg_len = x.len() - start;
        for b0 in (0..seg_len).step_by(HIGH_PASS_BLOCK) {
            let r = start + b0..start + (b0 + HIGH_PASS_BLOCK).min(seg_len);
            let sw: f64 = w[r.clone()].iter().sum();
            if sw > 0.0 {
                let m = r.clone().map(|k| w[k] * a[k]).sum::<f64>() / sw;
                let xc = r.clone().map(|k| x[k]).sum::<f64>() / r.len() as f64;
                bc.push(xc);
                bm.push(m);
            }
        }
        for k in start..x.len() {
            if w[k] > 0.0 {
                a[k] -= interp_clamped(&bc, &bm, x[k]);
            }
        }
        if x.len() > start {
            out_segs.push(start..x.len());
        }
    }
    let snr = if snrs.is_empty() {
        0.0
    } else {
        let m = snrs.len() / 2;
        snrs.select_nth_unstable_by(m, f64::total_cmp);
        snrs[m]
    };
    Norm {
        x,
        a,
        w,
        segs: out_segs,
        snr,
    }
}

/// Linear interpolation in (xs, ys), constant beyond the ends; NaN when empty.
fn interp_clamped(xs: &[f64], ys: &[f64], x: f64) -> f64 {
    match xs.len() {
        0 => f64::NAN,
        1 => ys[0],
        n => {
            if x <= xs[0] {
                return ys[0];
            }
            if x >= xs[n - 1] {
                return ys[n - 1];
            }
            let j = xs.partition_point(|&v| v <= x).clamp(1, n - 1);
            let t = (x - xs[j - 1]) / (xs[j] - xs[j - 1]);
            ys[j - 1] + t * (ys[j] - ys[j - 1])
        }
    }
}

impl Norm {
    /// The signal and weight at `xq` (linear between native pixels; weight 0 outside the
    /// segments or next to a bad pixel).
    fn sample(&self, xq: f64) -> (f64, f64) {
        for r in &self.segs {
            let xs = &self.x[r.clone()];
            if xs.len() < 2 || xq < xs[0] || xq > xs[xs.len() - 1] {
                continue;
            }
            let j = xs.partition_point(|&v| v <= xq).clamp(1, xs.len() - 1);
            let (i0, i1) = (r.start + j - 1, r.start + j);
            let (w0, w1) = (self.w[i0], self.w[i1]);
            if w0 <= 0.0 || w1 <= 0.0 {
                return (0.0, 0.0);
            }
            let t = (xq - self.x[i0]) / (self.x[i1] - self.x[i0]);
            return (
                self.a[i0] + t * (self.a[i1] - self.a[i0]),
                1.0 / ((1.0 - t) / w0 + t / w1),
            );
        }
        (0.0, 0.0)
    }
}

/// A uniform ln(lambda) grid.
#[derive(Clone, Copy, Debug)]
struct Grid {
    x0: f64,
    h: f64,
    n: usize,
}

impl Grid {
    fn x(&self, g: usize) -> f64 {
        self.x0 + self.h * g as f64
    }
}

/// The stack of visits `members` at their shifts, on the grid in the rest frame of the shifts:
/// weighted mean signal and its summed weight (inverse variance of the mean).
fn stack(norms: &[Norm], dx: &[f64], members: &[usize], grid: Grid) -> (Vec<f64>, Vec<f64>) {
    let mut num = vec![0.0; grid.n];
    let mut den = vec![0.0; grid.n];
    for &j in members {
        for g in 0..grid.n {
            let (a, w) = norms[j].sample(grid.x(g) + dx[j]);
            if w > 0.0 {
                num[g] += w * a;
                den[g] += w;
            }
        }
    }
    let t = num
        .iter()
        .zip(&den)
        .map(|(n, d)| if *d > 0.0 { n / d } else { 0.0 })
        .collect();
    (t, den)
}

/// Weighted normalised cross-correlation r(L) of a visit (observed frame, on the grid) with a
/// template t (rest frame): a(x) ~ t(x - L h). Lags -max_lag..=max_lag; NaN where undefined.
fn ccf(
    planner: &mut FftPlanner<f64>,
    a: &[f64],
    wa: &[f64],
    t: &[f64],
    mt: &[f64],
    max_lag: usize,
) -> Vec<f64> {
    let n = a.len();
    let size = (n + max_lag + 1).next_power_of_two();
    let fwd = planner.plan_fft_forward(size);
    let inv = planner.plan_fft_inverse(size);
    let spec = |f: &dyn Fn(usize) -> f64| -> Vec<Complex64> {
        let mut v: Vec<Complex64> = (0..size)
            .map(|i| Complex64::new(if i < n { f(i) } else { 0.0 }, 0.0))
            .collect();
        fwd.process(&mut v);
        v
    };
    let p1 = spec(&|i| wa[i] * a[i]);
    let p2 = spec(&|i| wa[i] * a[i] * a[i]);
    let p3 = spec(&|i| wa[i]);
    let q1 = spec(&|i| mt[i] * t[i]);
    let q2 = spec(&|i| mt[i]);
    let q3 = spec(&|i| mt[i] * t[i] * t[i]);
    let corr = |p: &[Complex64], q: &[Complex64]| -> Vec<f64> {
        let mut v: Vec<Complex64> = p.iter().zip(q).map(|(a, b)| a * b.conj()).collect();
        inv.process(&mut v);
        v.iter().map(|c| c.re / size as f64).collect()
    };
    let s1 = corr(&p1, &q1);
    let s2 = corr(&p2, &q2);
    let s3 = corr(&p3, &q3);
    let at = |v: &[f64], lag: i64| -> f64 {
        let idx = if lag >= 0 {
            lag as usize
        } else {
            size - (-lag) as usize
        };
        v[idx]
    };
    (-(max_lag as i64)..=max_lag as i64)
        .map(|l| {
            let (x1, x2, x3) = (at(&s1, l), at(&s2, l), at(&s3, l));
            if x2 > 1e-12 && x3 > 1e-12 {
                x1 / (x2 * x3).sqrt()
            } else {
                f64::NAN
            }
        })
        .collect()
}

/// The CCF's peak: (sub-pixel lag offset from the centre, quality).
fn peak(r: &[f64], max_lag: usize, h_kms: f64) -> Option<(f64, Quality)> {
    peak_in(r, 0, r.len(), max_lag, h_kms)
}

/// [`peak`] within `r[lo..hi]` (the next peak, too, is looked for there).
fn peak_in(
    full: &[f64],
    lo_i: usize,
    hi_i: usize,
    max_lag: usize,
    h_kms: f64,
) -> Option<(f64, Quality)> {
    let r = &full[lo_i..hi_i];
    let (ip, &p) = r
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .max_by(|a, b| a.1.total_cmp(b.1))?;
    // Bounds of the main peak: walk down to the minima on both sides.
    let mut lo = ip;
    while lo > 0 && r[lo - 1].is_finite() && r[lo - 1] <= r[lo] {
        lo -= 1;
    }
    let mut hi = ip;
    while hi + 1 < r.len() && r[hi + 1].is_finite() && r[hi + 1] <= r[hi] {
        hi += 1;
    }
    let next = r
        .iter()
        .enumerate()
        .filter(|(i, v)| (*i < lo || *i > hi) && v.is_finite())
        .map(|(_, v)| *v)
        .fold(f64::NEG_INFINITY, f64::max);
    let ratio = if next > 0.0 { p / next } else { f64::INFINITY };
    // FWHM by linear crossings of p/2.
    let half = p / 2.0;
    let cross = |dir: i64| -> f64 {
        let mut i = ip as i64;
        loop {
            let j = i + dir;
            if j < 0 || j as usize >= r.len() || !r[j as usize].is_finite() {
                return (i - ip as i64).abs() as f64;
            }
            let (a, b) = (r[i as usize], r[j as usize]);
            if b <= half {
                let t = if a > b { (a - half) / (a - b) } else { 0.0 };
                return (i - ip as i64).abs() as f64 + t;
            }
            i = j;
        }
    };
    let width = (cross(-1) + cross(1)) * h_kms;
    let frac = if ip > 0 && ip + 1 < r.len() && r[ip - 1].is_finite() && r[ip + 1].is_finite() {
        let (a, b, c) = (r[ip - 1], r[ip], r[ip + 1]);
        let d = a - 2.0 * b + c;
        if d < 0.0 {
            (0.5 * (a - c) / d).clamp(-0.5, 0.5)
        } else {
            0.0
        }
    } else {
        0.0
    };
    Some((
        (lo_i + ip) as f64 - max_lag as f64 + frac,
        Quality {
            peak_height: p,
            peak_ratio: ratio,
            width_kms: width,
        },
    ))
}

/// Catmull-Rom value and derivative of grid values `t` at grid coordinate `u`; None outside or
/// next to an empty template pixel (`tw` = 0).
fn cubic(t: &[f64], tw: &[f64], u: f64) -> Option<(f64, f64, f64)> {
    if !(u >= 1.0 && u < (t.len() - 2) as f64) {
        return None;
    }
    let j = u.floor() as usize;
    let s = u - j as f64;
    if tw[j - 1] <= 0.0 || tw[j] <= 0.0 || tw[j + 1] <= 0.0 || tw[j + 2] <= 0.0 {
        return None;
    }
    let (p0, p1, p2, p3) = (t[j - 1], t[j], t[j + 1], t[j + 2]);
    let c0 = p1;
    let c1 = 0.5 * (p2 - p0);
    let c2 = p0 - 2.5 * p1 + 2.0 * p2 - 0.5 * p3;
    let c3 = 0.5 * (p3 - p0) + 1.5 * (p1 - p2);
    let v = c0 + s * (c1 + s * (c2 + s * c3));
    let d = c1 + s * (2.0 * c2 + 3.0 * s * c3);
    let var = 1.0 / ((1.0 - s) * tw[j] + s * tw[j + 1]);
    Some((v, d, var))
}

/// Gauss-Newton on chi^2(dx) of a visit's native pixels against the template (see the module
/// docs). Returns (dx, sigma_dx).
fn refine(norm: &Norm, t: &[f64], tw: &[f64], grid: Grid, dx0: f64) -> Option<(f64, f64)> {
    let mut dx = dx0;
    let mut clip = vec![true; norm.x.len()];
    let mut sigma = f64::NAN;
    for iter in 0..8 {
        // Linear b, s at this dx, then a Gauss-Newton step.
        let rows: Vec<(usize, f64, f64, f64)> = (0..norm.x.len())
            .filter(|&k| norm.w[k] > 0.0 && clip[k])
            .filter_map(|k| {
                let u = (norm.x[k] - dx - grid.x0) / grid.h;
                cubic(t, tw, u).map(|(v, d, var)| (k, v, d / grid.h, var))
            })
            .collect();
        if rows.len() < 20 {
            return None;
        }
        // Weighted LS for b, s with w_eff at s = 1 first.
        let (mut sw, mut st, mut stt, mut sa, mut sat) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for &(k, v, _, var) in &rows {
            let we = 1.0 / (1.0 / norm.w[k] + var);
            sw += we;
            st += we * v;
            stt += we * v * v;
            sa += we * norm.a[k];
            sat += we * norm.a[k] * v;
        }
        let det = sw * stt - st * st;
        if !(det > 0.0) {
            return None;
        }
        let s = (sw * sat - st * sa) / det;
        let b = (sa - s * st) / sw;
        if !(s > 0.0) {
            return None;
        }
        let (mut jr, mut jj, mut chi2) = (0.0, 0.0, 0.0);
        let mut z = Vec::with_capacity(rows.len());
        for &(k, v, d, var) in &rows {
            let we = 1.0 / (1.0 / norm.w[k] + s * s * var);
            let r = norm.a[k] - b - s * v;
            let jac = -s * d;
            jr += we * jac * r;
            jj += we * jac * jac;
            chi2 += we * r * r;
            z.push((k, r * we.sqrt()));
        }
        if !(jj > 0.0) {
            return None;
        }
        let nu = (rows.len() as f64 - 3.0).max(1.0);
        sigma = ((chi2 / nu).max(1.0) / jj).sqrt();
        if iter == 2 {
            // One clip at 5 robust sigma (sky and telluric residuals, defects).
            let mut az: Vec<f64> = z.iter().map(|(_, v)| v.abs()).collect();
            let m = az.len() / 2;
            az.select_nth_unstable_by(m, f64::total_cmp);
            let scale = 1.4826 * az[m];
            for (k, v) in z {
                if v.abs() > 5.0 * scale {
                    clip[k] = false;
                }
            }
            continue;
        }
        let step = (jr / jj).clamp(-grid.h, grid.h);
        dx += step;
        if step.abs() < 1e-9 && iter > 2 {
            break;
        }
    }
    if sigma.is_finite() && dx.is_finite() {
        Some((dx, sigma))
    } else {
        None
    }
}

/// Search every visit's velocity (see the module docs); results aligned with `visits`.
#[must_use]
pub fn search(visits: &[&Visit], params: &SearchParams) -> Vec<SearchResult> {
    search_with_prior(visits, params, &vec![None; visits.len()])
}

/// [`search`] with, per visit, the velocity (km/s) a constant star would have (minus its
/// barycentric correction): where the whole window's CCF is ambiguous, the peak is looked for
/// within [`PRIOR_WINDOW_KMS`] of it (relative to the reference visit's).
#[must_use]
pub fn search_with_prior(
    visits: &[&Visit],
    params: &SearchParams,
    prior_kms: &[Option<f64>],
) -> Vec<SearchResult> {
    let norms: Vec<Norm> = visits
        .iter()
        .map(|v| normalise(v, params.bad_bits))
        .collect();
    let n = norms.len();
    let failed = |snr: f64| SearchResult {
        dx: f64::NAN,
        sigma_dx: f64::NAN,
        quality: Quality {
            peak_height: f64::NAN,
            peak_ratio: f64::NAN,
            width_kms: f64::NAN,
        },
        measured: false,
        snr,
        error_scale: 1.0,
        pixel_sensitivity_dx: 0.0,
    };
    let mut out: Vec<SearchResult> = norms.iter().map(|nv| failed(nv.snr)).collect();
    // The grid.
    let mut steps = Vec::new();
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for nv in &norms {
        for r in &nv.segs {
            for p in nv.x[r.clone()].windows(2) {
                steps.push(p[1] - p[0]);
            }
            lo = lo.min(nv.x[r.start]);
            hi = hi.max(nv.x[r.end - 1]);
        }
    }
    if steps.is_empty() || !(hi > lo) {
        return out;
    }
    let m = steps.len() / 2;
    steps.select_nth_unstable_by(m, f64::total_cmp);
    let h = steps[m];
    let n_grid_f = ((hi - lo) / h).ceil() + 1.0;
    if !(h > 0.0 && n_grid_f.is_finite() && n_grid_f < 4.0e6) {
        return out;
    }
    let grid = Grid {
        x0: lo,
        h,
        n: n_grid_f as usize,
    };
    let h_kms = h * C_KMS;
    let max_lag = ((params.window_kms / C_KMS).ln_1p() / h).ceil().max(1.0) as usize;
    let max_lag = max_lag.min(grid.n / 2);
    let usable: Vec<bool> = norms.iter().map(|nv| nv.snr > 0.0).collect();
    let mut order: Vec<usize> = (0..n).filter(|&i| usable[i]).collect();
    order.sort_by(|&a, &b| norms[b].snr.total_cmp(&norms[a].snr));
    let Some(&reference) = order.first() else {
        return out;
    };
    let mut planner = FftPlanner::new();
    let mut dx = vec![0.0; n];
    let mut ok = vec![false; n];
    ok[reference] = true;
    out[reference].measured = true;
    // One visit against a template: coarse CCF then refinement.
    // Low S/N (the pipeline's rule: more than 10% of the visits, and more than one, below S/N
    // 10) with barycentric corrections known: start from the BC-only alignment and search
    // within PRIOR_WINDOW_KMS of each visit's current shift (every template then stacks all the
    // other visits, not one faint reference).
    let n_faint = order.iter().filter(|&&i| norms[i].snr < 10.0).count();
    let low_snr =
        n_faint > 1 && n_faint * 10 > order.len() && order.iter().all(|&i| prior_kms[i].is_some());
    let align = |i: usize,
                 t: &[f64],
                 tw: &[f64],
                 planner: &mut FftPlanner<f64>,
                 around: Option<f64>|
     -> Option<SearchResult> {
        let (mut a, mut wa) = (vec![0.0; grid.n], vec![0.0; grid.n]);
        for g in 0..grid.n {
            let (ai, wi) = norms[i].sample(grid.x(g));
            a[g] = ai;
            wa[g] = wi;
        }
        let mt: Vec<f64> = tw
            .iter()
            .map(|&w| if w > 0.0 { 1.0 } else { 0.0 })
            .collect();
        let r = ccf(planner, &a, &wa, t, &mt, max_lag);
        let window = |centre_dx: f64| {
            let centre = centre_dx / h + max_lag as f64;
            let half = (PRIOR_WINDOW_KMS / h_kms).ceil();
            let lo_i = (centre - half).max(0.0) as usize;
            let hi_i = ((centre + half).max(0.0) as usize + 1).min(r.len());
            (lo_i, hi_i)
        };
        let (mut lag, mut quality) = match around {
            Some(c) => {
                let (lo_i, hi_i) = window(c);
                if hi_i <= lo_i + 4 {
                    return None;
                }
                peak_in(&r, lo_i, hi_i, max_lag, h_kms)?
            }
            None => peak(&r, max_lag, h_kms)?,
        };
        let passes =
            |q: &Quality| q.peak_height >= MIN_PEAK_HEIGHT && q.peak_ratio >= MIN_PEAK_RATIO;
        // Within a narrow window around a prior the ratio to the next peak means little
        // (the window holds little more than the peak): the peak must stand inside it.
        let mut good_peak = match around {
            Some(c) => {
                let (lo_i, hi_i) = window(c);
                let at = lag + max_lag as f64;
                quality.peak_height >= MIN_PEAK_HEIGHT
                    && at > lo_i as f64 + 2.0
                    && at < hi_i as f64 - 3.0
            }
            None => passes(&quality),
        };
        if !good_peak
            && around.is_none()
            && let (Some(pi), Some(pr)) = (prior_kms[i], prior_kms[reference])
        {
            let (lo_i, hi_i) = window(((pi - pr) / C_KMS).ln_1p());
            if hi_i > lo_i + 4
                && let Some((l2, q2)) = peak_in(&r, lo_i, hi_i, max_lag, h_kms)
                && passes(&q2)
            {
                (lag, quality, good_peak) = (l2, q2, true);
            }
        }
        let refined = refine(&norms[i], t, tw, grid, lag * h);
        let (dxi, sig, measured) = match refined {
            // A refinement that wandered more than two pixels from the CCF peak is not trusted.
            Some((d, s)) if good_peak && (d - lag * h).abs() <= 2.0 * h => (d, s, true),
            _ => (lag * h, f64::NAN, false),
        };
        Some(SearchResult {
            dx: dxi,
            sigma_dx: sig,
            quality,
            measured,
            snr: norms[i].snr,
            error_scale: 1.0,
            pixel_sensitivity_dx: 0.0,
        })
    };
    let prior_dx = |i: usize| -> f64 {
        match (prior_kms[i], prior_kms[reference]) {
            (Some(pi), Some(pr)) => ((pi - pr) / C_KMS).ln_1p(),
            _ => 0.0,
        }
    };
    if low_snr {
        for &i in &order {
            dx[i] = prior_dx(i);
            ok[i] = true;
        }
    }
    // Bootstrap.
    let mut members = vec![reference];
    for &i in order.iter().skip(1).filter(|_| !low_snr) {
        let (t, tw) = stack(&norms, &dx, &members, grid);
        if let Some(res) = align(i, &t, &tw, &mut planner, None) {
            if res.measured {
                dx[i] = res.dx;
                ok[i] = true;
                members.push(i);
            }
            out[i] = res;
        }
    }
    // Every visit against all the others, twice (three times from the BC-only start).
    for _ in 0..(if low_snr { 3 } else { 2 }) {
        let snapshot = dx.clone();
        for &i in &order {
            let others: Vec<usize> = (0..n).filter(|&j| j != i && ok[j]).collect();
            if others.is_empty() {
                continue;
            }
            let (t, tw) = stack(&norms, &snapshot, &others, grid);
            let around = low_snr.then(|| if ok[i] { dx[i] } else { prior_dx(i) });
            if let Some(res) = align(i, &t, &tw, &mut planner, around) {
                if res.measured {
                    dx[i] = res.dx;
                    ok[i] = true;
                } else if i != reference && !low_snr {
                    ok[i] = false;
                }
                out[i] = res;
            }
        }
    }
    for i in 0..n {
        if ok[i] && out[i].measured {
            out[i].dx = dx[i];
        } else {
            out[i].measured = false;
            out[i].dx = f64::NAN;
        }
    }
    let measured: Vec<usize> = order.iter().copied().filter(|&i| out[i].measured).collect();
    let scale = segment_error_scale(&norms, &dx, &measured, grid);
    for r in &mut out {
        r.sigma_dx *= scale;
        r.error_scale = scale;
    }
    out
}

/// Fewest pooled degrees of freedom (segments minus one, summed over the visits) for
/// [`segment_error_scale`] to say anything.
pub const MIN_SEGMENT_DOF: usize = 4;

/// The empirical error scale of the shifts: each measured visit's segments (APOGEE's chips,
/// BOSS's cameras) refined alone against the stack of the other visits, the scatter of their
/// shifts about their weighted mean over their formal errors, pooled over the visits:
/// sqrt(chi^2 / dof), at least 1 (1 with fewer than [`MIN_SEGMENT_DOF`] degrees of freedom).
/// The formal error assumes white noise and a perfect template; at low S/N (the faint real M
/// dwarf, S/N 5-7 per visit) the segments disagree by several times it, and so, over the visits,
/// do the velocities.
fn segment_error_scale(norms: &[Norm], dx: &[f64], measured: &[usize], grid: Grid) -> f64 {
    let (mut chi2, mut dof) = (0.0, 0usize);
    for &i in measured {
        if norms[i].segs.len() < 2 {
            continue;
        }
        let others: Vec<usize> = measured.iter().copied().filter(|&j| j != i).collect();
        if others.is_empty() {
            continue;
        }
        let (t, tw) = stack(norms, dx, &others, grid);
        let parts: Vec<(f64, f64)> = norms[i]
            .segs
            .iter()
            .filter_map(|r| refine(&norms[i].segment(r.clone()), &t, &tw, grid, dx[i]))
            .filter(|(d, e)| (d - dx[i]).abs() <= 5.0 * grid.h && e.is_finite() && *e > 0.0)
            .collect();
        if parts.len() < 2 {
            continue;
        }
        let sw: f64 = parts.iter().map(|(_, e)| e.powi(-2)).sum();
        let mean = parts.iter().map(|(d, e)| d / (e * e)).sum::<f64>() / sw;
        chi2 += parts
            .iter()
            .map(|(d, e)| ((d - mean) / e).powi(2))
            .sum::<f64>();
        dof += parts.len() - 1;
    }
    if dof < MIN_SEGMENT_DOF {
        return 1.0;
    }
    (chi2 / dof as f64).sqrt().max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Visit, VisitArrays};
    use crate::synth::apogee::{ApogeeParams, generate};

    /// `v` with each segment's wavelengths moved by its own velocity (km/s) from `kms`.
    fn shift_segments(v: &Visit, kms: &[f64]) -> Visit {
        let mut w = v.wavelength_aa().to_vec();
        for (r, dv) in v.segments().iter().zip(kms) {
            for x in &mut w[r.clone()] {
                *x *= 1.0 + dv / C_KMS;
            }
        }
        Visit::new(
            v.meta.clone(),
            VisitArrays {
                wavelength_aa: w,
                flux: v.flux().to_vec(),
                ivar: v.ivar().to_vec(),
                flags: v.flags().to_vec(),
                bad: v.bad().to_vec(),
                selection: v.selection().map(<[f64]>::to_vec),
                flux_divided_by_selection: v.flux_divided_by_selection(),
                segments: v.segments().to_vec(),
            },
        )
        .expect("visit")
    }

    /// White noise: the segments agree within their errors (scale near 1). Each segment of each
    /// visit moved by its own +-3 km/s (a wavelength solution off per chip): the scale grows to
    /// what the segments' scatter says, and the stated errors with it.
    #[test]
    fn segment_scatter_scales_the_errors() {
        let p = ApogeeParams {
            n_visits: 8,
            snr_range: (40.0, 60.0),
            ..ApogeeParams::clean()
        };
        let data = generate(&p).expect("synthetic star");
        let params = SearchParams {
            window_kms: 300.0,
            bad_bits: 0,
        };
        let visits: Vec<&Visit> = data.visits.iter().map(AsRef::as_ref).collect();
        assert!(visits.iter().all(|v| v.segments().len() == 3));
        let clean = search(&visits, &params);
        assert!(clean.iter().all(|r| r.measured));
        let s0 = clean[0].error_scale;
        assert!((1.0..1.6).contains(&s0), "white noise: scale {s0}");
        let pattern = [[3.0, -3.0, 0.0], [-3.0, 0.0, 3.0], [0.0, 3.0, -3.0]];
        let moved: Vec<Visit> = data
            .visits
            .iter()
            .enumerate()
            .map(|(i, v)| shift_segments(v, &pattern[i % 3]))
            .collect();
        let refs: Vec<&Visit> = moved.iter().collect();
        let bad = search(&refs, &params);
        let s1 = bad[0].error_scale;
        // Segments 3 km/s apart against formal errors of well under 1 km/s.
        assert!(s1 > 3.0 * s0, "moved segments: scale {s1} vs {s0}");
        eprintln!("error scale: white noise {s0:.3}, segments moved {s1:.3}");
        for (a, b) in clean.iter().zip(&bad) {
            assert!(
                b.sigma_dx > 2.0 * a.sigma_dx,
                "{} vs {}",
                b.sigma_dx,
                a.sigma_dx
            );
        }
    }
}
