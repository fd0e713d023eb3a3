//! Keyword arguments of `frizzview.combine` -> core [`Settings`], with the CLI's names
//! ([`frizzview_core::vocab`]), values and defaults. Parsing happens in two steps: [`Opts::from_dict`] checks types and values that
//! do not depend on the data (with the GIL held), [`Opts::settings`] resolves them against a
//! dataset (visit names, survey defaults) and may run without the GIL.

use std::path::PathBuf;

use frizzview_core::model::Dataset;
use frizzview_core::settings::{
    Basis, Extensions, ForwardSettings, GridSpec, Interpolator, LsfMode, Robust, SelectionMode,
    Settings, ShiftSource, StandardMask, StandardSettings, VisitSetting, Weighting,
    headless_defaults,
};
use frizzview_core::vocab::{self, Methods, Named};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

/// Every keyword `frizzview.combine` accepts besides the data and `threads`.
pub const KEYS: &[&str] = &[
    "grid",
    "shift",
    "velocity",
    "weighting",
    "exclude",
    "weight",
    "bad_bits",
    "selection",
    "method",
    "basis",
    "compat",
    "modes",
    "interp",
    "std_mask",
    "lags",
    "fit_shifts",
    "robust",
    "normalize",
    "lsf",
    "settings",
    "allow_mixed",
];

/// A visit designated by name (display name, file name or stem) or 0-based index.
#[derive(Clone, Debug)]
pub enum VisitRef {
    Name(String),
    Index(usize),
}

/// Parsed keyword arguments; `None` = the survey default.
#[derive(Clone, Debug)]
pub struct Opts {
    pub grid: Option<GridSpec>,
    pub shift: Option<ShiftSource>,
    pub velocity: Vec<(VisitRef, f64)>,
    pub weighting: Option<Weighting>,
    pub exclude: Vec<VisitRef>,
    pub weight: Vec<(VisitRef, f64)>,
    pub bad_bits: Option<u64>,
    pub selection: Option<SelectionMode>,
    pub forward: bool,
    pub standard: bool,
    pub basis: Basis,
    pub compat: bool,
    pub modes: Option<usize>,
    pub interp: Interpolator,
    pub std_mask: StandardMask,
    pub lags: usize,
    pub fit_shifts: bool,
    pub robust: Option<Robust>,
    pub normalize: Option<usize>,
    pub lsf: bool,
    pub settings_file: Option<PathBuf>,
    pub allow_mixed: bool,
}

fn bad(key: &str, v: &Bound<'_, PyAny>, expected: &str) -> PyErr {
    let shown = v
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "?".into());
    PyValueError::new_err(format!("{key}={shown}: expected {expected}"))
}

fn string(key: &str, v: &Bound<'_, PyAny>, expected: &str) -> PyResult<String> {
    v.extract::<String>()
        .map(|s| s.to_ascii_lowercase())
        .map_err(|_| bad(key, v, expected))
}

/// A choice by its name ([`Named`], the command line's names).
fn choice<T: Named>(key: &str, v: &Bound<'_, PyAny>) -> PyResult<T> {
    let expected = T::expected(true);
    let s = string(key, v, &expected)?;
    T::from_name(&s).map_err(|_| bad(key, v, &expected))
}

fn count(key: &str, v: &Bound<'_, PyAny>, min: usize) -> PyResult<usize> {
    if v.is_instance_of::<pyo3::types::PyBool>() {
        return Err(bad(key, v, &format!("an integer >= {min}")));
    }
    match v.extract::<i64>() {
        Ok(n) if n >= min as i64 => Ok(n as usize),
        _ => Err(bad(key, v, &format!("an integer >= {min}"))),
    }
}

fn flag(key: &str, v: &Bound<'_, PyAny>) -> PyResult<bool> {
    v.extract::<bool>()
        .map_err(|_| bad(key, v, "True or False"))
}

fn number(key: &str, v: &Bound<'_, PyAny>) -> PyResult<f64> {
    match v.extract::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(bad(key, v, "a finite number")),
    }
}

fn visit_ref(key: &str, v: &Bound<'_, PyAny>) -> PyResult<VisitRef> {
    if let Ok(s) = v.extract::<String>() {
        return Ok(VisitRef::Name(s));
    }
    match v.extract::<i64>() {
        Ok(i) if i >= 0 && !v.is_instance_of::<pyo3::types::PyBool>() => {
            Ok(VisitRef::Index(i as usize))
        }
        _ => Err(bad(key, v, "a visit name or a 0-based index")),
    }
}

fn per_visit(key: &str, v: &Bound<'_, PyAny>) -> PyResult<Vec<(VisitRef, f64)>> {
    let d = v
        .cast::<PyDict>()
        .map_err(|_| bad(key, v, "a dict {visit name or index: number}"))?;
    let mut out = Vec::new();
    for (k, x) in d.iter() {
        out.push((visit_ref(key, &k)?, number(key, &x)?));
    }
    Ok(out)
}

fn parse_grid(v: &Bound<'_, PyAny>) -> PyResult<GridSpec> {
    const EXPECTED: &str =
        "'apogee', 'boss', 'auto', 'input' or a tuple (log10_start, log10_step, n)";
    if let Ok(s) = v.extract::<String>() {
        return GridSpec::from_fixed_name(&s).ok_or_else(|| bad("grid", v, EXPECTED));
    }
    let (a, b, n): (f64, f64, i64) = v.extract().map_err(|_| bad("grid", v, EXPECTED))?;
    if !(a.is_finite() && b.is_finite() && b > 0.0 && n >= 2) {
        return Err(bad(
            "grid",
            v,
            "a finite start, a positive step and at least 2 pixels",
        ));
    }
    Ok(GridSpec::LogLinear {
        log10_start: a,
        log10_step: b,
        n: n as usize,
    })
}

fn parse_robust(v: &Bound<'_, PyAny>) -> PyResult<Robust> {
    const EXPECTED: &str = "'huber:T', 'cauchy:T', 'clip:T' or a tuple ('huber', T)";
    let (kind, t): (String, f64) = if let Ok(s) = v.extract::<String>() {
        let (k, t) = s
            .split_once(':')
            .ok_or_else(|| bad("robust", v, EXPECTED))?;
        (
            k.to_owned(),
            t.trim().parse().map_err(|_| bad("robust", v, EXPECTED))?,
        )
    } else {
        v.extract().map_err(|_| bad("robust", v, EXPECTED))?
    };
    if !(t.is_finite() && t > 0.0) {
        return Err(bad("robust", v, "a positive threshold in sigma"));
    }
    Robust::from_kind(&kind, t).ok_or_else(|| bad("robust", v, EXPECTED))
}

fn parse_bad_bits(v: &Bound<'_, PyAny>) -> PyResult<u64> {
    const EXPECTED: &str = "a non-negative integer, 'apogee', 'boss' or 'none'";
    if let Ok(s) = v.extract::<String>() {
        return vocab::bad_bits_by_name(&s).ok_or_else(|| bad("bad_bits", v, EXPECTED));
    }
    if v.is_instance_of::<pyo3::types::PyBool>() {
        return Err(bad("bad_bits", v, EXPECTED));
    }
    v.extract::<u64>().map_err(|_| bad("bad_bits", v, EXPECTED))
}

impl Opts {
    /// Parse the keyword arguments (unknown keys are a `TypeError`, as for any Python function).
    pub fn from_dict(d: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let mut o = Opts {
            grid: None,
            shift: None,
            velocity: Vec::new(),
            weighting: None,
            exclude: Vec::new(),
            weight: Vec::new(),
            bad_bits: None,
            selection: None,
            forward: true,
            standard: true,
            basis: Basis::Fourier,
            compat: false,
            modes: None,
            interp: Interpolator::CubicSpline,
            std_mask: StandardMask::Drop,
            lags: 5,
            fit_shifts: false,
            robust: None,
            normalize: None,
            lsf: false,
            settings_file: None,
            allow_mixed: false,
        };
        let Some(d) = d else { return Ok(o) };
        for (k, v) in d.iter() {
            let key: String = k.extract()?;
            if v.is_none() {
                if KEYS.contains(&key.as_str()) {
                    continue;
                }
                return Err(PyTypeError::new_err(format!(
                    "unexpected keyword argument '{key}' (accepted: {})",
                    KEYS.join(", ")
                )));
            }
            match key.as_str() {
                "grid" => o.grid = Some(parse_grid(&v)?),
                "shift" => {
                    o.shift = Some(choice::<ShiftSource>("shift", &v)?);
                }
                "velocity" => o.velocity = per_visit("velocity", &v)?,
                "weight" => {
                    o.weight = per_visit("weight", &v)?;
                    if let Some((_, w)) = o.weight.iter().find(|(_, w)| *w < 0.0) {
                        return Err(PyValueError::new_err(format!(
                            "weight: {w} is negative; visit weights must be >= 0"
                        )));
                    }
                }
                "weighting" => {
                    o.weighting = Some(choice::<Weighting>("weighting", &v)?);
                }
                "exclude" => {
                    let items: Vec<Bound<'_, PyAny>> =
                        if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
                            v.try_iter()?.collect::<PyResult<_>>()?
                        } else {
                            vec![v.clone()]
                        };
                    o.exclude = items
                        .iter()
                        .map(|x| visit_ref("exclude", x))
                        .collect::<PyResult<_>>()?;
                }
                "bad_bits" => o.bad_bits = Some(parse_bad_bits(&v)?),
                "selection" => {
                    o.selection = Some(choice::<SelectionMode>("selection", &v)?);
                }
                "method" => {
                    let m = choice::<Methods>("method", &v)?;
                    (o.forward, o.standard) = (m.forward(), m.standard());
                }
                "basis" => {
                    o.basis = choice::<Basis>("basis", &v)?;
                }
                "compat" => {
                    o.compat = if v.is_instance_of::<pyo3::types::PyBool>() {
                        flag("compat", &v)?
                    } else {
                        const EXPECTED: &str = "'frizzle' (frizzle 0.2.8), True/False or None";
                        let s = string("compat", &v, EXPECTED)?;
                        vocab::compat_from_name(&s).map_err(|_| bad("compat", &v, EXPECTED))?
                    };
                }
                "modes" => o.modes = Some(count("modes", &v, 1)?),
                "interp" => {
                    o.interp = choice::<Interpolator>("interp", &v)?;
                }
                "std_mask" => {
                    o.std_mask = choice::<StandardMask>("std_mask", &v)?;
                }
                "lags" => o.lags = count("lags", &v, 5)?,
                "fit_shifts" => o.fit_shifts = flag("fit_shifts", &v)?,
                "robust" => o.robust = Some(parse_robust(&v)?),
                "normalize" => o.normalize = Some(count("normalize", &v, 0)?),
                "lsf" => o.lsf = flag("lsf", &v)?,
                "settings" => {
                    o.settings_file = Some(v.extract::<PathBuf>().map_err(|_| {
                        bad(
                            "settings",
                            &v,
                            "the path of a previous result or a JSON file",
                        )
                    })?);
                }
                "allow_mixed" => o.allow_mixed = flag("allow_mixed", &v)?,
                _ => {
                    return Err(PyTypeError::new_err(format!(
                        "unexpected keyword argument '{key}' (accepted: {})",
                        KEYS.join(", ")
                    )));
                }
            }
        }
        Ok(o)
    }

    /// The settings for `data`: survey defaults, then these options (as the CLI does).
    pub fn settings(&self, data: &Dataset) -> Result<Settings, String> {
        if let Some(p) = &self.settings_file {
            let s = frizzview_core::export::fits::read_settings(p).map_err(|e| e.to_string())?;
            s.validate()
                .map_err(|e| format!("settings from {}: {e}", p.display()))?;
            return Ok(s);
        }
        let mut s = headless_defaults(data);
        if let Some(g) = &self.grid {
            s.grid = g.clone();
        }
        if let Some(x) = self.shift {
            s.shift = x;
        }
        if let Some(w) = self.weighting {
            s.weighting = w;
        }
        if let Some(b) = self.bad_bits {
            s.bad_bits = b;
        }
        if let Some(x) = self.selection {
            s.selection = x;
        }
        s.forward = self.forward.then_some(ForwardSettings {
            basis: self.basis,
            compat: self.compat,
            n_modes: self.modes,
        });
        // `weighting` sets both methods'; without it standard practice keeps the survey's
        // default (the APOGEE pipeline's row-0 weighting for APOGEE data), as the CLI.
        let std_weighting = match (self.weighting, s.standard.as_ref()) {
            (None, Some(st)) => st.weighting,
            _ => s.weighting,
        };
        s.standard = self.standard.then_some(StandardSettings {
            interpolator: self.interp,
            weighting: std_weighting,
            mask: self.std_mask,
        });
        s.band_lags = self.lags;
        s.extensions = Extensions {
            fit_shifts: self.fit_shifts,
            robust: self.robust,
            normalization_degree: self.normalize,
            lsf: if self.lsf {
                LsfMode::FromVisits
            } else {
                LsfMode::Off
            },
        };
        s.visits = vec![VisitSetting::default(); data.visits.len()];
        for r in &self.exclude {
            for i in find_visits(data, r, "exclude")? {
                s.visits[i].include = false;
            }
        }
        for (r, w) in &self.weight {
            for i in find_visits(data, r, "weight")? {
                s.visits[i].weight = *w;
            }
        }
        for (r, v) in &self.velocity {
            for i in find_visits(data, r, "velocity")? {
                s.visits[i].shift_kms = Some(*v);
            }
        }
        s.validate().map_err(|e| format!("invalid settings: {e}"))?;
        Ok(s)
    }
}

/// The visits a reference designates: an index, or a name as [`vocab::find_visits`] reads it.
fn find_visits(data: &Dataset, r: &VisitRef, key: &str) -> Result<Vec<usize>, String> {
    let n = data.visits.len();
    match r {
        VisitRef::Index(i) if *i < n => Ok(vec![*i]),
        VisitRef::Index(i) => Err(format!(
            "{key}: visit index {i} is out of range ({n} visits)"
        )),
        VisitRef::Name(name) => vocab::find_visits(data, name).map_err(|e| format!("{key}: {e}")),
    }
}
