//! Readers of image exposures: science values, inverse variance and data quality per exposure,
//! with the exposure's WCS when its header has one.
//!
//! Layouts read (detected from the file name and content):
//! - **NOIRLab community-pipeline triplets**: an image `*_ooi_*` with its inverse-variance weight
//!   `*_oow_*` and data-quality `*_ood_*` beside it, found by name when only the image is given.
//!   The DQ holds CP *codes*, not bits ([`CP_DQ_CODES`], from legacypipe `py/legacypipe/cpimage.py`
//!   `remap_dq_cp_codes`).
//! - **HST/JWST-style extensions** in one file: `SCI` with `ERR` (sigma), `DQ` (bits) and, for
//!   JWST, `VAR_POISSON`/`VAR_RNOISE`/`VAR_FLAT` (summed when `ERR` is absent); one exposure per
//!   `EXTVER` of `SCI` (HST's chips). Extensions named `IVAR`/`INVVAR`/`WHT`/`WEIGHT` (inverse
//!   variance), `VAR`/`VARIANCE`, `MASK`/`FLAGS`/`BPM` (bits) are read the same way.
//! - **Plain FITS images**: the first HDU with an image; a 3-D cube is a stack of frames. A weight
//!   file beside it (`X.wht.fits` or `X_wht.fits` for `X.fits`) is its inverse variance.
//! - **`.npy`** arrays, 2-D (one image) or 3-D (frames), with optional companions beside them:
//!   `X_ivar.npy` (or `X.ivar.npy`, `X_wht.npy`), `X_err.npy`, `X_var.npy`, `X_dq.npy`.
//! - **TIFF stacks** (grey pages: one frame per page), through the pure-Rust `tiff` crate.
//!
//! Inputs are taken as **intensities** (per pixel, per unit time): a missing `BUNIT`, or a unit
//! of counts per exposure, is reported in [`ImageExposure::notes`]. Without any noise estimate
//! the inverse variance is 1 everywhere (also noted). Pixels whose value is not finite get
//! inverse variance 0. Every error names the file and the HDU or card; nothing here panics on
//! bad input.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use fitsio::FitsFile;
use fitsio::hdu::FitsHdu;
use ndarray::{Array2, Array3};

use super::Exposure2d;
use super::wcs::{CardValue, Wcs};
use crate::io::LoadError;
use crate::io::fits::{self, HduDesc};
use crate::model::pixel_policy::BitAction;

/// The NOIRLab community pipeline's DQ codes (legacypipe `py/legacypipe/cpimage.py`,
/// `remap_dq_cp_codes`): the `ood` files hold one of these integers per pixel, 0 = good.
pub const CP_DQ_CODES: [(u32, &str); 8] = [
    (1, "bad"),
    (2, "no value"),
    (3, "saturated"),
    (4, "bleed"),
    (5, "cosmic ray"),
    (6, "low weight"),
    (7, "diff detect"),
    (8, "long streak"),
];

/// How a DQ array is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DqEncoding {
    /// One integer code per pixel (the NOIRLab community pipeline's, [`CP_DQ_CODES`]).
    Codes,
    /// A bitmask per pixel (HST, JWST and most others).
    Bits,
}

/// What each DQ code or bit does to a pixel: `Bad` (inverse variance 0), `Inflate(f)` (sigma
/// times f) or `Ignore`. Codes or bits not listed get `default`.
#[derive(Clone, Debug, PartialEq)]
pub struct DqPolicy {
    /// Per code (for [`DqEncoding::Codes`]) or bit number (for [`DqEncoding::Bits`]).
    pub actions: Vec<(u32, BitAction)>,
    /// For codes and bits not listed.
    pub default: BitAction,
}

impl Default for DqPolicy {
    /// Every nonzero code and every set bit is bad.
    fn default() -> Self {
        Self {
            actions: Vec::new(),
            default: BitAction::Bad,
        }
    }
}

impl DqPolicy {
    /// Set the action of one code or bit.
    #[must_use]
    pub fn with(mut self, key: u32, action: BitAction) -> Self {
        self.actions.retain(|(k, _)| *k != key);
        self.actions.push((key, action));
        self
    }

    fn action(&self, key: u32) -> BitAction {
        self.actions
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(self.default, |(_, a)| *a)
    }

    /// The factor on the inverse variance of a pixel with DQ value `dq`: 0 (bad), `1/f^2`
    /// (inflated) or 1.
    #[must_use]
    pub fn ivar_factor(&self, dq: u32, encoding: DqEncoding) -> f64 {
        if dq == 0 {
            return 1.0;
        }
        let one = |a: BitAction| match a {
            BitAction::Bad => 0.0,
            BitAction::Inflate(f) if f.is_finite() && f > 0.0 => 1.0 / (f * f),
            BitAction::Inflate(_) => 0.0,
            BitAction::Ignore => 1.0,
        };
        match encoding {
            DqEncoding::Codes => one(self.action(dq)),
            DqEncoding::Bits => (0..32)
                .filter(|b| dq & (1 << b) != 0)
                .map(|b| one(self.action(b)))
                .product(),
        }
    }
}

/// One exposure as read: science values, inverse variance (before the DQ policy), DQ.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageExposure {
    /// A short name: the file stem, with `[k]` for frame k of a stack or `[SCI,v]` for a chip.
    pub name: String,
    /// The image file.
    pub path: PathBuf,
    /// The HDU (or page) the science values came from, e.g. "HDU 1 (N12)".
    pub hdu: String,
    /// Science values (intensities), `[[row, column]]`.
    pub sci: Array2<f64>,
    /// Inverse variance as read (0 where the file says so or the value is not finite).
    pub ivar: Array2<f64>,
    /// Data quality, if any.
    pub dq: Option<Array2<u32>>,
    /// How `dq` is encoded.
    pub dq_encoding: DqEncoding,
    /// The exposure's celestial WCS, if its header has one.
    pub wcs: Option<Wcs>,
    /// `BUNIT`, if given.
    pub bunit: Option<String>,
    /// The companion files read (weight, DQ).
    pub companions: Vec<PathBuf>,
    /// Facts a user should know (units unknown, unit weights, pixels set to zero weight...).
    pub notes: Vec<String>,
}

impl ImageExposure {
    /// An exposure of `sci` and `ivar` with nothing else known: no DQ (bit encoding), WCS,
    /// units, companions or notes.
    #[must_use]
    pub fn new(
        name: impl Into<String>,
        path: impl Into<PathBuf>,
        hdu: impl Into<String>,
        sci: Array2<f64>,
        ivar: Array2<f64>,
    ) -> Self {
        Self {
            name: name.into(),
            path: path.into(),
            hdu: hdu.into(),
            sci,
            ivar,
            dq: None,
            dq_encoding: DqEncoding::Bits,
            wcs: None,
            bunit: None,
            companions: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// An exposure from arrays in memory (no file): `name` is also its path, its HDU is
    /// "array", and nothing else is known (see [`ImageExposure::new`]).
    ///
    /// # Errors
    /// When `sci` and `ivar` differ in shape.
    pub fn from_arrays(name: &str, sci: Array2<f64>, ivar: Array2<f64>) -> Result<Self, String> {
        if sci.dim() != ivar.dim() {
            return Err(format!(
                "sci shape {:?} and ivar shape {:?} differ",
                sci.dim(),
                ivar.dim()
            ));
        }
        Ok(Self::new(name, name, "array", sci, ivar))
    }

    /// (nx, ny).
    #[must_use]
    pub fn size(&self) -> (usize, usize) {
        (self.sci.ncols(), self.sci.nrows())
    }

    /// The inverse variance after the DQ policy.
    #[must_use]
    pub fn effective_ivar(&self, policy: &DqPolicy) -> Array2<f64> {
        let mut iv = self.ivar.clone();
        if let Some(dq) = &self.dq {
            ndarray::Zip::from(&mut iv).and(dq).for_each(|w, &q| {
                if q != 0 {
                    *w *= policy.ivar_factor(q, self.dq_encoding);
                }
            });
        }
        iv
    }

    /// The engine's input: this exposure with the DQ policy applied and its pixmap.
    ///
    /// # Errors
    /// When the pixmap's shape is not (ny, nx, 2).
    pub fn to_exposure2d(
        &self,
        pixmap: Array3<f64>,
        policy: &DqPolicy,
        weight: f64,
    ) -> Result<Exposure2d, String> {
        let (nx, ny) = self.size();
        if pixmap.dim() != (ny, nx, 2) {
            return Err(format!(
                "{}: the pixmap has shape {:?}, the image needs ({ny}, {nx}, 2)",
                self.name,
                pixmap.dim()
            ));
        }
        Ok(Exposure2d {
            name: self.name.clone(),
            sci: self.sci.clone(),
            ivar: self.effective_ivar(policy),
            pixmap,
            weight,
            include: true,
        })
    }
}

/// The largest `.npy` or TIFF file read (bytes).
pub const MAX_ARRAY_FILE_BYTES: u64 = 2 << 30;

/// Fails, naming the file, when it cannot be stat'ed or is larger than [`MAX_ARRAY_FILE_BYTES`]
/// (`what` says which kind of file it is, e.g. "the TIFF file").
fn check_array_file_size(path: &Path, what: &str) -> Result<(), LoadError> {
    let len = std::fs::metadata(path)
        .map_err(|e| LoadError::io(path, e))?
        .len();
    if len > MAX_ARRAY_FILE_BYTES {
        return Err(LoadError::invalid(
            path,
            what,
            format!("is {len} bytes, more than the {MAX_ARRAY_FILE_BYTES} read"),
        ));
    }
    Ok(())
}

/// Read the exposures in `paths`. Companion files (CP `oow`/`ood`, `X.wht.fits`, `X_ivar.npy`...)
/// are found beside each image; when given as well, they are not read twice as images.
///
/// # Errors
/// The first file that cannot be read, naming it and the HDU or card.
pub fn load_images(paths: &[PathBuf]) -> Result<Vec<ImageExposure>, LoadError> {
    let companions: Vec<PathBuf> = paths.iter().flat_map(|p| companion_names(p)).collect();
    let mut out = Vec::new();
    for p in paths {
        if companions.iter().any(|c| c == p) {
            continue;
        }
        out.extend(load_image(p)?);
    }
    Ok(out)
}

/// Read one image file: one exposure, or several (a stack, or HST chips).
///
/// # Errors
/// When the file cannot be read, naming it and the HDU or card.
pub fn load_image(path: &Path) -> Result<Vec<ImageExposure>, LoadError> {
    let name = file_name(path).to_ascii_lowercase();
    if name.ends_with(".npy") {
        read_npy_set(path)
    } else if name.ends_with(".tif") || name.ends_with(".tiff") {
        read_tiff(path)
    } else {
        fits::guard(path, || read_fits(path))
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The file name without `.fits`, `.fit`, `.fts` (and `.gz`/`.fz`), or `.npy`.
fn base_name(path: &Path) -> String {
    let n = file_name(path);
    let lower = n.to_ascii_lowercase();
    for ext in [
        ".fits.gz", ".fits.fz", ".fit.gz", ".fits", ".fit", ".fts", ".npy", ".tiff", ".tif",
    ] {
        if lower.ends_with(ext) {
            return n[..n.len() - ext.len()].to_owned();
        }
    }
    n
}

fn extension(path: &Path) -> String {
    let n = file_name(path);
    let b = base_name(path);
    n[b.len()..].to_owned()
}

/// The companion files an image may have beside it (whether they exist or not).
fn companion_names(path: &Path) -> Vec<PathBuf> {
    let dir = path.parent().unwrap_or(Path::new(""));
    let n = file_name(path);
    let mut v = Vec::new();
    if n.contains("_ooi_") {
        v.push(dir.join(n.replacen("_ooi_", "_oow_", 1)));
        v.push(dir.join(n.replacen("_ooi_", "_ood_", 1)));
    }
    let b = base_name(path);
    let ext = extension(path);
    if ext.eq_ignore_ascii_case(".npy") {
        for s in [
            "_ivar", ".ivar", "_wht", ".wht", "_err", ".err", "_var", ".var", "_dq", ".dq",
        ] {
            v.push(dir.join(format!("{b}{s}{ext}")));
        }
    } else {
        for s in ["_wht", ".wht"] {
            v.push(dir.join(format!("{b}{s}{ext}")));
        }
    }
    v
}

// ---------------------------------------------------------------------------------------------
// FITS.

/// The role of an extension, by its EXTNAME.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    Sci,
    Err,
    Var,
    Ivar,
    Dq,
}

fn role(name: &str) -> Option<Role> {
    let n = name.to_ascii_uppercase();
    Some(match n.as_str() {
        "SCI" | "IMAGE" | "DATA" | "FLUX" => Role::Sci,
        "ERR" | "ERROR" | "SIGMA" | "UNC" | "UNCERTAINTY" => Role::Err,
        "VAR" | "VARIANCE" => Role::Var,
        "IVAR" | "INVVAR" | "INV_VAR" | "WHT" | "WEIGHT" => Role::Ivar,
        "DQ" | "MASK" | "FLAGS" | "BPM" => Role::Dq,
        _ if n.starts_with("VAR_") => Role::Var,
        _ => return None,
    })
}

/// A header card's value for the WCS parser.
fn card(f: &mut FitsFile, hdu: &FitsHdu, key: &str) -> Option<CardValue> {
    if let Ok(v) = hdu.read_key::<f64>(f, key) {
        return Some(CardValue::Num(v));
    }
    hdu.read_key::<String>(f, key)
        .ok()
        .map(|s| CardValue::Text(s.trim().to_owned()))
}

/// The WCS of an image HDU (its own cards, else the primary header's when that has one), if
/// any. A header that names a celestial WCS it cannot give is an error naming the card.
fn read_wcs(
    f: &mut FitsFile,
    path: &Path,
    hdus: &[HduDesc],
    d: &HduDesc,
) -> Result<Option<Wcs>, LoadError> {
    let mut chosen = None;
    for h in [Some(d), hdus.first()].into_iter().flatten() {
        if card(f, &h.hdu, "CTYPE1").is_some() {
            chosen = Some(h);
            break;
        }
    }
    let Some(h) = chosen else {
        return Ok(None);
    };
    let cell = RefCell::new(f);
    let get = |k: &str| -> Option<CardValue> {
        let mut g = cell.borrow_mut();
        card(&mut g, &h.hdu, k)
    };
    match Wcs::from_cards(&get) {
        Ok(w) => Ok(Some(w)),
        Err(e) => Err(LoadError::invalid(
            path,
            format!("the WCS of {}, card {}", h.label(), e.card),
            e.reason,
        )),
    }
}

fn image2(
    f: &mut FitsFile,
    path: &Path,
    d: &HduDesc,
) -> Result<Vec<(String, Array2<f64>)>, LoadError> {
    let (shape, v) = fits::image_f64(f, path, d)?;
    let shape: Vec<usize> = {
        // Drop leading unit axes (e.g. (1, ny, nx)).
        let mut s = shape.clone();
        while s.len() > 2 && s[0] == 1 {
            s.remove(0);
        }
        s
    };
    match shape.as_slice() {
        [ny, nx] => Array2::from_shape_vec((*ny, *nx), v)
            .map(|a| vec![(d.label(), a)])
            .map_err(|e| LoadError::invalid(path, d.label(), e)),
        [n, ny, nx] => {
            let per = ny * nx;
            (0..*n)
                .map(|k| {
                    Array2::from_shape_vec((*ny, *nx), v[k * per..(k + 1) * per].to_vec())
                        .map(|a| (format!("{} plane {k}", d.label()), a))
                        .map_err(|e| LoadError::invalid(path, d.label(), e))
                })
                .collect()
        }
        _ => Err(LoadError::invalid(
            path,
            d.label(),
            format!("has shape {shape:?}; an image (ny, nx) or a stack (n, ny, nx) is read"),
        )),
    }
}

fn one_image(f: &mut FitsFile, path: &Path, d: &HduDesc) -> Result<Array2<f64>, LoadError> {
    let mut v = image2(f, path, d)?;
    if v.len() != 1 {
        return Err(LoadError::invalid(
            path,
            d.label(),
            format!("holds {} planes, expected one image", v.len()),
        ));
    }
    Ok(v.remove(0).1)
}

fn to_dq(path: &Path, what: &str, a: &Array2<f64>) -> Result<Array2<u32>, LoadError> {
    let mut out = Array2::zeros(a.dim());
    for ((iy, ix), &v) in a.indexed_iter() {
        if !(v.is_finite()
            && v.fract() == 0.0
            && v >= f64::from(i32::MIN)
            && v <= f64::from(u32::MAX))
        {
            return Err(LoadError::invalid(
                path,
                what.to_owned(),
                format!("pixel (x {ix}, y {iy}) holds {v}, not an integer DQ value"),
            ));
        }
        // Negative 32-bit values keep their bit pattern.
        out[[iy, ix]] = if v < 0.0 { (v as i32) as u32 } else { v as u32 };
    }
    Ok(out)
}

fn check_shape(
    path: &Path,
    what: &str,
    a: (usize, usize),
    sci: (usize, usize),
) -> Result<(), LoadError> {
    if a != sci {
        return Err(LoadError::invalid(
            path,
            what.to_owned(),
            format!(
                "has {} x {} pixels (ny x nx), the image {} x {}",
                a.0, a.1, sci.0, sci.1
            ),
        ));
    }
    Ok(())
}

/// Inverse variance from sigma: 1/err^2, 0 where err is not positive and finite.
fn ivar_from_err(err: &Array2<f64>) -> Array2<f64> {
    err.mapv(|e| {
        if e.is_finite() && e > 0.0 {
            1.0 / (e * e)
        } else {
            0.0
        }
    })
}

fn ivar_from_var(var: &Array2<f64>) -> Array2<f64> {
    var.mapv(|v| {
        if v.is_finite() && v > 0.0 {
            1.0 / v
        } else {
            0.0
        }
    })
}

/// Zero weight where the value or the weight is not usable; notes how many.
fn sanitize(sci: &Array2<f64>, ivar: &mut Array2<f64>, notes: &mut Vec<String>) {
    let mut n_val = 0usize;
    let mut n_w = 0usize;
    ndarray::Zip::from(ivar).and(sci).for_each(|w, &s| {
        if !s.is_finite() {
            if *w != 0.0 {
                n_val += 1;
            }
            *w = 0.0;
        } else if !(w.is_finite() && *w >= 0.0) {
            n_w += 1;
            *w = 0.0;
        }
    });
    if n_val > 0 {
        notes.push(format!(
            "{n_val} pixels hold a non-finite value: given zero weight"
        ));
    }
    if n_w > 0 {
        notes.push(format!(
            "{n_w} pixels have a negative or non-finite inverse variance: given zero weight"
        ));
    }
}

fn unit_note(bunit: Option<&str>) -> Option<String> {
    match bunit {
        None => Some(
            "no BUNIT: the values are taken as intensities (per pixel, per unit time); the units are unknown".into(),
        ),
        Some(u) => {
            let l = u.to_ascii_lowercase().replace(' ', "");
            let counts = ["count", "electron", "adu", "dn", "photon"]
                .iter()
                .any(|c| l.starts_with(c));
            let rate = l.contains("/s") || l.contains("s-1") || l.contains("s**-1") || l.contains("/sec");
            (counts && !rate).then(|| {
                format!(
                    "BUNIT '{u}' is a count per exposure, not an intensity: exposures of different length must be scaled by their exposure times first"
                )
            })
        }
    }
}

fn stem_name(path: &Path) -> String {
    base_name(path)
}

fn read_fits(path: &Path) -> Result<Vec<ImageExposure>, LoadError> {
    let mut f = fits::open(path)?;
    let hdus = fits::hdus(&mut f, path)?;
    let is_image = |d: &HduDesc| d.image_shape().is_some_and(|s| s.len() >= 2);
    let primary_bunit = hdus
        .first()
        .and_then(|p| fits::key_string(&mut f, &p.hdu, "BUNIT"));
    if hdus
        .iter()
        .any(|d| role(&d.name) == Some(Role::Sci) && is_image(d))
    {
        return read_extensions(&mut f, path, &hdus, primary_bunit);
    }
    let Some(d) = hdus.iter().find(|d| is_image(d)) else {
        return Err(LoadError::missing(path, "an image HDU (2-D or 3-D)"));
    };
    let wcs = read_wcs(&mut f, path, &hdus, d)?;
    let bunit = fits::key_string(&mut f, &d.hdu, "BUNIT").or(primary_bunit);
    let planes = image2(&mut f, path, d)?;
    drop(f);
    let stem = stem_name(path);
    let mut companions = Vec::new();
    let mut ivar_file: Option<(PathBuf, Array2<f64>)> = None;
    let mut dq_file: Option<(PathBuf, Array2<u32>, DqEncoding)> = None;
    let n = file_name(path);
    if n.contains("_ooi_") {
        let dir = path.parent().unwrap_or(Path::new(""));
        let w = dir.join(n.replacen("_ooi_", "_oow_", 1));
        let q = dir.join(n.replacen("_ooi_", "_ood_", 1));
        if !w.is_file() {
            return Err(LoadError::missing(
                path,
                format!(
                    "its community-pipeline weight file {} (the inverse variance beside an _ooi_ image)",
                    w.display()
                ),
            ));
        }
        ivar_file = Some((w.clone(), read_single_fits(&w)?));
        companions.push(w);
        if q.is_file() {
            let (what, a) = read_single_fits_labelled(&q)?;
            dq_file = Some((q.clone(), to_dq(&q, &what, &a)?, DqEncoding::Codes));
            companions.push(q);
        }
    } else {
        let dir = path.parent().unwrap_or(Path::new(""));
        let ext = extension(path);
        for s in ["_wht", ".wht"] {
            let w = dir.join(format!("{}{s}{ext}", base_name(path)));
            if w.is_file() {
                ivar_file = Some((w.clone(), read_single_fits(&w)?));
                companions.push(w);
                break;
            }
        }
    }
    let many = planes.len() > 1;
    let mut out = Vec::new();
    for (k, (label, sci)) in planes.into_iter().enumerate() {
        let mut notes = Vec::new();
        if let Some(u) = unit_note(bunit.as_deref()) {
            notes.push(u);
        }
        let mut ivar = match &ivar_file {
            Some((w, a)) => {
                check_shape(w, "the weight image", a.dim(), sci.dim())?;
                a.clone()
            }
            None => {
                notes.push("no inverse variance, error or weight: unit weights".into());
                Array2::ones(sci.dim())
            }
        };
        sanitize(&sci, &mut ivar, &mut notes);
        let (dq, enc) = match &dq_file {
            Some((q, a, enc)) => {
                check_shape(q, "the DQ image", a.dim(), sci.dim())?;
                (Some(a.clone()), *enc)
            }
            None => (None, DqEncoding::Bits),
        };
        out.push(ImageExposure {
            name: if many {
                format!("{stem}[{k}]")
            } else {
                stem.clone()
            },
            path: path.to_path_buf(),
            hdu: label,
            sci,
            ivar,
            dq,
            dq_encoding: enc,
            wcs: wcs.clone(),
            bunit: bunit.clone(),
            companions: companions.clone(),
            notes,
        });
    }
    Ok(out)
}

/// The first image of a companion file, with its HDU label.
fn read_single_fits_labelled(path: &Path) -> Result<(String, Array2<f64>), LoadError> {
    fits::guard(path, || {
        let mut f = fits::open(path)?;
        let hdus = fits::hdus(&mut f, path)?;
        let d = hdus
            .iter()
            .find(|d| d.image_shape().is_some_and(|s| s.len() >= 2))
            .ok_or_else(|| LoadError::missing(path, "an image HDU"))?;
        Ok((d.label(), one_image(&mut f, path, d)?))
    })
}

fn read_single_fits(path: &Path) -> Result<Array2<f64>, LoadError> {
    read_single_fits_labelled(path).map(|(_, a)| a)
}

/// SCI/ERR/DQ (and VAR_*, IVAR...) extensions, one exposure per EXTVER of SCI.
fn read_extensions(
    f: &mut FitsFile,
    path: &Path,
    hdus: &[HduDesc],
    primary_bunit: Option<String>,
) -> Result<Vec<ImageExposure>, LoadError> {
    let extver = |f: &mut FitsFile, d: &HduDesc| -> i64 {
        fits::key_f64(f, &d.hdu, "EXTVER").map_or(1, |v| v as i64)
    };
    let mut tagged = Vec::new();
    for d in hdus {
        if let Some(r) = role(&d.name)
            && d.image_shape().is_some_and(|s| s.len() >= 2)
        {
            let v = extver(f, d);
            tagged.push((r, v, d));
        }
    }
    let scis: Vec<(i64, &HduDesc)> = tagged
        .iter()
        .filter(|t| t.0 == Role::Sci)
        .map(|t| (t.1, t.2))
        .collect();
    let many = scis.len() > 1;
    let stem = stem_name(path);
    let mut out = Vec::new();
    for (ver, d) in scis {
        let sci = one_image(f, path, d)?;
        let mut notes = Vec::new();
        let bunit = fits::key_string(f, &d.hdu, "BUNIT").or(primary_bunit.clone());
        if let Some(u) = unit_note(bunit.as_deref()) {
            notes.push(u);
        }
        let of = |r: Role| -> Vec<&HduDesc> {
            tagged
                .iter()
                .filter(|t| t.0 == r && t.1 == ver)
                .map(|t| t.2)
                .collect()
        };
        let mut ivar = None;
        if let Some(e) = of(Role::Ivar).first() {
            let a = one_image(f, path, e)?;
            check_shape(path, &e.label(), a.dim(), sci.dim())?;
            ivar = Some(a);
        } else if let Some(e) = of(Role::Err).first() {
            let a = one_image(f, path, e)?;
            check_shape(path, &e.label(), a.dim(), sci.dim())?;
            ivar = Some(ivar_from_err(&a));
        } else {
            let vars = of(Role::Var);
            if !vars.is_empty() {
                let mut total = Array2::<f64>::zeros(sci.dim());
                let mut names = Vec::new();
                for e in vars {
                    let a = one_image(f, path, e)?;
                    check_shape(path, &e.label(), a.dim(), sci.dim())?;
                    total += &a;
                    names.push(e.name.clone());
                }
                if names.len() > 1 {
                    notes.push(format!(
                        "no ERR extension: the variance is the sum of {}",
                        names.join(" + ")
                    ));
                }
                ivar = Some(ivar_from_var(&total));
            }
        }
        let mut ivar = ivar.unwrap_or_else(|| {
            notes.push("no ERR, VAR or weight extension: unit weights".into());
            Array2::ones(sci.dim())
        });
        sanitize(&sci, &mut ivar, &mut notes);
        let dq = match of(Role::Dq).first() {
            Some(e) => {
                let a = one_image(f, path, e)?;
                check_shape(path, &e.label(), a.dim(), sci.dim())?;
                Some(to_dq(path, &e.label(), &a)?)
            }
            None => None,
        };
        let wcs = read_wcs(f, path, hdus, d)?;
        out.push(ImageExposure {
            name: if many {
                format!("{stem}[SCI,{ver}]")
            } else {
                stem.clone()
            },
            path: path.to_path_buf(),
            hdu: d.label(),
            sci,
            ivar,
            dq,
            dq_encoding: DqEncoding::Bits,
            wcs,
            bunit,
            companions: Vec::new(),
            notes,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// .npy

/// A `.npy` array: its shape, its values as f64, and its values as integers when it holds
/// integers or booleans.
type NpyRead = (Vec<usize>, Vec<f64>, Option<Vec<u64>>);

fn read_npy_array(path: &Path) -> Result<NpyRead, LoadError> {
    check_array_file_size(path, "the .npy file")?;
    let bytes = std::fs::read(path).map_err(|e| LoadError::io(path, e))?;
    let a = crate::io::npz::parse_npy(&bytes)
        .map_err(|e| LoadError::invalid(path, "the .npy array", e))?;
    use crate::io::npz::NpyData;
    let (vals, ints) = match a.data {
        NpyData::Float(v) => (v, None),
        NpyData::Int(v) => (
            v.iter().map(|&x| x as f64).collect(),
            Some(v.iter().map(|&x| x as u64).collect()),
        ),
        NpyData::UInt(v) => (v.iter().map(|&x| x as f64).collect(), Some(v)),
        NpyData::Bool(v) => (
            v.iter().map(|&x| f64::from(u8::from(x))).collect(),
            Some(v.iter().map(|&x| u64::from(x)).collect()),
        ),
    };
    Ok((a.shape, vals, ints))
}

fn planes_of(path: &Path, shape: &[usize], v: Vec<f64>) -> Result<Vec<Array2<f64>>, LoadError> {
    match shape {
        [ny, nx] if *ny > 0 && *nx > 0 => Array2::from_shape_vec((*ny, *nx), v)
            .map(|a| vec![a])
            .map_err(|e| LoadError::invalid(path, "the .npy array", e)),
        [n, ny, nx] if *n > 0 && *ny > 0 && *nx > 0 => {
            let per = ny * nx;
            (0..*n)
                .map(|k| {
                    Array2::from_shape_vec((*ny, *nx), v[k * per..(k + 1) * per].to_vec())
                        .map_err(|e| LoadError::invalid(path, "the .npy array", e))
                })
                .collect()
        }
        _ => Err(LoadError::invalid(
            path,
            "the .npy array",
            format!("has shape {shape:?}; an image (ny, nx) or a stack (n, ny, nx) is read"),
        )),
    }
}

fn read_npy_set(path: &Path) -> Result<Vec<ImageExposure>, LoadError> {
    let (shape, v, _) = read_npy_array(path)?;
    let planes = planes_of(path, &shape, v)?;
    let dir = path.parent().unwrap_or(Path::new(""));
    let b = base_name(path);
    let find = |suffixes: &[&str]| -> Option<PathBuf> {
        suffixes
            .iter()
            .map(|s| dir.join(format!("{b}{s}.npy")))
            .find(|p| p.is_file())
    };
    let mut companions = Vec::new();
    // The noise: ivar (or wht), else err, else var; each with the image's shape.
    let noise = if let Some(p) = find(&["_ivar", ".ivar", "_wht", ".wht"]) {
        Some((p, 0))
    } else if let Some(p) = find(&["_err", ".err"]) {
        Some((p, 1))
    } else {
        find(&["_var", ".var"]).map(|p| (p, 2))
    };
    let noise_planes = match noise {
        Some((p, kind)) => {
            let (s, v, _) = read_npy_array(&p)?;
            if s != shape {
                return Err(LoadError::invalid(
                    &p,
                    "the .npy array",
                    format!("has shape {s:?}, the image {}: {shape:?}", path.display()),
                ));
            }
            let pl = planes_of(&p, &s, v)?;
            companions.push(p);
            Some(
                pl.into_iter()
                    .map(|a| match kind {
                        0 => a,
                        1 => ivar_from_err(&a),
                        _ => ivar_from_var(&a),
                    })
                    .collect::<Vec<_>>(),
            )
        }
        None => None,
    };
    let dq_planes = match find(&["_dq", ".dq"]) {
        Some(p) => {
            let (s, _, ints) = read_npy_array(&p)?;
            if s != shape {
                return Err(LoadError::invalid(
                    &p,
                    "the .npy array",
                    format!("has shape {s:?}, the image {}: {shape:?}", path.display()),
                ));
            }
            let Some(ints) = ints else {
                return Err(LoadError::invalid(
                    &p,
                    "the .npy DQ array",
                    "is floating point, expected integers",
                ));
            };
            let as_f: Vec<f64> = ints.iter().map(|&x| (x as u32) as f64).collect();
            let pl = planes_of(&p, &s, as_f)?;
            companions.push(p);
            Some(
                pl.into_iter()
                    .map(|a| a.mapv(|x| x as u32))
                    .collect::<Vec<_>>(),
            )
        }
        None => None,
    };
    let many = planes.len() > 1;
    let mut out = Vec::new();
    for (k, sci) in planes.into_iter().enumerate() {
        let mut notes = vec![
            "a .npy array has no units: the values are taken as intensities (per pixel, per unit time)".to_owned(),
        ];
        let mut ivar = match &noise_planes {
            Some(n) => n[k].clone(),
            None => {
                notes.push("no _ivar, _err or _var array beside it: unit weights".into());
                Array2::ones(sci.dim())
            }
        };
        sanitize(&sci, &mut ivar, &mut notes);
        let (name, hdu) = if many {
            (format!("{b}[{k}]"), format!("plane {k}"))
        } else {
            (b.clone(), "the array".to_owned())
        };
        out.push(ImageExposure {
            dq: dq_planes.as_ref().map(|d| d[k].clone()),
            companions: companions.clone(),
            notes,
            ..ImageExposure::new(name, path, hdu, sci, ivar)
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// TIFF

fn read_tiff(path: &Path) -> Result<Vec<ImageExposure>, LoadError> {
    use tiff::decoder::{Decoder, DecodingResult};
    check_array_file_size(path, "the TIFF file")?;
    let file = std::fs::File::open(path).map_err(|e| LoadError::io(path, e))?;
    let te =
        |page: usize, e: tiff::TiffError| LoadError::invalid(path, format!("TIFF page {page}"), e);
    let mut dec = Decoder::new(std::io::BufReader::new(file)).map_err(|e| te(0, e))?;
    let stem = base_name(path);
    let mut frames = Vec::new();
    for page in 0.. {
        if page >= 100_000 {
            return Err(LoadError::invalid(
                path,
                "the TIFF file",
                "has more than 100000 pages",
            ));
        }
        let (w, h) = dec.dimensions().map_err(|e| te(page, e))?;
        let ct = dec.colortype().map_err(|e| te(page, e))?;
        if !matches!(ct, tiff::ColorType::Gray(_)) {
            return Err(LoadError::invalid(
                path,
                format!("TIFF page {page}"),
                format!("is {ct:?}; grey images are read (one value per pixel)"),
            ));
        }
        let img = dec.read_image().map_err(|e| te(page, e))?;
        let v: Vec<f64> = match img {
            DecodingResult::U8(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::U16(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::U32(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::U64(v) => v.into_iter().map(|x| x as f64).collect(),
            DecodingResult::F16(v) => v.into_iter().map(|x| f64::from(x.to_f32())).collect(),
            DecodingResult::F32(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::F64(v) => v,
            DecodingResult::I8(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::I16(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::I32(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::I64(v) => v.into_iter().map(|x| x as f64).collect(),
        };
        let (nx, ny) = (w as usize, h as usize);
        let sci = Array2::from_shape_vec((ny, nx), v).map_err(|e| {
            LoadError::invalid(
                path,
                format!("TIFF page {page}"),
                format!("{e} ({w} x {h})"),
            )
        })?;
        frames.push((page, sci));
        if !dec.more_images() {
            break;
        }
        dec.next_image().map_err(|e| te(page + 1, e))?;
    }
    let many = frames.len() > 1;
    Ok(frames
        .into_iter()
        .map(|(page, sci)| {
            let mut notes = vec![
                "a TIFF image has no units: the values are taken as intensities".to_owned(),
                "no noise estimate in a TIFF file: unit weights".to_owned(),
            ];
            let mut ivar = Array2::ones(sci.dim());
            sanitize(&sci, &mut ivar, &mut notes);
            let name = if many {
                format!("{stem}[{page}]")
            } else {
                stem.clone()
            };
            ImageExposure {
                notes,
                ..ImageExposure::new(name, path, format!("TIFF page {page}"), sci, ivar)
            }
        })
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Pixmaps from files.

/// Read a pixmap (drizzle's layout: shape (Ny, Nx, 2), `[..., 0]` = output x, `[..., 1]` =
/// output y, 0-based) from a `.npy` file or a FITS image (NAXIS1 = 2, NAXIS2 = Nx, NAXIS3 = Ny;
/// a (2, Ny, Nx) layout is also accepted and transposed). With `expect = Some((ny, nx))` the
/// shape is checked against the input image.
///
/// # Errors
/// When the file cannot be read or has the wrong shape, naming it.
pub fn read_pixmap(path: &Path, expect: Option<(usize, usize)>) -> Result<Array3<f64>, LoadError> {
    let lower = file_name(path).to_ascii_lowercase();
    let (what, shape, v) = if lower.ends_with(".npy") {
        let (s, v, _) = read_npy_array(path)?;
        ("the .npy array".to_owned(), s, v)
    } else {
        fits::guard(path, || {
            let mut f = fits::open(path)?;
            let hdus = fits::hdus(&mut f, path)?;
            let d = hdus
                .iter()
                .find(|d| d.image_shape().is_some_and(|s| s.len() == 3))
                .ok_or_else(|| LoadError::missing(path, "a 3-D image HDU (Ny, Nx, 2)"))?;
            let (s, v) = fits::image_f64(&mut f, path, d)?;
            Ok((d.label(), s, v))
        })?
    };
    let pm = match shape.as_slice() {
        [ny, nx, 2] => Array3::from_shape_vec((*ny, *nx, 2), v)
            .map_err(|e| LoadError::invalid(path, what.clone(), e))?,
        [2, ny, nx] => {
            let a = Array3::from_shape_vec((2, *ny, *nx), v)
                .map_err(|e| LoadError::invalid(path, what.clone(), e))?;
            a.permuted_axes([1, 2, 0]).as_standard_layout().to_owned()
        }
        _ => {
            return Err(LoadError::invalid(
                path,
                what,
                format!("has shape {shape:?}; a pixmap is (Ny, Nx, 2)"),
            ));
        }
    };
    if let Some((ny, nx)) = expect
        && (pm.dim().0, pm.dim().1) != (ny, nx)
    {
        return Err(LoadError::invalid(
            path,
            what,
            format!(
                "is a pixmap for {} x {} pixels, the image has {ny} x {nx} (ny x nx)",
                pm.dim().0,
                pm.dim().1
            ),
        ));
    }
    Ok(pm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dq_policy_codes_and_bits() {
        let p = DqPolicy::default()
            .with(5, BitAction::Ignore)
            .with(3, BitAction::Inflate(2.0));
        assert_eq!(p.ivar_factor(0, DqEncoding::Codes), 1.0);
        assert_eq!(p.ivar_factor(1, DqEncoding::Codes), 0.0);
        assert_eq!(p.ivar_factor(5, DqEncoding::Codes), 1.0);
        assert_eq!(p.ivar_factor(3, DqEncoding::Codes), 0.25);
        // Bits: value 5 = bits 0 and 2, both bad by default.
        assert_eq!(p.ivar_factor(5, DqEncoding::Bits), 0.0);
        // Value 8 = bit 3, inflated; 32 = bit 5, ignored.
        assert_eq!(p.ivar_factor(8, DqEncoding::Bits), 0.25);
        assert_eq!(p.ivar_factor(32, DqEncoding::Bits), 1.0);
        assert_eq!(p.ivar_factor(40, DqEncoding::Bits), 0.25);
    }

    #[test]
    fn companions_by_name() {
        let c = companion_names(Path::new("/d/c4d_1_ooi_z_ls9.N12.fits"));
        assert!(c.contains(&PathBuf::from("/d/c4d_1_oow_z_ls9.N12.fits")));
        assert!(c.contains(&PathBuf::from("/d/c4d_1_ood_z_ls9.N12.fits")));
        let c = companion_names(Path::new("/d/img.fits"));
        assert!(c.contains(&PathBuf::from("/d/img.wht.fits")));
        assert!(c.contains(&PathBuf::from("/d/img_wht.fits")));
        let c = companion_names(Path::new("/d/x.npy"));
        assert!(c.contains(&PathBuf::from("/d/x_ivar.npy")));
        assert!(c.contains(&PathBuf::from("/d/x_dq.npy")));
    }

    #[test]
    fn units_notes() {
        assert!(unit_note(None).is_some());
        assert!(unit_note(Some("ELECTRONS")).is_some());
        assert!(unit_note(Some("ELECTRONS/S")).is_none());
        assert!(unit_note(Some("MJy/sr")).is_none());
    }
}
