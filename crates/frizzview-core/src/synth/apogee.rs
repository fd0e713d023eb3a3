//! An APOGEE-like synthetic star: 3 chips x 4096 pixels per visit, decreasing wavelengths.
//!
//! Layout as in apVisit: segment 0 = chip a (red, 16470-16960 A), 1 = chip b (15860-16430 A),
//! 2 = chip c (blue, 15140-15810 A); within each chip the wavelength decreases with pixel index
//! and is log-uniform. The output grid is apStar's ([`OutputGrid::apogee`]).
//!
//! Velocity convention (as the APOGEE DRP): the star has a fixed barycentric ("heliocentric")
//! velocity `v_sys`; each visit has a barycentric correction BC; the star's velocity relative to
//! the observer is `v_true = v_sys - BC`, so that `Vhelio = Vrel + BC`. Stored per visit:
//! `True` = v_true, `Vrel` = v_true + N(0, velocity_error), `Bc` = BC, `Vhelio` = Vrel + BC. The
//! observed flux at detector ln(lambda) x is the rest-frame star at x - ln(1 + v_true/c).
//!
//! Flux as observed = S(x) * star(x - dx) * tilt_i(x) (+ persistence glow), where S is a
//! telluric transmission fixed in the observed frame (stored as the selection factor,
//! `flux_divided_by_selection = false`) and tilt_i an optional per-visit smooth Legendre
//! throughput. Noise: variance = level^2 max(f/level, 0.01) / snr_i^2 (the error array).
//! As in real apVisit files, the systematic residuals are not in the error array: they are only
//! flagged, with the real APOGEE_PIXMASK bits: PERSIST_HIGH/MED/LOW (9-11, a glow at the blue end
//! of chip c in some visits), SIG_SKYLINE (12, a per-visit sky-subtraction residual along the sky
//! lines, fixed in the observed frame), SIG_TELLURIC (13, where S < 0.9; the data see the
//! atmosphere as S^(1 + e) with a per-visit telluric-model error e). Other defects: BADPIX (0, bad
//! and ivar 0, fixed detector pixels), CRPIX (1, cosmic-ray spikes). Optional unflagged outliers
//! (5-20 sigma) test robust methods.

use std::sync::Arc;

use rayon::prelude::*;

use super::{
    Line, SynthRng, add_optical_depth, dataset_with_truth, multiply_depth, poisson_positions,
};
use crate::model::{
    C_KMS, Dataset, OutputGrid, Survey, VelocityKind, Visit, VisitArrays, VisitMeta,
    shift_from_velocity,
};

/// Pixels per chip.
pub const CHIP_PIXELS: usize = 4096;

/// Chip wavelength ranges (Angstrom), in apVisit row order: a (red), b, c (blue).
pub const CHIP_RANGES_AA: [(f64, f64); 3] =
    [(16470.0, 16960.0), (15860.0, 16430.0), (15140.0, 15810.0)];

/// FWHM / sigma of a Gaussian.
const FWHM_PER_SIGMA: f64 = 2.354_820_045_030_949;

/// Bits used (APOGEE_PIXMASK).
const BADPIX: u64 = 1 << 0;
const CRPIX: u64 = 1 << 1;
const PERSIST_HIGH: u64 = 1 << 9;
const PERSIST_MED: u64 = 1 << 10;
const PERSIST_LOW: u64 = 1 << 11;
const SIG_SKYLINE: u64 = 1 << 12;
const SIG_TELLURIC: u64 = 1 << 13;

/// The pipeline flags SIG_TELLURIC where the telluric transmission is below this.
const TELLURIC_FLAG_BELOW: f64 = 0.9;

/// Parameters of the APOGEE-like generator.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ApogeeParams {
    /// Number of visits.
    pub n_visits: usize,
    /// Seed of the per-visit quantities (velocities, noise, defects).
    pub seed: u64,
    /// Seed of the star, telluric and sky spectra and the detector's bad pixels.
    pub truth_seed: u64,
    /// Nominal resolving power (FWHM = lambda / R); the truth is at this resolution.
    pub resolving_power: f64,
    /// Per-visit resolving power drawn uniformly in this range; `None` = all nominal.
    pub resolution_range: Option<(f64, f64)>,
    /// Per-visit continuum S/N drawn uniformly in this range.
    pub snr_range: (f64, f64),
    /// Barycentric velocity of the star (km/s).
    pub v_sys_kms: f64,
    /// Barycentric corrections are uniform in +- this (km/s).
    pub bc_amplitude_kms: f64,
    /// Error added to the stored Vrel (km/s, Gaussian sigma); the `True` velocity stays exact.
    pub velocity_error_kms: f64,
    /// Fraction of pixels replaced by unflagged outliers.
    pub outlier_fraction: f64,
    /// Outlier size range in sigma (sign random).
    pub outlier_sigma: (f64, f64),
    /// Amplitude of a per-visit multiplicative Legendre (degree 1-2) throughput tilt (0 = none).
    pub tilt_amplitude: f64,
    /// Continuum level (flux units).
    pub continuum_level: f64,
    /// Stellar lines per unit x.
    pub line_density: f64,
    /// Equivalent-width scale (x units): EW = scale U^4.
    pub ew_scale: f64,
    /// Intrinsic (non-instrumental) line width, km/s (Gaussian sigma).
    pub intrinsic_sigma_kms: f64,
    /// Telluric lines per unit x (0 = no telluric, S = 1 everywhere).
    pub telluric_density: f64,
    /// Maximum central depth of telluric lines (a few lines reach it; 1 = saturated).
    pub telluric_depth: f64,
    /// Sky lines per unit x (0 = none).
    pub sky_line_density: f64,
    /// Sky-subtraction residual at a line centre, in units of the continuum noise: a per-visit
    /// N(0, 1) amplitude times the sky-line profile, fixed in the observed frame and NOT in the
    /// error array (as in real apVisit files: the pipeline flags these pixels SIG_SKYLINE and
    /// inflates their errors when it combines visits).
    pub sky_noise: f64,
    /// A part of the sky-subtraction residual common to every visit, added to each visit's
    /// N(0, 1) amplitude (same units; 0 = none): a sky model wrong the same way every night.
    /// Fixed in the observed frame, it correlates visits at zero *topocentric* velocity
    /// difference, so a cross-correlation that uses the sky pixels is pulled toward relative
    /// velocities of zero (what the real faint star `2M12294016+2619567` shows at S/N 5-7:
    /// there the search with the sky and telluric pixels used follows -0.07 of the barycentric
    /// motion, with them masked 1.01).
    pub sky_common: f64,
    /// Relative error of the telluric model: the flux is multiplied by S^(1 + e) with a per-visit
    /// e ~ N(0, telluric_error) while the stored selection factor stays S, so deep telluric lines
    /// leave systematic residuals that the error array does not cover; flagged SIG_TELLURIC
    /// where S < 0.9 (the pipeline's rule on its 5-px-smoothed telluric).
    pub telluric_error: f64,
    /// Mean number of cosmic rays per chip per visit.
    pub cosmic_rays_per_chip: f64,
    /// Fraction of visits with persistence in chip c.
    pub persistence_fraction: f64,
    /// Number of bad detector pixels per chip (BADPIX, the same in every visit).
    pub bad_pixels_per_chip: usize,
    /// Fraction of visits whose stored header velocities (Vrel, Vhelio) failed as the real DR13
    /// visit-level RV step did for cool stars: off by 200-800 km/s (random sign). The `True`
    /// velocity stays exact.
    pub header_failure_fraction: f64,
    /// An offset (km/s) added to every visit's stored header velocity (the real
    /// `2M05392474+4038437`: all three visits ~580 km/s off by the same amount).
    pub header_common_offset_kms: f64,
    /// The last this-many visits are ones the pipeline would reject: S/N [`Self::faint_snr`].
    pub faint_visits: usize,
    /// S/N of the faint visits (the real rejected visit `2M03442721+3220288-9`: 3.3).
    pub faint_snr: f64,
}

impl Default for ApogeeParams {
    fn default() -> Self {
        Self {
            n_visits: 12,
            seed: 1,
            truth_seed: 42,
            resolving_power: 22_500.0,
            resolution_range: None,
            snr_range: (20.0, 150.0),
            v_sys_kms: 23.4,
            bc_amplitude_kms: 30.0,
            velocity_error_kms: 0.0,
            outlier_fraction: 0.0,
            outlier_sigma: (5.0, 20.0),
            tilt_amplitude: 0.0,
            continuum_level: 1.0,
            line_density: 1.5e4,
            ew_scale: 8e-5,
            intrinsic_sigma_kms: 3.0,
            telluric_density: 800.0,
            telluric_depth: 0.98,
            sky_line_density: 500.0,
            sky_noise: 5.0,
            sky_common: 0.0,
            telluric_error: 0.05,
            cosmic_rays_per_chip: 3.0,
            persistence_fraction: 0.3,
            bad_pixels_per_chip: 8,
            header_failure_fraction: 0.0,
            header_common_offset_kms: 0.0,
            faint_visits: 0,
            faint_snr: 3.3,
        }
    }
}

impl ApogeeParams {
    /// A clean variant: no defects, no tellurics, no sky (for tests of the pure method).
    #[must_use]
    pub fn clean() -> Self {
        Self {
            telluric_density: 0.0,
            telluric_error: 0.0,
            sky_line_density: 0.0,
            cosmic_rays_per_chip: 0.0,
            persistence_fraction: 0.0,
            bad_pixels_per_chip: 0,
            ..Self::default()
        }
    }

    /// A faint cool star as the real `2M12294016+2619567` (an M dwarf at S/N 5-7 per visit,
    /// `../shared/data/apogee_multistar/`): 8 visits, a dense forest of weak lines (the H band of
    /// a cool star is molecular; equivalent widths an eighth of the default's, so that the
    /// velocity errors at S/N 5-7 are ~1 km/s, not 0.1), sky residuals as a bright sky leaves
    /// them on a faint star (10 times the continuum noise at a strong line's centre per unit of
    /// amplitude, 3 units common to every visit: [`Self::sky_common`]), header velocities wrong
    /// the way DR13's were for these stars (every one off by a common -250 km/s, a third of them
    /// by 200-800 km/s more), and the last two visits ones the pipeline would reject (S/N 3).
    #[must_use]
    pub fn faint_cool_star() -> Self {
        Self {
            n_visits: 8,
            snr_range: (5.0, 7.0),
            line_density: 3.0e4,
            ew_scale: 1e-5,
            sky_noise: 10.0,
            sky_common: 3.0,
            header_failure_fraction: 0.3,
            header_common_offset_kms: -250.0,
            faint_visits: 2,
            faint_snr: 3.0,
            ..Self::default()
        }
    }

    /// Check the parameters; the message names the offending value.
    pub fn validate(&self) -> Result<(), String> {
        if self.n_visits == 0 {
            return Err("number of visits must be at least 1".into());
        }
        super::check_positive(&[
            ("resolving power", self.resolving_power),
            ("continuum level", self.continuum_level),
        ])?;
        let range = |name: &str, (lo, hi): (f64, f64)| {
            if lo.is_finite() && hi.is_finite() && lo > 0.0 && hi >= lo {
                Ok(())
            } else {
                Err(format!(
                    "{name} range [{lo}, {hi}] must be positive and ordered"
                ))
            }
        };
        range("s/n", self.snr_range)?;
        range("outlier sigma", self.outlier_sigma)?;
        if let Some(r) = self.resolution_range {
            range("resolving power", r)?;
        }
        super::check_non_negative(&[
            ("bc amplitude", self.bc_amplitude_kms),
            ("velocity error", self.velocity_error_kms),
            ("tilt amplitude", self.tilt_amplitude),
            ("line density", self.line_density),
            ("ew scale", self.ew_scale),
            ("intrinsic sigma", self.intrinsic_sigma_kms),
            ("telluric density", self.telluric_density),
            ("sky line density", self.sky_line_density),
            ("sky noise", self.sky_noise),
            ("telluric error", self.telluric_error),
            ("cosmic rays per chip", self.cosmic_rays_per_chip),
        ])?;
        if !(self.header_common_offset_kms.is_finite()
            && self.header_common_offset_kms.abs() < 5000.0)
        {
            return Err(format!(
                "header common offset {} km/s is out of range",
                self.header_common_offset_kms
            ));
        }
        if !(self.sky_common.is_finite() && self.sky_common.abs() <= 100.0) {
            return Err(format!(
                "common sky residual {} must be finite and at most 100 in size",
                self.sky_common
            ));
        }
        if !(self.faint_snr.is_finite() && self.faint_snr > 0.0) {
            return Err(format!("faint S/N {} must be positive", self.faint_snr));
        }
        super::check_fractions(&[
            ("header failure fraction", self.header_failure_fraction),
            ("outlier fraction", self.outlier_fraction),
            ("telluric depth", self.telluric_depth),
            ("persistence fraction", self.persistence_fraction),
        ])?;
        if !(self.v_sys_kms.is_finite() && self.v_sys_kms.abs() < 5000.0) {
            return Err(format!(
                "systemic velocity {} km/s is out of range",
                self.v_sys_kms
            ));
        }
        if self.bc_amplitude_kms > 1000.0 {
            return Err(format!(
                "bc amplitude {} km/s is out of range",
                self.bc_amplitude_kms
            ));
        }
        if self.tilt_amplitude >= 0.5 {
            return Err(format!(
                "tilt amplitude {} must be below 0.5 (the throughput must stay positive)",
                self.tilt_amplitude
            ));
        }
        Ok(())
    }
}

/// The detector ln(lambda) of every pixel of a visit (3 x 4096, decreasing within each chip).
#[must_use]
pub fn detector_ln_wave() -> Vec<f64> {
    let mut x = Vec::with_capacity(3 * CHIP_PIXELS);
    for &(lo, hi) in &CHIP_RANGES_AA {
        let (a, b) = (hi.ln(), lo.ln());
        let step = (b - a) / (CHIP_PIXELS - 1) as f64;
        x.extend((0..CHIP_PIXELS).map(|k| a + step * k as f64));
    }
    x
}

/// The star, telluric and sky spectra (everything the `truth_seed` decides).
#[derive(Clone, Debug, PartialEq)]
pub struct ApogeeTruth {
    /// Stellar lines, rest frame; strength = equivalent width in x.
    pub lines: Vec<Line>,
    /// Telluric lines, observed frame; strength = central depth.
    pub tellurics: Vec<Line>,
    /// Sky lines, observed frame; strength = relative amplitude.
    pub sky: Vec<Line>,
    /// Bad detector pixels (indices into the 3 x 4096 layout).
    pub bad_pixels: Vec<usize>,
    /// Intrinsic line sigma in x.
    pub intrinsic_sigma: f64,
    /// Nominal LSF sigma in x.
    pub nominal_lsf_sigma: f64,
}

impl ApogeeTruth {
    /// Draw everything the truth seed decides.
    #[must_use]
    pub fn new(p: &ApogeeParams) -> Self {
        let grid = OutputGrid::apogee();
        let margin = 300.0 / C_KMS;
        let (lo, hi) = (
            grid.ln_wave.first().copied().unwrap_or(9.62) - margin,
            grid.ln_wave.last().copied().unwrap_or(9.74) + margin,
        );
        let mut rng = SynthRng::stream(p.truth_seed, 0);
        let lines = poisson_positions(&mut rng, p.line_density, lo, hi)
            .into_iter()
            .map(|x| Line {
                x,
                strength: p.ew_scale * rng.uniform().powi(4),
            })
            .collect();
        let mut trng = SynthRng::stream(p.truth_seed, 1);
        let tellurics = poisson_positions(&mut trng, p.telluric_density, lo, hi)
            .into_iter()
            .map(|x| {
                // Mostly weak lines, one in ten deep (up to the maximum depth).
                let u = trng.uniform();
                let depth = if trng.uniform() < 0.1 {
                    p.telluric_depth * (0.7 + 0.3 * u)
                } else {
                    p.telluric_depth * 0.3 * u
                };
                Line { x, strength: depth }
            })
            .collect();
        let mut srng = SynthRng::stream(p.truth_seed, 2);
        let sky = poisson_positions(&mut srng, p.sky_line_density, lo, hi)
            .into_iter()
            .map(|x| Line {
                x,
                strength: 0.3 + 0.7 * srng.uniform(),
            })
            .collect();
        let mut brng = SynthRng::stream(p.truth_seed, 3);
        let mut bad_pixels: Vec<usize> = (0..3)
            .flat_map(|chip| {
                (0..p.bad_pixels_per_chip)
                    .map(|_| chip * CHIP_PIXELS + brng.below(CHIP_PIXELS))
                    .collect::<Vec<_>>()
            })
            .collect();
        bad_pixels.sort_unstable();
        bad_pixels.dedup();
        let nominal_lsf_sigma = 1.0 / (FWHM_PER_SIGMA * p.resolving_power);
        Self {
            lines,
            tellurics,
            sky,
            bad_pixels,
            intrinsic_sigma: p.intrinsic_sigma_kms / C_KMS,
            nominal_lsf_sigma,
        }
    }

    /// The star seen through an LSF of sigma `lsf_sigma` (x units) at observed positions `x` of
    /// a source shifted by `shift` (`shift = 0`: rest frame). Continuum 1.
    #[must_use]
    pub fn star(&self, x: &[f64], shift: f64, lsf_sigma: f64) -> Vec<f64> {
        let sigma = self.intrinsic_sigma.hypot(lsf_sigma);
        let mut tau = vec![0.0; x.len()];
        add_optical_depth(&mut tau, x, shift, &self.lines, sigma);
        tau.iter().map(|t| (-t).exp()).collect()
    }

    /// Telluric transmission S at observed positions `x`, seen through an LSF of `lsf_sigma`.
    #[must_use]
    pub fn telluric(&self, x: &[f64], lsf_sigma: f64) -> Vec<f64> {
        let mut s = vec![1.0; x.len()];
        multiply_depth(&mut s, x, 0.0, &self.tellurics, lsf_sigma);
        s
    }

    /// Sky-line profile (0 away from lines, ~1 at a strong line centre).
    #[must_use]
    pub fn sky_profile(&self, x: &[f64], lsf_sigma: f64) -> Vec<f64> {
        let mut s = vec![1.0; x.len()];
        // 1 - prod(1 - a g) is a saturating sum of the line profiles, between 0 and 1.
        multiply_depth(&mut s, x, 0.0, &self.sky, lsf_sigma);
        s.iter().map(|v| 1.0 - v).collect()
    }
}

/// Per-visit quantities drawn from `seed` (exposed for tests and the window's tooltips).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VisitDraw {
    /// Barycentric correction (km/s).
    pub bc_kms: f64,
    /// True velocity relative to the observer (km/s).
    pub v_true_kms: f64,
    /// Stored (possibly perturbed, possibly failed) Vrel (km/s).
    pub v_rel_kms: f64,
    /// The header velocity failed (`ApogeeParams::header_failure_fraction`).
    pub header_failed: bool,
    /// Continuum S/N.
    pub snr: f64,
    /// Resolving power.
    pub resolving_power: f64,
    /// Julian date.
    pub jd: f64,
}

/// Generate the data set.
pub fn generate(p: &ApogeeParams) -> Result<Dataset, String> {
    p.validate()?;
    let truth = ApogeeTruth::new(p);
    let x = detector_ln_wave();
    let wavelength_aa: Vec<f64> = x.iter().map(|v| v.exp()).collect();
    let (x_lo, x_hi) = (
        x.iter().copied().fold(f64::INFINITY, f64::min),
        x.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let visits = (0..p.n_visits)
        .into_par_iter()
        .map(|j| make_visit(p, &truth, j, &x, &wavelength_aa, (x_lo, x_hi)))
        .collect::<Result<Vec<_>, String>>()?;
    let grid = OutputGrid::apogee();
    let truth_flux: Vec<f64> = truth
        .star(&grid.ln_wave, 0.0, truth.nominal_lsf_sigma)
        .into_iter()
        .map(|f| f * p.continuum_level)
        .collect();
    Ok(dataset_with_truth(
        format!("synthetic APOGEE star ({} visits)", p.n_visits),
        visits,
        grid,
        truth_flux,
        Survey::Apogee,
    ))
}

/// The per-visit draws, in the order `generate` makes them.
#[must_use]
pub fn visit_draw(p: &ApogeeParams, j: usize) -> VisitDraw {
    let mut rng = SynthRng::stream(p.seed, j as u64);
    let bc_kms = rng.uniform_in(-p.bc_amplitude_kms, p.bc_amplitude_kms);
    let v_true_kms = p.v_sys_kms - bc_kms;
    let v_rel_kms = v_true_kms + p.velocity_error_kms * rng.normal();
    let snr = rng.uniform_in(p.snr_range.0, p.snr_range.1);
    let resolving_power = match p.resolution_range {
        Some((lo, hi)) => rng.uniform_in(lo, hi),
        None => p.resolving_power,
    };
    let jd = 2_459_000.5 + 30.0 * j as f64 + rng.uniform_in(0.0, 20.0);
    // Header failures and faint visits from their own stream: the draws above never change.
    let mut hrng = SynthRng::stream(p.seed ^ 0x00BA_DFEA_D0FF, j as u64);
    let header_failed = hrng.uniform() < p.header_failure_fraction;
    let failure = if header_failed {
        let sign = if hrng.uniform() < 0.5 { -1.0 } else { 1.0 };
        sign * hrng.uniform_in(200.0, 800.0)
    } else {
        0.0
    };
    let v_rel_kms = v_rel_kms + failure + p.header_common_offset_kms;
    let snr = if p.faint_visits > 0 && j + p.faint_visits >= p.n_visits {
        p.faint_snr
    } else {
        snr
    };
    VisitDraw {
        bc_kms,
        v_true_kms,
        v_rel_kms,
        header_failed,
        snr,
        resolving_power,
        jd,
    }
}

fn make_visit(
    p: &ApogeeParams,
    truth: &ApogeeTruth,
    j: usize,
    x: &[f64],
    wavelength_aa: &[f64],
    (x_lo, x_hi): (f64, f64),
) -> Result<Arc<Visit>, String> {
    let d = visit_draw(p, j);
    // Separate streams for noise and defects, so the draws above never depend on them.
    let mut rng = SynthRng::stream(p.seed ^ 0x005E_ED0F_D1CE, j as u64);
    let lsf = 1.0 / (FWHM_PER_SIGMA * d.resolving_power);
    let dx = shift_from_velocity(d.v_true_kms);
    let n = x.len();
    let star = truth.star(x, dx, lsf);
    let tell = truth.telluric(x, lsf);
    let sky = truth.sky_profile(x, lsf);
    let level = p.continuum_level;
    // Per-visit Legendre tilt over the whole detector range (u in [-1, 1]).
    let (c1, c2) = (rng.uniform_in(-1.0, 1.0), rng.uniform_in(-1.0, 1.0));
    let sky_amp = p.sky_common + rng.normal();
    let tell_err = p.telluric_error * rng.normal();
    let persistent = rng.uniform() < p.persistence_fraction;
    let mut flux = vec![0.0; n];
    let mut ivar = vec![0.0; n];
    let mut flags = vec![0u64; n];
    let mut bad = vec![false; n];
    let mut sigma = vec![0.0; n];
    for k in 0..n {
        let u = 2.0 * (x[k] - x_lo) / (x_hi - x_lo) - 1.0;
        let tilt = 1.0 + p.tilt_amplitude * (c1 * u + c2 * 0.5 * (3.0 * u * u - 1.0));
        // The atmosphere as it was, not as the telluric model (the selection factor) says.
        let tell_true = if tell[k] > 0.0 {
            tell[k].powf(1.0 + tell_err)
        } else {
            0.0
        };
        let f = level * tell_true * star[k] * tilt;
        let var = level * level * (f / level).max(0.01) / (d.snr * d.snr);
        // Sky-subtraction residual: systematic, fixed in the observed frame, not in ivar.
        let sky_residual = p.sky_noise * sky_amp * sky[k] * level / d.snr;
        sigma[k] = var.sqrt();
        flux[k] = f + sky_residual + sigma[k] * rng.normal();
        ivar[k] = 1.0 / var;
        if sky[k] > 0.05 && p.sky_noise > 0.0 {
            flags[k] |= SIG_SKYLINE;
        }
        if tell[k] < TELLURIC_FLAG_BELOW && !truth.tellurics.is_empty() {
            flags[k] |= SIG_TELLURIC;
        }
    }
    // Persistence: a glow over the blue end of chip c, in three strengths.
    if persistent {
        let start = 2 * CHIP_PIXELS + CHIP_PIXELS - 1200;
        for (i, k) in (start..3 * CHIP_PIXELS).enumerate() {
            let (bit, glow) = match i / 400 {
                0 => (PERSIST_LOW, 0.01),
                1 => (PERSIST_MED, 0.02),
                _ => (PERSIST_HIGH, 0.04),
            };
            flags[k] |= bit;
            flux[k] += glow * level;
        }
    }
    // Cosmic rays: 1-2 pixel spikes of 10-50 sigma.
    for chip in 0..3 {
        let mut pos = poisson_positions(&mut rng, p.cosmic_rays_per_chip, 0.0, 1.0);
        for u in pos.drain(..) {
            let k0 = chip * CHIP_PIXELS + ((u * CHIP_PIXELS as f64) as usize).min(CHIP_PIXELS - 1);
            let width = 1 + usize::from(rng.uniform() < 0.5);
            for k in k0..(k0 + width).min((chip + 1) * CHIP_PIXELS) {
                flux[k] += rng.uniform_in(10.0, 50.0) * sigma[k];
                flags[k] |= CRPIX;
            }
        }
    }
    // Unflagged outliers.
    if p.outlier_fraction > 0.0 {
        for k in 0..n {
            if rng.uniform() < p.outlier_fraction {
                let sign = if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
                let size = rng.uniform_in(p.outlier_sigma.0, p.outlier_sigma.1);
                flux[k] += sign * size * sigma[k];
            }
        }
    }
    // Bad detector pixels: garbage values and the pipeline's "bad error" (ivar 0).
    for &k in &truth.bad_pixels {
        flux[k] = level * rng.uniform_in(-5.0, 5.0);
        ivar[k] = 0.0;
        flags[k] |= BADPIX;
        bad[k] = true;
    }
    let meta = VisitMeta {
        name: format!("visit {:02}", j + 1),
        source: None,
        object: Some("SYNTH-APOGEE".into()),
        jd: Some(d.jd),
        snr: Some(d.snr),
        velocities: vec![
            (VelocityKind::True, d.v_true_kms),
            (VelocityKind::Vrel, d.v_rel_kms),
            (VelocityKind::Bc, d.bc_kms),
            (VelocityKind::Vhelio, d.v_rel_kms + d.bc_kms),
        ],
        header: vec![
            ("SYNTH".into(), "apogee".into()),
            ("SEED".into(), p.seed.to_string()),
            ("TRUTHSD".into(), p.truth_seed.to_string()),
            ("R".into(), format!("{:.0}", d.resolving_power)),
        ],
        lsf_sigma_ln: Some(lsf),
        resampled: false,
        identity: None,
    };
    let arrays = VisitArrays {
        wavelength_aa: wavelength_aa.to_vec(),
        flux,
        ivar,
        flags,
        bad,
        selection: (!truth.tellurics.is_empty()).then_some(tell),
        flux_divided_by_selection: false,
        segments: (0..3)
            .map(|c| c * CHIP_PIXELS..(c + 1) * CHIP_PIXELS)
            .collect(),
    };
    Visit::new(meta, arrays)
        .map(Arc::new)
        .map_err(|e| format!("visit {}: {e}", j + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_failures_are_large_offsets_and_leave_the_other_draws_alone() {
        let base = ApogeeParams {
            n_visits: 40,
            ..ApogeeParams::default()
        };
        let p = ApogeeParams {
            n_visits: 40,
            header_failure_fraction: 0.5,
            header_common_offset_kms: 0.0,
            ..base.clone()
        };
        let mut n_failed = 0;
        for j in 0..p.n_visits {
            let (d0, d) = (visit_draw(&base, j), visit_draw(&p, j));
            assert_eq!(
                (d0.bc_kms, d0.v_true_kms, d0.snr),
                (d.bc_kms, d.v_true_kms, d.snr)
            );
            let off = d.v_rel_kms - d.v_true_kms;
            if d.header_failed {
                n_failed += 1;
                assert!((200.0..=800.0).contains(&off.abs()), "visit {j}: {off}");
            } else {
                assert_eq!(off, 0.0, "visit {j}");
            }
        }
        // 40 visits at a failure rate of one half: 20 +- 3.2 expected.
        assert!((8..=32).contains(&n_failed), "{n_failed} of 40 failed");
    }

    #[test]
    fn common_offset_and_faint_visits() {
        let p = ApogeeParams {
            n_visits: 5,
            header_common_offset_kms: 580.0,
            faint_visits: 2,
            faint_snr: 3.3,
            ..ApogeeParams::default()
        };
        for j in 0..5 {
            let d = visit_draw(&p, j);
            assert!((d.v_rel_kms - d.v_true_kms - 580.0).abs() < 1e-9);
            assert_eq!(d.snr == 3.3, j >= 3, "visit {j}: S/N {}", d.snr);
        }
        assert!(
            ApogeeParams {
                faint_snr: 0.0,
                ..p
            }
            .validate()
            .is_err()
        );
    }
}
