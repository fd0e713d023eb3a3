//! # frizzview-core
//!
//! The library behind frizzview: combine many exposures ("visits") of one star into one mean
//! spectrum with the Frizzle forward model (Hogg & Casey 2024, arXiv:2403.11011), and compare with
//! standard practice (shift, interpolate, average). No window, no command line: the `frizzview`
//! package (CLI and window) and the Python package `frizzview` are built on top of it.
//!
//! Modules, in the order data flows through them (each uses only those above it):
//!
//! - [`numeric`]: small shared numerical functions (median, sinc).
//! - [`model`]: visits, output grids, bitmasks. Plain data; no I/O.
//! - [`io`]: readers (apVisit, BOSS spec, tables, CSV, `.npz`) producing a [`model::Dataset`], the
//!   dataset bundle writer and the atomic-write helpers.
//! - [`settings`]: one validated, comparable [`settings::Settings`] value.
//! - [`vocab`]: the text names of the settings' choices, the output format of an extension and
//!   visits named by the user: what the command line, the window and Python parse.
//! - [`combine`]: `prepare` (shifts, masks, weights, selection function), then the methods:
//!   the forward model (Fourier basis: exact Toeplitz solver; local basis: banded, live) and
//!   standard practice; a dense reference for tests; the extensions (fitted shifts, robust
//!   weights, per-visit normalisation, LSF).
//! - [`export`]: results written as an apStar-like FITS file, `.npz` and CSV, atomically.
//! - [`synth`]: seeded synthetic data (the paper's generator, an APOGEE-like one).
//! - [`experiment`]: the paper's noise test (both methods, residual covariance against lag).
//! - [`fetch`]: a star's SDSS files from a local mirror, the cache, or the archive over HTTPS.
//! - [`engine`]: a worker thread that runs the newest request, drops stale ones, and caches.
//! - [`image`]: the image mode: WCS (TAN, TAN-SIP, TPV), pixmaps and the readers of exposures.

pub mod cancel;
pub mod combine;
pub mod engine;
pub mod experiment;
pub mod export;
pub mod fetch;
pub mod image;
pub mod io;
pub mod model;
pub mod numeric;
pub mod restframe;
pub mod settings;
pub mod synth;
#[doc(hidden)]
pub mod testkit;
pub mod velocity;
pub mod vocab;
