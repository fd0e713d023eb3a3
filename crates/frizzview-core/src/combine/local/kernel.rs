//! The kernels of the local basis: Lanczos-3 and B-splines (centred or with quarter-pixel
//! knots), their values, derivatives and the rows of kernel values a data pixel touches.

use crate::numeric::sinc;

/// The kernel of the local basis, in units of output pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// sinc(t) sinc(t/3) for |t| < 3: cardinal (g_j(x*_l) = delta_jl), so y* = theta.
    Lanczos3,
    /// Cubic B-spline (support |t| < 2).
    CubicBSpline,
    /// Quintic B-spline (support |t| < 3).
    QuinticBSpline,
    /// Centred B-spline of odd degree n (3..=15; support |t| < (n+1)/2). Higher degrees approach
    /// the band-limited (Fourier) function space.
    BSpline(u8),
    /// The B-spline of odd degree n with its knots a quarter of an output pixel away from the
    /// output pixels: K(t) = B_n(t - 1/4). Evaluated on the output grid, a spline's two aliases
    /// near the Nyquist frequency then add in quadrature instead of in phase (their phases
    /// differ by 2 pi / 4), so the output noise stays white up to the Nyquist frequency; with
    /// centred knots its power doubles there and neighbouring pixels anticorrelate.
    QuarterBSpline(u8),
}

/// Offset of the knots of [`Kernel::QuarterBSpline`] from the output pixels, in pixels.
pub(super) const QUARTER: f64 = 0.25;

impl Kernel {
    /// Number of basis functions a point touches (support width in pixels).
    #[must_use]
    pub fn width(self) -> usize {
        match self {
            Self::Lanczos3 | Self::QuinticBSpline => 6,
            Self::CubicBSpline => 4,
            Self::BSpline(n) | Self::QuarterBSpline(n) => usize::from(n | 1) + 1,
        }
    }

    /// Half-width of the kernel at integer offsets (0 for a cardinal kernel): the band of X*.
    #[must_use]
    pub fn output_half_width(self) -> usize {
        match self {
            Self::Lanczos3 => 0,
            Self::CubicBSpline => 1,
            Self::QuinticBSpline => 2,
            Self::BSpline(n) => usize::from(n | 1) / 2,
            // B(l - j - 1/4) is non-zero for l - j in -(n-1)/2 ..= (n+1)/2.
            Self::QuarterBSpline(n) => usize::from(n | 1).div_ceil(2),
        }
    }

    /// Short name (CLI and bench labels).
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Lanczos3 => "lanczos3",
            Self::CubicBSpline => "bspline3",
            Self::QuinticBSpline => "bspline5",
            Self::BSpline(3) => "bspline3",
            Self::BSpline(5) => "bspline5",
            Self::BSpline(7) => "bspline7",
            Self::BSpline(9) => "bspline9",
            Self::BSpline(11) => "bspline11",
            Self::BSpline(13) => "bspline13",
            Self::BSpline(_) => "bspline15",
            Self::QuarterBSpline(7) => "qbspline7",
            Self::QuarterBSpline(11) => "qbspline11",
            Self::QuarterBSpline(_) => "qbspline15",
        }
    }

    /// The kernel named by [`Kernel::label`] (`lanczos3`, `bspline3` ... `bspline15`, odd;
    /// `qbspline7`, `qbspline11`, `qbspline15`).
    #[must_use]
    pub fn from_label(s: &str) -> Option<Self> {
        match s {
            "lanczos3" => Some(Self::Lanczos3),
            "bspline3" => Some(Self::CubicBSpline),
            "bspline5" => Some(Self::QuinticBSpline),
            _ => {
                if let Some(n) = s.strip_prefix("qbspline") {
                    let n: u8 = n.parse().ok()?;
                    return [7, 11, 15].contains(&n).then_some(Self::QuarterBSpline(n));
                }
                let n: u8 = s.strip_prefix("bspline")?.parse().ok()?;
                (n % 2 == 1 && (7..=15).contains(&n)).then_some(Self::BSpline(n))
            }
        }
    }

    /// K(t).
    #[must_use]
    pub fn value(self, t: f64) -> f64 {
        match self {
            Self::Lanczos3 => {
                if t.abs() >= 3.0 {
                    0.0
                } else {
                    sinc(t) * sinc(t / 3.0)
                }
            }
            Self::CubicBSpline => bspline(3, t),
            Self::QuinticBSpline => bspline(5, t),
            Self::BSpline(n) => bspline(u32::from(n | 1), t),
            Self::QuarterBSpline(n) => bspline(u32::from(n | 1), t - QUARTER),
        }
    }

    /// dK/dt.
    #[must_use]
    pub fn derivative(self, t: f64) -> f64 {
        match self {
            Self::Lanczos3 => {
                if t.abs() >= 3.0 {
                    0.0
                } else {
                    sinc_deriv(t) * sinc(t / 3.0) + sinc(t) * sinc_deriv(t / 3.0) / 3.0
                }
            }
            Self::CubicBSpline => bspline(2, t + 0.5) - bspline(2, t - 0.5),
            Self::QuinticBSpline => bspline(4, t + 0.5) - bspline(4, t - 0.5),
            Self::BSpline(n) => {
                let n = u32::from(n | 1);
                bspline(n - 1, t + 0.5) - bspline(n - 1, t - 0.5)
            }
            Self::QuarterBSpline(n) => Self::BSpline(n).derivative(t - QUARTER),
        }
    }

    /// The first function j0 that [`Kernel::row`] returns for `u`.
    pub(super) fn first(self, u: f64) -> i64 {
        let u = if matches!(self, Self::QuarterBSpline(_)) {
            u - QUARTER
        } else {
            u
        };
        u.floor() as i64 - (self.width() / 2) as i64 + 1
    }

    /// Values at the `width()` functions j0..j0+width touching fractional index `u`; returns j0.
    pub(super) fn row(self, u: f64, out: &mut [f64]) -> i64 {
        if let Self::QuarterBSpline(n) = self {
            return Self::BSpline(n).row(u - QUARTER, out);
        }
        let f = u - u.floor();
        let j0 = self.first(u);
        match self {
            Self::Lanczos3 => {
                // sin(pi t) = (-1)^m sin(pi f) and sin(pi t / 3) by rotation: one sin_cos pair each.
                let (sf, _) = (std::f64::consts::PI * f).sin_cos();
                let a = std::f64::consts::PI * (f + 2.0) / 3.0;
                let (sa, ca) = a.sin_cos();
                const S3: f64 = 0.866_025_403_784_438_6;
                let rot = [
                    (1.0, 0.0),
                    (0.5, S3),
                    (-0.5, S3),
                    (-1.0, 0.0),
                    (-0.5, -S3),
                    (0.5, -S3),
                ];
                let pi2 = std::f64::consts::PI * std::f64::consts::PI;
                for (m, o) in out.iter_mut().enumerate().take(6) {
                    let t = f + 2.0 - m as f64;
                    *o = if t.abs() < 1e-9 {
                        1.0
                    } else if t.abs() >= 3.0 {
                        0.0
                    } else {
                        let sign = if m % 2 == 0 { 1.0 } else { -1.0 };
                        let s1 = sign * sf;
                        let s3 = sa * rot[m].0 - ca * rot[m].1;
                        3.0 * s1 * s3 / (pi2 * t * t)
                    };
                }
            }
            Self::CubicBSpline
            | Self::QuinticBSpline
            | Self::BSpline(_)
            | Self::QuarterBSpline(_) => {
                cox_de_boor(f, &mut out[..self.width()]);
            }
        }
        j0
    }
}

pub(super) fn sinc_deriv(t: f64) -> f64 {
    if t.abs() < 1e-6 {
        // sinc(t) = 1 - (pi t)^2/6 + ...
        -std::f64::consts::PI * std::f64::consts::PI * t / 3.0
    } else {
        let p = std::f64::consts::PI * t;
        (p.cos() - p.sin() / p) / t
    }
}

/// The `c.len()` pieces of the cardinal B-spline of degree n = `c.len() - 1` at fractional
/// offset `f` in [0, 1), by the Cox-de Boor recursion on integer knots: afterwards
/// `c[m] = N_{m-n,n}(f)`, O(n^2).
pub(super) fn cox_de_boor(f: f64, c: &mut [f64]) {
    let n = c.len() - 1;
    c.fill(0.0);
    c[0] = 1.0;
    for k in 1..=n {
        let kf = k as f64;
        for m in (0..=k).rev() {
            let left = if m >= 1 { c[m - 1] } else { 0.0 };
            let right = if m < k { c[m] } else { 0.0 };
            c[m] = ((f - m as f64 + kf) * left + (m as f64 + 1.0 - f) * right) / kf;
        }
    }
}

/// Centred cardinal B-spline of degree n (support |t| < (n+1)/2), by the Cox-de Boor recursion
/// (the truncated-power sum cancels catastrophically in the tails at degree 15).
pub(super) fn bspline(n: u32, t: f64) -> f64 {
    let h = f64::from(n + 1) / 2.0;
    if !(t.abs() < h) || n > 16 {
        return 0.0;
    }
    let sh = t + h;
    let i = sh.floor();
    let f = sh - i;
    let n = n as usize;
    let mut c = [0.0_f64; 18];
    cox_de_boor(f, &mut c[..=n]);
    let i = i as usize;
    if i > n { 0.0 } else { c[n - i] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cubic_bspline_matches_its_textbook_formula() {
        for i in -25..=25 {
            let t = f64::from(i) * 0.09;
            let a = t.abs();
            let want = if a < 1.0 {
                2.0 / 3.0 - a * a + a * a * a / 2.0
            } else if a < 2.0 {
                (2.0 - a).powi(3) / 6.0
            } else {
                0.0
            };
            assert!((bspline(3, t) - want).abs() < 1e-14, "t {t}");
            // Derivative by central difference.
            let d = (bspline(3, t + 1e-6) - bspline(3, t - 1e-6)) / 2e-6;
            assert!(
                (Kernel::CubicBSpline.derivative(t) - d).abs() < 1e-6,
                "t {t}"
            );
        }
    }

    #[test]
    fn bspline_rows_match_the_closed_form() {
        for n in [3u8, 5, 9, 15] {
            let k = Kernel::BSpline(n);
            let mut row = vec![0.0; k.width()];
            for &u in &[3.0, 3.25, 7.9, 10.5] {
                let j0 = k.row(u, &mut row);
                let sum: f64 = row.iter().sum();
                assert!((sum - 1.0).abs() < 1e-12, "partition of unity: {sum}");
                for (m, &v) in row.iter().enumerate() {
                    let t = u - (j0 + m as i64) as f64;
                    assert!((v - k.value(t)).abs() < 1e-11, "n {n} u {u} m {m}");
                }
            }
        }
    }
}
