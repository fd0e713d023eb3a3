//! The combination engine: Frizzle's forward model and standard practice.
//!
//! The forward model (Hogg & Casey 2024) fits one linear model f(x; theta) = sum_j theta_j g_j(x)
//! to every good pixel of every visit at its rest-frame position x - dx_i, optionally multiplied by
//! the visit's selection factor S:
//!
//! ```text
//!   y_ik = S_ik f(x_ik - dx_i; theta) + noise,      w_ik = ivar_ik * weight_i  (0 = masked)
//!   theta = (X^T W X)^-1 X^T W y,   y* = X* theta,   C* = X* (X^T W X)^-1 X*^T
//! ```
//!
//! and evaluates it on the output grid x*. Standard practice shifts, interpolates and averages.
//!
//! Data flow: [`prepare`] turns a [`Dataset`] and [`Settings`] into per-visit rest-frame pixels
//! with weights ([`Prepared`]); a method (`fourier`, `local`, `standard`) turns that into a
//! [`MethodResult`]; [`combine`] runs the requested methods (each
//! with its own outcome: one failing keeps the other) and collects warnings. Nothing here
//! imports egui.

mod caches;
pub mod censor;
pub mod constrained;
pub mod dense;
pub mod dither;
pub mod extensions;
mod forward;
pub mod fourier;
pub mod local;
pub mod memo;
mod method;
mod methods;
mod pipeline;
mod prepare;
pub mod quadrature;
mod quality;
mod registry;
pub mod standard;
mod types;
mod warning;

pub use caches::Caches;
pub use forward::fit_forward_plain;
pub use method::{Inputs, Method};
pub use methods::{ForwardModel, StandardPractice};
pub use pipeline::{
    combine, combine_methods, combine_staged, combine_with, complete_leave_one_out,
    complete_leave_one_out_methods,
};
pub use prepare::{file_frame_factor, file_frame_factor_at, prepare};
pub use quality::fit_quality;
pub use registry::METHODS;
pub use types::{
    Cancel, CombineError, Combined, FORWARD, MethodInfo, MethodOutcome, MethodResult, Prepared,
    PreparedVisit, STANDARD, SpectrumModel, VelocityZeroPoint, VisitFit, VisitUsed, visit_fits,
};
pub use warning::{OUTLIER_LOO_CHI2_NU, OUTLIER_LOO_FACTOR, POOR_FIT_CHI2_NU, Warning};
