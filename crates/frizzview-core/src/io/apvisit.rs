//! APOGEE apVisit reader (data-models.md §4.1).
//!
//! - The chips (rows of HDU1-4, red to blue) become segments, wavelengths kept as stored
//!   (decreasing within each chip; vacuum, observed frame).
//! - ERROR (HDU2) becomes ivar = 1/error²; error >= 1e10 (the pipeline's bad value), <= 0 or
//!   non-finite marks the pixel bad.
//! - MASK (HDU3) is APOGEE_PIXMASK; which bits are bad is a setting (16639 by default).
//! - TELLURIC (HDU7) is the selection factor S. The delivered FLUX is already divided by it
//!   (`flux_divided_by_selection = true`): in "multiply" mode `combine::prepare` multiplies flux
//!   and error back so that model x S faces the data as observed; in "divide" mode the flux is used
//!   as delivered.
//! - Header: VRAD -> Vrel ("doppler shift", the star's velocity relative to the observer), BC ->
//!   Bc, VHELIO (or VHELIOBAR) -> Vhelio, JD-MID -> jd, SNR, OBJID -> object. Without a BC card
//!   (SDSS-V files) BC is computed from RA, DEC, JD-MID and the TELESCOP site
//!   ([`crate::model::barycentric`]) and the card `FV_BC` says so. Missing ones are listed in the
//!   header card `FV_MISSING`; nothing is guessed.
//! - LSF (HDU10, Gauss-Hermite coefficients in pixels): not converted; `lsf_sigma_ln` stays `None`
//!   because a single Gaussian sigma cannot be read off those parameters without the full
//!   Gauss-Hermite evaluation.
//! - HDU11 (visit table, when present): a few columns of its first row are kept as header cards
//!   `VISIT.<COLUMN>`.

use std::path::Path;
use std::sync::Arc;

use super::error::LoadError;
use super::fits::{self, HduDesc};
use crate::model::barycentric::{Observatory, barycentric_correction};
use crate::model::{Dataset, Survey, VelocityKind, Visit, VisitArrays, VisitMeta};

/// BC (km/s) from the header's RA, DEC and TELESCOP and the visit's JD, with the site's name;
/// `None` when any of them is missing or unknown.
fn computed_bc(
    f: &mut fitsio::FitsFile,
    prim: &fitsio::hdu::FitsHdu,
    jd: Option<f64>,
) -> Option<(f64, &'static str)> {
    let ra = fits::key_f64(f, prim, "RA").filter(|v| v.is_finite())?;
    let dec = fits::key_f64(f, prim, "DEC").filter(|v| v.is_finite() && v.abs() <= 90.0)?;
    let jd = jd.filter(|v| v.is_finite() && *v > 2_400_000.0)?;
    let site = Observatory::from_telescope(&fits::key_string(f, prim, "TELESCOP")?)?;
    Some((barycentric_correction(ra, dec, jd, &site), site.name))
}

/// The pipeline's "bad" error value (apogee_drp `baderr()`).
pub const BAD_ERROR: f64 = 1.0e10;

/// Primary-header cards kept on the visit.
const KEEP_CARDS: &[&str] = &[
    "OBJID",
    "TELESCOP",
    "PLATE",
    "MJD5",
    "FIBERID",
    "DATE-OBS",
    "EXPTIME",
    "JD-MID",
    "RA",
    "DEC",
    "HMAG",
    "SNR",
    "STARFLAG",
    "BC",
    "VRAD",
    "VRADERR",
    "VHELIO",
    "VHELIOBAR",
    "HJD",
    "SURVEY",
    "FIELD",
    "APRED",
];

/// Visit-table columns kept as `VISIT.<NAME>` cards.
const KEEP_COLUMNS: &[&str] = &[
    "FILE",
    "APOGEE_ID",
    "VREL",
    "VRELERR",
    "VHELIO",
    "BC",
    "JD",
    "SNR",
    "STARFLAG",
    "RV_TEFF",
    "RV_LOGG",
    "RV_FEH",
];

/// What an APOGEE-looking FITS file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ApogeeKind {
    /// Not APOGEE.
    No,
    /// An apVisit file (or one that claims to be: the reader names what is wrong).
    Visit,
    /// An apStar/asStar file: already combined, not an input.
    Star,
}

/// Classify by the primary header (TELESCOP, SURVEY, INSTRUME, NVISITS), the file name and the
/// HDU structure (HDU1-4 two-dimensional images of one shape).
pub(crate) fn classify(f: &mut fitsio::FitsFile, path: &Path, hdus: &[HduDesc]) -> ApogeeKind {
    let Some(prim) = hdus.first().map(|d| &d.hdu) else {
        return ApogeeKind::No;
    };
    let tel = fits::key_string(f, prim, "TELESCOP")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let survey = fits::key_string(f, prim, "SURVEY")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let inst = fits::key_string(f, prim, "INSTRUME")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let fname = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let apogee = tel.contains("apo25m")
        || tel.contains("lco25m")
        || tel.contains("apo1m")
        || survey.contains("apogee")
        || inst.contains("apogee")
        || fname.starts_with("apvisit")
        || fname.starts_with("asvisit")
        || fname.starts_with("apstar")
        || fname.starts_with("asstar");
    let shape = hdus.get(1).and_then(HduDesc::image_shape);
    let structure = hdus.len() >= 5
        && (1..=4).all(|i| {
            let s = hdus[i].image_shape();
            s.is_some() && s == shape && s.is_some_and(|s| s.len() == 2)
        });
    let star = fname.starts_with("apstar")
        || fname.starts_with("asstar")
        || fits::key_f64(f, prim, "NVISITS").is_some();
    if !(apogee || structure) {
        return ApogeeKind::No;
    }
    if star && apogee {
        return ApogeeKind::Star;
    }
    if apogee && (structure || shape.is_some_and(|s| s.len() == 2)) {
        ApogeeKind::Visit
    } else {
        ApogeeKind::No
    }
}

/// Read an apVisit file.
pub fn read(path: &Path) -> Result<Dataset, LoadError> {
    fits::guard(path, || read_inner(path))
}

fn read_inner(path: &Path) -> Result<Dataset, LoadError> {
    let mut f = fits::open(path)?;
    let hdus = fits::hdus(&mut f, path)?;
    for (i, what) in [(1, "FLUX"), (2, "ERROR"), (3, "MASK"), (4, "WAVELENGTH")] {
        if hdus.len() <= i {
            return Err(LoadError::missing(path, fits::label(i, what)));
        }
    }
    let (shape, flux) = fits::image_f64(&mut f, path, &hdus[1])?;
    let [nchip, npix] = shape[..] else {
        return Err(LoadError::invalid(
            path,
            fits::label(1, "FLUX"),
            format!("has shape {shape:?}, expected (chips, pixels)"),
        ));
    };
    let same = |i: usize, what: &str, s: &[usize]| {
        if s == shape.as_slice() {
            Ok(())
        } else {
            Err(LoadError::invalid(
                path,
                fits::label(i, what),
                format!("has shape {s:?}, FLUX has {shape:?}"),
            ))
        }
    };
    let (s2, err) = fits::image_f64(&mut f, path, &hdus[2])?;
    same(2, "ERROR", &s2)?;
    let (s3, maskf) = fits::image_f64(&mut f, path, &hdus[3])?;
    same(3, "MASK", &s3)?;
    let (s4, wave) = fits::image_f64(&mut f, path, &hdus[4])?;
    same(4, "WAVELENGTH", &s4)?;
    let telluric = match hdus.get(7) {
        Some(d) if d.image_shape() == Some(shape.as_slice()) => {
            Some(fits::image_f64(&mut f, path, d)?.1)
        }
        Some(d) if d.image_shape().is_some() => {
            return Err(LoadError::invalid(
                path,
                fits::label(7, "TELLURIC"),
                format!("has shape {:?}, FLUX has {shape:?}", d.image_shape()),
            ));
        }
        _ => None,
    };
    let n = nchip * npix;
    let mut ivar = Vec::with_capacity(n);
    let mut bad = Vec::with_capacity(n);
    for &e in &err {
        let ok = e.is_finite() && e > 0.0 && e < BAD_ERROR;
        ivar.push(if ok { 1.0 / (e * e) } else { 0.0 });
        bad.push(!ok);
    }
    let mut flags = Vec::with_capacity(n);
    for (i, &m) in maskf.iter().enumerate() {
        if !(m.is_finite() && m >= 0.0 && m.fract() == 0.0) {
            return Err(LoadError::invalid(
                path,
                fits::label(3, "MASK"),
                format!("pixel {i} holds {m}, expected a non-negative integer bitmask"),
            ));
        }
        flags.push(m as u64);
    }
    for (i, &w) in wave.iter().enumerate() {
        if !(w.is_finite() && w > 0.0) {
            return Err(LoadError::invalid(
                path,
                fits::label(4, "WAVELENGTH"),
                format!(
                    "chip {} pixel {} holds {w}, expected a positive wavelength",
                    i / npix,
                    i % npix
                ),
            ));
        }
    }

    // Header.
    let prim = f
        .primary_hdu()
        .map_err(|e| LoadError::invalid(path, "HDU 0", e))?;
    let mut meta = VisitMeta {
        name: path
            .file_stem()
            .map_or_else(|| "apVisit".into(), |s| s.to_string_lossy().into_owned()),
        source: Some(path.to_path_buf()),
        ..VisitMeta::default()
    };
    meta.object = fits::key_string(&mut f, &prim, "OBJID").filter(|s| !s.is_empty());
    meta.jd = fits::key_f64(&mut f, &prim, "JD-MID");
    meta.snr = fits::key_f64(&mut f, &prim, "SNR");
    let mut missing = Vec::new();
    for (key, kind) in [
        ("VRAD", VelocityKind::Vrel),
        ("BC", VelocityKind::Bc),
        ("VHELIO", VelocityKind::Vhelio),
    ] {
        let v = fits::key_f64(&mut f, &prim, key).or_else(|| {
            (key == "VHELIO")
                .then(|| fits::key_f64(&mut f, &prim, "VHELIOBAR"))
                .flatten()
        });
        match v {
            Some(v) if v.is_finite() => meta.set_velocity(kind, v),
            _ if kind == VelocityKind::Bc => match computed_bc(&mut f, &prim, meta.jd) {
                // data-models.md: no BC card (SDSS-V keeps velocities in its database) ->
                // compute it from RA/DEC and JD-MID at the telescope's site.
                Some((bc, site)) => {
                    meta.set_velocity(kind, bc);
                    meta.header.push((
                        "FV_BC".into(),
                        format!("computed from RA, DEC, JD-MID at {site}: {bc:.4} km/s"),
                    ));
                }
                None => missing.push(key),
            },
            _ => missing.push(key),
        }
    }
    for (key, present) in [
        ("OBJID", meta.object.is_some()),
        ("JD-MID", meta.jd.is_some()),
        ("SNR", meta.snr.is_some()),
    ] {
        if !present {
            missing.push(key);
        }
    }
    for key in KEEP_CARDS {
        if let Some(v) = fits::key_string(&mut f, &prim, key) {
            meta.header.push(((*key).to_owned(), v));
        }
    }
    if !missing.is_empty() {
        meta.header.push(("FV_MISSING".into(), missing.join(", ")));
    }
    if let Some(d) = hdus.get(11)
        && let Some((cols, rows)) = d.table()
        && rows > 0
    {
        for want in KEEP_COLUMNS {
            if let Some((name, typ, _)) = cols.iter().find(|c| c.0.eq_ignore_ascii_case(want)) {
                let val = if matches!(
                    typ,
                    fitsio::tables::ColumnDataType::Text | fitsio::tables::ColumnDataType::String
                ) {
                    d.hdu
                        .read_cell_value::<String>(&mut f, name, 0)
                        .ok()
                        .map(|s| s.trim().to_owned())
                } else {
                    d.hdu
                        .read_cell_value::<f64>(&mut f, name, 0)
                        .ok()
                        .map(|v| v.to_string())
                };
                if let Some(v) = val {
                    meta.header.push((format!("VISIT.{name}"), v));
                }
            }
        }
    }
    let segments = (0..nchip).map(|c| c * npix..(c + 1) * npix).collect();
    let visit = Visit::new(
        meta,
        VisitArrays {
            wavelength_aa: wave,
            flux,
            ivar,
            flags,
            bad,
            flux_divided_by_selection: telluric.is_some(),
            selection: telluric,
            segments,
        },
    )
    .map_err(|e| LoadError::invalid(path, fits::label(4, "WAVELENGTH"), e))?;
    let name = visit
        .meta
        .object
        .clone()
        .unwrap_or_else(|| visit.meta.name.clone());
    Ok(Dataset {
        name,
        visits: vec![Arc::new(visit)],
        input_grid: None,
        truth: None,
        pipeline_coadd: None,
        survey: Survey::Apogee,
    })
}
