//! The Noise tab: the correlation of neighbouring output pixels against lag, for every method.

use eframe::egui;
use egui_plot::{Line, Plot, Points};

use super::common::{FORWARD_COLOR, STANDARD_COLOR, other_color};
use crate::combine::Combined;

pub use crate::experiment::correlation_by_lag;

/// The Noise tab: correlation of neighbouring output pixels against lag, for every method of
/// the newest `result` (the two built-in ones first, in their colours).
pub fn noise_ui(result: Option<&Combined>, ui: &mut egui::Ui) {
    ui.label(
        "Correlation between output pixels l and l+k (median over pixels of C[l,l+k] / C[l,l]). \
         Interpolation correlates neighbouring pixels; the forward model keeps them nearly \
         independent when the visits sample the spectrum well.",
    );
    let Some(r) = result else {
        ui.label("no result yet");
        return;
    };
    let others = r
        .others
        .iter()
        .enumerate()
        .map(|(k, o)| (o.info.label, &o.result, other_color(k)));
    let curves: Vec<(&str, Vec<f64>, egui::Color32)> = [
        ("forward model", &r.forward, FORWARD_COLOR),
        ("standard practice", &r.standard, STANDARD_COLOR),
    ]
    .into_iter()
    .chain(others)
    .filter_map(|(n, m, c)| m.as_ref().map(|m| (n, correlation_by_lag(&m.band), c)))
    .collect();
    egui::Grid::new("noise-table").striped(true).show(ui, |ui| {
        ui.label("lag");
        for (n, _, _) in &curves {
            ui.label(*n);
        }
        ui.end_row();
        let n_lags = curves.iter().map(|c| c.1.len()).max().unwrap_or(0);
        for k in 0..n_lags.min(8) {
            ui.label(k.to_string());
            for (_, c, _) in &curves {
                ui.label(c.get(k).map_or("-".into(), |v| format!("{v:+.3}")));
            }
            ui.end_row();
        }
    });
    Plot::new("noise")
        .x_axis_label("lag k (output pixels)")
        .y_axis_label("correlation")
        .legend(egui_plot::Legend::default())
        .include_y(0.0)
        .include_y(1.0)
        .show(ui, |plot_ui| {
            for (n, c, color) in curves {
                let pts: Vec<[f64; 2]> = c
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(k, v)| [k as f64, *v])
                    .collect();
                plot_ui.line(Line::new(n, pts.clone()).color(color).width(2.0));
                plot_ui.points(Points::new(n, pts).color(color).radius(4.0).filled(true));
            }
        });
}
