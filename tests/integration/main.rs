//! The integration tests: one binary, one module per area.

#[cfg(feature = "gui")]
mod frametime;
mod extensions;
mod fuzz;
mod cli;
mod io;
mod local;
mod standard;
mod synth;
#[cfg(feature = "gui")]
mod teaching;
fn main() {}
mod properties;
mod reference;
