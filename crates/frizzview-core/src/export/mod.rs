//! Result writers: an apStar-like FITS file ([`fits`]), `.npz` (NumPy) and `.csv`. They sit above
//! [`crate::combine`] (they write its results) and use [`crate::io`]'s atomic writes.
//!
//! `.npz` keys (forward model unprefixed, standard practice with the prefix `standard_`, every
//! further registered method with its own `MethodInfo::export_prefix`):
//! `lam_out` (ln lambda of the output grid), `wavelength_aa`, `y_star`, `var` (diag C*), `C_band`
//! ((K+1) x M*, row k = C*[l, l+k], NaN past the end), `flags` (uint64), `no_data_mask` (bool),
//! `poorly_constrained_mask` (bool: output pixels with data that the data do not constrain, NaN
//! like no-data pixels), `visit_chi2_nu` (per visit), `visit_loo_chi2_nu` (per visit: chi^2/nu
//! against the model fitted to the other visits; the forward model's, and another method's when
//! it has such scores), and when shift fitting ran
//! `v_fit_kms`, `v_fit_err_kms` (relative to the zero point, whose error they exclude),
//! `v_zero_kms`, `v_zero_err_kms` (one element each: the zero point and its own error) and
//! `v_zero_ref` (UTF-8: what the zero point is); when external velocities were checked against
//! the data, `v_data_kms`, `v_data_err_kms`, `v_peak_ratio`, `v_peak_width_kms`,
//! `v_external_kms` (NaN = none) and `v_replaced` (bool), per visit; plus
//! `settings_json` (UTF-8 bytes of the [`Settings`](crate::settings::Settings) used).
//!
//! `.csv` columns: `wavelength_aa`, then `flux`, `sigma`, `flags`, `no_data`, `poorly_constrained`
//! for the forward model
//! and `standard_flux`, ... for standard practice, then each further method with its prefix
//! (methods that did not run are left out).

pub mod fits;
pub(crate) mod fits_hdu;

use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};

use crate::combine::{Combined, MethodResult};
use crate::io::error::SaveError;

/// The methods of a result with their key prefixes, in registration order.
fn methods(c: &Combined) -> Vec<(&'static str, &MethodResult)> {
    c.results()
        .into_iter()
        .map(|(info, r)| (info.export_prefix, r))
        .collect()
}

/// Write a result as `.npz` (atomically; `inputs` are never overwritten).
pub fn write_npz(path: &Path, c: &Combined, inputs: &[PathBuf]) -> Result<(), SaveError> {
    crate::io::atomic::write_atomic(path, inputs, |tmp| write_npz_to(tmp, path, c))
}

fn write_npz_to(tmp: &Path, shown: &Path, c: &Combined) -> Result<(), SaveError> {
    let file = std::fs::File::create(tmp).map_err(|e| SaveError::new(shown, e))?;
    let mut w = ndarray_npy::NpzWriter::new(std::io::BufWriter::new(file));
    let e = |e: ndarray_npy::WriteNpzError| SaveError::new(shown, e);
    let m = c.grid.len();
    w.add_array("lam_out", &Array1::from_vec(c.grid.ln_wave.clone()))
        .map_err(e)?;
    w.add_array("wavelength_aa", &Array1::from_vec(c.grid.wavelength_aa()))
        .map_err(e)?;
    for (p, r) in methods(c) {
        w.add_array(format!("{p}y_star"), &Array1::from_vec(r.flux.clone()))
            .map_err(e)?;
        w.add_array(format!("{p}var"), &Array1::from_vec(r.var.clone()))
            .map_err(e)?;
        let k = r.band.len();
        let mut band = Array2::<f64>::from_elem((k, m), f64::NAN);
        for (lag, row) in r.band.iter().enumerate() {
            for (l, &x) in row.iter().enumerate().take(m) {
                band[[lag, l]] = x;
            }
        }
        w.add_array(format!("{p}C_band"), &band).map_err(e)?;
        w.add_array(format!("{p}flags"), &Array1::from_vec(r.flags.clone()))
            .map_err(e)?;
        w.add_array(
            format!("{p}no_data_mask"),
            &Array1::from_vec(r.no_data.clone()),
        )
        .map_err(e)?;
        let pc: Vec<bool> = (0..m)
            .map(|l| r.poorly_constrained.get(l).copied().unwrap_or(false))
            .collect();
        w.add_array(format!("{p}poorly_constrained_mask"), &Array1::from_vec(pc))
            .map_err(e)?;
        let chi: Vec<f64> = r.visits.iter().map(|v| v.chi2_nu).collect();
        w.add_array(format!("{p}visit_chi2_nu"), &Array1::from_vec(chi))
            .map_err(e)?;
        // The forward model's always; another method's when it has leave-one-out scores.
        if p.is_empty() || r.visits.iter().any(|v| v.loo_chi2_nu.is_finite()) {
            let loo: Vec<f64> = r.visits.iter().map(|v| v.loo_chi2_nu).collect();
            w.add_array(format!("{p}visit_loo_chi2_nu"), &Array1::from_vec(loo))
                .map_err(e)?;
        }
        if let Some(fv) = &r.fitted_velocity {
            let v: Vec<f64> = fv.iter().map(|x| x.0).collect();
            let s: Vec<f64> = fv.iter().map(|x| x.1).collect();
            w.add_array(format!("{p}v_fit_kms"), &Array1::from_vec(v))
                .map_err(e)?;
            w.add_array(format!("{p}v_fit_err_kms"), &Array1::from_vec(s))
                .map_err(e)?;
        }
        if let Some(z) = &r.velocity_zero_point {
            w.add_array(format!("{p}v_zero_kms"), &Array1::from_vec(vec![z.v_kms]))
                .map_err(e)?;
            w.add_array(
                format!("{p}v_zero_err_kms"),
                &Array1::from_vec(vec![z.err_kms]),
            )
            .map_err(e)?;
            w.add_array(
                format!("{p}v_zero_ref"),
                &Array1::from_vec(z.name.as_bytes().to_vec()),
            )
            .map_err(e)?;
        }
    }
    if let Some(vc) = &c.velocity {
        let col = |g: &dyn Fn(&crate::velocity::VisitVelocity) -> f64| -> Array1<f64> {
            Array1::from_vec(vc.visits.iter().map(g).collect())
        };
        w.add_array("v_data_kms", &col(&|x| x.data_kms))
            .map_err(e)?;
        w.add_array("v_data_err_kms", &col(&|x| x.err_kms))
            .map_err(e)?;
        w.add_array("v_peak_ratio", &col(&|x| x.quality.peak_ratio))
            .map_err(e)?;
        w.add_array("v_peak_width_kms", &col(&|x| x.quality.width_kms))
            .map_err(e)?;
        w.add_array(
            "v_external_kms",
            &col(&|x| x.external_kms.unwrap_or(f64::NAN)),
        )
        .map_err(e)?;
        let rep: Vec<bool> = vc.visits.iter().map(|x| x.replaced).collect();
        w.add_array("v_replaced", &Array1::from_vec(rep))
            .map_err(e)?;
    }
    let json = serde_json::to_vec(&c.settings).map_err(|x| SaveError::new(shown, x))?;
    w.add_array("settings_json", &Array1::from_vec(json))
        .map_err(e)?;
    w.finish().map_err(e)?;
    Ok(())
}

/// Write a result as CSV (comma-separated; `.tsv` gets tabs), atomically.
pub fn write_csv(path: &Path, c: &Combined, inputs: &[PathBuf]) -> Result<(), SaveError> {
    let tab = path
        .extension()
        .is_some_and(|x| x.eq_ignore_ascii_case("tsv"));
    crate::io::atomic::write_atomic(path, inputs, |tmp| {
        write_csv_to(tmp, c, if tab { '\t' } else { ',' }).map_err(|e| SaveError::new(path, e))
    })
}

fn write_csv_to(tmp: &Path, c: &Combined, sep: char) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(tmp)?);
    let ms = methods(c);
    let mut header = vec!["wavelength_aa".to_owned()];
    for (p, _) in &ms {
        for col in ["flux", "sigma", "flags", "no_data", "poorly_constrained"] {
            header.push(format!("{p}{col}"));
        }
    }
    writeln!(w, "{}", header.join(&sep.to_string()))?;
    let wave = c.grid.wavelength_aa();
    for (l, wl) in wave.iter().enumerate() {
        let mut row = vec![format!("{wl:.6}")];
        for (_, r) in &ms {
            let f = r.flux.get(l).copied().unwrap_or(f64::NAN);
            let v = r.var.get(l).copied().unwrap_or(f64::NAN);
            row.push(format!("{f:e}"));
            row.push(format!("{:e}", v.sqrt()));
            row.push(r.flags.get(l).copied().unwrap_or(0).to_string());
            row.push(u8::from(r.no_data.get(l).copied().unwrap_or(true)).to_string());
            row.push(u8::from(r.poorly_constrained.get(l).copied().unwrap_or(false)).to_string());
        }
        writeln!(w, "{}", row.join(&sep.to_string()))?;
    }
    w.flush()
}
