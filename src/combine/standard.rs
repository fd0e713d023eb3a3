//! Standard practice: shift each visit, interpolate it onto the output grid, average.

use super::{Cancel, CombineError, MethodResult, Prepared};
use crate::settings::StandardSettings;

/// Shift, interpolate and average.
pub fn combine_standard(
    _prep: &Prepared,
    _ss: &StandardSettings,
    _lags: usize,
    _cancel: &Cancel,
) -> Result<MethodResult, CombineError> {
    Err(CombineError::Other(
        "standard practice is not implemented yet".into(),
    ))
}
