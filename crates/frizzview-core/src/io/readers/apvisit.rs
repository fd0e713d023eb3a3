//! APOGEE apVisit reader (DR13-DR17 and SDSS-V DR19/DR20 layouts; `apVisit`, DR17 `asVisit`,
//! APO-1m names, see [`crate::io::survey::apogee_names`]).
//!
//! - HDUs are found by EXTNAME (SDSS-V: FLUX, ERROR, MASK, WAVELENGTH, ..., TELLURIC) with the
//!   index fallback 1-4 and 7 for older files that name none. The visit table is found by type: the
//!   first binary table after the images (HDU 11, or 12 after an SDSS-V FLUX CONVERSION image).
//! - The chips (rows of FLUX, ERROR, MASK, WAVELENGTH, red to blue) become segments, wavelengths
//!   kept as stored (decreasing within each chip; vacuum, observed frame).
//! - ERROR becomes ivar = 1/error²; error >= 1e10 (the pipeline's bad value), <= 0 or
//!   non-finite marks the pixel bad.
//! - MASK is APOGEE_PIXMASK; which bits are bad is a setting (16639 by default).
//! - TELLURIC is the selection factor S. The delivered FLUX is already divided by it
//!   (`flux_divided_by_selection = true`): in "multiply" mode `combine::prepare` multiplies flux
//!   and error back so that model x S faces the data as observed; in "divide" mode the flux is used
//!   as delivered.
//! - Release (APRED card, else the file name's apred token; card `FV_RELEASE`) decides what the
//!   velocity cards mean: DR13-DR17 VRAD is the topocentric shift (-> Vrel) and VHELIO(BAR) the
//!   barycentric velocity; SDSS-V VREL is topocentric and VRAD barycentric. SDSS-V apVisit files
//!   carry neither (their velocities are in allVisit, apStar and mwmVisit:
//!   [`crate::io::survey::survey_rv`]).
//! - BC card -> Bc; without one, BC is computed from RA, DEC, JD-MID and the site
//!   ([`crate::model::barycentric`]) and the card `FV_BC` says so. The site comes from the file name
//!   (`apo25m`/`lco25m`/`apo1m` token, `as` prefix = LCO), else the table's TELESCOPE column, else
//!   (SDSS-IV only) TELESCOP: SDSS-V writes `TELESCOP = 'apo25m'` at every site. Card
//!   `FV_TELESCOPE` says which. Missing cards are listed in `FV_MISSING`; nothing is guessed.
//! - LSF (HDU10, Gauss-Hermite coefficients in pixels): not converted; `lsf_sigma_ln` stays `None`
//!   because a single Gaussian sigma cannot be read off those parameters without the full
//!   Gauss-Hermite evaluation.
//! - Visit table: a few columns of its first row are kept as header cards `VISIT.<COLUMN>`.

use std::path::Path;
use std::sync::Arc;

use super::apogee::named_hdu;
use crate::io::error::LoadError;
use crate::io::fits::{self, HduDesc};
use crate::io::reader::{FitsFormat, Format};
use crate::io::survey::apogee_names::{self, ApogeeName, Release};
use crate::model::barycentric::{Observatory, barycentric_correction};
use crate::model::{Dataset, Survey, VelocityKind, Visit, VisitArrays, VisitMeta};

/// BC (km/s) from the header's RA, DEC, the visit's JD and the telescope's site, with the site's
/// name; `None` when any of them is missing or unknown.
fn computed_bc(
    f: &mut fitsio::FitsFile,
    prim: &fitsio::hdu::FitsHdu,
    jd: Option<f64>,
    telescope: Option<&str>,
) -> Option<(f64, &'static str)> {
    let ra = fits::key_f64(f, prim, "RA").filter(|v| v.is_finite())?;
    let dec = fits::key_f64(f, prim, "DEC").filter(|v| v.is_finite() && v.abs() <= 90.0)?;
    let jd = jd.filter(|v| v.is_finite() && *v > 2_400_000.0)?;
    let site = Observatory::from_telescope(telescope?)?;
    Some((barycentric_correction(ra, dec, jd, &site), site.name))
}

/// The telescope of a visit and where it was read: the file name (`apo25m`/`lco25m`/`apo1m`
/// token, or the DR17 `as` prefix for LCO), else the visit table's TELESCOPE column, else (only
/// before SDSS-V, whose writer puts `apo25m` in TELESCOP at every site: `sdss/apogee_drp`
/// `pro/apogeereduce/apvisit_output.pro`) the TELESCOP card.
fn telescope(
    name: Option<&ApogeeName>,
    table_telescope: Option<String>,
    card: Option<String>,
    release: Release,
) -> Option<(String, &'static str)> {
    if let Some(t) = name.and_then(|n| n.telescope.clone()) {
        return Some((t, "the file name"));
    }
    if let Some(t) = table_telescope.filter(|t| !t.is_empty()) {
        return Some((t, "the visit table's TELESCOPE column"));
    }
    match release {
        Release::SdssIv => card
            .filter(|t| !t.is_empty())
            .map(|t| (t, "the TELESCOP card")),
        Release::SdssV => None,
    }
}

pub use super::apogee::BAD_ERROR;

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
    "VREL",
    "HJD",
    "SURVEY",
    "FIELD",
    "APRED",
    "JMAG",
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

/// The first row of a table column (any case) as text, if present and readable.
fn table_text(f: &mut fitsio::FitsFile, d: &HduDesc, want: &str) -> Option<String> {
    let (cols, rows) = d.table()?;
    let (name, typ, _) = cols.iter().find(|c| c.0.eq_ignore_ascii_case(want))?;
    if rows == 0 {
        return None;
    }
    if matches!(
        typ,
        fitsio::tables::ColumnDataType::Text | fitsio::tables::ColumnDataType::String
    ) {
        crate::io::fits::disk::read_str_col(f, &d.hdu, name, 0, Some(1))
            .ok()
            .and_then(|v| v.into_iter().next())
            .map(|s| s.trim().to_owned())
    } else {
        d.hdu
            .read_cell_value::<f64>(f, name, 0)
            .ok()
            .map(|v| v.to_string())
    }
}

/// A whole number in 0..=u32::MAX from a card or cell text.
fn whole(s: Option<String>) -> Option<u32> {
    let v: f64 = s?.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= f64::from(u32::MAX)).then_some(v as u32)
}

/// The visit's identity from its content: the header's `PLATE`, `FIELD`, `MJD5`, `FIBERID`, else
/// the visit table's `PLATE`, `FIELD`, `MJD`, `FIBERID`; the telescope as [`telescope`] found it.
/// The file name fills only what the content leaves unknown (it may have been renamed).
fn identity(
    f: &mut fitsio::FitsFile,
    prim: &fitsio::hdu::FitsHdu,
    table: Option<&HduDesc>,
    telescope: Option<&str>,
    name: Option<&ApogeeName>,
) -> Option<crate::model::VisitIdentity> {
    let mut cell = |card: &str, column: &str| {
        fits::key_string(f, prim, card)
            .filter(|s| !s.trim().is_empty())
            .or_else(|| table.and_then(|d| table_text(f, d, column)))
            .filter(|s| !s.trim().is_empty())
    };
    let plate = cell("PLATE", "PLATE");
    let field = cell("FIELD", "FIELD");
    let mjd = whole(cell("MJD5", "MJD"));
    let fiber = whole(cell("FIBERID", "FIBERID"));
    let from_name = name.filter(|n| n.product.eq_ignore_ascii_case("visit"));
    let id = crate::model::VisitIdentity::new(
        telescope,
        field.as_deref(),
        plate
            .as_deref()
            .or_else(|| from_name.and_then(|n| n.plate.as_deref())),
        mjd.or_else(|| from_name.and_then(|n| n.mjd)),
        fiber.or_else(|| from_name.and_then(|n| n.fiber)),
    );
    (id != crate::model::VisitIdentity::default()).then_some(id)
}

/// Read an apVisit file.
pub fn read(path: &Path) -> Result<Dataset, LoadError> {
    fits::guard(path, || read_inner(path))
}

fn read_inner(path: &Path) -> Result<Dataset, LoadError> {
    let mut f = fits::open(path)?;
    let hdus = fits::hdus(&mut f, path)?;
    // SDSS-V files name their HDUs; older ones are read by index.
    let mut found = Vec::with_capacity(4);
    for (i, what) in [(1, "FLUX"), (2, "ERROR"), (3, "MASK"), (4, "WAVELENGTH")] {
        match named_hdu(&hdus, what, i) {
            Some(d) => found.push(d),
            None => return Err(LoadError::missing(path, fits::label(i, what))),
        }
    }
    let (shape, flux) = fits::image_f64(&mut f, path, found[0])?;
    let [nchip, npix] = shape[..] else {
        return Err(LoadError::invalid(
            path,
            found[0].label(),
            format!("has shape {shape:?}, expected (chips, pixels)"),
        ));
    };
    let same = |d: &HduDesc, s: &[usize]| {
        if s == shape.as_slice() {
            Ok(())
        } else {
            Err(LoadError::invalid(
                path,
                d.label(),
                format!("has shape {s:?}, FLUX has {shape:?}"),
            ))
        }
    };
    let (s2, err) = fits::image_f64(&mut f, path, found[1])?;
    same(found[1], &s2)?;
    let (s3, maskf) = fits::image_f64(&mut f, path, found[2])?;
    same(found[2], &s3)?;
    let (s4, wave) = fits::image_f64(&mut f, path, found[3])?;
    same(found[3], &s4)?;
    let telluric = match named_hdu(&hdus, "TELLURIC", 7) {
        Some(d) if d.image_shape() == Some(shape.as_slice()) => {
            Some(fits::image_f64(&mut f, path, d)?.1)
        }
        Some(d) if d.image_shape().is_some() => {
            return Err(LoadError::invalid(
                path,
                d.label(),
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
                found[2].label(),
                format!("pixel {i} holds {m}, expected a non-negative integer bitmask"),
            ));
        }
        flags.push(m as u64);
    }
    for (i, &w) in wave.iter().enumerate() {
        if !(w.is_finite() && w > 0.0) {
            return Err(LoadError::invalid(
                path,
                found[3].label(),
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
        name: crate::io::fits::gz::stem(path).unwrap_or_else(|| "apVisit".into()),
        source: Some(path.to_path_buf()),
        ..VisitMeta::default()
    };
    meta.object = fits::key_string(&mut f, &prim, "OBJID").filter(|s| !s.is_empty());
    meta.jd = fits::key_f64(&mut f, &prim, "JD-MID");
    meta.snr = fits::key_f64(&mut f, &prim, "SNR");
    // The visit table: the first binary table after the images (HDU 11, or 12 after a FLUX
    // CONVERSION image in SDSS-V files).
    let table = hdus
        .iter()
        .skip(5)
        .find(|d| d.table().is_some_and(|(_, r)| r > 0));
    let table_telescope = table.and_then(|d| table_text(&mut f, d, "TELESCOPE"));
    let fname = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parsed = apogee_names::parse(&fname);
    let apred_card = fits::key_string(&mut f, &prim, "APRED").filter(|s| !s.is_empty());
    let (release, release_from) = match (
        apred_card.as_deref().and_then(Release::from_apred),
        parsed.as_ref().and_then(ApogeeName::release),
    ) {
        (Some(r), _) => (
            r,
            format!("APRED card '{}'", apred_card.unwrap_or_default()),
        ),
        (None, Some(r)) => (
            r,
            format!(
                "file name token '{}'",
                parsed
                    .as_ref()
                    .map(|n| n.apred.as_str())
                    .unwrap_or_default()
            ),
        ),
        (None, None) => (
            Release::SdssIv,
            "assumed: no APRED card, no release in the name".into(),
        ),
    };
    meta.header.push((
        "FV_RELEASE".into(),
        format!("{} ({release_from})", release.label()),
    ));
    let tel = telescope(
        parsed.as_ref(),
        table_telescope,
        fits::key_string(&mut f, &prim, "TELESCOP"),
        release,
    );
    if let Some((t, from)) = &tel {
        meta.header
            .push(("FV_TELESCOPE".into(), format!("{t} (from {from})")));
    }
    // Topocentric and barycentric card names by release: DR13-DR17 VRAD / VHELIO(BAR); SDSS-V
    // VREL / VRAD (`sdss/apogee_drp` `python/apogee_drp/apred/rv.py`: vrad = vrel + bc).
    let (topo, bary): (&str, &[&str]) = match release {
        Release::SdssIv => ("VRAD", &["VHELIO", "VHELIOBAR"]),
        Release::SdssV => ("VREL", &["VRAD", "VHELIO"]),
    };
    let mut missing = Vec::new();
    let card =
        |f: &mut fitsio::FitsFile, k: &str| fits::key_f64(f, &prim, k).filter(|v| v.is_finite());
    match card(&mut f, topo) {
        Some(v) => meta.set_velocity(VelocityKind::Vrel, v),
        None => missing.push(topo),
    }
    match bary.iter().find_map(|k| card(&mut f, k)) {
        Some(v) => meta.set_velocity(VelocityKind::Vhelio, v),
        None => missing.push(bary[0]),
    }
    match card(&mut f, "BC") {
        Some(v) => meta.set_velocity(VelocityKind::Bc, v),
        None => match computed_bc(&mut f, &prim, meta.jd, tel.as_ref().map(|t| t.0.as_str())) {
            // No BC card (SDSS-V keeps velocities in its database): compute it from RA/DEC and
            // JD-MID at the telescope's site.
            Some((bc, site)) => {
                meta.set_velocity(VelocityKind::Bc, bc);
                meta.header.push((
                    "FV_BC".into(),
                    format!("computed from RA, DEC, JD-MID at {site}: {bc:.4} km/s"),
                ));
            }
            None => missing.push("BC"),
        },
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
    // The identity's telescope from the content first (the visit table's TELESCOPE column, the
    // TELESCOP card before SDSS-V), the file name only when they say nothing.
    let content_tel = telescope(
        None,
        table.and_then(|d| table_text(&mut f, d, "TELESCOPE")),
        fits::key_string(&mut f, &prim, "TELESCOP"),
        release,
    )
    .or_else(|| tel.clone());
    meta.identity = identity(
        &mut f,
        &prim,
        table,
        content_tel.as_ref().map(|t| t.0.as_str()),
        parsed.as_ref(),
    );
    if let Some(id) = &meta.identity {
        meta.header.push((
            "FV_IDENTITY".into(),
            format!("{} (from the header)", id.label()),
        ));
    }
    for key in KEEP_CARDS {
        if let Some(v) = fits::key_string(&mut f, &prim, key) {
            meta.header.push(((*key).to_owned(), v));
        }
    }
    if !missing.is_empty() {
        meta.header.push(("FV_MISSING".into(), missing.join(", ")));
    }
    if let Some(d) = table {
        for want in KEEP_COLUMNS {
            if let Some(v) = table_text(&mut f, d, want) {
                let name = d
                    .table()
                    .and_then(|(cols, _)| cols.into_iter().find(|c| c.0.eq_ignore_ascii_case(want)))
                    .map_or_else(|| (*want).to_owned(), |c| c.0);
                meta.header.push((format!("VISIT.{name}"), v));
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
    .map_err(|e| LoadError::invalid(path, found[3].label(), e))?;
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
        load_warnings: Vec::new(),
    })
}

/// The apVisit reader, by the primary header and the HDU structure ([`classify`]).
pub(crate) static READER: FitsFormat = FitsFormat {
    format: Format::ApVisit,
    looks_like: |f, path, hdus| classify(f, path, hdus) == ApogeeKind::Visit,
    read,
    companion: None,
};
