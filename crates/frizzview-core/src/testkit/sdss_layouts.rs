//! Writers of SDSS file layouts that no public file here shows: APOGEE apCframe (the raw
//! exposures behind an apVisit), BOSS spec-full of SDSS-V (run2d v6) and astra mwmVisit.
//!
//! They exist so that tests, fuzz targets and demos can build layout-faithful inputs from
//! synthetic data or from real files of older layouts. The layouts follow the public SDSS data
//! model pages and the writers of `sdss/apogee_drp` (`pro/apogeereduce/apvisit_outcframe.pro`),
//! `sdss/idlspec2d` v6 (spec-full exposure HDUs `MJD_EXP_{mjd}-{nn}`) and `sdss/astra`
//! (`python/astra/products/mwm.py`: HDU1 BOSS/APO, 2 BOSS/LCO, 3 APOGEE/APO, 4 APOGEE/LCO).
//!
//! Every write is atomic and refuses to overwrite an input ([`crate::io::atomic`]).

use std::path::Path;

use fitsio::FitsFile;
use fitsio::hdu::FitsHdu;
use fitsio::images::ImageType;
use fitsio::tables::{ColumnDataType, ColumnDescription, ConcreteColumnDescription};

use crate::io::error::SaveError;

type R<T> = Result<T, String>;

fn fe(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A header card value.
#[derive(Clone, Debug, PartialEq)]
pub enum Card {
    /// A number.
    F(f64),
    /// An integer.
    I(i64),
    /// Text.
    S(String),
}

fn put(f: &mut FitsFile, h: &FitsHdu, cards: &[(&str, Card)]) -> R<()> {
    for (k, v) in cards {
        let r = match v {
            Card::F(x) => h.write_key(f, k, *x),
            Card::I(x) => h.write_key(f, k, *x),
            Card::S(x) => h.write_key(f, k, x.clone()),
        };
        r.map_err(|e| format!("card {k}: {e}"))?;
    }
    Ok(())
}

fn image<T: fitsio::images::WriteImage>(
    f: &mut FitsFile,
    name: &str,
    typ: ImageType,
    dims: &[usize],
    data: &[T],
) -> R<FitsHdu> {
    crate::io::fits::disk::write_image_hdu(f, name, typ, dims, data)
        .map_err(|e| format!("image {name}: {e}"))
}

fn num_col(name: &str, t: ColumnDataType) -> R<ConcreteColumnDescription> {
    ColumnDescription::new(name)
        .with_type(t)
        .create()
        .map_err(fe)
}

fn vec_col(name: &str, t: ColumnDataType, n: usize) -> R<ConcreteColumnDescription> {
    ColumnDescription::new(name)
        .with_type(t)
        .that_repeats(n)
        .create()
        .map_err(fe)
}

fn str_col(name: &str, values: &[String]) -> R<ConcreteColumnDescription> {
    let w = values.iter().map(String::len).max().unwrap_or(1).max(1);
    ColumnDescription::new(name)
        .with_type(ColumnDataType::String)
        .that_repeats(w)
        .create()
        .map_err(fe)
}

/// Create `path` atomically and fill it with `body`.
fn write_file(path: &Path, body: impl FnOnce(&mut FitsFile) -> R<()>) -> Result<(), SaveError> {
    crate::io::atomic::write_atomic(path, &[], |tmp| {
        let mut f = crate::io::fits::disk::create(tmp).map_err(|e| SaveError::new(path, e))?;
        body(&mut f).map_err(|e| SaveError::new(path, e))
    })
}

// ---------------------------------------------------------------------------------------------
// apCframe

/// One fibre of an apCframe chip file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CframeFibre {
    /// FIBERID (1..300; -1 = unplugged). Image row = 300 - FIBERID.
    pub fiberid: i32,
    /// OBJTYPE ("STAR", "SKY", "HOT_STD"...).
    pub objtype: String,
    /// OBJECT and TMASS_STYLE: the APOGEE id, e.g. "2M00005143+5615568".
    pub object: String,
    /// CATALOGID (SDSS-V).
    pub catalogid: i64,
    /// Right ascension and declination of the fibre's target (degrees).
    pub ra: f64,
    /// Declination (degrees).
    pub dec: f64,
    /// 2MASS H magnitude.
    pub hmag: f64,
    /// FLUX row (ADU, sky-subtracted, telluric-divided).
    pub flux: Vec<f32>,
    /// ERROR row (bad = 1e10).
    pub error: Vec<f32>,
    /// MASK row (APOGEE_PIXMASK).
    pub mask: Vec<i16>,
    /// WAVELENGTH row (vacuum Angstrom, observed frame, decreasing with pixel).
    pub wavelength: Vec<f64>,
    /// SKY FLUX row.
    pub sky: Vec<f32>,
    /// TELLURIC row (the transmission the flux was divided by).
    pub telluric: Vec<f32>,
}

/// One apCframe file: one chip of one exposure.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CframeChip {
    /// 'a' (red), 'b' or 'c' (blue).
    pub chip: char,
    /// Exposure number (8 digits in the file name).
    pub exposure: u64,
    /// TELESCOP card ("apo25m", "lco25m").
    pub telescope: String,
    /// DATE-OBS (UTC start, ISO 8601).
    pub date_obs: String,
    /// EXPTIME (s).
    pub exptime: f64,
    /// JD-MID; `None` leaves the card out (older files), readers fall back to DATE-OBS+EXPTIME/2.
    pub jd_mid: Option<f64>,
    /// DITHPIX: commanded dither position (pixels).
    pub dithpix: f64,
    /// DITHSH: measured dither shift against the visit's reference frame (pixels).
    pub dithsh: f64,
    /// PLATEID card (the FPS configuration id in SDSS-V).
    pub plate: i64,
    /// Write EXTNAMEs (apogee_drp 1.2.0 on); DR17 files have none.
    pub extnames: bool,
    /// The fibres, in image-row order (row i = FIBERID 300 - i).
    pub fibres: Vec<CframeFibre>,
}

impl CframeChip {
    /// The file name, `apCframe-{chip}-{exposure:08}.fits` (`asCframe-` at LCO in DR17).
    #[must_use]
    pub fn file_name(&self) -> String {
        let prefix = if self.telescope.starts_with("lco") && !self.extnames {
            "as"
        } else {
            "ap"
        };
        format!("{prefix}Cframe-{}-{:08}.fits", self.chip, self.exposure)
    }
}

/// Write one apCframe chip file in the layout of apogee_drp's `apvisit_outcframe.pro`: HDU1 FLUX
/// f32 (fibres, pixels), 2 ERROR f32, 3 MASK i16, 4 WAVELENGTH f64, 5 SKY FLUX, 6 SKY ERROR,
/// 7 TELLURIC, 8 TELLURIC ERROR, 9 WAVE COEFFICIENTS (14, fibres), 10 LSF COEFFICIENTS
/// (26, fibres), 11 the fibre table, 12 the plate header, 13 the telluric fit, 14 the dither
/// shift. The fibres given become the first image rows (FIBERID 300, 299, ...), so the rule
/// image row = 300 - FIBERID holds for a file with fewer than 300 rows.
pub fn write_apcframe(path: &Path, c: &CframeChip) -> Result<(), SaveError> {
    write_file(path, |f| write_apcframe_to(f, c))
}

fn write_apcframe_to(f: &mut FitsFile, c: &CframeChip) -> R<()> {
    let nf = c.fibres.len();
    let npix = c.fibres.first().map_or(0, |x| x.flux.len());
    if nf == 0 || npix == 0 {
        return Err("an apCframe needs at least one fibre with pixels".into());
    }
    for (i, fib) in c.fibres.iter().enumerate() {
        let n = [
            fib.flux.len(),
            fib.error.len(),
            fib.mask.len(),
            fib.wavelength.len(),
            fib.sky.len(),
            fib.telluric.len(),
        ];
        if n.iter().any(|&k| k != npix) {
            return Err(format!(
                "fibre row {i}: arrays of lengths {n:?}, expected {npix}"
            ));
        }
    }
    let prim = f.primary_hdu().map_err(fe)?;
    let mut cards = vec![
        ("TELESCOP", Card::S(c.telescope.clone())),
        ("INSTRUME", Card::S("APOGEE".into())),
        ("DATE-OBS", Card::S(c.date_obs.clone())),
        ("EXPTIME", Card::F(c.exptime)),
        ("PLATEID", Card::I(c.plate)),
        ("CHIP", Card::S(c.chip.to_string())),
        ("FRAMENUM", Card::I(c.exposure as i64)),
        ("DITHPIX", Card::F(c.dithpix)),
        ("DITHSH", Card::F(c.dithsh)),
        ("DITHSLOP", Card::F(0.0)),
        ("EDITHSH", Card::F(0.002)),
        ("MEDWSH", Card::F(0.0)),
        ("NREAD", Card::I(47)),
    ];
    if let Some(jd) = c.jd_mid {
        cards.push(("JD-MID", Card::F(jd)));
    }
    put(f, &prim, &cards)?;
    let name = |s: &'static str| if c.extnames { s } else { "" };
    let dims = [nf, npix];
    let cat_f32 = |g: &dyn Fn(&CframeFibre) -> &Vec<f32>| -> Vec<f32> {
        c.fibres.iter().flat_map(|x| g(x).iter().copied()).collect()
    };
    let flux = cat_f32(&|x| &x.flux);
    image(f, name("FLUX"), ImageType::Float, &dims, &flux)?;
    let err = cat_f32(&|x| &x.error);
    image(f, name("ERROR"), ImageType::Float, &dims, &err)?;
    let mask: Vec<i16> = c
        .fibres
        .iter()
        .flat_map(|x| x.mask.iter().copied())
        .collect();
    image(f, name("MASK"), ImageType::Short, &dims, &mask)?;
    let wave: Vec<f64> = c
        .fibres
        .iter()
        .flat_map(|x| x.wavelength.iter().copied())
        .collect();
    image(f, name("WAVELENGTH"), ImageType::Double, &dims, &wave)?;
    let sky = cat_f32(&|x| &x.sky);
    image(f, name("SKY FLUX"), ImageType::Float, &dims, &sky)?;
    let sky_err: Vec<f32> = sky.iter().map(|s| s.abs().sqrt().max(1.0)).collect();
    image(f, name("SKY ERROR"), ImageType::Float, &dims, &sky_err)?;
    let tell = cat_f32(&|x| &x.telluric);
    image(f, name("TELLURIC"), ImageType::Float, &dims, &tell)?;
    let tell_err = vec![0.001f32; nf * npix];
    image(
        f,
        name("TELLURIC ERROR"),
        ImageType::Float,
        &dims,
        &tell_err,
    )?;
    // Wavelength coefficients (14 per fibre) and LSF coefficients (26 per fibre): zeros here,
    // with the shape of the real files; readers use HDU 4 directly.
    image(
        f,
        name("WAVE COEFFICIENTS"),
        ImageType::Double,
        &[14, nf],
        &vec![0.0f64; 14 * nf],
    )?;
    image(
        f,
        name("LSF COEFFICIENTS"),
        ImageType::Double,
        &[26, nf],
        &vec![0.0f64; 26 * nf],
    )?;
    // HDU 11: the fibre table, one row per image row.
    let objtype: Vec<String> = c.fibres.iter().map(|x| x.objtype.clone()).collect();
    let object: Vec<String> = c.fibres.iter().map(|x| x.object.clone()).collect();
    let cols = vec![
        num_col("FIBERID", ColumnDataType::Int)?,
        num_col("RA", ColumnDataType::Double)?,
        num_col("DEC", ColumnDataType::Double)?,
        str_col("OBJTYPE", &objtype)?,
        str_col("OBJECT", &object)?,
        str_col("TMASS_STYLE", &object)?,
        num_col("CATALOGID", ColumnDataType::LongLong)?,
        num_col("SPECTROGRAPHID", ColumnDataType::Int)?,
        num_col("HMAG", ColumnDataType::Float)?,
    ];
    let t = f.create_table(name("FIBERS"), &cols).map_err(fe)?;
    let fiberid: Vec<i32> = c.fibres.iter().map(|x| x.fiberid).collect();
    t.write_col(f, "FIBERID", &fiberid).map_err(fe)?;
    let ra: Vec<f64> = c.fibres.iter().map(|x| x.ra).collect();
    t.write_col(f, "RA", &ra).map_err(fe)?;
    let dec: Vec<f64> = c.fibres.iter().map(|x| x.dec).collect();
    t.write_col(f, "DEC", &dec).map_err(fe)?;
    t.write_col(f, "OBJTYPE", &objtype).map_err(fe)?;
    t.write_col(f, "OBJECT", &object).map_err(fe)?;
    t.write_col(f, "TMASS_STYLE", &object).map_err(fe)?;
    let cat: Vec<i64> = c.fibres.iter().map(|x| x.catalogid).collect();
    t.write_col(f, "CATALOGID", &cat).map_err(fe)?;
    t.write_col(f, "SPECTROGRAPHID", &vec![2i32; nf])
        .map_err(fe)?;
    let hmag: Vec<f32> = c.fibres.iter().map(|x| x.hmag as f32).collect();
    t.write_col(f, "HMAG", &hmag).map_err(fe)?;
    // HDU 12: the plate header (an empty image carrying cards).
    let h = image(f, name("PLATE HEADER"), ImageType::Short, &[1], &[0i16])?;
    put(f, &h, &[("PLATEID", Card::I(c.plate))])?;
    // HDU 13: the telluric fit; HDU 14: the dither shift against the reference frame.
    let t = f
        .create_table(
            name("TELLURIC FIT"),
            &[num_col("SCALE", ColumnDataType::Double)?],
        )
        .map_err(fe)?;
    t.write_col(f, "SCALE", &[1.0f64]).map_err(fe)?;
    let t = f
        .create_table(
            name("DITHER SHIFT"),
            &[
                num_col("SHIFT", ColumnDataType::Double)?,
                num_col("SHIFTERR", ColumnDataType::Double)?,
            ],
        )
        .map_err(fe)?;
    t.write_col(f, "SHIFT", &[c.dithsh]).map_err(fe)?;
    t.write_col(f, "SHIFTERR", &[0.002f64]).map_err(fe)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// A minimal apVisit header that lists its exposures

/// Write a small apVisit-like file whose primary header lists the exposures behind it
/// (`FRAME1..n`, `NCOMBINE`) with its OBJID, FIBERID, TELESCOP, RA, DEC and JD-MID, and HDU1-4 holding
/// the given dither-combined (chips, pixels) arrays. Used to test `--exposures`.
#[allow(clippy::too_many_arguments)]
pub fn write_apvisit_with_frames(
    path: &Path,
    object: &str,
    fiberid: i32,
    telescope: &str,
    ra_dec: (f64, f64),
    jd_mid: f64,
    frames: &[u64],
    chips: (&[f64], &[f64], usize),
) -> Result<(), SaveError> {
    write_file(path, |f| {
        let (wave, flux, npix) = chips;
        if npix == 0 || wave.len() != flux.len() || wave.len() % npix != 0 {
            return Err("apVisit arrays do not match".into());
        }
        let nchip = wave.len() / npix;
        let prim = f.primary_hdu().map_err(fe)?;
        let mut cards = vec![
            ("OBJID", Card::S(object.to_owned())),
            ("FIBERID", Card::I(i64::from(fiberid))),
            ("TELESCOP", Card::S(telescope.to_owned())),
            ("RA", Card::F(ra_dec.0)),
            ("DEC", Card::F(ra_dec.1)),
            ("JD-MID", Card::F(jd_mid)),
            ("SNR", Card::F(50.0)),
            ("NCOMBINE", Card::I(frames.len() as i64)),
        ];
        let names: Vec<String> = (1..=frames.len()).map(|i| format!("FRAME{i}")).collect();
        for (n, fr) in names.iter().zip(frames) {
            cards.push((n.as_str(), Card::I(*fr as i64)));
        }
        put(f, &prim, &cards)?;
        let dims = [nchip, npix];
        image(
            f,
            "FLUX",
            ImageType::Float,
            &dims,
            &flux.iter().map(|v| *v as f32).collect::<Vec<_>>(),
        )?;
        let err: Vec<f32> = flux
            .iter()
            .map(|v| (v.abs().sqrt() * 0.1).max(0.01) as f32)
            .collect();
        image(f, "ERROR", ImageType::Float, &dims, &err)?;
        image(f, "MASK", ImageType::Short, &dims, &vec![0i16; wave.len()])?;
        image(f, "WAVELENGTH", ImageType::Double, &dims, wave)?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// BOSS spec-full, SDSS-V (run2d v6)

/// One table of a BOSS spec file in the SDSS-V layout (COADD or an exposure), upper-case columns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BossTable {
    /// LOGLAM (log10 vacuum Angstrom).
    pub loglam: Vec<f64>,
    /// FLUX (1e-17 erg/s/cm2/A).
    pub flux: Vec<f64>,
    /// IVAR (0 = bad).
    pub ivar: Vec<f64>,
    /// AND_MASK.
    pub and_mask: Vec<i32>,
    /// OR_MASK.
    pub or_mask: Vec<i32>,
    /// WDISP (dispersion in units of the LOGLAM step).
    pub wdisp: Vec<f64>,
    /// SKY.
    pub sky: Vec<f64>,
    /// MODEL (COADD only: `None` for exposures).
    pub model: Option<Vec<f64>>,
    /// WRESL (resolution, Angstrom FWHM).
    pub wresl: Vec<f64>,
    /// Cards of the HDU (exposures: EXPOSURE, MJD, TAI-BEG, TAI-END, EXPTIME, AIRMASS, HELIO_RV,
    /// V_RAD).
    pub cards: Vec<(String, Card)>,
}

/// A spec-full file of SDSS-V.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BossSpecV6 {
    /// Field id.
    pub field: i64,
    /// MJD of the coadd.
    pub mjd: i64,
    /// CATALOGID.
    pub catalogid: i64,
    /// Redshift (SPALL Z).
    pub z: f64,
    /// The coadd (HDU1).
    pub coadd: BossTable,
    /// The exposures, written as `MJD_EXP_{mjd}-{nn}` after ZLINE; empty = a spec-lite file.
    pub exposures: Vec<(i64, BossTable)>,
}

impl BossSpecV6 {
    /// `spec-{field:06d}-{mjd}-{catalogid}.fits`.
    #[must_use]
    pub fn file_name(&self) -> String {
        format!(
            "spec-{:06}-{}-{}.fits",
            self.field, self.mjd, self.catalogid
        )
    }
}

fn boss_table(f: &mut FitsFile, name: &str, t: &BossTable) -> R<()> {
    let n = t.loglam.len();
    for (what, len) in [
        ("FLUX", t.flux.len()),
        ("IVAR", t.ivar.len()),
        ("AND_MASK", t.and_mask.len()),
        ("OR_MASK", t.or_mask.len()),
        ("WDISP", t.wdisp.len()),
        ("SKY", t.sky.len()),
        ("WRESL", t.wresl.len()),
    ] {
        if len != n {
            return Err(format!("{name}: column {what} has {len} rows, LOGLAM {n}"));
        }
    }
    let mut cols = vec![
        num_col("FLUX", ColumnDataType::Float)?,
        num_col("LOGLAM", ColumnDataType::Float)?,
        num_col("IVAR", ColumnDataType::Float)?,
        num_col("AND_MASK", ColumnDataType::Int)?,
        num_col("OR_MASK", ColumnDataType::Int)?,
        num_col("WDISP", ColumnDataType::Float)?,
        num_col("SKY", ColumnDataType::Float)?,
    ];
    if t.model.is_some() {
        cols.push(num_col("MODEL", ColumnDataType::Float)?);
    }
    cols.push(num_col("WRESL", ColumnDataType::Float)?);
    let h = f.create_table(name, &cols).map_err(fe)?;
    let f32v = |v: &[f64]| v.iter().map(|x| *x as f32).collect::<Vec<f32>>();
    h.write_col(f, "FLUX", &f32v(&t.flux)).map_err(fe)?;
    h.write_col(f, "LOGLAM", &f32v(&t.loglam)).map_err(fe)?;
    h.write_col(f, "IVAR", &f32v(&t.ivar)).map_err(fe)?;
    h.write_col(f, "AND_MASK", &t.and_mask).map_err(fe)?;
    h.write_col(f, "OR_MASK", &t.or_mask).map_err(fe)?;
    h.write_col(f, "WDISP", &f32v(&t.wdisp)).map_err(fe)?;
    h.write_col(f, "SKY", &f32v(&t.sky)).map_err(fe)?;
    if let Some(m) = &t.model {
        if m.len() != n {
            return Err(format!(
                "{name}: column MODEL has {} rows, LOGLAM {n}",
                m.len()
            ));
        }
        h.write_col(f, "MODEL", &f32v(m)).map_err(fe)?;
    }
    h.write_col(f, "WRESL", &f32v(&t.wresl)).map_err(fe)?;
    let cards: Vec<(&str, Card)> = t
        .cards
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    put(f, &h, &cards)
}

/// Write a BOSS spec file in the SDSS-V layout: HDU1 COADD, 2 SPALL, 3 ZALL, 4 ZLINE, then one
/// `MJD_EXP_{mjd}-{nn}` table per exposure with the COADD's columns but MODEL (none for
/// spec-lite).
pub fn write_boss_spec_v6(path: &Path, s: &BossSpecV6) -> Result<(), SaveError> {
    write_file(path, |f| {
        let prim = f.primary_hdu().map_err(fe)?;
        put(
            f,
            &prim,
            &[
                ("TELESCOP", Card::S("apo25m".into())),
                ("FIELD", Card::I(s.field)),
                ("MJD", Card::I(s.mjd)),
                ("CATID", Card::I(s.catalogid)),
                ("RUN2D", Card::S("v6_1_3".into())),
                ("NEXP", Card::I(s.exposures.len() as i64)),
            ],
        )?;
        boss_table(f, "COADD", &s.coadd)?;
        for name in ["SPALL", "ZALL"] {
            let h = f
                .create_table(
                    name,
                    &[
                        num_col("FIELD", ColumnDataType::Int)?,
                        num_col("MJD", ColumnDataType::Int)?,
                        num_col("CATALOGID", ColumnDataType::LongLong)?,
                        num_col("Z", ColumnDataType::Double)?,
                    ],
                )
                .map_err(fe)?;
            h.write_col(f, "FIELD", &[s.field as i32]).map_err(fe)?;
            h.write_col(f, "MJD", &[s.mjd as i32]).map_err(fe)?;
            h.write_col(f, "CATALOGID", &[s.catalogid]).map_err(fe)?;
            h.write_col(f, "Z", &[s.z]).map_err(fe)?;
        }
        let h = f
            .create_table(
                "ZLINE",
                &[
                    num_col("LINEWAVE", ColumnDataType::Double)?,
                    num_col("LINEZ", ColumnDataType::Double)?,
                ],
            )
            .map_err(fe)?;
        h.write_col(f, "LINEWAVE", &[6564.61f64, 4862.68])
            .map_err(fe)?;
        h.write_col(f, "LINEZ", &[s.z, s.z]).map_err(fe)?;
        for (k, (mjd, t)) in s.exposures.iter().enumerate() {
            boss_table(f, &format!("MJD_EXP_{mjd}-{:02}", k + 1), t)?;
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// mwmVisit (astra)

/// One row (visit) of an mwmVisit HDU.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MwmRow {
    /// flux on the HDU's grid.
    pub flux: Vec<f32>,
    /// ivar.
    pub ivar: Vec<f32>,
    /// pixel_flags.
    pub pixel_flags: Vec<i64>,
    /// in_stack: the visit went into the star's stack (rest frame); else resampled with v = 0.
    pub in_stack: bool,
    /// v_rad (barycentric, km/s).
    pub v_rad: f64,
    /// v_rel (topocentric, km/s).
    pub v_rel: f64,
    /// e_v_rel.
    pub e_v_rel: f64,
    /// bc (km/s).
    pub bc: f64,
    /// snr.
    pub snr: f64,
    /// mjd.
    pub mjd: i64,
    /// jd.
    pub jd: f64,
    /// telescope ("apo25m", "lco25m").
    pub telescope: String,
    /// release ("dr19", "dr17").
    pub release: String,
}

/// One HDU of an mwmVisit file: EXTNAME ("BOSS/APO", "APOGEE/LCO"...), grid cards and rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MwmHdu {
    /// EXTNAME.
    pub name: String,
    /// CRVAL (log10 Angstrom of pixel 0).
    pub crval: f64,
    /// CDELT (log10 step).
    pub cdelt: f64,
    /// Number of pixels (NPIXELS card).
    pub npix: usize,
    /// The visits (may be empty).
    pub rows: Vec<MwmRow>,
}

/// Write an mwmVisit file: HDU0 source information (SDSS_ID, CATALOGID), HDU1 BOSS/APO,
/// 2 BOSS/LCO, 3 APOGEE/APO, 4 APOGEE/LCO binary tables with the grid as CRVAL/CDELT/CTYPE/
/// CRPIX/DC-FLAG/NPIXELS cards and one row per visit. Empty HDUs are written with no rows.
pub fn write_mwm_visit(path: &Path, sdss_id: i64, hdus: &[MwmHdu; 4]) -> Result<(), SaveError> {
    write_file(path, |f| {
        let prim = f.primary_hdu().map_err(fe)?;
        put(
            f,
            &prim,
            &[
                ("SDSS_ID", Card::I(sdss_id)),
                ("V_ASTRA", Card::S("0.6.0".into())),
            ],
        )?;
        for h in hdus {
            let n = h.npix.max(1);
            for (i, r) in h.rows.iter().enumerate() {
                if r.flux.len() != n || r.ivar.len() != n || r.pixel_flags.len() != n {
                    return Err(format!("{} row {i}: arrays do not have {n} pixels", h.name));
                }
            }
            let tel: Vec<String> = h.rows.iter().map(|r| r.telescope.clone()).collect();
            let rel: Vec<String> = h.rows.iter().map(|r| r.release.clone()).collect();
            let cols = vec![
                str_col("release", &rel)?,
                str_col("telescope", &tel)?,
                num_col("mjd", ColumnDataType::Int)?,
                num_col("jd", ColumnDataType::Double)?,
                // astra writes a logical column; fitsio cannot write one, so 0/1 integers here
                // (readers accept both).
                num_col("in_stack", ColumnDataType::Short)?,
                num_col("v_rad", ColumnDataType::Double)?,
                num_col("v_rel", ColumnDataType::Double)?,
                num_col("e_v_rel", ColumnDataType::Double)?,
                num_col("bc", ColumnDataType::Double)?,
                num_col("snr", ColumnDataType::Double)?,
                vec_col("flux", ColumnDataType::Float, n)?,
                vec_col("ivar", ColumnDataType::Float, n)?,
                vec_col("pixel_flags", ColumnDataType::LongLong, n)?,
            ];
            let t = f.create_table(h.name.clone(), &cols).map_err(fe)?;
            put(
                f,
                &t,
                &[
                    ("CRVAL", Card::F(h.crval)),
                    ("CDELT", Card::F(h.cdelt)),
                    ("CTYPE", Card::S("LOG-LINEAR".into())),
                    ("CUNIT", Card::S("Angstrom (Vacuum)".into())),
                    ("CRPIX", Card::I(1)),
                    ("DC-FLAG", Card::I(1)),
                    ("NPIXELS", Card::I(h.npix as i64)),
                ],
            )?;
            if h.rows.is_empty() {
                continue;
            }
            t.write_col(f, "release", &rel).map_err(fe)?;
            t.write_col(f, "telescope", &tel).map_err(fe)?;
            let col = |g: &dyn Fn(&MwmRow) -> f64| h.rows.iter().map(g).collect::<Vec<f64>>();
            let mjd: Vec<i32> = h.rows.iter().map(|r| r.mjd as i32).collect();
            t.write_col(f, "mjd", &mjd).map_err(fe)?;
            t.write_col(f, "jd", &col(&|r| r.jd)).map_err(fe)?;
            let st: Vec<i16> = h.rows.iter().map(|r| i16::from(r.in_stack)).collect();
            t.write_col(f, "in_stack", &st).map_err(fe)?;
            t.write_col(f, "v_rad", &col(&|r| r.v_rad)).map_err(fe)?;
            t.write_col(f, "v_rel", &col(&|r| r.v_rel)).map_err(fe)?;
            t.write_col(f, "e_v_rel", &col(&|r| r.e_v_rel))
                .map_err(fe)?;
            t.write_col(f, "bc", &col(&|r| r.bc)).map_err(fe)?;
            t.write_col(f, "snr", &col(&|r| r.snr)).map_err(fe)?;
            let flux: Vec<f32> = h.rows.iter().flat_map(|r| r.flux.iter().copied()).collect();
            t.write_col(f, "flux", &flux).map_err(fe)?;
            let ivar: Vec<f32> = h.rows.iter().flat_map(|r| r.ivar.iter().copied()).collect();
            t.write_col(f, "ivar", &ivar).map_err(fe)?;
            let pf: Vec<i64> = h
                .rows
                .iter()
                .flat_map(|r| r.pixel_flags.iter().copied())
                .collect();
            t.write_col(f, "pixel_flags", &pf).map_err(fe)?;
        }
        Ok(())
    })
}

/// The SDSS-V spec-full layout of an SDSS-III/IV spec file: its COADD with upper-case columns,
/// and every exposure (blue and red cameras) merged onto the coadd grid by linear interpolation
/// (inverse-variance weighted where the cameras overlap; variances propagated, covariance
/// ignored), as idlspec2d v6 writes them, with the per-exposure cards. `field`, `mjd` and
/// `catalogid` name the result.
pub fn spec_v6_from_spec(
    spec: &Path,
    field: i64,
    mjd: i64,
    catalogid: i64,
) -> Result<BossSpecV6, crate::io::error::LoadError> {
    let d = crate::io::readers::boss::read(spec)?;
    let Some(coadd) = &d.pipeline_coadd else {
        return Err(crate::io::error::LoadError::missing(spec, "HDU 1 (COADD)"));
    };
    let ln10 = std::f64::consts::LN_10;
    let n = coadd.ln_wave.len();
    let loglam: Vec<f64> = coadd.ln_wave.iter().map(|x| x / ln10).collect();
    let table = |flux: Vec<f64>, ivar: Vec<f64>, model: Option<Vec<f64>>, cards| BossTable {
        loglam: loglam.clone(),
        flux,
        ivar,
        and_mask: vec![0; n],
        or_mask: vec![0; n],
        wdisp: vec![1.0; n],
        sky: vec![0.0; n],
        model,
        wresl: coadd.ln_wave.iter().map(|x| x.exp() / 2000.0).collect(),
        cards,
    };
    let ivar_c = if coadd.ivar.len() == n {
        coadd.ivar.clone()
    } else {
        vec![1.0; n]
    };
    let coadd_t = table(
        coadd.flux.clone(),
        ivar_c,
        Some(coadd.flux.clone()),
        Vec::new(),
    );
    let mut exposures = Vec::new();
    for v in &d.visits {
        let (mut sw, mut swf) = (vec![0.0; n], vec![0.0; n]);
        for seg in v.segments() {
            let x = &v.ln_wave()[seg.clone()];
            let fl = &v.flux()[seg.clone()];
            let iv = &v.ivar()[seg.clone()];
            let up = x.len() > 1 && x[1] > x[0];
            for (j, &xq) in coadd.ln_wave.iter().enumerate() {
                let key = |t: f64| if up { t } else { -t };
                let i = x.partition_point(|&t| key(t) < key(xq));
                if i == 0 || i >= x.len() {
                    continue;
                }
                let t = (xq - x[i - 1]) / (x[i] - x[i - 1]);
                if iv[i - 1] <= 0.0 || iv[i] <= 0.0 {
                    continue;
                }
                let f = fl[i - 1] * (1.0 - t) + fl[i] * t;
                let var = (1.0 - t).powi(2) / iv[i - 1] + t * t / iv[i];
                sw[j] += 1.0 / var;
                swf[j] += f / var;
            }
        }
        let flux: Vec<f64> = sw
            .iter()
            .zip(&swf)
            .map(|(w, wf)| if *w > 0.0 { wf / w } else { 0.0 })
            .collect();
        let card = |k: &str| {
            v.meta
                .header
                .iter()
                .find(|(kk, _)| kk == k)
                .map(|x| x.1.clone())
        };
        let expo: i64 = card("EXPOSURE")
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(exposures.len() as i64 + 1);
        let exptime: f64 = card("EXPTIME")
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(900.0);
        let tai_mid = v.meta.jd.map_or(0.0, |jd| (jd - 2_400_000.5) * 86_400.0);
        let helio: f64 = card("HELIO_RV")
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0.0);
        let cards = vec![
            ("EXPOSURE".to_owned(), Card::I(expo)),
            ("MJD".to_owned(), Card::I(mjd)),
            ("TAI-BEG".to_owned(), Card::F(tai_mid - exptime / 2.0)),
            ("TAI-END".to_owned(), Card::F(tai_mid + exptime / 2.0)),
            ("EXPTIME".to_owned(), Card::F(exptime)),
            ("AIRMASS".to_owned(), Card::F(1.1)),
            ("HELIO_RV".to_owned(), Card::F(helio)),
            ("V_RAD".to_owned(), Card::F(0.0)),
        ];
        exposures.push((mjd, table(flux, sw, None, cards)));
    }
    Ok(BossSpecV6 {
        field,
        mjd,
        catalogid,
        z: 0.0,
        coadd: coadd_t,
        exposures,
    })
}
