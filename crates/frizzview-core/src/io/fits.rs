//! Small, defensive helpers over `fitsio` for the readers. `FitsFile` is `!Send`: these take
//! `&mut FitsFile` and never store it.

use std::path::Path;

use fitsio::FitsFile;
use fitsio::hdu::{FitsHdu, HduInfo};
use fitsio::tables::ColumnDataType;

use super::error::LoadError;

/// Open a FITS file for reading, after checking that its HDUs are sized consistently and lie
/// inside the file (a corrupt sizing card can make cfitsio loop forever; see `fits_layout`).
pub(crate) fn open(path: &Path) -> Result<FitsFile, LoadError> {
    super::fits_layout::check(path)?;
    super::fits_disk::open_readonly(path).map_err(|e| LoadError::invalid(path, "the FITS file", e))
}

/// A label for HDU `i` with its EXTNAME, e.g. "HDU 4 (WAVELENGTH)".
pub(crate) fn label(i: usize, name: &str) -> String {
    if name.is_empty() {
        format!("HDU {i}")
    } else {
        format!("HDU {i} ({name})")
    }
}

/// A table column: name, type, repeat count.
pub(crate) type Column = (String, ColumnDataType, usize);

/// One HDU's number, EXTNAME and info.
pub(crate) struct HduDesc {
    pub index: usize,
    pub name: String,
    pub hdu: FitsHdu,
}

impl HduDesc {
    pub(crate) fn label(&self) -> String {
        label(self.index, &self.name)
    }

    /// Image shape (C order), if an image.
    pub(crate) fn image_shape(&self) -> Option<&[usize]> {
        match &self.hdu.info {
            HduInfo::ImageInfo { shape, .. } => Some(shape),
            _ => None,
        }
    }

    /// Columns (name, type, repeat) and the number of rows, if a table.
    pub(crate) fn table(&self) -> Option<(Vec<Column>, usize)> {
        match &self.hdu.info {
            HduInfo::TableInfo {
                column_descriptions,
                num_rows,
            } => Some((
                column_descriptions
                    .iter()
                    .map(|c| (c.name.clone(), c.data_type.typ, c.data_type.repeat))
                    .collect(),
                *num_rows,
            )),
            _ => None,
        }
    }
}

/// Every HDU of the file.
pub(crate) fn hdus(f: &mut FitsFile, path: &Path) -> Result<Vec<HduDesc>, LoadError> {
    let n = f
        .num_hdus()
        .map_err(|e| LoadError::invalid(path, "the FITS file", e))?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let hdu = f
            .hdu(i)
            .map_err(|e| LoadError::invalid(path, label(i, ""), e))?;
        let name = hdu.name(f).unwrap_or_default().trim().to_owned();
        out.push(HduDesc {
            index: i,
            name,
            hdu,
        });
    }
    Ok(out)
}

/// A header value as f64 (numbers, or strings holding numbers), if present.
pub(crate) fn key_f64(f: &mut FitsFile, hdu: &FitsHdu, key: &str) -> Option<f64> {
    if let Ok(v) = hdu.read_key::<f64>(f, key) {
        return Some(v);
    }
    hdu.read_key::<String>(f, key)
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// A header value as text, if present.
pub(crate) fn key_string(f: &mut FitsFile, hdu: &FitsHdu, key: &str) -> Option<String> {
    if let Ok(s) = hdu.read_key::<String>(f, key) {
        return Some(s.trim().to_owned());
    }
    if let Ok(v) = hdu.read_key::<i64>(f, key) {
        return Some(v.to_string());
    }
    hdu.read_key::<f64>(f, key).ok().map(|v| v.to_string())
}

/// A whole image as f64 with its shape.
pub(crate) fn image_f64(
    f: &mut FitsFile,
    path: &Path,
    d: &HduDesc,
) -> Result<(Vec<usize>, Vec<f64>), LoadError> {
    let Some(shape) = d.image_shape() else {
        return Err(LoadError::invalid(
            path,
            d.label(),
            "is a table, expected an image",
        ));
    };
    let shape = shape.to_vec();
    if shape.is_empty() || shape.contains(&0) {
        return Err(LoadError::invalid(path, d.label(), "is an empty image"));
    }
    // A corrupt NAXISn must not make us allocate more than the file could hold.
    let n_claimed = shape
        .iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .unwrap_or(usize::MAX);
    if n_claimed > file_len(path) {
        return Err(LoadError::invalid(
            path,
            d.label(),
            format!("declares {shape:?} pixels, more than the file can hold"),
        ));
    }
    let v: Vec<f64> = d
        .hdu
        .read_image(f)
        .map_err(|e| LoadError::invalid(path, d.label(), e))?;
    let n: usize = shape.iter().product();
    if v.len() != n {
        return Err(LoadError::invalid(
            path,
            d.label(),
            format!("holds {} values for shape {shape:?}", v.len()),
        ));
    }
    Ok((shape, v))
}

/// The file size in bytes (0 if unknown).
fn file_len(path: &Path) -> usize {
    std::fs::metadata(path).map_or(0, |m| usize::try_from(m.len()).unwrap_or(usize::MAX))
}

/// Refuse tables that claim more rows than the file could hold (a corrupt NAXIS2).
fn check_rows(path: &Path, d: &HduDesc) -> Result<(), LoadError> {
    if let Some((_, rows)) = d.table()
        && rows > file_len(path)
    {
        return Err(LoadError::invalid(
            path,
            d.label(),
            format!("declares {rows} rows, more than the file can hold"),
        ));
    }
    Ok(())
}

/// A numeric table column as f64 (scalar columns only).
pub(crate) fn column_f64(
    f: &mut FitsFile,
    path: &Path,
    d: &HduDesc,
    col: &str,
) -> Result<Vec<f64>, LoadError> {
    let what = || format!("column '{col}' of {}", d.label());
    check_rows(path, d)?;
    if let Some((cols, _)) = d.table()
        && let Some((_, typ, repeat)) = cols.iter().find(|c| c.0 == col)
    {
        if *repeat != 1 {
            return Err(LoadError::invalid(
                path,
                what(),
                format!("is a vector column (repeat {repeat}); only one value per row is read"),
            ));
        }
        if matches!(typ, ColumnDataType::Text | ColumnDataType::String) {
            return Err(LoadError::invalid(
                path,
                what(),
                "holds text, expected numbers",
            ));
        }
    }
    d.hdu
        .read_col::<f64>(f, col)
        .map_err(|e| LoadError::invalid(path, what(), e))
}

/// An integer (mask) column as u64; negative 32-bit values keep their bit pattern.
pub(crate) fn column_bits(
    f: &mut FitsFile,
    path: &Path,
    d: &HduDesc,
    col: &str,
) -> Result<Vec<u64>, LoadError> {
    let what = || format!("column '{col}' of {}", d.label());
    check_rows(path, d)?;
    let typ = d
        .table()
        .and_then(|(cols, _)| cols.into_iter().find(|c| c.0 == col).map(|c| c.1));
    match typ {
        Some(ColumnDataType::LongLong | ColumnDataType::UnsignedLongLong) => {
            // fitsio has no 64-bit column reader; masks above 2^53 are not expected.
            let v = column_f64(f, path, d, col)?;
            Ok(v.iter()
                .map(|&x| if x >= 0.0 { x as u64 } else { 0 })
                .collect())
        }
        Some(ColumnDataType::Float | ColumnDataType::Double) => Err(LoadError::invalid(
            path,
            what(),
            "is floating point, expected an integer bitmask",
        )),
        _ => {
            let v: Vec<i32> = d
                .hdu
                .read_col(f, col)
                .map_err(|e| LoadError::invalid(path, what(), e))?;
            Ok(v.iter().map(|&x| u64::from(x as u32)).collect())
        }
    }
}

/// Run a reader, turning an unexpected panic inside the FITS library into an error that names the
/// file (a safety net; readers return errors for every case they know).
pub(crate) fn guard<T>(
    path: &Path,
    read: impl FnOnce() -> Result<T, LoadError>,
) -> Result<T, LoadError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)) {
        Ok(r) => r,
        Err(_) => Err(LoadError::invalid(
            path,
            "the FITS file",
            "the FITS library failed on this content (please report the file)",
        )),
    }
}
