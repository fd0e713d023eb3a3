//! The integration tests: one binary, one module per area.

mod experiment;
mod io;
mod local;
mod standard;
mod synth;
#[cfg(feature = "gui")]
mod teaching;
