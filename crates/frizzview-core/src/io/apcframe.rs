//! APOGEE apCframe reader: the individual dithered exposures behind an apVisit.
//!
//! Layout (SDSS data model for apCframe; `sdss/apogee_drp` `pro/apogeereduce/apvisit_outcframe.pro`
//! and `python/apogee_drp/utils/apload.py`): one file per chip per exposure,
//! `apCframe-{a|b|c}-{num:08d}.fits` (`asCframe-` at LCO in DR17), 300 fibres x 2048 pixels.
//! HDUs are found by EXTNAME, with the index as fallback (EXTNAMEs exist only from apogee_drp 1.2.0
//! on): 1 FLUX (ADU, sky-subtracted, divided by the telluric model), 2 ERROR (bad = 1e10), 3 MASK
//! (APOGEE_PIXMASK), 4 WAVELENGTH (vacuum Angstrom, observed frame: this exposure's own per-fibre
//! solution, dither included; decreasing with pixel), 7 TELLURIC, 11 the fibre table (FIBERID,
//! OBJECT/TMASS_STYLE, CATALOGID, RA, DEC, OBJTYPE...; found by its FIBERID column).
//!
//! - One star is selected by APOGEE id (TMASS_STYLE, OBJECT or CATALOGID of the fibre table) or
//!   by fibre; the image row is 300 - FIBERID (`apdithercomb.pro`: "fiberid=1 is at the top of
//!   the detector or index=299"), checked against the fibre table. Only that row of each image is
//!   read.
//! - Every exposure becomes one visit; its three chips (a, b, c: red to blue) are its segments.
//! - Time: JD-MID, else JD(DATE-OBS) + EXPTIME/2 (card `FV_JD` says so).
//! - The files carry no velocity: BC is computed per exposure from the fibre's RA/DEC, the JD and
//!   the site of TELESCOP (or of the file-name prefix: `as` = LCO) with
//!   [`crate::model::barycentric`].
//! - Dither cards (DITHPIX, DITHSH, DITHSLOP, EDITHSH, MEDWSH) are kept as header cards; the
//!   wavelengths already include the dither, so nothing else uses them.
//! - TELLURIC is the selection factor (the flux was divided by it, as in apVisit); a fibre whose
//!   TELLURIC row is all zero (not corrected) gets none.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::apvisit::BAD_ERROR;
use super::error::{LoadError, LoadErrorKind};
use super::fits::{self, HduDesc};
use crate::model::barycentric::{Observatory, barycentric_correction};
use crate::model::{Dataset, Survey, VelocityKind, Visit, VisitArrays, VisitMeta};
use crate::numeric::median;

/// Which fibre of an apCframe to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StarSelector {
    /// The APOGEE id (TMASS_STYLE / OBJECT, e.g. `2M00005143+5615568`) or a CATALOGID.
    Id(String),
    /// A fibre number (FIBERID, 1-300).
    Fiber(i32),
}

impl std::fmt::Display for StarSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(s) => write!(f, "star {s}"),
            Self::Fiber(n) => write!(f, "fibre {n}"),
        }
    }
}

/// Fibres per APOGEE spectrograph: image row = `FIBRES - FIBERID`.
pub const FIBRES: i32 = 300;

/// `(chip, exposure)` from an apCframe file name, if it is one.
#[must_use]
pub fn parse_name(path: &Path) -> Option<(char, u64)> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    let rest = name
        .strip_prefix("apcframe-")
        .or_else(|| name.strip_prefix("ascframe-"))?;
    let (chip, num) = rest.split_once('-')?;
    let num = num.split('.').next()?;
    let chip = match chip {
        "a" | "b" | "c" => chip.chars().next()?,
        _ => return None,
    };
    Some((chip, num.parse().ok()?))
}

/// True if the file name or the HDU structure says apCframe: a FLUX image next to a table with a
/// FIBERID column and one row per image row.
pub(crate) fn looks_like(f: &mut fitsio::FitsFile, path: &Path, hdus: &[HduDesc]) -> bool {
    if parse_name(path).is_some() {
        return true;
    }
    // apVisit files have a visit table too (one row) next to a (3, 4096) FLUX: an apCframe's
    // fibre table has one row per image row.
    let _ = f;
    let rows = find_image(hdus, 1, "FLUX")
        .and_then(HduDesc::image_shape)
        .filter(|s| s.len() == 2)
        .map(|s| s[0]);
    let table_rows = fibre_table(hdus).and_then(HduDesc::table).map(|t| t.1);
    matches!((rows, table_rows), (Some(r), Some(t)) if r == t && r >= 1)
}

fn find_image<'a>(hdus: &'a [HduDesc], index: usize, name: &str) -> Option<&'a HduDesc> {
    hdus.iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .or_else(|| hdus.get(index).filter(|h| h.name.is_empty()))
}

fn fibre_table(hdus: &[HduDesc]) -> Option<&HduDesc> {
    hdus.iter().find(|h| {
        h.table()
            .is_some_and(|(cols, _)| cols.iter().any(|c| c.0.eq_ignore_ascii_case("FIBERID")))
    })
}

/// One fibre-table row.
#[derive(Clone, Debug, Default)]
struct FibreRow {
    fiberid: i32,
    object: String,
    catalogid: String,
    objtype: String,
    ra: Option<f64>,
    dec: Option<f64>,
}

fn text_col(
    f: &mut fitsio::FitsFile,
    path: &Path,
    d: &HduDesc,
    want: &str,
    n: usize,
) -> Result<Vec<String>, LoadError> {
    let Some((cols, _)) = d.table() else {
        return Ok(vec![String::new(); n]);
    };
    let Some((name, typ, _)) = cols.iter().find(|c| c.0.eq_ignore_ascii_case(want)) else {
        return Ok(vec![String::new(); n]);
    };
    use fitsio::tables::ColumnDataType as T;
    let v = if matches!(typ, T::Text | T::String) {
        super::fits_disk::read_str_col(f, &d.hdu, name.as_str(), 0, None)
            .map_err(|e| LoadError::invalid(path, format!("column '{name}' of {}", d.label()), e))?
            .into_iter()
            .map(|s| s.trim().to_owned())
            .collect()
    } else {
        fits::column_f64(f, path, d, name)?
            .into_iter()
            .map(|x| format!("{x:.0}"))
            .collect()
    };
    Ok(v)
}

fn read_fibres(
    f: &mut fitsio::FitsFile,
    path: &Path,
    d: &HduDesc,
) -> Result<Vec<FibreRow>, LoadError> {
    let (cols, _) = d.table().unwrap_or_default();
    let col = |want: &str| {
        cols.iter()
            .find(|c| c.0.eq_ignore_ascii_case(want))
            .map(|c| c.0.clone())
    };
    let Some(fid) = col("FIBERID") else {
        return Err(LoadError::missing(
            path,
            format!("column 'FIBERID' of {}", d.label()),
        ));
    };
    let ids = fits::column_f64(f, path, d, &fid)?;
    let n = ids.len();
    let tmass = text_col(f, path, d, "TMASS_STYLE", n)?;
    let object = text_col(f, path, d, "OBJECT", n)?;
    let catalogid = text_col(f, path, d, "CATALOGID", n)?;
    let objtype = text_col(f, path, d, "OBJTYPE", n)?;
    let num =
        |f: &mut fitsio::FitsFile, c: Option<String>| -> Result<Vec<Option<f64>>, LoadError> {
            match c {
                Some(c) => Ok(fits::column_f64(f, path, d, &c)?
                    .into_iter()
                    .map(|v| v.is_finite().then_some(v))
                    .collect()),
                None => Ok(vec![None; n]),
            }
        };
    let ra = num(f, col("RA"))?;
    let dec = num(f, col("DEC"))?;
    Ok((0..n)
        .map(|i| FibreRow {
            fiberid: if ids[i].is_finite() && ids[i].abs() < 1e6 {
                ids[i] as i32
            } else {
                -1
            },
            object: if tmass[i].is_empty() {
                object[i].clone()
            } else {
                tmass[i].clone()
            },
            catalogid: catalogid[i].clone(),
            objtype: objtype[i].clone(),
            ra: ra[i],
            dec: dec[i].filter(|v| v.abs() <= 90.0),
        })
        .collect())
}

/// One chip of one exposure, the selected fibre only.
#[derive(Clone, Debug)]
struct ChipRow {
    chip: char,
    exposure: u64,
    path: PathBuf,
    wave: Vec<f64>,
    flux: Vec<f64>,
    ivar: Vec<f64>,
    bad: Vec<bool>,
    flags: Vec<u64>,
    telluric: Option<Vec<f64>>,
    fibre: FibreRow,
    image_row: usize,
    jd: Option<f64>,
    jd_from_date: bool,
    site: Option<Observatory>,
    ra_dec: Option<(f64, f64)>,
    cards: Vec<(String, String)>,
}

/// Julian date of an ISO 8601 UTC time `YYYY-MM-DD[THH:MM:SS[.sss]]` (Meeus, Astronomical
/// Algorithms, ch. 7, Gregorian calendar).
#[must_use]
pub fn jd_from_iso(s: &str) -> Option<f64> {
    let s = s.trim();
    let (date, time) = s.split_once(['T', ' ']).unwrap_or((s, "00:00:00"));
    let mut d = date.split('-');
    let y: i64 = d.next()?.parse().ok()?;
    let m: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || !(1000..=9999).contains(&y) {
        return None;
    }
    let mut t = time.trim_end_matches('Z').split(':');
    let hh: f64 = t.next().unwrap_or("0").parse().ok()?;
    let mm: f64 = t.next().unwrap_or("0").parse().ok()?;
    let ss: f64 = t.next().unwrap_or("0").parse().ok()?;
    if !(0.0..24.0).contains(&hh) || !(0.0..60.0).contains(&mm) || !(0.0..61.0).contains(&ss) {
        return None;
    }
    let (y2, m2) = if m <= 2 { (y - 1, m + 12) } else { (y, m) };
    let a = y2.div_euclid(100);
    let b = 2 - a + a.div_euclid(4);
    let jd0 = (365.25 * (y2 + 4716) as f64).floor()
        + (30.6001 * (m2 + 1) as f64).floor()
        + day as f64
        + b as f64
        - 1524.5;
    Some(jd0 + (hh + mm / 60.0 + ss / 3600.0) / 24.0)
}

/// Find the fibre: (image row, fibre-table row).
fn select_row(
    path: &Path,
    fibres: Option<&[FibreRow]>,
    nrows: usize,
    sel: Option<&StarSelector>,
) -> Result<(usize, FibreRow), LoadError> {
    let row_of = |fid: i32| -> Result<usize, LoadError> {
        let r = FIBRES - fid;
        if !(1..=FIBRES).contains(&fid) || (r as usize) >= nrows {
            return Err(LoadError::invalid(
                path,
                "HDU 1 (FLUX)",
                format!(
                    "FIBERID {fid} maps to image row {r} (300 - FIBERID), but the image has {nrows} rows"
                ),
            ));
        }
        Ok(r as usize)
    };
    let table_for = |row: usize, fid: i32| -> Option<FibreRow> {
        let fb = fibres?;
        fb.get(row)
            .filter(|x| x.fiberid == fid)
            .or_else(|| fb.iter().find(|x| x.fiberid == fid))
            .cloned()
    };
    match sel {
        Some(StarSelector::Fiber(fid)) => {
            let row = row_of(*fid)?;
            let fibre = match fibres {
                Some(_) => table_for(row, *fid).ok_or_else(|| {
                    LoadError::invalid(
                        path,
                        "the fibre table",
                        format!("has no row with FIBERID {fid}"),
                    )
                })?,
                None => FibreRow {
                    fiberid: *fid,
                    ..FibreRow::default()
                },
            };
            Ok((row, fibre))
        }
        Some(StarSelector::Id(id)) => {
            let Some(fb) = fibres else {
                return Err(LoadError::missing(
                    path,
                    format!(
                        "the fibre table (a binary table with a FIBERID column, HDU 11) needed to find {id}; select by --fiber instead"
                    ),
                ));
            };
            let want = id.trim();
            let hit = fb.iter().find(|x| {
                x.fiberid > 0
                    && (x.object.eq_ignore_ascii_case(want)
                        || x.object
                            .trim_start_matches("2M")
                            .eq_ignore_ascii_case(want.trim_start_matches("2M"))
                        || (!x.catalogid.is_empty() && x.catalogid == want))
            });
            let Some(hit) = hit else {
                return Err(LoadError::invalid(
                    path,
                    "the fibre table",
                    format!(
                        "has no fibre of {want} (matched against TMASS_STYLE, OBJECT and CATALOGID)"
                    ),
                ));
            };
            Ok((row_of(hit.fiberid)?, hit.clone()))
        }
        None => {
            let Some(fb) = fibres else {
                return Err(LoadError::missing(
                    path,
                    "the fibre table (HDU 11): without it, name the fibre with --fiber N",
                ));
            };
            let targets: Vec<&FibreRow> = fb
                .iter()
                .filter(|x| x.fiberid > 0 && !x.objtype.to_ascii_uppercase().contains("SKY"))
                .collect();
            match targets.as_slice() {
                [one] => Ok((row_of(one.fiberid)?, (*one).clone())),
                [] => Err(LoadError::invalid(
                    path,
                    "the fibre table",
                    "lists no target fibre (all sky or unplugged)",
                )),
                many => {
                    let list: Vec<String> = many
                        .iter()
                        .take(5)
                        .map(|x| format!("{} (fibre {})", x.object, x.fiberid))
                        .collect();
                    Err(LoadError::new(
                        path,
                        LoadErrorKind::Unrecognised(format!(
                            "an apCframe exposure with {} targets: pick one with --star ID or --fiber N (e.g. {})",
                            many.len(),
                            list.join(", ")
                        )),
                    ))
                }
            }
        }
    }
}

fn read_row(
    f: &mut fitsio::FitsFile,
    path: &Path,
    d: &HduDesc,
    row: usize,
    shape: &[usize],
) -> Result<Vec<f64>, LoadError> {
    match d.image_shape() {
        Some(s) if s == shape => {}
        Some(s) => {
            return Err(LoadError::invalid(
                path,
                d.label(),
                format!("has shape {s:?}, FLUX has {shape:?}"),
            ));
        }
        None => return Err(LoadError::invalid(path, d.label(), "is not an image")),
    }
    let v: Vec<f64> = d
        .hdu
        .read_row(f, row)
        .map_err(|e| LoadError::invalid(path, format!("row {row} of {}", d.label()), e))?;
    if v.len() != shape[1] {
        return Err(LoadError::invalid(
            path,
            format!("row {row} of {}", d.label()),
            format!("holds {} values, expected {}", v.len(), shape[1]),
        ));
    }
    Ok(v)
}

const CARDS: &[&str] = &[
    "TELESCOP", "DATE-OBS", "EXPTIME", "JD-MID", "DITHPIX", "DITHSH", "DITHSLOP", "EDITHSH",
    "MEDWSH", "PLATEID", "MJD5",
];

fn read_chip(path: &Path, sel: Option<&StarSelector>) -> Result<ChipRow, LoadError> {
    let mut f = fits::open(path)?;
    let hdus = fits::hdus(&mut f, path)?;
    let (chip, exposure) = parse_name(path).unwrap_or(('?', 0));
    let get = |i: usize, name: &str| {
        find_image(&hdus, i, name).ok_or_else(|| LoadError::missing(path, fits::label(i, name)))
    };
    let dflux = get(1, "FLUX")?;
    let Some(shape) = dflux.image_shape().map(<[usize]>::to_vec) else {
        return Err(LoadError::invalid(path, dflux.label(), "is not an image"));
    };
    let [nrows, npix] = shape[..] else {
        return Err(LoadError::invalid(
            path,
            dflux.label(),
            format!("has shape {shape:?}, expected (fibres, pixels)"),
        ));
    };
    if nrows == 0 || npix < 2 || npix > std::fs::metadata(path).map_or(0, |m| m.len() as usize) {
        return Err(LoadError::invalid(
            path,
            dflux.label(),
            format!("has shape {shape:?}, which this file cannot hold"),
        ));
    }
    let fibres = match fibre_table(&hdus) {
        Some(d) => Some(read_fibres(&mut f, path, d)?),
        None => None,
    };
    let (row, fibre) = select_row(path, fibres.as_deref(), nrows, sel)?;
    let mut cards = Vec::new();
    if let Some(fb) = &fibres
        && fb.get(row).is_some_and(|x| x.fiberid != fibre.fiberid)
    {
        cards.push((
            "FV_ROW".into(),
            format!(
                "fibre-table row {row} has FIBERID {}, not {}; image row {row} = 300 - FIBERID used",
                fb[row].fiberid, fibre.fiberid
            ),
        ));
    }
    let flux = read_row(&mut f, path, dflux, row, &shape)?;
    let err = read_row(&mut f, path, get(2, "ERROR")?, row, &shape)?;
    let maskf = read_row(&mut f, path, get(3, "MASK")?, row, &shape)?;
    let dwave = get(4, "WAVELENGTH")?;
    let wave = read_row(&mut f, path, dwave, row, &shape)?;
    let telluric = match find_image(&hdus, 7, "TELLURIC") {
        Some(d) if d.image_shape() == Some(shape.as_slice()) => {
            let t = read_row(&mut f, path, d, row, &shape)?;
            if t.iter().all(|v| *v == 0.0) {
                cards.push((
                    "FV_TELLURIC".into(),
                    "TELLURIC row is 0: fibre not telluric-corrected, no selection factor".into(),
                ));
                None
            } else {
                Some(t)
            }
        }
        _ => None,
    };
    for (k, &w) in wave.iter().enumerate() {
        if !(w.is_finite() && w > 0.0) {
            return Err(LoadError::invalid(
                path,
                format!("row {row} of {}", dwave.label()),
                format!("pixel {k} holds {w}, expected a positive wavelength"),
            ));
        }
    }
    let mut ivar = Vec::with_capacity(npix);
    let mut bad = Vec::with_capacity(npix);
    for &e in &err {
        let ok = e.is_finite() && e > 0.0 && e < BAD_ERROR;
        ivar.push(if ok { 1.0 / (e * e) } else { 0.0 });
        bad.push(!ok);
    }
    let mut flags = Vec::with_capacity(npix);
    for (k, &m) in maskf.iter().enumerate() {
        if !(m.is_finite() && m.fract() == 0.0 && m.abs() < 4.3e9) {
            return Err(LoadError::invalid(
                path,
                format!("row {row} of HDU 3 (MASK)"),
                format!("pixel {k} holds {m}, expected an integer bitmask"),
            ));
        }
        // int16 images hold bit 15 as a negative number: keep the bit pattern.
        flags.push(if m < 0.0 {
            u64::from(m as i64 as u16)
        } else {
            m as u64
        });
    }
    let prim = &hdus[0].hdu;
    for key in CARDS {
        if let Some(v) = fits::key_string(&mut f, prim, key) {
            cards.push(((*key).to_owned(), v));
        }
    }
    let exptime = fits::key_f64(&mut f, prim, "EXPTIME").filter(|v| v.is_finite() && *v >= 0.0);
    let mut jd = fits::key_f64(&mut f, prim, "JD-MID").filter(|v| v.is_finite() && *v > 2.0e6);
    let mut jd_from_date = false;
    if jd.is_none()
        && let Some(start) =
            fits::key_string(&mut f, prim, "DATE-OBS").and_then(|s| jd_from_iso(&s))
    {
        jd = Some(start + exptime.unwrap_or(0.0) / 2.0 / 86_400.0);
        jd_from_date = true;
    }
    let tel = fits::key_string(&mut f, prim, "TELESCOP");
    let fname = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let site = tel
        .as_deref()
        .and_then(Observatory::from_telescope)
        .or_else(|| {
            if fname.starts_with("as") {
                Some(crate::model::barycentric::LCO)
            } else if fname.starts_with("ap") {
                Some(crate::model::barycentric::APO)
            } else {
                None
            }
        });
    let ra_dec = match (fibre.ra, fibre.dec) {
        (Some(r), Some(d)) => Some((r, d)),
        _ => match (
            fits::key_f64(&mut f, prim, "RA"),
            fits::key_f64(&mut f, prim, "DEC"),
        ) {
            (Some(r), Some(d)) if r.is_finite() && d.is_finite() && d.abs() <= 90.0 => Some((r, d)),
            _ => None,
        },
    };
    Ok(ChipRow {
        chip,
        exposure,
        path: path.to_path_buf(),
        wave,
        flux,
        ivar,
        bad,
        flags,
        telluric,
        fibre,
        image_row: row,
        jd,
        jd_from_date,
        site,
        ra_dec,
        cards,
    })
}

/// Build one visit from the chips of one exposure (sorted a, b, c).
fn exposure_visit(num: u64, mut chips: Vec<ChipRow>) -> Result<Visit, LoadError> {
    chips.sort_by_key(|c| c.chip);
    let Some(first) = chips.first() else {
        return Err(LoadError::missing(Path::new(""), "apCframe chips"));
    };
    let path0 = first.path.clone();
    for c in &chips[1..] {
        if c.fibre.fiberid != first.fibre.fiberid {
            return Err(LoadError::invalid(
                &c.path,
                "the fibre table",
                format!(
                    "the star is on fibre {} here but on fibre {} in {}",
                    c.fibre.fiberid,
                    first.fibre.fiberid,
                    first.path.display()
                ),
            ));
        }
    }
    let mut meta = VisitMeta {
        name: format!("exp {num:08}"),
        source: Some(path0.clone()),
        object: (!first.fibre.object.is_empty()).then(|| first.fibre.object.clone()),
        jd: first.jd,
        ..VisitMeta::default()
    };
    meta.header.push(("EXPOSURE".into(), format!("{num}")));
    meta.header.push((
        "CHIPS".into(),
        chips
            .iter()
            .map(|c| c.chip.to_string())
            .collect::<Vec<_>>()
            .join(","),
    ));
    meta.header
        .push(("FIBERID".into(), first.fibre.fiberid.to_string()));
    meta.header.push((
        "FV_ROW".into(),
        format!("image row {} (300 - FIBERID)", first.image_row),
    ));
    if !first.fibre.catalogid.is_empty() {
        meta.header
            .push(("CATALOGID".into(), first.fibre.catalogid.clone()));
    }
    for (k, v) in &first.cards {
        meta.header.push((k.clone(), v.clone()));
    }
    if first.jd_from_date {
        meta.header.push((
            "FV_JD".into(),
            "no JD-MID card: JD(DATE-OBS) + EXPTIME/2".into(),
        ));
    }
    let mut missing = Vec::new();
    match (first.ra_dec, first.jd, first.site) {
        (Some((ra, dec)), Some(jd), Some(site)) => {
            let bc = barycentric_correction(ra, dec, jd, &site);
            meta.set_velocity(VelocityKind::Bc, bc);
            meta.header.push((
                "FV_BC".into(),
                format!("computed from RA, DEC, JD at {}: {bc:.4} km/s", site.name),
            ));
        }
        (rd, jd, site) => {
            if rd.is_none() {
                missing.push("RA/DEC");
            }
            if jd.is_none() {
                missing.push("JD-MID and DATE-OBS");
            }
            if site.is_none() {
                missing.push("TELESCOP");
            }
        }
    }
    if !missing.is_empty() {
        meta.header.push(("FV_MISSING".into(), missing.join(", ")));
    }
    let mut a = VisitArrays {
        flux_divided_by_selection: true,
        ..VisitArrays::default()
    };
    let any_tell = chips.iter().any(|c| c.telluric.is_some());
    let mut sel = Vec::new();
    for c in &chips {
        let start = a.wavelength_aa.len();
        a.wavelength_aa.extend(&c.wave);
        a.flux.extend(&c.flux);
        a.ivar.extend(&c.ivar);
        a.bad.extend(&c.bad);
        a.flags.extend(&c.flags);
        match &c.telluric {
            Some(t) => sel.extend(t),
            None => sel.extend(std::iter::repeat_n(1.0, c.wave.len())),
        }
        a.segments.push(start..a.wavelength_aa.len());
    }
    if any_tell {
        a.selection = Some(sel);
    } else {
        a.flux_divided_by_selection = false;
    }
    let snr: Vec<f64> = a
        .flux
        .iter()
        .zip(&a.ivar)
        .filter(|(f, iv)| f.is_finite() && **iv > 0.0)
        .map(|(f, iv)| f * iv.sqrt())
        .collect();
    meta.snr = median(snr);
    meta.header.push((
        "SNR_SOURCE".into(),
        "median flux*sqrt(ivar) over good pixels (computed by frizzview)".into(),
    ));
    Visit::new(meta, a).map_err(|e| LoadError::invalid(&path0, "HDU 4 (WAVELENGTH)", e))
}

/// Read the selected star from apCframe files (any order; grouped by exposure number, chips a, b,
/// c). Without a selector the file must hold exactly one target fibre.
pub fn read_exposures(files: &[PathBuf], sel: Option<&StarSelector>) -> Result<Dataset, LoadError> {
    let Some(first) = files.first() else {
        return Err(LoadError::new(
            Path::new(""),
            LoadErrorKind::Unrecognised("no apCframe file given".into()),
        ));
    };
    let mut groups: Vec<(u64, Vec<ChipRow>)> = Vec::new();
    let mut seen: Vec<(char, u64, PathBuf)> = Vec::new();
    for p in files {
        let c = fits::guard(p, || read_chip(p, sel))?;
        if let Some((_, _, prev)) = seen
            .iter()
            .find(|(ch, n, _)| *ch == c.chip && *n == c.exposure && c.chip != '?')
        {
            return Err(LoadError::invalid(
                p,
                "the file name",
                format!(
                    "chip {} of exposure {} is also in {}",
                    c.chip,
                    c.exposure,
                    prev.display()
                ),
            ));
        }
        seen.push((c.chip, c.exposure, p.clone()));
        // Files without the standard name are exposures of their own.
        let key = if c.chip == '?' {
            u64::MAX - seen.len() as u64
        } else {
            c.exposure
        };
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.1.push(c),
            None => groups.push((key, vec![c])),
        }
    }
    groups.sort_by_key(|g| g.0);
    let mut visits = Vec::with_capacity(groups.len());
    for (num, chips) in groups {
        let num = chips.first().map_or(num, |c| c.exposure);
        visits.push(Arc::new(exposure_visit(num, chips)?));
    }
    let name = visits
        .iter()
        .find_map(|v| v.meta.object.clone())
        .unwrap_or_else(|| {
            first
                .file_stem()
                .map_or_else(|| "apCframe".into(), |s| s.to_string_lossy().into_owned())
        });
    Ok(Dataset {
        name,
        visits,
        input_grid: None,
        truth: None,
        pipeline_coadd: None,
        survey: Survey::Apogee,
        load_warnings: Vec::new(),
    })
}

/// What an apVisit says about the exposures behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VisitFrames {
    /// Exposure numbers (`FRAME1..n`).
    pub frames: Vec<u64>,
    /// OBJID (the APOGEE id).
    pub object: Option<String>,
    /// FIBERID.
    pub fiberid: Option<i32>,
}

/// The exposures an apVisit was made from (its `FRAME1..n` cards), its OBJID and FIBERID.
pub fn apvisit_frames(path: &Path) -> Result<VisitFrames, LoadError> {
    fits::guard(path, || {
        let mut f = fits::open(path)?;
        let prim = f
            .primary_hdu()
            .map_err(|e| LoadError::invalid(path, "HDU 0", e))?;
        let mut frames = Vec::new();
        for i in 1..=999 {
            match fits::key_f64(&mut f, &prim, &format!("FRAME{i}")) {
                Some(v) if v.is_finite() && v >= 0.0 && v.fract() == 0.0 => frames.push(v as u64),
                Some(v) => {
                    return Err(LoadError::invalid(
                        path,
                        format!("card FRAME{i} of HDU 0"),
                        format!("holds {v}, expected an exposure number"),
                    ));
                }
                None => break,
            }
        }
        if frames.is_empty() {
            return Err(LoadError::missing(
                path,
                "card FRAME1 of HDU 0 (the exposures behind the visit)",
            ));
        }
        let obj = fits::key_string(&mut f, &prim, "OBJID").filter(|s| !s.is_empty());
        let fib = fits::key_f64(&mut f, &prim, "FIBERID")
            .filter(|v| v.is_finite() && (1.0..=300.0).contains(v))
            .map(|v| v as i32);
        Ok(VisitFrames {
            frames,
            object: obj,
            fiberid: fib,
        })
    })
}

/// The apCframe files in `dir` of the given exposures: every chip (a, b, c) found, by exposure.
pub fn files_for_frames(
    dir: &Path,
    frames: &[u64],
    context: &Path,
) -> Result<Vec<PathBuf>, LoadError> {
    let rd = std::fs::read_dir(dir).map_err(|e| LoadError::io(dir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let p = entry.map_err(|e| LoadError::io(dir, e))?.path();
        if let Some((_, n)) = parse_name(&p)
            && frames.contains(&n)
        {
            out.push(p);
        }
    }
    out.sort();
    let missing: Vec<String> = frames
        .iter()
        .filter(|n| {
            !out.iter()
                .any(|p| parse_name(p).is_some_and(|(_, m)| m == **n))
        })
        .map(|n| format!("{n:08}"))
        .collect();
    if !missing.is_empty() {
        return Err(LoadError::missing(
            context,
            format!(
                "the apCframe files of exposure(s) {} in {} (named apCframe-{{a,b,c}}-NNNNNNNN.fits)",
                missing.join(", "),
                dir.display()
            ),
        ));
    }
    Ok(out)
}

/// The raw exposures behind an apVisit: its FRAMEn exposures, read from `dir`, for its own star
/// (OBJID; FIBERID when no id is given) unless `sel` names another.
pub fn read_behind_visit(
    apvisit: &Path,
    dir: &Path,
    sel: Option<&StarSelector>,
) -> Result<Dataset, LoadError> {
    let VisitFrames {
        frames,
        object: obj,
        fiberid: fib,
    } = apvisit_frames(apvisit)?;
    let files = files_for_frames(dir, &frames, apvisit)?;
    let own = match (obj, fib) {
        (Some(o), _) => Some(StarSelector::Id(o)),
        (None, Some(n)) => Some(StarSelector::Fiber(n)),
        _ => None,
    };
    let sel = sel.cloned().or(own);
    let mut d = read_exposures(&files, sel.as_ref())?;
    let stem = apvisit
        .file_name()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let visits = d
        .visits
        .iter()
        .map(|v| {
            let mut m = v.meta.clone();
            m.header.push(("APVISIT".into(), stem.clone()));
            Arc::new(v.with_meta(m))
        })
        .collect();
    d.visits = visits;
    Ok(d)
}
