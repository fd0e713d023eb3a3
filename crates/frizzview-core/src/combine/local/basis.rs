//! The design rows of each visit: kernel values at its pixels ([`VisitBasis`]), the map from
//! rest-frame ln(lambda) to output pixels, and the key they are cached by.

use std::sync::Arc;

use rayon::prelude::*;

use super::kernel::Kernel;
use crate::combine::memo::hash_f64;
use crate::combine::quadrature::{GH_N, gauss_hermite};
use crate::combine::types::{CombineError, PreparedVisit};
use crate::model::{OutputGrid, Visit};

/// Visits per partial sum: fixed (not tied to the thread count) so sums are reproducible.
pub(super) const GROUP: usize = 8;

/// Pixels per parallel chunk of one visit's kernel rows and sums (fixed, like [`GROUP`]).
pub(super) const PIXEL_CHUNK: usize = 2048;

/// Maps rest-frame ln(lambda) to a fractional output-pixel index.
#[derive(Clone, Debug)]
pub(super) struct GridMap {
    pub(super) x0: f64,
    pub(super) step: f64,
    /// Non-uniform grids keep their nodes (piecewise-linear index map).
    pub(super) nodes: Option<Vec<f64>>,
    pub(super) n: usize,
}

impl GridMap {
    /// The map of a grid the local basis can fit on (at least 2 pixels).
    pub(super) fn checked(grid: &OutputGrid) -> Result<Self, CombineError> {
        let p = grid.len();
        if p < 2 {
            return Err(CombineError::Other(format!(
                "local basis: the output grid has {p} pixels, need at least 2"
            )));
        }
        Ok(Self::new(grid))
    }

    pub(super) fn new(grid: &OutputGrid) -> Self {
        let n = grid.len();
        let x = &grid.ln_wave;
        let step = grid.mean_step();
        let uniform = x
            .iter()
            .enumerate()
            .all(|(i, &xi)| (xi - (x[0] + step * i as f64)).abs() <= 1e-6 * step);
        Self {
            x0: x[0],
            step,
            nodes: (!uniform).then(|| x.clone()),
            n,
        }
    }

    pub(super) fn u(&self, x: f64) -> f64 {
        match &self.nodes {
            None => (x - self.x0) / self.step,
            Some(nodes) => {
                let i = nodes.partition_point(|&v| v <= x).clamp(1, self.n - 1);
                let (a, b) = (nodes[i - 1], nodes[i]);
                (i - 1) as f64 + (x - a) / (b - a)
            }
        }
    }

    /// du/dx at x.
    pub(super) fn du_dx(&self, x: f64) -> f64 {
        match &self.nodes {
            None => 1.0 / self.step,
            Some(nodes) => {
                let i = nodes.partition_point(|&v| v <= x).clamp(1, self.n - 1);
                1.0 / (nodes[i] - nodes[i - 1])
            }
        }
    }

    /// Local output spacing around index u (for the LSF width in pixels).
    pub(super) fn local_step(&self, u: f64) -> f64 {
        match &self.nodes {
            None => self.step,
            Some(nodes) => {
                let i = (u.max(0.0) as usize).clamp(1, self.n - 1);
                nodes[i] - nodes[i - 1]
            }
        }
    }

    pub(super) fn signature(&self) -> (u64, u64, u64, usize) {
        let h = self.nodes.as_ref().map_or(0, |v| hash_f64(v));
        (self.x0.to_bits(), self.step.to_bits(), h, self.n)
    }
}

/// Pixels whose index is outside the output grid by more than half a pixel are not fitted.
pub(super) const NO_ROW: i64 = i64::MIN;

/// Kernel evaluations of one visit: for pixel k, `vals[k*width..]` are g_{j0[k]+m}, m < width.
///
/// Values are stored as f32 (relative rounding 6e-8, far below any noise level) so that 1000
/// APOGEE visits fit in memory; the sums themselves are accumulated in f64.
#[derive(Debug)]
pub struct VisitBasis {
    pub(super) visit: Arc<Visit>,
    pub(super) key: CacheKey,
    /// Functions per row.
    pub width: usize,
    /// First function index per pixel (`i64::MIN` = pixel outside the grid).
    pub(super) j0: Vec<i64>,
    /// Fractional output index per pixel (censoring and flags).
    pub(super) u: Vec<f64>,
    pub(super) vals: Vec<f32>,
}

impl VisitBasis {
    pub(super) fn compute(pv: &PreparedVisit, map: &GridMap, kernel: Kernel) -> Self {
        let n = pv.x_rest.len();
        let lsf = pv.lsf_sigma;
        let base_w = kernel.width();
        // Gaussian LSF: the design row is the kernel averaged over shifted positions (16-point
        // Gauss-Hermite), so the row is wider by the largest node shift in pixels.
        let max_shift_px = if lsf > 0.0 {
            std::f64::consts::SQRT_2 * gauss_hermite().0[GH_N - 1] * lsf / map.step.abs()
        } else {
            0.0
        };
        let width = if lsf > 0.0 {
            base_w + 2 * (max_shift_px.ceil() as usize) + 2
        } else {
            base_w
        };
        let mut j0 = vec![NO_ROW; n];
        let mut u = vec![f64::NAN; n];
        let mut vals = vec![0.0_f32; n * width];
        let lo = -0.5;
        let hi = map.n as f64 - 0.5;
        // Chunks of pixels in parallel: a dragged shift re-evaluates one visit, which would
        // otherwise run on one core.
        j0.par_chunks_mut(PIXEL_CHUNK)
            .zip(u.par_chunks_mut(PIXEL_CHUNK))
            .zip(vals.par_chunks_mut(PIXEL_CHUNK * width))
            .enumerate()
            .for_each(|(c, ((j0, u), vals))| {
                let mut row = vec![0.0; width];
                let mut tmp = vec![0.0; base_w];
                for (kk, (j0k, uk_out)) in j0.iter_mut().zip(u.iter_mut()).enumerate() {
                    let k = c * PIXEL_CHUNK + kk;
                    let uk = map.u(pv.x_rest[k]);
                    *uk_out = uk;
                    if !(uk >= lo && uk <= hi) {
                        continue;
                    }
                    row.fill(0.0);
                    if lsf > 0.0 {
                        let sh = std::f64::consts::SQRT_2 * lsf / map.local_step(uk);
                        let (gh_nodes, gh_weights) = gauss_hermite();
                        let first = kernel.first(uk - sh * gh_nodes[GH_N - 1]);
                        *j0k = first;
                        for (&t, &wq) in gh_nodes.iter().zip(gh_weights) {
                            let uq = uk + sh * t;
                            let jq = kernel.row(uq, &mut tmp);
                            let wn = wq / std::f64::consts::PI.sqrt();
                            for (m, &v) in tmp.iter().enumerate() {
                                let idx = jq + m as i64 - first;
                                if idx >= 0 && (idx as usize) < width {
                                    row[idx as usize] += wn * v;
                                }
                            }
                        }
                    } else {
                        *j0k = kernel.row(uk, &mut row);
                    }
                    for (d, &v) in vals[kk * width..(kk + 1) * width].iter_mut().zip(&row) {
                        *d = v as f32;
                    }
                }
            });
        Self {
            visit: Arc::clone(&pv.visit),
            key: CacheKey::new(pv, map, kernel),
            width,
            j0,
            u,
            vals,
        }
    }

    /// Bytes held.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.j0.len() * 16 + self.vals.len() * 4
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct CacheKey {
    pub(super) visit_ptr: usize,
    pub(super) dx: u64,
    pub(super) n: usize,
    pub(super) x_first: u64,
    pub(super) x_last: u64,
    pub(super) lsf: u64,
    pub(super) grid: (u64, u64, u64, usize),
    pub(super) kernel: Kernel,
}

impl CacheKey {
    pub(super) fn for_basis(_pv: &PreparedVisit, vb: &VisitBasis) -> Self {
        vb.key.clone()
    }

    pub(super) fn new(pv: &PreparedVisit, map: &GridMap, kernel: Kernel) -> Self {
        Self {
            visit_ptr: Arc::as_ptr(&pv.visit) as usize,
            dx: pv.dx.to_bits(),
            n: pv.x_rest.len(),
            x_first: pv.x_rest.first().map_or(0, |x| x.to_bits()),
            x_last: pv.x_rest.last().map_or(0, |x| x.to_bits()),
            lsf: pv.lsf_sigma.to_bits(),
            grid: map.signature(),
            kernel,
        }
    }
}
