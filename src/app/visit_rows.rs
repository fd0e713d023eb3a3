//! The visit table's rows and their order, read by the table and by the stacked exposure plot:
//! each visit's colour, the velocity it is shifted by (the core's shift rule) and its source,
//! the numbers shown, and the sort. Below both panels; reads a [`Scene`].

use eframe::egui;

use super::view::{Scene, SortKey};
use crate::velocity::rule::{self, VelocityChoice};
use crate::velocity::{VelocityStatus, VisitVelocity};

/// A distinct colour per visit (golden-ratio hues), shared by the table and the plots.
#[must_use]
pub fn visit_color(i: usize) -> egui::Color32 {
    let h = (i as f32 * 0.618_034).fract();
    egui::ecolor::Hsva::new(h, 0.75, 0.8, 1.0).into()
}

/// The velocity visit `i` is shifted by under the current settings, by the core's shift rule
/// ([`rule::choose`]: a manual override, else (when the velocities are checked against the data)
/// the velocity the last combination used, else the shift source's), and where it comes from in
/// one word for the table's "source" column.
#[must_use]
pub fn velocity_in_use<'a>(scene: impl Into<Scene<'a>>, i: usize) -> (Option<f64>, &'static str) {
    let s = scene.into();
    let Some(visit) = s.data.visits.get(i) else {
        return (None, "missing");
    };
    let source = s.settings.shift.label();
    match rule::choose(s.settings, i, &visit.meta, checked_velocity(s, i)) {
        VelocityChoice::Manual(v) => (Some(v), "manual"),
        VelocityChoice::Checked(c) => match c.status {
            VelocityStatus::Measured if !c.used_source.starts_with("data") => {
                (Some(c.used_kms), source)
            }
            VelocityStatus::Measured => (Some(c.used_kms), "data"),
            VelocityStatus::TooFaint => (Some(c.used_kms), "unchecked"),
        },
        VelocityChoice::Source(v) => (Some(v), source),
        VelocityChoice::Missing => (None, "missing"),
    }
}

/// The last combination's velocity check of visit `i`, when the settings check velocities and
/// the result is of the dataset shown.
#[must_use]
pub fn checked_velocity<'a>(scene: impl Into<Scene<'a>>, i: usize) -> Option<&'a VisitVelocity> {
    let s = scene.into();
    if !s.settings.velocity.check {
        return None;
    }
    let check = s.result?.velocity.as_deref()?;
    (check.visits.len() == s.data.visits.len())
        .then(|| check.visits.get(i))
        .flatten()
        .filter(|c| s.data.visits[i].meta.name == c.name)
}

/// Per-visit numbers shown (and sorted on).
pub struct Row {
    pub index: usize,
    pub name: String,
    pub v_kms: Option<f64>,
    pub source: &'static str,
    pub snr: Option<f64>,
    pub chi2_nu: Option<f64>,
    /// Leave-one-out chi^2/nu (forward model) and the pixels left unconstrained without it.
    pub loo: Option<(f64, usize)>,
    /// The leave-one-out scores are still being computed (the engine's second stage).
    pub loo_pending: bool,
    pub n_bad: Option<usize>,
    /// Fitted velocity and its error (km/s) when shift fitting ran.
    pub v_fit: Option<(f64, f64)>,
    /// The data's velocity, its error, the external velocity and whether it was replaced, when
    /// the velocities were checked.
    pub v_data: Option<(f64, f64, Option<f64>, bool)>,
    /// Fraction of the visit's pixels down-weighted below 0.5 when robust reweighting ran.
    pub outlier_score: Option<f64>,
}

/// The table's rows in the order shown (the view's sort column and direction).
#[must_use]
pub fn rows(s: Scene<'_>) -> Vec<Row> {
    let result = s.result;
    let mut rows: Vec<Row> = s
        .data
        .visits
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let (v_kms, source) = velocity_in_use(s, i);
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
            let v_data = checked_velocity(s, i)
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
    let key = s.view.sort;
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
        if s.view.sort_descending {
            o.reverse()
        } else {
            o
        }
    });
    rows
}

/// The order visits are listed in (used by tests and by the stacked plot).
#[must_use]
pub fn sorted_indices<'a>(scene: impl Into<Scene<'a>>) -> Vec<usize> {
    rows(scene.into()).iter().map(|r| r.index).collect()
}
