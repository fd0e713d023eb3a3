//! The data model: visits (exposures) of one star, the output grid, pixel bitmasks.
//!
//! Plain owned data shared as `Arc`; no I/O and no egui here. Everything that reads files
//! (`crate::io`) produces these types, and everything that combines (`crate::combine`) consumes them.

pub mod barycentric;
pub mod grid;
pub mod mask;

use std::path::PathBuf;
use std::sync::Arc;

pub use grid::OutputGrid;

/// Speed of light in km/s.
pub const C_KMS: f64 = 299_792.458;

/// The shift in x = ln(lambda) of a source moving at `v_kms` (positive = receding = redshift):
/// lambda_obs = lambda_rest (1 + v/c), so dx = ln(1 + v/c) and rest = observed - dx.
#[must_use]
pub fn shift_from_velocity(v_kms: f64) -> f64 {
    (v_kms / C_KMS).ln_1p()
}

/// The velocity (km/s) whose shift is `dx` (inverse of [`shift_from_velocity`]).
#[must_use]
pub fn velocity_from_shift(dx: f64) -> f64 {
    dx.exp_m1() * C_KMS
}

/// The velocities a visit may carry, by meaning. All in km/s.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum VelocityKind {
    /// Star velocity relative to the observer (APOGEE header VRAD, "doppler shift"; `vrel` in the
    /// DRP). Shifting by it brings the visit to the star's rest frame.
    Vrel,
    /// Barycentric correction (APOGEE header BC). Shifting by `-BC` brings the visit to the
    /// barycentric frame only.
    Bc,
    /// Barycentric (heliocentric) radial velocity of the star, `vrel + bc` (APOGEE VHELIO).
    Vhelio,
    /// The true velocity of a synthetic visit (relative to the observer), written by `synth`.
    True,
}

/// Where a visit came from and what is known about it.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VisitMeta {
    /// Short display name (file stem, exposure id, ...).
    pub name: String,
    /// The file the visit was read from, if any.
    pub source: Option<PathBuf>,
    /// Object identifier (APOGEE OBJID, BOSS plate-mjd-fiber...), used to refuse mixing stars.
    pub object: Option<String>,
    /// Epoch, Julian date (APOGEE JD-MID).
    pub jd: Option<f64>,
    /// Median signal-to-noise ratio as stated by the source.
    pub snr: Option<f64>,
    /// Known velocities by meaning (km/s).
    pub velocities: Vec<(VelocityKind, f64)>,
    /// Other header cards worth keeping (key, value), shown in the window and written on export.
    pub header: Vec<(String, String)>,
    /// Gaussian line-spread-function sigma in ln(lambda) units, when known (per visit, mean).
    pub lsf_sigma_ln: Option<f64>,
}

impl VisitMeta {
    /// The stored velocity of the given kind.
    #[must_use]
    pub fn velocity(&self, kind: VelocityKind) -> Option<f64> {
        self.velocities
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, v)| *v)
    }

    /// Set (or replace) a velocity.
    pub fn set_velocity(&mut self, kind: VelocityKind, v_kms: f64) {
        if let Some(slot) = self.velocities.iter_mut().find(|(k, _)| *k == kind) {
            slot.1 = v_kms;
        } else {
            self.velocities.push((kind, v_kms));
        }
    }
}

/// Errors found while building a [`Visit`] from raw arrays.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VisitError {
    #[error("array lengths differ: {what} has {got} values, wavelength has {expected}")]
    LengthMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("no pixels")]
    Empty,
    #[error("wavelength is not positive and finite at pixel {pixel} (value {value})")]
    BadWavelength { pixel: usize, value: f64 },
    #[error("wavelengths are not monotonic within segment {segment} (at pixel {pixel})")]
    NotMonotonic { segment: usize, pixel: usize },
    #[error("segment {index} ({start}..{end}) is empty or outside the {len} pixels")]
    BadSegment {
        index: usize,
        start: usize,
        end: usize,
        len: usize,
    },
}

/// One exposure ("visit") of the star on its own native pixels.
///
/// Construct with [`Visit::new`], which validates the arrays. The visit is immutable afterwards:
/// settings (weights, shifts, masks) never modify it.
#[derive(Clone, Debug, PartialEq)]
pub struct Visit {
    /// Metadata.
    pub meta: VisitMeta,
    wavelength_aa: Vec<f64>,
    ln_wave: Vec<f64>,
    flux: Vec<f64>,
    ivar: Vec<f64>,
    flags: Vec<u64>,
    bad: Vec<bool>,
    selection: Option<Vec<f64>>,
    flux_divided_by_selection: bool,
    segments: Vec<std::ops::Range<usize>>,
    n_invalid: usize,
}

/// Raw arrays for [`Visit::new`].
#[derive(Clone, Debug, Default)]
pub struct VisitArrays {
    /// Vacuum wavelength in Angstrom, observed frame, per pixel. Monotonic (either direction)
    /// within each segment.
    pub wavelength_aa: Vec<f64>,
    /// Flux per pixel.
    pub flux: Vec<f64>,
    /// Inverse variance per pixel (0 = no information). NaN, inf and negative become bad pixels.
    pub ivar: Vec<f64>,
    /// Pixel bitmask (APOGEE_PIXMASK, SPPIXMASK, ...); empty = all zero.
    pub flags: Vec<u64>,
    /// Pixels the source itself declares unusable (bad error value, explicit mask); empty = none.
    pub bad: Vec<bool>,
    /// Multiplicative selection factor S per pixel (telluric transmission...); `None` = 1.
    pub selection: Option<Vec<f64>>,
    /// True when `flux` (and its ivar) were already divided by `selection` by the pipeline
    /// (APOGEE apVisit FLUX is divided by TELLURIC).
    pub flux_divided_by_selection: bool,
    /// Pixel ranges of separate segments (chips, cameras); empty = one segment.
    pub segments: Vec<std::ops::Range<usize>>,
}

impl Visit {
    /// Validate and build a visit.
    ///
    /// Non-finite flux, and non-finite or negative inverse variance, are not errors: such pixels are
    /// marked bad and counted ([`Visit::n_invalid`]). Wavelengths must be positive, finite and
    /// monotonic within each segment.
    pub fn new(meta: VisitMeta, a: VisitArrays) -> Result<Self, VisitError> {
        let n = a.wavelength_aa.len();
        if n == 0 {
            return Err(VisitError::Empty);
        }
        let check = |what: &'static str, got: usize| {
            if got == n {
                Ok(())
            } else {
                Err(VisitError::LengthMismatch {
                    what,
                    expected: n,
                    got,
                })
            }
        };
        check("flux", a.flux.len())?;
        check("ivar", a.ivar.len())?;
        let flags = if a.flags.is_empty() {
            vec![0; n]
        } else {
            check("mask", a.flags.len())?;
            a.flags
        };
        let mut bad = if a.bad.is_empty() {
            vec![false; n]
        } else {
            check("bad-pixel mask", a.bad.len())?;
            a.bad
        };
        if let Some(s) = &a.selection {
            check("selection", s.len())?;
        }
        for (i, &w) in a.wavelength_aa.iter().enumerate() {
            if !(w.is_finite() && w > 0.0) {
                return Err(VisitError::BadWavelength { pixel: i, value: w });
            }
        }
        let segments = if a.segments.is_empty() {
            std::iter::once(0..n).collect()
        } else {
            a.segments
        };
        for (index, r) in segments.iter().enumerate() {
            if r.start >= r.end || r.end > n {
                return Err(VisitError::BadSegment {
                    index,
                    start: r.start,
                    end: r.end,
                    len: n,
                });
            }
            let w = &a.wavelength_aa[r.clone()];
            if w.len() >= 2 {
                let up = w[1] > w[0];
                for (j, pair) in w.windows(2).enumerate() {
                    if (pair[1] > pair[0]) != up || pair[1] == pair[0] {
                        return Err(VisitError::NotMonotonic {
                            segment: index,
                            pixel: r.start + j + 1,
                        });
                    }
                }
            }
        }
        let mut ivar = a.ivar;
        let mut n_invalid = 0;
        for i in 0..n {
            if !(a.flux[i].is_finite() && ivar[i].is_finite() && ivar[i] >= 0.0) {
                if !bad[i] {
                    n_invalid += 1;
                }
                bad[i] = true;
                ivar[i] = 0.0;
            }
        }
        let ln_wave = a.wavelength_aa.iter().map(|w| w.ln()).collect();
        Ok(Self {
            meta,
            wavelength_aa: a.wavelength_aa,
            ln_wave,
            flux: a.flux,
            ivar,
            flags,
            bad,
            selection: a.selection,
            flux_divided_by_selection: a.flux_divided_by_selection,
            segments,
            n_invalid,
        })
    }

    /// Number of pixels.
    #[must_use]
    pub fn len(&self) -> usize {
        self.flux.len()
    }

    /// Always false: a visit has at least one pixel.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.flux.is_empty()
    }

    /// Vacuum wavelength (Angstrom, observed frame).
    #[must_use]
    pub fn wavelength_aa(&self) -> &[f64] {
        &self.wavelength_aa
    }

    /// Natural log of the observed-frame vacuum wavelength in Angstrom.
    #[must_use]
    pub fn ln_wave(&self) -> &[f64] {
        &self.ln_wave
    }

    /// Flux as stored (see [`Visit::flux_divided_by_selection`]).
    #[must_use]
    pub fn flux(&self) -> &[f64] {
        &self.flux
    }

    /// Inverse variance as stored; 0 where invalid.
    #[must_use]
    pub fn ivar(&self) -> &[f64] {
        &self.ivar
    }

    /// Pixel bitmask.
    #[must_use]
    pub fn flags(&self) -> &[u64] {
        &self.flags
    }

    /// Pixels that are unusable whatever the mask-bit settings (bad error, NaN, explicit mask).
    #[must_use]
    pub fn bad(&self) -> &[bool] {
        &self.bad
    }

    /// The multiplicative selection factor S, if the visit has one.
    #[must_use]
    pub fn selection(&self) -> Option<&[f64]> {
        self.selection.as_deref()
    }

    /// Whether the stored flux was already divided by the selection factor.
    #[must_use]
    pub fn flux_divided_by_selection(&self) -> bool {
        self.flux_divided_by_selection
    }

    /// Pixel ranges of the segments (chips, cameras).
    #[must_use]
    pub fn segments(&self) -> &[std::ops::Range<usize>] {
        &self.segments
    }

    /// Pixels made bad at construction because flux or ivar was NaN, inf or negative.
    #[must_use]
    pub fn n_invalid(&self) -> usize {
        self.n_invalid
    }

    /// A copy with a different velocity table (used by shift fitting and tests).
    #[must_use]
    pub fn with_meta(&self, meta: VisitMeta) -> Self {
        Self {
            meta,
            ..self.clone()
        }
    }
}

/// A spectrum on a grid (the pipeline's own coadd, a truth spectrum).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Spectrum {
    /// Label shown in plots.
    pub label: String,
    /// ln(lambda / Angstrom), rest frame.
    pub ln_wave: Vec<f64>,
    /// Flux.
    pub flux: Vec<f64>,
    /// Inverse variance, if known (empty otherwise).
    pub ivar: Vec<f64>,
}

/// Everything loaded for one star: visits plus optional context.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    /// Display name of the star.
    pub name: String,
    /// The visits, immutable and shared.
    pub visits: Vec<Arc<Visit>>,
    /// An output grid that came with the input (reference bundles), used by `GridSpec::FromInput`.
    pub input_grid: Option<OutputGrid>,
    /// The noise-free truth on some grid (synthetic data).
    pub truth: Option<Spectrum>,
    /// The survey pipeline's own combined spectrum (BOSS COADD), for comparison only.
    pub pipeline_coadd: Option<Spectrum>,
    /// Suggested settings preset (which survey the data came from).
    pub survey: Survey,
}

/// Which survey a dataset looks like; selects default grid and mask presets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Survey {
    /// SDSS APOGEE (apVisit, synthetic APOGEE-like).
    Apogee,
    /// SDSS BOSS.
    Boss,
    /// Anything else.
    #[default]
    Generic,
}
