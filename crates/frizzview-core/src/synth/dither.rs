//! Synthetic raw APOGEE exposures: undersampled 2048-pixel chips at half-pixel dither pairs,
//! written as apCframe files in the real layout ([`crate::testkit::sdss_layouts::write_apcframe`]).
//!
//! APOGEE's detectors undersample the spectrum (a line FWHM of about 1.5-2 pixels), which is why
//! the instrument dithers by half a pixel between exposures and the pipeline interlaces dither
//! pairs onto a 4096-pixel half-pixel grid (`sdss/apogee_drp` `pro/apogeereduce/apdithercomb.pro`).
//!
//! Model, per exposure e and chip: a nominal log-uniform wavelength solution lambda0(k) over the
//! chip's range (decreasing with pixel k, as in the real files); the detector sits at dither
//! offset d_e pixels, so pixel k sees lambda_e(k) = lambda0(k + d_e) and that is the exposure's
//! own WAVELENGTH row. d_e = 0 or `dither_px` alternately (A, B, A, B...), plus a slow drift and a
//! random jitter (the measured shift of real pairs is near, not exactly, 0.5). The star (the line
//! list of [`super::apogee::ApogeeTruth`], no intrinsic broadening) moves with the observer's
//! velocity v_sys - BC_e, where BC_e is computed for the exposure's mid-time at APO with
//! [`crate::model::barycentric`]. The line spread function, pixel response included, is a
//! Gaussian of `fwhm_px` pixels. Flux in ADU: continuum x star, Gaussian noise of variance
//! continuum x star / snr^2 (x continuum). Fibres: the star on FIBERID 299, another star on 300
//! and a sky fibre on 298 (image rows 1, 0, 2).

use std::path::{Path, PathBuf};

use super::SynthRng;
use super::apogee::{ApogeeParams, ApogeeTruth, CHIP_RANGES_AA};
use crate::io::SaveError;
use crate::model::barycentric::{APO, barycentric_correction};
use crate::model::shift_from_velocity;
use crate::testkit::sdss_layouts::{CframeChip, CframeFibre, write_apcframe};

/// Pixels per chip of the raw exposures.
pub const RAW_PIXELS: usize = 2048;

/// FWHM / sigma of a Gaussian.
const FWHM_PER_SIGMA: f64 = 2.354_820_045_030_949;

/// The synthetic star's APOGEE id (its coordinates are RA/DEC below).
pub const STAR_ID: &str = "2M12345678+1234567";

/// Parameters of the dithered-exposure generator.
#[derive(Clone, Debug, PartialEq)]
pub struct DitherParams {
    /// Number of exposures (pairs A/B in time order).
    pub n_exposures: usize,
    /// Seed of the noise, jitter and bad pixels.
    pub seed: u64,
    /// Seed of the line list.
    pub truth_seed: u64,
    /// Line FWHM in native pixels (LSF and pixel response, Gaussian).
    pub fwhm_px: f64,
    /// Dither step between A and B positions (pixels).
    pub dither_px: f64,
    /// Drift of the detector position per exposure (pixels).
    pub drift_px: f64,
    /// Random jitter of each position (Gaussian sigma, pixels).
    pub jitter_px: f64,
    /// Continuum S/N per pixel per exposure; `f64::INFINITY` = no noise.
    pub snr: f64,
    /// Continuum level (ADU).
    pub continuum_adu: f64,
    /// Barycentric velocity of the star (km/s).
    pub v_sys_kms: f64,
    /// Coordinates (degrees).
    pub ra_deg: f64,
    /// Declination (degrees).
    pub dec_deg: f64,
    /// JD of the first exposure's start.
    pub jd_start: f64,
    /// Exposure time (s); exposures follow each other with 30 s of readout.
    pub exptime_s: f64,
    /// Bad pixels per chip per exposure (BADPIX, error 1e10).
    pub bad_pixels_per_chip: usize,
    /// Stellar lines per unit ln(lambda) and the equivalent-width scale (as the APOGEE generator).
    pub line_density: f64,
    /// Equivalent-width scale.
    pub ew_scale: f64,
    /// First exposure number.
    pub first_exposure: u64,
}

impl Default for DitherParams {
    fn default() -> Self {
        Self {
            n_exposures: 8,
            seed: 7,
            truth_seed: 42,
            fwhm_px: 1.7,
            dither_px: 0.5,
            drift_px: 0.02,
            jitter_px: 0.02,
            snr: 60.0,
            continuum_adu: 2000.0,
            v_sys_kms: -12.0,
            ra_deg: 188.736_583,
            dec_deg: 12.582_417,
            jd_start: 2_459_800.65,
            exptime_s: 500.0,
            bad_pixels_per_chip: 2,
            line_density: 1.5e4,
            ew_scale: 8e-5,
            // mjd = num // 10000 + 55562 (apogee_drp exposure numbering): 59800 -> 42380000.
            first_exposure: 42_380_011,
        }
    }
}

/// What was drawn for one exposure.
#[derive(Clone, Debug, PartialEq)]
pub struct DitherExposure {
    /// Exposure number.
    pub number: u64,
    /// Detector offset d_e (pixels) against the nominal solution.
    pub offset_px: f64,
    /// JD at mid-exposure.
    pub jd_mid: f64,
    /// Barycentric correction (km/s).
    pub bc_kms: f64,
    /// DATE-OBS (UTC start).
    pub date_obs: String,
}

/// The generated exposures (three chips each) with what is needed to evaluate the truth.
#[derive(Clone, Debug)]
pub struct DitherSet {
    /// Parameters.
    pub params: DitherParams,
    /// One entry per exposure.
    pub exposures: Vec<DitherExposure>,
    /// `chips[e][c]`: chip c (a, b, c) of exposure e.
    pub chips: Vec<Vec<CframeChip>>,
    /// The star's lines.
    pub truth: ApogeeTruth,
}

/// The nominal ln(lambda) of (fractional) pixel `k` of chip `c` (decreasing with k).
#[must_use]
pub fn nominal_ln_wave(c: usize, k: f64) -> f64 {
    let (lo, hi) = CHIP_RANGES_AA[c];
    let (a, b) = (hi.ln(), lo.ln());
    a + (b - a) * k / (RAW_PIXELS - 1) as f64
}

/// |d ln(lambda) / d pixel| of chip `c`.
#[must_use]
pub fn pixel_step(c: usize) -> f64 {
    (nominal_ln_wave(c, 0.0) - nominal_ln_wave(c, 1.0)).abs()
}

/// The Gaussian LSF sigma of chip `c` in ln(lambda).
#[must_use]
pub fn lsf_sigma(p: &DitherParams, c: usize) -> f64 {
    p.fwhm_px / FWHM_PER_SIGMA * pixel_step(c)
}

/// ISO 8601 UTC of a Julian date (inverse of the Meeus algorithm).
#[must_use]
pub fn iso_from_jd(jd: f64) -> String {
    let z = (jd + 0.5).floor();
    let frac = jd + 0.5 - z;
    let alpha = ((z - 1_867_216.25) / 36_524.25).floor();
    let a = z + 1.0 + alpha - (alpha / 4.0).floor();
    let b = a + 1524.0;
    let c = ((b - 122.1) / 365.25).floor();
    let d = (365.25 * c).floor();
    let e = ((b - d) / 30.6001).floor();
    let day = b - d - (30.6001 * e).floor();
    let month = if e < 14.0 { e - 1.0 } else { e - 13.0 };
    let year = if month > 2.0 { c - 4716.0 } else { c - 4715.0 };
    let secs = (frac * 86_400.0 * 1000.0).round() / 1000.0;
    let hh = (secs / 3600.0).floor();
    let mm = ((secs - hh * 3600.0) / 60.0).floor();
    let ss = secs - hh * 3600.0 - mm * 60.0;
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:06.3}",
        year as i64, month as i64, day as i64, hh as i64, mm as i64, ss
    )
}

impl DitherSet {
    /// The noise-free star at barycentric-frame ln(lambda) `x` for chip `c` (continuum 1):
    /// what a combination in the barycentric frame should recover.
    #[must_use]
    pub fn truth_barycentric(&self, x: &[f64], c: usize) -> Vec<f64> {
        self.truth.star(
            x,
            shift_from_velocity(self.params.v_sys_kms),
            lsf_sigma(&self.params, c),
        )
    }

    /// The noise-free star at observed-frame ln(lambda) `x` of exposure `e`, chip `c`.
    #[must_use]
    pub fn truth_observed(&self, x: &[f64], e: usize, c: usize) -> Vec<f64> {
        let v = self.params.v_sys_kms - self.exposures[e].bc_kms;
        self.truth
            .star(x, shift_from_velocity(v), lsf_sigma(&self.params, c))
    }

    /// Write every chip of every exposure into `dir` as apCframe files; returns the paths.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, SaveError> {
        let mut out = Vec::new();
        for chips in &self.chips {
            for c in chips {
                let p = dir.join(c.file_name());
                write_apcframe(&p, c)?;
                out.push(p);
            }
        }
        Ok(out)
    }

    /// The exposure numbers.
    #[must_use]
    pub fn frame_numbers(&self) -> Vec<u64> {
        self.exposures.iter().map(|e| e.number).collect()
    }
}

/// Generate the exposures.
pub fn generate(p: &DitherParams) -> Result<DitherSet, String> {
    if p.n_exposures == 0 || p.n_exposures > 64 {
        return Err(format!("{} exposures: expected 1-64", p.n_exposures));
    }
    if !(p.fwhm_px.is_finite() && p.fwhm_px > 0.1 && p.fwhm_px < 20.0) {
        return Err(format!("line FWHM {} px is outside 0.1-20", p.fwhm_px));
    }
    if !(p.snr > 0.0) || !p.continuum_adu.is_finite() || p.continuum_adu <= 0.0 {
        return Err("S/N and continuum must be positive".into());
    }
    let truth = ApogeeTruth::new(&ApogeeParams {
        truth_seed: p.truth_seed,
        line_density: p.line_density,
        ew_scale: p.ew_scale,
        intrinsic_sigma_kms: 0.0,
        telluric_density: 0.0,
        sky_line_density: 0.0,
        ..ApogeeParams::default()
    });
    let mut rng = SynthRng::stream(p.seed, 0);
    let mut exposures = Vec::with_capacity(p.n_exposures);
    for e in 0..p.n_exposures {
        let start = p.jd_start + e as f64 * (p.exptime_s + 30.0) / 86_400.0;
        let jd_mid = start + p.exptime_s / 2.0 / 86_400.0;
        let offset = if e % 2 == 1 { p.dither_px } else { 0.0 }
            + p.drift_px * e as f64
            + p.jitter_px * rng.normal();
        exposures.push(DitherExposure {
            number: p.first_exposure + e as u64,
            offset_px: offset,
            jd_mid,
            bc_kms: barycentric_correction(p.ra_deg, p.dec_deg, jd_mid, &APO),
            date_obs: iso_from_jd(start),
        });
    }
    let noisy = p.snr.is_finite();
    let mut chips = Vec::with_capacity(p.n_exposures);
    for (e, ex) in exposures.iter().enumerate() {
        let mut per = Vec::with_capacity(3);
        for (c, chip) in ['a', 'b', 'c'].into_iter().enumerate() {
            let mut nrng = SynthRng::stream(p.seed ^ 0xD1_7E4, (e * 3 + c) as u64);
            let x: Vec<f64> = (0..RAW_PIXELS)
                .map(|k| nominal_ln_wave(c, k as f64 + ex.offset_px))
                .collect();
            let wave: Vec<f64> = x.iter().map(|v| v.exp()).collect();
            let sigma = lsf_sigma(p, c);
            let make = |v_kms: f64, level: f64, rng: &mut SynthRng| {
                let star = truth.star(&x, shift_from_velocity(v_kms), sigma);
                let mut flux = Vec::with_capacity(RAW_PIXELS);
                let mut err = Vec::with_capacity(RAW_PIXELS);
                for s in &star {
                    let f = level * s;
                    let sd = if noisy {
                        (level * f.max(0.01 * level)).sqrt() / p.snr
                    } else {
                        level / 1000.0
                    };
                    let n = if noisy { sd * rng.normal() } else { 0.0 };
                    flux.push((f + n) as f32);
                    err.push(sd as f32);
                }
                (flux, err)
            };
            let (mut flux, mut err) = make(p.v_sys_kms - ex.bc_kms, p.continuum_adu, &mut nrng);
            let mut mask = vec![0i16; RAW_PIXELS];
            for _ in 0..p.bad_pixels_per_chip {
                let k = nrng.below(RAW_PIXELS);
                mask[k] |= 1; // BADPIX
                err[k] = 1.0e10;
                flux[k] = (p.continuum_adu * nrng.uniform_in(-3.0, 3.0)) as f32;
            }
            let (flux2, err2) = make(
                p.v_sys_kms + 40.0 - ex.bc_kms,
                0.6 * p.continuum_adu,
                &mut nrng,
            );
            let sky_err = vec![(p.continuum_adu.sqrt() / 10.0) as f32; RAW_PIXELS];
            let sky_flux: Vec<f32> = (0..RAW_PIXELS)
                .map(|_| {
                    if noisy {
                        (f64::from(sky_err[0]) * nrng.normal()) as f32
                    } else {
                        0.0
                    }
                })
                .collect();
            let fibre = |fiberid: i32,
                         objtype: &str,
                         object: &str,
                         flux: Vec<f32>,
                         error: Vec<f32>,
                         mask: Vec<i16>,
                         cat: i64,
                         dra: f64| CframeFibre {
                fiberid,
                objtype: objtype.into(),
                object: object.into(),
                catalogid: cat,
                ra: p.ra_deg + dra,
                dec: p.dec_deg,
                hmag: 10.5,
                flux,
                error,
                mask,
                wavelength: wave.clone(),
                sky: vec![(0.05 * p.continuum_adu) as f32; RAW_PIXELS],
                telluric: vec![1.0; RAW_PIXELS],
            };
            let fibres = vec![
                fibre(
                    300,
                    "STAR",
                    "2M12350000+1230000",
                    flux2,
                    err2,
                    vec![0; RAW_PIXELS],
                    27_021_597_000_000_002,
                    0.05,
                ),
                fibre(
                    299,
                    "STAR",
                    STAR_ID,
                    flux,
                    err,
                    mask,
                    27_021_597_000_000_001,
                    0.0,
                ),
                fibre(
                    298,
                    "SKY",
                    "",
                    sky_flux,
                    sky_err,
                    vec![0; RAW_PIXELS],
                    -1,
                    0.1,
                ),
            ];
            per.push(CframeChip {
                chip,
                exposure: ex.number,
                telescope: "apo25m".into(),
                date_obs: ex.date_obs.clone(),
                exptime: p.exptime_s,
                jd_mid: Some(ex.jd_mid),
                dithpix: 12.994 + if e % 2 == 1 { p.dither_px } else { 0.0 },
                dithsh: ex.offset_px - exposures[0].offset_px,
                plate: 15_000,
                extnames: true,
                fibres,
            });
        }
        chips.push(per);
    }
    Ok(DitherSet {
        params: p.clone(),
        exposures,
        chips,
        truth,
    })
}

/// One chip file with the star alone (FIBERID 300) and a sky fibre (299): the smallest
/// layout-faithful apCframe, used as a committed test and fuzz fixture
/// (`tests/fixtures/apCframe-b-42380011.fits`).
pub fn single_target_chip() -> Result<CframeChip, String> {
    let set = generate(&DitherParams {
        n_exposures: 1,
        ..DitherParams::default()
    })?;
    let mut chip = set
        .chips
        .into_iter()
        .next()
        .and_then(|c| c.into_iter().nth(1))
        .ok_or("no chip b")?;
    let mut star = chip.fibres[1].clone();
    star.fiberid = 300;
    let mut sky = chip.fibres[2].clone();
    sky.fiberid = 299;
    chip.fibres = vec![star, sky];
    Ok(chip)
}
