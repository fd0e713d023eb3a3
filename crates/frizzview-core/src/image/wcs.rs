//! Celestial FITS WCS for the image mode: TAN, TAN-SIP and TPV, pixel <-> sky, the output grid,
//! and pixmaps (where each input pixel centre lands on the output grid).
//!
//! ## Conventions
//! - **Pixels are 0-based array coordinates** everywhere in this module's API: `x` is the column
//!   (FITS axis 1), `y` the row (FITS axis 2), and the centre of array element `[[iy, ix]]` is
//!   `(x, y) = (ix, iy)`. FITS pixel coordinates are 1-based; the conversion (`p_fits = p + 1`)
//!   happens in exactly one place, [`Wcs::pixel_to_intermediate`] and its inverse.
//! - Sky coordinates are (RA, Dec) in degrees, in whatever frame the header declares (RADESYS is
//!   carried along, not converted).
//!
//! ## The chain (FITS WCS Papers I and II: Greisen & Calabretta 2002, Calabretta & Greisen 2002)
//! 1. `u = p_fits - CRPIX` (pixel offsets).
//! 2. SIP, if `CTYPE` ends in `-SIP` (Shupe et al. 2005, "The SIP Convention for Representing
//!    Distortion in FITS Image Headers"): `u' = u + sum A_p_q u^p v^q`, `v' = v + sum B_p_q u^p v^q`
//!    over `p + q <= A_ORDER` (`B_ORDER`).
//! 3. `(x, y) = CD (u', v')` in degrees, `CD = diag(CDELT) PC` when `CDi_j` are absent (Paper I
//!    eq. 3 and §2.1.2; a header with neither has the unit matrix, as WCSLIB does).
//! 4. TPV, if `CTYPE` is `RA---TPV`/`DEC--TPV` (the TPV convention registered with the FITS
//!    registry, <https://fits.gsfc.nasa.gov/registry/tpvwcs/tpv.html>, as implemented by WCSLIB
//!    `dis.c` and by the IRAF `wftpv` driver): `xi = sum PV1_k x^a y^b r^c`,
//!    `eta = sum PV2_k y^a x^b r^c` (the roles of x and y swap for the second axis), with
//!    `r = sqrt(x^2 + y^2)` and the term order `k = 0: 1; 1: x; 2: y; 3: r; 4..6: x^2, xy, y^2;
//!    7..10: x^3 .. y^3; 11: r^3; 12..16: x^4 .. y^4; 17..22: x^5 .. y^5; 23: r^5; 24..30: degree 6;
//!    31..38: degree 7; 39: r^7`. Missing coefficients are 0, with no default of 1 for `PVi_1`:
//!    so astropy 8.0.2 (WCSLIB 8.6) reads them (measured: a header with `PV1_0` alone maps every
//!    pixel to one xi; with no `PV1_k` at all, too). An axis without any `PVi_k` card is refused
//!    here (its polynomial is a constant; no pipeline writes that).
//! 5. The gnomonic (TAN) deprojection (Paper II §5.1.3): `phi = atan2(x, -y)`,
//!    `theta = atan2(180/pi, R)`, `R = sqrt(x^2 + y^2)` (degrees).
//! 6. The spherical rotation to celestial coordinates with the reference point `(CRVAL1,
//!    CRVAL2)` at the native pole (Paper II eq. 2), `phi_p = LONPOLE` (default 180 deg, or 0 when
//!    `CRVAL2 >= 90`, Paper II §2.4 for `theta_0 = 90`).
//!
//! The inverse (sky -> pixel) inverts steps 6 and 5 in closed form and solves steps 1-4 by
//! Newton's method with the analytic Jacobian, started from the linear solution (or from the SIP
//! inverse `AP`/`BP` when the header has one); it converges to 1e-12 px.

use std::f64::consts::PI;
use std::fmt;

use ndarray::Array3;

const D2R: f64 = PI / 180.0;
const R2D: f64 = 180.0 / PI;

/// A WCS card that is missing or unusable.
#[derive(Clone, Debug, PartialEq)]
pub struct WcsError {
    /// The card (or cards) concerned, e.g. `CTYPE1` or `CD1_1..CD2_2`.
    pub card: String,
    /// What is wrong.
    pub reason: String,
}

impl WcsError {
    fn new(card: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            card: card.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for WcsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "card {}: {}", self.card, self.reason)
    }
}

impl std::error::Error for WcsError {}

/// A header card's value as the WCS parser sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum CardValue {
    /// A number.
    Num(f64),
    /// Text (quotes and trailing blanks removed).
    Text(String),
}

/// SIP polynomial coefficients: `coef[p][q]` multiplies `u^p v^q`, `p + q <= order`.
#[derive(Clone, Debug, PartialEq)]
pub struct SipPoly {
    /// The polynomial order (`A_ORDER` etc.).
    pub order: usize,
    /// `(order + 1) x (order + 1)` coefficients, zero where `p + q > order`.
    pub coef: Vec<Vec<f64>>,
}

impl SipPoly {
    fn zero(order: usize) -> Self {
        Self {
            order,
            coef: vec![vec![0.0; order + 1]; order + 1],
        }
    }

    /// The value and its partial derivatives (d/du, d/dv) at (u, v).
    fn eval(&self, u: f64, v: f64) -> (f64, f64, f64) {
        let n = self.order + 1;
        let mut up = vec![1.0; n];
        let mut vp = vec![1.0; n];
        for k in 1..n {
            up[k] = up[k - 1] * u;
            vp[k] = vp[k - 1] * v;
        }
        let (mut f, mut fu, mut fv) = (0.0, 0.0, 0.0);
        for p in 0..n {
            for q in 0..(n - p) {
                let c = self.coef[p][q];
                if c == 0.0 {
                    continue;
                }
                f += c * up[p] * vp[q];
                if p > 0 {
                    fu += c * p as f64 * up[p - 1] * vp[q];
                }
                if q > 0 {
                    fv += c * q as f64 * up[p] * vp[q - 1];
                }
            }
        }
        (f, fu, fv)
    }
}

/// The SIP distortion: forward `A`, `B`; optional inverse `AP`, `BP` (used as a first guess).
#[derive(Clone, Debug, PartialEq)]
pub struct Sip {
    /// `A_p_q`.
    pub a: SipPoly,
    /// `B_p_q`.
    pub b: SipPoly,
    /// `AP_p_q` and `BP_p_q`, when the header has both.
    pub inverse: Option<(SipPoly, SipPoly)>,
}

/// The exponents (of the own axis, the other axis, r) of the 40 TPV terms (see the module doc).
const TPV_POWERS: [(u8, u8, u8); 40] = [
    (0, 0, 0),
    (1, 0, 0),
    (0, 1, 0),
    (0, 0, 1),
    (2, 0, 0),
    (1, 1, 0),
    (0, 2, 0),
    (3, 0, 0),
    (2, 1, 0),
    (1, 2, 0),
    (0, 3, 0),
    (0, 0, 3),
    (4, 0, 0),
    (3, 1, 0),
    (2, 2, 0),
    (1, 3, 0),
    (0, 4, 0),
    (5, 0, 0),
    (4, 1, 0),
    (3, 2, 0),
    (2, 3, 0),
    (1, 4, 0),
    (0, 5, 0),
    (0, 0, 5),
    (6, 0, 0),
    (5, 1, 0),
    (4, 2, 0),
    (3, 3, 0),
    (2, 4, 0),
    (1, 5, 0),
    (0, 6, 0),
    (7, 0, 0),
    (6, 1, 0),
    (5, 2, 0),
    (4, 3, 0),
    (3, 4, 0),
    (2, 5, 0),
    (1, 6, 0),
    (0, 7, 0),
    (0, 0, 7),
];

/// The TPV polynomial: `pv1[k]` (xi) and `pv2[k]` (eta), k = 0..39.
#[derive(Clone, Debug, PartialEq)]
pub struct Tpv {
    /// `PV1_k`.
    pub pv1: [f64; 40],
    /// `PV2_k`.
    pub pv2: [f64; 40],
}

impl Tpv {
    /// One axis: `sum c_k s^a t^b r^c` with its derivatives d/ds, d/dt.
    fn axis(c: &[f64; 40], s: f64, t: f64) -> (f64, f64, f64) {
        let r = s.hypot(t);
        let mut sp = [1.0; 8];
        let mut tp = [1.0; 8];
        let mut rp = [1.0; 8];
        for k in 1..8 {
            sp[k] = sp[k - 1] * s;
            tp[k] = tp[k - 1] * t;
            rp[k] = rp[k - 1] * r;
        }
        let (mut f, mut fs, mut ft) = (0.0, 0.0, 0.0);
        for (k, &(a, b, e)) in TPV_POWERS.iter().enumerate() {
            let ck = c[k];
            if ck == 0.0 {
                continue;
            }
            let (a, b, e) = (usize::from(a), usize::from(b), usize::from(e));
            if e == 0 {
                f += ck * sp[a] * tp[b];
                if a > 0 {
                    fs += ck * a as f64 * sp[a - 1] * tp[b];
                }
                if b > 0 {
                    ft += ck * b as f64 * sp[a] * tp[b - 1];
                }
            } else {
                f += ck * rp[e];
                // d r^e / ds = e r^(e-2) s (r = 0: the derivative of r is undefined; 0 is used).
                if r > 0.0 {
                    let g = ck * e as f64 * rp[e - 1] / r;
                    fs += g * s;
                    ft += g * t;
                }
            }
        }
        (f, fs, ft)
    }

    /// (xi, eta) and the Jacobian d(xi, eta)/d(x, y).
    fn apply(&self, x: f64, y: f64) -> ([f64; 2], [[f64; 2]; 2]) {
        let (xi, xi_x, xi_y) = Self::axis(&self.pv1, x, y);
        let (eta, eta_y, eta_x) = Self::axis(&self.pv2, y, x);
        ([xi, eta], [[xi_x, xi_y], [eta_x, eta_y]])
    }
}

/// A distortion of the linear WCS.
#[derive(Clone, Debug, PartialEq)]
pub enum Distortion {
    /// Plain TAN.
    None,
    /// SIP (before the CD matrix).
    Sip(Box<Sip>),
    /// TPV (after the CD matrix).
    Tpv(Box<Tpv>),
}

/// A celestial WCS with the gnomonic (TAN) projection and an optional distortion.
#[derive(Clone, Debug, PartialEq)]
pub struct Wcs {
    /// `CRPIX1`, `CRPIX2` (1-based FITS pixels).
    pub crpix: [f64; 2],
    /// `CRVAL1`, `CRVAL2` (degrees).
    pub crval: [f64; 2],
    /// The CD matrix (degrees per pixel), `cd[i][j]` = `CDi+1_j+1`.
    pub cd: [[f64; 2]; 2],
    /// `LONPOLE` (degrees).
    pub lonpole: f64,
    /// The distortion.
    pub distortion: Distortion,
    /// `RADESYS`, if given (carried, not converted).
    pub radesys: Option<String>,
    cd_inv: [[f64; 2]; 2],
}

fn inv2(m: [[f64; 2]; 2]) -> Option<[[f64; 2]; 2]> {
    let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
    if !(det.is_finite() && det != 0.0) {
        return None;
    }
    Some([
        [m[1][1] / det, -m[0][1] / det],
        [-m[1][0] / det, m[0][0] / det],
    ])
}

fn mul2(a: [[f64; 2]; 2], b: [[f64; 2]; 2]) -> [[f64; 2]; 2] {
    [
        [
            a[0][0] * b[0][0] + a[0][1] * b[1][0],
            a[0][0] * b[0][1] + a[0][1] * b[1][1],
        ],
        [
            a[1][0] * b[0][0] + a[1][1] * b[1][0],
            a[1][0] * b[0][1] + a[1][1] * b[1][1],
        ],
    ]
}

fn app2(m: [[f64; 2]; 2], v: [f64; 2]) -> [f64; 2] {
    [
        m[0][0] * v[0] + m[0][1] * v[1],
        m[1][0] * v[0] + m[1][1] * v[1],
    ]
}

/// The projection named by the `CTYPE` pair.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Tan,
    TanSip,
    Tpv,
}

impl Wcs {
    /// A plain TAN WCS from its parts (`cd` in degrees per pixel, `crpix` 1-based).
    ///
    /// # Errors
    /// When the CD matrix is singular or a value is not finite.
    pub fn tan(crpix: [f64; 2], crval: [f64; 2], cd: [[f64; 2]; 2]) -> Result<Self, WcsError> {
        Self::build(crpix, crval, cd, None, Distortion::None, None)
    }

    fn build(
        crpix: [f64; 2],
        crval: [f64; 2],
        cd: [[f64; 2]; 2],
        lonpole: Option<f64>,
        distortion: Distortion,
        radesys: Option<String>,
    ) -> Result<Self, WcsError> {
        if !crpix.iter().all(|v| v.is_finite()) {
            return Err(WcsError::new("CRPIX1/CRPIX2", "not finite"));
        }
        if !crval.iter().all(|v| v.is_finite()) || crval[1].abs() > 90.0 {
            return Err(WcsError::new(
                "CRVAL1/CRVAL2",
                format!("({}, {}) is not a sky position", crval[0], crval[1]),
            ));
        }
        let cd_inv = inv2(cd).ok_or_else(|| {
            WcsError::new(
                "CD1_1..CD2_2 (or PCi_j and CDELTn)",
                format!("the matrix {cd:?} is singular or not finite"),
            )
        })?;
        let lonpole = lonpole.unwrap_or(if crval[1] >= 90.0 { 0.0 } else { 180.0 });
        if !lonpole.is_finite() {
            return Err(WcsError::new("LONPOLE", "not finite"));
        }
        Ok(Self {
            crpix,
            crval,
            cd,
            lonpole,
            distortion,
            radesys,
            cd_inv,
        })
    }

    /// Parse a celestial WCS from header cards, looked up by keyword (upper case).
    ///
    /// Accepts `CTYPE1/2` = `RA---TAN`/`DEC--TAN`, `RA---TAN-SIP`/`DEC--TAN-SIP` and
    /// `RA---TPV`/`DEC--TPV` (also with `GLON`/`GLAT`, `ELON`/`ELAT` and axes in either order is
    /// refused: the longitude must be axis 1). `CDi_j`, or `PCi_j` with `CDELTn`, give the
    /// linear part. `PVi_j` cards on a plain TAN header (projection parameters, unused by TAN)
    /// are ignored, as WCSLIB does.
    ///
    /// # Errors
    /// A [`WcsError`] naming the card that is missing or unusable.
    pub fn from_cards(get: &dyn Fn(&str) -> Option<CardValue>) -> Result<Self, WcsError> {
        let num = |k: &str| -> Result<Option<f64>, WcsError> {
            match get(k) {
                None => Ok(None),
                Some(CardValue::Num(v)) if v.is_finite() => Ok(Some(v)),
                Some(CardValue::Num(v)) => Err(WcsError::new(k, format!("{v} is not finite"))),
                Some(CardValue::Text(t)) => t
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .map(Some)
                    .ok_or_else(|| WcsError::new(k, format!("'{t}' is not a number"))),
            }
        };
        let text = |k: &str| -> Option<String> {
            match get(k) {
                Some(CardValue::Text(t)) => Some(t.trim().to_owned()),
                Some(CardValue::Num(v)) => Some(v.to_string()),
                None => None,
            }
        };
        let need = |k: &str| -> Result<f64, WcsError> {
            num(k)?.ok_or_else(|| WcsError::new(k, "is missing"))
        };
        let c1 = text("CTYPE1").ok_or_else(|| WcsError::new("CTYPE1", "is missing"))?;
        let c2 = text("CTYPE2").ok_or_else(|| WcsError::new("CTYPE2", "is missing"))?;
        let kind = projection(&c1, &c2)?;
        let crpix = [need("CRPIX1")?, need("CRPIX2")?];
        let crval = [need("CRVAL1")?, need("CRVAL2")?];
        let cd_keys = ["CD1_1", "CD1_2", "CD2_1", "CD2_2"];
        let mut cdv = [None; 4];
        for (i, k) in cd_keys.iter().enumerate() {
            cdv[i] = num(k)?;
        }
        let cd = if cdv.iter().any(Option::is_some) {
            // Paper I §2.1.2: a missing CDi_j is 0 when any is given.
            let g = |i: usize| cdv[i].unwrap_or(0.0);
            [[g(0), g(1)], [g(2), g(3)]]
        } else {
            let pc = [
                [
                    num("PC1_1")?.unwrap_or(1.0),
                    num("PC1_2")?.or(num("PC001002")?).unwrap_or(0.0),
                ],
                [
                    num("PC2_1")?.or(num("PC002001")?).unwrap_or(0.0),
                    num("PC2_2")?.unwrap_or(1.0),
                ],
            ];
            let cdelt = [num("CDELT1")?.unwrap_or(1.0), num("CDELT2")?.unwrap_or(1.0)];
            [
                [cdelt[0] * pc[0][0], cdelt[0] * pc[0][1]],
                [cdelt[1] * pc[1][0], cdelt[1] * pc[1][1]],
            ]
        };
        for unit in ["CUNIT1", "CUNIT2"] {
            if let Some(u) = text(unit) {
                let u = u.to_ascii_lowercase();
                if !(u.is_empty() || u == "deg" || u == "degree" || u == "degrees") {
                    return Err(WcsError::new(
                        unit,
                        format!("'{u}': only degrees are read for celestial axes"),
                    ));
                }
            }
        }
        let lonpole = num("LONPOLE")?;
        let distortion = match kind {
            Kind::Tan => Distortion::None,
            Kind::TanSip => Distortion::Sip(Box::new(read_sip(&num)?)),
            Kind::Tpv => Distortion::Tpv(Box::new(read_tpv(&num)?)),
        };
        let radesys = text("RADESYS").or_else(|| text("RADECSYS"));
        Self::build(crpix, crval, cd, lonpole, distortion, radesys)
    }

    /// The same WCS without its distortion (plain TAN with the same CRPIX, CRVAL, CD).
    #[must_use]
    pub fn without_distortion(&self) -> Self {
        Self {
            distortion: Distortion::None,
            ..self.clone()
        }
    }

    /// Pixel (0-based) -> intermediate world coordinates (xi, eta) in degrees, after every
    /// distortion, with the Jacobian d(xi, eta)/d(x, y) in degrees per pixel.
    #[must_use]
    pub fn pixel_to_intermediate(&self, x: f64, y: f64) -> ([f64; 2], [[f64; 2]; 2]) {
        // 0-based array coordinates to 1-based FITS pixel coordinates: the one place.
        let u = x + 1.0 - self.crpix[0];
        let v = y + 1.0 - self.crpix[1];
        let (uv, j_sip) = match &self.distortion {
            Distortion::Sip(s) => {
                let (f, fu, fv) = s.a.eval(u, v);
                let (g, gu, gv) = s.b.eval(u, v);
                ([u + f, v + g], [[1.0 + fu, fv], [gu, 1.0 + gv]])
            }
            _ => ([u, v], [[1.0, 0.0], [0.0, 1.0]]),
        };
        let xy = app2(self.cd, uv);
        let j_lin = mul2(self.cd, j_sip);
        match &self.distortion {
            Distortion::Tpv(t) => {
                let (xe, j_tpv) = t.apply(xy[0], xy[1]);
                (xe, mul2(j_tpv, j_lin))
            }
            _ => (xy, j_lin),
        }
    }

    /// Intermediate world coordinates (degrees) -> pixel (0-based), inverting the distortions by
    /// Newton's method. `None` if it does not converge.
    #[must_use]
    pub fn intermediate_to_pixel(&self, xi: f64, eta: f64) -> Option<[f64; 2]> {
        // Linear first guess, improved by the SIP inverse when present.
        let uv0 = app2(self.cd_inv, [xi, eta]);
        let mut uv = uv0;
        if let Distortion::Sip(s) = &self.distortion
            && let Some((ap, bp)) = &s.inverse
        {
            let (f, _, _) = ap.eval(uv0[0], uv0[1]);
            let (g, _, _) = bp.eval(uv0[0], uv0[1]);
            uv = [uv0[0] + f, uv0[1] + g];
        }
        let mut p = [uv[0] + self.crpix[0] - 1.0, uv[1] + self.crpix[1] - 1.0];
        if matches!(self.distortion, Distortion::None) {
            return Some(p);
        }
        for _ in 0..100 {
            let (f, j) = self.pixel_to_intermediate(p[0], p[1]);
            let ji = inv2(j)?;
            let d = app2(ji, [xi - f[0], eta - f[1]]);
            p = [p[0] + d[0], p[1] + d[1]];
            if !(p[0].is_finite() && p[1].is_finite()) {
                return None;
            }
            if d[0].abs().max(d[1].abs()) < 1e-12 * (1.0 + p[0].abs().max(p[1].abs())) {
                return Some(p);
            }
        }
        None
    }

    /// Pixel (0-based x = column, y = row) -> (RA, Dec) in degrees.
    #[must_use]
    pub fn pixel_to_sky(&self, x: f64, y: f64) -> [f64; 2] {
        let (xe, _) = self.pixel_to_intermediate(x, y);
        self.intermediate_to_sky(xe[0], xe[1])
    }

    /// (RA, Dec) in degrees -> pixel (0-based). `None` for a position on the far side of the
    /// tangent plane or where the distortion cannot be inverted.
    #[must_use]
    pub fn sky_to_pixel(&self, ra: f64, dec: f64) -> Option<[f64; 2]> {
        let [xi, eta] = self.sky_to_intermediate(ra, dec)?;
        self.intermediate_to_pixel(xi, eta)
    }

    /// The TAN deprojection and rotation to the sky (steps 5-6 of the module doc).
    #[must_use]
    pub fn intermediate_to_sky(&self, xi: f64, eta: f64) -> [f64; 2] {
        let r = xi.hypot(eta);
        let phi = if r == 0.0 { 0.0 } else { xi.atan2(-eta) };
        // tan(theta) = (180/pi) / R: sin and cos of theta without forming theta.
        let h = R2D.hypot(r);
        let (st, ct) = (R2D / h, r / h);
        let (a0, d0) = (self.crval[0] * D2R, self.crval[1] * D2R);
        let phip = self.lonpole * D2R;
        let dphi = phi - phip;
        let (sd, cd) = d0.sin_cos();
        let ra = a0 + (-ct * dphi.sin()).atan2(st * cd - ct * sd * dphi.cos());
        let dec = (st * sd + ct * cd * dphi.cos()).clamp(-1.0, 1.0).asin();
        [(ra * R2D).rem_euclid(360.0), dec * R2D]
    }

    /// The rotation to native coordinates and the TAN projection (inverse of
    /// [`Self::intermediate_to_sky`]); `None` on or beyond the native equator.
    #[must_use]
    pub fn sky_to_intermediate(&self, ra: f64, dec: f64) -> Option<[f64; 2]> {
        if !(ra.is_finite() && dec.is_finite()) {
            return None;
        }
        let (a, d) = (ra * D2R, dec * D2R);
        let (a0, d0) = (self.crval[0] * D2R, self.crval[1] * D2R);
        let phip = self.lonpole * D2R;
        let (sd, cd) = d.sin_cos();
        let (sd0, cd0) = d0.sin_cos();
        let da = a - a0;
        // cos(theta) sin(phi - phi_p) and cos(theta) cos(phi - phi_p) (Paper II eq. 5); their
        // length is cos(theta), computed so rather than from sin(theta), which cancels near the
        // tangent point.
        let (ca, cb) = (-cd * da.sin(), sd * cd0 - cd * sd0 * da.cos());
        let phi = phip + ca.atan2(cb);
        let stheta = sd * sd0 + cd * cd0 * da.cos();
        if stheta <= 1e-10 {
            return None;
        }
        let ctheta = ca.hypot(cb);
        let r = R2D * ctheta / stheta;
        Some([r * phi.sin(), -r * phi.cos()])
    }

    /// The local pixel scale in arcsec per pixel at pixel (x, y): `sqrt(|det J|)` of the full
    /// pixel -> tangent-plane Jacobian (distortions included).
    #[must_use]
    pub fn pixel_scale_arcsec(&self, x: f64, y: f64) -> f64 {
        let (_, j) = self.pixel_to_intermediate(x, y);
        (j[0][0] * j[1][1] - j[0][1] * j[1][0]).abs().sqrt() * 3600.0
    }

    /// The header cards of this WCS (TAN only: distortions are not written), as (keyword,
    /// value) pairs, for output files.
    #[must_use]
    pub fn tan_cards(&self) -> Vec<(String, CardValue)> {
        let n = |k: &str, v: f64| (k.to_owned(), CardValue::Num(v));
        let t = |k: &str, v: &str| (k.to_owned(), CardValue::Text(v.to_owned()));
        let mut c = vec![
            n("WCSAXES", 2.0),
            t("CTYPE1", "RA---TAN"),
            t("CTYPE2", "DEC--TAN"),
            t("CUNIT1", "deg"),
            t("CUNIT2", "deg"),
            n("CRPIX1", self.crpix[0]),
            n("CRPIX2", self.crpix[1]),
            n("CRVAL1", self.crval[0]),
            n("CRVAL2", self.crval[1]),
            n("CD1_1", self.cd[0][0]),
            n("CD1_2", self.cd[0][1]),
            n("CD2_1", self.cd[1][0]),
            n("CD2_2", self.cd[1][1]),
            n("LONPOLE", self.lonpole),
        ];
        if let Some(r) = &self.radesys {
            c.push(t("RADESYS", r));
        }
        c
    }
}

/// The projection of a CTYPE pair.
fn projection(c1: &str, c2: &str) -> Result<Kind, WcsError> {
    let c1u = c1.to_ascii_uppercase();
    let c2u = c2.to_ascii_uppercase();
    let lon_ok = ["RA--", "GLON", "ELON"].iter().any(|p| c1u.starts_with(p));
    let lat_ok = ["DEC-", "GLAT", "ELAT"].iter().any(|p| c2u.starts_with(p));
    if !lon_ok {
        return Err(WcsError::new(
            "CTYPE1",
            format!("'{c1}' is not a celestial longitude axis (RA---, GLON-, ELON-) on axis 1"),
        ));
    }
    if !lat_ok {
        return Err(WcsError::new(
            "CTYPE2",
            format!("'{c2}' is not a celestial latitude axis (DEC--, GLAT-, ELAT-) on axis 2"),
        ));
    }
    let code = |c: &str| c.get(4..).unwrap_or("").trim_start_matches('-').to_owned();
    let (p1, p2) = (code(&c1u), code(&c2u));
    if p1 != p2 {
        return Err(WcsError::new(
            "CTYPE1/CTYPE2",
            format!("the axes name different projections ('{c1}', '{c2}')"),
        ));
    }
    match p1.as_str() {
        "TAN" => Ok(Kind::Tan),
        "TAN-SIP" => Ok(Kind::TanSip),
        "TPV" => Ok(Kind::Tpv),
        _ => Err(WcsError::new(
            "CTYPE1",
            format!("projection '{p1}' is not supported (TAN, TAN-SIP and TPV are)"),
        )),
    }
}

type NumFn<'a> = dyn Fn(&str) -> Result<Option<f64>, WcsError> + 'a;

fn read_sip_poly(num: &NumFn<'_>, name: &str) -> Result<Option<SipPoly>, WcsError> {
    let okey = format!("{name}_ORDER");
    let Some(order) = num(&okey)? else {
        return Ok(None);
    };
    if !((0.0..=9.0).contains(&order) && order.fract() == 0.0) {
        return Err(WcsError::new(
            okey,
            format!("{order} is not an order in 0..=9"),
        ));
    }
    let order = order as usize;
    let mut poly = SipPoly::zero(order);
    for p in 0..=order {
        for q in 0..=(order - p) {
            if let Some(c) = num(&format!("{name}_{p}_{q}"))? {
                poly.coef[p][q] = c;
            }
        }
    }
    Ok(Some(poly))
}

fn read_sip(num: &NumFn<'_>) -> Result<Sip, WcsError> {
    let a = read_sip_poly(num, "A")?
        .ok_or_else(|| WcsError::new("A_ORDER", "is missing (CTYPE says -SIP)"))?;
    let b = read_sip_poly(num, "B")?
        .ok_or_else(|| WcsError::new("B_ORDER", "is missing (CTYPE says -SIP)"))?;
    let inverse = match (read_sip_poly(num, "AP")?, read_sip_poly(num, "BP")?) {
        (Some(ap), Some(bp)) => Some((ap, bp)),
        _ => None,
    };
    Ok(Sip { a, b, inverse })
}

fn read_tpv(num: &NumFn<'_>) -> Result<Tpv, WcsError> {
    let mut pv = [[0.0; 40]; 2];
    for (i, axis) in pv.iter_mut().enumerate() {
        let mut any = false;
        for (k, c) in axis.iter_mut().enumerate() {
            if let Some(v) = num(&format!("PV{}_{k}", i + 1))? {
                *c = v;
                any = true;
            }
        }
        if !any {
            return Err(WcsError::new(
                format!("PV{}_0..PV{}_39", i + 1, i + 1),
                "CTYPE says TPV but no coefficient of this axis is given (WCSLIB reads the axis as a constant 0)",
            ));
        }
    }
    Ok(Tpv {
        pv1: pv[0],
        pv2: pv[1],
    })
}

// ---------------------------------------------------------------------------------------------
// The output grid.

/// Choices for the output grid; `None` = derived from the inputs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutputOptions {
    /// Output pixel scale in arcsec per pixel (default: the median of the inputs' own scales at
    /// their centres).
    pub scale_arcsec: Option<f64>,
    /// Output size (nx, ny) in pixels (default: covering every input pixel).
    pub size: Option<(usize, usize)>,
    /// Tangent point (RA, Dec) in degrees (default: the mean direction of the inputs' centres).
    pub center: Option<(f64, f64)>,
}

/// A regular output grid: a TAN WCS, north up and east left, and its size.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputGrid {
    /// The grid's WCS (0-based output pixel centres through [`Wcs::pixel_to_sky`]).
    pub wcs: Wcs,
    /// Columns.
    pub nx: usize,
    /// Rows.
    pub ny: usize,
}

/// The largest output side the builder makes without an explicit `size`.
pub const MAX_OUTPUT_SIDE: usize = 16384;

/// Build the output grid covering `inputs` (each a WCS with its image size (nx, ny)): a TAN plane
/// at the inputs' centre, north up (+y = north, +x = east to the left, as on the sky), at the
/// inputs' own pixel scale, large enough to hold every input pixel centre plus half a pixel.
///
/// # Errors
/// When there are no inputs, an option is not usable, or the inputs span more than
/// [`MAX_OUTPUT_SIDE`] output pixels.
pub fn output_grid(
    inputs: &[(&Wcs, (usize, usize))],
    opts: &OutputOptions,
) -> Result<OutputGrid, String> {
    if inputs.is_empty() {
        return Err("no input images to cover".into());
    }
    // Centre: the normalised mean of the unit vectors of the input centres.
    let (ra0, dec0) = match opts.center {
        Some((ra, dec)) => {
            if !(ra.is_finite() && dec.is_finite() && dec.abs() <= 90.0) {
                return Err(format!("--center ({ra}, {dec}) is not a sky position"));
            }
            (ra.rem_euclid(360.0), dec)
        }
        None => {
            let mut v = [0.0; 3];
            for (w, (nx, ny)) in inputs {
                let [ra, dec] = w.pixel_to_sky((*nx as f64 - 1.0) / 2.0, (*ny as f64 - 1.0) / 2.0);
                let (a, d) = (ra * D2R, dec * D2R);
                v[0] += d.cos() * a.cos();
                v[1] += d.cos() * a.sin();
                v[2] += d.sin();
            }
            let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
            if !(n > 0.0) {
                return Err("the inputs' centres cancel out: give --center".into());
            }
            (
                (v[1].atan2(v[0]) * R2D).rem_euclid(360.0),
                (v[2] / n).clamp(-1.0, 1.0).asin() * R2D,
            )
        }
    };
    let scale = match opts.scale_arcsec {
        Some(s) if s.is_finite() && s > 0.0 => s,
        Some(s) => return Err(format!("--scale {s} is not a positive pixel scale")),
        None => {
            let mut s: Vec<f64> = inputs
                .iter()
                .map(|(w, (nx, ny))| {
                    w.pixel_scale_arcsec((*nx as f64 - 1.0) / 2.0, (*ny as f64 - 1.0) / 2.0)
                })
                .collect();
            s.sort_by(f64::total_cmp);
            s[s.len() / 2]
        }
    };
    let sd = scale / 3600.0;
    let cd = [[-sd, 0.0], [0.0, sd]];
    let (nx, ny, crpix) = match opts.size {
        Some((nx, ny)) => {
            if nx == 0 || ny == 0 || nx > MAX_OUTPUT_SIDE || ny > MAX_OUTPUT_SIDE {
                return Err(format!(
                    "--size {nx}x{ny} must be 1..={MAX_OUTPUT_SIDE} on each side"
                ));
            }
            (nx, ny, [(nx as f64 + 1.0) / 2.0, (ny as f64 + 1.0) / 2.0])
        }
        None => {
            // Bounding box of every input pixel centre in the tangent plane, in output pixels.
            let probe = Wcs::tan([0.0, 0.0], [ra0, dec0], cd).map_err(|e| e.to_string())?;
            let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
            for (w, (nx, ny)) in inputs {
                let (nx, ny) = (*nx, *ny);
                let mut edge = |x: f64, y: f64| -> Result<(), String> {
                    let [ra, dec] = w.pixel_to_sky(x, y);
                    let p = probe.sky_to_pixel(ra, dec).ok_or_else(|| {
                        "an input lies more than 90 degrees from the output centre".to_owned()
                    })?;
                    for k in 0..2 {
                        lo[k] = lo[k].min(p[k]);
                        hi[k] = hi[k].max(p[k]);
                    }
                    Ok(())
                };
                for ix in 0..nx {
                    edge(ix as f64, 0.0)?;
                    edge(ix as f64, ny as f64 - 1.0)?;
                }
                for iy in 0..ny {
                    edge(0.0, iy as f64)?;
                    edge(nx as f64 - 1.0, iy as f64)?;
                }
            }
            let span = [hi[0] - lo[0], hi[1] - lo[1]];
            if !(span[0].is_finite() && span[1].is_finite())
                || span[0] + 2.0 > MAX_OUTPUT_SIDE as f64
                || span[1] + 2.0 > MAX_OUTPUT_SIDE as f64
            {
                return Err(format!(
                    "the inputs span {:.0} x {:.0} output pixels at {scale:.4} arcsec/px, more than {MAX_OUTPUT_SIDE}: give --size or a coarser --scale",
                    span[0], span[1]
                ));
            }
            // Half an output pixel of margin around the outermost input pixel centres.
            let nx = (span[0] + 1.0).ceil().max(1.0) as usize;
            let ny = (span[1] + 1.0).ceil().max(1.0) as usize;
            // Centre the box: output pixel X = p - lo + pad, with the tangent point at p = 0.
            let pad = [
                (nx as f64 - 1.0 - span[0]) / 2.0,
                (ny as f64 - 1.0 - span[1]) / 2.0,
            ];
            // The probe's 0-based pixel is p = u - 1 (CRPIX 0); the output's is X = u + CRPIX - 1.
            // X = p - lo + pad gives CRPIX = -lo + pad.
            let crpix = [
                probe.crpix[0] - lo[0] + pad[0],
                probe.crpix[1] - lo[1] + pad[1],
            ];
            (nx, ny, crpix)
        }
    };
    let wcs = Wcs::build(crpix, [ra0, dec0], cd, None, Distortion::None, None)
        .map_err(|e| e.to_string())?;
    Ok(OutputGrid { wcs, nx, ny })
}

// ---------------------------------------------------------------------------------------------
// Pixmaps.

/// The pixmap of an input image of `(nx, ny)` pixels with WCS `input` onto `output`:
/// `pixmap[[iy, ix, 0]]`, `[[iy, ix, 1]]` = the output x, y (0-based output pixel centres) of
/// input pixel `(ix, iy)`: input pixel -> sky -> output pixel. NaN where the sky position has
/// no output pixel (beyond the tangent plane's horizon, or a distortion that cannot be
/// inverted there).
#[must_use]
pub fn pixmap_wcs(input: &Wcs, nx: usize, ny: usize, output: &Wcs) -> Array3<f64> {
    use ndarray::parallel::prelude::*;
    let mut pm = Array3::from_elem((ny, nx, 2), f64::NAN);
    pm.axis_iter_mut(ndarray::Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(iy, mut row)| {
            for ix in 0..nx {
                let [ra, dec] = input.pixel_to_sky(ix as f64, iy as f64);
                if let Some(p) = output.sky_to_pixel(ra, dec) {
                    row[[ix, 0]] = p[0];
                    row[[ix, 1]] = p[1];
                }
            }
        });
    pm
}

/// A quick geometry without a WCS: shift, rotation and scale.
///
/// Input pixel `(x, y)` lands at output
/// `X = scale * (cx + cos(theta) (x - cx) - sin(theta) (y - cy) + dx)`,
/// `Y = scale * (cy + sin(theta) (x - cx) + cos(theta) (y - cy) + dy)`:
/// rotate by `theta` (radians, counter-clockwise in (x, y)) about the centre `(cx, cy)`, shift by
/// `(dx, dy)` input pixels, then magnify by `scale` output pixels per input pixel. With
/// `theta = 0` this is `X = scale (x + dx)`, the convention of the bridge dither sequence
/// (frame k samples the x3 reference at `3 (x + dx_k)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShiftRotation {
    /// Shift along x, input pixels.
    pub dx: f64,
    /// Shift along y, input pixels.
    pub dy: f64,
    /// Rotation, radians.
    pub theta: f64,
    /// Output pixels per input pixel.
    pub scale: f64,
    /// The rotation centre (input pixels, 0-based).
    pub center: [f64; 2],
}

impl Default for ShiftRotation {
    fn default() -> Self {
        Self {
            dx: 0.0,
            dy: 0.0,
            theta: 0.0,
            scale: 1.0,
            center: [0.0, 0.0],
        }
    }
}

impl ShiftRotation {
    /// Where input pixel (x, y) lands.
    #[must_use]
    pub fn apply(&self, x: f64, y: f64) -> [f64; 2] {
        let (s, c) = self.theta.sin_cos();
        let (u, v) = (x - self.center[0], y - self.center[1]);
        [
            self.scale * (self.center[0] + c * u - s * v + self.dx),
            self.scale * (self.center[1] + s * u + c * v + self.dy),
        ]
    }
}

/// The pixmap of an `(nx, ny)` input under a [`ShiftRotation`].
#[must_use]
pub fn pixmap_shift_rotation(nx: usize, ny: usize, g: &ShiftRotation) -> Array3<f64> {
    let mut pm = Array3::zeros((ny, nx, 2));
    for iy in 0..ny {
        for ix in 0..nx {
            let p = g.apply(ix as f64, iy as f64);
            pm[[iy, ix, 0]] = p[0];
            pm[[iy, ix, 1]] = p[1];
        }
    }
    pm
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cards(v: &[(&str, CardValue)]) -> HashMap<String, CardValue> {
        v.iter()
            .map(|(k, c)| ((*k).to_owned(), c.clone()))
            .collect()
    }

    fn lookup(m: &HashMap<String, CardValue>) -> impl Fn(&str) -> Option<CardValue> + '_ {
        move |k| m.get(k).cloned()
    }

    fn base() -> Vec<(&'static str, CardValue)> {
        use CardValue::{Num, Text};
        vec![
            ("CTYPE1", Text("RA---TAN".into())),
            ("CTYPE2", Text("DEC--TAN".into())),
            ("CRPIX1", Num(20.5)),
            ("CRPIX2", Num(30.0)),
            ("CRVAL1", Num(150.0)),
            ("CRVAL2", Num(2.0)),
            ("CD1_1", Num(-7.3e-5)),
            ("CD1_2", Num(1e-7)),
            ("CD2_1", Num(2e-7)),
            ("CD2_2", Num(7.3e-5)),
        ]
    }

    #[test]
    fn crpix_maps_to_crval_and_fits_pixels_are_one_based() {
        let m = cards(&base());
        let w = Wcs::from_cards(&lookup(&m)).expect("wcs");
        // FITS pixel CRPIX = 0-based CRPIX - 1.
        let s = w.pixel_to_sky(19.5, 29.0);
        assert!((s[0] - 150.0).abs() < 1e-12 && (s[1] - 2.0).abs() < 1e-12);
        let p = w.sky_to_pixel(150.0, 2.0).expect("inverse");
        assert!((p[0] - 19.5).abs() < 1e-9 && (p[1] - 29.0).abs() < 1e-9);
    }

    #[test]
    fn tan_north_is_up_east_is_left() {
        let m = cards(&base());
        let w = Wcs::from_cards(&lookup(&m)).expect("wcs");
        let a = w.pixel_to_sky(19.5, 29.0);
        let up = w.pixel_to_sky(19.5, 1029.0);
        let left = w.pixel_to_sky(9.5, 29.0);
        assert!(up[1] > a[1] + 0.07, "dec grows with y");
        assert!(left[0] > a[0], "ra grows to the left");
    }

    #[test]
    fn round_trips_tpv_and_sip() {
        use CardValue::{Num, Text};
        let mut v = base();
        v[0].1 = Text("RA---TPV".into());
        v[1].1 = Text("DEC--TPV".into());
        let mut tpv = v.clone();
        for (k, c) in [
            ("PV1_0", 1e-3),
            ("PV1_1", 1.006),
            ("PV1_2", -2e-4),
            ("PV1_4", -2.7e-3),
            ("PV1_5", 1.1e-3),
            ("PV1_7", -1.6e-3),
            ("PV1_11", 0.01),
            ("PV2_0", 5e-4),
            ("PV2_1", 1.005),
            ("PV2_5", -1.7e-3),
            ("PV2_10", -4.3e-4),
            ("PV2_3", 0.002),
        ] {
            tpv.push((k, Num(c)));
        }
        let m = cards(&tpv);
        let w = Wcs::from_cards(&lookup(&m)).expect("tpv");
        for &(x, y) in &[(0.0, 0.0), (40.0, 50.0), (-300.0, 700.0), (19.5, 29.0)] {
            let s = w.pixel_to_sky(x, y);
            let p = w.sky_to_pixel(s[0], s[1]).expect("inverse");
            assert!((p[0] - x).abs() < 1e-8 && (p[1] - y).abs() < 1e-8, "{p:?}");
        }
        let mut sip = base();
        sip[0].1 = Text("RA---TAN-SIP".into());
        sip[1].1 = Text("DEC--TAN-SIP".into());
        sip.extend([
            ("A_ORDER", Num(3.0)),
            ("B_ORDER", Num(3.0)),
            ("A_2_0", Num(2e-5)),
            ("A_1_1", Num(-1e-5)),
            ("A_0_3", Num(3e-8)),
            ("B_0_2", Num(1.5e-5)),
            ("B_2_1", Num(-2e-8)),
        ]);
        let m = cards(&sip);
        let w = Wcs::from_cards(&lookup(&m)).expect("sip");
        for &(x, y) in &[(0.0, 0.0), (400.0, 500.0), (-300.0, 700.0)] {
            let s = w.pixel_to_sky(x, y);
            let p = w.sky_to_pixel(s[0], s[1]).expect("inverse");
            assert!((p[0] - x).abs() < 1e-8 && (p[1] - y).abs() < 1e-8, "{p:?}");
        }
    }

    #[test]
    fn the_jacobian_matches_finite_differences() {
        use CardValue::{Num, Text};
        let mut v = base();
        v[0].1 = Text("RA---TPV".into());
        v[1].1 = Text("DEC--TPV".into());
        v.extend([
            ("PV1_1", Num(1.0)),
            ("PV1_3", Num(0.01)),
            ("PV1_8", Num(0.3)),
            ("PV2_1", Num(1.0)),
            ("PV2_11", Num(5.0)),
            ("PV2_13", Num(40.0)),
        ]);
        let m = cards(&v);
        let w = Wcs::from_cards(&lookup(&m)).expect("tpv");
        let (_, j) = w.pixel_to_intermediate(300.0, -200.0);
        let h = 1e-3;
        let f = |x, y| w.pixel_to_intermediate(x, y).0;
        for k in 0..2 {
            let dx = (f(300.0 + h, -200.0)[k] - f(300.0 - h, -200.0)[k]) / (2.0 * h);
            let dy = (f(300.0, -200.0 + h)[k] - f(300.0, -200.0 - h)[k]) / (2.0 * h);
            assert!((dx - j[k][0]).abs() < 1e-10 * (1.0 + dx.abs()) + 1e-14);
            assert!((dy - j[k][1]).abs() < 1e-10 * (1.0 + dy.abs()) + 1e-14);
        }
    }

    #[test]
    fn tpv_without_pv_cards_is_refused() {
        let mut v = base();
        v[0].1 = CardValue::Text("RA---TPV".into());
        v[1].1 = CardValue::Text("DEC--TPV".into());
        v.push(("PV2_1", CardValue::Num(1.0)));
        let m = cards(&v);
        let e = Wcs::from_cards(&lookup(&m)).expect_err("no PV1");
        assert!(e.card.starts_with("PV1_"), "{e}");
    }

    #[test]
    fn bad_cards_are_named() {
        let mut v = base();
        v.retain(|(k, _)| *k != "CRVAL2");
        let m = cards(&v);
        let e = Wcs::from_cards(&lookup(&m)).expect_err("missing");
        assert_eq!(e.card, "CRVAL2");
        let mut v = base();
        v[0].1 = CardValue::Text("RA---SIN".into());
        v[1].1 = CardValue::Text("DEC--SIN".into());
        let m = cards(&v);
        let e = Wcs::from_cards(&lookup(&m)).expect_err("sin");
        assert!(e.reason.contains("SIN"), "{e}");
        let mut v = base();
        for c in v.iter_mut().filter(|(k, _)| k.starts_with("CD")) {
            c.1 = CardValue::Num(0.0);
        }
        let m = cards(&v);
        assert!(Wcs::from_cards(&lookup(&m)).is_err());
    }

    #[test]
    fn the_output_grid_covers_the_inputs_north_up() {
        let m = cards(&base());
        let w = Wcs::from_cards(&lookup(&m)).expect("wcs");
        let g = output_grid(&[(&w, (41, 51))], &OutputOptions::default()).expect("grid");
        // Same scale, a slight rotation: about the same size, every input pixel inside.
        assert!(
            (41..=43).contains(&g.nx) && (51..=53).contains(&g.ny),
            "{g:?}"
        );
        let pm = pixmap_wcs(&w, 41, 51, &g.wcs);
        for v in pm.iter() {
            assert!(v.is_finite());
        }
        for iy in 0..51 {
            for ix in 0..41 {
                let (x, y) = (pm[[iy, ix, 0]], pm[[iy, ix, 1]]);
                assert!(x >= -0.5 && x <= g.nx as f64 - 0.5 && y >= -0.5 && y <= g.ny as f64 - 0.5);
            }
        }
        // North up: the output CD is diagonal, east left.
        assert!(g.wcs.cd[0][0] < 0.0 && g.wcs.cd[1][1] > 0.0 && g.wcs.cd[0][1] == 0.0);
        let g2 = output_grid(
            &[(&w, (41, 51))],
            &OutputOptions {
                scale_arcsec: Some(0.131),
                size: Some((100, 90)),
                center: Some((150.0, 2.0)),
            },
        )
        .expect("grid");
        assert_eq!((g2.nx, g2.ny), (100, 90));
        let p = g2.wcs.sky_to_pixel(150.0, 2.0).expect("centre");
        assert!((p[0] - 49.5).abs() < 1e-9 && (p[1] - 44.5).abs() < 1e-9);
    }

    #[test]
    fn shift_rotation_is_the_bridge_convention() {
        let g = ShiftRotation {
            dx: 0.25,
            dy: -1.5,
            scale: 3.0,
            ..ShiftRotation::default()
        };
        let pm = pixmap_shift_rotation(4, 3, &g);
        assert_eq!(pm[[2, 3, 0]], 3.0 * (3.0 + 0.25));
        assert_eq!(pm[[2, 3, 1]], 3.0 * (2.0 - 1.5));
        let r = ShiftRotation {
            theta: PI / 2.0,
            center: [1.0, 1.0],
            ..ShiftRotation::default()
        };
        let p = r.apply(2.0, 1.0);
        assert!((p[0] - 1.0).abs() < 1e-12 && (p[1] - 2.0).abs() < 1e-12);
    }
}
