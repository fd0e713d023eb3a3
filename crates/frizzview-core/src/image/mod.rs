//! The image mode: combine dithered exposures of one field into one image on a regular output
//! grid, by the 2-D Frizzle forward model ([`frizzle2d`]) and by standard practice, drizzle's
//! square kernel ([`drizzle`]). Inputs and geometry: celestial WCS (TAN, TAN-SIP, TPV), the output
//! grid and pixmaps ([`wcs`]), and the readers of exposures ([`read`]). A seeded synthetic
//! generator with truth is in [`synth`].
//!
//! Geometry enters the engine only through each exposure's pixmap (drizzle's convention): where
//! every input pixel centre lands on the output grid. Inputs are intensities (surface
//! brightness), not fluxes: the model is the mean intensity at each position, so no pixel-area
//! rescaling is applied.

pub mod drizzle;
pub mod frizzle2d;
pub mod nufft2;
pub mod pipeline;
pub mod read;
pub mod synth;
pub mod wcs;

/// One exposure as the engine sees it. pixmap[[iy, ix, 0]] / [[iy, ix, 1]] = the output-grid x / y
/// (0-based output pixel centres, drizzle's pixmap convention) of input pixel (iy, ix)'s centre.
#[derive(Clone, Debug)]
pub struct Exposure2d {
    pub name: String,
    pub sci: ndarray::Array2<f64>,
    pub ivar: ndarray::Array2<f64>,
    pub pixmap: ndarray::Array3<f64>,
    pub weight: f64,
    pub include: bool,
}

/// What is wrong with image-mode inputs or settings.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// An exposure's arrays disagree in shape or hold no usable pixel.
    #[error("exposure {name}: {what}")]
    Exposure { name: String, what: String },
    /// The output grid or the settings cannot be used.
    #[error("image settings: {0}")]
    Settings(String),
    /// A linear solve failed (not positive definite, or no data).
    #[error("image solve: {0}")]
    Solve(String),
}

impl Exposure2d {
    /// A plain exposure (weight 1, included) after checking that the arrays agree in shape.
    ///
    /// # Errors
    /// [`ImageError::Exposure`] naming the exposure when the shapes disagree.
    pub fn new(
        name: impl Into<String>,
        sci: ndarray::Array2<f64>,
        ivar: ndarray::Array2<f64>,
        pixmap: ndarray::Array3<f64>,
    ) -> Result<Self, ImageError> {
        let e = Self {
            name: name.into(),
            sci,
            ivar,
            pixmap,
            weight: 1.0,
            include: true,
        };
        e.check()?;
        Ok(e)
    }

    /// Checks shapes (sci, ivar and pixmap (ny, nx, 2) agree) and the scalar weight.
    ///
    /// # Errors
    /// [`ImageError::Exposure`] naming the exposure and the problem.
    pub fn check(&self) -> Result<(), ImageError> {
        let bad = |what: String| ImageError::Exposure {
            name: self.name.clone(),
            what,
        };
        let (ny, nx) = self.sci.dim();
        if ny == 0 || nx == 0 {
            return Err(bad("empty image".into()));
        }
        if self.ivar.dim() != (ny, nx) {
            return Err(bad(format!(
                "ivar shape {:?} differs from sci {:?}",
                self.ivar.dim(),
                (ny, nx)
            )));
        }
        if self.pixmap.dim() != (ny, nx, 2) {
            return Err(bad(format!(
                "pixmap shape {:?} is not (ny, nx, 2) = {:?}",
                self.pixmap.dim(),
                (ny, nx, 2)
            )));
        }
        if !(self.weight >= 0.0) || !self.weight.is_finite() {
            return Err(bad(format!(
                "weight {} is not a finite number >= 0",
                self.weight
            )));
        }
        Ok(())
    }
}
