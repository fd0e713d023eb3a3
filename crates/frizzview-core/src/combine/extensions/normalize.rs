//! Per-visit multiplicative normalization: a Legendre polynomial in observed ln(lambda).
//!
//! The model is bilinear (the paper's normalization extension, Hogg & Casey 2024,
//! arXiv:2403.11011 §5: multiply the model by a per-spectrum normalization): y_ik = n_i(x_ik) S_ik f(x_ik - dx_i) + noise with
//! n_i(x) = sum_d c_id L_d(t_i(x)), t_i mapping the visit's observed ln(lambda) span onto [-1, 1].
//! The polynomial lives in the observed frame because throughput, blaze and flux-calibration
//! errors are instrumental. One polynomial spans all of a visit's segments (chips): the tilts we
//! model are smooth over the whole visit; chip-to-chip jumps would need one per segment.
//!
//! f times a common smooth g and every n_i divided by g fit equally well, so the split needs a
//! constraint. We fix the *mean* polynomial over the included visits to 1: sum_i c_i = N e_0. The
//! combined spectrum then carries the visits' average normalization, like a plain co-add, rather
//! than one arbitrary visit's. The coefficient step solves the weighted least-squares problem of
//! all visits jointly under that linear constraint (a Lagrange multiplier couples the visits), so
//! the alternation is block coordinate descent on one constrained chi^2 and cannot drift.

/// Legendre polynomials L_0..=L_degree at `t` (Bonnet's recurrence).
#[must_use]
pub fn legendre(degree: usize, t: f64) -> Vec<f64> {
    let mut p = Vec::with_capacity(degree + 1);
    p.push(1.0);
    if degree >= 1 {
        p.push(t);
    }
    for n in 1..degree {
        let n_f = n as f64;
        let next = ((2.0 * n_f + 1.0) * t * p[n] - n_f * p[n - 1]) / (n_f + 1.0);
        p.push(next);
    }
    p
}

/// The map of a visit's observed ln(lambda) onto t in [-1, 1]: (centre, half-span).
#[must_use]
pub fn legendre_domain(ln_wave_obs: &[f64]) -> (f64, f64) {
    let lo = ln_wave_obs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ln_wave_obs
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let half = 0.5 * (hi - lo);
    (0.5 * (hi + lo), if half > 0.0 { half } else { 1.0 })
}

/// Solve the small dense system `a x = b` (row-major n x n) by Gaussian elimination with partial
/// pivoting; `None` when singular.
pub(crate) fn solve_small(mut a: Vec<f64>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    if a.len() != n * n {
        return None;
    }
    let scale = a.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    if !(scale > 0.0 && scale.is_finite()) {
        return None;
    }
    for col in 0..n {
        let pivot =
            (col..n).max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))?;
        if a[pivot * n + col].abs() <= 1e-14 * scale {
            return None;
        }
        if pivot != col {
            for k in 0..n {
                a.swap(pivot * n + k, col * n + k);
            }
            b.swap(pivot, col);
        }
        for row in col + 1..n {
            let factor = a[row * n + col] / a[col * n + col];
            if factor != 0.0 {
                for k in col..n {
                    a[row * n + k] -= factor * a[col * n + k];
                }
                b[row] -= factor * b[col];
            }
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let mut s = b[row];
        for k in row + 1..n {
            s -= a[row * n + k] * x[k];
        }
        x[row] = s / a[row * n + row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// One visit's normal equations for its polynomial coefficients: `a` (row-major) and `b`.
#[derive(Clone, Debug)]
pub(crate) struct NormalEquations {
    pub a: Vec<f64>,
    pub b: Vec<f64>,
}

impl NormalEquations {
    /// Accumulate sum w (p L_d)(p L_e) and sum w (p L_d) y over pixels, where p is the model
    /// prediction without the polynomial and `basis[k]` holds L_0..L_D at pixel k.
    pub fn assemble(basis: &[Vec<f64>], pred: &[f64], y: &[f64], w: &[f64], n_coef: usize) -> Self {
        let mut a = vec![0.0; n_coef * n_coef];
        let mut b = vec![0.0; n_coef];
        for k in 0..pred.len() {
            if !(w[k] > 0.0 && pred[k].is_finite()) {
                continue;
            }
            let l = &basis[k];
            for d in 0..n_coef {
                let rd = pred[k] * l[d];
                b[d] += w[k] * rd * y[k];
                for e in d..n_coef {
                    a[d * n_coef + e] += w[k] * rd * pred[k] * l[e];
                }
            }
        }
        for d in 0..n_coef {
            for e in 0..d {
                a[d * n_coef + e] = a[e * n_coef + d];
            }
        }
        // A whisper of ridge relative to the diagonal keeps nearly empty visits solvable.
        let diag_max = (0..n_coef).map(|d| a[d * n_coef + d]).fold(0.0, f64::max);
        for d in 0..n_coef {
            a[d * n_coef + d] += 1e-12 * diag_max;
        }
        Self { a, b }
    }

    /// A^-1 v.
    fn solve(&self, v: &[f64]) -> Option<Vec<f64>> {
        solve_small(self.a.clone(), v.to_vec())
    }
}

/// Coefficients minimising sum_i (c_i^T A_i c_i - 2 b_i^T c_i) subject to sum_i c_i = N e_0,
/// where N is the number of systems: c_i = A_i^-1 (b_i - lambda) with
/// (sum A_i^-1) lambda = sum A_i^-1 b_i - N e_0. `None` entries are singular visits (left out of
/// the constraint; the caller keeps their old coefficients).
pub(crate) fn constrained_coefficients(
    systems: &[Option<NormalEquations>],
    n_coef: usize,
) -> Vec<Option<Vec<f64>>> {
    // A_i^-1 as columns, and A_i^-1 b_i.
    let mut inv: Vec<Option<(Vec<f64>, Vec<f64>)>> = Vec::with_capacity(systems.len());
    for sys in systems {
        let entry = sys.as_ref().and_then(|s| {
            let mut cols = vec![0.0; n_coef * n_coef];
            for d in 0..n_coef {
                let mut e = vec![0.0; n_coef];
                e[d] = 1.0;
                let col = s.solve(&e)?;
                for (r, v) in col.iter().enumerate() {
                    cols[r * n_coef + d] = *v;
                }
            }
            let ab = s.solve(&s.b)?;
            Some((cols, ab))
        });
        inv.push(entry);
    }
    let n_ok = inv.iter().filter(|e| e.is_some()).count();
    if n_ok == 0 {
        return vec![None; systems.len()];
    }
    let mut sum_inv = vec![0.0; n_coef * n_coef];
    let mut rhs = vec![0.0; n_coef];
    for (cols, ab) in inv.iter().flatten() {
        for (s, c) in sum_inv.iter_mut().zip(cols) {
            *s += c;
        }
        for (r, v) in rhs.iter_mut().zip(ab) {
            *r += v;
        }
    }
    rhs[0] -= n_ok as f64;
    let Some(lambda) = solve_small(sum_inv, rhs) else {
        return vec![None; systems.len()];
    };
    inv.iter()
        .map(|e| {
            e.as_ref().map(|(cols, ab)| {
                (0..n_coef)
                    .map(|r| {
                        ab[r]
                            - (0..n_coef)
                                .map(|k| cols[r * n_coef + k] * lambda[k])
                                .sum::<f64>()
                    })
                    .collect()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legendre_matches_closed_forms() {
        let t = 0.37;
        let p = legendre(4, t);
        assert!((p[2] - 0.5 * (3.0 * t * t - 1.0)).abs() < 1e-15);
        assert!((p[3] - 0.5 * (5.0 * t * t * t - 3.0 * t)).abs() < 1e-15);
        assert!((p[4] - (35.0 * t.powi(4) - 30.0 * t * t + 3.0) / 8.0).abs() < 1e-15);
    }

    #[test]
    fn small_solve_inverts_a_known_system() {
        let a = vec![4.0, 1.0, 2.0, 1.0, 3.0, 0.5, 2.0, 0.5, 5.0];
        let x = [1.0, -2.0, 0.5];
        let b = (0..3)
            .map(|r| (0..3).map(|c| a[r * 3 + c] * x[c]).sum())
            .collect();
        let got = solve_small(a, b).expect("non-singular");
        for (g, e) in got.iter().zip(x) {
            assert!((g - e).abs() < 1e-12);
        }
        assert!(solve_small(vec![1.0, 2.0, 2.0, 4.0], vec![1.0, 1.0]).is_none());
    }

    #[test]
    fn constrained_solution_meets_the_constraint_and_is_optimal() {
        // Two 2x2 systems; brute-force the constrained optimum through the free parameter.
        let s1 = NormalEquations {
            a: vec![2.0, 0.3, 0.3, 1.0],
            b: vec![2.4, 0.1],
        };
        let s2 = NormalEquations {
            a: vec![1.5, -0.2, -0.2, 0.8],
            b: vec![1.2, -0.3],
        };
        let got = constrained_coefficients(&[Some(s1.clone()), Some(s2.clone())], 2);
        let c1 = got[0].clone().expect("solved");
        let c2 = got[1].clone().expect("solved");
        assert!((c1[0] + c2[0] - 2.0).abs() < 1e-12 && (c1[1] + c2[1]).abs() < 1e-12);
        let cost = |c1: &[f64], c2: &[f64]| {
            let q = |s: &NormalEquations, c: &[f64]| {
                let mut v = 0.0;
                for r in 0..2 {
                    for k in 0..2 {
                        v += c[r] * s.a[r * 2 + k] * c[k];
                    }
                    v -= 2.0 * s.b[r] * c[r];
                }
                v
            };
            q(&s1, c1) + q(&s2, c2)
        };
        let best = cost(&c1, &c2);
        for (da, db) in [(1e-3, 0.0), (0.0, 1e-3), (-1e-3, 2e-3)] {
            let p1 = [c1[0] + da, c1[1] + db];
            let p2 = [c2[0] - da, c2[1] - db];
            assert!(cost(&p1, &p2) > best);
        }
    }
}
