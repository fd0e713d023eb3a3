//! The images mode's inputs: exposures as read (or the built-in demo), their geometry, and the
//! settings the panel edits; [`build`] turns both into the engine's exposures on an output grid.
//! Runs off the UI thread (in the jobs of `job.rs`).

use std::path::{Path, PathBuf};

use ndarray::{Array2, Array3};

use frizzview_core::image::read::{self, DqPolicy};
use frizzview_core::image::wcs::{self, OutputGrid, OutputOptions, ShiftRotation, Wcs};
use frizzview_core::image::{Exposure2d, synth};

/// One exposure as read (the DQ policy applied: every flagged pixel gets inverse variance 0).
#[derive(Clone, Debug)]
pub struct InputExposure {
    /// Short name (file stem, `[k]` for a frame of a stack).
    pub name: String,
    /// Intensities, `[[row, column]]`.
    pub sci: Array2<f64>,
    /// Inverse variance (0 = masked).
    pub ivar: Array2<f64>,
}

/// Where the exposures land on the output grid.
#[derive(Clone, Debug)]
pub enum Geometry {
    /// Each exposure's celestial WCS: a TAN output grid at the inputs' centre, north up.
    Wcs(Vec<Wcs>),
    /// Translations in input pixels (a shifts file, or none: all zero).
    Shifts(Vec<(f64, f64)>),
    /// Given pixmaps at output scale `scale` on a `shape` grid (the synthetic demo).
    Pixmaps {
        pixmaps: Vec<Array3<f64>>,
        scale: f64,
        shape: (usize, usize),
    },
}

/// The loaded set.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// What the set is called in the window.
    pub name: String,
    /// The exposures.
    pub exposures: Vec<InputExposure>,
    /// Their geometry.
    pub geometry: Geometry,
    /// The output scale to start with (output pixels per input pixel).
    pub default_scale: f64,
    /// The truth on the default output grid, when known (the demo).
    pub truth: Option<Array2<f64>>,
    /// Facts the user should know (units unknown, unit weights, where the shifts came from).
    pub notes: Vec<String>,
}

/// Per-exposure settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ExposureSetting {
    /// Used in the combination.
    pub include: bool,
    /// Scalar weight on its inverse variance.
    pub weight: f64,
    /// Extra shift along x and y, in input pixels.
    pub dx: f64,
    pub dy: f64,
}

impl Default for ExposureSetting {
    fn default() -> Self {
        Self {
            include: true,
            weight: 1.0,
            dx: 0.0,
            dy: 0.0,
        }
    }
}

/// The CG iteration cap of the live path (the full solve: [`FULL_MAX_ITER`]).
pub const LIVE_MAX_ITER: usize = 300;
/// The CG iteration cap of "solve to convergence".
pub const FULL_MAX_ITER: usize = 3000;

/// Everything the panel edits that changes a result.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSettings {
    /// Per exposure.
    pub exposures: Vec<ExposureSetting>,
    /// Output pixels per input pixel (per axis).
    pub scale: f64,
    /// Drizzle's pixfrac.
    pub pixfrac: f64,
    /// Fit per-exposure sky offsets.
    pub sky: bool,
    /// Ridge (an inverse variance pulling each model pixel to 0).
    pub ridge: f64,
    /// Solve to convergence ([`FULL_MAX_ITER`]) instead of the live cap ([`LIVE_MAX_ITER`]).
    pub converge: bool,
}

impl ImageSettings {
    /// Defaults for `inputs`.
    #[must_use]
    pub fn for_inputs(inputs: &Inputs) -> Self {
        Self {
            exposures: vec![ExposureSetting::default(); inputs.exposures.len()],
            scale: inputs.default_scale,
            pixfrac: 0.6,
            sky: true,
            ridge: 0.0,
            converge: false,
        }
    }

    /// The CG iteration cap in use.
    #[must_use]
    pub fn max_iter(&self) -> usize {
        if self.converge {
            FULL_MAX_ITER
        } else {
            LIVE_MAX_ITER
        }
    }
}

/// The engine's view of a set: exposures with pixmaps, weights and inclusion, and the grid.
#[derive(Clone, Debug)]
pub struct Built {
    /// The exposures (weights and inclusion from the settings).
    pub exposures: Vec<Exposure2d>,
    /// Output (ny, nx).
    pub shape: (usize, usize),
    /// The output WCS, when the inputs have one.
    pub wcs: Option<Wcs>,
}

/// The largest output side the window makes (bigger asks are refused with a message).
pub const MAX_SIDE: usize = 2048;

/// Build the engine's exposures and the output grid from `inputs` and `s`.
///
/// # Errors
/// A scale that is not usable, an output beyond [`MAX_SIDE`], a WCS that cannot be gridded.
pub fn build(inputs: &Inputs, s: &ImageSettings) -> Result<Built, String> {
    if !(s.scale.is_finite() && s.scale > 0.05 && s.scale <= 8.0) {
        return Err(format!("output scale {} must be in (0.05, 8]", s.scale));
    }
    let n = inputs.exposures.len();
    if s.exposures.len() != n {
        return Err(format!(
            "{} exposure settings for {n} exposures",
            s.exposures.len()
        ));
    }
    let (pixmaps, shape, out_wcs): (Vec<Array3<f64>>, (usize, usize), Option<Wcs>) =
        match &inputs.geometry {
            Geometry::Wcs(ws) => {
                let list: Vec<(&Wcs, (usize, usize))> = ws
                    .iter()
                    .zip(&inputs.exposures)
                    .map(|(w, e)| (w, (e.sci.ncols(), e.sci.nrows())))
                    .collect();
                let mut scales: Vec<f64> = list
                    .iter()
                    .map(|(w, (nx, ny))| {
                        w.pixel_scale_arcsec((*nx as f64 - 1.0) / 2.0, (*ny as f64 - 1.0) / 2.0)
                    })
                    .collect();
                scales.sort_by(f64::total_cmp);
                let own = scales[scales.len() / 2];
                let grid: OutputGrid = wcs::output_grid(
                    &list,
                    &OutputOptions {
                        scale_arcsec: Some(own / s.scale),
                        ..OutputOptions::default()
                    },
                )?;
                check_side(grid.nx, grid.ny)?;
                let pms = list
                    .iter()
                    .map(|(w, (nx, ny))| wcs::pixmap_wcs(w, *nx, *ny, &grid.wcs))
                    .collect();
                (pms, (grid.ny, grid.nx), Some(grid.wcs))
            }
            Geometry::Shifts(sh) => {
                let (nx, ny) = inputs
                    .exposures
                    .iter()
                    .map(|e| (e.sci.ncols(), e.sci.nrows()))
                    .fold((0, 0), |a, b| (a.0.max(b.0), a.1.max(b.1)));
                let (ox, oy) = (
                    (nx as f64 * s.scale).round() as usize,
                    (ny as f64 * s.scale).round() as usize,
                );
                check_side(ox, oy)?;
                let pms = inputs
                    .exposures
                    .iter()
                    .zip(sh)
                    .zip(&s.exposures)
                    .map(|((e, (dx, dy)), es)| {
                        let g = ShiftRotation {
                            dx: dx + es.dx,
                            dy: dy + es.dy,
                            scale: s.scale,
                            ..ShiftRotation::default()
                        };
                        wcs::pixmap_shift_rotation(e.sci.ncols(), e.sci.nrows(), &g)
                    })
                    .collect();
                (pms, (oy.max(1), ox.max(1)), None)
            }
            Geometry::Pixmaps {
                pixmaps,
                scale,
                shape,
            } => {
                let f = s.scale / scale;
                let (oy, ox) = (
                    ((shape.0 as f64 * f).round() as usize).max(1),
                    ((shape.1 as f64 * f).round() as usize).max(1),
                );
                check_side(ox, oy)?;
                (
                    pixmaps.iter().map(|p| p.mapv(|v| v * f)).collect(),
                    (oy, ox),
                    None,
                )
            }
        };
    let shifted = !matches!(inputs.geometry, Geometry::Shifts(_));
    let mut exposures = Vec::with_capacity(n);
    for ((e, mut pm), es) in inputs.exposures.iter().zip(pixmaps).zip(&s.exposures) {
        if shifted && (es.dx != 0.0 || es.dy != 0.0) {
            pm.slice_mut(ndarray::s![.., .., 0])
                .mapv_inplace(|v| v + s.scale * es.dx);
            pm.slice_mut(ndarray::s![.., .., 1])
                .mapv_inplace(|v| v + s.scale * es.dy);
        }
        let mut x = Exposure2d::new(e.name.clone(), e.sci.clone(), e.ivar.clone(), pm)
            .map_err(|err| err.to_string())?;
        if !(es.weight.is_finite() && es.weight >= 0.0) {
            return Err(format!("{}: weight {} must be >= 0", e.name, es.weight));
        }
        x.weight = es.weight;
        x.include = es.include && es.weight > 0.0;
        exposures.push(x);
    }
    Ok(Built {
        exposures,
        shape,
        wcs: out_wcs,
    })
}

fn check_side(nx: usize, ny: usize) -> Result<(), String> {
    if nx > MAX_SIDE || ny > MAX_SIDE {
        Err(format!(
            "the output would be {nx} x {ny} px, more than {MAX_SIDE} on a side: lower the scale"
        ))
    } else {
        Ok(())
    }
}

/// The built-in demo: seeded undersampled stars (pixel-integrated Gaussian PSFs, FWHM 1.06 input
/// px), 9 random dithers with a small roll, noise and per-exposure sky offsets, no cosmic rays
/// (the window's live fit does not clip), at 2 output pixels per input pixel. The seed is the
/// first whose dithers pass the coverage analysis (every sub-pixel phase cell covered), so the
/// demo shows the method where it works; drop exposures to see the trap.
#[must_use]
pub fn demo() -> Inputs {
    let mut spec = synth::SynthSpec {
        n_exposures: 9,
        ..synth::SynthSpec::default()
    };
    let mut g = synth::generate(&spec);
    for seed in 1..64 {
        spec.seed = seed;
        g = synth::generate(&spec);
        if super::coverage::analyse(&g.exposures, g.out_shape, spec.s)
            .warnings
            .is_empty()
        {
            break;
        }
    }
    let pixmaps = g.exposures.iter().map(|e| e.pixmap.clone()).collect();
    let exposures = g
        .exposures
        .into_iter()
        .map(|e| InputExposure {
            name: e.name,
            sci: e.sci,
            ivar: e.ivar,
        })
        .collect();
    Inputs {
        name: "demo: 9 dithered exposures of undersampled synthetic stars".into(),
        exposures,
        geometry: Geometry::Pixmaps {
            pixmaps,
            scale: spec.s,
            shape: g.out_shape,
        },
        default_scale: spec.s,
        truth: Some(g.truth),
        notes: vec![format!(
            "synthetic (seed {}): intensities in arbitrary units, noise sigma {}, sky offsets up \
             to {}",
            spec.seed, spec.noise, spec.sky
        )],
    }
}

fn lower_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Whether a path names an image by its name: `.npy`, TIFF, or a FITS name of an image product
/// (NOIRLab CP `ooi`/`oow`/`ood`, `*.wht.fits`, HST/JWST `_flt`, `_flc`, `_drz`, `_drc`, `_cal`,
/// `_i2d`, `_sci`).
#[must_use]
pub fn named_like_image(p: &Path) -> bool {
    let n = lower_name(p);
    if n.ends_with(".npy") || n.ends_with(".tif") || n.ends_with(".tiff") {
        return true;
    }
    let fits = [".fits", ".fit", ".fts", ".fits.gz", ".fits.fz"]
        .iter()
        .any(|e| n.ends_with(e));
    fits && [
        "_ooi_", "_oow_", "_ood_", ".wht.", "_wht.", "_flt.", "_flc.", "_drz.", "_drc.", "_cal.",
        "_i2d.", "_sci.",
    ]
    .iter()
    .any(|k| n.contains(k))
}

/// Whether a path can be an image file when the images mode is active (any FITS, `.npy`, TIFF).
#[must_use]
pub fn may_be_image(p: &Path) -> bool {
    let n = lower_name(p);
    named_like_image(p)
        || [".fits", ".fit", ".fts", ".fits.gz", ".fits.fz"]
            .iter()
            .any(|e| n.ends_with(e))
}

/// Whether a path is a shifts table (`.txt` or `.csv`: one line `dx dy` per exposure).
#[must_use]
pub fn is_shifts_file(p: &Path) -> bool {
    let n = lower_name(p);
    n.ends_with(".txt") || n.ends_with(".csv")
}

/// Whether `paths` go to the images mode: at least one image and nothing but images and shifts
/// tables; with the mode active, any FITS counts as an image.
#[must_use]
pub fn route_to_images(paths: &[PathBuf], active: bool) -> bool {
    let image = |p: &PathBuf| {
        if active {
            may_be_image(p)
        } else {
            named_like_image(p)
        }
    };
    paths.iter().any(image) && paths.iter().all(|p| image(p) || is_shifts_file(p))
}

/// Parse a shifts table: per line `dx dy` (whitespace or commas), `#` comments; a CSV header
/// line picks the columns whose names start with `dx` and `dy`.
///
/// # Errors
/// A line that is not two numbers, naming the file and line.
pub fn parse_shifts(path: &Path, text: &str) -> Result<Vec<(f64, f64)>, String> {
    let mut cols = (0usize, 1usize);
    let mut out = Vec::new();
    for (k, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .collect();
        if out.is_empty() && f.iter().any(|s| s.parse::<f64>().is_err()) {
            let find = |pre: &str| {
                f.iter()
                    .position(|s| s.to_ascii_lowercase().starts_with(pre))
            };
            match (find("dx"), find("dy")) {
                (Some(a), Some(b)) => {
                    cols = (a, b);
                    continue;
                }
                _ => {
                    return Err(format!(
                        "{}: line {}: not two numbers dx dy, nor a header with dx and dy columns",
                        path.display(),
                        k + 1
                    ));
                }
            }
        }
        let get = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok());
        match (get(cols.0), get(cols.1)) {
            (Some(a), Some(b)) if a.is_finite() && b.is_finite() => out.push((a, b)),
            _ => {
                return Err(format!(
                    "{}: line {}: expected the shifts dx dy, found '{line}'",
                    path.display(),
                    k + 1
                ));
            }
        }
    }
    Ok(out)
}

/// Read image files (and an optional shifts table) into [`Inputs`].
///
/// # Errors
/// The first file that cannot be read, named, with what is wrong.
pub fn load(paths: &[PathBuf]) -> Result<Inputs, String> {
    let (shift_files, images): (Vec<PathBuf>, Vec<PathBuf>) =
        paths.iter().cloned().partition(|p| is_shifts_file(p));
    if images.is_empty() {
        return Err("no image file among the files given".into());
    }
    if shift_files.len() > 1 {
        return Err(format!(
            "{} shifts tables given; give one",
            shift_files.len()
        ));
    }
    let read = read::load_images(&images).map_err(|e| e.to_string())?;
    if read.is_empty() {
        return Err("no exposure was found in the files given".into());
    }
    let policy = DqPolicy::default();
    let mut notes: Vec<String> = Vec::new();
    for e in &read {
        for n in &e.notes {
            let line = format!("{}: {n}", e.name);
            if !notes.contains(&line) && notes.len() < 12 {
                notes.push(line);
            }
        }
    }
    let all_wcs = read.iter().all(|e| e.wcs.is_some());
    let geometry = if let Some(sf) = shift_files.first() {
        let text = std::fs::read_to_string(sf)
            .map_err(|e| format!("{}: cannot read: {e}", sf.display()))?;
        let sh = parse_shifts(sf, &text)?;
        if sh.len() != read.len() {
            return Err(format!(
                "{}: {} shifts for {} exposures",
                sf.display(),
                sh.len(),
                read.len()
            ));
        }
        notes.push(format!(
            "geometry: translations from {} (input pixels; frame k samples x + dx_k)",
            sf.display()
        ));
        Geometry::Shifts(sh)
    } else if all_wcs {
        notes.push("geometry: each exposure's WCS; output north up at the inputs' centre".into());
        Geometry::Wcs(read.iter().filter_map(|e| e.wcs.clone()).collect())
    } else {
        notes.push(
            "geometry: no WCS and no shifts table: the exposures are taken as aligned (give a \
             .txt of dx dy per exposure, or shift them in the table)"
                .into(),
        );
        Geometry::Shifts(vec![(0.0, 0.0); read.len()])
    };
    let default_scale = match geometry {
        Geometry::Wcs(_) => 1.0,
        _ => 2.0,
    };
    let name = match images.as_slice() {
        [one] => format!("{} ({} exposures)", one.display(), read.len()),
        _ => format!("{} image files ({} exposures)", images.len(), read.len()),
    };
    let exposures = read
        .iter()
        .map(|e| InputExposure {
            name: e.name.clone(),
            sci: e.sci.clone(),
            ivar: e.effective_ivar(&policy),
        })
        .collect();
    Ok(Inputs {
        name,
        exposures,
        geometry,
        default_scale,
        truth: None,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_tables_parse_with_and_without_a_header() {
        let p = Path::new("s.txt");
        let a = parse_shifts(p, "0.5 -1\n# c\n2,3\n").expect("plain");
        assert_eq!(a, vec![(0.5, -1.0), (2.0, 3.0)]);
        let b = parse_shifts(p, "frame,dx_lowres_px,dy_lowres_px\n0,1.5,2.5\n").expect("csv");
        assert_eq!(b, vec![(1.5, 2.5)]);
        assert!(parse_shifts(p, "1 x\n").is_err());
    }

    #[test]
    fn routing_by_name() {
        let p = |s: &str| vec![PathBuf::from(s)];
        assert!(route_to_images(&p("a.npy"), false));
        assert!(route_to_images(&p("c4d_1_ooi_z_ls9.N12.fits"), false));
        assert!(!route_to_images(&p("apVisit-x.fits"), false));
        assert!(route_to_images(&p("apVisit-x.fits"), true));
        assert!(!route_to_images(&p("a.csv"), true));
    }
}
