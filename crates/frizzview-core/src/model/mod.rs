//! The data model: visits (exposures) of one star, the output grid, pixel bitmasks.
//!
//! Plain owned data shared as `Arc`; no I/O and no egui here. Everything that reads files
//! (`crate::io`) produces these types, and everything that combines (`crate::combine`) consumes them.

pub mod barycentric;
pub mod grid;
pub mod mask;
pub mod pixel_policy;

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

/// Header card set on visits that are resampled spectra (an apStar's rows, astra mwmVisit rows,
/// SDSS-V BOSS exposures) rather than native pixels; its value says where they came from. The
/// combination warns when such visits are combined.
pub const RESAMPLED_CARD: &str = "FV_RESAMPLED";

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
    /// The star's velocity relative to the observer from an apStar file given with the visits
    /// (its per-visit cards, read with the release's convention; `io::survey_rv`).
    ApStar,
    /// The same from an allVisit summary table (`io::survey_rv`).
    AllVisit,
    /// The same from an mwmVisit file's APOGEE rows.
    MwmVisit,
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
    /// True when the pixels are not the detector's own: the pipeline already interpolated this
    /// visit onto another grid (BOSS spec-full exposures, mwmVisit rows, apStar visit rows).
    /// Forward-modelling such pixels again does not undo that interpolation, and their noise is
    /// correlated between neighbouring pixels.
    #[serde(default)]
    pub resampled: bool,
    /// What identifies the visit whatever its file is called (APOGEE: telescope, plate or field,
    /// MJD, fibre, read from the file's header), used to match companion files (an apStar's
    /// `SFILEn`, allVisit and mwmVisit rows) to the visit. `None` when the source says nothing.
    #[serde(default)]
    pub identity: Option<VisitIdentity>,
}

/// What identifies one survey visit, whatever its file is called: the telescope, the plate (SDSS-V:
/// the FPS configuration id) or field, the MJD and the fibre. Read from a visit's header (APOGEE
/// `TELESCOP`, `PLATE`, `FIELD`, `MJD5`, `FIBERID`), from a companion's rows (allVisit and mwmVisit
/// columns) or parsed from the file names a companion lists (an apStar's `SFILEn`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct VisitIdentity {
    /// `apo25m`, `lco25m`, `apo1m` (lower case), when known.
    #[serde(default)]
    pub telescope: Option<String>,
    /// The field name, when known.
    #[serde(default)]
    pub field: Option<String>,
    /// The plate (SDSS-V: configuration id), without leading zeros.
    #[serde(default)]
    pub plate: Option<String>,
    /// MJD of the visit.
    #[serde(default)]
    pub mjd: Option<u32>,
    /// Fibre number.
    #[serde(default)]
    pub fiber: Option<u32>,
}

impl VisitIdentity {
    /// An identity from raw values: the plate and field trimmed (the plate without leading zeros),
    /// the telescope in lower case; empty strings, MJD 0 and fibre 0 become `None`.
    #[must_use]
    pub fn new(
        telescope: Option<&str>,
        field: Option<&str>,
        plate: Option<&str>,
        mjd: Option<u32>,
        fiber: Option<u32>,
    ) -> Self {
        let clean = |s: Option<&str>| {
            s.map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let plate = clean(plate).map(|p| {
            let t = p.trim_start_matches('0');
            if t.is_empty() {
                "0".to_owned()
            } else {
                t.to_owned()
            }
        });
        // MJD 0 and fibre 0 are placeholders, not values (fibres are numbered 1-300).
        Self {
            telescope: clean(telescope).map(|t| t.to_ascii_lowercase()),
            field: clean(field),
            plate,
            mjd: mjd.filter(|&m| m > 0),
            fiber: fiber.filter(|&f| f > 0),
        }
    }

    /// Whether `self` and `other` designate the same visit: `Some(true)` when the MJD and the fibre
    /// agree and so do the plate (else the field) and the telescope wherever both sides know them;
    /// `Some(false)` when anything both sides know differs; `None` when either side lacks the MJD
    /// or the fibre, or neither plate nor field can be compared (not enough to tell).
    #[must_use]
    pub fn same_visit(&self, other: &Self) -> Option<bool> {
        let differ = |a: &Option<String>, b: &Option<String>| matches!((a, b), (Some(a), Some(b)) if !a.eq_ignore_ascii_case(b));
        if differ(&self.telescope, &other.telescope) {
            return Some(false);
        }
        let (Some(m1), Some(f1), Some(m2), Some(f2)) =
            (self.mjd, self.fiber, other.mjd, other.fiber)
        else {
            return None;
        };
        if m1 != m2 || f1 != f2 {
            return Some(false);
        }
        match (&self.plate, &other.plate) {
            (Some(a), Some(b)) => Some(a == b),
            _ => match (&self.field, &other.field) {
                (Some(a), Some(b)) => Some(a.eq_ignore_ascii_case(b)),
                _ => None,
            },
        }
    }

    /// Short text: `telescope plate-mjd-fiber` (field when no plate), `?` for what is unknown.
    #[must_use]
    pub fn label(&self) -> String {
        let q = |o: Option<String>| o.unwrap_or_else(|| "?".into());
        let plate = self.plate.clone().or_else(|| self.field.clone());
        let s = format!(
            "{}-{}-{}",
            q(plate),
            q(self.mjd.map(|m| m.to_string())),
            q(self.fiber.map(|f| f.to_string()))
        );
        match &self.telescope {
            Some(t) => format!("{t} {s}"),
            None => s,
        }
    }
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
    #[error(
        "line-spread-function sigma of {sigma_px:.3e} pixels (ln lambda {sigma_ln:.3e}) is wider \
         than the limit of {MAX_LSF_SIGMA_PIXELS} of the visit's own pixels"
    )]
    BadLsf { sigma_ln: f64, sigma_px: f64 },
    #[error("segment {index} ({start}..{end}) is empty or outside the {len} pixels")]
    BadSegment {
        index: usize,
        start: usize,
        end: usize,
        len: usize,
    },
}

/// The widest line-spread function a visit may declare, as a Gaussian sigma in its own median
/// pixel steps. Survey spectrographs sample their LSF with 2-3 pixels per FWHM (BOSS `wdisp` is
/// about 1 pixel, APOGEE's sigma 1-2 pixels); a sigma of 25 pixels (FWHM 59) is far beyond any.
/// The LSF extension's design rows widen with the sigma, so an absurd value would ask for
/// absurd memory.
pub const MAX_LSF_SIGMA_PIXELS: f64 = 25.0;

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
        let ln_wave: Vec<f64> = a.wavelength_aa.iter().map(|w| w.ln()).collect();
        if let Some(sigma_ln) = meta.lsf_sigma_ln {
            let mut steps: Vec<f64> = segments
                .iter()
                .flat_map(|r| ln_wave[r.clone()].windows(2).map(|p| (p[1] - p[0]).abs()))
                .collect();
            steps.sort_by(f64::total_cmp);
            let step = steps.get(steps.len() / 2).copied().unwrap_or(f64::NAN);
            let sigma_px = sigma_ln / step;
            // Non-positive or NaN widths mean "unknown" to the LSF extension (it warns).
            let too_wide = sigma_ln == f64::INFINITY
                || (sigma_ln > 0.0 && step > 0.0 && !(sigma_px <= MAX_LSF_SIGMA_PIXELS));
            if too_wide {
                return Err(VisitError::BadLsf { sigma_ln, sigma_px });
            }
        }
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
    /// What reading found worth telling the user without refusing the files (visits an apStar
    /// leaves out, companion rows whose visit was not given, visits of another object combined
    /// with `force`...). `combine::prepare` passes them on as the combination's warnings.
    pub load_warnings: Vec<String>,
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

#[cfg(test)]
mod identity_tests {
    use super::VisitIdentity;

    #[test]
    fn identities_match_on_what_both_sides_know() {
        let header = VisitIdentity::new(
            Some("APO25M"),
            Some("IC348"),
            Some("7073    "),
            Some(56669),
            Some(240),
        );
        assert_eq!(header.label(), "apo25m 7073-56669-240");
        // Parsed from a DR13 SFILE name: no telescope, no field, plate with leading zeros.
        let named = VisitIdentity::new(None, None, Some("07073"), Some(56669), Some(240));
        assert_eq!(header.same_visit(&named), Some(true));
        let other_fibre = VisitIdentity::new(None, None, Some("7073"), Some(56669), Some(241));
        assert_eq!(header.same_visit(&other_fibre), Some(false));
        let other_plate = VisitIdentity::new(None, None, Some("7074"), Some(56669), Some(240));
        assert_eq!(header.same_visit(&other_plate), Some(false));
        let lco = VisitIdentity::new(Some("lco25m"), None, Some("7073"), Some(56669), Some(240));
        assert_eq!(header.same_visit(&lco), Some(false));
        // Field stands in for an unknown plate; without either nothing can be said.
        let by_field = VisitIdentity::new(None, Some("ic348"), None, Some(56669), Some(240));
        assert_eq!(header.same_visit(&by_field), Some(true));
        let bare = VisitIdentity::new(None, None, None, Some(56669), Some(240));
        assert_eq!(header.same_visit(&bare), None);
        // MJD 0 and fibre 0 are placeholders.
        let zero = VisitIdentity::new(None, None, Some("7073"), Some(0), Some(0));
        assert_eq!((zero.mjd, zero.fiber), (None, None));
        assert_eq!(header.same_visit(&zero), None);
    }
}
