//! frizzview's own results (FITS files with the `FVSETN` card) are outputs, not inputs: this
//! reader recognises them to refuse them with a message that says what to do instead.

use std::path::Path;

use crate::io::error::{LoadError, LoadErrorKind};
use crate::io::fits;
use crate::io::reader::{Confidence, Format, Probe, Reader};
use crate::model::Dataset;

/// The refusal of frizzview results, by the `FVSETN` card of the primary header.
pub struct FrizzviewResultReader;

fn refusal(path: &Path) -> LoadError {
    LoadError::new(
        path,
        LoadErrorKind::Unrecognised(
            "a frizzview result (already combined), not an input; combine its input files instead (its settings can be reused with --settings)".into(),
        ),
    )
}

impl Reader for FrizzviewResultReader {
    fn format(&self) -> Format {
        Format::new("frizzview result")
    }
    fn claim(&self, probe: &mut Probe<'_>) -> Result<Option<Confidence>, LoadError> {
        let path = probe.path();
        let Some((f, hdus)) = probe.fits()? else {
            return Ok(None);
        };
        match hdus.first() {
            Some(prim) if fits::key_f64(f, &prim.hdu, "FVSETN").is_some() => Err(refusal(path)),
            _ => Ok(None),
        }
    }
    fn read(&self, path: &Path) -> Result<Dataset, LoadError> {
        Err(refusal(path))
    }
}
