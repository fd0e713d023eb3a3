//! `frizzview.image.combine`: the image mode through the core's one pipeline
//! (`frizzview_core::image::pipeline`), the same settings as `frizzview image combine`.

use std::path::PathBuf;

use frizzview_core::image::frizzle2d::VarianceMode;
use frizzview_core::image::pipeline::{
    self, Aperture, ApertureCenter, ExposureChoice, Geometry, PipelineOptions,
};
use frizzview_core::image::read::{self, DqPolicy, ImageExposure};
use frizzview_core::image::wcs::{CardValue, ShiftRotation};
use frizzview_core::model::pixel_policy::BitAction;
use numpy::{PyArray2, PyArray3, PyReadonlyArray2, PyReadonlyArray3};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

fn verr(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// Combine image exposures by the 2-D forward model and drizzle. `paths` (files) or `arrays`
/// (a list of `(sci, ivar)` float64 2-D pairs; geometry then from `shifts` or `pixmaps`).
/// Returns a dict (see `frizzview.image.combine`).
#[pyfunction]
#[pyo3(signature = (paths=None, arrays=None, scale=None, size=None, center=None, pixfrac=1.0,
    sky=true, ridge=0.0, pad=0, exclude=Vec::new(), weights=Vec::new(), flux_scales=Vec::new(), dq=None,
    shifts=None, zoom=1.0, pixmaps=None, out_shape=None, probes=32, loo=true, max_iter=3000,
    aperture=None, annulus=None, output=None, threads=None))]
#[allow(clippy::too_many_arguments)]
pub fn image_combine<'py>(
    py: Python<'py>,
    paths: Option<Vec<PathBuf>>,
    arrays: Option<Vec<(PyReadonlyArray2<'py, f64>, PyReadonlyArray2<'py, f64>)>>,
    scale: Option<f64>,
    size: Option<(usize, usize)>,
    center: Option<(f64, f64)>,
    pixfrac: f64,
    sky: bool,
    ridge: f64,
    pad: usize,
    exclude: Vec<String>,
    weights: Vec<(String, f64)>,
    flux_scales: Vec<(String, f64)>,
    dq: Option<Vec<(u32, String)>>,
    shifts: Option<Vec<(f64, f64, f64)>>,
    zoom: f64,
    pixmaps: Option<Vec<PyReadonlyArray3<'py, f64>>>,
    out_shape: Option<(usize, usize)>,
    probes: usize,
    loo: bool,
    max_iter: usize,
    aperture: Option<(f64, f64, f64, bool)>,
    annulus: Option<(f64, f64)>,
    output: Option<PathBuf>,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let inputs: Vec<ImageExposure> = match (&paths, arrays) {
        (Some(p), None) => read::load_images(p).map_err(verr)?,
        (None, Some(a)) => a
            .iter()
            .enumerate()
            .map(|(k, (s, w))| {
                let (sci, ivar) = (s.as_array().to_owned(), w.as_array().to_owned());
                ImageExposure::from_arrays(&format!("array{k}"), sci, ivar)
                    .map_err(|e| verr(format!("arrays[{k}]: {e}")))
            })
            .collect::<PyResult<_>>()?,
        _ => return Err(verr("give exactly one of paths and arrays")),
    };
    let mut o = PipelineOptions::default();
    o.output.scale_arcsec = scale;
    o.output.size = size;
    o.output.center = center;
    o.pixfrac = pixfrac;
    o.frizzle.sky = sky;
    o.frizzle.ridge = ridge;
    o.frizzle.pad = pad;
    o.frizzle.loo = loo;
    o.frizzle.max_iter = max_iter.max(1);
    o.frizzle.variance = if probes == 0 {
        VarianceMode::None
    } else {
        VarianceMode::Auto { probes }
    };
    if let Some(d) = dq {
        let mut p = DqPolicy::default();
        for (k, a) in d {
            p = p.with(k, BitAction::parse(&a).map_err(verr)?);
        }
        o.dq = p;
    }
    match (shifts, pixmaps) {
        (Some(_), Some(_)) => return Err(verr("give shifts or pixmaps, not both")),
        (Some(s), None) => {
            if !(zoom > 0.0 && zoom.is_finite()) {
                return Err(verr(format!("zoom {zoom} must be > 0")));
            }
            o.geometry = Geometry::ShiftRotation(
                s.iter()
                    .map(|&(dx, dy, th)| ShiftRotation {
                        dx,
                        dy,
                        theta: th.to_radians(),
                        scale: zoom,
                        center: [0.0, 0.0],
                    })
                    .collect(),
            );
        }
        (None, Some(p)) => {
            let shape = out_shape.ok_or_else(|| verr("pixmaps need out_shape=(ny, nx)"))?;
            o.geometry = Geometry::Pixmaps {
                pixmaps: p.iter().map(|a| a.as_array().to_owned()).collect(),
                shape,
            };
        }
        (None, None) => {}
    }
    let names: Vec<String> = inputs.iter().map(|x| x.name.clone()).collect();
    let find = |s: &str| -> PyResult<usize> {
        if let Ok(i) = s.parse::<usize>()
            && i < names.len()
        {
            return Ok(i);
        }
        pipeline::index_of(names.iter().map(String::as_str), s)
            .ok_or_else(|| verr(format!("no single exposure matches '{s}' ({names:?})")))
    };
    let mut choices = vec![ExposureChoice::default(); inputs.len()];
    for s in &exclude {
        choices[find(s)?].include = false;
    }
    for (s, w) in &weights {
        choices[find(s)?].weight = *w;
    }
    for (s, f) in &flux_scales {
        choices[find(s)?].flux_scale = *f;
    }
    o.choices = choices;
    let ap = aperture.map(|(a, b, r, pix)| Aperture {
        center: if pix {
            ApertureCenter::Pixel(a, b)
        } else {
            ApertureCenter::Sky(a, b)
        },
        radius: r,
        annulus: annulus.or(Some((1.5 * r, 2.5 * r))),
    });
    let pool = crate::threads::pool(threads)?;
    let in_paths = paths.unwrap_or_default();
    let (prep, prod, apr) = py
        .detach(|| {
            pool.install(|| -> Result<_, String> {
                let prep = pipeline::prepare(&inputs, &o).map_err(|e| e.to_string())?;
                let prod = pipeline::solve(&prep, &o).map_err(|e| e.to_string())?;
                let apr = match &ap {
                    Some(a) => {
                        Some(pipeline::aperture(&prep, &prod, a).map_err(|e| e.to_string())?)
                    }
                    None => None,
                };
                if let Some(out) = &output {
                    frizzview_core::image::export::write_fits(out, &prep, &prod, &in_paths)
                        .map_err(|e| e.to_string())?;
                }
                Ok((prep, prod, apr))
            })
        })
        .map_err(verr)?;
    let d = PyDict::new(py);
    d.set_item("shape", prep.shape)?;
    if let Some(f) = &prod.frizzle {
        d.set_item("sci", PyArray2::from_owned_array(py, f.sci.clone()))?;
        d.set_item("var", PyArray2::from_owned_array(py, f.var.clone()))?;
        d.set_item("var_kind", pipeline::variance_label(f.var_kind))?;
        d.set_item(
            "coverage",
            PyArray2::from_owned_array(py, f.coverage.clone()),
        )?;
        d.set_item("dq", PyArray2::from_owned_array(py, f.dq.clone()))?;
        let res = PyList::empty(py);
        for r in &f.residuals {
            res.append(PyArray2::from_owned_array(py, r.clone()))?;
        }
        d.set_item("residuals", res)?;
        d.set_item("noise_corr", f.noise_corr.to_vec())?;
        d.set_item("iterations", f.iterations)?;
        d.set_item("clipped", f.clipped)?;
    }
    if let Some(z) = &prod.drizzle {
        d.set_item("drz_sci", PyArray2::from_owned_array(py, z.sci.clone()))?;
        d.set_item("drz_wht", PyArray2::from_owned_array(py, z.wht.clone()))?;
        d.set_item("drz_var", PyArray2::from_owned_array(py, z.var.clone()))?;
        d.set_item("drz_ctx", PyArray2::from_owned_array(py, z.count.clone()))?;
        d.set_item("drz_noise_corr", prod.drizzle_noise_corr.to_vec())?;
    }
    let hdr = PyDict::new(py);
    if let Some(w) = &prod.wcs {
        for (k, v) in w.tan_cards() {
            match v {
                CardValue::Num(x) if k == "WCSAXES" => hdr.set_item(k, x.round() as i64)?,
                CardValue::Num(x) => hdr.set_item(k, x)?,
                CardValue::Text(t) => hdr.set_item(k, t)?,
            }
        }
        hdr.set_item("NAXIS", 2)?;
        hdr.set_item("NAXIS1", prep.shape.1)?;
        hdr.set_item("NAXIS2", prep.shape.0)?;
    }
    d.set_item("wcs_header", hdr)?;
    let t = PyList::empty(py);
    for (e, r) in prod.table.iter().enumerate() {
        let row = PyDict::new(py);
        row.set_item("name", &r.name)?;
        row.set_item("include", r.include)?;
        row.set_item("weight", r.weight)?;
        row.set_item("sky", r.sky)?;
        row.set_item("drz_sky", prod.drizzle_sky.get(e).copied())?;
        row.set_item("chi2_nu", r.chi2nu)?;
        row.set_item("loo_chi2_nu", r.loo_chi2nu)?;
        t.append(row)?;
    }
    d.set_item("exposures", t)?;
    d.set_item("notes", prod.notes.clone())?;
    d.set_item("warnings", prod.warnings.clone())?;
    if let Some(r) = apr {
        let a = PyDict::new(py);
        a.set_item("center_px", r.center_px.to_vec())?;
        a.set_item("radius_px", r.radius_px)?;
        a.set_item("annulus_px", r.annulus_px)?;
        a.set_item("frizzle", r.frizzle)?;
        a.set_item("drizzle", r.drizzle)?;
        d.set_item("aperture", a)?;
    }
    // Pixmaps used (so callers can check the geometry).
    let pm = PyList::empty(py);
    for x in &prep.exposures {
        pm.append(PyArray3::from_owned_array(py, x.pixmap.clone()))?;
    }
    d.set_item("pixmaps", pm)?;
    Ok(d)
}
