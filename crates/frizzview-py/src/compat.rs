//! The frizzle 0.2.8 drop-in: frizzle's inputs (one flat array of pixels at arbitrary
//! wavelengths in any unit) through the core's frizzle-compatible Fourier mode.
//!
//! frizzle fits a Fourier series in its own wavelength variable λ with phase
//! u = (λ - λ*_0) (1 - small) 2π / span, small = span / (1 + M*). The pixels enter the core at
//! t = (λ - λ*_0) / span, where the core's ln-wavelength variable carries them without overflow
//! (wavelength e^t), and the phase scale is then set from the caller's span, because `small` is
//! dimensionful (its value depends on the caller's unit). Censoring and
//! flag propagation compare distances with output spacings, so they run on the caller's own λ.

use std::ops::Range;
use std::sync::Arc;

use frizzview_core::combine::censor::{self, Rule};
use frizzview_core::combine::fourier::{self, nufft, trench};
use frizzview_core::combine::{Cancel, prepare};
use frizzview_core::model::{Dataset, OutputGrid, Visit, VisitArrays, VisitMeta};
use frizzview_core::settings::{
    Basis, ForwardSettings, GridSpec, SelectionMode, Settings, ShiftSource, Weighting,
};
use ndarray::Array2;
use rustfft::num_complex::Complex64;

/// The inputs, already flattened, sorted (`lam_out`) and converted by the Python layer.
pub struct Input<'a> {
    pub lam_out: &'a [f64],
    pub lam: &'a [f64],
    pub flux: &'a [f64],
    pub ivar: &'a [f64],
    pub mask: &'a [bool],
    pub flags: Option<&'a [u64]>,
    /// frizzle's `get_modes` result (odd).
    pub n_modes: usize,
    /// Covariance lags beyond 0 to return as a band; `None` = the dense matrix
    /// ([`Output::dense`]).
    pub band_lags: Option<usize>,
    /// The dense matrix one column at a time (the slow reference path) instead of the
    /// closed form (`fourier::trench::dense_covariance`).
    pub dense_by_columns: bool,
}

/// A fitted Fourier series, evaluated at the caller's λ.
#[derive(Clone, Debug)]
pub struct Series {
    pub coef: Vec<Complex64>,
    /// λ*_0 and the span λ*_last - λ*_0 of the map t = (λ - λ*_0) / span.
    pub offset: f64,
    pub span: f64,
    /// Phase u = (t - x0) scale.
    pub x0: f64,
    pub scale: f64,
}

impl Series {
    /// f(λ) for every λ (periodic, like frizzle's model: defined everywhere).
    pub fn eval(&self, lam: &[f64]) -> Vec<f64> {
        let u: Vec<f64> = lam
            .iter()
            .map(|&l| ((l - self.offset) / self.span - self.x0) * self.scale)
            .collect();
        nufft::type2(&self.coef, &u).iter().map(|z| z.re).collect()
    }
}

/// What the drop-in returns before the Python layer applies frizzle's censoring.
pub struct Output {
    /// y* at every output pixel (no censoring applied).
    pub y: Vec<f64>,
    /// `band[k][l] = C*[l, l + k]` (NaN past the end), when a band was asked for.
    pub band: Vec<Vec<f64>>,
    /// The dense C* (M* x M*, no censoring applied), when no band was asked for.
    pub dense: Option<Array2<f64>>,
    /// frizzle's flag rule on the caller's λ.
    pub flags: Vec<u64>,
    /// frizzle's no-data rule on the caller's λ.
    pub no_data: Vec<bool>,
    pub model: Series,
    pub condition: f64,
    pub warnings: Vec<String>,
}

/// Maximal strictly monotonic runs of `w` (the core's visits are monotonic per segment; frizzle's
/// pixels may come in any order and repeat wavelengths).
fn monotonic_runs(w: &[f64]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let n = w.len();
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        if end < n && w[end] != w[start] {
            let up = w[end] > w[start];
            while end < n && w[end] != w[end - 1] && (w[end] > w[end - 1]) == up {
                end += 1;
            }
        }
        out.push(start..end);
        start = end;
    }
    out
}

/// The map into the core's ln-wavelength variable: t = (λ - offset) / span, carried as the
/// wavelength e^t (clamped far outside the output range, where only "far away" matters).
fn to_wavelength(l: f64, offset: f64, span: f64) -> f64 {
    ((l - offset) / span).clamp(-700.0, 700.0).exp()
}

/// Run the frizzle-compatible fit. With `band_lags` = `None`, the dense C* (no censoring
/// applied) is in [`Output::dense`].
pub fn run(inp: &Input<'_>) -> Result<Output, String> {
    let n_out = inp.lam_out.len();
    let n = inp.lam.len();
    if n_out < 2 {
        return Err(format!("λ_out has {n_out} value(s); at least 2 are needed"));
    }
    for (name, len) in [
        ("flux", inp.flux.len()),
        ("ivar", inp.ivar.len()),
        ("mask", inp.mask.len()),
    ] {
        if len != n {
            return Err(format!("{name} has {len} values but λ has {n}"));
        }
    }
    if let Some(f) = inp.flags
        && f.len() != n
    {
        return Err(format!("flags has {} values but λ has {n}", f.len()));
    }
    if n == 0 {
        return Err("no input pixels".into());
    }
    if let Some(i) = inp.lam_out.iter().position(|x| !x.is_finite()) {
        return Err(format!("λ_out[{i}] = {} is not finite", inp.lam_out[i]));
    }
    if let Some(i) = inp.lam_out.windows(2).position(|p| !(p[1] > p[0])) {
        return Err(format!(
            "λ_out has a repeated value {} (at sorted positions {i} and {})",
            inp.lam_out[i],
            i + 1
        ));
    }
    if let Some(i) = inp.lam.iter().position(|x| !x.is_finite()) {
        return Err(format!("λ[{i}] = {} is not finite", inp.lam[i]));
    }
    let offset = inp.lam_out[0];
    let span = inp.lam_out[n_out - 1] - offset;
    let wave: Vec<f64> = inp
        .lam
        .iter()
        .map(|&l| to_wavelength(l, offset, span))
        .collect();
    // The grid goes through the same map (e^t, then the core's ln), so that a pixel at exactly
    // λ*_0 or λ*_last stays inside the range as in frizzle.
    let grid_ln: Vec<f64> = inp
        .lam_out
        .iter()
        .map(|&l| to_wavelength(l, offset, span).ln())
        .collect();
    let grid = OutputGrid::from_ln(grid_ln)
        .ok_or_else(|| "λ_out is too finely spaced for double precision".to_owned())?;
    let segments = monotonic_runs(&wave);
    let visit = Visit::new(
        VisitMeta {
            name: "frizzle input".into(),
            ..VisitMeta::default()
        },
        VisitArrays {
            wavelength_aa: wave,
            flux: inp.flux.to_vec(),
            ivar: inp.ivar.to_vec(),
            bad: inp.mask.to_vec(),
            segments,
            ..VisitArrays::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let data = Dataset {
        name: "frizzle input".into(),
        visits: vec![Arc::new(visit)],
        input_grid: Some(grid),
        ..Dataset::default()
    };
    let fs = ForwardSettings {
        basis: Basis::Fourier,
        compat: true,
        n_modes: Some(inp.n_modes),
    };
    let lags = inp.band_lags.unwrap_or(0).min(n_out - 1);
    let settings = Settings {
        grid: GridSpec::FromInput,
        shift: ShiftSource::None,
        weighting: Weighting::InverseVariance,
        bad_bits: 0,
        selection: SelectionMode::Ignore,
        forward: Some(fs.clone()),
        standard: None,
        band_lags: lags,
        ..Settings::default()
    };
    let cancel = Cancel::new();
    let prep = prepare(&data, &settings).map_err(|e| e.to_string())?;
    let plan = fourier::plan(&prep, &fs).map_err(|e| e.to_string())?;
    let mut seg = plan
        .segments
        .into_iter()
        .next()
        .ok_or_else(|| "no usable pixel inside λ_out".to_owned())?;
    // frizzle's `small = span / (1 + M*)` is dimensionful: it is computed in the caller's unit,
    // so the period is set from the caller's span, not from the core's t = (λ - λ*_0) / span.
    let small = span / (1.0 + n_out as f64);
    let grid_span = prep.grid.ln_wave[n_out - 1] - prep.grid.ln_wave[0];
    seg.scale = (1.0 - small) * std::f64::consts::TAU / grid_span;
    let seg = &seg;
    let sys = fourier::factor_segment(seg, &cancel).map_err(|e| e.to_string())?;
    // The fit's remaining steps (y*, the variance, the condition estimate) and the dense C*
    // need only the factored system: run them side by side.
    // The dense C* is a Rust array handed to numpy without a copy (not a numpy allocation: numpy
    // asks for transparent huge pages above 4 MB, and on this project's VMs the compaction that
    // triggers made case b's 578 MB C* 2-4x slower), written once per entry into the previous
    // call's freed buffer when there is one (`spare`).
    let dense_of = || {
        inp.band_lags.is_none().then(|| {
            let u: Vec<f64> = prep.grid.ln_wave.iter().map(|&x| seg.phase(x)).collect();
            if inp.dense_by_columns {
                trench::covariance_by_columns(&sys.inv, &u)
            } else {
                let mut c = crate::spare::take(u.len());
                trench::dense_covariance_into(&sys.inv, &u, c.view_mut());
                c
            }
        })
    };
    let (sol, dense) = rayon::join(
        || fourier::solve_system(seg, &sys, &prep.grid.ln_wave, lags, &cancel),
        dense_of,
    );
    let sol = sol.map_err(|e| e.to_string())?;
    let mut warnings = Vec::new();
    if sol.cond > fourier::COND_WARN || !sol.cond.is_finite() {
        warnings.push(format!(
            "the normal matrix (P = {}) has condition number {:.3e}: the result may be unreliable",
            2 * seg.m + 1,
            sol.cond
        ));
    }
    if sol.extra_ridge > 0.0 {
        warnings.push(format!(
            "the normal matrix (P = {}) is numerically singular; a ridge of {:.1e} x its diagonal was added",
            2 * seg.m + 1,
            sol.extra_ridge / seg.ws2.iter().sum::<f64>().max(f64::MIN_POSITIVE)
        ));
    }
    if inp.band_lags.is_some() && !sol.uniform && lags > 0 {
        warnings.push(
            "λ_out is not uniformly spaced: the band's lags >= 1 are NaN (use the dense C_star)"
                .into(),
        );
    }
    let no_data = censor::no_data(inp.lam_out, inp.lam, Rule::Compat);
    let flags = match inp.flags {
        Some(f) => censor::propagate_flags(inp.lam_out, inp.lam, f, Rule::Compat),
        None => vec![0; n_out],
    };
    Ok(Output {
        y: sol.flux,
        band: sol.band,
        dense,
        flags,
        no_data,
        model: Series {
            coef: sol.coef,
            offset,
            span,
            x0: seg.x0,
            scale: seg.scale,
        },
        condition: sol.cond,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_split_at_turns_and_repeats() {
        assert_eq!(monotonic_runs(&[1.0, 2.0, 3.0]), vec![0..3]);
        assert_eq!(
            monotonic_runs(&[1.0, 2.0, 2.0, 1.0, 0.5, 3.0]),
            vec![0..2, 2..5, 5..6]
        );
        assert_eq!(monotonic_runs(&[5.0]), vec![0..1]);
    }
}
