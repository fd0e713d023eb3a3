//! The dense inverse of a Hermitian positive-definite Toeplitz matrix and the dense output
//! covariance `C* = X* A^-1 X*^H` of the Fourier fit, from the Gohberg-Semencul generators, at
//! the cost of writing them.
//!
//! # The displacement equation
//! With a = A^-1 e_0 (Levinson) and c = Z J conj(a) (`c_0 = 0`, `c_p = conj(a_{P-p})`),
//! `M = A^-1 = (L(a) L(a)^H - L(c) L(c)^H) / a_0` ([`super::toeplitz::InverseGs`]). A
//! lower-triangular Toeplitz L(x) commutes with the down-shift Z and `I - Z Z^H = e_0 e_0^T`, so
//! `M - Z M Z^H = (a a^H - c c^H) / a_0`, i.e.
//! `M[i][j] = M[i-1][j-1] + (a_i conj(a_j) - c_i conj(c_j)) / a_0`:
//! every entry from its upper-left neighbour in O(1), the whole inverse in O(P^2) from its first
//! column (Trench's algorithm: W. F. Trench, J. SIAM 12 (1964) 515-522; Golub & Van Loan,
//! *Matrix Computations*, Algorithm 4.7.3). [`dense_inverse`].
//!
//! # The output covariance in O(1) per entry
//! The same equation for the generating function `G(z, w) = v(z)^T M conj(v(w))`,
//! `v(z) = (1, z, .., z^{P-1})`, is the Christoffel-Darboux formula of the polynomials
//! orthogonal on the unit circle:
//! `(1 - z conj(w)) G(z, w) = (â(z) conj(â(w)) - z conj(w) ã(z) conj(ã(w))) / a_0`
//! with `â(z) = sum_p a_p z^p` and `ã(z) = sum_p conj(a_{P-1-p}) z^p` (M's last column: a
//! Hermitian Toeplitz inverse is persymmetric up to conjugation). On the unit circle
//! `ã(z) = z^{P-1} conj(â(z))`. The Fourier fit's basis is e^{iku}, k = -m..=m (P = 2m + 1), so
//! `C*(u, v) = e^{-im(u-v)} G(e^{iu}, e^{iv})`, which simplifies to
//!
//! `C*(u, v) = Im(q(v) conj(q(u))) / (a_0 sin((u - v) / 2))`,
//! `q(u) = e^{-iu/2} sum_p a_p e^{i(p-m)u}`,
//!
//! and on the diagonal (the limit v -> u) `C*(u, u) = -2 Im(q'(u) conj(q(u))) / a_0`. The dense
//! C* on any output grid (uniform or not) therefore costs two type-2 NUFFTs (q and q') and a
//! rank-2 numerator over a rank-2 denominator per entry. [`dense_covariance`].
//!
//! Where the denominator is tiny (u ~ v mod 2 pi with u != v: frizzle's period is a hair longer
//! than the output span, so its first and last output pixels are nearly the same point of the
//! circle) the quotient loses digits to cancellation; those rows are recomputed column by column
//! (one Gohberg-Semencul product and one type-2 NUFFT each, [`covariance_by_columns`]).

use ndarray::{Array2, ArrayViewMut2, Axis};
use rayon::prelude::*;
use rustfft::num_complex::Complex64;

use super::nufft;
use super::toeplitz::InverseGs;

type C = Complex64;

/// Bound on the error of an entry of [`dense_covariance`] relative to `sqrt(C_jj C_ll)` from the
/// rounding of the denominator (about 2.5 eps / |sin((u - v)/2)|); rows with a larger bound are
/// recomputed column by column. Measured errors without any fallback (uniform grids of 301 and
/// 1001 pixels against [`covariance_by_columns`]): 1e-12 on the diagonal, 3e-13 at lag 1,
/// 6e-12 at frizzle's wrap (|sin| = 4e-5).
const TOL_DENOMINATOR: f64 = 1e-11;
/// The same from the numerator (rounding and the NUFFT's error in q).
const TOL_NUMERATOR: f64 = 1e-11;
/// Error of [`nufft::type2`] relative to the sum of |coefficients|: measured 2-3e-14 on the
/// inverse's first column (P = 299 and 999); its own tests assert 1e-12 on random coefficients.
const NUFFT_REL: f64 = 1e-13;

/// The dense A^-1 (row-major, P x P) by Trench's recursion on the displacement equation:
/// `M[i][j] = M[i-1][j-1] + (a_i conj(a_j) - c_i conj(c_j)) / a_0`, O(P^2).
#[must_use]
pub fn dense_inverse(inv: &InverseGs) -> Vec<C> {
    let a = inv.first_column();
    let c = inv.second_generator();
    let p = a.len();
    let a0 = inv.a0();
    let mut m = vec![C::new(0.0, 0.0); p * p];
    for i in 0..p {
        m[i * p] = a[i];
        m[i] = a[i].conj();
    }
    for i in 1..p {
        for j in 1..p {
            let d = (a[i] * a[j].conj() - c[i] * c[j].conj()) / a0;
            m[i * p + j] = m[(i - 1) * p + j - 1] + d;
        }
    }
    m
}

/// `C*[j][l] = X*[j] A^-1 X*[l]^H` with `X*[j]_k = e^{iku_j}`, k = -m..=m, one row at a time:
/// `A^-1 conj(X*[j])` by the Gohberg-Semencul product, then its series at every u (type-2 NUFFT);
/// symmetrised. O(n P log P): the reference for [`dense_covariance`] and its fallback.
#[must_use]
pub fn covariance_by_columns(inv: &InverseGs, u: &[f64]) -> Array2<f64> {
    let n = u.len();
    let mut c = Array2::<f64>::zeros((n, n));
    covariance_by_columns_into(inv, u, c.view_mut());
    c
}

/// [`covariance_by_columns`] into `c` (n x n; panics on another shape).
pub fn covariance_by_columns_into(inv: &InverseGs, u: &[f64], mut c: ArrayViewMut2<'_, f64>) {
    let n = u.len();
    assert_eq!(c.dim(), (n, n), "output shape");
    c.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(j, mut row)| {
            for (r, v) in row.iter_mut().zip(column(inv, u, u[j])) {
                *r = v;
            }
        });
    for j in 0..n {
        for l in j + 1..n {
            let s = 0.5 * (c[[j, l]] + c[[l, j]]);
            c[[j, l]] = s;
            c[[l, j]] = s;
        }
    }
}

/// `C*(u_l, uj)` for every l, through one Gohberg-Semencul product and one type-2 NUFFT.
fn column(inv: &InverseGs, u: &[f64], uj: f64) -> Vec<f64> {
    let m = (inv.len() / 2) as i64;
    let g: Vec<C> = (-m..=m)
        .map(|k| C::from_polar(1.0, -(k as f64) * uj))
        .collect();
    let col = inv.apply(&g);
    nufft::type2(&col, u).iter().map(|z| z.re).collect()
}

/// Diagnostics of [`dense_covariance`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DenseStats {
    /// Rows recomputed column by column because a denominator was too small.
    pub fallback_rows: usize,
}

/// The dense `C*` of a Fourier fit with P = 2m + 1 modes (`inv` = A^-1 of size P, P odd) at the
/// output phases `u` (any order, any spacing), by the Christoffel-Darboux form of the
/// Gohberg-Semencul inverse (module docs): O(P log P + n^2). Exactly symmetric. A new array
/// filled by [`dense_covariance_into`] (the frizzle drop-in writes into a buffer it keeps).
#[must_use]
pub fn dense_covariance(inv: &InverseGs, u: &[f64]) -> (Array2<f64>, DenseStats) {
    let n = u.len();
    let mut out = Array2::<f64>::zeros((n, n));
    let stats = dense_covariance_into(inv, u, out.view_mut());
    (out, stats)
}

/// What the closed form needs per output pixel, and the rows it cannot be trusted on.
struct ClosedForm {
    /// `(x_j, y_j, sin(u_j / 2), cos(u_j / 2))`, with q_j / sqrt(a_0) = x_j + i y_j: entry
    /// (j, l) = (x_j y_l - y_j x_l) / (s_j c_l - c_j s_l), exactly antisymmetric in numerator and
    /// denominator (so the matrix is exactly symmetric).
    pts: Vec<[f64; 4]>,
    /// The diagonal (the limit v -> u).
    diag: Vec<f64>,
    /// Rows recomputed column by column ([`suspect_rows`]).
    bad: Vec<usize>,
}

/// The closed form's ingredients (P odd, n and P > 0).
fn closed_form(inv: &InverseGs, u: &[f64]) -> ClosedForm {
    let p = inv.len();
    let m = (p / 2) as f64;
    let a = inv.first_column();
    let a0 = inv.a0();
    let da: Vec<C> = a
        .iter()
        .enumerate()
        .map(|(k, z)| z * C::new(0.0, k as f64 - m - 0.5))
        .collect();
    let half = |v: Vec<C>| -> Vec<C> {
        v.iter()
            .zip(u)
            .map(|(z, &uj)| z * C::from_polar(1.0, -0.5 * uj))
            .collect()
    };
    let (q, dq) = rayon::join(|| half(nufft::type2(a, u)), || half(nufft::type2(&da, u)));
    let sa: f64 = a.iter().map(|z| z.norm()).sum();
    let r = 1.0 / a0.sqrt();
    let pts: Vec<[f64; 4]> = q
        .iter()
        .zip(u)
        .map(|(z, &uj)| {
            let (s, c) = (0.5 * uj).sin_cos();
            [z.re * r, z.im * r, s, c]
        })
        .collect();
    let diag: Vec<f64> = q
        .iter()
        .zip(&dq)
        .map(|(z, dz)| -2.0 * (dz * z.conj()).im / a0)
        .collect();
    // Rows with an untrustworthy entry: near coincidences on the circle, or a variance that is
    // not positive (then no error bound holds).
    let eq = NUFFT_REL * sa;
    let qa: Vec<f64> = q.iter().map(|z| z.norm()).collect();
    let sig: Vec<f64> = diag.iter().map(|&d| d.max(0.0).sqrt()).collect();
    let bad = suspect_rows(u, &qa, &sig, eq, a0);
    ClosedForm { pts, diag, bad }
}

/// The diagonal and the rows recomputed column by column, over the closed form's entries.
fn finish(
    inv: &InverseGs,
    u: &[f64],
    cl: &ClosedForm,
    mut out: ArrayViewMut2<'_, f64>,
) -> DenseStats {
    let n = u.len();
    for (j, &d) in cl.diag.iter().enumerate() {
        out[[j, j]] = d;
    }
    let bad = &cl.bad;
    if !bad.is_empty() {
        let cols: Vec<Vec<f64>> = bad.par_iter().map(|&j| column(inv, u, u[j])).collect();
        let mut is_bad = vec![usize::MAX; n];
        for (i, &j) in bad.iter().enumerate() {
            is_bad[j] = i;
        }
        for (i, &j) in bad.iter().enumerate() {
            for l in 0..n {
                let v = match is_bad[l] {
                    usize::MAX => cols[i][l],
                    k => 0.5 * (cols[i][l] + cols[k][j]),
                };
                out[[j, l]] = v;
                out[[l, j]] = v;
            }
        }
    }
    DenseStats {
        fallback_rows: bad.len(),
    }
}

/// [`dense_covariance`] into `out` (n x n, e.g. a buffer the caller allocated; panics on
/// another shape).
pub fn dense_covariance_into(
    inv: &InverseGs,
    u: &[f64],
    mut out: ArrayViewMut2<'_, f64>,
) -> DenseStats {
    let n = u.len();
    let p = inv.len();
    assert_eq!(out.dim(), (n, n), "output shape");
    if n == 0 || p == 0 {
        out.fill(0.0);
        return DenseStats::default();
    }
    if p.is_multiple_of(2) {
        // The closed form needs P = 2m + 1 (a half-integer phase); never the case in a fit.
        covariance_by_columns_into(inv, u, out);
        return DenseStats { fallback_rows: n };
    }
    let cl = closed_form(inv, u);
    let pts = &cl.pts;
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(j, mut row)| {
            let [xj, yj, sj, cj] = pts[j];
            for (o, b) in row.iter_mut().zip(pts) {
                *o = (xj * b[1] - yj * b[0]) / (sj * b[3] - cj * b[2]);
            }
        });
    finish(inv, u, &cl, out)
}

/// Rows j with some l != j whose closed-form entry may miss the tolerances: the denominator
/// `|sin((u_j - u_l)/2)|` below `2.5 eps / TOL_DENOMINATOR` or below the numerator's error bound
/// `(e_q (|q_j| + |q_l|) + 2 eps |q_j| |q_l|) / (a_0 TOL_NUMERATOR sigma_j sigma_l)`.
/// Candidates are found as neighbours on the circle (u mod 2 pi sorted).
fn suspect_rows(u: &[f64], qa: &[f64], sig: &[f64], eq: f64, a0: f64) -> Vec<usize> {
    let n = u.len();
    let eps = f64::EPSILON;
    let d_min = 2.5 * eps / TOL_DENOMINATOR;
    let qmax = qa.iter().copied().fold(0.0, f64::max);
    let sig_min = sig.iter().copied().fold(f64::INFINITY, f64::min);
    let need = |j: usize, l: usize| -> f64 {
        let num = eq * (qa[j] + qa[l]) + 2.0 * eps * qa[j] * qa[l];
        d_min.max(num / (a0 * TOL_NUMERATOR * sig[j] * sig[l]))
    };
    let tau = std::f64::consts::TAU;
    let mut order: Vec<(f64, usize)> = u.iter().map(|&v| (v.rem_euclid(tau), 0)).collect();
    for (i, o) in order.iter_mut().enumerate() {
        o.1 = i;
    }
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut bad = vec![false; n];
    for (pos, &(phi, j)) in order.iter().enumerate() {
        if !(sig[j] > 0.0 && sig[j].is_finite() && qa[j].is_finite()) {
            bad[j] = true;
            continue;
        }
        let worst = {
            let num = eq * (qa[j] + qmax) + 2.0 * eps * qa[j] * qmax;
            d_min.max(num / (a0 * TOL_NUMERATOR * sig[j] * sig_min))
        };
        if !(worst < 0.5) {
            bad[j] = true;
            continue;
        }
        // Walk both ways around the circle while the chord could be below `worst`.
        for dir in [1usize, n - 1] {
            let mut k = (pos + dir) % n;
            let mut steps = 1;
            while steps < n {
                let (phl, l) = order[k];
                let mut d = (phl - phi).abs();
                d = d.min(tau - d);
                if (0.5 * d).sin() >= worst {
                    break;
                }
                let dl = (0.5 * (u[j] - u[l])).sin().abs();
                if l != j && dl < need(j, l) {
                    bad[j] = true;
                    bad[l] = true;
                }
                k = (k + dir) % n;
                steps += 1;
            }
        }
    }
    (0..n).filter(|&j| bad[j]).collect()
}

#[cfg(test)]
mod tests {
    use super::super::toeplitz::levinson_first_column;
    use super::*;

    fn pseudo(i: usize) -> f64 {
        ((i as f64 * 12.9898).sin() * 43_758.545_3).fract().abs()
    }

    /// The normal matrix of `n_pix` random pixels in the basis e^{iku}, |k| <= m: first row
    /// t(d) = sum_i w_i e^{i d u_i}, d = 0..2m.
    fn system(m: usize, n_pix: usize, spread: f64) -> InverseGs {
        let t = toeplitz_row(m, n_pix, spread, 10_000);
        InverseGs::new(levinson_first_column(&t).expect("positive definite"))
    }

    /// The first row t(d), d = 0..2m, of the system of `n_pix` pseudo-random points spread over
    /// `spread` radians, their weights drawn `seed` further along the sequence.
    fn toeplitz_row(m: usize, n_pix: usize, spread: f64, seed: usize) -> Vec<C> {
        let pts: Vec<(f64, f64)> = (0..n_pix)
            .map(|i| (pseudo(i) * spread, 0.5 + pseudo(i + seed)))
            .collect();
        (0..2 * m + 1)
            .map(|d| {
                pts.iter()
                    .map(|&(u, w)| C::from_polar(w, d as f64 * u))
                    .sum()
            })
            .collect()
    }

    /// `C*[j][l]` by explicit sums over the dense inverse.
    fn explicit(minv: &[C], p: usize, u: &[f64]) -> Vec<Vec<f64>> {
        let m = (p / 2) as f64;
        let xs: Vec<Vec<C>> = u
            .iter()
            .map(|&uj| {
                (0..p)
                    .map(|k| C::from_polar(1.0, (k as f64 - m) * uj))
                    .collect()
            })
            .collect();
        xs.iter()
            .map(|xj| {
                xs.iter()
                    .map(|xl| {
                        let mut s = C::new(0.0, 0.0);
                        for a in 0..p {
                            for b in 0..p {
                                s += xj[a] * minv[a * p + b] * xl[b].conj();
                            }
                        }
                        s.re
                    })
                    .collect()
            })
            .collect()
    }

    fn max_rel(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
        let n = a.nrows();
        let mut worst: f64 = 0.0;
        for j in 0..n {
            for l in 0..n {
                let scale = (b[[j, j]] * b[[l, l]]).sqrt();
                worst = worst.max((a[[j, l]] - b[[j, l]]).abs() / scale);
            }
        }
        worst
    }

    #[test]
    fn trench_inverse_times_the_matrix_is_the_identity() {
        let m = 12;
        let p = 2 * m + 1;
        let t = toeplitz_row(m, 80, 6.0, 7);
        let inv = InverseGs::new(levinson_first_column(&t).expect("hpd"));
        let minv = dense_inverse(&inv);
        for i in 0..p {
            for j in 0..p {
                let mut s = C::new(0.0, 0.0);
                for k in 0..p {
                    let aik = if k >= i { t[k - i] } else { t[i - k].conj() };
                    s += aik * minv[k * p + j];
                }
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((s - want).norm() < 1e-10, "(A M)[{i}][{j}] = {s}");
            }
        }
    }

    #[test]
    fn closed_form_matches_explicit_products_of_the_trench_inverse() {
        let m = 10;
        let p = 2 * m + 1;
        let inv = system(m, 90, 6.5);
        let minv = dense_inverse(&inv);
        // Uniform, non-uniform, unsorted, and two points closer than the fallback threshold.
        let mut u: Vec<f64> = (0..25).map(|j| 0.23 * j as f64 - 0.4).collect();
        u.extend([
            3.3,
            1.234,
            7.9,
            1.234 + 1e-9,
            -2.0 + std::f64::consts::TAU * 1e-7,
        ]);
        let (got, stats) = dense_covariance(&inv, &u);
        let want = explicit(&minv, p, &u);
        let n = u.len();
        assert!(stats.fallback_rows >= 2, "{stats:?}");
        for j in 0..n {
            for l in 0..n {
                let scale = (want[j][j] * want[l][l]).sqrt();
                let e = (got[[j, l]] - want[j][l]).abs() / scale;
                assert!(
                    e < 1e-10,
                    "C*[{j}][{l}] = {} vs {}",
                    got[[j, l]],
                    want[j][l]
                );
                assert_eq!(got[[j, l]], got[[l, j]]);
            }
        }
    }

    #[test]
    fn closed_form_matches_the_column_path_on_a_wrapping_uniform_grid() {
        // frizzle's layout: n output pixels, P = n - 1 modes (odd), phase step 2 pi (1 - small)
        // / (n - 1), so the first and last pixels are 2 pi small apart on the circle.
        let n = 301;
        let m = (n - 2) / 2;
        let inv = system(m, 3 * n, std::f64::consts::TAU);
        let small = 1.3e-5;
        let u: Vec<f64> = (0..n)
            .map(|j| j as f64 * std::f64::consts::TAU * (1.0 - small) / (n - 1) as f64)
            .collect();
        let (fast, stats) = dense_covariance(&inv, &u);
        let slow = covariance_by_columns(&inv, &u);
        let e = max_rel(&fast, &slow);
        assert!(e < 1e-10, "max relative difference {e:.3e}");
        assert!(
            stats.fallback_rows >= 2 && stats.fallback_rows < 10,
            "{stats:?}"
        );
        assert_eq!(fast, fast.t());
    }

    #[test]
    fn closed_form_matches_the_column_path_on_a_non_uniform_grid() {
        let m = 90;
        let inv = system(m, 500, std::f64::consts::TAU);
        let mut u: Vec<f64> = (0..220)
            .map(|j| 5.0 * (j as f64 / 219.0).powf(1.3) + 0.01 * pseudo(j + 3))
            .collect();
        u.sort_by(f64::total_cmp);
        let (fast, _) = dense_covariance(&inv, &u);
        let slow = covariance_by_columns(&inv, &u);
        let e = max_rel(&fast, &slow);
        assert!(e < 1e-10, "max relative difference {e:.3e}");
    }

    /// The owned and the into-a-buffer forms give the same bits whatever the buffer held (here
    /// NaN), fallback rows included (a wrapping grid has some), and an exactly symmetric matrix.
    #[test]
    fn owned_and_into_buffer_paths_are_identical() {
        let m = 60;
        let inv = system(m, 400, std::f64::consts::TAU);
        let n = 180;
        // First and last pixel 2e-6 rad apart on the circle: below the denominator bound.
        let span = std::f64::consts::TAU * (1.0 - 3e-7);
        let u: Vec<f64> = (0..n).map(|j| span * j as f64 / (n - 1) as f64).collect();
        let (a, sa) = dense_covariance(&inv, &u);
        let mut b = Array2::<f64>::from_elem((n, n), f64::NAN);
        let sb = dense_covariance_into(&inv, &u, b.view_mut());
        assert_eq!(sa, sb);
        assert!(sa.fallback_rows > 0, "the wrap gives fallback rows");
        for (x, y) in a.iter().zip(b.iter()) {
            assert_eq!(x.to_bits(), y.to_bits());
        }
        for j in 0..n {
            for l in 0..n {
                assert_eq!(a[[j, l]].to_bits(), a[[l, j]].to_bits());
            }
        }
    }
}
