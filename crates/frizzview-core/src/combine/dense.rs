//! A slow, obviously correct dense implementation of the paper's equations (the test oracle).
//!
//! For each problem of a [`fourier::Plan`] (same pixels, period, origin and P as the fast path) it
//! builds the real design matrix of the paper's basis, columns [1, cos u, .., cos mu, sin u, ..,
//! sin mu] evaluated with `cos`/`sin` (no recurrences), forms `A = X^T W X` and `b = X^T W y`,
//! factors A by a plainly written Cholesky decomposition and returns
//! `y* = X* A^-1 b` and the full `C* = X* A^-1 X*^T`. Memory and time are O(P^2) and
//! O(M P^2 + P^3): use it up to a few hundred modes.
//!
//! The fast path's ridge `r I` on the complex basis e^{iku} is `r diag(1, 1/2, .., 1/2)` on this
//! real basis (cos ku = (e^{iku} + e^{-iku}) / 2), so both solve the same problem.

// Index loops are the point here: the oracle reads like the equations.
#![allow(clippy::needless_range_loop)]

use super::fourier::{self, Plan, Segment};
use super::types::{CombineError, Prepared};
use crate::settings::ForwardSettings;

/// The dense answer on the whole output grid.
#[derive(Clone, Debug)]
pub struct DenseResult {
    /// y* (NaN in no-data pixels and outside every segment).
    pub flux: Vec<f64>,
    /// Full C* (row-major M* x M*; NaN in rows and columns of no-data pixels; 0 between segments).
    pub cov: Vec<Vec<f64>>,
    /// No-data mask (shared censoring rules).
    pub no_data: Vec<bool>,
    /// Propagated flags.
    pub flags: Vec<u64>,
}

fn design_row(u: f64, m: usize) -> Vec<f64> {
    let mut r = Vec::with_capacity(2 * m + 1);
    r.push(1.0);
    for k in 1..=m {
        r.push((k as f64 * u).cos());
    }
    for k in 1..=m {
        r.push((k as f64 * u).sin());
    }
    r
}

/// Lower-triangular Cholesky factor of a symmetric positive-definite matrix.
fn cholesky(a: &[Vec<f64>]) -> Result<Vec<Vec<f64>>, String> {
    let n = a.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = a[i][i] - s;
                if d.is_nan() || d <= 0.0 {
                    return Err(format!("pivot {i} is {d:.3e}"));
                }
                l[i][i] = d.sqrt();
            } else {
                l[i][j] = (a[i][j] - s) / l[j][j];
            }
        }
    }
    Ok(l)
}

/// Solve L L^T z = v.
fn cho_solve(l: &[Vec<f64>], v: &[f64]) -> Vec<f64> {
    let n = l.len();
    let mut y = vec![0.0; n];
    for i in 0..n {
        let s: f64 = (0..i).map(|k| l[i][k] * y[k]).sum();
        y[i] = (v[i] - s) / l[i][i];
    }
    let mut z = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| l[k][i] * z[k]).sum();
        z[i] = (y[i] - s) / l[i][i];
    }
    z
}

/// y* and full C* of one segment on its output pixels.
pub fn solve_segment(
    seg: &Segment,
    grid: &[f64],
) -> Result<(Vec<f64>, Vec<Vec<f64>>), CombineError> {
    let m = seg.m;
    let p = 2 * m + 1;
    let mut a = vec![vec![0.0; p]; p];
    let mut b = vec![0.0; p];
    for i in 0..seg.x.len() {
        let r = design_row(seg.phase(seg.x[i]), m);
        for j in 0..p {
            b[j] += r[j] * seg.wsy[i];
            let wr = r[j] * seg.ws2[i];
            for k in 0..=j {
                a[j][k] += wr * r[k];
            }
        }
    }
    for j in 0..p {
        for k in 0..j {
            a[k][j] = a[j][k];
        }
        a[j][j] += if j == 0 { seg.ridge } else { seg.ridge / 2.0 };
    }
    let l = cholesky(&a).map_err(|e| CombineError::Singular(format!("dense Cholesky: {e}")))?;
    let theta = cho_solve(&l, &b);
    let xs: Vec<Vec<f64>> = grid[seg.out.clone()]
        .iter()
        .map(|&x| design_row(seg.phase(x), m))
        .collect();
    let flux = xs
        .iter()
        .zip(&grid[seg.out.clone()])
        .map(|(r, &x)| r.iter().zip(&theta).map(|(a, t)| a * t).sum::<f64>() + seg.baseline_at(x))
        .collect();
    // Z = A^-1 X*^T, one column per output pixel; C* = X* Z.
    let z: Vec<Vec<f64>> = xs.iter().map(|r| cho_solve(&l, r)).collect();
    let cov = xs
        .iter()
        .map(|r| {
            z.iter()
                .map(|zc| r.iter().zip(zc).map(|(a, b)| a * b).sum())
                .collect()
        })
        .collect();
    Ok((flux, cov))
}

/// The dense solution of every problem in `plan`, assembled on the output grid.
pub fn solve_plan(plan: &Plan, grid: &[f64]) -> Result<DenseResult, CombineError> {
    let n = grid.len();
    let mut flux = vec![f64::NAN; n];
    let mut cov = vec![vec![0.0; n]; n];
    let mut covered = vec![false; n];
    for seg in &plan.segments {
        let (f, c) = solve_segment(seg, grid)?;
        for (i, j) in seg.out.clone().enumerate() {
            flux[j] = f[i];
            covered[j] = true;
            for (k, l) in seg.out.clone().enumerate() {
                cov[j][l] = c[i][k];
            }
        }
    }
    for j in 0..n {
        if plan.no_data[j] || !covered[j] {
            flux[j] = f64::NAN;
            for l in 0..n {
                cov[j][l] = f64::NAN;
                cov[l][j] = f64::NAN;
            }
        }
    }
    Ok(DenseResult {
        flux,
        cov,
        no_data: plan.no_data.clone(),
        flags: plan.flags.clone(),
    })
}

/// Dense forward model for a prepared combination (same plan as [`fourier::fit`]).
pub fn fit(prep: &Prepared, fs: &ForwardSettings) -> Result<DenseResult, CombineError> {
    let plan = fourier::plan(prep, fs)?;
    solve_plan(&plan, &prep.grid.ln_wave)
}
