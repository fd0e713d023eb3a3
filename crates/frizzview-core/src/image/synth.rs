//! Seeded synthetic dithered exposures with truth: undersampled stars (pixel-integrated circular
//! Gaussian PSFs), random sub-pixel dithers with a small roll, Gaussian noise, and the imperfect
//! things real data have: a sky offset per exposure, cosmic rays (not flagged), masked columns
//! (ivar 0).
//!
//! Sky coordinates are the input-pixel frame of an unrolled, undithered exposure. Exposure e's
//! pixel (iy, ix) centre lies at sky `R(roll_e) ((ix, iy) - c) + c + d_e` (c = the frame centre),
//! and its value is the mean intensity over that (rolled) pixel. The output grid covers the sky
//! box [`margin`, n - 1 - `margin`] at `s` output pixels per input pixel; the truth at an output
//! pixel is the scene convolved with an unrolled input pixel, at that pixel's centre (the
//! "effective PSF" the forward model recovers; a roll of r degrees changes it by O(r) of a pixel
//! corner, negligible for the rolls used here).

use ndarray::{Array2, Array3};

use super::Exposure2d;

/// A tiny deterministic generator (SplitMix64), independent of the `rand` version.
#[derive(Clone, Debug)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// erf(x) (Numerical Recipes' erfc Chebyshev fit, fractional error < 1.2e-7).
#[must_use]
pub fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let ans = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { 1.0 - ans } else { ans - 1.0 }
}

/// Mean over [c - 1/2, c + 1/2] of a unit-integral Gaussian of width sigma centred at q.
fn box1(c: f64, q: f64, sigma: f64) -> f64 {
    let k = 1.0 / (std::f64::consts::SQRT_2 * sigma);
    0.5 * (erf((c + 0.5 - q) * k) - erf((c - 0.5 - q) * k))
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct SynthSpec {
    /// Input frames are n x n.
    pub n: usize,
    pub n_exposures: usize,
    /// Output pixels per input pixel (per axis).
    pub s: f64,
    /// Sky box margin in input pixels.
    pub margin: f64,
    /// Rolls are uniform in +- this many degrees (exposure 0 is unrolled).
    pub max_roll_deg: f64,
    /// PSF sigma in input pixels (0.45: FWHM 1.06 px, strongly undersampled).
    pub psf_sigma: f64,
    pub n_stars: usize,
    /// Star fluxes uniform in this range (input-pixel intensity units x px^2).
    pub flux: (f64, f64),
    /// Per-pixel noise sigma.
    pub noise: f64,
    /// Sky offsets uniform in +- this (exposure 0 has 0).
    pub sky: f64,
    pub cosmic_rays_per_exposure: usize,
    pub cosmic_ray_amplitude: f64,
    /// Masked (ivar 0) columns per exposure.
    pub masked_columns: usize,
    /// Per-exposure PSF widths: exposure e > 0 has sigma `psf_sigma (1 + spread (2 u - 1))`
    /// (u uniform; no extra draw when 0), the one-PSF assumption broken as in real data.
    pub psf_sigma_spread: f64,
    /// A saturated star's mask: every pixel whose centre lies within this radius (input
    /// pixels) of the brightest star is masked (ivar 0) in every exposure; 0 = none.
    pub star_mask_radius: f64,
    pub seed: u64,
}

impl Default for SynthSpec {
    fn default() -> Self {
        Self {
            n: 24,
            n_exposures: 9,
            s: 2.0,
            margin: 2.0,
            max_roll_deg: 0.1,
            psf_sigma: 0.45,
            n_stars: 12,
            flux: (0.5, 3.0),
            noise: 0.01,
            sky: 0.05,
            cosmic_rays_per_exposure: 0,
            cosmic_ray_amplitude: 5.0,
            masked_columns: 0,
            psf_sigma_spread: 0.0,
            star_mask_radius: 0.0,
            seed: 1,
        }
    }
}

/// Generated exposures and truth.
#[derive(Clone, Debug)]
pub struct Synth {
    pub exposures: Vec<Exposure2d>,
    /// The same exposures without noise, cosmic rays or sky (masks kept).
    pub clean: Vec<Exposure2d>,
    pub truth: Array2<f64>,
    pub out_shape: (usize, usize),
    pub sky: Vec<f64>,
    /// (dx, dy, roll degrees) per exposure.
    pub dithers: Vec<(f64, f64, f64)>,
    /// Per exposure, the (iy, ix) hit by cosmic rays.
    pub cosmic_rays: Vec<Vec<(usize, usize)>>,
}

/// Generates a data set.
#[must_use]
pub fn generate(spec: &SynthSpec) -> Synth {
    let mut rng = SplitMix(spec.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x1234_5678);
    let n = spec.n;
    let c = (n as f64 - 1.0) / 2.0;
    let lo = spec.margin;
    let hi = n as f64 - 1.0 - spec.margin;
    let nout = ((hi - lo) * spec.s).floor().max(1.0) as usize;
    let stars: Vec<(f64, f64, f64)> = (0..spec.n_stars)
        .map(|_| {
            let x = lo + 1.0 + (hi - lo - 2.0) * rng.uniform();
            let y = lo + 1.0 + (hi - lo - 2.0) * rng.uniform();
            let f = spec.flux.0 + (spec.flux.1 - spec.flux.0) * rng.uniform();
            (x, y, f)
        })
        .collect();
    let mut exposures = Vec::new();
    let mut clean = Vec::new();
    let mut skies = Vec::new();
    let mut dithers = Vec::new();
    let mut crs = Vec::new();
    for e in 0..spec.n_exposures {
        let (dx, dy, roll) = if e == 0 {
            (0.0, 0.0, 0.0)
        } else {
            (
                rng.uniform() - 0.5,
                rng.uniform() - 0.5,
                spec.max_roll_deg * (2.0 * rng.uniform() - 1.0),
            )
        };
        let sigma = if e > 0 && spec.psf_sigma_spread > 0.0 {
            spec.psf_sigma * (1.0 + spec.psf_sigma_spread * (2.0 * rng.uniform() - 1.0))
        } else {
            spec.psf_sigma
        };
        let th = roll.to_radians();
        let (ct, st) = (th.cos(), th.sin());
        let mut pm = Array3::zeros((n, n, 2));
        let mut img = Array2::zeros((n, n));
        for j in 0..n {
            for i in 0..n {
                let (a, b) = (i as f64 - c, j as f64 - c);
                let px = ct * a - st * b + c + dx;
                let py = st * a + ct * b + c + dy;
                pm[[j, i, 0]] = spec.s * (px - lo);
                pm[[j, i, 1]] = spec.s * (py - lo);
            }
        }
        for &(qx, qy, f) in &stars {
            // The star in this exposure's pixel frame.
            let (a, b) = (qx - c - dx, qy - c - dy);
            let ex = ct * a + st * b + c;
            let ey = -st * a + ct * b + c;
            let bx: Vec<f64> = (0..n).map(|i| box1(i as f64, ex, sigma)).collect();
            let by: Vec<f64> = (0..n).map(|j| box1(j as f64, ey, sigma)).collect();
            for j in 0..n {
                for i in 0..n {
                    img[[j, i]] += f * bx[i] * by[j];
                }
            }
        }
        let sky = if e == 0 {
            0.0
        } else {
            spec.sky * (2.0 * rng.uniform() - 1.0)
        };
        let mut ivar = Array2::from_elem((n, n), 1.0 / (spec.noise * spec.noise));
        for _ in 0..spec.masked_columns {
            let col = (rng.uniform() * n as f64) as usize % n;
            ivar.column_mut(col).fill(0.0);
        }
        if spec.star_mask_radius > 0.0
            && let Some(&(qx, qy, _)) = stars.iter().max_by(|a, b| a.2.total_cmp(&b.2))
        {
            for j in 0..n {
                for i in 0..n {
                    let (sx, sy) = (pm[[j, i, 0]] / spec.s + lo, pm[[j, i, 1]] / spec.s + lo);
                    if (sx - qx).hypot(sy - qy) <= spec.star_mask_radius {
                        ivar[[j, i]] = 0.0;
                    }
                }
            }
        }
        let mut noisy = img.mapv(|v| v + sky);
        noisy.mapv_inplace(|v| v + spec.noise * rng.normal());
        let mut hits = Vec::new();
        for _ in 0..spec.cosmic_rays_per_exposure {
            let (j, i) = (
                (rng.uniform() * n as f64) as usize % n,
                (rng.uniform() * n as f64) as usize % n,
            );
            noisy[[j, i]] += spec.cosmic_ray_amplitude * (0.5 + rng.uniform());
            hits.push((j, i));
        }
        for ((j, i), iv) in ivar.indexed_iter() {
            if *iv == 0.0 {
                noisy[[j, i]] = 1e30; // garbage under the mask: must never leak
            }
        }
        let name = format!("synth{e:02}");
        clean.push(Exposure2d {
            name: name.clone(),
            sci: img,
            ivar: ivar.clone(),
            pixmap: pm.clone(),
            weight: 1.0,
            include: true,
        });
        exposures.push(Exposure2d {
            name,
            sci: noisy,
            ivar,
            pixmap: pm,
            weight: 1.0,
            include: true,
        });
        skies.push(sky);
        dithers.push((dx, dy, roll));
        crs.push(hits);
    }
    let truth = Array2::from_shape_fn((nout, nout), |(y, x)| {
        let (px, py) = (lo + x as f64 / spec.s, lo + y as f64 / spec.s);
        stars
            .iter()
            .map(|&(qx, qy, f)| f * box1(px, qx, spec.psf_sigma) * box1(py, qy, spec.psf_sigma))
            .sum()
    });
    Synth {
        exposures,
        clean,
        truth,
        out_shape: (nout, nout),
        sky: skies,
        dithers,
        cosmic_rays: crs,
    }
}
