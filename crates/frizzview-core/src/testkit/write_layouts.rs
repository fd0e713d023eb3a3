//! Writers of APOGEE files in the survey's own layouts, for fixtures: tests, fuzzing and demos.
//!
//! No SDSS-V file could be obtained for development, so the newer layouts are produced here from
//! files (or synthetic visits) in hand, following the public data models (`sdss/apogee_drp` 1.3
//! `pro/apogeereduce/apvisit_output.pro`, `python/apogee_drp/utils/apspec.py`; the DR17 and DR19
//! data-model pages for apVisit, apStar and allVisit):
//!
//! - [`rewrite_apvisit`]: an apVisit file in hand re-written as DR19 (`apVisit-1.3-{telescope}-...`:
//!   named HDUs, an optional FLUX CONVERSION image pushing the visit table to HDU 12, no VRAD, BC,
//!   VHELIO or JD cards and no BC/VREL/VHELIO columns, `TELESCOP = 'apo25m'` whatever the site,
//!   J/H/K as JMAG/HMAG/KMAG, APRED = '1.3') or as DR17 (`{ap|as}Visit-dr17-...`, the DR13 cards).
//! - [`rewrite_apstar`]: an apStar file in hand re-written as DR17 or DR19 (DR19: the per-visit
//!   `VRADn` become `VRELn` and the barycentric `VHELIOn` become `VRADn`; the mean VHELIO becomes
//!   VRAD; `SFILEn` renamed to the rewritten visit names).
//! - [`write_allvisit`]: an allVisit summary with DR17 (upper-case, VHELIO) or DR19 (lower-case,
//!   vrad) columns.
//! - [`write_apvisit`]: a [`Visit`] (e.g. from [`crate::synth::apogee`]) written out as an apVisit
//!   file in the DR19 layout.
//! - [`write_lamost_mrs`]: a LAMOST medium-resolution `med-*.fits` file (coadds and per-exposure
//!   blue/red tables, float32 columns, logical HELIO/VACUUM cards), e.g. of
//!   [`lamost_mrs_example`].
//!
//! Layouts of DR13-DR17 name no HDU; `fitsio` always writes an EXTNAME card, so those are written
//! with an empty EXTNAME, which the readers treat as no name. Every output is written to a new file
//! (an existing one is refused).

use std::path::{Path, PathBuf};

use fitsio::FitsFile;
use fitsio::hdu::FitsHdu;
use fitsio::images::{ImageDescription, ImageType};
use fitsio::tables::{ColumnDataType, ColumnDescription};

use crate::io::error::LoadError;
use crate::io::fits::{self, HduDesc};
use crate::io::survey::apogee_names::{self, ApogeeName};
use crate::model::{C_KMS, VelocityKind, Visit};

type R<T> = Result<T, String>;

fn fe(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A header card's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Card {
    /// An integer.
    Int(i64),
    /// A real number.
    Real(f64),
    /// Text.
    Text(String),
}

/// The apVisit release layouts [`rewrite_apvisit`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VisitLayout {
    /// DR17 (`{ap|as}Visit-dr17-{plate}-{mjd}-{fiber:03d}.fits`), unnamed HDUs, header velocities.
    Dr17,
    /// DR19/DR20 (`apVisit-1.3-{telescope}-{plate}-{mjd}-{fiber:03d}.fits`).
    Dr19 {
        /// Write a FLUX CONVERSION image as HDU 11 (the visit table is then HDU 12).
        flux_conversion: bool,
    },
}

/// The apStar release layouts [`rewrite_apstar`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StarLayout {
    /// DR13 as in hand (apred `r6`...): VRADn topocentric, VHELIOn barycentric.
    Dr13,
    /// DR17 (`{ap|as}Star-dr17-{id}.fits`): the same cards, APRED = 'dr17'.
    Dr17,
    /// DR19 (`apStar-1.3-{telescope}-{id}.fits`): VRELn topocentric, VRADn barycentric.
    Dr19,
}

const VISIT_HDUS: [(&str, usize); 10] = [
    ("FLUX", 1),
    ("ERROR", 2),
    ("MASK", 3),
    ("WAVELENGTH", 4),
    ("SKY FLUX", 5),
    ("SKY ERROR", 6),
    ("TELLURIC", 7),
    ("TELLURIC ERROR", 8),
    ("WAVE COEFFICIENTS", 9),
    ("LSF COEFFICIENTS", 10),
];

const STAR_HDUS: [(&str, usize); 8] = [
    ("FLUX", 1),
    ("ERROR", 2),
    ("MASK", 3),
    ("SKY", 4),
    ("SKY ERROR", 5),
    ("TELLURIC", 6),
    ("TELLURIC ERROR", 7),
    ("LSF", 8),
];

/// The FITS image type that stores an HDU's values as the survey does.
fn image_type(name: &str) -> ImageType {
    match name {
        "MASK" => ImageType::Short,
        "WAVELENGTH" | "WAVE COEFFICIENTS" | "LSF COEFFICIENTS" | "LSF" => ImageType::Double,
        _ => ImageType::Float,
    }
}

/// Read the primary-header cards `keys` that exist, typed.
fn read_cards(f: &mut FitsFile, prim: &FitsHdu, keys: &[String]) -> Vec<(String, Card)> {
    let mut out = Vec::new();
    for k in keys {
        let text = fits::key_string(f, prim, k);
        let Some(text) = text else { continue };
        let card = match fits::key_f64(f, prim, k) {
            Some(v) if prim.read_key::<f64>(f, k).is_ok() => {
                let t = text.to_ascii_uppercase();
                if v.fract() == 0.0 && !t.contains(['.', 'E', 'D']) && v.abs() < 9e15 {
                    Card::Int(v as i64)
                } else {
                    Card::Real(v)
                }
            }
            _ => Card::Text(text),
        };
        out.push((k.clone(), card));
    }
    out
}

fn write_card(f: &mut FitsFile, h: &FitsHdu, k: &str, c: &Card) -> R<()> {
    match c {
        Card::Int(v) => h.write_key(f, k, *v),
        Card::Real(v) => h.write_key(f, k, *v),
        Card::Text(v) => h.write_key(f, k, v.clone()),
    }
    .map_err(|e| format!("card {k}: {e}"))
}

fn create_new(path: &Path) -> R<FitsFile> {
    if path.exists() {
        return Err(format!(
            "{} exists; refusing to overwrite it",
            path.display()
        ));
    }
    crate::io::fits::disk::create(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_image(
    f: &mut FitsFile,
    name: &str,
    shape: &[usize],
    data: &[f64],
    keep_name: bool,
) -> R<FitsHdu> {
    let h = f
        .create_image(
            if keep_name { name } else { "" },
            &ImageDescription {
                data_type: image_type(name),
                dimensions: shape,
            },
        )
        .map_err(|e| format!("{name}: {e}"))?;
    if image_type(name) == ImageType::Short {
        let v: Vec<i16> = data.iter().map(|&x| x as i64 as i16).collect();
        h.write_image(f, &v).map_err(|e| format!("{name}: {e}"))?;
    } else {
        h.write_image(f, data).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(h)
}

/// One table column's values.
#[derive(Clone, Debug, PartialEq)]
pub enum Column {
    /// Numbers (written as doubles).
    Real(Vec<f64>),
    /// Integers (written as 32-bit).
    Int(Vec<i32>),
    /// Text.
    Text(Vec<String>),
}

fn write_table(f: &mut FitsFile, extname: &str, cols: &[(String, Column)]) -> R<()> {
    let descs = cols
        .iter()
        .map(|(n, c)| {
            let mut d = ColumnDescription::new(n);
            match c {
                Column::Real(_) => d.with_type(ColumnDataType::Double).create(),
                Column::Int(_) => d.with_type(ColumnDataType::Int).create(),
                Column::Text(v) => d
                    .with_type(ColumnDataType::String)
                    .that_repeats(v.iter().map(String::len).max().unwrap_or(1).max(1))
                    .create(),
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(fe)?;
    let h = f.create_table(extname, &descs).map_err(fe)?;
    for (n, c) in cols {
        match c {
            Column::Real(v) => h.write_col(f, n, v).map(|_| ()),
            Column::Int(v) => h.write_col(f, n, v).map(|_| ()),
            Column::Text(v) => h.write_col(f, n, v).map(|_| ()),
        }
        .map_err(|e| format!("column {n}: {e}"))?;
    }
    Ok(())
}

/// Read one row-0 value of every column of a table (numbers and text).
fn read_table(
    f: &mut FitsFile,
    path: &Path,
    d: &HduDesc,
) -> Result<Vec<(String, Column)>, LoadError> {
    let (cols, _) = d.table().unwrap_or_default();
    let mut out = Vec::new();
    for (name, typ, repeat) in cols {
        let col = match typ {
            ColumnDataType::Text | ColumnDataType::String => {
                crate::io::fits::disk::read_str_col(f, &d.hdu, &name, 0, None)
                    .map(|v| Column::Text(v.into_iter().map(|s| s.trim().to_owned()).collect()))
            }
            _ if repeat == 1 => d.hdu.read_col::<f64>(f, &name).map(Column::Real),
            _ => continue,
        };
        let col = col
            .map_err(|e| LoadError::invalid(path, format!("column {name} of {}", d.label()), e))?;
        out.push((name, col));
    }
    Ok(out)
}

/// The DR19/DR17 file name of a visit in hand (`telescope` from the name, else `apo25m`).
#[must_use]
pub fn visit_name(orig: &ApogeeName, layout: VisitLayout, telescope: &str) -> String {
    let plate = orig.plate.clone().unwrap_or_else(|| "0".into());
    let mjd = orig.mjd.unwrap_or(0);
    let fiber = orig.fiber.unwrap_or(0);
    match layout {
        VisitLayout::Dr19 { .. } => {
            format!("apVisit-1.3-{telescope}-{plate}-{mjd}-{fiber:03}.fits")
        }
        VisitLayout::Dr17 => {
            let p = if telescope == "lco25m" { "as" } else { "ap" };
            format!("{p}Visit-dr17-{plate}-{mjd}-{fiber:03}.fits")
        }
    }
}

/// The primary-header cards of an apVisit worth carrying over (apvisit_output.pro).
fn visit_card_names(ncombine: usize) -> Vec<String> {
    let mut v: Vec<String> = [
        "OBJID",
        "TELESCOP",
        "LOCID",
        "PLATE",
        "MJD5",
        "FIBERID",
        "DATE-OBS",
        "EXPTIME",
        "JD-MID",
        "UT-MID",
        "NCOMBINE",
        "NPAIRS",
        "OBJTYPE",
        "RA",
        "DEC",
        "J",
        "H",
        "K",
        "JMAG",
        "HMAG",
        "KMAG",
        "SNR",
        "SURVEY",
        "FIELD",
        "STARFLAG",
        "APRED",
        "BC",
        "VRAD",
        "VRADERR",
        "VHELIO",
        "VHELIOBAR",
        "HJD",
        "VTYPE",
        "VSCATTER",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    v.extend((1..=ncombine.min(200)).map(|i| format!("FRAME{i}")));
    v
}

/// Re-write the apVisit file `src` in `layout` into `dir` as a site's file (`telescope`:
/// `apo25m`, `lco25m`); returns the new path. The spectra are copied unchanged.
pub fn rewrite_apvisit(src: &Path, dir: &Path, layout: VisitLayout, telescope: &str) -> R<PathBuf> {
    let fname = src
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let orig =
        apogee_names::parse(&fname).ok_or_else(|| format!("{fname}: not an apVisit name"))?;
    let out = dir.join(visit_name(&orig, layout, telescope));
    let mut f = fits::open(src).map_err(fe)?;
    let hdus = fits::hdus(&mut f, src).map_err(fe)?;
    let prim = f.primary_hdu().map_err(fe)?;
    let ncombine = fits::key_f64(&mut f, &prim, "NCOMBINE")
        .unwrap_or(0.0)
        .max(0.0) as usize;
    let mut cards = read_cards(&mut f, &prim, &visit_card_names(ncombine));
    let mut images = Vec::new();
    for (name, i) in VISIT_HDUS {
        let d = crate::io::readers::apogee::named_hdu(&hdus, name, i)
            .ok_or(format!("{fname}: no {name}"))?;
        images.push((name, fits::image_f64(&mut f, src, d).map_err(fe)?));
    }
    let table = match hdus.iter().skip(5).find(|d| d.table().is_some()) {
        Some(d) => read_table(&mut f, src, d).map_err(fe)?,
        None => Vec::new(),
    };
    drop(f);
    let dr19 = matches!(layout, VisitLayout::Dr19 { .. });
    let mut table = table;
    if dr19 {
        // DR19: no velocities or BC in the header or table; JD-MID only; J/H/K renamed.
        cards.retain(|(k, _)| {
            !matches!(
                k.as_str(),
                "BC" | "VRAD"
                    | "VRADERR"
                    | "VHELIO"
                    | "VHELIOBAR"
                    | "HJD"
                    | "VTYPE"
                    | "VSCATTER"
                    | "APRED"
            )
        });
        for (k, _) in &mut cards {
            if matches!(k.as_str(), "J" | "H" | "K") {
                *k = format!("{k}MAG");
            }
        }
        table.retain(|(n, _)| {
            !matches!(
                n.to_ascii_uppercase().as_str(),
                "BC" | "VREL" | "VRELERR" | "VHELIO" | "VLSR" | "VGSR" | "VTYPE" | "CHISQ"
            )
        });
    } else {
        cards.retain(|(k, _)| k != "APRED");
    }
    for (k, v) in &mut cards {
        if k == "TELESCOP" {
            // SDSS-V writes apo25m at every site.
            *v = Card::Text(if dr19 {
                "apo25m".into()
            } else {
                telescope.to_owned()
            });
        }
    }
    cards.push((
        "APRED".into(),
        Card::Text(if dr19 { "1.3" } else { "dr17" }.into()),
    ));
    let new_name = out
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    for (n, c) in &mut table {
        match (n.to_ascii_uppercase().as_str(), c) {
            ("TELESCOPE", Column::Text(v)) => v.iter_mut().for_each(|s| *s = telescope.to_owned()),
            ("FILE", Column::Text(v)) => v.iter_mut().for_each(|s| s.clone_from(&new_name)),
            _ => {}
        }
    }
    let flux_conversion = matches!(
        layout,
        VisitLayout::Dr19 {
            flux_conversion: true
        }
    );
    write_visit_file(&out, &cards, &images, flux_conversion, dr19, &table)?;
    Ok(out)
}

type Image<'a> = (&'a str, (Vec<usize>, Vec<f64>));

fn write_visit_file(
    out: &Path,
    cards: &[(String, Card)],
    images: &[Image<'_>],
    flux_conversion: bool,
    named: bool,
    table: &[(String, Column)],
) -> R<()> {
    let mut f = create_new(out)?;
    let prim = f.primary_hdu().map_err(fe)?;
    for (k, c) in cards {
        write_card(&mut f, &prim, k, c)?;
    }
    for (name, (shape, data)) in images {
        write_image(&mut f, name, shape, data, named)?;
    }
    if flux_conversion {
        // ADU -> flux conversion per pixel (apvisit_output.pro); a smooth positive placeholder.
        let shape = images.first().map(|i| i.1.0.clone()).unwrap_or_default();
        let n: usize = shape.iter().product();
        let conv: Vec<f64> = (0..n).map(|i| 1.0 + 1e-5 * (i % 4096) as f64).collect();
        write_image(&mut f, "FLUX CONVERSION", &shape, &conv, true)?;
    }
    if !table.is_empty() {
        write_table(&mut f, if named { "VISIT TABLE" } else { "" }, table)?;
    }
    Ok(())
}

/// How [`rewrite_apstar`] renames the visit files its `SFILEn` cards list.
pub type Rename<'a> = &'a dyn Fn(&str) -> String;

/// Re-write the apStar file `src` in `layout` into `dir`; `rename` maps each `SFILEn` (so that the
/// cards name the rewritten visits). Returns the new path.
pub fn rewrite_apstar(
    src: &Path,
    dir: &Path,
    layout: StarLayout,
    telescope: &str,
    rename: Rename<'_>,
) -> R<PathBuf> {
    let fname = src
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let orig = apogee_names::parse(&fname).ok_or_else(|| format!("{fname}: not an apStar name"))?;
    let id = orig
        .star
        .clone()
        .ok_or_else(|| format!("{fname}: no star id in the name"))?;
    let out = dir.join(match layout {
        StarLayout::Dr13 => fname.clone(),
        StarLayout::Dr17 => {
            let p = if telescope == "lco25m" { "as" } else { "ap" };
            format!("{p}Star-dr17-{id}.fits")
        }
        StarLayout::Dr19 => format!("apStar-1.3-{telescope}-{id}.fits"),
    });
    let mut f = fits::open(src).map_err(fe)?;
    let hdus = fits::hdus(&mut f, src).map_err(fe)?;
    let prim = f.primary_hdu().map_err(fe)?;
    let n = fits::key_f64(&mut f, &prim, "NVISITS")
        .unwrap_or(0.0)
        .max(0.0) as usize;
    let mut names: Vec<String> = [
        "OBJID", "J", "H", "K", "TELESCOP", "FIELD", "RA", "DEC", "NVISITS", "VRAD", "VHELIO",
        "VSCATTER", "VERR", "SNR", "STARFLAG", "ANDFLAG", "MEANFIB", "SIGFIB", "APRED",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for i in 1..=n.min(1000) {
        for k in [
            "SFILE", "DATE", "JD", "FIBER", "BC", "VRAD", "VREL", "VERR", "VHELIO", "SNRVIS",
            "FLAG", "CHISQ",
        ] {
            names.push(format!("{k}{i}"));
        }
    }
    let mut cards = read_cards(&mut f, &prim, &names);
    let mut images = Vec::new();
    let mut wcs = Vec::new();
    for (name, i) in STAR_HDUS {
        let Some(d) = crate::io::readers::apogee::named_hdu(&hdus, name, i) else {
            continue;
        };
        if name == "FLUX" {
            wcs = read_cards(
                &mut f,
                &d.hdu,
                &["CRVAL1", "CDELT1", "CRPIX1", "CTYPE1", "DC-FLAG", "BUNIT"].map(String::from),
            );
        }
        images.push((name, fits::image_f64(&mut f, src, d).map_err(fe)?));
    }
    drop(f);
    let get = |cards: &[(String, Card)], k: &str| {
        cards.iter().find(|c| c.0 == k).and_then(|c| match c.1 {
            Card::Real(v) => Some(v),
            Card::Int(v) => Some(v as f64),
            Card::Text(_) => None,
        })
    };
    let dr19 = layout == StarLayout::Dr19;
    if dr19 {
        // VRADn (topocentric) -> VRELn; VHELIOn (barycentric) -> VRADn; VHELIO -> VRAD.
        let mut new = Vec::with_capacity(cards.len());
        for (k, c) in &cards {
            let renamed = if let Some(i) = k.strip_prefix("VRAD").filter(|s| !s.is_empty()) {
                format!("VREL{i}")
            } else if let Some(i) = k.strip_prefix("VHELIO") {
                format!("VRAD{i}")
            } else if k == "VRAD" {
                continue;
            } else if matches!(k.as_str(), "J" | "H" | "K") {
                format!("{k}MAG")
            } else {
                k.clone()
            };
            new.push((renamed, c.clone()));
        }
        cards = new;
        if get(&cards, "VRAD").is_none()
            && let Some(v) = get(&cards, "VHELIO")
        {
            cards.push(("VRAD".into(), Card::Real(v)));
        }
    }
    cards.retain(|(k, _)| k != "APRED" && !(dr19 && k == "TELESCOP"));
    match layout {
        StarLayout::Dr13 => {}
        StarLayout::Dr17 => cards.push(("APRED".into(), Card::Text("dr17".into()))),
        StarLayout::Dr19 => {
            cards.push(("APRED".into(), Card::Text("1.3".into())));
            cards.push(("TELESCOP".into(), Card::Text("apo25m".into())));
        }
    }
    for (k, c) in &mut cards {
        if k.starts_with("SFILE")
            && let Card::Text(s) = c
        {
            *s = rename(s);
        }
    }
    let mut f = create_new(&out)?;
    let p = f.primary_hdu().map_err(fe)?;
    for (k, c) in &cards {
        write_card(&mut f, &p, k, c)?;
    }
    for (name, (shape, data)) in &images {
        let h = write_image(&mut f, name, shape, data, dr19)?;
        if *name != "LSF" {
            for (k, c) in &wcs {
                write_card(&mut f, &h, k, c)?;
            }
        }
    }
    Ok(out)
}

/// One visit listed in a written apStar header.
#[derive(Clone, Debug, PartialEq)]
pub struct StarVisit {
    /// The visit file name (`SFILEn`).
    pub file: String,
    /// Topocentric velocity (km/s).
    pub vrel: f64,
    /// Barycentric correction (km/s).
    pub bc: f64,
    /// JD.
    pub jd: f64,
    /// S/N.
    pub snr: f64,
}

/// Write an apStar file in `layout` from spectra on the apStar grid (`log10 lambda = 4.179 +
/// 6e-6 i`): `rows` are (flux, error) for row 0, row 1 and one row per visit (one or two rows
/// when there is one visit, as real DR17 files have two), `visits` the per-visit header entries.
/// Returns the path.
pub fn write_apstar(
    dir: &Path,
    layout: StarLayout,
    telescope: &str,
    apogee_id: &str,
    rows: &[(Vec<f64>, Vec<f64>)],
    visits: &[StarVisit],
) -> R<PathBuf> {
    let npix = rows.first().map_or(0, |r| r.0.len());
    // One visit: one row (the data model) or two (real DR17 files: both coadds).
    let want = if visits.len() <= 1 {
        if rows.len() == 2 { 2 } else { 1 }
    } else {
        visits.len() + 2
    };
    if rows.len() != want || rows.iter().any(|r| r.0.len() != npix || r.1.len() != npix) {
        return Err(format!(
            "{} rows of unequal length; NVISITS = {} needs {want}",
            rows.len(),
            visits.len()
        ));
    }
    let out = dir.join(match layout {
        StarLayout::Dr13 => format!("apStar-r6-{apogee_id}.fits"),
        StarLayout::Dr17 => format!("apStar-dr17-{apogee_id}.fits"),
        StarLayout::Dr19 => format!("apStar-1.3-{telescope}-{apogee_id}.fits"),
    });
    let dr19 = layout == StarLayout::Dr19;
    let mut cards = vec![
        ("OBJID".to_owned(), Card::Text(apogee_id.to_owned())),
        (
            "TELESCOP".into(),
            Card::Text(if dr19 {
                "apo25m".into()
            } else {
                telescope.to_owned()
            }),
        ),
        ("NVISITS".into(), Card::Int(visits.len() as i64)),
    ];
    match layout {
        StarLayout::Dr13 => {}
        StarLayout::Dr17 => cards.push(("APRED".into(), Card::Text("dr17".into()))),
        StarLayout::Dr19 => cards.push(("APRED".into(), Card::Text("1.3".into()))),
    }
    for (k, v) in visits.iter().enumerate() {
        let i = k + 1;
        cards.push((format!("SFILE{i}"), Card::Text(v.file.clone())));
        cards.push((format!("JD{i}"), Card::Real(v.jd)));
        cards.push((format!("BC{i}"), Card::Real(v.bc)));
        cards.push((format!("SNRVIS{i}"), Card::Real(v.snr)));
        if dr19 {
            cards.push((format!("VREL{i}"), Card::Real(v.vrel)));
            cards.push((format!("VRAD{i}"), Card::Real(v.vrel + v.bc)));
        } else {
            cards.push((format!("VRAD{i}"), Card::Real(v.vrel)));
            cards.push((format!("VHELIO{i}"), Card::Real(v.vrel + v.bc)));
        }
    }
    let shape = vec![rows.len(), npix];
    let flux: Vec<f64> = rows.iter().flat_map(|r| r.0.iter().copied()).collect();
    let err: Vec<f64> = rows.iter().flat_map(|r| r.1.iter().copied()).collect();
    let zeros = vec![0.0; flux.len()];
    let ones = vec![1.0; flux.len()];
    let wcs = [
        ("CRVAL1", Card::Real(4.179)),
        ("CDELT1", Card::Real(6e-6)),
        ("CRPIX1", Card::Int(1)),
        ("CTYPE1", Card::Text("LOG-LINEAR".into())),
        ("DC-FLAG", Card::Int(1)),
    ];
    let mut f = create_new(&out)?;
    let p = f.primary_hdu().map_err(fe)?;
    for (k, c) in &cards {
        write_card(&mut f, &p, k, c)?;
    }
    for (name, data) in [
        ("FLUX", &flux),
        ("ERROR", &err),
        ("MASK", &zeros),
        ("SKY", &zeros),
        ("SKY ERROR", &zeros),
        ("TELLURIC", &ones),
        ("TELLURIC ERROR", &zeros),
    ] {
        let h = write_image(&mut f, name, &shape, data, dr19)?;
        for (k, c) in &wcs {
            write_card(&mut f, &h, k, c)?;
        }
    }
    Ok(out)
}

/// The convention an allVisit file is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllVisitLayout {
    /// DR17 `allVisit-dr17-synspec_rev1.fits`: upper-case, VREL topocentric, VHELIO barycentric.
    Dr17,
    /// DR19 `allVisit-1.3-{telescope}.fits`: lower-case, vrel topocentric, vrad barycentric.
    Dr19,
}

/// One allVisit row.
#[derive(Clone, Debug, PartialEq)]
pub struct AllVisitRow {
    /// APOGEE id.
    pub apogee_id: String,
    /// The visit file name.
    pub file: String,
    /// Telescope.
    pub telescope: String,
    /// MJD.
    pub mjd: i32,
    /// Fibre.
    pub fiber: i32,
    /// JD of the visit.
    pub jd: f64,
    /// Barycentric correction (km/s).
    pub bc: f64,
    /// Topocentric velocity (km/s).
    pub vrel: f64,
    /// S/N.
    pub snr: f64,
}

/// Write an allVisit summary into `dir` (file name by layout); returns its path.
pub fn write_allvisit(dir: &Path, layout: AllVisitLayout, rows: &[AllVisitRow]) -> R<PathBuf> {
    let tel = rows.first().map_or("apo25m", |r| r.telescope.as_str());
    let out = dir.join(match layout {
        AllVisitLayout::Dr17 => "allVisit-dr17-synspec_rev1.fits".to_owned(),
        AllVisitLayout::Dr19 => format!("allVisit-1.3-{tel}.fits"),
    });
    let txt = |g: &dyn Fn(&AllVisitRow) -> String| Column::Text(rows.iter().map(g).collect());
    let real = |g: &dyn Fn(&AllVisitRow) -> f64| Column::Real(rows.iter().map(g).collect());
    let int = |g: &dyn Fn(&AllVisitRow) -> i32| Column::Int(rows.iter().map(g).collect());
    let bary = match layout {
        AllVisitLayout::Dr17 => "VHELIO",
        AllVisitLayout::Dr19 => "VRAD",
    };
    let cols: Vec<(&str, Column)> = vec![
        ("APOGEE_ID", txt(&|r| r.apogee_id.clone())),
        ("FILE", txt(&|r| r.file.clone())),
        ("TELESCOPE", txt(&|r| r.telescope.clone())),
        (
            "PLATE",
            txt(&|r| {
                apogee_names::parse(&r.file)
                    .and_then(|n| n.plate)
                    .unwrap_or_default()
            }),
        ),
        ("MJD", int(&|r| r.mjd)),
        ("FIBERID", int(&|r| r.fiber)),
        ("JD", real(&|r| r.jd)),
        ("SNR", real(&|r| r.snr)),
        ("BC", real(&|r| r.bc)),
        ("VREL", real(&|r| r.vrel)),
        ("VRELERR", real(&|_| 0.05)),
        (bary, real(&|r| r.vrel + r.bc)),
        ("STARFLAG", int(&|_| 0)),
    ];
    let cols: Vec<(String, Column)> = cols
        .into_iter()
        .map(|(n, c)| {
            let n = match layout {
                AllVisitLayout::Dr17 => n.to_owned(),
                AllVisitLayout::Dr19 => n.to_ascii_lowercase(),
            };
            (n, c)
        })
        .collect();
    let mut f = create_new(&out)?;
    drop(f.primary_hdu().map_err(fe)?);
    write_table(&mut f, "", &cols)?;
    Ok(out)
}

/// Write a visit (native pixels; e.g. synthetic) as a DR19-layout apVisit file `apVisit-1.3-
/// {telescope}-{plate}-{mjd}-{fiber:03d}.fits` in `dir`. The flux is stored divided by the
/// selection factor (telluric) as the pipeline does; ERROR = 1/sqrt(ivar) (1e10 where bad); RA/DEC
/// and JD-MID come from the arguments and the visit. Returns the path.
pub fn write_apvisit(
    visit: &Visit,
    dir: &Path,
    telescope: &str,
    (plate, mjd, fiber): (u32, u32, u32),
    (ra, dec): (f64, f64),
) -> R<PathBuf> {
    let out = dir.join(format!(
        "apVisit-1.3-{telescope}-{plate}-{mjd}-{fiber:03}.fits"
    ));
    let n = visit.len();
    let segs = visit.segments();
    let npix = segs.first().map_or(n, |s| s.len());
    if segs.iter().any(|s| s.len() != npix) {
        return Err("the visit's chips differ in length".into());
    }
    let shape = vec![segs.len(), npix];
    let sel = visit.selection();
    let divide = !visit.flux_divided_by_selection();
    let (mut flux, mut err) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let s = sel.map_or(1.0, |s| s[i]);
        let s = if divide && s > 1e-3 { s } else { 1.0 };
        flux.push(visit.flux()[i] / s);
        let iv = visit.ivar()[i];
        err.push(if visit.bad()[i] || iv <= 0.0 {
            crate::io::readers::apogee::BAD_ERROR
        } else {
            1.0 / iv.sqrt() / s
        });
    }
    let mask: Vec<f64> = visit.flags().iter().map(|&m| (m & 0x7fff) as f64).collect();
    let zeros = vec![0.0; n];
    let tell = sel.map_or_else(|| vec![1.0; n], <[f64]>::to_vec);
    let ncoef = |k: usize| (vec![segs.len(), k], vec![0.0; segs.len() * k]);
    let images: Vec<Image<'_>> = vec![
        ("FLUX", (shape.clone(), flux)),
        ("ERROR", (shape.clone(), err)),
        ("MASK", (shape.clone(), mask)),
        (
            "WAVELENGTH",
            (shape.clone(), visit.wavelength_aa().to_vec()),
        ),
        ("SKY FLUX", (shape.clone(), zeros.clone())),
        ("SKY ERROR", (shape.clone(), zeros.clone())),
        ("TELLURIC", (shape.clone(), tell)),
        ("TELLURIC ERROR", (shape.clone(), zeros)),
        ("WAVE COEFFICIENTS", ncoef(14)),
        ("LSF COEFFICIENTS", ncoef(26)),
    ];
    let jd = visit.meta.jd.unwrap_or(2_459_000.5);
    let object = visit
        .meta
        .object
        .clone()
        .unwrap_or_else(|| "2M00000000+0000000".into());
    let cards = vec![
        ("OBJID".to_owned(), Card::Text(object.clone())),
        ("TELESCOP".into(), Card::Text("apo25m".into())),
        ("PLATE".into(), Card::Int(i64::from(plate))),
        ("MJD5".into(), Card::Int(i64::from(mjd))),
        ("FIBERID".into(), Card::Int(i64::from(fiber))),
        ("JD-MID".into(), Card::Real(jd)),
        ("RA".into(), Card::Real(ra)),
        ("DEC".into(), Card::Real(dec)),
        ("SNR".into(), Card::Real(visit.meta.snr.unwrap_or(0.0))),
        ("APRED".into(), Card::Text("1.3".into())),
    ];
    let name = out
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let table = vec![
        ("APOGEE_ID".to_owned(), Column::Text(vec![object])),
        ("FILE".into(), Column::Text(vec![name])),
        ("TELESCOPE".into(), Column::Text(vec![telescope.to_owned()])),
        ("PLATE".into(), Column::Int(vec![plate as i32])),
        ("MJD".into(), Column::Int(vec![mjd as i32])),
        ("FIBERID".into(), Column::Int(vec![fiber as i32])),
        ("JD".into(), Column::Real(vec![jd])),
        (
            "SNR".into(),
            Column::Real(vec![visit.meta.snr.unwrap_or(0.0)]),
        ),
    ];
    write_visit_file(&out, &cards, &images, true, true, &table)?;
    Ok(out)
}

/// The topocentric velocity a synthetic visit carries (its stored Vrel, else its true velocity).
#[must_use]
pub fn visit_vrel(visit: &Visit) -> Option<f64> {
    visit
        .meta
        .velocity(VelocityKind::Vrel)
        .or_else(|| visit.meta.velocity(VelocityKind::True))
        .filter(|v| v.is_finite() && v.abs() < C_KMS)
}

/// Write the bookkeeping part of an astra mwmVisit file (`mwmVisit-0.6.0-{sdss_id}.fits`): HDU1
/// BOSS/APO and HDU2 BOSS/LCO empty, HDU3 APOGEE/APO with one row per visit holding `plate`,
/// `mjd`, `fiber`, `telescope`, `in_stack`, `v_rel`, `bc`, `v_rad` (= v_rel + bc), HDU4 APOGEE/LCO
/// empty. The spectra columns (`flux`, `ivar`, ...) are not written: this serves the velocity
/// source, not an mwmVisit spectrum reader. Returns the path.
pub fn write_mwmvisit_rows(
    dir: &Path,
    sdss_id: u64,
    rows: &[AllVisitRow],
    plate: &str,
) -> R<PathBuf> {
    let out = dir.join(format!("mwmVisit-0.6.0-{sdss_id}.fits"));
    let mut f = create_new(&out)?;
    drop(f.primary_hdu().map_err(fe)?);
    let cols = |rows: &[AllVisitRow]| -> Vec<(String, Column)> {
        vec![
            (
                "plate".into(),
                Column::Text(rows.iter().map(|_| plate.to_owned()).collect()),
            ),
            (
                "mjd".into(),
                Column::Int(rows.iter().map(|r| r.mjd).collect()),
            ),
            (
                "fiber".into(),
                Column::Int(rows.iter().map(|r| r.fiber).collect()),
            ),
            (
                "telescope".into(),
                Column::Text(rows.iter().map(|r| r.telescope.clone()).collect()),
            ),
            (
                "in_stack".into(),
                Column::Int(rows.iter().map(|_| 1).collect()),
            ),
            (
                "v_rel".into(),
                Column::Real(rows.iter().map(|r| r.vrel).collect()),
            ),
            (
                "bc".into(),
                Column::Real(rows.iter().map(|r| r.bc).collect()),
            ),
            (
                "v_rad".into(),
                Column::Real(rows.iter().map(|r| r.vrel + r.bc).collect()),
            ),
        ]
    };
    for name in ["BOSS/APO", "BOSS/LCO"] {
        write_table(&mut f, name, &cols(&[]))?;
    }
    write_table(&mut f, "APOGEE/APO", &cols(rows))?;
    write_table(&mut f, "APOGEE/LCO", &cols(&[]))?;
    Ok(out)
}

/// One arm of a LAMOST MRS table for [`write_lamost_mrs`]: LOGLAM (log10 vacuum Angstrom, in the
/// order written), FLUX, IVAR and the mask (PIXMASK of an exposure; ANDMASK and ORMASK of a
/// coadd), written as the survey does (float32 `E` columns, 16-bit `I` masks).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LamostArm {
    /// log10 of the vacuum wavelength (Angstrom), per row.
    pub loglam: Vec<f64>,
    /// Flux per row.
    pub flux: Vec<f64>,
    /// Inverse variance per row.
    pub ivar: Vec<f64>,
    /// Mask per row (empty = all 0).
    pub mask: Vec<i16>,
    /// The HDU's SNR card.
    pub snr: f64,
}

/// One exposure of a LAMOST MRS file: its LMJM (local modified Julian minute) and arms.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LamostExposure {
    /// Local (UTC+8) modified Julian minute of the exposure's start.
    pub lmjm: i64,
    /// Exposure time (s).
    pub exptime: f64,
    /// The `B-{LMJM}` table, if any.
    pub blue: Option<LamostArm>,
    /// The `R-{LMJM}` table, if any.
    pub red: Option<LamostArm>,
}

/// A LAMOST MRS file's content for [`write_lamost_mrs`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LamostMrs {
    /// Local modified Julian day of the night (LMJD; the file name's first number).
    pub lmjd: i64,
    /// Plan id (PLANID).
    pub planid: String,
    /// Spectrograph (SPID).
    pub spid: i64,
    /// Fibre (FIBERID).
    pub fiberid: i64,
    /// OBJNAME.
    pub objname: String,
    /// DESIG (`LAMOST Jhhmmss.ss+ddmmss.s`).
    pub desig: String,
    /// RA, Dec (degrees).
    pub ra_dec: (f64, f64),
    /// HELIO_RV (km/s): the heliocentric correction applied; `None` writes HELIO = F and no HELIO_RV.
    pub helio_rv: Option<f64>,
    /// COADD_B, COADD_R (the mask is written as ANDMASK and ORMASK).
    pub coadd_b: Option<LamostArm>,
    /// See `coadd_b`.
    pub coadd_r: Option<LamostArm>,
    /// The exposures, written as all `B-` tables then all `R-` tables, as the survey does.
    pub exposures: Vec<LamostExposure>,
}

fn write_lamost_table(f: &mut FitsFile, extname: &str, arm: &LamostArm, coadd: bool) -> R<FitsHdu> {
    let n = arm.loglam.len();
    if arm.flux.len() != n || arm.ivar.len() != n || !(arm.mask.is_empty() || arm.mask.len() == n) {
        return Err(format!("{extname}: columns of different lengths"));
    }
    let mask: Vec<i16> = if arm.mask.is_empty() {
        vec![0; n]
    } else {
        arm.mask.clone()
    };
    let mut names = vec!["FLUX", "IVAR", "LOGLAM"];
    names.extend(if coadd {
        vec!["ANDMASK", "ORMASK"]
    } else {
        vec!["PIXMASK"]
    });
    let descs = names
        .iter()
        .map(|name| {
            let t = if name.ends_with("MASK") {
                ColumnDataType::Short
            } else {
                ColumnDataType::Float
            };
            ColumnDescription::new(*name).with_type(t).create()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(fe)?;
    let h = f.create_table(extname, &descs).map_err(fe)?;
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let col = |e| format!("{extname}: {e}");
    h.write_col(f, "FLUX", &f32s(&arm.flux)).map_err(col)?;
    h.write_col(f, "IVAR", &f32s(&arm.ivar)).map_err(col)?;
    h.write_col(f, "LOGLAM", &f32s(&arm.loglam)).map_err(col)?;
    for name in &names[3..] {
        h.write_col(f, *name, &mask).map_err(col)?;
    }
    h.write_key(f, "SNR", arm.snr).map_err(col)?;
    h.write_key(f, "LAMPLIST", "lampsc_med.dat".to_owned())
        .map_err(col)?;
    Ok(h)
}

/// Write a LAMOST MRS file in the survey's layout (`med-{LMJD}-{PLANID}_sp{SPID:02}-{FIBER:03}.fits`
/// in `dir`; see `io::lamost`): a header-only primary HDU with the cards the reader uses, COADD_B,
/// COADD_R, then the `B-{LMJM}` and `R-{LMJM}` tables. Returns the path.
pub fn write_lamost_mrs(dir: &Path, m: &LamostMrs) -> R<PathBuf> {
    let out = dir.join(format!(
        "med-{}-{}_sp{:02}-{:03}.fits",
        m.lmjd, m.planid, m.spid, m.fiberid
    ));
    let mut f = create_new(&out)?;
    let prim = f.primary_hdu().map_err(fe)?;
    let mut cards = vec![
        ("OBSID", Card::Int(m.lmjd * 1000 + m.fiberid)),
        ("DATA_V", Card::Text("LAMOST DR7".into())),
        ("TELESCOP", Card::Text("LAMOST".into())),
        ("LONGITUD", Card::Real(117.58)),
        ("LATITUDE", Card::Real(40.39)),
        ("LMJD", Card::Int(m.lmjd)),
        ("MJD", Card::Int(m.lmjd - 1)),
        ("PLANID", Card::Text(m.planid.clone())),
        ("RA", Card::Real(m.ra_dec.0)),
        ("DEC", Card::Real(m.ra_dec.1)),
        ("DESIG", Card::Text(m.desig.clone())),
        ("FIBERID", Card::Int(m.fiberid)),
        ("OBJNAME", Card::Text(m.objname.clone())),
        ("SPID", Card::Int(m.spid)),
    ];
    if let Some(v) = m.helio_rv {
        cards.push(("HELIO_RV", Card::Real(v)));
    }
    for (k, c) in &cards {
        write_card(&mut f, &prim, k, c)?;
    }
    // fitsio writes no logical cards: integers now, made T/F once the file is closed.
    prim.write_key(&mut f, "HELIO", i64::from(m.helio_rv.is_some()))
        .map_err(|e| format!("card HELIO: {e}"))?;
    prim.write_key(&mut f, "VACUUM", 1i64)
        .map_err(|e| format!("card VACUUM: {e}"))?;
    let lmjms: Vec<String> = m.exposures.iter().map(|e| e.lmjm.to_string()).collect();
    for (name, arm) in [("COADD_B", &m.coadd_b), ("COADD_R", &m.coadd_r)] {
        if let Some(a) = arm {
            let h = write_lamost_table(&mut f, name, a, true)?;
            h.write_key(&mut f, "LMJMLIS0", lmjms.join("-"))
                .map_err(|e| format!("{name}: {e}"))?;
        }
    }
    for letter in ['B', 'R'] {
        for e in &m.exposures {
            let arm = if letter == 'B' { &e.blue } else { &e.red };
            if let Some(a) = arm {
                let name = format!("{letter}-{}", e.lmjm);
                let h = write_lamost_table(&mut f, &name, a, false)?;
                h.write_key(&mut f, "LMJM", e.lmjm.to_string())
                    .map_err(|x| format!("{name}: {x}"))?;
                h.write_key(&mut f, "EXPTIME", e.exptime)
                    .map_err(|x| format!("{name}: {x}"))?;
            }
        }
    }
    drop(f);
    logical_cards(&out, &["HELIO", "VACUUM"])?;
    Ok(out)
}

/// Turn the integer primary-header cards `keys` of the file at `path` into logical ones (1 = T,
/// else F), in place: the value is column 30 of the 80-byte card.
fn logical_cards(path: &Path, keys: &[&str]) -> R<()> {
    let mut bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let header_end = (0..bytes.len() / 80)
        .map(|c| c * 80)
        .find(|&o| bytes[o..].starts_with(b"END     "))
        .ok_or_else(|| format!("{}: no END card", path.display()))?;
    for key in keys {
        let name = format!("{key:<8}= ");
        let Some(o) = (0..header_end / 80)
            .map(|c| c * 80)
            .find(|&o| bytes[o..].starts_with(name.as_bytes()))
        else {
            return Err(format!("{}: no card {key}", path.display()));
        };
        let value = String::from_utf8_lossy(&bytes[o + 10..o + 30])
            .trim()
            .to_owned();
        let text = format!("{:>20}", if value == "1" { "T" } else { "F" });
        bytes[o + 10..o + 30].copy_from_slice(text.as_bytes());
    }
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// A small synthetic LAMOST MRS star for fixtures: `n_exp` exposures of 600 s, 14 minutes apart,
/// starting at local minute `lmjd * 1440 + 96`, each arm `n_pix` pixels on the real files' kind
/// of grid (blue 4950-5350 Angstrom increasing, red 6300-6800 decreasing, non-uniform steps), a
/// continuum of 1000 with absorption lines at fixed rest wavelengths, noise-free flux of ivar 1e-2,
/// a few masked pixels, and coadds of `n_pix` pixels per arm on one log10-linear lattice from
/// 3.69018 (step 1e-5 dex when `n_pix >= 3817`, as in the real files; coarser below). The star is
/// at rest (heliocentric velocity 0).
#[must_use]
pub fn lamost_mrs_example(lmjd: i64, n_exp: usize, n_pix: usize) -> LamostMrs {
    let n_pix = n_pix.max(8);
    let lines = [
        5000.0, 5080.5, 5172.7, 5183.6, 5270.0, 6400.0, 6494.0, 6564.6, 6678.0, 6750.0,
    ];
    let spectrum = |w: f64| {
        let mut y = 1000.0;
        for l in lines {
            y *= 1.0 - 0.5 * (-((w - l) / 0.4).powi(2) / 2.0).exp();
        }
        y
    };
    // Native-like grids: a gently non-uniform step across each arm.
    let arm_grid = |lo: f64, hi: f64, decreasing: bool| -> Vec<f64> {
        let (a, b) = (lo.log10(), hi.log10());
        let mut v: Vec<f64> = (0..n_pix)
            .map(|i| {
                let t = i as f64 / (n_pix - 1) as f64;
                a + (b - a) * (t + 0.1 * t * (1.0 - t))
            })
            .collect();
        if decreasing {
            v.reverse();
        }
        v
    };
    let arm = |loglam: Vec<f64>, k: usize| -> LamostArm {
        let flux = loglam.iter().map(|&l| spectrum(10f64.powf(l))).collect();
        let mut mask = vec![0i16; loglam.len()];
        mask[(3 + 5 * k) % loglam.len()] = 1;
        LamostArm {
            ivar: vec![1e-2; loglam.len()],
            flux,
            loglam,
            mask,
            snr: 10.0,
        }
    };
    let blue = arm_grid(4950.0, 5350.0, false);
    let red = arm_grid(6300.0, 6800.0, true);
    let exposures = (0..n_exp)
        .map(|k| LamostExposure {
            lmjm: lmjd * 1440 + 96 + 14 * k as i64,
            exptime: 600.0,
            blue: Some(arm(blue.clone(), k)),
            red: Some(arm(red.clone(), k)),
        })
        .collect();
    // The coadds: one lattice for both arms, as in the real files, with a step that lets `n_pix`
    // pixels cover each arm (1e-5 dex, the real step, for n_pix >= 3817).
    let step = 1e-5 * (3817.0 / n_pix as f64).ceil().max(1.0);
    let red_start = 3.690_18 + step * (0.109_74 / step - 1e-9).ceil();
    let lattice =
        |start: f64| -> Vec<f64> { (0..n_pix).map(|i| start + step * i as f64).collect() };
    let coadd = |start: f64| {
        let mut a = arm(lattice(start), 0);
        a.mask = Vec::new();
        a.ivar = vec![1e-2 * n_exp as f64; n_pix];
        a
    };
    LamostMrs {
        lmjd,
        planid: "TESTPLAN01".into(),
        spid: 12,
        fiberid: 76,
        objname: "1275-00000001".into(),
        desig: "LAMOST J192814.09+435531.0".into(),
        ra_dec: (292.058_716, 43.925_304),
        helio_rv: Some(-11.2204),
        coadd_b: Some(coadd(3.690_18)),
        coadd_r: Some(coadd(red_start)),
        exposures,
    }
}
