//! The built-in combination methods as [`crate::combine::Method`]s: the forward model (with its
//! extensions) and standard practice.

mod forward;
mod standard;

pub use forward::ForwardModel;
pub use standard::StandardPractice;
