//! Non-uniform FFTs (type 1 and type 2) with Gaussian gridding (Greengard & Lee 2004).
//!
//! Positions u are in radians (any real value; everything is 2-pi periodic). The Gaussian
//! kernel's Fourier transform is known exactly, so the deconvolution is exact and the only error
//! is the truncation of the kernel and aliasing, both ~1e-13 relative to the sum of |strengths|
//! with oversampling 2 and a 2 x 14 point spread.
//!
//! Spreading is done in fixed-size blocks of points summed in a fixed order, so results do not
//! depend on the number of rayon threads.

use rayon::prelude::*;
use rustfft::FftPlanner;
use rustfft::num_complex::Complex64;

use crate::numeric::fast_len;

/// Half-width of the spreading stencil in fine-grid points.
const SPREAD: i64 = 14;
/// Points per spreading block (the unit of parallel work).
const BLOCK: usize = 32_768;

/// Fine-grid parameters for modes |k| <= kmax.
struct Grid {
    /// Fine grid size.
    n: usize,
    /// Gaussian width parameter tau (kernel exp(-s^2 / (4 tau))).
    tau: f64,
    /// Fine-grid step 2 pi / n.
    h: f64,
    /// exp(-(q h)^2 / (4 tau)) for q = 0..=SPREAD.
    e3: Vec<f64>,
}

impl Grid {
    fn new(kmax: usize) -> Self {
        let modes = 2 * kmax + 2;
        let n = fast_len(2 * modes).max(2 * SPREAD as usize + 2);
        let r = n as f64 / modes as f64;
        let tau = std::f64::consts::PI * SPREAD as f64 / ((modes * modes) as f64 * r * (r - 0.5));
        let h = std::f64::consts::TAU / n as f64;
        let e3 = (0..=SPREAD)
            .map(|q| {
                let s = q as f64 * h;
                (-s * s / (4.0 * tau)).exp()
            })
            .collect();
        Self { n, tau, h, e3 }
    }

    /// The first fine-grid index of the stencil and the 2 SPREAD weights of position `u`.
    fn weights(&self, u: f64, wts: &mut [f64; 2 * SPREAD as usize]) -> i64 {
        let um = u.rem_euclid(std::f64::consts::TAU);
        let l0 = (um / self.h).floor();
        let d0 = um - l0 * self.h;
        // exp(-(q h - d0)^2 / 4 tau) = exp(-d0^2/4tau) exp(q h d0 / 2 tau) exp(-q^2 h^2 / 4 tau)
        let e1 = (-d0 * d0 / (4.0 * self.tau)).exp();
        let e2 = (d0 * self.h / (2.0 * self.tau)).exp();
        let e2i = 1.0 / e2;
        // q = 0..SPREAD (index SPREAD-1+q) and q = -1..-(SPREAD-1) (index SPREAD-1+q).
        let c = (SPREAD - 1) as usize;
        let mut p = e1;
        for q in 0..=SPREAD as usize {
            wts[c + q] = p * self.e3[q];
            p *= e2;
        }
        let mut p = e1 * e2i;
        for q in 1..SPREAD as usize {
            wts[c - q] = p * self.e3[q];
            p *= e2i;
        }
        l0 as i64 - (SPREAD - 1)
    }
}

/// Type 1: F(k) = sum_j c_j exp(i k u_j) for k = -kmax..=kmax (returned at index k + kmax).
#[must_use]
pub fn type1(u: &[f64], c: &[f64], kmax: usize) -> Vec<Complex64> {
    let g = Grid::new(kmax);
    let n = g.n;
    let blocks: Vec<Vec<f64>> = u
        .par_chunks(BLOCK)
        .zip(c.par_chunks(BLOCK))
        .map(|(ub, cb)| {
            let mut fine = vec![0.0; n];
            let mut wts = [0.0; 2 * SPREAD as usize];
            for (&uj, &cj) in ub.iter().zip(cb) {
                if cj == 0.0 {
                    continue;
                }
                let l0 = g.weights(uj, &mut wts);
                for (q, w) in wts.iter().enumerate() {
                    let l = (l0 + q as i64).rem_euclid(n as i64) as usize;
                    fine[l] += cj * w;
                }
            }
            fine
        })
        .collect();
    let mut buf = vec![Complex64::new(0.0, 0.0); n];
    for b in &blocks {
        for (o, v) in buf.iter_mut().zip(b) {
            o.re += v;
        }
    }
    let fft = FftPlanner::new().plan_fft_inverse(n);
    fft.process(&mut buf);
    let norm = g.h / (4.0 * std::f64::consts::PI * g.tau).sqrt();
    let km = kmax as i64;
    (-km..=km)
        .map(|k| {
            let v = buf[k.rem_euclid(n as i64) as usize];
            v * (norm * ((k * k) as f64 * g.tau).exp())
        })
        .collect()
}

/// Type 1 of two real strength vectors at once (one spreading pass with complex strengths
/// `a + i b`): returns (A(k), B(k)) with `A(k) = sum_j a_j exp(i k u_j)` for |k| <= `kmax_a` and
/// B likewise for |k| <= `kmax_b` (both indexed k + kmax).
#[must_use]
pub fn type1_pair(
    u: &[f64],
    a: &[f64],
    kmax_a: usize,
    b: &[f64],
    kmax_b: usize,
) -> (Vec<Complex64>, Vec<Complex64>) {
    let kmax = kmax_a.max(kmax_b);
    let g = Grid::new(kmax);
    let n = g.n;
    let blocks: Vec<Vec<Complex64>> = u
        .par_chunks(BLOCK)
        .zip(a.par_chunks(BLOCK).zip(b.par_chunks(BLOCK)))
        .map(|(ub, (ab, bb))| {
            let mut fine = vec![Complex64::new(0.0, 0.0); n];
            let mut wts = [0.0; 2 * SPREAD as usize];
            for ((&uj, &aj), &bj) in ub.iter().zip(ab).zip(bb) {
                if aj == 0.0 && bj == 0.0 {
                    continue;
                }
                let l0 = g.weights(uj, &mut wts);
                let start = l0.rem_euclid(n as i64) as usize;
                if start + wts.len() <= n {
                    for (f, w) in fine[start..start + wts.len()].iter_mut().zip(&wts) {
                        f.re += aj * w;
                        f.im += bj * w;
                    }
                } else {
                    for (q, w) in wts.iter().enumerate() {
                        let f = &mut fine[(start + q) % n];
                        f.re += aj * w;
                        f.im += bj * w;
                    }
                }
            }
            fine
        })
        .collect();
    let mut buf = vec![Complex64::new(0.0, 0.0); n];
    for bl in &blocks {
        for (o, v) in buf.iter_mut().zip(bl) {
            *o += v;
        }
    }
    let fft = FftPlanner::new().plan_fft_inverse(n);
    fft.process(&mut buf);
    let norm = g.h / (4.0 * std::f64::consts::PI * g.tau).sqrt();
    let at = |k: i64| -> (Complex64, Complex64) {
        let f = buf[k.rem_euclid(n as i64) as usize] * (norm * ((k * k) as f64 * g.tau).exp());
        let fm = buf[(-k).rem_euclid(n as i64) as usize] * (norm * ((k * k) as f64 * g.tau).exp());
        // F(k) = A(k) + i B(k) with A(-k) = conj A(k), B(-k) = conj B(k).
        let fmc = fm.conj();
        ((f + fmc) * 0.5, (f - fmc) * Complex64::new(0.0, -0.5))
    };
    let ka = kmax_a as i64;
    let kb = kmax_b as i64;
    let av = (-ka..=ka).map(|k| at(k).0).collect();
    let bv = (-kb..=kb).map(|k| at(k).1).collect();
    (av, bv)
}

/// Type 2: f(u_j) = sum_{k=-kmax..=kmax} c[k + kmax] exp(i k u_j).
#[must_use]
pub fn type2(c: &[Complex64], u: &[f64]) -> Vec<Complex64> {
    let kmax = c.len().saturating_sub(1) / 2;
    let g = Grid::new(kmax);
    let n = g.n;
    let mut buf = vec![Complex64::new(0.0, 0.0); n];
    let norm = 1.0 / (4.0 * std::f64::consts::PI * g.tau).sqrt();
    for (i, ck) in c.iter().enumerate() {
        let k = i as i64 - kmax as i64;
        buf[k.rem_euclid(n as i64) as usize] = ck * (norm * ((k * k) as f64 * g.tau).exp());
    }
    let fft = FftPlanner::new().plan_fft_inverse(n);
    fft.process(&mut buf);
    u.par_iter()
        .map(|&uj| {
            let mut wts = [0.0; 2 * SPREAD as usize];
            let l0 = g.weights(uj, &mut wts);
            let mut s = Complex64::new(0.0, 0.0);
            for (q, w) in wts.iter().enumerate() {
                let l = (l0 + q as i64).rem_euclid(n as i64) as usize;
                s += buf[l] * w;
            }
            s * g.h
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo(i: usize) -> f64 {
        ((i as f64 * 12.9898).sin() * 43_758.545_3).fract()
    }

    #[test]
    fn type1_matches_direct_sum() {
        let m = 300;
        let u: Vec<f64> = (0..m).map(|i| pseudo(i) * 20.0 - 3.0).collect();
        let c: Vec<f64> = (0..m).map(|i| pseudo(i + 7777) + 0.5).collect();
        let kmax = 123;
        let f = type1(&u, &c, kmax);
        let scale: f64 = c.iter().map(|x| x.abs()).sum();
        for (i, fk) in f.iter().enumerate() {
            let k = i as f64 - kmax as f64;
            let d: Complex64 = u
                .iter()
                .zip(&c)
                .map(|(&x, &cj)| Complex64::from_polar(cj, k * x))
                .sum();
            assert!((fk - d).norm() < 1e-12 * scale, "k {k}: {fk} vs {d}");
        }
    }

    #[test]
    fn type1_pair_matches_two_single_transforms() {
        let u: Vec<f64> = (0..500).map(|i| pseudo(i) * 7.0).collect();
        let a: Vec<f64> = (0..500).map(|i| pseudo(i + 1) + 0.2).collect();
        let b: Vec<f64> = (0..500).map(|i| pseudo(i + 3) - 0.5).collect();
        let (pa, pb) = type1_pair(&u, &a, 60, &b, 30);
        let (sa, sb) = (type1(&u, &a, 60), type1(&u, &b, 30));
        let scale: f64 = a.iter().chain(&b).map(|x| x.abs()).sum();
        for (x, y) in pa.iter().zip(&sa).chain(pb.iter().zip(&sb)) {
            assert!((x - y).norm() < 1e-12 * scale, "{x} vs {y}");
        }
        assert_eq!((pa.len(), pb.len()), (121, 61));
    }

    #[test]
    fn type2_matches_direct_sum() {
        let kmax = 77;
        let c: Vec<Complex64> = (0..2 * kmax + 1)
            .map(|i| Complex64::new(pseudo(i) - 0.5, pseudo(i + 99) - 0.5))
            .collect();
        let u: Vec<f64> = (0..200).map(|i| pseudo(i + 5) * 9.0 - 2.0).collect();
        let f = type2(&c, &u);
        let scale: f64 = c.iter().map(|x| x.norm()).sum();
        for (fj, &uj) in f.iter().zip(&u) {
            let d: Complex64 = c
                .iter()
                .enumerate()
                .map(|(i, ck)| ck * Complex64::from_polar(1.0, (i as f64 - kmax as f64) * uj))
                .sum();
            assert!((fj - d).norm() < 1e-12 * scale, "{fj} vs {d}");
        }
    }
}
