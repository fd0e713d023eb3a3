//! Standard practice: drizzle's square kernel (Fruchter & Hook 2002), as in the C core of
//! spacetelescope `drizzle` 3.0.0 (`do_kernel_square`): each input pixel, shrunk by `pixfrac`
//! about its centre, is mapped to the output grid through the pixmap (bilinear interpolation of
//! the pixmap at the shrunken corners), and adds `d` with weight `dow = overlap area x w / jaco`
//! (jaco = the mapped drop's area, w = the weight map) to every output pixel it overlaps.
//! SCI = sum(dow d) / sum(dow) (a weighted mean of intensities, `in_units="cps"`), WHT =
//! sum(dow), and the squared-weight variance VAR = sum(dow^2 var) / WHT^2 (drizzle's `out_img2`).
//! Uncovered output pixels are NaN in SCI and 0 in WHT, as drizzle's default `fillval=None`.

use ndarray::Array2;

use super::{Exposure2d, ImageError};

/// Drizzle's outputs on the output grid `(ny, nx)`.
#[derive(Clone, Debug)]
pub struct DrizzleResult {
    /// Weighted mean intensity; NaN where nothing lands.
    pub sci: Array2<f64>,
    /// Sum of the drop weights.
    pub wht: Array2<f64>,
    /// Drizzle's squared-weight variance, sum(dow^2 / ivar) / WHT^2 (NaN where WHT = 0).
    pub var: Array2<f64>,
    /// Number of input pixels (over all included exposures) whose drop overlaps each output pixel.
    pub count: Array2<u32>,
    /// The pixfrac used.
    pub pixfrac: f64,
}

/// Bilinear interpolation (with linear extrapolation beyond the edge cells) of a pixmap at
/// fractional input position (x, y), as drizzle's `interpolate_point`.
fn interp(pm: &ndarray::Array3<f64>, x: f64, y: f64) -> (f64, f64) {
    let (ny, nx, _) = pm.dim();
    let i0 = (x.floor() as i64).clamp(0, nx as i64 - 2) as usize;
    let j0 = (y.floor() as i64).clamp(0, ny as i64 - 2) as usize;
    let fx = x - i0 as f64;
    let fy = y - j0 as f64;
    let mut out = [0.0; 2];
    for (c, o) in out.iter_mut().enumerate() {
        let a = pm[[j0, i0, c]];
        let b = pm[[j0, i0 + 1, c]];
        let d = pm[[j0 + 1, i0, c]];
        let e = pm[[j0 + 1, i0 + 1, c]];
        *o = a * (1.0 - fx) * (1.0 - fy) + b * fx * (1.0 - fy) + d * (1.0 - fx) * fy + e * fx * fy;
    }
    (out[0], out[1])
}

/// Signed area of a polygon (shoelace).
fn area(p: &[(f64, f64)]) -> f64 {
    let n = p.len();
    let mut s = 0.0;
    for i in 0..n {
        let (a, b) = (p[i], p[(i + 1) % n]);
        s += a.0 * b.1 - b.0 * a.1;
    }
    0.5 * s
}

/// Area of the overlap of a counter-clockwise convex-or-not quadrilateral with the axis-aligned
/// box [x0, x1] x [y0, y1] (Sutherland-Hodgman clipping, exact for these convex clip edges).
fn overlap(quad: &[(f64, f64); 4], x0: f64, x1: f64, y0: f64, y1: f64) -> f64 {
    let mut poly: Vec<(f64, f64)> = quad.to_vec();
    // (axis, bound, keep >= bound?)
    let edges = [(0, x0, true), (0, x1, false), (1, y0, true), (1, y1, false)];
    for &(ax, b, ge) in &edges {
        if poly.is_empty() {
            return 0.0;
        }
        let inside = |p: &(f64, f64)| {
            let v = if ax == 0 { p.0 } else { p.1 };
            if ge { v >= b } else { v <= b }
        };
        let mut out = Vec::with_capacity(poly.len() + 2);
        for i in 0..poly.len() {
            let cur = poly[i];
            let prev = poly[(i + poly.len() - 1) % poly.len()];
            let (ci, pi) = (inside(&cur), inside(&prev));
            if ci != pi {
                let (pv, cv) = if ax == 0 {
                    (prev.0, cur.0)
                } else {
                    (prev.1, cur.1)
                };
                let t = (b - pv) / (cv - pv);
                out.push((prev.0 + t * (cur.0 - prev.0), prev.1 + t * (cur.1 - prev.1)));
            }
            if ci {
                out.push(cur);
            }
        }
        poly = out;
    }
    if poly.len() < 3 { 0.0 } else { area(&poly) }
}

/// Calls `f(exposure index, iy, ix, oy, ox, dow)` for every drop / output pixel overlap of the
/// included exposures (weight map = ivar x the exposure's scalar weight).
fn visit(
    exps: &[Exposure2d],
    out_shape: (usize, usize),
    pixfrac: f64,
    mut f: impl FnMut(usize, usize, usize, usize, usize, f64),
) -> Result<(), ImageError> {
    if !(pixfrac > 0.0 && pixfrac <= 1.0) {
        return Err(ImageError::Settings(format!(
            "pixfrac {pixfrac} is not in (0, 1]"
        )));
    }
    let (ony, onx) = out_shape;
    let dh = 0.5 * pixfrac;
    for (e, x) in exps.iter().enumerate() {
        x.check()?;
        if !x.include || x.weight == 0.0 {
            continue;
        }
        let (ny, nx) = x.sci.dim();
        if ny < 2 || nx < 2 {
            return Err(ImageError::Exposure {
                name: x.name.clone(),
                what: "drizzle needs at least 2 x 2 pixels to interpolate the pixmap".into(),
            });
        }
        for j in 0..ny {
            for i in 0..nx {
                let d = x.sci[[j, i]];
                let w = x.ivar[[j, i]] * x.weight;
                if !(w > 0.0) || !d.is_finite() || !w.is_finite() {
                    continue;
                }
                // drizzle 3.0.0's image scanner only visits input pixels whose centre maps
                // inside the output image's edges.
                let (cx, cy) = (x.pixmap[[j, i, 0]], x.pixmap[[j, i, 1]]);
                if !(cx >= -0.5 && cx <= onx as f64 - 0.5 && cy >= -0.5 && cy <= ony as f64 - 0.5) {
                    continue;
                }
                let (fi, fj) = (i as f64, j as f64);
                let corners = [
                    (fi - dh, fj + dh),
                    (fi + dh, fj + dh),
                    (fi + dh, fj - dh),
                    (fi - dh, fj - dh),
                ];
                let mut q = [(0.0, 0.0); 4];
                let mut ok = true;
                for (k, c) in corners.iter().enumerate() {
                    q[k] = interp(&x.pixmap, c.0, c.1);
                    ok &= q[k].0.is_finite() && q[k].1.is_finite();
                }
                if !ok {
                    continue;
                }
                let mut jaco = area(&q);
                if jaco < 0.0 {
                    q.reverse();
                    jaco = -jaco;
                }
                if !(jaco > 0.0) {
                    continue;
                }
                let (mut xmin, mut xmax, mut ymin, mut ymax) =
                    (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
                for p in &q {
                    xmin = xmin.min(p.0);
                    xmax = xmax.max(p.0);
                    ymin = ymin.min(p.1);
                    ymax = ymax.max(p.1);
                }
                let ii0 = xmin.round().max(0.0) as i64;
                let ii1 = (xmax.round() as i64).min(onx as i64 - 1);
                let jj0 = ymin.round().max(0.0) as i64;
                let jj1 = (ymax.round() as i64).min(ony as i64 - 1);
                for jj in jj0..=jj1 {
                    for ii in ii0..=ii1 {
                        let (cx, cy) = (ii as f64, jj as f64);
                        let a = overlap(&q, cx - 0.5, cx + 0.5, cy - 0.5, cy + 0.5);
                        if a > 0.0 {
                            f(e, j, i, jj as usize, ii as usize, a * w / jaco);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Drizzles the included exposures onto an `(ny, nx)` output grid with the square kernel.
///
/// # Errors
/// Bad pixfrac, or an exposure whose arrays disagree in shape (named).
pub fn drizzle(
    exps: &[Exposure2d],
    out_shape: (usize, usize),
    pixfrac: f64,
) -> Result<DrizzleResult, ImageError> {
    let mut num = Array2::<f64>::zeros(out_shape);
    let mut wht = Array2::<f64>::zeros(out_shape);
    let mut v2 = Array2::<f64>::zeros(out_shape);
    let mut count = Array2::<u32>::zeros(out_shape);
    visit(exps, out_shape, pixfrac, |e, j, i, oy, ox, dow| {
        let x = &exps[e];
        num[[oy, ox]] += dow * x.sci[[j, i]];
        wht[[oy, ox]] += dow;
        v2[[oy, ox]] += dow * dow / x.ivar[[j, i]];
        count[[oy, ox]] += 1;
    })?;
    let sci = ndarray::Zip::from(&num)
        .and(&wht)
        .map_collect(|&n, &w| if w > 0.0 { n / w } else { f64::NAN });
    let var = ndarray::Zip::from(&v2)
        .and(&wht)
        .map_collect(|&n, &w| if w > 0.0 { n / (w * w) } else { f64::NAN });
    Ok(DrizzleResult {
        sci,
        wht,
        var,
        count,
        pixfrac,
    })
}

/// Aperture photometry on drizzle's SCI with its exact variance: the aperture sum
/// `sum_p a_p SCI_p` is the linear combination `sum_m beta_m y_m` of the input pixels with
/// `beta_m = sum_p a_p dow_pm / WHT_p`, so its variance is `sum_m beta_m^2 / ivar_m`, the output
/// pixels' covariance included (which drizzle's per-pixel VAR leaves out).
/// Returns (aperture sum, exact variance, the sum of a_p^2 VAR_p that ignores the covariance).
///
/// # Errors
/// As [`drizzle`]; and when the aperture's shape differs from the output grid.
pub fn aperture(
    exps: &[Exposure2d],
    d: &DrizzleResult,
    a: &Array2<f64>,
) -> Result<(f64, f64, f64), ImageError> {
    if a.dim() != d.sci.dim() {
        return Err(ImageError::Settings(format!(
            "aperture shape {:?} is not the output's {:?}",
            a.dim(),
            d.sci.dim()
        )));
    }
    let mut beta: Vec<Array2<f64>> = exps.iter().map(|x| Array2::zeros(x.sci.dim())).collect();
    visit(exps, d.sci.dim(), d.pixfrac, |e, j, i, oy, ox, dow| {
        let ap = a[[oy, ox]];
        if ap != 0.0 {
            beta[e][[j, i]] += ap * dow / d.wht[[oy, ox]];
        }
    })?;
    let mut flux = 0.0;
    let mut naive = 0.0;
    for ((ap, s), v) in a.iter().zip(&d.sci).zip(&d.var) {
        if *ap != 0.0 && s.is_finite() {
            flux += ap * s;
            naive += ap * ap * v;
        }
    }
    let mut var = 0.0;
    for (b, x) in beta.iter().zip(exps) {
        for (bv, iv) in b.iter().zip(&x.ivar) {
            if *bv != 0.0 {
                var += bv * bv / iv;
            }
        }
    }
    Ok((flux, var, naive))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn shifted(
        n: usize,
        dx: f64,
        dy: f64,
        s: f64,
        val: impl Fn(usize, usize) -> f64,
    ) -> Exposure2d {
        let mut pm = Array3::zeros((n, n, 2));
        for j in 0..n {
            for i in 0..n {
                pm[[j, i, 0]] = s * (i as f64 + dx);
                pm[[j, i, 1]] = s * (j as f64 + dy);
            }
        }
        let sci = Array2::from_shape_fn((n, n), |(j, i)| val(j, i));
        Exposure2d::new("t", sci, Array2::ones((n, n)), pm).expect("shapes")
    }

    #[test]
    fn identity_pixmap_copies_the_image_and_overlap_areas_are_exact() {
        let e = shifted(6, 0.0, 0.0, 1.0, |j, i| (j * 10 + i) as f64);
        let d = drizzle(std::slice::from_ref(&e), (6, 6), 1.0).expect("drizzle");
        for j in 0..6 {
            for i in 0..6 {
                assert!((d.sci[[j, i]] - e.sci[[j, i]]).abs() < 1e-12);
                assert!((d.wht[[j, i]] - 1.0).abs() < 1e-12);
            }
        }
        // A unit square shifted by (0.25, 0.5) overlaps the box at the origin by 0.75 * 0.5.
        let q = [(-0.25, 0.0), (0.75, 0.0), (0.75, 1.0), (-0.25, 1.0)];
        assert!((overlap(&q, -0.5, 0.5, -0.5, 0.5) - 0.375).abs() < 1e-15);
    }
}
