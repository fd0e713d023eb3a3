//! APOGEE apStar / asStar files (DR13, DR17 and DR19 layouts).
//!
//! Layout (`sdss/apogee_drp` `python/apogee_drp/utils/apspec.py` `ApSpec.write`,
//! `pro/apogeereduce/apstar_output.pro`): HDU1 FLUX, 2 ERROR, 3 MASK, 4/5 SKY and error, 6/7
//! TELLURIC and error, each `(NVISITS + 2, 8575)` (one or two rows when NVISITS = 1: the data
//! model documents one, real DR17 files have two, both coadds) on the log-linear grid
//! `log10 lambda = CRVAL1 + CDELT1 (i + 1 - CRPIX1)` of HDU1. Row 0 is the pipeline's
//! pixel-weighted coadd, row 1 the "global"-weighted one, and rows 2.. the visits **resampled** to
//! the rest frame with a damped sinc (`apred/rv.py` `visitcomb`), so they are not native pixels.
//! SDSS-V files name the HDUs (EXTNAME); older ones are read by index.
//!
//! Two uses:
//! - [`read_alone`]: an apStar on its own. Rows 2.. become visits for inspection (rest frame, no
//!   shift), each flagged with the card [`RESAMPLED_CARD`] so that every combination warns that
//!   they are not native pixels; row 0 is the reference curve ([`Dataset::pipeline_coadd`]).
//! - [`read_companion`]: an apStar given beside its apVisit files. It adds no visits: it supplies
//!   the per-visit velocities ([`crate::io::survey::survey_rv::apstar_velocities`]) and row 0 as the reference.

use std::path::Path;
use std::sync::Arc;

use super::apogee::{BAD_ERROR, named_hdu};
use crate::io::error::LoadError;
use crate::io::fits::{self, HduDesc};
use crate::io::reader::{CompanionTable, FitsFormat, Format};
use crate::io::survey::survey_rv::{self, VelocityTable};
use crate::model::{Dataset, Spectrum, Survey, Visit, VisitArrays, VisitMeta};

pub use crate::model::RESAMPLED_CARD;

/// The rest-frame grid (ln Angstrom) of HDU1's WCS cards.
fn grid(
    f: &mut fitsio::FitsFile,
    path: &Path,
    d: &HduDesc,
    npix: usize,
) -> Result<Vec<f64>, LoadError> {
    let card = |f: &mut fitsio::FitsFile, k: &str| {
        fits::key_f64(f, &d.hdu, k)
            .filter(|v| v.is_finite())
            .ok_or_else(|| LoadError::missing(path, format!("card {k} of {}", d.label())))
    };
    let crval = card(f, "CRVAL1")?;
    let cdelt = card(f, "CDELT1")?;
    let crpix = fits::key_f64(f, &d.hdu, "CRPIX1")
        .filter(|v| v.is_finite())
        .unwrap_or(1.0);
    if !(cdelt > 0.0 && cdelt < 0.1 && (0.0..10.0).contains(&crval)) {
        return Err(LoadError::invalid(
            path,
            format!("cards CRVAL1/CDELT1 of {}", d.label()),
            format!("CRVAL1 = {crval}, CDELT1 = {cdelt}: expected a log10 Angstrom grid"),
        ));
    }
    let ln10 = std::f64::consts::LN_10;
    Ok((0..npix)
        .map(|i| (crval + cdelt * (i as f64 + 1.0 - crpix)) * ln10)
        .collect())
}

/// The FLUX, ERROR and MASK images with their shape (rows, pixels).
struct Images {
    rows: usize,
    npix: usize,
    flux: Vec<f64>,
    err: Vec<f64>,
    mask: Vec<f64>,
    ln_wave: Vec<f64>,
}

fn images(f: &mut fitsio::FitsFile, path: &Path, hdus: &[HduDesc]) -> Result<Images, LoadError> {
    let get = |name: &str, i: usize| {
        named_hdu(hdus, name, i).ok_or_else(|| LoadError::missing(path, fits::label(i, name)))
    };
    let (d1, d2, d3) = (get("FLUX", 1)?, get("ERROR", 2)?, get("MASK", 3)?);
    let (shape, flux) = fits::image_f64(f, path, d1)?;
    let (rows, npix) = match shape[..] {
        [r, n] => (r, n),
        [n] => (1, n),
        _ => {
            return Err(LoadError::invalid(
                path,
                d1.label(),
                format!("has shape {shape:?}, expected (rows, pixels)"),
            ));
        }
    };
    let (s2, err) = fits::image_f64(f, path, d2)?;
    let (s3, mask) = fits::image_f64(f, path, d3)?;
    for (d, s) in [(d2, &s2), (d3, &s3)] {
        if *s != shape {
            return Err(LoadError::invalid(
                path,
                d.label(),
                format!("has shape {s:?}, FLUX has {shape:?}"),
            ));
        }
    }
    let ln_wave = grid(f, path, d1, npix)?;
    Ok(Images {
        rows,
        npix,
        flux,
        err,
        mask,
        ln_wave,
    })
}

/// One row's flux, ivar, flags and bad-pixel flags.
type Row = (Vec<f64>, Vec<f64>, Vec<u64>, Vec<bool>);

/// Row `r`; error >= 1e10, <= 0 or non-finite is bad.
fn row(im: &Images, path: &Path, r: usize) -> Result<Row, LoadError> {
    let s = r * im.npix..(r + 1) * im.npix;
    let flux = im.flux[s.clone()].to_vec();
    let mut ivar = Vec::with_capacity(im.npix);
    let mut bad = Vec::with_capacity(im.npix);
    for &e in &im.err[s.clone()] {
        let ok = e.is_finite() && e > 0.0 && e < BAD_ERROR;
        ivar.push(if ok { 1.0 / (e * e) } else { 0.0 });
        bad.push(!ok);
    }
    let mut flags = Vec::with_capacity(im.npix);
    for (i, &m) in im.mask[s].iter().enumerate() {
        if !(m.is_finite() && m.fract() == 0.0) {
            return Err(LoadError::invalid(
                path,
                "HDU 3 (MASK)",
                format!("row {r} pixel {i} holds {m}, expected an integer bitmask"),
            ));
        }
        // 16-bit masks keep their bit pattern when stored signed.
        flags.push(u64::from(m as i64 as u16));
    }
    Ok((flux, ivar, flags, bad))
}

fn coadd(im: &Images, path: &Path, name: &str) -> Result<Spectrum, LoadError> {
    let (flux, ivar, _, _) = row(im, path, 0)?;
    Ok(Spectrum {
        label: format!("{name} row 0 (pipeline coadd)"),
        ln_wave: im.ln_wave.clone(),
        flux,
        ivar,
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| "apStar".into(), |s| s.to_string_lossy().into_owned())
}

/// What an apStar beside its visits supplies.
#[derive(Clone, Debug)]
pub struct Companion {
    /// Per-visit velocities from the header.
    pub velocities: VelocityTable,
    /// Row 0, the pipeline's coadd.
    pub coadd: Spectrum,
}

/// Read an apStar given with its visits: velocities and the coadd.
pub fn read_companion(path: &Path) -> Result<Companion, LoadError> {
    fits::guard(path, || {
        let mut f = fits::open(path)?;
        let hdus = fits::hdus(&mut f, path)?;
        let velocities = survey_rv::apstar_velocities(&mut f, path, &hdus)?;
        let im = images(&mut f, path, &hdus)?;
        Ok(Companion {
            velocities,
            coadd: coadd(&im, path, &file_name(path))?,
        })
    })
}

/// Read an apStar on its own: its resampled visits (rows 2..; row 0 when NVISITS = 1, whether the
/// file has one row or, as real DR17 files do, two)
/// for inspection, flagged as resampled, with row 0 as the reference curve.
pub fn read_alone(path: &Path) -> Result<Dataset, LoadError> {
    fits::guard(path, || {
        let mut f = fits::open(path)?;
        let hdus = fits::hdus(&mut f, path)?;
        let vt = survey_rv::apstar_velocities(&mut f, path, &hdus)?;
        let im = images(&mut f, path, &hdus)?;
        let n = vt.rows.len();
        if n == 0 {
            return Err(LoadError::invalid(
                path,
                "card NVISITS of HDU 0",
                "is 0: the file holds no visit",
            ));
        }
        // NVISITS = 1: one row in the documented layout, two (the two coadds, no separate visit
        // row) in real DR17 files such as apStar-dr17-2M19485057+5005279.fits.
        let ok = if n == 1 {
            matches!(im.rows, 1 | 2)
        } else {
            im.rows == n + 2
        };
        if !ok {
            let expect = if n == 1 {
                "1 or 2".to_owned()
            } else {
                (n + 2).to_string()
            };
            return Err(LoadError::invalid(
                path,
                "HDU 1 (FLUX)",
                format!(
                    "has {} rows, but NVISITS = {n} means {expect} (coadds, then one per visit)",
                    im.rows
                ),
            ));
        }
        let prim = &hdus[0].hdu;
        let object = fits::key_string(&mut f, prim, "OBJID").filter(|s| !s.is_empty());
        let fname = file_name(path);
        let mut visits = Vec::with_capacity(n);
        for (k, vv) in vt.rows.iter().enumerate() {
            let r = if n <= 1 { 0 } else { k + 2 };
            let (flux, ivar, flags, bad) = row(&im, path, r)?;
            let i = k + 1;
            let mut meta = VisitMeta {
                name: format!(
                    "{} (apStar row {r})",
                    crate::io::survey::apogee_names::stem(&vv.file)
                ),
                source: Some(path.to_path_buf()),
                object: object.clone(),
                jd: fits::key_f64(&mut f, prim, &format!("JD{i}")),
                snr: fits::key_f64(&mut f, prim, &format!("SNRVIS{i}")),
                identity: vv.identity.clone(),
                ..VisitMeta::default()
            };
            meta.header.push((
                RESAMPLED_CARD.into(),
                format!(
                    "row {r} of {fname}: visit {} resampled by the pipeline to the rest frame \
                     (shifted by {} = {:.3} km/s)",
                    vv.file, vv.from, vv.vrel_kms
                ),
            ));
            meta.header.push(("SFILE".into(), vv.file.clone()));
            let wavelength_aa = im.ln_wave.iter().map(|x| x.exp()).collect();
            let v = Visit::new(
                meta,
                VisitArrays {
                    wavelength_aa,
                    flux,
                    ivar,
                    flags,
                    bad,
                    ..VisitArrays::default()
                },
            )
            .map_err(|e| LoadError::invalid(path, "HDU 1 (FLUX)", e))?;
            visits.push(Arc::new(v));
        }
        Ok(Dataset {
            name: object.unwrap_or_else(|| fname.clone()),
            visits,
            input_grid: None,
            truth: None,
            pipeline_coadd: Some(coadd(&im, path, &fname)?),
            survey: Survey::Apogee,
            load_warnings: Vec::new(),
        })
    })
}

/// The apStar reader: alone, its resampled visits; beside apVisit files, a companion (their
/// velocities and the pipeline's coadd).
pub(crate) static READER: FitsFormat = FitsFormat {
    format: Format::ApStar,
    looks_like: |f, path, hdus| {
        super::apvisit::classify(f, path, hdus) == super::apvisit::ApogeeKind::Star
    },
    read: read_alone,
    companion: Some(|path| {
        let c = read_companion(path)?;
        Ok(CompanionTable {
            velocities: c.velocities,
            coadd: Some(c.coadd),
        })
    }),
};
