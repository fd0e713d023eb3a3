//! Datasets and results between the core and Python: plain dicts of numpy arrays (picklable, so
//! they travel to process pools and Dask workers), metadata as JSON of the core's serde types.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use frizzview_core::combine::{Combined, MethodResult};
use frizzview_core::model::{Dataset, OutputGrid, Spectrum, Survey, Visit, VisitArrays, VisitMeta};
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
        load_warnings: Vec::new(),
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

/// A result as a dict of arrays: `ln_wave`, `wavelength_aa`, `log10_linear`, `forward` and
/// `standard` (dicts or None), `visits` (list of dicts), `warnings`, `settings_json`.
pub fn combined_to_py<'py>(py: Python<'py>, c: &Combined) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let m = c.grid.len();
    d.set_item("ln_wave", arr(py, &c.grid.ln_wave))?;
    d.set_item("wavelength_aa", arr(py, &c.grid.wavelength_aa()))?;
    d.set_item("log10_linear", c.grid.log10_linear)?;
    for (key, r) in [("forward", &c.forward), ("standard", &c.standard)] {
        match r {
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
