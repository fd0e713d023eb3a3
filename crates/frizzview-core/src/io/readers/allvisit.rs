//! The allVisit summary (per-visit velocities, no spectra) as an input: a companion of the apVisit
//! files given with it (the table itself is read by [`crate::io::survey::survey_rv`]).

use std::path::Path;

use crate::io::error::{LoadError, LoadErrorKind};
use crate::io::reader::{CompanionTable, FitsFormat, Format};
use crate::io::survey::survey_rv;
use crate::model::Dataset;

/// Given alone, an allVisit table is refused: it has no spectra.
fn read_alone(path: &Path) -> Result<Dataset, LoadError> {
    Err(LoadError::new(
        path,
        LoadErrorKind::Unrecognised(
            "an allVisit summary (per-visit velocities, no spectra): give it with the apVisit \
             files, or as --visits-table"
                .into(),
        ),
    ))
}

/// The allVisit companion, by its table's columns.
pub(crate) static READER: FitsFormat = FitsFormat {
    format: Format::AllVisit,
    looks_like: |_, _, hdus| survey_rv::looks_like_allvisit(hdus),
    read: read_alone,
    companion: Some(|path| {
        Ok(CompanionTable {
            velocities: survey_rv::read_allvisit(path)?,
            coadd: None,
        })
    }),
};
