//! apvisit reader (in progress).

use std::path::Path;

use super::error::{LoadError, LoadErrorKind};
use crate::model::Dataset;

/// Read a file of this format.
pub fn read(path: &Path) -> Result<Dataset, LoadError> {
    Err(LoadError::new(
        path,
        LoadErrorKind::Unrecognised("apvisit files are not read yet".into()),
    ))
}
