//! # frizzview
//!
//! Combine many exposures ("visits") of one star into one mean spectrum with the Frizzle forward
//! model (Hogg & Casey 2024, arXiv:2403.11011), and compare with standard practice.
//!
//! This package is the command line ([`cli`]) and the window (`app`, feature `gui`, the only
//! module that imports egui); both save pictures through [`png`]. Everything they compute comes from the core library
//! [`frizzview_core`], whose modules are re-exported here under their own names; see
//! ARCHITECTURE.md for the layers.

pub use frizzview_core::{
    combine, engine, experiment, export, fetch, io, model, numeric, settings, synth, velocity,
    vocab,
};

pub mod cli;
pub mod png;

#[cfg(feature = "gui")]
pub mod app;
