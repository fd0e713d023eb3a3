//! apStar-like FITS export (in progress).

use std::path::{Path, PathBuf};

use super::error::SaveError;
use crate::combine::Combined;
use crate::model::Dataset;

/// Write an apStar-like FITS file.
pub fn write_fits(
    path: &Path,
    _data: &Dataset,
    _c: &Combined,
    _inputs: &[PathBuf],
) -> Result<(), SaveError> {
    Err(SaveError::new(path, "FITS export is not implemented yet"))
}
