//! Teaching mode: the paper's experiments, live (issue 7).
//!
//! Sliders set the parameters of the paper's synthetic data (method.md §4): resolving power, input
//! pixel spacing in units of 1/R, S/N, number of visits, velocity amplitude, bad-pixel fraction,
//! line density, telluric depth and the seeds. Every change regenerates the visits and combines
//! them with both methods off the UI thread (newest request wins, stale results are dropped); the
//! panel shows the truth, each method's result and each method's residual. A "64 trials" button
//! repeats the paper's noise test in the background and plots the empirical covariance against
//! lag for both methods with the forward model's predicted variance: the paper's noise figure.
//! Both figures export as PNG (a viewport screenshot cropped to the figure).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Instant;

use eframe::egui;
use egui_plot::{HLine, Legend, Line, LineStyle, Plot, PlotPoints, Points};

use crate::combine::{Cancel, combine};
use crate::model::{
    C_KMS, Dataset, OutputGrid, Spectrum, Survey, VelocityKind, Visit, VisitArrays, VisitMeta,
    velocity_from_shift,
};
use crate::settings::{
    ForwardSettings, GridSpec, Interpolator, SelectionMode, Settings, ShiftSource, StandardMask,
    StandardSettings, Weighting,
};

/// Number of covariance lags in the noise figure (0..=11, as in the paper).
pub const NOISE_LAGS: usize = 12;

/// Colour of the forward model (Frizzle) in every teaching figure.
const FORWARD_COLOR: egui::Color32 = egui::Color32::from_rgb(31, 119, 180);
/// Colour of standard practice in every teaching figure.
const STANDARD_COLOR: egui::Color32 = egui::Color32::from_rgb(230, 110, 10);

/// The parameters of the synthetic data set, one per slider.
#[derive(Clone, Debug, PartialEq)]
pub struct TeachingParams {
    /// Resolving power R; the line-spread function is a Gaussian with sigma = 1/R in x = ln(lambda).
    pub resolving_power: f64,
    /// Input pixel spacing in units of 1/R (paper: 2 = poorly sampled, 1 = well sampled).
    pub pixel_spacing_r: f64,
    /// Signal-to-noise ratio per pixel in the continuum.
    pub snr: f64,
    /// Number of visits (epochs).
    pub n_visits: usize,
    /// Velocity semi-amplitude in km/s: visit j is shifted by dx_j = (v/c) cos(j/3).
    pub velocity_amplitude_kms: f64,
    /// Probability that a pixel seeds a bad-pixel group (each seed spoils 3 adjacent pixels).
    pub bad_fraction: f64,
    /// Absorption lines per unit x.
    pub line_density: f64,
    /// Depth of the deepest telluric line (fixed in the observed frame); 0 = no tellurics.
    pub telluric_depth: f64,
    /// Seed of the noise and bad pixels.
    pub seed: u64,
    /// Seed of the line list (the truth); the noise test keeps it fixed across trials.
    pub truth_seed: u64,
}

impl Default for TeachingParams {
    fn default() -> Self {
        Self::poor()
    }
}

impl TeachingParams {
    /// The paper's poorly sampled data set: dx = 2/R, S/N 18, 8 visits, 30 km/s.
    #[must_use]
    pub fn poor() -> Self {
        Self {
            resolving_power: 135_000.0,
            pixel_spacing_r: 2.0,
            snr: 18.0,
            n_visits: 8,
            velocity_amplitude_kms: 30.0,
            bad_fraction: 0.01,
            line_density: 2.0e4,
            telluric_depth: 0.0,
            seed: 1,
            truth_seed: 17,
        }
    }

    /// The paper's well-sampled data set: dx = 1/R, S/N 12.
    #[must_use]
    pub fn well() -> Self {
        Self {
            pixel_spacing_r: 1.0,
            snr: 12.0,
            ..Self::poor()
        }
    }

    /// The same parameters with another noise seed.
    #[must_use]
    pub fn with_seed(&self, seed: u64) -> Self {
        Self {
            seed,
            ..self.clone()
        }
    }

    /// Generate the visits, the truth and the output grid.
    #[must_use]
    pub fn dataset(&self) -> Dataset {
        generator::paper_dataset(self)
    }

    /// The settings the panel combines with: shifts from the true velocities, the output grid that
    /// comes with the data, bit 0 = bad, the selection factor multiplied into the forward model
    /// (standard practice divides by it), forward model in the Fourier basis with inverse-variance
    /// weights, standard practice as in the paper's revised figures (cubic spline, bad pixels
    /// dropped, plain mean), covariance band to lag 11.
    #[must_use]
    pub fn settings(&self) -> Settings {
        Settings {
            grid: GridSpec::FromInput,
            shift: ShiftSource::True,
            weighting: Weighting::InverseVariance,
            visits: Vec::new(),
            bad_bits: 1,
            selection: if self.telluric_depth > 0.0 {
                SelectionMode::Multiply
            } else {
                SelectionMode::Ignore
            },
            forward: Some(ForwardSettings::default()),
            standard: Some(StandardSettings {
                interpolator: Interpolator::CubicSpline,
                weighting: Weighting::Uniform,
                mask: StandardMask::Drop,
            }),
            band_lags: NOISE_LAGS - 1,
            ..Settings::default()
        }
    }
}

/// The synthetic generator of the paper (method.md §4), with the teaching parameters.
///
/// A placeholder for `crate::synth::paper` (helper B) that follows the same recipe: x in
/// [8.7, 8.7025], Poisson line list (EW = 3e-5 U^5) over the range widened by 1000 km/s, Gaussian
/// LSF sigma = 1/R, the same detector grid every epoch, ivar = SNR^2 / f, bad pixels grown to 3
/// adjacent pixels with flux += 2 U, output grid spacing 1/R from x_min + 0.5/R.
mod generator {
    use super::{
        C_KMS, Dataset, OutputGrid, Spectrum, Survey, TeachingParams, VelocityKind, Visit,
        VisitArrays, VisitMeta, velocity_from_shift,
    };
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use rand_distr::{Distribution, Normal, Poisson};

    /// Lower end of the paper's x range.
    pub const X_MIN: f64 = 8.7;
    /// Upper end of the paper's x range.
    pub const X_MAX: f64 = 8.7025;

    struct Line {
        x: f64,
        ew: f64,
    }

    fn line_list(p: &TeachingParams) -> Vec<Line> {
        let mut rng = StdRng::seed_from_u64(p.truth_seed);
        let margin = 1000.0 / C_KMS;
        let lo = X_MIN - margin;
        let hi = X_MAX + margin;
        let mean = (p.line_density.max(0.0) * (hi - lo)).max(0.0);
        let n = if mean > 0.0 {
            Poisson::new(mean).map_or(0, |d| d.sample(&mut rng) as usize)
        } else {
            0
        };
        (0..n)
            .map(|_| {
                let x = lo + (hi - lo) * rng.random::<f64>();
                let u: f64 = rng.random();
                Line {
                    x,
                    ew: 3e-5 * u.powi(5),
                }
            })
            .collect()
    }

    fn spectrum(lines: &[Line], sigma: f64, x: f64) -> f64 {
        let norm = 1.0 / (sigma * (2.0 * std::f64::consts::PI).sqrt());
        let mut tau = 0.0;
        for l in lines {
            let z = (x - l.x) / sigma;
            if z.abs() < 8.0 {
                tau += l.ew * norm * (-0.5 * z * z).exp();
            }
        }
        (-tau).exp()
    }

    /// Telluric transmission S(x) in the observed frame: a few lines fixed by the truth seed.
    fn telluric(p: &TeachingParams, sigma: f64) -> Vec<(f64, f64, f64)> {
        let mut rng = StdRng::seed_from_u64(p.truth_seed ^ 0x7e11_0000);
        (0..6)
            .map(|_| {
                let x = X_MIN + (X_MAX - X_MIN) * rng.random::<f64>();
                let depth = p.telluric_depth.clamp(0.0, 1.0) * (0.3 + 0.7 * rng.random::<f64>());
                (x, depth, sigma * (1.0 + rng.random::<f64>()))
            })
            .collect()
    }

    fn transmission(lines: &[(f64, f64, f64)], x: f64) -> f64 {
        lines
            .iter()
            .map(|&(x0, d, s)| 1.0 - d * (-0.5 * ((x - x0) / s).powi(2)).exp())
            .product()
    }

    pub fn paper_dataset(p: &TeachingParams) -> Dataset {
        let r = p.resolving_power.max(1.0);
        let sigma = 1.0 / r;
        let dx = p.pixel_spacing_r.max(0.05) / r;
        let lines = line_list(p);
        let tell = if p.telluric_depth > 0.0 {
            telluric(p, sigma)
        } else {
            Vec::new()
        };
        // xs = arange(x_min - dx/2, x_max + dx, dx)
        let n_in = (((X_MAX + dx) - (X_MIN - dx / 2.0)) / dx).ceil().max(1.0) as usize;
        let xs: Vec<f64> = (0..n_in)
            .map(|i| X_MIN - dx / 2.0 + dx * i as f64)
            .collect();
        let mut rng = StdRng::seed_from_u64(p.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed);
        let unit = Normal::new(0.0, 1.0).ok();
        let snr = p.snr.max(1e-3);
        let visits = (0..p.n_visits.max(1))
            .map(|j| {
                let shift = (p.velocity_amplitude_kms / C_KMS) * (j as f64 / 3.0).cos();
                let mut flux = Vec::with_capacity(n_in);
                let mut ivar = Vec::with_capacity(n_in);
                let mut sel = Vec::with_capacity(n_in);
                for &x in &xs {
                    let s = if tell.is_empty() {
                        1.0
                    } else {
                        transmission(&tell, x)
                    };
                    let f = s * spectrum(&lines, sigma, x - shift);
                    let iv = snr * snr / f.max(1e-6);
                    let e = unit.map_or(0.0, |d| d.sample(&mut rng));
                    flux.push(f + e / iv.sqrt());
                    ivar.push(iv);
                    sel.push(s);
                }
                let seeds: Vec<bool> = (0..n_in)
                    .map(|_| rng.random::<f64>() < p.bad_fraction)
                    .collect();
                let mut bad = vec![false; n_in];
                for i in 0..n_in {
                    // np.roll: the group wraps at the ends, as in the paper's generator.
                    bad[i] = seeds[i] || seeds[(i + 1) % n_in] || seeds[(i + n_in - 1) % n_in];
                }
                for i in 0..n_in {
                    if bad[i] {
                        flux[i] += 2.0 * rng.random::<f64>();
                    }
                }
                let flags = bad.iter().map(|&b| u64::from(b)).collect();
                let mut meta = VisitMeta {
                    name: format!("epoch {j}"),
                    snr: Some(snr),
                    lsf_sigma_ln: Some(sigma),
                    ..VisitMeta::default()
                };
                meta.set_velocity(VelocityKind::True, velocity_from_shift(shift));
                let arrays = VisitArrays {
                    wavelength_aa: xs.iter().map(|x| x.exp()).collect(),
                    flux,
                    ivar,
                    flags,
                    bad,
                    selection: (!tell.is_empty()).then_some(sel),
                    flux_divided_by_selection: false,
                    segments: Vec::new(),
                };
                Visit::new(meta, arrays)
            })
            .filter_map(Result::ok)
            .map(std::sync::Arc::new)
            .collect();
        // Output grid: arange(x_min + 0.5/R, x_max, 1/R).
        let n_out = ((X_MAX - (X_MIN + 0.5 * sigma)) / sigma).ceil().max(2.0) as usize;
        let grid_x: Vec<f64> = (0..n_out)
            .map(|i| X_MIN + (0.5 + i as f64) * sigma)
            .collect();
        let truth = Spectrum {
            label: "truth".into(),
            flux: grid_x.iter().map(|&x| spectrum(&lines, sigma, x)).collect(),
            ln_wave: grid_x.clone(),
            ivar: Vec::new(),
        };
        Dataset {
            name: "teaching (paper generator)".into(),
            visits,
            input_grid: OutputGrid::from_ln(grid_x),
            truth: Some(truth),
            pipeline_coadd: None,
            survey: Survey::Generic,
        }
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
    let cov = lag_products(&residual, 2);
    MethodCurve {
        flux: flux.to_vec(),
        sigma: var.iter().map(|v| v.sqrt()).collect(),
        rms: cov[0].0.sqrt(),
        lag1: cov[1].0 / cov[0].0,
        residual,
    }
}

/// For lags 0..n: (mean of r_i r_{i+lag} over pairs where both are finite, number of pairs).
fn lag_products(r: &[f64], n: usize) -> Vec<(f64, usize)> {
    (0..n)
        .map(|lag| {
            let mut sum = 0.0;
            let mut count = 0usize;
            for i in 0..r.len().saturating_sub(lag) {
                let p = r[i] * r[i + lag];
                if p.is_finite() {
                    sum += p;
                    count += 1;
                }
            }
            (
                if count > 0 {
                    sum / count as f64
                } else {
                    f64::NAN
                },
                count,
            )
        })
        .collect()
}

/// Generate the data for `params` and combine it with both methods.
pub fn compute_live(params: &TeachingParams, cancel: &Cancel) -> Result<LiveView, String> {
    let t0 = Instant::now();
    let data = params.dataset();
    let truth = data
        .truth
        .as_ref()
        .ok_or_else(|| "the generator returned no truth".to_owned())?;
    let mut view = LiveView {
        params: params.clone(),
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
    let settings = params.settings();
    // Each method on its own, so that one failing (e.g. a singular system with one visit) still
    // shows the other.
    let forward_only = Settings {
        standard: None,
        ..settings.clone()
    };
    match combine(&data, &forward_only, cancel) {
        Ok(c) => {
            view.messages
                .extend(c.warnings.iter().map(ToString::to_string));
            if let Some(f) = c.forward {
                view.forward = Some(method_curve(&f.flux, &f.var, &view.truth));
            }
        }
        Err(e) => view.messages.push(format!("forward model: {e}")),
    }
    cancel.check().map_err(|e| e.to_string())?;
    let standard_only = Settings {
        forward: None,
        ..settings
    };
    match combine(&data, &standard_only, cancel) {
        Ok(c) => {
            if let Some(s) = c.standard {
                view.standard = Some(method_curve(&s.flux, &s.var, &view.truth));
            }
        }
        Err(e) => view.messages.push(format!("standard practice: {e}")),
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
}

/// One trial's lag products and predicted-variance sum.
struct TrialStats {
    forward: Vec<(f64, usize)>,
    standard: Vec<(f64, usize)>,
    var_sum: f64,
    var_n: usize,
}

/// Repeat the noise test: same truth, `trials` new noise realisations (seeds `seed..seed+trials`),
/// both methods. `progress` is called with the number of finished trials.
pub fn run_noise(
    params: &TeachingParams,
    trials: usize,
    cancel: &Cancel,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<NoiseCurves, String> {
    use rayon::prelude::*;
    if trials == 0 {
        return Err("the number of trials must be positive".into());
    }
    let done = AtomicUsize::new(0);
    let per_trial = (0..trials)
        .into_par_iter()
        .map(|t| -> Result<_, String> {
            cancel.check().map_err(|e| e.to_string())?;
            let p = params.with_seed(params.seed.wrapping_add(t as u64));
            let data = p.dataset();
            let truth = data
                .truth
                .as_ref()
                .ok_or_else(|| "the generator returned no truth".to_owned())?;
            let c = combine(&data, &p.settings(), cancel).map_err(|e| e.to_string())?;
            let (Some(f), Some(s)) = (c.forward, c.standard) else {
                return Err("a method returned no result".into());
            };
            let rf: Vec<f64> = f.flux.iter().zip(&truth.flux).map(|(a, b)| a - b).collect();
            let rs: Vec<f64> = s.flux.iter().zip(&truth.flux).map(|(a, b)| a - b).collect();
            let var: Vec<f64> = f.var.iter().copied().filter(|v| v.is_finite()).collect();
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            progress(n);
            Ok(TrialStats {
                forward: lag_products(&rf, NOISE_LAGS),
                standard: lag_products(&rs, NOISE_LAGS),
                var_sum: var.iter().sum::<f64>(),
                var_n: var.len(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    // Pool the pairs of every trial (a weighted mean of the per-trial means).
    let pool = |pick: fn(&TrialStats) -> &[(f64, usize)]| -> Vec<f64> {
        (0..NOISE_LAGS)
            .map(|lag| {
                let (s, n) = per_trial.iter().fold((0.0, 0usize), |(s, n), t| {
                    let (m, c) = pick(t)[lag];
                    if c > 0 {
                        (s + m * c as f64, n + c)
                    } else {
                        (s, n)
                    }
                });
                if n > 0 { s / n as f64 } else { f64::NAN }
            })
            .collect()
    };
    let (vs, vn) = per_trial
        .iter()
        .fold((0.0, 0usize), |(s, n), t| (s + t.var_sum, n + t.var_n));
    Ok(NoiseCurves {
        forward_cov: pool(|t| &t.forward),
        standard_cov: pool(|t| &t.standard),
        predicted_var: if vn > 0 { vs / vn as f64 } else { f64::NAN },
        trials,
        params: params.clone(),
    })
}

/// Crop `img` (a viewport screenshot) to `rect` (in points) and write it as a PNG, atomically.
/// Returns the size written in pixels.
pub fn save_region_png(
    img: &egui::ColorImage,
    rect: egui::Rect,
    pixels_per_point: f32,
    path: &Path,
) -> Result<[usize; 2], String> {
    let [w, h] = img.size;
    let to_px = |v: f32, max: usize| ((v * pixels_per_point).round().max(0.0) as usize).min(max);
    let (x0, x1) = (to_px(rect.min.x, w), to_px(rect.max.x, w));
    let (y0, y1) = (to_px(rect.min.y, h), to_px(rect.max.y, h));
    if x1 <= x0 || y1 <= y0 {
        return Err(format!(
            "{}: the figure is not on screen, nothing to save",
            path.display()
        ));
    }
    let region = img.region_by_pixels([x0, y0], [x1 - x0, y1 - y0]);
    let bytes: Vec<u8> = region.pixels.iter().flat_map(|c| c.to_array()).collect();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let tmp = tempfile::Builder::new()
        .suffix(".png")
        .tempfile_in(dir)
        .map_err(|e| format!("{}: cannot create a file there: {e}", path.display()))?;
    image::save_buffer_with_format(
        tmp.path(),
        &bytes,
        (x1 - x0) as u32,
        (y1 - y0) as u32,
        image::ColorType::Rgba8,
        image::ImageFormat::Png,
    )
    .map_err(|e| format!("{}: cannot write the PNG: {e}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| format!("{}: cannot write the PNG: {e}", path.display()))?;
    Ok([x1 - x0, y1 - y0])
}

/// Chooses where to save a figure (given a suggested file name); `None` = cancelled. Called on a
/// worker thread, never on the UI thread.
pub type PathChooser = Arc<dyn Fn(&str) -> Option<PathBuf> + Send + Sync>;

fn rfd_chooser() -> PathChooser {
    Arc::new(|name: &str| {
        rfd::FileDialog::new()
            .set_file_name(name)
            .add_filter("PNG image", &["png"])
            .save_file()
    })
}

/// A figure of the panel that can be exported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Figure {
    /// Truth, both results and both residuals.
    Spectra,
    /// Covariance against lag.
    Noise,
}

impl Figure {
    fn file_name(self) -> &'static str {
        match self {
            Self::Spectra => "frizzview-teaching-spectra.png",
            Self::Noise => "frizzview-teaching-noise.png",
        }
    }
}

type LiveMsg = (u64, Result<LiveView, String>);

#[derive(Default)]
struct Slot {
    job: Option<(u64, TeachingParams, Cancel)>,
    ctx: Option<egui::Context>,
    shutdown: bool,
}

/// A worker thread running the newest live request; older queued requests are replaced, the
/// running one is cancelled.
struct Worker {
    slot: Arc<(Mutex<Slot>, Condvar)>,
    rx: Receiver<LiveMsg>,
}

impl Worker {
    fn spawn() -> Option<Self> {
        let slot = Arc::new((Mutex::new(Slot::default()), Condvar::new()));
        let (tx, rx) = mpsc::channel::<LiveMsg>();
        let shared = Arc::clone(&slot);
        std::thread::Builder::new()
            .name("teaching-worker".into())
            .spawn(move || worker_loop(&shared, &tx))
            .ok()?;
        Some(Self { slot, rx })
    }

    fn submit(&self, generation: u64, params: TeachingParams, cancel: Cancel, ctx: &egui::Context) {
        let (lock, cv) = &*self.slot;
        let mut s = lock.lock().unwrap_or_else(PoisonError::into_inner);
        s.job = Some((generation, params, cancel));
        s.ctx = Some(ctx.clone());
        cv.notify_one();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let (lock, cv) = &*self.slot;
        lock.lock().unwrap_or_else(PoisonError::into_inner).shutdown = true;
        cv.notify_one();
    }
}

fn worker_loop(slot: &(Mutex<Slot>, Condvar), tx: &Sender<LiveMsg>) {
    let (lock, cv) = slot;
    loop {
        let (job, ctx) = {
            let mut s = lock.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if s.shutdown {
                    return;
                }
                if let Some(job) = s.job.take() {
                    break (job, s.ctx.clone());
                }
                s = cv.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
        };
        let (generation, params, cancel) = job;
        let result = compute_live(&params, &cancel);
        if cancel.is_cancelled() {
            continue; // stale: a newer request exists
        }
        if tx.send((generation, result)).is_err() {
            return; // the panel is gone
        }
        if let Some(ctx) = ctx {
            ctx.request_repaint();
        }
    }
}

/// A noise test running in the background.
struct NoiseRun {
    cancel: Cancel,
    done: Arc<AtomicUsize>,
    trials: usize,
    rx: Receiver<Result<NoiseCurves, String>>,
}

/// The teaching panel. Put it in a tab and call [`TeachingPanel::ui`] every frame.
pub struct TeachingPanel {
    /// The slider values.
    pub params: TeachingParams,
    /// Trials of the noise test.
    pub trials: usize,
    worker: Option<Worker>,
    generation: u64,
    submitted: Option<TeachingParams>,
    cancel: Cancel,
    live: Option<LiveView>,
    live_error: Option<String>,
    noise_run: Option<NoiseRun>,
    noise: Option<NoiseCurves>,
    status: String,
    chooser: PathChooser,
    choosing: Option<(Figure, Receiver<Option<PathBuf>>)>,
    pending_shot: Option<(Figure, PathBuf)>,
    export_tx: Sender<Result<String, String>>,
    export_rx: Receiver<Result<String, String>>,
    spectra_rect: Option<egui::Rect>,
    noise_rect: Option<egui::Rect>,
}

impl Default for TeachingPanel {
    fn default() -> Self {
        Self::new()
    }
}

impl TeachingPanel {
    /// A panel that combines on a worker thread (the window's mode).
    #[must_use]
    pub fn new() -> Self {
        let mut p = Self::inline();
        p.worker = Worker::spawn();
        p
    }

    /// A panel that combines on the UI thread, inside [`TeachingPanel::ui`] (deterministic tests).
    #[must_use]
    pub fn inline() -> Self {
        let (export_tx, export_rx) = mpsc::channel();
        Self {
            params: TeachingParams::poor(),
            trials: 64,
            worker: None,
            generation: 0,
            submitted: None,
            cancel: Cancel::new(),
            live: None,
            live_error: None,
            noise_run: None,
            noise: None,
            status: String::new(),
            chooser: rfd_chooser(),
            choosing: None,
            pending_shot: None,
            export_tx,
            export_rx,
            spectra_rect: None,
            noise_rect: None,
        }
    }

    /// Replace the save-file dialog (tests inject a fixed path; nothing then reaches rfd).
    pub fn set_path_chooser(&mut self, chooser: PathChooser) {
        self.chooser = chooser;
    }

    /// The newest live result shown.
    #[must_use]
    pub fn live(&self) -> Option<&LiveView> {
        self.live.as_ref()
    }

    /// The latest live error, if the last computation failed.
    #[must_use]
    pub fn live_error(&self) -> Option<&str> {
        self.live_error.as_deref()
    }

    /// The latest noise figure.
    #[must_use]
    pub fn noise(&self) -> Option<&NoiseCurves> {
        self.noise.as_ref()
    }

    /// (finished, total) trials while a noise test runs.
    #[must_use]
    pub fn noise_progress(&self) -> Option<(usize, usize)> {
        self.noise_run
            .as_ref()
            .map(|r| (r.done.load(Ordering::Relaxed), r.trials))
    }

    /// Whether a live result for the current slider values is still pending.
    #[must_use]
    pub fn is_busy(&self) -> bool {
        self.submitted.as_ref() != Some(&self.params)
            || self.live.as_ref().map(|l| &l.params) != Some(&self.params)
                && self.live_error.is_none()
    }

    /// The status line (export results, errors).
    #[must_use]
    pub fn status(&self) -> &str {
        &self.status
    }

    /// Start the noise test with the current parameters (cancels a running one).
    pub fn start_noise(&mut self, ctx: &egui::Context) {
        self.cancel_noise();
        let cancel = Cancel::new();
        let done = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let params = self.params.clone();
        let trials = self.trials.max(1);
        let (c2, d2, ctx2) = (cancel.clone(), Arc::clone(&done), ctx.clone());
        let spawned = std::thread::Builder::new()
            .name("teaching-noise".into())
            .spawn(move || {
                let progress = |n: usize| {
                    d2.store(n.max(d2.load(Ordering::Relaxed)), Ordering::Relaxed);
                    ctx2.request_repaint();
                };
                let r = run_noise(&params, trials, &c2, &progress);
                let _ = tx.send(r);
                ctx2.request_repaint();
            });
        match spawned {
            Ok(_) => {
                self.noise_run = Some(NoiseRun {
                    cancel,
                    done,
                    trials,
                    rx,
                })
            }
            Err(e) => self.status = format!("cannot start the noise test: {e}"),
        }
    }

    /// Stop a running noise test.
    pub fn cancel_noise(&mut self) {
        if let Some(run) = self.noise_run.take() {
            run.cancel.cancel();
            self.status = "noise test cancelled".into();
        }
    }

    fn submit_if_changed(&mut self, ctx: &egui::Context) {
        if self.submitted.as_ref() == Some(&self.params) {
            return;
        }
        self.submitted = Some(self.params.clone());
        self.generation += 1;
        self.cancel.cancel();
        self.cancel = Cancel::new();
        match &self.worker {
            Some(w) => w.submit(
                self.generation,
                self.params.clone(),
                self.cancel.clone(),
                ctx,
            ),
            None => {
                let r = compute_live(&self.params, &self.cancel);
                self.accept((self.generation, r));
            }
        }
    }

    fn accept(&mut self, (generation, result): LiveMsg) {
        if generation != self.generation {
            return; // stale
        }
        match result {
            Ok(v) => {
                self.live = Some(v);
                self.live_error = None;
            }
            Err(e) => self.live_error = Some(e),
        }
    }

    fn poll(&mut self) {
        let msgs: Vec<LiveMsg> = match &self.worker {
            Some(w) => w.rx.try_iter().collect(),
            None => Vec::new(),
        };
        for m in msgs {
            self.accept(m);
        }
        if let Some(run) = &self.noise_run
            && let Ok(r) = run.rx.try_recv()
        {
            match r {
                Ok(n) => {
                    self.status = format!("noise test: {} trials done", n.trials);
                    self.noise = Some(n);
                }
                Err(e) => self.status = format!("noise test failed: {e}"),
            }
            self.noise_run = None;
        }
        if let Some((fig, rx)) = &self.choosing {
            match rx.try_recv() {
                Ok(path) => {
                    let fig = *fig;
                    self.choosing = None;
                    if let Some(path) = path {
                        self.pending_shot = Some((fig, path));
                    }
                }
                Err(mpsc::TryRecvError::Disconnected) => self.choosing = None,
                Err(mpsc::TryRecvError::Empty) => {}
            }
        }
        for r in self.export_rx.try_iter() {
            self.status = match r {
                Ok(s) | Err(s) => s,
            };
        }
    }

    /// Ask where to save `fig`, then save it (a screenshot of the figure's area).
    pub fn export(&mut self, fig: Figure) {
        let (tx, rx) = mpsc::channel();
        let chooser = Arc::clone(&self.chooser);
        let name = fig.file_name();
        let spawned = std::thread::Builder::new()
            .name("teaching-save-dialog".into())
            .spawn(move || {
                let _ = tx.send(chooser(name));
            });
        match spawned {
            Ok(_) => self.choosing = Some((fig, rx)),
            Err(e) => self.status = format!("cannot open the save dialog: {e}"),
        }
    }

    fn take_screenshot(&mut self, ctx: &egui::Context) {
        let Some((fig, path)) = self.pending_shot.take() else {
            return;
        };
        let rect = match fig {
            Figure::Spectra => self.spectra_rect,
            Figure::Noise => self.noise_rect,
        };
        let Some(rect) = rect else {
            self.status = format!(
                "{}: the figure is not shown, nothing to save",
                path.display()
            );
            return;
        };
        let ppp = ctx.pixels_per_point();
        let tx = self.export_tx.clone();
        let ctx2 = ctx.clone();
        ctx.request_screenshot(move |img| {
            let r = save_region_png(&img, rect, ppp, &path)
                .map(|[w, h]| format!("saved {} ({w} x {h} px)", path.display()));
            let _ = tx.send(r);
            ctx2.request_repaint();
        });
    }
}

/// Split a curve at non-finite values so that gaps (no data) are not bridged.
fn finite_runs(x: &[f64], y: &[f64]) -> Vec<Vec<[f64; 2]>> {
    let mut runs = Vec::new();
    let mut cur = Vec::new();
    for (&a, &b) in x.iter().zip(y) {
        if a.is_finite() && b.is_finite() {
            cur.push([a, b]);
        } else if !cur.is_empty() {
            runs.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        runs.push(cur);
    }
    runs
}

fn add_curve(
    plot_ui: &mut egui_plot::PlotUi<'_>,
    name: &str,
    x: &[f64],
    y: &[f64],
    color: egui::Color32,
    width: f32,
    style: LineStyle,
) {
    for (k, run) in finite_runs(x, y).into_iter().enumerate() {
        plot_ui.line(
            Line::new(name, PlotPoints::from(run))
                .id((name, k))
                .color(color)
                .width(width)
                .style(style),
        );
    }
}

impl TeachingPanel {
    /// Draw the panel: controls on the left, figures on the right.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.poll();
        egui::Panel::left("teaching_controls")
            .resizable(true)
            .default_size(300.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| self.controls(ui, &ctx));
            });
        egui::CentralPanel::default().show(ui, |ui| self.figures(ui));
        self.submit_if_changed(&ctx);
        self.take_screenshot(&ctx);
    }

    fn controls(&mut self, ui: &mut egui::Ui, ctx: &egui::Context) {
        ui.heading("Teaching mode");
        ui.label("The paper's synthetic experiment (Hogg & Casey 2024, §4), live.");
        ui.horizontal_wrapped(|ui| {
            if ui
                .button("Poorly sampled (paper)")
                .on_hover_text("dx = 2/R, S/N 18, 8 visits")
                .clicked()
            {
                self.params = TeachingParams::poor();
            }
            if ui
                .button("Well sampled (paper)")
                .on_hover_text("dx = 1/R, S/N 12, 8 visits")
                .clicked()
            {
                self.params = TeachingParams::well();
            }
        });
        ui.separator();
        let p = &mut self.params;
        ui.add(
            egui::Slider::new(&mut p.resolving_power, 5_000.0..=300_000.0)
                .logarithmic(true)
                .text("resolving power R"),
        );
        ui.add(
            egui::Slider::new(&mut p.pixel_spacing_r, 0.5..=3.0)
                .step_by(0.05)
                .text("pixel spacing (1/R)"),
        )
        .on_hover_text("input pixel spacing in units of 1/R: 2 = poorly sampled, 1 = well sampled");
        ui.add(
            egui::Slider::new(&mut p.snr, 2.0..=300.0)
                .logarithmic(true)
                .text("S/N per pixel"),
        );
        ui.add(egui::Slider::new(&mut p.n_visits, 1..=64).text("visits"));
        ui.add(
            egui::Slider::new(&mut p.velocity_amplitude_kms, 0.0..=100.0)
                .suffix(" km/s")
                .text("velocity amplitude"),
        );
        ui.add(
            egui::Slider::new(&mut p.bad_fraction, 0.0..=0.1)
                .step_by(0.001)
                .text("bad-pixel fraction"),
        )
        .on_hover_text("probability that a pixel seeds a group of 3 bad pixels");
        ui.add(
            egui::Slider::new(&mut p.line_density, 0.0..=80_000.0)
                .step_by(500.0)
                .text("line density (per unit ln λ)"),
        );
        ui.add(
            egui::Slider::new(&mut p.telluric_depth, 0.0..=1.0)
                .step_by(0.01)
                .text("telluric depth"),
        )
        .on_hover_text("telluric lines fixed in the observed frame, multiplied into the model");
        ui.add(egui::Slider::new(&mut p.seed, 0..=999).text("noise seed"));
        ui.add(egui::Slider::new(&mut p.truth_seed, 0..=999).text("line-list seed"));

        ui.separator();
        ui.label(egui::RichText::new("This realisation").strong());
        match (&self.live, &self.live_error) {
            (_, Some(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            (Some(v), None) => {
                for (name, m) in [
                    ("forward model", &v.forward),
                    ("standard practice", &v.standard),
                ] {
                    if let Some(m) = m {
                        ui.label(format!(
                            "{name}: rms residual {:.4}, lag-1 correlation {:+.2}",
                            m.rms, m.lag1
                        ));
                    }
                }
                ui.label(format!("computed in {:.0} ms", v.elapsed_ms));
                for msg in &v.messages {
                    ui.colored_label(ui.visuals().warn_fg_color, msg);
                }
            }
            (None, None) => {
                ui.label("computing…");
            }
        }
        if self.is_busy() && self.live.is_some() {
            ui.label("updating…");
        }

        ui.separator();
        ui.label(egui::RichText::new("Noise test").strong());
        ui.label("Same truth, new noise each trial: covariance of the residual against lag.");
        ui.add(
            egui::Slider::new(&mut self.trials, 1..=256)
                .logarithmic(true)
                .text("trials"),
        );
        if let Some((done, total)) = self.noise_progress() {
            ui.add(
                egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                    .text(format!("{done} / {total} trials")),
            );
            if ui.button("Cancel noise test").clicked() {
                self.cancel_noise();
            }
        } else if ui
            .button(format!("Run {} trials", self.trials))
            .on_hover_text("repeat the paper's noise test with the current sliders")
            .clicked()
        {
            self.start_noise(ctx);
        }

        ui.separator();
        ui.horizontal_wrapped(|ui| {
            if ui.button("Save spectra PNG…").clicked() {
                self.export(Figure::Spectra);
            }
            let has_noise = self.noise.is_some();
            if ui
                .add_enabled(has_noise, egui::Button::new("Save noise PNG…"))
                .clicked()
            {
                self.export(Figure::Noise);
            }
        });
        if !self.status.is_empty() {
            ui.label(&self.status);
        }
    }

    fn figures(&mut self, ui: &mut egui::Ui) {
        let h = ui.available_height();
        let w = ui.available_width();
        let has_noise = self.noise.is_some() || self.noise_run.is_some();
        let (h_spec, h_res, h_noise) = if has_noise {
            (h * 0.38, h * 0.24, h * 0.30)
        } else {
            (h * 0.58, h * 0.36, 0.0)
        };
        let text = ui.visuals().text_color();
        let link = egui::Id::unique("teaching_x_link");
        let live = self.live.as_ref();
        let spec = Plot::new("teaching_spectra")
            .height(h_spec.max(80.0))
            .width(w)
            .legend(Legend::default())
            .link_axis(link, [true, false])
            .y_axis_label("flux")
            .show(ui, |pu| {
                let Some(v) = live else { return };
                if !v.data.is_empty() {
                    pu.points(
                        Points::new("data (rest frame)", PlotPoints::from(v.data.clone()))
                            .color(egui::Color32::from_gray(150))
                            .radius(1.2),
                    );
                }
                if !v.bad.is_empty() {
                    pu.points(
                        Points::new("bad pixels", PlotPoints::from(v.bad.clone()))
                            .color(egui::Color32::from_rgb(200, 40, 40))
                            .shape(egui_plot::MarkerShape::Cross)
                            .radius(2.0),
                    );
                }
                add_curve(
                    pu,
                    "truth",
                    &v.wave_aa,
                    &v.truth,
                    text,
                    1.5,
                    LineStyle::Solid,
                );
                if let Some(m) = &v.standard {
                    add_curve(
                        pu,
                        "standard practice",
                        &v.wave_aa,
                        &m.flux,
                        STANDARD_COLOR,
                        1.2,
                        LineStyle::Solid,
                    );
                }
                if let Some(m) = &v.forward {
                    add_curve(
                        pu,
                        "forward model",
                        &v.wave_aa,
                        &m.flux,
                        FORWARD_COLOR,
                        1.2,
                        LineStyle::Solid,
                    );
                }
            });
        let res = Plot::new("teaching_residuals")
            .height(h_res.max(60.0))
            .width(w)
            .legend(Legend::default())
            .link_axis(link, [true, false])
            .x_axis_label("rest wavelength (Å)")
            .y_axis_label("result − truth")
            .show(ui, |pu| {
                let Some(v) = live else { return };
                pu.hline(HLine::new("zero", 0.0).color(text).width(0.5));
                if let Some(m) = &v.standard {
                    add_curve(
                        pu,
                        "standard practice",
                        &v.wave_aa,
                        &m.residual,
                        STANDARD_COLOR,
                        1.0,
                        LineStyle::Solid,
                    );
                }
                if let Some(m) = &v.forward {
                    add_curve(
                        pu,
                        "forward model",
                        &v.wave_aa,
                        &m.residual,
                        FORWARD_COLOR,
                        1.0,
                        LineStyle::Solid,
                    );
                    let neg: Vec<f64> = m.sigma.iter().map(|s| -s).collect();
                    let dashed = LineStyle::Dashed { length: 6.0 };
                    add_curve(
                        pu,
                        "±1σ predicted (forward)",
                        &v.wave_aa,
                        &m.sigma,
                        FORWARD_COLOR,
                        0.7,
                        dashed,
                    );
                    add_curve(
                        pu,
                        "±1σ predicted (forward)",
                        &v.wave_aa,
                        &neg,
                        FORWARD_COLOR,
                        0.7,
                        dashed,
                    );
                }
            });
        self.spectra_rect = Some(spec.response.rect.union(res.response.rect));
        if !has_noise {
            self.noise_rect = None;
            return;
        }
        let noise = self.noise.as_ref();
        let resp = Plot::new("teaching_noise")
            .height(h_noise.max(80.0))
            .width(w)
            .legend(Legend::default())
            .x_axis_label("lag (output pixels)")
            .y_axis_label("covariance")
            .include_y(0.0)
            .show(ui, |pu| {
                let Some(n) = noise else { return };
                let pts = |c: &[f64]| -> Vec<[f64; 2]> {
                    c.iter()
                        .enumerate()
                        .filter(|(_, v)| v.is_finite())
                        .map(|(k, &v)| [k as f64, v])
                        .collect()
                };
                pu.hline(HLine::new("zero", 0.0).color(text).width(0.5));
                if n.predicted_var.is_finite() {
                    pu.hline(
                        HLine::new("predicted variance (forward)", n.predicted_var)
                            .color(FORWARD_COLOR)
                            .style(LineStyle::Dashed { length: 8.0 })
                            .width(1.0),
                    );
                }
                for (name, c, color) in [
                    ("standard practice", &n.standard_cov, STANDARD_COLOR),
                    ("forward model", &n.forward_cov, FORWARD_COLOR),
                ] {
                    pu.line(
                        Line::new(name, PlotPoints::from(pts(c)))
                            .color(color)
                            .width(1.5),
                    );
                    pu.points(
                        Points::new(name, PlotPoints::from(pts(c)))
                            .id((name, "markers"))
                            .color(color)
                            .radius(3.0),
                    );
                }
            });
        self.noise_rect = Some(resp.response.rect);
    }
}
