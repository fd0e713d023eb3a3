//! The eframe window (feature `gui`). The only module that imports egui.
//!
//! Immediate mode over an immutable store: the loaded [`Dataset`] is an `Arc` replaced on load;
//! every frame the widgets edit one [`Settings`] value, and when it differs from the last
//! submitted one it goes to the [`CombineEngine`] (a worker thread). Results come back as owned
//! values; the plots keep the last result until a newer one arrives.
//!
//! **Layers** (each file uses only files below it; `python3 import_graph.py src` shows no circle):
//! this file is the top: `impl FrizzApp` (loading, the engine, jobs, dialogs, the frame) and the
//! only code that holds the whole [`FrizzApp`]. Below it `state.rs` (the fields of
//! [`FrizzApp`], data only). Each panel gets the narrow part it draws and hands back what the
//! window should do: `options_ui.rs` (the settings panel: `&mut Settings`, `&mut ViewOptions`),
//! `visits_ui.rs` (the visit table: [`visits_ui::VisitTable`], returns the visit clicked),
//! `plot_ui/` (spectra, exposures, noise: [`view::Scene`] and its own [`plot_ui::PlotState`]),
//! `fetch_ui.rs` (the fetch dialog and job: returns "start"), `teaching.rs` (its own state),
//! `images/` (the images mode: its own state, returns its requests), `dialogs.rs` (how file
//! dialogs open), `view_spec.rs` (`FRIZZVIEW_VIEW`), `screenshot.rs`. Under them:
//! `visit_rows.rs` (visit order, colours, the velocity in use by the core's
//! `velocity::rule`), `view.rs` (view options, [`Scene`]), `jobs.rs`, `files.rs`, `demo.rs`,
//! `read.rs`, `trace.rs`, `yrange.rs`, `icon.rs`. PNGs are written by [`crate::png`].

pub mod demo;
pub mod fetch_ui;
pub mod files;
pub mod images;
pub mod jobs;
pub mod options_ui;
pub mod plot_ui;
pub mod read;
pub mod state;
pub mod teaching;
pub mod trace;
pub mod view;
pub mod visit_rows;
pub mod visits_ui;
pub mod yrange;

mod dialogs;
mod icon;
mod screenshot;
mod view_spec;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use eframe::egui;

use crate::combine::CombineError;
use crate::engine::CombineEngine;
use crate::model::Dataset;
use crate::settings::{Settings, VisitSetting};

use demo::Demo;
pub use dialogs::{Chooser, DialogKind, Dialogs};
pub use icon::icon;
pub use screenshot::{ScreenshotJob, save_png};
pub use state::{FrizzApp, MAX_MESSAGES, Message, Prefs};
pub use view::{Compare, DrawFrame, ExposureLayout, Scene, SortKey, Tab, ViewOptions};

/// Persistence key of the window's preferences.
const PREFS_KEY: &str = "frizzview-prefs";

/// Open the window on `files` (or a demo) and run until it closes.
///
/// With `screenshot`, the window saves its own frame to that PNG once the first result has been
/// drawn, then closes.
pub fn run(
    files: Vec<PathBuf>,
    demo: Option<String>,
    screenshot: Option<PathBuf>,
) -> anyhow::Result<()> {
    let image_demo = demo.as_deref() == Some("images");
    let demo = match demo {
        Some(_) if image_demo => None,
        Some(name) => Some(Demo::parse(&name)?),
        None if files.is_empty() => Some(Demo::Apogee),
        None => None,
    };
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1400.0, 900.0])
            .with_min_inner_size([800.0, 500.0])
            .with_title("frizzview")
            .with_icon(Arc::new(icon()))
            .with_drag_and_drop(true),
        // Explicit: test builds also compile wgpu (egui_kittest), which eframe would prefer.
        renderer: eframe::Renderer::Glow,
        // Screenshots must not depend on the previous run's layout.
        persist_window: screenshot.is_none(),
        ..Default::default()
    };
    eframe::run_native(
        "frizzview",
        options,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let wake: crate::engine::WakeFn = Arc::new(move || ctx.request_repaint());
            let engine = CombineEngine::threaded(Some(wake))?;
            let prefs = if screenshot.is_some() {
                None
            } else {
                cc.storage
                    .and_then(|s| eframe::get_value::<Prefs>(s, PREFS_KEY))
            };
            let mut app = FrizzApp::new(engine, prefs);
            app.dialogs = Dialogs::Native;
            app.screenshot = screenshot.map(ScreenshotJob::new);
            match demo {
                Some(d) => app.open_demo(d),
                None if image_demo => app.images.open_demo(),
                None => app.open_files(files),
            }
            if let Ok(spec) = std::env::var("FRIZZVIEW_VIEW") {
                app.apply_view_spec(&spec);
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}

impl FrizzApp {
    /// An empty window using `engine`, with remembered preferences if any.
    #[must_use]
    pub fn new(engine: CombineEngine, prefs: Option<Prefs>) -> Self {
        let prefs = prefs.unwrap_or_default();
        let (png_tx, png_rx) = mpsc::channel();
        let jobs = jobs::Jobs::new(engine.is_threaded());
        let images = images::ImagesState::new(engine.is_threaded());
        Self {
            data: Arc::new(Dataset::default()),
            data_key: 0,
            files: Vec::new(),
            demo: None,
            settings: Settings::default(),
            view: prefs.view,
            remembered: prefs.settings,
            selected_visit: 0,
            visit_table: visits_ui::TableLayout::default(),
            engine,
            submitted: None,
            result: None,
            error: None,
            last_elapsed: None,
            messages: Vec::new(),
            dialogs: Dialogs::Disabled,
            dialog_rx: None,
            plots: plot_ui::PlotState::default(),
            png_request: None,
            png_tx,
            png_rx,
            jobs,
            screenshot: None,
            teaching: None,
            fetch_config: crate::fetch::FetchConfig::from_env(),
            fetch_job: None,
            fetch_dialog: fetch_ui::FetchDialog::default(),
            images,
        }
    }

    /// A window on `data` that computes synchronously (tests).
    #[must_use]
    pub fn inline(data: Dataset) -> Self {
        let mut app = Self::new(CombineEngine::inline(), None);
        app.set_dataset(data, Vec::new(), None);
        app
    }

    /// Replace the dataset (files or a demo) and reset per-visit settings.
    pub fn set_dataset(&mut self, data: Dataset, files: Vec<PathBuf>, demo: Option<Demo>) {
        let survey = data.survey;
        let mut settings = self
            .remembered
            .iter()
            .find(|(s, _)| *s == survey)
            .map_or_else(|| survey_defaults(&data), |(_, s)| s.clone());
        settings.visits = vec![VisitSetting::default(); data.visits.len()];
        self.settings = settings;
        self.plots.curves = plot_ui::DatasetCurves::new(&data);
        self.data = Arc::new(data);
        self.data_key += 1;
        self.files = files;
        self.demo = demo;
        self.selected_visit = 0;
        self.result = None;
        self.error = None;
        self.submitted = None;
        self.plots.reset_view = true;
    }

    /// Add visits to the current dataset, keeping settings of the visits already there.
    /// Returns false (with a message) when the visits belong to another star.
    fn add_dataset(&mut self, more: Dataset, files: Vec<PathBuf>) -> bool {
        if self.data.visits.is_empty() || self.demo.is_some() {
            self.set_dataset(more, files, None);
            return true;
        }
        // Visits of another star must not be combined with these (the readers refuse mixed
        // objects within one call; this covers files added later).
        let object = |d: &Dataset| d.visits.iter().find_map(|v| v.meta.object.clone());
        if let (Some(have), Some(new)) = (object(&self.data), object(&more))
            && have != new
        {
            let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
            self.report_error(format!(
                "not added: {} is object {new}, the open visits are {have}",
                names.join(", ")
            ));
            return false;
        }
        let mut settings = self.settings.clone();
        settings
            .visits
            .resize(self.data.visits.len(), VisitSetting::default());
        settings.visits.extend(std::iter::repeat_n(
            VisitSetting::default(),
            more.visits.len(),
        ));
        let merged = files::merged(&self.data, more);
        self.plots.curves = plot_ui::DatasetCurves::new(&merged);
        self.data = Arc::new(merged);
        self.data_key += 1;
        self.files.extend(files);
        self.settings = settings;
        self.submitted = None;
        true
    }

    /// Open a demo (built in a background job); a failure becomes a message.
    pub fn open_demo(&mut self, demo: Demo) {
        if demo == Demo::ApogeeReal {
            // Found or downloaded in the background; see `fetch_ui`.
            return self.start_real_demo();
        }
        self.start_demo(demo, None);
    }

    fn start_demo(&mut self, demo: Demo, then_settings: Option<Settings>) {
        let label = format!("opening the {} demo", demo.name());
        self.jobs.spawn(label, 0, move |_| jobs::JobResult::Demo {
            demo,
            data: demo
                .load()
                .map(Box::new)
                .map_err(|e| format!("cannot open the {} demo: {e:#}", demo.name())),
            then_settings,
        });
        self.poll_jobs(); // inline: done now
    }

    /// Open files as a new dataset; each file that fails becomes a message naming it.
    pub fn open_files(&mut self, paths: Vec<PathBuf>) {
        self.load_and_add(paths, true);
    }

    /// Add files to the open ones (what the open dialog and a drop do).
    pub fn add_files(&mut self, paths: Vec<PathBuf>) {
        self.load_and_add(paths, false);
    }

    fn load_and_add(&mut self, paths: Vec<PathBuf>, replace: bool) {
        if paths.is_empty() {
            return;
        }
        if images::inputs::route_to_images(&paths, self.images.active) {
            return self.images.open_files(paths);
        }
        self.images.active = false;
        // An apStar or allVisit added to open visit files describes them: read all together.
        let (paths, replace) = if replace || self.files.is_empty() {
            (paths, replace)
        } else {
            let mut all = self.files.clone();
            all.extend(paths.iter().cloned());
            if files::read_together(&all) {
                (all, true)
            } else {
                (paths, replace)
            }
        };
        self.start_load(jobs::LoadRequest {
            paths,
            replace,
            then_settings: None,
        });
    }

    /// Read files in a background job; the dataset changes when it finishes.
    fn start_load(&mut self, request: jobs::LoadRequest) {
        let n = request.paths.len();
        let label = match request.paths.as_slice() {
            [one] => format!("loading {}", one.display()),
            _ => format!("loading {n} files"),
        };
        self.jobs.spawn(label, n, move |progress| {
            let outcome = Box::new(files::load_each(&request.paths, &progress.done));
            jobs::JobResult::Loaded { request, outcome }
        });
        self.poll_jobs(); // inline: done now
    }

    /// Write a captured frame as a PNG in a background job (what "Save PNG" does once the frame
    /// arrives); the outcome, an error too, shows in the status bar.
    pub fn save_image(&mut self, path: PathBuf, img: Arc<egui::ColorImage>) {
        let _ = self.png_tx.send((path, img));
        self.poll_jobs();
    }

    /// Take the outcomes of finished background jobs.
    fn poll_jobs(&mut self) {
        while let Ok((path, img)) = self.png_rx.try_recv() {
            let inputs = self.files.clone();
            let label = format!("saving the window to {}", path.display());
            self.jobs.spawn(label, 0, move |_| {
                let [w, h] = img.size;
                let bytes: Vec<u8> = img.pixels.iter().flat_map(|c| c.to_array()).collect();
                jobs::JobResult::Wrote(
                    crate::png::write_png(&path, w, h, &bytes, &inputs)
                        .map(|()| format!("saved the window to {} ({w} x {h} px)", path.display()))
                        .map_err(|e| e.to_string()),
                )
            });
        }
        for result in self.jobs.poll() {
            match result {
                jobs::JobResult::Loaded { request, outcome } => self.loaded(request, *outcome),
                jobs::JobResult::Demo {
                    demo,
                    data,
                    then_settings,
                } => match data {
                    Ok(d) => {
                        self.set_dataset(*d, Vec::new(), Some(demo));
                        if let Some(s) = then_settings {
                            self.apply_session_settings(s);
                        }
                    }
                    Err(e) => self.report_error(e),
                },
                jobs::JobResult::Session(Ok(s)) => self.apply_session(s),
                jobs::JobResult::Session(Err(e)) | jobs::JobResult::Wrote(Err(e)) => {
                    self.report_error(e);
                }
                jobs::JobResult::Wrote(Ok(m)) => self.report_info(m),
            }
        }
    }

    fn loaded(&mut self, request: jobs::LoadRequest, outcome: files::LoadOutcome) {
        for e in outcome.errors {
            self.report_error(e);
        }
        if let Some(d) = outcome.data {
            let n = d.visits.len();
            let added = if request.replace {
                self.set_dataset(d, outcome.files, None);
                true
            } else {
                self.add_dataset(d, outcome.files)
            };
            if added {
                self.report_info(format!("loaded {n} visit(s)"));
            }
        }
        if let Some(settings) = request.then_settings {
            self.apply_session_settings(settings);
        }
    }

    /// Show an error in the status bar (and log it once).
    pub fn report_error(&mut self, text: String) {
        log::error!("{text}");
        self.push_message(Message { text, error: true });
    }

    pub(crate) fn report_info(&mut self, text: String) {
        self.push_message(Message { text, error: false });
    }

    /// Keep the newest [`MAX_MESSAGES`] messages (a long session must not grow without end).
    fn push_message(&mut self, m: Message) {
        if self.messages.len() >= MAX_MESSAGES {
            self.messages
                .drain(..self.messages.len() + 1 - MAX_MESSAGES);
        }
        self.messages.push(m);
    }

    /// The session as saved to a file.
    #[must_use]
    pub fn session(&self) -> files::Session {
        files::Session {
            version: 1,
            files: self.files.clone(),
            demo: self.demo,
            settings: self.settings.clone(),
        }
    }

    /// Reopen a session: its data (files are read in a background job), then its settings.
    pub fn apply_session(&mut self, session: files::Session) {
        match session.demo {
            Some(d) => self.start_demo(d, Some(session.settings)),
            None => self.start_load(jobs::LoadRequest {
                paths: session.files,
                replace: true,
                then_settings: Some(session.settings),
            }),
        }
    }

    fn apply_session_settings(&mut self, settings: Settings) {
        if settings.visits.len() == self.data.visits.len() {
            self.settings = settings;
        } else {
            self.report_error(format!(
                "the session has settings for {} visits but {} were loaded; per-visit settings reset",
                settings.visits.len(),
                self.data.visits.len()
            ));
            let mut s = settings;
            s.visits = vec![VisitSetting::default(); self.data.visits.len()];
            self.settings = s;
        }
    }

    /// Model and residual curves the last frame of the Spectra tab drew: (from the newest
    /// result, from an older result of the same data that later frames replace).
    #[must_use]
    pub fn result_curves_drawn(&self) -> (usize, usize) {
        self.plots.curves.result_curves_drawn()
    }

    /// Time a frame may spend rebuilding model/residual curves when a new result arrives
    /// (default [`plot_ui::REBUILD_BUDGET`]); at least one is rebuilt per frame.
    pub fn set_curve_rebuild_budget(&mut self, budget: Duration) {
        self.plots.curve_budget = budget;
    }

    /// Whether the newest settings have been computed.
    #[must_use]
    pub fn is_computing(&self) -> bool {
        self.engine.is_busy()
    }

    /// Whether a file is being read or written in the background.
    #[must_use]
    pub fn is_busy_with_files(&self) -> bool {
        self.jobs.is_busy()
    }

    /// Bytes held by the engine's caches: (results, method caches).
    #[must_use]
    pub fn cache_bytes(&self) -> (usize, usize) {
        self.engine.cache_bytes()
    }

    /// Engine bookkeeping: take results, submit changed settings. Called at the start of a frame.
    pub fn logic(&mut self, ctx: &egui::Context) {
        self.jobs.set_wake(ctx);
        self.poll_jobs();
        while let Some(done) = self.engine.poll() {
            if done.value.data_key != self.data_key {
                continue;
            }
            match done.value.result {
                Ok(c) => {
                    self.result = Some(c);
                    self.error = None;
                    let cached = done.value.cached.is_some();
                    self.last_elapsed = Some((done.value.cached.unwrap_or(done.elapsed), cached));
                }
                Err(CombineError::Cancelled) => {}
                Err(e) => {
                    if done.generation == self.engine.latest_generation() {
                        log::warn!("combination failed: {e}");
                        self.error = Some(e.to_string());
                    }
                }
            }
        }
        if self.data.visits.is_empty() {
            return;
        }
        if self.submitted.as_ref() != Some(&self.settings) {
            // While a slider is dragged, let the running job finish instead of cancelling it on
            // every frame: results then arrive at the compute rate and the drag feels continuous.
            // Only the fit is waited for: once it is in, the next request cancels the scoring.
            let dragging = ctx.dragged_id().is_some();
            if !(dragging && self.engine.is_fitting()) {
                self.engine
                    .submit(Arc::clone(&self.data), self.data_key, self.settings.clone());
                self.submitted = Some(self.settings.clone());
            }
        }
    }

    /// Draw the whole window into `ui` (also the entry point of UI tests).
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.logic(&ctx);
        self.handle_dropped_files(&ctx);
        self.poll_dialog();
        self.poll_fetch();
        self.fetch_ui(&ctx);

        egui::Panel::top("menu").show(ui, |ui| self.menu_ui(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_ui(ui));
        if self.images.active {
            let asks = images::panel::frame(&mut self.images, ui);
            for (m, err) in asks.messages {
                if err {
                    self.report_error(m);
                } else {
                    self.report_info(m);
                }
            }
            if asks.open_files_dialog {
                self.start_dialog(DialogKind::OpenFiles);
            }
            self.screenshots(&ctx);
            return;
        }
        // The teaching panel has its own controls; the combination settings would only confuse.
        if self.view.tab != Tab::Teaching {
            egui::Panel::left("options")
                .resizable(true)
                .default_size(290.0)
                .show(ui, |ui| {
                    let pending = self.result.as_ref().is_some_and(|r| r.loo_pending);
                    egui::ScrollArea::vertical().show(ui, |ui| {
                        options_ui::options_ui(
                            &mut self.settings,
                            &mut self.view,
                            self.data.survey,
                            pending,
                            ui,
                        );
                    });
                });
        }
        egui::CentralPanel::default().show(ui, |ui| match self.view.tab {
            Tab::Spectra => {
                // Typical sets (up to VISIT_ROWS_SHOWN visits) show whole without scrolling; a
                // larger one scrolls, and the panel's lower edge drags down to most of the height.
                // The height comes from what the table measured of itself on the previous frame
                // (the lines above it grow when a result brings warnings); before that, from an
                // estimate. It is the panel's minimum, so new warnings never push rows out of view.
                // The panel's id carries the (capped) visit count, so a new set gets its own size.
                let n = self.data.visits.len();
                let measured = self.visit_table.rows == n && self.visit_table.row_px > 0.0;
                let height = if measured {
                    self.visit_table.height_for(n)
                } else {
                    let row_h = ui.spacing().interact_size.y + 2.0;
                    let rows = n.clamp(2, visits_ui::VISIT_ROWS_SHOWN) as f32;
                    let above = visits_ui::lines_above_table(self.result.as_deref());
                    (2.0 + above as f32 + rows) * row_h + 30.0
                };
                let max = (0.8 * ui.available_height()).max(height);
                // (Not the warning count: a panel re-created under a dragged slider ends the drag.)
                egui::Panel::top(("visits", n.min(visits_ui::VISIT_ROWS_SHOWN + 1)))
                    .resizable(true)
                    .default_size(height)
                    .min_size(height.min(max))
                    .max_size(max)
                    .show(ui, |ui| {
                        self.selected_visit = self.selected_visit.min(n.saturating_sub(1));
                        let mut table = visits_ui::VisitTable {
                            data: &self.data,
                            result: self.result.as_ref(),
                            settings: &mut self.settings,
                            view: &mut self.view,
                            selected_visit: self.selected_visit,
                        };
                        let (selected, layout) = visits_ui::visits_ui(&mut table, ui);
                        if let Some(i) = selected {
                            self.selected_visit = i;
                        }
                        if layout != self.visit_table {
                            self.visit_table = layout;
                            ui.ctx().request_repaint();
                        }
                    });
                let scene = view::Scene {
                    data: &self.data,
                    settings: &self.settings,
                    result: self.result.as_ref(),
                    view: &self.view,
                };
                plot_ui::spectra_ui(&mut self.plots, scene, self.selected_visit, ui);
            }
            Tab::Noise => plot_ui::noise_ui(self.result.as_deref(), ui),
            Tab::Teaching => {
                let threaded = self.engine.is_threaded();
                self.teaching
                    .get_or_insert_with(|| {
                        if threaded {
                            teaching::TeachingPanel::new()
                        } else {
                            teaching::TeachingPanel::inline()
                        }
                    })
                    .ui(ui);
            }
        });

        self.screenshots(&ctx);
        if self.engine.is_busy() && !self.engine.is_threaded() {
            ctx.request_repaint();
        }
    }

    fn menu_ui(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open files…").clicked() {
                    self.start_dialog(DialogKind::OpenFiles);
                }
                if ui.button("Open session…").clicked() {
                    self.start_dialog(DialogKind::OpenSession);
                }
                if ui.button("Save session…").clicked() {
                    self.start_dialog(DialogKind::SaveSession);
                }
                if ui.button("Fetch a star's files…").clicked() {
                    self.fetch_dialog.open = true;
                }
                ui.separator();
                if ui.button("Export result…").clicked() {
                    self.start_dialog(DialogKind::Export);
                }
                if ui.button("Save PNG of the window…").clicked() {
                    self.start_dialog(DialogKind::SavePng);
                }
            });
            ui.menu_button("Demo", |ui| {
                if ui.button("Images: synthetic dithered stars").clicked() {
                    self.images.open_demo();
                }
                if ui.button("Synthetic APOGEE star").clicked() {
                    self.open_demo(Demo::Apogee);
                }
                if ui.button("Real BOSS star").clicked() {
                    self.open_demo(Demo::Boss);
                }
                if ui
                    .button("Real APOGEE star (SDSS DR13, 3 visits, fetched)")
                    .clicked()
                {
                    self.open_demo(Demo::ApogeeReal);
                }
            });
            ui.separator();
            // The mode switch: spectra (three tabs) or images.
            let spectra = !self.images.active;
            for (tab, label) in [
                (Tab::Spectra, "Spectra"),
                (Tab::Noise, "Noise correlation"),
                (Tab::Teaching, "Teaching"),
            ] {
                if ui
                    .selectable_label(spectra && self.view.tab == tab, label)
                    .clicked()
                {
                    self.view.tab = tab;
                    self.images.active = false;
                }
            }
            if ui.selectable_label(!spectra, "Images").clicked() && spectra {
                self.images.active = true;
                if self.images.inputs.is_none() && self.images.loading.is_none() {
                    self.images.open_demo();
                }
            }
            ui.separator();
            if spectra {
                ui.label(egui::RichText::new(&self.data.name).strong());
            } else if let Some(i) = &self.images.inputs {
                ui.label(egui::RichText::new(&i.name).strong());
            }
        });
    }

    fn status_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            if self.engine.is_fitting() {
                ui.spinner();
                ui.label("computing…");
            } else if self.engine.is_busy() {
                ui.spinner();
                ui.label("scoring visits (leave-one-out)…");
            }
            if let Some(job) = &self.fetch_job {
                ui.spinner();
                ui.label(job.status());
            }
            for job in self.jobs.running() {
                ui.spinner();
                ui.label(job.text());
            }
            if let Some(c) = &self.result {
                let mut what = Vec::new();
                if c.forward.is_some() {
                    what.push("forward model");
                }
                if c.standard.is_some() {
                    what.push("standard practice");
                }
                let used = c.visits.iter().filter(|v| v.included).count();
                let mut text = format!(
                    "{} of {used}/{} visits on {} px",
                    what.join(" + "),
                    c.visits.len(),
                    c.grid.len()
                );
                if let Some((t, cached)) = self.last_elapsed {
                    text += &format!(
                        ", computed in {:.0} ms{}",
                        t.as_secs_f64() * 1e3,
                        if cached { " (cached)" } else { "" }
                    );
                }
                if let Some(cond) = c.forward.as_ref().and_then(|f| f.condition) {
                    text += &format!(", condition {cond:.1e}");
                }
                let weak: Vec<String> = [("forward", &c.forward), ("standard", &c.standard)]
                    .into_iter()
                    .filter_map(|(n, m)| {
                        let k = crate::combine::constrained::count(m.as_ref()?);
                        (k > 0).then(|| format!("{k} ({n})"))
                    })
                    .collect();
                if !weak.is_empty() {
                    text += &format!(", poorly constrained px: {}", weak.join(", "));
                }
                ui.label(text);
                for (what, e) in [
                    ("forward model", &c.forward_error),
                    ("standard practice", &c.standard_error),
                ] {
                    if let Some(e) = e {
                        ui.label(
                            egui::RichText::new(format!("{what} failed: {e}"))
                                .color(ui.visuals().error_fg_color),
                        );
                    }
                }
                if !c.warnings.is_empty() {
                    let n = c.warnings.len();
                    ui.label(
                        egui::RichText::new(format!("{n} warning(s)"))
                            .color(ui.visuals().warn_fg_color),
                    )
                    .on_hover_text(
                        c.warnings
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("\n"),
                    );
                    // The frame of the combination is not a detail: say it in full.
                    for w in c.warnings.iter().filter(|w| {
                        matches!(
                            w,
                            crate::combine::Warning::StarVelocityUnknown { .. }
                                | crate::combine::Warning::Resampled { .. }
                        )
                    }) {
                        ui.label(
                            egui::RichText::new(w.to_string()).color(ui.visuals().warn_fg_color),
                        );
                    }
                }
            }
            if let Some(e) = &self.error {
                ui.label(
                    egui::RichText::new(format!("error: {e}")).color(ui.visuals().error_fg_color),
                );
            }
            if let Some(m) = self.messages.last() {
                let color = if m.error {
                    ui.visuals().error_fg_color
                } else {
                    ui.visuals().text_color()
                };
                ui.separator();
                ui.label(egui::RichText::new(&m.text).color(color));
                if ui.small_button("clear").clicked() {
                    self.messages.clear();
                }
            }
        });
    }

    fn handle_dropped_files(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        if !dropped.is_empty() {
            self.load_and_add(dropped, false);
        }
    }

    /// Apply a view description (used to script screenshots through `FRIZZVIEW_VIEW`; see
    /// [`view_spec::apply`] for the items); what cannot be applied becomes a message.
    pub fn apply_view_spec(&mut self, spec: &str) {
        let errors = view_spec::apply(
            spec,
            &mut view_spec::Targets {
                view: &mut self.view,
                settings: &mut self.settings,
                jump_to: &mut self.plots.jump_to,
                fetch_open: &mut self.fetch_dialog.open,
                images: &mut self.images,
                selected_visit: &mut self.selected_visit,
            },
        );
        for e in errors {
            self.report_error(e);
        }
    }

    /// What the plots read of the window, with the curve cache they fill (tests draw through it).
    #[cfg(test)]
    pub(crate) fn plot_view(&mut self) -> plot_ui::PlotView<'_> {
        plot_ui::PlotView {
            data: &self.data,
            settings: &self.settings,
            result: self.result.as_ref(),
            view: &self.view,
            selected_visit: self.selected_visit,
            reset_view: self.plots.reset_view,
            curves: &mut self.plots.curves,
        }
    }

    /// Open a file dialog of `kind` (off the UI thread for native dialogs).
    pub fn start_dialog(&mut self, kind: DialogKind) {
        if matches!(self.dialogs, Dialogs::Native) && self.dialog_rx.is_some() {
            return;
        }
        match self.dialogs.open(kind) {
            dialogs::Opened::Chosen(paths) => self.dialog_done(kind, paths),
            dialogs::Opened::Waiting(rx) => self.dialog_rx = Some((kind, rx)),
            dialogs::Opened::Failed(e) => self.report_error(e),
        }
    }

    fn poll_dialog(&mut self) {
        let Some((kind, rx)) = &self.dialog_rx else {
            return;
        };
        let kind = *kind;
        match rx.try_recv() {
            Ok(paths) => {
                self.dialog_rx = None;
                self.dialog_done(kind, paths);
            }
            Err(mpsc::TryRecvError::Empty) => {}
            Err(mpsc::TryRecvError::Disconnected) => self.dialog_rx = None,
        }
    }

    fn dialog_done(&mut self, kind: DialogKind, paths: Vec<PathBuf>) {
        let Some(first) = paths.first().cloned() else {
            self.report_info("no file chosen".into());
            return;
        };
        match kind {
            DialogKind::OpenFiles => self.load_and_add(paths, false),
            DialogKind::OpenSession => {
                let label = format!("reading the session {}", first.display());
                self.jobs.spawn(label, 0, move |_| {
                    jobs::JobResult::Session(
                        files::load_session(&first).map_err(|e| format!("{e:#}")),
                    )
                });
                self.poll_jobs();
            }
            DialogKind::SaveSession => {
                let session = self.session();
                let label = format!("saving the session to {}", first.display());
                self.jobs.spawn(label, 0, move |_| {
                    jobs::JobResult::Wrote(
                        files::save_session(&first, &session)
                            .map(|()| format!("session saved to {}", first.display()))
                            .map_err(|e| format!("{e:#}")),
                    )
                });
                self.poll_jobs();
            }
            DialogKind::Export => self.export(&first),
            DialogKind::SavePng => self.png_request = Some(first),
        }
    }

    fn screenshots(&mut self, ctx: &egui::Context) {
        if let Some(path) = self.png_request.take() {
            // The frame arrives in a later frame's callback; a background job writes it and its
            // outcome (an error too) shows in the status bar.
            let tx = self.png_tx.clone();
            let ctx2 = ctx.clone();
            ctx.request_screenshot(move |img: Arc<egui::ColorImage>| {
                let _ = tx.send((path, img));
                ctx2.request_repaint();
            });
            ctx.request_repaint();
        }
        let images = self.images.active;
        let shown = if images {
            self.images.settled()
        } else {
            self.result.is_some() || self.error.is_some()
        };
        let busy = self.engine.is_busy();
        if let Some(job) = &mut self.screenshot {
            job.frame(ctx, shown, images, busy);
        }
    }

    /// Start the real APOGEE demo in the background (the window stays responsive; see
    /// [`Self::poll_fetch`]).
    pub(crate) fn start_real_demo(&mut self) {
        let q = crate::fetch::star::real_demo_query();
        let cfg = demo::demo_config(&self.fetch_config);
        let what = format!("the real APOGEE star {}", crate::fetch::star::REAL_DEMO_ID);
        match crate::fetch::Templates::from_env()
            .map_err(|e| e.to_string())
            .and_then(|t| {
                fetch_ui::FetchJob::spawn(q, t, cfg, what, true).map_err(|e| e.to_string())
            }) {
            Ok(job) => {
                self.report_info(format!("{}…", job.status()));
                self.fetch_job = Some(job);
            }
            Err(e) => self.real_demo_failed(&e),
        }
    }

    fn real_demo_failed(&mut self, why: &str) {
        self.open_demo(Demo::Apogee);
        self.report_error(format!(
            "showing the SYNTHETIC APOGEE-like star: the real APOGEE demo star could not be \
             fetched ({why}). Set SAS_BASE_DIR to a local SDSS mirror, or check the network"
        ));
    }

    /// Whether a fetch is running.
    #[must_use]
    pub fn is_fetching(&self) -> bool {
        self.fetch_job.is_some()
    }

    /// Take the fetch job's progress; open its files (or fall back) when it has ended.
    pub fn poll_fetch(&mut self) {
        let Some(job) = &mut self.fetch_job else {
            return;
        };
        let Some(result) = job.poll() else {
            return;
        };
        let demo = job.demo;
        self.fetch_job = None;
        match result {
            Ok(fetch_ui::Loaded {
                mut data,
                paths,
                notes,
                origins,
            }) => {
                let n = data.visits.len();
                if demo {
                    data.name = format!(
                        "{} (real SDSS DR13, {n} visits)",
                        crate::fetch::star::REAL_DEMO_ID
                    );
                    self.set_dataset(data, paths, Some(Demo::ApogeeReal));
                } else {
                    self.set_dataset(data, paths, None);
                }
                for note in notes {
                    self.report_info(note);
                }
                self.report_info(format!("opened {n} visit(s) ({origins})"));
            }
            Err(e) if demo => self.real_demo_failed(&e),
            Err(e) => self.report_error(format!("fetch failed: {e}")),
        }
    }

    /// The fetch dialog (a window over the others) and the job's repaints.
    pub(crate) fn fetch_ui(&mut self, ctx: &egui::Context) {
        if self.fetch_job.is_some() {
            ctx.request_repaint_after(Duration::from_millis(100));
        }
        let busy = self.fetch_job.is_some();
        let start = self.fetch_dialog.ui(ctx, &self.fetch_config, busy);
        if start {
            self.start_dialog_fetch();
        }
    }

    fn start_dialog_fetch(&mut self) {
        let d = &self.fetch_dialog;
        let what = format!("{} ({})", d.apogee_id.trim(), d.release);
        let job = d
            .query()
            .and_then(|q| crate::fetch::Templates::from_env().map(|t| (q, t)))
            .map_err(|e| e.to_string())
            .and_then(|(q, t)| {
                fetch_ui::FetchJob::spawn(q, t, self.fetch_config.clone(), what, false)
                    .map_err(|e| e.to_string())
            });
        match job {
            Ok(job) => {
                self.fetch_dialog.error = None;
                self.fetch_dialog.open = false;
                self.fetch_job = Some(job);
            }
            Err(e) => self.fetch_dialog.error = Some(e),
        }
    }

    fn export(&mut self, path: &Path) {
        let Some(result) = self.result.clone() else {
            self.report_error("nothing to export yet: no result".into());
            return;
        };
        let (data, inputs, path) = (Arc::clone(&self.data), self.files.clone(), path.to_owned());
        let label = format!("exporting to {}", path.display());
        self.jobs.spawn(label, 0, move |_| {
            jobs::JobResult::Wrote(
                files::export(&path, &result, &data, &inputs)
                    .map(|()| format!("exported to {}", path.display()))
                    .map_err(|e| format!("{e:#}")),
            )
        });
        self.poll_jobs();
    }
}

/// Settings that suit a dataset in the window: [`crate::settings::live_defaults`] (the command
/// line's defaults, with the banded local basis for APOGEE data).
#[must_use]
pub fn survey_defaults(data: &Dataset) -> Settings {
    crate::settings::live_defaults(data)
}

impl eframe::App for FrizzApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn raw_input_hook(&mut self, _ctx: &egui::Context, raw_input: &mut egui::RawInput) {
        // A command-line screenshot shows the window as laid out, not wherever the (virtual)
        // display's pointer happens to sit: hover crosshairs and tooltips are left out.
        if self.screenshot.is_some() {
            raw_input.events.retain(|e| {
                !matches!(
                    e,
                    egui::Event::PointerMoved(_)
                        | egui::Event::MouseMoved(_)
                        | egui::Event::PointerButton { .. }
                )
            });
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        // A scripted screenshot must not overwrite the user's remembered layout.
        if self.screenshot.is_some() {
            return;
        }
        let survey = self.data.survey;
        let mut remembered = self.settings.clone();
        remembered.visits.clear();
        self.remembered.retain(|(s, _)| *s != survey);
        self.remembered.push((survey, remembered));
        let prefs = Prefs {
            view: self.view.clone(),
            settings: self.remembered.clone(),
        };
        eframe::set_value(storage, PREFS_KEY, &prefs);
    }
}
