//! Format detection from the file content (magic bytes, FITS HDU names and header keys), not from
//! the file name alone.

use std::path::Path;

use super::error::{LoadError, LoadErrorKind};

/// The formats frizzview reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A NumPy `.npz` bundle (reference or frizzview dataset layout).
    Npz,
    /// An APOGEE apVisit file.
    ApVisit,
    /// A BOSS spec file (COADD table plus, in full files, per-exposure camera HDUs).
    BossSpec,
    /// Any other FITS file: a binary table or images with wavelength/flux columns.
    FitsTable,
    /// CSV or TSV text with a header line.
    Text,
}

/// Detect the format of `path` from its content.
pub fn detect_format(path: &Path) -> Result<Format, LoadError> {
    let mut f = std::fs::File::open(path).map_err(|e| LoadError::io(path, e))?;
    let mut head = vec![0u8; 2880];
    let n = super::fits_layout::read_full(&mut f, &mut head).map_err(|e| LoadError::io(path, e))?;
    head.truncate(n);
    if head.is_empty() {
        return Err(LoadError::new(
            path,
            LoadErrorKind::Unrecognised("the file is empty".into()),
        ));
    }
    if super::npz::looks_like_npz(&head) {
        return Ok(Format::Npz);
    }
    if head.starts_with(b"SIMPLE  =") {
        return super::table::classify_fits(path);
    }
    if head.contains(&0) {
        return Err(LoadError::new(
            path,
            LoadErrorKind::Unrecognised("binary content that is neither FITS nor .npz".into()),
        ));
    }
    Ok(Format::Text)
}
