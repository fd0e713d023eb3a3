//! Coverage and sub-pixel phases, and the M/P trap warning (docs/image-mode.md): the forward model
//! has one parameter per output pixel, so a region with fewer input samples than output pixels
//! (M/P < 1) is not constrained, and near M/P = 1 the noise is amplified (the double-descent
//! peak); at an output scale s the dithers must also put samples at the s x s sub-pixel phases.

use ndarray::Array2;

use frizzview_core::image::Exposure2d;

/// The coverage analysis of one set of included exposures on an output grid.
#[derive(Clone, Debug, Default)]
pub struct Coverage {
    /// Input pixel centres (usable, included) landing in each output pixel.
    pub samples: Array2<f64>,
    /// Side of the square regions (output pixels).
    pub block: usize,
    /// Per region: samples / output pixels (NaN where no sample lands).
    pub region_ratio: Array2<f64>,
    /// Usable input samples on the grid and output (model) pixels.
    pub total_samples: usize,
    pub model_pixels: usize,
    /// Per exposure: name, sub-pixel phase (x, y) of its centre pixel in input-pixel units on
    /// the output grid, included.
    pub phases: Vec<(String, f64, f64, bool)>,
    /// Phase cells per axis (ceil(s)) and how many of the cells x cells hold an included phase.
    pub cells: usize,
    pub covered: usize,
    /// Regions with samples but M/P < 1, and regions with samples.
    pub under: usize,
    pub regions: usize,
    /// What the user must know; empty when the dithers constrain the output.
    pub warnings: Vec<String>,
}

/// Analyse `exps` (the included ones) on an `(ny, nx)` grid at `scale` output px per input px.
#[must_use]
pub fn analyse(exps: &[Exposure2d], shape: (usize, usize), scale: f64) -> Coverage {
    let (ny, nx) = shape;
    let mut samples = Array2::<f64>::zeros(shape);
    let mut total = 0usize;
    let mut phases = Vec::new();
    for e in exps {
        let (eny, enx) = e.sci.dim();
        if e.include {
            for j in 0..eny {
                for i in 0..enx {
                    if !(e.ivar[[j, i]] > 0.0) || !e.sci[[j, i]].is_finite() {
                        continue;
                    }
                    let (x, y) = (e.pixmap[[j, i, 0]].round(), e.pixmap[[j, i, 1]].round());
                    if x >= 0.0 && y >= 0.0 && (x as usize) < nx && (y as usize) < ny {
                        samples[[y as usize, x as usize]] += 1.0;
                        total += 1;
                    }
                }
            }
        }
        let (cy, cx) = (eny / 2, enx / 2);
        let (px, py) = (e.pixmap[[cy, cx, 0]] / scale, e.pixmap[[cy, cx, 1]] / scale);
        phases.push((
            e.name.clone(),
            px.rem_euclid(1.0),
            py.rem_euclid(1.0),
            e.include,
        ));
    }
    let block = ((4.0 * scale).ceil() as usize).clamp(4, 32);
    let (by, bx) = (ny.div_ceil(block), nx.div_ceil(block));
    let mut region_ratio = Array2::from_elem((by, bx), f64::NAN);
    let (mut under, mut regions) = (0, 0);
    for b in 0..by {
        for a in 0..bx {
            let (y0, y1) = (b * block, ((b + 1) * block).min(ny));
            let (x0, x1) = (a * block, ((a + 1) * block).min(nx));
            let m: f64 = samples.slice(ndarray::s![y0..y1, x0..x1]).sum();
            // Only whole regions inside the footprint count (edges are partial by nature).
            let full = (y1 - y0) * (x1 - x0);
            if m > 0.0 {
                let ratio = m / full as f64;
                region_ratio[[b, a]] = ratio;
                let inside = samples
                    .slice(ndarray::s![y0..y1, x0..x1])
                    .iter()
                    .filter(|v| **v > 0.0)
                    .count()
                    * 2
                    >= full;
                if inside {
                    regions += 1;
                    if ratio < 1.0 {
                        under += 1;
                    }
                }
            }
        }
    }
    let cells = (scale.ceil() as usize).max(1);
    let mut occupied = vec![false; cells * cells];
    for (_, px, py, inc) in &phases {
        if *inc {
            let (cx, cy) = (
                ((px * cells as f64) as usize).min(cells - 1),
                ((py * cells as f64) as usize).min(cells - 1),
            );
            occupied[cy * cells + cx] = true;
        }
    }
    let covered = occupied.iter().filter(|o| **o).count();
    let model_pixels = nx * ny;
    let mut warnings = Vec::new();
    let mp = total as f64 / model_pixels.max(1) as f64;
    if mp < 1.0 {
        warnings.push(format!(
            "M/P trap: {total} input samples for {model_pixels} output pixels (M/P = {mp:.2} < 1): \
             the dithers cannot constrain the output; lower the scale or add exposures"
        ));
    } else if mp < 1.5 {
        warnings.push(format!(
            "M/P trap: {total} input samples for {model_pixels} output pixels (M/P = {mp:.2}): \
             near the double-descent peak the noise is amplified and CG needs many iterations"
        ));
    }
    if under > 0 {
        warnings.push(format!(
            "{under} of {regions} regions ({block} x {block} output px) have fewer input samples \
             than output pixels"
        ));
    }
    if cells > 1 && covered < cells * cells {
        warnings.push(format!(
            "sub-pixel phases not covered: the included exposures' centres fall in {covered} of \
             the {cells} x {cells} phase cells an output scale of {scale} needs"
        ));
    }
    Coverage {
        samples,
        block,
        region_ratio,
        total_samples: total,
        model_pixels,
        phases,
        cells,
        covered,
        under,
        regions,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use frizzview_core::image::frizzle2d::shift_pixmap;

    fn exp(dx: f64, dy: f64, s: f64) -> Exposure2d {
        Exposure2d::new(
            "e",
            Array2::zeros((10, 10)),
            Array2::ones((10, 10)),
            shift_pixmap(10, 10, dx, dy, s, 0.0, 0.0),
        )
        .expect("shapes")
    }

    #[test]
    fn four_half_pixel_dithers_at_scale_two_sit_on_the_trap() {
        let e: Vec<Exposure2d> = [(0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5)]
            .iter()
            .map(|(a, b)| exp(*a, *b, 2.0))
            .collect();
        let c = analyse(&e, (20, 20), 2.0);
        assert_eq!(c.total_samples, 400);
        assert_eq!(c.covered, 4);
        assert!(c.warnings.iter().any(|w| w.contains("M/P = 1.00")));
        // One exposure only: a quarter of the samples, one phase cell of four.
        let c1 = analyse(&e[..1], (20, 20), 2.0);
        assert_eq!(c1.covered, 1);
        assert!(c1.warnings.iter().any(|w| w.contains("< 1")));
        assert!(c1.warnings.iter().any(|w| w.contains("phases not covered")));
        // Nine exposures at scale 1: well constrained, no warning.
        let e9: Vec<Exposure2d> = (0..9).map(|k| exp(0.1 * k as f64, 0.0, 1.0)).collect();
        assert!(analyse(&e9, (10, 10), 1.0).warnings.is_empty());
    }
}
