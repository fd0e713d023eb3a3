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
    /// An APOGEE apStar/asStar file (combined; rows 2.. resampled visits).
    ApStar,
    /// An APOGEE allVisit summary table (per-visit velocities, no spectra).
    AllVisit,
    /// A BOSS spec file (COADD table plus, in full files, per-exposure camera HDUs).
    BossSpec,
    /// An APOGEE apCframe (one chip of one raw exposure, all fibres).
    ApCframe,
    /// An astra mwmVisit file (resampled visits of one source, APOGEE and BOSS).
    MwmVisit,
    /// A LAMOST medium-resolution (MRS) file: per-exposure blue/red tables and the pipeline's
    /// coadds (`io::lamost`).
    LamostMrs,
    /// Any other FITS file: a binary table or images with wavelength/flux columns.
    FitsTable,
    /// CSV or TSV text with a header line.
    Text,
}

/// Detect the format of `path` from its content. A gzip-compressed FITS file (`.fits.gz`) is
/// detected from its decompressed content; other compressed formats are refused.
pub fn detect_format(path: &Path) -> Result<Format, LoadError> {
    let head = super::gz::head(path, 2880)?;
    if super::gz::file_is_gzip(path)? {
        if head.starts_with(b"SIMPLE  =") {
            return super::table::classify_fits(path);
        }
        return Err(LoadError::new(
            path,
            LoadErrorKind::Unrecognised(
                "gzip-compressed content that is not FITS (only FITS files are read compressed; \
                 decompress it with gunzip first)"
                    .into(),
            ),
        ));
    }
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
