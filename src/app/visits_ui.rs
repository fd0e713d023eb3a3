//! The visit table: colour, include, weight, shift and its source, S/N, chi^2/nu, bad pixels, the
//! fitted velocity (with an "adopt" button) and the outlier score when those extensions run.

use eframe::egui;

use super::{FrizzApp, SortKey};
use crate::combine::Warning;
use crate::velocity::{VelocityStatus, VisitVelocity};

/// How many visit rows the table shows without scrolling by default (more scroll; the panel's
/// edge drags to show up to most of the window).
pub const VISIT_ROWS_SHOWN: usize = 10;

/// A distinct colour per visit (golden-ratio hues), shared by the table and the plots.
#[must_use]
pub fn visit_color(i: usize) -> egui::Color32 {
    let h = (i as f32 * 0.618_034).fract();
    egui::ecolor::Hsva::new(h, 0.75, 0.8, 1.0).into()
}

/// The velocity a visit is shifted by under the current settings: a manual override first, then
/// (when the velocities are checked against the data) the velocity the last combination used,
/// then the shift source's.
#[must_use]
pub fn velocity_in_use(app: &FrizzApp, i: usize) -> (Option<f64>, &'static str) {
    let vs = app.settings.visit(i);
    if let Some(v) = vs.shift_kms {
        return (Some(v), "manual");
    }
    let Some(visit) = app.data.visits.get(i) else {
        return (None, "missing");
    };
    if let Some(c) = checked_velocity(app, i) {
        return match c.status {
            VelocityStatus::Measured if !c.used_source.starts_with("data") => {
                (Some(c.used_kms), app.settings.shift.label())
            }
            VelocityStatus::Measured => (Some(c.used_kms), "data"),
            VelocityStatus::TooFaint => (Some(c.used_kms), "unchecked"),
        };
    }
    match app.settings.shift.velocity(&visit.meta) {
        Some(v) => (Some(v), app.settings.shift.label()),
        None => (None, "missing"),
    }
}

/// The last combination's velocity check of visit `i`, when the settings check velocities and
/// the result is of the dataset shown.
#[must_use]
pub fn checked_velocity(app: &FrizzApp, i: usize) -> Option<&VisitVelocity> {
    if !app.settings.velocity.check {
        return None;
    }
    let check = app.result.as_deref()?.velocity.as_deref()?;
    (check.visits.len() == app.data.visits.len())
        .then(|| check.visits.get(i))
        .flatten()
        .filter(|c| app.data.visits[i].meta.name == c.name)
}

/// Per-visit numbers shown (and sorted on).
struct Row {
    index: usize,
    name: String,
    v_kms: Option<f64>,
    source: &'static str,
    snr: Option<f64>,
    chi2_nu: Option<f64>,
    /// Leave-one-out chi^2/nu (forward model) and the pixels left unconstrained without it.
    loo: Option<(f64, usize)>,
    /// The leave-one-out scores are still being computed (the engine's second stage).
    loo_pending: bool,
    n_bad: Option<usize>,
    /// Fitted velocity and its error (km/s) when shift fitting ran.
    v_fit: Option<(f64, f64)>,
    /// The data's velocity, its error, the external velocity and whether it was replaced, when
    /// the velocities were checked.
    v_data: Option<(f64, f64, Option<f64>, bool)>,
    /// Fraction of the visit's pixels down-weighted below 0.5 when robust reweighting ran.
    outlier_score: Option<f64>,
}

fn rows(app: &FrizzApp) -> Vec<Row> {
    let result = app.result.as_deref();
    let mut rows: Vec<Row> = app
        .data
        .visits
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let (v_kms, source) = velocity_in_use(app, i);
            let fit = result
                .and_then(|r| r.forward.as_ref().or(r.standard.as_ref()))
                .and_then(|m| m.visits.get(i));
            let forward = result.and_then(|r| r.forward.as_ref());
            let v_fit = forward
                .and_then(|m| m.fitted_velocity.as_ref())
                .and_then(|f| f.get(i).copied())
                .filter(|(v, _)| v.is_finite());
            let outlier_score = forward
                .and_then(|m| m.visits.get(i))
                .filter(|f| !f.robust_weight.is_empty())
                .map(|f| f.outlier_score);
            let v_data = checked_velocity(app, i)
                .filter(|c| c.status == VelocityStatus::Measured)
                .map(|c| (c.data_kms, c.err_kms, c.external_kms, c.replaced));
            Row {
                v_data,
                index: i,
                name: v.meta.name.clone(),
                v_kms,
                source,
                snr: v.meta.snr,
                chi2_nu: fit.map(|f| f.chi2_nu).filter(|c| c.is_finite()),
                loo: forward
                    .and_then(|m| m.visits.get(i))
                    .filter(|f| f.loo_chi2_nu.is_finite())
                    .map(|f| (f.loo_chi2_nu, f.loo_n_unconstrained)),
                loo_pending: result.is_some_and(|r| r.loo_pending),
                n_bad: result.and_then(|r| r.visits.get(i)).map(|u| u.n_bad),
                v_fit,
                outlier_score,
            }
        })
        .collect();
    let key = app.view.sort;
    let cmp_opt = |a: Option<f64>, b: Option<f64>| {
        // Missing values sort last either way.
        match (a, b) {
            (Some(a), Some(b)) => a.total_cmp(&b),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        }
    };
    rows.sort_by(|a, b| {
        let o = match key {
            SortKey::Index => a.index.cmp(&b.index),
            SortKey::Name => a.name.cmp(&b.name),
            SortKey::Shift => cmp_opt(a.v_kms, b.v_kms),
            SortKey::Snr => cmp_opt(a.snr, b.snr),
            SortKey::Chi2 => cmp_opt(a.chi2_nu, b.chi2_nu),
            SortKey::Loo => cmp_opt(a.loo.map(|l| l.0), b.loo.map(|l| l.0)),
            SortKey::Bad => a.n_bad.cmp(&b.n_bad),
            SortKey::Outliers => cmp_opt(a.outlier_score, b.outlier_score),
        };
        if app.view.sort_descending {
            o.reverse()
        } else {
            o
        }
    });
    rows
}

/// The order visits are listed in (used by tests and by the stacked plot).
#[must_use]
pub fn sorted_indices(app: &FrizzApp) -> Vec<usize> {
    rows(app).iter().map(|r| r.index).collect()
}

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

fn header(app: &mut FrizzApp, ui: &mut egui::Ui, key: SortKey, text: &str) -> egui::Response {
    let active = app.view.sort == key;
    let label = if active {
        format!(
            "{text} {}",
            if app.view.sort_descending { "v" } else { "^" }
        )
    } else {
        text.to_owned()
    };
    let r = ui
        .selectable_label(active, label)
        .on_hover_text("sort by this column");
    if r.clicked() {
        if active {
            app.view.sort_descending = !app.view.sort_descending;
        } else {
            app.view.sort = key;
            // The worst visit first: chi^2 and bad pixels sort descending by default.
            app.view.sort_descending = matches!(
                key,
                SortKey::Chi2 | SortKey::Loo | SortKey::Bad | SortKey::Outliers
            );
        }
    }
    r
}

/// Draw the visit table and the selected visit's shift slider.
pub fn visits_ui(app: &mut FrizzApp, ui: &mut egui::Ui) {
    let n = app.data.visits.len();
    if n == 0 {
        ui.label("No visits loaded: open files (File menu) or drop them here.");
        return;
    }
    app.settings.visits.resize(n, Default::default());
    app.selected_visit = app.selected_visit.min(n - 1);
    selected_ui(app, ui);
    let rows = rows(app);
    if let Some(z) = app
        .result
        .as_deref()
        .and_then(|r| r.forward.as_ref())
        .and_then(|m| m.velocity_zero_point.as_ref())
    {
        ui.label(format!(
            "fitted velocities are relative: zero point {:.3} ± {:.3} km/s ({}); the ± column excludes the zero point's error",
            z.v_kms, z.err_kms, z.name
        ));
    }
    warnings_ui(app, ui);
    if let Some(c) = app
        .result
        .as_deref()
        .and_then(|r| r.velocity.as_deref())
        .filter(|_| app.settings.velocity.check)
    {
        ui.label(format!(
            "velocities from the data, zero point {:+.2} km/s ({}); {}",
            c.zero_point.offset_kms,
            c.zero_point.how,
            c.rest_frame.describe()
        ));
    }
    egui::ScrollArea::both()
        .auto_shrink([false, true])
        .show(ui, |ui| {
            egui::Grid::new("visit-table")
                .striped(true)
                .num_columns(12)
                .spacing([10.0, 2.0])
                .show(ui, |ui| {
                    header(app, ui, SortKey::Index, "#");
                    header(app, ui, SortKey::Name, "visit (included)");
                    ui.label("weight");
                    header(app, ui, SortKey::Shift, "shift km/s");
                    ui.label("source");
                    ui.label("data km/s").on_hover_text(DATA_VELOCITY_HELP);
                    header(app, ui, SortKey::Snr, "S/N");
                    header(app, ui, SortKey::Chi2, "chi2/nu");
                    header(app, ui, SortKey::Loo, "LOO chi2/nu").on_hover_text(LOO_HELP);
                    header(app, ui, SortKey::Bad, "bad px");
                    ui.label("fitted km/s (relative)");
                    header(app, ui, SortKey::Outliers, "outliers");
                    ui.end_row();
                    for row in &rows {
                        row_ui(app, ui, row);
                        ui.end_row();
                    }
                });
        });
}

fn row_ui(app: &mut FrizzApp, ui: &mut egui::Ui, row: &Row) {
    let i = row.index;
    let selected = app.selected_visit == i;
    ui.horizontal(|ui| {
        let (rect, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
        ui.painter().rect_filled(rect, 2.0, visit_color(i));
        if ui
            .selectable_label(selected, format!("{}", i + 1))
            .on_hover_text("show this visit in the single-exposure view")
            .clicked()
        {
            app.selected_visit = i;
        }
    });
    let vs = &mut app.settings.visits[i];
    ui.checkbox(&mut vs.include, row.name.as_str());
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
                app.settings.visits[i].shift_kms = Some(v);
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
}

/// A slider for the selected visit's velocity: drag it and watch the model follow.
fn selected_ui(app: &mut FrizzApp, ui: &mut egui::Ui) {
    let i = app.selected_visit;
    let (v, _) = velocity_in_use(app, i);
    let name = app.data.visits[i].meta.name.clone();
    let base = checked_velocity(app, i)
        .map(|c| c.used_kms)
        .or_else(|| app.settings.shift.velocity(&app.data.visits[i].meta))
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
            app.settings.visits[i].shift_kms = Some(value);
        }
        let mut w = app.settings.visits[i].weight;
        if ui
            .add(egui::Slider::new(&mut w, 0.0..=3.0).text("weight"))
            .changed()
        {
            app.settings.visits[i].weight = w;
        }
    });
}

/// How many lines of text the panel draws above the visit table (the slider, the warnings, the
/// velocity line), for the panel's default height.
#[must_use]
pub fn lines_above_table(app: &FrizzApp) -> usize {
    let Some(r) = app.result.as_deref() else {
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
fn warnings_ui(app: &mut FrizzApp, ui: &mut egui::Ui) {
    let Some(result) = app.result.clone() else {
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
                let Some(i) = app.data.visits.iter().position(|v| v.meta.name == name) else {
                    continue;
                };
                offered.push(name.clone());
                let vs = &mut app.settings.visits[i];
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
