//! The integration tests: one binary, one module per area.

mod extensions;
#[cfg(feature = "gui")]
mod frametime;
mod io;
mod local;
mod standard;
mod synth;
#[cfg(feature = "gui")]
mod teaching;
fn main() {}
mod properties;
mod reference;
