//! The fit-quality check of a combination ([`fit_quality`]).

use super::types::Combined;
use super::warning::{OUTLIER_LOO_CHI2_NU, OUTLIER_LOO_FACTOR, POOR_FIT_CHI2_NU, Warning};

/// The [`Warning::PoorFit`] of a combination, if it deserves one: its chi^2/nu above
/// [`POOR_FIT_CHI2_NU`], or a visit's score above both [`OUTLIER_LOO_CHI2_NU`] and
/// [`OUTLIER_LOO_FACTOR`] times the median. The combination is judged by the first method, in
/// registration order, that has a result ([`Combined::results`]: the forward model, else
/// standard practice, else the next registered method). The scores are that method's
/// leave-one-out chi^2/nu when it has them (a method that scores visits, once the second stage
/// is done), else each visit's chi^2/nu.
#[must_use]
pub fn fit_quality(c: &Combined) -> Option<Warning> {
    let (_, r) = c.results().into_iter().next()?;
    let loo = !c.loo_pending && r.visits.iter().any(|v| v.loo_chi2_nu.is_finite());
    let (mut chi2, mut n) = (0.0, 0usize);
    let mut scores: Vec<(String, f64)> = Vec::new();
    for (k, (fit, used)) in r.visits.iter().zip(&c.visits).enumerate() {
        if !used.included || fit.n_used == 0 {
            continue;
        }
        chi2 += fit.chi2;
        n += fit.n_used;
        let score = if loo { fit.loo_chi2_nu } else { fit.chi2_nu };
        if score.is_finite() {
            let name = if used.name.is_empty() {
                format!("visit {}", k + 1)
            } else {
                used.name.clone()
            };
            scores.push((name, score));
        }
    }
    if n == 0 {
        return None;
    }
    let chi2_nu = chi2 / n as f64;
    scores.sort_by(|a, b| b.1.total_cmp(&a.1));
    let flagged = outlier_visits(&scores.iter().map(|s| s.1).collect::<Vec<_>>());
    let outliers: Vec<(String, f64)> = scores
        .iter()
        .zip(&flagged)
        .filter(|(_, f)| **f)
        .map(|(s, _)| s.clone())
        .collect();
    if !(chi2_nu > POOR_FIT_CHI2_NU) && outliers.is_empty() {
        return None;
    }
    Some(Warning::PoorFit {
        chi2_nu,
        outliers,
        ranked: scores.into_iter().take(3).collect(),
        loo,
    })
}

/// The outlier rule of [`fit_quality`], one flag per score (NaN: not scored, never flagged): a
/// score above both [`OUTLIER_LOO_CHI2_NU`] and [`OUTLIER_LOO_FACTOR`] times the median of the
/// finite scores (the upper median for an even count); nothing is flagged with fewer than 3
/// finite scores. `--fit-shifts` leaves the visits it flags out of the model the shifts are
/// fitted against ([`crate::settings::ShiftFitModel`]).
#[must_use]
pub fn outlier_visits(scores: &[f64]) -> Vec<bool> {
    let mut sorted: Vec<f64> = scores.iter().copied().filter(|s| s.is_finite()).collect();
    if sorted.len() < 3 {
        return vec![false; scores.len()];
    }
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    scores
        .iter()
        .map(|&s| s > OUTLIER_LOO_CHI2_NU && s > OUTLIER_LOO_FACTOR * median)
        .collect()
}

/// Replace the [`Warning::PoorFit`] of `c` by the one its current figures give.
pub(crate) fn refresh_fit_quality(c: &mut Combined) {
    c.warnings.retain(|w| !matches!(w, Warning::PoorFit { .. }));
    if let Some(w) = fit_quality(c) {
        c.warnings.push(w);
    }
}
