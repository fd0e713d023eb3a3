//! The rest frame: a spectrum's absolute velocity against a shipped list of laboratory
//! (vacuum) line wavelengths.
//!
//! Relative alignment of visits (cross-correlating them with each other) leaves a common offset
//! free: a star whose header velocities share one error (the DR13 `2M05392474+4038437`, all three
//! about 580 km/s off) is aligned but in the wrong frame. [`rest_frame_velocity`] measures that
//! frame from the spectrum itself:
//!
//! 1. **Normalisation.** Valid pixels (finite, ivar > 0) are sorted by ln lambda and split at gaps
//!    (chip gaps, masked runs: a step over 20 median pixel steps). Each segment is divided by a
//!    running upper percentile (the 90th, over +-0.004 in ln lambda, +-1200 km/s, evaluated on knots
//!    every 0.002 and interpolated linearly). Pixels whose normalised flux is outside [-0.2, 1.3]
//!    (sky-line residuals, cosmic rays, dead pixels) and pixels inside Earth's strong O2 and H2O
//!    bands (optical only; [`TELLURIC_BANDS_AA`]) are left out.
//! 2. **Template.** Each reference line is a Gaussian of width `sigma` at its vacuum wavelength;
//!    the mean line depth under it (`D_i(s)`, Gaussian-weighted mean of 1 - f/c) is the line's
//!    cross-correlation at shift `s` in ln lambda. A line counts at `s` only if at least 60% of its
//!    Gaussian falls on usable pixels (chip gaps, masked pixels). The cross-correlation function is
//!    the weighted mean of the counted lines' `D_i(s)`.
//! 3. **Coarse search** over `+-window_kms` with steps of `sigma/2` (sigma = 1.5 pixels or the
//!    caller's); the highest point is the candidate. The quality is its height over the next highest
//!    local maximum more than 3 sigma away, both above the CCF's median (`quality`). The peak's
//!    half-maximum width gives the lines' own width (the CCF width squared minus the template's).
//! 4. **Fine search** with `sigma` = that width, each line weighted by its own depth at the candidate
//!    (lines absent from this star drop out), steps of `sigma/10`, peak by a parabola through the three
//!    highest points.
//! 5. **Error**, the larger of (a) the photon-noise limit from the curvature of chi^2(v) of the
//!    template of Gaussian lines with the fitted depths (Bouchy, Pepe & Queloz 2001, A&A 374, 733:
//!    sigma_s^-2 = sum_p ivar_p (dT_p/ds)^2, with the ivar of the normalised flux), and (b) the spread of
//!    the per-line velocities (each line's own `D_i(s)` peak): 1.4826 MAD / sqrt(n_lines). On real
//!    spectra (b) is the larger one: blends and the line list's own accuracy dominate.
//!
//! Velocities follow the core's convention ([`crate::model::shift_from_velocity`]): lines observed
//! at `lambda_lab (1 + v/c)` give `v > 0`, and the shift in ln lambda is `ln(1 + v/c)` exactly.
//!
//! **Where it works.** The list holds atomic and hydrogen lines (see `lines.tsv` for every source).
//! FGK stars (and hot stars through H I) have them as their strongest features. M dwarfs and the
//! coolest giants have H-band spectra dominated by molecules (H2O, FeH, OH, CO) that the list does
//! not hold: there the atomic lines are weak and blended and the search can lock onto a chance
//! alignment; the quality then stays low ([`MIN_QUALITY`]) and the cool-star template below is
//! tried.
//!
//! **Molecular reference.** When the atomic H-band search is not reliable, the same search runs on
//! 12C16O second-overtone lines computed from published Dunham parameters
//! ([`co_second_overtone_lines`], Farrenq et al. 1991); its answer replaces the atomic one only if it
//! is reliable, and [`RestFrameFit::reference`] then says [`CO_REFERENCE`]. On the four real M dwarfs
//! (2700-3100 K) it does not reach [`MIN_QUALITY`] either (1.01-1.16 over +-1000 km/s): their CO lines
//! are weak against H2O and FeH, and the nearly regular CO comb gives alias peaks.
//!
//! **Cool stars: the template.** When neither list gives a reliable H-band frame, the whole
//! spectrum is cross-correlated with a shipped M-dwarf template ([`mdwarf_template`],
//! [`MDWARF_REFERENCE`]): the BT-Settl model spectrum of Teff 3000 K, log g 5.0, [M/H] 0 (Allard,
//! Homeier & Freytag 2012) at APOGEE's resolution, normalised as in step 1, vacuum wavelengths (its
//! K I and Al I features lie within 1.2 km/s of the NIST laboratory wavelengths; unit test), and a
//! second of the same grid, Teff 2500 K ([`MDWARF_2500_REFERENCE`], for the latest M dwarfs; its
//! cross-correlation with the 3000 K template peaks at -0.03 km/s, unit test). Both are tried
//! ([`mdwarf_templates`]) and the one whose whole-spectrum CCF peaks higher (Pearson correlation
//! at the coarse peak) gives the fit. Their features are mostly blends of H2O, FeH and OH lines,
//! so each is used as a template, not a line list ([`template_velocity`]):
//!
//! 1. The CCF is the Pearson correlation of the usable pixels' depths with the template's at the
//!    shifted wavelengths (a shift counts where the template covers at least half of the pixels),
//!    every 4 km/s over `+-window_kms`; quality as in step 3 (next peak more than 3 LSF sigma, 17
//!    km/s, away); the peak refined every 0.25 km/s within +-12 km/s by a parabola.
//! 2. **Independent check** ([`RestFrameFit::subset_v_kms`]): the usable pixels are split by
//!    wavelength into three thirds of equal count (about one APOGEE chip each) and each third is
//!    searched on its own over the whole window. A chance alignment of a line-rich spectrum with
//!    the template happens at a different velocity in each third; the star's frame is the same. The
//!    fit is reliable only when at least two thirds ([`MIN_SUBSETS_AGREEING`]) find the whole
//!    spectrum's velocity within [`SUBSET_TOLERANCE_KMS`], besides [`MIN_QUALITY`].
//! 3. **Error**: the spread of the thirds' own peaks near the whole one (those within
//!    [`SUBSET_TOLERANCE_KMS`] of it, as the check counts them; standard error of their mean) in
//!    quadrature with a floor, [`TEMPLATE_FLOOR_KMS`] = 1 km/s (a model is not the star); on the
//!    real M dwarfs' 21 reliable visits at S/N >= 10 the RMS of (v - VRADn) / error is 0.95.
//!
//! **Why two templates.** `2M00452143+1634446` (S/N ~40 per visit) was reliable against the
//! 3000 K template on 1 of its 3 visits: its middle third peaked 5-21 km/s from the whole and its
//! red third at a chance velocity (-415 to -424 km/s) on every visit. Against the 2500 K template
//! the whole CCF peaks higher (the cooler model describes this star's bands better), the blue
//! and middle thirds agree within 4 km/s on all three visits, and the red third sits 14-21 km/s
//! redward (near the peak, a model mismatch, no longer a chance alignment; left out of the error
//! by the tolerance). Its lines are also broader than `2M05392474+4038437`'s (template CCF FWHM
//! 41-43 against 24-25 km/s, likely rotation), but the 3000 K template broadened to that width (a
//! Gaussian of sigma 14.6 km/s) did not bring the thirds together (the red third still at -408 to
//! -420 km/s): a numpy check outside this suite.
//!
//! Measured (`tests/integration/restframe.rs`): the four real M dwarfs' apStar row 0 (rest frame)
//! at -2.4 to +0.3 km/s (reliable on all four); their visits at S/N >= 10 within 3.4 km/s of the
//! pipeline's VRADn (mean -0.47 km/s; 2M00452143's three +0.57, -1.28, -0.44), every reliable one,
//! of either template, within 3 stated errors, also at S/N 5-7; the template moved by 30 km/s
//! moves the answer by 30 km/s; scrambled or shuffled, no reliable answer. The K giant's spectra
//! never pass (quality 1.0-1.5): the templates are tried only after the atomic lines fail, and the
//! FGK, BOSS and LAMOST results are unchanged.

mod lines;
mod mdwarf;
mod molecules;

pub use lines::{
    HBAND_REFERENCE, LINES_TSV, ListId, OPTICAL_REFERENCE, ReferenceLine, air_to_vacuum,
    reference_lines,
};

pub use mdwarf::{
    MDWARF_2500_REFERENCE, MDWARF_2500_TEMPLATE_TSV, MDWARF_REFERENCE, MDWARF_TEMPLATE_TSV,
    Template, mdwarf_template, mdwarf_templates, parse_template,
};
pub use molecules::{CO_REFERENCE, co_second_overtone_lines, co_wavenumber};

use crate::model::{C_KMS, Visit, shift_from_velocity, velocity_from_shift};

/// The result of a rest-frame search.
#[derive(Clone, Debug, PartialEq)]
pub struct RestFrameFit {
    /// The velocity of the spectrum's lines relative to their laboratory wavelengths (km/s):
    /// lines at `lambda_lab (1 + v/c)` give `v > 0`.
    pub v_kms: f64,
    /// Its error (km/s): the larger of the chi^2-curvature (photon-noise) error and the spread of
    /// the per-line velocities (module docs); infinite when no line gave a velocity of its own.
    pub err_kms: f64,
    /// Number of lines that gave a velocity of their own.
    pub n_lines: usize,
    /// Height of the CCF peak over the next highest peak (both above the CCF's median).
    pub quality: f64,
    /// Which line list, cited.
    pub reference: &'static str,
    /// The independent check of a template fit ([`template_velocity`], the cool-star template
    /// [`MDWARF_REFERENCE`]): the velocity each third of the spectrum (split by wavelength, about
    /// one APOGEE chip each) finds on its own over the whole window (NaN where a third found
    /// none). Empty when not checked (the atomic and CO lists, whose peak-over-next-peak
    /// suffices on the real spectra).
    pub subset_v_kms: Vec<f64>,
}

impl RestFrameFit {
    /// Whether the peak stands out enough to be the star's frame ([`MIN_QUALITY`]), enough
    /// lines gave a velocity and, where checked, at least two of the three independent thirds
    /// find the same velocity on their own ([`RestFrameFit::subsets_agree`]).
    #[must_use]
    pub fn is_reliable(&self) -> bool {
        self.quality >= MIN_QUALITY
            && self.n_lines >= MIN_LINES_RELIABLE
            && self.err_kms.is_finite()
            && self.subsets_agree()
    }

    /// Whether at least [`MIN_SUBSETS_AGREEING`] of the checked thirds found the full
    /// spectrum's velocity within [`SUBSET_TOLERANCE_KMS`] on their own (true when not checked).
    #[must_use]
    pub fn subsets_agree(&self) -> bool {
        self.subset_v_kms.is_empty()
            || self
                .subset_v_kms
                .iter()
                .filter(|v| (*v - self.v_kms).abs() <= SUBSET_TOLERANCE_KMS)
                .count()
                >= MIN_SUBSETS_AGREEING
    }
}

/// How far (km/s) an independent third of the spectrum may find its own velocity from the
/// whole spectrum's and still count as agreeing. A chance alignment of a line-rich molecular
/// spectrum with the template happens at a different velocity in each third (tens to hundreds
/// of km/s apart); the star's frame is the same for all thirds within their errors (0.1-4 km/s on
/// the real M dwarfs' visits at S/N >= 10, `tests/integration/restframe.rs`).
pub const SUBSET_TOLERANCE_KMS: f64 = 5.0;

/// How many of the three thirds must agree. Two, not three: on the real M dwarfs the reddest
/// third (16470-16960 A, where the BT-Settl model describes the star least well) alone peaks at a
/// chance velocity 400-460 km/s away on two of the three visits of `2M05392474+4038437` (S/N 64-71)
/// while the other two thirds agree within 0.5 km/s.
pub const MIN_SUBSETS_AGREEING: usize = 2;

/// The lowest peak-over-next-peak ratio [`RestFrameFit::is_reliable`] accepts. Measured on the
/// real spectra (`tests/integration/restframe.rs`): the FGK giant's apStar and visits (S/N 76-104)
/// 3.7-6.5, and still 2.3-2.8 with noise added down to S/N 5; the BOSS G star 19-112; the M dwarfs'
/// apStars and visits against the atomic list (molecular spectra it does not describe) 1.0-1.8,
/// against the cool-star templates 3.0-9.9 (3000 K) and 3.0-9.7 (2500 K) at S/N >= 10 (and the
/// K giant against them 1.0-1.5); the LAMOST file without star signal (S/N ~1) 1.0-1.4.
pub const MIN_QUALITY: f64 = 2.0;

/// The fewest per-line velocities [`RestFrameFit::is_reliable`] accepts.
pub const MIN_LINES_RELIABLE: usize = 5;

/// Earth's strong absorption bands (vacuum A, generous edges): O2 B (6868), H2O (7200), O2 A (7605),
/// H2O (8200), H2O (9300-9800). Pixels inside them are left out of the optical search.
pub const TELLURIC_BANDS_AA: [(f64, f64); 5] = [
    (6860.0, 6940.0),
    (7160.0, 7340.0),
    (7585.0, 7705.0),
    (8120.0, 8350.0),
    (8940.0, 9850.0),
];

/// Options of [`rest_frame_velocity_with`].
#[derive(Clone, Debug, PartialEq)]
pub struct RestFrameOptions {
    /// Search range, +- km/s (default 1000).
    pub window_kms: f64,
    /// The lines' Gaussian sigma (km/s), when known; `None` measures it from the CCF.
    pub sigma_kms: Option<f64>,
    /// Leave out pixels in [`TELLURIC_BANDS_AA`] (default true).
    pub mask_telluric: bool,
}

impl Default for RestFrameOptions {
    fn default() -> Self {
        Self {
            window_kms: 1000.0,
            sigma_kms: None,
            mask_telluric: true,
        }
    }
}

/// The velocity of the spectrum's lines relative to their laboratory (vacuum) wavelengths: lines
/// observed at `lambda_lab (1 + v/c)` give `v > 0` (the core's exact Doppler convention,
/// [`crate::model::shift_from_velocity`]). Searches `+-window_kms`.
///
/// `ln_wave` is ln(vacuum wavelength / A), in any order; pixels with `ivar <= 0` or non-finite
/// values are ignored. `None` when no reference line list covers the spectrum's range (fewer than
/// three reference lines inside it: the caller then says "rest frame unverified"), and when the
/// arrays are unusable (lengths differ, fewer than 50 valid pixels, a non-finite or non-positive
/// window).
#[must_use]
pub fn rest_frame_velocity(
    ln_wave: &[f64],
    flux: &[f64],
    ivar: &[f64],
    window_kms: f64,
) -> Option<RestFrameFit> {
    rest_frame_velocity_with(
        ln_wave,
        flux,
        ivar,
        &RestFrameOptions {
            window_kms,
            ..RestFrameOptions::default()
        },
    )
}

/// [`rest_frame_velocity`] of a visit in its observed frame: pixels the visit marks bad, or whose
/// flags intersect `bad_bits` (e.g. [`crate::model::mask::APOGEE_BAD_BITS`]), are left out.
#[must_use]
pub fn visit_rest_frame_velocity(
    visit: &Visit,
    bad_bits: u64,
    opts: &RestFrameOptions,
) -> Option<RestFrameFit> {
    let ivar: Vec<f64> = visit
        .ivar()
        .iter()
        .zip(visit.bad())
        .zip(visit.flags())
        .map(|((&iv, &bad), &fl)| if bad || fl & bad_bits != 0 { 0.0 } else { iv })
        .collect();
    rest_frame_velocity_with(visit.ln_wave(), visit.flux(), &ivar, opts)
}

/// The normalised spectrum the search works on.
struct Prepared {
    /// ln lambda, increasing.
    x: Vec<f64>,
    /// Line depth 1 - f/c.
    d: Vec<f64>,
    /// Inverse variance of f/c; 0 = not usable.
    ivn: Vec<f64>,
    /// Median pixel step in ln lambda.
    step: f64,
}

fn median_of(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let k = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(k, f64::total_cmp);
    Some(*m)
}

fn percentile_of(v: &mut [f64], q: f64) -> f64 {
    let k = ((v.len() - 1) as f64 * q).round() as usize;
    let (_, m, _) = v.select_nth_unstable_by(k.min(v.len() - 1), f64::total_cmp);
    *m
}

const CONT_HALF: f64 = 0.004;
const CONT_PERCENTILE: f64 = 0.9;
const MIN_PIXELS: usize = 50;

fn prepare(ln_wave: &[f64], flux: &[f64], ivar: &[f64], mask_telluric: bool) -> Option<Prepared> {
    if ln_wave.len() != flux.len() || ln_wave.len() != ivar.len() {
        return None;
    }
    let mut idx: Vec<usize> = (0..ln_wave.len())
        .filter(|&i| {
            ln_wave[i].is_finite() && flux[i].is_finite() && ivar[i].is_finite() && ivar[i] > 0.0
        })
        .collect();
    if idx.len() < MIN_PIXELS {
        return None;
    }
    idx.sort_by(|&a, &b| ln_wave[a].total_cmp(&ln_wave[b]));
    let x: Vec<f64> = idx.iter().map(|&i| ln_wave[i]).collect();
    let f: Vec<f64> = idx.iter().map(|&i| flux[i]).collect();
    let iv: Vec<f64> = idx.iter().map(|&i| ivar[i]).collect();
    let step = median_of(x.windows(2).map(|p| p[1] - p[0]).collect())?;
    if !(step > 0.0) {
        return None;
    }
    let n = x.len();
    let mut d = vec![0.0; n];
    let mut ivn = vec![0.0; n];
    // Segments: split at gaps of more than 20 median steps.
    let mut start = 0;
    for i in 1..=n {
        if i < n && x[i] - x[i - 1] <= 20.0 * step {
            continue;
        }
        let seg = start..i;
        start = i;
        if seg.len() < 30 {
            continue;
        }
        let xs = &x[seg.clone()];
        let fs = &f[seg.clone()];
        // Knots of the running upper percentile.
        let (x0, x1) = (xs[0], xs[xs.len() - 1]);
        let mut knots: Vec<(f64, f64)> = Vec::new();
        // A knot every half window, but never more knots than pixels (absurd wavelength ranges,
        // such as a file's wrong dispersion, would otherwise ask for up to usize::MAX knots).
        let nk = (((x1 - x0) / (0.5 * CONT_HALF)).ceil() as usize).clamp(1, xs.len());
        let mut buf = Vec::new();
        for k in 0..=nk {
            let xk = x0 + (x1 - x0) * k as f64 / nk as f64;
            let lo = xs.partition_point(|&v| v < xk - CONT_HALF);
            let hi = xs.partition_point(|&v| v <= xk + CONT_HALF);
            if hi - lo < 10 {
                continue;
            }
            buf.clear();
            buf.extend_from_slice(&fs[lo..hi]);
            let c = percentile_of(&mut buf, CONT_PERCENTILE);
            if c > 0.0 && c.is_finite() {
                knots.push((xk, c));
            }
        }
        if knots.is_empty() {
            continue;
        }
        for j in seg {
            let c = interp_knots(&knots, x[j]);
            let norm = f[j] / c;
            let lam = x[j].exp();
            let telluric =
                mask_telluric && TELLURIC_BANDS_AA.iter().any(|&(a, b)| lam > a && lam < b);
            if c > 0.0 && (-0.2..=1.3).contains(&norm) && !telluric {
                d[j] = 1.0 - norm;
                ivn[j] = iv[j] * c * c;
            }
        }
    }
    Some(Prepared { x, d, ivn, step })
}

fn interp_knots(knots: &[(f64, f64)], x: f64) -> f64 {
    let k = knots.partition_point(|&(xk, _)| xk < x);
    if k == 0 {
        return knots[0].1;
    }
    if k >= knots.len() {
        return knots[knots.len() - 1].1;
    }
    let (xa, ya) = knots[k - 1];
    let (xb, yb) = knots[k];
    if xb > xa {
        ya + (yb - ya) * (x - xa) / (xb - xa)
    } else {
        ya
    }
}

/// The Gaussian-weighted mean depth under a line at `xl` (ln lambda), or `None` when less than
/// 60% of the Gaussian falls on usable pixels.
fn line_depth(p: &Prepared, xl: f64, sigma: f64) -> Option<f64> {
    let lo = p.x.partition_point(|&v| v < xl - 4.0 * sigma);
    let hi = p.x.partition_point(|&v| v <= xl + 4.0 * sigma);
    let (mut sg, mut sgd) = (0.0, 0.0);
    for j in lo..hi {
        if p.ivn[j] > 0.0 {
            let u = (p.x[j] - xl) / sigma;
            let g = (-0.5 * u * u).exp();
            sg += g;
            sgd += g * p.d[j];
        }
    }
    let expected = (2.0 * std::f64::consts::PI).sqrt() * sigma / p.step;
    (sg >= 0.6 * expected && sg > 0.0).then(|| sgd / sg)
}

/// The CCF at each shift: the weighted mean of the counted lines' depths; `None` where fewer
/// than `min_lines` lines count.
fn ccf(
    p: &Prepared,
    lines: &[(f64, f64)],
    sigma: f64,
    shifts: &[f64],
    min_lines: usize,
) -> Vec<Option<f64>> {
    shifts
        .iter()
        .map(|&s| {
            let (mut num, mut den, mut count) = (0.0, 0.0, 0usize);
            for &(xl, a) in lines {
                if a <= 0.0 {
                    continue;
                }
                if let Some(dep) = line_depth(p, xl + s, sigma) {
                    num += a * dep;
                    den += a;
                    count += 1;
                }
            }
            (count >= min_lines && den > 0.0).then(|| num / den)
        })
        .collect()
}

/// The vertex of the parabola through (k-1, k, k+1) on a uniform grid, as an offset in steps.
fn parabola_offset(y0: f64, y1: f64, y2: f64) -> f64 {
    let den = y0 - 2.0 * y1 + y2;
    if den < 0.0 {
        (0.5 * (y0 - y2) / den).clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

/// The peak of a sampled curve by a parabola through the highest point and its neighbours.
fn peak(shifts: &[f64], c: &[Option<f64>]) -> Option<(usize, f64, f64)> {
    let (k, ck) = c
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    let step = if shifts.len() > 1 {
        shifts[1] - shifts[0]
    } else {
        0.0
    };
    let off = if k > 0 && k + 1 < c.len() {
        match (c[k - 1], c[k + 1]) {
            (Some(a), Some(b)) => parabola_offset(a, ck, b),
            _ => 0.0,
        }
    } else {
        0.0
    };
    Some((k, shifts[k] + off * step, ck))
}

/// [`rest_frame_velocity`] with all options.
#[must_use]
pub fn rest_frame_velocity_with(
    ln_wave: &[f64],
    flux: &[f64],
    ivar: &[f64],
    opts: &RestFrameOptions,
) -> Option<RestFrameFit> {
    let window = opts.window_kms;
    let p = prepare_for_window(ln_wave, flux, ivar, opts)?;
    let usable: Vec<f64> =
        p.x.iter()
            .zip(&p.ivn)
            .filter(|&(_, &w)| w > 0.0)
            .map(|(&x, _)| x)
            .collect();
    let (xmin, xmax) = (*usable.first()?, *usable.last()?);
    let s_lo = shift_from_velocity(-window);
    let s_hi = shift_from_velocity(window);
    // The reference lines that can fall on the spectrum somewhere in the window; the spectrum is
    // "covered" when at least three lie inside it at zero velocity.
    let all = reference_lines();
    let inside = all
        .iter()
        .filter(|l| {
            let xl = l.vacuum_aa.ln();
            xl > xmin && xl < xmax
        })
        .count();
    if inside < 3 {
        return None;
    }
    let chosen: Vec<&ReferenceLine> = all
        .iter()
        .filter(|l| {
            let xl = l.vacuum_aa.ln();
            xl + s_hi > xmin && xl + s_lo < xmax
        })
        .collect();
    let n_h = chosen.iter().filter(|l| l.list == ListId::HBand).count();
    let reference = if 2 * n_h >= chosen.len() {
        ListId::HBand.citation()
    } else {
        ListId::Optical.citation()
    };
    let lines: Vec<(f64, f64)> = chosen
        .iter()
        .map(|l| (l.vacuum_aa.ln(), l.weight))
        .collect();
    let atomic = search(&p, &lines, reference, opts, (s_lo, s_hi));
    // The molecular reference (12C16O second overtone, [`molecules`]) when the atomic lines do
    // not give a reliable frame in the H band (M dwarfs, the coolest giants).
    if reference == HBAND_REFERENCE && !atomic.as_ref().is_some_and(RestFrameFit::is_reliable) {
        let co: Vec<(f64, f64)> = co_second_overtone_lines()
            .iter()
            .map(|l| (l.vacuum_aa.ln(), l.weight))
            .filter(|&(xl, _)| xl + s_hi > xmin && xl + s_lo < xmax)
            .collect();
        let inside_co = co.iter().filter(|&&(xl, _)| xl > xmin && xl < xmax).count();
        if inside_co >= 3
            && let Some(fit) = search(&p, &co, CO_REFERENCE, opts, (s_lo, s_hi))
            && fit.is_reliable()
        {
            return Some(fit);
        }
        // The cool-star templates ([`mdwarf`]): the one whose whole-spectrum CCF peaks higher,
        // checked by its independent thirds.
        let best = mdwarf_templates()
            .iter()
            .filter_map(|(t, r)| template_search_scored(&p, t, r, opts))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((fit, _)) = best
            && fit.is_reliable()
        {
            return Some(fit);
        }
    }
    atomic
}

/// The rest frame by cross-correlating the whole spectrum with a template (module docs, "Cool
/// stars"): the shipped cool-star template ([`mdwarf_template`], [`MDWARF_REFERENCE`]) or a
/// caller's (tests use it moved or scrambled). `reference` is what the result cites. `None` when
/// the template covers fewer than [`MIN_PIXELS`] usable pixels, or the arrays or window are
/// unusable (as [`rest_frame_velocity_with`]).
#[must_use]
pub fn template_velocity(
    ln_wave: &[f64],
    flux: &[f64],
    ivar: &[f64],
    template: &Template,
    reference: &'static str,
    opts: &RestFrameOptions,
) -> Option<RestFrameFit> {
    let p = prepare_for_window(ln_wave, flux, ivar, opts)?;
    template_search(&p, template, reference, opts)
}

/// The spectrum prepared for a search over `opts.window_kms`; `None` when the window is not a
/// finite positive velocity below c/2 or the arrays are unusable ([`prepare`]).
fn prepare_for_window(
    ln_wave: &[f64],
    flux: &[f64],
    ivar: &[f64],
    opts: &RestFrameOptions,
) -> Option<Prepared> {
    let window = opts.window_kms;
    if !(window.is_finite() && window > 0.0 && window < 0.5 * C_KMS) {
        return None;
    }
    prepare(ln_wave, flux, ivar, opts.mask_telluric)
}

/// The shifts from `s_lo` to `s_hi` in steps of `dstep`, the last one clamped to `s_hi`.
fn shift_grid(s_lo: f64, s_hi: f64, dstep: f64) -> Vec<f64> {
    let n = ((s_hi - s_lo) / dstep).ceil() as usize + 1;
    (0..n)
        .map(|i| (s_lo + i as f64 * dstep).min(s_hi))
        .collect()
}

/// A CCF peak's quality: its height over the highest other local maximum more than `exclusion`
/// (in shift) from it, both above the CCF's median `med`; 1000 at most, and 1000 when no other
/// maximum rises above the median. `k0` and `peak0` are the peak's index and height.
fn peak_quality(
    shifts: &[f64],
    c: &[Option<f64>],
    k0: usize,
    peak0: f64,
    med: f64,
    exclusion: f64,
) -> f64 {
    let mut next = f64::NEG_INFINITY;
    for i in 0..c.len() {
        let Some(v) = c[i] else { continue };
        let left = i == 0 || c[i - 1].is_none_or(|u| u <= v);
        let right = i + 1 == c.len() || c[i + 1].is_none_or(|u| u <= v);
        if left && right && (shifts[i] - shifts[k0]).abs() > exclusion {
            next = next.max(v);
        }
    }
    if next > med {
        ((peak0 - med) / (next - med)).min(1000.0)
    } else {
        1000.0
    }
}

/// APOGEE's resolution element as a Gaussian sigma (km/s): FWHM c / 22500.
const APOGEE_LSF_SIGMA_KMS: f64 = C_KMS / 22_500.0 / 2.354_820_045;

/// The coarse and fine steps of the template search (km/s).
const TEMPLATE_COARSE_KMS: f64 = 4.0;
const TEMPLATE_FINE_KMS: f64 = 0.25;

/// The systematic floor of a template velocity (km/s), added in quadrature to the spread of the
/// agreeing thirds: with it, the real M dwarfs' 21 reliable visits at S/N >= 10 (the search's
/// choice of template; v - VRADn from -2.6 to +3.4 km/s, mean -0.47) have an RMS of
/// (v - VRADn) / error of 0.95
/// (`tests/integration/restframe.rs`, `mdwarf_template_on_the_real_spectra`): a model is not the
/// star (Teff, gravity, line-list positions).
pub const TEMPLATE_FLOOR_KMS: f64 = 1.0;

/// The Pearson correlation of the usable pixels `idx` with the template moved by `s`; `None`
/// where the template covers fewer than half of them.
fn template_ccf(p: &Prepared, idx: &[usize], t: &Template, s: f64) -> Option<f64> {
    let mut sums = CcfSums::default();
    for &j in idx {
        if let Some(b) = t.at(p.x[j] - s) {
            sums.add(p.d[j], b);
        }
    }
    sums.pearson(idx.len())
}

/// Running sums of a Pearson correlation.
#[derive(Clone, Copy, Default)]
struct CcfSums {
    n: usize,
    sa: f64,
    sb: f64,
    saa: f64,
    sbb: f64,
    sab: f64,
}

impl CcfSums {
    fn add(&mut self, a: f64, b: f64) {
        self.n += 1;
        self.sa += a;
        self.sb += b;
        self.saa += a * a;
        self.sbb += b * b;
        self.sab += a * b;
    }

    fn merge(self, o: Self) -> Self {
        Self {
            n: self.n + o.n,
            sa: self.sa + o.sa,
            sb: self.sb + o.sb,
            saa: self.saa + o.saa,
            sbb: self.sbb + o.sbb,
            sab: self.sab + o.sab,
        }
    }

    /// The correlation, or `None` where fewer than [`MIN_PIXELS`] or than half of the `of`
    /// pixels counted.
    fn pearson(&self, of: usize) -> Option<f64> {
        if self.n < MIN_PIXELS || 2 * self.n < of {
            return None;
        }
        let nf = self.n as f64;
        let cov = self.sab - self.sa * self.sb / nf;
        let va = self.saa - self.sa * self.sa / nf;
        let vb = self.sbb - self.sb * self.sb / nf;
        (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt())
    }
}

/// The template CCF at `s` of the whole of `idx` and of its three parts `idx[..cut[0]]`,
/// `idx[cut[0]..cut[1]]`, `idx[cut[1]..]`, in one pass: [whole, part 1, part 2, part 3].
fn template_ccf_parts(
    p: &Prepared,
    idx: &[usize],
    cut: [usize; 2],
    t: &Template,
    s: f64,
) -> [Option<f64>; 4] {
    let mut parts = [CcfSums::default(); 3];
    for (k, &j) in idx.iter().enumerate() {
        if let Some(b) = t.at(p.x[j] - s) {
            let part = usize::from(k >= cut[0]) + usize::from(k >= cut[1]);
            parts[part].add(p.d[j], b);
        }
    }
    let whole = parts[0].merge(parts[1]).merge(parts[2]);
    let lens = [cut[0], cut[1] - cut[0], idx.len() - cut[1]];
    [
        whole.pearson(idx.len()),
        parts[0].pearson(lens[0]),
        parts[1].pearson(lens[1]),
        parts[2].pearson(lens[2]),
    ]
}

/// The highest point of a coarse template CCF `c` (of the pixels `idx`, at the shifts
/// `coarse`), the quality (peak over the next local maximum more than 3 LSF sigma away, both
/// above the median), and the peak refined by a parabola on the fine grid within `+-3` coarse
/// steps.
fn template_peak(
    p: &Prepared,
    idx: &[usize],
    t: &Template,
    coarse: &[f64],
    c: &[Option<f64>],
) -> Option<(f64, f64, f64)> {
    let dstep = shift_from_velocity(TEMPLATE_COARSE_KMS);
    let (k0, _, peak0) = peak(coarse, c)?;
    let med = median_of(c.iter().flatten().copied().collect())?;
    let excl = 3.0 * shift_from_velocity(APOGEE_LSF_SIGMA_KMS);
    let quality = peak_quality(coarse, c, k0, peak0, med, excl);
    let s = fine_template_peak(p, idx, t, coarse[k0], 3.0 * dstep)?;
    Some((s, quality, peak0))
}

/// The template CCF's peak within `s0 +- half` on the fine grid, by a parabola.
fn fine_template_peak(
    p: &Prepared,
    idx: &[usize],
    t: &Template,
    s0: f64,
    half: f64,
) -> Option<f64> {
    let fstep = shift_from_velocity(TEMPLATE_FINE_KMS);
    let n = (2.0 * half / fstep).ceil() as usize + 1;
    let fine: Vec<f64> = (0..n).map(|i| s0 - half + i as f64 * fstep).collect();
    let c: Vec<Option<f64>> = fine.iter().map(|&s| template_ccf(p, idx, t, s)).collect();
    let (k, s, _) = peak(&fine, &c)?;
    (k > 0 && k + 1 < fine.len()).then_some(s)
}

/// The template search (module docs, "Cool stars") on a prepared spectrum.
fn template_search(
    p: &Prepared,
    t: &Template,
    reference: &'static str,
    opts: &RestFrameOptions,
) -> Option<RestFrameFit> {
    template_search_scored(p, t, reference, opts).map(|(fit, _)| fit)
}

/// [`template_search`] and the height of its whole-spectrum CCF peak (the Pearson correlation
/// at the coarse peak), by which the shipped templates are compared.
fn template_search_scored(
    p: &Prepared,
    t: &Template,
    reference: &'static str,
    opts: &RestFrameOptions,
) -> Option<(RestFrameFit, f64)> {
    let window = opts.window_kms;
    let (s_lo, s_hi) = (shift_from_velocity(-window), shift_from_velocity(window));
    let (t_lo, t_hi) = t.range();
    // The usable pixels the template covers at zero velocity.
    let idx: Vec<usize> = (0..p.x.len())
        .filter(|&j| p.ivn[j] > 0.0 && p.x[j] > t_lo && p.x[j] < t_hi)
        .collect();
    if idx.len() < 3 * MIN_PIXELS {
        return None;
    }
    // The three thirds of the pixels, by wavelength (about one APOGEE chip each): each searched
    // over the whole window on its own, and each one's peak near the full one for the error. The
    // coarse CCFs of the whole and of the thirds come from one pass.
    let third = idx.len() / 3;
    let cut = [third, 2 * third];
    let parts: Vec<&[usize]> = vec![&idx[..third], &idx[third..2 * third], &idx[2 * third..]];
    let dstep = shift_from_velocity(TEMPLATE_COARSE_KMS);
    let coarse = shift_grid(s_lo, s_hi, dstep);
    let all: Vec<[Option<f64>; 4]> = coarse
        .iter()
        .map(|&s| template_ccf_parts(p, &idx, cut, t, s))
        .collect();
    let column = |k: usize| -> Vec<Option<f64>> { all.iter().map(|c| c[k]).collect() };
    let (s, quality, height) = template_peak(p, &idx, t, &coarse, &column(0))?;
    let v = velocity_from_shift(s);
    let subset_v_kms: Vec<f64> = parts
        .iter()
        .enumerate()
        .map(|(k, part)| {
            template_peak(p, part, t, &coarse, &column(k + 1))
                .map_or(f64::NAN, |(s, _, _)| velocity_from_shift(s))
        })
        .collect();
    // The error: the spread of the thirds' own peaks near the whole spectrum's (each searched
    // within +-3 LSF sigma, and counted when within [`SUBSET_TOLERANCE_KMS`] of it, as the
    // agreement check counts them), with the systematic floor; infinite when fewer than two
    // thirds have one.
    let local: Vec<f64> = parts
        .iter()
        .filter_map(|part| {
            fine_template_peak(
                p,
                part,
                t,
                s,
                shift_from_velocity(3.0 * APOGEE_LSF_SIGMA_KMS),
            )
        })
        .map(velocity_from_shift)
        .filter(|u| (u - v).abs() <= SUBSET_TOLERANCE_KMS)
        .collect();
    let spread = if local.len() >= 2 {
        let n = local.len() as f64;
        let m = local.iter().sum::<f64>() / n;
        (local.iter().map(|u| (u - m).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt()
    } else {
        f64::INFINITY
    };
    // The template's features over the pixels used: its local depth maxima (over +-3 samples)
    // at least 0.05 deep.
    let (x_lo, x_hi) = (p.x[idx[0]], p.x[idx[idx.len() - 1]]);
    let d = &t.depth;
    let n_features = (3..d.len().saturating_sub(3))
        .filter(|&i| {
            let x = t.ln_start + i as f64 * t.ln_step;
            x > x_lo && x < x_hi && d[i] >= 0.05 && d[i - 3..=i + 3].iter().all(|&u| u <= d[i])
        })
        .count();
    Some((
        RestFrameFit {
            v_kms: v,
            err_kms: spread.hypot(TEMPLATE_FLOOR_KMS),
            n_lines: n_features,
            quality,
            reference,
            subset_v_kms,
        },
        height,
    ))
}

/// The CCF search of one line list (module docs, steps 3-5) over shifts `s_lo..s_hi`.
fn search(
    p: &Prepared,
    lines: &[(f64, f64)],
    reference: &'static str,
    opts: &RestFrameOptions,
    (s_lo, s_hi): (f64, f64),
) -> Option<RestFrameFit> {
    let lines: Vec<(f64, f64)> = lines.to_vec();

    // Coarse search.
    let sigma_given = opts
        .sigma_kms
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(shift_from_velocity);
    let sigma0 = sigma_given.unwrap_or(1.5 * p.step).max(0.5 * p.step);
    // At most 20 000 coarse steps whatever the resolution (the fine search refines).
    let dstep = (0.5 * sigma0).max((s_hi - s_lo) / 20_000.0);
    let coarse = shift_grid(s_lo, s_hi, dstep);
    let c0 = ccf(p, &lines, sigma0, &coarse, 3);
    let (k0, _, peak0) = peak(&coarse, &c0)?;
    let med = median_of(c0.iter().flatten().copied().collect())?;
    // Quality: over the highest local maximum more than 3 sigma from the peak.
    let quality = peak_quality(&coarse, &c0, k0, peak0, med, 3.0 * sigma0);
    // The lines' own width from the peak's half-maximum width.
    let sigma = match sigma_given {
        Some(s) => s.max(0.5 * p.step),
        None => {
            let half = med + 0.5 * (peak0 - med);
            let crossing = |dir: isize| -> Option<f64> {
                let mut i = k0 as isize;
                let mut prev = peak0;
                loop {
                    let j = i + dir;
                    if j < 0 || j as usize >= c0.len() {
                        return None;
                    }
                    let v = c0[j as usize]?;
                    if v < half {
                        let frac = (prev - half) / (prev - v);
                        return Some((i as f64 + dir as f64 * frac - k0 as f64).abs() * dstep);
                    }
                    prev = v;
                    i = j;
                }
            };
            match (crossing(-1), crossing(1)) {
                (Some(a), Some(b)) => {
                    let s_ccf = (a + b) / (8.0 * 2.0_f64.ln()).sqrt();
                    (s_ccf * s_ccf - sigma0 * sigma0)
                        .max(0.0)
                        .sqrt()
                        .clamp(p.step, shift_from_velocity(300.0).max(p.step))
                }
                _ => sigma0,
            }
        }
    };

    // Fine search: lines weighted by their depth at the candidate.
    let s_c = coarse[k0];
    let weighted: Vec<(f64, f64)> = lines
        .iter()
        .map(|&(xl, w)| {
            let a = line_depth(p, xl + s_c, sigma).map_or(0.0, |d| d.clamp(0.0, 1.0));
            (xl, w * a)
        })
        .collect();
    let fine_lines = if weighted.iter().any(|&(_, a)| a > 0.0) {
        weighted
    } else {
        lines.clone()
    };
    let fstep = sigma / 10.0;
    let half_span = 2.0 * sigma.max(dstep);
    let n_fine = (2.0 * half_span / fstep).ceil() as usize + 1;
    let fine: Vec<f64> = (0..n_fine)
        .map(|i| s_c - half_span + i as f64 * fstep)
        .collect();
    // First pass: every line with a depth; then the lines whose own velocity is more than
    // 3 robust sigma (1.4826 MAD, at least 1 sigma of the line width / 10) from the median are
    // dropped (blends, lines this star does not have) and the CCF is measured again.
    let first = per_line_velocities(p, &fine_lines, sigma, &fine);
    let mut kept_lines = fine_lines.clone();
    if first.len() >= 5 {
        let vs: Vec<f64> = first.iter().map(|m| m.v_kms).collect();
        let med = median_of(vs.clone())?;
        let mad = median_of(vs.iter().map(|u| (u - med).abs()).collect())?;
        let floor = 0.1 * velocity_from_shift(sigma);
        let cut = (3.0 * 1.4826 * mad).max(floor);
        let measured: Vec<usize> = first.iter().map(|m| m.index).collect();
        for (i, line) in kept_lines.iter_mut().enumerate() {
            let keep = first
                .iter()
                .find(|m| m.index == i)
                .is_some_and(|m| (m.v_kms - med).abs() <= cut);
            if !keep && measured.contains(&i) {
                line.1 = 0.0;
            }
        }
        if !kept_lines.iter().any(|&(_, a)| a > 0.0) {
            kept_lines = fine_lines;
        }
    }
    let c1 = ccf(p, &kept_lines, sigma, &fine, 1);
    let (_, s_peak, _) = peak(&fine, &c1)?;
    let per_line = per_line_velocities(p, &kept_lines, sigma, &fine);

    // The chi^2-curvature (photon-noise) error of a template of Gaussian lines with the measured
    // depths. A Gaussian line of sigma `sigma` seen through a Gaussian of the same width has
    // sqrt(2) times the mean depth measured.
    let mut curvature = 0.0;
    for m in &per_line {
        let xl = kept_lines[m.index].0 + m.shift;
        let amp = m.depth * std::f64::consts::SQRT_2;
        let lo = p.x.partition_point(|&v| v < xl - 4.0 * sigma);
        let hi = p.x.partition_point(|&v| v <= xl + 4.0 * sigma);
        for j in lo..hi {
            let u = (p.x[j] - xl) / sigma;
            let dt = amp * (-0.5 * u * u).exp() * u / sigma;
            curvature += p.ivn[j] * dt * dt;
        }
    }
    let v = velocity_from_shift(s_peak);
    let dv_ds = C_KMS * s_peak.exp();
    let err_photon = if curvature > 0.0 {
        dv_ds / curvature.sqrt()
    } else {
        f64::INFINITY
    };
    let err_spread = if per_line.len() >= 3 {
        let vs: Vec<f64> = per_line.iter().map(|m| m.v_kms).collect();
        let m = median_of(vs.clone())?;
        let mad = median_of(vs.iter().map(|u| (u - m).abs()).collect())?;
        1.4826 * mad / (vs.len() as f64).sqrt()
    } else {
        f64::INFINITY
    };
    let err = if err_spread.is_finite() {
        err_photon.max(err_spread)
    } else {
        err_photon
    };
    Some(RestFrameFit {
        v_kms: v,
        err_kms: err,
        n_lines: per_line.len(),
        quality,
        reference,
        subset_v_kms: Vec::new(),
    })
}

/// One line's own velocity.
struct LineVelocity {
    /// Index into the line list given.
    index: usize,
    /// The shift of its own CCF peak (ln lambda) and the velocity.
    shift: f64,
    v_kms: f64,
    /// Its mean depth at the peak.
    depth: f64,
}

/// Each weighted line's own CCF peak on the fine grid, for the lines covered over the whole grid
/// whose peak is inside it and deeper than the continuum.
fn per_line_velocities(
    p: &Prepared,
    lines: &[(f64, f64)],
    sigma: f64,
    fine: &[f64],
) -> Vec<LineVelocity> {
    let mut out = Vec::new();
    for (index, &(xl, a)) in lines.iter().enumerate() {
        if a <= 0.0 {
            continue;
        }
        let ci: Vec<Option<f64>> = fine.iter().map(|&s| line_depth(p, xl + s, sigma)).collect();
        if ci.iter().any(Option::is_none) {
            continue;
        }
        if let Some((k, shift, depth)) = peak(fine, &ci)
            && k > 0
            && k + 1 < fine.len()
            && depth > 0.0
        {
            out.push(LineVelocity {
                index,
                shift,
                v_kms: velocity_from_shift(shift),
                depth,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
