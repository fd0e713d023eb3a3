//! The images mode: dithered exposures combined by the 2-D forward model
//! (`image::frizzle2d`) beside drizzle (`image::drizzle`), recomputed off the UI thread on every
//! toggle. Files: `inputs.rs` (reading, geometry, the demo), `job.rs` (the two workers),
//! `coverage.rs` (the M/P trap), `view.rs` (colour scale, canvas), `panel.rs` (the controls and
//! the central views).

pub mod coverage;
pub mod inputs;
pub mod job;
pub mod panel;
pub mod view;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};

use eframe::egui;

use inputs::{Built, ImageSettings, Inputs};
use job::{Aperture, DrizzleOut, FrizzleOut, Request, Update, Workers};
use view::{Camera, ColorScale};

/// What fills the images mode's centre.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageView {
    /// One exposure, drawn at its dither on the output grid.
    Exposure,
    /// The forward model's combined image.
    Frizzle,
    /// Drizzle's combined image.
    Drizzle,
    /// Frizzle - drizzle.
    Difference,
    /// One exposure's residuals (data - model - sky), at its dither.
    Residuals,
    /// Correlation of neighbouring output pixels, both methods.
    Noise,
    /// Input samples per output pixel and the exposures' sub-pixel phases.
    Coverage,
}

impl ImageView {
    /// Every view with its label.
    pub const ALL: [(Self, &'static str); 7] = [
        (Self::Exposure, "exposure"),
        (Self::Frizzle, "Frizzle"),
        (Self::Drizzle, "drizzle"),
        (Self::Difference, "Frizzle − drizzle"),
        (Self::Residuals, "residuals"),
        (Self::Noise, "noise correlation"),
        (Self::Coverage, "coverage / phases"),
    ];
}

type Loaded = (Vec<PathBuf>, Result<Inputs, String>);
/// What was last submitted: inputs key, settings, aperture, noise pixel.
type Submitted = (u64, ImageSettings, Option<Aperture>, Option<(usize, usize)>);

/// The images mode's state.
pub struct ImagesState {
    /// The mode is shown (else the spectral mode).
    pub active: bool,
    /// The open set.
    pub inputs: Option<Arc<Inputs>>,
    inputs_key: u64,
    /// The files it came from (empty for the demo).
    pub files: Vec<PathBuf>,
    /// What the panel edits.
    pub settings: ImageSettings,
    /// The central view and the exposure it shows (exposure and residual views).
    pub view: ImageView,
    pub selected: usize,
    pub color: ColorScale,
    /// The aperture tool: clicks on the image place `aperture` with radius `aperture_r`.
    pub aperture_tool: bool,
    pub aperture_r: f64,
    pub aperture: Option<Aperture>,
    /// Where the noise correlation is measured (None: the centre).
    pub noise_at: Option<(usize, usize)>,
    workers: Option<Workers>,
    wake: Option<egui::Context>,
    generation: u64,
    submitted: Option<Submitted>,
    /// The newest output grid and exposures (from the newest accepted generation).
    pub built: Option<Arc<Built>>,
    /// The newest results of each method (never from a generation older than the shown one;
    /// results of a generation older than the newest request are dropped).
    pub frizzle: Option<Arc<FrizzleOut>>,
    pub drizzle: Option<Arc<DrizzleOut>>,
    /// Generations of the shown results.
    pub frizzle_gen: u64,
    pub drizzle_gen: u64,
    /// The newest errors of each method.
    pub frizzle_error: Option<String>,
    pub drizzle_error: Option<String>,
    load_tx: Sender<Loaded>,
    load_rx: Receiver<Loaded>,
    threaded: bool,
    /// A load running (what it reads).
    pub loading: Option<String>,
    pub(crate) camera: Camera,
    /// The image view's canvas in the last frame.
    pub(crate) canvas_rect: Option<egui::Rect>,
    tex: Option<(String, egui::TextureHandle, (f64, f64))>,
    /// View items (`FRIZZVIEW_VIEW`) applied once a set is open.
    pending: Vec<(String, String)>,
    /// Messages for the status bar: (text, error).
    messages: Vec<(String, bool)>,
    /// The readout under the pointer (last frame).
    pub readout: String,
}

impl std::fmt::Debug for ImagesState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImagesState")
            .field("active", &self.active)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ImagesState {
    /// A closed images mode; `threaded` workers (else everything runs inside the frame).
    #[must_use]
    pub fn new(threaded: bool) -> Self {
        let (load_tx, load_rx) = mpsc::channel();
        Self {
            active: false,
            inputs: None,
            inputs_key: 0,
            files: Vec::new(),
            settings: ImageSettings {
                exposures: Vec::new(),
                scale: 1.0,
                pixfrac: 0.6,
                sky: true,
                ridge: 0.0,
                converge: false,
            },
            view: ImageView::Frizzle,
            selected: 0,
            color: ColorScale::default(),
            aperture_tool: false,
            aperture_r: 3.0,
            aperture: None,
            noise_at: None,
            workers: None,
            wake: None,
            generation: 0,
            submitted: None,
            built: None,
            frizzle: None,
            drizzle: None,
            frizzle_gen: 0,
            drizzle_gen: 0,
            frizzle_error: None,
            drizzle_error: None,
            load_tx,
            load_rx,
            threaded,
            loading: None,
            camera: Camera::default(),
            canvas_rect: None,
            tex: None,
            pending: Vec::new(),
            messages: Vec::new(),
            readout: String::new(),
        }
    }

    /// Repaint `ctx` when a worker sends a result (the workers start on the first request).
    pub fn set_wake(&mut self, ctx: &egui::Context) {
        if self.wake.is_none() {
            self.wake = Some(ctx.clone());
        }
    }

    /// Open the built-in demo and show the mode.
    pub fn open_demo(&mut self) {
        self.active = true;
        self.set_inputs(inputs::demo(), Vec::new());
    }

    /// Read image files (and a shifts table) in the background and show the mode; a failure
    /// becomes a message naming the file, and the open set stays.
    pub fn open_files(&mut self, paths: Vec<PathBuf>) {
        if paths.is_empty() {
            return;
        }
        self.active = true;
        self.loading = Some(match paths.as_slice() {
            [one] => format!("reading {}", one.display()),
            _ => format!("reading {} files", paths.len()),
        });
        let tx = self.load_tx.clone();
        let work = move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inputs::load(&paths)))
                .unwrap_or_else(|p| {
                    Err(format!(
                        "internal error reading images (a bug; please report it): {}",
                        crate::engine::worker::panic_message(p.as_ref())
                    ))
                });
            let _ = tx.send((paths, r));
        };
        if self.threaded {
            if std::thread::Builder::new()
                .name("images-load".into())
                .spawn(work)
                .is_err()
            {
                self.loading = None;
                self.messages
                    .push(("cannot start a background job".into(), true));
            }
        } else {
            work();
        }
        self.poll_loads();
    }

    fn poll_loads(&mut self) {
        while let Ok((paths, r)) = self.load_rx.try_recv() {
            self.loading = None;
            match r {
                Ok(inp) => {
                    let n = inp.exposures.len();
                    self.set_inputs(inp, paths);
                    self.messages
                        .push((format!("images: loaded {n} exposure(s)"), false));
                }
                Err(e) => self.messages.push((e, true)),
            }
        }
    }

    fn set_inputs(&mut self, inp: Inputs, files: Vec<PathBuf>) {
        self.settings = ImageSettings::for_inputs(&inp);
        self.camera = Camera {
            flip_y: matches!(inp.geometry, inputs::Geometry::Wcs(_)),
            ..Camera::default()
        };
        self.inputs = Some(Arc::new(inp));
        self.inputs_key += 1;
        self.files = files;
        self.selected = 0;
        self.aperture = None;
        self.noise_at = None;
        self.built = None;
        self.frizzle = None;
        self.drizzle = None;
        self.frizzle_error = None;
        self.drizzle_error = None;
        self.tex = None;
        for (k, v) in std::mem::take(&mut self.pending) {
            if let Err(e) = self.apply_item(&k, &v) {
                self.messages.push((e, true));
            }
        }
    }

    /// Messages for the status bar since the last call: (text, error).
    pub fn take_messages(&mut self) -> Vec<(String, bool)> {
        std::mem::take(&mut self.messages)
    }

    /// Take results, submit changed settings. Called at the start of each frame of the mode.
    pub fn logic(&mut self) {
        self.poll_loads();
        let updates = self.workers.as_mut().map(Workers::poll).unwrap_or_default();
        for u in updates {
            match u {
                Update::Grid { generation, built } if generation == self.generation => {
                    self.built = Some(built);
                }
                Update::Frizzle { generation, out } if generation == self.generation => {
                    self.frizzle = Some(out);
                    self.frizzle_gen = generation;
                    self.frizzle_error = None;
                }
                Update::Drizzle { generation, out } if generation == self.generation => {
                    self.drizzle = Some(out);
                    self.drizzle_gen = generation;
                    self.drizzle_error = None;
                }
                Update::Error {
                    generation,
                    what,
                    message,
                } if generation == self.generation => {
                    let m = Some(format!("{what}: {message}"));
                    if what == "drizzle" {
                        self.drizzle_error = m;
                    } else {
                        self.frizzle_error = m;
                    }
                }
                // Results of older requests: stale, dropped.
                _ => {}
            }
        }
        let Some(inp) = &self.inputs else {
            return;
        };
        let now = (
            self.inputs_key,
            self.settings.clone(),
            self.aperture,
            self.noise_at,
        );
        if self.submitted.as_ref() != Some(&now) {
            self.generation += 1;
            let r = Request {
                generation: self.generation,
                inputs: Arc::clone(inp),
                inputs_key: self.inputs_key,
                settings: self.settings.clone(),
                aperture: self.aperture,
                noise_at: self.noise_at,
            };
            self.submitted = Some(now);
            let (threaded, wake) = (self.threaded, self.wake.clone());
            self.workers
                .get_or_insert_with(|| {
                    Workers::new(
                        threaded,
                        wake.map(|c| -> Arc<dyn Fn() + Send + Sync> {
                            Arc::new(move || c.request_repaint())
                        }),
                    )
                })
                .submit(&r);
            if !self.threaded {
                self.logic();
            }
        }
    }

    /// Whether the newest request's results are all in (both methods, every stage, or errors).
    #[must_use]
    pub fn settled(&self) -> bool {
        let g = self.generation;
        self.inputs.is_some()
            && self.loading.is_none()
            && self.submitted.is_some()
            && (self.drizzle_gen == g || self.drizzle_error.is_some())
            && ((self.frizzle_gen == g && self.frizzle.as_ref().is_some_and(|f| f.complete))
                || self.frizzle_error.is_some())
    }

    /// Whether a computation for the newest settings is still running.
    #[must_use]
    pub fn computing(&self) -> bool {
        self.inputs.is_some() && !self.settled()
    }

    /// Apply one `FRIZZVIEW_VIEW` item of the images mode (`mode=images`, `iview=frizzle|drizzle|
    /// difference|exposure|residuals|noise|coverage`, `scale=S`, `pixfrac=F`, `converge=on|off`,
    /// `sky=on|off`, `aperture=X:Y:R`, `exposure=N` (1-based), `stretch=linear|asinh`,
    /// `pct=LO:HI`); items that need an open set wait for it.
    ///
    /// # Errors
    /// An item it does not know.
    pub fn apply_item(&mut self, key: &str, value: &str) -> Result<(), String> {
        let bad = || format!("FRIZZVIEW_VIEW: cannot apply '{key}={value}'");
        let on = |v: &str| match v {
            "on" | "true" | "1" => Some(true),
            "off" | "false" | "0" => Some(false),
            _ => None,
        };
        if key == "mode" {
            self.active = value == "images";
            return Ok(());
        }
        if self.inputs.is_none() && key != "iview" && key != "stretch" && key != "pct" {
            self.pending.push((key.to_owned(), value.to_owned()));
            return Ok(());
        }
        match key {
            "iview" => {
                self.view = match value {
                    "exposure" => ImageView::Exposure,
                    "frizzle" => ImageView::Frizzle,
                    "drizzle" => ImageView::Drizzle,
                    "difference" => ImageView::Difference,
                    "residuals" => ImageView::Residuals,
                    "noise" => ImageView::Noise,
                    "coverage" => ImageView::Coverage,
                    _ => return Err(bad()),
                };
            }
            "scale" => self.settings.scale = value.parse().map_err(|_| bad())?,
            "pixfrac" => self.settings.pixfrac = value.parse().map_err(|_| bad())?,
            "converge" => self.settings.converge = on(value).ok_or_else(bad)?,
            "sky" => self.settings.sky = on(value).ok_or_else(bad)?,
            "exposure" => {
                self.selected = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(bad)?
                    - 1;
            }
            "stretch" => {
                self.color.stretch = match value {
                    "linear" => view::Stretch::Linear,
                    "asinh" => view::Stretch::Asinh,
                    _ => return Err(bad()),
                };
            }
            "pct" => {
                let (a, b) = value.split_once(':').ok_or_else(bad)?;
                self.color.lo_pct = a.parse().map_err(|_| bad())?;
                self.color.hi_pct = b.parse().map_err(|_| bad())?;
            }
            "aperture" => {
                let v: Vec<f64> = value.split(':').filter_map(|s| s.parse().ok()).collect();
                if v.len() != 3 {
                    return Err(bad());
                }
                self.aperture_r = v[2];
                self.aperture = Some(Aperture {
                    x: v[0],
                    y: v[1],
                    r: v[2],
                });
            }
            _ => return Err(bad()),
        }
        Ok(())
    }
}
