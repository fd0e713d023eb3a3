//! Forward model in the paper's Fourier basis (exact; frizzle-compatible and fixed modes).

pub mod nufft;
pub mod toeplitz;

use super::{Cancel, CombineError, MethodResult, Prepared, Warning};
use crate::settings::ForwardSettings;

/// Fit the Fourier-basis forward model.
pub fn fit(
    _prep: &Prepared,
    _fs: &ForwardSettings,
    _lags: usize,
    _cancel: &Cancel,
    _warnings: &mut Vec<Warning>,
) -> Result<MethodResult, CombineError> {
    Err(CombineError::Other(
        "the Fourier basis is not implemented yet".into(),
    ))
}
