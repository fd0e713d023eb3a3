//! Forward model in a compactly supported basis on the output grid (banded; the live path).
//!
//! One basis function per output pixel (P = M*): g_j(x) = K(u(x) - j), where u(x) is the fractional
//! output-pixel index of rest-frame ln(lambda) x and K a compact kernel (Lanczos-3, a B-spline, or
//! by default a degree-15 B-spline with knots a quarter pixel off the output pixels: see
//! [`DEFAULT_KERNEL`] for why). Every data pixel touches only a few g_j, so the normal matrix
//! A = sum w s^2 g g^T is banded: assembling it costs O(M b), the banded Cholesky (LDL^T) O(P b^2),
//! and the band of A^-1 needed for C* = X* A^-1 X*^T comes from the Takahashi / Hutchinson-de Hoog
//! selected-inverse recurrence, also O(P b^2). Nothing P x P is ever materialised.
//!
//! Kernel evaluations depend only on wavelengths (visit pixels, shift, grid, kernel, LSF), so they
//! are memoised per visit in a [`BasisCache`] that the engine keeps between recomputations: when
//! only weights or include flags change, no kernel is evaluated again.
//!
//! Output pixels with no data nearby (APOGEE chip gaps, grid ends) are censored (`no_data`), and
//! their basis functions are dropped from the system so it stays non-singular; a tiny ridge relative
//! to the mean diagonal guards the rest.
//!
//! This file holds the fit itself (assembly, censoring, solve, output and covariance, the model);
//! [`kernel`] the kernels, [`basis`] the design rows and their cache, [`partial`] the normal-
//! equation sums, [`banded`] the band matrix, its factor and selected inverse, and [`loo`] the
//! leave-one-visit-out fits.

mod banded;
mod basis;
mod cache;
mod kernel;
mod loo;
mod partial;
pub use banded::{Band, BandLdl};
pub use basis::VisitBasis;
pub use cache::{BasisCache, DEFAULT_BASIS_BUDGET};
pub use kernel::Kernel;
pub use loo::{LooFit, leave_one_out};
mod method;
pub use method::{
    DEFAULT_KERNEL, DEFAULT_RIDGE, LocalModel, LocalOptions, fit_with, fit_with_cache,
};
