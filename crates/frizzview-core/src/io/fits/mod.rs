//! The FITS layer under every FITS reader: cfitsio opened only through [`open::open`] (read sandbox,
//! structural check of the HDU sizing in [`layout`], gzip in [`gz`], panic guard), and defensive
//! readers of cards, images and columns ([`hdu`]). Writers create files through [`disk::create`].
//!
//! `fitsio::FitsFile` is not `Send`: it never leaves the function that opened it.

pub mod disk;
pub mod gz;
pub mod hdu;
pub mod layout;
pub mod open;

pub(crate) use disk::OpenFits;
pub(crate) use hdu::{
    HduDesc, check_rows, column_bits, column_f64, column_text, hdus, image_f64, key_f64,
    key_string, label,
};
pub use open::{ReadSandbox, guarded_panics, preflight, run_guarded, set_read_sandbox};
pub(crate) use open::{guard, open};
