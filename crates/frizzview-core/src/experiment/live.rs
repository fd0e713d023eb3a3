//! The paper's experiments as the window's teaching panel runs them, without any UI: one
//! realisation of the paper's synthetic data combined with both methods (truth, results,
//! residuals), and the noise test for a chosen forward model (Hogg & Casey 2024,
//! arXiv:2403.11011, §4).

use std::time::Instant;

use super::NOISE_LAGS;
use crate::combine::{Cancel, CombineError, combine};
use crate::model::VelocityKind;
use crate::settings::{
    Basis, ForwardSettings, GridSpec, Interpolator, SelectionMode, Settings, ShiftSource,
    StandardMask, StandardSettings, Weighting,
};
use crate::synth::paper::{self, PaperParams};

/// The slider values: the parameters of the paper's generator ([`crate::synth::paper`]).
pub type TeachingParams = PaperParams;

/// Which forward model the panel fits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ForwardChoice {
    /// Fourier basis exactly as frizzle 0.2.8 (P = M*, its period): the paper's figures.
    #[default]
    Paper,
    /// Fourier basis in the fixed default mode (longer period, more modes, tiny ridge).
    FourierFixed,
    /// The compactly supported local basis (banded; the window's live path).
    Local,
}

impl ForwardChoice {
    /// All choices, in menu order.
    pub const ALL: [Self; 3] = [Self::Paper, Self::FourierFixed, Self::Local];

    /// Menu label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Paper => "Fourier, as frizzle 0.2.8 (paper)",
            Self::FourierFixed => "Fourier, fixed mode",
            Self::Local => "local basis (banded)",
        }
    }

    /// The forward-model settings.
    #[must_use]
    pub fn settings(self) -> ForwardSettings {
        match self {
            Self::Paper => ForwardSettings {
                basis: Basis::Fourier,
                compat: true,
                n_modes: None,
            },
            Self::FourierFixed => ForwardSettings {
                basis: Basis::Fourier,
                compat: false,
                n_modes: None,
            },
            Self::Local => ForwardSettings {
                basis: Basis::Local,
                compat: false,
                n_modes: None,
            },
        }
    }
}

/// The settings the panel combines with: shifts from the true velocities, the output grid that
/// comes with the data, bit 0 = bad, the selection factor (tellurics) multiplied into the forward
/// model (standard practice divides by it), the chosen forward model with inverse-variance
/// weights, standard practice as in the paper's revised figures (cubic spline, bad pixels
/// dropped, plain mean), and the covariance band to lag 11.
#[must_use]
pub fn teaching_settings(p: &TeachingParams, forward: ForwardChoice) -> Settings {
    Settings {
        grid: GridSpec::FromInput,
        shift: ShiftSource::True,
        weighting: Weighting::InverseVariance,
        visits: Vec::new(),
        bad_bits: 1,
        selection: if p.telluric_depth > 0.0 {
            SelectionMode::Multiply
        } else {
            SelectionMode::Ignore
        },
        forward: Some(forward.settings()),
        standard: Some(StandardSettings {
            interpolator: Interpolator::CubicSpline,
            weighting: Weighting::Uniform,
            mask: StandardMask::Drop,
        }),
        band_lags: NOISE_LAGS - 1,
        ..Settings::default()
    }
}

/// One method's curves on the output grid, ready to plot.
#[derive(Clone, Debug, Default)]
pub struct MethodCurve {
    /// Combined flux (NaN where no data).
    pub flux: Vec<f64>,
    /// Predicted standard deviation sqrt(diag C*) (NaN where no data).
    pub sigma: Vec<f64>,
    /// Residual flux - truth.
    pub residual: Vec<f64>,
    /// Root mean square of the residual over finite pixels.
    pub rms: f64,
    /// Lag-1 autocorrelation of the residual in this one realisation.
    pub lag1: f64,
}

/// What the live view shows: one realisation combined with both methods.
#[derive(Clone, Debug, Default)]
pub struct LiveView {
    /// The parameters that produced it.
    pub params: TeachingParams,
    /// The forward model used.
    pub forward_choice: ForwardChoice,
    /// Output-grid wavelengths (Angstrom, rest frame).
    pub wave_aa: Vec<f64>,
    /// Noise-free truth on the output grid.
    pub truth: Vec<f64>,
    /// Good input pixels of every visit in the rest frame: (wavelength in Angstrom, flux).
    pub data: Vec<[f64; 2]>,
    /// Bad input pixels in the rest frame.
    pub bad: Vec<[f64; 2]>,
    /// Forward model (Frizzle), if it could be computed.
    pub forward: Option<MethodCurve>,
    /// Standard practice, if it could be computed.
    pub standard: Option<MethodCurve>,
    /// Warnings and per-method errors, as text.
    pub messages: Vec<String>,
    /// Wall time of generation plus combination (ms).
    pub elapsed_ms: f64,
}

fn method_curve(flux: &[f64], var: &[f64], truth: &[f64]) -> MethodCurve {
    let residual: Vec<f64> = flux.iter().zip(truth).map(|(f, t)| f - t).collect();
    let cov = super::lag_means(&residual, 2);
    MethodCurve {
        flux: flux.to_vec(),
        sigma: var.iter().map(|v| v.sqrt()).collect(),
        rms: cov[0].0.sqrt(),
        lag1: cov[1].0 / cov[0].0,
        residual,
    }
}

/// Generate the data for `params` and combine it with both methods.
pub fn compute_live(
    params: &TeachingParams,
    forward: ForwardChoice,
    cancel: &Cancel,
) -> Result<LiveView, String> {
    let t0 = Instant::now();
    let data = paper::generate(params)?;
    let truth = data
        .truth
        .as_ref()
        .ok_or_else(|| "the generator returned no truth".to_owned())?;
    let mut view = LiveView {
        params: params.clone(),
        forward_choice: forward,
        wave_aa: truth.ln_wave.iter().map(|x| x.exp()).collect(),
        truth: truth.flux.clone(),
        ..LiveView::default()
    };
    for v in &data.visits {
        let dx = v
            .meta
            .velocity(VelocityKind::True)
            .map_or(0.0, crate::model::shift_from_velocity);
        for i in 0..v.len() {
            // Show the data divided by the telluric transmission so it lines up with the truth.
            let s = v.selection().map_or(1.0, |s| s[i]);
            if s < 0.05 {
                continue;
            }
            let p = [(v.ln_wave()[i] - dx).exp(), v.flux()[i] / s];
            if v.bad()[i] {
                view.bad.push(p);
            } else {
                view.data.push(p);
            }
        }
    }
    let settings = teaching_settings(params, forward);
    // Both methods in one call: each gives its own outcome, so one failing (e.g. a singular
    // system with one visit) still shows the other.
    match combine(&data, &settings, cancel) {
        Ok(c) => {
            view.messages
                .extend(c.warnings.iter().map(ToString::to_string));
            if let Some(f) = &c.forward {
                view.forward = Some(method_curve(&f.flux, &f.var, &view.truth));
            }
            if let Some(e) = &c.forward_error {
                view.messages.push(format!("forward model: {e}"));
            }
            if let Some(s) = &c.standard {
                view.standard = Some(method_curve(&s.flux, &s.var, &view.truth));
            }
            if let Some(e) = &c.standard_error {
                view.messages.push(format!("standard practice: {e}"));
            }
        }
        Err(CombineError::Cancelled) => return Err(CombineError::Cancelled.to_string()),
        Err(e) => view.messages.push(format!("{e}")),
    }
    cancel.check().map_err(|e| e.to_string())?;
    view.elapsed_ms = t0.elapsed().as_secs_f64() * 1e3;
    Ok(view)
}

/// The paper's noise figure: empirical covariance of the residual against lag.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NoiseCurves {
    /// Forward model: cov(lag) = mean over pixels and trials of r_i r_{i+lag}, lags 0..=11.
    pub forward_cov: Vec<f64>,
    /// Standard practice, same definition.
    pub standard_cov: Vec<f64>,
    /// The forward model's predicted variance: mean of diag(C*) over pixels and trials.
    pub predicted_var: f64,
    /// Trials run.
    pub trials: usize,
    /// The parameters (seed = first trial's noise seed).
    pub params: TeachingParams,
    /// The forward model used.
    pub forward: ForwardChoice,
}

/// Repeat the noise test ([`super::noise_experiment_with`]): same truth, `trials`
/// new noise realisations (seeds `seed..seed+trials`), both methods on the paper's grids, the
/// forward model as chosen. `progress` is called with the number of finished trials.
pub fn run_noise(
    params: &TeachingParams,
    forward: ForwardChoice,
    trials: usize,
    cancel: &Cancel,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<NoiseCurves, String> {
    let mut settings = super::experiment_settings(params);
    if let Some(f) = settings.forward.as_mut() {
        f.forward = Some(forward.settings());
    }
    let r = super::noise_experiment_with(params, &settings, trials, params.seed, cancel, progress)
        .map_err(|e| e.to_string())?;
    Ok(NoiseCurves {
        forward_cov: r.forward.cov,
        standard_cov: r.standard.cov,
        predicted_var: r.forward.predicted_var.unwrap_or(f64::NAN),
        trials: r.trials,
        params: params.clone(),
        forward,
    })
}
