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
    /// The per-visit velocities of an apStar file given with the visits.
    ApStar,
    /// The per-visit velocities of an allVisit summary (`--visits-table`).
    AllVisit,
    /// The per-visit velocities of an mwmVisit file.
    MwmVisit,
}

impl ShiftSource {
    /// Every source, in the order the window lists them.
    pub const ALL: [Self; 7] = [
        Self::Vrel,
        Self::ApStar,
        Self::AllVisit,
        Self::MwmVisit,
        Self::MinusBc,
        Self::True,
        Self::None,
    ];

    /// The velocity this source gives for a visit, if the visit has it.
    #[must_use]
    pub fn velocity(self, meta: &model::VisitMeta) -> Option<f64> {
        match self {
            Self::None => Some(0.0),
            Self::Vrel => meta.velocity(VelocityKind::Vrel),
            Self::MinusBc => meta.velocity(VelocityKind::Bc).map(|v| -v),
            Self::True => meta.velocity(VelocityKind::True),
            Self::ApStar => meta.velocity(VelocityKind::ApStar),
            Self::AllVisit => meta.velocity(VelocityKind::AllVisit),
            Self::MwmVisit => meta.velocity(VelocityKind::MwmVisit),
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
            Self::ApStar => "apstar",
            Self::AllVisit => "allvisit",
            Self::MwmVisit => "mwmvisit",
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
    /// Standard practice only: the APOGEE pipeline's "pixel-by-pixel weighted" apStar row 0
    /// (`apvisitcomb`): each resampled visit divided by its continuum, an inverse-variance mean
    /// of the normalised visits, times the visits' mean continuum; persistence-flagged pixels
    /// left out where another visit covers the pixel; sky-line pixels not down-weighted, as in
    /// the DR13 apStar files (see `combine::standard::continuum`). The forward model weights
    /// by inverse variance under this setting.
    ApogeePipeline,
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

/// The most output pixels any grid may have (defined beside the grid, in `model::grid`).
pub use crate::model::grid::MAX_GRID_PIXELS;

/// The most covariance lags beyond 0 (`band_lags`): the window offers up to 40.
pub const MAX_BAND_LAGS: usize = 1000;

/// The most entries of one covariance band, (lags + 1) x output pixels (268 MB of f64 per
/// method): 1000 lags on the apStar grid need 8.6 million.
pub const MAX_BAND_CELLS: usize = 1 << 25;

/// The most Fourier modes (`n_modes`): twice the largest grid.
pub const MAX_MODES: usize = 2 * MAX_GRID_PIXELS;

/// The highest per-visit continuum degree (`normalization_degree`).
pub const MAX_NORMALIZATION_DEGREE: usize = 50;

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

impl Basis {
    /// Every basis, in the order the window offers them.
    pub const ALL: [Self; 2] = [Self::Fourier, Self::Local];

    /// The compactly supported (banded) basis: its kernel evaluations and normal-equation sums
    /// are cached between fits, and its leave-one-visit-out scores are its own.
    #[must_use]
    pub fn is_local(self) -> bool {
        matches!(self, Self::Local)
    }

    /// Whether the model can be convolved with each visit's LSF (the local basis only).
    #[must_use]
    pub fn supports_lsf(self) -> bool {
        self.is_local()
    }

    /// Shown in the window: the basis and what it is good for.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Fourier => "Fourier (exact)",
            Self::Local => "local (banded, fast)",
        }
    }
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

/// Extensions beyond the paper (Hogg & Casey 2024, arXiv:2403.11011 §5 names them future work).
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

/// The data's own velocities (`crate::velocity`): the global search and the check of external
/// velocities against it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct VelocitySettings {
    /// Check the shift source's external velocities against the data and shift every measured
    /// visit by the data's velocity (zero point from the consistent external ones); off = the
    /// shift source's velocities as they are (`--shift vrad` etc. force a source). On in
    /// [`survey_defaults`], off in `Settings::default()` (settings saved before it existed).
    pub check: bool,
    /// Half-width of the search window (km/s).
    pub window_kms: f64,
    /// Systematic error floor (km/s) added in quadrature to every stated velocity error (the
    /// search's and `--fit-shifts`'). 0 in `Settings::default()`; per survey in
    /// [`survey_defaults`] (APOGEE: [`APOGEE_FLOOR_KMS`], measured on real stars).
    pub floor_kms: f64,
    /// An external velocity disagrees with the data beyond this many stated errors...
    pub max_sigma: f64,
    /// ... and beyond this many km/s (both must hold).
    pub min_disagreement_kms: f64,
    /// `--fit-shifts`: which visits build the model the shifts are fitted against (the combined
    /// spectrum itself always uses every included visit at its fitted shift).
    /// [`ShiftFitModel::WithoutOutliers`] by default; settings saved before the choice existed
    /// (no such field) read as [`ShiftFitModel::AllVisits`], so they reproduce their result.
    #[serde(default = "ShiftFitModel::saved_before")]
    pub shift_fit_model: ShiftFitModel,
}

/// The model `--fit-shifts` fits each visit's shift against
/// (`crate::combine::extensions::fit_forward`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ShiftFitModel {
    /// Every included visit (the joint fit; before the outlier rule existed). A visit whose
    /// errors are far too small for its residuals steers the model, and the visits near its
    /// velocity follow it: on the real 16-visit star `2M03442721+3220288` the S/N 3.3 visit the
    /// pipeline left out (leave-one-out chi^2/nu 681) pulls visits 13 and 14 by 3.4-4.1 km/s,
    /// 2.4 times the tolerance of the apStar comparison.
    AllVisits,
    /// The included visits without those the leave-one-out scores name as outliers (the rule of
    /// the poor-fit warning, `crate::combine::quality::outlier_visits`); the outliers' own shifts
    /// are fitted against the model of the others, and they are left out of the shifts' zero
    /// point. Nothing changes where no visit is named.
    #[default]
    WithoutOutliers,
    /// As `AllVisits`, with each outlier's weight in the model divided by its leave-one-out
    /// chi^2/nu (its errors scaled until they match its residuals); measured beside the others,
    /// not the default (see docs/correctness.md).
    OutliersScaled,
}

impl ShiftFitModel {
    /// The model of settings saved before the choice existed: [`Self::AllVisits`].
    #[must_use]
    pub fn saved_before() -> Self {
        Self::AllVisits
    }
}

/// The largest search window (km/s): a tenth of c.
pub const MAX_VELOCITY_WINDOW_KMS: f64 = 30_000.0;

impl Default for VelocitySettings {
    fn default() -> Self {
        Self {
            check: false,
            window_kms: 1000.0,
            floor_kms: 0.0,
            max_sigma: 5.0,
            min_disagreement_kms: 3.0,
            shift_fit_model: ShiftFitModel::default(),
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
    /// Mask bits that make a pixel bad (zero weight).
    pub bad_bits: u64,
    /// Mask bits whose pixels get their sigma multiplied by a factor (see
    /// [`model::pixel_policy`]); a bit in neither list is ignored. Empty by default, so settings
    /// saved before the pixel policy existed give the same result.
    pub inflate_bits: Vec<model::pixel_policy::InflateBit>,
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
    /// Velocities from the data.
    pub velocity: VelocitySettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            grid: GridSpec::Auto,
            shift: ShiftSource::Vrel,
            weighting: Weighting::InverseVariance,
            visits: Vec::new(),
            bad_bits: model::mask::APOGEE_BAD_BITS,
            inflate_bits: Vec::new(),
            selection: SelectionMode::Multiply,
            forward: Some(ForwardSettings::default()),
            standard: Some(StandardSettings::default()),
            band_lags: 5,
            extensions: Extensions::default(),
            velocity: VelocitySettings::default(),
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
    /// A setting asks for more than frizzview computes.
    #[error("{setting} = {value} is above the limit of {limit}{hint}")]
    TooLarge {
        setting: &'static str,
        value: usize,
        limit: usize,
        hint: &'static str,
    },
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
        for b in &self.inflate_bits {
            if !(b.bit < 64 && b.factor.is_finite() && b.factor > 0.0) {
                return Err(SettingsError::Other(format!(
                    "pixel policy: bit {} factor {} (bits 0-63, factors positive and finite)",
                    b.bit, b.factor
                )));
            }
        }
        if let GridSpec::LogLinear { n, .. } = self.grid {
            check_grid_pixels(n)?;
            self.check_band(n)?;
        }
        if self.band_lags > MAX_BAND_LAGS {
            return Err(SettingsError::TooLarge {
                setting: "band_lags (covariance lags)",
                value: self.band_lags,
                limit: MAX_BAND_LAGS,
                hint: "",
            });
        }
        if let Some(f) = &self.forward {
            if f.n_modes == Some(0) {
                return Err(SettingsError::Other(
                    "the number of modes must be positive".into(),
                ));
            }
            if let Some(p) = f.n_modes
                && p > MAX_MODES
            {
                return Err(SettingsError::TooLarge {
                    setting: "n_modes (Fourier modes)",
                    value: p,
                    limit: MAX_MODES,
                    hint: "",
                });
            }
        }
        if let Some(d) = self.extensions.normalization_degree
            && d > MAX_NORMALIZATION_DEGREE
        {
            return Err(SettingsError::TooLarge {
                setting: "normalization_degree",
                value: d,
                limit: MAX_NORMALIZATION_DEGREE,
                hint: "",
            });
        }
        let vs = &self.velocity;
        if !(vs.window_kms.is_finite()
            && vs.window_kms > 0.0
            && vs.window_kms <= MAX_VELOCITY_WINDOW_KMS)
        {
            return Err(SettingsError::Other(format!(
                "velocity search window {} km/s must be positive and at most {MAX_VELOCITY_WINDOW_KMS}",
                vs.window_kms
            )));
        }
        if !(vs.floor_kms.is_finite()
            && vs.floor_kms >= 0.0
            && vs.max_sigma.is_finite()
            && vs.max_sigma > 0.0
            && vs.min_disagreement_kms.is_finite()
            && vs.min_disagreement_kms >= 0.0)
        {
            return Err(SettingsError::Other(format!(
                "velocity floor {} km/s, disagreement {} sigma and {} km/s must be finite and \
                 non-negative",
                vs.floor_kms, vs.max_sigma, vs.min_disagreement_kms
            )));
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

    /// Refuse a covariance band of more than [`MAX_BAND_CELLS`] entries on a grid of `pixels`.
    fn check_band(&self, pixels: usize) -> Result<(), SettingsError> {
        let cells = self.band_lags.saturating_add(1).saturating_mul(pixels);
        if cells > MAX_BAND_CELLS {
            return Err(SettingsError::TooLarge {
                setting: "covariance band (band_lags + 1) x output pixels",
                value: cells,
                limit: MAX_BAND_CELLS,
                hint: "; ask for fewer lags or a coarser grid",
            });
        }
        Ok(())
    }

    /// What mask bit `bit` does to a pixel under these settings.
    #[must_use]
    pub fn bit_action(&self, bit: u32) -> model::pixel_policy::BitAction {
        model::pixel_policy::action(self.bad_bits, &self.inflate_bits, bit)
    }

    /// Make mask bit `bit` bad, inflating or ignored.
    pub fn set_bit_action(&mut self, bit: u32, what: model::pixel_policy::BitAction) {
        model::pixel_policy::set_action(&mut self.bad_bits, &mut self.inflate_bits, bit, what);
    }

    /// Replace the pixel policy by a preset.
    pub fn apply_policy_preset(&mut self, preset: model::pixel_policy::Preset) {
        (self.bad_bits, self.inflate_bits) = preset.policy();
    }

    /// Resolve the grid specification against a dataset's visits. Every grid is checked against
    /// [`MAX_GRID_PIXELS`] and the band against [`MAX_BAND_CELLS`] before anything is allocated.
    pub fn resolve_grid(&self, data: &model::Dataset) -> Result<OutputGrid, SettingsError> {
        let pixels = match &self.grid {
            GridSpec::LogLinear { n, .. } => Some(*n),
            GridSpec::FromInput => data.input_grid.as_ref().map(|g| g.ln_wave.len()),
            _ => None,
        };
        if let Some(n) = pixels {
            check_grid_pixels(n)?;
            self.check_band(n)?;
        }
        let grid = self.resolve_grid_unchecked(data)?;
        self.check_band(grid.ln_wave.len())?;
        Ok(grid)
    }

    fn resolve_grid_unchecked(&self, data: &model::Dataset) -> Result<OutputGrid, SettingsError> {
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

/// Refuse a grid of more than [`MAX_GRID_PIXELS`] pixels.
fn check_grid_pixels(n: usize) -> Result<(), SettingsError> {
    if n > MAX_GRID_PIXELS {
        return Err(SettingsError::TooLarge {
            setting: "output grid pixels",
            value: n,
            limit: MAX_GRID_PIXELS,
            hint: "",
        });
    }
    Ok(())
}

/// A log-linear grid spanning the data's observed range with its median ln-lambda spacing.
/// Refused, before any allocation, when it would have more than [`MAX_GRID_PIXELS`] pixels.
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
    let n_f = ((hi - lo) / step_ln).floor() + 1.0;
    if !(step_ln > 0.0 && n_f.is_finite() && n_f <= MAX_GRID_PIXELS as f64) {
        return Err(SettingsError::BadGrid(format!(
            "the automatic grid would need {n_f:.3e} pixels (the data span {:.2}-{:.2} Angstrom \
             with a median pixel step of {step_ln:.3e} in ln lambda), above the limit of \
             {MAX_GRID_PIXELS}; choose the APOGEE or BOSS grid or an explicit log-linear grid",
            lo.exp(),
            hi.exp()
        )));
    }
    let n = (n_f as usize).max(2);
    Ok(OutputGrid::log_linear(start, step, n))
}

/// The former name of [`headless_defaults`], kept so that code written against it still builds.
#[doc(hidden)]
pub use self::headless_defaults as survey_defaults;

/// The defaults for live use (the window, and benchmarks of it): [`headless_defaults`], with the
/// banded local basis for APOGEE data because it is the live path (a recompute in about 10 ms at
/// 8575 output pixels, where the Fourier basis takes several times that).
#[must_use]
pub fn live_defaults(data: &model::Dataset) -> Settings {
    let mut s = headless_defaults(data);
    if data.survey == model::Survey::Apogee
        && let Some(f) = &mut s.forward
    {
        f.basis = Basis::Local;
    }
    s
}

/// APOGEE's systematic velocity floor (km/s), added in quadrature to every stated velocity error.
///
/// Measured on the three RV-stable real DR13 stars (pipeline VSCATTER < 0.5 km/s:
/// 2M05392474+4038437, 2M00452143+1634446, 2M00005143+5615568, S/N 40-70 per visit): the
/// barycentric velocities v + BC fitted by `--fit-shifts` scatter over the visits by more than
/// their formal errors (0.02-0.05 km/s) allow; the floor is the value that makes the
/// chi^2 of constancy equal its degrees of freedom over the three stars together
/// (`tests/integration/velocity.rs`, `velocity_floor_from_the_stable_stars`, prints it). The
/// DR13 pipeline's own VSCATTER for these stars (0.10-0.38 km/s) is of the same size
/// (wavelength solution, fibre-to-fibre LSF differences).
pub const APOGEE_FLOOR_KMS: f64 = 0.24;

/// Settings a dataset gets when no flag says otherwise, without a window: the defaults of
/// `frizzview combine` and of the Python package (the window starts from [`live_defaults`], these
/// with the live path's basis).
///
/// Every survey: external velocities checked against the data's (`VelocitySettings::check`).
/// APOGEE: apStar grid, VRAD shifts, the velocity floor of [`APOGEE_FLOOR_KMS`], the APOGEE-pipeline pixel policy (16639 bad, persistence
/// and sky-line sigma inflated), selection "multiply", the pipeline's damped sinc and its
/// continuum-normalised row-0 weighting ([`Weighting::ApogeePipeline`]) for standard practice. BOSS: BOSS grid, no
/// shift beyond the heliocentric wavelengths (Vrel = 0 is stored by the reader), SPPIXMASK bad
/// bits, no selection factor. Reference bundles (rest-frame data with a grid): the grid from the
/// input, no shift, bad bit 0. Anything else: an automatic grid, VRAD shifts if every visit has
/// one (else the true velocity of synthetic data, else none).
#[must_use]
pub fn headless_defaults(data: &model::Dataset) -> Settings {
    let mut s = Settings::default();
    let all_have = |k: VelocityKind| {
        !data.visits.is_empty() && data.visits.iter().all(|v| v.meta.velocity(k).is_some())
    };
    // A survey file given with the visits wins (it is why the user gave it); then the visits' own
    // velocities; APOGEE visits without one are combined in the barycentric frame (-BC), which
    // `combine::prepare` flags with a warning, never silently in the observed frame.
    // The velocities are checked (below), so a survey file that describes most visits is used
    // for those, and the data give the others theirs (a visit the pipeline left out of its
    // apStar, say) on the survey file's zero point.
    let most_have = |k: VelocityKind| {
        let n = data
            .visits
            .iter()
            .filter(|v| v.meta.velocity(k).is_some())
            .count();
        n > 0 && 2 * n > data.visits.len()
    };
    let shift = if most_have(model::VelocityKind::ApStar) {
        ShiftSource::ApStar
    } else if most_have(model::VelocityKind::AllVisit) {
        ShiftSource::AllVisit
    } else if most_have(model::VelocityKind::MwmVisit) {
        ShiftSource::MwmVisit
    } else if all_have(model::VelocityKind::Vrel) {
        ShiftSource::Vrel
    } else if all_have(model::VelocityKind::True) {
        ShiftSource::True
    } else if all_have(model::VelocityKind::Bc) {
        // No stellar velocity (raw apCframe exposures, SDSS-V apVisit files): the barycentric frame.
        ShiftSource::MinusBc
    } else {
        ShiftSource::None
    };
    let any_selection = data.visits.iter().any(|v| v.selection().is_some());
    s.shift = shift;
    // External velocities are checked against the data's own (`crate::velocity`).
    s.velocity.check = true;
    s.selection = if any_selection {
        SelectionMode::Multiply
    } else {
        SelectionMode::Ignore
    };
    match data.survey {
        model::Survey::Apogee => {
            s.grid = GridSpec::Apogee;
            s.velocity.floor_kms = APOGEE_FLOOR_KMS;
            s.apply_policy_preset(model::pixel_policy::Preset::ApogeePipeline);
            if let Some(st) = s.standard.as_mut() {
                st.interpolator = Interpolator::DampedSinc;
                st.weighting = Weighting::ApogeePipeline;
            }
        }
        model::Survey::Boss => {
            s.grid = GridSpec::Boss;
            s.apply_policy_preset(model::pixel_policy::Preset::BossPipeline);
        }
        model::Survey::Generic => {
            s.grid = if data.input_grid.is_some() {
                GridSpec::FromInput
            } else {
                GridSpec::Auto
            };
            s.bad_bits = model::mask::GENERIC_BAD_BITS;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shift fit's model: the outlier rule by default; settings saved before the choice
    /// existed read as the former joint fit (so `--settings` reproduces their result); a saved
    /// choice reads back.
    #[test]
    fn shift_fit_model_defaults_and_settings_saved_before_it() {
        assert_eq!(
            Settings::default().velocity.shift_fit_model,
            ShiftFitModel::WithoutOutliers
        );
        let mut v = serde_json::to_value(Settings::default()).expect("to json");
        let velocity = v
            .get_mut("velocity")
            .and_then(|x| x.as_object_mut())
            .expect("a velocity object");
        assert!(velocity.remove("shift_fit_model").is_some());
        let old: Settings = serde_json::from_value(v.clone()).expect("old settings read");
        assert_eq!(old.velocity.shift_fit_model, ShiftFitModel::AllVisits);
        for how in [
            ShiftFitModel::AllVisits,
            ShiftFitModel::WithoutOutliers,
            ShiftFitModel::OutliersScaled,
        ] {
            let mut s = Settings::default();
            s.velocity.shift_fit_model = how;
            let back: Settings =
                serde_json::from_str(&serde_json::to_string(&s).expect("json")).expect("read");
            assert_eq!(back.velocity.shift_fit_model, how);
        }
    }
}
