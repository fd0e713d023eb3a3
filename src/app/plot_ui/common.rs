//! What the plots share: their colours, the linked x axis, the view requests (a segment jump, a
//! bounds reset), and [`PlotView`], the part of the window a plot reads (and the curve cache it
//! fills), and [`PlotState`], the plots' own state the window keeps.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use eframe::egui;
use egui_plot::{Plot, PlotUi};

use super::curves::{DatasetCurves, REBUILD_BUDGET};
use crate::app::trace::{Trace, TraceItem};
use crate::app::view::{Scene, ViewOptions};
use crate::combine::Combined;
use crate::model::Dataset;
use crate::settings::Settings;

/// The plots' own state, kept by the window between frames.
#[derive(Debug)]
pub struct PlotState {
    /// Cached plotting data for the dataset.
    pub curves: DatasetCurves,
    /// Time a frame may spend rebuilding model/residual curves for a new result.
    pub curve_budget: Duration,
    /// A pending x-range to apply to the linked plots (segment jump), in Angstrom.
    pub jump_to: Option<(f64, f64)>,
    /// Reset the plots' bounds on the next frame.
    pub reset_view: bool,
}

impl Default for PlotState {
    fn default() -> Self {
        Self {
            curves: DatasetCurves::default(),
            curve_budget: REBUILD_BUDGET,
            jump_to: None,
            reset_view: false,
        }
    }
}

/// Where one plot of the Spectra tab goes: its height, the data's x range (while the plot sizes
/// itself to the data), the columns to decimate to, and a requested x range (a segment jump).
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    /// Height (points).
    pub height: f32,
    /// The data's x range (Angstrom).
    pub full: (f64, f64),
    /// Columns across the plot.
    pub bins: usize,
    /// An x range to show (Angstrom).
    pub jump: Option<(f64, f64)>,
}

/// What a plot of the Spectra tab reads, and the curve cache it fills.
#[derive(Debug)]
pub struct PlotView<'a> {
    /// The loaded visits.
    pub data: &'a Dataset,
    /// The settings the widgets edit.
    pub settings: &'a Settings,
    /// The newest result.
    pub result: Option<&'a Arc<Combined>>,
    /// The view options.
    pub view: &'a ViewOptions,
    /// The visit of the "single" layout.
    pub selected_visit: usize,
    /// Reset the plots' bounds in this frame.
    pub reset_view: bool,
    /// The decimated curves, cached between frames.
    pub curves: &'a mut DatasetCurves,
}

impl PlotView<'_> {
    /// The read-only part (for the visit order and velocities).
    #[must_use]
    pub fn scene(&self) -> Scene<'_> {
        Scene {
            data: self.data,
            settings: self.settings,
            result: self.result,
            view: self.view,
        }
    }
}

pub(super) const FORWARD_COLOR: egui::Color32 = egui::Color32::from_rgb(40, 110, 220);
pub(super) const STANDARD_COLOR: egui::Color32 = egui::Color32::from_rgb(230, 120, 30);
/// Colours of the methods beyond the two built-in ones, in registration order (repeating).
const OTHER_COLORS: [egui::Color32; 4] = [
    egui::Color32::from_rgb(40, 160, 80),
    egui::Color32::from_rgb(150, 60, 180),
    egui::Color32::from_rgb(140, 90, 40),
    egui::Color32::from_rgb(20, 160, 170),
];

/// The colour of the `k`-th method beyond the two built-in ones.
pub(super) fn other_color(k: usize) -> egui::Color32 {
    OTHER_COLORS[k % OTHER_COLORS.len()]
}
pub(super) const MASK_COLOR: egui::Color32 = egui::Color32::from_rgb(220, 30, 30);
/// Marker colour of pixels the robust fit down-weighted.
pub(super) const DOWN_WEIGHTED_COLOR: egui::Color32 = egui::Color32::from_rgb(255, 170, 0);

pub(super) fn link_group() -> egui::Id {
    egui::Id::unique("frizzview-linked-x")
}

/// A plot of the Spectra tab: `height` tall, its x axis and cursor linked with the others'.
pub(super) fn linked_plot<'a>(name: &'static str, height: f32, y_label: &'a str) -> Plot<'a> {
    Plot::new(name)
        .height(height)
        .link_axis(link_group(), [true, false])
        .link_cursor(link_group(), [true, false])
        .y_axis_label(y_label)
}

/// The visible x range of a plot, or `full` while it still sizes itself to the data.
pub(super) fn visible_x(plot_ui: &PlotUi<'_>, full: (f64, f64)) -> RangeInclusive<f64> {
    let b = plot_ui.plot_bounds();
    if plot_ui.auto_bounds().x || !b.is_valid_x() {
        full.0..=full.1
    } else {
        b.min()[0]..=b.max()[0]
    }
}

pub(super) fn apply_view_requests(
    p: &PlotView<'_>,
    plot_ui: &mut PlotUi<'_>,
    jump: Option<(f64, f64)>,
) {
    if p.reset_view {
        plot_ui.set_auto_bounds(true);
    }
    if let Some((a, b)) = jump {
        plot_ui.set_plot_bounds_x(a..=b);
        plot_ui.set_auto_bounds(egui::Vec2b::new(false, true));
    }
}

pub(super) fn data_range(curves: &DatasetCurves) -> (f64, f64) {
    let lo = curves
        .segments_aa
        .iter()
        .map(|s| s.0)
        .fold(f64::INFINITY, f64::min);
    let hi = curves
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

pub(super) fn add_trace(
    plot_ui: &mut PlotUi<'_>,
    name: &str,
    trace: Trace,
    color: egui::Color32,
    width: f32,
) {
    plot_ui.add(
        TraceItem::new(name, Arc::new(trace))
            .color(color)
            .width(width),
    );
}
