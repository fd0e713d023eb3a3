//! 2-D non-uniform FFTs (type 1 and type 2) with separable Gaussian gridding (Greengard & Lee
//! 2004), the 2-D sibling of `combine::fourier::nufft`.
//!
//! Positions are in radians (2-pi periodic on both axes). Mode arrays are row-major
//! `[(ky + kmax_y) * (2 kmax_x + 1) + (kx + kmax_x)]`. The Gaussian's Fourier transform is known
//! exactly, so the only errors are kernel truncation and aliasing, ~1e-11 relative to the sum of
//! |strengths| with oversampling 2 and a 2 x 12 point stencil per axis.
//!
//! Spreading uses a fixed number of partial grids summed in a fixed order, so results do not
//! depend on the number of rayon threads.

use rayon::prelude::*;
use rustfft::FftPlanner;
pub use rustfft::num_complex::Complex64;

/// Half-width of the spreading stencil in fine-grid points.
const SPREAD: i64 = 12;
const W: usize = 2 * SPREAD as usize;
/// Number of partial fine grids spread in parallel (fixed for determinism and memory).
const PARTS: usize = 2;

/// One axis's fine-grid parameters for modes |k| <= kmax.
struct Axis {
    n: usize,
    tau: f64,
    h: f64,
    e3: Vec<f64>,
}

impl Axis {
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

    /// First fine-grid index (may be negative) and the W weights of position `u`.
    fn weights(&self, u: f64, wts: &mut [f64; W]) -> i64 {
        let um = u.rem_euclid(std::f64::consts::TAU);
        let l0 = (um / self.h).floor();
        let d0 = um - l0 * self.h;
        let e1 = (-d0 * d0 / (4.0 * self.tau)).exp();
        let e2 = (d0 * self.h / (2.0 * self.tau)).exp();
        let e2i = 1.0 / e2;
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

    fn deconv(&self, k: i64) -> f64 {
        ((k * k) as f64 * self.tau).exp() / (4.0 * std::f64::consts::PI * self.tau).sqrt()
    }
}

/// The smallest 2^a 3^b 5^c >= n.
#[must_use]
pub fn fast_len(n: usize) -> usize {
    let mut best = n.next_power_of_two();
    let mut p5 = 1usize;
    while p5 < best {
        let mut p35 = p5;
        while p35 < best {
            let mut p = p35;
            while p < n {
                p *= 2;
            }
            best = best.min(p);
            p35 *= 3;
        }
        p5 *= 5;
    }
    best
}

/// In-place 2-D FFT of a row-major `ny x nx` buffer (`inverse`: exp(+i), unnormalised).
pub fn fft2(buf: &mut [Complex64], nx: usize, ny: usize, inverse: bool) {
    let mut planner = FftPlanner::new();
    let (px, py) = if inverse {
        (planner.plan_fft_inverse(nx), planner.plan_fft_inverse(ny))
    } else {
        (planner.plan_fft_forward(nx), planner.plan_fft_forward(ny))
    };
    buf.par_chunks_mut(nx * 8).for_each(|rows| px.process(rows));
    let mut t = vec![Complex64::new(0.0, 0.0); nx * ny];
    transpose(buf, &mut t, nx, ny);
    t.par_chunks_mut(ny * 8).for_each(|cols| py.process(cols));
    transpose(&t, buf, ny, nx);
}

/// `dst[x * ny + y] = src[y * nx + x]` (src is ny rows of nx).
fn transpose(src: &[Complex64], dst: &mut [Complex64], nx: usize, ny: usize) {
    const B: usize = 32;
    for y0 in (0..ny).step_by(B) {
        for x0 in (0..nx).step_by(B) {
            for y in y0..(y0 + B).min(ny) {
                for x in x0..(x0 + B).min(nx) {
                    dst[x * ny + y] = src[y * nx + x];
                }
            }
        }
    }
}

/// Type 1: `F(kx, ky) = sum_j c_j exp(i (kx ux_j + ky uy_j))` for |kx| <= `kmax_x`,
/// |ky| <= `kmax_y` (row-major, ky slowest).
#[must_use]
pub fn type1(
    ux: &[f64],
    uy: &[f64],
    c: &[Complex64],
    kmax_x: usize,
    kmax_y: usize,
) -> Vec<Complex64> {
    let ax = Axis::new(kmax_x);
    let ay = Axis::new(kmax_y);
    let (nx, ny) = (ax.n, ay.n);
    let m = ux.len().min(uy.len()).min(c.len());
    let chunk = m.div_ceil(PARTS).max(1);
    let parts: Vec<Vec<Complex64>> = (0..PARTS)
        .into_par_iter()
        .map(|p| {
            let mut fine = vec![Complex64::new(0.0, 0.0); nx * ny];
            let (a, b) = ((p * chunk).min(m), ((p + 1) * chunk).min(m));
            let mut wx = [0.0; W];
            let mut wy = [0.0; W];
            let mut row = [Complex64::new(0.0, 0.0); W];
            for j in a..b {
                let cj = c[j];
                if cj.re == 0.0 && cj.im == 0.0 {
                    continue;
                }
                let lx0 = ax.weights(ux[j], &mut wx);
                let ly0 = ay.weights(uy[j], &mut wy);
                for (q, w) in wx.iter().enumerate() {
                    row[q] = cj * *w;
                }
                let sx = lx0.rem_euclid(nx as i64) as usize;
                for (qy, wyv) in wy.iter().enumerate() {
                    let ly = (ly0 + qy as i64).rem_euclid(ny as i64) as usize;
                    let base = ly * nx;
                    if sx + W <= nx {
                        for (f, r) in fine[base + sx..base + sx + W].iter_mut().zip(&row) {
                            *f += r * *wyv;
                        }
                    } else {
                        for (q, r) in row.iter().enumerate() {
                            fine[base + (sx + q) % nx] += r * *wyv;
                        }
                    }
                }
            }
            fine
        })
        .collect();
    let mut buf = vec![Complex64::new(0.0, 0.0); nx * ny];
    for p in &parts {
        for (o, v) in buf.iter_mut().zip(p) {
            *o += v;
        }
    }
    drop(parts);
    fft2(&mut buf, nx, ny, true);
    let (kx, ky) = (kmax_x as i64, kmax_y as i64);
    let mut out = Vec::with_capacity(((2 * kx + 1) * (2 * ky + 1)) as usize);
    for k2 in -ky..=ky {
        let fy = ay.deconv(k2) * ay.h;
        let r = k2.rem_euclid(ny as i64) as usize * nx;
        for k1 in -kx..=kx {
            let fx = ax.deconv(k1) * ax.h;
            out.push(buf[r + k1.rem_euclid(nx as i64) as usize] * (fx * fy));
        }
    }
    out
}

/// Type 2: `f_j = sum_k c_k exp(i (kx ux_j + ky uy_j))`, with `c` laid out as [`type1`]'s output
/// for `kmax_x`, `kmax_y`.
#[must_use]
pub fn type2(
    c: &[Complex64],
    kmax_x: usize,
    kmax_y: usize,
    ux: &[f64],
    uy: &[f64],
) -> Vec<Complex64> {
    let ax = Axis::new(kmax_x);
    let ay = Axis::new(kmax_y);
    let (nx, ny) = (ax.n, ay.n);
    let mut buf = vec![Complex64::new(0.0, 0.0); nx * ny];
    let (kx, ky) = (kmax_x as i64, kmax_y as i64);
    let kw = (2 * kx + 1) as usize;
    for k2 in -ky..=ky {
        let fy = ay.deconv(k2);
        let r = k2.rem_euclid(ny as i64) as usize * nx;
        for k1 in -kx..=kx {
            let fx = ax.deconv(k1);
            let ci = c[(k2 + ky) as usize * kw + (k1 + kx) as usize];
            buf[r + k1.rem_euclid(nx as i64) as usize] = ci * (fx * fy);
        }
    }
    fft2(&mut buf, nx, ny, true);
    let hh = ax.h * ay.h;
    ux.par_iter()
        .zip(uy.par_iter())
        .map(|(&x, &y)| {
            let mut wx = [0.0; W];
            let mut wy = [0.0; W];
            let lx0 = ax.weights(x, &mut wx);
            let ly0 = ay.weights(y, &mut wy);
            let sx = lx0.rem_euclid(nx as i64) as usize;
            let mut s = Complex64::new(0.0, 0.0);
            for (qy, wyv) in wy.iter().enumerate() {
                let ly = (ly0 + qy as i64).rem_euclid(ny as i64) as usize;
                let base = ly * nx;
                let mut rs = Complex64::new(0.0, 0.0);
                if sx + W <= nx {
                    for (f, w) in buf[base + sx..base + sx + W].iter().zip(&wx) {
                        rs += f * *w;
                    }
                } else {
                    for (q, w) in wx.iter().enumerate() {
                        rs += buf[base + (sx + q) % nx] * *w;
                    }
                }
                s += rs * *wyv;
            }
            s * hh
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo(i: usize) -> f64 {
        ((i as f64 * 12.9898).sin() * 43_758.545_3).fract().abs()
    }

    #[test]
    fn type1_and_type2_match_direct_sums() {
        let m = 200;
        let ux: Vec<f64> = (0..m).map(|i| pseudo(i) * 20.0 - 3.0).collect();
        let uy: Vec<f64> = (0..m).map(|i| pseudo(i + 500) * 9.0 - 1.0).collect();
        let c: Vec<Complex64> = (0..m)
            .map(|i| Complex64::new(pseudo(i + 7777) + 0.5, pseudo(i + 31) - 0.5))
            .collect();
        let (kx, ky) = (13usize, 8usize);
        let f = type1(&ux, &uy, &c, kx, ky);
        let scale: f64 = c.iter().map(|x| x.norm()).sum();
        let mut worst: f64 = 0.0;
        for k2 in -(ky as i64)..=ky as i64 {
            for k1 in -(kx as i64)..=kx as i64 {
                let d: Complex64 = (0..m)
                    .map(|j| {
                        c[j] * Complex64::from_polar(1.0, k1 as f64 * ux[j] + k2 as f64 * uy[j])
                    })
                    .sum();
                let got = f[(k2 + ky as i64) as usize * (2 * kx + 1) + (k1 + kx as i64) as usize];
                worst = worst.max((got - d).norm() / scale);
            }
        }
        assert!(worst < 1e-10, "type 1 relative error {worst:e}");
        // Type 2 of those modes, against the direct sum.
        let g = type2(&f, kx, ky, &ux[..50], &uy[..50]);
        let sc: f64 = f.iter().map(|x| x.norm()).sum();
        for j in 0..50 {
            let mut d = Complex64::new(0.0, 0.0);
            for k2 in -(ky as i64)..=ky as i64 {
                for k1 in -(kx as i64)..=kx as i64 {
                    let ci =
                        f[(k2 + ky as i64) as usize * (2 * kx + 1) + (k1 + kx as i64) as usize];
                    d += ci * Complex64::from_polar(1.0, k1 as f64 * ux[j] + k2 as f64 * uy[j]);
                }
            }
            assert!(
                (g[j] - d).norm() < 1e-10 * sc,
                "type 2 at {j}: {} vs {d}",
                g[j]
            );
        }
    }
}
