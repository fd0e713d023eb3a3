//! Image display: an egui texture from an f64 array with a robust colour scale (linear or asinh
//! between user-chosen percentiles; a symmetric diverging scale for differences and residuals),
//! and a canvas with zoom (scroll), pan (drag), a hover position and clicks, in output-grid
//! pixel coordinates (pixel centres at integers).

use eframe::egui;
use ndarray::Array2;

/// How values map to grey levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stretch {
    Linear,
    Asinh,
}

/// The colour scale the user adjusts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ColorScale {
    /// Lower and upper percentiles (0..100) of the finite values.
    pub lo_pct: f64,
    pub hi_pct: f64,
    pub stretch: Stretch,
}

impl Default for ColorScale {
    fn default() -> Self {
        Self {
            lo_pct: 0.5,
            hi_pct: 99.5,
            stretch: Stretch::Asinh,
        }
    }
}

/// The `p` percentiles (0..100) of the finite values of `a` (sorted sample of at most 250k).
#[must_use]
pub fn percentiles(a: &Array2<f64>, ps: &[f64]) -> Vec<f64> {
    let n = a.len();
    let step = (n / 250_000).max(1);
    let mut v: Vec<f64> = a
        .iter()
        .step_by(step)
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    if v.is_empty() {
        return vec![f64::NAN; ps.len()];
    }
    v.sort_by(f64::total_cmp);
    ps.iter()
        .map(|p| {
            let q = (p / 100.0).clamp(0.0, 1.0) * (v.len() - 1) as f64;
            let (i, f) = (q.floor() as usize, q.fract());
            let j = (i + 1).min(v.len() - 1);
            v[i] * (1.0 - f) + v[j] * f
        })
        .collect()
}

/// The value range of the scale on `a`: (lo, hi); `diverging` makes it symmetric about 0 at the
/// larger |percentile|.
#[must_use]
pub fn range(a: &Array2<f64>, s: &ColorScale, diverging: bool) -> (f64, f64) {
    let p = percentiles(a, &[s.lo_pct, s.hi_pct]);
    let (mut lo, mut hi) = (p[0], p[1]);
    if diverging {
        let m = lo.abs().max(hi.abs());
        (lo, hi) = (-m, m);
    }
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    if hi <= lo {
        hi = lo + 1.0;
    }
    (lo, hi)
}

/// Map `a` to colours: grey (linear or asinh) between lo and hi, or blue-white-red when
/// `diverging`; NaN is drawn dark red-brown (no data).
#[must_use]
pub fn colorize(
    a: &Array2<f64>,
    (lo, hi): (f64, f64),
    stretch: Stretch,
    diverging: bool,
) -> egui::ColorImage {
    let (ny, nx) = a.dim();
    let soft = 0.05 * (hi - lo);
    let f = |v: f64| -> f64 {
        let t = ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
        match stretch {
            Stretch::Linear => t,
            Stretch::Asinh => {
                let k = (hi - lo) / soft.max(1e-300);
                (t * k).asinh() / k.asinh()
            }
        }
    };
    let pixels = a
        .iter()
        .map(|&v| {
            if !v.is_finite() {
                return egui::Color32::from_rgb(60, 20, 20);
            }
            if diverging {
                let t = (v / hi).clamp(-1.0, 1.0);
                let w = (255.0 * (1.0 - t.abs())) as u8;
                if t >= 0.0 {
                    egui::Color32::from_rgb(255, w, w)
                } else {
                    egui::Color32::from_rgb(w, w, 255)
                }
            } else {
                let g = (255.0 * f(v)).round() as u8;
                egui::Color32::from_rgb(g, g, g)
            }
        })
        .collect();
    egui::ColorImage::new([nx, ny], pixels)
}

/// Zoom and pan of the canvas.
#[derive(Clone, Debug, PartialEq)]
pub struct Camera {
    /// Screen points per output pixel; None: fit on the next frame.
    pub zoom: Option<f32>,
    /// Output-pixel coordinates at the canvas centre.
    pub center: [f64; 2],
    /// Draw +y up (north up for a WCS grid) instead of row 0 at the top.
    pub flip_y: bool,
}

impl Default for Camera {
    fn default() -> Self {
        Self {
            zoom: None,
            center: [0.0, 0.0],
            flip_y: false,
        }
    }
}

impl Camera {
    /// Screen position of output coordinate (x, y) in `rect`.
    #[must_use]
    pub fn to_screen(&self, rect: egui::Rect, x: f64, y: f64) -> egui::Pos2 {
        let z = f64::from(self.zoom.unwrap_or(1.0));
        let sy = if self.flip_y { -1.0 } else { 1.0 };
        egui::pos2(
            rect.center().x + ((x - self.center[0]) * z) as f32,
            rect.center().y + ((y - self.center[1]) * z * sy) as f32,
        )
    }

    /// Output coordinate of a screen position in `rect`.
    #[must_use]
    pub fn to_grid(&self, rect: egui::Rect, p: egui::Pos2) -> [f64; 2] {
        let z = f64::from(self.zoom.unwrap_or(1.0));
        let sy = if self.flip_y { -1.0 } else { 1.0 };
        [
            self.center[0] + f64::from(p.x - rect.center().x) / z,
            self.center[1] + f64::from(p.y - rect.center().y) / z * sy,
        ]
    }

    /// Fit an `(ny, nx)` grid into `rect`.
    pub fn fit(&mut self, rect: egui::Rect, shape: (usize, usize)) {
        let (ny, nx) = (shape.0.max(1) as f32, shape.1.max(1) as f32);
        self.zoom = Some((rect.width() / nx).min(rect.height() / ny).max(0.01) * 0.98);
        self.center = [(f64::from(nx) - 1.0) / 2.0, (f64::from(ny) - 1.0) / 2.0];
    }
}

/// What the canvas reports for one frame.
#[derive(Debug, Default)]
pub struct CanvasEvents {
    /// Output coordinates under the pointer.
    pub hover: Option<[f64; 2]>,
    /// Output coordinates of a click (not a drag).
    pub clicked: Option<[f64; 2]>,
    /// The canvas on screen.
    pub rect: Option<egui::Rect>,
}

/// One textured quad to draw: the texture and the output coordinates of its four corners
/// (top-left, top-right, bottom-right, bottom-left of the texture).
pub struct Quad<'a> {
    pub texture: &'a egui::TextureHandle,
    pub corners: [[f64; 2]; 4],
}

/// Draw `quads` in a canvas filling `ui`'s available space; scroll zooms about the pointer,
/// drag pans, double-click fits. `shape` is the output grid (for fitting); `overlay` draws
/// extra shapes (apertures) given the camera and the rect.
pub fn canvas(
    ui: &mut egui::Ui,
    cam: &mut Camera,
    shape: (usize, usize),
    quads: &[Quad<'_>],
    overlay: &dyn Fn(&egui::Painter, &Camera, egui::Rect),
) -> CanvasEvents {
    let size = ui.available_size().max(egui::vec2(50.0, 50.0));
    let (rect, resp) = ui.allocate_exact_size(size, egui::Sense::click_and_drag());
    if cam.zoom.is_none() || resp.double_clicked() {
        cam.fit(rect, shape);
    }
    let mut ev = CanvasEvents {
        rect: Some(rect),
        ..CanvasEvents::default()
    };
    if resp.dragged() {
        let d = resp.drag_delta();
        let z = f64::from(cam.zoom.unwrap_or(1.0));
        let sy = if cam.flip_y { -1.0 } else { 1.0 };
        cam.center[0] -= f64::from(d.x) / z;
        cam.center[1] -= f64::from(d.y) / z * sy;
    }
    if let Some(p) = resp.hover_pos() {
        let scroll = ui.input(|i| i.smooth_scroll_delta.y);
        if scroll != 0.0 {
            let before = cam.to_grid(rect, p);
            let z = cam.zoom.unwrap_or(1.0) * (scroll * 0.002).exp();
            cam.zoom = Some(z.clamp(0.02, 400.0));
            let after = cam.to_grid(rect, p);
            cam.center[0] += before[0] - after[0];
            cam.center[1] += before[1] - after[1];
        }
        ev.hover = Some(cam.to_grid(rect, p));
    }
    if resp.clicked()
        && let Some(p) = resp.interact_pointer_pos()
    {
        ev.clicked = Some(cam.to_grid(rect, p));
    }
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, egui::Color32::from_gray(30));
    for q in quads {
        let mut mesh = egui::Mesh::with_texture(q.texture.id());
        let uv = [
            egui::pos2(0.0, 0.0),
            egui::pos2(1.0, 0.0),
            egui::pos2(1.0, 1.0),
            egui::pos2(0.0, 1.0),
        ];
        for (c, t) in q.corners.iter().zip(uv) {
            mesh.vertices.push(egui::epaint::Vertex {
                pos: cam.to_screen(rect, c[0], c[1]),
                uv: t,
                color: egui::Color32::WHITE,
            });
        }
        mesh.add_triangle(0, 1, 2);
        mesh.add_triangle(0, 2, 3);
        painter.add(egui::Shape::mesh(mesh));
    }
    overlay(&painter, cam, rect);
    ev
}

/// The corners (output coordinates) of an `(ny, nx)` output-grid image.
#[must_use]
pub fn grid_corners(shape: (usize, usize)) -> [[f64; 2]; 4] {
    let (ny, nx) = (shape.0 as f64, shape.1 as f64);
    [
        [-0.5, -0.5],
        [nx - 0.5, -0.5],
        [nx - 0.5, ny - 0.5],
        [-0.5, ny - 0.5],
    ]
}

/// The corners (output coordinates) of an exposure drawn at its dither: its pixmap extrapolated
/// half a pixel beyond the corner pixels (exact for affine geometry).
#[must_use]
pub fn exposure_corners(pm: &ndarray::Array3<f64>) -> [[f64; 2]; 4] {
    let (ny, nx, _) = pm.dim();
    let at = |j: usize, i: usize| [pm[[j, i, 0]], pm[[j, i, 1]]];
    if nx < 2 || ny < 2 {
        let c = at(0, 0);
        return [
            [c[0] - 0.5, c[1] - 0.5],
            [c[0] + 0.5, c[1] - 0.5],
            [c[0] + 0.5, c[1] + 0.5],
            [c[0] - 0.5, c[1] + 0.5],
        ];
    }
    // Per-pixel steps along x and y from the corner pixels.
    let ex = |j: usize| {
        let (a, b) = (at(j, 0), at(j, nx - 1));
        [
            (b[0] - a[0]) / (nx - 1) as f64,
            (b[1] - a[1]) / (nx - 1) as f64,
        ]
    };
    let ey = |i: usize| {
        let (a, b) = (at(0, i), at(ny - 1, i));
        [
            (b[0] - a[0]) / (ny - 1) as f64,
            (b[1] - a[1]) / (ny - 1) as f64,
        ]
    };
    let corner = |j: usize, i: usize, sx: f64, sy: f64| {
        let (p, dx, dy) = (at(j, i), ex(j), ey(i));
        [
            p[0] + sx * 0.5 * dx[0] + sy * 0.5 * dy[0],
            p[1] + sx * 0.5 * dx[1] + sy * 0.5 * dy[1],
        ]
    };
    [
        corner(0, 0, -1.0, -1.0),
        corner(0, nx - 1, 1.0, -1.0),
        corner(ny - 1, nx - 1, 1.0, 1.0),
        corner(ny - 1, 0, -1.0, 1.0),
    ]
}

/// The input pixel (iy, ix) of an exposure under output position (x, y), by inverting the affine
/// map through its corner pixels; None outside.
#[must_use]
pub fn input_pixel(pm: &ndarray::Array3<f64>, x: f64, y: f64) -> Option<(usize, usize)> {
    let (ny, nx, _) = pm.dim();
    if nx < 2 || ny < 2 {
        return None;
    }
    let o = [pm[[0, 0, 0]], pm[[0, 0, 1]]];
    let ax = [
        (pm[[0, nx - 1, 0]] - o[0]) / (nx - 1) as f64,
        (pm[[0, nx - 1, 1]] - o[1]) / (nx - 1) as f64,
    ];
    let ay = [
        (pm[[ny - 1, 0, 0]] - o[0]) / (ny - 1) as f64,
        (pm[[ny - 1, 0, 1]] - o[1]) / (ny - 1) as f64,
    ];
    let det = ax[0] * ay[1] - ax[1] * ay[0];
    if !(det.abs() > 1e-12) {
        return None;
    }
    let (u, v) = (x - o[0], y - o[1]);
    let i = (u * ay[1] - v * ay[0]) / det;
    let j = (ax[0] * v - ax[1] * u) / det;
    let (i, j) = (i.round(), j.round());
    (i >= 0.0 && j >= 0.0 && (i as usize) < nx && (j as usize) < ny)
        .then_some((j as usize, i as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_the_inverse_pixel_map() {
        let a = Array2::from_shape_fn((10, 10), |(j, i)| (j * 10 + i) as f64);
        let p = percentiles(&a, &[0.0, 50.0, 100.0]);
        assert_eq!(p, vec![0.0, 49.5, 99.0]);
        let pm = frizzview_core::image::frizzle2d::shift_pixmap(5, 7, 0.25, -0.5, 2.0, 0.0, 0.0);
        for (j, i) in [(0, 0), (4, 6), (2, 3)] {
            let (x, y) = (pm[[j, i, 0]], pm[[j, i, 1]]);
            assert_eq!(input_pixel(&pm, x + 0.4, y - 0.4), Some((j, i)));
        }
        let c = exposure_corners(&pm);
        assert!((c[0][0] - (2.0 * 0.25 - 1.0)).abs() < 1e-12);
        assert!((c[2][1] - (2.0 * (4.0 - 0.5) + 1.0)).abs() < 1e-12);
    }
}
