//! Generic FITS tables/images and CSV/TSV (in progress).

use std::path::Path;

use super::detect::Format;
use super::error::{LoadError, LoadErrorKind};
use crate::model::Dataset;

/// Decide which FITS flavour `path` is.
pub fn classify_fits(path: &Path) -> Result<Format, LoadError> {
    super::fits::guard(path, || {
        let mut f = super::fits::open(path)?;
        let hdus = super::fits::hdus(&mut f, path)?;
        if super::boss::looks_like(&hdus) {
            Ok(Format::BossSpec)
        } else if super::apvisit::looks_like(&mut f, path, &hdus) {
            Ok(Format::ApVisit)
        } else {
            Ok(Format::FitsTable)
        }
    })
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
