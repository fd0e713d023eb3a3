//! Output grids, uniform in ln(lambda).

/// The most output pixels any grid may have (explicit, automatic or from an input file): 116
/// times the APOGEE apStar grid (8575 px) and 215 times the BOSS grid (4648 px); an R = 100 000
/// echelle spectrum from 3800 to 9000 Angstrom at 2.5 pixels per resolution element needs 216 000.
pub const MAX_GRID_PIXELS: usize = 1_000_000;

/// An output grid: rest-frame ln(lambda/Angstrom), strictly increasing.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OutputGrid {
    /// ln(lambda / Angstrom) of each output pixel.
    pub ln_wave: Vec<f64>,
    /// When the grid is log-linear in log10: (CRVAL1 = log10 of the first pixel, CDELT1).
    pub log10_linear: Option<(f64, f64)>,
}

impl OutputGrid {
    /// `log10(lambda) = log10_start + log10_step * i`, `i = 0..n`.
    #[must_use]
    pub fn log_linear(log10_start: f64, log10_step: f64, n: usize) -> Self {
        let ln10 = std::f64::consts::LN_10;
        let ln_wave = (0..n)
            .map(|i| (log10_start + log10_step * i as f64) * ln10)
            .collect();
        Self {
            ln_wave,
            log10_linear: Some((log10_start, log10_step)),
        }
    }

    /// The APOGEE apStar grid: log10 lambda = 4.179 + 6e-6 i, 8575 pixels.
    #[must_use]
    pub fn apogee() -> Self {
        Self::log_linear(4.179, 6e-6, 8575)
    }

    /// The BOSS grid used by astra: log10 lambda = 3.5523 + 1e-4 i, 4648 pixels.
    #[must_use]
    pub fn boss() -> Self {
        Self::log_linear(3.5523, 1e-4, 4648)
    }

    /// An explicit grid in ln(lambda). Returns `None` unless strictly increasing and finite with at
    /// least two pixels.
    #[must_use]
    pub fn from_ln(ln_wave: Vec<f64>) -> Option<Self> {
        let ok = ln_wave.len() >= 2
            && ln_wave.iter().all(|x| x.is_finite())
            && ln_wave.windows(2).all(|p| p[1] > p[0]);
        ok.then_some(Self {
            ln_wave,
            log10_linear: None,
        })
    }

    /// Number of pixels.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ln_wave.len()
    }

    /// True if there are no pixels.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ln_wave.is_empty()
    }

    /// Wavelengths in Angstrom.
    #[must_use]
    pub fn wavelength_aa(&self) -> Vec<f64> {
        self.ln_wave.iter().map(|x| x.exp()).collect()
    }

    /// Mean spacing in ln(lambda).
    #[must_use]
    pub fn mean_step(&self) -> f64 {
        let n = self.ln_wave.len();
        if n < 2 {
            return f64::NAN;
        }
        (self.ln_wave[n - 1] - self.ln_wave[0]) / (n - 1) as f64
    }

    /// The sub-grid of pixels with indices in `range`.
    #[must_use]
    pub fn slice(&self, range: std::ops::Range<usize>) -> Self {
        let log10_linear = self
            .log10_linear
            .map(|(start, step)| (start + step * range.start as f64, step));
        Self {
            ln_wave: self.ln_wave[range].to_vec(),
            log10_linear,
        }
    }
}
