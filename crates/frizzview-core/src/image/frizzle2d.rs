//! The 2-D Frizzle forward model on a regular output grid.
//!
//! Model: `f(u, v) = sum_{|kx|<=hx, |ky|<=hy} c_k exp(2 pi i (kx u / Lx + ky v / Ly))` with
//! Hermitian coefficients (`c_{-k} = conj c_k`, so f is real) and odd mode counts `Kx = 2 hx + 1
//! = Lx` (one mode per model pixel: the model is the trigonometric interpolant of its values on
//! the `Lx x Ly` model grid, which is the output grid plus `pad` pixels). (u, v) are output-grid
//! coordinates shifted by the low pad. Every input pixel is one sample `y_m = f(u_m, v_m) + s_e +
//! noise` with weight `w_m = ivar_m x weight_e`, and optionally one additive sky offset `s_e` per
//! exposure (the first included exposure's is fixed to 0: only differences are identifiable).
//!
//! The normal matrix `G = A^H W A` is block-Toeplitz with Toeplitz blocks, `G[k, k'] = g(k - k')`
//! with `g(p) = sum_m w_m exp(-2 pi i p . u_m / L)` on the (2K-1)^2 lags: one type-1 NUFFT of the
//! weights per exposure (kept while they fit in `kernel_memory`, so a weight change is a sum plus
//! a solve; beyond it one NUFFT of all exposures, updated by NUFFTs of the changes), then each
//! product `G c` is a pair of real-image FFTs (the coefficients and g are Hermitian;
//! `nufft2::toeplitz_apply`). The solver is
//! conjugate gradients with a Jacobi (diagonal) scaling; docs/image-mode.md (the M/P trap) records that Chan's
//! circulant preconditioner gains little (12 -> 11 iterations) and Strang's is unsafe, so neither
//! is used. A dense Cholesky solve of the same system is the oracle for small outputs.

use ndarray::{Array2, Array3};
use rustfft::num_complex::Complex64;

use rayon::prelude::*;

use super::nufft2::{self, Plans, fast_len, fft2};
use super::{Exposure2d, ImageError};

type C = Complex64;
const ZERO: C = C::new(0.0, 0.0);

/// How the per-pixel variance is computed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VarianceMode {
    /// No variance map.
    None,
    /// Exact (dense Cholesky) when the model has at most `exact_max_modes` modes, else a probe
    /// estimate with this many probes.
    Auto { probes: usize },
    /// Exact, whatever the size (slow beyond ~40 x 40).
    Exact,
    /// Hutchinson-type unbiased estimate with this many Rademacher probes (one CG solve each).
    Probe(usize),
}

/// Which variance the result holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VarianceKind {
    None,
    Exact,
    /// Unbiased estimate from this many probes (relative error per pixel ~ sqrt(2 / n)).
    Probe(usize),
}

/// Settings of the 2-D forward model.
#[derive(Clone, Debug)]
pub struct FrizzleSettings {
    /// Model pixels added beyond the output grid (split low / high; the period is made odd).
    pub pad: usize,
    /// Ridge: weight (an inverse variance) pulling each model pixel's value to 0.
    pub ridge: f64,
    /// Hole prior: a membrane (finite-difference gradient) penalty on the model pixels that no
    /// used input pixel overlaps (masks, clipped samples, the pad), on every grid edge touching
    /// one, with weight this times the mean data weight per covered model pixel; 0 switches it
    /// off. Without it those pixels are (nearly) unconstrained modes: CG fills them with
    /// oscillations of hundreds of sigma that leak into the data next to them. With it they
    /// hold the discrete harmonic interpolation of their surroundings (bounded by it, no
    /// overshoot). Where every model pixel is covered it changes nothing.
    pub hole_prior: f64,
    /// Fit one additive sky offset per exposure.
    pub sky: bool,
    /// CG stopping rule: |residual| <= tol |rhs|.
    pub tol: f64,
    /// CG iteration cap.
    pub max_iter: usize,
    /// Robust reweighting: pixels whose residual exceeds this many sigma get weight 0
    /// (repeated up to `robust_passes` times); `None` switches it off.
    pub robust_clip: Option<f64>,
    pub robust_passes: usize,
    /// The robust reweighting clips a sample only where at least this many exposures (included,
    /// weight > 0, the sample's own among them) have a used sample overlapping its model pixel.
    /// Where fewer do, a disagreement cannot say which exposure is wrong (astrodrizzle likewise
    /// needs a median of >= 3 to reject; with 2 it falls back to the minimum): on the real
    /// DECam testcase6 (2 exposures per band, PSFs that differ) clipping there removed the
    /// saturated star's wings, 200-560 samples, and tripled the residuals next to its masks
    /// against drizzle's, whether two-sided, one-sided (positive only) or beyond the model's
    /// local derivative (docs/image-mode.md, "Robust clipping"). 0 or 1 = clip everywhere.
    pub robust_min_votes: usize,
    pub variance: VarianceMode,
    /// Largest model (modes + sky offsets) solved densely for the exact variance.
    pub exact_max_modes: usize,
    /// Per-exposure leave-one-out chi^2/nu (one extra solve per exposure).
    pub loo: bool,
    /// Coverage and DQ maps (a pixfrac-1 drizzle overlap count).
    pub coverage: bool,
    /// Seed of the variance probes.
    pub seed: u64,
    /// Bytes of per-exposure Toeplitz kernels kept so that a weight or include change is a sum
    /// (the live path). Beyond it one kernel of all exposures is built (one NUFFT instead of
    /// one per exposure), and a weight change costs one NUFFT of that exposure.
    pub kernel_memory: usize,
}

impl Default for FrizzleSettings {
    fn default() -> Self {
        Self {
            pad: 0,
            ridge: 0.0,
            hole_prior: 1.0,
            sky: true,
            tol: 1e-10,
            max_iter: 3000,
            robust_clip: Some(5.0),
            robust_passes: 8,
            robust_min_votes: 3,
            variance: VarianceMode::Auto { probes: 32 },
            exact_max_modes: 1200,
            loo: true,
            coverage: true,
            seed: 1,
            kernel_memory: 64 << 20,
        }
    }
}

/// One exposure's precomputed pieces.
struct ExpPrep {
    /// The real image `sum_p g(p) exp(+2 pi i p . n / nf) / nf` of this exposure's Toeplitz
    /// kernel on the nfx x nfy grid (the kernel's spectrum: real since g is Hermitian).
    ghat: Vec<f64>,
    /// g_e(k) on the K x K modes: the coupling of this exposure's sky offset to the modes.
    bsky: Vec<C>,
    /// A^H W y on the modes.
    rhs: Vec<C>,
    /// sum w, sum w y.
    d: f64,
    ysum: f64,
    /// Flat input-pixel indices of the samples, their model coordinates and weights (ivar, 0 =
    /// clipped or masked), and values.
    idx: Vec<usize>,
    u: Vec<f64>,
    v: Vec<f64>,
    w: Vec<f64>,
    y: Vec<f64>,
    shape: (usize, usize),
    /// Samples dropped for landing outside the model period.
    dropped: usize,
    /// Half the footprint of one input pixel on the model grid (output pixels).
    half: f64,
}

/// The hole prior's state: which model pixels no used input pixel overlaps, and the weight.
struct HolePrior {
    hole: Vec<bool>,
    lambda: f64,
}

/// A CG or dense solution: modes and sky offsets.
#[derive(Clone, Debug)]
pub struct Coeffs {
    pub modes: Vec<C>,
    pub sky: Vec<f64>,
    pub iterations: usize,
    pub rel_residual: f64,
}

/// The prepared problem. Changing an exposure's weight or inclusion is cheap ([`Frizzle2d::set_weight`]).
pub struct Frizzle2d {
    pub nx: usize,
    pub ny: usize,
    lx: usize,
    ly: usize,
    hx: usize,
    hy: usize,
    offx: usize,
    offy: usize,
    nfx: usize,
    nfy: usize,
    exps: Vec<ExpPrep>,
    alpha: Vec<f64>,
    names: Vec<String>,
    pub settings: FrizzleSettings,
    ghat: Vec<f64>,
    last: Option<Coeffs>,
    plans: Plans,
    /// Plans of the model grid (lx x ly), for the hole prior.
    gplans: Plans,
    prior: Option<HolePrior>,
    /// Relative accuracy of the NUFFTs (from the CG tolerance).
    eps: f64,
    /// Per-exposure kernels kept (else `ghat` is maintained by NUFFTs of the changes).
    stored: bool,
}

fn kidx(kx: i64, ky: i64, hx: usize, hy: usize) -> usize {
    (ky + hy as i64) as usize * (2 * hx + 1) + (kx + hx as i64) as usize
}

impl Frizzle2d {
    /// Prepares the problem: positions, one type-1 NUFFT per exposure.
    ///
    /// # Errors
    /// Empty output, bad exposures (named), no usable pixel.
    pub fn new(
        exps: &[Exposure2d],
        out_shape: (usize, usize),
        settings: &FrizzleSettings,
    ) -> Result<Self, ImageError> {
        let (ny, nx) = out_shape;
        if nx == 0 || ny == 0 {
            return Err(ImageError::Settings("empty output grid".into()));
        }
        if exps.is_empty() {
            return Err(ImageError::Settings("no exposures".into()));
        }
        if !(settings.ridge >= 0.0) || !settings.ridge.is_finite() {
            return Err(ImageError::Settings(format!(
                "ridge {} must be finite and >= 0",
                settings.ridge
            )));
        }
        let odd = |n: usize| if n.is_multiple_of(2) { n + 1 } else { n };
        let lx = odd(nx + settings.pad);
        let ly = odd(ny + settings.pad);
        let (offx, offy) = ((lx - nx) / 2, (ly - ny) / 2);
        let (hx, hy) = ((lx - 1) / 2, (ly - 1) / 2);
        let nfx = fast_len(2 * lx - 1);
        let nfy = fast_len(2 * ly - 1);
        let mut me = Self {
            nx,
            ny,
            lx,
            ly,
            hx,
            hy,
            offx,
            offy,
            nfx,
            nfy,
            exps: Vec::new(),
            alpha: Vec::new(),
            names: Vec::new(),
            settings: settings.clone(),
            ghat: Vec::new(),
            last: None,
            plans: Plans::new(nfx, nfy),
            gplans: Plans::new(lx, ly),
            prior: None,
            eps: nufft_eps(settings.tol),
            stored: nfx * nfy * 8 * exps.len() <= settings.kernel_memory,
        };
        for x in exps {
            x.check()?;
            let (eny, enx) = x.sci.dim();
            let mut p = ExpPrep {
                ghat: Vec::new(),
                bsky: Vec::new(),
                rhs: Vec::new(),
                d: 0.0,
                ysum: 0.0,
                idx: Vec::new(),
                u: Vec::new(),
                v: Vec::new(),
                w: Vec::new(),
                y: Vec::new(),
                shape: (eny, enx),
                dropped: 0,
                half: 0.5 * pixel_spacing(&x.pixmap),
            };
            for j in 0..eny {
                for i in 0..enx {
                    let (yv, iv) = (x.sci[[j, i]], x.ivar[[j, i]]);
                    if !(iv > 0.0) || !iv.is_finite() || !yv.is_finite() {
                        continue;
                    }
                    let u = x.pixmap[[j, i, 0]] + offx as f64;
                    let v = x.pixmap[[j, i, 1]] + offy as f64;
                    if !(u >= -0.5 && u < lx as f64 - 0.5 && v >= -0.5 && v < ly as f64 - 0.5) {
                        p.dropped += 1;
                        continue;
                    }
                    p.idx.push(j * enx + i);
                    p.u.push(u);
                    p.v.push(v);
                    p.w.push(iv);
                    p.y.push(yv);
                }
            }
            me.exps.push(p);
            me.alpha.push(if x.include { x.weight } else { 0.0 });
            me.names.push(x.name.clone());
        }
        for e in 0..me.exps.len() {
            me.kernel(e);
        }
        if me.stored {
            me.sum_kernels();
        } else {
            let all: Vec<(usize, f64)> = (0..me.exps.len()).map(|e| (e, me.alpha[e])).collect();
            me.ghat = me.ghat_of(&all, None);
        }
        me.update_prior();
        if me.exps.iter().zip(&me.alpha).all(|(p, a)| p.d * a <= 0.0) {
            return Err(ImageError::Settings(
                "no exposure has a usable pixel on the output grid".into(),
            ));
        }
        Ok(me)
    }

    /// The kernel image (see `ExpPrep::ghat`) of the weights of the listed exposures, each times
    /// its factor, or (with `only`) of the listed samples of each: one type-1 NUFFT.
    fn ghat_of(&self, list: &[(usize, f64)], only: Option<&[Vec<usize>]>) -> Vec<f64> {
        let tx = -std::f64::consts::TAU / self.lx as f64;
        let ty = -std::f64::consts::TAU / self.ly as f64;
        let (mut ux, mut uy, mut st) = (Vec::new(), Vec::new(), Vec::new());
        for (i, &(e, a)) in list.iter().enumerate() {
            if a == 0.0 {
                continue;
            }
            let p = &self.exps[e];
            let mut push = |j: usize, w: f64| {
                ux.push(p.u[j] * tx);
                uy.push(p.v[j] * ty);
                st.push(C::new(a * w, 0.0));
            };
            match only {
                Some(o) => o[i].iter().for_each(|&j| push(j, p.w[j])),
                None => (0..p.w.len()).for_each(|j| push(j, p.w[j])),
            }
        }
        let (kx2, ky2) = (2 * self.hx, 2 * self.hy);
        let f = nufft2::type1_cols(&ux, &uy, &st, kx2, ky2, self.eps);
        drop((ux, uy, st));
        self.ghat_from_cols(&f)
    }

    /// The kernel image from a column-major type-1 output on |p| <= 2h (its Hermitian part).
    fn ghat_from_cols(&self, f: &[C]) -> Vec<f64> {
        let (kx2, ky2, nfy) = (2 * self.hx, 2 * self.hy, self.nfy);
        let kh2 = 2 * ky2 + 1;
        let (kx2i, ky2i) = (kx2 as i64, ky2 as i64);
        let col = |px: i64| &f[(px + kx2i) as usize * kh2..(px + kx2i + 1) as usize * kh2];
        let norm = 1.0 / (self.nfx * nfy) as f64;
        let ncol = kx2 + 1;
        let mut t = vec![ZERO; ncol * nfy];
        t.par_chunks_mut(nfy).enumerate().for_each(|(px, tc)| {
            let (cp, cm) = (col(px as i64), col(-(px as i64)));
            for py in -ky2i..=ky2i {
                let g = (cp[(py + ky2i) as usize] + cm[(ky2i - py) as usize].conj()) * 0.5;
                tc[py.rem_euclid(nfy as i64) as usize] = g * norm;
            }
        });
        nufft2::hermitian_to_real(&self.plans, t, ncol)
    }

    /// Recomputes exposure e's coupling and right-hand side (and its kernel image when kernels
    /// are stored) from its sample weights.
    fn kernel(&mut self, e: usize) {
        let (lx, ly, hx, hy) = (self.lx, self.ly, self.hx, self.hy);
        let p = &self.exps[e];
        let tx = -std::f64::consts::TAU / lx as f64;
        let ty = -std::f64::consts::TAU / ly as f64;
        let ux: Vec<f64> = p.u.iter().map(|u| u * tx).collect();
        let uy: Vec<f64> = p.v.iter().map(|v| v * ty).collect();
        let st: Vec<C> =
            p.w.iter()
                .zip(&p.y)
                .map(|(w, y)| C::new(*w, w * y))
                .collect();
        // F(px, py) column-major; its Hermitian part is g (the weights), the rest A^H W y. Only
        // the modes are needed when the kernels are not stored.
        let (kxm, kym) = if self.stored {
            (2 * hx, 2 * hy)
        } else {
            (hx, hy)
        };
        let f = nufft2::type1_cols(&ux, &uy, &st, kxm, kym, self.eps);
        drop((ux, uy, st));
        let khm = 2 * kym + 1;
        let (kxmi, kymi) = (kxm as i64, kym as i64);
        let col = |px: i64| &f[(px + kxmi) as usize * khm..(px + kxmi + 1) as usize * khm];
        let kw = 2 * hx + 1;
        let mut bsky = vec![ZERO; kw * (2 * hy + 1)];
        let mut rhs = vec![ZERO; kw * (2 * hy + 1)];
        bsky.par_chunks_mut(kw)
            .zip(rhs.par_chunks_mut(kw))
            .enumerate()
            .for_each(|(j, (bs, rh))| {
                let ky = j as i64 - hy as i64;
                for (i, (b, r)) in bs.iter_mut().zip(rh.iter_mut()).enumerate() {
                    let kx = i as i64 - hx as i64;
                    let a = col(kx)[(ky + kymi) as usize];
                    let bb = col(-kx)[(kymi - ky) as usize].conj();
                    *b = (a + bb) * 0.5;
                    *r = (a - bb) * C::new(0.0, -0.5);
                }
            });
        let ghat = if self.stored {
            self.ghat_from_cols(&f)
        } else {
            Vec::new()
        };
        drop(f);
        let p = &mut self.exps[e];
        p.bsky = bsky;
        p.rhs = rhs;
        p.ghat = ghat;
        p.d = p.w.iter().sum();
        p.ysum = p.w.iter().zip(&p.y).map(|(w, y)| w * y).sum();
    }

    /// Adds `f` times `g` to the summed kernel image.
    fn add_ghat(&mut self, g: &[f64], f: f64) {
        self.ghat
            .par_chunks_mut(1 << 14)
            .zip(g.par_chunks(1 << 14))
            .for_each(|(o, v)| {
                for (x, y) in o.iter_mut().zip(v) {
                    *x += y * f;
                }
            });
    }

    fn sum_kernels(&mut self) {
        let mut g = vec![0.0; self.nfx * self.nfy];
        let used: Vec<(&ExpPrep, f64)> = self
            .exps
            .iter()
            .zip(&self.alpha)
            .filter(|(_, a)| **a > 0.0)
            .map(|(p, a)| (p, *a))
            .collect();
        g.par_chunks_mut(1 << 14).enumerate().for_each(|(b, o)| {
            let (off, len) = (b << 14, o.len());
            for (p, a) in &used {
                for (x, v) in o.iter_mut().zip(&p.ghat[off..off + len]) {
                    *x += v * a;
                }
            }
        });
        self.ghat = g;
    }

    /// Changes one exposure's scalar weight and inclusion (no NUFFT: a sum of stored kernels).
    ///
    /// # Errors
    /// Index out of range or a weight that is not finite and >= 0.
    pub fn set_weight(&mut self, e: usize, weight: f64, include: bool) -> Result<(), ImageError> {
        if e >= self.exps.len() {
            return Err(ImageError::Settings(format!("exposure {e} out of range")));
        }
        if !(weight >= 0.0) || !weight.is_finite() {
            return Err(ImageError::Settings(format!(
                "weight {weight} is not finite and >= 0"
            )));
        }
        let old = self.alpha[e];
        self.alpha[e] = if include { weight } else { 0.0 };
        self.update_prior();
        if self.stored {
            self.sum_kernels();
        } else if self.alpha[e] != old {
            let g = self.ghat_of(&[(e, 1.0)], None);
            self.add_ghat(&g, self.alpha[e] - old);
        }
        Ok(())
    }

    /// Number of modes (the model's pixels).
    #[must_use]
    pub fn n_modes(&self) -> usize {
        (2 * self.hx + 1) * (2 * self.hy + 1)
    }

    /// The exposures with a free sky offset: included ones after the first included one.
    fn sky_free(&self) -> Vec<bool> {
        let mut first = true;
        self.alpha
            .iter()
            .zip(&self.exps)
            .map(|(a, p)| {
                if !self.settings.sky || *a <= 0.0 || p.d <= 0.0 {
                    return false;
                }
                if first {
                    first = false;
                    return false;
                }
                true
            })
            .collect()
    }

    /// Recomputes which model pixels no used input pixel (included exposure, weight > 0)
    /// overlaps, and the prior's weight.
    fn update_prior(&mut self) {
        self.prior = None;
        let eps = self.settings.hole_prior;
        if !(eps > 0.0) || !eps.is_finite() {
            return;
        }
        let mut cov = vec![false; self.lx * self.ly];
        let mut wsum = 0.0;
        self.walk_footprints(|_, aw| wsum += aw, |_, i| cov[i] = true);
        let ncov = cov.iter().filter(|c| **c).count();
        if ncov == 0 || ncov == cov.len() {
            return;
        }
        self.prior = Some(HolePrior {
            hole: cov.iter().map(|c| !c).collect(),
            lambda: eps * wsum / ncov as f64,
        });
    }

    /// Model pixels under the hole prior (no used input pixel overlaps them).
    #[must_use]
    pub fn hole_pixels(&self) -> usize {
        self.prior
            .as_ref()
            .map_or(0, |p| p.hole.iter().filter(|h| **h).count())
    }

    /// Adds the hole prior's normal operator `A^H D^T W_h D A c` to `out` (A: modes to model
    /// pixel values, D: the grid's forward differences on the edges touching a hole pixel).
    fn apply_prior(&self, c: &[C], out: &mut [C]) {
        let Some(pr) = &self.prior else {
            return;
        };
        let (lx, ly) = (self.lx, self.ly);
        let (hx, hy) = (self.hx as i64, self.hy as i64);
        let at = |kx: i64, ky: i64| {
            ky.rem_euclid(ly as i64) as usize * lx + kx.rem_euclid(lx as i64) as usize
        };
        let mut buf = vec![ZERO; lx * ly];
        for ky in -hy..=hy {
            for kx in -hx..=hx {
                buf[at(kx, ky)] = c[kidx(kx, ky, self.hx, self.hy)];
            }
        }
        nufft2::fft2_with(&self.gplans, &mut buf, true);
        let f: Vec<f64> = buf.iter().map(|z| z.re).collect();
        let mut r = vec![0.0; lx * ly];
        for y in 0..ly {
            for x in 0..lx {
                let a = y * lx + x;
                for b in [y * lx + (x + 1) % lx, ((y + 1) % ly) * lx + x] {
                    if a != b && (pr.hole[a] || pr.hole[b]) {
                        let d = pr.lambda * (f[a] - f[b]);
                        r[a] += d;
                        r[b] -= d;
                    }
                }
            }
        }
        for (z, v) in buf.iter_mut().zip(&r) {
            *z = C::new(*v, 0.0);
        }
        nufft2::fft2_with(&self.gplans, &mut buf, false);
        for ky in -hy..=hy {
            for kx in -hx..=hx {
                out[kidx(kx, ky, self.hx, self.hy)] += buf[at(kx, ky)];
            }
        }
    }

    fn ridge_diag(&self) -> f64 {
        self.settings.ridge * (self.lx * self.ly) as f64
    }

    /// G c (modes only, ridge included).
    fn apply_g(&self, c: &[C]) -> Vec<C> {
        let mut out = nufft2::toeplitz_apply(&self.plans, &self.ghat, c, self.hx, self.hy);
        self.apply_prior(c, &mut out);
        let r = self.ridge_diag();
        if r > 0.0 {
            for (o, v) in out.iter_mut().zip(c) {
                *o += v * r;
            }
        }
        out
    }

    /// The full normal operator on (modes, sky).
    fn apply(&self, c: &[C], s: &[f64], free: &[bool]) -> (Vec<C>, Vec<f64>) {
        let mut gc = self.apply_g(c);
        let ne = s.len();
        let used: Vec<usize> = (0..self.exps.len()).filter(|e| free[*e]).collect();
        let mut os = vec![0.0; ne];
        if used.is_empty() {
            return (gc, os);
        }
        const CH: usize = 1 << 13;
        let dots: Vec<Vec<f64>> = gc
            .par_chunks_mut(CH)
            .enumerate()
            .map(|(b, o)| {
                let off = b * CH;
                let cc = &c[off..off + o.len()];
                let mut d = vec![0.0; ne];
                for &e in &used {
                    let f = self.alpha[e] * s[e];
                    let bs = &self.exps[e].bsky[off..off + o.len()];
                    let mut dot = 0.0;
                    for ((x, b), ci) in o.iter_mut().zip(bs).zip(cc) {
                        *x += b * f;
                        dot += b.re * ci.re + b.im * ci.im;
                    }
                    d[e] = dot;
                }
                d
            })
            .collect();
        for &e in &used {
            let a = self.alpha[e];
            let dot: f64 = dots.iter().map(|d| d[e]).sum();
            os[e] = a * dot + a * self.exps[e].d * s[e];
        }
        (gc, os)
    }

    fn rhs(&self, free: &[bool]) -> (Vec<C>, Vec<f64>) {
        let mut b = vec![ZERO; self.n_modes()];
        let mut s = vec![0.0; self.exps.len()];
        for (e, p) in self.exps.iter().enumerate() {
            let a = self.alpha[e];
            if a <= 0.0 {
                continue;
            }
            for (o, r) in b.iter_mut().zip(&p.rhs) {
                *o += r * a;
            }
            if free[e] {
                s[e] = a * p.ysum;
            }
        }
        (b, s)
    }

    /// Conjugate gradients on (modes, sky) for the right-hand side (b, bs), from x0.
    fn cg(&self, b: &[C], bs: &[f64], x0: Option<&Coeffs>, free: &[bool]) -> Coeffs {
        let n = b.len();
        let mut x = x0.map_or_else(|| vec![ZERO; n], |c| c.modes.clone());
        let mut xs = x0.map_or_else(|| vec![0.0; bs.len()], |c| c.sky.clone());
        for (e, f) in free.iter().enumerate() {
            if !f {
                xs[e] = 0.0;
            }
        }
        // Jacobi: the mode diagonal is g(0) + ridge (constant), the sky diagonal a_e d_e.
        let g0: f64 = self
            .exps
            .iter()
            .zip(&self.alpha)
            .map(|(p, a)| p.d * a)
            .sum::<f64>()
            + self.ridge_diag();
        let ds: Vec<f64> = self
            .exps
            .iter()
            .zip(&self.alpha)
            .zip(free)
            .map(|((p, a), f)| if *f { p.d * a } else { 1.0 })
            .collect();
        // Mode vectors are long: fixed chunks in parallel, partial sums added in order.
        const CH: usize = 1 << 13;
        let pdot = |a: &[C], b: &[C]| -> f64 {
            a.par_chunks(CH)
                .zip(b.par_chunks(CH))
                .map(|(x, y)| {
                    x.iter()
                        .zip(y)
                        .map(|(u, v)| u.re * v.re + u.im * v.im)
                        .sum::<f64>()
                })
                .collect::<Vec<f64>>()
                .iter()
                .sum()
        };
        let sdot = |a: &[f64], b: &[f64]| -> f64 { a.iter().zip(b).map(|(x, y)| x * y).sum() };
        let (ax, axs) = self.apply(&x, &xs, free);
        let mut r: Vec<C> = b.iter().zip(&ax).map(|(b, a)| b - a).collect();
        drop(ax);
        let mut rs: Vec<f64> = bs
            .iter()
            .zip(&axs)
            .zip(free)
            .map(|((b, a), f)| if *f { b - a } else { 0.0 })
            .collect();
        let bnorm = (pdot(b, b) + sdot(bs, bs)).sqrt().max(f64::MIN_POSITIVE);
        // Preconditioned residual: r / g0 on the modes, rs / ds on the skies.
        let mut p: Vec<C> = r.iter().map(|v| v / g0).collect();
        let mut ps: Vec<f64> = rs.iter().zip(&ds).map(|(v, d)| v / d).collect();
        let rsz = |rs: &[f64]| -> f64 { rs.iter().zip(&ds).map(|(v, d)| v * v / d).sum() };
        let mut rr = pdot(&r, &r);
        let mut rz = rr / g0 + rsz(&rs);
        let mut it = 0;
        let mut rel = (rr + sdot(&rs, &rs)).sqrt() / bnorm;
        while it < self.settings.max_iter && rel > self.settings.tol {
            let (q, qs) = self.apply(&p, &ps, free);
            let pq = pdot(&p, &q) + sdot(&ps, &qs);
            if !(pq > 0.0) {
                break;
            }
            let al = rz / pq;
            rr = x
                .par_chunks_mut(CH)
                .zip(r.par_chunks_mut(CH))
                .zip(p.par_chunks(CH).zip(q.par_chunks(CH)))
                .map(|((xc, rc), (pc, qc))| {
                    let mut s = 0.0;
                    for i in 0..xc.len() {
                        xc[i] += pc[i] * al;
                        rc[i] -= qc[i] * al;
                        s += rc[i].norm_sqr();
                    }
                    s
                })
                .collect::<Vec<f64>>()
                .iter()
                .sum();
            for e in 0..xs.len() {
                xs[e] += ps[e] * al;
                rs[e] -= qs[e] * al;
            }
            it += 1;
            rel = (rr + sdot(&rs, &rs)).sqrt() / bnorm;
            let rz2 = rr / g0 + rsz(&rs);
            let be = rz2 / rz;
            rz = rz2;
            p.par_chunks_mut(CH)
                .zip(r.par_chunks(CH))
                .for_each(|(pc, rc)| {
                    for (pv, rv) in pc.iter_mut().zip(rc) {
                        *pv = rv / g0 + *pv * be;
                    }
                });
            for e in 0..ps.len() {
                ps[e] = rs[e] / ds[e] + ps[e] * be;
            }
        }
        Coeffs {
            modes: x,
            sky: xs,
            iterations: it,
            rel_residual: rel,
        }
    }

    /// Solves by CG, warm-started from the previous solution.
    ///
    /// # Errors
    /// When nothing is included.
    pub fn solve(&mut self) -> Result<Coeffs, ImageError> {
        let free = self.sky_free();
        if self
            .alpha
            .iter()
            .zip(&self.exps)
            .all(|(a, p)| a * p.d <= 0.0)
        {
            return Err(ImageError::Solve("no exposure is included".into()));
        }
        let (b, bs) = self.rhs(&free);
        let c = self.cg(&b, &bs, self.last.as_ref(), &free);
        self.last = Some(c.clone());
        Ok(c)
    }

    /// The dense normal matrix (modes then free sky offsets), ridge included, and the index map.
    fn dense(&self) -> (Vec<C>, usize, Vec<usize>) {
        let free = self.sky_free();
        let sky_idx: Vec<usize> = (0..self.exps.len()).filter(|e| free[*e]).collect();
        let nm = self.n_modes();
        let n = nm + sky_idx.len();
        // Kernel lags from the summed kernel's spectrum (a forward FFT of the real image).
        let mut g: Vec<C> = self.ghat.iter().map(|v| C::new(*v, 0.0)).collect();
        fft2(&mut g, self.nfx, self.nfy, false);
        let (kw, nfx, nfy) = (2 * self.hx + 1, self.nfx as i64, self.nfy as i64);
        let mut a = vec![ZERO; n * n];
        let r = self.ridge_diag();
        for i in 0..nm {
            let (iy, ix) = ((i / kw) as i64, (i % kw) as i64);
            for j in 0..nm {
                let (jy, jx) = ((j / kw) as i64, (j % kw) as i64);
                let (py, px) = ((iy - jy).rem_euclid(nfy), (ix - jx).rem_euclid(nfx));
                a[i * n + j] = g[(py * nfx + px) as usize];
            }
            a[i * n + i] += r;
        }
        if self.prior.is_some() {
            let cols: Vec<Vec<C>> = (0..nm)
                .into_par_iter()
                .map(|j| {
                    let mut e = vec![ZERO; nm];
                    e[j] = C::new(1.0, 0.0);
                    let mut col = vec![ZERO; nm];
                    self.apply_prior(&e, &mut col);
                    col
                })
                .collect();
            for (j, col) in cols.iter().enumerate() {
                for (i, v) in col.iter().enumerate() {
                    a[i * n + j] += v;
                }
            }
        }
        for (q, &e) in sky_idx.iter().enumerate() {
            let al = self.alpha[e];
            let p = &self.exps[e];
            for i in 0..nm {
                a[i * n + nm + q] = p.bsky[i] * al;
                a[(nm + q) * n + i] = p.bsky[i].conj() * al;
            }
            a[(nm + q) * n + nm + q] = C::new(al * p.d, 0.0);
        }
        (a, n, sky_idx)
    }

    /// The exact solution by dense Cholesky (the oracle; for small outputs only).
    ///
    /// # Errors
    /// When the system is too large (> 6000 unknowns) or not positive definite.
    pub fn solve_dense(&self) -> Result<Coeffs, ImageError> {
        let (mut a, n, sky_idx) = self.dense();
        if n > 6000 {
            return Err(ImageError::Solve(format!(
                "{n} unknowns is too many for the dense solve"
            )));
        }
        cholesky(&mut a, n)?;
        let free = self.sky_free();
        let (b, bs) = self.rhs(&free);
        let mut rhs = b;
        for &e in &sky_idx {
            rhs.push(C::new(bs[e], 0.0));
        }
        chol_solve(&a, n, &mut rhs);
        let nm = self.n_modes();
        let mut sky = vec![0.0; self.exps.len()];
        for (q, &e) in sky_idx.iter().enumerate() {
            sky[e] = rhs[nm + q].re;
        }
        rhs.truncate(nm);
        Ok(Coeffs {
            modes: rhs,
            sky,
            iterations: 0,
            rel_residual: 0.0,
        })
    }

    /// The model on the output grid (row-major `ny x nx`).
    #[must_use]
    pub fn image(&self, c: &Coeffs) -> Array2<f64> {
        let (lx, ly) = (self.lx, self.ly);
        let mut buf = vec![ZERO; lx * ly];
        let (hx, hy) = (self.hx as i64, self.hy as i64);
        for ky in -hy..=hy {
            for kx in -hx..=hx {
                buf[ky.rem_euclid(ly as i64) as usize * lx + kx.rem_euclid(lx as i64) as usize] =
                    c.modes[kidx(kx, ky, self.hx, self.hy)];
            }
        }
        fft2(&mut buf, lx, ly, true);
        Array2::from_shape_fn((self.ny, self.nx), |(y, x)| {
            buf[(y + self.offy) * lx + x + self.offx].re
        })
    }

    /// X*^H z: an output-grid image to the modes.
    fn adjoint(&self, z: &Array2<f64>) -> Vec<C> {
        let (lx, ly) = (self.lx, self.ly);
        let mut buf = vec![ZERO; lx * ly];
        for ((y, x), v) in z.indexed_iter() {
            buf[(y + self.offy) * lx + x + self.offx] = C::new(*v, 0.0);
        }
        fft2(&mut buf, lx, ly, false);
        let (hx, hy) = (self.hx as i64, self.hy as i64);
        let mut out = vec![ZERO; self.n_modes()];
        for ky in -hy..=hy {
            for kx in -hx..=hx {
                out[kidx(kx, ky, self.hx, self.hy)] =
                    buf[ky.rem_euclid(ly as i64) as usize * lx + kx.rem_euclid(lx as i64) as usize];
            }
        }
        out
    }

    /// `C* z` for an output-grid image z: the output covariance applied (one CG solve).
    fn cov_apply(&self, z: &Array2<f64>) -> (Array2<f64>, Vec<C>) {
        let free = self.sky_free();
        let b = self.adjoint(z);
        let bs = vec![0.0; self.exps.len()];
        let c = self.cg(&b, &bs, None, &free);
        let img = self.image(&c);
        (img, b)
    }

    /// Aperture photometry: the sum `a . f` over the output grid and its exact variance
    /// `a^T C* a` (one CG solve), the covariance of the output pixels included.
    ///
    /// # Errors
    /// When the aperture's shape is not the output grid's.
    pub fn aperture(&self, c: &Coeffs, a: &Array2<f64>) -> Result<(f64, f64), ImageError> {
        if a.dim() != (self.ny, self.nx) {
            return Err(ImageError::Settings(format!(
                "aperture shape {:?} is not ({}, {})",
                a.dim(),
                self.ny,
                self.nx
            )));
        }
        let f = self.image(c);
        let flux: f64 = f.iter().zip(a).map(|(x, y)| x * y).sum();
        let (ca, _) = self.cov_apply(a);
        let var: f64 = ca.iter().zip(a).map(|(x, y)| x * y).sum();
        Ok((flux, var))
    }

    /// Output noise correlation at lags 1..3 along x (row 0) and y (row 1) around pixel (y, x):
    /// one column of C* (one CG solve) divided by its diagonal entry.
    #[must_use]
    pub fn noise_correlation(&self, at: (usize, usize)) -> [[f64; 3]; 2] {
        let (y0, x0) = (at.0.min(self.ny - 1), at.1.min(self.nx - 1));
        let mut z = Array2::zeros((self.ny, self.nx));
        z[[y0, x0]] = 1.0;
        let (col, _) = self.cov_apply(&z);
        let v0 = col[[y0, x0]];
        let mut out = [[f64::NAN; 3]; 2];
        for l in 1..=3 {
            if x0 + l < self.nx {
                out[0][l - 1] = col[[y0, x0 + l]] / v0;
            }
            if y0 + l < self.ny {
                out[1][l - 1] = col[[y0 + l, x0]] / v0;
            }
        }
        out
    }

    /// Exact per-pixel variance by dense Cholesky: var(X) = |L^-1 x_X|^2.
    ///
    /// # Errors
    /// As [`Frizzle2d::solve_dense`].
    pub fn variance_exact(&self) -> Result<Array2<f64>, ImageError> {
        let (mut a, n, _) = self.dense();
        if n > 6000 {
            return Err(ImageError::Solve(format!(
                "{n} unknowns is too many for the exact variance"
            )));
        }
        cholesky(&mut a, n)?;
        let nm = self.n_modes();
        let mut var = Array2::zeros((self.ny, self.nx));
        let (lx, ly) = (self.lx as f64, self.ly as f64);
        let (hx, hy) = (self.hx as i64, self.hy as i64);
        let rows: Vec<((usize, usize), f64)> = {
            use rayon::prelude::*;
            let pix: Vec<(usize, usize)> = (0..self.ny)
                .flat_map(|y| (0..self.nx).map(move |x| (y, x)))
                .collect();
            pix.par_iter()
                .map(|&(y, x)| {
                    let mut v = vec![ZERO; n];
                    let (u, w) = ((x + self.offx) as f64, (y + self.offy) as f64);
                    for ky in -hy..=hy {
                        for kx in -hx..=hx {
                            let ph =
                                -std::f64::consts::TAU * (kx as f64 * u / lx + ky as f64 * w / ly);
                            v[kidx(kx, ky, self.hx, self.hy)] = C::from_polar(1.0, ph);
                        }
                    }
                    let _ = nm;
                    forward_sub(&a, n, &mut v);
                    ((y, x), v.iter().map(|c| c.norm_sqr()).sum::<f64>())
                })
                .collect()
        };
        for ((y, x), s) in rows {
            var[[y, x]] = s;
        }
        Ok(var)
    }

    /// Unbiased probe estimate of the per-pixel variance: mean over Rademacher z of z . (C* z).
    #[must_use]
    pub fn variance_probe(&self, probes: usize) -> Array2<f64> {
        let mut rng = super::synth::SplitMix(self.settings.seed ^ 0x5DEE_CE66_D1CE_4E5B);
        let mut acc = Array2::zeros((self.ny, self.nx));
        let n = probes.max(1);
        for _ in 0..n {
            let z = Array2::from_shape_fn((self.ny, self.nx), |_| {
                if rng.next_u64() >> 63 == 1 { 1.0 } else { -1.0 }
            });
            let (cz, _) = self.cov_apply(&z);
            acc.zip_mut_with(&(&cz * &z), |a, b| *a += b);
        }
        acc / n as f64
    }

    /// The model (plus the exposure's sky) at every used sample of exposure e.
    fn model_at(&self, c: &Coeffs, e: usize) -> Vec<f64> {
        let p = &self.exps[e];
        let tx = std::f64::consts::TAU / self.lx as f64;
        let ty = std::f64::consts::TAU / self.ly as f64;
        let ux: Vec<f64> = p.u.iter().map(|u| u * tx).collect();
        let uy: Vec<f64> = p.v.iter().map(|v| v * ty).collect();
        nufft2::type2_eps(&c.modes, self.hx, self.hy, &ux, &uy, self.eps)
            .iter()
            .map(|z| z.re + c.sky[e])
            .collect()
    }

    /// Per-exposure residual images (data - model - sky; NaN where unused) and chi^2/nu of the
    /// used, unclipped pixels (nu = their number: the fit's dof are shared by all exposures).
    #[must_use]
    pub fn residuals(&self, c: &Coeffs) -> (Vec<Array2<f64>>, Vec<f64>) {
        let mut imgs = Vec::new();
        let mut chi = Vec::new();
        for (e, p) in self.exps.iter().enumerate() {
            let m = self.model_at(c, e);
            let mut img = Array2::from_elem(p.shape, f64::NAN);
            let (mut s, mut k) = (0.0, 0usize);
            for (((&ix, y), mv), w) in p.idx.iter().zip(&p.y).zip(&m).zip(&p.w) {
                let r = y - mv;
                img[[ix / p.shape.1, ix % p.shape.1]] = r;
                if *w > 0.0 {
                    s += r * r * w;
                    k += 1;
                }
            }
            imgs.push(img);
            chi.push(if k > 0 { s / k as f64 } else { f64::NAN });
        }
        (imgs, chi)
    }

    /// Robust reweighting: clips samples beyond max(`clip`, 0.3 x the largest |z|) sigma (so the
    /// worst outliers, whose ringing inflates every residual, go first), only where at least
    /// `robust_min_votes` exposures overlap them; recomputes those exposures' kernels. Returns
    /// the number of newly clipped samples.
    fn clip(&mut self, c: &Coeffs, clip: f64) -> usize {
        let models: Vec<Vec<f64>> = (0..self.exps.len()).map(|e| self.model_at(c, e)).collect();
        let votes = self.exposure_votes();
        let min_votes = self.settings.robust_min_votes;
        let (lx, ly) = (self.lx as i64, self.ly as i64);
        // Each sample's |residual| in sigma; 0 (never clipped) where fewer than `min_votes`
        // exposures overlap its model pixel.
        let excess: Vec<Vec<f64>> = self
            .exps
            .iter()
            .zip(&models)
            .map(|(p, m)| {
                p.y.iter()
                    .zip(m)
                    .zip(&p.w)
                    .zip(p.u.iter().zip(&p.v))
                    .map(|(((y, mv), w), (u, v))| {
                        let i = ((v.round() as i64).rem_euclid(ly) * lx
                            + (u.round() as i64).rem_euclid(lx))
                            as usize;
                        if usize::from(votes[i]) >= min_votes {
                            ((y - mv) * w.sqrt()).abs()
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect();
        let mut zmax: f64 = 0.0;
        for (p, z) in self.exps.iter().zip(&excess) {
            for (z, w) in z.iter().zip(&p.w) {
                if *w > 0.0 {
                    zmax = zmax.max(*z);
                }
            }
        }
        let thr = clip.max(0.3 * zmax);
        let mut total = 0;
        // Without stored kernels: one NUFFT of the clipped samples' old weights, subtracted.
        let mut gone: Vec<(usize, f64)> = Vec::new();
        let mut gone_idx: Vec<Vec<usize>> = Vec::new();
        let mut gone_w: Vec<Vec<f64>> = Vec::new();
        for (e, z) in excess.iter().enumerate() {
            let p = &mut self.exps[e];
            let mut k = 0;
            let (mut idx, mut ws) = (Vec::new(), Vec::new());
            for (j, (z, w)) in z.iter().zip(p.w.iter_mut()).enumerate() {
                if *w > 0.0 && *z > thr {
                    idx.push(j);
                    ws.push(*w);
                    *w = 0.0;
                    k += 1;
                }
            }
            if k > 0 {
                self.kernel(e);
                total += k;
                if !self.stored && self.alpha[e] > 0.0 {
                    gone.push((e, self.alpha[e]));
                    gone_idx.push(idx);
                    gone_w.push(ws);
                }
            }
        }
        if total > 0 {
            self.update_prior();
            if self.stored {
                self.sum_kernels();
            } else if !gone.is_empty() {
                // Restore the old weights of the clipped samples for the NUFFT, then clear them.
                for ((e, _), (idx, ws)) in gone.iter().zip(gone_idx.iter().zip(&gone_w)) {
                    for (j, w) in idx.iter().zip(ws) {
                        self.exps[*e].w[*j] = *w;
                    }
                }
                let g = self.ghat_of(&gone, Some(&gone_idx));
                for ((e, _), idx) in gone.iter().zip(&gone_idx) {
                    for j in idx {
                        self.exps[*e].w[*j] = 0.0;
                    }
                }
                self.add_ghat(&g, -1.0);
            }
        }
        total
    }

    /// Walks the used samples (an included exposure of weight > 0, a sample of weight > 0):
    /// `sample(e, alpha * w)` once per sample of exposure `e`, then `pixel(e, i)` for every model
    /// pixel `i` its footprint (a square of half-width `half + 0.5`, wrapped) overlaps. The hole
    /// prior's coverage and the clipping's exposure votes both count these footprints.
    fn walk_footprints(
        &self,
        mut sample: impl FnMut(usize, f64),
        mut pixel: impl FnMut(usize, usize),
    ) {
        let (lx, ly) = (self.lx as i64, self.ly as i64);
        for (e, (p, a)) in self.exps.iter().zip(&self.alpha).enumerate() {
            if *a <= 0.0 {
                continue;
            }
            let h = p.half + 0.5;
            for ((u, v), w) in p.u.iter().zip(&p.v).zip(&p.w) {
                if !(*w > 0.0) {
                    continue;
                }
                sample(e, a * w);
                let (x0, x1) = ((u - h).ceil() as i64, (u + h).floor() as i64);
                let (y0, y1) = ((v - h).ceil() as i64, (v + h).floor() as i64);
                for y in y0..=y1 {
                    if (y as f64 - v).abs() >= h {
                        continue;
                    }
                    let row = y.rem_euclid(ly) * lx;
                    for x in x0..=x1 {
                        if (x as f64 - u).abs() < h {
                            pixel(e, (row + x.rem_euclid(lx)) as usize);
                        }
                    }
                }
            }
        }
    }

    /// How many exposures (included, weight > 0) have a used sample whose footprint overlaps
    /// each model pixel (the footprints as the hole prior's). A disagreement between samples
    /// of fewer than three exposures cannot say which is wrong.
    fn exposure_votes(&self) -> Vec<u16> {
        let mut count = vec![0u16; self.lx * self.ly];
        let mut seen = vec![usize::MAX; self.lx * self.ly];
        self.walk_footprints(
            |_, _| {},
            |e, i| {
                if seen[i] != e {
                    seen[i] = e;
                    count[i] = count[i].saturating_add(1);
                }
            },
        );
        count
    }

    /// Leave-one-out chi^2/nu per exposure: refit without it, then its pixels' weighted squared
    /// residuals against that fit (after its own best sky offset when skies are fitted) per dof.
    ///
    /// # Errors
    /// As [`Frizzle2d::solve`].
    pub fn loo(&mut self, full: &Coeffs) -> Result<Vec<f64>, ImageError> {
        let mut out = vec![f64::NAN; self.exps.len()];
        let saved = self.alpha.clone();
        let base = if self.stored {
            Vec::new()
        } else {
            self.ghat.clone()
        };
        for e in 0..self.exps.len() {
            if saved[e] <= 0.0
                || saved
                    .iter()
                    .enumerate()
                    .filter(|(i, a)| *i != e && **a > 0.0)
                    .count()
                    == 0
            {
                continue;
            }
            self.alpha = saved.clone();
            self.alpha[e] = 0.0;
            self.update_prior();
            if self.stored {
                self.sum_kernels();
            } else {
                self.ghat.clone_from(&base);
                let g = self.ghat_of(&[(e, saved[e])], None);
                self.add_ghat(&g, -1.0);
            }
            let free = self.sky_free();
            let (b, bs) = self.rhs(&free);
            let c = self.cg(&b, &bs, Some(full), &free);
            let mut cz = c.clone();
            cz.sky[e] = 0.0;
            let m = self.model_at(&cz, e);
            let p = &self.exps[e];
            let (mut sw, mut swr, mut n) = (0.0, 0.0, 0usize);
            for ((y, mv), w) in p.y.iter().zip(&m).zip(&p.w) {
                if *w > 0.0 {
                    sw += w;
                    swr += w * (y - mv);
                    n += 1;
                }
            }
            let s = if self.settings.sky && sw > 0.0 {
                swr / sw
            } else {
                0.0
            };
            let mut chi = 0.0;
            for ((y, mv), w) in p.y.iter().zip(&m).zip(&p.w) {
                if *w > 0.0 {
                    chi += w * (y - mv - s).powi(2);
                }
            }
            let nu = n.saturating_sub(usize::from(self.settings.sky));
            out[e] = if nu > 0 { chi / nu as f64 } else { f64::NAN };
        }
        self.alpha = saved;
        self.update_prior();
        if self.stored {
            self.sum_kernels();
        } else {
            self.ghat = base;
        }
        Ok(out)
    }

    /// Exposure e's sample weights as the fit uses them (its input-pixel grid; 0 where masked,
    /// clipped by the robust reweighting or off the model period); None when out of range.
    #[must_use]
    pub fn sample_weights(&self, e: usize) -> Option<Array2<f64>> {
        let p = self.exps.get(e)?;
        let mut out = Array2::zeros(p.shape);
        for (&ix, w) in p.idx.iter().zip(&p.w) {
            out[[ix / p.shape.1, ix % p.shape.1]] = *w;
        }
        Some(out)
    }

    /// Samples per exposure dropped for landing outside the model period.
    #[must_use]
    pub fn dropped(&self) -> Vec<usize> {
        self.exps.iter().map(|p| p.dropped).collect()
    }
}

/// The mean distance (output pixels) between neighbouring input pixel centres of a pixmap,
/// the larger of the two axes (1 when it cannot be measured).
fn pixel_spacing(pm: &Array3<f64>) -> f64 {
    let (ny, nx, _) = pm.dim();
    let mut best: f64 = 0.0;
    for (dy, dx) in [(0, 1), (1, 0)] {
        let (mut s, mut n) = (0.0, 0usize);
        for j in 0..ny.saturating_sub(dy) {
            for i in 0..nx.saturating_sub(dx) {
                let a = (pm[[j + dy, i + dx, 0]] - pm[[j, i, 0]])
                    .hypot(pm[[j + dy, i + dx, 1]] - pm[[j, i, 1]]);
                if a.is_finite() {
                    s += a;
                    n += 1;
                }
            }
        }
        if n > 0 {
            best = best.max(s / n as f64);
        }
    }
    if best > 0.0 { best } else { 1.0 }
}

/// Relative accuracy of the NUFFTs for a CG tolerance: a hundredth of it (so kernel errors stay
/// below the solver's for condition numbers up to ~100), within [1e-14, 1e-8].
fn nufft_eps(tol: f64) -> f64 {
    if tol.is_finite() {
        (tol * 1e-2).clamp(1e-14, 1e-8)
    } else {
        1e-12
    }
}

/// In-place Cholesky of a Hermitian positive-definite row-major n x n matrix (lower triangle).
fn cholesky(a: &mut [C], n: usize) -> Result<(), ImageError> {
    for j in 0..n {
        let mut d = a[j * n + j].re;
        for k in 0..j {
            d -= a[j * n + k].norm_sqr();
        }
        if !(d > 0.0) {
            return Err(ImageError::Solve(format!(
                "normal matrix not positive definite at row {j} (add a ridge, or more dithers)"
            )));
        }
        let d = d.sqrt();
        a[j * n + j] = C::new(d, 0.0);
        let (head, tail) = a.split_at_mut((j + 1) * n);
        let rowj = &head[j * n..j * n + j];
        tail.chunks_mut(n).for_each(|rowi| {
            let mut s = rowi[j];
            for k in 0..j {
                s -= rowi[k] * rowj[k].conj();
            }
            rowi[j] = s / d;
        });
    }
    Ok(())
}

fn forward_sub(l: &[C], n: usize, b: &mut [C]) {
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * n + k] * b[k];
        }
        b[i] = s / l[i * n + i].re;
    }
}

fn chol_solve(l: &[C], n: usize, b: &mut [C]) {
    forward_sub(l, n, b);
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= l[k * n + i].conj() * b[k];
        }
        b[i] = s / l[i * n + i].re;
    }
}

/// Everything the forward model outputs.
pub struct FrizzleResult {
    pub sci: Array2<f64>,
    pub var: Array2<f64>,
    pub var_kind: VarianceKind,
    /// Input pixels (all included exposures) overlapping each output pixel (pixfrac 1).
    pub coverage: Array2<u32>,
    /// Bit 1: no input pixel overlaps this output pixel.
    pub dq: Array2<u8>,
    pub residuals: Vec<Array2<f64>>,
    pub chi2nu: Vec<f64>,
    pub loo_chi2nu: Vec<f64>,
    pub sky: Vec<f64>,
    /// Lags 1..3 along x (row 0) and y (row 1) at the output centre.
    pub noise_corr: [[f64; 3]; 2],
    pub iterations: usize,
    pub rel_residual: f64,
    pub clipped: usize,
    pub coeffs: Coeffs,
    pub model: Frizzle2d,
}

/// The whole forward-model combination: prepare, solve (robustly), variance, coverage,
/// residuals, leave-one-out scores, noise correlation.
///
/// # Errors
/// Bad inputs or settings (named), or a failed dense solve.
pub fn combine(
    exps: &[Exposure2d],
    out_shape: (usize, usize),
    s: &FrizzleSettings,
) -> Result<FrizzleResult, ImageError> {
    let mut m = Frizzle2d::new(exps, out_shape, s)?;
    let mut c = m.solve()?;
    let mut clipped = 0;
    if let Some(k) = s.robust_clip {
        for _ in 0..s.robust_passes {
            let n = m.clip(&c, k);
            clipped += n;
            if n == 0 {
                break;
            }
            c = m.solve()?;
        }
    }
    let sci = m.image(&c);
    let nmodes = m.n_modes() + exps.len();
    let (var, var_kind) = match s.variance {
        VarianceMode::None => (Array2::from_elem(out_shape, f64::NAN), VarianceKind::None),
        VarianceMode::Exact => (m.variance_exact()?, VarianceKind::Exact),
        VarianceMode::Probe(n) => (m.variance_probe(n), VarianceKind::Probe(n)),
        VarianceMode::Auto { probes } => {
            if nmodes <= s.exact_max_modes {
                (m.variance_exact()?, VarianceKind::Exact)
            } else {
                (m.variance_probe(probes), VarianceKind::Probe(probes))
            }
        }
    };
    let (coverage, dq) = if s.coverage {
        let d = super::drizzle::drizzle(exps, out_shape, 1.0)?;
        let dq = d.count.mapv(|c| u8::from(c == 0));
        (d.count, dq)
    } else {
        (Array2::zeros(out_shape), Array2::zeros(out_shape))
    };
    let (residuals, chi2nu) = m.residuals(&c);
    let loo_chi2nu = if s.loo {
        m.loo(&c)?
    } else {
        vec![f64::NAN; exps.len()]
    };
    let noise_corr = m.noise_correlation((out_shape.0 / 2, out_shape.1 / 2));
    Ok(FrizzleResult {
        sci,
        var,
        var_kind,
        coverage,
        dq,
        residuals,
        chi2nu,
        loo_chi2nu,
        sky: c.sky.clone(),
        noise_corr,
        iterations: c.iterations,
        rel_residual: c.rel_residual,
        clipped,
        coeffs: c,
        model: m,
    })
}

/// A pure-translation pixmap: input pixel (iy, ix) lands at output (s (ix + dx) + x0, s (iy + dy) + y0).
#[must_use]
pub fn shift_pixmap(
    ny: usize,
    nx: usize,
    dx: f64,
    dy: f64,
    s: f64,
    x0: f64,
    y0: f64,
) -> Array3<f64> {
    let mut pm = Array3::zeros((ny, nx, 2));
    for j in 0..ny {
        for i in 0..nx {
            pm[[j, i, 0]] = s * (i as f64 + dx) + x0;
            pm[[j, i, 1]] = s * (j as f64 + dy) + y0;
        }
    }
    pm
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::synth::SplitMix;

    fn random_set(n: usize, k: usize, s: f64, seed: u64) -> (Vec<Exposure2d>, (usize, usize)) {
        let mut rng = SplitMix(seed);
        let exps = (0..k)
            .map(|e| {
                let (dx, dy) = if e == 0 {
                    (0.0, 0.0)
                } else {
                    (rng.uniform(), rng.uniform())
                };
                let sci = Array2::from_shape_fn((n, n), |_| rng.normal());
                let ivar = Array2::from_shape_fn((n, n), |_| 0.5 + rng.uniform());
                Exposure2d::new(
                    format!("e{e}"),
                    sci,
                    ivar,
                    shift_pixmap(n, n, dx, dy, s, 0.0, 0.0),
                )
                .expect("shapes")
            })
            .collect();
        let m = ((n as f64 - 1.0) * s).floor() as usize;
        (exps, (m, m))
    }

    #[test]
    fn cg_matches_the_dense_solve() {
        let (exps, shape) = random_set(9, 6, 1.5, 7);
        for sky in [false, true] {
            let st = FrizzleSettings {
                sky,
                ridge: 1e-3,
                tol: 1e-13,
                ..FrizzleSettings::default()
            };
            let mut m = Frizzle2d::new(&exps, shape, &st).expect("prepare");
            let c = m.solve().expect("cg");
            let d = m.solve_dense().expect("dense");
            let (a, b) = (m.image(&c), m.image(&d));
            let scale = b.iter().fold(0.0f64, |s, v| s.max(v.abs()));
            let err = a
                .iter()
                .zip(&b)
                .fold(0.0f64, |s, (x, y)| s.max((x - y).abs()));
            println!(
                "sky {sky}: CG {} iterations, max |CG - dense| = {err:.2e} (scale {scale:.2})",
                c.iterations
            );
            assert!(err < 1e-8 * scale.max(1.0), "CG vs dense {err:e}");
            for (x, y) in c.sky.iter().zip(&d.sky) {
                assert!((x - y).abs() < 1e-8, "sky {x} vs {y}");
            }
            assert_eq!(
                c.sky.iter().filter(|v| **v != 0.0).count(),
                if sky { 5 } else { 0 }
            );
        }
    }

    /// One summed kernel updated by NUFFTs of the changes (large outputs) against per-exposure
    /// kernels (the live path): weight changes, robust clipping and leave-one-out agree.
    #[test]
    fn the_summed_kernel_path_matches_the_stored_kernels() {
        let (mut exps, shape) = random_set(9, 6, 1.5, 5);
        exps[2].sci[[4, 4]] += 40.0;
        exps[4].sci[[1, 6]] -= 30.0;
        let base = FrizzleSettings {
            ridge: 1e-3,
            tol: 1e-12,
            variance: VarianceMode::None,
            coverage: false,
            ..FrizzleSettings::default()
        };
        let low = FrizzleSettings {
            kernel_memory: 0,
            ..base.clone()
        };
        let a = combine(&exps, shape, &base).expect("stored");
        let b = combine(&exps, shape, &low).expect("summed");
        assert!(a.model.stored && !b.model.stored);
        let d = a
            .sci
            .iter()
            .zip(&b.sci)
            .fold(0.0f64, |s, (x, y)| s.max((x - y).abs()));
        println!(
            "summed vs stored kernels: max |SCI diff| {d:.2e}, clipped {} / {}",
            a.clipped, b.clipped
        );
        assert!(d < 1e-8, "{d:e}");
        assert_eq!(a.clipped, b.clipped);
        assert!(a.clipped >= 2);
        for (x, y) in a.loo_chi2nu.iter().zip(&b.loo_chi2nu) {
            assert!((x - y).abs() < 1e-8 * x.abs().max(1.0), "loo {x} vs {y}");
        }
        let (mut ma, mut mb) = (a.model, b.model);
        for (e, w, inc) in [
            (3, 0.5, true),
            (1, 1.0, false),
            (3, 2.0, true),
            (1, 1.0, true),
        ] {
            ma.set_weight(e, w, inc).expect("weight");
            mb.set_weight(e, w, inc).expect("weight");
            let (ca, cb) = (ma.solve().expect("a"), mb.solve().expect("b"));
            let d = ma
                .image(&ca)
                .iter()
                .zip(&mb.image(&cb))
                .fold(0.0f64, |s, (x, y)| s.max((x - y).abs()));
            assert!(d < 1e-8, "after exposure {e} -> {w}, {inc}: {d:e}");
            let dd = mb.solve_dense().expect("dense");
            let d = mb
                .image(&cb)
                .iter()
                .zip(&mb.image(&dd))
                .fold(0.0f64, |s, (x, y)| s.max((x - y).abs()));
            assert!(d < 1e-8, "summed path vs dense after {e}: {d:e}");
        }
    }

    /// The robust clipping's vote: a cosmic ray in one of two exposures is kept (two disagreeing
    /// exposures cannot say which is wrong), in one of three it is clipped; with the vote off
    /// (`robust_min_votes` 0) the two-exposure one is clipped too (the test can fail).
    #[test]
    fn clipping_needs_three_overlapping_exposures() {
        let base = FrizzleSettings {
            ridge: 1e-3,
            variance: VarianceMode::None,
            loo: false,
            coverage: false,
            ..FrizzleSettings::default()
        };
        let mut got = Vec::new();
        for (k, votes) in [(2, 3), (3, 3), (2, 0)] {
            let (mut exps, shape) = random_set(9, k, 1.5, 11);
            exps[1].sci[[4, 4]] += 60.0;
            let st = FrizzleSettings {
                robust_min_votes: votes,
                ..base.clone()
            };
            let r = combine(&exps, shape, &st).expect("combine");
            let cr_gone = r.model.sample_weights(1).is_some_and(|w| w[[4, 4]] == 0.0);
            println!(
                "{k} exposures, min votes {votes}: {} clipped, the cosmic ray clipped: {cr_gone}",
                r.clipped
            );
            got.push((r.clipped, cr_gone));
        }
        assert_eq!(got[0], (0, false), "two exposures: nothing may be clipped");
        assert!(got[1].1, "three exposures: the cosmic ray must be clipped");
        assert!(
            got[2].1,
            "two exposures without the vote: the cosmic ray is clipped"
        );
    }

    /// A saturated star masked in every exposure, PSFs that differ per exposure (as the real
    /// DECam testcase6): the masked model pixels are unconstrained modes. Without the hole prior
    /// they oscillate far beyond anything in the data and CG stalls; with it CG converges and
    /// the hole holds a bounded (harmonic) fill, and next to the mask the output agrees with
    /// drizzle's as in the far field.
    #[test]
    fn a_masked_saturated_star_leaves_no_ringing() {
        use crate::image::synth::{SynthSpec, generate};
        let spec = SynthSpec {
            n: 40,
            n_exposures: 2,
            s: 1.0,
            margin: 0.0,
            max_roll_deg: 0.2,
            psf_sigma: 1.6,
            psf_sigma_spread: 0.25,
            n_stars: 6,
            flux: (20.0, 3000.0),
            noise: 0.05,
            star_mask_radius: 4.5,
            seed: 4,
            ..SynthSpec::default()
        };
        let d = generate(&spec);
        let shape = d.out_shape;
        let drz = crate::image::drizzle::drizzle(&d.exposures, shape, 1.0).expect("drizzle");
        let hole: Vec<bool> = drz.wht.iter().map(|w| !(*w > 0.0)).collect();
        assert!(hole.iter().filter(|h| **h).count() > 20, "no hole");
        let mut out = Vec::new();
        for prior in [1.0, 0.0] {
            let st = FrizzleSettings {
                hole_prior: prior,
                variance: VarianceMode::None,
                loo: false,
                coverage: false,
                max_iter: 1000,
                ..FrizzleSettings::default()
            };
            let r = combine(&d.exposures, shape, &st).expect("combine");
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            let mut hole_max: f64 = 0.0;
            for (v, h) in r.sci.iter().zip(&hole) {
                if *h {
                    hole_max = hole_max.max(v.abs());
                } else {
                    lo = lo.min(*v);
                    hi = hi.max(*v);
                }
            }
            println!(
                "hole prior {prior}: {} CG its (rel {:.1e}), {} clipped, max |SCI| in the hole {hole_max:.3}, covered SCI {lo:.3}..{hi:.3}",
                r.iterations, r.rel_residual, r.clipped
            );
            out.push((r.iterations, r.rel_residual, hole_max, lo, hi));
        }
        let (its, rel, hmax, lo, hi) = out[0];
        assert!(
            its < 1000 && rel <= 1e-10,
            "with the prior CG stalls: {its} {rel:e}"
        );
        assert!(
            hmax <= hi.abs().max(lo.abs()) * 1.0001,
            "overshoot in the hole: {hmax}"
        );
        let (_, _, hmax0, lo0, hi0) = out[1];
        assert!(
            hmax0 > 2.0 * hi0.abs().max(lo0.abs()),
            "without the prior the hole should ring (the test would not detect it): {hmax0}"
        );
    }

    #[test]
    fn perfect_dithers_reproduce_the_interlaced_image() {
        // 3 x 3 third-pixel dithers of 7 x 7 frames onto a 21 x 21 grid: M = P, exact.
        let n = 7;
        let mut rng = SplitMix(3);
        let mut exps = Vec::new();
        let mut inter = Array2::zeros((3 * n, 3 * n));
        for b in 0..3 {
            for a in 0..3 {
                let sci = Array2::from_shape_fn((n, n), |_| rng.normal());
                for j in 0..n {
                    for i in 0..n {
                        inter[[3 * j + b, 3 * i + a]] = sci[[j, i]];
                    }
                }
                let pm = shift_pixmap(n, n, a as f64 / 3.0, b as f64 / 3.0, 3.0, 0.0, 0.0);
                exps.push(
                    Exposure2d::new(format!("{a}{b}"), sci, Array2::ones((n, n)), pm)
                        .expect("shapes"),
                );
            }
        }
        let st = FrizzleSettings {
            sky: false,
            tol: 1e-14,
            ..FrizzleSettings::default()
        };
        let mut m = Frizzle2d::new(&exps, (3 * n, 3 * n), &st).expect("prepare");
        let c = m.solve().expect("cg");
        let d = m.solve_dense().expect("dense");
        for (what, co) in [("CG", &c), ("dense", &d)] {
            let img = m.image(co);
            let err = img
                .iter()
                .zip(&inter)
                .fold(0.0f64, |s, (x, y)| s.max((x - y).abs()));
            println!(
                "interlacing, {what}: max |output - interlaced| = {err:.2e} ({} CG iterations)",
                c.iterations
            );
            assert!(err < 1e-10, "{what}: {err:e}");
        }
        // Variance 1 everywhere (unit ivar, exact interlacing), no correlation.
        let v = m.variance_exact().expect("variance");
        assert!(
            v.iter().all(|x| (x - 1.0).abs() < 1e-9),
            "variance {:?}",
            v.iter().take(3).collect::<Vec<_>>()
        );
        let rho = m.noise_correlation((10, 10));
        assert!(rho.iter().flatten().all(|r| r.abs() < 1e-9), "{rho:?}");
    }

    #[test]
    fn probe_variance_and_aperture_agree_with_the_dense_inverse() {
        let (exps, shape) = random_set(8, 5, 1.5, 11);
        let st = FrizzleSettings {
            sky: true,
            tol: 1e-12,
            ..FrizzleSettings::default()
        };
        let mut m = Frizzle2d::new(&exps, shape, &st).expect("prepare");
        let c = m.solve().expect("cg");
        let exact = m.variance_exact().expect("exact");
        let probe = m.variance_probe(400);
        let (me, mp) = (exact.mean().unwrap_or(0.0), probe.mean().unwrap_or(0.0));
        println!("mean variance: exact {me:.4}, 400 probes {mp:.4}");
        assert!(
            (mp / me - 1.0).abs() < 0.03,
            "probe mean {mp} vs exact {me}"
        );
        // Aperture variance a^T C a with a = one pixel equals that pixel's exact variance.
        let mut a = Array2::zeros(shape);
        a[[4, 5]] = 1.0;
        let (_, va) = m.aperture(&c, &a).expect("aperture");
        assert!(
            (va / exact[[4, 5]] - 1.0).abs() < 1e-7,
            "{va} vs {}",
            exact[[4, 5]]
        );
        // A 3 x 3 aperture against a Monte Carlo of the estimator (noise redrawn, same geometry).
        a.fill(0.0);
        a.slice_mut(ndarray::s![3..6, 3..6]).fill(1.0);
        let (_, va) = m.aperture(&c, &a).expect("aperture");
        let mut rng = SplitMix(99);
        let (mut s1, mut s2, nrep) = (0.0, 0.0, 400);
        for _ in 0..nrep {
            let ex: Vec<Exposure2d> = exps
                .iter()
                .map(|x| {
                    let mut y = x.clone();
                    y.sci = x.ivar.mapv(|iv| rng.normal() / iv.sqrt());
                    y
                })
                .collect();
            let mut mm = Frizzle2d::new(&ex, shape, &st).expect("prepare");
            let cc = mm.solve().expect("cg");
            let f: f64 = mm.image(&cc).iter().zip(&a).map(|(x, y)| x * y).sum();
            s1 += f;
            s2 += f * f;
        }
        let emp = s2 / nrep as f64 - (s1 / nrep as f64).powi(2);
        println!("3x3 aperture variance: stated {va:.4}, Monte Carlo {emp:.4}");
        assert!((emp / va - 1.0).abs() < 0.2, "{emp} vs {va}");
    }
}
