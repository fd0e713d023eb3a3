//! Hermitian positive-definite Toeplitz systems: Levinson recursion, the Gohberg-Semencul
//! representation of the inverse, FFT matrix-vector products, sums along the inverse's
//! diagonals and a condition-number estimate. Nothing here builds an n x n matrix.
//!
//! Convention: `A[p][q] = t(q - p)` with `t[d]` given for d = 0..n and `t(-d) = conj(t[d])`.

use std::sync::Arc;

use rustfft::num_complex::Complex64;
use rustfft::{Fft, FftPlanner};

use crate::numeric::fast_len;

type C = Complex64;

fn zero() -> C {
    C::new(0.0, 0.0)
}

/// Linear convolutions of length-n vectors with a fixed set of FFT plans (size >= 2n).
struct Conv {
    n: usize,
    big: usize,
    fwd: Arc<dyn Fft<f64>>,
    inv: Arc<dyn Fft<f64>>,
}

impl Conv {
    fn new(n: usize) -> Self {
        let big = fast_len(2 * n).max(2);
        let mut pl = FftPlanner::new();
        Self {
            n,
            big,
            fwd: pl.plan_fft_forward(big),
            inv: pl.plan_fft_inverse(big),
        }
    }

    fn spectrum(&self, v: &[C]) -> Vec<C> {
        let mut b = vec![zero(); self.big];
        b[..v.len()].copy_from_slice(v);
        self.fwd.process(&mut b);
        b
    }

    /// First n entries of the linear convolution of the vector with spectrum `a_hat` and `v`.
    fn conv(&self, a_hat: &[C], v: &[C]) -> Vec<C> {
        let mut b = self.spectrum(v);
        for (x, a) in b.iter_mut().zip(a_hat) {
            *x *= a;
        }
        self.inv.process(&mut b);
        let s = 1.0 / self.big as f64;
        b[..self.n].iter().map(|x| x * s).collect()
    }

    /// `Corr(u, v)(d) = sum_p u_p conj(v_{p+d})` for d = -(n-1)..=(n-1) (index d + n - 1).
    fn corr(&self, u: &[C], v: &[C]) -> Vec<C> {
        let uh = self.spectrum(u);
        let vh = self.spectrum(v);
        let mut b: Vec<C> = uh.iter().zip(&vh).map(|(a, b)| a * b.conj()).collect();
        self.fwd.process(&mut b);
        let s = 1.0 / self.big as f64;
        let n = self.n as i64;
        (-(n - 1)..n)
            .map(|d| b[d.rem_euclid(self.big as i64) as usize] * s)
            .collect()
    }
}

/// A Hermitian Toeplitz matrix with FFT products.
pub struct Toeplitz {
    n: usize,
    t: Vec<C>,
    /// The spectrum of the circulant embedding (length `conv.big`).
    circ_hat: Vec<C>,
    conv: Conv,
}

impl Toeplitz {
    /// From the first row `t` (`t[0]` must be real).
    #[must_use]
    pub fn new(t: Vec<C>) -> Self {
        let n = t.len();
        let conv = Conv::new(n);
        let big = conv.big;
        // Circulant embedding: c[(p - q) mod big] = t(q - p).
        let mut c = vec![zero(); big];
        for s in 0..n {
            c[s] = t[s].conj();
            if s > 0 {
                c[big - s] = t[s];
            }
        }
        conv.fwd.process(&mut c);
        Self {
            n,
            t,
            circ_hat: c,
            conv,
        }
    }

    /// Size.
    #[must_use]
    pub fn len(&self) -> usize {
        self.n
    }

    /// True when empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The first row.
    #[must_use]
    pub fn first_row(&self) -> &[C] {
        &self.t
    }

    /// A v.
    #[must_use]
    pub fn matvec(&self, v: &[C]) -> Vec<C> {
        // The first n entries of the circulant product: a linear convolution with the embedding.
        self.conv.conv(&self.circ_hat, &v[..self.n])
    }
}

/// The first column of A^-1 by the Levinson-Durbin recursion, O(n^2).
///
/// Keeps the forward vector f (T_k f = e_0) and the backward vector b = J conj(f)
/// (T_k b = e_{k-1}) in split real/imaginary arrays so that both the inner product and the
/// update run forward over contiguous memory:
/// `eps = conj(sum_s t[s] b[s-1])`, `f' = a [f; 0] + beta [0; b]`, `b' = a [0; b] + conj(beta) [f; 0]`
/// with `a = 1 / (1 - |eps|^2)` and `beta = -a eps`.
/// Fails when a leading block is not positive definite (or numerically so).
pub fn levinson_first_column(t: &[C]) -> Result<Vec<C>, String> {
    let n = t.len();
    let t0 = t.first().map_or(0.0, |x| x.re);
    if !(t0 > 0.0 && t0.is_finite()) {
        return Err(format!("diagonal {t0} is not positive"));
    }
    let tr: Vec<f64> = t.iter().map(|z| z.re).collect();
    let ti: Vec<f64> = t.iter().map(|z| z.im).collect();
    let (mut fr, mut fi) = (vec![0.0; n], vec![0.0; n]);
    let (mut br, mut bi) = (vec![0.0; n], vec![0.0; n]);
    let (mut gr, mut gi) = (vec![0.0; n], vec![0.0; n]);
    let (mut hr, mut hi) = (vec![0.0; n], vec![0.0; n]);
    fr[0] = 1.0 / t0;
    br[0] = 1.0 / t0;
    for k in 1..n {
        // sum_{s=1..k} t[s] b[s-1], four independent accumulators for speed.
        let (a_r, a_i) = (&tr[1..=k], &ti[1..=k]);
        let (b_r, b_i) = (&br[..k], &bi[..k]);
        let mut acc = [0.0f64; 8];
        let chunks = k / 4;
        for c in 0..chunks {
            for l in 0..4 {
                let q = 4 * c + l;
                acc[l] += a_r[q] * b_r[q] - a_i[q] * b_i[q];
                acc[4 + l] += a_r[q] * b_i[q] + a_i[q] * b_r[q];
            }
        }
        for q in 4 * chunks..k {
            acc[0] += a_r[q] * b_r[q] - a_i[q] * b_i[q];
            acc[4] += a_r[q] * b_i[q] + a_i[q] * b_r[q];
        }
        let sr = (acc[0] + acc[1]) + (acc[2] + acc[3]);
        let si = (acc[4] + acc[5]) + (acc[6] + acc[7]);
        // eps = conj(s)
        let (er, ei) = (sr, -si);
        let denom = 1.0 - (er * er + ei * ei);
        if !(denom > 1e-15 && denom.is_finite()) {
            return Err(format!(
                "leading {}x{} block is not positive definite (1 - |reflection|^2 = {denom:.3e})",
                k + 1,
                k + 1
            ));
        }
        let al = 1.0 / denom;
        let (pr, pi) = (-er * al, -ei * al); // beta
        // f'_q = al f_q + beta b_{q-1};  b'_q = al b_{q-1} + conj(beta) f_q  (q = 0..=k)
        gr[0] = al * fr[0];
        gi[0] = al * fi[0];
        hr[0] = pr * fr[0] + pi * fi[0];
        hi[0] = pr * fi[0] - pi * fr[0];
        for q in 1..k {
            let (xr, xi, yr, yi) = (fr[q], fi[q], br[q - 1], bi[q - 1]);
            gr[q] = al * xr + pr * yr - pi * yi;
            gi[q] = al * xi + pr * yi + pi * yr;
            hr[q] = al * yr + pr * xr + pi * xi;
            hi[q] = al * yi + pr * xi - pi * xr;
        }
        let (yr, yi) = (br[k - 1], bi[k - 1]);
        gr[k] = pr * yr - pi * yi;
        gi[k] = pr * yi + pi * yr;
        hr[k] = al * yr;
        hi[k] = al * yi;
        std::mem::swap(&mut fr, &mut gr);
        std::mem::swap(&mut fi, &mut gi);
        std::mem::swap(&mut br, &mut hr);
        std::mem::swap(&mut bi, &mut hi);
    }
    Ok(fr.iter().zip(&fi).map(|(&r, &i)| C::new(r, i)).collect())
}

/// The Gohberg-Semencul form of A^-1 for a Hermitian positive-definite Toeplitz A:
/// `A^-1 = (L(a) L(a)^H - L(c) L(c)^H) / a_0` with a = A^-1 e_0, c = Z J conj(a), L(v) the
/// lower-triangular Toeplitz matrix with first column v.
pub struct InverseGs {
    n: usize,
    a0: f64,
    a: Vec<C>,
    c: Vec<C>,
    a_hat: Vec<C>,
    c_hat: Vec<C>,
    conv: Conv,
}

impl InverseGs {
    /// From the first column `a` of A^-1.
    #[must_use]
    pub fn new(a: Vec<C>) -> Self {
        let n = a.len();
        let a0 = a.first().map_or(f64::NAN, |x| x.re);
        let mut c = vec![zero(); n];
        for p in 1..n {
            c[p] = a[n - p].conj();
        }
        let conv = Conv::new(n);
        let a_hat = conv.spectrum(&a);
        let c_hat = conv.spectrum(&c);
        Self {
            n,
            a0,
            a,
            c,
            a_hat,
            c_hat,
            conv,
        }
    }

    /// Size.
    #[must_use]
    pub fn len(&self) -> usize {
        self.n
    }

    /// True when empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// a = A^-1 e_0, the first Gohberg-Semencul generator.
    #[must_use]
    pub fn first_column(&self) -> &[C] {
        &self.a
    }

    /// c = Z J conj(a), the second generator.
    #[must_use]
    pub fn second_generator(&self) -> &[C] {
        &self.c
    }

    /// a_0 = A^-1[0][0] (real, positive).
    #[must_use]
    pub fn a0(&self) -> f64 {
        self.a0
    }

    /// L(v)^H x = J conj(L(v) J conj(x)).
    fn lh(&self, v_hat: &[C], x: &[C]) -> Vec<C> {
        let jx: Vec<C> = x.iter().rev().map(|z| z.conj()).collect();
        let mut y = self.conv.conv(v_hat, &jx);
        y.reverse();
        y.iter_mut().for_each(|z| *z = z.conj());
        y
    }

    /// A^-1 x in O(n log n).
    #[must_use]
    pub fn apply(&self, x: &[C]) -> Vec<C> {
        let ya = self.conv.conv(&self.a_hat, &self.lh(&self.a_hat, x));
        let yc = self.conv.conv(&self.c_hat, &self.lh(&self.c_hat, x));
        ya.iter().zip(&yc).map(|(p, q)| (p - q) / self.a0).collect()
    }

    /// `D(d) = sum_p A^-1[p, p+d] exp(-i (p + d) delta)` for d = -(n-1)..=(n-1) (index d + n - 1),
    /// the phase-weighted sums along the diagonals of A^-1, from FFT correlations, O(n log n).
    #[must_use]
    pub fn diagonal_sums(&self, delta: f64) -> Vec<C> {
        let n = self.n;
        let part = |v: &[C]| -> Vec<C> {
            let plain = self.conv.corr(v, v);
            if delta == 0.0 {
                // weight n - max(p, p + d) = (n - max(0, d)) - p
                let pv: Vec<C> = v.iter().enumerate().map(|(p, z)| z * p as f64).collect();
                let lin = self.conv.corr(&pv, v);
                (0..2 * n - 1)
                    .map(|i| {
                        let d = i as i64 - (n as i64 - 1);
                        plain[i] * (n as i64 - d.max(0)) as f64 - lin[i]
                    })
                    .collect()
            } else {
                let vd: Vec<C> = v
                    .iter()
                    .enumerate()
                    .map(|(q, z)| z * C::from_polar(1.0, q as f64 * delta))
                    .collect();
                let tw = self.conv.corr(v, &vd);
                let en = C::from_polar(1.0, -(n as f64) * delta);
                let den = C::new(1.0, 0.0) - C::from_polar(1.0, -delta);
                (0..2 * n - 1)
                    .map(|i| {
                        let d = i as i64 - (n as i64 - 1);
                        let ph = C::from_polar(1.0, -(d.min(0) as f64) * delta);
                        (tw[i] - en * ph * plain[i]) / den
                    })
                    .collect()
            }
        };
        let pa = part(&self.a);
        let pc = part(&self.c);
        pa.iter().zip(&pc).map(|(x, y)| (x - y) / self.a0).collect()
    }
}

fn norm(v: &[C]) -> f64 {
    v.iter().map(C::norm_sqr).sum::<f64>().sqrt()
}

/// Estimate of the 2-norm condition number by power iteration on A and on A^-1
/// (a lower bound that is usually within a small factor after `iters` steps).
#[must_use]
pub fn condition_estimate(a: &Toeplitz, inv: &InverseGs, iters: usize) -> f64 {
    let n = a.len();
    let start: Vec<C> = (0..n)
        .map(|i| {
            C::new(
                1.0 + ((i * 7919) % 13) as f64 * 0.1,
                ((i * 104_729) % 7) as f64 * 0.1,
            )
        })
        .collect();
    let power = |op: &dyn Fn(&[C]) -> Vec<C>| -> f64 {
        let mut v = start.clone();
        let mut lam = 0.0;
        for _ in 0..iters {
            let nv = norm(&v);
            if nv == 0.0 || !nv.is_finite() {
                return f64::INFINITY;
            }
            v.iter_mut().for_each(|z| *z /= nv);
            let w = op(&v);
            lam = norm(&w);
            v = w;
        }
        lam
    };
    let lmax = power(&|v| a.matvec(v));
    let lmin_inv = power(&|v| inv.apply(v));
    lmax * lmin_inv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_hpd(n: usize) -> Vec<C> {
        // t(d) = sum_j w_j exp(i d u_j): a weighted DFT, positive definite for enough points.
        let pts: Vec<(f64, f64)> = (0..3 * n)
            .map(|i| {
                let r = ((i as f64 * 12.9898).sin() * 43_758.545_3).fract().abs();
                (r * std::f64::consts::TAU, 0.5 + r)
            })
            .collect();
        (0..n)
            .map(|d| {
                pts.iter()
                    .map(|&(u, w)| C::from_polar(w, d as f64 * u))
                    .sum()
            })
            .collect()
    }

    fn dense(t: &[C]) -> Vec<Vec<C>> {
        let n = t.len();
        (0..n)
            .map(|p| {
                (0..n)
                    .map(|q| if q >= p { t[q - p] } else { t[p - q].conj() })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn inverse_apply_and_diagonals_match_dense_products() {
        let n = 37;
        let t = random_hpd(n);
        let a = Toeplitz::new(t.clone());
        let inv = InverseGs::new(levinson_first_column(&t).expect("hpd"));
        // Columns of A^-1 through apply, checked by A (A^-1 e_k) = e_k with the dense A.
        let ad = dense(&t);
        let cols: Vec<Vec<C>> = (0..n)
            .map(|k| {
                let mut e = vec![zero(); n];
                e[k] = C::new(1.0, 0.0);
                inv.apply(&e)
            })
            .collect();
        for (k, col) in cols.iter().enumerate() {
            for (p, row) in ad.iter().enumerate() {
                let s: C = row.iter().zip(col).map(|(x, c)| x * c).sum();
                let want = if p == k { 1.0 } else { 0.0 };
                assert!((s - want).norm() < 1e-9, "row {p} col {k}: {s}");
            }
            let mv = a.matvec(col);
            assert!((mv[k] - 1.0).norm() < 1e-9);
        }
        // Diagonal sums against the explicit inverse (cols[q][p] = A^-1[p][q]).
        for &delta in &[0.0, 0.013, 0.4] {
            let d = inv.diagonal_sums(delta);
            for dd in -(n as i64 - 1)..n as i64 {
                let mut s = zero();
                for p in 0..n as i64 {
                    let q = p + dd;
                    if (0..n as i64).contains(&q) {
                        s += cols[q as usize][p as usize] * C::from_polar(1.0, -(q as f64) * delta);
                    }
                }
                let got = d[(dd + n as i64 - 1) as usize];
                assert!(
                    (got - s).norm() < 1e-9 * (1.0 + s.norm()),
                    "delta {delta} d {dd}: {got} vs {s}"
                );
            }
        }
    }
}
