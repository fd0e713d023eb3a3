//! Plots: the combined spectrum, every exposure, residuals, and the noise correlation.
//!
//! Long spectra are decimated for drawing: within the visible x range, each column of the plot
//! keeps the minimum and maximum sample, so a plot never draws more than one band point (or, for
//! the visit models, two line points) per column whatever the number of input pixels
//! ([`super::trace`]). NaN breaks lines.
//!
//! Decimated curves are cached between frames. When a new result arrives, the model and residual
//! curves of every visit are due again; rebuilding all of them in one frame made that frame
//! about twice as long as the others. Instead a frame rebuilds what fits in [`REBUILD_BUDGET`]
//! and keeps drawing the previous result's curves (same data, same view) for the rest,
//! asking for another frame until every curve belongs to the newest result.

mod combined;
mod common;
mod curves;
mod exposures;
mod noise;

use eframe::egui;

pub use combined::combined_plot_id;
pub use common::{PlotState, PlotView, Slot};
pub use curves::{DatasetCurves, REBUILD_BUDGET, SegCurve, decimate, decimate_band, trace};
pub use exposures::residual_in_sigma;
pub use noise::{correlation_by_lag, noise_ui};

use super::view::{Compare, Scene};
use crate::model::Survey;
use combined::{combined_plot, difference_plot};
use common::data_range;
use exposures::{exposures_plot, residuals_plot};

/// The Spectra tab: segment jumps, combined spectrum, difference, exposures and residuals.
/// `plots` is the plots' own state (its pending jump is taken once data show, its bounds reset
/// done); `scene` and the selected visit are read.
pub fn spectra_ui(
    plots: &mut PlotState,
    scene: Scene<'_>,
    selected_visit: usize,
    ui: &mut egui::Ui,
) {
    plots.curves.begin_frame(plots.curve_budget);
    ui.horizontal(|ui| {
        ui.label("Go to:");
        if ui.button("all").clicked() {
            plots.reset_view = true;
        }
        let names: Vec<String> = match (scene.data.survey, plots.curves.segments_aa.len()) {
            (Survey::Apogee, 3) => vec![
                "chip c (blue)".into(),
                "chip b".into(),
                "chip a (red)".into(),
            ],
            (Survey::Boss, 2) => vec!["blue camera".into(), "red camera".into()],
            (_, n) => (1..=n).map(|k| format!("segment {k}")).collect(),
        };
        for (name, &(lo, hi)) in names.iter().zip(&plots.curves.segments_aa) {
            if ui.button(name).clicked() {
                plots.jump_to = Some((lo, hi));
            }
        }
    });
    // A requested range (a button, or `x=` of a scripted view) waits for data to show: files
    // given on the command line arrive from a background read some frames later.
    let jump = if scene.data.visits.is_empty() {
        None
    } else {
        plots.jump_to.take()
    };
    let avail = ui.available_height();
    let both = scene
        .result
        .is_some_and(|r| r.forward.is_some() && r.standard.is_some());
    let show_diff = both && scene.view.compare == Compare::Difference;
    let n_small = usize::from(show_diff) + usize::from(scene.view.show_residuals);
    let h_combined = (avail * 0.36).max(120.0);
    let h_small = (avail * 0.14).max(70.0);
    let h_exposures = (avail - h_combined - h_small * n_small as f32 - 12.0).max(120.0);
    let full = data_range(&plots.curves);
    let width_px = ui.available_width().max(100.0) as usize;

    let p = PlotView {
        data: scene.data,
        settings: scene.settings,
        result: scene.result,
        view: scene.view,
        selected_visit,
        reset_view: plots.reset_view,
        curves: &mut plots.curves,
    };
    let slot = |height| Slot {
        height,
        full,
        bins: width_px,
        jump,
    };
    combined_plot(&p, ui, slot(h_combined));
    if show_diff {
        difference_plot(&p, ui, slot(h_small));
    }
    exposures_plot(&p, ui, slot(h_exposures));
    if scene.view.show_residuals {
        residuals_plot(&p, ui, slot(h_small));
    }
    plots.reset_view = false;
    if plots.curves.result_curves_drawn().1 > 0 {
        // Some curves are still the previous result's: the next frame replaces more of them.
        ui.ctx().request_repaint();
    }
}
