//! LAMOST medium-resolution survey (MRS) files, `med-{LMJD}-{PLANID}_sp{SPID}-{FIBER}.fits[.gz]`.
//!
//! Layout (LAMOST DR6-DR9 MRS data release documents, "Data Release of LAMOST Medium Resolution
//! Spectral Survey", e.g. <http://dr6.lamost.org/v2/doc/mr-data-production-description>; the real
//! DR6 file `med-58268-HIP95119KP01_sp12-076.fits.gz` read by the tests; the `laspec` package,
//! `laspec/mrs.py`, which reads the same files):
//!
//! - HDU 0: header only (EXTNAME `Information`): OBJNAME, DESIG, OBSID, RA/DEC, LMJD, PLANID,
//!   SPID, FIBERID, `HELIO` (T: heliocentric correction applied), `HELIO_RV` (km/s, the
//!   correction applied, see below), `VACUUM` (T: vacuum wavelengths), LONGITUD/LATITUDE.
//! - `COADD_B`, `COADD_R`: the pipeline's combination of the exposures, per arm (binary tables
//!   FLUX, IVAR, LOGLAM, ANDMASK, ORMASK). They become [`Dataset::pipeline_coadd`], never visits.
//! - `B-{LMJM}`, `R-{LMJM}`: one binary table per exposure and arm (FLUX, IVAR, LOGLAM = log10
//!   vacuum Angstrom, PIXMASK; cards LMJM, EXPTIME, SNR). The B and R HDUs of one LMJM are one
//!   exposure: one visit with two segments (blue first). An LMJM with one arm only is read as a
//!   one-segment visit that says so in its card `FV_READER_WARNING` (the release documents say
//!   some targets lack an arm).
//!
//! What the values mean, checked against the real file:
//! - **Time.** LMJM is the *local* (Beijing, UTC+8) modified Julian *minute* of the exposure's start,
//!   truncated to the minute: 83906016 / 1440 = LMJD 58268.0667 = 2018-05-30 01:36 local, where the
//!   primary header says DATE-BEG 2018-05-30T01:36:49 (local) and DATE-OBS (UTC, the first exposure's
//!   middle) 2018-05-29T17:41:00. So `JD = LMJM / 1440 - 8 / 24 + 2 400 000.5` at the start, and the
//!   visit's `jd` is that plus EXPTIME / 2 (the exposure's middle, within the 1-minute
//!   truncation). The UTC+8 offset is the one `laspec/time.py` (`datetime2jd`, `tz_correction = 8`)
//!   applies to LAMOST's local times.
//! - **Velocity frame.** HELIO = T: the wavelengths are already heliocentric, so each visit gets
//!   `Vrel = 0` (shifting by it keeps that frame; no barycentric correction is applied again), as
//!   for BOSS spec files. `HELIO_RV` is the *correction the pipeline applied* ("[km/s]
//!   Heliocentric correction" in the header), not the star's velocity: for the real file it is
//!   -11.22 km/s where the barycentric correction computed here (`model::barycentric`, at Xinglong,
//!   for the exposures' times) is +11.2 km/s in APOGEE's convention (`v_bary = v_meas + BC`), so
//!   LAMOST's HELIO_RV = -BC. It is kept as the card `HELIO_RV`, and is not stored as a stellar
//!   velocity (storing it as `Vhelio` or `Vrel` would shift every visit by 11 km/s for nothing).
//!   The file carries no stellar velocity; relative velocities between nights come from the data.
//!   With HELIO = F the visits carry `Bc` computed at the site of the header (LONGITUD/LATITUDE,
//!   else Xinglong) and no `Vrel`, so the default shift source becomes `-BC`.
//! - **Resampled.** The exposures of one arm share one wavelength array (they differ by one
//!   float32 step of LOGLAM at most) that is not uniform in log lambda (steps 8.3e-6 to 1.1e-5 dex)
//!   and has the detector's 4136 pixels; the noise of the difference of two exposures is correlated
//!   between neighbouring pixels (lag-1 correlation 0.12-0.39, lag 2 about 0.05), the signature of
//!   one interpolation. They are flagged `resampled` (the combination warns).
//! - **Mask.** No definition of PIXMASK's bits was found (LAMOST's documents describe the LRS
//!   and/or masks only as "bad pixel"; `laspec/mrs.py` uses `PIXMASK > 0` as "problematic"), so any
//!   nonzero PIXMASK makes the pixel bad; the raw value is kept as the pixel's flags.
//! - **S/N.** The SNR card of each arm's HDU is kept (`SNR_B`, `SNR_R`); the visit's `snr` is their
//!   mean.
//! - **Wavelength precision.** LOGLAM is stored as float32: 2.4e-7 dex (0.16 km/s, 1/40 pixel)
//!   at these wavelengths. That is the file's own precision.
//! - **Grid.** The coadds lie on one log10-linear lattice (LOGLAM = 3.69018 + 1e-5 i for both
//!   arms in the real file); when they do, that lattice spanning both arms becomes
//!   [`Dataset::input_grid`], so the default output grid is the pipeline's own pixels (the
//!   exposures' median step is 1.0e-5 dex too).
//! - **Pipeline coadd.** Both arms in one [`Spectrum`], blue then red, with one NaN point between
//!   them so that plots do not draw a line across the gap.

use std::path::Path;
use std::sync::Arc;

use super::shared::wave_from_log10;
use crate::io::error::LoadError;
use crate::io::fits::{self, HduDesc};
use crate::io::reader::{FitsFormat, Format};
use crate::model::barycentric::{self, Observatory};
use crate::model::{
    Dataset, OutputGrid, RESAMPLED_CARD, Spectrum, Survey, VelocityKind, Visit, VisitArrays,
    VisitMeta,
};

/// Beijing time (UTC+8), in which LAMOST's LMJD and LMJM are counted.
pub const LOCAL_UTC_OFFSET_HOURS: f64 = 8.0;

/// The Xinglong station of NAOC (LAMOST's site), as LONGITUD/LATITUDE of the MRS headers (117.58 E,
/// 40.39 N); height 960 m.
pub const XINGLONG: Observatory = Observatory {
    name: "Xinglong",
    lat_deg: 40.39,
    lon_deg: 117.58,
    height_m: 960.0,
};

/// The card that carries a reader's warning about one visit (shown with the visit's cards).
pub const READER_WARNING_CARD: &str = "FV_READER_WARNING";

/// Julian date (UTC) of the start of local (UTC+8) modified Julian minute `lmjm`.
#[must_use]
pub fn lmjm_to_jd(lmjm: f64) -> f64 {
    lmjm / 1440.0 - LOCAL_UTC_OFFSET_HOURS / 24.0 + 2_400_000.5
}

/// The arm of an MRS HDU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Arm {
    /// Blue, about 4950-5350 Angstrom.
    Blue,
    /// Red, about 6300-6800 Angstrom.
    Red,
}

impl Arm {
    fn letter(self) -> char {
        match self {
            Self::Blue => 'B',
            Self::Red => 'R',
        }
    }
}

/// The arm and LMJM of an exposure HDU name (`B-83906016`, `R-83906016`).
#[must_use]
pub fn exposure_hdu(name: &str) -> Option<(Arm, &str)> {
    let arm = match name.as_bytes().first()? {
        b'B' | b'b' => Arm::Blue,
        b'R' | b'r' => Arm::Red,
        _ => return None,
    };
    let lmjm = name.get(1..)?.strip_prefix('-')?;
    (!lmjm.is_empty() && lmjm.len() <= 12 && lmjm.bytes().all(|c| c.is_ascii_digit()))
        .then_some((arm, lmjm))
}

/// The arm of a coadd HDU name (`COADD_B`, `COADD_R`).
#[must_use]
pub fn coadd_hdu(name: &str) -> Option<Arm> {
    if name.eq_ignore_ascii_case("COADD_B") {
        Some(Arm::Blue)
    } else if name.eq_ignore_ascii_case("COADD_R") {
        Some(Arm::Red)
    } else {
        None
    }
}

/// True if the HDUs look like a LAMOST MRS file: a table named `COADD_B`/`COADD_R`, or an
/// exposure table `B-<LMJM>`/`R-<LMJM>` with a LOGLAM column.
pub(crate) fn looks_like(hdus: &[HduDesc]) -> bool {
    hdus.iter().any(|h| {
        h.table().is_some()
            && (coadd_hdu(&h.name).is_some()
                || (exposure_hdu(&h.name).is_some() && h.has_column("LOGLAM")))
    })
}

/// Read a LAMOST MRS file (see the module documentation).
pub fn read(path: &Path) -> Result<Dataset, LoadError> {
    fits::guard(path, || read_inner(path))
}

/// One arm of one table, wavelength increasing.
struct ArmData {
    label: String,
    loglam: Vec<f64>,
    wave: Vec<f64>,
    flux: Vec<f64>,
    ivar: Vec<f64>,
    mask: Vec<u64>,
    snr: Option<f64>,
    exptime: Option<f64>,
    /// True when PIXMASK was absent.
    no_mask: bool,
}

fn read_arm(
    f: &mut fitsio::FitsFile,
    path: &Path,
    d: &HduDesc,
    mask_col: Option<&str>,
) -> Result<ArmData, LoadError> {
    for col in ["LOGLAM", "FLUX", "IVAR"] {
        if !d.has_column(col) {
            return Err(LoadError::missing(
                path,
                format!("column '{col}' of {}", d.label()),
            ));
        }
    }
    let mut loglam = fits::column_f64(f, path, d, &d.column_spelling("LOGLAM"))?;
    let mut flux = fits::column_f64(f, path, d, &d.column_spelling("FLUX"))?;
    let mut ivar = fits::column_f64(f, path, d, &d.column_spelling("IVAR"))?;
    if loglam.is_empty() {
        return Err(LoadError::invalid(path, d.label(), "the table has no rows"));
    }
    let no_mask = mask_col.is_some_and(|c| !d.has_column(c));
    let mut mask = match mask_col {
        Some(c) if d.has_column(c) => fits::column_bits(f, path, d, &d.column_spelling(c))?,
        _ => vec![0; loglam.len()],
    };
    for (what, n) in [
        ("FLUX", flux.len()),
        ("IVAR", ivar.len()),
        ("mask", mask.len()),
    ] {
        if n != loglam.len() {
            return Err(LoadError::invalid(
                path,
                format!("column '{what}' of {}", d.label()),
                format!("has {n} values, LOGLAM has {}", loglam.len()),
            ));
        }
    }
    // The red arm is stored with wavelength decreasing (the detector's order): turn every arm
    // to increasing wavelength, so that blue and red follow each other in one visit.
    if loglam.len() > 1 && loglam[0] > loglam[loglam.len() - 1] {
        loglam.reverse();
        flux.reverse();
        ivar.reverse();
        mask.reverse();
    }
    let wave = wave_from_log10(&loglam, |i, l| {
        LoadError::invalid(
            path,
            format!("column 'LOGLAM' of {}", d.label()),
            format!("a row holds {l}, not a usable log10 wavelength (row {i} in increasing order)"),
        )
    })?;
    Ok(ArmData {
        label: d.label(),
        loglam,
        wave,
        flux,
        ivar,
        mask,
        snr: fits::key_f64(f, &d.hdu, "SNR").filter(|x| x.is_finite()),
        exptime: fits::key_f64(f, &d.hdu, "EXPTIME").filter(|x| x.is_finite() && *x >= 0.0),
        no_mask,
    })
}

/// A primary-header card as trimmed text.
fn card(f: &mut fitsio::FitsFile, prim: Option<&HduDesc>, key: &str) -> Option<String> {
    prim.and_then(|p| fits::key_string(f, &p.hdu, key))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// A logical primary card (T/F), if present.
fn flag(f: &mut fitsio::FitsFile, prim: Option<&HduDesc>, key: &str) -> Option<bool> {
    let p = prim?;
    if let Ok(b) = p.hdu.read_key::<bool>(f, key) {
        return Some(b);
    }
    match fits::key_string(f, &p.hdu, key)?
        .trim()
        .to_ascii_uppercase()
        .as_str()
    {
        "T" | "TRUE" | "1" => Some(true),
        "F" | "FALSE" | "0" => Some(false),
        _ => None,
    }
}

fn read_inner(path: &Path) -> Result<Dataset, LoadError> {
    let mut f = fits::open(path)?;
    let hdus = fits::hdus(&mut f, path)?;
    let prim = hdus.first();
    let stem = crate::io::fits::gz::stem(path).unwrap_or_else(|| "lamost".into());
    let objname = card(&mut f, prim, "OBJNAME");
    let desig = card(&mut f, prim, "DESIG");
    let object = objname
        .clone()
        .or_else(|| desig.clone())
        .unwrap_or_else(|| stem.clone());
    if flag(&mut f, prim, "VACUUM") == Some(false) {
        return Err(LoadError::invalid(
            path,
            "card VACUUM of HDU 0",
            "is F: air wavelengths, which frizzview does not convert (LAMOST MRS files are in vacuum)",
        ));
    }
    let helio = flag(&mut f, prim, "HELIO");
    let ra = prim.and_then(|p| fits::key_f64(&mut f, &p.hdu, "RA"));
    let dec = prim.and_then(|p| fits::key_f64(&mut f, &p.hdu, "DEC"));
    let site = match (
        prim.and_then(|p| fits::key_f64(&mut f, &p.hdu, "LATITUDE")),
        prim.and_then(|p| fits::key_f64(&mut f, &p.hdu, "LONGITUD")),
    ) {
        (Some(lat), Some(lon))
            if lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 360.0 =>
        {
            Observatory {
                lat_deg: lat,
                lon_deg: lon,
                ..XINGLONG
            }
        }
        _ => XINGLONG,
    };
    let mut file_cards: Vec<(String, String)> = Vec::new();
    for key in [
        "OBJNAME", "DESIG", "OBSID", "RA", "DEC", "LMJD", "MJD", "PLANID", "SPID", "FIBERID",
        "HELIO", "HELIO_RV", "VACUUM", "DATA_V", "TELESCOP",
    ] {
        if let Some(v) = card(&mut f, prim, key) {
            file_cards.push((key.to_owned(), v));
        }
    }

    // The pipeline's coadds.
    let mut coadds: Vec<(Arm, ArmData)> = Vec::new();
    for d in hdus.iter().skip(1) {
        let Some(arm) = coadd_hdu(&d.name) else {
            continue;
        };
        if d.table().is_none() {
            return Err(LoadError::invalid(
                path,
                d.label(),
                "is not a binary table (a LAMOST coadd holds FLUX, IVAR, LOGLAM)",
            ));
        }
        if coadds.iter().any(|(a, _)| *a == arm) {
            return Err(LoadError::invalid(
                path,
                d.label(),
                "repeats a coadd HDU name already seen",
            ));
        }
        let data = read_arm(&mut f, path, d, None)?;
        if data.loglam.windows(2).any(|p| p[1] <= p[0]) {
            return Err(LoadError::invalid(
                path,
                format!("column 'LOGLAM' of {}", d.label()),
                "is not monotonic",
            ));
        }
        coadds.push((arm, data));
    }
    coadds.sort_by_key(|(a, _)| *a);
    let pipeline_coadd = coadd_spectrum(&coadds);
    let input_grid = coadd_lattice(&coadds);

    // Exposures, grouped by LMJM.
    let mut groups: Vec<(String, Vec<(Arm, &HduDesc)>)> = Vec::new();
    for d in hdus.iter().skip(1) {
        let Some((arm, lmjm)) = exposure_hdu(&d.name) else {
            continue;
        };
        if d.table().is_none() {
            return Err(LoadError::invalid(
                path,
                d.label(),
                "is not a binary table (a LAMOST exposure holds FLUX, IVAR, LOGLAM, PIXMASK)",
            ));
        }
        let slot = match groups.iter().position(|g| g.0 == lmjm) {
            Some(i) => i,
            None => {
                groups.push((lmjm.to_owned(), Vec::new()));
                groups.len() - 1
            }
        };
        if let Some((_, other)) = groups[slot].1.iter().find(|(a, _)| *a == arm) {
            return Err(LoadError::invalid(
                path,
                d.label(),
                format!(
                    "repeats the {} arm of LMJM {lmjm} ({})",
                    arm.letter(),
                    other.label()
                ),
            ));
        }
        groups[slot].1.push((arm, d));
    }
    if groups.is_empty() {
        return Err(LoadError::missing(
            path,
            "the exposure HDUs (B-<LMJM>, R-<LMJM>): the file holds only the pipeline's coadds \
             (COADD_B/COADD_R), which are not visits",
        ));
    }
    groups.sort_by_key(|g| g.0.parse::<u64>().unwrap_or(u64::MAX));

    let mut visits = Vec::with_capacity(groups.len());
    for (lmjm, mut arms) in groups {
        arms.sort_by_key(|(a, _)| *a);
        let mut arrays = VisitArrays::default();
        let mut meta = VisitMeta {
            name: format!("LMJM {lmjm}"),
            source: Some(path.to_path_buf()),
            object: Some(object.clone()),
            resampled: true,
            ..VisitMeta::default()
        };
        meta.header.push(("LMJM".into(), lmjm.clone()));
        let mut snrs = Vec::new();
        let mut exptime = None;
        let mut labels = Vec::new();
        let mut warnings = Vec::new();
        for (arm, d) in &arms {
            let a = read_arm(&mut f, path, d, Some("PIXMASK"))?;
            if a.no_mask {
                warnings.push(format!(
                    "{} has no PIXMASK column: no pixel masked",
                    a.label
                ));
            }
            let start = arrays.wavelength_aa.len();
            arrays.wavelength_aa.extend(&a.wave);
            arrays.flux.extend(&a.flux);
            arrays.ivar.extend(&a.ivar);
            arrays.bad.extend(a.mask.iter().map(|&m| m != 0));
            arrays.flags.extend(&a.mask);
            arrays.segments.push(start..arrays.wavelength_aa.len());
            if let Some(s) = a.snr {
                meta.header
                    .push((format!("SNR_{}", arm.letter()), format!("{s}")));
                snrs.push(s);
            }
            if exptime.is_none() {
                exptime = a.exptime;
            }
            labels.push(a.label);
        }
        if arms.len() == 1 {
            let (arm, _) = arms[0];
            let missing = match arm {
                Arm::Blue => 'R',
                Arm::Red => 'B',
            };
            warnings.push(format!(
                "{} has no {missing}-{lmjm} partner: only the {} arm of this exposure",
                labels.join(", "),
                match arm {
                    Arm::Blue => "blue",
                    Arm::Red => "red",
                }
            ));
        }
        meta.header
            .push(("EXPOSURE_HDUS".into(), labels.join(", ")));
        meta.snr = (!snrs.is_empty()).then(|| snrs.iter().sum::<f64>() / snrs.len() as f64);
        if let Some(e) = exptime {
            meta.header.push(("EXPTIME".into(), format!("{e}")));
        }
        meta.jd = lmjm
            .parse::<f64>()
            .ok()
            .map(|m| lmjm_to_jd(m) + exptime.unwrap_or(0.0) / 2.0 / 86_400.0);
        meta.header.extend(file_cards.iter().cloned());
        match helio {
            Some(false) => {
                // Topocentric wavelengths: the barycentric correction at the site, if the
                // position and time are known.
                if let (Some(r), Some(d), Some(jd)) = (ra, dec, meta.jd) {
                    let bc = barycentric::barycentric_correction(r, d, jd, &site);
                    meta.set_velocity(VelocityKind::Bc, bc);
                    meta.header.push((
                        "FV_VELOCITY".into(),
                        format!(
                            "HELIO = F: wavelengths not heliocentric; BC {bc:.3} km/s computed at \
                             {} for the exposure's middle",
                            site.name
                        ),
                    ));
                } else {
                    warnings.push(
                        "HELIO = F and no RA/DEC or time: no barycentric correction known".into(),
                    );
                }
            }
            _ => {
                meta.set_velocity(VelocityKind::Vrel, 0.0);
                meta.header.push((
                    "FV_VELOCITY".into(),
                    format!(
                        "wavelengths heliocentric already{} (HELIO_RV is the correction the \
                         pipeline applied, not the star's velocity): Vrel = 0, no BC applied again",
                        if helio.is_none() {
                            " (assumed: no HELIO card)"
                        } else {
                            ""
                        }
                    ),
                ));
            }
        }
        meta.header.push((
            RESAMPLED_CARD.into(),
            "LAMOST MRS exposure: the exposures share one wavelength array, interpolated by the \
             pipeline"
                .into(),
        ));
        if !warnings.is_empty() {
            meta.header
                .push((READER_WARNING_CARD.into(), warnings.join("; ")));
        }
        let visit = Visit::new(meta, arrays).map_err(|e| {
            LoadError::invalid(
                path,
                format!("exposure LMJM {lmjm} ({})", labels.join(", ")),
                e,
            )
        })?;
        visits.push(Arc::new(visit));
    }
    Ok(Dataset {
        name: desig.or(objname).unwrap_or(stem),
        visits,
        input_grid,
        truth: None,
        pipeline_coadd,
        survey: Survey::Generic,
        load_warnings: Vec::new(),
    })
}

/// The coadds in one spectrum, blue then red, with a NaN point between arms.
fn coadd_spectrum(coadds: &[(Arm, ArmData)]) -> Option<Spectrum> {
    if coadds.is_empty() {
        return None;
    }
    let mut s = Spectrum {
        label: format!(
            "LAMOST pipeline coadd ({})",
            coadds
                .iter()
                .map(|(a, _)| format!("COADD_{}", a.letter()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ..Spectrum::default()
    };
    for (_, a) in coadds {
        let x: Vec<f64> = a.wave.iter().map(|w| w.ln()).collect();
        if let (Some(&last), Some(&first)) = (s.ln_wave.last(), x.first()) {
            if first <= last {
                // Overlapping arms: no gap marker, and the spectrum would not be sorted.
                return None;
            }
            s.ln_wave.push(0.5 * (last + first));
            s.flux.push(f64::NAN);
            s.ivar.push(0.0);
        }
        s.ln_wave.extend(x);
        s.flux.extend(&a.flux);
        s.ivar.extend(&a.ivar);
    }
    Some(s)
}

/// The coadds' common log10-linear lattice spanning all arms, if every coadd pixel lies on it
/// (within 5 % of a step: LOGLAM is float32, 2.4e-7 dex, 2.4 % of the real files' 1e-5 step).
fn coadd_lattice(coadds: &[(Arm, ArmData)]) -> Option<OutputGrid> {
    let first = &coadds.first()?.1;
    let n = first.loglam.len();
    if n < 2 {
        return None;
    }
    let start = first.loglam[0];
    let step = (first.loglam[n - 1] - start) / (n - 1) as f64;
    if !(step.is_finite() && step > 0.0) {
        return None;
    }
    let mut end = start;
    for (_, a) in coadds {
        for &l in &a.loglam {
            let k = (l - start) / step;
            if !(k.is_finite() && k > -0.5 && (k - k.round()).abs() < 0.05) {
                return None;
            }
            end = end.max(l);
        }
    }
    let n_f = ((end - start) / step).round() + 1.0;
    if !(n_f >= 2.0 && n_f <= crate::model::grid::MAX_GRID_PIXELS as f64) {
        return None;
    }
    Some(OutputGrid::log_linear(start, step, n_f as usize))
}

/// The LAMOST MRS reader, by its HDU names.
pub(crate) static READER: FitsFormat = FitsFormat {
    format: Format::LamostMrs,
    looks_like: |_, _, hdus| looks_like(hdus),
    read,
    companion: None,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_and_coadd_names() {
        assert_eq!(exposure_hdu("B-83906016"), Some((Arm::Blue, "83906016")));
        assert_eq!(exposure_hdu("R-1"), Some((Arm::Red, "1")));
        for no in ["B1-00001", "B-", "B-12a", "COADD_B", "R_123", "", "B"] {
            assert_eq!(exposure_hdu(no), None, "{no}");
        }
        assert_eq!(coadd_hdu("coadd_r"), Some(Arm::Red));
        assert_eq!(coadd_hdu("COADD"), None);
    }

    /// The real file's first exposure: LMJM 83906016 is 2018-05-30 01:36 Beijing time, i.e.
    /// 2018-05-29 17:36 UTC (its header: MJD = 58267, DATE-OBS = 2018-05-29T17:41:00 UTC).
    #[test]
    fn lmjm_is_local_minutes() {
        let jd = lmjm_to_jd(83_906_016.0);
        // 2018-05-29 00:00 UTC = JD 2458267.5; + 17h36m = 0.733333 d.
        assert!(
            (jd - (2_458_267.5 + (17.0 * 60.0 + 36.0) / 1440.0)).abs() < 1e-6,
            "{jd}"
        );
    }
}
