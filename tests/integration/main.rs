//! The integration tests: one binary, one module per area.

// Tests may unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

mod cli;
mod engine;
mod experiment;
mod extensions;
#[cfg(feature = "gui")]
mod faults;
#[cfg(feature = "gui")]
mod frametime;
mod fuzz;
mod io;
mod local;
#[cfg(feature = "gui")]
mod monkey;
mod properties;
mod reference;
#[cfg(feature = "gui")]
mod smoke;
mod standard;
mod synth;
#[cfg(feature = "gui")]
mod teaching;
#[cfg(feature = "gui")]
mod ui;
