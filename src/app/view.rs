//! What the panels read and the view options: the central tab, how exposures are drawn, the
//! visit table's order ([`ViewOptions`], remembered between runs), and [`Scene`], the read-only
//! view of the dataset, the settings and the newest result that the visit table and the plots
//! are drawn from. The lowest file of the window: it imports nothing of it.

use std::sync::Arc;

use crate::combine::Combined;
use crate::model::Dataset;
use crate::settings::Settings;

/// What the visit table and the plots read: the dataset, the settings the widgets edit, the
/// newest result and the view options.
#[derive(Clone, Copy, Debug)]
pub struct Scene<'a> {
    /// The loaded visits.
    pub data: &'a Dataset,
    /// The settings the widgets edit.
    pub settings: &'a Settings,
    /// The newest result.
    pub result: Option<&'a Arc<Combined>>,
    /// The view options.
    pub view: &'a ViewOptions,
}

/// Which panel fills the centre.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Tab {
    /// Combined spectrum and exposures.
    Spectra,
    /// Noise correlation against lag.
    Noise,
    /// The teaching panel (the paper's experiments, live).
    Teaching,
}

/// The frame exposures are drawn in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DrawFrame {
    /// As observed.
    Observed,
    /// Shifted to the rest frame by the velocity in use.
    Rest,
}

/// How exposures are arranged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExposureLayout {
    /// One above the other with an offset.
    Stacked,
    /// On top of each other.
    Overlaid,
    /// Only the selected visit.
    Single,
}

/// How the second method is shown against the forward model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Compare {
    /// Both curves in one plot.
    Overlay,
    /// The difference standard - forward in its own plot.
    Difference,
}

/// Column the visit table is sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SortKey {
    /// Dataset order.
    Index,
    /// Name.
    Name,
    /// Velocity in use.
    Shift,
    /// Signal-to-noise ratio.
    Snr,
    /// chi^2/nu against the forward model.
    Chi2,
    /// Bad-pixel count.
    Bad,
    /// Outlier score of the robust fit.
    Outliers,
    /// Leave-one-visit-out chi^2/nu.
    Loo,
}

/// View options, remembered between runs.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ViewOptions {
    /// Central tab.
    pub tab: Tab,
    /// Exposure frame.
    pub frame: DrawFrame,
    /// Exposure arrangement.
    pub layout: ExposureLayout,
    /// Second-method display.
    pub compare: Compare,
    /// Draw 1-sigma uncertainty bands.
    pub show_uncertainty: bool,
    /// Draw each visit's model prediction.
    pub show_model: bool,
    /// Mark masked pixels.
    pub show_masked: bool,
    /// Show the residual plot.
    pub show_residuals: bool,
    /// Residuals and model of each visit from the other visits' fit (leave-one-out) instead of
    /// the fit to all visits.
    pub leave_one_out: bool,
    /// Draw the truth / pipeline coadd when the dataset has one.
    pub show_reference: bool,
    /// Visit table sort column.
    pub sort: SortKey,
    /// Sort descending.
    pub sort_descending: bool,
}

impl Default for ViewOptions {
    fn default() -> Self {
        Self {
            tab: Tab::Spectra,
            frame: DrawFrame::Rest,
            layout: ExposureLayout::Stacked,
            compare: Compare::Overlay,
            show_uncertainty: true,
            show_model: true,
            show_masked: true,
            show_residuals: true,
            leave_one_out: false,
            show_reference: true,
            sort: SortKey::Index,
            sort_descending: false,
        }
    }
}
