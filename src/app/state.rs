//! The window's state: every field of [`FrizzApp`] and what is remembered between runs. Only
//! data here; what happens to it (loading, the engine, the frame) is `impl FrizzApp` in
//! `mod.rs`, and each panel gets the part it draws.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use eframe::egui;

use super::demo::Demo;
use super::dialogs::{DialogKind, Dialogs};
use super::screenshot::ScreenshotJob;
use super::view::{Scene, ViewOptions};
use super::{fetch_ui, images, jobs, plot_ui, teaching};
use crate::combine::Combined;
use crate::engine::CombineEngine;
use crate::model::{Dataset, Survey};
use crate::settings::Settings;

/// What the window remembers between runs (eframe persistence).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Prefs {
    /// View options.
    pub view: ViewOptions,
    /// The last settings used per survey (per-visit entries dropped).
    pub settings: Vec<(Survey, Settings)>,
}

/// Messages kept for the status bar.
pub const MAX_MESSAGES: usize = 200;

/// One message in the status bar.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Text.
    pub text: String,
    /// True for errors (red), false for information.
    pub error: bool,
}

/// The application state; `FrizzApp::show` (in `mod.rs`) draws everything.
pub struct FrizzApp {
    /// The loaded visits (replaced, never mutated).
    pub data: Arc<Dataset>,
    /// Changes whenever `data` does (cache key for the engine).
    pub data_key: u64,
    /// Files the dataset came from.
    pub files: Vec<PathBuf>,
    /// The demo that is open, if any.
    pub demo: Option<Demo>,
    /// The settings the widgets edit.
    pub settings: Settings,
    /// View options.
    pub view: ViewOptions,
    /// Settings remembered per survey.
    pub(super) remembered: Vec<(Survey, Settings)>,
    /// The index of the visit shown in "single" layout and highlighted elsewhere.
    pub selected_visit: usize,
    /// What the visit table measured of its layout on the last frame (it sizes the panel).
    pub visit_table: super::visits_ui::TableLayout,
    pub(super) engine: CombineEngine,
    pub(super) submitted: Option<Settings>,
    /// The newest result (kept until a newer one arrives).
    pub result: Option<Arc<Combined>>,
    /// The error of the newest request, if it failed.
    pub error: Option<String>,
    /// How long the shown result took, and whether it came from the cache.
    pub last_elapsed: Option<(Duration, bool)>,
    /// Messages (bad files, exports, ...), newest last.
    pub messages: Vec<Message>,
    /// File dialogs.
    pub dialogs: Dialogs,
    pub(super) dialog_rx: Option<(DialogKind, mpsc::Receiver<Vec<PathBuf>>)>,
    /// The plots' own state: cached curves, a pending x-range, a bounds reset.
    pub(crate) plots: plot_ui::PlotState,
    /// A "Save PNG" path waiting for the next frame's capture.
    pub(super) png_request: Option<PathBuf>,
    /// Frames captured for "Save PNG", waiting to be written by a background job.
    pub(super) png_tx: mpsc::Sender<(PathBuf, Arc<egui::ColorImage>)>,
    pub(super) png_rx: mpsc::Receiver<(PathBuf, Arc<egui::ColorImage>)>,
    /// File reading and writing off the UI thread.
    pub jobs: jobs::Jobs,
    pub(super) screenshot: Option<ScreenshotJob>,
    /// The teaching panel, created when its tab is first opened.
    pub teaching: Option<teaching::TeachingPanel>,
    /// Where star files are looked for and downloaded (mirror, cache, base URL).
    pub fetch_config: crate::fetch::FetchConfig,
    /// A running fetch (the dialog's or the real demo's).
    pub fetch_job: Option<fetch_ui::FetchJob>,
    /// The fields of the fetch dialog.
    pub fetch_dialog: fetch_ui::FetchDialog,
    /// The images mode.
    pub images: images::ImagesState,
}

impl std::fmt::Debug for FrizzApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrizzApp")
            .field("visits", &self.data.visits.len())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<'a> From<&'a FrizzApp> for Scene<'a> {
    fn from(app: &'a FrizzApp) -> Self {
        Scene {
            data: &app.data,
            settings: &app.settings,
            result: app.result.as_ref(),
            view: &app.view,
        }
    }
}
