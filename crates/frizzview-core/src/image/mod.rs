//! The image mode's inputs and geometry: celestial WCS (TAN, TAN-SIP, TPV), the output grid and
//! pixmaps ([`wcs`]), and the readers of exposures ([`read`]). Their product, one
//! [`Exposure2d`] per exposure, is the input of the image engine.

pub mod read;
pub mod wcs;

/// One exposure ready for the image engine: science values, inverse variance and where each
/// input pixel lands on the output grid.
pub struct Exposure2d {
    pub name: String,
    pub sci: ndarray::Array2<f64>,
    pub ivar: ndarray::Array2<f64>,
    pub pixmap: ndarray::Array3<f64>,
    pub weight: f64,
    pub include: bool,
}
