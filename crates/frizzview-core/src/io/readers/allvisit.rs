//! The allVisit summary (per-visit velocities, no spectra) as an input: a companion of the apVisit
//! files given with it (the table itself is read by [`crate::io::survey::survey_rv`]).

use std::path::Path;

use crate::io::error::{LoadError, LoadErrorKind};
use crate::io::reader::{CompanionTable, Confidence, Format, Probe, Reader};
use crate::io::survey::survey_rv;
use crate::model::Dataset;

/// The allVisit companion, by its table's columns.
pub struct AllVisitReader;

impl Reader for AllVisitReader {
    fn format(&self) -> Format {
        Format::AllVisit
    }
    fn claim(&self, probe: &mut Probe<'_>) -> Result<Option<Confidence>, LoadError> {
        let Some((_, hdus)) = probe.fits()? else {
            return Ok(None);
        };
        Ok(survey_rv::looks_like_allvisit(hdus).then_some(Confidence::CERTAIN))
    }
    fn read(&self, path: &Path) -> Result<Dataset, LoadError> {
        Err(LoadError::new(
            path,
            LoadErrorKind::Unrecognised(
                "an allVisit summary (per-visit velocities, no spectra): give it with the apVisit \
                 files, or as --visits-table"
                    .into(),
            ),
        ))
    }
    fn is_companion(&self) -> bool {
        true
    }
    fn read_companion(&self, path: &Path) -> Result<CompanionTable, LoadError> {
        Ok(CompanionTable {
            velocities: survey_rv::read_allvisit(path)?,
            coadd: None,
        })
    }
}
