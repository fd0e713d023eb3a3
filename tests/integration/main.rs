//! The integration tests: one binary, one module per area.

// Tests may unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

mod cli;
mod engine;
mod experiment;
mod extensions;
mod fetch;
#[cfg(feature = "gui")]
mod fetch_window;
#[cfg(feature = "gui")]
mod frametime;
mod fuzz;
mod io;
mod local;
mod properties;
mod real_star;
mod reference;
mod sas_server;
#[cfg(feature = "gui")]
mod smoke;
mod standard;
mod synth;
#[cfg(feature = "gui")]
mod teaching;
#[cfg(feature = "gui")]
mod ui;
