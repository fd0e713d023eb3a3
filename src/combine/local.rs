//! Forward model in a compactly supported basis on the output grid (banded; the live path).

use super::{Cancel, CombineError, MethodResult, Prepared, Warning};
use crate::settings::ForwardSettings;

/// Fit the local-basis forward model.
pub fn fit(
    _prep: &Prepared,
    _fs: &ForwardSettings,
    _lags: usize,
    _cancel: &Cancel,
    _warnings: &mut Vec<Warning>,
) -> Result<MethodResult, CombineError> {
    Err(CombineError::Other(
        "the local basis is not implemented yet".into(),
    ))
}
