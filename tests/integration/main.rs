//! The integration tests: one binary, one module per area.

mod io;
mod synth;
fn main() {}

mod local;
