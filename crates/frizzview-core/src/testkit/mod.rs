//! Fixture writers: synthetic files in the real survey layouts, for the tests and the synthetic
//! generators ([`crate::synth`]). Not part of the reading code; nothing in [`crate::io`] uses it.

pub mod sdss_layouts;
pub mod write_layouts;
