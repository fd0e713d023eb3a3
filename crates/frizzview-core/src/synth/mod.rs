//! Seeded synthetic data: the paper's generator ([`paper`]) and an APOGEE-like one ([`apogee`]).
//!
//! Every generator returns a [`crate::model::Dataset`] whose visits carry observed-frame
//! wavelengths, their true velocity (`VelocityKind::True`), the noise-free truth on the natural
//! output grid (`Dataset::truth`) and that grid (`Dataset::input_grid`).
//!
//! Reproducibility: the random numbers come from [`SynthRng`], a hand-written xoshiro256++
//! generator seeded through SplitMix64 (both by Blackman & Vigna, public-domain reference
//! algorithms). It does not depend on the `rand` crate's choice of algorithm, so a seed gives the
//! same data with any version of this crate's dependencies. Normal deviates use the Box-Muller
//! transform. The line list and telluric spectrum are drawn from a separate `truth_seed`, so
//! many noise realisations (`seed`) can share one truth. No egui here.

pub mod apogee;
pub mod dither;
pub mod paper;
pub mod sdss5;

/// A small, fast, fully specified pseudo-random generator (xoshiro256++ seeded by SplitMix64).
#[derive(Clone, Debug)]
pub struct SynthRng {
    s: [u64; 4],
    spare_normal: Option<f64>,
}

impl SynthRng {
    /// A generator whose whole state is derived from `seed` with SplitMix64.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^ (x >> 31)
        };
        let s = [next(), next(), next(), next()];
        Self {
            s,
            spare_normal: None,
        }
    }

    /// An independent stream for sub-task `index` of a generator seeded with `seed` (used to give
    /// each visit or trial its own reproducible stream, whatever the order they are computed in).
    #[must_use]
    pub fn stream(seed: u64, index: u64) -> Self {
        Self::new(seed ^ index.wrapping_add(1).wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    /// The next 64 random bits (xoshiro256++).
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub fn uniform_in(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Standard normal deviate (Box-Muller, both values used).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        // 1 - u is in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        self.spare_normal = Some(r * s);
        r * c
    }

    /// Exponential deviate with mean 1.
    pub fn exponential(&mut self) -> f64 {
        -(1.0 - self.uniform()).ln()
    }

    /// An integer uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.uniform() * n as f64) as usize).min(n.saturating_sub(1))
    }
}

/// Positions of a homogeneous Poisson process with `density` events per unit x on `[lo, hi)`,
/// in increasing order (exponential gaps, so the count is exactly Poisson distributed).
pub fn poisson_positions(rng: &mut SynthRng, density: f64, lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    if !(density > 0.0 && hi > lo) {
        return out;
    }
    let mut x = lo;
    loop {
        x += rng.exponential() / density;
        if x >= hi {
            return out;
        }
        out.push(x);
    }
}

/// One Gaussian absorption line in x = ln(lambda).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Line {
    /// Centre, rest frame (or observed frame for tellurics).
    pub x: f64,
    /// Strength: equivalent width in x units (optical-depth area) for `optical_depth_profile`,
    /// or central depth for `depth_profile`.
    pub strength: f64,
}

/// Lines are evaluated out to this many sigma (exp(-0.5 * 7^2) = 2e-11).
const LINE_CUTOFF_SIGMA: f64 = 7.0;

/// Add `sum_l strength_l N(x_k - shift - x_l; sigma)` (a Gaussian optical depth) to `tau` at
/// positions `x` (monotonic, either direction), touching only pixels within the cut-off.
pub fn add_optical_depth(tau: &mut [f64], x: &[f64], shift: f64, lines: &[Line], sigma: f64) {
    let norm = 1.0 / (sigma * (std::f64::consts::TAU).sqrt());
    for_each_in_window(x, shift, lines, sigma, |k, line, u| {
        tau[k] += line.strength * norm * (-0.5 * u * u).exp();
    });
}

/// Multiply `f` by `1 - depth_l exp(-(x_k - shift - x_l)^2 / 2 sigma^2)` for every line.
pub fn multiply_depth(f: &mut [f64], x: &[f64], shift: f64, lines: &[Line], sigma: f64) {
    for_each_in_window(x, shift, lines, sigma, |k, line, u| {
        f[k] *= 1.0 - line.strength * (-0.5 * u * u).exp();
    });
}

/// Call `op(pixel, line, (x - shift - line.x) / sigma)` for every pixel within the cut-off of a
/// line. `x` must be monotonic (either direction).
fn for_each_in_window(
    x: &[f64],
    shift: f64,
    lines: &[Line],
    sigma: f64,
    mut op: impl FnMut(usize, &Line, f64),
) {
    let n = x.len();
    if n == 0 || sigma.is_nan() || sigma <= 0.0 {
        return;
    }
    let increasing = n < 2 || x[n - 1] >= x[0];
    let half = LINE_CUTOFF_SIGMA * sigma;
    // Index of the first pixel with rest position >= v, in increasing order of rest position.
    let lower = |v: f64| -> usize {
        if increasing {
            x.partition_point(|&xi| xi - shift < v)
        } else {
            n - x.partition_point(|&xi| xi - shift >= v)
        }
    };
    for line in lines {
        let a = lower(line.x - half);
        let b = lower(line.x + half);
        for j in a..b {
            let k = if increasing { j } else { n - 1 - j };
            let u = (x[k] - shift - line.x) / sigma;
            op(k, line, u);
        }
    }
}

/// `n` values `start + k * step` for k in 0..n where n = ceil((stop - start) / step), like
/// `numpy.arange` (so the pixel counts of the paper's grids are reproduced).
#[must_use]
pub fn arange(start: f64, stop: f64, step: f64) -> Vec<f64> {
    let n = ((stop - start) / step).ceil();
    if !(n.is_finite() && n > 0.0) {
        return Vec::new();
    }
    (0..n as usize).map(|k| start + k as f64 * step).collect()
}

/// A synthetic dataset: `visits`, and the noise-free `truth_flux` on `grid`, which is also the
/// dataset's natural output grid (`Dataset::input_grid`).
pub(crate) fn dataset_with_truth(
    name: String,
    visits: Vec<std::sync::Arc<crate::model::Visit>>,
    grid: crate::model::OutputGrid,
    truth_flux: Vec<f64>,
    survey: crate::model::Survey,
) -> crate::model::Dataset {
    crate::model::Dataset {
        name,
        visits,
        truth: Some(crate::model::Spectrum {
            label: "truth".into(),
            ln_wave: grid.ln_wave.clone(),
            flux: truth_flux,
            ivar: Vec::new(),
        }),
        input_grid: Some(grid),
        pipeline_coadd: None,
        survey,
        load_warnings: Vec::new(),
    }
}

/// Checks of generator parameters: each `(name, value)` must be positive and finite.
pub(crate) fn check_positive(items: &[(&str, f64)]) -> Result<(), String> {
    match items.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
        Some((name, v)) => Err(format!("{name} {v} must be positive and finite")),
        None => Ok(()),
    }
}

/// Checks of generator parameters: each `(name, value)` must be finite and not negative.
pub(crate) fn check_non_negative(items: &[(&str, f64)]) -> Result<(), String> {
    match items.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
        Some((name, v)) => Err(format!("{name} {v} must be finite and not negative")),
        None => Ok(()),
    }
}

/// Checks of generator parameters: each `(name, value)` must lie within [0, 1].
pub(crate) fn check_fractions(items: &[(&str, f64)]) -> Result<(), String> {
    match items.iter().find(|(_, v)| !(0.0..=1.0).contains(v)) {
        Some((name, v)) => Err(format!("{name} {v} must be within [0, 1]")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoshiro_matches_reference_first_output() {
        // Reference: xoshiro256++ with state [1, 2, 3, 4] outputs 41943041 first
        // (rotl(1 + 4, 23) + 1), from the algorithm's definition.
        let mut r = SynthRng {
            s: [1, 2, 3, 4],
            spare_normal: None,
        };
        assert_eq!(r.next_u64(), (5u64 << 23) + 1);
    }

    #[test]
    fn uniform_and_normal_moments() {
        let mut r = SynthRng::new(3);
        let n = 200_000;
        let (mut s1, mut s2, mut u1) = (0.0, 0.0, 0.0);
        for _ in 0..n {
            let z = r.normal();
            s1 += z;
            s2 += z * z;
            u1 += r.uniform();
        }
        let n = f64::from(n);
        assert!((s1 / n).abs() < 0.01);
        assert!((s2 / n - 1.0).abs() < 0.02);
        assert!((u1 / n - 0.5).abs() < 0.005);
    }

    #[test]
    fn poisson_count_has_right_mean() {
        let mut r = SynthRng::new(5);
        let total: usize = (0..2000)
            .map(|_| poisson_positions(&mut r, 100.0, 0.0, 0.5).len())
            .sum();
        let mean = total as f64 / 2000.0;
        // sd of the mean = sqrt(50 / 2000) = 0.16
        assert!((mean - 50.0).abs() < 0.8, "{mean}");
    }

    #[test]
    fn arange_counts_like_numpy() {
        let r = 1.35e5;
        let (lo, hi) = (8.7, 8.7025);
        assert_eq!(arange(lo - 1.0 / r, hi + 2.0 / r, 2.0 / r).len(), 171);
        assert_eq!(arange(lo + 1.0 / r, hi, 1.0 / r).len(), 337);
        assert_eq!(arange(lo + 0.5 / r, hi, 1.0 / r).len(), 338);
    }

    #[test]
    fn line_windows_work_both_directions() {
        let x: Vec<f64> = (0..100).map(|k| f64::from(k) * 0.1).collect();
        let rev: Vec<f64> = x.iter().rev().copied().collect();
        let lines = [Line {
            x: 5.0,
            strength: 0.5,
        }];
        let mut a = vec![1.0; 100];
        let mut b = vec![1.0; 100];
        multiply_depth(&mut a, &x, 0.0, &lines, 0.3);
        multiply_depth(&mut b, &rev, 0.0, &lines, 0.3);
        for k in 0..100 {
            assert!((a[k] - b[99 - k]).abs() < 1e-15);
            let expect = 1.0 - 0.5 * (-0.5 * ((x[k] - 5.0) / 0.3_f64).powi(2)).exp();
            assert!((a[k] - expect).abs() < 1e-10);
        }
    }
}
