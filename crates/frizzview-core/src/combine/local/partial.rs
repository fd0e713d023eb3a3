//! Partial sums of the normal equations (A, b, coverage and flags) over one visit, a group of
//! visits or a range of pixels, accumulated from the cached design rows.

use rayon::prelude::*;

use super::banded::Band;
use super::basis::{NO_ROW, PIXEL_CHUNK, VisitBasis};
use crate::combine::types::PreparedVisit;

/// Partial sums of the normal equations over a group of visits.
#[derive(Debug)]
pub(super) struct Partial {
    /// First output/function index covered.
    pub(super) lo: usize,
    pub(super) a: Band,
    pub(super) rhs: Vec<f64>,
    pub(super) covered: Vec<bool>,
    pub(super) flags: Vec<u64>,
}

impl Partial {
    pub(super) fn new(p: usize, b: usize) -> Self {
        Self::with_range(0, p, b)
    }

    pub(super) fn with_range(lo: usize, len: usize, b: usize) -> Self {
        Self {
            lo,
            a: Band::zeros(len, b),
            rhs: vec![0.0; len],
            covered: vec![false; len],
            flags: vec![0; len],
        }
    }

    /// The partial sums of one visit over the index range it touches: chunks of pixels in
    /// parallel (a changed weight or shift rebuilds one visit's sums), summed in chunk order.
    pub(super) fn of_visit(pv: &PreparedVisit, vb: &VisitBasis, p: usize) -> Self {
        let n = vb.j0.len();
        let chunks: Vec<Self> = (0..n.div_ceil(PIXEL_CHUNK))
            .into_par_iter()
            .map(|c| Self::of_pixels(pv, vb, p, c * PIXEL_CHUNK..((c + 1) * PIXEL_CHUNK).min(n)))
            .collect();
        let mut chunks = chunks;
        if chunks.len() == 1
            && let Some(only) = chunks.pop()
        {
            return only;
        }
        let refs: Vec<&Self> = chunks.iter().collect();
        Self::sum_of(&refs)
    }

    /// The sum of `parts`, in order, over the union of their index ranges.
    pub(super) fn sum_of(parts: &[&Self]) -> Self {
        let lo = parts.iter().map(|m| m.lo).min().unwrap_or(0);
        let hi = parts.iter().map(|m| m.lo + m.rhs.len()).max().unwrap_or(lo);
        let b = parts.iter().map(|m| m.a.b).max().unwrap_or(0);
        let mut sum = Self::with_range(lo, hi - lo, b);
        {
            let Self {
                a,
                rhs,
                covered,
                flags,
                ..
            } = &mut sum;
            for m in parts {
                m.add_rows(lo, &mut a.a, b, rhs, covered, flags);
            }
        }
        sum
    }

    /// The partial sums of the pixels `ks` of one visit over the index range they touch.
    pub(super) fn of_pixels(
        pv: &PreparedVisit,
        vb: &VisitBasis,
        p: usize,
        ks: std::ops::Range<usize>,
    ) -> Self {
        let mut lo = i64::MAX;
        let mut hi = i64::MIN;
        for k in ks.clone() {
            let u = vb.u[k];
            if u.is_finite() {
                lo = lo.min((u - 1.0).ceil() as i64);
                hi = hi.max((u + 1.0).floor() as i64 + 1);
            }
            if vb.j0[k] != NO_ROW {
                lo = lo.min(vb.j0[k]);
                hi = hi.max(vb.j0[k] + vb.width as i64);
            }
        }
        let lo = lo.clamp(0, p as i64) as usize;
        let hi = (hi.clamp(0, p as i64) as usize).max(lo);
        let mut part = Self::with_range(lo, hi - lo, vb.width - 1);
        part.add_pixels(pv, vb, ks);
        part
    }

    pub(super) fn bytes(&self) -> usize {
        self.a.a.len() * 8 + self.rhs.len() * 17
    }

    pub(super) fn add(&mut self, o: &Self) {
        for (x, y) in self.a.a.iter_mut().zip(&o.a.a) {
            *x += y;
        }
        for (x, y) in self.rhs.iter_mut().zip(&o.rhs) {
            *x += y;
        }
        for (x, y) in self.covered.iter_mut().zip(&o.covered) {
            *x |= y;
        }
        for (x, y) in self.flags.iter_mut().zip(&o.flags) {
            *x |= y;
        }
    }

    /// Add the rows `r0..r0 + rhs.len()` of `self` (global indices) into a block of a total.
    pub(super) fn add_rows(
        &self,
        r0: usize,
        a: &mut [f64],
        b: usize,
        rhs: &mut [f64],
        cov: &mut [bool],
        fl: &mut [u64],
    ) {
        let n = rhs.len();
        let lo = self.lo.max(r0);
        let hi = (self.lo + self.rhs.len()).min(r0 + n);
        let sb = self.a.b + 1;
        for j in lo..hi {
            let src = &self.a.a[(j - self.lo) * sb..(j - self.lo + 1) * sb];
            let dst = &mut a[(j - r0) * (b + 1)..(j - r0) * (b + 1) + sb];
            for (x, y) in dst.iter_mut().zip(src) {
                *x += y;
            }
            rhs[j - r0] += self.rhs[j - self.lo];
            cov[j - r0] |= self.covered[j - self.lo];
            fl[j - r0] |= self.flags[j - self.lo];
        }
    }

    pub(super) fn add_visit(&mut self, pv: &PreparedVisit, vb: &VisitBasis) {
        self.add_pixels(pv, vb, 0..pv.x_rest.len());
    }

    pub(super) fn add_pixels(
        &mut self,
        pv: &PreparedVisit,
        vb: &VisitBasis,
        ks: std::ops::Range<usize>,
    ) {
        let lo = self.lo as i64;
        let p = lo + self.rhs.len() as i64;
        let s = self.a.b + 1;
        let width = vb.width;
        let pixel_flags = pv.visit.flags();
        let mut rev = vec![0.0_f64; width];
        for k in ks {
            let j0 = vb.j0[k];
            let u = vb.u[k];
            let w = pv.w[k];
            // `censor::Rule::Fixed` in O(1) per pixel on the index axis: output pixels within one
            // spacing of a pixel with positive weight (and S != 0) are data; the flags of every
            // pixel of the visit (used or not) within one spacing propagate. Pixels just outside
            // the fitted range still count, as in the shared rule.
            if u.is_finite() {
                let l_lo = ((u - 1.0).ceil() as i64).max(lo);
                let l_hi = ((u + 1.0).floor() as i64).min(p - 1);
                let fl = pixel_flags.get(k).copied().unwrap_or(0);
                let data = w > 0.0 && pv.s[k] != 0.0;
                for l in l_lo..=l_hi {
                    let l = (l - lo) as usize;
                    if data {
                        self.covered[l] = true;
                    }
                    self.flags[l] |= fl;
                }
            }
            if j0 == NO_ROW || w <= 0.0 {
                continue;
            }
            let sk = pv.s[k];
            let ws2 = w * sk * sk;
            let wsy = w * sk * pv.y[k];
            let row = &vb.vals[k * width..(k + 1) * width];
            if j0 >= lo && j0 + width as i64 <= p {
                // Interior row (almost every pixel): no bounds tests. `rev` holds the row
                // reversed, so A[j][j - d] += t g[m - d] runs over contiguous, ascending slices.
                for (r, &g) in rev.iter_mut().rev().zip(row) {
                    *r = f64::from(g);
                }
                let j0l = (j0 - lo) as usize;
                for m in 0..width {
                    let gm = rev[width - 1 - m];
                    let jl = j0l + m;
                    self.rhs[jl] += wsy * gm;
                    let t = ws2 * gm;
                    let dst = &mut self.a.a[jl * s..jl * s + m + 1];
                    for (d, &g) in dst.iter_mut().zip(&rev[width - 1 - m..]) {
                        *d += t * g;
                    }
                }
                continue;
            }
            for m in 0..width {
                let j = j0 + m as i64;
                if j < lo || j >= p {
                    continue;
                }
                let gm = f64::from(row[m]);
                if gm == 0.0 {
                    continue;
                }
                let jl = (j - lo) as usize;
                self.rhs[jl] += wsy * gm;
                let t = ws2 * gm;
                // Lower band: A[j][j - d] for earlier functions j - d = j0 + m2, m2 <= m.
                let base = jl * s;
                for m2 in 0..=m {
                    if j0 + (m2 as i64) < lo {
                        continue;
                    }
                    self.a.a[base + (m - m2)] += t * f64::from(row[m2]);
                }
            }
        }
    }
}
