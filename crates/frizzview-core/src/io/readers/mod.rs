//! One module per input format. Each has a [`Reader`](crate::io::reader::Reader) that says from a
//! file's content whether it reads the file and reads it; [`crate::io::registry`] lists them.

pub mod allvisit;
pub mod apcframe;
pub mod apogee;
pub mod apstar;
pub mod apvisit;
pub mod boss;
pub mod frizzview_result;
pub mod lamost;
pub mod mwm;
pub mod npz;
mod shared;
pub mod table;
