//! The command line's screenshot job (the window saves its own frame once the first result is
//! drawn, then closes) and the "Save PNG" capture request.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use eframe::egui;

use super::FrizzApp;

/// A screenshot requested from the command line.
#[derive(Debug)]
pub struct ScreenshotJob {
    path: PathBuf,
    /// Frames drawn since the first result arrived.
    frames_after_result: u32,
    /// Frames drawn in total (fallback if no result ever arrives).
    frames: u32,
    requested: bool,
    done: Arc<Mutex<Option<Result<(), String>>>>,
}

impl ScreenshotJob {
    pub(super) fn new(path: PathBuf) -> Self {
        Self {
            path,
            frames_after_result: 0,
            frames: 0,
            requested: false,
            done: Arc::new(Mutex::new(None)),
        }
    }
}

impl FrizzApp {
    pub(super) fn screenshots(&mut self, ctx: &egui::Context) {
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
        let Some(job) = &mut self.screenshot else {
            return;
        };
        job.frames += 1;
        let images = self.images.active;
        if (!images && (self.result.is_some() || self.error.is_some()))
            || (images && self.images.settled())
        {
            job.frames_after_result += 1;
        }
        // The images mode's forward model may take minutes (the M/P trap): wait for it.
        let ready = job.frames_after_result >= 4 || (job.frames >= 3000 && !images);
        if ready && !job.requested && !self.engine.is_busy() {
            job.requested = true;
            request_png(ctx, job.path.clone(), Arc::clone(&job.done));
        }
        let finished = job.done.lock().map(|d| d.clone()).unwrap_or(None);
        if let Some(outcome) = finished {
            if let Err(e) = outcome {
                eprintln!("error: {e}");
            }
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        ctx.request_repaint();
    }
}

/// Ask the integration for the current frame and save it as PNG; `done` gets the outcome.
fn request_png(ctx: &egui::Context, path: PathBuf, done: Arc<Mutex<Option<Result<(), String>>>>) {
    let ctx2 = ctx.clone();
    ctx.request_screenshot(move |img: Arc<egui::ColorImage>| {
        let outcome = save_png(&path, &img);
        if let Err(e) = &outcome {
            log::error!("{e}");
        }
        if let Ok(mut d) = done.lock() {
            *d = Some(outcome);
        }
        ctx2.request_repaint();
    });
    ctx.request_repaint();
}

/// Write an egui image as an RGBA PNG, atomically (see [`crate::cli::png::write_png`]).
pub fn save_png(path: &Path, img: &egui::ColorImage) -> Result<(), String> {
    let [w, h] = img.size;
    let bytes: Vec<u8> = img.pixels.iter().flat_map(|c| c.to_array()).collect();
    crate::cli::png::write_png(path, w, h, &bytes, &[]).map_err(|e| e.to_string())
}
