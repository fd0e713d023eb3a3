//! # frizzview
//!
//! Combine many exposures ("visits") of one star into one mean spectrum with the Frizzle forward
//! model (Hogg & Casey 2024, arXiv:2403.11011), and compare with standard practice.
//!
//! Architecture (data flows top to bottom):
//!
//! - [`model`]: visits, output grids, bitmasks. Plain data; no I/O, no egui.
//! - [`io`]: readers (apVisit, BOSS spec, tables, CSV, `.npz`) producing a [`model::Dataset`], and
//!   writers (apStar-like FITS, CSV, `.npz`), all atomic.
//! - [`settings`]: one validated, comparable [`settings::Settings`] value.
//! - [`combine`]: `prepare` (shifts, masks, weights, selection function), then the methods:
//!   the forward model (Fourier basis: exact Toeplitz solver; local basis: banded, live) and
//!   standard practice; a dense reference for tests; the extensions of issue 6.
//! - [`synth`]: seeded synthetic data (the paper's generator, an APOGEE-like one).
//! - [`experiment`]: the paper's noise test (both methods, residual covariance against lag).
//! - [`engine`]: a worker thread that runs the newest request, drops stale ones, survives a
//!   panicking job, and owns byte-bounded caches ([`combine::memo`]).
//! - [`cli`]: the command line (`combine`, `synth`, `bench`, `experiment`).
//! - `app` (feature `gui`): the eframe window. The only module that imports egui.

pub mod cli;
pub mod combine;
pub mod engine;
pub mod experiment;
pub mod io;
pub mod model;
pub mod settings;
pub mod synth;

#[cfg(feature = "gui")]
pub mod app;
