//! astra mwmVisit reader (`sdss/astra` `python/astra/products/mwm.py`; SDSS DR19 data model
//! `mwmVisit`).
//!
//! HDU0 holds source information; HDU1 `BOSS/APO`, 2 `BOSS/LCO`, 3 `APOGEE/APO`, 4 `APOGEE/LCO`
//! are binary tables with one row per visit (empty HDUs are normal) and the common grid in the
//! cards CRVAL/CDELT (log10 Angstrom, pixel 0 at CRVAL: CRPIX = 1), the number of pixels in
//! NPIXELS or the length of the `flux` vector. Columns used: `flux`, `ivar`, `pixel_flags`,
//! `in_stack`, `v_rel`, `v_rad`, `bc`, `snr`, `mjd`, `jd`, `telescope`, `release`.
//!
//! Every row is a visit the pipeline has already resampled (a sinc interpolation onto the common
//! grid), so every visit is flagged [`crate::model::VisitMeta::resampled`]. Its frame depends on
//! `in_stack`: rows in the stack are in the star's rest frame (stored `Vrel = 0`: no shift); the
//! others were resampled with v = 0, so APOGEE rows are in the observed frame (`Vrel = v_rel`, the
//! topocentric velocity, and `Bc = bc`) and BOSS rows, whose wavelengths are barycentric already,
//! get `Vrel = v_rad`. The original velocities are kept as header cards.

use std::path::Path;
use std::sync::Arc;

use fitsio::tables::ColumnDataType;

use crate::io::error::LoadError;
use crate::io::fits::{self, HduDesc};
use crate::io::reader::{FitsFormat, Format};
use crate::model::{Dataset, Survey, VelocityKind, Visit, VisitArrays, VisitMeta};

/// The HDU names of an mwmVisit file, in file order.
pub const HDU_NAMES: [&str; 4] = ["BOSS/APO", "BOSS/LCO", "APOGEE/APO", "APOGEE/LCO"];

/// True if the file has at least one of the mwmVisit HDUs.
pub(crate) fn looks_like(hdus: &[HduDesc]) -> bool {
    hdus.iter()
        .any(|h| HDU_NAMES.iter().any(|n| h.name.eq_ignore_ascii_case(n)))
}

/// One visit's velocities as stored in an mwmVisit (km/s; NaN where absent).
#[derive(Clone, Debug, PartialEq)]
pub struct MwmVelocity {
    /// The HDU, e.g. "APOGEE/APO".
    pub hdu: String,
    /// Row in that HDU (0-based).
    pub row: usize,
    /// `telescope` ("apo25m", "lco25m"...).
    pub telescope: String,
    /// `release` ("dr19", "dr17"); empty when absent.
    pub release: String,
    /// `mjd`.
    pub mjd: f64,
    /// `jd`.
    pub jd: f64,
    /// `v_rel`: topocentric (relative to the observer).
    pub v_rel: f64,
    /// `e_v_rel`.
    pub e_v_rel: f64,
    /// `v_rad`: barycentric.
    pub v_rad: f64,
    /// `bc`: barycentric correction.
    pub bc: f64,
    /// `in_stack`.
    pub in_stack: bool,
}

fn scalar(
    f: &mut fitsio::FitsFile,
    path: &Path,
    d: &HduDesc,
    want: &str,
    n: usize,
) -> Result<Vec<f64>, LoadError> {
    match d.column_name(want) {
        Some(c) => {
            let typ = d
                .table()
                .and_then(|(cols, _)| cols.into_iter().find(|x| x.0 == c).map(|x| x.1));
            if typ == Some(ColumnDataType::Logical) {
                let v: Vec<bool> = d.hdu.read_col(f, c.as_str()).map_err(|e| {
                    LoadError::invalid(path, format!("column '{c}' of {}", d.label()), e)
                })?;
                return Ok(v.into_iter().map(|b| if b { 1.0 } else { 0.0 }).collect());
            }
            fits::column_f64(f, path, d, &c)
        }
        None => Ok(vec![f64::NAN; n]),
    }
}

fn text(
    f: &mut fitsio::FitsFile,
    path: &Path,
    d: &HduDesc,
    want: &str,
    n: usize,
) -> Result<Vec<String>, LoadError> {
    match d.column_name(want) {
        Some(c) => fits::column_text(f, path, d, &c),
        None => Ok(vec![String::new(); n]),
    }
}

fn rows_of(path: &Path, d: &HduDesc) -> Result<usize, LoadError> {
    let (_, rows) = d.table().unwrap_or_default();
    let len = std::fs::metadata(path).map_or(0, |m| m.len() as usize);
    if rows > len {
        return Err(LoadError::invalid(
            path,
            d.label(),
            format!("declares {rows} rows, more than the file can hold"),
        ));
    }
    Ok(rows)
}

fn velocities_of(
    f: &mut fitsio::FitsFile,
    path: &Path,
    d: &HduDesc,
) -> Result<Vec<MwmVelocity>, LoadError> {
    let n = rows_of(path, d)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    let tel = text(f, path, d, "telescope", n)?;
    let rel = text(f, path, d, "release", n)?;
    let mjd = scalar(f, path, d, "mjd", n)?;
    let jd = scalar(f, path, d, "jd", n)?;
    let v_rel = scalar(f, path, d, "v_rel", n)?;
    let e_v_rel = scalar(f, path, d, "e_v_rel", n)?;
    let v_rad = scalar(f, path, d, "v_rad", n)?;
    let bc = scalar(f, path, d, "bc", n)?;
    let st = scalar(f, path, d, "in_stack", n)?;
    let get = |v: &[f64], i: usize| v.get(i).copied().unwrap_or(f64::NAN);
    Ok((0..n)
        .map(|i| MwmVelocity {
            hdu: d.name.clone(),
            row: i,
            telescope: tel.get(i).cloned().unwrap_or_default(),
            release: rel.get(i).cloned().unwrap_or_default(),
            mjd: get(&mjd, i),
            jd: get(&jd, i),
            v_rel: get(&v_rel, i),
            e_v_rel: get(&e_v_rel, i),
            v_rad: get(&v_rad, i),
            bc: get(&bc, i),
            in_stack: get(&st, i) > 0.5,
        })
        .collect())
}

/// Every visit's velocities in an mwmVisit file, HDU by HDU (a velocity source for apVisit files:
/// match by `mjd`/`jd` and `telescope`).
pub fn visit_velocities(path: &Path) -> Result<Vec<MwmVelocity>, LoadError> {
    fits::guard(path, || {
        let mut f = fits::open(path)?;
        let hdus = fits::hdus(&mut f, path)?;
        if !looks_like(&hdus) {
            return Err(LoadError::missing(
                path,
                "the mwmVisit HDUs (BOSS/APO, BOSS/LCO, APOGEE/APO, APOGEE/LCO)",
            ));
        }
        let mut out = Vec::new();
        for d in hdus
            .iter()
            .filter(|h| HDU_NAMES.iter().any(|n| h.name.eq_ignore_ascii_case(n)))
        {
            out.extend(velocities_of(&mut f, path, d)?);
        }
        Ok(out)
    })
}

/// Read an mwmVisit file: every row of every non-empty HDU as a resampled visit.
pub fn read(path: &Path) -> Result<Dataset, LoadError> {
    fits::guard(path, || read_inner(path))
}

fn vector_row(
    f: &mut fitsio::FitsFile,
    path: &Path,
    d: &HduDesc,
    col: &str,
    row: usize,
    npix: usize,
) -> Result<Vec<f64>, LoadError> {
    let what = || format!("column '{col}' of {}", d.label());
    let Some((_, _, repeat)) = d
        .table()
        .and_then(|(cols, _)| cols.into_iter().find(|c| c.0 == col))
    else {
        return Err(LoadError::missing(path, what()));
    };
    if repeat != npix {
        return Err(LoadError::invalid(
            path,
            what(),
            format!("has {repeat} values per row, the grid has {npix} pixels"),
        ));
    }
    d.hdu
        .read_col_range::<f64>(f, col, &(row..row + 1))
        .map_err(|e| LoadError::invalid(path, format!("row {row} of {}", what()), e))
}

fn read_inner(path: &Path) -> Result<Dataset, LoadError> {
    let mut f = fits::open(path)?;
    let hdus = fits::hdus(&mut f, path)?;
    let prim = &hdus[0].hdu;
    let sdss_id = fits::key_string(&mut f, prim, "SDSS_ID").filter(|s| !s.is_empty());
    let object = sdss_id.as_ref().map(|s| format!("sdss_id {s}"));
    let file_len = std::fs::metadata(path).map_or(0, |m| m.len() as usize);
    let mut visits = Vec::new();
    let (mut apogee, mut boss) = (false, false);
    for d in hdus
        .iter()
        .filter(|h| HDU_NAMES.iter().any(|n| h.name.eq_ignore_ascii_case(n)))
    {
        let vel = velocities_of(&mut f, path, d)?;
        if vel.is_empty() {
            continue;
        }
        let is_apogee = d.name.to_ascii_uppercase().starts_with("APOGEE");
        let mut card = |k: &str| fits::key_f64(&mut f, &d.hdu, k);
        let (Some(crval), Some(cdelt)) = (card("CRVAL"), card("CDELT")) else {
            return Err(LoadError::missing(
                path,
                format!(
                    "cards CRVAL and CDELT (the wavelength grid) of {}",
                    d.label()
                ),
            ));
        };
        let Some(flux_col) = d.column_name("flux") else {
            return Err(LoadError::missing(
                path,
                format!("column 'flux' of {}", d.label()),
            ));
        };
        let Some(ivar_col) = d.column_name("ivar") else {
            return Err(LoadError::missing(
                path,
                format!("column 'ivar' of {}", d.label()),
            ));
        };
        let repeat = d
            .table()
            .and_then(|(cols, _)| cols.into_iter().find(|c| c.0 == flux_col).map(|c| c.2))
            .unwrap_or(0);
        let npix = card("NPIXELS")
            .filter(|v| v.is_finite() && *v >= 1.0)
            .map_or(repeat, |v| v as usize);
        if !(crval.is_finite() && cdelt.is_finite() && cdelt > 0.0) || npix < 2 || npix > file_len {
            return Err(LoadError::invalid(
                path,
                format!("the grid cards of {}", d.label()),
                format!("CRVAL {crval}, CDELT {cdelt}, {npix} pixels do not make a grid"),
            ));
        }
        let wave: Vec<f64> = (0..npix)
            .map(|i| 10f64.powf(crval + cdelt * i as f64))
            .collect();
        let flags_col = d.column_name("pixel_flags");
        let snr = scalar(&mut f, path, d, "snr", vel.len())?;
        // What identifies each APOGEE visit (to match it with other files of the same visits).
        let (plates, fibers) = if is_apogee {
            (
                crate::io::survey::allvisit::text_column(&mut f, path, d, "plate")?,
                crate::io::survey::allvisit::text_column(&mut f, path, d, "fiber")?,
            )
        } else {
            (None, None)
        };
        for v in &vel {
            let flux = vector_row(&mut f, path, d, &flux_col, v.row, npix)?;
            let ivar = vector_row(&mut f, path, d, &ivar_col, v.row, npix)?;
            let flags = match &flags_col {
                Some(c) => vector_row(&mut f, path, d, c, v.row, npix)?
                    .into_iter()
                    .map(|x| {
                        if x.is_finite() && x > 0.0 {
                            x as u64
                        } else {
                            0
                        }
                    })
                    .collect(),
                None => Vec::new(),
            };
            let mut meta = VisitMeta {
                name: format!("{} row {} (MJD {:.0})", d.name, v.row, v.mjd),
                source: Some(path.to_path_buf()),
                object: object.clone(),
                jd: v.jd.is_finite().then_some(v.jd),
                snr: snr.get(v.row).copied().filter(|s| s.is_finite()),
                resampled: true,
                ..VisitMeta::default()
            };
            if is_apogee {
                let at = |c: &Option<Vec<String>>| c.as_ref().and_then(|c| c.get(v.row)).cloned();
                let whole = |x: f64| {
                    (x.is_finite() && x > 0.0 && x.fract() == 0.0 && x <= f64::from(u32::MAX))
                        .then_some(x as u32)
                };
                let site = if d.name.to_ascii_uppercase().ends_with("/LCO") {
                    "lco25m"
                } else {
                    "apo25m"
                };
                let tel = Some(v.telescope.as_str()).filter(|t| !t.is_empty());
                let id = crate::model::VisitIdentity::new(
                    tel.or(Some(site)),
                    None,
                    at(&plates).as_deref(),
                    whole(v.mjd),
                    at(&fibers)
                        .and_then(|s| s.parse::<f64>().ok())
                        .and_then(whole),
                );
                meta.identity = Some(id);
            }
            for (k, x) in [("V_REL", v.v_rel), ("V_RAD", v.v_rad), ("BC", v.bc)] {
                if x.is_finite() {
                    meta.header.push((k.into(), format!("{x}")));
                }
            }
            meta.header.push(("TELESCOPE".into(), v.telescope.clone()));
            if !v.release.is_empty() {
                meta.header.push(("RELEASE".into(), v.release.clone()));
            }
            meta.header
                .push(("IN_STACK".into(), v.in_stack.to_string()));
            if v.in_stack {
                meta.set_velocity(VelocityKind::Vrel, 0.0);
                meta.header.push((
                    "FV_FRAME".into(),
                    "in_stack: resampled to the rest frame by the pipeline, no shift".into(),
                ));
            } else if is_apogee {
                if v.v_rel.is_finite() {
                    meta.set_velocity(VelocityKind::Vrel, v.v_rel);
                }
                if v.bc.is_finite() {
                    meta.set_velocity(VelocityKind::Bc, v.bc);
                }
                meta.header.push((
                    "FV_FRAME".into(),
                    "not in_stack: resampled with v = 0 (observed frame), shifted by v_rel".into(),
                ));
            } else {
                if v.v_rad.is_finite() {
                    meta.set_velocity(VelocityKind::Vrel, v.v_rad);
                }
                meta.header.push((
                    "FV_FRAME".into(),
                    "not in_stack: BOSS wavelengths are barycentric, shifted by v_rad".into(),
                ));
            }
            meta.header.push((
                "FV_RESAMPLED".into(),
                "already resampled by the pipeline: not native pixels".into(),
            ));
            let visit = Visit::new(
                meta,
                VisitArrays {
                    wavelength_aa: wave.clone(),
                    flux,
                    ivar,
                    flags,
                    segments: Vec::new(),
                    ..VisitArrays::default()
                },
            )
            .map_err(|e| LoadError::invalid(path, format!("row {} of {}", v.row, d.label()), e))?;
            visits.push(Arc::new(visit));
            if is_apogee {
                apogee = true;
            } else {
                boss = true;
            }
        }
    }
    if visits.is_empty() {
        return Err(LoadError::missing(
            path,
            "a visit row: every mwmVisit HDU (BOSS/APO, BOSS/LCO, APOGEE/APO, APOGEE/LCO) is empty",
        ));
    }
    let survey = match (apogee, boss) {
        (true, false) => Survey::Apogee,
        (false, true) => Survey::Boss,
        _ => Survey::Generic,
    };
    Ok(Dataset {
        name: object.unwrap_or_else(|| {
            path.file_stem()
                .map_or_else(|| "mwmVisit".into(), |s| s.to_string_lossy().into_owned())
        }),
        visits,
        input_grid: None,
        truth: None,
        pipeline_coadd: None,
        survey,
        load_warnings: Vec::new(),
    })
}

/// The astra mwmVisit reader, by its HDU structure.
pub(crate) static READER: FitsFormat = FitsFormat {
    format: Format::MwmVisit,
    looks_like: |_, _, hdus| looks_like(hdus),
    read,
    companion: None,
};
