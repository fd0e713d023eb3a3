//! Output pixels the data do not constrain.
//!
//! A least-squares fit returns a value for every basis function that has any data, however little.
//! Near the ends of a segment (APOGEE's chip gaps, the grid ends) the last functions of the local
//! basis rest on a few pixels at the edges of their support: the normal matrix is nearly singular
//! there, the fitted values swing by orders of magnitude more than the noise (on the real 3-visit
//! APOGEE star 2M00005143+5615568: values up to +-9000 on a continuum of 480, sigma up to 3e5 where
//! the interior has ~5) and they are not a measurement of the spectrum. Such a pixel has data in
//! the censoring sense but is *poorly constrained*; it is reported, drawn and exported like a
//! no-data pixel (NaN flux, variance and covariance) and counted separately.
//!
//! The rule: a pixel is poorly constrained when its variance exceeds [`VAR_RATIO`] times the
//! median variance of the constrained pixels within [`HALF_WINDOW`] pixels of it (the median of
//! a 51-pixel neighbourhood), or [`EDGE_RATIO`] times that median when it touches a no-data
//! run, a grid end or an already flagged pixel (unconstrained functions come in runs at the ends
//! of a segment, so the run is followed inwards with the lower threshold). Why these numbers:
//! - the variance of a well-posed combination changes smoothly along the spectrum; in flux-
//!   dependent noise a deep line changes it by a factor of a few, and where only 1 of N visits
//!   covers a pixel (dithered ends of the coverage) by N; the APOGEE pipeline's pixel policy
//!   inflates sigma by up to 10 (SIG_SKYLINE), i.e. the variance by 100 where every visit has a
//!   sky line at the same rest wavelength. Inside a segment a factor of 1e4 (sigma 100 times the
//!   neighbourhood's) sits above all of these, for up to 10^4 visits, and far below the 1e6-1e9
//!   of an unconstrained function (on the real star a factor of 100 flagged inflated sky-line
//!   pixels deep inside the chips); at the edge of a segment, where only the ill-posed end
//!   functions are, 100 (sigma 10 times) follows the run of them down to where the variance
//!   is back to a few times the interior's;
//! - 51 pixels (about two resolution elements of APOGEE's 2-3 pixel LSF, ten times over) is wide
//!   enough that a run of edge pixels never makes up the median, narrow enough that the slow
//!   change of the noise along a chip does not matter;
//! - the medians are recomputed without the flagged pixels until nothing changes, so a long run
//!   of unconstrained pixels at a segment's end is peeled from the outside in.

use super::types::MethodResult;

/// Half-width of the neighbourhood (pixels): the median runs over 2 * 25 + 1 = 51 pixels.
pub const HALF_WINDOW: usize = 25;

/// Variance ratio to the neighbourhood's median above which a pixel is poorly constrained.
pub const VAR_RATIO: f64 = 1e4;

/// The same ratio for a pixel next to a no-data run, a grid end or a flagged pixel.
pub const EDGE_RATIO: f64 = 100.0;

/// Passes of the peel-and-recompute loop at most (each pass only adds flags; an edge run grows
/// by at least one pixel per pass).
const MAX_PASSES: usize = 64;

/// The poorly constrained pixels of a variance vector (`no_data` pixels are never flagged: they
/// are already out; non-finite variances outside `no_data` are flagged).
#[must_use]
pub fn poorly_constrained(var: &[f64], no_data: &[bool]) -> Vec<bool> {
    let n = var.len();
    let out_of_play = |l: usize| no_data.get(l).copied().unwrap_or(false);
    let mut flagged: Vec<bool> = (0..n)
        .map(|l| !(out_of_play(l) || var[l].is_finite() && var[l] >= 0.0))
        .collect();
    let mut window = Vec::with_capacity(2 * HALF_WINDOW + 1);
    // Pass 1 looks at every pixel; later passes only at those whose neighbourhood lost a pixel
    // to the previous pass (the others' medians did not change).
    let mut dirty: Vec<bool> = vec![true; n];
    for _ in 0..MAX_PASSES {
        let mut newly = Vec::new();
        for l in 0..n {
            if !dirty[l] || out_of_play(l) || flagged[l] {
                continue;
            }
            window.clear();
            let lo = l.saturating_sub(HALF_WINDOW);
            let hi = (l + HALF_WINDOW + 1).min(n);
            window.extend(
                (lo..hi)
                    .filter(|&k| !out_of_play(k) && !flagged[k])
                    .map(|k| var[k]),
            );
            if window.is_empty() {
                continue;
            }
            let mid = window.len() / 2;
            let (_, median, _) = window.select_nth_unstable_by(mid, f64::total_cmp);
            let at_edge = l == 0
                || l + 1 == n
                || out_of_play(l - 1)
                || out_of_play(l + 1)
                || flagged[l - 1]
                || flagged[l + 1];
            let ratio = if at_edge { EDGE_RATIO } else { VAR_RATIO };
            if var[l] > ratio * *median {
                newly.push(l);
            }
        }
        if newly.is_empty() {
            break;
        }
        dirty.fill(false);
        for &l in &newly {
            flagged[l] = true;
            let lo = l.saturating_sub(HALF_WINDOW);
            let hi = (l + HALF_WINDOW + 1).min(n);
            dirty[lo..hi].fill(true);
        }
    }
    flagged
}

/// Flag a method's poorly constrained pixels (`poorly_constrained`) and blank them like no-data
/// pixels: NaN flux, variance and every covariance entry that involves them.
pub fn apply(r: &mut MethodResult) {
    let flagged = poorly_constrained(&r.var, &r.no_data);
    for (l, &f) in flagged.iter().enumerate() {
        if !f {
            continue;
        }
        if let Some(x) = r.flux.get_mut(l) {
            *x = f64::NAN;
        }
        if let Some(x) = r.var.get_mut(l) {
            *x = f64::NAN;
        }
        for (k, row) in r.band.iter_mut().enumerate() {
            if let Some(x) = row.get_mut(l) {
                *x = f64::NAN;
            }
            if l >= k
                && let Some(x) = row.get_mut(l - k)
            {
                *x = f64::NAN;
            }
        }
    }
    r.poorly_constrained = flagged;
}

/// Number of poorly constrained pixels of a result.
#[must_use]
pub fn count(r: &MethodResult) -> usize {
    r.poorly_constrained.iter().filter(|&&x| x).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_smooth_variance_is_never_flagged_and_edge_blow_ups_are() {
        let n = 400;
        // Variance changing by a factor of 30 along the grid, a deep-line dip, a gap.
        let mut var: Vec<f64> = (0..n)
            .map(|l| 1.0 + 29.0 * l as f64 / n as f64 * (1.0 - 0.5 * ((l % 37) as f64 / 37.0)))
            .collect();
        let mut no_data = vec![false; n];
        for l in 190..210 {
            no_data[l] = true;
            var[l] = f64::NAN;
        }
        assert!(poorly_constrained(&var, &no_data).iter().all(|&f| !f));
        // A run of 12 blown-up pixels at the gap's left edge, growing outwards (as at a chip
        // gap), and one at the grid end.
        for (m, l) in (178..190).enumerate() {
            var[l] = 10.0 * 10f64.powi(m as i32);
        }
        var[n - 1] = 1e9;
        let f = poorly_constrained(&var, &no_data);
        // The neighbourhood's median variance is ~5-15 here, so 10 * 10^m passes 1e4 x that
        // from m = 4 or 5 on: pixels 182/183..190 and the end, nothing else.
        assert!((184..190).chain([n - 1]).all(|l| f[l]));
        assert!(
            (0..n)
                .filter(|&l| f[l])
                .all(|l| (180..190).contains(&l) || l == n - 1)
        );
    }
}
