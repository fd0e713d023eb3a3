//! The command line's screenshot job (the window saves its own frame once the first result is
//! drawn, then closes) and the "Save PNG" capture request.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use eframe::egui;

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

impl ScreenshotJob {
    /// One frame of the job: `shown` is true once the first result (or an error; in the images
    /// mode, the settled images) is on screen, `images` whether the images mode is, `busy`
    /// whether the engine still computes. Four frames after the result the frame is saved; once
    /// written, the window closes.
    pub(super) fn frame(&mut self, ctx: &egui::Context, shown: bool, images: bool, busy: bool) {
        self.frames += 1;
        if shown {
            self.frames_after_result += 1;
        }
        // The images mode's forward model may take minutes (the M/P trap): wait for it.
        let ready = self.frames_after_result >= 4 || (self.frames >= 3000 && !images);
        if ready && !self.requested && !busy {
            self.requested = true;
            request_png(ctx, self.path.clone(), Arc::clone(&self.done));
        }
        let finished = self.done.lock().map(|d| d.clone()).unwrap_or(None);
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

/// Write an egui image as an RGBA PNG, atomically (see [`crate::png::write_png`]).
pub fn save_png(path: &Path, img: &egui::ColorImage) -> Result<(), String> {
    let [w, h] = img.size;
    let bytes: Vec<u8> = img.pixels.iter().flat_map(|c| c.to_array()).collect();
    crate::png::write_png(path, w, h, &bytes, &[]).map_err(|e| e.to_string())
}
