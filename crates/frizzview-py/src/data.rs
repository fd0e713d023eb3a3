//! Datasets and results between the core and Python: plain dicts of numpy arrays (picklable, so
//! they travel to process pools and Dask workers), metadata as JSON of the core's serde types.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use frizzview_core::combine::{Combined, MethodResult, Warning};
use frizzview_core::model::{Dataset, OutputGrid, Spectrum, Survey, Visit, VisitArrays, VisitMeta};
use frizzview_core::velocity::{RestFrame, VelocityStatus};
use ndarray::Array2;
use numpy::{PyArray1, PyArray2, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

fn arr<'py, T: numpy::Element>(py: Python<'py>, v: &[T]) -> Bound<'py, PyArray1<T>> {
    PyArray1::from_slice(py, v)
}

fn survey_name(s: Survey) -> &'static str {
    match s {
        Survey::Apogee => "apogee",
        Survey::Boss => "boss",
        Survey::Generic => "generic",
    }
}

fn spectrum_to_py<'py>(py: Python<'py>, s: &Spectrum) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("label", &s.label)?;
    d.set_item("ln_wave", arr(py, &s.ln_wave))?;
    d.set_item("flux", arr(py, &s.flux))?;
    d.set_item("ivar", arr(py, &s.ivar))?;
    Ok(d)
}

/// A dataset as a dict: `name`, `survey`, `visits` (dicts of arrays and `meta_json`),
/// `input_grid` (`ln_wave`, `log10_linear`), `truth`, `pipeline_coadd`.
pub fn dataset_to_py<'py>(py: Python<'py>, data: &Dataset) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", &data.name)?;
    d.set_item("survey", survey_name(data.survey))?;
    let visits = PyList::empty(py);
    for v in &data.visits {
        let x = PyDict::new(py);
        x.set_item("wavelength_aa", arr(py, v.wavelength_aa()))?;
        x.set_item("flux", arr(py, v.flux()))?;
        x.set_item("ivar", arr(py, v.ivar()))?;
        x.set_item("flags", arr(py, v.flags()))?;
        x.set_item("bad", arr(py, v.bad()))?;
        match v.selection() {
            Some(s) => x.set_item("selection", arr(py, s))?,
            None => x.set_item("selection", py.None())?,
        }
        x.set_item("flux_divided_by_selection", v.flux_divided_by_selection())?;
        let segs: Vec<(usize, usize)> = v.segments().iter().map(|r| (r.start, r.end)).collect();
        x.set_item("segments", segs)?;
        let meta = serde_json::to_string(&v.meta)
            .map_err(|e| PyValueError::new_err(format!("visit metadata: {e}")))?;
        x.set_item("meta_json", meta)?;
        visits.append(x)?;
    }
    d.set_item("visits", visits)?;
    d.set_item("warnings", data.load_warnings.clone())?;
    match &data.input_grid {
        Some(g) => {
            let x = PyDict::new(py);
            x.set_item("ln_wave", arr(py, &g.ln_wave))?;
            x.set_item("log10_linear", g.log10_linear)?;
            d.set_item("input_grid", x)?;
        }
        None => d.set_item("input_grid", py.None())?,
    }
    for (key, s) in [
        ("truth", &data.truth),
        ("pipeline_coadd", &data.pipeline_coadd),
    ] {
        match s {
            Some(s) => d.set_item(key, spectrum_to_py(py, s)?)?,
            None => d.set_item(key, py.None())?,
        }
    }
    Ok(d)
}

fn vec_f64(d: &Bound<'_, PyDict>, key: &str) -> PyResult<Vec<f64>> {
    let v = d
        .get_item(key)?
        .ok_or_else(|| PyValueError::new_err(format!("'{key}' is missing")))?;
    let a: PyReadonlyArray1<'_, f64> = v
        .extract()
        .map_err(|_| PyValueError::new_err(format!("'{key}' must be a 1-D float64 array")))?;
    Ok(a.as_array().to_vec())
}

fn opt_vec<'py, T: numpy::Element + Copy>(
    d: &Bound<'py, PyDict>,
    key: &str,
    what: &str,
) -> PyResult<Option<Vec<T>>> {
    match d.get_item(key)? {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => {
            let a: PyReadonlyArray1<'py, T> = v.extract().map_err(|_| {
                PyValueError::new_err(format!("'{key}' must be a 1-D {what} array"))
            })?;
            Ok(Some(a.as_array().to_vec()))
        }
    }
}

fn spectrum_from_py(v: Option<Bound<'_, PyAny>>) -> PyResult<Option<Spectrum>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    let d = v
        .cast::<PyDict>()
        .map_err(|_| PyValueError::new_err("a spectrum must be a dict"))?;
    Ok(Some(Spectrum {
        label: d
            .get_item("label")?
            .map(|x| x.extract::<String>())
            .transpose()?
            .unwrap_or_default(),
        ln_wave: vec_f64(d, "ln_wave")?,
        flux: vec_f64(d, "flux")?,
        ivar: opt_vec::<f64>(d, "ivar", "float64")?.unwrap_or_default(),
    }))
}

/// The inverse of [`dataset_to_py`] (arrays already converted to the right dtypes by the
/// Python layer). Invalid visits are a `ValueError` naming the visit.
pub fn dataset_from_py(d: &Bound<'_, PyDict>) -> PyResult<Dataset> {
    let name: String = d
        .get_item("name")?
        .map(|x| x.extract())
        .transpose()?
        .unwrap_or_default();
    let survey = match d
        .get_item("survey")?
        .map(|x| x.extract::<String>())
        .transpose()?
        .as_deref()
    {
        Some("apogee") => Survey::Apogee,
        Some("boss") => Survey::Boss,
        None | Some("generic") => Survey::Generic,
        Some(s) => {
            return Err(PyValueError::new_err(format!(
                "survey '{s}': expected 'apogee', 'boss' or 'generic'"
            )));
        }
    };
    // What reading found (e.g. visits of another object), carried into the combination.
    let load_warnings: Vec<String> = match d.get_item("warnings")? {
        Some(w) if !w.is_none() => w
            .extract()
            .map_err(|_| PyValueError::new_err("'warnings' must be a list of strings"))?,
        _ => Vec::new(),
    };
    let list = d
        .get_item("visits")?
        .ok_or_else(|| PyValueError::new_err("the dataset has no visits"))?;
    let mut visits = Vec::new();
    for (i, item) in list.try_iter()?.enumerate() {
        let item = item?;
        let x = item
            .cast::<PyDict>()
            .map_err(|_| PyValueError::new_err(format!("visit {i}: expected a dict")))?;
        let ctx = |e: PyErr| PyValueError::new_err(format!("visit {i}: {e}"));
        let meta: VisitMeta = match x.get_item("meta_json")? {
            Some(m) if !m.is_none() => {
                let s: String = m.extract()?;
                serde_json::from_str(&s)
                    .map_err(|e| PyValueError::new_err(format!("visit {i}: metadata: {e}")))?
            }
            _ => VisitMeta {
                name: format!("visit {i}"),
                ..VisitMeta::default()
            },
        };
        let segments: Vec<Range<usize>> = match x.get_item("segments")? {
            Some(s) if !s.is_none() => s
                .extract::<Vec<(usize, usize)>>()
                .map_err(|_| {
                    PyValueError::new_err(format!(
                        "visit {i}: 'segments' must be (start, end) pairs"
                    ))
                })?
                .into_iter()
                .map(|(a, b)| a..b)
                .collect(),
            _ => Vec::new(),
        };
        let a = VisitArrays {
            wavelength_aa: vec_f64(x, "wavelength_aa").map_err(ctx)?,
            flux: vec_f64(x, "flux").map_err(ctx)?,
            ivar: vec_f64(x, "ivar").map_err(ctx)?,
            flags: opt_vec::<u64>(x, "flags", "uint64")
                .map_err(ctx)?
                .unwrap_or_default(),
            bad: opt_vec::<bool>(x, "bad", "bool")
                .map_err(ctx)?
                .unwrap_or_default(),
            selection: opt_vec::<f64>(x, "selection", "float64").map_err(ctx)?,
            flux_divided_by_selection: x
                .get_item("flux_divided_by_selection")?
                .map(|b| b.extract::<bool>())
                .transpose()?
                .unwrap_or(false),
            segments,
        };
        let label = meta.name.clone();
        let v = Visit::new(meta, a)
            .map_err(|e| PyValueError::new_err(format!("visit {i} ({label}): {e}")))?;
        visits.push(Arc::new(v));
    }
    let input_grid = match d.get_item("input_grid")? {
        Some(g) if !g.is_none() => {
            let g = g
                .cast::<PyDict>()
                .map_err(|_| PyValueError::new_err("input_grid must be a dict"))?;
            let ln = vec_f64(g, "ln_wave")?;
            let mut grid = OutputGrid::from_ln(ln).ok_or_else(|| {
                PyValueError::new_err("input_grid: ln_wave must be finite and strictly increasing")
            })?;
            grid.log10_linear = g
                .get_item("log10_linear")?
                .filter(|x| !x.is_none())
                .map(|x| x.extract::<(f64, f64)>())
                .transpose()?;
            Some(grid)
        }
        _ => None,
    };
    Ok(Dataset {
        name,
        visits,
        input_grid,
        truth: spectrum_from_py(d.get_item("truth")?)?,
        pipeline_coadd: spectrum_from_py(d.get_item("pipeline_coadd")?)?,
        survey,
        load_warnings,
    })
}

fn method_to_py<'py>(py: Python<'py>, r: &MethodResult, m: usize) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("flux", arr(py, &r.flux))?;
    d.set_item("var", arr(py, &r.var))?;
    let mut band = Array2::<f64>::from_elem((r.band.len(), m), f64::NAN);
    for (k, row) in r.band.iter().enumerate() {
        for (l, &x) in row.iter().enumerate().take(m) {
            band[[k, l]] = x;
        }
    }
    d.set_item("band", PyArray2::from_owned_array(py, band))?;
    d.set_item("flags", arr(py, &r.flags))?;
    d.set_item("no_data", arr(py, &r.no_data))?;
    // Output pixels with data that the data do not constrain (NaN like no-data pixels).
    let weak = if r.poorly_constrained.len() == m {
        r.poorly_constrained.clone()
    } else {
        vec![false; m]
    };
    d.set_item("poorly_constrained", arr(py, &weak))?;
    d.set_item("condition", r.condition)?;
    let chi: Vec<f64> = r.visits.iter().map(|v| v.chi2_nu).collect();
    d.set_item("visit_chi2_nu", arr(py, &chi))?;
    let outlier: Vec<f64> = r.visits.iter().map(|v| v.outlier_score).collect();
    d.set_item("visit_outlier_score", arr(py, &outlier))?;
    let loo: Vec<f64> = r.visits.iter().map(|v| v.loo_chi2_nu).collect();
    d.set_item("visit_loo_chi2_nu", arr(py, &loo))?;
    let pred = PyList::empty(py);
    for v in &r.visits {
        pred.append(arr(py, &v.prediction))?;
    }
    d.set_item("visit_prediction", pred)?;
    match &r.fitted_velocity {
        Some(fv) => {
            let v: Vec<f64> = fv.iter().map(|x| x.0).collect();
            let e: Vec<f64> = fv.iter().map(|x| x.1).collect();
            d.set_item("v_fit_kms", arr(py, &v))?;
            d.set_item("v_fit_err_kms", arr(py, &e))?;
        }
        None => {
            d.set_item("v_fit_kms", py.None())?;
            d.set_item("v_fit_err_kms", py.None())?;
        }
    }
    // Fitted velocities are relative to this zero point, whose error they exclude.
    match &r.velocity_zero_point {
        Some(z) => {
            d.set_item("v_zero_kms", z.v_kms)?;
            d.set_item("v_zero_err_kms", z.err_kms)?;
            d.set_item("v_zero_ref", z.name.as_str())?;
        }
        None => {
            d.set_item("v_zero_kms", py.None())?;
            d.set_item("v_zero_err_kms", py.None())?;
            d.set_item("v_zero_ref", py.None())?;
        }
    }
    Ok(d)
}

/// A result as a dict of arrays: `ln_wave`, `wavelength_aa`, `log10_linear`, one dict (or None)
/// per method under its name (`forward`, `standard`), `visits` (list of dicts), `warnings`, `warning_records`,
/// `velocity` ([`velocity_to_py`]), `settings_json`.
pub fn combined_to_py<'py>(
    py: Python<'py>,
    data: &Dataset,
    c: &Combined,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let m = c.grid.len();
    d.set_item("ln_wave", arr(py, &c.grid.ln_wave))?;
    d.set_item("wavelength_aa", arr(py, &c.grid.wavelength_aa()))?;
    d.set_item("log10_linear", c.grid.log10_linear)?;
    // One key per registered method (None when it did not run or failed), then any other
    // method the result holds.
    let names = frizzview_core::combine::METHODS
        .iter()
        .map(|x| x.info().name)
        .chain(c.others.iter().map(|o| o.info.name));
    for key in names {
        match c.result(key) {
            Some(r) => d.set_item(key, method_to_py(py, r, m)?)?,
            None => d.set_item(key, py.None())?,
        }
    }
    let visits = PyList::empty(py);
    for v in &c.visits {
        let x = PyDict::new(py);
        x.set_item("name", &v.name)?;
        x.set_item("v_kms", v.v_kms)?;
        x.set_item("v_source", &v.v_source)?;
        x.set_item("included", v.included)?;
        x.set_item("weight", v.weight)?;
        x.set_item("n_used", v.n_used)?;
        x.set_item("n_bad", v.n_bad)?;
        visits.append(x)?;
    }
    d.set_item("visits", visits)?;
    let w: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
    d.set_item("warnings", w)?;
    d.set_item("warning_records", warning_records(py, &c.warnings)?)?;
    d.set_item("velocity", velocity_to_py(py, data, c)?)?;
    let s = serde_json::to_string(&c.settings)
        .map_err(|e| PyValueError::new_err(format!("settings: {e}")))?;
    d.set_item("settings_json", s)?;
    Ok(d)
}

/// The input files of a dataset (outputs must never replace them).
pub fn input_files(data: &Dataset) -> Vec<PathBuf> {
    data.visits
        .iter()
        .filter_map(|v| v.meta.source.clone())
        .collect()
}

/// Each warning as a dict: `kind` (the core's variant name, e.g. "VelocityReplaced"), `visit`
/// (the visit it names, or None), `message` (the text of `warnings`) and the variant's numbers
/// where it has some (`external_kms`, `data_kms`, `err_kms`, `chi2_nu`, `cond`, ...).
fn warning_records<'py>(py: Python<'py>, ws: &[Warning]) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for w in ws {
        let d = PyDict::new(py);
        let debug = format!("{w:?}");
        let kind: String = debug
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        d.set_item("kind", kind)?;
        d.set_item("message", w.to_string())?;
        let visit: Option<&str> = match w {
            Warning::NoUsablePixels { visit }
            | Warning::MissingVelocity { visit, .. }
            | Warning::InvalidPixels { visit, .. }
            | Warning::TinySelection { visit, .. }
            | Warning::NoSelection { visit }
            | Warning::VelocityReplaced { visit, .. }
            | Warning::VelocityUnchecked { visit, .. } => Some(visit),
            _ => None,
        };
        d.set_item("visit", visit)?;
        match w {
            Warning::MissingVelocity { source_name, .. } => d.set_item("source", source_name)?,
            Warning::InvalidPixels { n, .. } => d.set_item("n", n)?,
            Warning::TinySelection { n, min, .. } => {
                d.set_item("n", n)?;
                d.set_item("min", min)?;
            }
            Warning::IllConditioned { what, cond } => {
                d.set_item("what", what)?;
                d.set_item("cond", cond)?;
            }
            Warning::StarVelocityUnknown { n } => d.set_item("n", n)?,
            Warning::Resampled { n, example } => {
                d.set_item("n", n)?;
                d.set_item("example", example)?;
            }
            Warning::PoorFit {
                chi2_nu,
                outliers,
                ranked,
                loo,
            } => {
                d.set_item("chi2_nu", chi2_nu)?;
                d.set_item("outliers", outliers.clone())?;
                d.set_item("ranked", ranked.clone())?;
                d.set_item("loo", loo)?;
            }
            Warning::VelocityReplaced {
                source_name,
                external_kms,
                data_kms,
                err_kms,
                ..
            } => {
                d.set_item("source", source_name)?;
                d.set_item("external_kms", external_kms)?;
                d.set_item("data_kms", data_kms)?;
                d.set_item("err_kms", err_kms)?;
            }
            Warning::VelocityUnchecked {
                source_name,
                external_kms,
                ..
            } => {
                d.set_item("source", source_name)?;
                d.set_item("external_kms", external_kms)?;
            }
            Warning::RvVariable {
                scatter_kms,
                chi2,
                dof,
            } => {
                d.set_item("scatter_kms", scatter_kms)?;
                d.set_item("chi2", chi2)?;
                d.set_item("dof", dof)?;
            }
            _ => {}
        }
        out.append(d)?;
    }
    Ok(out)
}

/// The per-visit velocity table of a combination (the CLI's `velocity_table` and more), as
/// columns aligned with the visits: `name`, `file`, `mjd`, `included`, `v_kms` (used),
/// `v_source`, and from the velocity check (NaN / "" / False when it did not run: shift source
/// none or -BC, or the check off) `measured`, `data_kms`, `err_kms`, `formal_err_kms`,
/// `external_kms` (the header/survey velocity checked, NaN when none), `replaced`, `bc_kms`,
/// `v_bary_kms`, `peak_height`, `peak_ratio`, `fwhm_kms`, `snr` (the search's), `header_snr`; and
/// `chi2_nu`, `loo_chi2_nu` of the forward model (standard practice's chi2_nu without it). Beside
/// the columns: `checked` (bool), `external_kind`, `zero_point_kms`, `zero_point_err_kms`,
/// `zero_point_how`, `rest_frame` (text), `rest_frame_kms`, `rest_frame_err_kms`, `star`
/// (dict or None: `mean_bary_kms`, `scatter_kms`, `chi2`, `dof`, `rv_variable`),
/// `zero_point_replaced` ((external, rest frame) km/s or None).
pub fn velocity_to_py<'py>(
    py: Python<'py>,
    data: &Dataset,
    c: &Combined,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let n = c.visits.len();
    let nan = vec![f64::NAN; n];
    let name: Vec<String> = c.visits.iter().map(|v| v.name.clone()).collect();
    let meta = |i: usize| data.visits.get(i).map(|v| &v.meta);
    let file: Vec<String> = (0..n)
        .map(|i| {
            meta(i)
                .and_then(|m| m.source.as_ref())
                .and_then(|p| p.file_name())
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let mjd: Vec<f64> = (0..n)
        .map(|i| {
            meta(i)
                .and_then(|m| m.jd)
                .map_or(f64::NAN, |jd| jd - 2_400_000.5)
        })
        .collect();
    let header_snr: Vec<f64> = (0..n)
        .map(|i| meta(i).and_then(|m| m.snr).unwrap_or(f64::NAN))
        .collect();
    d.set_item("name", name)?;
    d.set_item("file", file)?;
    d.set_item("mjd", arr(py, &mjd))?;
    d.set_item("header_snr", arr(py, &header_snr))?;
    let inc: Vec<bool> = c.visits.iter().map(|v| v.included).collect();
    d.set_item("included", arr(py, &inc))?;
    let used: Vec<f64> = c.visits.iter().map(|v| v.v_kms).collect();
    d.set_item("v_kms", arr(py, &used))?;
    let src: Vec<String> = c.visits.iter().map(|v| v.v_source.clone()).collect();
    d.set_item("v_source", src)?;
    let fit = c.forward.as_ref().or(c.standard.as_ref());
    let per_fit = |f: fn(&frizzview_core::combine::VisitFit) -> f64| -> Vec<f64> {
        match fit {
            Some(r) if r.visits.len() == n => r.visits.iter().map(f).collect(),
            _ => nan.clone(),
        }
    };
    d.set_item("chi2_nu", arr(py, &per_fit(|v| v.chi2_nu)))?;
    let loo = match &c.forward {
        Some(r) if r.visits.len() == n => r.visits.iter().map(|v| v.loo_chi2_nu).collect(),
        _ => nan.clone(),
    };
    d.set_item("loo_chi2_nu", arr(py, &loo))?;
    let vc = c.velocity.as_deref().filter(|v| v.visits.len() == n);
    d.set_item("checked", vc.is_some())?;
    let col = |f: fn(&frizzview_core::velocity::VisitVelocity) -> f64| -> Vec<f64> {
        vc.map_or_else(|| nan.clone(), |v| v.visits.iter().map(f).collect())
    };
    d.set_item("data_kms", arr(py, &col(|x| x.data_kms)))?;
    d.set_item("err_kms", arr(py, &col(|x| x.err_kms)))?;
    d.set_item("formal_err_kms", arr(py, &col(|x| x.formal_err_kms)))?;
    d.set_item(
        "external_kms",
        arr(py, &col(|x| x.external_kms.unwrap_or(f64::NAN))),
    )?;
    d.set_item("bc_kms", arr(py, &col(|x| x.bc_kms.unwrap_or(f64::NAN))))?;
    d.set_item(
        "v_bary_kms",
        arr(py, &col(|x| x.v_bary_kms.unwrap_or(f64::NAN))),
    )?;
    d.set_item("peak_height", arr(py, &col(|x| x.quality.peak_height)))?;
    d.set_item("peak_ratio", arr(py, &col(|x| x.quality.peak_ratio)))?;
    d.set_item("fwhm_kms", arr(py, &col(|x| x.quality.width_kms)))?;
    d.set_item("snr", arr(py, &col(|x| x.snr)))?;
    let flag = |f: fn(&frizzview_core::velocity::VisitVelocity) -> bool| -> Vec<bool> {
        vc.map_or_else(|| vec![false; n], |v| v.visits.iter().map(f).collect())
    };
    d.set_item(
        "measured",
        arr(py, &flag(|x| x.status == VelocityStatus::Measured)),
    )?;
    d.set_item("replaced", arr(py, &flag(|x| x.replaced)))?;
    match vc {
        Some(v) => {
            d.set_item("external_kind", v.external_kind.map(|k| format!("{k:?}")))?;
            d.set_item("zero_point_kms", v.zero_point.offset_kms)?;
            d.set_item("zero_point_err_kms", v.zero_point.err_kms)?;
            d.set_item("zero_point_how", v.zero_point.how.as_str())?;
            d.set_item("rest_frame", v.rest_frame.describe())?;
            match v.rest_frame {
                RestFrame::Measured {
                    offset_kms,
                    err_kms,
                    ..
                } => {
                    d.set_item("rest_frame_kms", offset_kms)?;
                    d.set_item("rest_frame_err_kms", err_kms)?;
                }
                RestFrame::Unverified(_) => {
                    d.set_item("rest_frame_kms", f64::NAN)?;
                    d.set_item("rest_frame_err_kms", f64::NAN)?;
                }
            }
            match &v.star {
                Some(st) => {
                    let s = PyDict::new(py);
                    s.set_item("mean_bary_kms", st.mean_bary_kms)?;
                    s.set_item("scatter_kms", st.scatter_kms)?;
                    s.set_item("chi2", st.chi2)?;
                    s.set_item("dof", st.dof)?;
                    s.set_item("rv_variable", st.rv_variable)?;
                    d.set_item("star", s)?;
                }
                None => d.set_item("star", py.None())?,
            }
            d.set_item("zero_point_replaced", v.zero_point_replaced)?;
        }
        None => {
            for k in ["external_kind", "zero_point_how", "rest_frame", "star"] {
                d.set_item(k, py.None())?;
            }
            for k in [
                "zero_point_kms",
                "zero_point_err_kms",
                "rest_frame_kms",
                "rest_frame_err_kms",
            ] {
                d.set_item(k, f64::NAN)?;
            }
            d.set_item("zero_point_replaced", py.None())?;
        }
    }
    Ok(d)
}
