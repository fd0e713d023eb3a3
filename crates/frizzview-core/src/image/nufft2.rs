//! 2-D non-uniform FFTs (type 1 and type 2) with the "exponential of semicircle" (ES) spreading
//! kernel of FINUFFT (Barnett, Magland & af Klinteberg 2019), the FFTs of the fine grid pruned to
//! the columns that are needed, and the Hermitian (real-image) Toeplitz products of the image
//! engine.
//!
//! Positions are in radians (2-pi periodic on both axes). Mode arrays are row-major
//! `[(ky + kmax_y) * (2 kmax_x + 1) + (kx + kmax_x)]`. The kernel's width and the oversampling
//! are chosen from the requested accuracy `eps` (relative to the sum of |strengths|); the
//! kernel's Fourier transform is computed by Gauss-Legendre quadrature. Tested against direct
//! sums (`type1_and_type2_match_direct_sums`).
//!
//! Spreading uses a fixed number of partial grids summed in a fixed order, and every parallel
//! loop writes disjoint blocks, so results do not depend on the number of rayon threads.

use std::ops::Range;
use std::sync::Arc;

use rayon::prelude::*;
pub use rustfft::num_complex::Complex64;
use rustfft::{Fft, FftPlanner};

pub use crate::numeric::fast_len;

type C = Complex64;
const ZERO: C = C::new(0.0, 0.0);
/// Widest spreading stencil.
const WMAX: usize = 24;
/// Number of partial fine grids spread in parallel (fixed for determinism and memory).
const PARTS: usize = 2;
/// Columns (or row pairs) handled per parallel task.
const BLK: usize = 8;
/// Accuracy of [`type1`] and [`type2`] (the functions without an explicit `eps`).
pub const DEFAULT_EPS: f64 = 1e-13;

/// Oversampling factor, kernel width and shape for a requested relative accuracy (FINUFFT's
/// rules: sigma = 2 with w = ceil(log10(1/eps)) + 1 and beta = 2.30 w; sigma = 1.5 down to
/// 1e-11, where the fine grid has 1.8 times fewer points for a 20 % wider stencil).
fn es_choice(eps: f64) -> (f64, usize, f64) {
    let eps = eps.clamp(1e-15, 1e-2);
    if eps >= 1e-11 {
        let sigma: f64 = 1.5;
        let w = ((-eps.ln()) / (std::f64::consts::PI * (1.0 - 1.0 / sigma).sqrt())).ceil();
        let w = (w as usize).clamp(2, WMAX);
        let beta = 0.97 * std::f64::consts::PI * (1.0 - 0.5 / sigma) * w as f64;
        (sigma, w, beta)
    } else {
        let w = ((1.0 / eps).log10().ceil() as usize + 1).clamp(2, 16);
        (2.0, w, 2.30 * w as f64)
    }
}

/// Gauss-Legendre nodes and weights on [0, 1].
fn gauss_legendre01(q: usize) -> (Vec<f64>, Vec<f64>) {
    let mut xs = Vec::with_capacity(q);
    let mut ws = Vec::with_capacity(q);
    for i in 0..q {
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (q as f64 + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=q {
                let p2 = ((2 * k - 1) as f64 * x * p1 - (k - 1) as f64 * p0) / k as f64;
                p0 = p1;
                p1 = p2;
            }
            dp = q as f64 * (x * p1 - p0) / (x * x - 1.0);
            let dx = p1 / dp;
            x -= dx;
            if dx.abs() < 1e-16 {
                break;
            }
        }
        xs.push(0.5 * (1.0 + x));
        ws.push(1.0 / ((1.0 - x * x) * dp * dp));
    }
    (xs, ws)
}

/// One axis's fine grid and ES kernel for modes |k| <= kmax.
struct Axis {
    n: usize,
    h: f64,
    w: usize,
    beta: f64,
    /// h / psi_hat(k) for k = 0..=kmax (the deconvolution).
    corr: Vec<f64>,
}

impl Axis {
    fn new(kmax: usize, eps: f64) -> Self {
        let (sigma, w, beta) = es_choice(eps);
        let modes = 2 * kmax + 2;
        let n = fast_len((sigma * modes as f64).ceil() as usize).max(2 * w + 2);
        let h = std::f64::consts::TAU / n as f64;
        let (zs, ws) = gauss_legendre01(2 * w + 8);
        let phi: Vec<f64> = zs.iter().map(|z| es(beta, *z)).collect();
        let half = w as f64 * h / 2.0;
        let corr = (0..=kmax)
            .map(|k| {
                let s: f64 = zs
                    .iter()
                    .zip(&ws)
                    .zip(&phi)
                    .map(|((z, wq), p)| wq * p * (k as f64 * z * half).cos())
                    .sum();
                h / (2.0 * half * s)
            })
            .collect();
        Self {
            n,
            h,
            w,
            beta,
            corr,
        }
    }

    fn corr(&self, k: i64) -> f64 {
        self.corr[k.unsigned_abs() as usize]
    }

    /// First fine-grid index (may be negative) and the `w` weights of position `u`.
    fn weights(&self, u: f64, wts: &mut [f64; WMAX]) -> i64 {
        let t = u.rem_euclid(std::f64::consts::TAU) / self.h;
        let half = self.w as f64 / 2.0;
        let l0 = (t - half).ceil();
        let s = 2.0 / self.w as f64;
        for (q, wt) in wts.iter_mut().take(self.w).enumerate() {
            let z = (t - (l0 + q as f64)) * s;
            *wt = es(self.beta, z);
        }
        l0 as i64
    }
}

/// The fine-grid cells a point spreads to (or is interpolated from): `w_x x w_y` cells, wrapped
/// round the periodic grid, with their kernel weights along each axis.
struct Stencil {
    /// Kernel weights along x (the first `w_x`) and y (the first `w_y`).
    wx: [f64; WMAX],
    wy: [f64; WMAX],
    /// First column on the grid (wrapped) and first row (not yet wrapped).
    sx: usize,
    ly0: i64,
    nx: usize,
    ny: usize,
    w1: usize,
    w2: usize,
}

impl Stencil {
    fn new(ax: &Axis, ay: &Axis, x: f64, y: f64) -> Self {
        let mut wx = [0.0; WMAX];
        let mut wy = [0.0; WMAX];
        let lx0 = ax.weights(x, &mut wx);
        let ly0 = ay.weights(y, &mut wy);
        Self {
            wx,
            wy,
            sx: lx0.rem_euclid(ax.n as i64) as usize,
            ly0,
            nx: ax.n,
            ny: ay.n,
            w1: ax.w,
            w2: ay.w,
        }
    }

    /// The stencil's rows in order: each row's y weight and its cells as indices into the
    /// row-major `ny x nx` grid, in two runs: from the first column up to the grid's right edge,
    /// then what wraps round to column 0 (empty when nothing wraps). The two runs together
    /// take the x weights `wx[..w_x]` in order.
    fn rows(&self) -> impl Iterator<Item = (f64, Range<usize>, Range<usize>)> + '_ {
        let end = self.sx + self.w1;
        (0..self.w2).map(move |qy| {
            let ly = (self.ly0 + qy as i64).rem_euclid(self.ny as i64) as usize;
            let base = ly * self.nx;
            (
                self.wy[qy],
                base + self.sx..base + end.min(self.nx),
                base..base + end.saturating_sub(self.nx),
            )
        })
    }
}

/// The ES kernel exp(beta (sqrt(1 - z^2) - 1)) on |z| <= 1.
fn es(beta: f64, z: f64) -> f64 {
    let a = 1.0 - z * z;
    if a <= 0.0 {
        0.0
    } else {
        (beta * (a.sqrt() - 1.0)).exp()
    }
}

/// FFT plans for an `nx x ny` grid, forward (exp(-i)) and inverse (exp(+i), unnormalised).
#[derive(Clone)]
pub struct Plans {
    pub nx: usize,
    pub ny: usize,
    fx: Arc<dyn Fft<f64>>,
    ix: Arc<dyn Fft<f64>>,
    fy: Arc<dyn Fft<f64>>,
    iy: Arc<dyn Fft<f64>>,
}

impl Plans {
    #[must_use]
    pub fn new(nx: usize, ny: usize) -> Self {
        let mut planner = FftPlanner::new();
        Self {
            nx,
            ny,
            fx: planner.plan_fft_forward(nx),
            ix: planner.plan_fft_inverse(nx),
            fy: planner.plan_fft_forward(ny),
            iy: planner.plan_fft_inverse(ny),
        }
    }
    fn x(&self, inverse: bool) -> &Arc<dyn Fft<f64>> {
        if inverse { &self.ix } else { &self.fx }
    }
    fn y(&self, inverse: bool) -> &Arc<dyn Fft<f64>> {
        if inverse { &self.iy } else { &self.fy }
    }
}

/// Runs `f` over the rows of a row-major buffer in parallel blocks, `len` per row.
fn rows_fft(buf: &mut [C], len: usize, fft: &Arc<dyn Fft<f64>>) {
    buf.par_chunks_mut(len * BLK).for_each(|rows| {
        let mut scratch = vec![ZERO; fft.get_inplace_scratch_len()];
        fft.process_with_scratch(rows, &mut scratch);
    });
}

/// In-place 2-D FFT of a row-major `ny x nx` buffer (`inverse`: exp(+i), unnormalised).
pub fn fft2(buf: &mut [C], nx: usize, ny: usize, inverse: bool) {
    let p = Plans::new(nx, ny);
    fft2_with(&p, buf, inverse);
}

/// [`fft2`] with prepared plans.
pub fn fft2_with(p: &Plans, buf: &mut [C], inverse: bool) {
    let (nx, ny) = (p.nx, p.ny);
    rows_fft(buf, nx, p.x(inverse));
    let mut t = vec![ZERO; nx * ny];
    // Columns: gathered into rows of t (column-major), transformed there.
    let fy = p.y(inverse);
    t.par_chunks_mut(ny * BLK)
        .enumerate()
        .for_each(|(b, cols)| {
            transpose_rows(buf, nx, b * BLK, cols);
            let mut scratch = vec![ZERO; fy.get_inplace_scratch_len()];
            fy.process_with_scratch(cols, &mut scratch);
        });
    buf.par_chunks_mut(nx * BLK)
        .enumerate()
        .for_each(|(b, rows)| transpose_rows(&t, ny, b * BLK, rows));
}

/// Rows `first..` of the transpose of the row-major `src` (rows of `src_w`): `out` holds whole
/// rows of the transpose, each as long as `src` has rows, and gets `out[r][k] = src[k][first + r]`.
fn transpose_rows(src: &[C], src_w: usize, first: usize, out: &mut [C]) {
    let len = src.len() / src_w;
    let nr = out.len() / len;
    for k in 0..len {
        let from = &src[k * src_w + first..k * src_w + first + nr];
        for (r, v) in from.iter().enumerate() {
            out[r * len + k] = *v;
        }
    }
}

/// Spreads strengths `c` at (ux, uy) onto the `ny x nx` fine grid of the two axes.
fn spread(ax: &Axis, ay: &Axis, ux: &[f64], uy: &[f64], c: &[C]) -> Vec<C> {
    let (nx, ny) = (ax.n, ay.n);
    let m = ux.len().min(uy.len()).min(c.len());
    let chunk = m.div_ceil(PARTS).max(1);
    let mut parts: Vec<Vec<C>> = (0..PARTS)
        .into_par_iter()
        .map(|p| {
            let mut fine = vec![ZERO; nx * ny];
            let (a, b) = ((p * chunk).min(m), ((p + 1) * chunk).min(m));
            let mut row = [ZERO; WMAX];
            let w1 = ax.w;
            for j in a..b {
                let cj = c[j];
                if cj.re == 0.0 && cj.im == 0.0 {
                    continue;
                }
                let st = Stencil::new(ax, ay, ux[j], uy[j]);
                for q in 0..w1 {
                    row[q] = cj * st.wx[q];
                }
                for (wyv, right, left) in st.rows() {
                    // The wrapped run lies left of the first one: split the grid between them.
                    let (lo, hi) = fine.split_at_mut(right.start);
                    let cells = hi[..right.len()].iter_mut().chain(&mut lo[left]);
                    for (f, r) in cells.zip(&row[..w1]) {
                        *f += r * wyv;
                    }
                }
            }
            fine
        })
        .collect();
    let mut buf = parts.swap_remove(0);
    for p in &parts {
        buf.par_chunks_mut(nx * BLK)
            .zip(p.par_chunks(nx * BLK))
            .for_each(|(o, v)| {
                for (a, b) in o.iter_mut().zip(v) {
                    *a += b;
                }
            });
    }
    buf
}

/// Type 1 with the output column-major: `[(kx + kmax_x) * (2 kmax_y + 1) + (ky + kmax_y)]`, where
/// `F(kx, ky) = sum_j c_j exp(i (kx ux_j + ky uy_j))` to relative accuracy `eps`.
#[must_use]
pub fn type1_cols(
    ux: &[f64],
    uy: &[f64],
    c: &[C],
    kmax_x: usize,
    kmax_y: usize,
    eps: f64,
) -> Vec<C> {
    let ax = Axis::new(kmax_x, eps);
    let ay = Axis::new(kmax_y, eps);
    let (nx, ny) = (ax.n, ay.n);
    let mut fine = spread(&ax, &ay, ux, uy, c);
    let p = Plans::new(nx, ny);
    rows_fft(&mut fine, nx, &p.ix);
    let (kx, ky) = (kmax_x as i64, kmax_y as i64);
    let kh = 2 * kmax_y + 1;
    let mut out = vec![ZERO; (2 * kmax_x + 1) * kh];
    out.par_chunks_mut(kh * BLK)
        .enumerate()
        .for_each(|(b, cols)| {
            let i0 = b * BLK;
            let nc = cols.len() / kh;
            let mut col = vec![ZERO; ny * nc];
            let fxs: Vec<usize> = (0..nc)
                .map(|c| (i0 as i64 + c as i64 - kx).rem_euclid(nx as i64) as usize)
                .collect();
            for l in 0..ny {
                let row = &fine[l * nx..(l + 1) * nx];
                for (c, fx) in fxs.iter().enumerate() {
                    col[c * ny + l] = row[*fx];
                }
            }
            let mut scratch = vec![ZERO; p.iy.get_inplace_scratch_len()];
            p.iy.process_with_scratch(&mut col, &mut scratch);
            for c in 0..nc {
                let k1 = i0 as i64 + c as i64 - kx;
                let fx = ax.corr(k1);
                for k2 in -ky..=ky {
                    let v = col[c * ny + k2.rem_euclid(ny as i64) as usize];
                    cols[c * kh + (k2 + ky) as usize] = v * (fx * ay.corr(k2));
                }
            }
        });
    out
}

/// Type 1: `F(kx, ky) = sum_j c_j exp(i (kx ux_j + ky uy_j))` for |kx| <= `kmax_x`,
/// |ky| <= `kmax_y` (row-major, ky slowest), to relative accuracy `eps`.
#[must_use]
pub fn type1_eps(
    ux: &[f64],
    uy: &[f64],
    c: &[C],
    kmax_x: usize,
    kmax_y: usize,
    eps: f64,
) -> Vec<C> {
    let t = type1_cols(ux, uy, c, kmax_x, kmax_y, eps);
    let (kw, kh) = (2 * kmax_x + 1, 2 * kmax_y + 1);
    let mut out = vec![ZERO; kw * kh];
    out.par_chunks_mut(kw).enumerate().for_each(|(j, row)| {
        for (i, v) in row.iter_mut().enumerate() {
            *v = t[i * kh + j];
        }
    });
    out
}

/// [`type1_eps`] at [`DEFAULT_EPS`].
#[must_use]
pub fn type1(ux: &[f64], uy: &[f64], c: &[C], kmax_x: usize, kmax_y: usize) -> Vec<C> {
    type1_eps(ux, uy, c, kmax_x, kmax_y, DEFAULT_EPS)
}

/// Type 2: `f_j = sum_k c_k exp(i (kx ux_j + ky uy_j))`, with `c` laid out as [`type1`]'s output
/// for `kmax_x`, `kmax_y`, to relative accuracy `eps`.
#[must_use]
pub fn type2_eps(
    c: &[C],
    kmax_x: usize,
    kmax_y: usize,
    ux: &[f64],
    uy: &[f64],
    eps: f64,
) -> Vec<C> {
    let ax = Axis::new(kmax_x, eps);
    let ay = Axis::new(kmax_y, eps);
    let (nx, ny) = (ax.n, ay.n);
    let p = Plans::new(nx, ny);
    let (kx, ky) = (kmax_x as i64, kmax_y as i64);
    let kw = (2 * kx + 1) as usize;
    // Columns of modes (deconvolved) -> inverse FFT along y, only the 2 kmax_x + 1 used columns.
    let mut cols = vec![ZERO; kw * ny];
    cols.par_chunks_mut(ny).enumerate().for_each(|(i, col)| {
        let k1 = i as i64 - kx;
        let fx = ax.corr(k1);
        for k2 in -ky..=ky {
            col[k2.rem_euclid(ny as i64) as usize] =
                c[(k2 + ky) as usize * kw + i] * (fx * ay.corr(k2));
        }
        let mut scratch = vec![ZERO; p.iy.get_inplace_scratch_len()];
        p.iy.process_with_scratch(col, &mut scratch);
    });
    let mut buf = vec![ZERO; nx * ny];
    buf.par_chunks_mut(nx * BLK)
        .enumerate()
        .for_each(|(b, rows)| {
            let l0 = b * BLK;
            let nr = rows.len() / nx;
            for i in 0..kw {
                let fxi = (i as i64 - kx).rem_euclid(nx as i64) as usize;
                for r in 0..nr {
                    rows[r * nx + fxi] = cols[i * ny + l0 + r];
                }
            }
            let mut scratch = vec![ZERO; p.ix.get_inplace_scratch_len()];
            p.ix.process_with_scratch(rows, &mut scratch);
        });
    drop(cols);
    let w1 = ax.w;
    ux.par_iter()
        .zip(uy.par_iter())
        .map(|(&x, &y)| {
            let st = Stencil::new(&ax, &ay, x, y);
            let mut s = ZERO;
            for (wyv, right, left) in st.rows() {
                let mut rs = ZERO;
                for (f, w) in buf[right].iter().chain(&buf[left]).zip(&st.wx[..w1]) {
                    rs += f * *w;
                }
                s += rs * wyv;
            }
            // The grid holds c h_x h_y / (psi_hat_x psi_hat_y): f = sum_l b_l psi_l.
            s
        })
        .collect()
}

/// [`type2_eps`] at [`DEFAULT_EPS`].
#[must_use]
pub fn type2(c: &[C], kmax_x: usize, kmax_y: usize, ux: &[f64], uy: &[f64]) -> Vec<C> {
    type2_eps(c, kmax_x, kmax_y, ux, uy, DEFAULT_EPS)
}

/// Loads row pair (y0, y0 + 1) of a Hermitian spectrum held as columns kx = 0..ncol-1 (each over
/// ky, already inverse-transformed along y, `t[kx * ny + y]`) into `z` as `A + i B` over the full
/// kx range, so that one inverse FFT gives row y0 in the real part and row y0 + 1 in the
/// imaginary part.
fn load_pair(t: &[C], ncol: usize, ny: usize, y0: usize, has1: bool, z: &mut [C]) {
    let nx = z.len();
    z.fill(ZERO);
    for kx in 0..ncol {
        let a = t[kx * ny + y0];
        let b = if has1 { t[kx * ny + y0 + 1] } else { ZERO };
        z[kx] = C::new(a.re - b.im, a.im + b.re);
        if kx > 0 {
            z[nx - kx] = C::new(a.re + b.im, b.re - a.im);
        }
    }
}

/// The real `ny x nx` image (row-major) whose spectrum is Hermitian with the given columns
/// kx = 0..ncol-1 (`t[kx * ny + y]`, each column over ky at ky mod ny, not yet transformed):
/// `x[n] = sum_k T(k) exp(+2 pi i k . n / N)`. Needs 2 (ncol - 1) < nx.
#[must_use]
pub fn hermitian_to_real(p: &Plans, mut t: Vec<C>, ncol: usize) -> Vec<f64> {
    let (nx, ny) = (p.nx, p.ny);
    t.par_chunks_mut(ny * BLK).for_each(|cols| {
        let mut scratch = vec![ZERO; p.iy.get_inplace_scratch_len()];
        p.iy.process_with_scratch(cols, &mut scratch);
    });
    let blocks = over_row_pairs(
        p,
        &t,
        ncol,
        |rows| Vec::with_capacity(rows * nx),
        |_, _, has1, z, _, out| {
            out.extend(z.iter().map(|v| v.re));
            if has1 {
                out.extend(z.iter().map(|v| v.im));
            }
        },
    );
    blocks.concat()
}

/// The rows of the real image of Hermitian columns `t` (see [`load_pair`]), two at a time, in
/// parallel blocks of `BLK` row pairs: each pair is loaded and inverse-transformed along x into
/// `z`, then handed to `each(r, y0, has1, z, scratch, out)` with `r` its first row within the
/// block, `y0` within the image, `has1` whether row y0 + 1 exists, `scratch` big enough for
/// the x-axis FFTs both ways, and `out` the block's output (`new_out(rows in the block)`).
/// Returns the blocks' outputs in order.
fn over_row_pairs<T: Send>(
    p: &Plans,
    t: &[C],
    ncol: usize,
    new_out: impl Fn(usize) -> Vec<T> + Sync,
    each: impl Fn(usize, usize, bool, &mut [C], &mut [C], &mut Vec<T>) + Sync,
) -> Vec<Vec<T>> {
    let (nx, ny) = (p.nx, p.ny);
    let npairs = ny.div_ceil(2);
    (0..npairs.div_ceil(BLK))
        .into_par_iter()
        .map(|b| {
            let (p0, p1) = (b * BLK, ((b + 1) * BLK).min(npairs));
            let mut z = vec![ZERO; nx];
            let mut scratch = vec![
                ZERO;
                p.ix.get_inplace_scratch_len()
                    .max(p.fx.get_inplace_scratch_len())
            ];
            let mut out = new_out((2 * p1).min(ny) - 2 * p0);
            for q in p0..p1 {
                let y0 = 2 * q;
                let has1 = y0 + 1 < ny;
                load_pair(t, ncol, ny, y0, has1, &mut z);
                p.ix.process_with_scratch(&mut z, &mut scratch);
                each(y0 - 2 * p0, y0, has1, &mut z, &mut scratch, &mut out);
            }
            out
        })
        .collect()
}

/// The Hermitian Toeplitz product `out[k] = sum_j g(k - j) c[j]` for Hermitian `c` on the modes
/// |kx| <= hx, |ky| <= hy (row-major, as [`type1`]), with `ghat` the real image
/// `sum_p g(p) exp(+2 pi i p . n / N) / N` on the plans' grid (N = nx ny >= (4 hx + 1)(4 hy + 1)).
/// Costs one inverse and one forward 2-D FFT of half the columns and of row pairs: about 1.5
/// length-N FFTs per axis instead of 4.
#[must_use]
pub fn toeplitz_apply(p: &Plans, ghat: &[f64], c: &[C], hx: usize, hy: usize) -> Vec<C> {
    let (nx, ny) = (p.nx, p.ny);
    let (kw, kh) = (2 * hx + 1, 2 * hy + 1);
    let ncol = hx + 1;
    let (hyi, nyi) = (hy as i64, ny as i64);
    // Columns kx = 0..=hx over ky, inverse FFT along y.
    let mut t = vec![ZERO; ncol * ny];
    t.par_chunks_mut(ny * BLK)
        .enumerate()
        .for_each(|(b, cols)| {
            let nc = cols.len() / ny;
            for ky in -hyi..=hyi {
                let r = (ky + hyi) as usize * kw + hx + b * BLK;
                let yy = ky.rem_euclid(nyi) as usize;
                for cc in 0..nc {
                    cols[cc * ny + yy] = c[r + cc];
                }
            }
            let mut scratch = vec![ZERO; p.iy.get_inplace_scratch_len()];
            p.iy.process_with_scratch(cols, &mut scratch);
        });
    // Row pairs: to the real image, times ghat, back to the half spectrum along x.
    let blocks = over_row_pairs(
        p,
        &t,
        ncol,
        |rows| vec![ZERO; ncol * rows],
        |r, y0, has1, z, scratch, out| {
            let nr = out.len() / ncol;
            let g0 = &ghat[y0 * nx..(y0 + 1) * nx];
            if has1 {
                let g1 = &ghat[(y0 + 1) * nx..(y0 + 2) * nx];
                for ((v, a), b) in z.iter_mut().zip(g0).zip(g1) {
                    *v = C::new(v.re * a, v.im * b);
                }
            } else {
                for (v, a) in z.iter_mut().zip(g0) {
                    *v = C::new(v.re * a, 0.0);
                }
            }
            p.fx.process_with_scratch(z, scratch);
            for kx in 0..ncol {
                let zz = z[kx];
                let zm = z[(nx - kx) % nx].conj();
                out[kx * nr + r] = (zz + zm) * 0.5;
                if has1 {
                    let d = zz - zm;
                    out[kx * nr + r + 1] = C::new(0.5 * d.im, -0.5 * d.re);
                }
            }
        },
    );
    drop(t);
    // Columns: forward FFT along y.
    let mut t3 = vec![ZERO; ncol * ny];
    t3.par_chunks_mut(ny * BLK)
        .enumerate()
        .for_each(|(b, cols)| {
            let nc = cols.len() / ny;
            for (bi, blk) in blocks.iter().enumerate() {
                let y0 = 2 * bi * BLK;
                let nr = blk.len() / ncol;
                for cc in 0..nc {
                    let kx = b * BLK + cc;
                    cols[cc * ny + y0..cc * ny + y0 + nr]
                        .copy_from_slice(&blk[kx * nr..(kx + 1) * nr]);
                }
            }
            let mut scratch = vec![ZERO; p.fy.get_inplace_scratch_len()];
            p.fy.process_with_scratch(cols, &mut scratch);
        });
    drop(blocks);
    let mut out = vec![ZERO; kw * kh];
    out.par_chunks_mut(kw).enumerate().for_each(|(j, row)| {
        let ky = j as i64 - hyi;
        let yp = ky.rem_euclid(nyi) as usize;
        let ym = (-ky).rem_euclid(nyi) as usize;
        row[hx] = t3[yp];
        for kx in 1..=hx {
            row[hx + kx] = t3[kx * ny + yp];
            row[hx - kx] = t3[kx * ny + ym].conj();
        }
    });
    out
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
        let scale: f64 = c.iter().map(|x| x.norm()).sum();
        for eps in [1e-6, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12, DEFAULT_EPS, 1e-14] {
            let f = type1_eps(&ux, &uy, &c, kx, ky, eps);
            let mut worst: f64 = 0.0;
            for k2 in -(ky as i64)..=ky as i64 {
                for k1 in -(kx as i64)..=kx as i64 {
                    let d: Complex64 = (0..m)
                        .map(|j| {
                            c[j] * Complex64::from_polar(1.0, k1 as f64 * ux[j] + k2 as f64 * uy[j])
                        })
                        .sum();
                    let got =
                        f[(k2 + ky as i64) as usize * (2 * kx + 1) + (k1 + kx as i64) as usize];
                    worst = worst.max((got - d).norm() / scale);
                }
            }
            // Type 2 of those modes, against the direct sum.
            let g = type2_eps(&f, kx, ky, &ux[..50], &uy[..50], eps);
            let sc: f64 = f.iter().map(|x| x.norm()).sum();
            let mut worst2: f64 = 0.0;
            for j in 0..50 {
                let mut d = Complex64::new(0.0, 0.0);
                for k2 in -(ky as i64)..=ky as i64 {
                    for k1 in -(kx as i64)..=kx as i64 {
                        let ci =
                            f[(k2 + ky as i64) as usize * (2 * kx + 1) + (k1 + kx as i64) as usize];
                        d += ci * Complex64::from_polar(1.0, k1 as f64 * ux[j] + k2 as f64 * uy[j]);
                    }
                }
                worst2 = worst2.max((g[j] - d).norm() / sc);
            }
            println!(
                "eps {eps:e} ({:?}): type 1 relative error {worst:.2e}, type 2 {worst2:.2e}",
                es_choice(eps)
            );
            let allowed = (10.0 * eps).max(2e-14);
            assert!(
                worst < allowed,
                "eps {eps:e}: type 1 relative error {worst:e}"
            );
            assert!(
                worst2 < allowed,
                "eps {eps:e}: type 2 relative error {worst2:e}"
            );
        }
    }

    /// The Hermitian Toeplitz product against the direct sum over lags.
    #[test]
    fn toeplitz_apply_matches_the_direct_product() {
        let (hx, hy) = (5usize, 3usize);
        let (kw, kh) = (2 * hx + 1, 2 * hy + 1);
        let (gx, gy) = (2 * hx as i64, 2 * hy as i64);
        // A Hermitian kernel g(p) = conj g(-p) on |px| <= 2 hx, |py| <= 2 hy.
        let gw = (2 * gx + 1) as usize;
        let mut g = vec![ZERO; gw * (2 * gy + 1) as usize];
        let gi = |px: i64, py: i64| (py + gy) as usize * gw + (px + gx) as usize;
        for py in -gy..=gy {
            for px in -gx..=gx {
                let i = gi(px, py);
                let v = C::new(pseudo(i + 3) - 0.5, pseudo(i + 99) - 0.5);
                if (py, px) > (0, 0) || (py == 0 && px > 0) {
                    g[i] = v;
                    g[gi(-px, -py)] = v.conj();
                } else if px == 0 && py == 0 {
                    g[i] = C::new(3.0, 0.0);
                }
            }
        }
        let mut c = vec![ZERO; kw * kh];
        let ci = |kx: i64, ky: i64| (ky + hy as i64) as usize * kw + (kx + hx as i64) as usize;
        for ky in -(hy as i64)..=hy as i64 {
            for kx in -(hx as i64)..=hx as i64 {
                if (ky, kx) >= (0, 0) {
                    let v = C::new(pseudo(ci(kx, ky) + 5) - 0.5, pseudo(ci(kx, ky) + 55) - 0.5);
                    let v = if kx == 0 && ky == 0 {
                        C::new(v.re, 0.0)
                    } else {
                        v
                    };
                    c[ci(kx, ky)] = v;
                    c[ci(-kx, -ky)] = v.conj();
                }
            }
        }
        for (nx, ny) in [(fast_len(4 * hx + 1), fast_len(4 * hy + 1)), (25, 15)] {
            let p = Plans::new(nx, ny);
            // ghat: columns px = 0..=2 hx of g / N.
            let ncol = 2 * hx + 1;
            let mut t = vec![ZERO; ncol * ny];
            let norm = 1.0 / (nx * ny) as f64;
            for px in 0..=gx {
                for py in -gy..=gy {
                    t[px as usize * ny + py.rem_euclid(ny as i64) as usize] = g[gi(px, py)] * norm;
                }
            }
            let ghat = hermitian_to_real(&p, t, ncol);
            let out = toeplitz_apply(&p, &ghat, &c, hx, hy);
            let mut worst: f64 = 0.0;
            for ky in -(hy as i64)..=hy as i64 {
                for kx in -(hx as i64)..=hx as i64 {
                    let mut d = ZERO;
                    for jy in -(hy as i64)..=hy as i64 {
                        for jx in -(hx as i64)..=hx as i64 {
                            d += g[gi(kx - jx, ky - jy)] * c[ci(jx, jy)];
                        }
                    }
                    worst = worst.max((d - out[ci(kx, ky)]).norm());
                }
            }
            println!("toeplitz_apply on {nx} x {ny}: max error {worst:.2e}");
            assert!(worst < 1e-12, "{nx} x {ny}: {worst:e}");
        }
    }
}
