//! The APOGEE pipeline's "pixel-by-pixel weighted" combination (apStar row 0), for
//! [`Weighting::ApogeePipeline`](crate::settings::Weighting::ApogeePipeline).
//!
//! What the pipeline does (`apvisitcomb.pro`, the DR13-era IDL; `docs/correctness.md` has the
//! measurement): each visit, resampled onto the rest-frame grid, is divided by its continuum
//! `c_v` (a 501-pixel running median of its good pixels, smoothed by a 101-pixel boxcar, over the
//! whole resampled spectrum); the normalised visits are averaged with inverse-variance weights
//! (their errors divided by `c_v` too); the mean is multiplied by the visits' mean continuum
//! `A`. Row 0 is therefore `A sum(f_v c_v / s_v^2) / sum(c_v^2 / s_v^2)`: a visit counts by its
//! S/N, not by its raw inverse variance (a raw inverse-variance mean weights a brighter visit,
//! whose Poisson variance is larger, down).
//!
//! Here each piece is rescaled by `A / c_v` (values, variances and covariances) before the usual
//! inverse-variance average, which gives exactly that mean, and the variance of it the pipeline
//! states (`A^2 / sum(c_v^2 / s_v^2)`), with the covariance band propagated as for any linear
//! operation (the continua held fixed).
//!
//! Which pixels count, as the DR13 apStar files show: rebuilding their row 0 from their own
//! resampled visits (rows 2..) with this formula reproduces it to 1e-5 (median relative
//! difference) on the 3- and 15-visit stars of `apogee_multistar` only when sky-line pixels
//! (SIG_SKYLINE) keep their plain errors and persistence-flagged pixels (PERSIST_HIGH/MED/LOW)
//! are left out where another visit covers the pixel without persistence. So this flavour does
//! not apply the pixel policy's sigma inflation (the SDSS-V pipeline's x10 for sky lines, which
//! its later row 0 uses): it applies those two rules instead.

use std::sync::Arc;

use rayon::prelude::*;

use super::pieces::Piece;

/// Half-width of the continuum's running median (the pipeline's `medfilt1d(.., 501)`).
const MEDIAN_HALF: usize = 250;
/// Half-width of the boxcar smoothing the running median (IDL `smooth(.., 100)`, which uses an
/// odd width of 101).
const BOXCAR_HALF: usize = 50;
/// APOGEE_PIXMASK PERSIST_HIGH, PERSIST_MED, PERSIST_LOW (bits 9, 10, 11).
const PERSIST_BITS: u64 = (1 << 9) | (1 << 10) | (1 << 11);

/// Running median over +-`half` of the finite values (NaN where the window has none); the upper
/// median for an even count, as IDL's `median` without `/even`.
fn running_median(y: &[f64], half: usize) -> Vec<f64> {
    let n = y.len();
    let mut window: Vec<f64> = Vec::new();
    let insert = |w: &mut Vec<f64>, v: f64| {
        let at = w.partition_point(|x| x.total_cmp(&v).is_lt());
        w.insert(at, v);
    };
    let remove = |w: &mut Vec<f64>, v: f64| {
        let at = w.partition_point(|x| x.total_cmp(&v).is_lt());
        if at < w.len() {
            w.remove(at);
        }
    };
    for &v in y.iter().take(half.min(n)) {
        if v.is_finite() {
            insert(&mut window, v);
        }
    }
    (0..n)
        .map(|i| {
            if let Some(&v) = y.get(i + half)
                && v.is_finite()
            {
                insert(&mut window, v);
            }
            if i > half
                && let Some(&v) = y.get(i - half - 1)
                && v.is_finite()
            {
                remove(&mut window, v);
            }
            window.get(window.len() / 2).copied().unwrap_or(f64::NAN)
        })
        .collect()
}

/// Mean over +-`half` of the finite values (NaN where none), truncated at the ends.
fn boxcar(y: &[f64], half: usize) -> Vec<f64> {
    let n = y.len();
    let mut sum = vec![0.0; n + 1];
    let mut count = vec![0usize; n + 1];
    for (i, &v) in y.iter().enumerate() {
        let ok = v.is_finite();
        sum[i + 1] = sum[i] + if ok { v } else { 0.0 };
        count[i + 1] = count[i] + usize::from(ok);
    }
    (0..n)
        .map(|i| {
            let (a, b) = (i.saturating_sub(half), (i + half + 1).min(n));
            let k = count[b] - count[a];
            if k == 0 {
                f64::NAN
            } else {
                (sum[b] - sum[a]) / k as f64
            }
        })
        .collect()
}

/// A visit's continuum on the `m` output pixels from its pieces' valid values: the pipeline's
/// running median of 501 pixels smoothed by a 101-pixel boxcar.
fn visit_continuum<'a>(pieces: impl Iterator<Item = &'a Piece>, m: usize) -> Vec<f64> {
    let mut y = vec![f64::NAN; m];
    for p in pieces {
        for (i, (&v, &ok)) in p.value.iter().zip(&p.valid).enumerate() {
            if ok && v.is_finite() && p.l0 + i < m {
                y[p.l0 + i] = v;
            }
        }
    }
    boxcar(&running_median(&y, MEDIAN_HALF), BOXCAR_HALF)
}

/// The flags a piece propagated to its output pixel `i` (0 outside its flag range).
fn flags_at(p: &Piece, i: usize) -> u64 {
    (p.l0 + i)
        .checked_sub(p.flag_l0)
        .and_then(|j| p.flags.get(j))
        .copied()
        .unwrap_or(0)
}

/// The pieces (each with its visit's weight multiplier and its visit's index) rescaled to the
/// mean continuum (see the module documentation), ready for the inverse-variance average;
/// pixels without a continuum, and persistence pixels another visit covers cleanly, invalid.
pub(super) fn to_mean_continuum(
    pieces: Vec<(Arc<Piece>, f64, usize)>,
    m: usize,
) -> Vec<(Arc<Piece>, f64)> {
    let mut visits: Vec<usize> = pieces.iter().map(|(_, _, v)| *v).collect();
    visits.sort_unstable();
    visits.dedup();
    // One continuum per visit, in parallel (each a sliding median over the whole grid).
    let continua: Vec<Vec<f64>> = visits
        .par_iter()
        .map(|&v| {
            visit_continuum(
                pieces
                    .iter()
                    .filter(|(_, _, pv)| *pv == v)
                    .map(|(p, _, _)| p.as_ref()),
                m,
            )
        })
        .collect();
    // The visits' mean continuum where finite.
    let mean: Vec<f64> = (0..m)
        .map(|l| {
            let (s, k) = continua
                .iter()
                .map(|c| c[l])
                .filter(|c| c.is_finite())
                .fold((0.0, 0usize), |(s, k), c| (s + c, k + 1));
            if k == 0 { f64::NAN } else { s / k as f64 }
        })
        .collect();
    // Output pixels some visit covers without a persistence flag.
    let mut clean = vec![false; m];
    for (p, _, _) in &pieces {
        for (i, &ok) in p.valid.iter().enumerate() {
            if ok && flags_at(p, i) & PERSIST_BITS == 0 && p.l0 + i < m {
                clean[p.l0 + i] = true;
            }
        }
    }
    pieces
        .into_iter()
        .map(|(p, w, v)| {
            let c = visits.binary_search(&v).ok().and_then(|k| continua.get(k));
            let scale: Vec<f64> = (0..p.value.len())
                .map(|i| {
                    let l = p.l0 + i;
                    let (a, cv) = (
                        mean.get(l).copied().unwrap_or(f64::NAN),
                        c.and_then(|c| c.get(l)).copied().unwrap_or(f64::NAN),
                    );
                    if a.is_finite() && cv.is_finite() && cv > 0.0 {
                        a / cv
                    } else {
                        f64::NAN
                    }
                })
                .collect();
            let valid = (0..p.value.len())
                .map(|i| {
                    let persist = flags_at(&p, i) & PERSIST_BITS != 0;
                    let covered = clean.get(p.l0 + i).copied().unwrap_or(false);
                    p.valid[i] && scale[i].is_finite() && !(persist && covered)
                })
                .collect();
            let s = |i: usize| {
                scale
                    .get(i)
                    .copied()
                    .filter(|x| x.is_finite())
                    .unwrap_or(0.0)
            };
            let piece = Piece {
                l0: p.l0,
                value: p.value.iter().enumerate().map(|(i, y)| y * s(i)).collect(),
                var: p
                    .var
                    .iter()
                    .enumerate()
                    .map(|(i, x)| x * s(i) * s(i))
                    .collect(),
                valid,
                cov: p
                    .cov
                    .iter()
                    .enumerate()
                    .map(|(km1, row)| {
                        row.iter()
                            .enumerate()
                            .map(|(i, x)| x * s(i) * s(i + km1 + 1))
                            .collect()
                    })
                    .collect(),
                flag_l0: p.flag_l0,
                flags: p.flags.clone(),
            };
            (Arc::new(piece), w)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sliding median against a direct sort of every window.
    #[test]
    fn running_median_is_the_median_of_each_window() {
        let y: Vec<f64> = (0..400)
            .map(|i| {
                if i % 17 == 3 {
                    f64::NAN
                } else {
                    ((i * 7919) % 101) as f64 + 0.5 * (i as f64).sin()
                }
            })
            .collect();
        for half in [0, 1, 5, 50, 250] {
            let got = running_median(&y, half);
            for i in 0..y.len() {
                let mut w: Vec<f64> = y[i.saturating_sub(half)..(i + half + 1).min(y.len())]
                    .iter()
                    .copied()
                    .filter(|x| x.is_finite())
                    .collect();
                w.sort_by(f64::total_cmp);
                match w.get(w.len() / 2) {
                    Some(&want) => assert_eq!(got[i], want, "half {half}, pixel {i}"),
                    None => assert!(got[i].is_nan(), "half {half}, pixel {i}: empty window"),
                }
            }
        }
    }

    #[test]
    fn boxcar_is_the_mean_of_the_finite_values_in_each_window() {
        let y = [1.0, f64::NAN, 3.0, 4.0, f64::NAN, f64::NAN, f64::NAN, 8.0];
        let got = boxcar(&y, 1);
        let want = [1.0, 2.0, 3.5, 3.5, 4.0, f64::NAN, 8.0, 8.0];
        for (g, w) in got.iter().zip(want) {
            assert!(g == &w || (g.is_nan() && w.is_nan()), "{got:?}");
        }
    }

    fn piece(l0: usize, value: Vec<f64>, var: Vec<f64>, flags: Vec<u64>) -> Arc<Piece> {
        let n = value.len();
        Arc::new(Piece {
            l0,
            valid: vec![true; n],
            cov: vec![vec![0.0; n]],
            value,
            var,
            flag_l0: l0,
            flags,
        })
    }

    /// Two flat visits of continua 1 and 3 (the second has 9 times the variance, so the same
    /// S/N): the pipeline's row 0 weights them equally, A (f1/c1 + f2/c2) / 2 with A = 2; a
    /// persistence pixel of one visit is left out where the other covers it cleanly.
    #[test]
    fn rescaled_pieces_give_the_pipelines_mean() {
        let m = 40;
        let y1: Vec<f64> = (0..m).map(|i| if i == 20 { 0.5 } else { 1.0 }).collect();
        let y2: Vec<f64> = (0..m).map(|i| if i == 20 { 2.4 } else { 3.0 }).collect();
        let mut f2 = vec![0u64; m];
        f2[10] = 1 << 10;
        let out = to_mean_continuum(
            vec![
                (piece(0, y1, vec![0.01; m], vec![0; m]), 1.0, 0),
                (piece(0, y2, vec![0.09; m], f2), 1.0, 1),
            ],
            m,
        );
        let (p1, p2) = (&out[0].0, &out[1].0);
        // Both rescaled to A = 2: equal variances, so equal inverse-variance weights.
        assert!((p1.value[0] - 2.0).abs() < 1e-12 && (p2.value[0] - 2.0).abs() < 1e-12);
        assert!((p1.var[0] - 0.04).abs() < 1e-12 && (p2.var[0] - 0.04).abs() < 1e-12);
        assert!((p1.value[20] - 1.0).abs() < 1e-12 && (p2.value[20] - 1.6).abs() < 1e-12);
        assert!(p1.valid[10] && !p2.valid[10] && p2.valid[11]);
    }
}
