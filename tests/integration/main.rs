//! The integration tests: one binary, one module per area.

// Tests may unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

mod bounds;
mod cframe;
mod cli;
mod engine;
mod experiment;
mod extensions;
#[cfg(feature = "gui")]
mod faults;
mod fetch;
#[cfg(feature = "gui")]
mod fetch_window;
#[cfg(feature = "gui")]
mod frametime;
mod fuzz;
mod gz;
mod image_engine;
mod image_geom;
mod image_real;
mod io;
mod lamost;
mod local;
mod loo;
mod methods;
#[cfg(feature = "gui")]
mod monkey;
mod multistar;
mod policy;
mod properties;
mod real_star;
mod reference;
mod restframe;
mod sas_server;
mod sdss5;
mod sdss5_boss_mwm;
mod shared;
#[cfg(feature = "gui")]
mod smoke;
mod standard;
mod synth;
#[cfg(feature = "gui")]
mod teaching;
#[cfg(feature = "gui")]
mod ui;
#[cfg(feature = "gui")]
mod ui_companions;
#[cfg(feature = "gui")]
mod ui_hostile;
#[cfg(feature = "gui")]
mod ui_images;
#[cfg(feature = "gui")]
mod ui_velocity;
mod ui_yrange;
mod velocity;
