//! The integration tests: one binary, one module per area.

mod io;
mod local;
mod synth;
#[cfg(feature = "gui")]
mod frametime;
#[cfg(feature = "gui")]
mod teaching;
