//! `frizzview._core`: the compiled half of the `frizzview` Python package.
//!
//! Every call copies its inputs out of Python, releases the GIL (`Python::detach`) and computes
//! on a rayon pool built for that call with the caller's thread count, so nothing is global:
//! threads in one process and processes in a pool (multiprocessing, Dask, Slurm) do not share
//! state. The Python layer (`python/frizzview`) converts array-likes and dtypes and shapes the
//! results.

mod compat;
mod data;
mod image;
mod opts;
mod threads;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use frizzview_core::combine::{self, Cancel, Combined};
use frizzview_core::export;
use frizzview_core::io::{self, LoadOptions};
use frizzview_core::model::Dataset;
use frizzview_core::vocab::OutputFormat;
use numpy::{PyArray1, PyArray2, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use rayon::prelude::*;

use crate::opts::Opts;
use crate::threads::pool;

/// The fitted Fourier series of `frizzview.frizzle` (`meta["model"]`): f(λ) at any λ.
#[pyclass(frozen, module = "frizzview._core")]
struct FourierSeries {
    series: compat::Series,
}

#[pymethods]
impl FourierSeries {
    /// f at the 1-D float64 array `lam` (the caller's wavelength unit, as given to frizzle).
    fn eval<'py>(
        &self,
        py: Python<'py>,
        lam: PyReadonlyArray1<'py, f64>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let x = lam.as_array().to_vec();
        let s = &self.series;
        let y = py.detach(|| s.eval(&x));
        Ok(PyArray1::from_vec(py, y))
    }

    /// Number of Fourier modes P.
    #[getter]
    fn n_modes(&self) -> usize {
        self.series.coef.len()
    }
}

/// The frizzle-compatible fit. Returns `(y, C, flags, no_data, model, condition, warnings)` with
/// C dense (M*, M*) or, when `band_lags` is given, the band (K+1, M*) with row k = C*[l, l+k];
/// no censoring applied (the Python layer applies frizzle's). `dense_by_columns` computes the
/// dense C* one column at a time (the slow reference path, for tests and the benchmark).
#[pyfunction]
#[pyo3(signature = (lam_out, lam, flux, ivar, mask, flags, n_modes, band_lags, threads, dense_by_columns=false))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn frizzle_compat<'py>(
    py: Python<'py>,
    lam_out: PyReadonlyArray1<'py, f64>,
    lam: PyReadonlyArray1<'py, f64>,
    flux: PyReadonlyArray1<'py, f64>,
    ivar: PyReadonlyArray1<'py, f64>,
    mask: PyReadonlyArray1<'py, bool>,
    flags: Option<PyReadonlyArray1<'py, u64>>,
    n_modes: usize,
    band_lags: Option<usize>,
    threads: Option<usize>,
    dense_by_columns: bool,
) -> PyResult<(
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray1<u64>>,
    Bound<'py, PyArray1<bool>>,
    FourierSeries,
    f64,
    Vec<String>,
)> {
    let lam_out = lam_out.as_array().to_vec();
    let lam = lam.as_array().to_vec();
    let flux = flux.as_array().to_vec();
    let ivar = ivar.as_array().to_vec();
    let mask = mask.as_array().to_vec();
    let flags = flags.map(|f| f.as_array().to_vec());
    let pool = pool(threads)?;
    let mut out = py
        .detach(|| {
            pool.install(|| {
                compat::run(&compat::Input {
                    lam_out: &lam_out,
                    lam: &lam,
                    flux: &flux,
                    ivar: &ivar,
                    mask: &mask,
                    flags: flags.as_deref(),
                    n_modes,
                    band_lags,
                    dense_by_columns,
                })
            })
        })
        .map_err(PyValueError::new_err)?;
    let n = out.y.len();
    let c = match out.dense.take() {
        Some(d) => PyArray2::from_owned_array(py, d),
        None => {
            let mut b = ndarray::Array2::<f64>::from_elem((out.band.len(), n), f64::NAN);
            for (k, row) in out.band.iter().enumerate() {
                for (l, &x) in row.iter().enumerate().take(n) {
                    b[[k, l]] = x;
                }
            }
            PyArray2::from_owned_array(py, b)
        }
    };
    Ok((
        PyArray1::from_vec(py, out.y),
        c,
        PyArray1::from_vec(py, out.flags),
        PyArray1::from_vec(py, out.no_data),
        FourierSeries { series: out.model },
        out.condition,
        out.warnings,
    ))
}

/// One star's input: files, or a dataset built in Python.
enum Star {
    Paths(Vec<PathBuf>),
    Data(Box<Dataset>),
}

impl Star {
    fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        if let Ok(d) = obj.cast::<PyDict>() {
            return Ok(Star::Data(Box::new(data::dataset_from_py(d)?)));
        }
        let paths: Vec<PathBuf> = obj.extract().map_err(|_| {
            PyValueError::new_err("a star must be a frizzview.Dataset, a path or a list of paths")
        })?;
        if paths.is_empty() {
            return Err(PyValueError::new_err("no input file given"));
        }
        Ok(Star::Paths(paths))
    }

    fn load(&self, allow_mixed: bool) -> Result<Dataset, String> {
        match self {
            Star::Data(d) => Ok((**d).clone()),
            Star::Paths(p) => io::load_paths(
                p,
                &LoadOptions {
                    force: allow_mixed,
                    ..Default::default()
                },
            )
            .map_err(|e| e.to_string()),
        }
    }
}

/// Load (if needed) and combine one star.
fn run_star(star: &Star, opts: &Opts) -> Result<(Dataset, Combined), String> {
    let data = star.load(opts.allow_mixed)?;
    let settings = opts.settings(&data)?;
    let c = combine::combine(&data, &settings, &Cancel::new())
        .map_err(|e| format!("combining {}: {e}", data.name))?;
    Ok((data, c))
}

/// What a result keeps for the writers: the dataset and the combination.
#[pyclass(frozen, module = "frizzview._core")]
struct Handle {
    data: Arc<Dataset>,
    combined: Arc<Combined>,
}

fn write_result(data: &Dataset, c: &Combined, path: &Path) -> Result<(), String> {
    let format = OutputFormat::from_path(path).map_err(|e| e.to_string())?;
    let inputs = data::input_files(data);
    match format {
        OutputFormat::Fits => export::fits::write_fits(path, data, c, &inputs),
        OutputFormat::Npz => export::write_npz(path, c, &inputs),
        OutputFormat::Csv => export::write_csv(path, c, &inputs),
    }
    .map_err(|e| e.to_string())
}

#[pymethods]
impl Handle {
    /// Write the result; the format follows the extension (.fits apStar-like, .npz, .csv, .tsv).
    /// Atomic; never replaces an input file.
    fn write(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let (d, c) = (&self.data, &self.combined);
        py.detach(|| write_result(d, c, &path))
            .map_err(PyValueError::new_err)
    }
}

/// Read files (any supported format) into one dataset dict.
#[pyfunction]
#[pyo3(signature = (paths, allow_mixed=false))]
fn read<'py>(
    py: Python<'py>,
    paths: Vec<PathBuf>,
    allow_mixed: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let d = py
        .detach(|| {
            io::load_paths(
                &paths,
                &LoadOptions {
                    force: allow_mixed,
                    ..Default::default()
                },
            )
        })
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    data::dataset_to_py(py, &d)
}

/// Check keyword arguments without data (types and values): raises as `combine` would.
#[pyfunction]
#[pyo3(signature = (opts=None))]
fn check_options(opts: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
    Opts::from_dict(opts).map(|_| ())
}

/// Combine one star; returns `(result dict, handle)`.
#[pyfunction]
#[pyo3(signature = (star, opts=None, threads=None))]
fn combine_one<'py>(
    py: Python<'py>,
    star: &Bound<'py, PyAny>,
    opts: Option<&Bound<'py, PyDict>>,
    threads: Option<usize>,
) -> PyResult<(Bound<'py, PyDict>, Handle)> {
    let o = Opts::from_dict(opts)?;
    let star = Star::from_py(star)?;
    let pool = pool(threads)?;
    let (d, c) = py
        .detach(|| pool.install(|| run_star(&star, &o)))
        .map_err(PyValueError::new_err)?;
    let dict = data::combined_to_py(py, &d, &c)?;
    Ok((
        dict,
        Handle {
            data: Arc::new(d),
            combined: Arc::new(c),
        },
    ))
}

/// Combine many stars on one pool (stars in parallel, each star's work parallel too). Returns a
/// list aligned with `stars`: `(result dict, handle)` or the error message. With `out_dir`, each
/// result is also written to `out_dir/NAME.EXT`.
#[pyfunction]
#[pyo3(signature = (stars, names, opts=None, threads=None, out_dir=None, ext="fits".to_owned()))]
fn combine_many<'py>(
    py: Python<'py>,
    stars: &Bound<'py, PyList>,
    names: Vec<String>,
    opts: Option<&Bound<'py, PyDict>>,
    threads: Option<usize>,
    out_dir: Option<PathBuf>,
    ext: String,
) -> PyResult<Bound<'py, PyList>> {
    let o = Opts::from_dict(opts)?;
    if names.len() != stars.len() {
        return Err(PyValueError::new_err("one name per star is needed"));
    }
    let stars: Vec<Star> = stars
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Star::from_py(&s).map_err(|e| PyValueError::new_err(format!("star {i}: {e}")))
        })
        .collect::<PyResult<_>>()?;
    if let Some(dir) = &out_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| PyValueError::new_err(format!("cannot create {}: {e}", dir.display())))?;
    }
    let pool = pool(threads)?;
    let done: Vec<Result<(Dataset, Combined), String>> = py.detach(|| {
        pool.install(|| {
            stars
                .par_iter()
                .zip(&names)
                .map(|(s, name)| {
                    let (d, c) = run_star(s, &o).map_err(|e| format!("{name}: {e}"))?;
                    if let Some(dir) = &out_dir {
                        write_result(&d, &c, &dir.join(format!("{name}.{ext}")))
                            .map_err(|e| format!("{name}: {e}"))?;
                    }
                    Ok((d, c))
                })
                .collect()
        })
    });
    let out = PyList::empty(py);
    for r in done {
        match r {
            Ok((d, c)) => {
                let dict = data::combined_to_py(py, &d, &c)?;
                let h = Handle {
                    data: Arc::new(d),
                    combined: Arc::new(c),
                };
                out.append((dict, h))?;
            }
            Err(e) => out.append(e)?,
        }
    }
    Ok(out)
}

/// A seeded synthetic APOGEE-like star (3 chips x 4096 px per visit) as a dataset dict.
#[pyfunction]
#[pyo3(signature = (visits=12, seed=1, truth_seed=42, clean=false))]
fn synth_apogee(
    py: Python<'_>,
    visits: usize,
    seed: u64,
    truth_seed: u64,
    clean: bool,
) -> PyResult<Bound<'_, PyDict>> {
    use frizzview_core::synth::apogee::{ApogeeParams, generate};
    let base = if clean {
        ApogeeParams::clean()
    } else {
        ApogeeParams::default()
    };
    let p = ApogeeParams {
        n_visits: visits,
        seed,
        truth_seed,
        ..base
    };
    p.validate().map_err(PyValueError::new_err)?;
    let d = py.detach(|| generate(&p)).map_err(PyValueError::new_err)?;
    data::dataset_to_py(py, &d)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(frizzle_compat, m)?)?;
    m.add_function(wrap_pyfunction!(read, m)?)?;
    m.add_function(wrap_pyfunction!(check_options, m)?)?;
    m.add_function(wrap_pyfunction!(combine_one, m)?)?;
    m.add_function(wrap_pyfunction!(combine_many, m)?)?;
    m.add_function(wrap_pyfunction!(synth_apogee, m)?)?;
    m.add_function(wrap_pyfunction!(image::image_combine, m)?)?;
    m.add_class::<FourierSeries>()?;
    m.add_class::<Handle>()?;
    m.add("OPTION_KEYS", opts::KEYS.to_vec())?;
    Ok(())
}
