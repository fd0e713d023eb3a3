//! Teaching mode: the paper's experiments, live.
//!
//! Sliders set the parameters of the paper's synthetic data (Hogg & Casey 2024,
//! arXiv:2403.11011, §4; the numerics are in [`crate::experiment::live`]): resolving power, input
//! pixel spacing in units of 1/R, S/N, number of visits, velocity amplitude, bad-pixel fraction,
//! line density, telluric depth and the seeds. Every change regenerates the visits and combines
//! them with both methods off the UI thread (newest request wins, stale results are dropped); the
//! panel shows the truth, each method's result and each method's residual. A "64 trials" button
//! repeats the paper's noise test in the background and plots the empirical covariance against
//! lag for both methods with the forward model's predicted variance: the paper's noise figure.
//! Both figures export as PNG (a viewport screenshot cropped to the figure).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};

use eframe::egui;
use egui_plot::{HLine, Legend, Line, LineStyle, Plot, PlotPoints, Points};

use crate::combine::Cancel;
use crate::engine::Worker;
use crate::experiment;

/// Number of covariance lags in the noise figure (0..=11, as in the paper).
pub const NOISE_LAGS: usize = experiment::NOISE_LAGS;

/// Colour of the forward model (Frizzle) in every teaching figure.
const FORWARD_COLOR: egui::Color32 = egui::Color32::from_rgb(31, 119, 180);
/// Colour of standard practice in every teaching figure.
const STANDARD_COLOR: egui::Color32 = egui::Color32::from_rgb(230, 110, 10);

pub use crate::experiment::live::{
    ForwardChoice, LiveView, MethodCurve, NoiseCurves, TeachingParams, compute_live, run_noise,
    teaching_settings,
};

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
    crate::png::write_png(path, x1 - x0, y1 - y0, &bytes, &[]).map_err(|e| e.to_string())?;
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

type LiveOutcome = Result<LiveView, String>;

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
    /// The forward model to fit.
    pub forward: ForwardChoice,
    /// Trials of the noise test.
    pub trials: usize,
    /// Draw the figures on a light background (for slides).
    pub light_figures: bool,
    /// Run the live combination on a background thread (else inline, inside `ui`).
    threaded: bool,
    /// Created on the first frame, when the context for the wake-up callback is known.
    worker: Option<Worker<LiveOutcome>>,
    submitted: Option<(TeachingParams, ForwardChoice)>,
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

/// Both methods' curves of the live view (standard practice, then the forward model): `y` of
/// each against the rest wavelength, solid, `width` wide.
fn add_methods(
    plot_ui: &mut egui_plot::PlotUi<'_>,
    v: &LiveView,
    y: fn(&MethodCurve) -> &[f64],
    width: f32,
) {
    for (name, m, color) in [
        ("standard practice", &v.standard, STANDARD_COLOR),
        ("forward model", &v.forward, FORWARD_COLOR),
    ] {
        if let Some(m) = m {
            add_curve(
                plot_ui,
                name,
                &v.wave_aa,
                y(m),
                color,
                width,
                LineStyle::Solid,
            );
        }
    }
}

impl TeachingPanel {
    /// A panel that combines on a worker thread (the window's mode).
    #[must_use]
    pub fn new() -> Self {
        Self {
            threaded: true,
            ..Self::inline()
        }
    }

    /// A panel that combines on the UI thread, inside [`TeachingPanel::ui`] (deterministic tests).
    #[must_use]
    pub fn inline() -> Self {
        let (export_tx, export_rx) = mpsc::channel();
        Self {
            params: TeachingParams::poor(),
            forward: ForwardChoice::default(),
            trials: 64,
            light_figures: false,
            threaded: false,
            worker: None,
            submitted: None,
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
        !self.is_submitted() || self.worker.as_ref().is_some_and(Worker::is_busy)
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
        let forward = self.forward;
        let trials = self.trials.max(1);
        let (c2, d2, ctx2) = (cancel.clone(), Arc::clone(&done), ctx.clone());
        let spawned = std::thread::Builder::new()
            .name("teaching-noise".into())
            .spawn(move || {
                let progress = |n: usize| {
                    d2.store(n.max(d2.load(Ordering::Relaxed)), Ordering::Relaxed);
                    ctx2.request_repaint();
                };
                let r = run_noise(&params, forward, trials, &c2, &progress);
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

    fn worker(&mut self, ctx: &egui::Context) -> &mut Worker<LiveOutcome> {
        let threaded = self.threaded;
        self.worker.get_or_insert_with(|| {
            let ctx = ctx.clone();
            let wake: crate::engine::WakeFn = Arc::new(move || ctx.request_repaint());
            if threaded {
                match Worker::threaded(Some(wake)) {
                    Ok(w) => return w,
                    Err(e) => {
                        log::warn!("teaching panel: no worker thread ({e}), computing inline")
                    }
                }
            }
            Worker::inline()
        })
    }

    fn is_submitted(&self) -> bool {
        self.submitted
            .as_ref()
            .is_some_and(|(p, f)| *p == self.params && *f == self.forward)
    }

    fn submit_if_changed(&mut self, ctx: &egui::Context) {
        if self.is_submitted() {
            return;
        }
        self.submitted = Some((self.params.clone(), self.forward));
        let (params, forward) = (self.params.clone(), self.forward);
        self.worker(ctx)
            .submit(move |cancel| compute_live(&params, forward, cancel));
        self.poll_live(); // inline: the result is ready now
    }

    /// Show the newest finished result (possibly of a superseded request while a slider is being
    /// dragged, so the plots follow the drag at the rate results arrive).
    fn poll_live(&mut self) {
        let Some(worker) = self.worker.as_mut() else {
            return;
        };
        let done = worker.poll();
        if let Some((generation, message)) = worker.take_panic()
            && generation == worker.latest_generation()
        {
            self.live_error = Some(format!("internal error (a bug): {message}"));
        }
        let Some(done) = done else {
            return;
        };
        let current = done.generation == worker.latest_generation();
        match done.value {
            Ok(v) => {
                self.live = Some(v);
                self.live_error = None;
            }
            // A superseded request that failed (typically: cancelled) says nothing about now.
            Err(e) if current => self.live_error = Some(e),
            Err(_) => {}
        }
    }

    fn poll(&mut self) {
        self.poll_live();
        if let Some(run) = &self.noise_run {
            match run.rx.try_recv() {
                Ok(Ok(n)) => {
                    self.status = format!("noise test: {} trials done", n.trials);
                    self.noise = Some(n);
                    self.noise_run = None;
                }
                Ok(Err(e)) => {
                    self.status = format!("noise test failed: {e}");
                    self.noise_run = None;
                }
                // The thread ended without a result: it panicked (the message went to the log).
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.status = "noise test failed: internal error (a bug; the log has the \
                                   details)"
                        .into();
                    self.noise_run = None;
                }
                Err(mpsc::TryRecvError::Empty) => {}
            }
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
        egui::ComboBox::from_label("forward model")
            .selected_text(self.forward.label())
            .show_ui(ui, |ui| {
                for c in ForwardChoice::ALL {
                    ui.selectable_value(&mut self.forward, c, c.label());
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
        ui.checkbox(&mut self.light_figures, "light figures (for slides)");
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
        if self.light_figures {
            let v = egui::Visuals::light();
            ui.painter().rect_filled(ui.max_rect(), 0.0, v.panel_fill);
            *ui.visuals_mut() = v;
        }
        let caption_h = 3.0 * ui.text_style_height(&egui::TextStyle::Small);
        let h = (ui.available_height() - caption_h).max(200.0);
        let w = ui.available_width();
        let has_noise = self.noise.is_some() || self.noise_run.is_some();
        let (h_spec, h_res, h_noise) = if has_noise {
            (h * 0.40, h * 0.26, h * 0.30)
        } else {
            (h * 0.60, h * 0.37, 0.0)
        };
        let text = ui.visuals().text_color();
        let link = egui::Id::unique("teaching_x_link");
        let live = self.live.as_ref();
        let spectra = ui.vertical(|ui| {
            ui.label(
                egui::RichText::new(
                    "Grey dots: every visit's pixels shifted to the rest frame (red crosses: bad \
                 pixels). Standard practice interpolates each visit and averages, so its noise is \
                 smoothed over neighbouring pixels; the forward model fits all pixels at once and \
                 its residuals stay uncorrelated.",
                )
                .small(),
            );
            Plot::new("teaching_spectra")
                .height(h_spec.max(80.0))
                .width(w)
                .legend(Legend::default())
                .link_axis(link, [true, false])
                .y_axis_label("flux")
                .show_axes([false, true])
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
                    add_methods(pu, v, |m| &m.flux, 1.2);
                });
            Plot::new("teaching_residuals")
                .height(h_res.max(60.0))
                .width(w)
                .legend(Legend::default())
                .link_axis(link, [true, false])
                .x_axis_label("rest wavelength (Å)")
                .y_axis_label("result − truth")
                .show(ui, |pu| {
                    let Some(v) = live else { return };
                    pu.hline(HLine::new("", 0.0).id("zero").color(text).width(0.5));
                    add_methods(pu, v, |m| &m.residual, 1.0);
                    if let Some(m) = &v.forward {
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
        });
        self.spectra_rect = Some(spectra.response.rect);
        if !has_noise {
            self.noise_rect = None;
            return;
        }
        let noise = self.noise.as_ref();
        let summary = match noise {
            Some(n) => format!(
                "Noise test, {} trials: lag-1 / lag-0 covariance = {:+.3} (forward model), {:+.3} \
                 (standard practice); empirical / predicted variance (forward) = {:.3}",
                n.trials,
                n.forward_cov[1] / n.forward_cov[0],
                n.standard_cov[1] / n.standard_cov[0],
                n.forward_cov[0] / n.predicted_var
            ),
            None => "Noise test running…".to_owned(),
        };
        let resp = ui.vertical(|ui| {
            ui.label(egui::RichText::new(summary).small());
            Plot::new("teaching_noise")
                .height(h_noise.max(80.0))
                .width(w)
                .legend(Legend::default())
                .x_axis_label("lag (output pixels)")
                .y_axis_label("covariance")
                .y_axis_formatter(|m, _| {
                    if m.value.abs() < 1e-15 {
                        "0".to_owned()
                    } else {
                        format!("{:.1e}", m.value)
                    }
                })
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
                    pu.hline(HLine::new("", 0.0).id("zero").color(text).width(0.5));
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
        });
        self.noise_rect = Some(resp.response.rect);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_noise_thread_that_dies_ends_the_run_with_an_error() {
        let mut panel = TeachingPanel::inline();
        let (tx, rx) = mpsc::channel();
        // The thread's end of the channel goes away without a result, as when it panics.
        let dead = std::thread::spawn(move || {
            let _tx = tx;
        });
        dead.join().expect("joined");
        panel.noise_run = Some(NoiseRun {
            cancel: Cancel::new(),
            done: Arc::new(AtomicUsize::new(3)),
            trials: 64,
            rx,
        });
        assert_eq!(panel.noise_progress(), Some((3, 64)));
        panel.poll();
        assert_eq!(
            panel.noise_progress(),
            None,
            "the run must not stay 'running'"
        );
        assert!(
            panel.status().contains("noise test failed"),
            "{}",
            panel.status()
        );
    }
}
