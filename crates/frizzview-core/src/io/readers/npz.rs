//! NumPy `.npz` bundles: the reference layout (frizzle's call arguments) and frizzview's own
//! dataset layout (what `frizzview synth` writes).
//!
//! ## Reference layout (read only)
//! `lam` (visits x pixels, REST-frame ln(lambda/A), already shifted), `flux`, `ivar`, `mask` (bool,
//! True = bad), `flags` (uint64, optional), `lam_out` (output grid, ln lambda; becomes
//! [`Dataset::input_grid`]). No velocities: the data are already in the rest frame, so the default
//! shift source for such a bundle is "none".
//!
//! ## frizzview dataset layout (`format` = "frizzview-dataset", version 1)
//! Visits may have different lengths: per-visit arrays are rows of a (visits x max length) matrix
//! padded with NaN (0 / false for integer and boolean keys), with the true lengths in `length`.
//!
//! | key | shape, dtype | meaning |
//! |---|---|---|
//! | `meta_json` | (bytes,) uint8 | UTF-8 JSON: format, version, name, survey, per-visit [`VisitMeta`], truth and coadd labels |
//! | `length` | (V,) int64 | pixels of each visit |
//! | `wave_aa` | (V, N) f8 | observed-frame vacuum wavelength, Angstrom |
//! | `flux`, `ivar` | (V, N) f8 | as stored (see `flux_divided_by_selection`) |
//! | `flags` | (V, N) u8 (uint64) | pixel bitmask |
//! | `bad` | (V, N) bool | pixels the source declares unusable |
//! | `selection` | (V, N) f8 | selection factor S (1 where a visit has none) |
//! | `has_selection`, `flux_divided_by_selection` | (V,) bool | |
//! | `segments` | (K, 3) int64 | rows (visit, start, end) of pixel ranges |
//! | `v_true_kms`, `v_rel_kms`, `bc_kms`, `v_helio_kms` | (V,) f8 | velocities by kind, NaN = unknown (these arrays are authoritative over `meta_json`) |
//! | `lam_out` | (M,) f8 | optional output grid, ln lambda |
//! | `truth_lam`, `truth_flux` | (M,) f8 | optional noise-free truth, rest-frame ln lambda |
//! | `coadd_lam`, `coadd_flux`, `coadd_ivar` | f8 | optional survey pipeline coadd |

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::{Array1, Array2};

use crate::io::error::{LoadError, SaveError};
use crate::io::reader::{Confidence, Format, Probe, Reader};
use crate::model::{
    Dataset, OutputGrid, Spectrum, Survey, VelocityKind, Visit, VisitArrays, VisitMeta,
};

/// The `format` value in `meta_json` of a frizzview dataset bundle.
pub const DATASET_FORMAT: &str = "frizzview-dataset";
/// The layout version written.
pub const DATASET_VERSION: u32 = 1;

/// Velocity keys of the dataset layout and their meaning.
pub const VELOCITY_KEYS: [(&str, VelocityKind); 4] = [
    ("v_true_kms", VelocityKind::True),
    ("v_rel_kms", VelocityKind::Vrel),
    ("bc_kms", VelocityKind::Bc),
    ("v_helio_kms", VelocityKind::Vhelio),
];

// ---------------------------------------------------------------------------------------------
// A small, defensive .npy parser (the header is checked against the data size before anything is
// allocated, so a corrupt file cannot ask for absurd amounts of memory).

/// The values of one `.npy` array, widened.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum NpyData {
    Float(Vec<f64>),
    Int(Vec<i64>),
    UInt(Vec<u64>),
    Bool(Vec<bool>),
}

/// One `.npy` array (C order).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NpyArray {
    pub shape: Vec<usize>,
    pub data: NpyData,
}

fn header_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("'{key}'");
    let at = header.find(&pat)? + pat.len();
    let rest = header[at..].trim_start();
    let rest = rest.strip_prefix(':')?;
    Some(rest.trim_start())
}

/// Parse a `.npy` file held in memory.
pub(crate) fn parse_npy(bytes: &[u8]) -> Result<NpyArray, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy array (bad magic)".into());
    }
    let major = bytes[6];
    let (hlen, start) = match major {
        1 => (
            usize::from(u16::from_le_bytes([bytes[8], bytes[9]])),
            10usize,
        ),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated .npy header".into());
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let end = start
        .checked_add(hlen)
        .filter(|&e| e <= bytes.len())
        .ok_or("truncated .npy header")?;
    let header =
        std::str::from_utf8(&bytes[start..end]).map_err(|_| "the .npy header is not text")?;
    let descr = header_value(header, "descr").ok_or("the .npy header has no 'descr'")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or("the .npy 'descr' is not a simple dtype string (structured arrays are not read)")?;
    let fortran = header_value(header, "fortran_order")
        .ok_or("the .npy header has no 'fortran_order'")?
        .starts_with("True");
    let shape_txt = header_value(header, "shape").ok_or("the .npy header has no 'shape'")?;
    let shape_txt = shape_txt
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or("the .npy 'shape' is not a tuple")?;
    let mut shape = Vec::new();
    for part in shape_txt.split(',') {
        let p = part.trim();
        if p.is_empty() {
            continue;
        }
        shape.push(
            p.parse::<usize>()
                .map_err(|_| format!("the .npy shape entry '{p}' is not a size"))?,
        );
    }
    let n = shape
        .iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .ok_or("the .npy shape is too large")?;
    let db = descr.as_bytes();
    if db.len() < 3 {
        return Err(format!("unsupported .npy dtype '{descr}'"));
    }
    let big = match db[0] {
        b'<' | b'|' | b'=' => false,
        b'>' => true,
        _ => return Err(format!("unsupported .npy dtype '{descr}'")),
    };
    let kind = db[1];
    let size: usize = descr[2..]
        .parse()
        .map_err(|_| format!("unsupported .npy dtype '{descr}'"))?;
    let data = &bytes[end..];
    let need = n.checked_mul(size).ok_or("the .npy shape is too large")?;
    if data.len() != need {
        return Err(format!(
            "the .npy data has {} bytes, its shape {:?} of '{descr}' needs {need}",
            data.len(),
            shape
        ));
    }
    let word = |i: usize| -> u64 {
        let c = &data[i * size..(i + 1) * size];
        let mut v: u64 = 0;
        if big {
            for &b in c {
                v = (v << 8) | u64::from(b);
            }
        } else {
            for &b in c.iter().rev() {
                v = (v << 8) | u64::from(b);
            }
        }
        v
    };
    let values = match (kind, size) {
        (b'f', 8) => NpyData::Float((0..n).map(|i| f64::from_bits(word(i))).collect()),
        (b'f', 4) => NpyData::Float(
            (0..n)
                .map(|i| f64::from(f32::from_bits(word(i) as u32)))
                .collect(),
        ),
        (b'i', 1 | 2 | 4 | 8) => {
            let shift = 64 - 8 * size as u32;
            NpyData::Int(
                (0..n)
                    .map(|i| ((word(i) << shift) as i64) >> shift)
                    .collect(),
            )
        }
        (b'u', 1 | 2 | 4 | 8) => NpyData::UInt((0..n).map(word).collect()),
        (b'b', 1) => NpyData::Bool(data.iter().map(|&b| b != 0).collect()),
        _ => return Err(format!("unsupported .npy dtype '{descr}'")),
    };
    let values = if fortran && shape.len() == 2 {
        let (r, c) = (shape[0], shape[1]);
        let tr = |idx: usize| (idx % c) * r + idx / c;
        match values {
            NpyData::Float(v) => NpyData::Float((0..n).map(|i| v[tr(i)]).collect()),
            NpyData::Int(v) => NpyData::Int((0..n).map(|i| v[tr(i)]).collect()),
            NpyData::UInt(v) => NpyData::UInt((0..n).map(|i| v[tr(i)]).collect()),
            NpyData::Bool(v) => NpyData::Bool((0..n).map(|i| v[tr(i)]).collect()),
        }
    } else if fortran && shape.len() > 2 {
        return Err("Fortran-ordered arrays with more than 2 dimensions are not read".into());
    } else {
        values
    };
    Ok(NpyArray {
        shape,
        data: values,
    })
}

impl NpyArray {
    fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            NpyData::Float(v) => v.clone(),
            NpyData::Int(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::UInt(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::Bool(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
        }
    }

    fn to_u64(&self) -> Result<Vec<u64>, String> {
        match &self.data {
            NpyData::Float(_) => Err("is floating point, expected integers".into()),
            NpyData::Int(v) => v
                .iter()
                .map(|&x| u64::try_from(x).map_err(|_| format!("has a negative value {x}")))
                .collect(),
            NpyData::UInt(v) => Ok(v.clone()),
            NpyData::Bool(v) => Ok(v.iter().map(|&x| u64::from(x)).collect()),
        }
    }

    fn to_bool(&self) -> Vec<bool> {
        match &self.data {
            NpyData::Float(v) => v.iter().map(|&x| x != 0.0).collect(),
            NpyData::Int(v) => v.iter().map(|&x| x != 0).collect(),
            NpyData::UInt(v) => v.iter().map(|&x| x != 0).collect(),
            NpyData::Bool(v) => v.clone(),
        }
    }
}

/// The largest uncompressed member of an `.npz` archive read: one (visits x pixels) f64 array
/// of 8000 APOGEE visits (3 x 4096 pixels each) is 786 MB.
pub const NPZ_MAX_MEMBER_BYTES: u64 = 1 << 30;

/// The most uncompressed bytes of all members of an `.npz` archive together: a frizzview
/// dataset bundle of 1000 APOGEE visits holds about 500 MB.
pub const NPZ_MAX_TOTAL_BYTES: u64 = 2 << 30;

/// An opened `.npz` archive with every member parsed on demand.
pub(crate) struct Npz {
    path: PathBuf,
    members: HashMap<String, Vec<u8>>,
}

impl Npz {
    /// Open and read every member (bundles are small enough to hold in memory).
    ///
    /// Before anything is decompressed, the archive's own table must declare at most
    /// [`NPZ_MAX_MEMBER_BYTES`] per member and [`NPZ_MAX_TOTAL_BYTES`] in all, and no two
    /// members may share compressed bytes (a zip bomb repeats one deflated block under many
    /// names). A member that inflates past its declared size is refused as it is read, so memory
    /// never exceeds the declared total.
    pub(crate) fn open(path: &Path) -> Result<Self, LoadError> {
        let file = std::fs::File::open(path).map_err(|e| LoadError::io(path, e))?;
        let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
            .map_err(|e| LoadError::invalid(path, "the .npz archive", e))?;
        let member = |i: usize| format!("member {i} of the .npz archive");
        let mut declared = Vec::with_capacity(zip.len());
        let mut spans = Vec::with_capacity(zip.len());
        let mut total: u64 = 0;
        for i in 0..zip.len() {
            let entry = zip
                .by_index_raw(i)
                .map_err(|e| LoadError::invalid(path, member(i), e))?;
            let (name, size) = (entry.name().to_owned(), entry.size());
            if size > NPZ_MAX_MEMBER_BYTES {
                return Err(LoadError::invalid(
                    path,
                    format!("member '{name}' of the .npz archive"),
                    format!(
                        "declares {size} bytes uncompressed, above the limit of \
                         {NPZ_MAX_MEMBER_BYTES} bytes per member"
                    ),
                ));
            }
            total = total.saturating_add(size);
            if total > NPZ_MAX_TOTAL_BYTES {
                return Err(LoadError::invalid(
                    path,
                    "the .npz archive",
                    format!(
                        "its members declare more than {NPZ_MAX_TOTAL_BYTES} bytes uncompressed \
                         in all (the limit; {} members so far, a zip bomb or not a bundle)",
                        i + 1
                    ),
                ));
            }
            let start = entry.data_start();
            spans.push((start, start.saturating_add(entry.compressed_size()), i));
            declared.push(size);
        }
        spans.sort_unstable();
        for w in spans.windows(2) {
            if w[1].0 < w[0].1 {
                return Err(LoadError::invalid(
                    path,
                    "the .npz archive",
                    format!(
                        "members {} and {} share compressed bytes (overlapping members: a zip \
                         bomb, not a NumPy bundle)",
                        w[0].2, w[1].2
                    ),
                ));
            }
        }
        let mut members = HashMap::new();
        for (i, &size) in declared.iter().enumerate() {
            let entry = zip
                .by_index(i)
                .map_err(|e| LoadError::invalid(path, member(i), e))?;
            let name = entry.name().to_owned();
            let key = name.strip_suffix(".npy").unwrap_or(&name).to_owned();
            let cap = usize::try_from(size).unwrap_or(usize::MAX);
            let mut bytes = Vec::with_capacity(cap);
            entry
                .take(size.saturating_add(1))
                .read_to_end(&mut bytes)
                .map_err(|e| LoadError::invalid(path, format!("key '{key}'"), e))?;
            if bytes.len() as u64 > size {
                return Err(LoadError::invalid(
                    path,
                    format!("key '{key}'"),
                    format!(
                        "inflates to more than the {size} bytes the archive declares for it \
                         (a zip bomb or a corrupt archive)"
                    ),
                ));
            }
            members.insert(key, bytes);
        }
        Ok(Self {
            path: path.to_path_buf(),
            members,
        })
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.members.contains_key(key)
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<NpyArray>, LoadError> {
        match self.members.get(key) {
            None => Ok(None),
            Some(b) => parse_npy(b)
                .map(Some)
                .map_err(|e| LoadError::invalid(&self.path, format!("key '{key}'"), e)),
        }
    }

    pub(crate) fn require(&self, key: &str) -> Result<NpyArray, LoadError> {
        self.get(key)?
            .ok_or_else(|| LoadError::missing(&self.path, format!("key '{key}'")))
    }

    fn err(&self, key: &str, reason: impl std::fmt::Display) -> LoadError {
        LoadError::invalid(&self.path, format!("key '{key}'"), reason)
    }

    /// A (rows x cols) view of a 1-D (one row) or 2-D array.
    fn rows(&self, key: &str, a: &NpyArray) -> Result<(usize, usize), LoadError> {
        match a.shape.as_slice() {
            [n] => Ok((1, *n)),
            [r, c] => Ok((*r, *c)),
            s => Err(self.err(key, format!("has shape {s:?}, expected 1 or 2 dimensions"))),
        }
    }

    fn expect_shape(
        &self,
        key: &str,
        a: &NpyArray,
        shape: (usize, usize),
    ) -> Result<(), LoadError> {
        let got = self.rows(key, a)?;
        if got == shape {
            Ok(())
        } else {
            Err(self.err(
                key,
                format!(
                    "has shape ({}, {}), expected ({}, {}) like the wavelengths",
                    got.0, got.1, shape.0, shape.1
                ),
            ))
        }
    }

    fn vec1(&self, key: &str) -> Result<Option<Vec<f64>>, LoadError> {
        match self.get(key)? {
            None => Ok(None),
            Some(a) if a.shape.len() == 1 => Ok(Some(a.to_f64())),
            Some(a) => Err(self.err(
                key,
                format!("has shape {:?}, expected 1 dimension", a.shape),
            )),
        }
    }
}

/// True if `bytes` start like a zip archive (an `.npz`).
#[must_use]
pub fn looks_like_npz(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "bundle".to_owned(), |s| s.to_string_lossy().into_owned())
}

/// Read a `.npz` bundle in either layout (see the module documentation).
pub fn read_bundle(path: &Path) -> Result<Dataset, LoadError> {
    let npz = Npz::open(path)?;
    if npz.has("meta_json") {
        read_dataset_layout(&npz)
    } else if npz.has("lam") {
        read_reference_layout(&npz)
    } else {
        let mut keys: Vec<_> = npz.members.keys().cloned().collect();
        keys.sort();
        Err(LoadError::new(
            path,
            crate::io::error::LoadErrorKind::Unrecognised(format!(
                "an .npz without 'lam' (reference bundle) or 'meta_json' (frizzview dataset); keys: {}",
                keys.join(", ")
            )),
        ))
    }
}

fn read_reference_layout(npz: &Npz) -> Result<Dataset, LoadError> {
    let path = &npz.path;
    let lam = npz.require("lam")?;
    let (nv, np) = npz.rows("lam", &lam)?;
    if nv == 0 || np == 0 {
        return Err(npz.err("lam", "is empty"));
    }
    let lam = lam.to_f64();
    let flux = npz.require("flux")?;
    npz.expect_shape("flux", &flux, (nv, np))?;
    let flux = flux.to_f64();
    let ivar = npz.require("ivar")?;
    npz.expect_shape("ivar", &ivar, (nv, np))?;
    let ivar = ivar.to_f64();
    let mask = match npz.get("mask")? {
        Some(m) => {
            npz.expect_shape("mask", &m, (nv, np))?;
            m.to_bool()
        }
        None => vec![false; nv * np],
    };
    let flags = match npz.get("flags")? {
        Some(f) => {
            npz.expect_shape("flags", &f, (nv, np))?;
            f.to_u64().map_err(|e| npz.err("flags", e))?
        }
        None => vec![0; nv * np],
    };
    let input_grid = match npz.vec1("lam_out")? {
        Some(g) => Some(OutputGrid::from_ln(g).ok_or_else(|| {
            npz.err(
                "lam_out",
                "is not a strictly increasing finite grid of at least 2 pixels",
            )
        })?),
        None => None,
    };
    let name = stem(path);
    let mut visits = Vec::with_capacity(nv);
    for v in 0..nv {
        let r = v * np..(v + 1) * np;
        let mut wave = Vec::with_capacity(np);
        for (i, &x) in lam[r.clone()].iter().enumerate() {
            let w = x.exp();
            if !(x.is_finite() && w.is_finite() && w > 0.0) {
                return Err(npz.err(
                    "lam",
                    format!("visit {v} pixel {i}: ln(lambda) {x} is not a usable wavelength"),
                ));
            }
            wave.push(w);
        }
        let meta = VisitMeta {
            name: format!("visit {v}"),
            source: Some(path.clone()),
            object: Some(name.clone()),
            ..VisitMeta::default()
        };
        let arrays = VisitArrays {
            wavelength_aa: wave,
            flux: flux[r.clone()].to_vec(),
            ivar: ivar[r.clone()].to_vec(),
            flags: flags[r.clone()].to_vec(),
            bad: mask[r].to_vec(),
            ..VisitArrays::default()
        };
        let visit =
            Visit::new(meta, arrays).map_err(|e| npz.err("lam", format!("visit {v}: {e}")))?;
        visits.push(Arc::new(visit));
    }
    Ok(Dataset {
        name,
        visits,
        input_grid,
        truth: None,
        pipeline_coadd: None,
        survey: Survey::Generic,
        load_warnings: Vec::new(),
    })
}

/// The JSON part of the dataset layout.
#[derive(serde::Serialize, serde::Deserialize)]
struct DatasetMeta {
    format: String,
    version: u32,
    name: String,
    survey: Survey,
    visits: Vec<VisitMeta>,
    #[serde(default)]
    truth_label: Option<String>,
    #[serde(default)]
    coadd_label: Option<String>,
    /// (log10 start, log10 step) when the input grid is log-linear.
    #[serde(default)]
    input_grid_log10: Option<(f64, f64)>,
}

fn read_dataset_layout(npz: &Npz) -> Result<Dataset, LoadError> {
    let path = &npz.path;
    let meta_bytes = npz.require("meta_json")?;
    let NpyData::UInt(bytes) = &meta_bytes.data else {
        return Err(npz.err("meta_json", "is not an array of bytes (uint8)"));
    };
    let bytes: Vec<u8> = bytes
        .iter()
        .map(|&b| u8::try_from(b).map_err(|_| npz.err("meta_json", "holds values above 255")))
        .collect::<Result<_, _>>()?;
    let meta: DatasetMeta = serde_json::from_slice(&bytes).map_err(|e| npz.err("meta_json", e))?;
    if meta.format != DATASET_FORMAT {
        return Err(npz.err(
            "meta_json",
            format!("format is '{}', expected '{DATASET_FORMAT}'", meta.format),
        ));
    }
    if meta.version > DATASET_VERSION {
        return Err(npz.err(
            "meta_json",
            format!(
                "layout version {} is newer than this frizzview reads ({DATASET_VERSION})",
                meta.version
            ),
        ));
    }
    let nv = meta.visits.len();
    let lengths = npz.require("length")?;
    if lengths.shape != [nv] {
        return Err(npz.err(
            "length",
            format!(
                "has shape {:?}, expected ({nv},) (one per visit in meta_json)",
                lengths.shape
            ),
        ));
    }
    let lengths = lengths.to_u64().map_err(|e| npz.err("length", e))?;
    let wave = npz.require("wave_aa")?;
    let (rows, np) = npz.rows("wave_aa", &wave)?;
    if rows != nv {
        return Err(npz.err("wave_aa", format!("has {rows} rows for {nv} visits")));
    }
    let wave = wave.to_f64();
    let get2 = |key: &str| -> Result<Option<NpyArray>, LoadError> {
        match npz.get(key)? {
            Some(a) => {
                npz.expect_shape(key, &a, (nv, np))?;
                Ok(Some(a))
            }
            None => Ok(None),
        }
    };
    let flux = get2("flux")?
        .ok_or_else(|| LoadError::missing(path, "key 'flux'"))?
        .to_f64();
    let ivar = get2("ivar")?
        .ok_or_else(|| LoadError::missing(path, "key 'ivar'"))?
        .to_f64();
    let flags = match get2("flags")? {
        Some(a) => a.to_u64().map_err(|e| npz.err("flags", e))?,
        None => vec![0; nv * np],
    };
    let bad = get2("bad")?.map_or_else(|| vec![false; nv * np], |a| a.to_bool());
    let selection = get2("selection")?.map(|a| a.to_f64());
    let per_visit_bool = |key: &str| -> Result<Vec<bool>, LoadError> {
        match npz.get(key)? {
            Some(a) if a.shape == [nv] => Ok(a.to_bool()),
            Some(a) => Err(npz.err(key, format!("has shape {:?}, expected ({nv},)", a.shape))),
            None => Ok(vec![false; nv]),
        }
    };
    let has_selection = if selection.is_some() {
        match npz.get("has_selection")? {
            None => vec![true; nv],
            Some(_) => per_visit_bool("has_selection")?,
        }
    } else {
        vec![false; nv]
    };
    let divided = per_visit_bool("flux_divided_by_selection")?;
    let mut segments: Vec<Vec<std::ops::Range<usize>>> = vec![Vec::new(); nv];
    if let Some(seg) = npz.get("segments")? {
        if seg.shape.len() != 2 || seg.shape[1] != 3 {
            return Err(npz.err(
                "segments",
                format!("has shape {:?}, expected (K, 3)", seg.shape),
            ));
        }
        let s = seg.to_u64().map_err(|e| npz.err("segments", e))?;
        for row in s.chunks(3) {
            let v = usize::try_from(row[0]).unwrap_or(usize::MAX);
            let slot = segments
                .get_mut(v)
                .ok_or_else(|| npz.err("segments", format!("names visit {} of {nv}", row[0])))?;
            let a = usize::try_from(row[1]).unwrap_or(usize::MAX);
            let b = usize::try_from(row[2]).unwrap_or(usize::MAX);
            slot.push(a..b);
        }
    }
    let mut velocities: Vec<(VelocityKind, Vec<f64>)> = Vec::new();
    for (key, kind) in VELOCITY_KEYS {
        match npz.get(key)? {
            Some(a) if a.shape == [nv] => velocities.push((kind, a.to_f64())),
            Some(a) => {
                return Err(npz.err(key, format!("has shape {:?}, expected ({nv},)", a.shape)));
            }
            None => {}
        }
    }
    let mut visits = Vec::with_capacity(nv);
    for (v, mut vm) in meta.visits.into_iter().enumerate() {
        let n = usize::try_from(lengths[v]).unwrap_or(usize::MAX);
        if n == 0 || n > np {
            return Err(npz.err(
                "length",
                format!("visit {v} has length {n}, outside 1..={np}"),
            ));
        }
        let r = v * np..v * np + n;
        for (kind, vals) in &velocities {
            if vals[v].is_finite() {
                vm.set_velocity(*kind, vals[v]);
            } else {
                vm.velocities.retain(|(k, _)| k != kind);
            }
        }
        if vm.source.is_none() {
            vm.source = Some(path.clone());
        }
        let arrays = VisitArrays {
            wavelength_aa: wave[r.clone()].to_vec(),
            flux: flux[r.clone()].to_vec(),
            ivar: ivar[r.clone()].to_vec(),
            flags: flags[r.clone()].to_vec(),
            bad: bad[r.clone()].to_vec(),
            selection: match &selection {
                Some(s) if has_selection[v] => Some(s[r].to_vec()),
                _ => None,
            },
            flux_divided_by_selection: divided[v],
            segments: std::mem::take(&mut segments[v]),
        };
        let visit =
            Visit::new(vm, arrays).map_err(|e| npz.err("wave_aa", format!("visit {v}: {e}")))?;
        visits.push(Arc::new(visit));
    }
    let spectrum = |lam_key: &str, flux_key: &str, ivar_key: Option<&str>, label: String| {
        let Some(lam) = npz.vec1(lam_key)? else {
            return Ok::<_, LoadError>(None);
        };
        let flux = npz
            .vec1(flux_key)?
            .ok_or_else(|| LoadError::missing(path, format!("key '{flux_key}'")))?;
        if flux.len() != lam.len() {
            return Err(npz.err(
                flux_key,
                format!("has {} values, '{lam_key}' has {}", flux.len(), lam.len()),
            ));
        }
        let ivar = match ivar_key {
            Some(k) => npz.vec1(k)?.unwrap_or_default(),
            None => Vec::new(),
        };
        if !ivar.is_empty() && ivar.len() != lam.len() {
            return Err(npz.err("coadd_ivar", "length differs from 'coadd_lam'"));
        }
        Ok(Some(Spectrum {
            label,
            ln_wave: lam,
            flux,
            ivar,
        }))
    };
    let truth = spectrum(
        "truth_lam",
        "truth_flux",
        None,
        meta.truth_label.clone().unwrap_or_else(|| "truth".into()),
    )?;
    let pipeline_coadd = spectrum(
        "coadd_lam",
        "coadd_flux",
        Some("coadd_ivar"),
        meta.coadd_label
            .clone()
            .unwrap_or_else(|| "pipeline coadd".into()),
    )?;
    let input_grid = match npz.vec1("lam_out")? {
        Some(g) => {
            let mut grid = OutputGrid::from_ln(g).ok_or_else(|| {
                npz.err(
                    "lam_out",
                    "is not a strictly increasing finite grid of at least 2 pixels",
                )
            })?;
            grid.log10_linear = meta.input_grid_log10;
            Some(grid)
        }
        None => None,
    };
    Ok(Dataset {
        name: meta.name,
        visits,
        input_grid,
        truth,
        pipeline_coadd,
        survey: meta.survey,
        load_warnings: Vec::new(),
    })
}

fn save_err(path: &Path, e: impl std::fmt::Display) -> SaveError {
    SaveError::new(path, e)
}

/// Write a dataset in the frizzview dataset layout (atomically; see the module documentation).
pub fn write_dataset(path: &Path, data: &Dataset) -> Result<(), SaveError> {
    let inputs: Vec<PathBuf> = data
        .visits
        .iter()
        .filter_map(|v| v.meta.source.clone())
        .collect();
    crate::io::atomic::write_atomic(path, &inputs, |tmp| write_dataset_to(tmp, path, data))
}

fn write_dataset_to(tmp: &Path, shown: &Path, data: &Dataset) -> Result<(), SaveError> {
    let nv = data.visits.len();
    if nv == 0 {
        return Err(SaveError::new(shown, "the dataset has no visits"));
    }
    let np = data.visits.iter().map(|v| v.len()).max().unwrap_or(0);
    let mut wave = Array2::<f64>::from_elem((nv, np), f64::NAN);
    let mut flux = Array2::<f64>::from_elem((nv, np), f64::NAN);
    let mut ivar = Array2::<f64>::zeros((nv, np));
    let mut flags = Array2::<u64>::zeros((nv, np));
    let mut bad = Array2::<bool>::from_elem((nv, np), true);
    let mut sel = Array2::<f64>::from_elem((nv, np), 1.0);
    let mut has_sel = Array1::<bool>::from_elem(nv, false);
    let mut divided = Array1::<bool>::from_elem(nv, false);
    let mut length = Array1::<i64>::zeros(nv);
    let mut segs: Vec<i64> = Vec::new();
    let mut vel: Vec<Array1<f64>> = VELOCITY_KEYS
        .iter()
        .map(|_| Array1::from_elem(nv, f64::NAN))
        .collect();
    for (v, visit) in data.visits.iter().enumerate() {
        let n = visit.len();
        length[v] = n as i64;
        for i in 0..n {
            wave[[v, i]] = visit.wavelength_aa()[i];
            flux[[v, i]] = visit.flux()[i];
            ivar[[v, i]] = visit.ivar()[i];
            flags[[v, i]] = visit.flags()[i];
            bad[[v, i]] = visit.bad()[i];
        }
        if let Some(s) = visit.selection() {
            has_sel[v] = true;
            for (i, &si) in s.iter().enumerate() {
                sel[[v, i]] = si;
            }
        }
        divided[v] = visit.flux_divided_by_selection();
        for r in visit.segments() {
            segs.extend([v as i64, r.start as i64, r.end as i64]);
        }
        for (k, (_, kind)) in VELOCITY_KEYS.iter().enumerate() {
            if let Some(x) = visit.meta.velocity(*kind) {
                vel[k][v] = x;
            }
        }
    }
    let meta = DatasetMeta {
        format: DATASET_FORMAT.into(),
        version: DATASET_VERSION,
        name: data.name.clone(),
        survey: data.survey,
        visits: data.visits.iter().map(|v| v.meta.clone()).collect(),
        truth_label: data.truth.as_ref().map(|t| t.label.clone()),
        coadd_label: data.pipeline_coadd.as_ref().map(|t| t.label.clone()),
        input_grid_log10: data.input_grid.as_ref().and_then(|g| g.log10_linear),
    };
    let json = serde_json::to_vec(&meta).map_err(|e| save_err(shown, e))?;
    let file = std::fs::File::create(tmp).map_err(|e| save_err(shown, e))?;
    let mut w = ndarray_npy::NpzWriter::new_compressed(std::io::BufWriter::new(file));
    let e = |e: ndarray_npy::WriteNpzError| save_err(shown, e);
    w.add_array("meta_json", &Array1::from_vec(json))
        .map_err(e)?;
    w.add_array("length", &length).map_err(e)?;
    w.add_array("wave_aa", &wave).map_err(e)?;
    w.add_array("flux", &flux).map_err(e)?;
    w.add_array("ivar", &ivar).map_err(e)?;
    w.add_array("flags", &flags).map_err(e)?;
    w.add_array("bad", &bad).map_err(e)?;
    if has_sel.iter().any(|&h| h) {
        w.add_array("selection", &sel).map_err(e)?;
        w.add_array("has_selection", &has_sel).map_err(e)?;
    }
    w.add_array("flux_divided_by_selection", &divided)
        .map_err(e)?;
    let nseg = segs.len() / 3;
    let segs = Array2::from_shape_vec((nseg, 3), segs).map_err(|x| save_err(shown, x))?;
    w.add_array("segments", &segs).map_err(e)?;
    for (k, (key, _)) in VELOCITY_KEYS.iter().enumerate() {
        if vel[k].iter().any(|x| x.is_finite()) {
            w.add_array(*key, &vel[k]).map_err(e)?;
        }
    }
    if let Some(g) = &data.input_grid {
        w.add_array("lam_out", &Array1::from_vec(g.ln_wave.clone()))
            .map_err(e)?;
    }
    if let Some(t) = &data.truth {
        w.add_array("truth_lam", &Array1::from_vec(t.ln_wave.clone()))
            .map_err(e)?;
        w.add_array("truth_flux", &Array1::from_vec(t.flux.clone()))
            .map_err(e)?;
    }
    if let Some(c) = &data.pipeline_coadd {
        w.add_array("coadd_lam", &Array1::from_vec(c.ln_wave.clone()))
            .map_err(e)?;
        w.add_array("coadd_flux", &Array1::from_vec(c.flux.clone()))
            .map_err(e)?;
        if !c.ivar.is_empty() {
            w.add_array("coadd_ivar", &Array1::from_vec(c.ivar.clone()))
                .map_err(e)?;
        }
    }
    w.finish().map_err(e)?;
    Ok(())
}

/// The `.npz` reader (a reference or frizzview dataset bundle), by its zip signature.
pub struct NpzReader;

impl Reader for NpzReader {
    fn format(&self) -> Format {
        Format::Npz
    }
    fn claim(&self, probe: &mut Probe<'_>) -> Result<Option<Confidence>, LoadError> {
        Ok((!probe.is_gzip() && looks_like_npz(probe.head())).then_some(Confidence::CERTAIN))
    }
    fn read(&self, path: &Path) -> Result<Dataset, LoadError> {
        read_bundle(path)
    }
}
