//! The plain forward model (no extensions) with the basis the settings ask for.

use super::types::{Cancel, CombineError, MethodResult, Prepared};
use super::warning::Warning;
use super::{fourier, local};

/// Fit the plain forward model (no extensions) with the basis the settings ask for.
pub fn fit_forward_plain(
    prep: &Prepared,
    fs: &crate::settings::ForwardSettings,
    lags: usize,
    cancel: &Cancel,
    warnings: &mut Vec<Warning>,
) -> Result<MethodResult, CombineError> {
    match fs.basis {
        crate::settings::Basis::Fourier => fourier::fit(prep, fs, lags, cancel, warnings),
        crate::settings::Basis::Local => {
            local::fit_with_cache(prep, fs, lags, cancel, warnings, &local::BasisCache::new())
        }
    }
}
