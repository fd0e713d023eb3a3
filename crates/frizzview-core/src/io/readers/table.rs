//! Generic inputs: FITS binary tables, FITS image sets, and CSV/TSV text.
//!
//! Column (or image EXTNAME) names are matched case-insensitively:
//! - wavelength in Angstrom: `wave`, `wavelength`, `lambda`, `lam`, `wave_aa`, `wavelength_aa`;
//!   or log10 Angstrom: `loglam`, `log_lambda`, `log10_wave`; or ln Angstrom: `ln_wave`, `lnlam`;
//! - `flux` (or `f`, `y`);
//! - inverse variance `ivar` (or `inverse_variance`, `invvar`), or an uncertainty `error`, `err`,
//!   `sigma`, `flux_err`, `uncertainty` (ivar = 1/err²; err <= 0 or non-finite = bad);
//! - optional integer bitmask `mask`, `flags`, `pixel_flags`, `bitmask`, `or_mask`;
//! - optional selection factor `selection`, `telluric`, `transmission`;
//! - text only: optional `visit` (or `exposure`) column splitting the rows into visits.
//!
//! A FITS binary table HDU with a wavelength and a flux column is one visit. An image set (image
//! HDUs named like the columns) gives one visit per row of 2-D images. Header cards VRAD/VREL, BC,
//! VHELIO, JD-MID/JD, SNR and OBJID/OBJECT (the HDU's, else the primary's) fill the metadata.
//! Text files may carry the same cards as `# KEY = value` comment lines before the header line.

use std::path::Path;
use std::sync::Arc;

use fitsio::FitsFile;

use crate::io::error::{LoadError, LoadErrorKind};
use crate::io::fits::{self, HduDesc};
use crate::io::reader::{Confidence, Format, Probe, Reader};
use crate::model::{Dataset, Survey, VelocityKind, Visit, VisitArrays, VisitMeta};

/// True if an HDU name says it holds a pipeline's combination (`COADD`, `COADD_B`, `coadd_r`,
/// ...): such an HDU is never read as a visit.
#[must_use]
pub fn is_coadd_name(name: &str) -> bool {
    name.len() >= 5 && name.as_bytes()[..5].eq_ignore_ascii_case(b"COADD")
}

/// How a wavelength column is encoded.
#[derive(Clone, Copy, Debug, PartialEq)]
enum WaveUnit {
    Angstrom,
    Log10,
    Ln,
}

fn wave_kind(name: &str) -> Option<WaveUnit> {
    match name.to_ascii_lowercase().as_str() {
        "wave" | "wavelength" | "lambda" | "lam" | "wave_aa" | "wavelength_aa" => {
            Some(WaveUnit::Angstrom)
        }
        "loglam" | "log_lambda" | "log10_wave" | "log10lam" => Some(WaveUnit::Log10),
        "ln_wave" | "lnlam" | "ln_lambda" => Some(WaveUnit::Ln),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    Flux,
    Ivar,
    Error,
    Mask,
    Selection,
    Visit,
}

fn role(name: &str) -> Option<Role> {
    Some(match name.to_ascii_lowercase().as_str() {
        "flux" | "f" | "y" => Role::Flux,
        "ivar" | "inverse_variance" | "invvar" => Role::Ivar,
        "error" | "err" | "sigma" | "flux_err" | "uncertainty" | "e_flux" => Role::Error,
        "mask" | "flags" | "pixel_flags" | "bitmask" | "or_mask" => Role::Mask,
        "selection" | "telluric" | "transmission" => Role::Selection,
        "visit" | "exposure" => Role::Visit,
        _ => return None,
    })
}

/// Raw columns of one visit before validation.
#[derive(Default)]
struct Columns {
    wave: Vec<f64>,
    unit: Option<WaveUnit>,
    wave_name: String,
    flux: Option<Vec<f64>>,
    ivar: Option<Vec<f64>>,
    error: Option<Vec<f64>>,
    mask: Option<Vec<u64>>,
    selection: Option<Vec<f64>>,
}

/// Turn columns into a visit; `what` names the HDU or file part for messages.
fn build_visit(path: &Path, what: &str, c: Columns, meta: VisitMeta) -> Result<Visit, LoadError> {
    let col = |n: &str| format!("column '{n}' of {what}");
    let n = c.wave.len();
    if n == 0 {
        return Err(LoadError::invalid(path, what.to_owned(), "has no rows"));
    }
    let unit = c.unit.unwrap_or(WaveUnit::Angstrom);
    let mut wave = Vec::with_capacity(n);
    for (i, &x) in c.wave.iter().enumerate() {
        let w = match unit {
            WaveUnit::Angstrom => x,
            WaveUnit::Log10 => 10f64.powf(x),
            WaveUnit::Ln => x.exp(),
        };
        if !(x.is_finite() && w.is_finite() && w > 0.0) {
            return Err(LoadError::invalid(
                path,
                col(&c.wave_name),
                format!("row {i} holds {x}, not a usable wavelength"),
            ));
        }
        wave.push(w);
    }
    let flux = c
        .flux
        .ok_or_else(|| LoadError::missing(path, format!("a flux column in {what}")))?;
    let (ivar, bad) = match (c.ivar, c.error) {
        (Some(iv), _) => (iv, Vec::new()),
        (None, Some(err)) => {
            let bad: Vec<bool> = err.iter().map(|&e| !(e.is_finite() && e > 0.0)).collect();
            let iv = err
                .iter()
                .zip(&bad)
                .map(|(&e, &b)| if b { 0.0 } else { 1.0 / (e * e) })
                .collect();
            (iv, bad)
        }
        (None, None) => {
            return Err(LoadError::missing(
                path,
                format!("an ivar or error column in {what}"),
            ));
        }
    };
    Visit::new(
        meta,
        VisitArrays {
            wavelength_aa: wave,
            flux,
            ivar,
            flags: c.mask.unwrap_or_default(),
            bad,
            selection: c.selection,
            flux_divided_by_selection: false,
            segments: Vec::new(),
        },
    )
    .map_err(|e| LoadError::invalid(path, what.to_owned(), e))
}

/// Fill velocities and bookkeeping from header cards given as (key, value) text.
fn meta_from_cards(meta: &mut VisitMeta, cards: &[(String, String)]) {
    let get = |k: &str| {
        cards
            .iter()
            .find(|(kk, _)| kk.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.trim().trim_matches('\'').trim().to_owned())
    };
    let num = |k: &str| get(k).and_then(|v| v.parse::<f64>().ok());
    if let Some(v) = num("VRAD").or_else(|| num("VREL")) {
        meta.set_velocity(VelocityKind::Vrel, v);
    }
    if let Some(v) = num("BC") {
        meta.set_velocity(VelocityKind::Bc, v);
    }
    if let Some(v) = num("VHELIO") {
        meta.set_velocity(VelocityKind::Vhelio, v);
    }
    if let Some(v) = num("V_TRUE_KMS") {
        meta.set_velocity(VelocityKind::True, v);
    }
    meta.jd = num("JD-MID").or_else(|| num("JD"));
    meta.snr = num("SNR");
    meta.object = get("OBJID")
        .or_else(|| get("OBJECT"))
        .filter(|s| !s.is_empty());
}

const CARDS: &[&str] = &[
    "VRAD",
    "VREL",
    "BC",
    "VHELIO",
    "V_TRUE_KMS",
    "JD-MID",
    "JD",
    "SNR",
    "OBJID",
    "OBJECT",
];

fn fits_cards(f: &mut FitsFile, hdu: &fitsio::hdu::FitsHdu) -> Vec<(String, String)> {
    CARDS
        .iter()
        .filter_map(|k| fits::key_string(f, hdu, k).map(|v| ((*k).to_owned(), v)))
        .collect()
}

fn stem(path: &Path) -> String {
    crate::io::fits::gz::stem(path).unwrap_or_else(|| "spectrum".into())
}

/// Read a generic FITS file (tables or an image set).
pub fn read_fits(path: &Path) -> Result<Dataset, LoadError> {
    fits::guard(path, || read_fits_inner(path))
}

fn read_fits_inner(path: &Path) -> Result<Dataset, LoadError> {
    let mut f = fits::open(path)?;
    let hdus = fits::hdus(&mut f, path)?;
    let prim_cards = match hdus.first() {
        Some(d) => fits_cards(&mut f, &d.hdu),
        None => Vec::new(),
    };
    // A pipeline's combination (BOSS COADD, LAMOST COADD_B/COADD_R, ...) is never a visit: it is
    // skipped, and every visit read says so.
    let skipped: Vec<String> = hdus
        .iter()
        .filter(|d| d.table().is_some() && is_coadd_name(&d.name))
        .map(HduDesc::label)
        .collect();
    let mut visits = Vec::new();
    for d in &hdus {
        let Some((cols, _rows)) = d.table() else {
            continue;
        };
        if is_coadd_name(&d.name) {
            continue;
        }
        let Some((wname, unit)) = cols
            .iter()
            .find_map(|c| wave_kind(&c.0).map(|u| (c.0.clone(), u)))
        else {
            continue;
        };
        if !cols.iter().any(|c| role(&c.0) == Some(Role::Flux)) {
            continue;
        }
        let mut c = Columns {
            wave: fits::column_f64(&mut f, path, d, &wname)?,
            unit: Some(unit),
            wave_name: wname,
            ..Columns::default()
        };
        for (name, _, _) in &cols {
            match role(name) {
                Some(Role::Flux) if c.flux.is_none() => {
                    c.flux = Some(fits::column_f64(&mut f, path, d, name)?);
                }
                Some(Role::Ivar) if c.ivar.is_none() => {
                    c.ivar = Some(fits::column_f64(&mut f, path, d, name)?);
                }
                Some(Role::Error) if c.error.is_none() => {
                    c.error = Some(fits::column_f64(&mut f, path, d, name)?);
                }
                Some(Role::Mask) if c.mask.is_none() => {
                    c.mask = Some(fits::column_bits(&mut f, path, d, name)?);
                }
                Some(Role::Selection) if c.selection.is_none() => {
                    c.selection = Some(fits::column_f64(&mut f, path, d, name)?);
                }
                _ => {}
            }
        }
        let mut cards = fits_cards(&mut f, &d.hdu);
        cards.extend(prim_cards.iter().cloned());
        let mut meta = VisitMeta {
            name: if d.name.is_empty() {
                format!("{} {}", stem(path), d.label())
            } else {
                d.name.clone()
            },
            source: Some(path.to_path_buf()),
            ..VisitMeta::default()
        };
        meta_from_cards(&mut meta, &cards);
        if !skipped.is_empty() {
            meta.header.push((
                super::lamost::READER_WARNING_CARD.into(),
                format!(
                    "{} skipped: named like a pipeline coadd, not a visit",
                    skipped.join(", ")
                ),
            ));
        }
        visits.push(Arc::new(build_visit(path, &d.label(), c, meta)?));
    }
    if visits.is_empty() {
        visits = read_image_set(&mut f, path, &hdus, &prim_cards)?;
    }
    if visits.is_empty() && !skipped.is_empty() {
        return Err(LoadError::new(
            path,
            LoadErrorKind::Unrecognised(format!(
                "its only spectrum tables ({}) are named like a pipeline's coadd, which is never \
                 read as a visit: give the exposures the coadd was made from",
                skipped.join(", ")
            )),
        ));
    }
    if visits.is_empty() {
        return Err(LoadError::new(
            path,
            LoadErrorKind::Unrecognised(
                "a FITS file without a table or image set holding wavelength and flux (and it is not an apVisit or BOSS spec file)".into(),
            ),
        ));
    }
    Ok(generic_dataset(path, visits))
}

fn read_image_set(
    f: &mut FitsFile,
    path: &Path,
    hdus: &[HduDesc],
    prim_cards: &[(String, String)],
) -> Result<Vec<Arc<Visit>>, LoadError> {
    let find = |pred: &dyn Fn(&str) -> bool| {
        hdus.iter()
            .find(|d| d.image_shape().is_some() && !d.name.is_empty() && pred(&d.name))
    };
    let Some(wd) = find(&|n| wave_kind(n).is_some()) else {
        return Ok(Vec::new());
    };
    let Some(fd) = find(&|n| role(n) == Some(Role::Flux)) else {
        return Ok(Vec::new());
    };
    let (shape, wave) = fits::image_f64(f, path, wd)?;
    let (rows, cols) = match shape[..] {
        [n] => (1, n),
        [r, n] => (r, n),
        _ => {
            return Err(LoadError::invalid(
                path,
                wd.label(),
                format!("has shape {shape:?}, expected 1 or 2 dimensions"),
            ));
        }
    };
    let read_like = |f: &mut FitsFile, d: &HduDesc| -> Result<Vec<f64>, LoadError> {
        let (s, v) = fits::image_f64(f, path, d)?;
        if s != shape {
            return Err(LoadError::invalid(
                path,
                d.label(),
                format!("has shape {s:?}, {} has {shape:?}", wd.label()),
            ));
        }
        Ok(v)
    };
    let flux = read_like(f, fd)?;
    let ivar = match find(&|n| role(n) == Some(Role::Ivar)) {
        Some(d) => Some(read_like(f, d)?),
        None => None,
    };
    let error = match find(&|n| role(n) == Some(Role::Error)) {
        Some(d) => Some(read_like(f, d)?),
        None => None,
    };
    let mask = match find(&|n| role(n) == Some(Role::Mask)) {
        Some(d) => {
            let v = read_like(f, d)?;
            let mut out = Vec::with_capacity(v.len());
            for (i, &m) in v.iter().enumerate() {
                if !(m.is_finite() && m >= 0.0 && m.fract() == 0.0) {
                    return Err(LoadError::invalid(
                        path,
                        d.label(),
                        format!("pixel {i} holds {m}, expected a non-negative integer bitmask"),
                    ));
                }
                out.push(m as u64);
            }
            Some(out)
        }
        None => None,
    };
    let sel = match find(&|n| role(n) == Some(Role::Selection)) {
        Some(d) => Some(read_like(f, d)?),
        None => None,
    };
    let unit = wave_kind(&wd.name);
    let mut out = Vec::with_capacity(rows);
    for r in 0..rows {
        let span = r * cols..(r + 1) * cols;
        let c = Columns {
            wave: wave[span.clone()].to_vec(),
            unit,
            wave_name: wd.name.clone(),
            flux: Some(flux[span.clone()].to_vec()),
            ivar: ivar.as_ref().map(|v| v[span.clone()].to_vec()),
            error: error.as_ref().map(|v| v[span.clone()].to_vec()),
            mask: mask.as_ref().map(|v| v[span.clone()].to_vec()),
            selection: sel.as_ref().map(|v| v[span.clone()].to_vec()),
        };
        let mut meta = VisitMeta {
            name: if rows == 1 {
                stem(path)
            } else {
                format!("{} row {r}", stem(path))
            },
            source: Some(path.to_path_buf()),
            ..VisitMeta::default()
        };
        meta_from_cards(&mut meta, prim_cards);
        out.push(Arc::new(build_visit(
            path,
            &format!("row {r} of the images {} and {}", wd.label(), fd.label()),
            c,
            meta,
        )?));
    }
    Ok(out)
}

/// Read CSV/TSV text (see the module documentation).
pub fn read_text(path: &Path) -> Result<Dataset, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| LoadError::io(path, e))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| LoadError::invalid(path, "the text", "is not UTF-8"))?;
    let mut cards = Vec::new();
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let header = loop {
        let Some((ln, line)) = lines.next() else {
            return Err(LoadError::invalid(path, "the text", "has no header line"));
        };
        if let Some(c) = line.trim_start().strip_prefix('#') {
            if let Some((k, v)) = c.split_once('=') {
                cards.push((k.trim().to_owned(), v.trim().to_owned()));
            }
            continue;
        }
        break (ln, line);
    };
    let sep = if header.1.contains('\t') {
        Some('\t')
    } else if header.1.contains(',') {
        Some(',')
    } else {
        None
    };
    let split = |l: &str| -> Vec<String> {
        match sep {
            Some(s) => l.split(s).map(|x| x.trim().to_owned()).collect(),
            None => l.split_whitespace().map(str::to_owned).collect(),
        }
    };
    let names = split(header.1);
    let Some(wi) = names.iter().position(|n| wave_kind(n).is_some()) else {
        return Err(LoadError::missing(
            path,
            format!(
                "a wavelength column in the header line (line {}: {})",
                header.0 + 1,
                names.join(", ")
            ),
        ));
    };
    let roles: Vec<Option<Role>> = names.iter().map(|n| role(n)).collect();
    let first = |r: Role| roles.iter().position(|x| *x == Some(r));
    let (fi, ii, ei, mi, si, vi) = (
        first(Role::Flux),
        first(Role::Ivar),
        first(Role::Error),
        first(Role::Mask),
        first(Role::Selection),
        first(Role::Visit),
    );
    if fi.is_none() {
        return Err(LoadError::missing(path, "a flux column in the header line"));
    }
    let mut groups: Vec<(String, Columns)> = Vec::new();
    for (ln, line) in lines {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let fields = split(line);
        if fields.len() != names.len() {
            return Err(LoadError::invalid(
                path,
                format!("line {}", ln + 1),
                format!(
                    "has {} fields, the header has {}",
                    fields.len(),
                    names.len()
                ),
            ));
        }
        let num = |i: usize| -> Result<f64, LoadError> {
            let s = &fields[i];
            if s.is_empty() {
                return Ok(f64::NAN);
            }
            s.parse::<f64>().map_err(|_| {
                LoadError::invalid(
                    path,
                    format!("column '{}' line {}", names[i], ln + 1),
                    format!("'{s}' is not a number"),
                )
            })
        };
        let key = vi.map(|i| fields[i].clone()).unwrap_or_default();
        let gi = match groups.iter().position(|g| g.0 == key) {
            Some(g) => g,
            None => {
                groups.push((
                    key.clone(),
                    Columns {
                        unit: wave_kind(&names[wi]),
                        wave_name: names[wi].clone(),
                        flux: fi.map(|_| Vec::new()),
                        ivar: ii.map(|_| Vec::new()),
                        error: ei.map(|_| Vec::new()),
                        mask: mi.map(|_| Vec::new()),
                        selection: si.map(|_| Vec::new()),
                        ..Columns::default()
                    },
                ));
                groups.len() - 1
            }
        };
        let c = &mut groups[gi].1;
        c.wave.push(num(wi)?);
        for (idx, slot) in [
            (fi, &mut c.flux),
            (ii, &mut c.ivar),
            (ei, &mut c.error),
            (si, &mut c.selection),
        ] {
            if let (Some(i), Some(v)) = (idx, slot.as_mut()) {
                v.push(num(i)?);
            }
        }
        if let (Some(i), Some(v)) = (mi, c.mask.as_mut()) {
            let s = &fields[i];
            let m = s.parse::<u64>().map_err(|_| {
                LoadError::invalid(
                    path,
                    format!("column '{}' line {}", names[i], ln + 1),
                    format!("'{s}' is not a non-negative integer bitmask"),
                )
            })?;
            v.push(m);
        }
    }
    if groups.is_empty() {
        return Err(LoadError::invalid(path, "the table", "has no data rows"));
    }
    let mut visits = Vec::with_capacity(groups.len());
    let n_groups = groups.len();
    for (key, c) in groups {
        let mut meta = VisitMeta {
            name: if n_groups == 1 && key.is_empty() {
                stem(path)
            } else {
                key.clone()
            },
            source: Some(path.to_path_buf()),
            ..VisitMeta::default()
        };
        meta_from_cards(&mut meta, &cards);
        let what = if key.is_empty() {
            "the table".to_owned()
        } else {
            format!("visit '{key}'")
        };
        visits.push(Arc::new(build_visit(path, &what, c, meta)?));
    }
    Ok(generic_dataset(path, visits))
}

/// A dataset of generic table visits, named after the first visit's object or the file.
fn generic_dataset(path: &Path, visits: Vec<Arc<Visit>>) -> Dataset {
    let name = visits
        .first()
        .and_then(|v| v.meta.object.clone())
        .unwrap_or_else(|| stem(path));
    Dataset {
        name,
        visits,
        survey: Survey::Generic,
        ..Dataset::default()
    }
}

/// The generic FITS reader: any FITS file no specific reader claims (binary tables or image sets
/// with wavelength and flux columns).
pub struct FitsTableReader;

impl Reader for FitsTableReader {
    fn format(&self) -> Format {
        Format::FitsTable
    }
    fn claim(&self, probe: &mut Probe<'_>) -> Result<Option<Confidence>, LoadError> {
        Ok(probe.fits()?.map(|_| Confidence::FALLBACK))
    }
    fn read(&self, path: &Path) -> Result<Dataset, LoadError> {
        read_fits(path)
    }
}

/// The CSV/TSV reader: any uncompressed text no other reader claims.
pub struct TextReader;

impl Reader for TextReader {
    fn format(&self) -> Format {
        Format::Text
    }
    fn claim(&self, probe: &mut Probe<'_>) -> Result<Option<Confidence>, LoadError> {
        let head = probe.head();
        let text = !probe.is_gzip() && !head.is_empty() && !head.contains(&0) && !probe.is_fits();
        Ok(text.then_some(Confidence::LAST_RESORT))
    }
    fn read(&self, path: &Path) -> Result<Dataset, LoadError> {
        read_text(path)
    }
}
