//! The paper's generator (Hogg & Casey 2024 §4; `frizzle.test_utils.make_one_dataset`).
//!
//! x = ln(lambda/Angstrom) in [8.7000, 8.7025]; Poisson lines (2e4 per unit x, over the range
//! widened by 1000 km/s each side) with equivalent width 3e-5 U^5 in a Gaussian optical depth of
//! sigma = 1/R; N epochs with dx_j = (v_amp/c) cos(j/3) on one common detector grid
//! `arange(x_min - dx/2, x_max + dx, dx)`; noise ivar = SNR^2 / f_true; bad pixels: seeds with
//! probability p grown to 3 adjacent pixels, flux += 2 U, flagged (bit 0) and marked bad.
//!
//! Deviations, documented: the bad-pixel growth does not wrap around the ends (numpy's `roll`
//! does); the epoch shift dx_j is stored as the velocity v_j = c (exp(dx_j) - 1), so that the
//! combination's dx = ln(1 + v/c) gives back exactly the paper's dx_j.
//!
//! Optional, for the teaching panel: a telluric transmission S fixed in the observed frame,
//! multiplied into the flux (and the photon noise) and stored as the visit's selection factor.

use std::sync::Arc;

use super::{
    Line, SynthRng, add_optical_depth, arange, dataset_with_truth, multiply_depth,
    poisson_positions,
};
use crate::model::{
    C_KMS, Dataset, OutputGrid, Survey, VelocityKind, Visit, VisitArrays, VisitError, VisitMeta,
    velocity_from_shift,
};

/// Every parameter of the paper's generator (defaults = the poorly sampled case).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct PaperParams {
    /// Resolving power R; the LSF sigma and the output spacing are 1/R in x.
    pub resolving_power: f64,
    /// Lower end of the x = ln(lambda/A) range.
    pub x_min: f64,
    /// Upper end of the x range.
    pub x_max: f64,
    /// Input (detector) pixel spacing in units of 1/R (2 = poorly sampled, 1 = well sampled).
    pub pixel_spacing_r: f64,
    /// Continuum signal-to-noise ratio per input pixel.
    pub snr: f64,
    /// Number of visits (epochs).
    pub n_visits: usize,
    /// Velocity semi-amplitude (km/s): dx_j = (v/c) cos(j * phase_step).
    pub velocity_amplitude_kms: f64,
    /// Phase step between epochs (radians; the paper: 1/3).
    pub phase_step_rad: f64,
    /// Probability that a pixel seeds a bad-pixel group.
    pub bad_fraction: f64,
    /// Width of each bad-pixel group (the paper: 3).
    pub bad_group_px: usize,
    /// Mean number of lines per unit x.
    pub line_density: f64,
    /// Equivalent-width scale: EW = scale U^5 (x units).
    pub ew_scale: f64,
    /// Lines are drawn over the x range widened by this velocity each side (km/s).
    pub line_margin_kms: f64,
    /// Maximum central depth of telluric lines (0 = no telluric; up to 1).
    pub telluric_depth: f64,
    /// Mean number of telluric lines per unit x.
    pub telluric_density: f64,
    /// Offset of the first output pixel from x_min in units of 1/R: 1 (default) gives the
    /// 337-pixel grid of the frizzle-era runs, 0.5 the 338-pixel grid of the paper's figures
    /// (Hogg's notebook). The sub-pixel phase between input and output pixels changes standard
    /// practice's noise: with 0.5 it reproduces the revised figure (see `crate::experiment`).
    pub output_offset_r: f64,
    /// Seed of the line list and telluric spectrum (the truth).
    pub truth_seed: u64,
    /// Seed of the noise and the bad pixels.
    pub seed: u64,
}

impl Default for PaperParams {
    fn default() -> Self {
        Self::poor()
    }
}

impl PaperParams {
    /// The paper's poorly sampled case: dx = 2/R, SNR 18.
    #[must_use]
    pub fn poor() -> Self {
        Self {
            resolving_power: 1.35e5,
            x_min: 8.7,
            x_max: 8.7025,
            pixel_spacing_r: 2.0,
            snr: 18.0,
            n_visits: 8,
            velocity_amplitude_kms: 30.0,
            phase_step_rad: 1.0 / 3.0,
            bad_fraction: 0.01,
            bad_group_px: 3,
            line_density: 2e4,
            ew_scale: 3e-5,
            line_margin_kms: 1000.0,
            telluric_depth: 0.0,
            telluric_density: 4e3,
            output_offset_r: 1.0,
            truth_seed: 17,
            seed: 0,
        }
    }

    /// The paper's well sampled case: dx = 1/R, SNR 12.
    #[must_use]
    pub fn well() -> Self {
        Self {
            pixel_spacing_r: 1.0,
            snr: 12.0,
            ..Self::poor()
        }
    }

    /// A preset by name: "poor" or "well".
    #[must_use]
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "poor" | "poorly" | "poorly_sampled" => Some(Self::poor()),
            "well" | "well_sampled" => Some(Self::well()),
            _ => None,
        }
    }

    /// LSF sigma (and output spacing) in x: 1/R.
    #[must_use]
    pub fn sigma_x(&self) -> f64 {
        1.0 / self.resolving_power
    }

    /// Check the parameters; the message names the offending value.
    pub fn validate(&self) -> Result<(), String> {
        super::check_positive(&[
            ("resolving power", self.resolving_power),
            ("pixel spacing", self.pixel_spacing_r),
            ("s/n", self.snr),
        ])?;
        if !(self.x_min.is_finite() && self.x_max.is_finite() && self.x_max > self.x_min) {
            return Err(format!(
                "x range [{}, {}] is empty or not finite",
                self.x_min, self.x_max
            ));
        }
        if self.n_visits == 0 {
            return Err("number of visits must be at least 1".into());
        }
        super::check_fractions(&[
            ("bad-pixel fraction", self.bad_fraction),
            ("telluric depth", self.telluric_depth),
        ])?;
        super::check_non_negative(&[
            ("line density", self.line_density),
            ("ew scale", self.ew_scale),
            ("line margin", self.line_margin_kms),
            ("telluric density", self.telluric_density),
            ("output offset", self.output_offset_r),
        ])?;
        if !self.velocity_amplitude_kms.is_finite()
            || self.velocity_amplitude_kms.abs() >= 0.5 * C_KMS
        {
            return Err(format!(
                "velocity amplitude {} km/s is not finite or too large",
                self.velocity_amplitude_kms
            ));
        }
        // Keep the arrays reasonable: the teaching panel must never freeze the app.
        let n_pix = (self.x_max - self.x_min) * self.resolving_power / self.pixel_spacing_r;
        if n_pix > 2e6 {
            return Err(format!(
                "{n_pix:.0} pixels per visit is too many (lower R or the x range)"
            ));
        }
        Ok(())
    }
}

/// The noise-free star and telluric spectrum shared by all trials with one `truth_seed`.
#[derive(Clone, Debug, PartialEq)]
pub struct PaperTruth {
    /// Stellar lines (rest frame), strength = equivalent width in x.
    pub lines: Vec<Line>,
    /// Telluric lines (observed frame), strength = central depth.
    pub tellurics: Vec<Line>,
    /// LSF sigma in x.
    pub sigma_x: f64,
}

impl PaperTruth {
    /// Draw the line list (and tellurics) from `p.truth_seed`.
    #[must_use]
    pub fn new(p: &PaperParams) -> Self {
        let mut rng = SynthRng::stream(p.truth_seed, 0);
        let margin = p.line_margin_kms / C_KMS;
        let xs = poisson_positions(&mut rng, p.line_density, p.x_min - margin, p.x_max + margin);
        let lines = xs
            .into_iter()
            .map(|x| Line {
                x,
                strength: p.ew_scale * rng.uniform().powi(5),
            })
            .collect();
        let mut trng = SynthRng::stream(p.truth_seed, 1);
        let tellurics = if p.telluric_depth > 0.0 {
            poisson_positions(&mut trng, p.telluric_density, p.x_min, p.x_max)
                .into_iter()
                .map(|x| Line {
                    x,
                    strength: p.telluric_depth * trng.uniform(),
                })
                .collect()
        } else {
            Vec::new()
        };
        Self {
            lines,
            tellurics,
            sigma_x: p.sigma_x(),
        }
    }

    /// The true (unattenuated) spectrum at observed positions `x` of a source shifted by
    /// `shift` (rest = x - shift; `shift = 0` gives the rest-frame spectrum).
    #[must_use]
    pub fn star(&self, x: &[f64], shift: f64) -> Vec<f64> {
        let mut tau = vec![0.0; x.len()];
        add_optical_depth(&mut tau, x, shift, &self.lines, self.sigma_x);
        tau.iter().map(|t| (-t).exp()).collect()
    }

    /// Telluric transmission at observed positions `x` (1 when there are no tellurics).
    #[must_use]
    pub fn telluric(&self, x: &[f64]) -> Vec<f64> {
        let mut s = vec![1.0; x.len()];
        multiply_depth(&mut s, x, 0.0, &self.tellurics, self.sigma_x);
        s
    }
}

/// The shifts dx_j (x units) of the paper's epochs.
#[must_use]
pub fn epoch_shifts(p: &PaperParams) -> Vec<f64> {
    (0..p.n_visits)
        .map(|j| (p.velocity_amplitude_kms / C_KMS) * (j as f64 * p.phase_step_rad).cos())
        .collect()
}

/// The output grid: `arange(x_min + offset/R, x_max, 1/R)` (337 pixels by default).
#[must_use]
pub fn output_grid(p: &PaperParams) -> OutputGrid {
    let step = p.sigma_x();
    let x = arange(p.x_min + p.output_offset_r * step, p.x_max, step);
    let ln10 = std::f64::consts::LN_10;
    let (start, n) = (x.first().copied().unwrap_or(p.x_min), x.len());
    // Log-linear, so exported files carry CRVAL1/CDELT1; identical to `x` to rounding.
    OutputGrid::log_linear(start / ln10, step / ln10, n.max(2))
}

/// The detector grid shared by every epoch: `arange(x_min - dx/2, x_max + dx, dx)`.
#[must_use]
pub fn input_grid(p: &PaperParams) -> Vec<f64> {
    let dx = p.pixel_spacing_r * p.sigma_x();
    arange(p.x_min - 0.5 * dx, p.x_max + dx, dx)
}

/// Generate a data set with a fresh truth (see [`generate_with_truth`] to reuse one).
pub fn generate(p: &PaperParams) -> Result<Dataset, String> {
    p.validate()?;
    let truth = PaperTruth::new(p);
    generate_with_truth(p, &truth)
}

/// Generate the visits for `p.seed` with a given truth (many trials, one line list).
pub fn generate_with_truth(p: &PaperParams, truth: &PaperTruth) -> Result<Dataset, String> {
    p.validate()?;
    let xs = input_grid(p);
    let wavelength_aa: Vec<f64> = xs.iter().map(|x| x.exp()).collect();
    let tell = truth.telluric(&xs);
    let has_telluric = !truth.tellurics.is_empty();
    let mut visits = Vec::with_capacity(p.n_visits);
    for (j, &dx) in epoch_shifts(p).iter().enumerate() {
        let mut rng = SynthRng::stream(p.seed, j as u64);
        let star = truth.star(&xs, dx);
        let n = xs.len();
        let mut flux = Vec::with_capacity(n);
        let mut ivar = Vec::with_capacity(n);
        for k in 0..n {
            let f = star[k] * tell[k];
            // Photon-like noise; the floor keeps saturated telluric cores finite.
            let iv = p.snr * p.snr / f.max(1e-3);
            ivar.push(iv);
            flux.push(f + rng.normal() / iv.sqrt());
        }
        // Bad pixels: seeds grown to a group, corrupted upwards.
        let mut bad = vec![false; n];
        for k in 0..n {
            if rng.uniform() < p.bad_fraction {
                let half = p.bad_group_px / 2;
                let lo = k.saturating_sub(half);
                let hi = (lo + p.bad_group_px).min(n);
                for b in &mut bad[lo..hi] {
                    *b = true;
                }
            }
        }
        let mut flags = vec![0u64; n];
        for k in 0..n {
            if bad[k] {
                flux[k] += 2.0 * rng.uniform();
                flags[k] = 1;
            }
        }
        let v = velocity_from_shift(dx);
        let meta = VisitMeta {
            name: format!("epoch {j}"),
            object: Some("synthetic (paper)".into()),
            jd: Some(2_460_000.5 + j as f64),
            snr: Some(p.snr),
            velocities: vec![(VelocityKind::True, v), (VelocityKind::Vrel, v)],
            header: vec![
                ("SYNTH".into(), "paper".into()),
                ("SEED".into(), p.seed.to_string()),
                ("TRUTHSD".into(), p.truth_seed.to_string()),
            ],
            lsf_sigma_ln: Some(p.sigma_x()),
            ..VisitMeta::default()
        };
        let arrays = VisitArrays {
            wavelength_aa: wavelength_aa.clone(),
            flux,
            ivar,
            flags,
            bad,
            selection: has_telluric.then(|| tell.clone()),
            flux_divided_by_selection: false,
            segments: Vec::new(),
        };
        let visit = Visit::new(meta, arrays).map_err(|e: VisitError| format!("epoch {j}: {e}"))?;
        visits.push(Arc::new(visit));
    }
    let grid = output_grid(p);
    let truth_flux = truth.star(&grid.ln_wave, 0.0);
    Ok(dataset_with_truth(
        format!(
            "paper synthetic (dx = {}/R, S/N {})",
            p.pixel_spacing_r, p.snr
        ),
        visits,
        grid,
        truth_flux,
        Survey::Generic,
    ))
}
