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
mod curves;
mod exposures;
mod noise;

use std::ops::RangeInclusive;
use std::sync::Arc;

use eframe::egui;
use egui_plot::{Plot, PlotUi};

pub use combined::combined_plot_id;
pub use curves::{DatasetCurves, REBUILD_BUDGET, SegCurve, decimate, decimate_band, trace};
pub use exposures::residual_in_sigma;
pub use noise::{correlation_by_lag, noise_ui};

use super::trace::{Trace, TraceItem};
use super::{Compare, FrizzApp};
use crate::model::Survey;
use combined::{combined_plot, difference_plot};
use exposures::{exposures_plot, residuals_plot};

const FORWARD_COLOR: egui::Color32 = egui::Color32::from_rgb(40, 110, 220);
const STANDARD_COLOR: egui::Color32 = egui::Color32::from_rgb(230, 120, 30);
const MASK_COLOR: egui::Color32 = egui::Color32::from_rgb(220, 30, 30);
/// Marker colour of pixels the robust fit down-weighted.
const DOWN_WEIGHTED_COLOR: egui::Color32 = egui::Color32::from_rgb(255, 170, 0);

fn link_group() -> egui::Id {
    egui::Id::unique("frizzview-linked-x")
}

/// A plot of the Spectra tab: `height` tall, its x axis and cursor linked with the others'.
fn linked_plot<'a>(name: &'static str, height: f32, y_label: &'a str) -> Plot<'a> {
    Plot::new(name)
        .height(height)
        .link_axis(link_group(), [true, false])
        .link_cursor(link_group(), [true, false])
        .y_axis_label(y_label)
}

/// The visible x range of a plot, or `full` while it still sizes itself to the data.
fn visible_x(plot_ui: &PlotUi<'_>, full: (f64, f64)) -> RangeInclusive<f64> {
    let b = plot_ui.plot_bounds();
    if plot_ui.auto_bounds().x || !b.is_valid_x() {
        full.0..=full.1
    } else {
        b.min()[0]..=b.max()[0]
    }
}

fn apply_view_requests(app: &FrizzApp, plot_ui: &mut PlotUi<'_>, jump: Option<(f64, f64)>) {
    if app.reset_view {
        plot_ui.set_auto_bounds(true);
    }
    if let Some((a, b)) = jump {
        plot_ui.set_plot_bounds_x(a..=b);
        plot_ui.set_auto_bounds(egui::Vec2b::new(false, true));
    }
}

fn data_range(app: &FrizzApp) -> (f64, f64) {
    let lo = app
        .curves
        .segments_aa
        .iter()
        .map(|s| s.0)
        .fold(f64::INFINITY, f64::min);
    let hi = app
        .curves
        .segments_aa
        .iter()
        .map(|s| s.1)
        .fold(f64::NEG_INFINITY, f64::max);
    if lo.is_finite() && hi > lo {
        (lo * 0.995, hi * 1.005)
    } else {
        (0.0, 1.0)
    }
}

fn add_trace(plot_ui: &mut PlotUi<'_>, name: &str, trace: Trace, color: egui::Color32, width: f32) {
    plot_ui.add(
        TraceItem::new(name, Arc::new(trace))
            .color(color)
            .width(width),
    );
}

/// The Spectra tab: segment jumps, combined spectrum, difference, exposures and residuals.
pub fn spectra_ui(app: &mut FrizzApp, ui: &mut egui::Ui) {
    app.curves.begin_frame(app.curve_budget);
    ui.horizontal(|ui| {
        ui.label("Go to:");
        if ui.button("all").clicked() {
            app.reset_view = true;
        }
        let names: Vec<String> = match (app.data.survey, app.curves.segments_aa.len()) {
            (Survey::Apogee, 3) => vec![
                "chip c (blue)".into(),
                "chip b".into(),
                "chip a (red)".into(),
            ],
            (Survey::Boss, 2) => vec!["blue camera".into(), "red camera".into()],
            (_, n) => (1..=n).map(|k| format!("segment {k}")).collect(),
        };
        for (name, &(lo, hi)) in names.iter().zip(&app.curves.segments_aa) {
            if ui.button(name).clicked() {
                app.jump_to = Some((lo, hi));
            }
        }
    });
    // A requested range (a button, or `x=` of a scripted view) waits for data to show: files
    // given on the command line arrive from a background read some frames later.
    let jump = if app.data.visits.is_empty() {
        None
    } else {
        app.jump_to.take()
    };
    let result = app.result.clone();
    let avail = ui.available_height();
    let both = result
        .as_ref()
        .is_some_and(|r| r.forward.is_some() && r.standard.is_some());
    let show_diff = both && app.view.compare == Compare::Difference;
    let n_small = usize::from(show_diff) + usize::from(app.view.show_residuals);
    let h_combined = (avail * 0.36).max(120.0);
    let h_small = (avail * 0.14).max(70.0);
    let h_exposures = (avail - h_combined - h_small * n_small as f32 - 12.0).max(120.0);
    let full = data_range(app);
    let width_px = ui.available_width().max(100.0) as usize;

    combined_plot(app, ui, h_combined, full, width_px, jump);
    if show_diff {
        difference_plot(app, ui, h_small, full, width_px, jump);
    }
    exposures_plot(app, ui, h_exposures, full, width_px, jump);
    if app.view.show_residuals {
        residuals_plot(app, ui, h_small, full, width_px, jump);
    }
    app.reset_view = false;
    if app.curves.result_curves_drawn().1 > 0 {
        // Some curves are still the previous result's: the next frame replaces more of them.
        ui.ctx().request_repaint();
    }
}
