//! The FITS-writing steps every export shares (the spectral one in [`super::fits`], the image
//! mode's): a new file with its provenance cards, header cards whose errors name them, and image
//! HDUs.

use std::path::Path;

use fitsio::FitsFile;
use fitsio::hdu::FitsHdu;
use fitsio::images::{ImageType, WriteImage};

/// What the FITS writers return: errors as text naming the card or HDU.
pub(crate) type R<T> = Result<T, String>;

/// A FITS library error as text.
pub(crate) fn fe(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Write one header card, the error naming it.
pub(crate) fn key<T: fitsio::headers::WritesKey>(
    f: &mut FitsFile,
    h: &FitsHdu,
    name: &str,
    v: T,
) -> R<()> {
    h.write_key(f, name, v)
        .map_err(|e| format!("header card {name}: {e}"))
}

/// Create `tmp` (a new FITS file) with a primary HDU saying who wrote it: `origin_card` =
/// "frizzview" and FVVERS = this version.
pub(crate) fn create(tmp: &Path, origin_card: &str) -> R<(FitsFile, FitsHdu)> {
    let mut f = crate::io::fits_disk::create(tmp).map_err(fe)?;
    let prim = f.primary_hdu().map_err(fe)?;
    key(&mut f, &prim, origin_card, "frizzview".to_owned())?;
    key(
        &mut f,
        &prim,
        "FVVERS",
        (
            env!("CARGO_PKG_VERSION").to_owned(),
            "frizzview version that wrote this file",
        ),
    )?;
    Ok((f, prim))
}

/// Append an image HDU `name` of `data_type` and `dims` (slowest first) holding `data`.
pub(crate) fn image<T: WriteImage>(
    f: &mut FitsFile,
    name: &str,
    data_type: ImageType,
    dims: &[usize],
    data: &[T],
) -> R<FitsHdu> {
    crate::io::fits::disk::write_image_hdu(f, name, data_type, dims, data).map_err(fe)
}

/// A string column as wide as the longest of `values` (at least 1).
pub(crate) fn str_col(
    name: &str,
    values: &[String],
) -> Result<fitsio::tables::ConcreteColumnDescription, fitsio::errors::Error> {
    let width = values.iter().map(String::len).max().unwrap_or(1).max(1);
    fitsio::tables::ColumnDescription::new(name)
        .with_type(fitsio::tables::ColumnDataType::String)
        .that_repeats(width)
        .create()
}

/// A numeric column of `t`.
pub(crate) fn num_col(
    name: &str,
    t: fitsio::tables::ColumnDataType,
) -> Result<fitsio::tables::ConcreteColumnDescription, fitsio::errors::Error> {
    fitsio::tables::ColumnDescription::new(name)
        .with_type(t)
        .create()
}
