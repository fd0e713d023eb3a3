//! HDU descriptions and defensive readers of header cards, images and table columns. `FitsFile`
//! is `!Send`: these take `&mut FitsFile` and never store it.

use std::path::Path;

use fitsio::FitsFile;
use fitsio::hdu::{FitsHdu, HduInfo};
use fitsio::tables::ColumnDataType;

use crate::io::error::LoadError;

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

    /// The table's own spelling of column `want` (matched case-insensitively: SDSS-V writes upper
    /// case, SDSS-III/IV lower case), if the HDU is a table that has it.
    pub(crate) fn column_name(&self, want: &str) -> Option<String> {
        self.table().and_then(|(cols, _)| {
            cols.into_iter()
                .find(|c| c.0.eq_ignore_ascii_case(want))
                .map(|c| c.0)
        })
    }

    /// Whether the HDU is a table with column `want` (any case).
    pub(crate) fn has_column(&self, want: &str) -> bool {
        self.table()
            .is_some_and(|(cols, _)| cols.iter().any(|c| c.0.eq_ignore_ascii_case(want)))
    }

    /// [`HduDesc::column_name`], else `want` itself (for a read whose error then names it).
    pub(crate) fn column_spelling(&self, want: &str) -> String {
        self.column_name(want).unwrap_or_else(|| want.to_owned())
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
    if n_claimed > file_len(f, path) {
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

/// Bytes of FITS content: the decompressed size of an in-memory file, else the file size (0 if
/// unknown).
fn file_len(f: &mut FitsFile, path: &Path) -> usize {
    let len = super::disk::memory_len(f)
        .unwrap_or_else(|| std::fs::metadata(path).map_or(0, |m| m.len()));
    usize::try_from(len).unwrap_or(usize::MAX)
}

/// Refuse tables that claim more rows than the file could hold (a corrupt NAXIS2).
pub(crate) fn check_rows(f: &mut FitsFile, path: &Path, d: &HduDesc) -> Result<(), LoadError> {
    if let Some((_, rows)) = d.table()
        && rows > file_len(f, path)
    {
        return Err(LoadError::invalid(
            path,
            d.label(),
            format!("declares {rows} rows, more than the file can hold"),
        ));
    }
    Ok(())
}

/// Text column `name` (the table's spelling), each value trimmed.
pub(crate) fn column_text(
    f: &mut FitsFile,
    path: &Path,
    d: &HduDesc,
    name: &str,
) -> Result<Vec<String>, LoadError> {
    Ok(super::disk::read_str_col(f, &d.hdu, name, 0, None)
        .map_err(|e| LoadError::invalid(path, format!("column '{name}' of {}", d.label()), e))?
        .into_iter()
        .map(|s| s.trim().to_owned())
        .collect())
}

/// Refuse a column read from an HDU that is not a table, or that claims more rows than the file
/// could hold; `what` names the column.
fn check_table(
    f: &mut FitsFile,
    path: &Path,
    d: &HduDesc,
    what: &impl Fn() -> String,
) -> Result<(), LoadError> {
    check_rows(f, path, d)?;
    if d.table().is_none() {
        return Err(LoadError::invalid(
            path,
            what(),
            "cannot be read: the HDU is an image, not a table",
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
    check_table(f, path, d, &what)?;
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
    check_table(f, path, d, &what)?;
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
