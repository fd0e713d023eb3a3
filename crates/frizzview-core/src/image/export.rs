//! The image mode's FITS export (atomic: a temporary file renamed over the destination, never
//! over an input).
//!
//! Layout: an empty primary HDU (provenance, settings, the notes as HISTORY), then image
//! extensions, each with the output grid's TAN WCS cards when there is one:
//! - the forward model (Frizzle): `SCI`, `VAR` (card `VARKIND` = `EXACT`, `PROBE n` or `NONE`),
//!   `COVERAGE` (input pixels overlapping each output pixel), `DQ` (bit 1: no data);
//! - drizzle: `DRZ_SCI`, `DRZ_WHT`, `DRZ_VAR` (drizzle's squared-weight variance, covariance
//!   ignored), `DRZ_CTX` (input pixels whose drop overlaps each output pixel);
//! - a binary table `EXPOSURES`: NAME, FILE, INCLUDE, WEIGHT, SKY (fitted offset, relative to the
//!   first included exposure), DRZ_SKY (subtracted from drizzle's inputs), CHI2_NU, LOO_CHI2_NU.

use std::path::{Path, PathBuf};

use fitsio::FitsFile;
use fitsio::hdu::FitsHdu;
use fitsio::images::ImageType;
use fitsio::tables::ColumnDataType;
use ndarray::Array2;

use super::pipeline::{ImageProducts, Prepared, variance_label};
use super::wcs::{CardValue, Wcs};
use crate::io::error::SaveError;

use crate::export::fits_hdu::{R, create, fe, image, key, num_col, str_col};

fn wcs_cards(f: &mut FitsFile, h: &FitsHdu, w: Option<&Wcs>) -> R<()> {
    if let Some(w) = w {
        for (k, v) in w.tan_cards() {
            match v {
                CardValue::Num(x) if k == "WCSAXES" => key(f, h, &k, x.round() as i64)?,
                CardValue::Num(x) => key(f, h, &k, x)?,
                CardValue::Text(t) => key(f, h, &k, t)?,
            }
        }
    }
    Ok(())
}

fn image_f64(
    f: &mut FitsFile,
    name: &str,
    a: &Array2<f64>,
    w: Option<&Wcs>,
    extra: &[(&str, String)],
) -> R<()> {
    let (ny, nx) = a.dim();
    let v: Vec<f64> = a.iter().copied().collect();
    let h = image(f, name, ImageType::Double, &[ny, nx], &v)?;
    wcs_cards(f, &h, w)?;
    for (k, t) in extra {
        key(f, &h, k, t.clone())?;
    }
    Ok(())
}

fn image_i32(
    f: &mut FitsFile,
    name: &str,
    a: &[i32],
    shape: (usize, usize),
    w: Option<&Wcs>,
) -> R<()> {
    let h = image(f, name, ImageType::Long, &[shape.0, shape.1], a)?;
    wcs_cards(f, &h, w)
}

/// Writes both methods' products (see the module docs) to `path`, atomically.
///
/// # Errors
/// When `path` is an input, or the file cannot be written (named).
pub fn write_fits(
    path: &Path,
    prep: &Prepared,
    prod: &ImageProducts,
    inputs: &[PathBuf],
) -> Result<(), SaveError> {
    crate::io::atomic::write_atomic(path, inputs, |tmp| {
        write_to(tmp, prep, prod).map_err(|e| SaveError::new(path, e))
    })
}

fn clip(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .take(68)
        .collect()
}

fn write_to(tmp: &Path, prep: &Prepared, prod: &ImageProducts) -> R<()> {
    let (mut f, prim) = create(tmp, "ORIGIN")?;
    key(
        &mut f,
        &prim,
        "NEXPOS",
        (prep.exposures.len() as i64, "exposures read"),
    )?;
    key(
        &mut f,
        &prim,
        "NINCL",
        (
            prep.exposures.iter().filter(|x| x.include).count() as i64,
            "exposures included",
        ),
    )?;
    key(
        &mut f,
        &prim,
        "SCIMETH",
        "SCI/VAR/COVERAGE/DQ: Frizzle-2D forward model".to_owned(),
    )?;
    key(
        &mut f,
        &prim,
        "DRZMETH",
        "DRZ_*: drizzle, square kernel".to_owned(),
    )?;
    if let Some(d) = &prod.drizzle {
        key(&mut f, &prim, "PIXFRAC", (d.pixfrac, "drizzle pixfrac"))?;
    }
    let nc = |m: &[[f64; 3]; 2]| {
        if m[0][0].is_finite() {
            m[0][0]
        } else {
            f64::NAN
        }
    };
    if let Some(fr) = &prod.frizzle {
        key(&mut f, &prim, "VARKIND", variance_label(fr.var_kind))?;
        key(
            &mut f,
            &prim,
            "CGITER",
            (fr.iterations as i64, "CG iterations"),
        )?;
        if nc(&fr.noise_corr).is_finite() {
            key(
                &mut f,
                &prim,
                "FZCORR1",
                (fr.noise_corr[0][0], "Frizzle noise correlation, lag 1 in x"),
            )?;
        }
    }
    if nc(&prod.drizzle_noise_corr).is_finite() {
        key(
            &mut f,
            &prim,
            "DZCORR1",
            (
                prod.drizzle_noise_corr[0][0],
                "drizzle noise correlation, lag 1 in x",
            ),
        )?;
    }
    // Notes and warnings as NOTE0001... cards (68-character pieces of ASCII).
    let mut k = 0;
    for (pre, n) in prod
        .notes
        .iter()
        .map(|n| ("", n))
        .chain(prod.warnings.iter().map(|w| ("warning: ", w)))
    {
        let full: Vec<char> = format!("{pre}{n}")
            .chars()
            .map(|c| {
                if c.is_ascii() && !c.is_ascii_control() {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        for piece in full.chunks(68) {
            k += 1;
            if k > 9999 {
                break;
            }
            key(
                &mut f,
                &prim,
                &format!("NOTE{k:04}"),
                piece.iter().collect::<String>(),
            )?;
        }
    }
    let w = prod.wcs.as_ref();
    let shape = prod.shape;
    if let Some(fr) = &prod.frizzle {
        image_f64(
            &mut f,
            "SCI",
            &fr.sci,
            w,
            &[("METHOD", "Frizzle-2D forward model".into())],
        )?;
        image_f64(
            &mut f,
            "VAR",
            &fr.var,
            w,
            &[
                ("VARKIND", variance_label(fr.var_kind)),
                ("METHOD", "Frizzle-2D forward model".into()),
            ],
        )?;
        let cov: Vec<i32> = fr
            .coverage
            .iter()
            .map(|c| i32::try_from(*c).unwrap_or(i32::MAX))
            .collect();
        image_i32(&mut f, "COVERAGE", &cov, shape, w)?;
        let dq: Vec<i32> = fr.dq.iter().map(|d| i32::from(*d)).collect();
        image_i32(&mut f, "DQ", &dq, shape, w)?;
    }
    if let Some(d) = &prod.drizzle {
        let m = [("METHOD", "drizzle square kernel".to_owned())];
        image_f64(&mut f, "DRZ_SCI", &d.sci, w, &m)?;
        image_f64(&mut f, "DRZ_WHT", &d.wht, w, &m)?;
        image_f64(
            &mut f,
            "DRZ_VAR",
            &d.var,
            w,
            &[
                ("VARKIND", "SQUARED-WEIGHT".to_owned()),
                ("METHOD", "drizzle square kernel".to_owned()),
            ],
        )?;
        let ctx: Vec<i32> = d
            .count
            .iter()
            .map(|c| i32::try_from(*c).unwrap_or(i32::MAX))
            .collect();
        image_i32(&mut f, "DRZ_CTX", &ctx, shape, w)?;
    }
    write_table(&mut f, prep, prod)
}

fn write_table(f: &mut FitsFile, prep: &Prepared, prod: &ImageProducts) -> R<()> {
    let name: Vec<String> = prod.table.iter().map(|r| clip(&r.name)).collect();
    let file: Vec<String> = prep
        .paths
        .iter()
        .map(|p| {
            p.file_name()
                .map_or_else(String::new, |n| clip(&n.to_string_lossy()))
        })
        .collect();
    let num = num_col;
    let cols = [
        str_col("NAME", &name),
        str_col("FILE", &file),
        num("INCLUDE", ColumnDataType::Int),
        num("WEIGHT", ColumnDataType::Double),
        num("SKY", ColumnDataType::Double),
        num("DRZ_SKY", ColumnDataType::Double),
        num("CHI2_NU", ColumnDataType::Double),
        num("LOO_CHI2_NU", ColumnDataType::Double),
    ]
    .into_iter()
    .collect::<Result<Vec<_>, _>>()
    .map_err(fe)?;
    let h = f.create_table("EXPOSURES", &cols).map_err(fe)?;
    h.write_col(f, "NAME", &name).map_err(fe)?;
    h.write_col(f, "FILE", &file).map_err(fe)?;
    let inc: Vec<i32> = prod.table.iter().map(|r| i32::from(r.include)).collect();
    h.write_col(f, "INCLUDE", &inc).map_err(fe)?;
    let col = |g: &dyn Fn(&super::pipeline::ExposureRow) -> f64| -> Vec<f64> {
        prod.table.iter().map(g).collect()
    };
    h.write_col(f, "WEIGHT", &col(&|r| r.weight)).map_err(fe)?;
    h.write_col(f, "SKY", &col(&|r| r.sky)).map_err(fe)?;
    let ds: Vec<f64> = (0..prod.table.len())
        .map(|i| prod.drizzle_sky.get(i).copied().unwrap_or(f64::NAN))
        .collect();
    h.write_col(f, "DRZ_SKY", &ds).map_err(fe)?;
    h.write_col(f, "CHI2_NU", &col(&|r| r.chi2nu)).map_err(fe)?;
    h.write_col(f, "LOO_CHI2_NU", &col(&|r| r.loo_chi2nu))
        .map_err(fe)?;
    Ok(())
}
