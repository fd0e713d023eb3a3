//! Generic FITS tables/images and CSV/TSV (in progress).

use std::path::Path;

use super::detect::Format;
use super::error::{LoadError, LoadErrorKind};
use crate::model::Dataset;

/// Decide which FITS flavour `path` is.
pub fn classify_fits(_path: &Path) -> Result<Format, LoadError> {
    Ok(Format::FitsTable)
}

/// Read a generic FITS file.
pub fn read_fits(path: &Path) -> Result<Dataset, LoadError> {
    Err(LoadError::new(
        path,
        LoadErrorKind::Unrecognised("generic FITS is not read yet".into()),
    ))
}

/// Read CSV/TSV text.
pub fn read_text(path: &Path) -> Result<Dataset, LoadError> {
    Err(LoadError::new(
        path,
        LoadErrorKind::Unrecognised("text tables are not read yet".into()),
    ))
}
