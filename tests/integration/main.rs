//! The integration tests: one binary, one module per area.

mod cli;
mod experiment;
mod extensions;
#[cfg(feature = "gui")]
mod frametime;
mod io;
mod local;
mod properties;
mod reference;
mod standard;
mod synth;
#[cfg(feature = "gui")]
mod teaching;
