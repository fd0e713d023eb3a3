//! apStar-like FITS export (layout after the SDSS apStar data model,
//! https://data.sdss.org/datamodel/files/APOGEE_REDUX/APRED_VERS/stars/TELESCOPE/FIELD/apStar.html,
//! and sdss/apogee_drp `python/apogee_drp/utils/apspec.py`), readable by astropy without help.
//!
//! | HDU | EXTNAME | content |
//! |---|---|---|
//! | 0 | — | header: NVISITS, OBJID, per visit (n = 1..99) SFILEn, JDn, BCn, VRADn, VHELIOn, SNRVISn, VUSEDn, VSRCn; the settings as JSON in FVSET000.. cards (concatenate the string values), FVVERS (tool version) |
//! | 1 | FLUX | f64 [rows, M*]: row 0 forward model y*, row 1 standard practice, rows 2.. one per visit: the forward model as that visit would see it, S_i(x* + dx_i) f(x*), on the rest-frame output grid (NaN outside the visit's pixels; all NaN without a forward model) |
//! | 2 | ERROR | same shape: sqrt(diag C*) for rows 0-1, NaN for the visit rows |
//! | 3 | MASK | int64 [rows, M*]: propagated flags for rows 0-1, 0 for the visit rows; bit [`POORLY_CONSTRAINED_BIT`] (header PCBIT) set where the data do not constrain the pixel (flux and error NaN like no-data pixels) |
//! | 4 | COVAR_FORWARD | f64 [K+1, M*]: row k = C*[l, l+k] of the forward model (NaN past the end or when not computed) |
//! | 5 | COVAR_STANDARD | the same for standard practice |
//! | 6 | VISITS | table: FILE, NAME, JD, V_USED_KMS, V_SOURCE, WEIGHT, INCLUDED, N_USED, CHI2_NU_FORWARD, CHI2_NU_LOO (chi^2/nu against the forward model fitted to the other visits), CHI2_NU_STANDARD, SNR, BC_KMS, VREL_KMS (+ V_FIT_KMS, V_FIT_ERR_KMS when shift fitting ran, relative to the header cards VZERO +- VZEROERR, named by VZEROREF; + V_DATA_KMS, V_DATA_ERR_KMS, V_PEAK_RATIO, V_PEAK_WIDTH_KMS, V_EXTERNAL_KMS, V_REPLACED when external velocities were checked against the data) |
//! | 7 | WAVELENGTH | only for grids that are not log-linear: f64 [M*] Angstrom |
//! | then | `FLUX_<N>`, `ERROR_<N>`, `MASK_<N>`, `COVAR_<N>` | per method beyond the two built-in ones ([`crate::combine::Combined::others`], N = [`fits_name`] of its name): f64 [M*] flux, f64 [M*] sqrt(diag C*), int64 [M*] flags (PCBIT as in MASK), f64 [K+1, M*] band; cards METHOD (name), METHLBL (label), METHERR (why it failed: all NaN) |
//!
//! Such a method also adds VISITS columns `CHI2_NU_<N>` and, when it scores visits against a fit
//! to the others, `CHI2_NU_LOO_<N>`; rows 0-1, HDUs 1-7 and the other columns are the same with or
//! without it.
//!
//! HDU 0-3 carry the apStar wavelength keys CRVAL1 = log10 of the first pixel, CDELT1, CRPIX1 = 1,
//! CTYPE1 = LOG-LINEAR, DC-FLAG = 1 when the grid is log-linear: lambda_i = 10^(CRVAL1 + CDELT1 i).
//! Flux is NaN in pixels without data (flag them with the no-data mask of the `.npz` export).

use std::path::{Path, PathBuf};

use fitsio::FitsFile;
use fitsio::hdu::FitsHdu;
use fitsio::images::ImageType;
use fitsio::tables::ColumnDataType;

use super::fits_hdu::{R, create, fe, image, key, num_col, str_col};
use crate::combine::{Combined, MethodOutcome, MethodResult};
use crate::io::error::SaveError;
use crate::model::{Dataset, VelocityKind, shift_from_velocity};

/// The largest plain JSON settings file read.
pub const SETTINGS_MAX_BYTES: u64 = 16 << 20;

/// The MASK bit (above every APOGEE_PIXMASK and SPPIXMASK bit) marking output pixels that the
/// data do not constrain (`MethodResult::poorly_constrained`).
pub const POORLY_CONSTRAINED_BIT: u32 = 40;

/// Characters of settings JSON per FVSETnnn card.
const JSON_CHUNK: usize = 60;

/// Write the result as an apStar-like FITS file (atomically; never over an input).
pub fn write_fits(
    path: &Path,
    data: &Dataset,
    c: &Combined,
    inputs: &[PathBuf],
) -> Result<(), SaveError> {
    crate::io::atomic::write_atomic(path, inputs, |tmp| {
        write_to(tmp, data, c).map_err(|e| SaveError::new(path, e))
    })
}

fn wcs(f: &mut FitsFile, h: &FitsHdu, c: &Combined) -> R<()> {
    if let Some((start, step)) = c.grid.log10_linear {
        key(
            f,
            h,
            "CRVAL1",
            (start, "log10 of the first wavelength (Angstrom)"),
        )?;
        key(f, h, "CDELT1", (step, "log10 wavelength step"))?;
        key(f, h, "CRPIX1", 1i64)?;
        key(f, h, "CTYPE1", "LOG-LINEAR".to_owned())?;
        key(f, h, "DC-FLAG", 1i64)?;
    }
    Ok(())
}

/// Read the settings a result file was made with: the FVSET cards of a FITS export, the
/// `settings_json` key of an `.npz` export, or a plain JSON file.
pub fn read_settings(
    path: &Path,
) -> Result<crate::settings::Settings, crate::io::error::LoadError> {
    use crate::io::error::LoadError;
    // The first block tells the kind; only a plain JSON file is read whole, and only up to
    // SETTINGS_MAX_BYTES.
    let head = crate::io::gz::head(path, 2880)?;
    let json: String = if head.starts_with(b"SIMPLE  =") {
        crate::io::fits::guard(path, || {
            let mut f = crate::io::fits::open(path)?;
            let prim = f
                .primary_hdu()
                .map_err(|e| LoadError::invalid(path, "HDU 0", e))?;
            let n = prim.read_key::<i64>(&mut f, "FVSETN").map_err(|_| {
                LoadError::missing(path, "header card FVSETN (not a frizzview export)")
            })?;
            let mut json = String::new();
            for k in 0..n.clamp(0, 1000) {
                let card = format!("FVSET{k:03}");
                let part: String = prim
                    .read_key(&mut f, &card)
                    .map_err(|_| LoadError::missing(path, format!("header card {card}")))?;
                json.push_str(&part);
            }
            Ok(json)
        })?
    } else if crate::io::npz::looks_like_npz(&head) {
        let npz = crate::io::npz::Npz::open(path)?;
        let a = npz.require("settings_json")?;
        let crate::io::npz::NpyData::UInt(bytes) = a.data else {
            return Err(LoadError::invalid(
                path,
                "key 'settings_json'",
                "is not bytes",
            ));
        };
        let bytes: Vec<u8> = bytes
            .iter()
            .map(|&b| u8::try_from(b).unwrap_or(b'?'))
            .collect();
        String::from_utf8(bytes)
            .map_err(|_| LoadError::invalid(path, "key 'settings_json'", "is not UTF-8"))?
    } else if crate::io::gz::is_gzip(&head) || crate::io::gz::file_is_gzip(path)? {
        return Err(LoadError::invalid(
            path,
            "the settings",
            "are gzip-compressed but not a FITS export (decompress the file first)",
        ));
    } else {
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| {
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(f, SETTINGS_MAX_BYTES + 1),
                    &mut bytes,
                )
            })
            .map_err(|e| LoadError::io(path, e))?;
        if bytes.len() as u64 > SETTINGS_MAX_BYTES {
            return Err(LoadError::invalid(
                path,
                "the settings",
                format!(
                    "the file is larger than {SETTINGS_MAX_BYTES} bytes, the limit for a settings \
                     JSON file (a frizzview settings file of 10 000 visits is about 1 MB)"
                ),
            ));
        }
        String::from_utf8(bytes)
            .map_err(|_| LoadError::invalid(path, "the settings", "is not UTF-8 JSON"))?
    };
    serde_json::from_str(&json).map_err(|e| LoadError::invalid(path, "the settings JSON", e))
}

/// Split `json` into card values of at most [`JSON_CHUNK`] characters that never end in a space
/// (FITS drops trailing spaces of string values).
fn json_chunks(json: &str) -> Vec<String> {
    let chars: Vec<char> = json.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let mut end = (i + JSON_CHUNK).min(chars.len());
        while end > i + 1 && chars[end - 1] == ' ' {
            end -= 1;
        }
        out.push(chars[i..end].iter().collect());
        i = end;
    }
    out
}

/// Linear interpolation of `y` at `x` over a monotonic `xs` (either direction); NaN outside.
fn interp(xs: &[f64], y: &[f64], x: f64) -> f64 {
    let n = xs.len();
    if n < 2 {
        return f64::NAN;
    }
    let up = xs[n - 1] > xs[0];
    let (lo, hi) = if up {
        (xs[0], xs[n - 1])
    } else {
        (xs[n - 1], xs[0])
    };
    if !(x >= lo && x <= hi) {
        return f64::NAN;
    }
    // Index of the first element past x in the sorted direction.
    let k = xs.partition_point(|&v| if up { v <= x } else { v >= x });
    let k = k.clamp(1, n - 1);
    let (x0, x1) = (xs[k - 1], xs[k]);
    let t = if x1 == x0 { 0.0 } else { (x - x0) / (x1 - x0) };
    y[k - 1] + t * (y[k] - y[k - 1])
}

/// The forward model as visit `i` sees it, on the output grid: S_i(x* + dx_i) f(x*).
fn visit_rows(data: &Dataset, c: &Combined) -> Vec<Vec<f64>> {
    let m = c.grid.len();
    let model = c.forward.as_ref().and_then(|r| r.model.clone());
    data.visits
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let Some(model) = &model else {
                return vec![f64::NAN; m];
            };
            let f = model.eval(&c.grid.ln_wave);
            let v_kms = c.visits.get(i).map_or(0.0, |u| u.v_kms);
            let dx = shift_from_velocity(v_kms);
            let use_s = c.settings.selection != crate::settings::SelectionMode::Ignore;
            (0..m)
                .map(|l| {
                    let x_obs = c.grid.ln_wave[l] + dx;
                    let mut s_val = f64::NAN;
                    for seg in v.segments() {
                        let xs = &v.ln_wave()[seg.clone()];
                        let s = match (use_s, v.selection()) {
                            (true, Some(sel)) => interp(xs, &sel[seg.clone()], x_obs),
                            _ => {
                                let ones = vec![1.0; xs.len()];
                                interp(xs, &ones, x_obs)
                            }
                        };
                        if s.is_finite() {
                            s_val = s;
                            break;
                        }
                    }
                    s_val * f[l]
                })
                .collect()
        })
        .collect()
}

fn write_to(tmp: &Path, data: &Dataset, c: &Combined) -> R<()> {
    let m = c.grid.len();
    let nv = data.visits.len();
    let rows = 2 + nv;
    let (mut f, prim) = create(tmp, "TELESCOP")?;
    key(
        &mut f,
        &prim,
        "OBJID",
        data.name.chars().take(60).collect::<String>(),
    )?;
    key(&mut f, &prim, "NVISITS", (nv as i64, "number of visits"))?;
    key(
        &mut f,
        &prim,
        "NINCL",
        (
            c.visits.iter().filter(|v| v.included).count() as i64,
            "visits included in the combination",
        ),
    )?;
    key(&mut f, &prim, "ROW0", "forward model (Frizzle)".to_owned())?;
    key(&mut f, &prim, "ROW1", "standard practice".to_owned())?;
    key(
        &mut f,
        &prim,
        "ROWS2",
        "forward model as each visit sees it".to_owned(),
    )?;
    wcs(&mut f, &prim, c)?;
    for (i, v) in data.visits.iter().enumerate().take(99) {
        let n = i + 1;
        let file = v
            .meta
            .source
            .as_ref()
            .and_then(|p| p.file_name())
            .map_or_else(|| v.meta.name.clone(), |s| s.to_string_lossy().into_owned());
        key(
            &mut f,
            &prim,
            &format!("SFILE{n}"),
            file.chars().take(60).collect::<String>(),
        )?;
        if let Some(jd) = v.meta.jd {
            key(&mut f, &prim, &format!("JD{n}"), jd)?;
        }
        for (kname, kind) in [
            ("BC", VelocityKind::Bc),
            ("VRAD", VelocityKind::Vrel),
            ("VHELIO", VelocityKind::Vhelio),
        ] {
            if let Some(x) = v.meta.velocity(kind) {
                key(&mut f, &prim, &format!("{kname}{n}"), x)?;
            }
        }
        if let Some(s) = v.meta.snr {
            key(&mut f, &prim, &format!("SNRVIS{n}"), s)?;
        }
        if let Some(u) = c.visits.get(i) {
            key(
                &mut f,
                &prim,
                &format!("VUSED{n}"),
                (u.v_kms, "km/s shift used"),
            )?;
            key(&mut f, &prim, &format!("VSRC{n}"), u.v_source.clone())?;
        }
    }
    let json = serde_json::to_string(&c.settings).map_err(fe)?;
    let chunks = json_chunks(&json);
    if chunks.len() > 1000 {
        return Err("the settings are too long for FVSET cards".into());
    }
    for (k, chunk) in chunks.iter().enumerate() {
        key(&mut f, &prim, &format!("FVSET{k:03}"), chunk.clone())?;
    }
    key(
        &mut f,
        &prim,
        "FVSETN",
        (chunks.len() as i64, "FVSET cards: settings JSON"),
    )?;

    let methods: [Option<&MethodResult>; 2] = [c.forward.as_ref(), c.standard.as_ref()];
    let mut flux = vec![f64::NAN; rows * m];
    let mut err = vec![f64::NAN; rows * m];
    let mut mask = vec![0i64; rows * m];
    for (r, res) in methods.iter().enumerate() {
        if let Some(res) = res {
            let (fl, er, ma) = method_rows(res, m);
            flux[r * m..(r + 1) * m].copy_from_slice(&fl);
            err[r * m..(r + 1) * m].copy_from_slice(&er);
            mask[r * m..(r + 1) * m].copy_from_slice(&ma);
        }
    }
    for (i, row) in visit_rows(data, c).into_iter().enumerate() {
        flux[(2 + i) * m..(3 + i) * m].copy_from_slice(&row);
    }
    let dims = [rows, m];
    flux_hdus(
        &mut f,
        c,
        ["FLUX", "ERROR", "MASK"],
        &dims,
        (&flux, &err, &mask),
    )?;

    for (name, res) in [
        ("COVAR_FORWARD", methods[0]),
        ("COVAR_STANDARD", methods[1]),
    ] {
        covar_hdu(&mut f, c, name, res)?;
    }
    write_visit_table(&mut f, data, c)?;
    if c.grid.log10_linear.is_none() {
        let h = image(
            &mut f,
            "WAVELENGTH",
            ImageType::Double,
            &[m],
            &c.grid.wavelength_aa(),
        )?;
        key(&mut f, &h, "BUNIT", "Angstrom".to_owned())?;
    }
    for o in &c.others {
        other_method_hdus(&mut f, c, o)?;
    }
    Ok(())
}

/// A method's flux, error and mask rows on the output grid (NaN flux and error where it has no
/// value; the poorly-constrained bit in the mask).
fn method_rows(res: &MethodResult, m: usize) -> (Vec<f64>, Vec<f64>, Vec<i64>) {
    let flux = (0..m)
        .map(|l| res.flux.get(l).copied().unwrap_or(f64::NAN))
        .collect();
    let err = (0..m)
        .map(|l| res.var.get(l).map_or(f64::NAN, |v| v.sqrt()))
        .collect();
    let mask = (0..m)
        .map(|l| {
            let mut x = res.flags.get(l).copied().unwrap_or(0) as i64;
            if res.poorly_constrained.get(l).copied().unwrap_or(false) {
                x |= 1i64 << POORLY_CONSTRAINED_BIT;
            }
            x
        })
        .collect();
    (flux, err, mask)
}

/// The flux, error (f64) and mask (int64) HDUs named `names`, of shape `dims`, with the grid's
/// wavelength cards.
fn flux_hdus(
    f: &mut FitsFile,
    c: &Combined,
    names: [&str; 3],
    dims: &[usize],
    (flux, err, mask): (&[f64], &[f64], &[i64]),
) -> R<Vec<FitsHdu>> {
    let mut out = Vec::new();
    for (name, data) in [(names[0], flux), (names[1], err)] {
        let h = image(f, name, ImageType::Double, dims, data)?;
        wcs(f, &h, c)?;
        key(f, &h, "BUNIT", "as the input flux".to_owned())?;
        out.push(h);
    }
    let h = image(f, names[2], ImageType::LongLong, dims, mask)?;
    wcs(f, &h, c)?;
    key(
        f,
        &h,
        "BADBITS",
        (c.settings.bad_bits as i64, "mask bits treated as bad"),
    )?;
    key(
        f,
        &h,
        "PCBIT",
        (
            i64::from(POORLY_CONSTRAINED_BIT),
            "bit: pixel not constrained by the data (NaN)",
        ),
    )?;
    out.push(h);
    Ok(out)
}

/// A method's covariance band as an image HDU `name`: [K+1, M*], row k = C*[l, l+k] (NaN past
/// the end, or everywhere without a result).
fn covar_hdu(f: &mut FitsFile, c: &Combined, name: &str, res: Option<&MethodResult>) -> R<FitsHdu> {
    let m = c.grid.len();
    let k = c.settings.band_lags + 1;
    let mut band = vec![f64::NAN; k * m];
    if let Some(res) = res {
        for (lag, row) in res.band.iter().enumerate().take(k) {
            for (l, &x) in row.iter().enumerate().take(m) {
                band[lag * m + l] = x;
            }
        }
    }
    let h = image(f, name, ImageType::Double, &[k, m], &band)?;
    key(
        f,
        &h,
        "COMMENT1",
        "row k = C[l, l+k], NaN past the end".to_owned(),
    )?;
    wcs(f, &h, c)?;
    Ok(h)
}

/// The FITS name of a method: its name in capitals, other characters as `_` (the forward model's
/// is FORWARD, as in COVAR_FORWARD).
#[must_use]
pub fn fits_name(method: &str) -> String {
    method
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() {
                ch.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// A method beyond the two built-in ones: `FLUX_<N>`, `ERROR_<N>`, `MASK_<N>` ([M*]) and `COVAR_<N>`,
/// each with the header cards METHOD (its name) and METHLBL (its label), and METHERR when it
/// failed (all NaN then).
fn other_method_hdus(f: &mut FitsFile, c: &Combined, o: &MethodOutcome) -> R<()> {
    let m = c.grid.len();
    let n = fits_name(o.info.name);
    let (flux, err, mask) = match &o.result {
        Some(r) => method_rows(r, m),
        None => (vec![f64::NAN; m], vec![f64::NAN; m], vec![0; m]),
    };
    let names = [
        format!("FLUX_{n}"),
        format!("ERROR_{n}"),
        format!("MASK_{n}"),
    ];
    let mut hdus = flux_hdus(
        f,
        c,
        [&names[0], &names[1], &names[2]],
        &[m],
        (&flux, &err, &mask),
    )?;
    hdus.push(covar_hdu(f, c, &format!("COVAR_{n}"), o.result.as_ref())?);
    for h in &hdus {
        key(f, h, "METHOD", o.info.name.to_owned())?;
        key(f, h, "METHLBL", ascii68(o.info.label))?;
        if let Some(e) = &o.error {
            key(f, h, "METHERR", ascii68(&e.to_string()))?;
        }
    }
    Ok(())
}

/// The first 68 ASCII characters of `s` (one card's string value).
fn ascii68(s: &str) -> String {
    s.chars()
        .filter(|ch| ch.is_ascii() && !ch.is_ascii_control())
        .take(68)
        .collect()
}

fn write_visit_table(f: &mut FitsFile, data: &Dataset, c: &Combined) -> R<()> {
    let nv = data.visits.len();
    let file: Vec<String> = data
        .visits
        .iter()
        .map(|v| {
            v.meta
                .source
                .as_ref()
                .map_or_else(String::new, |p| p.display().to_string())
        })
        .collect();
    let name: Vec<String> = data.visits.iter().map(|v| v.meta.name.clone()).collect();
    let src: Vec<String> = c.visits.iter().map(|u| u.v_source.clone()).collect();
    let fitted = c.forward.as_ref().and_then(|r| r.fitted_velocity.clone());
    let mut cols = vec![
        str_col("FILE", &file),
        str_col("NAME", &name),
        num_col("JD", ColumnDataType::Double),
        num_col("V_USED_KMS", ColumnDataType::Double),
        str_col("V_SOURCE", &src),
        num_col("WEIGHT", ColumnDataType::Double),
        num_col("INCLUDED", ColumnDataType::Int),
        num_col("N_USED", ColumnDataType::Int),
        num_col("CHI2_NU_FORWARD", ColumnDataType::Double),
        num_col("CHI2_NU_LOO", ColumnDataType::Double),
        num_col("CHI2_NU_STANDARD", ColumnDataType::Double),
        num_col("SNR", ColumnDataType::Double),
        num_col("BC_KMS", ColumnDataType::Double),
        num_col("VREL_KMS", ColumnDataType::Double),
    ];
    if fitted.is_some() {
        cols.push(num_col("V_FIT_KMS", ColumnDataType::Double));
        cols.push(num_col("V_FIT_ERR_KMS", ColumnDataType::Double));
    }
    if c.velocity.is_some() {
        for n in [
            "V_DATA_KMS",
            "V_DATA_ERR_KMS",
            "V_PEAK_RATIO",
            "V_PEAK_WIDTH_KMS",
            "V_EXTERNAL_KMS",
        ] {
            cols.push(num_col(n, ColumnDataType::Double));
        }
        cols.push(num_col("V_REPLACED", ColumnDataType::Int));
    }
    // Each further method: its chi^2/nu per visit, and its leave-one-out scores when it has any.
    let others: Vec<(String, Option<&MethodResult>, bool)> = c
        .others
        .iter()
        .map(|o| {
            let r = o.result.as_ref();
            let loo = r.is_some_and(|r| r.visits.iter().any(|v| v.loo_chi2_nu.is_finite()));
            (fits_name(o.info.name), r, loo)
        })
        .collect();
    for (n, _, loo) in &others {
        cols.push(num_col(&format!("CHI2_NU_{n}"), ColumnDataType::Double));
        if *loo {
            cols.push(num_col(&format!("CHI2_NU_LOO_{n}"), ColumnDataType::Double));
        }
    }
    let cols = cols
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(fe)?;
    let h = f.create_table("VISITS", &cols).map_err(fe)?;
    let used = |g: &dyn Fn(&crate::combine::VisitUsed) -> f64| -> Vec<f64> {
        (0..nv)
            .map(|i| c.visits.get(i).map_or(f64::NAN, g))
            .collect()
    };
    let chi = |r: Option<&MethodResult>| -> Vec<f64> {
        (0..nv)
            .map(|i| {
                r.and_then(|r| r.visits.get(i))
                    .map_or(f64::NAN, |v| v.chi2_nu)
            })
            .collect()
    };
    let meta_f = |g: &dyn Fn(&crate::model::VisitMeta) -> Option<f64>| -> Vec<f64> {
        data.visits
            .iter()
            .map(|v| g(&v.meta).unwrap_or(f64::NAN))
            .collect()
    };
    h.write_col(f, "FILE", &file).map_err(fe)?;
    h.write_col(f, "NAME", &name).map_err(fe)?;
    h.write_col(f, "JD", &meta_f(&|m| m.jd)).map_err(fe)?;
    h.write_col(f, "V_USED_KMS", &used(&|u| u.v_kms))
        .map_err(fe)?;
    let mut src = src;
    src.resize(nv, String::new());
    h.write_col(f, "V_SOURCE", &src).map_err(fe)?;
    h.write_col(f, "WEIGHT", &used(&|u| u.weight)).map_err(fe)?;
    let inc: Vec<i32> = (0..nv)
        .map(|i| i32::from(c.visits.get(i).is_some_and(|u| u.included)))
        .collect();
    h.write_col(f, "INCLUDED", &inc).map_err(fe)?;
    let n_used: Vec<i32> = (0..nv)
        .map(|i| {
            c.visits
                .get(i)
                .map_or(0, |u| i32::try_from(u.n_used).unwrap_or(i32::MAX))
        })
        .collect();
    h.write_col(f, "N_USED", &n_used).map_err(fe)?;
    h.write_col(f, "CHI2_NU_FORWARD", &chi(c.forward.as_ref()))
        .map_err(fe)?;
    let loo: Vec<f64> = (0..nv)
        .map(|i| {
            c.forward
                .as_ref()
                .and_then(|r| r.visits.get(i))
                .map_or(f64::NAN, |v| v.loo_chi2_nu)
        })
        .collect();
    h.write_col(f, "CHI2_NU_LOO", &loo).map_err(fe)?;
    h.write_col(f, "CHI2_NU_STANDARD", &chi(c.standard.as_ref()))
        .map_err(fe)?;
    h.write_col(f, "SNR", &meta_f(&|m| m.snr)).map_err(fe)?;
    h.write_col(f, "BC_KMS", &meta_f(&|m| m.velocity(VelocityKind::Bc)))
        .map_err(fe)?;
    h.write_col(f, "VREL_KMS", &meta_f(&|m| m.velocity(VelocityKind::Vrel)))
        .map_err(fe)?;
    if let Some(vc) = &c.velocity {
        let col = |g: &dyn Fn(&crate::velocity::VisitVelocity) -> f64| -> Vec<f64> {
            (0..nv)
                .map(|i| vc.visits.get(i).map_or(f64::NAN, g))
                .collect()
        };
        h.write_col(f, "V_DATA_KMS", &col(&|x| x.data_kms))
            .map_err(fe)?;
        h.write_col(f, "V_DATA_ERR_KMS", &col(&|x| x.err_kms))
            .map_err(fe)?;
        h.write_col(f, "V_PEAK_RATIO", &col(&|x| x.quality.peak_ratio))
            .map_err(fe)?;
        h.write_col(f, "V_PEAK_WIDTH_KMS", &col(&|x| x.quality.width_kms))
            .map_err(fe)?;
        h.write_col(
            f,
            "V_EXTERNAL_KMS",
            &col(&|x| x.external_kms.unwrap_or(f64::NAN)),
        )
        .map_err(fe)?;
        let rep: Vec<i32> = (0..nv)
            .map(|i| i32::from(vc.visits.get(i).is_some_and(|x| x.replaced)))
            .collect();
        h.write_col(f, "V_REPLACED", &rep).map_err(fe)?;
    }
    for (n, r, loo) in &others {
        h.write_col(f, format!("CHI2_NU_{n}"), &chi(*r))
            .map_err(fe)?;
        if *loo {
            let l: Vec<f64> = (0..nv)
                .map(|i| {
                    r.and_then(|r| r.visits.get(i))
                        .map_or(f64::NAN, |v| v.loo_chi2_nu)
                })
                .collect();
            h.write_col(f, format!("CHI2_NU_LOO_{n}"), &l).map_err(fe)?;
        }
    }
    if let Some(fv) = fitted {
        let v: Vec<f64> = (0..nv)
            .map(|i| fv.get(i).map_or(f64::NAN, |x| x.0))
            .collect();
        let s: Vec<f64> = (0..nv)
            .map(|i| fv.get(i).map_or(f64::NAN, |x| x.1))
            .collect();
        h.write_col(f, "V_FIT_KMS", &v).map_err(fe)?;
        h.write_col(f, "V_FIT_ERR_KMS", &s).map_err(fe)?;
    }
    if let Some(z) = c
        .forward
        .as_ref()
        .and_then(|r| r.velocity_zero_point.as_ref())
    {
        // The fitted velocities are relative: their errors exclude the zero point's.
        h.write_key(
            f,
            "VFITREL",
            (
                1i64,
                "1: V_FIT_KMS relative to VZERO, errors exclude VZEROERR",
            ),
        )
        .map_err(fe)?;
        h.write_key(f, "VZERO", (z.v_kms, "zero point of V_FIT_KMS (km/s)"))
            .map_err(fe)?;
        h.write_key(f, "VZEROERR", (z.err_kms, "1-sigma error of VZERO (km/s)"))
            .map_err(fe)?;
        let name: String = z.name.chars().filter(char::is_ascii).take(68).collect();
        h.write_key(f, "VZEROREF", name.as_str()).map_err(fe)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_chunks_rejoin_and_never_end_in_a_space() {
        let json = format!("{{\"name\":\"{}\",\"x\":1}}", "a b  ".repeat(40));
        let chunks = json_chunks(&json);
        assert_eq!(chunks.concat(), json);
        assert!(
            chunks
                .iter()
                .all(|c| c.chars().count() <= JSON_CHUNK && !c.ends_with(' '))
        );
    }

    #[test]
    fn interp_handles_both_directions_and_outside() {
        assert_eq!(interp(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0], 2.5), 25.0);
        assert_eq!(interp(&[3.0, 2.0, 1.0], &[30.0, 20.0, 10.0], 1.5), 15.0);
        assert!(interp(&[1.0, 2.0], &[1.0, 2.0], 2.5).is_nan());
    }
}
