//! Synthetic data written out in SDSS-V layouts: an astra mwmVisit built from the APOGEE-like
//! generator ([`super::apogee`]), its visits resampled onto the apStar grid the way astra stores
//! them (rows in the stack in the rest frame, the others with v = 0, i.e. observed frame).

use super::apogee::{self, ApogeeParams};
use crate::model::{OutputGrid, VelocityKind, shift_from_velocity};
use crate::testkit::sdss_layouts::{MwmHdu, MwmRow};

/// Linear interpolation of (x, y) (x monotonic either way) at `xq`; NaN outside.
fn interp(x: &[f64], y: &[f64], xq: f64) -> f64 {
    let up = x.len() > 1 && x[1] > x[0];
    let key = |t: f64| if up { t } else { -t };
    let i = x.partition_point(|&t| key(t) < key(xq));
    if i == 0 || i >= x.len() {
        return f64::NAN;
    }
    let t = (xq - x[i - 1]) / (x[i] - x[i - 1]);
    y[i - 1] * (1.0 - t) + y[i] * t
}

/// An mwmVisit for `n_visits` synthetic APOGEE visits (APOGEE/APO; the other HDUs empty but for
/// one flat BOSS/APO row). Visits with an even index are `in_stack` (rest frame), the others are
/// resampled with v = 0. Returns the SDSS_ID and the four HDUs.
pub fn mwm_visit_example(n_visits: usize) -> Result<(i64, [MwmHdu; 4]), String> {
    let p = ApogeeParams {
        n_visits,
        ..ApogeeParams::clean()
    };
    let data = apogee::generate(&p)?;
    let grid = OutputGrid::apogee();
    let mut rows = Vec::new();
    for (j, v) in data.visits.iter().enumerate() {
        let in_stack = j % 2 == 0;
        let vrel = v.meta.velocity(VelocityKind::Vrel).unwrap_or(0.0);
        let bc = v.meta.velocity(VelocityKind::Bc).unwrap_or(0.0);
        let dx = if in_stack {
            shift_from_velocity(vrel)
        } else {
            0.0
        };
        let mut flux = Vec::with_capacity(grid.len());
        let mut ivar = Vec::with_capacity(grid.len());
        let mut flags = Vec::with_capacity(grid.len());
        for &xg in &grid.ln_wave {
            // Rest-frame pixel xg sits at observed xg + dx.
            let mut f = f64::NAN;
            let mut iv = 0.0;
            for seg in v.segments() {
                let x = &v.ln_wave()[seg.clone()];
                let y = &v.flux()[seg.clone()];
                let w = &v.ivar()[seg.clone()];
                let fi = interp(x, y, xg + dx);
                if fi.is_finite() {
                    f = fi;
                    iv = interp(x, w, xg + dx);
                }
            }
            if f.is_finite() {
                flux.push(f as f32);
                ivar.push(iv as f32);
                flags.push(0);
            } else {
                flux.push(0.0);
                ivar.push(0.0);
                flags.push(1);
            }
        }
        rows.push(MwmRow {
            flux,
            ivar,
            pixel_flags: flags,
            in_stack,
            v_rad: vrel + bc,
            v_rel: vrel,
            e_v_rel: 0.05,
            bc,
            snr: v.meta.snr.unwrap_or(0.0),
            mjd: (v.meta.jd.unwrap_or(2_459_000.5) - 2_400_000.5).floor() as i64,
            jd: v.meta.jd.unwrap_or(f64::NAN),
            telescope: "apo25m".into(),
            release: if j == 0 { "dr17".into() } else { "dr19".into() },
        });
    }
    let boss = OutputGrid::boss();
    let boss_row = MwmRow {
        flux: vec![1.0; boss.len()],
        ivar: vec![100.0; boss.len()],
        pixel_flags: vec![0; boss.len()],
        in_stack: false,
        v_rad: 15.0,
        v_rel: f64::NAN,
        e_v_rel: f64::NAN,
        bc: f64::NAN,
        snr: 10.0,
        mjd: 59_800,
        jd: 2_459_800.8,
        telescope: "apo25m".into(),
        release: "dr19".into(),
    };
    let hdu = |name: &str, crval: f64, cdelt: f64, npix: usize, rows: Vec<MwmRow>| MwmHdu {
        name: name.into(),
        crval,
        cdelt,
        npix,
        rows,
    };
    Ok((
        63_050_396_587,
        [
            hdu("BOSS/APO", 3.5523, 1e-4, boss.len(), vec![boss_row]),
            hdu("BOSS/LCO", 3.5523, 1e-4, boss.len(), Vec::new()),
            hdu("APOGEE/APO", 4.179, 6e-6, grid.len(), rows),
            hdu("APOGEE/LCO", 4.179, 6e-6, grid.len(), Vec::new()),
        ],
    ))
}
