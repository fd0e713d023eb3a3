//! Velocities from the data against the pipeline's own, on real stars.
//!
//! Four DR13 stars of `../shared/data/apogee_multistar/` (visits renamed; header velocities off by
//! up to 800 km/s) and the star of `../shared/data/apogee_2M00005143+5615568/`. The truth is the
//! apStar's VRADn / VERRn cards, read here with fitsio and matched to the visits through the
//! apStar's SFILEn names and the visit headers' PLATE / MJD5 / FIBERID (the files are renamed;
//! nothing here depends on the reader matching companions). The folders are read in place and
//! never copied into the repository; absent folders skip with a message (a failure under CI).
//!
//! The figures print with
//! `cargo test --test integration velocity:: -- --nocapture --test-threads 1`.

use std::path::{Path, PathBuf};

use frizzview::cli::combine::survey_defaults;
use frizzview::combine::{Cancel, Warning, combine, prepare};
use frizzview::model::{Dataset, VelocityKind};
use frizzview::settings::{Settings, ShiftFitModel};

/// Three stars of `apogee_multistar/` (visit S/N 10-72).
const STARS: [&str; 3] = [
    "2M00452143+1634446",
    "2M03442721+3220288",
    "2M05392474+4038437",
];

/// The fourth star: every visit at S/N 4.5-7 (the pipeline's own VSCATTER 4.4 km/s).
const FAINT_STAR: &str = "2M12294016+2619567";

/// RV-stable stars (pipeline VSCATTER < 0.5 km/s), as (folder under ../shared/data).
const STABLE: [&str; 3] = [
    "apogee_multistar/2M05392474+4038437",
    "apogee_multistar/2M00452143+1634446",
    "apogee_2M00005143+5615568",
];

fn shared(sub: &str) -> Option<PathBuf> {
    super::shared::data(sub, "the real APOGEE stars")
}

/// One visit file and the apStar's word on it.
#[derive(Clone, Debug)]
struct Truth {
    file: PathBuf,
    /// apStar VRADn, VERRn (None: the pipeline left the visit out).
    vrad: Option<(f64, f64)>,
}

fn key_str(f: &mut fitsio::FitsFile, key: &str) -> String {
    let h = f.primary_hdu().expect("primary HDU");
    let s: String = h.read_key(f, key).expect(key);
    s.trim().to_owned()
}

fn key_f64(f: &mut fitsio::FitsFile, key: &str) -> Option<f64> {
    let h = f.primary_hdu().expect("primary HDU");
    h.read_key::<f64>(f, key).ok()
}

/// The visit files of a star folder (sorted by their index) with the apStar's VRADn.
fn truth(dir: &Path) -> Vec<Truth> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read star folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("apVisit-") && n.ends_with(".fits"))
        })
        .collect();
    let index = |p: &PathBuf| -> i64 {
        let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        stem.rsplit('-')
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0)
    };
    files.sort_by_key(|p| (index(p), p.clone()));
    let apstar = std::fs::read_dir(dir)
        .expect("read star folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("apStar-"))
        })
        .expect("an apStar in the folder");
    let mut a = fitsio::FitsFile::open(&apstar).expect("open apStar");
    let nvis = key_f64(&mut a, "NVISITS").expect("NVISITS") as usize;
    // (plate, mjd, fiber) -> (vrad, verr)
    let mut rows = Vec::new();
    for n in 1..=nvis {
        let sfile = key_str(&mut a, &format!("SFILE{n}"));
        let parts: Vec<&str> = sfile.trim_end_matches(".fits").split('-').collect();
        let l = parts.len();
        assert!(l >= 4, "SFILE{n} = {sfile}");
        let id: (i64, i64, i64) = (
            parts[l - 3].parse().expect("plate"),
            parts[l - 2].parse().expect("mjd"),
            parts[l - 1].parse().expect("fiber"),
        );
        let v = key_f64(&mut a, &format!("VRAD{n}")).expect("VRADn");
        let e = key_f64(&mut a, &format!("VERR{n}")).expect("VERRn");
        rows.push((id, (v, e)));
    }
    files
        .into_iter()
        .map(|file| {
            let mut f = fitsio::FitsFile::open(&file).expect("open apVisit");
            let plate: i64 = key_str(&mut f, "PLATE").parse().expect("PLATE");
            let mjd = key_f64(&mut f, "MJD5").expect("MJD5") as i64;
            let fiber = key_f64(&mut f, "FIBERID").expect("FIBERID") as i64;
            let vrad = rows
                .iter()
                .find(|(id, _)| *id == (plate, mjd, fiber))
                .map(|(_, v)| *v);
            Truth { file, vrad }
        })
        .collect()
}

fn load(t: &[Truth]) -> Dataset {
    let files: Vec<PathBuf> = t.iter().map(|x| x.file.clone()).collect();
    frizzview::io::load_paths(&files, &frizzview::io::LoadOptions::default()).expect("load visits")
}

/// Per visit: (velocity used, stated error) from a prepared or fitted combination.
struct Outcome {
    v: Vec<f64>,
    err: Vec<f64>,
    warnings: Vec<Warning>,
}

fn outcome_checked(data: &Dataset, s: &Settings) -> Outcome {
    let p = prepare(data, s).expect("prepare");
    let c = p.velocity.as_ref().expect("the default checks velocities");
    Outcome {
        v: p.visits.iter().map(|v| v.v_kms).collect(),
        err: c.visits.iter().map(|v| v.err_kms).collect(),
        warnings: p.warnings.clone(),
    }
}

fn outcome_fitted(data: &Dataset, s: &Settings) -> Outcome {
    let mut s = s.clone();
    s.extensions.fit_shifts = true;
    s.standard = None;
    let c = combine(data, &s, &Cancel::new()).expect("combine");
    let fv = c
        .forward
        .as_ref()
        .and_then(|r| r.fitted_velocity.clone())
        .expect("fitted velocities");
    Outcome {
        v: fv.iter().map(|x| x.0).collect(),
        err: fv.iter().map(|x| x.1).collect(),
        warnings: c.warnings,
    }
}

/// Never more than 5 km/s from the apStar for any visit (relative velocities, to the first visit
/// in the apStar).
fn assert_within_5_kms(star: &str, t: &[Truth], o: &Outcome) {
    let first = t.iter().position(|x| x.vrad.is_some()).expect("truth");
    let v0 = t[first].vrad.expect("truth").0;
    for (i, x) in t.iter().enumerate() {
        if let Some((v, _)) = x.vrad {
            let d = (o.v[i] - o.v[first]) - (v - v0);
            assert!(d.abs() < 5.0, "{star} visit {i}: {d:.2} km/s off");
        }
    }
}

/// Compare relative velocities with the apStar's; returns the largest |d| / tolerance and a
/// printed table.
fn compare(star: &str, what: &str, data: &Dataset, t: &[Truth], o: &Outcome) -> f64 {
    let first = t
        .iter()
        .position(|x| x.vrad.is_some())
        .expect("a visit in the apStar");
    let (v0, e0) = t[first].vrad.expect("truth");
    let mut worst: f64 = 0.0;
    println!("{star} [{what}] (relative to visit {first}):");
    println!(
        "  visit  S/N    header      ours    +-err   apStar d   ours d   diff    tol |diff|/tol"
    );
    for (i, x) in t.iter().enumerate() {
        let snr = data.visits[i].meta.snr.unwrap_or(0.0);
        let hdr = data.visits[i]
            .meta
            .velocity(VelocityKind::Vrel)
            .unwrap_or(f64::NAN);
        let Some((vi, ei)) = x.vrad else {
            println!(
                "  {i:>5} {snr:>5.1} {hdr:>9.2} {:>9.2} {:>7.3}   (not in the apStar)",
                o.v[i], o.err[i]
            );
            continue;
        };
        if i == first {
            println!(
                "  {i:>5} {snr:>5.1} {hdr:>9.2} {:>9.2} {:>7.3}   reference",
                o.v[i], o.err[i]
            );
            continue;
        }
        let d_true = vi - v0;
        let d_ours = o.v[i] - o.v[first];
        let comb = (o.err[i].powi(2) + o.err[first].powi(2) + ei * ei + e0 * e0).sqrt();
        let tol = if snr >= 10.0 {
            (3.0 * comb).max(0.5)
        } else {
            5.0
        };
        let diff = d_ours - d_true;
        println!(
            "  {i:>5} {snr:>5.1} {hdr:>9.2} {:>9.2} {:>7.3} {d_true:>9.2} {d_ours:>9.2} {diff:>6.2} {tol:>6.2} {:>9.2}",
            o.v[i],
            o.err[i],
            diff.abs() / tol
        );
        worst = worst.max(diff.abs() / tol);
    }
    worst
}

/// The visits whose header velocity is far off the apStar's (relative to their median offset)
/// must be named in a replacement warning, and every replaced visit named.
fn check_warnings(star: &str, data: &Dataset, t: &[Truth], o: &Outcome) {
    let named: Vec<String> = o
        .warnings
        .iter()
        .filter_map(|w| match w {
            Warning::VelocityReplaced { visit, .. } => Some(visit.clone()),
            _ => None,
        })
        .collect();
    let mut off: Vec<f64> = t
        .iter()
        .enumerate()
        .filter_map(|(i, x)| {
            let h = data.visits[i].meta.velocity(VelocityKind::Vrel)?;
            x.vrad.map(|(v, _)| h - v)
        })
        .collect();
    off.sort_by(f64::total_cmp);
    let med = off[off.len() / 2];
    for (i, x) in t.iter().enumerate() {
        let name = &data.visits[i].meta.name;
        let h = data.visits[i].meta.velocity(VelocityKind::Vrel);
        if let (Some(h), Some((v, _))) = (h, x.vrad)
            && (h - v - med).abs() > 50.0
        {
            assert!(
                named.contains(name),
                "{star}: visit {name} header {h:.1} vs apStar {v:.1} is not named: {named:?}"
            );
        }
    }
    println!("{star}: replaced (named in warnings): {named:?}");
}

#[test]
fn relative_velocities_match_the_apstar_on_three_real_stars() {
    relative_velocities(&STARS);
}

/// Known failure, investigated: at S/N 5-7 per visit the search's relative velocities are
/// 6.5-10.9 km/s off the apStar's on 4 of the 5 visits compared (to visit 0, itself ~6 km/s off).
/// The apStar's VRADn are not a reference at that level here. (1) Cross-correlating each visit
/// against the stack of the *other* visits placed at the apStar's velocities (leave-one-out,
/// sky and telluric pixels masked as the search does) does not return the apStar's velocities
/// (visit 0: 27.1 vs 35.3 km/s, visit 2: 59.9 vs 46.9, visit 7: 41.9 vs 44.4); placed at ours,
/// it returns ours within 1.2 km/s, with correlation peaks higher on 4 of the 6 visits (0.12
/// against 0.05 on visit 2) and within 0.002 on the other two. (These leave-one-out figures are
/// from an independent numpy re-implementation of the search, not from this crate.) (2) With the sky and telluric pixels used, the apStar's placement becomes
/// self-consistent (leave-one-out within 2 km/s of VRADn): the apStar's relative velocities lean
/// on pixels whose residuals are fixed in the observed frame. The search now measures that
/// sensitivity (`SearchResult::pixel_sensitivity_dx`) and states it in the errors: 0.9-14.2
/// km/s per visit on this star (visit 0: 14.2 km/s; formal errors alone 0.4-1.0). The pipeline's VERRn (1.18 km/s) and its VSCATTER (4.36)
/// disagree with each other by a factor 3.7 as well. Which relative velocities are right on this
/// star is measured from its files in
/// [`on_the_faint_star_our_velocities_follow_the_barycentric_motion_and_the_apstars_lag`] (ours
/// follow the barycentric motion, the apStar's lag toward a constant topocentric velocity), and
/// with known truth in `synth::faint_cool_star_velocities_are_recovered_and_sky_pixels_pull_them_toward_zero`.
#[test]
#[ignore = "known failure, investigated: at S/N 5-7 the apStar's VRADn lean on sky/telluric pixels; ours differ by up to 11 km/s"]
fn relative_velocities_match_the_apstar_on_the_faint_star() {
    relative_velocities(&[FAINT_STAR]);
}

fn relative_velocities(stars: &[&str]) {
    velocities_against_the_apstar(stars, false, true);
}

#[test]
fn fitted_velocities_match_the_apstar_on_two_real_stars() {
    fitted_velocities(&[STARS[0], STARS[2]], true);
}

/// The 16-visit star: every visit within 5 km/s of the apStar's differences (the trust region
/// holds the shift fit within 3 km/s of the search's velocities).
#[test]
fn fitted_velocities_stay_within_5_kms_on_the_16_visit_star() {
    fitted_velocities(&[STARS[1]], false);
}

/// The 16-visit star with all 16 files, `--fit-shifts` with the defaults: every visit within the
/// strict tolerance of [`compare`]. Visit -9 (S/N 3.3, the visit the pipeline left out of its
/// apStar, leave-one-out chi^2/nu 684: its errors far too small for its residuals) is left out
/// of the model the shifts are fitted against (`ShiftFitModel::WithoutOutliers`, the outlier rule
/// of the poor-fit warning), its own shift fitted against the other 15, and a warning names it.
/// With it in that model the shift fit drifted by up to 4 km/s on visits 13 and 14 (S/N 18.5,
/// 14.5), 2.37 times the tolerance:
/// [`fitted_velocities_on_the_16_visit_star_fail_with_every_visit_in_the_shift_model`].
#[test]
fn fitted_velocities_match_the_apstar_on_the_16_visit_star() {
    let worst = fitted_on_the_16_visit_star(ShiftFitModel::WithoutOutliers);
    assert!(worst <= 1.0, "worst |diff|/tol {worst:.2}");
}

/// The former method, kept as a setting (`ShiftFitModel::AllVisits`), fails on the same data:
/// visit -9 shapes the joint model and the visits of similar barycentric correction (-10 to -14,
/// BC -24 to -30 km/s against its -23) follow it (worst 2.37 times the tolerance, visit 14).
/// Masking the sky and telluric pixels in the shift fit did not change it (worst 2.39x).
#[test]
fn fitted_velocities_on_the_16_visit_star_fail_with_every_visit_in_the_shift_model() {
    let worst = fitted_on_the_16_visit_star(ShiftFitModel::AllVisits);
    assert!(
        worst > 1.0,
        "the former shift-fit model passes now (worst |diff|/tol {worst:.2}): the test no longer shows the fix"
    );
}

/// The third option measured: the outlier kept in the shift fit's model with its weight divided
/// by its leave-one-out chi^2/nu (684). Printed beside the others; the figure is asserted loosely
/// (within the 5 km/s bound of every `--fit-shifts` run, checked in the helper).
#[test]
fn fitted_velocities_on_the_16_visit_star_with_the_outlier_scaled() {
    let worst = fitted_on_the_16_visit_star(ShiftFitModel::OutliersScaled);
    println!("worst |diff|/tol with the outlier's weight scaled: {worst:.2}");
}

/// `--fit-shifts` on the 16-visit star (all 16 files, survey defaults) with the given model of
/// the shift fit: the table of [`compare`], the 5 km/s bound on every visit and, unless
/// `AllVisits`, the warning naming visit -9 as left out (or scaled). Returns the worst
/// |diff|/tol; NaN when the data are absent.
fn fitted_on_the_16_visit_star(how: ShiftFitModel) -> f64 {
    let Some(root) = shared("apogee_multistar") else {
        return f64::NAN;
    };
    let star = STARS[1];
    let t = truth(&root.join(star));
    let data = load(&t);
    let mut s = survey_defaults(&data);
    s.velocity.shift_fit_model = how;
    let o = outcome_fitted(&data, &s);
    let worst = compare(star, &format!("--fit-shifts, {how:?}"), &data, &t, &o);
    println!("{star} [{how:?}]: worst |diff|/tol {worst:.2}");
    assert_within_5_kms(star, &t, &o);
    let named: Vec<String> = o
        .warnings
        .iter()
        .map(ToString::to_string)
        .filter(|w| w.contains("the model the shifts are fitted against"))
        .collect();
    println!("{star} [{how:?}]: {named:?}");
    if how == ShiftFitModel::AllVisits {
        assert!(named.is_empty(), "{named:?}");
    } else {
        // The one visit named is the one the pipeline left out.
        assert_eq!(named.len(), 1, "{named:?}");
        let left_out: Vec<usize> = (0..t.len())
            .filter(|&i| named[0].contains(&format!("visit {}:", data.visits[i].meta.name)))
            .collect();
        assert_eq!(left_out.len(), 1, "{named:?}");
        assert!(t[left_out[0]].vrad.is_none(), "{named:?}");
    }
    worst
}

/// The 16-visit star as a user fixes it in one click: the visits the poor-fit warning names as
/// outliers (by leave-one-out chi^2/nu) are excluded, then `--fit-shifts` matches the apStar's
/// relative velocities within the strict tolerance on every visit (worst 0.84x). The excluded
/// visits come from the warning of the default combination, not from this test. With them
/// included, the default `--fit-shifts` gives the same velocities (it leaves the same visits out
/// of the model the shifts are fitted against).
#[test]
fn fitted_velocities_match_the_apstar_on_the_16_visit_star_without_the_visit_the_warning_names() {
    let Some(root) = shared("apogee_multistar") else {
        return;
    };
    let star = STARS[1];
    let t = truth(&root.join(star));
    let data = load(&t);
    let mut s = survey_defaults(&data);
    let first = combine(&data, &s, &Cancel::new()).expect("combine");
    let outliers: Vec<String> = first
        .warnings
        .iter()
        .filter_map(|w| match w {
            Warning::PoorFit { outliers, .. } => Some(outliers.iter().map(|(n, _)| n.clone())),
            _ => None,
        })
        .flatten()
        .collect();
    println!("{star}: the poor-fit warning names {outliers:?}");
    assert!(!outliers.is_empty(), "no outlier named");
    // The named visits are all ones the pipeline left out of its apStar.
    s.visits.resize(
        data.visits.len(),
        frizzview::settings::VisitSetting::default(),
    );
    for (i, v) in data.visits.iter().enumerate() {
        if outliers.contains(&v.meta.name) {
            assert!(t[i].vrad.is_none(), "{} is in the apStar", v.meta.name);
            s.visits[i].include = false;
        }
    }
    let o = outcome_fitted(&data, &s);
    let worst = compare(star, "--fit-shifts, warned visits excluded", &data, &t, &o);
    assert!(worst <= 1.0, "{star}: worst |diff|/tol {worst:.2}");
    // With every visit included, the default shift fit leaves the same visits out of its model
    // (`ShiftFitModel::WithoutOutliers`): every fitted velocity is the one of the fit without
    // them (the left-out visits' own too: in both runs fitted against the others' model).
    let all = outcome_fitted(&data, &survey_defaults(&data));
    let mut largest: f64 = 0.0;
    for (i, (a, b)) in all.v.iter().zip(&o.v).enumerate() {
        println!("  visit {i:>2}: {a:>9.4} (all included) {b:>9.4} (excluded) km/s");
        largest = largest.max((a - b).abs());
    }
    println!("{star}: largest |difference| {largest:.2e} km/s");
    assert!(largest < 1e-3, "{star}: {largest} km/s");
}

/// Known failure, as [`relative_velocities_match_the_apstar_on_the_faint_star`] (the shift fit
/// starts from the search's velocities and stays within 3 km/s of them).
#[test]
#[ignore = "known failure, investigated: at S/N 5-7 the apStar's VRADn lean on sky/telluric pixels; ours differ by up to 14 km/s"]
fn fitted_velocities_match_the_apstar_on_the_faint_star() {
    fitted_velocities(&[FAINT_STAR], true);
}

fn fitted_velocities(stars: &[&str], strict: bool) {
    velocities_against_the_apstar(stars, true, strict);
}

/// Each star's velocities (the search's with the defaults, or `--fit-shifts`'s) against the
/// apStar's: relative velocities within the tolerance of [`compare`] (required when `strict`),
/// every replaced header named; with `fit`, no visit more than 5 km/s away in any case.
fn velocities_against_the_apstar(stars: &[&str], fit: bool, strict: bool) {
    let Some(root) = shared("apogee_multistar") else {
        return;
    };
    let mut fails = Vec::new();
    for &star in stars {
        let t = truth(&root.join(star));
        let data = load(&t);
        let s = survey_defaults(&data);
        let (o, what) = if fit {
            (outcome_fitted(&data, &s), "--fit-shifts")
        } else {
            (outcome_checked(&data, &s), "default: data velocities")
        };
        let worst = compare(star, what, &data, &t, &o);
        check_warnings(star, &data, &t, &o);
        if strict && worst > 1.0 {
            fails.push(format!("{star}: worst |diff|/tol {worst:.2}"));
        }
        if fit {
            assert_within_5_kms(star, &t, &o);
        }
    }
    assert!(fails.is_empty(), "{fails:?}");
}

/// Barycentric velocities v + BC fitted by `--fit-shifts` on the RV-stable stars: the floor that
/// makes chi^2 of constancy equal its degrees of freedom (with the formal errors), and the RMS of
/// (v_bary - mean) / stated error with the defaults.
#[test]
fn velocity_floor_from_the_stable_stars() {
    let mut formal_sets = Vec::new();
    let mut stated_chi2 = 0.0;
    let mut stated_dof = 0usize;
    for sub in STABLE {
        let Some(dir) = shared(sub) else {
            return;
        };
        let t = truth(&dir);
        let data = load(&t);
        let mut s = survey_defaults(&data);
        let o = outcome_fitted(&data, &s);
        s.velocity.floor_kms = 0.0;
        let o0 = outcome_fitted(&data, &s);
        let bary: Vec<f64> = (0..data.visits.len())
            .map(|i| {
                o.v[i]
                    + data.visits[i]
                        .meta
                        .velocity(VelocityKind::Bc)
                        .expect("BC in the header")
            })
            .collect();
        let pts: Vec<(f64, f64)> = bary.iter().copied().zip(o.err.iter().copied()).collect();
        let f = frizzview::velocity::star_figures_of(&pts).expect("figures");
        let pipeline: Vec<f64> = t
            .iter()
            .zip(&data.visits)
            .filter_map(|(x, v)| {
                x.vrad
                    .map(|(r, _)| r + v.meta.velocity(VelocityKind::Bc).unwrap_or(f64::NAN))
            })
            .collect();
        println!(
            "{sub}: v_bary {bary:.3?} (apStar VRADn + BC: {pipeline:.3?}); formal errors {:.3?}; stated {:.3?}; mean {:.3} scatter {:.3} km/s, chi2 {:.2} / {} dof",
            o0.err, o.err, f.mean_bary_kms, f.scatter_kms, f.chi2, f.dof
        );
        stated_chi2 += f.chi2;
        stated_dof += f.dof;
        let bary0: Vec<f64> = (0..data.visits.len())
            .map(|i| {
                o0.v[i]
                    + data.visits[i]
                        .meta
                        .velocity(VelocityKind::Bc)
                        .unwrap_or(f64::NAN)
            })
            .collect();
        formal_sets.push((bary0, o0.err.clone()));
    }
    // The floor f solving sum chi^2(f) = sum dof (bisection; chi^2 decreases with f).
    let chi2_at = |floor: f64| -> f64 {
        formal_sets
            .iter()
            .map(|(b, e)| {
                let pts: Vec<(f64, f64)> = b
                    .iter()
                    .zip(e)
                    .map(|(b, e)| (*b, (e * e + floor * floor).sqrt()))
                    .collect();
                frizzview::velocity::star_figures_of(&pts)
                    .expect("figures")
                    .chi2
            })
            .sum()
    };
    let (mut lo, mut hi) = (0.0, 5.0);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if chi2_at(mid) > stated_dof as f64 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let rms = (stated_chi2 / stated_dof as f64).sqrt();
    println!(
        "floor making chi^2 = dof over the stable stars: {:.3} km/s (APOGEE_FLOOR_KMS = {}); RMS of (v_bary - mean)/stated error: {rms:.3}",
        0.5 * (lo + hi),
        frizzview::velocity::APOGEE_FLOOR_KMS
    );
    assert!((0.5..=2.0).contains(&rms), "RMS {rms:.3}");
}

/// The rest frame: on the real K giant (`apogee_2M00005143+5615568`, whose lines the shipped
/// laboratory reference finds) the header zero point agrees with the lines and is kept; with every
/// header velocity moved by the same +580 km/s (the failure of `2M05392474+4038437`'s headers,
/// which relative alignment cannot see) the lines' zero point replaces it, a warning says so, and
/// the barycentric velocity is the apStar's VHELIO within 2 km/s. On the M dwarfs of
/// `apogee_multistar`, whose H band is molecular, the rest frame is the cool-star template's and
/// right, or reported unverified.
#[test]
fn a_common_header_offset_is_caught_by_the_rest_frame() {
    let Some(dir) = shared("apogee_2M00005143+5615568") else {
        return;
    };
    let t = truth(&dir);
    let data = load(&t);
    let s = survey_defaults(&data);
    let good = prepare(&data, &s).expect("prepare");
    let c = good.velocity.as_ref().expect("checked");
    eprintln!("K giant: {}", c.rest_frame.describe());
    assert!(
        matches!(
            c.rest_frame,
            frizzview::velocity::RestFrame::Measured { .. }
        ),
        "{:?}",
        c.rest_frame
    );
    assert!(
        c.zero_point_replaced.is_none(),
        "{:?}",
        c.zero_point_replaced
    );
    let mut apstar =
        fitsio::FitsFile::open(dir.join("apStar-r6-2M00005143+5615568.fits")).expect("apStar");
    let vhelio = key_f64(&mut apstar, "VHELIO").expect("VHELIO");

    let offset = 580.0;
    let mut shifted = data.clone();
    shifted.visits = data
        .visits
        .iter()
        .map(|v| {
            let mut v = (**v).clone();
            let h = v.meta.velocity(VelocityKind::Vrel).expect("header VRAD");
            v.meta.set_velocity(VelocityKind::Vrel, h + offset);
            std::sync::Arc::new(v)
        })
        .collect();
    let bad = prepare(&shifted, &s).expect("prepare shifted");
    let cb = bad.velocity.as_ref().expect("checked");
    let (external, rest) = cb.zero_point_replaced.expect("the common offset is caught");
    eprintln!("headers +{offset}: external zero point {external:.2}, lines {rest:.2} km/s");
    assert!(
        (external - rest - offset).abs() < 3.0,
        "{external} vs {rest}"
    );
    assert!(
        bad.warnings
            .iter()
            .any(|w| w.to_string().contains("contradict")),
        "no warning about the zero point"
    );
    let star = cb.star.as_ref().expect("star figures");
    eprintln!(
        "barycentric velocity {:.2} km/s, apStar VHELIO {vhelio:.2}",
        star.mean_bary_kms
    );
    assert!((star.mean_bary_kms - vhelio).abs() < 2.0);
    for (a, b) in bad.visits.iter().zip(&good.visits) {
        assert!(
            (a.v_kms - b.v_kms).abs() < 2.0,
            "{} vs {}",
            a.v_kms,
            b.v_kms
        );
    }

    // The M dwarfs (the faint one too, S/N 5-7 per visit): the cool-star template's frame, right
    // (the star's barycentric velocity within 2 km/s of VHELIO), or unverified, said in words
    // (`restframe.rs`, `combinations_rest_frame_matches_vhelio_or_is_unverified`, has the figures).
    for star in STARS.into_iter().chain([FAINT_STAR]) {
        let Some(d) = shared(&format!("apogee_multistar/{star}")) else {
            return;
        };
        let data = load(&truth(&d));
        let p = prepare(&data, &survey_defaults(&data)).expect("prepare");
        let c = p.velocity.as_ref().expect("checked");
        eprintln!("{star}: {}", c.rest_frame.describe());
        if matches!(
            c.rest_frame,
            frizzview::velocity::RestFrame::Measured { .. }
        ) {
            let mut apstar =
                fitsio::FitsFile::open(d.join(format!("apStar-r6-{star}.fits"))).expect("apStar");
            let vhelio = key_f64(&mut apstar, "VHELIO").expect("VHELIO");
            let b = c.star.as_ref().expect("star figures").mean_bary_kms;
            assert!((b - vhelio).abs() < 2.0, "{star}: {b} vs VHELIO {vhelio}");
        } else {
            assert!(c.rest_frame.describe().starts_with("rest frame unverified"));
        }
    }
}

/// A straight line v = a + k (-BC) through the visits' velocities (unweighted least squares):
/// the fraction `k` of the barycentric motion the velocities follow (1 for a star of constant
/// barycentric velocity, 0 for velocities fixed in the observed frame); and the scatter and
/// largest deviation of v + BC about their mean (km/s).
fn follows_bc(v: &[f64], bc: &[f64]) -> (f64, f64, f64) {
    let n = v.len() as f64;
    let x: Vec<f64> = bc.iter().map(|b| -b).collect();
    let (mx, mv) = (x.iter().sum::<f64>() / n, v.iter().sum::<f64>() / n);
    let sxy: f64 = x.iter().zip(v).map(|(x, v)| (x - mx) * (v - mv)).sum();
    let sxx: f64 = x.iter().map(|x| (x - mx).powi(2)).sum();
    let bary: Vec<f64> = v.iter().zip(bc).map(|(v, b)| v + b).collect();
    let mb = bary.iter().sum::<f64>() / n;
    let scatter = (bary.iter().map(|b| (b - mb).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let worst = bary.iter().map(|b| (b - mb).abs()).fold(0.0, f64::max);
    (sxy / sxx, scatter, worst)
}

/// The faint star (S/N 4.5-7 per visit), computed from its files: which relative velocities are
/// right there? Over the visits the pipeline used, ours (the search, sky and telluric pixels
/// masked) follow the barycentric motion as a star of constant velocity does (the slope of v
/// against -BC near 1, every visit within 5 km/s of a constant barycentric velocity, the
/// stated errors covering the scatter); the apStar's VRADn follow it by much less (pulled
/// toward a constant *topocentric* velocity: the signature of sky residuals, which are fixed in
/// the observed frame) and scatter more; and the same search with the sky and telluric pixels
/// used is pulled the same way. This is why `relative_velocities_match_the_apstar_on_the_faint_star`
/// fails: the apStar's differences are not a reference at the 5 km/s level on this star. (If the
/// star's velocity really varied, the apStar's velocities would have to vary in step with the
/// barycentric correction, the one quantity a star knows nothing about.)
#[test]
fn on_the_faint_star_our_velocities_follow_the_barycentric_motion_and_the_apstars_lag() {
    use frizzview::velocity::{
        APOGEE_SEARCH_EXTRA_BITS, SearchParams, VelocityStatus, check, params,
        search::search_with_prior,
    };
    let Some(root) = shared("apogee_multistar") else {
        return;
    };
    let t = truth(&root.join(FAINT_STAR));
    let data = load(&t);
    let s = survey_defaults(&data);
    let c = check(&data, &s).expect("checked");
    let p = params(&data, &s);
    assert_ne!(
        p.bad_bits & APOGEE_SEARCH_EXTRA_BITS,
        0,
        "sky pixels masked"
    );
    let with_sky = SearchParams {
        bad_bits: p.bad_bits & !APOGEE_SEARCH_EXTRA_BITS,
        ..p.clone()
    };
    let visits: Vec<&frizzview::model::Visit> = data.visits.iter().map(AsRef::as_ref).collect();
    let bc_of = |i: usize| {
        data.visits[i]
            .meta
            .velocity(VelocityKind::Bc)
            .expect("BC in the header")
    };
    let prior: Vec<Option<f64>> = (0..visits.len()).map(|i| Some(-bc_of(i))).collect();
    let sky = search_with_prior(&visits, &with_sky, &prior);
    let used: Vec<usize> = (0..t.len())
        .filter(|&i| {
            t[i].vrad.is_some() && c.visits[i].status == VelocityStatus::Measured && sky[i].measured
        })
        .collect();
    assert!(used.len() >= 5, "only {} visits measured", used.len());
    let bc: Vec<f64> = used.iter().map(|&i| bc_of(i)).collect();
    let ours: Vec<f64> = used.iter().map(|&i| c.visits[i].data_kms).collect();
    let err: Vec<f64> = used.iter().map(|&i| c.visits[i].err_kms).collect();
    let apstar: Vec<f64> = used.iter().map(|&i| t[i].vrad.expect("apStar").0).collect();
    let skyv: Vec<f64> = used
        .iter()
        .map(|&i| frizzview::model::velocity_from_shift(sky[i].dx))
        .collect();
    let (k_ours, sc_ours, worst_ours) = follows_bc(&ours, &bc);
    let (k_ap, sc_ap, worst_ap) = follows_bc(&apstar, &bc);
    let (k_sky, sc_sky, worst_sky) = follows_bc(&skyv, &bc);
    println!("{FAINT_STAR}, visits {used:?}, BC {bc:.2?}");
    for (what, v, k, sc, w) in [
        ("ours (sky masked)", &ours, k_ours, sc_ours, worst_ours),
        ("apStar VRADn", &apstar, k_ap, sc_ap, worst_ap),
        ("ours, sky pixels used", &skyv, k_sky, sc_sky, worst_sky),
    ] {
        println!(
            "  {what:<22} v {v:>7.2?}: follows {k:.2} of -BC; v + BC scatter {sc:.2}, worst {w:.2} km/s"
        );
    }
    let pts: Vec<(f64, f64)> = ours
        .iter()
        .zip(&bc)
        .zip(&err)
        .map(|((v, b), e)| (v + b, *e))
        .collect();
    let f = frizzview::velocity::star_figures_of(&pts).expect("figures");
    let rms = (f.chi2 / f.dof as f64).sqrt();
    println!(
        "  ours: stated errors {err:.2?}; chi2 of a constant velocity {:.2} for {} dof (RMS {rms:.2})",
        f.chi2, f.dof
    );
    assert!(
        (0.8..1.2).contains(&k_ours),
        "ours follow {k_ours:.2} of the barycentric motion"
    );
    assert!(worst_ours < 5.0, "ours: a visit {worst_ours:.2} km/s off");
    assert!((0.3..=2.0).contains(&rms), "ours: RMS {rms:.2}");
    assert!(
        k_ap < k_ours - 0.2 && sc_ap > sc_ours,
        "apStar follows {k_ap:.2} (ours {k_ours:.2}), scatter {sc_ap:.2} (ours {sc_ours:.2})"
    );
    assert!(
        k_sky < k_ours - 0.1,
        "with the sky pixels the search follows {k_sky:.2} (masked {k_ours:.2})"
    );
}

/// Measurement (prints; no claim): the stated errors of faint visits under three error models,
/// on the real faint star (the 6 visits the pipeline used: chi^2 of a constant barycentric
/// velocity, 5 dof) and on the synthetic faint cool star with known truth (seeds 1-3, the 18
/// visits at S/N 5-7: RMS of error / stated error, relative velocities): (a) as stated (formal,
/// floor, and below S/N 10 each visit's own sky/telluric pixel sensitivity), (b) formal and
/// floor only, (c) formal and floor with the faint visits' pooled (RMS) sensitivity instead of
/// each visit's own.
#[test]
#[ignore = "measurement: prints the faint visits' error models"]
fn measure_faint_visit_error_models() {
    use frizzview::model::C_KMS;
    use frizzview::synth::apogee::{ApogeeParams, generate, visit_draw};
    use frizzview::velocity::{LOW_SNR, params, search_dataset};
    // Per visit (measured only): (velocity, [a, b, c] errors).
    let models = |data: &Dataset, s: &Settings| -> Vec<Option<(f64, [f64; 3])>> {
        let found = search_dataset(data, &params(data, s));
        let floor = s.velocity.floor_kms;
        let faint = |r: &frizzview::velocity::SearchResult| r.measured && r.snr < LOW_SNR;
        let sens: Vec<f64> = found
            .iter()
            .filter(|r| faint(r))
            .map(|r| r.pixel_sensitivity_dx)
            .collect();
        let pooled = (sens.iter().map(|d| d * d).sum::<f64>() / sens.len().max(1) as f64).sqrt();
        found
            .iter()
            .map(|r| {
                r.measured.then(|| {
                    let k = C_KMS * r.dx.exp();
                    let formal = if faint(r) {
                        (r.sigma_dx.powi(2) - r.pixel_sensitivity_dx.powi(2))
                            .max(0.0)
                            .sqrt()
                    } else {
                        r.sigma_dx
                    };
                    let (a, b) = (r.sigma_dx, formal);
                    let c = if faint(r) {
                        formal.hypot(pooled)
                    } else {
                        formal
                    };
                    (
                        frizzview::model::velocity_from_shift(r.dx),
                        [a, b, c].map(|e| (k * e).hypot(floor)),
                    )
                })
            })
            .collect()
    };
    let names = [
        "(a) own sensitivity",
        "(b) formal + floor",
        "(c) pooled sensitivity",
    ];
    if let Some(root) = shared("apogee_multistar") {
        let t = truth(&root.join(FAINT_STAR));
        let data = load(&t);
        let s = survey_defaults(&data);
        let m = models(&data, &s);
        for (k, name) in names.iter().enumerate() {
            let pts: Vec<(f64, f64)> = (0..t.len())
                .filter(|&i| t[i].vrad.is_some())
                .filter_map(|i| {
                    let (v, e) = m[i]?;
                    let bc = data.visits[i].meta.velocity(VelocityKind::Bc)?;
                    Some((v + bc, e[k]))
                })
                .collect();
            let f = frizzview::velocity::star_figures_of(&pts).expect("figures");
            let errs: Vec<f64> = pts.iter().map(|p| p.1).collect();
            println!(
                "{FAINT_STAR} {name}: errors {errs:.2?}; chi2 of constancy {:.2} for {} dof",
                f.chi2, f.dof
            );
        }
    }
    let mut z2 = [0.0; 3];
    let mut n = 0usize;
    for seed in [1, 2, 3] {
        let p = ApogeeParams {
            seed,
            ..ApogeeParams::faint_cool_star()
        };
        let data = generate(&p).expect("synthetic");
        let s = survey_defaults(&data);
        let m = models(&data, &s);
        let good: Vec<(f64, f64, [f64; 3])> = (0..p.n_visits)
            .filter(|&j| visit_draw(&p, j).snr >= 5.0)
            .filter_map(|j| m[j].map(|(v, e)| (v, visit_draw(&p, j).v_true_kms, e)))
            .collect();
        let off = good.iter().map(|(v, t, _)| v - t).sum::<f64>() / good.len() as f64;
        for (v, t, e) in &good {
            for k in 0..3 {
                z2[k] += ((v - t - off) / e[k]).powi(2);
            }
            n += 1;
        }
    }
    for (k, name) in names.iter().enumerate() {
        println!(
            "synthetic faint cool star {name}: RMS of error / stated error over {n} visits {:.2}",
            (z2[k] / n as f64).sqrt()
        );
    }
}
