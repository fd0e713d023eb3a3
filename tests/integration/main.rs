//! The integration tests: one binary, one module per area.

mod extensions;
mod io;
mod local;
mod synth;
#[cfg(feature = "gui")]
mod teaching;
