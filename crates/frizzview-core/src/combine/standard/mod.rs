//! Standard practice: shift each visit, interpolate it onto the output grid, average.
//!
//! The comparison method of Hogg & Casey (2024) §4. Each included visit is split into its
//! segments (chips, cameras); each segment ("piece") is interpolated, at its rest-frame positions
//! `PreparedVisit::x_rest`, onto the output pixels it covers; the pieces are averaged per output
//! pixel. Every interpolator here is linear in the data, so each output value of a piece is
//! `sum_j a_lj y_j` over the piece's input pixels, and the method propagates the input variances
//! exactly: `var_l = sum_j a_lj^2 var_j` and the covariance band `C[l, l+k] = sum_j a_lj a_(l+k)j
//! var_j` (covariances between pieces are zero: they share no pixel). The natural cubic spline's
//! weights come from rows of the inverse of its tridiagonal system, which decay geometrically;
//! they are truncated below 1e-13 of the leading entry (exact to rounding for the data).
//!
//! Choices, documented:
//! - Interpolators: natural cubic spline (the paper's method; scipy's `interp1d(kind="cubic")`
//!   uses not-a-knot ends instead, which differs only near the ends), linear, and the APOGEE
//!   pipeline's damped sinc (`sincint`: kernel exp(-(u/(3.25 nres/2))^2) sinc(u) / (nres/2) with
//!   u = pixel offset / (nres/2), 21 nres/2 taps). `nres` (pixels per resolution element) comes
//!   from the visit's LSF sigma when known, else APOGEE's per-chip 5 / 4.25 / 3.5 for a 3-chip
//!   visit, else 2 (Nyquist). The fractional pixel position of an output pixel is linear in
//!   ln(lambda) between the two neighbouring pixels (exact for log-uniform pixels).
//! - Masks: `Drop` interpolates the good pixels only and gives no value outside the first..last
//!   good pixel of a piece (Casey 2025; the revised figures). The damped sinc works on the
//!   pixel grid, so in `Drop` mode a bad pixel's kernel weight goes to its two nearest good
//!   neighbours by linear interpolation (the APOGEE pipeline replaces bad pixels by a smoothed
//!   spectrum instead, which is not linear in the data). `Conservative` interpolates every pixel,
//!   bad ones included (non-finite values enter as 0), interpolates the 0/1 good-pixel mask with
//!   the same weights, and keeps an output pixel only where |b' - 1| < 0.03 (Hogg 2024). For the
//!   variance, a bad pixel counts with the piece's median good-pixel variance.
//! - Selection function: standard practice cannot multiply a model by S, so in `Multiply` mode it
//!   divides the data by S (flux / S, ivar S^2; S < `MIN_SELECTION` is bad). That is what standard
//!   practice does with telluric-corrected spectra.
//! - Averaging: `Uniform` = the plain mean of the pieces covering a pixel (the paper's code);
//!   `InverseVariance` weights each piece by 1 / its propagated variance; `ApogeePipeline` is
//!   the APOGEE pipeline's apStar row 0 (each visit divided by its continuum, an
//!   inverse-variance mean, times the mean continuum; its own persistence and sky-line rules in
//!   place of the pixel policy's inflation: `continuum.rs`), the default for APOGEE data. Either weight is
//!   multiplied by the visit's weight multiplier k, in the forward model's sense (its
//!   w = ivar * k): an integer k averages as if the visit were in the data k times, and k -> 0
//!   approaches leaving it out. The variance is that of the weighted mean,
//!   `C[l, l+k] = sum u_l u_(l+k) C_piece[l, l+k] / (sum u_l sum u_(l+k))` with each piece's
//!   actual noise (putting the visit in the data k times would instead count its noise as k
//!   independent copies).
//! - Flags: APOGEE's `maskcontrib` rule: each bit plane is interpolated linearly over all pixels
//!   of the piece and the bit is set where the result exceeds 0.1; pieces are ORed.
//! - Per-visit predictions interpolate the combined result back to each visit's rest positions
//!   with a natural cubic spline, times S.
//!
//! Speed (the window recomputes on every slider step): the per-piece interpolation is memoised
//! in a [`StandardCache`] (rows keyed by the visit, its shift, its good-pixel mask, the grid and
//! the interpolator; interpolated values and (co)variances additionally by a hash of the data),
//! so a change of visit weights, inclusion or the weighting only re-averages. Pieces are computed
//! in parallel and the average runs in parallel over runs of output pixels, each pixel summing
//! its pieces in dataset order: results do not depend on the thread count or on the cache.

mod averaging;
mod cache;
mod continuum;
mod interpolators;
mod pieces;
pub use cache::StandardCache;
pub use interpolators::{NaturalSpline, Row, SplineModel, interpolation_rows, sinc_row};
mod method;
pub use method::{combine_standard, combine_standard_with_cache};
