//! The visit table: colour, include, weight, shift and its source, S/N, chi^2/nu, bad pixels, the
//! fitted velocity (with an "adopt" button) and the outlier score when those extensions run.

use std::sync::Arc;

use eframe::egui;

use super::view::{Scene, SortKey, ViewOptions};
use super::visit_rows::{Row, rows};
pub use super::visit_rows::{checked_velocity, sorted_indices, velocity_in_use, visit_color};
use crate::combine::{Combined, Warning};
use crate::model::Dataset;
use crate::settings::Settings;

/// How many visit rows the table shows without scrolling by default (more scroll; the panel's
/// edge drags to show up to most of the window).
pub const VISIT_ROWS_SHOWN: usize = 10;

/// What the data-velocity column means (its header's and cells' tooltip).
pub const DATA_VELOCITY_HELP: &str = "the visit's velocity from the data: cross-correlated \
with the other visits over +-1000 km/s (Settings: velocity window), its zero point from the \
files' velocities that agree with the data; the error includes the instrument's floor";

/// What the leave-one-out column means (its header's and cells' tooltip).
pub const LOO_HELP: &str = "leave-one-out chi2/nu: the visit's pixels against the model fitted to \
the OTHER visits. The in-sample chi2/nu understates a bad visit's misfit, because the model \
bends towards the visit it is compared with; this score does not. Each residual is divided by \
its pixel's variance plus the variance of the prediction from the other visits (their noise), so \
a visit consistent with the others scores about its misfit level (~1), whatever the number of \
visits. Computed with the local basis (also when the Fourier basis is selected).";

fn header(t: &mut VisitTable<'_>, ui: &mut egui::Ui, key: SortKey, text: &str) -> egui::Response {
    let active = t.view.sort == key;
    let label = if active {
        format!("{text} {}", if t.view.sort_descending { "v" } else { "^" })
    } else {
        text.to_owned()
    };
    let r = ui
        .selectable_label(active, label)
        .on_hover_text("sort by this column");
    if r.clicked() {
        if active {
            t.view.sort_descending = !t.view.sort_descending;
        } else {
            t.view.sort = key;
            // The worst visit first: chi^2 and bad pixels sort descending by default.
            t.view.sort_descending = matches!(
                key,
                SortKey::Chi2 | SortKey::Loo | SortKey::Bad | SortKey::Outliers
            );
        }
    }
    r
}

/// What the visit table reads and edits: the per-visit settings (include, weight, shift) and the
/// sort order are edited in place; a click on a visit's number changes [`Self::selected_visit`],
/// which [`visits_ui`] returns for the window to apply.
pub struct VisitTable<'a> {
    /// The loaded visits.
    pub data: &'a Dataset,
    /// The newest result.
    pub result: Option<&'a Arc<Combined>>,
    /// The settings (per-visit entries edited here).
    pub settings: &'a mut Settings,
    /// The view options (the sort column edited here).
    pub view: &'a mut ViewOptions,
    /// The selected visit (clamped to the visits by the caller).
    pub selected_visit: usize,
}

impl VisitTable<'_> {
    fn scene(&self) -> Scene<'_> {
        Scene {
            data: self.data,
            settings: self.settings,
            result: self.result,
            view: self.view,
        }
    }
}

/// What one frame of the visit table measured of its own layout: the window sizes the panel from
/// it on the next frame, so every row of a typical set shows however many warning lines are drawn
/// above the table.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TableLayout {
    /// Height in points of everything drawn above the table (the slider, warnings, velocity lines).
    pub above_px: f32,
    /// Height in points of one table row, as laid out.
    pub row_px: f32,
    /// The visit rows wholly inside the table's visible area (not scrolled or clipped away).
    pub rows_visible: usize,
    /// The visit rows in the table.
    pub rows: usize,
}

impl TableLayout {
    /// The panel height that shows the header and `rows` rows (at most [`VISIT_ROWS_SHOWN`])
    /// without scrolling, with room for a horizontal scroll bar and the panel's margins.
    #[must_use]
    pub fn height_for(&self, rows: usize) -> f32 {
        let shown = rows.clamp(1, VISIT_ROWS_SHOWN) as f32;
        self.above_px + (1.0 + shown) * self.row_px + 28.0
    }
}

/// Draw the visit table and the selected visit's shift slider; returns the visit selected by a
/// click on its number, if any, and what the table measured of its layout.
pub fn visits_ui(t: &mut VisitTable<'_>, ui: &mut egui::Ui) -> (Option<usize>, TableLayout) {
    let n = t.data.visits.len();
    if n == 0 {
        ui.label("No visits loaded: open files (File menu) or drop them here.");
        return (None, TableLayout::default());
    }
    let top = ui.cursor().top();
    let before = t.selected_visit;
    t.settings.visits.resize(n, Default::default());
    selected_ui(t, ui);
    let rows = rows(t.scene());
    if let Some(z) = t
        .result
        .and_then(|r| r.forward.as_ref())
        .and_then(|m| m.velocity_zero_point.as_ref())
    {
        ui.label(format!(
            "fitted velocities are relative: zero point {:.3} ± {:.3} km/s ({}); the ± column excludes the zero point's error",
            z.v_kms, z.err_kms, z.name
        ));
    }
    warnings_ui(t, ui);
    if let Some(c) = t
        .result
        .and_then(|r| r.velocity.as_deref())
        .filter(|_| t.settings.velocity.check)
    {
        ui.label(format!(
            "velocities from the data, zero point {:+.2} km/s ({}); {}",
            c.zero_point.offset_kms,
            c.zero_point.how,
            c.rest_frame.describe()
        ));
    }
    let mut layout = TableLayout {
        above_px: ui.cursor().top() - top,
        rows: rows.len(),
        ..TableLayout::default()
    };
    egui::ScrollArea::both()
        .auto_shrink([false, true])
        .show(ui, |ui| {
            egui::Grid::new("visit-table")
                .striped(true)
                .num_columns(12)
                .spacing([10.0, 2.0])
                .show(ui, |ui| {
                    header(t, ui, SortKey::Index, "#");
                    header(t, ui, SortKey::Name, "visit (included)");
                    ui.label("weight");
                    header(t, ui, SortKey::Shift, "shift km/s");
                    ui.label("source");
                    ui.label("data km/s").on_hover_text(DATA_VELOCITY_HELP);
                    header(t, ui, SortKey::Snr, "S/N");
                    header(t, ui, SortKey::Chi2, "chi2/nu");
                    header(t, ui, SortKey::Loo, "LOO chi2/nu").on_hover_text(LOO_HELP);
                    header(t, ui, SortKey::Bad, "bad px");
                    ui.label("fitted km/s (relative)");
                    header(t, ui, SortKey::Outliers, "outliers");
                    ui.end_row();
                    let visible = ui.clip_rect();
                    for row in &rows {
                        let rect = row_ui(t, ui, row);
                        layout.row_px = layout
                            .row_px
                            .max(rect.height() + ui.spacing().item_spacing.y);
                        layout.rows_visible += usize::from(visible.contains_rect(rect));
                        ui.end_row();
                    }
                });
        });
    (
        (t.selected_visit != before).then_some(t.selected_visit),
        layout,
    )
}

/// One visit's row; returns the rectangle of its name cell (its include box and name).
fn row_ui(t: &mut VisitTable<'_>, ui: &mut egui::Ui, row: &Row) -> egui::Rect {
    let i = row.index;
    let selected = t.selected_visit == i;
    ui.horizontal(|ui| {
        let (rect, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
        ui.painter().rect_filled(rect, 2.0, visit_color(i));
        if ui
            .selectable_label(selected, format!("{}", i + 1))
            .on_hover_text("show this visit in the single-exposure view")
            .clicked()
        {
            t.selected_visit = i;
        }
    });
    let vs = &mut t.settings.visits[i];
    let name_rect = ui.checkbox(&mut vs.include, row.name.as_str()).rect;
    ui.add(
        egui::DragValue::new(&mut vs.weight)
            .range(0.0..=100.0)
            .speed(0.01)
            .max_decimals(3),
    )
    .on_hover_text(format!("weight multiplier of {}", row.name));
    ui.horizontal(|ui| {
        let mut v = row.v_kms.unwrap_or(0.0);
        let r = ui
            .add(egui::DragValue::new(&mut v).speed(0.1).max_decimals(2))
            .on_hover_text(format!("velocity used to shift {} (km/s)", row.name));
        if r.changed() {
            vs.shift_kms = Some(v);
        }
        if vs.shift_kms.is_some()
            && ui
                .small_button("reset")
                .on_hover_text("use the shift source again")
                .clicked()
        {
            vs.shift_kms = None;
        }
    });
    ui.label(row.source);
    match row.v_data {
        Some((v, err, external, true)) => {
            let text = egui::RichText::new(format!("{v:.2} ± {err:.2} (replaced)"))
                .color(ui.visuals().warn_fg_color);
            ui.label(text).on_hover_text(format!(
                "{DATA_VELOCITY_HELP}\n\nThe file's velocity ({}) disagrees with the data's \
                 relative velocities by more than the errors allow: the data's is used.",
                external.map_or("-".into(), |e| format!("{e:.2} km/s"))
            ));
        }
        Some((v, err, external, false)) => {
            ui.label(format!("{v:.2} ± {err:.2}"))
                .on_hover_text(format!(
                    "{DATA_VELOCITY_HELP}\n\nThe file's velocity: {}",
                    external.map_or("none".into(), |e| format!("{e:.2} km/s (consistent)"))
                ));
        }
        None => {
            ui.label("-");
        }
    }
    ui.label(row.snr.map_or("-".into(), |s| format!("{s:.0}")));
    ui.label(row.chi2_nu.map_or("-".into(), |c| format!("{c:.2}")));
    match row.loo {
        Some((c, 0)) => ui.label(format!("{c:.2}")).on_hover_text(LOO_HELP),
        Some((c, n)) => ui.label(format!("{c:.2}*")).on_hover_text(format!(
            "{LOO_HELP}\n\n* without this visit the others leave {n} of its pixels \
             unconstrained: only the pixels they still constrain are scored"
        )),
        None if row.loo_pending => ui
            .label("…")
            .on_hover_text("the leave-one-out scores are being computed"),
        None => ui.label("-"),
    };
    ui.label(row.n_bad.map_or("-".into(), |b| b.to_string()));
    ui.horizontal(|ui| match row.v_fit {
        Some((v, err)) => {
            ui.label(format!("{v:.2} ± {err:.2}"));
            if ui
                .small_button("adopt")
                .on_hover_text(format!("shift {} by its fitted velocity", row.name))
                .clicked()
            {
                t.settings.visits[i].shift_kms = Some(v);
            }
        }
        None => {
            ui.label("-");
        }
    });
    ui.label(
        row.outlier_score
            .map_or("-".into(), |o| format!("{:.1}%", 100.0 * o)),
    )
    .on_hover_text("pixels down-weighted below 0.5 by the robust fit");
    name_rect
}

/// A slider for the selected visit's velocity: drag it and watch the model follow.
fn selected_ui(t: &mut VisitTable<'_>, ui: &mut egui::Ui) {
    let i = t.selected_visit;
    let (v, _) = velocity_in_use(t.scene(), i);
    let name = t.data.visits[i].meta.name.clone();
    let base = checked_velocity(t.scene(), i)
        .map(|c| c.used_kms)
        .or_else(|| t.settings.shift.velocity(&t.data.visits[i].meta))
        .unwrap_or(0.0);
    let mut value = v.unwrap_or(base);
    ui.horizontal(|ui| {
        ui.label(format!("{name}:"));
        let r = ui.add(
            egui::Slider::new(&mut value, (base - 60.0)..=(base + 60.0))
                .text("shift km/s")
                .clamping(egui::SliderClamping::Never)
                .max_decimals(2),
        );
        if r.changed() {
            t.settings.visits[i].shift_kms = Some(value);
        }
        let mut w = t.settings.visits[i].weight;
        if ui
            .add(egui::Slider::new(&mut w, 0.0..=3.0).text("weight"))
            .changed()
        {
            t.settings.visits[i].weight = w;
        }
    });
}

/// How many lines of text the panel draws above the visit table (the slider, the warnings, the
/// velocity line), for the panel's default height.
#[must_use]
pub fn lines_above_table(result: Option<&Combined>) -> usize {
    let Some(r) = result else {
        return 1;
    };
    let warnings = shown_above_table(&r.warnings)
        .iter()
        .take(6)
        .map(|w| match w {
            Warning::PoorFit { .. } => 3,
            Warning::RestFrame(_) => 2,
            _ => 1,
        })
        .sum::<usize>();
    1 + warnings + usize::from(r.velocity.is_some()) * 2
}

/// The warnings drawn in full above the visit table (the first six of them): the fit's verdict
/// first, then the rest frame, then the velocities.
#[must_use]
pub fn shown_above_table(warnings: &[Warning]) -> Vec<&Warning> {
    let rank = |w: &Warning| match w {
        Warning::PoorFit { .. } => Some(0),
        Warning::RestFrame(_) => Some(1),
        Warning::VelocityReplaced { .. } | Warning::RvVariable { .. } => Some(2),
        _ => None,
    };
    let mut shown: Vec<&Warning> = warnings.iter().filter(|w| rank(w).is_some()).collect();
    shown.sort_by_key(|w| rank(w));
    shown
}

/// The visits a warning names (by name), worst first: the ones a person may want to exclude.
#[must_use]
pub fn warning_visits(w: &Warning) -> Vec<String> {
    match w {
        Warning::PoorFit { outliers, .. } => outliers.iter().map(|(n, _)| n.clone()).collect(),
        Warning::VelocityReplaced { visit, .. } | Warning::VelocityUnchecked { visit, .. } => {
            vec![visit.clone()]
        }
        _ => Vec::new(),
    }
}

/// The warnings about the fit and the velocities, in full above the table, each visit they name
/// with a button that excludes it.
fn warnings_ui(t: &mut VisitTable<'_>, ui: &mut egui::Ui) {
    let Some(result) = t.result else {
        return;
    };
    // The fit's verdict first, then the velocities; each visit gets one button.
    let shown = shown_above_table(&result.warnings);
    let mut offered: Vec<String> = Vec::new();
    for w in shown.iter().take(6) {
        ui.horizontal_wrapped(|ui| {
            ui.label(egui::RichText::new(w.to_string()).color(ui.visuals().warn_fg_color));
            for name in warning_visits(w) {
                if offered.contains(&name) {
                    continue;
                }
                let Some(i) = t.data.visits.iter().position(|v| v.meta.name == name) else {
                    continue;
                };
                offered.push(name.clone());
                let vs = &mut t.settings.visits[i];
                if vs.include
                    && ui
                        .small_button(format!("exclude {name}"))
                        .on_hover_text("leave this visit out of the combination")
                        .clicked()
                {
                    vs.include = false;
                }
            }
        });
    }
    if shown.len() > 6 {
        ui.label(format!(
            "... and {} more (hover the status bar's warnings)",
            shown.len() - 6
        ));
    }
}
