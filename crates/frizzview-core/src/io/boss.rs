//! BOSS spec file reader (SDSS data model
//! https://data.sdss.org/datamodel/files/BOSS_SPECTRO_REDUX/RUN2D/spectra/PLATE4/spec.html;
//! astropy/specutils `specutils/io/default_loaders/sdss_v.py`).
//!
//! A "full" spec file holds, after the COADD table (HDU1) and the SPALL/ZLINE tables, one binary
//! table per exposure and camera (EXTNAME `B1-<expid>-...`, `R1-<expid>-...`) with columns
//! `loglam` (log10 vacuum Angstrom), `flux`, `ivar` (0 = bad), `mask` (SPPIXMASK; or
//! `or_mask`/`and_mask`), `wdisp` (LSF sigma in native pixels). The cameras of one exposure form one
//! visit with one segment per camera (blue first). The COADD becomes [`Dataset::pipeline_coadd`],
//! for comparison only, never an input.
//!
//! Velocities: the per-exposure wavelengths are already heliocentric (idlspec2d applies HELIO_RV,
//! kept as a header card), so each visit gets `Vrel = 0` (shifting by it keeps the heliocentric
//! frame) and the pipeline's redshift Z (SPALL) is kept as the card `Z_PIPELINE` with its velocity
//! `V_PIPELINE_KMS` for a manual rest-frame shift. JD is the middle of TAI-BEG..TAI-END. The S/N is
//! not stated per exposure: `snr` is the median flux·sqrt(ivar) over good pixels (card
//! `SNR_SOURCE`). A "lite" file (no camera HDUs) is refused with a message.

use std::path::Path;
use std::sync::Arc;

use super::error::LoadError;
use super::fits::{self, HduDesc};
use crate::model::{C_KMS, Dataset, Spectrum, Survey, VelocityKind, Visit, VisitArrays, VisitMeta};
use crate::numeric::median;

/// True if an EXTNAME names a per-exposure camera HDU (`B1-...`, `R2-...`).
pub(crate) fn is_camera(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 3
        && matches!(b[0], b'B' | b'R' | b'b' | b'r')
        && b[1].is_ascii_digit()
        && b[2] == b'-'
}

/// True if the HDUs look like a BOSS spec file.
pub(crate) fn looks_like(hdus: &[HduDesc]) -> bool {
    hdus.iter().any(|h| {
        h.name.eq_ignore_ascii_case("COADD") || is_camera(&h.name) || is_exposure_v6(&h.name)
    })
}

/// Read a BOSS spec file.
pub fn read(path: &Path) -> Result<Dataset, LoadError> {
    fits::guard(path, || read_inner(path))
}

struct Camera {
    wave: Vec<f64>,
    flux: Vec<f64>,
    ivar: Vec<f64>,
    flags: Vec<u64>,
    sigma_ln: Option<f64>,
    jd: Option<f64>,
    cards: Vec<(String, String)>,
}

fn has_col(d: &HduDesc, col: &str) -> bool {
    d.table()
        .is_some_and(|(cols, _)| cols.iter().any(|c| c.0.eq_ignore_ascii_case(col)))
}

/// The table's own spelling of a column (SDSS-V writes upper case, SDSS-III/IV lower case).
fn cn(d: &HduDesc, col: &str) -> String {
    d.table()
        .and_then(|(cols, _)| cols.into_iter().find(|c| c.0.eq_ignore_ascii_case(col)))
        .map_or_else(|| col.to_owned(), |c| c.0)
}

/// True if an EXTNAME names an SDSS-V spec-full exposure HDU (`MJD_EXP_{mjd}-{nn}`).
pub(crate) fn is_exposure_v6(name: &str) -> bool {
    name.len() > 8 && name[..8].eq_ignore_ascii_case("MJD_EXP_")
}

fn read_camera(f: &mut fitsio::FitsFile, path: &Path, d: &HduDesc) -> Result<Camera, LoadError> {
    for col in ["loglam", "flux", "ivar"] {
        if !has_col(d, col) {
            return Err(LoadError::missing(
                path,
                format!("column '{col}' of {}", d.label()),
            ));
        }
    }
    let loglam = fits::column_f64(f, path, d, &cn(d, "loglam"))?;
    let flux = fits::column_f64(f, path, d, &cn(d, "flux"))?;
    let ivar = fits::column_f64(f, path, d, &cn(d, "ivar"))?;
    if loglam.is_empty() {
        return Err(LoadError::invalid(path, d.label(), "the table has no rows"));
    }
    let mask_col = ["mask", "or_mask", "and_mask"]
        .into_iter()
        .find(|c| has_col(d, c));
    let flags = match mask_col {
        Some(c) => fits::column_bits(f, path, d, &cn(d, c))?,
        None => vec![0; loglam.len()],
    };
    let mut wave = Vec::with_capacity(loglam.len());
    for (i, &l) in loglam.iter().enumerate() {
        let w = 10f64.powf(l);
        if !(l.is_finite() && w.is_finite() && w > 0.0) {
            return Err(LoadError::invalid(
                path,
                format!("column 'loglam' of {}", d.label()),
                format!("row {i} holds {l}, not a usable log10 wavelength"),
            ));
        }
        wave.push(w);
    }
    let sigma_ln = if has_col(d, "wdisp") {
        let wd = fits::column_f64(f, path, d, &cn(d, "wdisp"))?;
        // wdisp is in native pixels; one pixel is the local loglam step.
        let s: Vec<f64> = loglam
            .windows(2)
            .zip(&wd)
            .map(|(p, w)| (p[1] - p[0]).abs() * w * std::f64::consts::LN_10)
            .filter(|x| x.is_finite() && *x > 0.0)
            .collect();
        median(s)
    } else {
        None
    };
    let beg = fits::key_f64(f, &d.hdu, "TAI-BEG");
    let end = fits::key_f64(f, &d.hdu, "TAI-END");
    let jd = match (beg, end) {
        (Some(b), Some(e)) => Some(0.5 * (b + e) / 86_400.0 + 2_400_000.5),
        _ => None,
    };
    let mut cards = Vec::new();
    for key in [
        "EXPOSURE", "MJD", "DATE-OBS", "EXPTIME", "AIRMASS", "HELIO_RV", "V_RAD", "CAMERAS",
    ] {
        if let Some(v) = fits::key_string(f, &d.hdu, key) {
            cards.push((key.to_owned(), v));
        }
    }
    Ok(Camera {
        wave,
        flux,
        ivar,
        flags,
        sigma_ln,
        jd,
        cards,
    })
}

fn read_inner(path: &Path) -> Result<Dataset, LoadError> {
    let mut f = fits::open(path)?;
    let hdus = fits::hdus(&mut f, path)?;
    // Object id: plate-mjd-fiber from SPALL when present, else the file stem.
    let stem = super::gz::stem(path).unwrap_or_else(|| "boss".into());
    let mut object = stem.trim_start_matches("spec-").to_owned();
    let mut z_cards = Vec::new();
    if let Some(d) = hdus.iter().find(|h| h.name.eq_ignore_ascii_case("SPALL"))
        && d.table().is_some_and(|(_, rows)| rows > 0)
    {
        let cell = |f: &mut fitsio::FitsFile, c: &str| d.hdu.read_cell_value::<f64>(f, c, 0).ok();
        if let (Some(p), Some(m), Some(fib)) = (
            cell(&mut f, "PLATE"),
            cell(&mut f, "MJD"),
            cell(&mut f, "FIBERID"),
        ) {
            object = format!("{p:.0}-{m:.0}-{fib:04.0}");
        } else if let (Some(field), Some(m)) = (cell(&mut f, "FIELD"), cell(&mut f, "MJD"))
            && let Ok(cat) = d.hdu.read_cell_value::<i64>(&mut f, "CATALOGID", 0)
        {
            // SDSS-V: field-mjd-catalogid, as in the file name.
            object = format!("{field:06.0}-{m:.0}-{cat}");
        }
        if let Some(z) = cell(&mut f, "Z") {
            z_cards.push(("Z_PIPELINE".to_owned(), z.to_string()));
            let v = C_KMS * ((1.0 + z).powi(2) - 1.0) / ((1.0 + z).powi(2) + 1.0);
            z_cards.push(("V_PIPELINE_KMS".to_owned(), format!("{v:.3}")));
        }
    }
    // The pipeline's coadd.
    let mut pipeline_coadd = None;
    if let Some(d) = hdus.iter().find(|h| h.name.eq_ignore_ascii_case("COADD")) {
        let cam = read_camera(&mut f, path, d)?;
        pipeline_coadd = Some(Spectrum {
            label: "BOSS pipeline coadd".into(),
            ln_wave: cam.wave.iter().map(|w| w.ln()).collect(),
            flux: cam.flux,
            ivar: cam.ivar,
        });
    }
    // Group camera HDUs by exposure id, in file order.
    let mut groups: Vec<(String, Vec<&HduDesc>)> = Vec::new();
    for d in hdus.iter().filter(|h| is_camera(&h.name)) {
        let expid = d.name.split('-').nth(1).unwrap_or_default().to_owned();
        match groups.iter_mut().find(|g| g.0 == expid) {
            Some(g) => g.1.push(d),
            None => groups.push((expid, vec![d])),
        }
    }
    let mut visits = Vec::new();
    // SDSS-V spec-full: one HDU per exposure, already merged, resampled and barycentric.
    for d in hdus.iter().filter(|h| is_exposure_v6(&h.name)) {
        visits.push(Arc::new(read_exposure_v6(
            &mut f, path, d, &object, &z_cards,
        )?));
    }
    if groups.is_empty() && visits.is_empty() {
        return Err(LoadError::missing(
            path,
            "the per-exposure HDUs (B1-*/R1-* in SDSS-III/IV, MJD_EXP_* in SDSS-V): this is a spec-lite file, which holds only the pipeline's coadd; open the spec-full file of this target to combine its exposures",
        ));
    }
    for (expid, mut cams) in groups {
        // Blue before red, then by camera number.
        cams.sort_by_key(|d| {
            (
                !d.name.as_bytes()[0].eq_ignore_ascii_case(&b'B'),
                d.name.clone(),
            )
        });
        let mut arrays = VisitArrays::default();
        let mut meta = VisitMeta {
            name: format!("exp {}", expid.trim_start_matches('0')),
            source: Some(path.to_path_buf()),
            object: Some(object.clone()),
            ..VisitMeta::default()
        };
        let mut sig = Vec::new();
        for d in &cams {
            let cam = read_camera(&mut f, path, d)?;
            let start = arrays.wavelength_aa.len();
            arrays.wavelength_aa.extend(&cam.wave);
            arrays.flux.extend(&cam.flux);
            arrays.ivar.extend(&cam.ivar);
            arrays.flags.extend(&cam.flags);
            arrays.segments.push(start..arrays.wavelength_aa.len());
            if meta.jd.is_none() {
                meta.jd = cam.jd;
            }
            sig.extend(cam.sigma_ln);
            for (k, v) in cam.cards {
                if !meta.header.iter().any(|(kk, _)| *kk == k) {
                    meta.header.push((k, v));
                }
            }
            meta.header.push(("CAMERA_HDU".into(), d.name.clone()));
        }
        meta.lsf_sigma_ln = if sig.is_empty() {
            None
        } else {
            Some(sig.iter().sum::<f64>() / sig.len() as f64)
        };
        set_snr(&mut meta, &arrays.flux, &arrays.ivar);
        meta.header.extend(z_cards.iter().cloned());
        meta.header.push((
            "FV_VELOCITY".into(),
            "wavelengths are heliocentric already (HELIO_RV applied): Vrel = 0".into(),
        ));
        meta.set_velocity(VelocityKind::Vrel, 0.0);
        let label = cams
            .first()
            .map_or_else(|| "camera HDU".into(), |d| d.label());
        let visit = Visit::new(meta, arrays)
            .map_err(|e| LoadError::invalid(path, format!("exposure {expid} ({label} ...)"), e))?;
        visits.push(Arc::new(visit));
    }
    Ok(Dataset {
        name: object,
        visits,
        input_grid: None,
        truth: None,
        pipeline_coadd,
        survey: Survey::Boss,
        load_warnings: Vec::new(),
    })
}

/// A BOSS visit's S/N, which the files do not give per exposure: the median of flux * sqrt(ivar)
/// over good pixels, with a card saying so.
fn set_snr(meta: &mut VisitMeta, flux: &[f64], ivar: &[f64]) {
    let snr: Vec<f64> = flux
        .iter()
        .zip(ivar)
        .filter(|(fl, iv)| fl.is_finite() && iv.is_finite() && **iv > 0.0)
        .map(|(fl, iv)| fl * iv.sqrt())
        .collect();
    meta.snr = median(snr);
    meta.header.push((
        "SNR_SOURCE".into(),
        "median flux*sqrt(ivar) over good pixels (computed by frizzview)".into(),
    ));
}

/// One exposure HDU of an SDSS-V spec-full file (`MJD_EXP_{mjd}-{nn}`): blue and red already merged
/// and resampled onto the coadd grid, wavelengths barycentric (idlspec2d v6 `combine1fiber`).
fn read_exposure_v6(
    f: &mut fitsio::FitsFile,
    path: &Path,
    d: &HduDesc,
    object: &str,
    z_cards: &[(String, String)],
) -> Result<Visit, LoadError> {
    let cam = read_camera(f, path, d)?;
    let expo = cam
        .cards
        .iter()
        .find(|(k, _)| k == "EXPOSURE")
        .map(|(_, v)| v.clone());
    let mut meta = VisitMeta {
        name: match &expo {
            Some(e) => format!("exp {e}"),
            None => d.name.clone(),
        },
        source: Some(path.to_path_buf()),
        object: Some(object.to_owned()),
        jd: cam.jd,
        lsf_sigma_ln: cam.sigma_ln,
        resampled: true,
        ..VisitMeta::default()
    };
    meta.header.extend(cam.cards);
    meta.header.push(("EXPOSURE_HDU".into(), d.name.clone()));
    set_snr(&mut meta, &cam.flux, &cam.ivar);
    meta.header.extend(z_cards.iter().cloned());
    meta.header.push((
        "FV_VELOCITY".into(),
        "wavelengths are barycentric already: Vrel = 0, no BC applied again".into(),
    ));
    meta.header.push((
        "FV_RESAMPLED".into(),
        "blue and red merged and resampled onto the coadd grid by the pipeline: not native pixels"
            .into(),
    ));
    meta.set_velocity(VelocityKind::Vrel, 0.0);
    Visit::new(
        meta,
        VisitArrays {
            wavelength_aa: cam.wave,
            flux: cam.flux,
            ivar: cam.ivar,
            flags: cam.flags,
            segments: Vec::new(),
            ..VisitArrays::default()
        },
    )
    .map_err(|e| LoadError::invalid(path, d.label(), e))
}
