//! apStar-like FITS export (in progress).
