//! The integration tests: one binary, one module per area.

mod cli;
mod engine;
mod experiment;
mod extensions;
#[cfg(feature = "gui")]
mod frametime;
mod fuzz;
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
mod smoke;
#[cfg(feature = "gui")]
mod teaching;
#[cfg(feature = "gui")]
mod ui;
