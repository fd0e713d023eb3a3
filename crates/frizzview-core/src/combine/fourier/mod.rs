//! Forward model in the paper's Fourier basis: exact, fast, and in two modes.
//!
//! # Function space and why it is fast
//! The paper's real basis {1, cos Ku, sin Ku : K = 1..m} (u = (x - x0) 2 pi / L) spans the same
//! functions as the complex exponentials e^{iku}, k = -m..m, so y* and C* are identical. With
//! complex exponentials the normal matrix `A_jk = sum_i w_i s_i^2 e^{i(k-j)u_i}` is Hermitian
//! Toeplitz and is filled from one type-1 NUFFT W(d), d = 0..2m; the right side is another. The
//! system is solved by Levinson's recursion (O(P^2)) and the Gohberg-Semencul form of A^-1, which
//! also gives the sums along A^-1's diagonals in O(P log P). Those sums are the Fourier
//! coefficients of the variance `C*(u, u) = sum_d D(d) e^{-idu}` and, on a uniform output grid,
//! of each covariance lag `C*(u, u + delta)`, so diag C* and its band cost type-2 NUFFTs.
//! No P x P matrix is ever built.
//!
//! # Modes
//! - compat (`ForwardSettings::compat`): frizzle 0.2.8 exactly. Pixels of included visits that are
//!   unmasked and inside [x*_0, x*_last] enter; P = n_modes or min(M*, #unmasked) made odd (an
//!   explicit even n_modes is an error: frizzle's even basis is rank-deficient); period
//!   L = span / (1 - small) with small = span / (1 + M*); origin x*_0; frizzle's censoring and
//!   flags (`censor::Rule::Compat`). No-data pixels get NaN flux and NaN variance (frizzle puts
//!   NaN flux and +inf in those *columns* of C*; we report NaN, also in the band).
//! - fixed (default): the output grid is split at data gaps (runs of more than [`GAP_PIXELS`]
//!   no-data output pixels, e.g. chip gaps) and each segment is solved on its own with period
//!   L = 1.2 x its span (at least the fitted pixels' extent plus two output steps), m scaled by
//!   L / span to keep the band limit (P = 2m + 1, odd; an even request P = 2m' is honoured as
//!   m = m' before scaling) and a ridge of 1e-6 x the diagonal. Input pixels up to
//!   [`EDGE_PIXELS`] output spacings beyond a segment's ends enter too (they pin down the end
//!   pixels). Censoring and flags follow `censor::Rule::Fixed`. Covariance between different
//!   segments is zero (independent fits).

mod method;
pub mod nufft;
pub mod toeplitz;
pub mod trench;
pub use method::{
    COND_WARN, EDGE_PIXELS, FourierModel, GAP_PIXELS, PAD_FACTOR, Plan, RIDGE_REL, Segment,
    SegmentSolution, SegmentSystem, factor_segment, fit, plan, solve_segment, solve_system,
};
