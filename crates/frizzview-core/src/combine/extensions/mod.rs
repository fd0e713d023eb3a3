//! Extensions beyond the paper (Hogg & Casey 2024, arXiv:2403.11011 §5 lists them as future
//! work): shift fitting, robust reweighting, per-visit
//! normalization and per-visit LSF.
//!
//! Every extension changes only what a plain solver already takes: the rest-frame positions
//! (`x_rest`, through `dx`), the weights `w` and the model multiplier `s` of a clone of
//! [`Prepared`], plus the LSF width. So they work with any basis: [`fit_with`] takes the plain
//! solver as a closure and alternates
//!
//! 1. solve for the spectrum with the current shifts, weights and normalizations;
//! 2. with the model fixed, refit each visit's shift (Gauss-Newton, analytic model derivative),
//!    then its normalization polynomial (linear least squares), then its robust weights;
//!
//! until nothing changes by more than its tolerance ([`SHIFT_TOL_KMS`], [`NORM_TOL`],
//! [`WEIGHT_TOL`]) or [`MAX_ROUNDS`] rounds, and returns the solve with the final parameters.
//!
//! Choices (the reasons are in each submodule):
//! - Shifts: the visit being fitted stays in the model. Alternating a full solve with per-visit
//!   shift fits is then block coordinate descent on one joint chi^2, which converges to the joint
//!   maximum-likelihood shifts (in the linearised problem in one round); leaving the visit out
//!   would need N solves per round for the same fixed point. Shifts are only defined up to a
//!   common offset (the model can move with them), so after each round every shift is moved by
//!   the same amount to make the mean fitted shift of the included visits equal the mean header
//!   shift: the zero point is the headers'. The error starts from the curvature,
//!   sigma_dx^2 = 1 / sum w (S f')^2, inflated by chi^2/nu when that exceeds 1, plus the
//!   template's own noise as it moves this visit's shift relative to the anchor (see
//!   `template_errors`; from the solver's band of C*). Without it the pulls came out 1.2 for
//!   N = 3 visits and 1.04-1.13 for N = 8 with a cubic-spline basis; counting the template noise
//!   per visit but not its cancellation in the anchor gave 0.94 with the smooth local kernel. The reported error is relative to the anchor (see
//!   [`anchored_errors`]) and excludes the zero point's own error, which the result states
//!   separately (`MethodResult::velocity_zero_point`: the anchor's value, and the scatter of
//!   header minus fitted velocities / sqrt N).
//!   A visit the leave-one-out scores name as an outlier (the rule of the poor-fit warning) is
//!   left out of the model the shifts are fitted against, and out of the anchor; its own shift is
//!   fitted against the others, and the returned solve uses every included visit
//!   ([`crate::settings::ShiftFitModel`]; the joint fit let the S/N 3.3 visit of the real
//!   16-visit star, leave-one-out chi^2/nu 681, pull visits 13 and 14 by 3-4 km/s).
//!   The refits leave out the grid's last [`EDGE_GUARD_PIXELS`] at each end, where every basis is
//!   truncated, with a smooth taper.
//! - Robust weights multiply the weights; the noise scale is the data's own ivar.
//! - Normalization: mean polynomial over included visits fixed to 1.
//! - LSF: the model is at the sharpest included visit's resolution; others see it convolved with
//!   the Gaussian difference kernel.

mod lsf;
mod normalize;
mod robust;
mod shifts;
pub use normalize::{legendre, legendre_domain};
pub use robust::robust_weight;
mod rounds;
pub use rounds::{
    EDGE_GUARD_PIXELS, EDGE_TAPER_PIXELS, MAX_ROUNDS, NORM_TOL, RESULT_TOL, SHIFT_TOL_KMS, Solver,
    TRUST_KMS, WEIGHT_TOL, anchored_errors, any_active, fit_forward, fit_with, fit_with_model,
};
