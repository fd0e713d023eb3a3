//! Combination settings: one validated, comparable, serialisable value.
//!
//! The window derives a [`Settings`] from its widgets every frame and recomputes when it changes;
//! the command line builds one from its flags; exported files record it so a result can be
//! reproduced from its own file.

use crate::model::{self, OutputGrid, VelocityKind};

/// Which output grid to evaluate the combined spectrum on.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum GridSpec {
    /// APOGEE apStar: log10 lambda = 4.179 + 6e-6 i, 8575 px.
    Apogee,
    /// BOSS (astra): log10 lambda = 3.5523 + 1e-4 i, 4648 px.
    Boss,
    /// Log-linear, spanning the data, with the data's median pixel spacing.
    Auto,
    /// The grid that came with the input (reference bundles); Auto if there is none.
    FromInput,
    /// An explicit log-linear grid.
    LogLinear {
        /// log10 of the first pixel's wavelength (Angstrom).
        log10_start: f64,
        /// Step in log10.
        log10_step: f64,
        /// Number of pixels.
        n: usize,
    },
}

/// Which stored velocity sets each visit's shift (a per-visit override wins).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ShiftSource {
    /// No shift: combine in the observed frame (or the data are already rest frame).
    None,
    /// The star's velocity relative to the observer (APOGEE VRAD): star rest frame. Default.
    Vrel,
    /// Minus the barycentric correction: barycentric frame only.
    MinusBc,
    /// The true velocity of a synthetic visit.
    True,
}

impl ShiftSource {
    /// The velocity this source gives for a visit, if the visit has it.
    #[must_use]
    pub fn velocity(self, meta: &model::VisitMeta) -> Option<f64> {
        match self {
            Self::None => Some(0.0),
            Self::Vrel => meta.velocity(VelocityKind::Vrel),
            Self::MinusBc => meta.velocity(VelocityKind::Bc).map(|v| -v),
            Self::True => meta.velocity(VelocityKind::True),
        }
    }

    /// Human-readable name (also the CLI value).
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Vrel => "vrad",
            Self::MinusBc => "-bc",
            Self::True => "true",
        }
    }
}

/// Per-pixel weighting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Weighting {
    /// Weight = inverse variance (default).
    InverseVariance,
    /// Weight = 1 for every good pixel.
    Uniform,
}

/// What to do with a visit's multiplicative selection factor S (telluric transmission...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SelectionMode {
    /// Pretend S = 1.
    Ignore,
    /// Multiply the model by S (row-scale the design matrix): the data stay as observed.
    Multiply,
    /// Divide the data by S (flux / S, ivar * S^2); pixels with S below [`MIN_SELECTION`] get
    /// zero weight.
    Divide,
}

/// Selection factors below this are treated as zero (no information) when dividing.
pub const MIN_SELECTION: f64 = 1e-3;

/// Per-visit settings, aligned with the dataset's visits.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VisitSetting {
    /// Include the visit in the combination.
    pub include: bool,
    /// Weight multiplier (>= 0).
    pub weight: f64,
    /// Manual velocity (km/s) overriding the shift source.
    pub shift_kms: Option<f64>,
}

impl Default for VisitSetting {
    fn default() -> Self {
        Self {
            include: true,
            weight: 1.0,
            shift_kms: None,
        }
    }
}

/// Basis of the forward model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Basis {
    /// The paper's real Fourier series in ln(lambda) (exact, Toeplitz fast path).
    Fourier,
    /// A compactly supported basis on the output grid (banded; the live path).
    Local,
}

/// Forward-model (Frizzle) settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ForwardSettings {
    /// Basis functions.
    pub basis: Basis,
    /// Reproduce frizzle 0.2.8 exactly (odd P, its period, censoring and flag rules), including
    /// its documented defects. Off = the fixed default mode.
    pub compat: bool,
    /// Number of Fourier modes P; `None` = frizzle's rule (M*, or fewer good pixels, made odd).
    pub n_modes: Option<usize>,
}

impl Default for ForwardSettings {
    fn default() -> Self {
        Self {
            basis: Basis::Fourier,
            compat: false,
            n_modes: None,
        }
    }
}

/// Interpolator for standard practice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Interpolator {
    /// Natural cubic spline through the good pixels (the paper's).
    CubicSpline,
    /// Linear.
    Linear,
    /// The APOGEE pipeline's damped sinc (sincint).
    DampedSinc,
}

/// How standard practice treats bad pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StandardMask {
    /// Drop bad pixels before interpolating (Casey 2025; the revised figures).
    Drop,
    /// Interpolate data and a 0/1 mask, keep output pixels with |b' - 1| < 0.03 (Hogg 2024).
    Conservative,
}

/// Standard-practice (shift, interpolate, average) settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StandardSettings {
    /// Interpolator.
    pub interpolator: Interpolator,
    /// Averaging weights.
    pub weighting: Weighting,
    /// Mask handling.
    pub mask: StandardMask,
}

impl Default for StandardSettings {
    fn default() -> Self {
        Self {
            interpolator: Interpolator::CubicSpline,
            weighting: Weighting::InverseVariance,
            mask: StandardMask::Drop,
        }
    }
}

/// Robust reweighting of the forward model.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Robust {
    /// Huber weights with this threshold in sigma.
    Huber(f64),
    /// Cauchy weights with this scale in sigma.
    Cauchy(f64),
    /// Sigma clipping at this many sigma.
    SigmaClip(f64),
}

/// Per-visit line-spread-function handling.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum LsfMode {
    /// No convolution (the paper).
    Off,
    /// Convolve the model with each visit's Gaussian LSF from its metadata, minus the narrowest.
    FromVisits,
}

/// Extensions beyond the paper (issue 6).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Extensions {
    /// Fit each visit's shift against the combined model, alternating to convergence.
    pub fit_shifts: bool,
    /// Robust reweighting.
    pub robust: Option<Robust>,
    /// Degree of a per-visit multiplicative Legendre continuum fitted jointly; `None` = off.
    pub normalization_degree: Option<usize>,
    /// Per-visit LSF.
    pub lsf: LsfMode,
}

impl Default for Extensions {
    fn default() -> Self {
        Self {
            fit_shifts: false,
            robust: None,
            normalization_degree: None,
            lsf: LsfMode::Off,
        }
    }
}

/// Everything that determines a combination.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Output grid.
    pub grid: GridSpec,
    /// Shift source.
    pub shift: ShiftSource,
    /// Pixel weighting of the forward model.
    pub weighting: Weighting,
    /// Per-visit settings (missing entries = defaults).
    pub visits: Vec<VisitSetting>,
    /// Mask bits that make a pixel bad.
    pub bad_bits: u64,
    /// Selection-function handling.
    pub selection: SelectionMode,
    /// Forward model; `None` = not computed.
    pub forward: Option<ForwardSettings>,
    /// Standard practice; `None` = not computed.
    pub standard: Option<StandardSettings>,
    /// Number of covariance lags to compute beyond 0 (K >= 5).
    pub band_lags: usize,
    /// Extensions.
    pub extensions: Extensions,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            grid: GridSpec::Auto,
            shift: ShiftSource::Vrel,
            weighting: Weighting::InverseVariance,
            visits: Vec::new(),
            bad_bits: model::mask::APOGEE_BAD_BITS,
            selection: SelectionMode::Multiply,
            forward: Some(ForwardSettings::default()),
            standard: Some(StandardSettings::default()),
            band_lags: 5,
            extensions: Extensions::default(),
        }
    }
}

/// Problems with a [`Settings`] value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error("visit {visit}: weight {weight} is not a finite non-negative number")]
    BadWeight { visit: usize, weight: f64 },
    #[error("visit {visit}: velocity {v} km/s is not finite or not above -c")]
    BadVelocity { visit: usize, v: f64 },
    #[error("output grid: {0}")]
    BadGrid(String),
    #[error("{0}")]
    Other(String),
}

impl Settings {
    /// The settings of visit `i` (defaults when not given).
    #[must_use]
    pub fn visit(&self, i: usize) -> VisitSetting {
        self.visits.get(i).cloned().unwrap_or_default()
    }

    /// Check every value; the combination calls this first.
    pub fn validate(&self) -> Result<(), SettingsError> {
        for (i, v) in self.visits.iter().enumerate() {
            if !(v.weight.is_finite() && v.weight >= 0.0) {
                return Err(SettingsError::BadWeight {
                    visit: i,
                    weight: v.weight,
                });
            }
            if let Some(s) = v.shift_kms
                && !(s.is_finite() && s > -model::C_KMS * 0.99)
            {
                return Err(SettingsError::BadVelocity { visit: i, v: s });
            }
        }
        if let GridSpec::LogLinear {
            log10_start,
            log10_step,
            n,
        } = self.grid
            && !(log10_start.is_finite() && log10_step.is_finite() && log10_step > 0.0 && n >= 2)
        {
            return Err(SettingsError::BadGrid(format!(
                "log-linear grid start {log10_start} step {log10_step} n {n} is not valid"
            )));
        }
        if let Some(f) = &self.forward
            && f.n_modes == Some(0)
        {
            return Err(SettingsError::Other(
                "the number of modes must be positive".into(),
            ));
        }
        if let Some(Robust::Huber(t) | Robust::Cauchy(t) | Robust::SigmaClip(t)) =
            self.extensions.robust
            && !(t.is_finite() && t > 0.0)
        {
            return Err(SettingsError::Other(format!(
                "robust threshold {t} must be positive"
            )));
        }
        Ok(())
    }

    /// Resolve the grid specification against a dataset's visits.
    pub fn resolve_grid(&self, data: &model::Dataset) -> Result<OutputGrid, SettingsError> {
        match &self.grid {
            GridSpec::Apogee => Ok(OutputGrid::apogee()),
            GridSpec::Boss => Ok(OutputGrid::boss()),
            GridSpec::LogLinear {
                log10_start,
                log10_step,
                n,
            } => Ok(OutputGrid::log_linear(*log10_start, *log10_step, *n)),
            GridSpec::FromInput => match &data.input_grid {
                Some(g) => Ok(g.clone()),
                None => auto_grid(data),
            },
            GridSpec::Auto => auto_grid(data),
        }
    }
}

/// A log-linear grid spanning the data's observed range with its median ln-lambda spacing.
fn auto_grid(data: &model::Dataset) -> Result<OutputGrid, SettingsError> {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    let mut steps = Vec::new();
    for v in &data.visits {
        for seg in v.segments() {
            let x = &v.ln_wave()[seg.clone()];
            for p in x.windows(2) {
                steps.push((p[1] - p[0]).abs());
            }
            for &xi in x {
                lo = lo.min(xi);
                hi = hi.max(xi);
            }
        }
    }
    if steps.is_empty() || !(hi > lo) {
        return Err(SettingsError::BadGrid(
            "cannot derive a grid: the data span no wavelength range".into(),
        ));
    }
    steps.sort_by(f64::total_cmp);
    let step_ln = steps[steps.len() / 2];
    let ln10 = std::f64::consts::LN_10;
    let step = step_ln / ln10;
    let start = lo / ln10;
    let n = (((hi - lo) / step_ln).floor() as usize + 1).max(2);
    Ok(OutputGrid::log_linear(start, step, n))
}
